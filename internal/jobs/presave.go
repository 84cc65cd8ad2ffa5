package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/google/uuid"
	"github.com/hibiken/asynq"

	"github.com/presave/presave/internal/providers"
	"github.com/presave/presave/internal/queue"
	"github.com/presave/presave/internal/ratelimit"
	"github.com/presave/presave/internal/store"
)

// bookkeepingTimeout bounds the database writes after an attempt, which
// run even when the attempt's context ended (shutdown, timeout) so that
// no result is lost.
const bookkeepingTimeout = 10 * time.Second

// Failure reasons recorded on pre-saves and actions.
const (
	ReasonReconnect        = "reconnect_required"
	ReasonNotLive          = "not_live"
	ReasonRetriesExhausted = "retries_exhausted"
	ReasonNotConfigured    = "not_configured"
	ReasonTokenUnreadable  = "token_unreadable"
)

// handlePresave runs one generation of one pre-save. Whatever the path,
// a failure on the task's last retry ends the pre-save with a final
// status (failed, retries_exhausted): asynq archives the task after it,
// and an open pre-save with an archived task would never run again nor
// release its token.
func (w *Worker) handlePresave(ctx context.Context, t *asynq.Task) error {
	var pl queue.PresavePayload
	if err := json.Unmarshal(t.Payload(), &pl); err != nil || pl.PresaveID == uuid.Nil {
		return fmt.Errorf("jobs: bad presave payload: %w", errors.Join(err, asynq.SkipRetry))
	}
	log := w.log.With("presave_id", pl.PresaveID, "generation", pl.Generation)
	err := w.attemptPresave(ctx, log, pl)
	if err == nil || !isFailure(err) || errors.Is(err, asynq.SkipRetry) {
		return err
	}
	if !lastRetry(ctx) {
		return err
	}
	// A rare path: reading the row again costs nothing that matters.
	bctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), bookkeepingTimeout)
	defer cancel()
	ps, perr := w.st.Presave(bctx, pl.PresaveID)
	if perr == nil && ps.Generation == pl.Generation && ps.Status.Open() {
		log.Error("presave failed: retries exhausted", "err", err)
		perr = w.apply(bctx, log, ps, time.Time{}, w.failAll(ps, nil, ReasonRetriesExhausted, false, nil))
	}
	if perr != nil && !errors.Is(perr, store.ErrNotFound) {
		log.Error("recording retries_exhausted failed", "err", perr, "cause", err)
	}
	return fmt.Errorf("%w: %w", asynq.SkipRetry, err)
}

// attemptPresave is one attempt at a pre-save's task.
func (w *Worker) attemptPresave(ctx context.Context, log *slog.Logger, pl queue.PresavePayload) error {
	fan, provider := pl.FanID, pl.Provider
	if fan == uuid.Nil || provider == "" {
		// A task queued before payloads named the fan: read the row for
		// it (and skip a stale task before starting it).
		ps, err := w.st.Presave(ctx, pl.PresaveID)
		if errors.Is(err, store.ErrNotFound) {
			return nil // the fan was deleted; nothing to do
		}
		if err != nil {
			return err
		}
		if ps.Generation != pl.Generation || (ps.Status != store.PresaveEnqueued && ps.Status != store.PresaveRunning) {
			log.Debug("stale presave task", "status", ps.Status, "current_generation", ps.Generation)
			return nil
		}
		fan, provider = ps.FanID, ps.Provider
	}

	actx, cancel := context.WithTimeout(ctx, w.cfg.Queue.PresaveTimeout)
	defer cancel()
	// The start is batched with the other tasks' (bookkeeping), and it is
	// the task's first read. It takes the pre-save's lease, which outlives
	// the attempt's deadline by attemptBookkeeping, and the fan's grant's:
	// one attempt per grant at a time keeps a reschedule's new generation
	// from racing an old one that still runs, and two pre-saves of one fan
	// from both refreshing (and rotating) the grant. A pre-save due within
	// dueEarly (clock skew between the enqueuer and us) starts and waits
	// below; one due later is not started at all.
	began, err := w.books.starts.Do(actx, store.Start{ID: pl.PresaveID, Generation: pl.Generation, Fan: fan})
	if err == nil {
		err = began.Err
	}
	if err != nil {
		return w.notStarted(ctx, pl, provider, err)
	}
	att := began.Attempt
	if !began.OK {
		log.Debug("stale presave task at start")
		return nil
	}
	ps := att.Presave
	if wait := time.Until(ps.DueAt); wait > 0 {
		if err := ratelimit.Sleep(actx, min(wait, dueEarly)); err != nil {
			return w.apply(ctx, log, ps, att.Token.AuthorizedAt, requeueFor(nil, err))
		}
	}
	first := ps.Attempts == 1
	if first {
		w.metrics.StartLag.WithLabelValues(string(ps.Provider)).Observe(time.Since(ps.DueAt).Seconds())
	}
	return w.runPresave(actx, log.With("provider", ps.Provider), att, first)
}

// notStarted answers a start that BeginAttempt refused: a deferral while
// another attempt holds the lease or the pre-save is due soon, back to
// PostgreSQL when its release's guard holds it back or it moved far out,
// or the error.
func (w *Worker) notStarted(ctx context.Context, pl queue.PresavePayload, provider providers.Name, err error) error {
	var (
		leased *store.LeasedError
		notDue *store.NotDueError
	)
	switch {
	case errors.As(err, &leased):
		// Another attempt runs: of this pre-save (after Redis lost its
		// task and the relay queued it again), or on the fan's grant.
		// Try again once it ends, never alongside it.
		w.metrics.Deferred.WithLabelValues(string(provider), "busy").Inc()
		return &Deferral{Reason: "busy", Until: leased.Until}
	case errors.Is(err, store.ErrHeldBack):
		// Queued before its release's canary was chosen or before a
		// pause: back to PostgreSQL until the guard lets it through.
		w.metrics.Deferred.WithLabelValues(string(provider), "held_back").Inc()
		_, err := w.st.PostponePresave(ctx, pl.PresaveID, pl.Generation)
		return err
	case errors.As(err, &notDue):
		if time.Until(notDue.DueAt) <= w.cfg.Queue.Window {
			w.metrics.Deferred.WithLabelValues(string(provider), "not_due").Inc()
			return &Deferral{Reason: "not_due", Until: notDue.DueAt}
		}
		// Moved far out: back to PostgreSQL until the relay claims it.
		_, err := w.st.PostponePresave(ctx, pl.PresaveID, pl.Generation)
		return err
	}
	return err
}

// dueEarly is how early (by PostgreSQL's clock) a pre-save may start and
// wait for its due time in the worker rather than in the queue.
const dueEarly = 5 * time.Second

// finalStatus is done when every action is ok or already, failed when
// every one failed, partial otherwise.
func finalStatus(actions []providers.Action, results map[providers.Action]store.ActionResult) (store.PresaveStatus, string) {
	failed, lastErr := 0, ""
	for _, a := range actions {
		if r := results[a]; r.Outcome == providers.OutcomeFailed || r.Outcome == "" {
			failed++
			lastErr = string(a) + ": " + r.Reason
		}
	}
	switch {
	case failed == 0:
		return store.PresaveDone, ""
	case failed == len(actions):
		return store.PresaveFailed, lastErr
	}
	return store.PresavePartial, lastErr
}

// failRemaining returns results plus a failure with reason for every
// action that has no result yet.
func (w *Worker) failRemaining(ps store.Presave, results map[providers.Action]store.ActionResult, reason string) map[providers.Action]store.ActionResult {
	out := map[providers.Action]store.ActionResult{}
	for a, r := range results {
		out[a] = r
	}
	now := time.Now()
	for _, a := range ps.Actions {
		if _, done := ps.Results[a]; done {
			continue
		}
		if _, done := out[a]; !done {
			out[a] = store.ActionResult{Outcome: providers.OutcomeFailed, Reason: reason, At: now}
			w.metrics.countAction(ps.Provider, a, out[a])
		}
	}
	return out
}

// record keeps one action's result for the attempt's final write (finish
// or requeue) and counts it. Nothing is written per action: every action
// checks before it writes, so an attempt that dies before its final write
// costs its retry a check per action, never a duplicate.
func (w *Worker) record(ps store.Presave, a providers.Action, r store.ActionResult, results map[providers.Action]store.ActionResult) {
	results[a] = r
	w.metrics.countAction(ps.Provider, a, r)
}

// keepLateResults records on a cancelled pre-save what its attempt did
// after the cancellation, and ends its lease (store.RecordLateResults).
func (w *Worker) keepLateResults(ctx context.Context, log *slog.Logger, ps store.Presave, results map[providers.Action]store.ActionResult) {
	bctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), bookkeepingTimeout)
	defer cancel()
	if _, err := w.st.RecordLateResults(bctx, ps.ID, results); err != nil {
		log.Warn("recording the results of a cancelled attempt failed", "err", err)
	}
}

// afterPurge revokes at the provider the grant a finish moved to
// token_revocations, or queues the revoke task that retries it.
func (w *Worker) afterPurge(ctx context.Context, log *slog.Logger, p providers.Name, f store.Finished) {
	if f.Purge.RevocationID != uuid.Nil && !w.revokeNow(ctx, log, p, f.Purge.RevocationID, f.RevokeToken) {
		if _, err := w.queue.EnqueueRevoke(ctx, f.Purge.RevocationID); err != nil {
			// The sweeper queues every pending revocation again.
			log.Warn("enqueue revoke failed", "err", err)
		}
	}
}

// revokeTimeout bounds the revocation a finishing pre-save tries itself.
const revokeTimeout = 5 * time.Second

// revokeNow tries once to revoke a grant just purged, as the purge task
// would, and reports whether that settled it (the revocation row is
// gone). Otherwise the caller queues the revoke task, which retries for
// days. Doing the usual case here spares the revoke task's trip through
// the queue and reading the revocation back; revoking twice (a crash
// between revoking and deleting the row) is harmless, the task treats an
// already revoked grant as done.
func (w *Worker) revokeNow(ctx context.Context, log *slog.Logger, p providers.Name, id uuid.UUID, token string) bool {
	prov, ok := w.provs.Get(p)
	if !ok || token == "" {
		return false
	}
	rctx, cancel := context.WithTimeout(ctx, revokeTimeout)
	err := prov.Revoke(rctx, token)
	cancel()
	outcome, settled := providers.RevokeSettled(err)
	if !settled {
		log.Debug("revoking at once failed; queueing the revoke task", "err", err)
		return false
	}
	if _, err := w.books.revoked.Do(ctx, id); err != nil {
		log.Warn("deleting revocation failed; queueing the revoke task", "err", err)
		return false
	}
	w.metrics.Revocations.WithLabelValues(string(p), string(outcome)).Inc()
	log.Info("grant purged", "outcome", outcome)
	return true
}

// purgeReason is recorded with a revocation: why a dead grant was purged
// (the failure's reason), or "" for a pre-save that finished (the store's
// default).
func purgeReason(purge bool, reason string) string {
	if purge {
		return reason
	}
	return ""
}

// reserveUnits takes the YouTube units the attempt's remaining actions
// may cost from the shared daily budget, or returns a deferral to the
// budget's reset.
func (w *Worker) reserveUnits(ctx context.Context, prov providers.Provider, ps store.Presave, available []providers.Action) (string, int, *Deferral, error) {
	if prov.Name() != providers.YouTube {
		return "", 0, nil, nil
	}
	units := 0
	for _, a := range ps.Actions {
		if _, done := ps.Results[a]; !done && slices.Contains(available, a) {
			units += prov.QuotaCost(a, "")
		}
	}
	if units == 0 {
		return "", 0, nil, nil
	}
	name, err := w.ytBudget.Take(ctx, units)
	var se *ratelimit.SpentError
	if errors.As(err, &se) {
		return "", 0, &Deferral{Reason: "quota", Until: se.ResetAt, Err: err}, nil
	}
	if err != nil {
		return "", 0, nil, err
	}
	return name, units, nil, nil
}

// pace takes calls slots of the provider's shared request rate (one
// action's, or a combined write's), or returns a deferral when the wait
// would be long enough that the task should wait in the queue rather
// than in a worker slot. It returns ratelimit.ErrStopped once the
// pre-save was cancelled (StopAttempts): the call must not start.
func (w *Worker) pace(ctx context.Context, ps store.Presave, calls int) (*Deferral, error) {
	name := ps.Provider
	// Paid up front; an action found already in effect pays for a write
	// it did not make.
	err := w.limiter.Wait(ctx, string(name), calls, w.cfg.MaxLimiterWait, stopOf(ps))
	if err == nil {
		return nil, nil
	}
	var we *ratelimit.WaitError
	if errors.As(err, &we) {
		w.metrics.RateLimited.WithLabelValues(string(name), "limiter").Inc()
		return &Deferral{Reason: "rate_limited", Until: we.Until, Err: err}, nil
	}
	return nil, err
}

// stopOf is the stop condition of ps's attempts: its stop key holding at
// least its generation (queue.StopAttempts sets it on a cancellation).
func stopOf(ps store.Presave) ratelimit.Stop {
	return ratelimit.Stop{Key: queue.StopKey(ps.Provider, ps.ID), AtLeast: int64(ps.Generation)}
}
