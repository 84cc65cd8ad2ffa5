package jobs

import (
	"github.com/prometheus/client_golang/prometheus"
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
	}
	if reg != nil {
		reg.MustRegister(m.Actions, m.CallSeconds, m.RateLimited, m.Deferred, m.StartLag, m.FirstActionLag,
			m.Finished, m.Revocations, m.Relayed, m.TokenUnreadable, m.Stopped, m.BatchRows, m.RedisCommands)
	}
	return m
}
