// Command bench measures presave on this machine, in one run, and prints a
// table plus bench/results.json (see README, "Benchmarks"):
//
//  1. the peer design: N pre-saves as one asynq task each holding its
//     tokens, presave's provider clients, a check before each write, no
//     database (and, as information, raw asynq draining N no-op tasks);
//  2. release-day drain: N pre-saves due at one instant, real workers,
//     against the peer design;
//  3. the same with provider latency, against concurrency ÷ latency;
//  4. Redis memory with many future pre-saves, and bytes per queued task;
//  5. consent ingest: OAuth callbacks per second through the API;
//  6. rate-limit adherence against the fake provider's limit;
//  7. release-day lateness (from run 2);
//
// and, beside them, the Apple Music drain (a quarter of N fans).
//
// Everything runs on loopback: the real API and worker binaries as
// processes, the fake provider in this process, an isolated PostgreSQL
// schema and Redis database that are removed at the end.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/presave/presave/internal/cluster"
	"github.com/presave/presave/internal/config"
	"github.com/presave/presave/internal/providers/fake"
	"github.com/presave/presave/internal/scratch"
	"github.com/redis/go-redis/v9"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == peerMode {
		if err := runPeer(os.Getenv, os.Stdout); err != nil {
			fmt.Fprintln(os.Stderr, "bench peer:", err)
			os.Exit(1)
		}
		return
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args, os.Getenv, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

type options struct {
	n           int
	future      int
	history     int
	workers     int
	concurrency int
	latency     time.Duration
	rate        float64
	out         string
	logDir      string
	poolConns   int
	profile     string
}

func run(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	env := config.Env(getenv)
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	var o options
	fs.IntVar(&o.n, "n", 20000, "pre-saves in the release-day drain (half per provider)")
	fs.IntVar(&o.future, "future", 0, "future pre-saves for the Redis memory figure (default 1,000,000, or 25×n when n < 20,000)")
	fs.IntVar(&o.history, "history", 0, "finished pre-saves of an earlier release to seed (then VACUUM ANALYZE) before the runs: a platform after a year")
	fs.IntVar(&o.workers, "workers", 2, "worker processes")
	fs.IntVar(&o.concurrency, "concurrency", 100, "tasks each worker runs at once")
	fs.DurationVar(&o.latency, "latency", 50*time.Millisecond, "provider latency for figure 3")
	fs.Float64Var(&o.rate, "rate", 100, "fake provider rate limit (requests/s) for figure 6")
	fs.StringVar(&o.out, "out", "bench/results.json", "where to write the results")
	fs.StringVar(&o.logDir, "logs", "", "keep the processes' logs in this directory")
	fs.IntVar(&o.poolConns, "pool", 10, "PostgreSQL connections per process (pool_max_conns)")
	fs.StringVar(&o.profile, "profile", "", "write CPU profiles of the first worker and of the fake during the drain (10 s) to this directory")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if o.n < 100 {
		return errors.New("-n must be at least 100")
	}
	if o.future == 0 {
		o.future = 1_000_000
		if o.n < 20000 {
			o.future = 25 * o.n
		}
	}
	slog.SetDefault(slog.New(slog.NewTextHandler(io.Discard, nil)))

	b, err := setup(ctx, env, o, stdout)
	if err != nil {
		return err
	}
	defer b.close()

	res := results{"n": float64(o.n), "history": float64(o.history)}
	steps := []struct {
		name string
		fn   func(*bench, context.Context, results) error
	}{
		{"history", (*bench).seedHistory},
		{"no-op ceiling", (*bench).ceiling},
		{"peer design", (*bench).peer},
		{"release-day drain, ingest and lateness", (*bench).drain},
		{"periodic services' statements", (*bench).sweepTimes},
		{"provider latency", (*bench).withLatency},
		{"rate-limit adherence", (*bench).rateLimit},
		{"Apple Music drain", (*bench).appleMusic},
		{"Redis memory", (*bench).memory},
	}
	for _, s := range steps {
		fmt.Fprintf(stdout, "… %s", s.name)
		start := time.Now()
		if err := s.fn(b, ctx, res); err != nil {
			fmt.Fprintln(stdout)
			return fmt.Errorf("%s: %w", s.name, err)
		}
		fmt.Fprintf(stdout, " (%.1f s)\n", time.Since(start).Seconds())
	}
	printTable(stdout, o, res)
	return writeResults(o.out, res)
}

// results holds the figures under the keys of bench/results.json.
type results map[string]float64

func writeResults(path string, r results) error {
	out := map[string]any{}
	for k, v := range r {
		out[k] = v
	}
	out["git_commit"] = gitCommit()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	data, err := json.MarshalIndent(out, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(data, '\n'), 0o644)
}

func gitCommit() string {
	out, err := exec.Command("git", "rev-parse", "--short", "HEAD").Output()
	if err != nil {
		return "unknown"
	}
	return strings.TrimSpace(string(out))
}

// bench is the running system under measurement.
type bench struct {
	o       options
	out     io.Writer
	db      scratch.Schema
	dropDB  func() error
	rdb     scratch.Redis
	freeRDB func()
	// redis reads the leased database's INFO and queues the memory
	// figure's tasks (any form of REDIS_URL).
	redis    redis.UniversalClient
	fake     *fake.Server
	fakeURL  string
	fakeSrv  *http.Server
	binDir   string
	cl       *cluster.Cluster
	workers  []*cluster.Proc
	hc       *http.Client
	admin    string
	redisURL string
	// ingestCPU is the CPU the last ingest's callbacks cost.
	ingestCPU cpuUse
}

func (b *bench) close() {
	if b.cl != nil {
		b.cl.Close()
	}
	if b.fakeSrv != nil {
		_ = b.fakeSrv.Close()
	}
	if b.redis != nil {
		_ = b.redis.Close()
	}
	if b.freeRDB != nil {
		b.freeRDB()
	}
	if b.dropDB != nil {
		_ = b.dropDB()
	}
	if b.binDir != "" {
		_ = os.RemoveAll(b.binDir)
	}
}
