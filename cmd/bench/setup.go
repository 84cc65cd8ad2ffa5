package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"time"

	"github.com/presave/presave/internal/cluster"
	"github.com/presave/presave/internal/config"
	"github.com/presave/presave/internal/providers/fake"
	"github.com/presave/presave/internal/queue"
	"github.com/presave/presave/internal/scenario"
	"github.com/presave/presave/internal/scratch"
)

const adminToken = "bench-admin-token"

func setup(ctx context.Context, env config.Env, o options, out io.Writer) (*bench, error) {
	b := &bench{o: o, out: out, admin: adminToken}
	ok := false
	defer func() {
		if !ok {
			b.close()
		}
	}()
	var err error
	if b.binDir, err = os.MkdirTemp("", "presave-bench-"); err != nil {
		return nil, err
	}
	fmt.Fprintln(out, "… building the binaries")
	if err := cluster.Build(ctx, b.binDir); err != nil {
		return nil, err
	}
	base := env.String("DATABASE_URL", config.DefaultDatabaseURL)
	if b.db, b.dropDB, err = scratch.NewSchema(ctx, base, "bench"); err != nil {
		return nil, fmt.Errorf("PostgreSQL (run scripts/services.sh): %w", err)
	}
	b.redisURL = env.String("REDIS_URL", config.DefaultRedisURL)
	if b.rdb, b.freeRDB, err = scratch.LeaseRedis(ctx, b.redisURL); err != nil {
		return nil, fmt.Errorf("lease a Redis database (run scripts/services.sh): %w", err)
	}
	b.redis = b.rdb.Conn.Client()

	if err := b.startFake(); err != nil {
		return nil, err
	}

	logDir := o.logDir
	if logDir != "" {
		if err := os.MkdirAll(logDir, 0o755); err != nil {
			return nil, err
		}
	}
	dbURL, err := scratch.WithParam(b.db.URL, "pool_max_conns", strconv.Itoa(o.poolConns))
	if err != nil {
		return nil, err
	}
	b.cl = cluster.New(cluster.Config{
		// A few connections per process keep PostgreSQL's backends busy
		// without thrashing two cores.
		BinDir: b.binDir, DatabaseURL: dbURL, MigrateURL: b.db.MigrateURL, RedisURL: b.rdb.URL, TokenKeys: b.db.Keys,
		AdminToken: adminToken, LogDir: logDir,
		Env: []string{
			// Everything is due within the hour, so the API queues each
			// pre-save at consent, as for a release due soon.
			"RELAY_WINDOW=1h",
			// The benchmark is one client IP; the per-IP limit protects
			// production fans' endpoints, not this.
			"FAN_RATE_LIMIT=1000000", "FAN_RATE_BURST=1000000",
			"YOUTUBE_DAILY_UNITS=1000000000000",
		},
	})
	b.cl.FakeURL = b.fakeURL
	p8, err := b.fake.NewAppleKey(fake.AppleTeamID, fake.AppleKeyID)
	if err != nil {
		return nil, err
	}
	b.cl.SetAppleKey(p8)
	if err := scenario.SeedFake(ctx, b.fakeURL); err != nil {
		return nil, err
	}
	if _, err := b.cl.StartAPI(ctx); err != nil {
		return nil, err
	}
	if err := b.startWorkers(ctx, unlimited()...); err != nil {
		return nil, err
	}
	b.hc = &http.Client{
		Transport: &http.Transport{MaxIdleConns: 512, MaxIdleConnsPerHost: 512},
		// The fan flow reads each redirect itself.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	ok = true
	return b, nil
}

// startFake runs the fake provider in this process, so the benchmark can
// read its counters directly; the API and the workers reach it over
// loopback HTTP like any provider.
func (b *bench) startFake() error {
	b.fake = fake.New(fake.Options{YouTubeDailyQuota: 1 << 40})
	// A real release day: the fans consented days before, so every
	// access token has expired by the release time and every pre-save
	// refreshes (and stores) its token first. x/oauth2 counts a token
	// expired 10 s before its end, so 11 s is valid while the API uses it
	// at the consent and expired a second later, long before the release.
	b.fake.SetAccessTokenTTL(accessTokenTTL)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	b.fakeURL = "http://" + l.Addr().String()
	b.fakeSrv = &http.Server{Handler: b.fake}
	go func() { _ = b.fakeSrv.Serve(l) }()
	return nil
}

// accessTokenTTL is the lifetime of the access tokens the benchmark's
// fake issues (see setup).
const accessTokenTTL = 11 * time.Second

// unlimited lifts the workers' own rate limits so they run as fast as the
// fake allows.
func unlimited() []string {
	return queue.RateEnv(1000000, 100000)
}

// startWorkers (re)starts the worker processes with extra settings.
func (b *bench) startWorkers(ctx context.Context, extra ...string) error {
	for _, w := range b.workers {
		_ = w.Stop(30e9)
	}
	b.workers = nil
	for range b.o.workers {
		env := append([]string{"WORKER_CONCURRENCY=" + strconv.Itoa(b.o.concurrency)}, extra...)
		if b.o.profile != "" {
			env = append(env, "PPROF=true")
		}
		w, err := b.cl.StartWorker(ctx, env...)
		if err != nil {
			return err
		}
		b.workers = append(b.workers, w)
	}
	return nil
}
