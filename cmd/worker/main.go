// Command worker executes presave's background work from asynq: release-day
// pre-saves, grant revocations and maintenance. Run as many as you like.
//
//	worker              run the worker
//	worker migrate      apply migrations and exit
//	worker rotate-keys  re-seal every stored token under the primary key
//	worker preflight    check the configuration against reality; exit 1 on a failure
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/presave/presave/internal/config"
	"github.com/presave/presave/internal/health"
	"github.com/presave/presave/internal/jobs"
	"github.com/presave/presave/internal/preflight"
	"github.com/presave/presave/internal/providers/registry"
	"github.com/presave/presave/internal/rdb"
	"github.com/presave/presave/internal/store"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args, os.Getenv, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "worker:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	env := config.Env(getenv)
	if len(args) > 1 && args[1] == "healthcheck" {
		return health.Check(ctx, env.String("WORKER_ADDR", "127.0.0.1:9090"))
	}
	if len(args) > 1 && args[1] == "preflight" {
		// Before anything is loaded or migrated: a bad setting is one of
		// the failures it reports, and it changes nothing.
		report := preflight.Run(ctx, env)
		if err := report.Write(stdout); err != nil {
			return err
		}
		if report.Failed() {
			return errors.New("preflight failed")
		}
		return nil
	}
	cfg, err := config.LoadCommon(env)
	if err != nil {
		return err
	}
	log := cfg.Logger(stdout)
	rdb.SetLogger(log)
	if err := store.Migrate(ctx, cfg.MigrateURL); err != nil {
		return err
	}
	st, err := store.Open(ctx, cfg.DatabaseURL, cfg.Ring)
	if err != nil {
		return err
	}
	defer st.Close()

	if len(args) > 1 {
		switch args[1] {
		case "migrate":
			fmt.Fprintln(stdout, "migrations applied")
			return nil
		case "rotate-keys":
			return rotateKeys(ctx, st, stdout)
		default:
			return fmt.Errorf("unknown command %q (want: migrate, rotate-keys, preflight or healthcheck)", args[1])
		}
	}

	w, reg, err := newWorker(env, cfg, st, log)
	if err != nil {
		return err
	}
	ops, err := opsHandler(env, w, reg)
	if err != nil {
		return err
	}
	addr := env.String("WORKER_ADDR", "127.0.0.1:9090")
	return serve(ctx, log, &http.Server{Addr: addr, Handler: ops, ReadHeaderTimeout: 10 * time.Second}, w)
}

// newWorker builds the worker from the environment, with its metrics
// registry. The worker opens (and closes) its own Redis connections.
func newWorker(env config.Env, cfg config.Common, st *store.Store, log *slog.Logger) (*jobs.Worker, *prometheus.Registry, error) {
	wcfg, err := jobs.LoadConfig(env)
	if err != nil {
		return nil, nil, err
	}
	// The worker never redirects a fan; the redirect URI only has to match
	// what the API registered, so PUBLIC_URL is read the same way.
	provs, err := registry.FromEnv(env, env.PublicURL())
	if err != nil {
		return nil, nil, err
	}
	conn, err := rdb.Parse(cfg.RedisURL)
	if err != nil {
		return nil, nil, err
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	w, err := jobs.New(jobs.Deps{Store: st, Providers: provs, Redis: conn, Log: log, Registerer: reg}, wcfg)
	if err != nil {
		return nil, nil, err
	}
	return w, reg, nil
}

// opsHandler serves /healthz, /readyz, /metrics (behind METRICS_TOKEN
// when set) and, with PPROF, Go's profiler.
func opsHandler(env config.Env, w *jobs.Worker, reg *prometheus.Registry) (http.Handler, error) {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(rw http.ResponseWriter, _ *http.Request) {
		rw.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(rw, `{"status":"ok"}`)
	})
	mux.HandleFunc("GET /readyz", func(rw http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		rw.Header().Set("Content-Type", "application/json")
		if err := w.Ready(ctx); err != nil {
			rw.WriteHeader(http.StatusServiceUnavailable)
			_ = json.NewEncoder(rw).Encode(map[string]string{"status": "unavailable", "error": err.Error()})
			return
		}
		_, _ = io.WriteString(rw, `{"status":"ok"}`)
	})
	mux.Handle("GET /metrics", health.RequireBearer(env.String("METRICS_TOKEN", ""), promhttp.HandlerFor(reg, promhttp.HandlerOpts{})))
	on, err := env.Bool("PPROF", false)
	if err != nil {
		return nil, err
	}
	if on {
		// Profiling for operators chasing a slow drain; off by default
		// since it exposes internals on the health port.
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	}
	return mux, nil
}

// serve runs the worker and its ops endpoint until ctx ends or either
// fails, then shuts down gracefully: stop taking tasks, let in-flight ones
// finish (up to SHUTDOWN_TIMEOUT), then close the endpoint.
func serve(ctx context.Context, log *slog.Logger, srv *http.Server, w *jobs.Worker) error {
	errc := make(chan error, 2)
	go func() { errc <- srv.ListenAndServe() }()
	wctx, stopWorker := context.WithCancel(ctx)
	defer stopWorker()
	workerDone := make(chan error, 1)
	go func() { workerDone <- w.Run(wctx) }()
	log.Info("worker health endpoint listening", "addr", srv.Addr)
	var runErr error
	select {
	case runErr = <-errc:
	case runErr = <-workerDone:
		workerDone = nil
	case <-ctx.Done():
	}
	stopWorker()
	if workerDone != nil {
		if err := <-workerDone; err != nil && runErr == nil {
			runErr = err
		}
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 15*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	if errors.Is(runErr, http.ErrServerClosed) {
		runErr = nil
	}
	return runErr
}

// rotateKeys re-seals tokens in batches until none is left under an old
// key; afterwards the old keys can be removed from TOKEN_KEYS.
func rotateKeys(ctx context.Context, st *store.Store, stdout io.Writer) error {
	total := 0
	for {
		n, err := st.RotateKeys(ctx, 500)
		if err != nil {
			return fmt.Errorf("rotate-keys after %d re-sealed: %w", total, err)
		}
		if n == 0 {
			break
		}
		total += n
	}
	fmt.Fprintf(stdout, "re-sealed %d values under the primary key; keys other than the first in TOKEN_KEYS can now be removed\n", total)
	return nil
}
