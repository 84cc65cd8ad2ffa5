package api_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/presave/presave/internal/api"
	"github.com/presave/presave/internal/providers/registry"
)

// TestAppleMusicInABrowser connects an Apple Music fan through the real
// page in headless Chromium: the release page's start, our MusicKit page
// running the fake's stand-in MusicKit JS (its consent dialog), the post
// of the Music User Token, the confirmation, /me and the disconnection,
// checking PostgreSQL at each step. A decline first writes nothing.
func TestAppleMusicInABrowser(t *testing.T) {
	t.Parallel()
	b := setupPage(t)
	rel := b.createRelease(releaseBody("apple-release", time.Now().Add(72*time.Hour)))
	ctx := browser(t, "Europe/London")
	s := &shooter{t: t, ctx: ctx, dir: artefacts(t)}
	css := func(sel string) chromedp.CSS { return chromedp.CSS(sel) }
	apple := css(`button[value="applemusic"]`)
	text := func(sel string) string { return get(t, ctx, "read "+sel, chromedp.Text(css(sel))) }
	location := func() string { return get(t, ctx, "location", chromedp.Location()) }
	start := func(what string) {
		t.Helper()
		do(t, ctx, what,
			chromedp.Navigate(b.url+"/r/apple-release"),
			chromedp.WaitVisible(css("#rel-title")),
			chromedp.Click(css("#consent")),
			chromedp.WaitEnabled(apple),
			chromedp.Click(apple),
			// MusicKit loaded and configured: the button is enabled.
			chromedp.WaitEnabled(css("#musickit-connect")),
		)
	}

	// The start records a state and sends the fan to our MusicKit page,
	// whose policy allows exactly the MusicKit script's origin and the
	// API's.
	start("start on Apple Music")
	loc := location()
	if !strings.HasPrefix(loc, b.url+registry.AuthorizePath+"?state=") {
		t.Fatalf("the start went to %s, want our MusicKit page", loc)
	}
	if n, ps := b.count("oauth_states", "provider = 'applemusic'"), b.count("presaves", ""); n != 1 || ps != 0 {
		t.Errorf("after the start: %d Apple Music states, %d pre-saves; want 1 and 0", n, ps)
	}
	csp := b.do(req{method: http.MethodGet, path: strings.TrimPrefix(loc, b.url)}).Header.Get("Content-Security-Policy")
	fakeOrigin := strings.TrimSuffix(b.providerEnv["APPLE_MUSIC_API_URL"], "/")
	if !strings.Contains(csp, "script-src 'self' "+fakeOrigin+";") || !strings.Contains(csp, "connect-src 'self' "+fakeOrigin) {
		t.Errorf("MusicKit page CSP = %q, want the MusicKit and API origin %s", csp, fakeOrigin)
	}
	s.shot("musickit-page")

	// The fan declines in Apple's dialog: nothing saved, the state spent.
	do(t, ctx, "decline in the MusicKit dialog",
		chromedp.Click(css("#musickit-connect")),
		chromedp.WaitVisible(css("#fake-musickit-consent")),
		chromedp.Click(css("#fake-musickit-deny")),
		chromedp.WaitVisible(css("#msg-title")),
	)
	if shown := text("#msg-title"); shown != "Nothing was saved" {
		t.Errorf("after declining: %q", shown)
	}
	if n := b.count("oauth_states", "") + b.count("presaves", "") + b.count("provider_tokens", "") + b.count("fans", ""); n != 0 {
		t.Errorf("a declined Apple Music authorization wrote %d rows", n)
	}

	// Again, and the fan allows, in the gb storefront.
	start("start on Apple Music again")
	do(t, ctx, "allow in the MusicKit dialog",
		chromedp.Click(css("#musickit-connect")),
		chromedp.WaitVisible(css("#fake-musickit-consent")),
		chromedp.SetValue(css("#fake-musickit-user"), "apple-browser-fan"),
		chromedp.SetValue(css("#fake-musickit-storefront"), "gb"),
	)
	s.shot("musickit-consent")
	do(t, ctx, "submit the dialog",
		chromedp.Click(css("#fake-musickit-allow")),
		chromedp.WaitVisible(css("#ps-title")),
	)
	loc = location()
	if shown := text("#ps-title"); shown != "You're all set" || !strings.HasPrefix(loc, b.url+"/me/presaves/") {
		t.Fatalf("confirmation: %q at %s", shown, loc)
	}
	s.shot("confirmation")
	id := strings.TrimPrefix(loc, b.url+"/me/presaves/")
	if n := b.count("presaves", "id::text = $1 AND provider = 'applemusic' AND account_id IS NULL AND consent_version = $2 AND fan_zone = 'Europe/London' AND release_id = $3 AND actions = '{add_to_library,add_to_my_playlist}'",
		id, api.DefaultConsentVersion, rel.ID); n != 1 {
		t.Errorf("the Apple Music pre-save (no account, consent version, zone, actions) is not in the database")
	}
	if n := b.count("provider_tokens", "provider = 'applemusic' AND storefront = 'gb' AND account_id IS NULL"); n != 1 {
		t.Errorf("the sealed Music User Token with its storefront is not stored")
	}
	if n := b.count("fan_accounts", ""); n != 0 {
		t.Errorf("%d account rows: Apple Music names no account, so none may be kept", n)
	}
	if n := b.count("oauth_states", ""); n != 0 {
		t.Errorf("the state was not spent")
	}
	// The sealed copy is the only one: the token the fake issued appears
	// nowhere in the database in the clear.
	for _, tok := range b.fake.IssuedTokens("applemusic", "apple-browser-fan") {
		if b.count("provider_tokens", "position(convert_to($1, 'UTF8') in refresh_sealed) > 0", tok) != 0 {
			t.Errorf("the Music User Token is stored in the clear")
		}
	}

	// /me shows the connection; disconnecting deletes the token and
	// withdraws the pre-save.
	do(t, ctx, "open /me and disconnect Apple Music",
		chromedp.Navigate(b.url+"/me"),
		chromedp.WaitVisible(css(`a[href="/me/connections/applemusic/disconnect"]`)),
		chromedp.Click(css(`a[href="/me/connections/applemusic/disconnect"]`)),
		chromedp.WaitVisible(css("#confirm-title")),
		chromedp.Click(css(`form.confirm button[type="submit"]`)),
		chromedp.WaitVisible(css(".notice.ok")),
	)
	if n := b.count("provider_tokens", ""); n != 0 {
		t.Errorf("the Apple Music token survived the disconnection")
	}
	if n := b.count("presaves", "id::text = $1 AND status = 'cancelled'", id); n != 1 {
		t.Errorf("the disconnection did not withdraw the pre-save")
	}
	if n := b.count("token_revocations", ""); n != 0 {
		t.Errorf("%d revocations queued: Apple offers no revoke, deleting our copy is all", n)
	}
}
