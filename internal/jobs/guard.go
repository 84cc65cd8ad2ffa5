package jobs

import (
	"context"
	"log/slog"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/presave/presave/internal/guard"
	"github.com/presave/presave/internal/providers"
	"github.com/presave/presave/internal/store"
)

// The campaign guard's moving parts in the worker: the breaker weighs an
// attempt's target error before the attempt's outcome is written (so a
// trip holds the attempt that tripped it), the relay settles canaries,
// and the sweeper ends holds past their deadline. The rules are
// package guard's.

// weighTargetError counts the attempt's target error against the latest
// BREAKER_WINDOW attempt ends of its release and provider, and pauses the
// release's guard when they trip the breaker. A failure to count is
// logged and the attempt goes on: the next target error counts again.
func (w *Worker) weighTargetError(ctx context.Context, log *slog.Logger, ps store.Presave, v verdict) {
	failed, seen, err := w.st.BreakerWindow(ctx, ps.ReleaseID, ps.Provider, v.breakerSince, w.cfg.Guard.BreakerWindow-1)
	if err != nil {
		log.Warn("circuit breaker: counting the window failed", "err", err)
		return
	}
	failed, seen = failed+1, seen+1 // this attempt's end
	if !w.cfg.Guard.Tripped(failed, seen) {
		return
	}
	action, reason := store.SplitTargetError(v.targetErr)
	paused, err := w.st.PauseGuard(ctx, ps.ReleaseID, ps.Provider, store.GuardOpen, v.breakerSince,
		store.Pause{Cause: store.PauseBreaker, Action: action, Error: reason, Failed: failed, Seen: seen})
	if err != nil {
		log.Warn("circuit breaker: pausing the release failed", "err", err)
		return
	}
	if paused {
		log.Warn("release paused: circuit breaker tripped", "release_id", ps.ReleaseID, "action", action, "error", reason,
			"failed", failed, "seen", seen, "rate", w.cfg.Guard.BreakerRate)
	}
}

// settleCanary judges the canary of one release and provider as soon as
// an attempt of one of its pre-saves ended, and claims the release's
// pre-saves at once when it passed: the bulk of a release waits for its
// canary's own attempts, not for the next relay run as well. A failure
// is logged: the relay settles every canary anyway.
func (w *Worker) settleCanary(ctx context.Context, log *slog.Logger, ps store.Presave) {
	// Its own deadline: claiming a big release takes longer than an
	// attempt's bookkeeping may.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
	defer cancel()
	opened, err := w.settleCanaries(ctx, ps.ReleaseID, ps.Provider)
	if err == nil && opened > 0 {
		_, err = w.claimDue(ctx)
	}
	if err != nil {
		log.Warn("settling the canary after its attempt failed; the relay will", "err", err)
	}
}

// settleCanaries judges every canary awaiting a verdict (guard.Canary),
// or only the one of release and provider p when release is not
// uuid.Nil, and applies it: proceed opens the guard (its held pre-saves
// run again), pause pauses it. It reports how many guards opened, so
// their pre-saves are claimed at once.
func (w *Worker) settleCanaries(ctx context.Context, release uuid.UUID, p providers.Name) (int, error) {
	canaries, err := w.st.UnsettledCanaries(ctx, release, p)
	if err != nil {
		return 0, err
	}
	opened := 0
	for _, c := range canaries {
		g := c.Guard
		log := w.log.With("release_id", g.ReleaseID, "provider", g.Provider)
		switch v := guard.Canary(c.Members); v.Kind {
		case guard.Proceed:
			o, ok, err := w.st.OpenGuard(ctx, g.ReleaseID, g.Provider, store.PauseCanary)
			if err != nil {
				return opened, err
			}
			if ok {
				opened++
				log.Info("canary passed: the release drains", "canary", len(c.Members), "was", g.State, "held_resumed", o.Resumed)
			}
		case guard.Pause:
			if g.State != store.GuardCanary {
				continue // paused by its canary already
			}
			ok, err := w.st.PauseGuard(ctx, g.ReleaseID, g.Provider, store.GuardCanary, time.Time{},
				store.Pause{Cause: store.PauseCanary, Action: v.Action, Error: v.Error, Failed: v.Failed, Seen: v.Seen})
			if err != nil {
				return opened, err
			}
			if ok {
				log.Warn("release paused: its canary failed", "action", v.Action, "error", v.Error,
					"failed", v.Failed, "seen", v.Seen)
			}
		}
	}
	return opened, nil
}

// expireHolds fails the pre-saves held (or waiting behind a guard that is
// not open) for longer than HOLD_MAX after their due time, and revokes
// the grants nothing needs any more.
func (w *Worker) expireHolds(ctx context.Context) error {
	for {
		c, err := w.st.ExpireHolds(ctx, w.cfg.Guard.HoldMax, w.cfg.RelayBatch)
		if err != nil {
			return err
		}
		for _, p := range c.Purges {
			w.afterPurge(ctx, w.log, p.Provider, store.Finished{Purge: p.Purge})
		}
		if n := len(c.Presaves); n > 0 {
			w.log.Warn("hold deadline passed: held pre-saves failed and their tokens were purged",
				"count", n, "hold_max", w.cfg.Guard.HoldMax)
			for _, p := range c.Presaves {
				w.metrics.Finished.WithLabelValues(string(p.Provider), string(store.PresaveFailed)).Inc()
			}
		}
		if len(c.Presaves) < w.cfg.RelayBatch {
			return nil
		}
	}
}

// pausedCollector exports presave_release_paused{provider}, read from
// PostgreSQL at each scrape so every worker reports the same, current
// figure (a gauge set by whichever worker ran the relay would go stale
// on the others).
type pausedCollector struct {
	st  *store.Store
	log *slog.Logger
}

var pausedDesc = prometheus.NewDesc("presave_release_paused",
	"Releases paused by their campaign guard (canary or circuit breaker), by provider.", []string{"provider"}, nil)

// Describe implements prometheus.Collector.
func (c pausedCollector) Describe(ch chan<- *prometheus.Desc) { ch <- pausedDesc }

// Collect implements prometheus.Collector.
func (c pausedCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	counts, err := c.st.PausedGuards(ctx)
	if err != nil {
		c.log.Warn("metrics: reading paused releases failed", "err", err)
		return
	}
	for p, n := range counts {
		ch <- prometheus.MustNewConstMetric(pausedDesc, prometheus.GaugeValue, float64(n), string(p))
	}
}
