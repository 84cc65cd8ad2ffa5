package scratch

// Each user gets its own Redis logical database, so tests (and test
// packages running in parallel) never see each other's queues: asynq has
// no key prefix, so a database is the unit of isolation. A lease key in
// database 0 marks a database as taken; it expires by itself if the
// process dies.

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/presave/presave/internal/rdb"

	"github.com/presave/presave/internal/config"
)

// RedisURL is the shared Redis: REDIS_URL, or the local default.
func RedisURL() string {
	if u := os.Getenv("REDIS_URL"); u != "" {
		return u
	}
	return config.DefaultRedisURL
}

// Redis is a leased Redis database.
type Redis struct {
	URL    string // redis://host:port/N
	Opt    *redis.Options
	Client *redis.Client
	// Conn is URL read as the binaries read REDIS_URL.
	Conn  rdb.Conn
	Index int
}

// LeaseRedis takes a free logical database (1..15) of the Redis at base
// and flushes it; release flushes it again and frees it. It waits while
// all are taken.
func LeaseRedis(ctx context.Context, base string) (Redis, func(), error) {
	opt, err := redis.ParseURL(base)
	if err != nil {
		return Redis{}, nil, fmt.Errorf("REDIS_URL %q: %w", base, err)
	}
	ctl := redis.NewClient(opt)
	defer ctl.Close()
	if err := ctl.Ping(ctx).Err(); err != nil {
		return Redis{}, nil, fmt.Errorf("Redis at %s: %w", base, err)
	}
	leaseValue := fmt.Sprintf("%d-%d", os.Getpid(), time.Now().UnixNano())
	for {
		for i := 1; i < 16; i++ {
			key := "presave:test-lease:" + strconv.Itoa(i)
			ok, err := ctl.SetNX(ctx, key, leaseValue, 30*time.Minute).Result()
			if err != nil {
				return Redis{}, nil, fmt.Errorf("lease: %w", err)
			}
			if !ok {
				continue
			}
			o := *opt
			o.DB = i
			c := redis.NewClient(&o)
			if err := c.FlushDB(ctx).Err(); err != nil {
				c.Close()
				return Redis{}, nil, fmt.Errorf("flush: %w", err)
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
			conn, err := rdb.Parse(u.String())
			if err != nil {
				release()
				return Redis{}, nil, err
			}
			return Redis{URL: u.String(), Opt: &o, Client: c, Conn: conn, Index: i}, release, nil
		}
		select {
		case <-ctx.Done():
			return Redis{}, nil, fmt.Errorf("no free Redis database: %w", ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}
