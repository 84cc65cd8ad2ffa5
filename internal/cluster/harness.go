package cluster

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/presave/presave/internal/apiclient"
	"github.com/presave/presave/internal/queue"

	"github.com/presave/presave/internal/scratch"
	"github.com/presave/presave/internal/store"
)

// A Harness is one isolated presave for a demo run or a reliability
// scenario: its own PostgreSQL schema and Redis logical database on shared
// servers, the fake provider, an API and workers as processes, an
// operator's credentials and an HTTP client. Close undoes all of it.

// HarnessConfig describes a Harness.
type HarnessConfig struct {
	// BinDir holds the binaries (see Build).
	BinDir string
	// DatabaseURL and RedisURL are the shared servers; a fresh schema and
	// a leased logical database are taken on them.
	DatabaseURL string
	RedisURL    string
	// Prefix names the schema (e.g. "demo", "chaos_kill").
	Prefix string
	// Workers is how many worker processes start (0: none yet).
	Workers int
	// LogDir receives one log per process; empty discards the logs.
	LogDir string
	// Env is added to every process, after DefaultEnv.
	Env []string
	// FakeEnv is added to the fake provider only.
	FakeEnv []string
	// Parallel sizes the HTTP client for this many concurrent fans.
	Parallel int
	// PoolConns is each process's PostgreSQL pool size; 0 keeps the test
	// cap (scratch.PoolConns), so suites running side by side stay
	// within PostgreSQL's connection limit.
	PoolConns int
}

// DefaultEnv is the environment every harness process gets before
// HarnessConfig.Env: many fans share 127.0.0.1, so the per-IP limit on the
// fan endpoints is lifted; the request rates and YouTube's daily units are
// raised so a thousand fans drain in seconds rather than at production
// pace; and the relay looks often, so a release due in seconds is queued
// in time.
var DefaultEnv = append([]string{
	"FAN_RATE_LIMIT=1000000", "FAN_RATE_BURST=1000000",
	"YOUTUBE_DAILY_UNITS=100000000",
	"RELAY_INTERVAL=1s",
}, queue.RateEnv(200, 20)...)

// DefaultFakeEnv gives the fake a YouTube quota as large as the workers'.
var DefaultFakeEnv = []string{"FAKE_YOUTUBE_QUOTA=100000000"}

// Harness is a running, isolated presave.
type Harness struct {
	*Cluster
	Store *store.Store
	// DB is the run's schema (DB.URL selects it).
	DB scratch.Schema
	// Redis is the run's logical database.
	Redis scratch.Redis
	// HTTP is a client sized for the configured parallelism.
	HTTP       *http.Client
	AdminToken string
	// MonitoringUser and MonitoringPassword open the API's /monitoring.
	MonitoringUser     string
	MonitoringPassword string
	Workers            []*Proc
	API                *Proc
	Fake               *Proc

	cfg    HarnessConfig
	undo   []func() error
	leaseK string
	stop   chan struct{}
}

func randomSecret() string {
	b := make([]byte, 24)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// Setup creates the schema and leases the Redis database, then starts the
// fake provider, one API and cfg.Workers workers. On error everything
// already made is undone.
func Setup(ctx context.Context, cfg HarnessConfig) (h *Harness, err error) {
	h = &Harness{cfg: cfg, AdminToken: randomSecret(), MonitoringUser: "presave", MonitoringPassword: randomSecret(),
		HTTP: apiclient.NewHTTPClient(max(cfg.Parallel, 8)), stop: make(chan struct{})}
	defer func() {
		if err != nil {
			h.Close()
			h = nil
		}
	}()
	if cfg.Prefix == "" {
		cfg.Prefix = "harness"
	}
	b, drop, err := scratch.NewSchema(ctx, cfg.DatabaseURL, cfg.Prefix)
	if err != nil {
		return h, fmt.Errorf("harness: PostgreSQL at %s: %w", apiclient.Redact(cfg.DatabaseURL), err)
	}
	h.DB, h.Store = b, b.Store
	h.undo = append(h.undo, drop)
	rdb, release, err := scratch.LeaseRedis(ctx, cfg.RedisURL)
	if err != nil {
		return h, fmt.Errorf("harness: %w", err)
	}
	h.Redis = rdb
	h.undo = append(h.undo, func() error { release(); return nil })
	if rdb.Index > 0 {
		h.leaseK = "presave:test-lease:" + strconv.Itoa(rdb.Index)
		go h.keepLease(rdb)
	}

	env := append(append(append([]string{}, DefaultEnv...),
		"MONITORING_USER="+h.MonitoringUser, "MONITORING_PASSWORD="+h.MonitoringPassword), cfg.Env...)
	dbURL := b.URL
	if cfg.PoolConns > 0 {
		if dbURL, err = scratch.WithParam(dbURL, "pool_max_conns", strconv.Itoa(cfg.PoolConns)); err != nil {
			return h, err
		}
	}
	h.Cluster = New(Config{BinDir: cfg.BinDir, DatabaseURL: dbURL, MigrateURL: b.MigrateURL, RedisURL: rdb.URL, TokenKeys: b.Keys,
		AdminToken: h.AdminToken, Env: env, LogDir: cfg.LogDir})
	if h.Fake, err = h.StartFake(ctx, append(append([]string{}, DefaultFakeEnv...), cfg.FakeEnv...)...); err != nil {
		return h, err
	}
	if h.API, err = h.StartAPI(ctx); err != nil {
		return h, fmt.Errorf("%w\n%s", err, h.TailAll(20))
	}
	for range cfg.Workers {
		if _, err := h.AddWorker(ctx); err != nil {
			return h, err
		}
	}
	return h, nil
}

// keepLease extends the Redis database lease while the harness lives: a
// demo left running for hours must not see a test take its database.
func (h *Harness) keepLease(rdb scratch.Redis) {
	c := rdb.Conn.WithDB(0).Client()
	defer c.Close()
	t := time.NewTicker(5 * time.Minute)
	defer t.Stop()
	for {
		select {
		case <-h.stop:
			return
		case <-t.C:
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			c.Expire(ctx, h.leaseK, 30*time.Minute)
			cancel()
		}
	}
}

// AddWorker starts one more worker process.
func (h *Harness) AddWorker(ctx context.Context, extra ...string) (*Proc, error) {
	w, err := h.StartWorker(ctx, extra...)
	if err != nil {
		return nil, fmt.Errorf("%w\n%s", err, h.TailAll(20))
	}
	h.Workers = append(h.Workers, w)
	return w, nil
}

// TailAll returns the last lines of every process's log, for failure
// messages.
func (h *Harness) TailAll(lines int) string {
	if h.Cluster == nil {
		return ""
	}
	h.mu.Lock()
	procs := append([]*Proc(nil), h.procs...)
	h.mu.Unlock()
	s := ""
	for _, p := range procs {
		if t := h.Tail(p, lines); t != "" {
			s += "--- " + p.Name + " ---\n" + t + "\n"
		}
	}
	return s
}

// MonitoringURL is the asynqmon UI of the API.
func (h *Harness) MonitoringURL() string { return h.APIURL + "/monitoring" }

// Close stops the processes (SIGTERM, then SIGKILL after a grace period),
// releases the Redis database and drops the schema. It is safe to call
// more than once.
func (h *Harness) Close() error {
	if h.Cluster != nil {
		h.Cluster.Close()
	}
	select {
	case <-h.stop:
	default:
		close(h.stop)
	}
	var errs []error
	for i := len(h.undo) - 1; i >= 0; i-- {
		errs = append(errs, h.undo[i]())
	}
	h.undo = nil
	return errors.Join(errs...)
}
