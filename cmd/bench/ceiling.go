package main

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hibiken/asynq"
)

// ceiling measures raw asynq: N no-op tasks drained at the workers' total
// concurrency, on the same Redis. No presave code runs; it is the upper
// bound the release-day drain is compared with.
func (b *bench) ceiling(ctx context.Context, res results) error {
	const queue = "bench-ceiling"
	n := b.o.n
	redisOpt := b.rdb.Conn.Asynq()
	client := asynq.NewClient(redisOpt)
	defer client.Close()
	if err := parallel(ctx, n, 32, func(ctx context.Context, i int) error {
		_, err := client.EnqueueContext(ctx, asynq.NewTask("bench:noop", nil), asynq.Queue(queue))
		return err
	}); err != nil {
		return fmt.Errorf("enqueue: %w", err)
	}

	var done atomic.Int64
	finished := make(chan time.Time, 1)
	srv := asynq.NewServer(redisOpt, asynq.Config{
		Concurrency: b.o.workers * b.o.concurrency, Queues: map[string]int{queue: 1},
		Logger: quietLogger{}, LogLevel: asynq.FatalLevel,
	})
	start := time.Now()
	if err := srv.Start(asynq.HandlerFunc(func(context.Context, *asynq.Task) error {
		if done.Add(1) == int64(n) {
			finished <- time.Now()
		}
		return nil
	})); err != nil {
		return err
	}
	defer srv.Shutdown()
	select {
	case end := <-finished:
		res["ceiling_per_s"] = float64(n) / end.Sub(start).Seconds()
	case <-time.After(10 * time.Minute):
		return fmt.Errorf("only %d of %d no-op tasks done after 10 minutes", done.Load(), n)
	case <-ctx.Done():
		return ctx.Err()
	}
	return nil
}

type quietLogger struct{}

func (quietLogger) Debug(...any) {}
func (quietLogger) Info(...any)  {}
func (quietLogger) Warn(...any)  {}
func (quietLogger) Error(...any) {}
func (quietLogger) Fatal(...any) {}

// parallel runs fn(0..n-1) on width goroutines and returns the first error.
func parallel(ctx context.Context, n, width int, fn func(context.Context, int) error) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var next atomic.Int64
	var wg sync.WaitGroup
	for range width {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= n || ctx.Err() != nil {
					return
				}
				if err := fn(ctx, i); err != nil {
					cancel(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	return context.Cause(ctx)
}
