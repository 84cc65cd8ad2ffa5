package scratch

// Each user gets its own Redis logical database, so tests (and test
// packages running in parallel) never see each other's queues: asynq has
// no key prefix, so a database is the unit of isolation. A lease key in
// database 0 marks a database as taken; it expires by itself if the
// process dies.

import (
	"context"
	"errors"
	"fmt"
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
	URL string // redis://host:port/N (or the Sentinel or Cluster form)
	// Opt and Client reach the database (nil for a Cluster, taken whole).
	Opt    *redis.Options
	Client *redis.Client
	// Conn is URL read as the binaries read REDIS_URL.
	Conn  rdb.Conn
	Index int
}

// LeaseRedis takes a free logical database (1..15) of the Redis at base
// (one server, or a Sentinel setup's master) and flushes it; release
// flushes it again and frees it. It waits while all are taken.
func LeaseRedis(ctx context.Context, base string) (Redis, func(), error) {
	conn, err := rdb.Parse(base)
	if err != nil {
		return Redis{}, nil, err
	}
	if conn.Mode == rdb.Cluster {
		return takeCluster(ctx, conn)
	}
	ctl := client(conn.WithDB(0))
	defer ctl.Close()
	if err := ctl.Ping(ctx).Err(); err != nil {
		return Redis{}, nil, fmt.Errorf("Redis at %s: %w", conn, err)
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
			db := conn.WithDB(i)
			c := client(db)
			if err := c.FlushDB(ctx).Err(); err != nil {
				c.Close()
				return Redis{}, nil, fmt.Errorf("flush: %w", err)
			}
			release := func() {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				_ = c.FlushDB(ctx).Err()
				_ = c.Close()
				rel := client(conn.WithDB(0))
				defer rel.Close()
				if v, _ := rel.Get(ctx, key).Result(); v == leaseValue {
					rel.Del(ctx, key)
				}
			}
			return Redis{URL: db.URL(), Opt: c.Options(), Client: c, Conn: db, Index: i}, release, nil
		}
		select {
		case <-ctx.Done():
			return Redis{}, nil, fmt.Errorf("no free Redis database: %w", ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// takeCluster takes a whole Redis Cluster, which has no logical
// databases to lease: it is flushed (every master) now and on release,
// so it must be a private one (internal/cluster starts such).
func takeCluster(ctx context.Context, conn rdb.Conn) (Redis, func(), error) {
	c, ok := conn.Client().(*redis.ClusterClient)
	if !ok {
		return Redis{}, nil, errors.New("scratch: not a cluster client")
	}
	flush := func(ctx context.Context) error {
		return c.ForEachMaster(ctx, func(ctx context.Context, n *redis.Client) error { return n.FlushAll(ctx).Err() })
	}
	if err := flush(ctx); err != nil {
		c.Close()
		return Redis{}, nil, fmt.Errorf("Redis at %s: %w", conn, err)
	}
	release := func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = flush(ctx)
		_ = c.Close()
	}
	return Redis{URL: conn.URL(), Conn: conn}, release, nil
}

// client is conn's go-redis client: one server's, or the Sentinel
// master's (both a *redis.Client).
func client(conn rdb.Conn) *redis.Client {
	return conn.Client().(*redis.Client)
}
