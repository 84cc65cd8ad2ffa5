package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/google/uuid"
	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/presave/presave/internal/providers"
	"github.com/presave/presave/internal/queue"
	"github.com/presave/presave/internal/store"
)

// handleRevoke revokes one purged grant at its provider. The token row is
// already gone; token_revocations holds the sealed grant (bound to the
// revocation, not the fan) until the provider confirms or we give up.
func (w *Worker) handleRevoke(ctx context.Context, t *asynq.Task) error {
	var pl queue.RevokePayload
	if err := json.Unmarshal(t.Payload(), &pl); err != nil || pl.RevocationID == uuid.Nil {
		return fmt.Errorf("jobs: bad revoke payload: %w", errors.Join(err, asynq.SkipRetry))
	}
	log := w.log.With("revocation_id", pl.RevocationID)
	rev, err := w.st.Revocation(ctx, pl.RevocationID)
	if errors.Is(err, store.ErrNotFound) {
		return nil // done by an earlier run
	}
	if err != nil {
		return err
	}
	log = log.With("provider", rev.Provider)
	prov, ok := w.provs.Get(rev.Provider)
	if !ok {
		err = fmt.Errorf("provider %q is not configured", rev.Provider)
	} else {
		err = prov.Revoke(ctx, rev.RefreshToken)
	}
	outcome, settled := providers.RevokeSettled(err)
	switch {
	case settled:
	case providers.ClassOf(err) == providers.RateLimited:
		pe, _ := providers.AsError(err)
		wait := w.rateLimitPause(ctx, log, revokeKey(rev.Provider), pe)
		return &Deferral{Reason: "rate_limited", Until: time.Now().Add(wait), Err: err}
	default:
		bctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), bookkeepingTimeout)
		defer cancel()
		// The error never carries the token (the providers keep it in
		// the request body only).
		if ferr := w.st.RevocationFailed(bctx, rev.ID, err.Error()); ferr != nil {
			log.Warn("recording revoke failure failed", "err", ferr)
		}
		retried, _ := asynq.GetRetryCount(ctx)
		maxRetry, _ := asynq.GetMaxRetry(ctx)
		if retried < maxRetry && providers.ClassOf(err) != providers.Permanent {
			w.metrics.Revocations.WithLabelValues(string(rev.Provider), "failed").Inc()
			return err
		}
		// Given up: forget the grant rather than keep it forever.
		log.Warn("giving up revoking a grant", "attempts", rev.Attempts+1, "err", err)
		outcome = "given_up"
	}
	bctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), bookkeepingTimeout)
	defer cancel()
	if err := w.st.DeleteRevocation(bctx, rev.ID); err != nil {
		return err
	}
	w.metrics.Revocations.WithLabelValues(string(rev.Provider), string(outcome)).Inc()
	log.Info("grant purged", "outcome", outcome, "reason", rev.Reason)
	return nil
}

// tick queues a maintenance task of type typ every interval, from every
// worker process. The TaskID names the tick (wall-clock time truncated to
// the interval) and completed ticks are retained for a while, so however
// many processes tick, one task per tick runs cluster-wide. asynq's own
// Scheduler cannot vary the TaskID per tick.
func (w *Worker) tick(ctx context.Context, typ string, interval time.Duration) {
	enqueue := func(now time.Time) {
		id := typ + ":" + strconv.FormatInt(now.Truncate(interval).UnixMilli(), 10)
		ectx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		_, err := w.client.EnqueueContext(ectx, asynq.NewTask(typ, nil), asynq.TaskID(id), asynq.Queue(queue.QueueMaintenance),
			asynq.MaxRetry(0), asynq.Timeout(max(interval, time.Minute)), asynq.Retention(2*interval+time.Minute))
		if err != nil && !errors.Is(err, asynq.ErrTaskIDConflict) && ctx.Err() == nil {
			w.log.Warn("enqueue maintenance task failed", "type", typ, "err", err)
		}
	}
	enqueue(time.Now())
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			enqueue(now)
		}
	}
}

// maxClaimsPerRelay bounds one relay run, so that a huge backlog is
// claimed over several ticks instead of one endless task.
const maxClaimsPerRelay = 50

// handleRelay resolves the targets named by code of the releases coming
// due, settles the canaries awaiting a verdict, moves pre-saves due
// within the window from PostgreSQL into asynq (choosing the canary of
// each release coming due), then (every RescueInterval) puts back tasks
// Redis lost.
func (w *Worker) handleRelay(ctx context.Context, _ *asynq.Task) error {
	// Targets by code first, then canaries: a release resolved or a
	// verdict reached since the last run lets its pre-saves be claimed
	// now. A failed search is retried at the next run.
	if err := w.resolveTargets(ctx); err != nil {
		w.log.Warn("relay: resolving release targets failed", "err", err)
	}
	if _, err := w.settleCanaries(ctx, uuid.Nil, ""); err != nil {
		return err
	}
	ran, err := w.claimDue(ctx)
	if err != nil || !ran {
		return err // !ran: another relay is at work
	}
	// The gate lives in Redis: after a FLUSHALL it is gone too, so the
	// very next relay run rescues.
	ok, err := w.rdb.SetNX(ctx, "presave:relay:rescue-gate", "1", w.cfg.RescueInterval).Result()
	if err != nil || !ok {
		return err
	}
	return w.rescue(ctx)
}

// claimDue moves pre-saves due within the window that no guard holds back
// from PostgreSQL into asynq, a batch at a time, choosing the canary of
// each release coming due. ran is false when another relay holds the
// claim's lock (it claims them).
func (w *Worker) claimDue(ctx context.Context) (ran bool, err error) {
	total := 0
	for range maxClaimsPerRelay {
		var claimed []store.DuePresave
		claimed, ran, err = w.st.ClaimDuePresaves(ctx, w.cfg.Queue.Window, w.cfg.RelayBatch, w.cfg.Guard.CanarySize)
		if err != nil || !ran {
			return ran, err
		}
		for _, d := range claimed {
			// A failure leaves the row enqueued without a task: the rescue
			// below finds it.
			if _, err := w.queue.Enqueue(ctx, d); err != nil {
				w.log.Warn("relay: enqueue failed", "presave_id", d.ID, "err", err)
			}
		}
		total += len(claimed)
		w.metrics.Relayed.WithLabelValues("claimed").Add(float64(len(claimed)))
		if len(claimed) < w.cfg.RelayBatch {
			break
		}
		if total == len(claimed) {
			// A wave of claims starts: the planner must see the pre-saves
			// now in flight.
			if _, err := w.st.RefreshPresaveStatistics(ctx, total); err != nil {
				w.log.Warn("relay: analysing presaves failed", "err", err)
			}
		}
	}
	if total > 0 {
		w.log.Info("relay claimed", "count", total)
	}
	return true, nil
}

// rescue re-enqueues every in-flight pre-save due within the window whose
// task no longer exists; an existing task answers ErrTaskIDConflict and
// is left alone. Those queued within the last rescue interval wait for
// the next rescue: on a release day they are the drain itself, mostly
// done by then.
func (w *Worker) rescue(ctx context.Context) error {
	var cur store.InFlightCursor
	n := 0
	for {
		page, err := w.st.InFlightPresaves(ctx, w.cfg.Queue.Window, w.cfg.RescueInterval, cur, w.cfg.RelayBatch)
		if err != nil {
			return err
		}
		missing, err := w.withoutTask(ctx, page)
		if err != nil {
			return err
		}
		for _, d := range missing {
			created, err := w.queue.Enqueue(ctx, d)
			if err != nil {
				return err
			}
			if created {
				n++
			}
		}
		if len(page) < w.cfg.RelayBatch {
			break
		}
		last := page[len(page)-1]
		cur = store.InFlightCursor{DueAt: last.DueAt, ID: last.ID}
	}
	if n > 0 {
		w.metrics.Relayed.WithLabelValues("rescued").Add(float64(n))
		// Also counts tasks that finished between the page read and the
		// enqueue; those run once more and find themselves stale.
		w.log.Info("relay: re-enqueued in-flight pre-saves without a task", "count", n)
	}
	return nil
}

// withoutTask returns the pre-saves of page whose task is not in Redis,
// asking for all of them in one pipelined round trip. Everything in
// flight is checked on every rescue (up to the whole relay window before
// a big release), so one enqueue attempt per pre-save, as before, cost a
// Redis script call each: 20,000 every 30 s in the benchmark's drain.
// A task that appears or finishes between the check and the enqueue is
// handled as before (the enqueue conflicts, or the task runs once more
// and finds itself stale).
func (w *Worker) withoutTask(ctx context.Context, page []store.DuePresave) ([]store.DuePresave, error) {
	if len(page) == 0 {
		return nil, nil
	}
	pipe := w.rdb.Pipeline()
	exists := make([]*redis.IntCmd, len(page))
	for i, d := range page {
		exists[i] = pipe.Exists(ctx, queue.PresaveTaskKey(d.Provider, d.ID, d.Generation))
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, fmt.Errorf("jobs: rescue: check tasks: %w", err)
	}
	var missing []store.DuePresave
	for i, d := range page {
		if exists[i].Val() == 0 {
			missing = append(missing, d)
		}
	}
	return missing, nil
}

// handleSweep is the safety net: it revives pre-saves stuck running past
// RunningTimeout, deletes OAuth states that expired unused, fails holds
// past HOLD_MAX, purges tokens
// nothing needs, and queues every pending revocation again (Redis may
// have lost its purge task).
func (w *Worker) handleSweep(ctx context.Context, _ *asynq.Task) error {
	var errs []error
	for {
		revived, err := w.st.ReviveStuckPresaves(ctx, w.cfg.RunningTimeout, w.cfg.RelayBatch)
		if err != nil {
			errs = append(errs, err)
			break
		}
		for _, d := range revived {
			if _, err := w.queue.Enqueue(ctx, d); err != nil {
				w.log.Warn("sweep: enqueue revived failed", "presave_id", d.ID, "err", err)
			}
		}
		if len(revived) > 0 {
			w.metrics.Relayed.WithLabelValues("revived").Add(float64(len(revived)))
			w.log.Warn("sweep: revived pre-saves stuck running", "count", len(revived))
		}
		if len(revived) < w.cfg.RelayBatch {
			break
		}
	}
	for {
		n, err := w.st.DeleteExpiredOAuthStates(ctx, w.cfg.RelayBatch)
		if err != nil {
			errs = append(errs, err)
			break
		}
		if n < w.cfg.RelayBatch {
			break
		}
	}
	if err := w.expireHolds(ctx); err != nil {
		errs = append(errs, err)
	}
	if err := w.purgeUnneededTokens(ctx); err != nil {
		errs = append(errs, err)
	}
	// The purged tokens' revocations are queued by the walk below.
	after := uuid.Nil
	queued := 0
	for {
		ids, err := w.st.RevocationIDsAfter(ctx, after, w.cfg.RelayBatch)
		if err != nil {
			errs = append(errs, err)
			break
		}
		for _, id := range ids {
			created, err := w.queue.EnqueueRevoke(ctx, id)
			if err != nil {
				errs = append(errs, err)
				break
			}
			if created {
				queued++
			}
		}
		if len(ids) < w.cfg.RelayBatch {
			break
		}
		after = ids[len(ids)-1]
	}
	if queued > 0 {
		w.metrics.Relayed.WithLabelValues("revoke").Add(float64(queued))
	}
	return errors.Join(errs...)
}

// tokenPagesPerSweep bounds one sweep's walk over the stored tokens: a
// page of RELAY_BATCH key lookups each, so a sweep costs the same with a
// thousand tokens stored or a million, and a million are all looked at
// within 100 sweeps (under an hour at the default SWEEP_INTERVAL).
const tokenPagesPerSweep = 10

// purgeUnneededTokens walks the next pages of stored tokens (from where
// this process's last sweep stopped) and purges those no open pre-save
// needs; their revocations are queued by the sweep's walk after it.
func (w *Worker) purgeUnneededTokens(ctx context.Context) error {
	n := 0
	for range tokenPagesPerSweep {
		w.sweepMu.Lock()
		after := w.tokenCursor
		w.sweepMu.Unlock()
		purged, next, err := w.st.PurgeUnneededTokens(ctx, w.cfg.TokenGrace, after, w.cfg.RelayBatch)
		n += len(purged)
		if err != nil {
			return err
		}
		w.sweepMu.Lock()
		w.tokenCursor = next
		w.sweepMu.Unlock()
		if next == (store.TokenCursor{}) {
			break // went round
		}
	}
	if n > 0 {
		w.log.Warn("sweep: purged tokens no pre-save needed", "count", n)
	}
	return nil
}
