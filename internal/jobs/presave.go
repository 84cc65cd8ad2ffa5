package jobs

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/google/uuid"
	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"golang.org/x/oauth2"

	"github.com/presave/presave/internal/providers"
	"github.com/presave/presave/internal/providers/youtube"
	"github.com/presave/presave/internal/queue"
	"github.com/presave/presave/internal/ratelimit"
	"github.com/presave/presave/internal/store"
)

// bookkeepingTimeout bounds the database writes after an attempt, which
// run even when the attempt's context ended (shutdown, timeout) so that
// no result is lost.
const bookkeepingTimeout = 10 * time.Second

// Outcomes stored per action (store.ActionResult.Outcome).
const (
	outcomeOK      = string(providers.OutcomeOK)
	outcomeAlready = string(providers.OutcomeAlready)
	outcomeFailed  = "failed"
)

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
	retried, _ := asynq.GetRetryCount(ctx)
	maxRetry, _ := asynq.GetMaxRetry(ctx)
	if retried < maxRetry {
		return err
	}
	// A rare path: reading the row again costs nothing that matters.
	bctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), bookkeepingTimeout)
	defer cancel()
	ps, perr := w.st.Presave(bctx, pl.PresaveID)
	if perr == nil && ps.Generation == pl.Generation && ps.Status.Open() {
		log.Error("presave failed: retries exhausted", "err", err)
		perr = w.finish(bctx, log, ps, time.Time{}, store.PresaveFailed, w.failRemaining(ps, nil, ReasonRetriesExhausted), ReasonRetriesExhausted, false)
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
		// it (and skip a stale task before taking any lock).
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

	// One attempt at a time per fan and provider: it keeps a reschedule's
	// new generation from racing an old one that is still running, and
	// keeps two pre-saves of one fan from both refreshing (and rotating)
	// the same grant. It is taken first, so the start below (which checks
	// the generation and status itself) is the task's first read.
	unlock, ok, err := w.lockGrant(ctx, fan, provider)
	if err != nil {
		return err
	}
	if !ok {
		w.metrics.Deferred.WithLabelValues(string(provider), "busy").Inc()
		return &Deferral{Reason: "busy", Until: time.Now().Add(2 * time.Second)}
	}
	defer unlock()

	actx, cancel := context.WithTimeout(ctx, w.cfg.Queue.PresaveTimeout)
	defer cancel()
	// The lease outlives the attempt's deadline by the time it takes to
	// record the outcome. A pre-save due within dueEarly (clock skew
	// between the enqueuer and us) starts and waits below; one due later
	// is not started at all.
	att, ok, err := w.st.BeginAttempt(actx, pl.PresaveID, pl.Generation, fan, w.cfg.Queue.PresaveTimeout+15*time.Second, dueEarly)
	var (
		leased *store.LeasedError
		notDue *store.NotDueError
	)
	switch {
	case errors.As(err, &leased):
		// Another attempt of this generation runs (possible after Redis
		// lost our lock and the relay re-queued the pre-save): try again
		// once its lease lapses, never alongside it.
		w.metrics.Deferred.WithLabelValues(string(provider), "busy").Inc()
		return &Deferral{Reason: "busy", Until: leased.Until}
	case errors.As(err, &notDue):
		if time.Until(notDue.DueAt) <= w.cfg.Queue.Window {
			w.metrics.Deferred.WithLabelValues(string(provider), "not_due").Inc()
			return &Deferral{Reason: "not_due", Until: notDue.DueAt}
		}
		// Moved far out: back to PostgreSQL until the relay claims it.
		_, err := w.st.PostponePresave(ctx, pl.PresaveID, pl.Generation)
		return err
	case err != nil:
		return err
	case !ok:
		log.Debug("stale presave task at start")
		return nil
	}
	ps := att.Presave
	if wait := time.Until(ps.DueAt); wait > 0 {
		if err := ratelimit.Sleep(actx, min(wait, dueEarly)); err != nil {
			return w.requeue(ctx, log, ps, nil, err, err)
		}
	}
	first := ps.Attempts == 1
	if first {
		w.metrics.StartLag.WithLabelValues(string(ps.Provider)).Observe(time.Since(ps.DueAt).Seconds())
	}
	return w.runPresave(actx, log.With("provider", ps.Provider), att, first)
}

// dueEarly is how early (by PostgreSQL's clock) a pre-save may start and
// wait for its due time in the worker rather than in the queue.
const dueEarly = 5 * time.Second

// runPresave performs the pre-save's remaining actions and records the
// outcome. ps is marked running.
func (w *Worker) runPresave(ctx context.Context, log *slog.Logger, att store.Attempt, first bool) error {
	ps := att.Presave
	prov, ok := w.provs.Get(ps.Provider)
	if !ok {
		return w.finish(ctx, log, ps, att.Token.AuthorizedAt, store.PresaveFailed, w.failRemaining(ps, nil, "provider_unavailable"), "provider_unavailable", false)
	}
	rel, err := w.releases.get(ctx, w.st, ps.ReleaseID, att.ReleaseUpdatedAt)
	if err != nil {
		return w.requeue(ctx, log, ps, nil, err, err)
	}
	tok, err := att.Token, att.TokenErr
	if errors.Is(err, store.ErrNotFound) {
		// Purged meanwhile (an invalid grant seen by another pre-save).
		// Nothing of ours is left to purge; a token stored since belongs to
		// a new consent, so no forced purge here.
		return w.finish(ctx, log, ps, time.Time{}, store.PresaveFailed, w.failRemaining(ps, nil, ReasonReconnect), ReasonReconnect, false)
	}
	if errors.Is(err, store.ErrTokenUnreadable) {
		// Tampered with, or copied from another fan's row: it will never
		// open, so no retry can help. The row goes (it helps nobody) and
		// the pre-save fails for good with its own reason.
		log.Error("stored grant does not authenticate: presave failed", "key_id", tok.KeyID, "err", err)
		w.metrics.TokenUnreadable.WithLabelValues(string(ps.Provider)).Inc()
		if err := w.finish(ctx, log, ps, tok.AuthorizedAt, store.PresaveFailed, w.failRemaining(ps, nil, ReasonTokenUnreadable), ReasonTokenUnreadable, true); err != nil {
			return err
		}
		return fmt.Errorf("%w: %w", asynq.SkipRetry, err)
	}
	if err != nil {
		return w.requeue(ctx, log, ps, nil, err, err)
	}
	client := prov.Client(ctx, &oauth2.Token{AccessToken: tok.AccessToken, RefreshToken: tok.RefreshToken, Expiry: tok.Expiry},
		func(nt *oauth2.Token) {
			// Store the new access token (and a rotated refresh token) so
			// the fan's other actions and pre-saves share one refresh.
			bctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), bookkeepingTimeout)
			defer cancel()
			err := w.st.UpdateToken(bctx, store.Token{FanID: ps.FanID, Provider: ps.Provider,
				RefreshToken: nt.RefreshToken, AccessToken: nt.AccessToken, Expiry: nt.Expiry})
			if err != nil {
				log.Warn("storing refreshed token failed", "err", err)
			}
		})
	target := rel.Target(ps.Provider)
	available := prov.Actions(target)
	results := map[providers.Action]store.ActionResult{}

	// YouTube's daily units are reserved for the whole attempt up front,
	// so a short budget completes whole pre-saves instead of starting
	// many and finishing none; what goes unused is handed back.
	budget, reserved, d, err := w.reserveUnits(ctx, prov, ps, available)
	if d != nil {
		w.metrics.Deferred.WithLabelValues(string(ps.Provider), d.Reason).Inc()
		return w.requeue(ctx, log, ps, nil, d, d)
	}
	if err != nil {
		return w.requeue(ctx, log, ps, nil, err, err)
	}
	defer func() {
		if reserved > 0 {
			_ = w.ytBudget.Refund(context.WithoutCancel(ctx), budget, reserved)
		}
	}()
	var (
		retryErr  error
		notLive   error
		deferral  *Deferral
		grantErr  error
		stopped   bool
		firstCall = true
	)
actions:
	for _, a := range ps.Actions {
		if _, done := ps.Results[a]; done {
			continue // ok, already or permanently failed in an earlier attempt
		}
		if !slices.Contains(available, a) {
			w.record(ps, a, store.ActionResult{Outcome: outcomeFailed, Reason: ReasonNotConfigured, At: time.Now()}, results)
			continue
		}
		if ctx.Err() != nil {
			retryErr = ctx.Err()
			break
		}
		d, err := w.pace(ctx, prov, ps, a, target)
		if d != nil {
			deferral = d
			break
		}
		if errors.Is(err, ratelimit.ErrStopped) {
			stopped = true
			break
		}
		if err != nil {
			retryErr = err
			break
		}
		if first && firstCall {
			lag := time.Since(ps.DueAt)
			w.metrics.FirstActionLag.WithLabelValues(string(ps.Provider)).Observe(lag.Seconds())
			log.Debug("first action", "lag_ms", lag.Milliseconds())
		}
		firstCall = false
		start := time.Now()
		out, err := client.Perform(ctx, a, target)
		class := providers.ClassOf(err)
		className := ""
		if err != nil {
			className = class.String()
		}
		w.metrics.CallSeconds.WithLabelValues(string(ps.Provider), string(a), className).Observe(time.Since(start).Seconds())
		if units := prov.QuotaCost(a); units > 0 {
			if err == nil && out == providers.OutcomeAlready {
				units = youtube.CostRead // only the check ran
			}
			reserved -= units
		}
		pe, _ := providers.AsError(err)
		switch {
		case err == nil:
			w.record(ps, a, store.ActionResult{Outcome: string(out), At: time.Now()}, results)
		case class == providers.GrantInvalid:
			grantErr = err
			break actions
		case class == providers.RateLimited:
			wait := time.Second
			if pe != nil && pe.RetryAfter > 0 {
				wait = pe.RetryAfter
			}
			// Everybody pauses this provider, so a 429 storm does not
			// become a retry storm.
			if cerr := w.limiter.Cooldown(ctx, string(ps.Provider), wait); cerr != nil {
				log.Warn("setting provider cooldown failed", "err", cerr)
			}
			w.metrics.RateLimited.WithLabelValues(string(ps.Provider), "provider").Inc()
			deferral = &Deferral{Reason: "rate_limited", Until: time.Now().Add(wait), Err: err}
			break actions
		case class == providers.QuotaExhausted:
			until := time.Now().Add(time.Hour)
			if pe != nil && !pe.ResetAt.IsZero() {
				until = pe.ResetAt
			}
			deferral = &Deferral{Reason: "quota", Until: until, Err: err}
			break actions
		case class == providers.NotLiveYet:
			if time.Since(ps.DueAt) > w.cfg.NotLiveGiveUp {
				w.record(ps, a, store.ActionResult{Outcome: outcomeFailed, Reason: ReasonNotLive, At: time.Now()}, results)
				continue
			}
			notLive = err
		case class == providers.Retryable:
			retryErr = err
		default:
			reason := class.String()
			if pe != nil && pe.Reason != "" {
				reason = pe.Reason
			}
			w.record(ps, a, store.ActionResult{Outcome: outcomeFailed, Reason: reason, At: time.Now()}, results)
		}
	}

	switch {
	case stopped:
		// Cancelled while running: the cancellation already settled the
		// row and the token; only what this attempt did is left to keep.
		w.metrics.Stopped.WithLabelValues(string(ps.Provider)).Inc()
		log.Info("presave cancelled while running: stopped before its next call", "actions_done", len(results))
		w.keepLateResults(ctx, log, ps, results)
		return nil
	case grantErr != nil:
		// The fan must reconnect: no retry, and the dead grant goes now.
		log.Info("grant invalid: presave failed", "err", grantErr)
		if err := w.finish(ctx, log, ps, tok.AuthorizedAt, store.PresaveFailed, w.failRemaining(ps, results, ReasonReconnect), ReasonReconnect, true); err != nil {
			return err
		}
		return fmt.Errorf("%w: %w", asynq.SkipRetry, grantErr)
	case deferral != nil:
		w.metrics.Deferred.WithLabelValues(string(ps.Provider), deferral.Reason).Inc()
		return w.requeue(ctx, log, ps, results, deferral, deferral)
	case retryErr != nil:
		retried, _ := asynq.GetRetryCount(ctx)
		maxRetry, _ := asynq.GetMaxRetry(ctx)
		if retried >= maxRetry {
			if err := w.finish(ctx, log, ps, tok.AuthorizedAt, store.PresaveFailed, w.failRemaining(ps, results, ReasonRetriesExhausted), ReasonRetriesExhausted, false); err != nil {
				return err
			}
			return fmt.Errorf("%w: %w", asynq.SkipRetry, retryErr)
		}
		return w.requeue(ctx, log, ps, results, retryErr, retryErr)
	case notLive != nil:
		until := time.Now().Add(w.cfg.NotLiveRetry)
		if giveUp := ps.DueAt.Add(w.cfg.NotLiveGiveUp); until.After(giveUp) {
			until = giveUp.Add(time.Second)
		}
		w.metrics.Deferred.WithLabelValues(string(ps.Provider), "not_live").Inc()
		d := &Deferral{Reason: "not_live", Until: until, Err: notLive}
		return w.requeue(ctx, log, ps, results, d, d)
	}
	all := map[providers.Action]store.ActionResult{}
	for a, r := range ps.Results {
		all[a] = r
	}
	for a, r := range results {
		all[a] = r
	}
	status, lastErr := finalStatus(ps.Actions, all)
	return w.finish(ctx, log, ps, tok.AuthorizedAt, status, results, lastErr, false)
}

// finalStatus is done when every action is ok or already, failed when
// every one failed, partial otherwise.
func finalStatus(actions []providers.Action, results map[providers.Action]store.ActionResult) (store.PresaveStatus, string) {
	failed, lastErr := 0, ""
	for _, a := range actions {
		if r := results[a]; r.Outcome == outcomeFailed || r.Outcome == "" {
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
			out[a] = store.ActionResult{Outcome: outcomeFailed, Reason: reason, At: now}
			w.metrics.Actions.WithLabelValues(string(ps.Provider), string(a), outcomeFailed).Inc()
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
	w.metrics.Actions.WithLabelValues(string(ps.Provider), string(a), r.Outcome).Inc()
}

// requeue hands the pre-save back to its queue (status enqueued) with the
// results the attempt gathered, and returns ret for asynq to retry the
// task.
func (w *Worker) requeue(ctx context.Context, log *slog.Logger, ps store.Presave, results map[providers.Action]store.ActionResult, why error, ret error) error {
	bctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), bookkeepingTimeout)
	defer cancel()
	ok, err := w.st.RequeuePresave(bctx, ps.ID, ps.Generation, why.Error(), results)
	if err != nil {
		log.Warn("requeue failed", "err", err)
	} else if !ok {
		w.keepLateResults(bctx, log, ps, results)
	}
	return ret
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

// finish records a final status and purges the fan's token when nothing
// else needs it, then queues the revocation at the provider.
func (w *Worker) finish(ctx context.Context, log *slog.Logger, ps store.Presave, tokenVersion time.Time, status store.PresaveStatus,
	results map[providers.Action]store.ActionResult, lastErr string, purgeAlways bool) error {
	bctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), bookkeepingTimeout)
	defer cancel()
	f, err := w.st.FinishPresave(bctx, store.Finish{
		ID: ps.ID, Generation: ps.Generation, Provider: ps.Provider, Status: status, Results: results, LastError: lastErr,
		PurgeAlways: purgeAlways, PurgeReason: purgeReason(purgeAlways), TokenAuthorizedAt: tokenVersion,
	}, w.provs.Revocable)
	if err != nil {
		return err
	}
	if !f.Applied {
		log.Debug("presave moved on before finishing")
		w.keepLateResults(bctx, log, ps, results)
		return nil
	}
	w.metrics.Finished.WithLabelValues(string(ps.Provider), string(status)).Inc()
	log.Info("presave finished", "status", status, "reason", lastErr, "token_purged", f.Purge.Deleted)
	w.afterPurge(bctx, log, ps.Provider, f)
	return nil
}

// afterPurge revokes at the provider the grant a finish moved to
// token_revocations, or queues the purge task that retries it.
func (w *Worker) afterPurge(ctx context.Context, log *slog.Logger, p providers.Name, f store.Finished) {
	if f.Purge.RevocationID != uuid.Nil && !w.revokeNow(ctx, log, p, f.Purge.RevocationID, f.RevokeToken) {
		if _, err := w.queue.EnqueuePurge(ctx, f.Purge.RevocationID); err != nil {
			// The sweeper queues every pending revocation again.
			log.Warn("enqueue purge failed", "err", err)
		}
	}
}

// revokeTimeout bounds the revocation a finishing pre-save tries itself.
const revokeTimeout = 5 * time.Second

// revokeNow tries once to revoke a grant just purged, as the purge task
// would, and reports whether that settled it (the revocation row is
// gone). Otherwise the caller queues the purge task, which retries for
// days. Doing the usual case here spares the purge task's trip through
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
		log.Debug("revoking at once failed; queueing the purge", "err", err)
		return false
	}
	if err := w.st.DeleteRevocation(ctx, id); err != nil {
		log.Warn("deleting revocation failed; queueing the purge", "err", err)
		return false
	}
	w.metrics.Purges.WithLabelValues(string(p), string(outcome)).Inc()
	log.Info("grant purged", "outcome", outcome)
	return true
}

// purgeReason is recorded with a revocation: an invalid grant, or a
// pre-save that finished (the store's default).
func purgeReason(grantInvalid bool) string {
	if grantInvalid {
		return ReasonReconnect
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
			units += prov.QuotaCost(a)
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

// pace takes a slot of the provider's shared request rate for one action,
// or returns a deferral when the wait would be long enough that the task
// should wait in the queue rather than in a worker slot.
// It returns ratelimit.ErrStopped once the pre-save was cancelled
// (StopAttempts): the action must not start.
func (w *Worker) pace(ctx context.Context, prov providers.Provider, ps store.Presave, a providers.Action, t providers.Target) (*Deferral, error) {
	name := ps.Provider
	// Paid per action up front; an action found already in effect pays
	// for a write it did not make.
	err := w.limiter.Wait(ctx, string(name), prov.Calls(a, t), w.cfg.MaxLimiterWait, ratelimit.Stop{Key: queue.StopKey(ps.ID), AtLeast: int64(ps.Generation)})
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

// lockGrant takes the per-(fan, provider) execution lock in Redis. It
// expires by itself after the longest an attempt can run, so a dead
// worker's lock never blocks for long.
func (w *Worker) lockGrant(ctx context.Context, fan uuid.UUID, p providers.Name) (func(), bool, error) {
	var b [16]byte
	_, _ = rand.Read(b[:])
	tokenVal := hex.EncodeToString(b[:])
	key := "presave:lock:grant:" + fan.String() + ":" + string(p)
	ok, err := w.rdb.SetNX(ctx, key, tokenVal, w.cfg.Queue.PresaveTimeout+bookkeepingTimeout+5*time.Second).Result()
	if err != nil {
		return nil, false, fmt.Errorf("jobs: lock: %w", err)
	}
	if !ok {
		return nil, false, nil
	}
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = unlockScript.Run(ctx, w.rdb, []string{key}, tokenVal).Err()
	}, true, nil
}

var unlockScript = redis.NewScript(`
if redis.call("GET", KEYS[1]) == ARGV[1] then
  return redis.call("DEL", KEYS[1])
end
return 0`)
