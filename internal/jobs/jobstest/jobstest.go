// Package jobstest runs a worker in the test's process, the way
// cmd/worker runs it, and stops it when the test ends. Neither binary
// links it.
package jobstest

import (
	"context"

	"github.com/presave/presave/internal/config"
	"github.com/presave/presave/internal/jobs"
	"github.com/presave/presave/internal/scratch"
)

// Start loads the worker's configuration from getenv, builds the worker
// on deps and runs it until the test ends; a worker that fails to build,
// or stops with an error, fails the test.
func Start(tb scratch.TB, deps jobs.Deps, getenv config.Env) *jobs.Worker {
	tb.Helper()
	cfg, err := jobs.LoadConfig(getenv)
	if err != nil {
		tb.Fatalf("worker configuration: %v", err)
	}
	w, err := jobs.New(deps, cfg)
	if err != nil {
		tb.Fatalf("worker: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	tb.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			tb.Errorf("worker: %v", err)
		}
	})
	return w
}
