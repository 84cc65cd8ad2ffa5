package api_test

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/presave/presave/internal/api"
	"github.com/presave/presave/internal/providers"
)

func basic(user, pass string) map[string]string {
	return map[string]string{"Authorization": "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pass))}
}

func TestMonitoringNeedsOperatorCredentials(t *testing.T) {
	t.Parallel()
	b := setup(t)
	for name, h := range map[string]map[string]string{
		"anonymous":       nil,
		"wrong password":  basic("ops", "wrong"),
		"wrong user":      basic("root", "ops-password"),
		"fan-like bearer": fanHeader("not-the-admin-token"),
	} {
		for _, path := range []string{"/monitoring", "/monitoring/", "/monitoring/api/queues"} {
			r := b.do(req{method: http.MethodGet, path: path, header: h})
			if r.Status != http.StatusUnauthorized || r.errorCode(t) != "unauthorized" {
				t.Errorf("%s %s: HTTP %d %s", name, path, r.Status, r.Body)
			}
			if !strings.HasPrefix(r.Header.Get("WWW-Authenticate"), "Basic ") {
				t.Errorf("%s %s: no basic auth challenge", name, path)
			}
		}
	}
	for name, h := range map[string]map[string]string{"basic auth": basic("ops", "ops-password"), "admin token": adminHeader()} {
		r := b.do(req{method: http.MethodGet, path: "/monitoring/", header: h})
		if r.Status != http.StatusOK || !strings.Contains(r.Header.Get("Content-Type"), "text/html") || !strings.Contains(string(r.Body), "<html") {
			t.Errorf("%s: UI answered HTTP %d %q", name, r.Status, r.Header.Get("Content-Type"))
		}
		r = b.do(req{method: http.MethodGet, path: "/monitoring/api/queues", header: h})
		if r.Status != http.StatusOK || !json.Valid(r.Body) {
			t.Errorf("%s: UI API answered HTTP %d %s", name, r.Status, r.Body)
		}
	}
}

func TestMonitoringReadOnlyRefusesChanges(t *testing.T) {
	t.Parallel()
	b := setup(t, func(c *api.Config) { c.MonitoringReadOnly = true })
	rel := b.createRelease(releaseBody("read-only", time.Now().Add(5*time.Minute)))
	b.connect(providers.Spotify, rel.Slug, "", "") // something in a queue
	r := b.do(req{method: http.MethodPost, path: "/monitoring/api/queues/spotify:pause", header: basic("ops", "ops-password")})
	if r.Status < 400 {
		t.Errorf("pausing a queue in read-only mode: HTTP %d", r.Status)
	}
	if r := b.do(req{method: http.MethodGet, path: "/monitoring/api/queues", header: basic("ops", "ops-password")}); r.Status != http.StatusOK {
		t.Errorf("reading in read-only mode: HTTP %d", r.Status)
	}
}

func TestMetricsExposeHTTPAndQueues(t *testing.T) {
	t.Parallel()
	b := setup(t)
	rel := b.createRelease(releaseBody("metrics", time.Now().Add(5*time.Minute)))
	b.openGuards(rel)
	b.connect(providers.YouTube, rel.Slug, "", "") // queues a task
	b.do(req{method: http.MethodGet, path: "/healthz"})
	b.do(req{method: http.MethodGet, path: "/no/such/page"})

	r := b.do(req{method: http.MethodGet, path: "/metrics"})
	if r.Status != http.StatusOK {
		t.Fatalf("/metrics: HTTP %d", r.Status)
	}
	body := string(r.Body)
	for _, want := range []string{
		`presave_http_requests_total{method="GET",route="/healthz",status="200"} 1`,
		`presave_http_requests_total{method="POST",route="/v1/releases",status="201"} 1`,
		`presave_http_requests_total{method="GET",route="/connect/youtube/callback",status="200"} 1`,
		`presave_http_request_duration_seconds_bucket{method="POST",route="/v1/connect/:provider/start",le=`,
		`asynq_queue_size{queue="youtube"} 1`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	// Unknown paths are counted under one label, never by their path.
	if strings.Contains(body, "/no/such/page") || !regexp.MustCompile(`presave_http_requests_total\{method="GET",route="[^"]+",status="404"\} 1`).MatchString(body) {
		t.Errorf("404s are not counted under a bounded route label")
	}
}

func TestHealthAndReadiness(t *testing.T) {
	t.Parallel()
	b := setup(t)
	if r := b.do(req{method: http.MethodGet, path: "/healthz"}); r.Status != http.StatusOK {
		t.Errorf("/healthz: HTTP %d", r.Status)
	}
	r := b.do(req{method: http.MethodGet, path: "/readyz"})
	if r.Status != http.StatusOK || !strings.Contains(string(r.Body), `"redis":"ok"`) {
		t.Errorf("/readyz: HTTP %d %s", r.Status, r.Body)
	}
	if r.Header.Get("X-Request-Id") == "" {
		t.Errorf("no X-Request-Id")
	}

	// Redis down: not ready, but alive.
	down := setup(t, func(c *api.Config) { c.RedisURL = "redis://127.0.0.1:1/0" })
	r = down.do(req{method: http.MethodGet, path: "/readyz"})
	if r.Status != http.StatusServiceUnavailable || r.errorCode(t) != "not_ready" {
		t.Errorf("/readyz without Redis: HTTP %d %s", r.Status, r.Body)
	}
	if r := down.do(req{method: http.MethodGet, path: "/healthz"}); r.Status != http.StatusOK {
		t.Errorf("/healthz without Redis: HTTP %d", r.Status)
	}
}

func TestFanEndpointsAreRateLimitedPerIP(t *testing.T) {
	t.Parallel()
	b := setup(t, func(c *api.Config) { c.FanRateLimit, c.FanRateBurst = 0.001, 2 })
	for i := range 2 {
		if r := b.do(req{method: http.MethodGet, path: "/v1/me"}); r.Status != http.StatusUnauthorized {
			t.Fatalf("request %d: HTTP %d", i, r.Status)
		}
	}
	for _, path := range []string{"/v1/me", "/connect/spotify/callback?state=x&code=y", "/v1/connect/spotify/start?release=x&consent=1"} {
		if r := b.do(req{method: http.MethodGet, path: path}); r.Status != http.StatusTooManyRequests || r.errorCode(t) != "rate_limited" {
			t.Errorf("%s over the limit: HTTP %d %s", path, r.Status, r.Body)
		}
	}
	// The limit is for fan endpoints only.
	for range 5 {
		b.admin(http.MethodGet, "/v1/releases", nil, http.StatusOK)
	}
}

// TestOpenAPIDocumentsEveryRoute keeps openapi.json and routes.go in step.
func TestOpenAPIDocumentsEveryRoute(t *testing.T) {
	t.Parallel()
	b := setup(t)
	r := b.do(req{method: http.MethodGet, path: "/openapi.json"})
	var doc struct {
		OpenAPI string                    `json:"openapi"`
		Paths   map[string]map[string]any `json:"paths"`
	}
	r.decode(t, &doc)
	if r.Status != http.StatusOK || !strings.HasPrefix(doc.OpenAPI, "3.") {
		t.Fatalf("/openapi.json: HTTP %d", r.Status)
	}
	param := regexp.MustCompile(`:(\w+)`)
	routed := map[string]bool{}
	for _, rt := range b.srv.Echo().Routes() {
		if strings.HasPrefix(rt.Path, "/monitoring") || strings.HasPrefix(rt.Method, "echo_") || rt.Method == "RouteNotFound" {
			continue
		}
		path := param.ReplaceAllString(rt.Path, "{$1}")
		op := strings.ToLower(rt.Method)
		routed[path+" "+op] = true
		if _, ok := doc.Paths[path][op]; !ok {
			t.Errorf("route %s %s is not in openapi.json", rt.Method, path)
		}
	}
	for path, ops := range doc.Paths {
		for op := range ops {
			if op == "parameters" || path == "/monitoring" {
				continue
			}
			if !routed[path+" "+op] {
				t.Errorf("openapi.json documents %s %s, which is not routed", op, path)
			}
		}
	}
}

func TestMetricsTokenGuardsMetrics(t *testing.T) {
	t.Parallel()
	b := setup(t, func(c *api.Config) { c.MetricsToken = "scrape-secret-0123456789" })
	for _, tc := range []struct {
		name   string
		header map[string]string
		status int
		code   string
	}{
		{"anonymous", nil, http.StatusUnauthorized, "metrics_token_missing"},
		{"wrong token", fanHeader("scrape-secret-wrong"), http.StatusUnauthorized, "metrics_token_invalid"},
		{"admin token is not the metrics token", fanHeader(adminToken), http.StatusUnauthorized, "metrics_token_invalid"},
		{"basic auth", basic("ops", "ops-password"), http.StatusUnauthorized, "metrics_token_missing"},
		{"metrics token", fanHeader("scrape-secret-0123456789"), http.StatusOK, ""},
	} {
		r := b.do(req{method: http.MethodGet, path: "/metrics", header: tc.header})
		if r.Status != tc.status {
			t.Errorf("%s: HTTP %d, want %d", tc.name, r.Status, tc.status)
			continue
		}
		if tc.code != "" {
			if got := r.errorCode(t); got != tc.code {
				t.Errorf("%s: code %q, want %q", tc.name, got, tc.code)
			}
			if strings.Contains(string(r.Body), "presave_http_requests_total") {
				t.Errorf("%s: metrics leaked in a refusal", tc.name)
			}
		} else if !strings.Contains(string(r.Body), "presave_http_requests_total") {
			t.Errorf("%s: no metrics in the answer", tc.name)
		}
	}
	// The other operations endpoints stay open to probes.
	if r := b.do(req{method: http.MethodGet, path: "/healthz"}); r.Status != http.StatusOK {
		t.Errorf("/healthz with a metrics token set: HTTP %d", r.Status)
	}
}
