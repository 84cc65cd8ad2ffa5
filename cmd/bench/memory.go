package main

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"

	"github.com/presave/presave/internal/providers"
	"github.com/presave/presave/internal/queue"
	"github.com/presave/presave/internal/store"
	"github.com/presave/presave/internal/store/inspect"
)

// usedMemory reads Redis's used_memory after letting it settle.
func (b *bench) usedMemory(ctx context.Context) (int64, error) {
	time.Sleep(500 * time.Millisecond)
	return b.redisInfo(ctx, "memory", "used_memory")
}

// redisInfo reads an integer field of an INFO section: summed over the
// masters of a Redis Cluster, the server's (or Sentinel's master's)
// otherwise.
func (b *bench) redisInfo(ctx context.Context, section, field string) (int64, error) {
	read := func(info string) (int64, error) {
		for _, line := range strings.Split(info, "\n") {
			if v, ok := strings.CutPrefix(strings.TrimSpace(line), field+":"); ok {
				return strconv.ParseInt(v, 10, 64)
			}
		}
		return 0, fmt.Errorf("no %s in INFO %s", field, section)
	}
	if cc, ok := b.redis.(*redis.ClusterClient); ok {
		var sum atomic.Int64
		err := cc.ForEachMaster(ctx, func(ctx context.Context, n *redis.Client) error {
			info, err := n.Info(ctx, section).Result()
			if err != nil {
				return err
			}
			v, err := read(info)
			sum.Add(v)
			return err
		})
		return sum.Load(), err
	}
	info, err := b.redis.Info(ctx, section).Result()
	if err != nil {
		return 0, err
	}
	return read(info)
}

// memory is figure 4: Redis's used_memory with many pending pre-saves due
// next week (they live in PostgreSQL; the relay, running in the workers,
// must leave them there) against none; then the bytes one queued task
// costs inside the window.
func (b *bench) memory(ctx context.Context, res results) error {
	before, err := b.usedMemory(ctx)
	if err != nil {
		return err
	}
	rel, err := b.release(ctx, "future", time.Now().Add(7*24*time.Hour), providers.Spotify)
	if err != nil {
		return err
	}
	if err := inspect.SeedSyntheticPresaves(ctx, b.db.Store, rel, b.o.future, time.Now().Add(7*24*time.Hour)); err != nil {
		return err
	}
	// Let the relay run a few times over the new rows.
	time.Sleep(5 * time.Second)
	after, err := b.usedMemory(ctx)
	if err != nil {
		return err
	}
	res["future_presaves"] = float64(b.o.future)
	res["redis_future_bytes"] = float64(after - before)

	// Inside the window: queue k tasks as the relay would (scheduled, with
	// their TaskIDs), measure, and remove them.
	const k = 10000
	q, err := queue.New(queue.Config{}, nil, b.redis)
	if err != nil {
		return err
	}
	ids := make([]uuid.UUID, k)
	base, err := b.usedMemory(ctx)
	if err != nil {
		return err
	}
	due := time.Now().Add(time.Hour)
	if err := parallel(ctx, k, 32, func(ctx context.Context, i int) error {
		ids[i] = uuid.Must(uuid.NewV7())
		_, err := q.Enqueue(ctx, store.DuePresave{ID: ids[i], Generation: 1, Provider: providers.Spotify, DueAt: due, FanID: uuid.Must(uuid.NewV7())})
		return err
	}); err != nil {
		return err
	}
	full, err := b.usedMemory(ctx)
	if err != nil {
		return err
	}
	res["redis_bytes_per_task"] = float64(full-base) / k
	_, err = q.Inspector().DeleteAllScheduledTasks(queue.QueueSpotify)
	return err
}

// seedHistory seeds -history finished pre-saves of an earlier release,
// vacuumed and analysed, before the other runs: their statements must
// cost what they cost without it.
func (b *bench) seedHistory(ctx context.Context, _ results) error {
	if b.o.history == 0 {
		return nil
	}
	rel, err := b.release(ctx, "history", later(), providers.Spotify)
	if err != nil {
		return err
	}
	return inspect.SeedHistory(ctx, b.db.Store, rel, b.o.history)
}
