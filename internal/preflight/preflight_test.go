package preflight_test

import (
	"bytes"
	"context"
	"fmt"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/presave/presave/internal/config"
	"github.com/presave/presave/internal/preflight"
	"github.com/presave/presave/internal/providers"
	"github.com/presave/presave/internal/providers/fake"
	"github.com/presave/presave/internal/providers/registry"
	"github.com/presave/presave/internal/providers/spotify"
	"github.com/presave/presave/internal/redistest"
	"github.com/presave/presave/internal/store"
	"github.com/presave/presave/internal/store/storetest"
)

const (
	appID     = "presave-app"
	appSecret = "the-right-secret"
)

// bundle is one test's deployment: its own schema and Redis database,
// and a fake provider that knows one Spotify app, one Google app and one
// MusicKit key, as the real services would.
type bundle struct {
	t   *testing.T
	db  storetest.Bundle
	env map[string]string
}

func setup(t *testing.T) *bundle {
	t.Helper()
	b := &bundle{t: t, db: storetest.New(t)}
	rdb := redistest.New(t)
	f := fake.New(fake.Options{Apps: []fake.App{
		{Provider: providers.Spotify, ClientID: appID, ClientSecret: appSecret},
		{Provider: providers.YouTube, ClientID: appID, ClientSecret: appSecret},
		// presave's defaults, as cmd/fakeprovider registers them
		{Provider: providers.Spotify, ClientID: registry.DevClientID, ClientSecret: registry.DevClientSecret},
	}})
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	b.env = map[string]string{
		"DATABASE_URL": b.db.URL, "REDIS_URL": rdb.URL, "TOKEN_KEYS": b.db.Keys,
		"PUBLIC_URL":        "https://presave.example.com",
		"SPOTIFY_CLIENT_ID": appID, "SPOTIFY_CLIENT_SECRET": appSecret,
		"GOOGLE_CLIENT_ID": appID, "GOOGLE_CLIENT_SECRET": appSecret,
	}
	for _, kv := range fake.URLs(srv.URL).Env() {
		b.env[kv[0]] = kv[1]
	}
	apple, err := f.AppleMusicEnv()
	if err != nil {
		t.Fatal(err)
	}
	for _, kv := range apple {
		b.env[kv[0]] = kv[1]
	}
	return b
}

func (b *bundle) ctx() context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	b.t.Cleanup(cancel)
	return ctx
}

// run runs preflight with the bundle's environment, changed by set.
func (b *bundle) run(set map[string]string) preflight.Report {
	b.t.Helper()
	env := map[string]string{}
	for k, v := range b.env {
		env[k] = v
	}
	for k, v := range set {
		env[k] = v
	}
	rep := preflight.Run(b.ctx(), config.Env(func(k string) string { return env[k] }))
	var out bytes.Buffer
	if err := rep.Write(&out); err != nil {
		b.t.Fatal(err)
	}
	b.t.Logf("preflight:\n%s", out.String())
	return rep
}

// release stores a release offering Spotify and YouTube, due in dueIn.
func (b *bundle) release(slug string, dueIn time.Duration) store.Release {
	b.t.Helper()
	r, err := b.db.Store.CreateRelease(b.ctx(), store.Release{
		Slug: slug, Title: "Album", Artist: "Artist", Timing: store.TimingFixed,
		ReleaseAt:       time.Now().Add(dueIn).Truncate(time.Second),
		SpotifyAlbumIDs: []string{"4aawyAB9vmqN3uQ7FjRGTy"}, YouTubeVideoID: "dQw4w9WgXcQ",
	})
	if err != nil {
		b.t.Fatal(err)
	}
	return r
}

// consent records a fan's pre-save of r on p, authorized at authorized.
func (b *bundle) consent(r store.Release, p providers.Name, account string, authorized time.Time) {
	b.t.Helper()
	a := providers.ActionSave
	if p == providers.YouTube {
		a = providers.ActionLike
	}
	_, err := b.db.Store.RecordConsent(b.ctx(), store.Consent{
		Provider: p, AccountID: account,
		Token: store.Token{RefreshToken: "refresh-" + account, AccessToken: "access-" + account, Expiry: time.Now().Add(time.Hour),
			Scopes: []string{"a"}, AuthorizedAt: authorized},
		ReleaseID: r.ID, Actions: []providers.Action{a}, ConsentedAt: authorized,
		ConsentVersion: "v1", FanZone: "UTC", DueAt: r.ReleaseAt,
	}, func() (string, error) { return "fan-token-" + uuid.NewString(), nil })
	if err != nil {
		b.t.Fatal(err)
	}
}

// TestAGoodDeploymentPasses: every check is ok, with a release and fans.
func TestAGoodDeploymentPasses(t *testing.T) {
	t.Parallel()
	b := setup(t)
	r := b.release("good", 48*time.Hour)
	b.consent(r, providers.Spotify, "sp-fan", time.Now())
	b.consent(r, providers.YouTube, "yt-fan", time.Now())
	rep := b.run(nil)
	if rep.Failed() {
		t.Fatal("preflight failed")
	}
	want := []string{"postgres", "redis", "token keys", "public url", "spotify credentials", "spotify redirect uri", "spotify app",
		"youtube credentials", "youtube redirect uri", "youtube app", "youtube quota", "applemusic credentials", "applemusic app", "release good"}
	if len(rep.Checks) != len(want) {
		t.Errorf("%d checks, want %d", len(rep.Checks), len(want))
	}
	for i, name := range want {
		c, ok := rep.Find(name)
		if !ok || c.Status != preflight.OK {
			t.Errorf("check %q = %+v, want ok", name, c)
		}
		if i < len(rep.Checks) && rep.Checks[i].Name != name {
			t.Errorf("check %d is %q, want %q", i, rep.Checks[i].Name, name)
		}
	}
	if c, _ := rep.Find("spotify redirect uri"); !strings.Contains(c.Detail, "https://presave.example.com/connect/spotify/callback") {
		t.Errorf("redirect URI line = %q", c.Detail)
	}
	if c, _ := rep.Find("release good"); c.Detail != "open pre-saves: spotify 1, youtube 1" {
		t.Errorf("release line = %q", c.Detail)
	}
}

// TestEachFailure provokes every failing check once: the report fails,
// that check fails and names the fault, and no other check fails.
func TestEachFailure(t *testing.T) {
	t.Parallel()
	otherKey, _, err := fake.GenerateAppleKey()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		set     map[string]string
		prepare func(b *bundle)
		check   string
		detail  string
	}{
		{name: "wrong Spotify secret", set: map[string]string{"SPOTIFY_CLIENT_SECRET": "wrong"}, check: "spotify credentials", detail: "invalid_client"},
		{name: "unknown Spotify client", set: map[string]string{"SPOTIFY_CLIENT_ID": "someone-else"}, check: "spotify credentials", detail: "invalid_client"},
		{name: "wrong Google secret", set: map[string]string{"GOOGLE_CLIENT_SECRET": "wrong"}, check: "youtube credentials", detail: "invalid_client"},
		{name: "MusicKit key Apple does not know", set: map[string]string{"APPLE_PRIVATE_KEY": string(otherKey)}, check: "applemusic credentials", detail: "developer_token_rejected"},
		{name: "HTTP public URL", set: map[string]string{"PUBLIC_URL": "http://presave.example.com"}, check: "public url", detail: "not HTTPS"},
		{name: "localhost public URL", set: map[string]string{"PUBLIC_URL": "http://localhost:8080"}, check: "public url", detail: "localhost"},
		{name: "key missing from the ring", prepare: func(b *bundle) {
			b.consent(b.release("sealed", 48*time.Hour), providers.Spotify, "sp-fan", time.Now())
			b.env["TOKEN_KEYS"] = storetest.RandomKeys("k-new")
		}, check: "token keys", detail: "lacks"},
		{name: "another key under the same ID", prepare: func(b *bundle) {
			b.consent(b.release("sealed", 48*time.Hour), providers.Spotify, "sp-fan", time.Now())
			b.env["TOKEN_KEYS"] = storetest.RandomKeys(strings.SplitN(b.db.Keys, ":", 2)[0])
		}, check: "token keys", detail: "do not open"},
		{name: "public development key", set: map[string]string{"TOKEN_KEYS": "", "PRESAVE_DEV": "1"}, check: "token keys", detail: "development key"},
		{name: "schema behind the build", prepare: func(b *bundle) {
			if _, err := b.db.Store.Pool().Exec(b.ctx(), `UPDATE schema_version SET version = version - 1`); err != nil {
				b.t.Fatal(err)
			}
		}, check: "postgres", detail: "schema at version"},
		{name: "Redis unreachable", set: map[string]string{"REDIS_URL": "redis://127.0.0.1:1/0"}, check: "redis", detail: "127.0.0.1:1"},
		{name: "bad setting", set: map[string]string{"TOKEN_KEYS": "not-a-key"}, check: "configuration", detail: "TOKEN_KEYS"},
		{name: "legacy endpoints in development mode", set: map[string]string{"SPOTIFY_APP_MODE": "development", "SPOTIFY_API_MODE": "legacy"}, check: "providers", detail: "extended quota"},
		{name: "more fans than development mode allows", set: map[string]string{"SPOTIFY_APP_MODE": "development"}, prepare: func(b *bundle) {
			r := b.release("crowded", 48*time.Hour)
			for i := range spotify.DevelopmentUsers + 1 {
				b.consent(r, providers.Spotify, fmt.Sprintf("sp-fan-%d", i), time.Now())
			}
		}, check: "spotify accounts", detail: "refuses the others"},
		{name: "test-mode grants dead by the release", set: map[string]string{"GOOGLE_APP_TESTING": "true"}, prepare: func(b *bundle) {
			r := b.release("far", 5*24*time.Hour)
			b.consent(r, providers.YouTube, "yt-fan", time.Now().Add(-3*24*time.Hour))
		}, check: "release far", detail: "cannot be delivered"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t)
			if tc.prepare != nil {
				tc.prepare(b)
			}
			rep := b.run(tc.set)
			if !rep.Failed() {
				t.Fatal("preflight passed")
			}
			c, ok := rep.Find(tc.check)
			if !ok || c.Status != preflight.Fail || !strings.Contains(c.Detail, tc.detail) || c.Fix == "" {
				t.Errorf("check %q = %+v, want a failure naming %q, with a fix", tc.check, c, tc.detail)
			}
			for _, other := range rep.Checks {
				if other.Status == preflight.Fail && other.Name != tc.check {
					t.Errorf("check %q failed too: %s", other.Name, other.Detail)
				}
			}
		})
	}
}

// TestWarnings: limits the deployment can run with are warned, not
// failed: a development-mode app with room left, or full; a Google app in
// Testing; a loopback public URL; undeclared statuses; development
// credentials the fake knows.
func TestWarnings(t *testing.T) {
	t.Parallel()
	b := setup(t)
	r := b.release("warned", 30*24*time.Hour)
	for i := range spotify.DevelopmentUsers {
		b.consent(r, providers.Spotify, fmt.Sprintf("sp-fan-%d", i), time.Now())
	}
	rep := b.run(map[string]string{"SPOTIFY_APP_MODE": "development", "GOOGLE_APP_TESTING": "true", "PUBLIC_URL": "http://127.0.0.1:8080"})
	if rep.Failed() {
		t.Fatal("preflight failed")
	}
	for name, detail := range map[string]string{
		"public url":       "loopback",
		"spotify app":      "development mode",
		"spotify accounts": "all 5 accounts",
		"youtube app":      "Testing",
		"youtube accounts": "0 of the 100",
		"release warned":   "open pre-saves: spotify 5",
	} {
		c, ok := rep.Find(name)
		want := preflight.Warn
		if name == "youtube accounts" {
			want = preflight.OK
		}
		if !ok || c.Status != want || !strings.Contains(c.Detail, detail) {
			t.Errorf("check %q = %+v, want %s naming %q", name, c, want, detail)
		}
	}
	if c, _ := rep.Find("release warned"); !strings.Contains(c.Fix, "only from") {
		t.Errorf("the release's warning lacks the YouTube grant lifetime: %q", c.Fix)
	}

	rep = b.run(map[string]string{"SPOTIFY_APP_MODE": "", "GOOGLE_APP_TESTING": "", "SPOTIFY_CLIENT_ID": "", "SPOTIFY_CLIENT_SECRET": ""})
	for name, detail := range map[string]string{
		"spotify app":         "SPOTIFY_APP_MODE is not set",
		"youtube app":         "GOOGLE_APP_TESTING is not set",
		"spotify credentials": "development defaults",
	} {
		if c, ok := rep.Find(name); !ok || c.Status != preflight.Warn || !strings.Contains(c.Detail, detail) {
			t.Errorf("check %q = %+v, want a warning naming %q", name, c, detail)
		}
	}
}
