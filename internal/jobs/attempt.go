package jobs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/hibiken/asynq"
	"golang.org/x/oauth2"

	"github.com/presave/presave/internal/providers"
	"github.com/presave/presave/internal/ratelimit"
	"github.com/presave/presave/internal/store"
)

// An attempt runs in two halves: execute performs the pre-save's
// remaining actions and returns one verdict, and apply carries it out
// (the only place an attempt writes its outcome). river's jobexecutor
// has the same split.

// verdictKind is what an attempt decided.
type verdictKind int

const (
	// verdictFinish records a final status (and purges the token when
	// nothing else needs it).
	verdictFinish verdictKind = iota
	// verdictRequeue hands the pre-save back to its queue; asynq retries
	// the task after cause (a Deferral waits without counting a failure).
	verdictRequeue
	// verdictStopped: the pre-save was cancelled while running; only the
	// results of what this attempt did are kept.
	verdictStopped
)

// verdict is the outcome of one attempt.
type verdict struct {
	kind verdictKind
	// results are this attempt's action results (the store merges them
	// with the earlier attempts').
	results map[providers.Action]store.ActionResult
	// status and reason (last_error) are the final status (finish).
	status store.PresaveStatus
	reason string
	// purge deletes the fan's token at the provider whatever else needs
	// it: the grant is dead and helps nobody (finish).
	purge bool
	// cause is what made a requeue wait, returned to asynq; on a finish,
	// an error returned to asynq wrapped in SkipRetry (nil: success).
	cause error
	// targetErr is the attempt's first target error (store.TargetError),
	// on a finish or a not-live requeue; the campaign guard counts it.
	targetErr string
	// breakerSince, when set, is when the release's guard opened: the
	// attempt ran in the open drain, so its target error is weighed by
	// the circuit breaker.
	breakerSince time.Time
	// canary: the pre-save is one of a canary that has not passed; its
	// outcome may decide the release's verdict (settleCanary).
	canary bool
	// refreshed is the attempt's refreshed access token, stored unless
	// the finish purged the row (providerClient).
	refreshed *store.Token
	// guardOpenedAt is when the release's guard had opened as the
	// attempt started (zero: it was not open).
	guardOpenedAt time.Time
}

func requeueFor(results map[providers.Action]store.ActionResult, cause error) verdict {
	return verdict{kind: verdictRequeue, results: results, cause: cause}
}

// failAll is a finish as failed with reason, every action without a
// result failing with it too.
func (w *Worker) failAll(ps store.Presave, results map[providers.Action]store.ActionResult, reason string, purge bool, cause error) verdict {
	return verdict{kind: verdictFinish, status: store.PresaveFailed, results: w.failRemaining(ps, results, reason),
		reason: reason, purge: purge, cause: cause}
}

// runPresave performs the pre-save's remaining actions and records the
// outcome. The attempt's pre-save is marked running.
func (w *Worker) runPresave(ctx context.Context, log *slog.Logger, att store.Attempt, first bool) error {
	v := w.execute(ctx, log, att, first)
	v.canary = att.Canary && att.Guard != store.GuardOpen
	return w.apply(ctx, log, att.Presave, att.Token.AuthorizedAt, v)
}

// execute decides an attempt: it checks what the attempt needs (the
// provider, the release, an openable grant, YouTube units), performs the
// remaining actions, and returns the verdict. It writes nothing but the
// refreshed token.
func (w *Worker) execute(ctx context.Context, log *slog.Logger, att store.Attempt, first bool) verdict {
	ps := att.Presave
	prov, ok := w.provs.Get(ps.Provider)
	if !ok {
		return w.failAll(ps, nil, "provider_unavailable", false, nil)
	}
	rel, err := w.releases.get(ctx, w.st, ps.ReleaseID, att.ReleaseUpdatedAt)
	if err != nil {
		return requeueFor(nil, err)
	}
	if v, unusable := w.tokenVerdict(log, att); unusable {
		return v
	}
	x := &execution{ps: ps, prov: prov, target: rel.Target(ps.Provider), first: first, canary: att.Canary}
	x.client = w.providerClient(ctx, log, x, att.Token)
	x.available = prov.Actions(x.target)
	x.target.AccountID, x.target.Storefront = ps.AccountID, att.Token.Storefront
	if err := w.inStorefront(ctx, prov, rel.ID, &x.target); err != nil {
		return requeueFor(nil, err)
	}
	if x.target.MyPlaylist.Name != "" {
		x.target.MyPlaylist.ID = ps.OwnPlaylistID
	}

	// YouTube's daily units are reserved for the whole attempt up front,
	// so a short budget completes whole pre-saves instead of starting
	// many and finishing none; what goes unused is handed back.
	budget, reserved, d, err := w.reserveUnits(ctx, prov, ps, x.available)
	if d != nil {
		w.metrics.Deferred.WithLabelValues(string(ps.Provider), d.Reason).Inc()
		return requeueFor(nil, d)
	}
	if err != nil {
		return requeueFor(nil, err)
	}
	x.reserved = reserved
	defer func() {
		if x.reserved > 0 {
			_ = w.ytBudget.Refund(context.WithoutCancel(ctx), budget, x.reserved)
		}
	}()
	results, end := w.performActions(ctx, log, x)
	v := w.decide(ctx, x, results, end)
	if att.Guard == store.GuardOpen && v.targetErr != "" {
		v.breakerSince = att.GuardOpenedAt
	}
	v.refreshed = x.refreshed
	if att.Guard == store.GuardOpen {
		v.guardOpenedAt = att.GuardOpenedAt
	}
	return v
}

// tokenVerdict is the verdict for an attempt whose grant cannot be used,
// if so.
func (w *Worker) tokenVerdict(log *slog.Logger, att store.Attempt) (verdict, bool) {
	ps, err := att.Presave, att.TokenErr
	switch {
	case err == nil:
		return verdict{}, false
	case errors.Is(err, store.ErrNotFound):
		// Purged meanwhile (an invalid grant seen by another pre-save), or
		// a grant of another account: nothing of ours to purge; a token
		// stored since belongs to a new consent.
		return w.failAll(ps, nil, ReasonReconnect, false, nil), true
	case errors.Is(err, store.ErrTokenUnreadable):
		// Tampered with, or copied from another fan's row: it will never
		// open, so no retry can help. The row goes (it helps nobody) and
		// the pre-save fails for good with its own reason.
		log.Error("stored grant does not authenticate: presave failed", "key_id", att.Token.KeyID, "err", err)
		w.metrics.TokenUnreadable.WithLabelValues(string(ps.Provider)).Inc()
		return w.failAll(ps, nil, ReasonTokenUnreadable, true, err), true
	}
	return requeueFor(nil, err), true
}

// providerClient is the provider client on the fan's grant. A refresh
// that rotated the refresh token is stored at once: the old one may no
// longer work, and a crash must not lose the new one. One that did not
// (Google's) only renews the access token: it is kept with the attempt
// and stored after it only if the token row outlives the attempt
// (storeRefreshed), which on release day it mostly does not (the
// finish purges it): a crash costs the next attempt one more refresh.
func (w *Worker) providerClient(ctx context.Context, log *slog.Logger, x *execution, tok store.Token) providers.Client {
	ps := x.ps
	return x.prov.Client(ctx, &oauth2.Token{AccessToken: tok.AccessToken, RefreshToken: tok.RefreshToken, Expiry: tok.Expiry},
		func(nt *oauth2.Token) {
			if nt.RefreshToken == "" || nt.RefreshToken == tok.RefreshToken {
				x.refreshed = &store.Token{FanID: ps.FanID, Provider: ps.Provider,
					RefreshToken: tok.RefreshToken, AccessToken: nt.AccessToken, Expiry: nt.Expiry}
				return
			}
			x.refreshed = nil
			w.storeRefreshed(ctx, log, &store.Token{FanID: ps.FanID, Provider: ps.Provider,
				RefreshToken: nt.RefreshToken, AccessToken: nt.AccessToken, Expiry: nt.Expiry})
		})
}

// storeRefreshed stores a refreshed token; a purged row (ErrNotFound)
// wins over the refresh.
func (w *Worker) storeRefreshed(ctx context.Context, log *slog.Logger, t *store.Token) {
	bctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), bookkeepingTimeout)
	defer cancel()
	if err := w.st.UpdateToken(bctx, *t); err != nil && !errors.Is(err, store.ErrNotFound) {
		log.Warn("storing refreshed token failed", "err", err)
	}
}

// execution is one attempt's working set.
type execution struct {
	ps        store.Presave
	prov      providers.Provider
	client    providers.Client
	target    providers.Target
	available []providers.Action
	first     bool // the pre-save's first attempt (lateness metric)
	called    bool // a provider call was made in this attempt
	reserved  int  // YouTube units still reserved
	canary    bool // one of its release's canary
	// refreshed is a refreshed access token not stored yet (its refresh
	// token did not rotate): see providerClient.
	refreshed *store.Token
	// targetErr is the first target error of the attempt
	// (store.TargetError), "" when none.
	targetErr string
}

// noteTarget records a's target error, if it is the attempt's first.
func (x *execution) noteTarget(a providers.Action, reason string) {
	if x.targetErr == "" {
		x.targetErr = store.TargetError(a, reason)
	}
}

// loopEnd says why the action loop ended early (zero: every action ran).
type loopEnd struct {
	retry    error     // retryable: retry the task with backoff
	notLive  error     // the release is not out yet: look again later
	deferral *Deferral // rate limit, cooldown or quota: wait, not a failure
	grant    error     // the grant no longer works: the fan must reconnect
	stopped  bool      // cancelled while running
}

// performActions runs every consented action without a result yet,
// checking first where a write is not idempotent so a retry never
// duplicates, until one ends the attempt. The actions the provider
// writes in one request go first, together (performCombined).
func (w *Worker) performActions(ctx context.Context, log *slog.Logger, x *execution) (map[providers.Action]store.ActionResult, loopEnd) {
	ps := x.ps
	results := map[providers.Action]store.ActionResult{}
	if stop, ended := w.performCombined(ctx, log, x, results); ended {
		return results, stop
	}
	var end loopEnd
	for _, a := range ps.Actions {
		if _, done := ps.Results[a]; done {
			continue // ok, already or permanently failed in an earlier attempt
		}
		if _, done := results[a]; done {
			continue // written together with others just now
		}
		if !slices.Contains(x.available, a) {
			w.record(ps, a, store.ActionResult{Outcome: providers.OutcomeFailed, Reason: ReasonNotConfigured, At: time.Now()}, results)
			continue
		}
		if stop, ended := w.beforeCall(ctx, log, x, x.prov.Calls(a, x.target)); ended {
			return results, stop
		}
		res, stop := w.performOne(ctx, log, x, a)
		if res != nil {
			w.record(ps, a, *res, results)
		}
		switch {
		case stop.grant != nil || stop.deferral != nil:
			return results, stop
		case stop.retry != nil:
			end.retry = stop.retry // the other actions may still succeed
		case stop.notLive != nil:
			end.notLive = stop.notLive
		}
	}
	return results, end
}

// beforeCall paces the next calls requests and counts the attempt's
// first call; ended says the attempt must end as stop says.
func (w *Worker) beforeCall(ctx context.Context, log *slog.Logger, x *execution, calls int) (loopEnd, bool) {
	if ctx.Err() != nil {
		return loopEnd{retry: ctx.Err()}, true
	}
	d, err := w.pace(ctx, x.ps, calls)
	switch {
	case d != nil:
		return loopEnd{deferral: d}, true
	case errors.Is(err, ratelimit.ErrStopped):
		return loopEnd{stopped: true}, true
	case err != nil:
		return loopEnd{retry: err}, true
	}
	if x.first && !x.called {
		lag := time.Since(x.ps.DueAt)
		w.metrics.FirstActionLag.WithLabelValues(string(x.ps.Provider)).Observe(lag.Seconds())
		log.Debug("first action", "lag_ms", lag.Milliseconds())
	}
	x.called = true
	return loopEnd{}, false
}

// performCombined writes in one request the remaining actions the
// provider combines (providers.Combiner: Spotify's library actions),
// recording ok for each. A grant, rate, quota or transient error ends
// the attempt as it would for one action; any other error (a target
// not live, an ID refused) says nothing of which action caused it, so
// the actions are then performed one by one. ended says the attempt
// must end as stop says.
func (w *Worker) performCombined(ctx context.Context, log *slog.Logger, x *execution, results map[providers.Action]store.ActionResult) (loopEnd, bool) {
	comb, ok := x.prov.(providers.Combiner)
	cc, ok2 := x.client.(providers.CombinedClient)
	if !ok || !ok2 {
		return loopEnd{}, false
	}
	var left []providers.Action
	for _, a := range x.ps.Actions {
		if _, done := x.ps.Results[a]; !done && slices.Contains(x.available, a) {
			left = append(left, a)
		}
	}
	group := comb.Combine(left, x.target)
	if len(group) < 2 {
		return loopEnd{}, false
	}
	if stop, ended := w.beforeCall(ctx, log, x, comb.CombinedCalls(group, x.target)); ended {
		return stop, true
	}
	start := time.Now()
	err := cc.PerformCombined(ctx, group, x.target)
	if err != nil {
		if stop, ended := w.transientEnd(ctx, log, x, err); ended {
			return stop, true
		}
		log.Debug("combined write refused; performing the actions one by one", "actions", group, "err", err)
		return loopEnd{}, false
	}
	w.metrics.CallSeconds.WithLabelValues(string(x.ps.Provider), "combined", "").Observe(time.Since(start).Seconds())
	for _, a := range group {
		x.reserved -= x.prov.QuotaCost(a, providers.OutcomeOK)
		w.record(x.ps, a, store.ActionResult{Outcome: providers.OutcomeOK, At: time.Now()}, results)
	}
	return loopEnd{}, false
}

// transientEnd is how an error that is not the action's own ends the
// attempt: the grant no longer works, a rate limit or a spent quota
// (deferrals), or trouble worth a retry. ended is false for any other
// error (not live, refused).
func (w *Worker) transientEnd(ctx context.Context, log *slog.Logger, x *execution, err error) (loopEnd, bool) {
	pe, _ := providers.AsError(err)
	switch providers.ClassOf(err) {
	case providers.GrantInvalid:
		return loopEnd{grant: err}, true
	case providers.RateLimited:
		wait := w.rateLimitPause(ctx, log, string(x.ps.Provider), pe)
		w.metrics.RateLimited.WithLabelValues(string(x.ps.Provider), "provider").Inc()
		return loopEnd{deferral: &Deferral{Reason: "rate_limited", Until: time.Now().Add(wait), Err: err}}, true
	case providers.QuotaExhausted:
		until := time.Now().Add(time.Hour)
		if pe != nil && !pe.ResetAt.IsZero() {
			until = pe.ResetAt
		}
		return loopEnd{deferral: &Deferral{Reason: "quota", Until: until, Err: err}}, true
	case providers.Retryable:
		return loopEnd{retry: err}, true
	}
	return loopEnd{}, false
}

// performOne performs one action and classifies its outcome: a result
// to record, or (and) why the attempt cannot end as it stands.
func (w *Worker) performOne(ctx context.Context, log *slog.Logger, x *execution, a providers.Action) (*store.ActionResult, loopEnd) {
	ps := x.ps
	start := time.Now()
	out, err := w.perform(ctx, x, a)
	var paced *pacingEnd
	switch {
	case errors.Is(err, errRecordPlaylist):
		return nil, loopEnd{retry: err}
	case errors.Is(err, ratelimit.ErrStopped):
		return nil, loopEnd{stopped: true}
	case errors.As(err, &paced):
		return nil, paced.end
	}
	class := providers.ClassOf(err)
	className := ""
	if err != nil {
		className = class.String()
	}
	w.metrics.CallSeconds.WithLabelValues(string(ps.Provider), string(a), className).Observe(time.Since(start).Seconds())
	x.reserved -= x.prov.QuotaCost(a, out)
	if err == nil {
		return &store.ActionResult{Outcome: out, At: time.Now()}, loopEnd{}
	}
	if stop, ended := w.transientEnd(ctx, log, x, err); ended {
		return nil, stop
	}
	pe, _ := providers.AsError(err)
	if class == providers.NotLiveYet {
		if time.Since(ps.DueAt) > w.cfg.NotLiveGiveUp {
			x.noteTarget(a, ReasonNotLive)
			return &store.ActionResult{Outcome: providers.OutcomeFailed, Reason: ReasonNotLive, Target: true, At: time.Now()}, loopEnd{}
		}
		x.noteTarget(a, reasonOf(class, pe))
		return nil, loopEnd{notLive: err}
	}
	reason, target := reasonOf(class, pe), providers.IsTargetError(err)
	if target {
		x.noteTarget(a, reason)
	}
	return &store.ActionResult{Outcome: providers.OutcomeFailed, Reason: reason, Target: target, At: time.Now()}, loopEnd{}
}

// reasonOf is the failure reason recorded for an error: the provider's
// reason, else its class.
func reasonOf(class providers.Class, pe *providers.Error) string {
	if pe != nil && pe.Reason != "" {
		return pe.Reason
	}
	return class.String()
}

// pacingEnd is the pacing check between creating the fan's playlist and
// adding to it ending the attempt as beforeCall would (a deferral, or
// our Redis failing), never as the action's failure: the playlist is
// recorded, and the next attempt adds to it.
type pacingEnd struct{ end loopEnd }

func (p *pacingEnd) Error() string {
	if p.end.deferral != nil {
		return "jobs: pacing deferred the add to the fan's playlist"
	}
	return fmt.Sprintf("jobs: pacing before the add to the fan's playlist: %v", p.end.retry)
}

// errRecordPlaylist wraps a failure to record the fan's new playlist:
// the attempt is retried, and the retry finds the playlist by its marker.
var errRecordPlaylist = errors.New("jobs: record the fan's playlist")

// perform performs one action. add_to_my_playlist first finds or creates
// the fan's playlist and records it before adding to it, so no retry
// makes a second one.
func (w *Worker) perform(ctx context.Context, x *execution, a providers.Action) (providers.Outcome, error) {
	if a == providers.ActionAddToMyPlaylist && x.target.MyPlaylist.ID == "" {
		id, err := x.client.OwnPlaylist(ctx, x.target)
		if err != nil {
			return "", err
		}
		bctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), bookkeepingTimeout)
		err = w.st.SetOwnPlaylist(bctx, x.ps.ID, id)
		cancel()
		if err != nil {
			return "", fmt.Errorf("%w: %w", errRecordPlaylist, err)
		}
		x.target.MyPlaylist.ID = id
		// Creating the playlist was a write of its own: a cancellation
		// that answered meanwhile must stop the next one (the stop check
		// rides on the limiter, as before every action; its requests
		// were paid for up front).
		d, err := w.pace(ctx, x.ps, 0)
		switch {
		case d != nil:
			return "", &pacingEnd{end: loopEnd{deferral: d}}
		case errors.Is(err, ratelimit.ErrStopped):
			return "", err
		case err != nil:
			return "", &pacingEnd{end: loopEnd{retry: err}}
		}
	}
	return x.client.Perform(ctx, a, x.target)
}

// decide turns how the action loop ended into the attempt's verdict.
func (w *Worker) decide(ctx context.Context, x *execution, results map[providers.Action]store.ActionResult, end loopEnd) verdict {
	ps := x.ps
	switch {
	case end.stopped:
		return verdict{kind: verdictStopped, results: results}
	case end.grant != nil:
		// The fan must reconnect: no retry, and the dead grant goes now.
		return w.failAll(ps, results, ReasonReconnect, true, end.grant)
	case end.deferral != nil:
		w.metrics.Deferred.WithLabelValues(string(ps.Provider), end.deferral.Reason).Inc()
		return requeueFor(results, end.deferral)
	case end.retry != nil:
		if lastRetry(ctx) {
			return w.failAll(ps, results, ReasonRetriesExhausted, false, end.retry)
		}
		return requeueFor(results, end.retry)
	case end.notLive != nil:
		retry := w.cfg.NotLiveRetry
		if x.canary {
			// The canary probes for the rest of the release, which waits
			// behind it: it looks often, so a late release is delivered
			// soon after it appears.
			retry = min(retry, canaryProbe)
		}
		until := time.Now().Add(retry)
		if giveUp := ps.DueAt.Add(w.cfg.NotLiveGiveUp); until.After(giveUp) {
			until = giveUp.Add(time.Second)
		}
		w.metrics.Deferred.WithLabelValues(string(ps.Provider), "not_live").Inc()
		v := requeueFor(results, &Deferral{Reason: "not_live", Until: until, Err: end.notLive})
		v.targetErr = x.targetErr
		return v
	}
	all := map[providers.Action]store.ActionResult{}
	for a, r := range ps.Results {
		all[a] = r
	}
	for a, r := range results {
		all[a] = r
	}
	status, lastErr := finalStatus(ps.Actions, all)
	return verdict{kind: verdictFinish, status: status, results: results, reason: lastErr, targetErr: x.targetErr}
}

// canaryProbe is how often a canary pre-save looks again for a target
// that is not live yet (at most NOT_LIVE_RETRY).
const canaryProbe = 20 * time.Second

// lastRetry reports whether the running task is on its last retry: a
// failure now gets it archived.
func lastRetry(ctx context.Context) bool {
	retried, _ := asynq.GetRetryCount(ctx)
	maxRetry, _ := asynq.GetMaxRetry(ctx)
	return retried >= maxRetry
}

// apply carries out an attempt's verdict and returns what asynq should
// hear. tokenVersion is the authorization of the grant the attempt used
// (a grant re-authorized since belongs to a new consent and is never
// purged here); zero when it used none.
func (w *Worker) apply(ctx context.Context, log *slog.Logger, ps store.Presave, tokenVersion time.Time, v verdict) error {
	bctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), bookkeepingTimeout)
	defer cancel()
	switch v.kind {
	case verdictStopped:
		// The cancellation already settled the row and the token.
		w.metrics.Stopped.WithLabelValues(string(ps.Provider)).Inc()
		log.Info("presave cancelled while running: stopped before its next call", "actions_done", len(v.results))
		w.keepLateResults(bctx, log, ps, v.results)
		return nil
	}
	if !v.breakerSince.IsZero() {
		w.weighTargetError(bctx, log, ps, v)
	}
	if v.canary {
		defer w.settleCanary(bctx, log, ps)
	}
	if v.kind == verdictRequeue {
		rq, err := w.st.RequeuePresave(bctx, store.Requeue{ID: ps.ID, Generation: ps.Generation, LastError: v.cause.Error(),
			Results: v.results, TargetError: v.targetErr, GuardOpenedAt: v.guardOpenedAt})
		if v.refreshed != nil {
			w.storeRefreshed(bctx, log, v.refreshed) // the row outlives a requeue
		}
		switch {
		case err != nil:
			log.Warn("requeue failed", "err", err)
		case !rq.Applied:
			w.keepLateResults(bctx, log, ps, v.results)
		case rq.Held:
			w.metrics.Finished.WithLabelValues(string(ps.Provider), string(store.PresaveHeld)).Inc()
			log.Info("presave held: its release is paused", "target_error", v.targetErr)
			return nil
		case rq.Reopened && v.targetErr != "":
			// Resumed while this attempt waited for its target: the
			// operator fixed it, so look again now, not minutes later.
			return &Deferral{Reason: "resumed", Until: time.Now(), Err: v.cause}
		}
		return v.cause
	}
	f, err := w.books.finishes.Do(bctx, store.Finish{
		ID: ps.ID, Generation: ps.Generation, Provider: ps.Provider, Status: v.status, Results: v.results, LastError: v.reason,
		PurgeAlways: v.purge, PurgeReason: purgeReason(v.purge, v.reason), TokenAuthorizedAt: tokenVersion,
		TargetError: v.targetErr,
	})
	if err != nil {
		return err
	}
	if v.refreshed != nil && !f.Purge.Deleted {
		// Another open pre-save (or this held one) still needs the row:
		// its next attempt starts from the fresh access token.
		w.storeRefreshed(bctx, log, v.refreshed)
	}
	switch {
	case !f.Applied:
		log.Debug("presave moved on before finishing")
		w.keepLateResults(bctx, log, ps, v.results)
	case f.Held:
		w.metrics.Finished.WithLabelValues(string(ps.Provider), string(store.PresaveHeld)).Inc()
		log.Info("presave held: its release is paused", "target_error", v.targetErr)
		return nil
	default:
		w.metrics.Finished.WithLabelValues(string(ps.Provider), string(v.status)).Inc()
		log.Info("presave finished", "status", v.status, "reason", v.reason, "token_purged", f.Purge.Deleted)
		w.afterPurge(bctx, log, ps.Provider, f)
	}
	if v.cause != nil {
		return fmt.Errorf("%w: %w", asynq.SkipRetry, v.cause)
	}
	return nil
}

// rateLimitPause pauses the limiter key (a provider's name for its API,
// revokeKey for its revoke endpoint) for every worker after a call was
// refused as rate limited, and returns the pause: the provider's
// Retry-After when it named one, else the shared exponential backoff
// (Google names none). Every worker pausing means a 429 storm does not
// become a retry storm.
func (w *Worker) rateLimitPause(ctx context.Context, log *slog.Logger, key string, pe *providers.Error) time.Duration {
	if pe != nil && pe.RetryAfter > 0 {
		if err := w.limiter.Cooldown(ctx, key, pe.RetryAfter); err != nil {
			log.Warn("setting provider cooldown failed", "err", err)
		}
		return pe.RetryAfter
	}
	d, err := w.limiter.Backoff(ctx, key)
	if err != nil {
		log.Warn("setting provider backoff failed", "err", err)
	}
	return d
}

// revokeKey is the limiter key of p's revoke endpoint: its limits are not
// the API's, so a rate-limited revoke does not pause pre-saves.
func revokeKey(p providers.Name) string { return string(p) + ":revoke" }
