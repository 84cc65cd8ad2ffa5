// Package deploy_test checks the deployment folder: the Prometheus rules
// (with promtool), the Grafana dashboard and the Kubernetes manifests,
// against each other and against what the binaries really export.
package deploy_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/presave/presave/internal/api"
	"github.com/presave/presave/internal/config"
	"github.com/presave/presave/internal/jobs"
	"github.com/presave/presave/internal/providers/registry"
	"github.com/presave/presave/internal/redistest"
	"github.com/presave/presave/internal/store/storetest"
)

// TestAlertRules: promtool accepts the rules, and its unit tests (each
// alert firing on the series that should raise it, quiet otherwise) pass.
func TestAlertRules(t *testing.T) {
	t.Parallel()
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		// Where scripts/services.sh unpacks it.
		if promtool, err = filepath.Abs("../.local/bin/promtool"); err == nil {
			_, err = os.Stat(promtool)
		}
	}
	if err != nil {
		t.Skip("promtool is not installed (scripts/services.sh unpacks it from Debian's prometheus package)")
	}
	for _, args := range [][]string{{"check", "rules", "alerts.yaml"}, {"test", "rules", "alerts_test.yaml"}} {
		cmd := exec.Command(promtool, args...)
		cmd.Dir = "monitoring"
		out, err := cmd.CombinedOutput()
		if err != nil || !strings.Contains(string(out), "SUCCESS") {
			t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
}

// metricName finds the series names an expression reads.
var metricName = regexp.MustCompile(`\b(?:presave|asynq)_[a-z_]+\b|\bup\b`)

// expressions lists every PromQL expression of the dashboard, the rules
// and the workers' autoscaler, by where it is.
func expressions(t *testing.T) map[string]string {
	t.Helper()
	out := map[string]string{}
	var dash struct {
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	readJSON(t, "monitoring/dashboard.json", &dash)
	for _, p := range dash.Panels {
		for i, tg := range p.Targets {
			out["dashboard "+p.Title+" #"+string(rune('A'+i))] = tg.Expr
		}
	}
	rules, err := os.ReadFile("monitoring/alerts.yaml")
	if err != nil {
		t.Fatal(err)
	}
	// The rules file is YAML; each expression is a block under "expr: |".
	for i, block := range strings.Split(string(rules), "expr: |")[1:] {
		expr, _, _ := strings.Cut(block, "for:")
		out["rule #"+string(rune('1'+i))] = expr
	}
	for _, m := range manifests(t) {
		if m.Kind == "ScaledObject" {
			var so scaledObject
			decodeStrict(t, m, &so)
			for _, tr := range so.Spec.Triggers {
				out["ScaledObject "+so.Metadata.Name] = tr.Metadata["query"]
			}
		}
	}
	return out
}

func readJSON(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

// TestMonitoringNamesRegisteredMetrics: every series the dashboard, the
// rules and the autoscaler read is one the API or a worker registers
// (or Prometheus's own "up"), so no panel or alert watches nothing.
func TestMonitoringNamesRegisteredMetrics(t *testing.T) {
	t.Parallel()
	known := registered(t)
	known["up"] = true
	exprs := expressions(t)
	if len(exprs) < 20 {
		t.Fatalf("found only %d expressions", len(exprs))
	}
	for where, expr := range exprs {
		names := metricName.FindAllString(expr, -1)
		if len(names) == 0 {
			t.Errorf("%s names no series: %q", where, expr)
		}
		for _, n := range names {
			base := strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(n, "_bucket"), "_count"), "_sum")
			if !known[n] && !known[base] {
				t.Errorf("%s reads %s, which neither binary registers", where, n)
			}
		}
	}
}

// registered is every metric name the worker registers (read from the
// descriptions of what it registers) and the API serves on /metrics.
func registered(t *testing.T) map[string]bool {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	db, rd := storetest.New(t), redistest.New(t)
	names := map[string]bool{}
	env := config.Env(func(k string) string {
		return map[string]string{"REDIS_URL": rd.URL, "PRESAVE_DEV": "1", "LOG_LEVEL": "error"}[k]
	})
	provs, err := registry.FromEnv(env, config.DefaultPublicURL)
	if err != nil {
		t.Fatal(err)
	}
	wcfg, err := jobs.LoadConfig(env)
	if err != nil {
		t.Fatal(err)
	}
	w, err := jobs.New(jobs.Deps{Store: db.Store, Providers: provs, Redis: rd.Conn, Registerer: recorder(names)}, wcfg)
	if err != nil {
		t.Fatal(err)
	}
	_ = w // never run: its registrations are what counts

	common, err := config.LoadCommon(env)
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.DiscardHandler)
	acfg, err := api.ConfigFromEnv(env, common, log)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := api.New(acfg, db.Store, provs, log)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	hs := httptest.NewServer(srv.Handler())
	defer hs.Close()
	// A queue with a task, so asynq's queue series exist; a request, so
	// the HTTP series do.
	if _, err := asynq.NewClientFromRedisClient(rd.Client).EnqueueContext(ctx, asynq.NewTask("deploy:test", nil), asynq.Queue("spotify")); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		resp, err := http.Get(hs.URL + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		for _, line := range strings.Split(string(body), "\n") {
			if f := strings.Fields(line); len(f) >= 3 && f[0] == "#" && f[1] == "TYPE" {
				names[f[2]] = true
			}
		}
	}
	for _, want := range []string{"presave_http_requests_total", "asynq_queue_size", "presave_actions_total", "presave_youtube_units_left"} {
		if !names[want] {
			t.Fatalf("%s is not among the registered metrics %v", want, keys(names))
		}
	}
	return names
}

func keys(m map[string]bool) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// recorder is a prometheus.Registerer that keeps the names of what is
// registered on it.
type recorder map[string]bool

var fqName = regexp.MustCompile(`fqName: "([^"]+)"`)

func (r recorder) Register(c prometheus.Collector) error {
	ch := make(chan *prometheus.Desc)
	go func() { c.Describe(ch); close(ch) }()
	for d := range ch {
		if m := fqName.FindStringSubmatch(d.String()); m != nil {
			r[m[1]] = true
		}
	}
	return nil
}

func (r recorder) MustRegister(cs ...prometheus.Collector) {
	for _, c := range cs {
		_ = r.Register(c)
	}
}

func (r recorder) Unregister(prometheus.Collector) bool { return true }
