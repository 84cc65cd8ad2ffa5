package api_test

import (
	"crypto/sha256"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/presave/presave/internal/wire"

	"github.com/google/uuid"

	"github.com/presave/presave/internal/api"
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
	wantScopes := []string{"user-library-modify", "user-library-read", "user-follow-modify", "user-follow-read", "playlist-modify-public", "playlist-modify-private", "playlist-read-private"}
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
	if !slices.Equal(sp.Presave.Actions, []string{"save", "follow", "follow_playlist", "add_to_my_playlist"}) {
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
	if n := b.count("provider_tokens", "fan_id = $1 AND provider = 'spotify' AND refresh_sealed IS NOT NULL AND access_sealed IS NOT NULL", fan); n != 1 {
		t.Errorf("sealed spotify grants stored = %d, want 1", n)
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
	if !slices.Equal(yt.Presave.Actions, []string{"like", "subscribe", "add_to_my_playlist"}) {
		t.Errorf("youtube actions = %v", yt.Presave.Actions)
	}
	if n := b.count("fan_sessions", ""); n != 1 {
		t.Errorf("fan_sessions = %d, want 1 (the token was reused)", n)
	}
	if n := b.count("provider_tokens", "fan_id = $1", fan); n != 2 {
		t.Errorf("provider_tokens = %d, want 2", n)
	}

	var got wire.Release
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

// TestStartLinksAndFormsRecordNothing: consent comes only from the fan
// page's CSRF-protected form or from a JSON body. A link (GET, which any
// site can make a browser follow) and a form post to the JSON API record
// no state, so no callback can record a pre-save from them.
func TestStartLinksAndFormsRecordNothing(t *testing.T) {
	t.Parallel()
	b := setup(t)
	rel := b.createRelease(releaseBody("form-start", time.Now().Add(time.Hour)))
	before := b.fingerprint()
	form := url.Values{"release": {rel.Slug}, "actions": {"like"}, "zone": {"America/New_York"}, "consent": {"on"}}
	r := b.do(req{method: http.MethodPost, path: "/v1/connect/youtube/start", body: []byte(form.Encode()), contentType: "application/x-www-form-urlencoded"})
	if r.Status != http.StatusUnsupportedMediaType || r.errorCode(t) != "unsupported_media_type" {
		t.Errorf("form start: HTTP %d %s", r.Status, r.Body)
	}
	// Without the page mounted, a link has nowhere to go.
	r = b.do(req{method: http.MethodGet, path: "/v1/connect/spotify/start?release=" + rel.Slug + "&consent=1&actions=save,follow"})
	if r.Status != http.StatusMethodNotAllowed || r.errorCode(t) != "method_not_allowed" {
		t.Errorf("query start: HTTP %d %s", r.Status, r.Body)
	}
	b.sameFingerprint(before, b.fingerprint(), "form and link starts")

	// With the page, the link leads to it: the fan reads and ticks there.
	pb := setupPage(t)
	prel := pb.createRelease(releaseBody("link-start", time.Now().Add(time.Hour)))
	before = pb.fingerprint()
	r = pb.do(req{method: http.MethodGet, path: "/v1/connect/spotify/start?release=" + prel.ID + "&consent=1&actions=save,follow,playlist"})
	if r.Status != http.StatusSeeOther || r.Header.Get("Location") != "/r/link-start" {
		t.Errorf("query start with the page: HTTP %d, Location %q: %s", r.Status, r.Header.Get("Location"), r.Body)
	}
	if _, set := r.cookieValue(api.BindingCookie); set {
		t.Errorf("a link start set a binding cookie")
	}
	pb.sameFingerprint(before, pb.fingerprint(), "link start with the page")
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
		secrets = append(secrets, b.issued(uuid.MustParse(c.FanID), p)...)
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

// TestAnotherAccountIsNeverAttachedWithoutItsOwner: fan X starts a flow
// with X's token and sends the authorize link to a victim, who approves
// as account V in their own browser. The callback there is refused before
// the code is exchanged: nothing links V to X, X gets no session from
// it, X's pre-save stays on the account X consented with.
func TestAnotherAccountIsNeverAttachedWithoutItsOwner(t *testing.T) {
	t.Parallel()
	b := setup(t)
	r1 := b.createRelease(releaseBody("fixation-r1", time.Now().Add(5*time.Minute)))
	r2 := b.createRelease(releaseBody("fixation-r2", time.Now().Add(time.Hour)))
	x := b.connect(providers.Spotify, r1.Slug, "acct-a", "")

	exchanges := b.fake.Calls("POST /api/token", http.StatusOK)
	before := b.fingerprint("oauth_states")
	for name, binding := range map[string]string{"no cookie of ours": "", "the victim's own binding": strings.Repeat("v", 43)} {
		authURL := b.startURL(providers.Spotify, map[string]any{"release": r2.Slug, "consent": true}, x.FanToken)
		if !strings.Contains(authURL, "show_dialog=true") {
			t.Errorf("the authorize URL does not force Spotify's dialog: %s", authURL)
		}
		q := b.consent(authURL, "acct-v")
		r := b.callbackFrom(providers.Spotify, q, "", binding)
		if r.Status != http.StatusBadRequest || r.errorCode(t) != "state_browser_mismatch" {
			t.Errorf("%s: HTTP %d %s", name, r.Status, r.Body)
		}
		if strings.Contains(string(r.Body), x.FanID) || strings.Contains(string(r.Body), "fan_token") {
			t.Errorf("%s: the refusal carries X's fan: %s", name, r.Body)
		}
	}
	b.sameFingerprint(before, b.fingerprint("oauth_states"), "callback in the victim's browser")
	if n := b.fake.Calls("POST /api/token", http.StatusOK); n != exchanges {
		t.Errorf("the victim's code was exchanged (%d token calls, had %d)", n, exchanges)
	}
	if n := b.count("fan_accounts", "provider = 'spotify' AND account_id = 'acct-v'"); n != 0 {
		t.Errorf("account V is linked to a fan")
	}
	if n := b.count("fan_accounts", "fan_id = $1 AND provider = 'spotify' AND account_id = 'acct-a'", x.FanID); n != 1 {
		t.Errorf("X lost the link to the account X consented with")
	}
	if n := b.count("presaves", "id = $1 AND account_id = 'acct-a'", x.Presave.ID); n != 1 {
		t.Errorf("X's pre-save is not recorded with the account it was consented with")
	}
	var ex struct {
		Accounts []struct {
			AccountID string `json:"account_id"`
		} `json:"accounts"`
	}
	b.do(req{method: http.MethodGet, path: "/v1/me", header: fanHeader(x.FanToken)}).decode(t, &ex)
	if len(ex.Accounts) != 1 || ex.Accounts[0].AccountID != "acct-a" {
		t.Errorf("X's export shows accounts %+v", ex.Accounts)
	}

	// From X's own client the same kind of flow completes: X proved
	// control of the account in the client that started.
	if c := b.connect(providers.Spotify, r2.Slug, "acct-a", x.FanToken); c.FanID != x.FanID {
		t.Errorf("X's own second pre-save went to fan %s, want %s", c.FanID, x.FanID)
	}
}

// TestAnotherAccountOfTheSameProviderDoesNotMoveEarlierPresaves: a fan
// with a pending pre-save consented with account A who connects account B
// of the same provider is asked to choose (409, nothing written, B's
// fresh grant revoked at Google); the pre-save stays on A. With nothing
// open on A any more, B replaces it.
func TestAnotherAccountOfTheSameProviderDoesNotMoveEarlierPresaves(t *testing.T) {
	t.Parallel()
	b := setup(t)
	r1 := b.createRelease(releaseBody("second-account-r1", time.Now().Add(5*time.Minute)))
	r2 := b.createRelease(releaseBody("second-account-r2", time.Now().Add(time.Hour)))
	x := b.connect(providers.YouTube, r1.Slug, "yt-a", "")

	q := b.consent(b.startURL(providers.YouTube, map[string]any{"release": r2.Slug, "consent": true}, x.FanToken), "yt-b")
	revoked := len(b.fake.Revoked())
	before := b.fingerprint("oauth_states")
	r := b.callback(providers.YouTube, q, "")
	if r.Status != http.StatusConflict || r.errorCode(t) != "other_account_connected" {
		t.Fatalf("second account: HTTP %d %s", r.Status, r.Body)
	}
	b.sameFingerprint(before, b.fingerprint("oauth_states"), "second account refused")
	if got := b.fake.Revoked(); len(got) != revoked+1 || got[len(got)-1].User != "yt-b" {
		t.Errorf("the refused account's grant was not revoked: %+v", got)
	}
	if n := b.count("provider_tokens", "fan_id = $1 AND account_id = 'yt-a'", x.FanID); n != 1 {
		t.Errorf("the token of the account the pre-save was consented with is gone")
	}

	// Withdrawn, nothing is open on A: B takes its place.
	if r := b.do(req{method: http.MethodDelete, path: "/v1/me/presaves/" + x.Presave.ID, header: fanHeader(x.FanToken)}); r.Status != http.StatusOK {
		t.Fatalf("withdraw: HTTP %d %s", r.Status, r.Body)
	}
	c := b.connect(providers.YouTube, r2.Slug, "yt-b", x.FanToken)
	if c.FanID != x.FanID || b.count("fan_accounts", "fan_id = $1 AND account_id = 'yt-b'", x.FanID) != 1 ||
		b.count("presaves", "id = $1 AND account_id = 'yt-b'", c.Presave.ID) != 1 ||
		b.count("presaves", "id = $1 AND account_id = 'yt-a'", x.Presave.ID) != 1 {
		t.Errorf("after the withdrawal the second account did not replace the first cleanly")
	}
}
