// Package redistest lends each test its own Redis logical database, so
// tests (and test packages running in parallel) never see each other's
// queues. asynq has no key prefix, so a database per test is the unit of
// isolation. A lease key in database 0 marks a database as taken; it
// expires by itself if a test process dies.
package redistest

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/presave/presave/internal/config"
)

// BaseURL is the Redis tests use: REDIS_URL, or the local default.
func BaseURL() string {
	if u := os.Getenv("REDIS_URL"); u != "" {
		return u
	}
	return config.DefaultRedisURL
}

// DB is a leased Redis database.
type DB struct {
	URL    string // redis://host:port/N
	Opt    *redis.Options
	Client *redis.Client
	Index  int
}

// New leases a free database (1..15), flushes it, and releases it
// (flushed again) in t.Cleanup. It waits while all are taken.
func New(t testing.TB) DB {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	db, release, err := Lease(ctx, BaseURL())
	if err != nil {
		t.Fatalf("redistest: %v (is Redis running? scripts/services.sh starts it)", err)
	}
	t.Cleanup(release)
	return db
}

// Lease takes a free logical database of the Redis at base and flushes
// it; release flushes it again and frees it. Tests call New; the
// benchmark calls Lease.
func Lease(ctx context.Context, base string) (DB, func(), error) {
	opt, err := redis.ParseURL(base)
	if err != nil {
		return DB{}, nil, fmt.Errorf("REDIS_URL %q: %w", base, err)
	}
	ctl := redis.NewClient(opt)
	defer ctl.Close()
	if err := ctl.Ping(ctx).Err(); err != nil {
		return DB{}, nil, fmt.Errorf("Redis at %s: %w", base, err)
	}
	leaseValue := fmt.Sprintf("%d-%d", os.Getpid(), time.Now().UnixNano())
	for {
		for i := 1; i < 16; i++ {
			key := "presave:test-lease:" + strconv.Itoa(i)
			ok, err := ctl.SetNX(ctx, key, leaseValue, 30*time.Minute).Result()
			if err != nil {
				return DB{}, nil, fmt.Errorf("lease: %w", err)
			}
			if !ok {
				continue
			}
			o := *opt
			o.DB = i
			c := redis.NewClient(&o)
			if err := c.FlushDB(ctx).Err(); err != nil {
				c.Close()
				return DB{}, nil, fmt.Errorf("flush: %w", err)
			}
			release := func() {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				_ = c.FlushDB(ctx).Err()
				_ = c.Close()
				rel := redis.NewClient(opt)
				defer rel.Close()
				if v, _ := rel.Get(ctx, key).Result(); v == leaseValue {
					rel.Del(ctx, key)
				}
			}
			u, _ := url.Parse(base)
			u.Path = "/" + strconv.Itoa(i)
			return DB{URL: u.String(), Opt: &o, Client: c, Index: i}, release, nil
		}
		select {
		case <-ctx.Done():
			return DB{}, nil, fmt.Errorf("no free Redis database: %w", ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}
