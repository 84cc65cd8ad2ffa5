package main

import (
	"crypto/sha256"
	"os"
	"testing"
	"time"
)

// sink keeps the CPU burner's result alive.
var sink byte

func TestParseStat(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, line string
		pid        int
		comm       string
		sec        float64
		ok         bool
	}{
		{"postgres backend", "4242 (postgres) S 4200 4200 4200 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 1 0 100 0 0", 4242, "postgres", 3, true},
		{"name with spaces and parentheses", "7 (a (b) c) R 1 7 7 0 -1 0 0 0 0 0 1 2 0 0 20 0 1 0 5 0 0", 7, "a (b) c", 0.03, true},
		{"truncated", "9 (worker) S 1 9 9", 0, "", 0, false},
		{"no name", "9 worker S 1 9 9 0 -1 0 0 0 0 0 1 2", 0, "", 0, false},
		{"bad pid", "x (worker) S 1 9 9 0 -1 0 0 0 0 0 1 2 0 0", 0, "", 0, false},
	} {
		pid, comm, sec, ok := parseStat(tc.line)
		if ok != tc.ok || pid != tc.pid || comm != tc.comm || sec != tc.sec {
			t.Errorf("%s: parseStat = %d %q %v %v, want %d %q %v %v", tc.name, pid, comm, sec, ok, tc.pid, tc.comm, tc.sec, tc.ok)
		}
	}
}

// sampleCPU finds this process (the fake's group) on Linux, and its CPU
// time only grows.
func TestSampleCPUCountsThisProcess(t *testing.T) {
	if _, err := os.Stat("/proc/self/stat"); err != nil {
		t.Skip("no /proc here")
	}
	a := sampleCPU()
	// Burn at least 100 ms of CPU (ten clock ticks).
	sum := sha256.Sum256(nil)
	for start := time.Now(); time.Since(start) < 150*time.Millisecond; {
		sum = sha256.Sum256(sum[:])
	}
	sink = sum[0]
	b := sampleCPU()
	if b.sec["fake"] < a.sec["fake"] || b.sec["fake"] == 0 {
		t.Errorf("fake group CPU %v then %v, want a positive, growing figure", a.sec["fake"], b.sec["fake"])
	}
	u := a.until(b)
	if u.total() < 0 || u.wall <= 0 {
		t.Errorf("use between samples: %+v", u)
	}
}
