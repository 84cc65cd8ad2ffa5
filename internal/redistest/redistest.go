// Package redistest lends each test its own Redis logical database (a
// scratch database), flushed before and after, so tests never see each
// other's queues.
package redistest

import (
	"context"
	"time"

	"github.com/presave/presave/internal/scratch"
)

// DB is a leased Redis database.
type DB = scratch.Redis

// BaseURL is the Redis tests use: REDIS_URL, or the local default.
func BaseURL() string { return scratch.RedisURL() }

// TB is the part of testing.TB the helper uses.
type TB = scratch.TB

// New leases a free database, flushes it, and releases it (flushed again)
// in t.Cleanup. It waits while all are taken.
func New(t TB) DB {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	db, release, err := scratch.LeaseRedis(ctx, BaseURL())
	if err != nil {
		t.Fatalf("redistest: %v (is Redis running? scripts/services.sh starts it)", err)
	}
	t.Cleanup(release)
	return db
}
