package api_test

import (
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/presave/presave/internal/config"
	"github.com/presave/presave/internal/jobs"
	"github.com/presave/presave/internal/jobs/jobstest"
	"github.com/presave/presave/internal/providers"
	"github.com/presave/presave/internal/providers/registry"
)

// startWorker runs a real worker in-process against the bundle's
// database, Redis and fake until the test ends, and returns its metrics.
func (b *bundle) startWorker(env map[string]string) *prometheus.Registry {
	t := b.t
	t.Helper()
	vars := map[string]string{
		"DATABASE_URL": b.db.URL, "REDIS_URL": b.rdb.URL, "TOKEN_KEYS": b.db.Keys,
		"RELAY_INTERVAL": "500ms", "DELAYED_TASK_CHECK_INTERVAL": "50ms", "TASK_CHECK_INTERVAL": "50ms",
		"RETRY_BASE_DELAY": "100ms", "RETRY_MAX_DELAY": "1s", "SHUTDOWN_TIMEOUT": "5s",
		"PRESAVE_TIMEOUT": "30s", "RUNNING_TIMEOUT": "60s", "YOUTUBE_DAILY_UNITS": "1000000",
	}
	for k, v := range b.providerEnv {
		vars[k] = v
	}
	for k, v := range env {
		vars[k] = v
	}
	getenv := config.Env(func(k string) string { return vars[k] })
	provs, err := registry.FromEnv(getenv, b.url)
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	jobstest.Start(t, jobs.Deps{
		Store: b.st, Providers: provs,
		Redis: b.rdb.Conn, Log: slog.New(slog.NewTextHandler(b.logs, &slog.HandlerOptions{Level: slog.LevelWarn})), Registerer: reg,
	}, getenv)
	return reg
}

// counterSum sums a counter over its label sets.
func counterSum(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	sum := 0.0
	for _, mf := range mfs {
		if mf.GetName() == name {
			for _, m := range mf.GetMetric() {
				sum += m.GetCounter().GetValue()
			}
		}
	}
	return sum
}

// waitUntil polls cond every 20 ms until it holds (or fails the test).
func waitUntil(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestNoProviderCallStartsAfterACancellationAnswers drains releases with
// a real worker against a slow fake and cancels mid-drain: a release
// cancel, withdrawals and account deletions of pre-saves that are
// running. Once each answer is out, every affected account sees at most
// the one write its attempt had already started; the attempts are
// stopped (the stop metric proves the cancellations met running ones),
// and a write that did complete after a withdrawal shows in the fan's
// export.
func TestNoProviderCallStartsAfterACancellationAnswers(t *testing.T) {
	t.Parallel()
	b := setup(t)
	// Spotify paced at 10 requests/s: most running attempts wait in the
	// limiter, where the stop check is. With one request per pre-save
	// (the library write) and its outcome written in a batch, an attempt
	// past its call has nothing left to stop; at 40/s the cancel
	// sometimes met only those.
	reg := b.startWorker(map[string]string{"WORKER_CONCURRENCY": "12", "SPOTIFY_RPS": "10", "SPOTIFY_BURST": "1"})

	type fanRun struct {
		user, token, presave string
	}
	// connectAll connects n fans quickly, then slows the fake so the
	// drain takes seconds.
	connectAll := func(slug, prefix string, n int) []fanRun {
		b.fake.SetLatency(providers.Spotify, 0)
		out := make([]fanRun, n)
		for i := range out {
			user := fmt.Sprintf("%s-%d", prefix, i)
			c := b.connect(providers.Spotify, slug, user, "")
			out[i] = fanRun{user: user, token: c.FanToken, presave: c.Presave.ID}
		}
		b.fake.SetLatency(providers.Spotify, 60*time.Millisecond)
		return out
	}
	releaseRows := func(slug, where string) int {
		var n int
		if err := b.st.Pool().QueryRow(b.ctx(), `SELECT count(*) FROM presaves p JOIN releases r ON r.id = p.release_id
			WHERE r.slug = $1 AND `+where, slug).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	count := func(slug, status string) int { return releaseRows(slug, "p.status = '"+status+"'") }
	// lateWrites counts the writes to user's account that arrived after t.
	lateWrites := func(user string, after time.Time) int {
		n := 0
		for _, w := range b.fake.WritesSince(after) {
			if w.User == user {
				n++
			}
		}
		return n
	}
	// quiet waits until no attempt of the release's pre-saves is left:
	// every row final, and no write reaching the fake for a while.
	quiet := func(slug string) {
		defer func(start time.Time) { t.Logf("%s settled in %s", slug, time.Since(start)) }(time.Now())
		waitUntil(t, time.Minute, slug+" to settle", func() bool {
			open := releaseRows(slug, "(p.status IN ('pending', 'enqueued', 'running') OR p.lease_until > now())")
			return open == 0 && len(b.fake.WritesSince(time.Now().Add(-time.Second))) == 0
		})
	}

	// A release cancelled at about a third of its drain.
	rel := b.createRelease(releaseBody("cancel-mid-drain", time.Now().Add(3*time.Second)))
	fans := connectAll(rel.Slug, "cancel", 30)
	waitUntil(t, time.Minute, "a third of the drain", func() bool { return count(rel.Slug, "done") >= 8 && count(rel.Slug, "running") >= 3 })
	b.admin(http.MethodPost, "/v1/releases/"+rel.ID+"/cancel", nil, http.StatusOK)
	answered := time.Now()
	quiet(rel.Slug)
	for _, f := range fans {
		if n := lateWrites(f.user, answered); n > 1 {
			t.Errorf("release cancel: %s got %d writes after the answer, want at most 1", f.user, n)
		}
	}
	stopped := counterSum(t, reg, "presave_attempts_stopped_total")
	if stopped == 0 {
		t.Fatalf("no running attempt was stopped: the cancel met none (the test proves nothing)")
	}
	t.Logf("release cancel: %v attempts stopped, %d writes after the answer", stopped, len(b.fake.WritesSince(answered)))

	// Withdrawals and deletions of pre-saves running right now.
	rel2 := b.createRelease(releaseBody("withdraw-mid-drain", time.Now().Add(3*time.Second)))
	fans2 := connectAll(rel2.Slug, "withdraw", 30)
	waitUntil(t, time.Minute, "the drain under way", func() bool { return count(rel2.Slug, "done") >= 3 && count(rel2.Slug, "running") >= 8 })
	var running []fanRun
	for _, f := range fans2 {
		if b.count("presaves", "id = $1 AND status = 'running'", f.presave) == 1 {
			running = append(running, f)
		}
	}
	type answer struct {
		f       fanRun
		at      time.Time
		deleted bool
		running bool
	}
	var (
		mu      sync.Mutex
		answers []answer
		wg      sync.WaitGroup
	)
	for i, f := range running[:min(len(running), 8)] {
		wg.Add(1)
		go func() {
			defer wg.Done()
			a := answer{f: f, deleted: i%3 == 2}
			if a.deleted {
				r := b.do(req{method: http.MethodDelete, path: "/v1/me", header: fanHeader(f.token)})
				var out struct {
					Running int `json:"running"`
				}
				r.decode(t, &out)
				a.at, a.running = time.Now(), out.Running > 0
			} else {
				r := b.do(req{method: http.MethodDelete, path: "/v1/me/presaves/" + f.presave, header: fanHeader(f.token)})
				var out struct {
					AttemptRunning bool `json:"attempt_running"`
				}
				r.decode(t, &out)
				a.at, a.running = time.Now(), out.AttemptRunning
			}
			mu.Lock()
			answers = append(answers, a)
			mu.Unlock()
		}()
	}
	wg.Wait()
	quiet(rel2.Slug)
	sawRunning, lateTotal := false, 0
	defer func() { t.Logf("withdraw/delete: %d answers, %d writes after them", len(answers), lateTotal) }()
	for _, a := range answers {
		sawRunning = sawRunning || a.running
		late := lateWrites(a.f.user, a.at)
		lateTotal += late
		if late > 1 {
			t.Errorf("%s (deleted %v): %d writes after the answer, want at most 1", a.f.user, a.deleted, late)
		}
		if a.deleted || late == 0 {
			continue
		}
		// The write that completed after the withdrawal is in the export:
		// an action's result, or the fan's own playlist its creation made.
		var ex struct {
			Presaves []struct {
				ID            string `json:"id"`
				Status        string `json:"status"`
				OwnPlaylistID string `json:"own_playlist_id"`
				Results       map[string]struct {
					Outcome string    `json:"outcome"`
					At      time.Time `json:"at"`
				} `json:"results"`
			} `json:"presaves"`
		}
		b.do(req{method: http.MethodGet, path: "/v1/me", header: fanHeader(a.f.token)}).decode(t, &ex)
		found := false
		for _, p := range ex.Presaves {
			found = found || (p.ID == a.f.presave && p.Status == "cancelled" && p.OwnPlaylistID != "" && p.Results["add_to_my_playlist"].Outcome == "")
			for _, r := range p.Results {
				found = found || (p.ID == a.f.presave && p.Status == "cancelled" && r.Outcome != "failed" && r.At.After(a.at))
			}
		}
		if !found {
			t.Errorf("%s: a write completed after the withdrawal, and the export does not show it: %+v", a.f.user, ex.Presaves)
		}
	}
	if !sawRunning {
		t.Fatalf("no answer reported a running attempt: the cancellations met none (the test proves nothing)")
	}
}
