package api

import (
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"reflect"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/hibiken/asynq"
	asynqmetrics "github.com/hibiken/asynq/x/metrics"
	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"golang.org/x/time/rate"

	"github.com/presave/presave/internal/store"
)

// Context keys.
const (
	fanKey        = "presave.fan"
	wantBasicAuth = "presave.basic"
)

// FanCookie is the name of the cookie that carries the fan token.
const FanCookie = "presave_fan"

func requestID(c echo.Context) string {
	return c.Response().Header().Get(echo.HeaderXRequestID)
}

// routeOf is the route template ("/v1/releases/:id"), never the concrete
// path, so metrics stay bounded and logs never carry an ID from the URL.
func routeOf(c echo.Context) string {
	if p := c.Path(); p != "" {
		return p
	}
	return "unmatched"
}

type httpMetrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

// newMetrics builds the registry served at /metrics: HTTP requests by
// route template and status, their durations, asynq's queue metrics, and
// the Go runtime's.
func newMetrics(insp *asynq.Inspector) (*prometheus.Registry, *httpMetrics) {
	m := &httpMetrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "presave", Subsystem: "http", Name: "requests_total",
			Help: "HTTP requests answered, by method, route template and status.",
		}, []string{"method", "route", "status"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "presave", Subsystem: "http", Name: "request_duration_seconds",
			Help:    "HTTP request durations, by method and route template.",
			Buckets: prometheus.DefBuckets,
		}, []string{"method", "route"}),
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(m.requests, m.duration,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		asynqmetrics.NewQueueMetricsCollector(insp))
	return reg, m
}

// observe logs and measures every request. It renders the error itself
// (c.Error) so that the status it records is the one the client got.
func (s *Server) observe(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		start := time.Now()
		err := next(c)
		if err != nil {
			c.Error(err)
		}
		req, res := c.Request(), c.Response()
		route := routeOf(c)
		d := time.Since(start)
		s.metrics.requests.WithLabelValues(req.Method, route, strconv.Itoa(res.Status)).Inc()
		s.metrics.duration.WithLabelValues(req.Method, route).Observe(d.Seconds())
		// The route template only: a URL's query can hold an OAuth code
		// or state, which must never be logged.
		s.log.InfoContext(req.Context(), "request", "request_id", requestID(c), "method", req.Method,
			"route", route, "status", res.Status, "duration_ms", d.Milliseconds(), "bytes", res.Size)
		return nil
	}
}

// bearer returns the token of an "Authorization: Bearer" header.
func bearer(c echo.Context) (string, bool) {
	h := c.Request().Header.Get(echo.HeaderAuthorization)
	scheme, tok, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(tok) == "" {
		return "", false
	}
	return strings.TrimSpace(tok), true
}

// sameSecret compares in constant time; hashing first hides the length.
func sameSecret(got, want string) bool {
	g, w := sha256.Sum256([]byte(got)), sha256.Sum256([]byte(want))
	return subtle.ConstantTimeCompare(g[:], w[:]) == 1
}

// requireAdmin guards the release endpoints with the admin bearer token.
func (s *Server) requireAdmin(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if err := checkBearer(c, s.cfg.AdminToken, "admin"); err != nil {
			return err
		}
		return next(c)
	}
}

// requireMetrics guards /metrics with the metrics bearer token when one
// is configured. Metric names and label values tell an outsider about
// traffic, queues and failures, though never about a fan.
func (s *Server) requireMetrics(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if s.cfg.MetricsToken != "" {
			if err := checkBearer(c, s.cfg.MetricsToken, "metrics"); err != nil {
				return err
			}
		}
		return next(c)
	}
}

// checkBearer refuses a request whose bearer token is not want, with
// the codes <what>_token_missing and <what>_token_invalid.
func checkBearer(c echo.Context, want, what string) error {
	tok, ok := bearer(c)
	if !ok {
		return errorf(http.StatusUnauthorized, what+"_token_missing", "Send the %s token as Authorization: Bearer <token>.", what)
	}
	if !sameSecret(tok, want) {
		return errorf(http.StatusUnauthorized, what+"_token_invalid", "The %s token is not valid.", what)
	}
	return nil
}

// requireMonitoring guards /monitoring: basic auth with the monitoring
// credentials (for a browser) or the admin bearer token.
func (s *Server) requireMonitoring(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if tok, ok := bearer(c); ok && sameSecret(tok, s.cfg.AdminToken) {
			return next(c)
		}
		if u, p, ok := c.Request().BasicAuth(); ok && s.cfg.MonitoringUser != "" {
			// Both compared, always, so timing does not tell which was wrong.
			uok, pok := sameSecret(u, s.cfg.MonitoringUser), sameSecret(p, s.cfg.MonitoringPassword)
			if uok && pok {
				return next(c)
			}
		}
		c.Set(wantBasicAuth, true)
		return errorf(http.StatusUnauthorized, "unauthorized", "The monitoring UI needs operator credentials.")
	}
}

// fanToken returns the fan token a request carries: an
// "Authorization: Bearer" header, else the presave_fan cookie.
func fanToken(c echo.Context) (string, bool) {
	if tok, ok := bearer(c); ok {
		return tok, true
	}
	if ck, err := c.Cookie(FanCookie); err == nil && ck.Value != "" {
		return ck.Value, true
	}
	return "", false
}

// requireFan resolves the fan token; unknown tokens (and deleted fans)
// get 401.
func (s *Server) requireFan(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		tok, ok := fanToken(c)
		if !ok {
			return errorf(http.StatusUnauthorized, "fan_token_missing", "Send your fan token as Authorization: Bearer <token> or the presave_fan cookie.")
		}
		id, err := s.store.FanByToken(ctxOf(c), tok)
		if errors.Is(err, store.ErrNotFound) {
			return errorf(http.StatusUnauthorized, "fan_token_invalid", "This fan token is not valid (or the account was deleted).")
		}
		if err != nil {
			return err
		}
		c.Set(fanKey, id)
		return next(c)
	}
}

func fanOf(c echo.Context) uuid.UUID {
	id, _ := c.Get(fanKey).(uuid.UUID)
	return id
}

// fanRateLimit limits each client IP on the fan endpoints.
func (s *Server) fanRateLimit() echo.MiddlewareFunc {
	return middleware.RateLimiterWithConfig(middleware.RateLimiterConfig{
		Store: middleware.NewRateLimiterMemoryStoreWithConfig(middleware.RateLimiterMemoryStoreConfig{
			Rate: rate.Limit(s.cfg.FanRateLimit), Burst: s.cfg.FanRateBurst, ExpiresIn: 3 * time.Minute,
		}),
		DenyHandler: func(c echo.Context, _ string, _ error) error {
			return errorf(http.StatusTooManyRequests, "rate_limited", "Too many requests from your address; please wait a moment.")
		},
	})
}

// isMediaType reports whether the request's Content-Type is want
// (parameters such as charset are fine).
func isMediaType(c echo.Context, want string) bool {
	mt, _, err := mime.ParseMediaType(c.Request().Header.Get(echo.HeaderContentType))
	return err == nil && strings.EqualFold(mt, want)
}

// decodeJSON reads a JSON body strictly: application/json only, unknown
// fields refused, one value only.
func decodeJSON(c echo.Context, v any) error {
	if !isMediaType(c, echo.MIMEApplicationJSON) {
		return errorf(http.StatusUnsupportedMediaType, "unsupported_media_type", "Send the request body as application/json.")
	}
	// Read whole (bodies are capped at BodyLimit): encoding/json would
	// quietly replace invalid UTF-8 with U+FFFD, storing what the client
	// never sent.
	body, err := io.ReadAll(c.Request().Body)
	if err != nil {
		return jsonError(err)
	}
	if !utf8.Valid(body) {
		if field := invalidUTF8Field(body); field != "" {
			return errText(field)
		}
		return badRequest("invalid_text", "The request body must be valid UTF-8.")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return jsonError(err)
	}
	if err := dec.Decode(&struct{}{}); !errors.Is(err, io.EOF) {
		return errorf(http.StatusBadRequest, "invalid_json", "The request body must hold exactly one JSON object.")
	}
	return checkStrings("", reflect.ValueOf(v))
}

func jsonError(err error) *Error {
	var he *echo.HTTPError
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &he):
		return AsError(he)
	case errors.Is(err, io.EOF):
		return errorf(http.StatusBadRequest, "invalid_json", "The request body is empty; send a JSON object.")
	case errors.As(err, &syn), errors.Is(err, io.ErrUnexpectedEOF):
		return errorf(http.StatusBadRequest, "invalid_json", "The request body is not valid JSON.")
	case errors.As(err, &typ):
		return errorf(http.StatusBadRequest, "invalid_json", "Field %q has the wrong type (want %s).", typ.Field, typ.Type)
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		return errorf(http.StatusBadRequest, "unknown_field", "Unknown field %s.", strings.TrimPrefix(err.Error(), "json: unknown field "))
	}
	return &Error{Status: http.StatusBadRequest, Code: "invalid_json", Message: fmt.Sprintf("The request body could not be read: %v.", err)}
}
