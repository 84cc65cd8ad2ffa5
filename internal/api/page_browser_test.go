package api_test

import (
	"bytes"
	"context"
	"fmt"
	"html"
	"image"
	"image/color"
	"image/draw"
	"image/png"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"github.com/presave/presave/internal/api"
	"github.com/presave/presave/internal/providers"
	"github.com/presave/presave/internal/providers/registry"
)

// chromiumPath is Debian's chromium (scripts/services.sh installs it when
// run as root); CHROMIUM overrides it.
func chromiumPath(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("CHROMIUM"); p != "" {
		return p
	}
	p, err := exec.LookPath("chromium")
	if err != nil {
		t.Skip("chromium is not installed: run ./scripts/services.sh as root (make test does) or apt-get install chromium")
	}
	return p
}

// browser starts a headless Chromium with a fresh profile; the fan's
// time zone is zone. It lives until the test ends.
func browser(t *testing.T, zone string) context.Context {
	t.Helper()
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromiumPath(t)),
		chromedp.Flag("headless", true),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-quic", true),
		chromedp.NoFirstRun,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1024, 900),
		// The fan's zone as Intl reports it.
		chromedp.Env("TZ=" + zone),
	}
	// One deadline for the whole browser session: a hung page fails the
	// test instead of hanging it.
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	t.Cleanup(cancel)
	actx, acancel := chromedp.NewExecAllocator(ctx, opts...)
	t.Cleanup(acancel)
	bctx, bcancel := chromedp.NewContext(actx, chromedp.WithLogf(t.Logf))
	t.Cleanup(bcancel)
	if err := chromedp.Do(bctx); err != nil {
		t.Fatalf("starting chromium: %v", err)
	}
	return bctx
}

// artefacts is where the screenshots go: $TEST_ARTIFACTS/<test> or a
// temporary directory.
func artefacts(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if base := os.Getenv("TEST_ARTIFACTS"); base != "" {
		dir = filepath.Join(base, strings.ReplaceAll(t.Name(), "/", "_"))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("screenshots in %s", dir)
	return dir
}

type shooter struct {
	t   *testing.T
	ctx context.Context
	dir string
	n   int
}

// shot saves a full-page PNG of the current page.
func (s *shooter) shot(name string) []byte {
	s.t.Helper()
	buf := get(s.t, s.ctx, "screenshot "+name, chromedp.FullScreenshot(100))
	s.n++
	if err := os.WriteFile(filepath.Join(s.dir, fmt.Sprintf("%02d-%s.png", s.n, name)), buf, 0o644); err != nil {
		s.t.Fatal(err)
	}
	return buf
}

// stepTimeout bounds one step (a navigation and its wait): generous for
// a loaded machine, short enough that a failure reports itself.
const stepTimeout = 20 * time.Second

// failAt fails the test with what was being done and where the page is.
func failAt(t *testing.T, ctx context.Context, what string, err error) {
	t.Helper()
	sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	loc, _ := chromedp.Run(sctx, chromedp.Location())
	body, _ := chromedp.Run(sctx, chromedp.Text(chromedp.CSS("body")))
	t.Fatalf("%s: %v (at %s: %.500s)", what, err, loc, body)
}

// do runs browser steps.
func do(t *testing.T, ctx context.Context, what string, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	sctx, cancel := context.WithTimeout(ctx, stepTimeout)
	defer cancel()
	if err := chromedp.Do(sctx, steps...); err != nil {
		failAt(t, ctx, what, err)
	}
}

// get runs one browser action and returns its value.
func get[T any](t *testing.T, ctx context.Context, what string, a chromedp.Action[T]) T {
	t.Helper()
	sctx, cancel := context.WithTimeout(ctx, stepTimeout)
	defer cancel()
	v, err := chromedp.Run(sctx, a)
	if err != nil {
		failAt(t, ctx, what, err)
	}
	return v
}

// TestPageInABrowser drives the fan's page in headless Chromium against
// the real API and the fake provider on loopback, checking PostgreSQL at
// every step.
func TestPageInABrowser(t *testing.T) {
	t.Parallel()
	b := setupPage(t)
	rel := b.createRelease(releaseBody("browser-release", time.Now().Add(72*time.Hour)))
	ctx := browser(t, "Europe/Paris")
	s := &shooter{t: t, ctx: ctx, dir: artefacts(t)}
	css := func(sel string) chromedp.CSS { return chromedp.CSS(sel) }
	spotify, youtube := css(`button[value="spotify"]`), css(`button[value="youtube"]`)
	text := func(sel string) string { return get(t, ctx, "read "+sel, chromedp.Text(css(sel))) }
	disabled := func(sel chromedp.CSS) bool {
		return get(t, ctx, "read disabled", chromedp.JavascriptAttribute[bool](sel, "disabled"))
	}
	location := func() string { return get(t, ctx, "location", chromedp.Location()) }

	// The release page: the fan's zone detected and sent, buttons
	// disabled until consent is ticked.
	do(t, ctx, "open the release page",
		chromedp.Navigate(b.url+"/r/browser-release"),
		chromedp.WaitVisible(css("#rel-title")),
	)
	zone := get(t, ctx, "zone field", chromedp.Value(css("#zone")))
	if shown := text(".when .js-zone"); zone != "Europe/Paris" || shown != "Europe/Paris" || !disabled(spotify) || !disabled(youtube) {
		t.Errorf("release page: zone field %q, shown %q, buttons disabled %v %v", zone, shown, disabled(spotify), disabled(youtube))
	}
	s.shot("release")
	// A narrow phone: nothing wider than the screen.
	do(t, ctx, "phone width", chromedp.EmulateViewport(360, 740, chromedp.EmulateMobile))
	if overflow := get(t, ctx, "measure", chromedp.Evaluate[int](`document.documentElement.scrollWidth - window.innerWidth`)); overflow > 0 {
		t.Errorf("the release page is %dpx wider than a 360px phone", overflow)
	}
	s.shot("release-phone")
	do(t, ctx, "desktop width", chromedp.EmulateViewport(1024, 900))
	// Clicking the disabled button goes nowhere.
	do(t, ctx, "click without consent", chromedp.Click(spotify))
	if n, loc := b.count("oauth_states", ""), location(); n != 0 || loc != b.url+"/r/browser-release" {
		t.Errorf("a disabled button started a connection (%d states, at %s)", n, loc)
	}

	// Without JavaScript the button is enabled, and the box is required
	// (the browser's own check); a client that skips both (no script, no
	// form validation) meets the server's refusal.
	get(t, ctx, "submit without consent, as without JavaScript",
		chromedp.Evaluate[bool](`(() => {
			const b = document.querySelector('button[value="spotify"]');
			b.form.noValidate = true; b.disabled = false; b.click(); return true; })()`))
	do(t, ctx, "wait for the refusal", chromedp.WaitVisible(css("#msg-title")))
	if shown := text("#msg-title"); shown != "Please tick the consent box" || b.count("oauth_states", "") != 0 || b.count("presaves", "") != 0 {
		t.Errorf("start without consent: %q, %d states", shown, b.count("oauth_states", ""))
	}
	s.shot("consent-required")

	// The way back, consent ticked, Spotify, the fake's consent screen
	// (auto-approves), the confirmation.
	do(t, ctx, "go back to the release",
		chromedp.Click(css(`a.button.secondary`)),
		chromedp.WaitVisible(css("#rel-title")),
		chromedp.Click(css("#consent")),
	)
	if disabled(spotify) {
		t.Fatalf("ticking consent did not enable the buttons")
	}
	s.shot("consent-ticked")
	// Unticking every YouTube action disables its button; ticking one
	// back enables it.
	do(t, ctx, "untick YouTube's actions", chromedp.Click(css("#act-youtube-like")),
		chromedp.Click(css("#act-youtube-subscribe")), chromedp.Click(css("#act-youtube-add_to_my_playlist")))
	if !disabled(youtube) || disabled(spotify) {
		t.Errorf("no YouTube action ticked: buttons disabled %v (YouTube) %v (Spotify)", disabled(youtube), disabled(spotify))
	}
	do(t, ctx, "tick one back", chromedp.Click(css("#act-youtube-like")))
	if disabled(youtube) {
		t.Errorf("a YouTube action ticked again, its button stays disabled")
	}
	// The fan leaves out following the artist.
	do(t, ctx, "untick follow", chromedp.Click(css("#act-spotify-follow")))
	do(t, ctx, "pre-save on Spotify",
		chromedp.Click(spotify),
		chromedp.WaitVisible(css("#ps-title")),
	)
	loc := location()
	if shown := text("#ps-title"); shown != "You're all set" || !strings.HasPrefix(loc, b.url+"/me/presaves/") {
		t.Errorf("confirmation: %q at %s", shown, loc)
	}
	s.shot("confirmation")
	spID := strings.TrimPrefix(loc, b.url+"/me/presaves/")
	if n := b.count("presaves", "id = $1 AND provider = 'spotify' AND status = 'pending' AND consent_version = $2 AND fan_zone = 'Europe/Paris' AND release_id = $3 AND actions = '{save,follow_playlist,add_to_my_playlist}'",
		spID, api.DefaultConsentVersion, rel.ID); n != 1 {
		t.Errorf("the Spotify pre-save with its consent version, zone and the actions left ticked is not in the database")
	}

	// YouTube, by keyboard only: tick with Space, submit with Enter.
	do(t, ctx, "pre-save on YouTube with the keyboard",
		chromedp.Navigate(b.url+"/r/browser-release"),
		chromedp.WaitVisible(css("#rel-title")),
		chromedp.Focus(css("#consent")),
		chromedp.KeyEvent(" "),
		chromedp.WaitEnabled(youtube),
		chromedp.Focus(youtube),
		chromedp.KeyEvent(kb.Enter),
		chromedp.WaitVisible(css("#ps-title")),
	)
	loc = location()
	ytID := strings.TrimPrefix(loc, b.url+"/me/presaves/")
	if n := b.count("presaves", "id::text = $1 AND provider = 'youtube' AND consent_version = $2 AND fan_zone = 'Europe/Paris'", ytID, api.DefaultConsentVersion); n != 1 {
		t.Errorf("the YouTube pre-save is not in the database (at %s)", loc)
	}
	if n := b.count("fans", ""); n != 1 {
		t.Errorf("fans = %d, want 1 (the browser's fan cookie joins both)", n)
	}

	// Download my data, from the page's own origin with its cookie.
	exported := get(t, ctx, "download my data",
		chromedp.Evaluate[int](`fetch('/me/export').then(r => r.json()).then(j => j.presaves.length)`, chromedp.EvalAwaitPromise))
	if exported != 2 {
		t.Errorf("export lists %d pre-saves, want 2", exported)
	}

	// The release moves a day later, past the Spotify grant (authorized,
	// say, six months ago): the operator accepts it, the pre-save needs a
	// reconnect, and the fan sees so on /me and on the release page, and
	// connects again there.
	if _, err := b.st.Pool().Exec(b.ctx(), `UPDATE provider_tokens SET authorized_at = now() - interval '6 months' + interval '2 days' WHERE provider = 'spotify'`); err != nil {
		t.Fatal(err)
	}
	b.admin(http.MethodPatch, "/v1/releases/"+rel.ID, map[string]any{"release_at": rel.ReleaseAt.Add(24 * time.Hour).Format(time.RFC3339), "accept_undeliverable": true}, http.StatusOK)
	do(t, ctx, "open the manage page after the move",
		chromedp.Navigate(b.url+"/me"),
		chromedp.WaitVisible(css("#reconnect-"+spID)),
	)
	s.shot("needs-reconnect")
	if shown := text("#reconnect-" + spID); !strings.Contains(shown, "To keep this pre-save, connect Spotify again.") {
		t.Errorf("/me says %q", shown)
	}
	do(t, ctx, "follow the link to connect again",
		chromedp.Click(css("#reconnect-"+spID+" a")),
		chromedp.WaitVisible(css("#rel-title")),
	)
	if shown := text("p.notice"); !strings.Contains(shown, "connect Spotify again below to keep your pre-save") {
		t.Errorf("the release page says %q", shown)
	}
	do(t, ctx, "pre-save on Spotify again",
		chromedp.Click(css("#consent")),
		chromedp.WaitEnabled(spotify),
		chromedp.Click(spotify),
		chromedp.WaitVisible(css("#ps-title")),
	)
	if n := b.count("presaves", "id::text = $1 AND status = 'pending'", spID); n != 1 {
		t.Errorf("connecting again did not reopen the Spotify pre-save")
	}

	// Manage: withdraw the Spotify pre-save (with its confirmation step).
	do(t, ctx, "open the manage page",
		chromedp.Click(css(`a.brand`)),
		chromedp.WaitVisible(css("#me-title")),
	)
	s.shot("manage")
	do(t, ctx, "withdraw",
		chromedp.Click(css(`#presave-`+spID+` a.js-withdraw`)),
		chromedp.WaitVisible(css("#confirm-title")),
	)
	s.shot("withdraw-confirm")
	do(t, ctx, "confirm the withdrawal",
		chromedp.Click(css(`form.confirm button[type="submit"]`)),
		chromedp.WaitVisible(css(".notice.ok")),
	)
	s.shot("withdrawn")
	if n := b.count("presaves", "id::text = $1 AND status = 'cancelled'", spID); n != 1 {
		t.Errorf("the withdrawn pre-save is not cancelled in the database")
	}
	if n := b.count("presaves", "id::text = $1 AND status = 'pending'", ytID); n != 1 {
		t.Errorf("withdrawing Spotify touched the YouTube pre-save")
	}

	// Delete my account, with its confirmation step.
	do(t, ctx, "delete the account",
		chromedp.Click(css(`a[href="/me/delete"]`)),
		chromedp.WaitVisible(css("#confirm-title")),
	)
	s.shot("delete-confirm")
	if n := b.count("fans", ""); n != 1 {
		t.Errorf("the confirmation step deleted already")
	}
	do(t, ctx, "confirm the deletion",
		chromedp.Click(css(`form.confirm button.danger`)),
		chromedp.WaitVisible(css("#msg-title")),
	)
	s.shot("deleted")
	if shown := text("#msg-title"); shown != "Your account is deleted" || b.count("fans", "") != 0 || b.count("presaves", "") != 0 || b.count("provider_tokens", "") != 0 {
		t.Errorf("after deletion: %q, fans %d, presaves %d, tokens %d", shown, b.count("fans", ""), b.count("presaves", ""), b.count("provider_tokens", ""))
	}

	// An expired or unknown link: a page with a way back, not JSON.
	do(t, ctx, "open a stale callback link",
		chromedp.Navigate(b.url+registry.CallbackPath(providers.Spotify)+"?state=stale-state-stale-state-stale-state-stale0&code=x"),
		chromedp.WaitVisible(css("#msg-title")),
	)
	if shown := text("#msg-title"); shown != "This link has expired" {
		t.Errorf("stale link: %q", shown)
	}
	s.shot("stale-link")

	if os.Getenv("UPDATE_SCREENSHOT") == "1" {
		writeREADMEShot(t, ctx, b, s)
	}
}

// writeREADMEShot writes docs/page.png: the release page at a phone's
// and a desktop's width, side by side.
func writeREADMEShot(t *testing.T, ctx context.Context, b *bundle, s *shooter) {
	t.Helper()
	body := releaseBody("midnight-signals", time.Date(time.Now().Year()+1, 3, 20, 0, 0, 0, 0, time.UTC))
	body["title"], body["artist"] = "Midnight Signals", "The Loopback Choir"
	b.createRelease(body)
	var shots []image.Image
	for _, w := range []int64{390, 1024} {
		var opts []chromedp.EmulateViewportOption
		if w < 600 {
			opts = append(opts, chromedp.EmulateMobile)
		}
		do(t, ctx, "README screenshot",
			chromedp.EmulateViewport(w, 900, opts...),
			chromedp.Navigate(b.url+"/r/midnight-signals"),
			chromedp.WaitVisible(chromedp.CSS("#rel-title")),
		)
		img, err := png.Decode(bytes.NewReader(s.shot(fmt.Sprintf("readme-%d", w))))
		if err != nil {
			t.Fatal(err)
		}
		shots = append(shots, img)
	}
	buf := sideBySide(t, shots, 0)
	path := filepath.Join("..", "..", "docs", "page.png")
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, buf, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("wrote %s", path)
}

// sideBySide draws shots next to each other on a grey ground, each cut
// to height pixels (0: whole), as a PNG.
func sideBySide(t *testing.T, shots []image.Image, height int) []byte {
	t.Helper()
	const gap = 32
	width, tallest := gap, 0
	for _, im := range shots {
		width += im.Bounds().Dx() + gap
		tallest = max(tallest, im.Bounds().Dy())
	}
	if height == 0 || height > tallest {
		height = tallest
	}
	out := image.NewRGBA(image.Rect(0, 0, width, height+2*gap))
	draw.Draw(out, out.Bounds(), &image.Uniform{color.RGBA{0xdd, 0xdb, 0xd5, 0xff}}, image.Point{}, draw.Src)
	x := gap
	for _, im := range shots {
		r := im.Bounds()
		r.Max.Y = min(r.Max.Y, r.Min.Y+height)
		draw.Draw(out, image.Rect(x, gap, x+r.Dx(), gap+r.Dy()), im, r.Min, draw.Src)
		x += im.Bounds().Dx() + gap
	}
	var buf bytes.Buffer
	if err := (&png.Encoder{CompressionLevel: png.BestCompression}).Encode(&buf, out); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestCrossSiteLinksRecordNothing plays the attacker of a cross-site
// start: a page on another site sends the fan's browser to the JSON
// API's start with consent=1, or submits a form to it or to the fan
// page's start. In a fresh browser and in one that already pre-saved
// here (with our cookies), none records a state or a pre-save: the link
// lands on the release page, where only the fan can tick the box.
func TestCrossSiteLinksRecordNothing(t *testing.T) {
	t.Parallel()
	b := setupPage(t)
	rel := b.createRelease(releaseBody("cross-site", time.Now().Add(72*time.Hour)))
	b.createRelease(releaseBody("earlier-one", time.Now().Add(72*time.Hour)))
	link := b.url + "/v1/connect/spotify/start?release=" + rel.ID + "&consent=1&actions=save,follow,playlist"
	evil := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		switch r.URL.Path {
		case "/link":
			fmt.Fprintf(w, `<!doctype html><meta http-equiv="refresh" content="0;url=%s"><p>win a prize</p>`, html.EscapeString(link))
		case "/page-form", "/api-form":
			action := b.url + "/r/cross-site/start"
			if r.URL.Path == "/api-form" {
				action = b.url + "/v1/connect/spotify/start"
			}
			fmt.Fprintf(w, `<!doctype html><form id="f" method="post" action="%s">
				<input name="release" value="%s"><input name="provider" value="spotify"><input name="consent" value="1">
				<input name="actions" value="save,follow,playlist"></form><script>document.getElementById('f').submit()</script>`,
				html.EscapeString(action), rel.ID)
		}
	}))
	t.Cleanup(evil.Close)
	// Another site: localhost, while the API is on 127.0.0.1.
	evilURL := strings.Replace(evil.URL, "127.0.0.1", "localhost", 1)
	css := func(sel string) chromedp.CSS { return chromedp.CSS(sel) }
	nothingRecorded := func(ctx context.Context, when string) {
		t.Helper()
		if n, m := b.count("oauth_states", "release_id = $1", rel.ID), b.count("presaves", "release_id = $1", rel.ID); n != 0 || m != 0 {
			t.Errorf("%s: %d states and %d pre-saves for the release", when, n, m)
		}
	}
	attack := func(ctx context.Context, who string) {
		t.Helper()
		do(t, ctx, who+": follow the cross-site link",
			chromedp.Navigate(evilURL+"/link"),
			chromedp.WaitVisible(css("#rel-title")),
		)
		if loc := get(t, ctx, "location", chromedp.Location()); loc != b.url+"/r/cross-site" {
			t.Errorf("%s: the link led to %s, want the release page", who, loc)
		}
		nothingRecorded(ctx, who+" after the link")
		do(t, ctx, who+": a cross-site form to the page's start",
			chromedp.Navigate(evilURL+"/page-form"),
			chromedp.WaitVisible(css("#msg-title")),
		)
		if shown := get(t, ctx, "read", chromedp.Text(css("#msg-title"))); shown != "This form has expired" {
			t.Errorf("%s: cross-site page form answered %q", who, shown)
		}
		nothingRecorded(ctx, who+" after the page form")
		do(t, ctx, who+": a cross-site form to the API's start",
			chromedp.Navigate(evilURL+"/api-form"),
			chromedp.WaitVisible(css("body")),
			chromedp.Poll[chromedp.Void](`document.location.pathname === "/v1/connect/spotify/start"`),
		)
		if body := get(t, ctx, "read", chromedp.Text(css("body"))); !strings.Contains(body, "unsupported_media_type") {
			t.Errorf("%s: cross-site API form answered %.200s", who, body)
		}
		nothingRecorded(ctx, who+" after the API form")
	}

	// A browser that never saw us.
	attack(browser(t, "Europe/Paris"), "fresh browser")

	// A browser that pre-saved here before: it holds the fan, CSRF and
	// binding cookies, and the fake remembers its approval.
	ctx := browser(t, "Europe/Paris")
	do(t, ctx, "pre-save another release",
		chromedp.Navigate(b.url+"/r/earlier-one"),
		chromedp.WaitVisible(css("#rel-title")),
		chromedp.Click(css("#consent")),
		chromedp.Click(css(`button[value="spotify"]`)),
		chromedp.WaitVisible(css("#ps-title")),
	)
	if shown, silent := b.fake.Authorizations(); shown != 1 || silent != 0 {
		t.Errorf("consent screens: %d shown, %d silent; want every authorization to show Spotify's dialog", shown, silent)
	}
	attack(ctx, "returning fan")
	if n := b.count("presaves", ""); n != 1 {
		t.Errorf("%d pre-saves in all, want only the one the fan made", n)
	}
}
