package api_test

import (
	"crypto/sha256"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/presave/presave/internal/providers"
	"github.com/presave/presave/internal/providers/registry"
)

func TestConnectAndConsentBothProviders(t *testing.T) {
	t.Parallel()
	b := setup(t)
	rel := b.createRelease(releaseBody("both-providers", time.Now().Add(time.Hour)))

	// Start: a one-time state, PKCE, the minimum scopes, our callback.
	authURL := b.startURL(providers.Spotify, map[string]any{"release": rel.Slug, "consent": true, "zone": "Europe/Paris"}, "")
	u, err := url.Parse(authURL)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	state := q.Get("state")
	if len(state) != 43 || q.Get("code_challenge_method") != "S256" || q.Get("code_challenge") == "" {
		t.Errorf("authorize URL lacks a 32-byte state or PKCE S256: %s", authURL)
	}
	if q.Get("redirect_uri") != b.url+registry.CallbackPath(providers.Spotify) {
		t.Errorf("redirect_uri = %q", q.Get("redirect_uri"))
	}
	wantScopes := []string{"user-library-modify", "user-library-read", "playlist-modify-public", "playlist-modify-private", "playlist-read-private"}
	if got := strings.Fields(q.Get("scope")); !sameSet(got, wantScopes) {
		t.Errorf("scopes = %v, want %v", got, wantScopes)
	}
	h := sha256.Sum256([]byte(state))
	if n := b.count("oauth_states", "state_hash = $1 AND release_id = $2 AND fan_zone = 'Europe/Paris' AND consent_version = 'test-v1'", h[:], rel.ID); n != 1 {
		t.Errorf("oauth_states rows for sha256(state) = %d, want 1", n)
	}

	// Callback: fan, account, sealed token, pre-save with its consent.
	resp := b.callback(providers.Spotify, b.consent(authURL, "sp-fan-1"), "")
	if resp.Status != http.StatusOK {
		t.Fatalf("callback: HTTP %d: %s", resp.Status, resp.Body)
	}
	var sp connected
	resp.decode(t, &sp)
	if !sp.NewFan || sp.FanToken == "" || sp.Presave.Provider != "spotify" || sp.Presave.Status != "pending" || sp.Queued {
		t.Errorf("spotify connect = %+v", sp)
	}
	if !slices.Equal(sp.Presave.Actions, []string{"save", "follow", "playlist"}) {
		t.Errorf("actions = %v, want all the release offers", sp.Presave.Actions)
	}
	if c := sp.Presave.Consent; c["version"] != "test-v1" || c["zone"] != "Europe/Paris" || c["client_ip_prefix"] != "127.0.0.0/24" || c["consented_at"] == "" {
		t.Errorf("consent record = %v", c)
	}
	if !sp.Presave.DueAt.Equal(*rel.ReleaseAt) {
		t.Errorf("due_at = %v, want %v", sp.Presave.DueAt, rel.ReleaseAt)
	}
	// An API flow is not bound to a browser: the fan token comes in the
	// JSON only, never as a cookie (login CSRF; the page flow's bound
	// states get the cookie, see page_test.go).
	if ck, ok := resp.cookieValue("presave_fan"); ok {
		t.Errorf("an unbound API flow set the fan cookie: %+v", ck)
	}
	if sp.FanToken == "" {
		t.Error("no fan token in the JSON answer")
	}
	fan := uuid.MustParse(sp.FanID)
	tok, err := b.st.Token(b.ctx(), fan, providers.Spotify)
	if err != nil || tok.RefreshToken == "" || tok.AccessToken == "" {
		t.Errorf("stored token: %+v, %v", tok, err)
	}
	if n := b.count("fan_accounts", "fan_id = $1 AND provider = 'spotify' AND account_id = 'sp-fan-1'", fan); n != 1 {
		t.Errorf("fan_accounts = %d", n)
	}
	if n := b.count("oauth_states", ""); n != 0 {
		t.Errorf("the used state is still stored (%d rows)", n)
	}
	ftHash := sha256.Sum256([]byte(sp.FanToken))
	if n := b.count("fan_sessions", "token_hash = $1 AND fan_id = $2", ftHash[:], fan); n != 1 {
		t.Errorf("fan_sessions holding sha256(fan token) = %d, want 1", n)
	}

	// YouTube, by release ID, as the same fan (token sent at start and
	// cookie at callback): the fan and the fan token are reused.
	yt := b.connect(providers.YouTube, rel.ID, "", sp.FanToken)
	if yt.FanID != sp.FanID || yt.NewFan || yt.FanToken != sp.FanToken {
		t.Errorf("youtube connect as the same fan = %+v", yt)
	}
	if !slices.Equal(yt.Presave.Actions, []string{"like", "playlist"}) {
		t.Errorf("youtube actions = %v", yt.Presave.Actions)
	}
	if n := b.count("fan_sessions", ""); n != 1 {
		t.Errorf("fan_sessions = %d, want 1 (the token was reused)", n)
	}
	if n := b.count("provider_tokens", "fan_id = $1", fan); n != 2 {
		t.Errorf("provider_tokens = %d, want 2", n)
	}

	var got releaseJSON
	b.admin(http.MethodGet, "/v1/releases/"+rel.ID, nil, http.StatusOK).decode(t, &got)
	if got.Counts["spotify"]["pending"] != 1 || got.Counts["youtube"]["pending"] != 1 || got.Counts["youtube"]["done"] != 0 {
		t.Errorf("counts = %v", got.Counts)
	}
}

func sameSet(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

func TestSecondReleaseReusesFanAndToken(t *testing.T) {
	t.Parallel()
	b := setup(t)
	r1 := b.createRelease(releaseBody("first", time.Now().Add(time.Hour)))
	r2 := b.createRelease(releaseBody("second", time.Now().Add(2*time.Hour)))

	first := b.connect(providers.Spotify, r1.Slug, "returning-fan", "")
	second := b.connect(providers.Spotify, r2.Slug, "returning-fan", "") // no cookie: the account decides
	if second.FanID != first.FanID || second.NewFan {
		t.Errorf("second release: fan %s (new %v), want %s", second.FanID, second.NewFan, first.FanID)
	}
	if n := b.count("fans", ""); n != 1 {
		t.Errorf("fans = %d, want 1", n)
	}
	if n := b.count("provider_tokens", ""); n != 1 {
		t.Errorf("provider_tokens = %d, want 1 (one grant per fan and provider)", n)
	}
	if n := b.count("presaves", "fan_id = $1", first.FanID); n != 2 {
		t.Errorf("presaves = %d, want 2", n)
	}
	// Both fan tokens work.
	for _, tok := range []string{first.FanToken, second.FanToken} {
		if r := b.do(req{method: http.MethodGet, path: "/v1/me", header: fanHeader(tok)}); r.Status != http.StatusOK {
			t.Errorf("GET /v1/me: HTTP %d", r.Status)
		}
	}

	// Another provider account is another fan.
	other := b.connect(providers.Spotify, r1.Slug, "someone-else", "")
	if other.FanID == first.FanID || !other.NewFan {
		t.Errorf("another account joined the same fan")
	}
}

func TestStateReplayedExpiredOrForgedIsRefused(t *testing.T) {
	t.Parallel()
	b := setup(t)
	rel := b.createRelease(releaseBody("state-checks", time.Now().Add(time.Hour)))
	start := func(p providers.Name) string {
		return b.startURL(p, map[string]any{"release": rel.Slug, "consent": true}, "")
	}
	grants := func() int { return len(b.fake.State().Grants) }

	t.Run("replayed", func(t *testing.T) {
		q := b.consent(start(providers.Spotify), "replay-fan")
		if r := b.callback(providers.Spotify, q, ""); r.Status != http.StatusOK {
			t.Fatalf("first callback: HTTP %d: %s", r.Status, r.Body)
		}
		before := b.fingerprint()
		r := b.callback(providers.Spotify, q, "")
		if r.Status != http.StatusBadRequest || r.errorCode(t) != "state_invalid" {
			t.Errorf("replay: HTTP %d %s", r.Status, r.Body)
		}
		b.sameFingerprint(before, b.fingerprint(), "replay")
	})

	t.Run("forged", func(t *testing.T) {
		before := b.fingerprint()
		q := url.Values{"state": {"forged-state-forged-state-forged-state-abcd"}, "code": {"code-forged"}}
		r := b.callback(providers.Spotify, q, "")
		if r.Status != http.StatusBadRequest || r.errorCode(t) != "state_invalid" {
			t.Errorf("forged: HTTP %d %s", r.Status, r.Body)
		}
		b.sameFingerprint(before, b.fingerprint(), "forged")
	})

	t.Run("missing", func(t *testing.T) {
		before := b.fingerprint()
		r := b.callback(providers.YouTube, url.Values{"code": {"x"}}, "")
		if r.Status != http.StatusBadRequest || r.errorCode(t) != "state_invalid" {
			t.Errorf("missing state: HTTP %d %s", r.Status, r.Body)
		}
		b.sameFingerprint(before, b.fingerprint(), "missing state")
	})

	t.Run("other provider", func(t *testing.T) {
		q := b.consent(start(providers.Spotify), "")
		before := b.fingerprint("oauth_states")
		g := grants()
		r := b.callback(providers.YouTube, q, "")
		if r.Status != http.StatusBadRequest || r.errorCode(t) != "state_invalid" {
			t.Errorf("other provider: HTTP %d %s", r.Status, r.Body)
		}
		b.sameFingerprint(before, b.fingerprint("oauth_states"), "other provider")
		if grants() != g {
			t.Errorf("the code was exchanged")
		}
	})

	t.Run("expired", func(t *testing.T) {
		q := b.consent(start(providers.YouTube), "")
		b.clock.Advance(11 * time.Minute)
		t.Cleanup(func() { b.clock.Advance(-11 * time.Minute) })
		before := b.fingerprint("oauth_states")
		g := grants()
		r := b.callback(providers.YouTube, q, "")
		if r.Status != http.StatusBadRequest || r.errorCode(t) != "state_expired" {
			t.Errorf("expired: HTTP %d %s", r.Status, r.Body)
		}
		b.sameFingerprint(before, b.fingerprint("oauth_states"), "expired")
		if n := b.count("oauth_states", ""); n != 0 {
			t.Errorf("the expired state is still stored")
		}
		if grants() != g {
			t.Errorf("the code of an expired state was exchanged")
		}
		// And it stays refused.
		if r := b.callback(providers.YouTube, q, ""); r.errorCode(t) != "state_invalid" {
			t.Errorf("second try of an expired state: %s", r.Body)
		}
	})
}

func TestDeniedConsentWritesNothing(t *testing.T) {
	t.Parallel()
	b := setup(t)
	rel := b.createRelease(releaseBody("denied", time.Now().Add(time.Hour)))
	for _, p := range providers.Names {
		authURL := b.startURL(p, map[string]any{"release": rel.Slug, "consent": true}, "")
		q := b.consent(authURL+"&deny=1", "")
		if q.Get("error") != "access_denied" {
			t.Fatalf("the fake did not deny: %v", q)
		}
		before := b.fingerprint("oauth_states")
		r := b.callback(p, q, "")
		if r.Status != http.StatusForbidden || r.errorCode(t) != "consent_denied" {
			t.Errorf("%s denied: HTTP %d %s", p, r.Status, r.Body)
		}
		if _, ok := r.cookieValue("presave_fan"); ok {
			t.Errorf("%s denied: a fan cookie was set", p)
		}
		b.sameFingerprint(before, b.fingerprint("oauth_states"), string(p)+" denied")
	}
	if n := b.count("oauth_states", ""); n != 0 {
		t.Errorf("denied states are still stored (%d)", n)
	}
}

func TestBadCodeWritesNothing(t *testing.T) {
	t.Parallel()
	b := setup(t)
	rel := b.createRelease(releaseBody("bad-code", time.Now().Add(time.Hour)))
	q := b.consent(b.startURL(providers.YouTube, map[string]any{"release": rel.Slug, "consent": true}, ""), "")
	q.Set("code", "code-that-the-provider-never-issued")
	before := b.fingerprint("oauth_states")
	r := b.callback(providers.YouTube, q, "")
	if r.Status != http.StatusBadRequest || r.errorCode(t) != "code_invalid" {
		t.Errorf("bad code: HTTP %d %s", r.Status, r.Body)
	}
	b.sameFingerprint(before, b.fingerprint("oauth_states"), "bad code")
}

func TestSpotifyHorizonIsEnforced(t *testing.T) {
	t.Parallel()
	b := setup(t)
	far := b.createRelease(releaseBody("far-away", time.Now().Add(200*24*time.Hour)))
	before := b.fingerprint()
	r := b.do(req{method: http.MethodPost, path: "/v1/connect/spotify/start", json: map[string]any{"release": far.Slug, "consent": true}})
	if r.Status != http.StatusUnprocessableEntity || r.errorCode(t) != "spotify_horizon_exceeded" {
		t.Errorf("start: HTTP %d %s", r.Status, r.Body)
	}
	b.sameFingerprint(before, b.fingerprint(), "horizon at start")
	// YouTube grants do not expire that way.
	b.connect(providers.YouTube, far.Slug, "", "")

	// The release moves beyond the horizon while the fan is at Spotify:
	// the callback checks again, against the authorization time.
	rel := b.createRelease(releaseBody("moves-away", time.Now().Add(100*24*time.Hour)))
	q := b.consent(b.startURL(providers.Spotify, map[string]any{"release": rel.Slug, "consent": true}, ""), "")
	b.admin(http.MethodPatch, "/v1/releases/"+rel.ID, map[string]any{"release_at": time.Now().Add(190 * 24 * time.Hour).Format(time.RFC3339)}, http.StatusOK)
	before = b.fingerprint("oauth_states")
	r = b.callback(providers.Spotify, q, "")
	if r.Status != http.StatusUnprocessableEntity || r.errorCode(t) != "spotify_horizon_exceeded" {
		t.Errorf("callback: HTTP %d %s", r.Status, r.Body)
	}
	b.sameFingerprint(before, b.fingerprint("oauth_states"), "horizon at callback")
}

func TestStartFormAndQueryRedirect(t *testing.T) {
	t.Parallel()
	b := setup(t)
	rel := b.createRelease(releaseBody("form-start", time.Now().Add(time.Hour)))
	form := url.Values{"release": {rel.Slug}, "actions": {"like"}, "zone": {"America/New_York"}, "consent": {"on"}}
	r := b.do(req{method: http.MethodPost, path: "/v1/connect/youtube/start", body: []byte(form.Encode()), contentType: "application/x-www-form-urlencoded"})
	if r.Status != http.StatusFound || !strings.Contains(r.Header.Get("Location"), "/o/oauth2/auth?") {
		t.Fatalf("form start: HTTP %d, Location %q: %s", r.Status, r.Header.Get("Location"), r.Body)
	}
	// The redirect leads through the consent screen to a working callback.
	resp := b.callback(providers.YouTube, b.consent(r.Header.Get("Location"), ""), "")
	var c connected
	resp.decode(t, &c)
	if resp.Status != http.StatusOK || !slices.Equal(c.Presave.Actions, []string{"like"}) || c.Presave.Consent["zone"] != "America/New_York" {
		t.Errorf("callback after form start: HTTP %d %s", resp.Status, resp.Body)
	}

	r = b.do(req{method: http.MethodGet, path: "/v1/connect/spotify/start?release=" + rel.Slug + "&consent=1&actions=save,follow"})
	if r.Status != http.StatusFound || !strings.Contains(r.Header.Get("Location"), "/authorize?") {
		t.Errorf("query start: HTTP %d %s", r.Status, r.Body)
	}
	r = b.do(req{method: http.MethodPost, path: "/v1/connect/youtube/start", body: []byte("release=" + rel.Slug), contentType: "application/x-www-form-urlencoded"})
	if r.Status != http.StatusBadRequest || r.errorCode(t) != "consent_required" {
		t.Errorf("form start without consent: HTTP %d %s", r.Status, r.Body)
	}
}

func TestLogsCarryRequestIDsButNoSecret(t *testing.T) {
	t.Parallel()
	b := setup(t)
	rel := b.createRelease(releaseBody("quiet-logs", time.Now().Add(5*time.Minute)))
	var secrets []string
	var fanToken string
	for _, p := range providers.Names {
		authURL := b.startURL(p, map[string]any{"release": rel.Slug, "consent": true}, fanToken)
		q := b.consent(authURL, "")
		secrets = append(secrets, q.Get("state"), q.Get("code"))
		r := b.callback(p, q, fanToken)
		var c connected
		r.decode(t, &c)
		fanToken = c.FanToken
		tok, err := b.st.Token(b.ctx(), uuid.MustParse(c.FanID), p)
		if err != nil {
			t.Fatal(err)
		}
		secrets = append(secrets, tok.RefreshToken, tok.AccessToken)
		b.callback(p, q, "") // a refused replay logs too
	}
	secrets = append(secrets, fanToken)
	bad := b.consent(b.startURL(providers.YouTube, map[string]any{"release": rel.Slug, "consent": true}, ""), "")
	secrets = append(secrets, bad.Get("state"))
	bad.Set("code", "code-refused-by-the-provider")
	b.callback(providers.YouTube, bad, "")
	b.do(req{method: http.MethodGet, path: "/v1/me", header: fanHeader(fanToken)})
	b.do(req{method: http.MethodDelete, path: "/v1/me", header: fanHeader(fanToken)})

	logs := b.logs.String()
	if !strings.Contains(logs, "request_id=") || !strings.Contains(logs, "route=/connect/youtube/callback") {
		t.Errorf("request logs lack request IDs or routes:\n%s", logs)
	}
	for _, s := range append(secrets, "code-refused-by-the-provider") {
		if s == "" || strings.Contains(logs, s) {
			t.Errorf("a secret (or nothing) was logged: %q", s)
		}
	}
}
