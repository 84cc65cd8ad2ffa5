// Package api is presave's HTTP API: releases for the artist team
// (admin token), the OAuth connect-and-consent flow and self-service for
// fans (fan token), and the operator endpoints (/healthz, /readyz,
// /metrics, /monitoring). Handlers are thin: SQL lives in internal/store,
// provider HTTP in internal/providers, queueing in internal/queue.
//
// Every route is registered in routes.go and documented in openapi.json,
// which is served at /openapi.json. Every error answers
// {"error":{"code":"...","message":"..."}} (see errors.go).
package api

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"net/url"
	"time"
	_ "time/tzdata" // fans' zones must load even where the image has no zoneinfo

	"github.com/hibiken/asynq"
	"github.com/hibiken/asynqmon"
	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/presave/presave/internal/config"
	"github.com/presave/presave/internal/locale"
	"github.com/presave/presave/internal/presave"
	"github.com/presave/presave/internal/providers/registry"
	"github.com/presave/presave/internal/queue"
	"github.com/presave/presave/internal/rdb"
	"github.com/presave/presave/internal/store"
)

// DevAdminToken is the admin token in dev mode when ADMIN_TOKEN is unset.
// It is public: never use it outside a developer's machine.
const DevAdminToken = "dev-admin-token"

// Defaults of the settings read by ConfigFromEnv.
const (
	DefaultConsentVersion = "2026-12-v5"
	DefaultFanRateLimit   = 10
	DefaultFanRateBurst   = 30
	DefaultRequestTimeout = 30 * time.Second
	// BodyLimit caps every request body; releases and starts are small.
	BodyLimit = 64 << 10
	// StateTTL is how long a fan has to come back from the consent
	// screen (the binding cookie lives as long).
	StateTTL = presave.StateTTL
	// minAdminToken is the shortest admin token that passes without a warning.
	minAdminToken = 16
)

// Config is the API's configuration. ConfigFromEnv reads it from the
// environment; tests fill it in directly.
type Config struct {
	// PublicURL is the API's externally visible base URL (OAuth redirect
	// URIs, the Secure flag of the fan cookie).
	PublicURL string
	// AdminToken guards the release endpoints and, with the monitoring
	// credentials, /monitoring.
	AdminToken string
	// MonitoringUser and MonitoringPassword enable HTTP basic auth on
	// /monitoring (for a browser); the admin bearer token works as well.
	MonitoringUser     string
	MonitoringPassword string
	// MetricsToken, when set, guards /metrics: Prometheus sends it as a
	// bearer token (authorization.credentials in a scrape config).
	// Unset, /metrics is open, for a scraper on a private network.
	MetricsToken string
	// MonitoringReadOnly makes asynqmon view-only.
	MonitoringReadOnly bool
	// ConsentVersion is the version of the consent wording fans agree to.
	ConsentVersion string
	// MusicKitJSURL is the MusicKit JS script the Apple Music connect
	// page loads (Apple's, or a stand-in in tests); the page's CSP allows
	// its origin and no other script origin.
	MusicKitJSURL string
	// FanRateLimit (requests per second) and FanRateBurst limit each
	// client IP on the fan endpoints.
	FanRateLimit float64
	FanRateBurst int
	// TrustProxyHeaders takes the client IP from X-Forwarded-For (only
	// behind a proxy that sets it); otherwise the peer address is used.
	TrustProxyHeaders bool
	// Queue is how tasks are queued (RELAY_WINDOW, PRESAVE_MAX_RETRY,
	// PRESAVE_TIMEOUT, REVOKE_MAX_RETRY): the same settings as the
	// workers', so a task the API queues retries and times out alike.
	Queue queue.Config
	// RequestTimeout bounds each request's context.
	RequestTimeout time.Duration
	// RedisURL is the asynq Redis.
	RedisURL string
	// Now is the clock; time.Now when nil. Tests move it to expire states.
	Now func() time.Time
}

// ConfigFromEnv reads the API settings. common supplies REDIS_URL and dev
// mode; log receives the dev-mode warning.
func ConfigFromEnv(env config.Env, common config.Common, log *slog.Logger) (Config, error) {
	c := Config{
		PublicURL:          env.PublicURL(),
		AdminToken:         env.String("ADMIN_TOKEN", ""),
		MonitoringUser:     env.String("MONITORING_USER", ""),
		MonitoringPassword: env.String("MONITORING_PASSWORD", ""),
		MetricsToken:       env.String("METRICS_TOKEN", ""),
		ConsentVersion:     env.String("CONSENT_VERSION", DefaultConsentVersion),
		MusicKitJSURL:      env.String("MUSICKIT_JS_URL", DefaultMusicKitJSURL),
		RedisURL:           common.RedisURL,
	}
	var err error
	if c.MonitoringReadOnly, err = env.Bool("MONITORING_READONLY", false); err != nil {
		return c, err
	}
	if c.TrustProxyHeaders, err = env.Bool("TRUST_PROXY_HEADERS", false); err != nil {
		return c, err
	}
	if c.FanRateLimit, err = env.Float("FAN_RATE_LIMIT", DefaultFanRateLimit); err != nil {
		return c, err
	}
	if c.FanRateBurst, err = env.Int("FAN_RATE_BURST", DefaultFanRateBurst); err != nil {
		return c, err
	}
	if c.Queue, err = queue.LoadConfig(env); err != nil {
		return c, err
	}
	if c.RequestTimeout, err = env.Duration("REQUEST_TIMEOUT", DefaultRequestTimeout); err != nil {
		return c, err
	}
	if c.AdminToken == "" {
		if !common.Dev {
			return c, errors.New("ADMIN_TOKEN is not set: the release endpoints need an operator token. Set ADMIN_TOKEN to a long random value (e.g. head -c 32 /dev/urandom | base64), or PRESAVE_DEV=1 for a development default")
		}
		c.AdminToken = DevAdminToken
		log.Warn("ADMIN_TOKEN is not set: using the public development admin token; never do this in production")
	}
	if len(c.AdminToken) < minAdminToken && c.AdminToken != DevAdminToken {
		log.Warn("ADMIN_TOKEN is short: use at least 16 random characters", "length", len(c.AdminToken))
	}
	if (c.MonitoringUser == "") != (c.MonitoringPassword == "") {
		return c, errors.New("MONITORING_USER and MONITORING_PASSWORD must be set together")
	}
	return c, c.validate()
}

func (c *Config) validate() error {
	u, err := url.Parse(c.PublicURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("PUBLIC_URL=%q: want an absolute http(s) URL such as https://presave.example.com", c.PublicURL)
	}
	if c.AdminToken == "" {
		return errors.New("api: admin token is empty")
	}
	if c.FanRateLimit <= 0 || c.FanRateBurst <= 0 {
		return fmt.Errorf("FAN_RATE_LIMIT and FAN_RATE_BURST must be positive (got %v and %d)", c.FanRateLimit, c.FanRateBurst)
	}
	if c.RequestTimeout <= 0 {
		return errors.New("REQUEST_TIMEOUT must be a positive duration")
	}
	if c.ConsentVersion == "" {
		return errors.New("CONSENT_VERSION is empty")
	}
	if c.MusicKitJSURL == "" {
		c.MusicKitJSURL = DefaultMusicKitJSURL
	}
	if mk, err := url.Parse(c.MusicKitJSURL); err != nil || (mk.Scheme != "https" && !(mk.Scheme == "http" && isLoopback(mk.Hostname()))) || mk.Host == "" {
		return fmt.Errorf("MUSICKIT_JS_URL=%q: want an https URL (http only on loopback), such as %s", c.MusicKitJSURL, DefaultMusicKitJSURL)
	}
	return nil
}

// isLoopback reports whether host is a loopback name or address.
func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsLoopback()
}

// Server is the API. Create it with New, serve Handler, Close it after.
type Server struct {
	cfg       Config
	store     *store.Store
	providers registry.Set
	queue     *queue.Client
	app       *presave.Service
	// limit is the fan endpoints' per-IP rate limit, one budget for the
	// JSON API and the page.
	limit     echo.MiddlewareFunc
	log       *slog.Logger
	echo      *echo.Echo
	redis     redis.UniversalClient
	client    *asynq.Client
	inspector *asynq.Inspector
	monitor   *asynqmon.HTTPHandler
	metrics   *httpMetrics
	registry  *prometheus.Registry

	// locales are the languages the fan-facing texts are written in.
	locales *locale.Set

	// page is the fan's pre-save page, once MountPage has added it.
	page *page
}

// New builds the API. It connects to Redis lazily; Close releases it.
func New(cfg Config, st *store.Store, provs registry.Set, log *slog.Logger) (*Server, error) {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.RequestTimeout == 0 {
		cfg.RequestTimeout = DefaultRequestTimeout
	}
	if cfg.ConsentVersion == "" {
		cfg.ConsentVersion = DefaultConsentVersion
	}
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	conn, err := rdb.Parse(cfg.RedisURL)
	if err != nil {
		return nil, err
	}
	locales, err := locale.Load()
	if err != nil {
		return nil, err
	}
	opt, rc := conn.Asynq(), conn.Client()
	s := &Server{locales: locales,
		cfg: cfg, store: st, providers: provs, log: log, redis: rc,
		client:    asynq.NewClientFromRedisClient(rc),
		inspector: asynq.NewInspectorFromRedisClient(rc),
		monitor:   asynqmon.New(asynqmon.Options{RootPath: monitoringRoot, RedisConnOpt: opt, ReadOnly: cfg.MonitoringReadOnly}),
	}
	if s.queue, err = queue.New(cfg.Queue, st, rc); err != nil {
		return nil, err
	}
	consentIn, err := consentLocales(cfg.ConsentVersion)
	if err != nil {
		return nil, err
	}
	s.app = presave.New(presave.Options{Store: st, Queue: s.queue, Providers: provs, Log: log,
		ConsentVersion: cfg.ConsentVersion, ConsentLocales: consentIn, Now: cfg.Now})
	s.registry, s.metrics = newMetrics(s.inspector)
	s.limit = s.fanRateLimit()
	s.echo = s.routes()
	return s, nil
}

// Handler is the API's http.Handler.
func (s *Server) Handler() http.Handler { return s.echo }

// Echo exposes the router so a front end (the fan page) can add its own
// routes next to the API's and reuse its middleware and error shape.
func (s *Server) Echo() *echo.Echo { return s.echo }

// HTTPServer returns an http.Server for addr with conservative timeouts;
// the handler's own per-request timeout is Config.RequestTimeout.
func (s *Server) HTTPServer(addr string) *http.Server {
	return &http.Server{
		Addr: addr, Handler: s.echo,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      s.cfg.RequestTimeout + 30*time.Second,
		IdleTimeout:       2 * time.Minute,
	}
}

// Close releases the Redis connections (the asynq client and inspector
// share s.redis, so closing it closes them).
func (s *Server) Close() error {
	return errors.Join(s.monitor.Close(), s.redis.Close())
}

func (s *Server) now() time.Time { return s.cfg.Now() }

// ctxOf is the request's context (with the request timeout applied).
func ctxOf(c echo.Context) context.Context { return c.Request().Context() }
