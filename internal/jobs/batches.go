package jobs

import (
	"context"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/presave/presave/internal/batch"
	"github.com/presave/presave/internal/store"
)

// bookkeeping gathers the concurrent tasks' writes of one worker process
// into batches (internal/batch): the starts, the finishes and the
// revocations done. Each task still waits for its own row's outcome, so
// the lease, generation and token-purge rules hold per row as they do
// for one; a batch that fails fails every task in it, as one failed
// statement does, and asynq retries them.
type bookkeeping struct {
	starts   *batch.Batcher[store.Start, store.Started]
	finishes *batch.Batcher[store.Finish, store.Finished]
	revoked  *batch.Batcher[uuid.UUID, struct{}]
}

func newBookkeeping(st *store.Store, cfg Config, m *Metrics) (*bookkeeping, error) {
	bc := func(statement string) batch.Config {
		return batch.Config{
			MaxRows: cfg.BatchMaxRows, MaxWait: max(cfg.BatchMaxWait, 0), NoWait: cfg.BatchMaxWait < 0,
			Timeout: bookkeepingTimeout,
			Observe: func(rows int, _ error) { m.BatchRows.WithLabelValues(statement).Observe(float64(rows)) },
		}
	}
	var (
		b   bookkeeping
		err error
	)
	lease := cfg.Queue.PresaveTimeout + attemptBookkeeping
	if b.starts, err = batch.New(bc("start"), func(ctx context.Context, s []store.Start) ([]store.Started, error) {
		return st.BeginAttempts(ctx, lease, dueEarly, s)
	}); err != nil {
		return nil, err
	}
	if b.finishes, err = batch.New(bc("finish"), st.FinishPresaves); err != nil {
		return nil, err
	}
	b.revoked, err = batch.New(bc("revoked"), func(ctx context.Context, ids []uuid.UUID) ([]struct{}, error) {
		return make([]struct{}, len(ids)), st.DeleteRevocations(ctx, ids)
	})
	return &b, err
}

// attemptBookkeeping is how long an attempt's lease outlives its
// deadline: the time it takes to record the outcome.
const attemptBookkeeping = 15 * time.Second

// commandCounter counts the commands a go-redis client sends (each of a
// pipeline counted): the worker's own Redis work beside asynq's, which
// has its own connections.
type commandCounter struct{ c prometheus.Counter }

func (h commandCounter) DialHook(next redis.DialHook) redis.DialHook { return next }
func (h commandCounter) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		h.c.Inc()
		return next(ctx, cmd)
	}
}
func (h commandCounter) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		h.c.Add(float64(len(cmds)))
		return next(ctx, cmds)
	}
}
