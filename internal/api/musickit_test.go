package api_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/presave/presave/internal/providers"
	"github.com/presave/presave/internal/providers/registry"
)

// The Apple Music post is refused, writing nothing (the state is spent
// only where an OAuth callback's would be), when it comes from another
// site, is not a form, comes from another browser, or carries a token
// Apple refuses; a developer key Apple does not know is our trouble, not
// the fan's.
func TestMusicKitPostRefusals(t *testing.T) {
	t.Parallel()
	b := setup(t)
	rel := b.createRelease(releaseBody("musickit-refusals", time.Now().Add(time.Hour)))
	fresh := func() url.Values {
		return b.consent(b.startURL(providers.AppleMusic, map[string]any{"release": rel.Slug, "consent": true}, ""), "apple-x")
	}
	post := func(q url.Values, origin, binding string) response {
		h := map[string]string{"Cookie": "presave_bind=" + binding}
		if origin != "" {
			h["Origin"] = origin
		}
		form := url.Values{"state": {q.Get("state")}, "music_user_token": {q.Get("code")}}
		return b.do(req{method: http.MethodPost, path: registry.CallbackPath(providers.AppleMusic), body: []byte(form.Encode()),
			contentType: "application/x-www-form-urlencoded", header: h})
	}
	for _, tc := range []struct {
		name   string
		send   func(url.Values) response
		status int
		code   string
	}{
		{"another site", func(q url.Values) response { return post(q, "https://evil.example", b.binding(q.Get("state"))) }, 403, "cross_site_post"},
		{"another browser", func(q url.Values) response { return post(q, b.url, strings.Repeat("v", 43)) }, 400, "state_browser_mismatch"},
		{"no state", func(q url.Values) response { q.Del("state"); return post(q, "", "") }, 400, "state_invalid"},
		{"a token MusicKit never issued", func(q url.Values) response {
			q.Set("code", "mut-forged")
			return post(q, "null", b.binding(q.Get("state")))
		}, 400, "code_invalid"},
		{"JSON", func(q url.Values) response {
			return b.do(req{method: http.MethodPost, path: registry.CallbackPath(providers.AppleMusic),
				json: map[string]string{"state": q.Get("state"), "music_user_token": q.Get("code")}})
		}, 415, "unsupported_media_type"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			q := fresh()
			before := b.fingerprint("oauth_states")
			r := tc.send(q)
			if r.Status != tc.status || r.errorCode(t) != tc.code {
				t.Fatalf("HTTP %d %s, want %d %s", r.Status, r.Body, tc.status, tc.code)
			}
			b.sameFingerprint(before, b.fingerprint("oauth_states"), tc.name)
		})
	}

	// Revoked at Apple between authorize and post: refused as the fan's.
	q := fresh()
	b.fake.RevokeAppleUser("apple-x")
	if r := b.callback(providers.AppleMusic, q, ""); r.Status != http.StatusBadRequest || r.errorCode(t) != "code_invalid" {
		t.Errorf("revoked token: HTTP %d %s", r.Status, r.Body)
	}
	if n := b.count("presaves", "") + b.count("provider_tokens", ""); n != 0 {
		t.Errorf("refusals wrote %d rows", n)
	}
}

// A Music User Token cannot be refreshed: APPLE_USER_TOKEN_LIFETIME
// (180 days) less a day bounds what it can deliver. A release due later
// is refused at the start; the export says until when the grant
// delivers.
func TestAppleMusicHorizon(t *testing.T) {
	t.Parallel()
	b := setup(t)
	far := b.createRelease(releaseBody("apple-far", time.Now().Add(185*24*time.Hour)))
	before := b.fingerprint()
	r := b.do(req{method: http.MethodPost, path: "/v1/connect/applemusic/start", json: map[string]any{"release": far.Slug, "consent": true}})
	if r.Status != http.StatusUnprocessableEntity || r.errorCode(t) != "applemusic_horizon_exceeded" {
		t.Errorf("start: HTTP %d %s", r.Status, r.Body)
	}
	b.sameFingerprint(before, b.fingerprint(), "horizon at start")

	near := b.createRelease(releaseBody("apple-near", time.Now().Add(170*24*time.Hour)))
	c := b.connect(providers.AppleMusic, near.Slug, "apple-h", "")
	var ex struct {
		StoredGrants []struct {
			Provider         string     `json:"provider"`
			AuthorizedAt     time.Time  `json:"authorized_at"`
			DeliverableUntil *time.Time `json:"deliverable_until"`
			Storefront       string     `json:"storefront"`
		} `json:"stored_grants"`
		Accounts []struct{} `json:"accounts"`
	}
	b.do(req{method: http.MethodGet, path: "/v1/me", header: fanHeader(c.FanToken)}).decode(t, &ex)
	want := func(at time.Time) time.Time { return at.UTC().Add(180*24*time.Hour - 24*time.Hour) }
	if len(ex.StoredGrants) != 1 || ex.StoredGrants[0].DeliverableUntil == nil || !ex.StoredGrants[0].DeliverableUntil.Equal(want(ex.StoredGrants[0].AuthorizedAt)) ||
		ex.StoredGrants[0].Storefront != "us" {
		t.Errorf("export's grants: %+v, want the us storefront, deliverable until 179 days after the authorization", ex.StoredGrants)
	}
	if len(ex.Accounts) != 0 {
		t.Errorf("the export lists %d accounts: Apple Music names none", len(ex.Accounts))
	}
}
