// Command fakeprovider serves the fake Spotify + Google/YouTube + Apple Music provider
// (internal/providers/fake) for the demo and benchmarks, and prints the
// environment settings that point the API and the worker at it.
//
// Environment:
//
//	FAKE_ADDR            listen address (default 127.0.0.1:8090)
//	FAKE_TOKEN_TTL       access token lifetime, a Go duration (default 1h)
//	FAKE_ROTATE          "true" to rotate refresh tokens on every refresh
//	FAKE_YOUTUBE_QUOTA   YouTube units per project per day (default 10000)
//	FAKE_LOG_LEVEL       debug to log every request (route and status only)
//	FAKE_APPLE_KEY_FILE  a MusicKit key (.p8) the fake's Apple Music knows,
//	                     created there when missing; point APPLE_PRIVATE_KEY_FILE at it
//
// Faults and state: POST /_fake/faults, /_fake/quota, /_fake/revoke,
// /_fake/expire, /_fake/notlive, /_fake/rotation, /_fake/legacy and
// GET /_fake/state (see package fake).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/presave/presave/internal/providers"
	"github.com/presave/presave/internal/providers/fake"
	"github.com/presave/presave/internal/providers/registry"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdout); err != nil {
		slog.Error("fakeprovider", "err", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	fs := flag.NewFlagSet("fakeprovider", flag.ContinueOnError)
	fs.SetOutput(stdout)
	addr := fs.String("addr", envOr(getenv, "FAKE_ADDR", "127.0.0.1:8090"), "listen address")
	if err := fs.Parse(args); err != nil {
		return err
	}

	level := slog.LevelInfo
	if getenv("FAKE_LOG_LEVEL") == "debug" {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))

	opts, err := options(getenv, log)
	if err != nil {
		return err
	}

	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	base := "http://" + ln.Addr().String()
	f := fake.New(opts)
	appleKey := getenv("FAKE_APPLE_KEY_FILE")
	if appleKey != "" {
		if err := useAppleKey(f, appleKey); err != nil {
			return fmt.Errorf("FAKE_APPLE_KEY_FILE: %w", err)
		}
	}
	srv := &http.Server{
		Handler:           f,
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}

	fmt.Fprintf(stdout, "# fake provider at %s; configure the API and the worker with:\n", base)
	for _, kv := range fake.URLs(base).Env() {
		fmt.Fprintf(stdout, "%s=%s\n", kv[0], kv[1])
	}
	if appleKey != "" {
		fmt.Fprintf(stdout, "APPLE_TEAM_ID=%s\nAPPLE_KEY_ID=%s\nAPPLE_PRIVATE_KEY_FILE=%s\n", fake.AppleTeamID, fake.AppleKeyID, appleKey)
	}
	fmt.Fprintf(stdout, "# state: curl %s/_fake/state\n", base)

	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	log.Info("fake provider serving", "addr", ln.Addr().String())

	select {
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	log.Info("shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve: %w", err)
	}
	return nil
}

// options reads the fake's settings from the environment.
func options(getenv func(string) string, log *slog.Logger) (fake.Options, error) {
	// The credentials presave falls back to are the fake's registered
	// apps, so a wrong SPOTIFY_CLIENT_SECRET fails here as at Spotify.
	opts := fake.Options{Logger: log, Apps: []fake.App{
		{Provider: providers.Spotify, ClientID: registry.DevClientID, ClientSecret: registry.DevClientSecret},
		{Provider: providers.YouTube, ClientID: registry.DevClientID, ClientSecret: registry.DevClientSecret},
	}}
	if v := getenv("FAKE_TOKEN_TTL"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			return opts, fmt.Errorf("FAKE_TOKEN_TTL: %w", err)
		}
		opts.AccessTokenTTL = d
	}
	if v := getenv("FAKE_ROTATE"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return opts, fmt.Errorf("FAKE_ROTATE: %w", err)
		}
		opts.RotateRefreshTokens = b
	}
	if v := getenv("FAKE_YOUTUBE_QUOTA"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			return opts, fmt.Errorf("FAKE_YOUTUBE_QUOTA: %w", err)
		}
		opts.YouTubeDailyQuota = n
	}
	return opts, nil
}

// useAppleKey registers the MusicKit key in path with f, creating the
// key (mode 0600) when the file does not exist yet.
func useAppleKey(f *fake.Server, path string) error {
	p8, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		if p8, _, err = fake.GenerateAppleKey(); err != nil {
			return err
		}
		err = os.WriteFile(path, p8, 0o600)
	}
	if err != nil {
		return err
	}
	return f.UseAppleKey(p8)
}

func envOr(getenv func(string) string, k, def string) string {
	if v := getenv(k); v != "" {
		return v
	}
	return def
}
