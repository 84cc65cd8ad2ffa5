package main

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"
)

// cpuGroups are the parts of the system the benchmark accounts CPU time
// to, in the order it prints them.
var cpuGroups = []string{"worker", "postgres", "redis", "api", "fake", "peer"}

// cpuSample is the CPU time (user + system, seconds) each group's
// processes have used so far, read from /proc.
type cpuSample struct {
	at  time.Time
	sec map[string]float64
}

// clockTicks is USER_HZ, the unit of /proc/<pid>/stat's times: 100 on
// every Linux architecture Go supports.
const clockTicks = 100

// sampleCPU reads every process's CPU time. The fake provider runs in
// this process (as does the benchmark's own polling, which is small), so
// this process counts as "fake"; the API and worker binaries and the
// PostgreSQL and Redis servers are found by their command names. Where
// /proc is missing (not Linux) the sample is empty and nothing is
// reported.
func sampleCPU() cpuSample {
	s := cpuSample{at: time.Now(), sec: map[string]float64{}}
	stats, _ := filepath.Glob("/proc/[0-9]*/stat")
	self := os.Getpid()
	for _, path := range stats {
		data, err := os.ReadFile(path)
		if err != nil {
			continue // exited meanwhile
		}
		pid, comm, sec, ok := parseStat(string(data))
		if !ok {
			continue
		}
		group := ""
		switch {
		case pid == self:
			group = "fake"
		case isPeer(pid):
			group = "peer"
		case comm == "worker" || comm == "api" || comm == "postgres":
			group = comm
		case comm == "redis-server":
			group = "redis"
		default:
			continue
		}
		s.sec[group] += sec
	}
	return s
}

// parseStat reads a /proc/<pid>/stat line: the pid, the command name and
// the CPU time used (utime + stime, seconds). The name may hold spaces
// and parentheses, so the fields are counted from its last ')'.
func parseStat(line string) (pid int, comm string, sec float64, ok bool) {
	open, end := strings.IndexByte(line, '('), strings.LastIndexByte(line, ')')
	if open < 0 || end < open {
		return 0, "", 0, false
	}
	pid, err := strconv.Atoi(strings.TrimSpace(line[:open]))
	if err != nil {
		return 0, "", 0, false
	}
	f := strings.Fields(line[end+1:])
	if len(f) < 13 {
		return 0, "", 0, false
	}
	utime, err1 := strconv.ParseFloat(f[11], 64)
	stime, err2 := strconv.ParseFloat(f[12], 64)
	if err1 != nil || err2 != nil {
		return 0, "", 0, false
	}
	return pid, line[open+1 : end], (utime + stime) / clockTicks, true
}

// cpuUse is the CPU time each group used between two samples.
type cpuUse struct {
	wall time.Duration
	sec  map[string]float64
}

func (a cpuSample) until(b cpuSample) cpuUse {
	u := cpuUse{wall: b.at.Sub(a.at), sec: map[string]float64{}}
	for _, g := range cpuGroups {
		u.sec[g] = max(0, b.sec[g]-a.sec[g])
	}
	return u
}

func (u cpuUse) total() float64 {
	t := 0.0
	for _, g := range cpuGroups {
		t += u.sec[g]
	}
	return t
}

// record stores the use per unit of work (milliseconds) under
// prefix_<group> and prefix (the total), and the cores busy meanwhile.
func (u cpuUse) record(res results, prefix string, units int) {
	if u.total() == 0 || units == 0 {
		return
	}
	for _, g := range cpuGroups {
		if u.sec[g] > 0 {
			res[prefix+"_"+g] = 1000 * u.sec[g] / float64(units)
		}
	}
	res[prefix] = 1000 * u.total() / float64(units)
	res[prefix+"_cores_busy"] = u.total() / u.wall.Seconds()
}

// cpuLine describes what record stored, for the table's footer.
func cpuLine(res results, prefix, unit string) string {
	if res[prefix] == 0 {
		return ""
	}
	var parts []string
	for _, g := range cpuGroups {
		if v := res[prefix+"_"+g]; v > 0 {
			parts = append(parts, fmt.Sprintf("%s %.2f", g, v))
		}
	}
	return fmt.Sprintf("CPU per %s: %.2f ms (%s); %.2f of %d cores busy",
		unit, res[prefix], strings.Join(parts, ", "), res[prefix+"_cores_busy"], runtime.NumCPU())
}
