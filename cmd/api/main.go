// Command api is presave's HTTP API: releases, the OAuth connect and
// consent flow, fan self-service and operations endpoints. The server
// itself is internal/api; main only wires.
//
//	api              run the API (applies migrations first)
//	api healthcheck  GET /healthz on API_ADDR (for container healthchecks)
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/presave/presave/internal/api"
	"github.com/presave/presave/internal/config"
	"github.com/presave/presave/internal/health"
	"github.com/presave/presave/internal/providers/registry"
	"github.com/presave/presave/internal/rdb"
	"github.com/presave/presave/internal/store"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args, os.Getenv, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "api:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	env := config.Env(getenv)
	addr := env.String("API_ADDR", "127.0.0.1:8080")
	if len(args) > 1 && args[1] == "healthcheck" {
		return health.Check(ctx, addr)
	}
	cfg, err := config.LoadCommon(env)
	if err != nil {
		return err
	}
	log := cfg.Logger(stdout)
	rdb.SetLogger(log)
	acfg, err := api.ConfigFromEnv(env, cfg, log)
	if err != nil {
		return err
	}
	provs, err := registry.FromEnv(env, acfg.PublicURL)
	if err != nil {
		return err
	}
	if err := store.Migrate(ctx, cfg.MigrateURL); err != nil {
		return err
	}
	st, err := store.Open(ctx, cfg.DatabaseURL, cfg.Ring)
	if err != nil {
		return err
	}
	defer st.Close()
	srv, err := api.New(acfg, st, provs, log)
	if err != nil {
		return err
	}
	defer srv.Close()
	if err := srv.MountPage(); err != nil {
		return err
	}

	hs := srv.HTTPServer(addr)
	errc := make(chan error, 1)
	go func() { errc <- hs.ListenAndServe() }()
	log.Info("api listening", "addr", addr, "public_url", acfg.PublicURL)
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	log.Info("api shutting down")
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 15*time.Second)
	defer cancel()
	if err := hs.Shutdown(sctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
