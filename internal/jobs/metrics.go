package jobs

import (
	"context"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/presave/presave/internal/providers"
	"github.com/presave/presave/internal/ratelimit"
	"github.com/presave/presave/internal/store"
)

// Metrics are the worker's Prometheus series. Each Worker registers its
// own set on the Registerer it is given, so tests can run several workers
// in one process.
type Metrics struct {
	// Actions counts executed actions by provider, action and outcome
	// (ok, already, failed).
	Actions *prometheus.CounterVec
	// CallSeconds is the latency of one provider action (its check and
	// write calls), by provider, action and error class ("" on success).
	CallSeconds *prometheus.HistogramVec
	// RateLimited counts waits imposed by a provider's 429 (source
	// "provider") or by our own pacing deferring a task (source "limiter").
	RateLimited *prometheus.CounterVec
	// Deferred counts pre-save tasks put off without counting as a
	// failure, by provider and reason (rate_limited, quota, not_live, busy).
	Deferred *prometheus.CounterVec
	// StartLag is the delay from due_at to the first attempt's start.
	StartLag *prometheus.HistogramVec
	// FirstActionLag is the delay from due_at to the first provider call
	// of the first attempt: the release-day lateness fans see.
	FirstActionLag *prometheus.HistogramVec
	// Finished counts pre-saves reaching a final status, by provider and
	// status (done, partial, failed).
	Finished *prometheus.CounterVec
	// Revocations counts revoke outcomes by provider and outcome
	// (revoked, deleted, already_revoked, failed, given_up).
	Revocations *prometheus.CounterVec
	// Relayed counts tasks the relay queued (kind claimed or rescued) and
	// the sweeper revived (kind revived).
	Relayed *prometheus.CounterVec
	// TokenUnreadable counts stored grants that did not authenticate
	// (tampered with or moved between rows), by provider: each fails its
	// pre-save with token_unreadable. Any at all deserves a look.
	TokenUnreadable *prometheus.CounterVec
	// Stopped counts attempts stopped by a cancellation (withdraw,
	// disconnect, deletion, cancelled release) before their next call.
	Stopped *prometheus.CounterVec
	// BatchRows is the size of each batch of bookkeeping written, by
	// statement (start, finish, revoked).
	BatchRows *prometheus.HistogramVec
	// RedisCommands counts the commands of the worker's own Redis client
	// (limiter, stop keys, YouTube's budget, the rescue), asynq's not included.
	RedisCommands prometheus.Counter
	// ActionFailures counts failed actions by provider, action and
	// reason (the machine-readable reason recorded on the pre-save).
	ActionFailures *prometheus.CounterVec
}

var lagBuckets = []float64{0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 900, 3600}

// NewMetrics creates the series and registers them on reg (nil: not
// registered).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Actions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "presave_actions_total", Help: "Pre-save actions executed, by provider, action and outcome.",
		}, []string{"provider", "action", "outcome"}),
		CallSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "presave_provider_call_seconds", Help: "Latency of one provider action (check and write).",
			Buckets: prometheus.DefBuckets,
		}, []string{"provider", "action", "class"}),
		RateLimited: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "presave_rate_limited_total", Help: "Rate-limit waits, by provider and source (provider 429 or our limiter).",
		}, []string{"provider", "source"}),
		Deferred: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "presave_deferred_total", Help: "Pre-save tasks deferred without failing, by provider and reason.",
		}, []string{"provider", "reason"}),
		StartLag: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "presave_start_lag_seconds", Help: "Delay from due_at to the start of a pre-save's first attempt.",
			Buckets: lagBuckets,
		}, []string{"provider"}),
		FirstActionLag: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "presave_first_action_lag_seconds", Help: "Delay from due_at to a pre-save's first provider call.",
			Buckets: lagBuckets,
		}, []string{"provider"}),
		Finished: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "presave_finished_total", Help: "Pre-saves reaching a final status, by provider and status.",
		}, []string{"provider", "status"}),
		Revocations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "presave_revocations_total", Help: "Grant revocations at the provider, by provider and outcome.",
		}, []string{"provider", "outcome"}),
		Relayed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "presave_relay_enqueued_total", Help: "Tasks queued from PostgreSQL, by kind (claimed, rescued, revived, revoke).",
		}, []string{"kind"}),
		TokenUnreadable: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "presave_token_unreadable_total", Help: "Stored grants that did not authenticate under their key, by provider.",
		}, []string{"provider"}),
		Stopped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "presave_attempts_stopped_total", Help: "Running attempts stopped by a cancellation before their next provider call, by provider.",
		}, []string{"provider"}),
		BatchRows: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "presave_batch_rows", Help: "Rows per batch of bookkeeping written to PostgreSQL, by statement.",
			Buckets: []float64{1, 2, 5, 10, 20, 50, 100, 200},
		}, []string{"statement"}),
		RedisCommands: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "presave_redis_commands_total", Help: "Commands the worker's own Redis client sent (asynq's not included).",
		}),
		ActionFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "presave_action_failures_total", Help: "Failed pre-save actions, by provider, action and reason.",
		}, []string{"provider", "action", "reason"}),
	}
	if reg != nil {
		reg.MustRegister(m.Actions, m.CallSeconds, m.RateLimited, m.Deferred, m.StartLag, m.FirstActionLag,
			m.Finished, m.Revocations, m.Relayed, m.TokenUnreadable, m.Stopped, m.BatchRows, m.RedisCommands, m.ActionFailures)
	}
	return m
}

// countAction counts one action's result, and its failure's reason.
func (m *Metrics) countAction(p providers.Name, a providers.Action, r store.ActionResult) {
	m.Actions.WithLabelValues(string(p), string(a), string(r.Outcome)).Inc()
	if r.Outcome == providers.OutcomeFailed {
		m.ActionFailures.WithLabelValues(string(p), string(a), r.Reason).Inc()
	}
}

// backlogCollector exports, read at each scrape so every worker reports
// the same current figures, the grants still to revoke
// (presave_revocations_pending, from PostgreSQL) and the YouTube units
// left in the quota day (presave_youtube_units_left, from the shared
// budget in Redis; absent when YOUTUBE_DAILY_UNITS is 0, unlimited).
type backlogCollector struct {
	st *store.Store
	// revocable names the providers with a revoke endpoint: each gets a
	// series, zero included.
	revocable func(providers.Name) bool
	budget    *ratelimit.Budget
	units     int
	log       *slog.Logger
}

var (
	revocationsDesc = prometheus.NewDesc("presave_revocations_pending",
		"Grants still to revoke at the provider, by provider.", []string{"provider"}, nil)
	unitsLeftDesc = prometheus.NewDesc("presave_youtube_units_left",
		"YouTube Data API units left in the current Pacific quota day (YOUTUBE_DAILY_UNITS less what the workers spent).", nil, nil)
	unitsDailyDesc = prometheus.NewDesc("presave_youtube_units_daily",
		"YouTube Data API units a Pacific quota day gives (YOUTUBE_DAILY_UNITS).", nil, nil)
)

// Describe implements prometheus.Collector.
func (c backlogCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- revocationsDesc
	ch <- unitsLeftDesc
	ch <- unitsDailyDesc
}

// Collect implements prometheus.Collector.
func (c backlogCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if pending, err := c.st.PendingRevocations(ctx); err != nil {
		c.log.Warn("metrics: counting pending revocations failed", "err", err)
	} else {
		for _, p := range providers.Names {
			if c.revocable(p) {
				ch <- prometheus.MustNewConstMetric(revocationsDesc, prometheus.GaugeValue, float64(pending[p]), string(p))
			}
		}
	}
	if c.units <= 0 {
		return
	}
	used, err := c.budget.Used(ctx)
	if err != nil {
		c.log.Warn("metrics: reading the YouTube budget failed", "err", err)
		return
	}
	ch <- prometheus.MustNewConstMetric(unitsLeftDesc, prometheus.GaugeValue, float64(max(0, c.units-used)))
	ch <- prometheus.MustNewConstMetric(unitsDailyDesc, prometheus.GaugeValue, float64(c.units))
}
