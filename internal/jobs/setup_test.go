package jobs_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/hibiken/asynq"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/oauth2"

	"github.com/presave/presave/internal/config"
	"github.com/presave/presave/internal/jobs"
	"github.com/presave/presave/internal/jobs/jobstest"
	"github.com/presave/presave/internal/providers"
	"github.com/presave/presave/internal/providers/fake"
	"github.com/presave/presave/internal/providers/registry"
	"github.com/presave/presave/internal/redistest"
	"github.com/presave/presave/internal/store"
	"github.com/presave/presave/internal/store/inspect"
	"github.com/presave/presave/internal/store/storetest"
)

// bundle is one test's world: its own schema, Redis database, fake
// provider and in-process worker(s).
type bundle struct {
	t      *testing.T
	db     storetest.Bundle
	st     *store.Store
	rd     redistest.DB
	fake   *fake.Server
	srv    *httptest.Server
	meter  *meter
	env    map[string]string
	provs  registry.Set
	client *asynq.Client
	// reg holds the metrics of the first worker startWorker starts.
	reg     *prometheus.Registry
	regUsed bool
}

// registerer is reg for the first worker, nil (unregistered) after.
func (b *bundle) registerer() prometheus.Registerer {
	if b.regUsed {
		return nil
	}
	b.regUsed = true
	return b.reg
}

// testEnv is the worker configuration tests start from: fast ticks, short
// backoffs, no pacing unless a test sets it.
func testEnv() map[string]string {
	return map[string]string{
		"WORKER_CONCURRENCY":          "20",
		"RELAY_INTERVAL":              "500ms",
		"RELAY_RESCUE_INTERVAL":       "2s",
		"SWEEP_INTERVAL":              "2s",
		"DELAYED_TASK_CHECK_INTERVAL": "100ms",
		"TASK_CHECK_INTERVAL":         "100ms",
		"RETRY_BASE_DELAY":            "100ms",
		"RETRY_MAX_DELAY":             "2s",
		"RATE_LIMIT_BACKOFF_BASE":     "100ms",
		"RATE_LIMIT_BACKOFF_MAX":      "1s",
		"NOT_LIVE_RETRY":              "1s",
		"PRESAVE_TIMEOUT":             "20s",
		"RUNNING_TIMEOUT":             "40s",
		"SHUTDOWN_TIMEOUT":            "5s",
		"SPOTIFY_RPS":                 "0",
		"YOUTUBE_RPS":                 "0",
		"YOUTUBE_DAILY_UNITS":         "1000000",
		"LOG_LEVEL":                   "warn",
	}
}

// setup builds the bundle; env overrides testEnv. It does not start a
// worker (startWorker does), so tests can prepare state first.
func setup(t *testing.T, env map[string]string) *bundle {
	t.Helper()
	b := &bundle{t: t, db: storetest.New(t), rd: redistest.New(t), fake: fake.New(fake.Options{}), reg: prometheus.NewRegistry()}
	b.st = b.db.Store
	b.fake.SetDailyQuota(1_000_000)
	b.meter = &meter{fake: b.fake, next: b.fake}
	b.srv = httptest.NewServer(b.meter)
	t.Cleanup(b.srv.Close)
	b.env = testEnv()
	for k, v := range env {
		b.env[k] = v
	}
	for _, kv := range fake.URLs(b.srv.URL).Env() {
		b.env[kv[0]] = kv[1]
	}
	apple, err := b.fake.AppleMusicEnv()
	if err != nil {
		t.Fatal(err)
	}
	for _, kv := range apple {
		b.env[kv[0]] = kv[1]
	}
	// The releases' Apple Music album, in every storefront.
	b.fake.SetAppleItem(fake.AppleItem{Type: "albums", ID: amAlbum, UPC: amUPC, Tracks: []string{amSong1, amSong2}})
	b.fake.SetAppleItem(fake.AppleItem{Type: "songs", ID: amSong1})
	b.fake.SetAppleItem(fake.AppleItem{Type: "songs", ID: amSong2})
	b.env["DATABASE_URL"] = b.db.URL
	b.env["REDIS_URL"] = b.rd.URL
	b.env["TOKEN_KEYS"] = b.db.Keys
	provs, err := registry.FromEnv(b.getenv, "http://127.0.0.1:8080")
	if err != nil {
		t.Fatal(err)
	}
	b.provs = provs
	b.client = asynq.NewClient(asynq.RedisClientOpt{Addr: b.rd.Opt.Addr, DB: b.rd.Opt.DB, Password: b.rd.Opt.Password})
	t.Cleanup(func() { b.client.Close() })
	return b
}

func (b *bundle) getenv(k string) string { return b.env[k] }

// startWorker runs one in-process worker until the test ends.
func (b *bundle) startWorker() *jobs.Worker {
	b.t.Helper()
	level := slog.LevelWarn
	if os.Getenv("JOBS_TEST_DEBUG") != "" {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(testWriter{b.t}, &slog.HandlerOptions{Level: level}))
	return jobstest.Start(b.t, jobs.Deps{
		Store: b.st, Providers: b.provs,
		Redis: b.rd.Conn, Log: log, Registerer: b.registerer(),
	}, config.Env(b.getenv))
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// Targets the tests' releases ask for.
var (
	spAlbum, spTrack1, spTrack2, spArtist, spPlaylist = "alb1", "trk1", "trk2", "art1", "plsp1"
	ytVideo, ytChannel                                = "vid1", "UCartistchannel000000000"
	myPlaylistName                                    = "Night Drive: The Examples"
	amAlbum, amSong1, amSong2, amUPC                  = "1577502911", "1577502912", "1577502913", "00602445790128"
)

// newRelease creates a fixed-time release with every action available on
// both providers.
func (b *bundle) newRelease(slug string, at time.Time) store.Release {
	b.t.Helper()
	r, err := b.st.CreateRelease(context.Background(), store.Release{
		Slug: slug, Title: "T", Artist: "A", Timing: store.TimingFixed, ReleaseAt: at.UTC(),
		SpotifyAlbumIDs: []string{spAlbum}, SpotifyTrackIDs: []string{spTrack1, spTrack2},
		SpotifyArtistIDs: []string{spArtist}, SpotifyFollowPlaylistID: spPlaylist,
		SpotifyMyPlaylist: store.MyPlaylist{Name: myPlaylistName, Description: "Pre-saved on release day."},
		YouTubeVideoID:    ytVideo, YouTubeChannelID: ytChannel,
		YouTubeMyPlaylist:    store.MyPlaylist{Name: myPlaylistName},
		AppleMusicAlbumIDs:   []string{amAlbum},
		AppleMusicMyPlaylist: store.MyPlaylist{Name: myPlaylistName},
	})
	if err != nil {
		b.t.Fatal(err)
	}
	return r
}

var allActions = map[providers.Name][]providers.Action{
	providers.Spotify:    {providers.ActionSave, providers.ActionFollow, providers.ActionFollowPlaylist, providers.ActionAddToMyPlaylist},
	providers.YouTube:    {providers.ActionLike, providers.ActionSubscribe, providers.ActionAddToMyPlaylist},
	providers.AppleMusic: {providers.ActionAddToLibrary, providers.ActionAddToMyPlaylist},
}

// authURL starts one fan's consent. The providers' AuthCodeURL copies
// an oauth2.Config that Exchange updates concurrently (a data race in
// internal/providers, reported), so tests compute every URL before any
// exchange runs.
func (b *bundle) authURL(p providers.Name, user string) (string, string) {
	if p == providers.AppleMusic {
		// MusicKit JS has no consent URL: consent asks the fake for the
		// token its authorize() would yield.
		return user, ""
	}
	prov := b.provs[p]
	verifier := oauth2.GenerateVerifier()
	return fake.WithUser(prov.AuthCodeURL("state-"+user, verifier, prov.Scopes(allActions[p])), user), verifier
}

// consent plays one fan through the fake's consent screen and records the
// consent, as the API's callback does. It returns the pre-save.
func (b *bundle) consent(ctx context.Context, p providers.Name, authURL, verifier string, rel store.Release) (store.Presave, error) {
	prov := b.provs[p]
	var code string
	if p == providers.AppleMusic {
		// authURL is the user; "user@gb" names a storefront.
		user, sf, _ := strings.Cut(authURL, "@")
		if sf == "" {
			sf = "us"
		}
		dev, err := prov.(interface{ DeveloperToken() (string, error) }).DeveloperToken()
		if err != nil {
			return store.Presave{}, err
		}
		if code, err = b.fake.MusicUserToken(dev, user, sf); err != nil {
			return store.Presave{}, err
		}
	} else {
		q, err := fake.Consent(ctx, authURL)
		if err != nil {
			return store.Presave{}, err
		}
		code = q.Get("code")
	}
	g, err := prov.Exchange(ctx, code, verifier)
	if err != nil {
		return store.Presave{}, err
	}
	due, _ := rel.DueAt("")
	now := time.Now()
	c, err := b.st.RecordConsent(ctx, store.Consent{
		Provider: p, AccountID: g.AccountID,
		Token: store.Token{RefreshToken: g.Token.RefreshToken, AccessToken: g.Token.AccessToken, Expiry: g.Token.Expiry, Scopes: g.Scopes,
			AuthorizedAt: now, Storefront: g.Storefront},
		ReleaseID: rel.ID, Actions: allActions[p], ConsentedAt: now, ConsentVersion: "test-1", FanZone: "UTC", DueAt: due,
	}, nil)
	if err != nil {
		return store.Presave{}, err
	}
	return c.Presave, nil
}

// fan is one consented user.
type fan struct {
	user     string
	provider providers.Name
	presave  store.Presave
}

// consentMany consents n users on each of provs, in parallel.
func (b *bundle) consentMany(rel store.Release, prefix string, n int, provs ...providers.Name) []fan {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	type job struct {
		user, url, verifier string
		p                   providers.Name
	}
	var todo []job
	for i := range n {
		for _, p := range provs {
			user := fmt.Sprintf("%s-%d", prefix, i)
			u, v := b.authURL(p, user)
			todo = append(todo, job{user: user, url: u, verifier: v, p: p})
		}
	}
	var mu sync.Mutex
	var out []fan
	var firstErr error
	sem := make(chan struct{}, 16)
	var wg sync.WaitGroup
	for _, j := range todo {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			ps, err := b.consent(ctx, j.p, j.url, j.verifier, rel)
			mu.Lock()
			defer mu.Unlock()
			if err != nil && firstErr == nil {
				firstErr = fmt.Errorf("consent %s on %s: %w", j.user, j.p, err)
			}
			out = append(out, fan{user: j.user, provider: j.p, presave: ps})
		}()
	}
	wg.Wait()
	if firstErr != nil {
		b.t.Fatal(firstErr)
	}
	return out
}

// waitFor polls cond until it holds or the (generous) deadline passes.
func waitFor(t *testing.T, d time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(d)
	last := ""
	for {
		ok, state := cond()
		if ok {
			return
		}
		last = state
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s; last state: %s", d, what, last)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// statuses counts the fans' pre-saves by status.
func (b *bundle) statuses(fans []fan) map[store.PresaveStatus]int {
	out := map[store.PresaveStatus]int{}
	for _, f := range fans {
		ps, err := b.st.Presave(context.Background(), f.presave.ID)
		if err != nil {
			b.t.Fatal(err)
		}
		out[ps.Status]++
	}
	return out
}

// waitFinal waits until every fan's pre-save reached a final status.
func (b *bundle) waitFinal(fans []fan, d time.Duration) map[store.PresaveStatus]int {
	b.t.Helper()
	var st map[store.PresaveStatus]int
	waitFor(b.t, d, "every pre-save to finish", func() (bool, string) {
		st = b.statuses(fans)
		open := st[store.PresavePending] + st[store.PresaveEnqueued] + st[store.PresaveRunning]
		return open == 0, fmt.Sprint(st)
	})
	return st
}

// assertExactlyOnce checks the fake's state: every action of every fan in
// effect exactly once, one playlist of the fan's own included.
func (b *bundle) assertExactlyOnce(fans []fan) {
	b.t.Helper()
	for _, f := range fans {
		u := b.fake.User(f.provider, f.user)
		if len(u.Playlists) != 1 || u.Playlists[0].Name != myPlaylistName || u.Playlists[0].Public {
			b.t.Errorf("%s %s: own playlists %+v, want one private %q", f.provider, f.user, u.Playlists, myPlaylistName)
			continue
		}
		own := u.Playlists[0].Items
		switch f.provider {
		case providers.Spotify:
			expectOnce(b.t, f, "albums", u.Albums, spAlbum)
			expectOnce(b.t, f, "tracks", u.Tracks, spTrack1, spTrack2)
			expectOnce(b.t, f, "artists", u.Artists, spArtist)
			expectOnce(b.t, f, "followed playlists", u.FollowedPlaylists, spPlaylist)
			expectOnce(b.t, f, "playlist", own, "spotify:track:"+spTrack1, "spotify:track:"+spTrack2)
		case providers.YouTube:
			expectOnce(b.t, f, "likes", u.Likes, ytVideo)
			expectOnce(b.t, f, "subscriptions", u.Subscriptions, ytChannel)
			expectOnce(b.t, f, "playlist", own, ytVideo)
		case providers.AppleMusic:
			expectOnce(b.t, f, "library albums", u.Albums, amAlbum)
			expectOnce(b.t, f, "playlist", own, amSong1, amSong2)
		}
	}
}

func expectOnce(t *testing.T, f fan, what string, got []string, want ...string) {
	t.Helper()
	counts := map[string]int{}
	for _, g := range got {
		counts[g]++
	}
	for _, w := range want {
		if counts[w] != 1 {
			t.Errorf("%s %s: %s has %q %d times (all: %v), want once", f.provider, f.user, what, w, counts[w], got)
		}
	}
}

// assertTokensGone checks invariant 4: no token left for any fan.
func (b *bundle) assertTokensGone(fans []fan) {
	b.t.Helper()
	for _, f := range fans {
		ps, err := b.st.Presave(context.Background(), f.presave.ID)
		if err != nil {
			b.t.Fatal(err)
		}
		has, err := inspect.HasToken(context.Background(), b.st, ps.FanID, f.provider)
		if err != nil {
			b.t.Fatal(err)
		}
		if has {
			b.t.Errorf("%s %s: token still stored after the pre-save finished", f.provider, f.user)
		}
	}
}

// waitRevocationsDone waits until no revocation is pending.
func (b *bundle) waitRevocationsDone(d time.Duration) {
	b.t.Helper()
	waitFor(b.t, d, "every revocation to be processed", func() (bool, string) {
		ids, err := b.st.RevocationIDsAfter(context.Background(), uuid.Nil, 1000)
		if err != nil {
			b.t.Fatal(err)
		}
		return len(ids) == 0, fmt.Sprintf("%d pending", len(ids))
	})
}

// meter wraps the fake and records when each provider API request
// arrived, so a test can check the busiest second of a period it chooses
// (the fake's own MaxRate also counts the consent phase).
type meter struct {
	fake *fake.Server
	next http.Handler
	mu   sync.Mutex
	on   bool
	at   map[providers.Name][]time.Time
}

func (m *meter) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	// The paced API calls only: not the token, revoke, userinfo or
	// MusicKit endpoints, which the limiter does not pace.
	p := m.fake.ProviderOf(r)
	switch {
	case p == providers.Spotify && !strings.HasPrefix(r.URL.Path, "/v1/"),
		p == providers.YouTube && !strings.HasPrefix(r.URL.Path, "/youtube/v3/"),
		p == providers.AppleMusic && !strings.HasPrefix(r.URL.Path, "/v1/"):
		p = ""
	}
	if p != "" {
		now := time.Now()
		m.mu.Lock()
		if m.on {
			if m.at == nil {
				m.at = map[providers.Name][]time.Time{}
			}
			m.at[p] = append(m.at[p], now)
		}
		m.mu.Unlock()
	}
	m.next.ServeHTTP(w, r)
}

func (m *meter) start() {
	m.mu.Lock()
	m.on = true
	m.mu.Unlock()
}

// maxInWindow is the most requests to p that arrived within any window
// of length d, and the total.
func (m *meter) maxInWindow(p providers.Name, d time.Duration) (int, int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	ts := m.at[p]
	best, j := 0, 0
	for i := range ts {
		for ts[i].Sub(ts[j]) >= d {
			j++
		}
		best = max(best, i-j+1)
	}
	return best, len(ts)
}

// counter sums the metric name over every label set (0 when absent).
func (b *bundle) counter(name string) float64 {
	b.t.Helper()
	return b.sumMetric(name, "")
}

// sumMetric sums the counter or gauge name over its series, those with
// the provider label when provider is not empty.
func (b *bundle) sumMetric(name string, provider providers.Name) float64 {
	b.t.Helper()
	mfs, err := b.reg.Gather()
	if err != nil {
		b.t.Fatal(err)
	}
	sum := 0.0
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			match := provider == ""
			for _, l := range m.GetLabel() {
				match = match || (l.GetName() == "provider" && l.GetValue() == string(provider))
			}
			if match {
				sum += m.GetCounter().GetValue() + m.GetGauge().GetValue()
			}
		}
	}
	return sum
}

// histogram returns the sample count and sum of the histogram name's
// series whose label has value.
func (b *bundle) histogram(name, label, value string) (count, sum float64) {
	b.t.Helper()
	mfs, err := b.reg.Gather()
	if err != nil {
		b.t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == label && l.GetValue() == value {
					count += float64(m.GetHistogram().GetSampleCount())
					sum += m.GetHistogram().GetSampleSum()
				}
			}
		}
	}
	return count, sum
}
