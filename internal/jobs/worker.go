package jobs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hibiken/asynq"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/presave/presave/internal/batch"
	"github.com/presave/presave/internal/config"
	"github.com/presave/presave/internal/guard"
	"github.com/presave/presave/internal/providers"
	"github.com/presave/presave/internal/providers/registry"
	"github.com/presave/presave/internal/queue"
	"github.com/presave/presave/internal/ratelimit"
	"github.com/presave/presave/internal/rdb"
	"github.com/presave/presave/internal/store"
)

// Config tunes a Worker. LoadConfig reads it from the environment; the
// zero value of a field means its default.
type Config struct {
	// Concurrency is how many tasks one process runs at once.
	Concurrency int
	// Queues are asynq's queue weights.
	Queues map[string]int
	// DelayedTaskCheckInterval is how often asynq moves due scheduled and
	// retry tasks to pending: the floor of release-day lateness.
	DelayedTaskCheckInterval time.Duration
	// TaskCheckInterval is how long an idle processor sleeps between polls.
	TaskCheckInterval time.Duration
	// ShutdownTimeout is how long in-flight tasks may finish on shutdown
	// before asynq hands them back to the queue.
	ShutdownTimeout time.Duration

	// Queue is how tasks are queued (RELAY_WINDOW, PRESAVE_MAX_RETRY,
	// PRESAVE_TIMEOUT, REVOKE_MAX_RETRY), shared with the API.
	Queue queue.Config
	// RelayInterval is the relay's period.
	RelayInterval time.Duration
	// RelayBatch is how many pre-saves one claim takes.
	RelayBatch int
	// RescueInterval is how often the relay checks that every in-flight
	// pre-save still has its task (after Redis lost data).
	RescueInterval time.Duration
	// SweepInterval is the sweeper's period.
	SweepInterval time.Duration
	// RunningTimeout: a pre-save running longer than this lost its worker.
	// It must exceed Queue.PresaveTimeout plus bookkeeping.
	RunningTimeout time.Duration
	// TokenGrace: the sweeper leaves tokens written more recently alone.
	TokenGrace time.Duration

	// RetryBackoff paces retries of retryable pre-save errors.
	RetryBackoff Backoff
	// RevokeBackoff paces retries of revocations (with Queue.RevokeMaxRetry, days).
	RevokeBackoff Backoff
	// RateLimitBackoff bounds the shared pause after a provider's rate
	// limit that names no wait (YouTube's 403 rateLimitExceeded).
	RateLimitBackoff Backoff
	// NotLiveRetry is the wait before checking again whether a release
	// went live; NotLiveGiveUp is how long after due_at we stop.
	NotLiveRetry  time.Duration
	NotLiveGiveUp time.Duration

	// MaxLimiterWait: a task needing a longer wait for the limiter or a
	// cooldown is deferred instead of holding a worker slot.
	MaxLimiterWait time.Duration

	// BatchMaxRows and BatchMaxWait bound a batch of bookkeeping (the
	// starts and finishes of concurrent pre-saves, written together):
	// BATCH_MAX_ROWS, BATCH_MAX_WAIT. A negative wait (BATCH_MAX_WAIT=0)
	// writes a batch as soon as a flush slot is free; 1 row writes every
	// row alone.
	BatchMaxRows int
	BatchMaxWait time.Duration

	// Guard is the campaign guard (CANARY_SIZE, BREAKER_RATE,
	// BREAKER_WINDOW, HOLD_MAX).
	Guard guard.Config
}

// DefaultQueues are the default queue weights: revocations first (the privacy
// promise), both providers alike, maintenance last.
var DefaultQueues = map[string]int{queue.QueueRevoke: 6, queue.QueueSpotify: 3, queue.QueueYouTube: 3, queue.QueueAppleMusic: 3, queue.QueueMaintenance: 1}

func (c *Config) defaults() {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	if c.Concurrency <= 0 {
		c.Concurrency = 50
	}
	if len(c.Queues) == 0 {
		c.Queues = DefaultQueues
	}
	def(&c.DelayedTaskCheckInterval, 200*time.Millisecond)
	def(&c.TaskCheckInterval, 200*time.Millisecond)
	def(&c.ShutdownTimeout, 25*time.Second)
	c.Queue = c.Queue.WithDefaults()
	def(&c.RelayInterval, 2*time.Second)
	if c.RelayBatch <= 0 {
		c.RelayBatch = 1000
	}
	def(&c.RescueInterval, 30*time.Second)
	def(&c.SweepInterval, 30*time.Second)
	def(&c.RunningTimeout, c.Queue.PresaveTimeout+time.Minute)
	def(&c.TokenGrace, time.Minute)
	def(&c.RetryBackoff.Base, time.Second)
	def(&c.RetryBackoff.Max, 10*time.Minute)
	def(&c.RevokeBackoff.Base, 10*time.Second)
	def(&c.RevokeBackoff.Max, 6*time.Hour)
	def(&c.RateLimitBackoff.Base, ratelimit.BackoffBaseDefault)
	def(&c.RateLimitBackoff.Max, ratelimit.BackoffMaxDefault)
	def(&c.NotLiveRetry, 5*time.Minute)
	def(&c.NotLiveGiveUp, 72*time.Hour)
	def(&c.MaxLimiterWait, 30*time.Second)
	if c.BatchMaxRows <= 0 {
		c.BatchMaxRows = batch.MaxRowsDefault
	}
	if c.BatchMaxWait == 0 {
		c.BatchMaxWait = batch.MaxWaitDefault
	}
	c.Guard = c.Guard.WithDefaults()
}

func (c Config) validate() error {
	// A live handler must never outlast RunningTimeout, or the sweeper
	// would revive its pre-save while it still runs.
	if err := c.Queue.Validate(); err != nil {
		return err
	}
	if err := c.Guard.Validate(); err != nil {
		return err
	}
	if c.BatchMaxWait > time.Second {
		return fmt.Errorf("BATCH_MAX_WAIT (%s) must be at most 1s: every start and finish waits for it", c.BatchMaxWait)
	}
	if c.RunningTimeout < c.Queue.PresaveTimeout+bookkeepingTimeout+5*time.Second {
		return fmt.Errorf("RUNNING_TIMEOUT (%s) must exceed PRESAVE_TIMEOUT (%s) by at least %s",
			c.RunningTimeout, c.Queue.PresaveTimeout, bookkeepingTimeout+5*time.Second)
	}
	for q, w := range c.Queues {
		if !slices.Contains(queue.Queues, q) {
			return fmt.Errorf("QUEUE_WEIGHTS: unknown queue %q (the queues are %s)", q, strings.Join(queue.Queues, ", "))
		}
		if w <= 0 {
			return fmt.Errorf("QUEUE_WEIGHTS: %s=%d: weights must be positive", q, w)
		}
	}
	for _, q := range queue.Queues {
		if _, ok := c.Queues[q]; !ok {
			return fmt.Errorf("QUEUE_WEIGHTS: queue %q is missing (its work would never run)", q)
		}
	}
	return nil
}

// LoadConfig reads the worker's settings (see the README's configuration
// table): the queue settings (queue.LoadConfig), WORKER_CONCURRENCY,
// QUEUE_WEIGHTS, DELAYED_TASK_CHECK_INTERVAL, TASK_CHECK_INTERVAL,
// SHUTDOWN_TIMEOUT, RELAY_INTERVAL, RELAY_BATCH, RELAY_RESCUE_INTERVAL,
// SWEEP_INTERVAL, RUNNING_TIMEOUT, TOKEN_GRACE, RETRY_BASE_DELAY, RETRY_MAX_DELAY, REVOKE_RETRY_MAX_DELAY,
// NOT_LIVE_RETRY, NOT_LIVE_GIVE_UP, SPOTIFY_RPS, SPOTIFY_BURST,
// YOUTUBE_RPS, YOUTUBE_BURST, LIMITER_MAX_WAIT, YOUTUBE_DAILY_UNITS,
// BATCH_MAX_ROWS, BATCH_MAX_WAIT, and
// the guard's (guard.LoadConfig).
func LoadConfig(env config.Env) (Config, error) {
	var c Config
	var errs []error
	intv := func(name string, dst *int) {
		v, err := env.Int(name, 0)
		errs = append(errs, err)
		*dst = v
	}
	durv := func(name string, dst *time.Duration) {
		v, err := env.Duration(name, 0)
		errs = append(errs, err)
		*dst = v
	}
	q, err := queue.LoadConfig(env)
	errs = append(errs, err)
	c.Queue = q
	g, err := guard.LoadConfig(env)
	errs = append(errs, err)
	c.Guard = g
	intv("WORKER_CONCURRENCY", &c.Concurrency)
	durv("DELAYED_TASK_CHECK_INTERVAL", &c.DelayedTaskCheckInterval)
	durv("TASK_CHECK_INTERVAL", &c.TaskCheckInterval)
	durv("SHUTDOWN_TIMEOUT", &c.ShutdownTimeout)
	durv("RELAY_INTERVAL", &c.RelayInterval)
	intv("RELAY_BATCH", &c.RelayBatch)
	durv("RELAY_RESCUE_INTERVAL", &c.RescueInterval)
	durv("SWEEP_INTERVAL", &c.SweepInterval)
	durv("RUNNING_TIMEOUT", &c.RunningTimeout)
	durv("TOKEN_GRACE", &c.TokenGrace)
	durv("RETRY_BASE_DELAY", &c.RetryBackoff.Base)
	durv("RETRY_MAX_DELAY", &c.RetryBackoff.Max)
	durv("REVOKE_RETRY_MAX_DELAY", &c.RevokeBackoff.Max)
	durv("RATE_LIMIT_BACKOFF_BASE", &c.RateLimitBackoff.Base)
	durv("RATE_LIMIT_BACKOFF_MAX", &c.RateLimitBackoff.Max)
	if env.String("PURGE_RETRY_MAX_DELAY", "") != "" {
		errs = append(errs, errors.New("PURGE_RETRY_MAX_DELAY is now REVOKE_RETRY_MAX_DELAY"))
	}
	durv("NOT_LIVE_RETRY", &c.NotLiveRetry)
	durv("NOT_LIVE_GIVE_UP", &c.NotLiveGiveUp)
	durv("LIMITER_MAX_WAIT", &c.MaxLimiterWait)
	intv("BATCH_MAX_ROWS", &c.BatchMaxRows)
	durv("BATCH_MAX_WAIT", &c.BatchMaxWait)
	if c.BatchMaxWait == 0 && env.String("BATCH_MAX_WAIT", "") != "" {
		c.BatchMaxWait = -1 // set to 0: no wait, not the default
	}
	if v := env.String("QUEUE_WEIGHTS", ""); v != "" {
		q, err := ParseQueueWeights(v)
		errs = append(errs, err)
		c.Queues = q
	}
	if err := errors.Join(errs...); err != nil {
		return Config{}, err
	}
	c.defaults()
	return c, c.validate()
}

// ParseQueueWeights parses "revoke=6,spotify=3,youtube=3,maintenance=1".
func ParseQueueWeights(s string) (map[string]int, error) {
	out := map[string]int{}
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		name, w, ok := strings.Cut(part, "=")
		n, err := strconv.Atoi(strings.TrimSpace(w))
		if !ok || err != nil || strings.TrimSpace(name) == "" {
			return nil, fmt.Errorf("QUEUE_WEIGHTS: %q is not queue=weight", part)
		}
		out[strings.TrimSpace(name)] = n
	}
	return out, nil
}

// Deps are what a Worker works with.
type Deps struct {
	Store     *store.Store
	Providers registry.Set
	// Redis is REDIS_URL, read (one server, Sentinel or Cluster): the
	// worker opens asynq's connections and its own clients on it.
	Redis rdb.Conn
	Log   *slog.Logger
	// Registerer receives the metrics (nil: unregistered).
	Registerer prometheus.Registerer
}

// Worker runs presave's background work: the asynq server with the
// pre-save, revoke, relay and sweep handlers, and the tickers that feed
// the relay and the sweeper.
type Worker struct {
	cfg   Config
	st    *store.Store
	provs registry.Set
	// rdb carries the worker's own Redis work (limiter, budget, rescue),
	// counted as presave_redis_commands_total; qrdb the queue client's.
	rdb, qrdb redis.UniversalClient
	log       *slog.Logger
	limiter   *ratelimit.Limiter
	ytBudget  *ratelimit.Budget
	metrics   *Metrics
	queue     *queue.Client
	client    *asynq.Client
	srv       *asynq.Server
	mux       *asynq.ServeMux
	releases  releaseCache
	// storefronts: what releases' codes are in each Apple Music storefront.
	storefronts storefrontCache
	books       *bookkeeping
	// tokenCursor is where this process's sweeps walk the stored tokens
	// on (purgeUnneededTokens).
	sweepMu     sync.Mutex
	tokenCursor store.TokenCursor
}

// New builds a Worker. Close it (Run does) to release its connections.
func New(d Deps, cfg Config) (*Worker, error) {
	cfg.defaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if d.Log == nil {
		d.Log = slog.New(slog.DiscardHandler)
	}
	w := &Worker{cfg: cfg, st: d.Store.WithRevocable(d.Providers.Revocable), provs: d.Providers, log: d.Log}
	w.metrics = NewMetrics(d.Registerer)
	w.rdb, w.qrdb = d.Redis.Client(), d.Redis.Client()
	built := false
	defer func() {
		if !built {
			_ = w.rdb.Close()
			_ = w.qrdb.Close()
		}
	}()
	w.rdb.AddHook(commandCounter{w.metrics.RedisCommands})
	rates := map[string]ratelimit.Rate{}
	for p, r := range cfg.Queue.Rates {
		rates[string(p)] = ratelimit.Rate{PerSecond: r.PerSecond, Burst: r.Burst}
	}
	w.limiter = ratelimit.New(w.rdb, rates).WithBackoff(cfg.RateLimitBackoff.Base, cfg.RateLimitBackoff.Max)
	yt, ok := d.Providers.Get(providers.YouTube)
	if !ok {
		return nil, errors.New("jobs: the YouTube provider is not configured")
	}
	w.ytBudget = ratelimit.NewBudget(w.rdb, "youtube-units", cfg.Queue.YouTubeDailyUnits, yt.QuotaDay)
	if d.Registerer != nil {
		d.Registerer.MustRegister(pausedCollector{st: d.Store, log: d.Log},
			backlogCollector{st: d.Store, revocable: d.Providers.Revocable, budget: w.ytBudget, units: cfg.Queue.YouTubeDailyUnits, log: d.Log},
			prometheus.NewCounterFunc(prometheus.CounterOpts{
				Name: "presave_db_statements_total", Help: "Statements the process sent to PostgreSQL (BEGIN and COMMIT included).",
			}, func() float64 { return float64(d.Store.Statements()) }))
	}
	var err error
	if w.books, err = newBookkeeping(w.st, cfg, w.metrics); err != nil {
		return nil, err
	}
	w.client = asynq.NewClientFromRedisClient(w.qrdb)
	if w.queue, err = queue.New(cfg.Queue, d.Store, w.qrdb); err != nil {
		return nil, err
	}
	w.mux = asynq.NewServeMux()
	w.mux.HandleFunc(queue.TypePresave, w.handlePresave)
	w.mux.HandleFunc(queue.TypeRevoke, w.handleRevoke)
	w.mux.HandleFunc(queue.TypeRelay, w.handleRelay)
	w.mux.HandleFunc(queue.TypeSweep, w.handleSweep)
	w.srv = asynq.NewServer(d.Redis.Asynq(), asynq.Config{
		Concurrency:              cfg.Concurrency,
		Queues:                   cfg.Queues,
		DelayedTaskCheckInterval: cfg.DelayedTaskCheckInterval,
		TaskCheckInterval:        cfg.TaskCheckInterval,
		ShutdownTimeout:          cfg.ShutdownTimeout,
		IsFailure:                isFailure,
		RetryDelayFunc:           w.retryDelay,
		Logger:                   asynqLogger{d.Log},
		LogLevel:                 asynq.WarnLevel,
		ErrorHandler: asynq.ErrorHandlerFunc(func(ctx context.Context, t *asynq.Task, err error) {
			if isFailure(err) {
				id, _ := asynq.GetTaskID(ctx)
				d.Log.Warn("task failed", "type", t.Type(), "task_id", id, "err", err)
			}
		}),
	})
	built = true
	return w, nil
}

// Queue is the worker's queue client (the relay's and the handlers').
func (w *Worker) Queue() *queue.Client { return w.queue }

// Handler is the ServeMux routing task types to handlers.
func (w *Worker) Handler() asynq.Handler { return w.mux }

// Ready reports whether PostgreSQL and Redis answer.
func (w *Worker) Ready(ctx context.Context) error {
	if err := w.st.Ping(ctx); err != nil {
		return fmt.Errorf("postgres: %w", err)
	}
	if err := w.rdb.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("redis: %w", err)
	}
	return nil
}

// Run processes tasks and feeds the relay and the sweeper until ctx ends,
// then shuts down gracefully: in-flight tasks get ShutdownTimeout to
// finish, after which asynq hands them back to their queues.
func (w *Worker) Run(ctx context.Context) error {
	defer w.qrdb.Close()
	defer w.client.Close()
	defer w.rdb.Close()
	if err := w.srv.Start(w.mux); err != nil {
		return fmt.Errorf("jobs: start asynq server: %w", err)
	}
	tctx, stop := context.WithCancel(ctx)
	done := make(chan struct{}, 2)
	go func() { w.tick(tctx, queue.TypeRelay, w.cfg.RelayInterval); done <- struct{}{} }()
	go func() { w.tick(tctx, queue.TypeSweep, w.cfg.SweepInterval); done <- struct{}{} }()
	w.log.Info("worker running", "concurrency", w.cfg.Concurrency, "queues", fmtQueues(w.cfg.Queues),
		"relay_window", w.cfg.Queue.Window, "delayed_task_check_interval", w.cfg.DelayedTaskCheckInterval)
	<-ctx.Done()
	stop()
	<-done
	<-done
	w.srv.Shutdown()
	w.log.Info("worker stopped")
	return nil
}

func fmtQueues(q map[string]int) string {
	names := make([]string, 0, len(q))
	for n := range q {
		names = append(names, n)
	}
	sort.Strings(names)
	var b strings.Builder
	for i, n := range names {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, "%s=%d", n, q[n])
	}
	return b.String()
}

// asynqLogger sends asynq's own logging to slog.
type asynqLogger struct{ l *slog.Logger }

func (a asynqLogger) Debug(args ...any) { a.l.Debug(fmt.Sprint(args...), "component", "asynq") }
func (a asynqLogger) Info(args ...any)  { a.l.Info(fmt.Sprint(args...), "component", "asynq") }
func (a asynqLogger) Warn(args ...any)  { a.l.Warn(fmt.Sprint(args...), "component", "asynq") }
func (a asynqLogger) Error(args ...any) { a.l.Error(fmt.Sprint(args...), "component", "asynq") }

// Fatal honours asynq's contract: log, then exit.
func (a asynqLogger) Fatal(args ...any) {
	a.l.Error(fmt.Sprint(args...), "component", "asynq", "fatal", true)
	os.Exit(1)
}
