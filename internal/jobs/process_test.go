package jobs_test

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/presave/presave/internal/providers"
	"github.com/presave/presave/internal/store"
)

// lockedBuffer collects a process's output for the failure report.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestWorkerKilledMidDrain runs three real worker processes and SIGKILLs
// one while the release drains. Everything still completes exactly once:
// the sweeper revives what the dead worker left running (RUNNING_TIMEOUT,
// shortened here), and asynq recovers its other tasks after their lease.
func TestWorkerKilledMidDrain(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs worker processes")
	}
	t.Parallel()
	bin := filepath.Join(t.TempDir(), "worker")
	build := exec.Command("go", "build", "-o", bin, "github.com/presave/presave/cmd/worker")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build cmd/worker: %v\n%s", err, out)
	}

	b := setup(t, map[string]string{
		"WORKER_CONCURRENCY": "8",
		"PRESAVE_TIMEOUT":    "5s",
		"RUNNING_TIMEOUT":    "20s",
		"SHUTDOWN_TIMEOUT":   "2s",
		"LOG_LEVEL":          "warn",
	})
	rel := b.newRelease("killed", time.Now().Add(8*time.Second))
	fans := b.consentMany(rel, "kill", 60, providers.Spotify, providers.YouTube)
	// Slow calls stretch the drain so the kill lands mid-way.
	for _, p := range providers.Names {
		b.fake.SetLatency(p, 60*time.Millisecond)
	}

	var env []string
	for k, v := range b.env {
		env = append(env, k+"="+v)
	}
	env = append(env, "PATH="+os.Getenv("PATH"), "WORKER_ADDR=127.0.0.1:0")
	type proc struct {
		cmd *exec.Cmd
		out *lockedBuffer
	}
	var procs []proc
	for i := range 3 {
		out := &lockedBuffer{}
		cmd := exec.Command(bin)
		cmd.Env = env
		cmd.Stdout, cmd.Stderr = out, out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		procs = append(procs, proc{cmd, out})
		t.Cleanup(func() {
			if cmd.ProcessState == nil {
				_ = cmd.Process.Signal(syscall.SIGTERM)
				done := make(chan struct{})
				go func() { _ = cmd.Wait(); close(done) }()
				select {
				case <-done:
				case <-time.After(15 * time.Second):
					_ = cmd.Process.Kill()
					<-done
				}
			}
			if t.Failed() {
				t.Logf("worker %d output:\n%s", i, out.String())
			}
		})
	}

	// Kill one worker once the drain is well under way.
	waitFor(t, time.Minute, "the drain to start", func() (bool, string) {
		st := b.statuses(fans)
		finished := st[store.PresaveDone] + st[store.PresaveFailed] + st[store.PresavePartial]
		return finished >= len(fans)/5, fmt.Sprint(st)
	})
	victim := procs[0].cmd
	if err := victim.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = victim.Wait()
	t.Logf("killed worker 0 at %v", b.statuses(fans))

	// asynq recovers a dead worker's leased tasks only after ~30 s lease +
	// 30 s grace + its 1 min recoverer tick; the deadline allows for that.
	st := b.waitFinal(fans, 4*time.Minute)
	if st[store.PresaveDone] != len(fans) {
		t.Fatalf("statuses %v, want all %d done", st, len(fans))
	}
	b.assertExactlyOnce(fans)
	b.assertTokensGone(fans)
}
