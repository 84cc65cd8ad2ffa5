package fake_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/presave/presave/internal/providers"
	"github.com/presave/presave/internal/providers/fake"
	"github.com/presave/presave/internal/providers/spotify"
)

type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) { s.mu.Lock(); defer s.mu.Unlock(); return s.b.Write(p) }
func (s *syncBuf) String() string              { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

func connect(t *testing.T, ctx context.Context, p *spotify.Provider, user string) (*oauth2.Token, string) {
	t.Helper()
	tok, code, err := tryConnect(ctx, p, user)
	if err != nil {
		t.Fatal(err)
	}
	return tok, code
}

func tryConnect(ctx context.Context, p *spotify.Provider, user string) (*oauth2.Token, string, error) {
	v := oauth2.GenerateVerifier()
	q, err := fake.Consent(ctx, fake.WithUser(p.AuthCodeURL("s", v, p.Scopes([]providers.Action{providers.ActionSave, providers.ActionAddToMyPlaylist})), user))
	if err != nil {
		return nil, "", err
	}
	g, err := p.Exchange(ctx, q.Get("code"), v)
	if err != nil {
		return nil, "", err
	}
	return g.Token, q.Get("code"), nil
}

func newSpotify(base string) *spotify.Provider {
	u := fake.URLs(base)
	return spotify.New(spotify.Config{ClientID: "app", ClientSecret: "s", RedirectURL: "https://app.test/cb",
		AccountsURL: u.SpotifyAccountsURL, APIURL: u.SpotifyAPIURL})
}

func get(t *testing.T, url, tok string) *http.Response {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp
}

func TestRateLimitIsExact(t *testing.T) {
	var mu sync.Mutex
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	f := fake.New(fake.Options{Now: clock})
	srv := httptest.NewServer(f)
	defer srv.Close()
	ctx := context.Background()
	tok, _ := connect(t, ctx, newSpotify(srv.URL), "u1")

	f.SetRateLimit(providers.Spotify, 10, 5) // 10/s, burst 5
	ok, limited := 0, 0
	for range 20 {
		resp := get(t, srv.URL+"/v1/me", tok.AccessToken)
		switch resp.StatusCode {
		case 200:
			ok++
		case 429:
			limited++
			if resp.Header.Get("Retry-After") != "1" { // 100ms rounded up to whole seconds
				t.Fatalf("Retry-After = %q", resp.Header.Get("Retry-After"))
			}
		}
	}
	if ok != 5 || limited != 15 {
		t.Fatalf("at one instant: %d ok, %d limited; want 5 and 15", ok, limited)
	}
	mu.Lock()
	now = now.Add(100 * time.Millisecond) // one more token
	mu.Unlock()
	if get(t, srv.URL+"/v1/me", tok.AccessToken).StatusCode != 200 || get(t, srv.URL+"/v1/me", tok.AccessToken).StatusCode != 429 {
		t.Fatal("after 100ms exactly one more request should pass")
	}
	if n := f.Calls("GET /v1/me", 429); n != 16 {
		t.Fatalf("429 count = %d, want 16", n)
	}
}

func TestControlAPIAndState(t *testing.T) {
	f := fake.New(fake.Options{})
	srv := httptest.NewServer(f)
	defer srv.Close()
	ctx := context.Background()
	p := newSpotify(srv.URL)
	tok, _ := connect(t, ctx, p, "fan1")

	post := func(path, body string) {
		t.Helper()
		resp, err := http.Post(srv.URL+path, "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode >= 300 {
			t.Fatalf("POST %s = %d", path, resp.StatusCode)
		}
	}
	post("/_fake/notlive", fmt.Sprintf(`{"id":"alb","until":%q}`, time.Now().Add(time.Hour).Format(time.RFC3339)))
	c := p.Client(ctx, tok, nil)
	tgt := providers.Target{AlbumIDs: []string{"alb"}, TrackIDs: []string{"t1"}, AccountID: "fan1",
		MyPlaylist: providers.MyPlaylist{Name: "Mine", Key: "rel"}}
	if _, err := c.Perform(ctx, providers.ActionSave, tgt); providers.ClassOf(err) != providers.NotLiveYet {
		t.Fatalf("not live: %v", err)
	}
	post("/_fake/notlive", `{"id":"alb"}`)
	post("/_fake/faults", `{"provider":"spotify","latency":"20ms","error_rate":0}`)
	start := time.Now()
	if _, err := c.Perform(ctx, providers.ActionSave, tgt); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d < 20*time.Millisecond { // one PUT: saving is not checked first
		t.Fatalf("latency not applied: %v", d)
	}
	post("/_fake/faults", `{"provider":"spotify","latency":"0s"}`)
	id, err := c.OwnPlaylist(ctx, tgt)
	if err != nil {
		t.Fatal(err)
	}
	tgt.MyPlaylist.ID = id
	if _, err := c.Perform(ctx, providers.ActionAddToMyPlaylist, tgt); err != nil {
		t.Fatal(err)
	}
	post("/_fake/quota", `{"provider":"spotify","exhausted":true}`)
	if _, err := c.Perform(ctx, providers.ActionSave, providers.Target{TrackIDs: []string{"t9"}}); providers.ClassOf(err) != providers.QuotaExhausted {
		t.Fatalf("quota: %v", err)
	}
	post("/_fake/quota", `{"provider":"spotify","reset":true}`)
	post("/_fake/revoke", `{"provider":"spotify","user":"fan1"}`)
	// The access token the client holds dies with its grant, and so does
	// the refresh token behind it.
	if _, err := c.Perform(ctx, providers.ActionSave, tgt); providers.ClassOf(err) != providers.GrantInvalid {
		t.Fatalf("after revoking the grant: %v, want a grant-invalid error", err)
	}

	resp, err := http.Get(srv.URL + "/_fake/state")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var st fake.State
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		t.Fatal(err)
	}
	if len(st.Users) != 1 || st.Users[0].ID != "fan1" || strings.Join(st.Users[0].Albums, ",") != "alb" ||
		len(st.Users[0].Playlists) != 1 || strings.Join(st.Users[0].Playlists[0].Items, ",") != "spotify:track:t1" {
		t.Fatalf("state users = %+v", st.Users)
	}
	if len(st.Grants) != 1 || !st.Grants[0].Revoked || st.Grants[0].ClientID != "app" {
		t.Fatalf("state grants = %+v", st.Grants)
	}
	if st.Calls["PUT /v1/me/library 400"] != 1 || st.Calls["PUT /v1/me/library 200"] != 1 || st.Calls["PUT /v1/me/library 429"] != 1 {
		t.Fatalf("state calls = %v", st.Calls)
	}
	if st.MaxRate[providers.Spotify] < 1 {
		t.Fatalf("max rate = %v", st.MaxRate)
	}
	for _, s := range []string{tok.AccessToken, tok.RefreshToken} {
		if b, _ := json.Marshal(st); strings.Contains(string(b), s) {
			t.Fatal("state exposes a token")
		}
	}
	// Bad control input is refused.
	r2, _ := http.Post(srv.URL+"/_fake/faults", "application/json", strings.NewReader(`{"provider":"myspace"}`))
	r2.Body.Close()
	if r2.StatusCode != http.StatusBadRequest {
		t.Fatalf("bad provider: %d", r2.StatusCode)
	}
}

// postToken posts a token request and returns the status and the OAuth
// error code ("" on success).
func postToken(t *testing.T, u string, form url.Values) (int, string) {
	t.Helper()
	resp, err := http.PostForm(u, form)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct {
		Error string `json:"error"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, body.Error
}

func TestTokenEndpoint(t *testing.T) {
	f := fake.New(fake.Options{})
	srv := httptest.NewServer(f)
	defer srv.Close()
	for _, tc := range []struct {
		name, path string
		form       url.Values
		status     int
		errCode    string
	}{
		{"unknown refresh token", "/api/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {"nope"}, "client_id": {"app"}}, 400, "invalid_grant"},
		{"unknown code", "/google/token", url.Values{"grant_type": {"authorization_code"}, "code": {"nope"}, "client_id": {"app"}}, 400, "invalid_grant"},
		{"no client", "/api/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {"x"}}, 401, "invalid_client"},
		{"bad grant type", "/api/token", url.Values{"grant_type": {"password"}, "client_id": {"app"}}, 400, "unsupported_grant_type"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if status, code := postToken(t, srv.URL+tc.path, tc.form); status != tc.status || code != tc.errCode {
				t.Fatalf("got %d %q, want %d %q", status, code, tc.status, tc.errCode)
			}
		})
	}
}

// With apps registered, the token endpoints authenticate the client as
// the services do, and the consent screens refuse an unknown client and
// an insecure redirect URI.
func TestRegisteredApps(t *testing.T) {
	f := fake.New(fake.Options{Apps: []fake.App{
		{Provider: providers.Spotify, ClientID: "app", ClientSecret: "right"},
		{Provider: providers.YouTube, ClientID: "app", ClientSecret: "right"},
	}})
	srv := httptest.NewServer(f)
	defer srv.Close()
	cc := url.Values{"grant_type": {"client_credentials"}}
	code := url.Values{"grant_type": {"authorization_code"}, "code": {"nope"}}
	with := func(v url.Values, kv ...string) url.Values {
		out := url.Values{}
		for k, vs := range v {
			out[k] = vs
		}
		for i := 0; i < len(kv); i += 2 {
			out.Set(kv[i], kv[i+1])
		}
		return out
	}
	for _, tc := range []struct {
		name, path string
		form       url.Values
		status     int
		errCode    string
	}{
		{"spotify app token", "/api/token", with(cc, "client_id", "app", "client_secret", "right"), 200, ""},
		{"spotify wrong secret", "/api/token", with(cc, "client_id", "app", "client_secret", "wrong"), 401, "invalid_client"},
		{"spotify unknown client", "/api/token", with(cc, "client_id", "other", "client_secret", "right"), 401, "invalid_client"},
		{"spotify app token without secret", "/api/token", with(cc, "client_id", "app"), 401, "invalid_client"},
		{"spotify PKCE exchange without secret", "/api/token", with(code, "client_id", "app"), 400, "invalid_grant"},
		{"google right secret, bad code", "/google/token", with(code, "client_id", "app", "client_secret", "right"), 400, "invalid_grant"},
		{"google wrong secret", "/google/token", with(code, "client_id", "app", "client_secret", "wrong"), 401, "invalid_client"},
		{"google without secret", "/google/token", with(code, "client_id", "app"), 400, "invalid_request"},
		{"google unknown client", "/google/token", with(code, "client_id", "other", "client_secret", "right"), 401, "invalid_client"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if status, code := postToken(t, srv.URL+tc.path, tc.form); status != tc.status || code != tc.errCode {
				t.Fatalf("got %d %q, want %d %q", status, code, tc.status, tc.errCode)
			}
		})
	}
	hc := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	for _, tc := range []struct {
		name, path, client, redirect string
		status                       int
	}{
		{"spotify https", "/authorize", "app", "https://presave.example/cb", http.StatusFound},
		{"spotify loopback IP", "/authorize", "app", "http://127.0.0.1:8080/cb", http.StatusFound},
		{"spotify IPv6 loopback", "/authorize", "app", "http://[::1]:8080/cb", http.StatusFound},
		{"spotify localhost", "/authorize", "app", "http://localhost:8080/cb", http.StatusBadRequest},
		{"spotify plain http", "/authorize", "app", "http://presave.example/cb", http.StatusBadRequest},
		{"spotify unknown client", "/authorize", "other", "https://presave.example/cb", http.StatusBadRequest},
		{"google localhost", "/o/oauth2/auth", "app", "http://localhost:8080/cb", http.StatusFound},
		{"google plain http", "/o/oauth2/auth", "app", "http://presave.example/cb", http.StatusBadRequest},
	} {
		q := url.Values{"client_id": {tc.client}, "response_type": {"code"}, "redirect_uri": {tc.redirect}, "state": {"s"}}
		resp, err := hc.Get(srv.URL + tc.path + "?" + q.Encode())
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.status {
			t.Errorf("%s: HTTP %d, want %d", tc.name, resp.StatusCode, tc.status)
		}
	}
}

// Many fans at once, with latency: every playlist ends with exactly one
// entry per track, and nothing logs a token or a code.
func TestConcurrentFansAndNoSecretsInLogs(t *testing.T) {
	logs := &syncBuf{}
	f := fake.New(fake.Options{Logger: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	f.SetLatency(providers.Spotify, 2*time.Millisecond)
	srv := httptest.NewServer(f)
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	p := newSpotify(srv.URL)
	const fans = 40
	var wg sync.WaitGroup
	secrets := make(chan string, 3*fans)
	errs := make(chan error, fans)
	for i := range fans {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tok, code, err := tryConnect(ctx, p, fmt.Sprintf("fan%02d", i))
			if err != nil {
				errs <- err
				return
			}
			secrets <- tok.AccessToken
			secrets <- tok.RefreshToken
			secrets <- code
			c := p.Client(ctx, tok, nil)
			tgt := providers.Target{AlbumIDs: []string{"a"}, TrackIDs: []string{"t1", "t2", "t3"}, AccountID: fmt.Sprintf("fan%02d", i),
				MyPlaylist: providers.MyPlaylist{Name: "Mine", Key: "rel"}}
			for range 2 { // the second round is a retry
				for _, a := range p.Actions(tgt) {
					if a == providers.ActionAddToMyPlaylist {
						id, err := c.OwnPlaylist(ctx, tgt)
						if err != nil {
							errs <- err
							return
						}
						tgt.MyPlaylist.ID = id
					}
					if _, err := c.Perform(ctx, a, tgt); err != nil {
						errs <- err
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	close(secrets)
	for err := range errs {
		t.Fatal(err)
	}
	for i := range fans {
		pls := f.User(providers.Spotify, fmt.Sprintf("fan%02d", i)).Playlists
		if len(pls) != 1 || strings.Join(pls[0].Items, ",") != "spotify:track:t1,spotify:track:t2,spotify:track:t3" {
			t.Fatalf("fan%02d playlists = %+v", i, pls)
		}
	}
	if n := f.Calls("POST /v1/playlists/{id}/items", 201); n != fans {
		t.Fatalf("playlist writes = %d, want %d", n, fans)
	}
	out := logs.String()
	if !strings.Contains(out, "route=\"PUT /v1/me/library\"") {
		t.Fatalf("debug log lacks requests: %.200s", out)
	}
	for s := range secrets {
		if strings.Contains(out, s) {
			t.Fatal("log carries a token or code")
		}
	}
}

func TestURLs(t *testing.T) {
	u := fake.URLs("http://127.0.0.1:8090/")
	env := u.Env()
	want := map[string]string{
		"SPOTIFY_ACCOUNTS_URL": "http://127.0.0.1:8090",
		"SPOTIFY_API_URL":      "http://127.0.0.1:8090/v1/",
		"GOOGLE_AUTH_URL":      "http://127.0.0.1:8090/o/oauth2/auth",
		"GOOGLE_TOKEN_URL":     "http://127.0.0.1:8090/google/token",
		"GOOGLE_REVOKE_URL":    "http://127.0.0.1:8090/google/revoke",
		"GOOGLE_USERINFO_URL":  "http://127.0.0.1:8090/google/v1/userinfo",
		"YOUTUBE_API_URL":      "http://127.0.0.1:8090/",
		"APPLE_MUSIC_API_URL":  "http://127.0.0.1:8090/",
		"MUSICKIT_JS_URL":      "http://127.0.0.1:8090/musickit/v3/musickit.js",
		"SPOTIFY_APP_MODE":     "extended",
		"GOOGLE_APP_TESTING":   "false",
	}
	if len(env) != len(want) {
		t.Fatalf("Env has %d entries", len(env))
	}
	for _, kv := range env {
		if want[kv[0]] != kv[1] {
			t.Errorf("%s = %q, want %q", kv[0], kv[1], want[kv[0]])
		}
	}
}

func BenchmarkLibraryContains(b *testing.B) {
	f := fake.New(fake.Options{})
	srv := httptest.NewServer(f)
	defer srv.Close()
	ctx := context.Background()
	p := newSpotify(srv.URL)
	v := oauth2.GenerateVerifier()
	q, _ := fake.Consent(ctx, fake.WithUser(p.AuthCodeURL("s", v, []string{"user-library-read"}), "bench"))
	g, err := p.Exchange(ctx, q.Get("code"), v)
	if err != nil {
		b.Fatal(err)
	}
	c := p.Client(ctx, g.Token, nil)
	tgt := providers.Target{TrackIDs: []string{"t1"}}
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := c.InEffect(ctx, providers.ActionSave, tgt); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
