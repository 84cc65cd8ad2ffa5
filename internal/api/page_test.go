package api_test

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/presave/presave/internal/api"
	"github.com/presave/presave/internal/providers"
	"github.com/presave/presave/internal/providers/registry"
)

// setupPage is setup with the fan page mounted and the shipped consent
// wording as the current version.
func setupPage(t *testing.T, opts ...func(*api.Config)) *bundle {
	t.Helper()
	opts = append([]func(*api.Config){func(c *api.Config) { c.ConsentVersion = api.DefaultConsentVersion }}, opts...)
	b := setup(t, opts...)
	if err := b.srv.MountPage(); err != nil {
		t.Fatal(err)
	}
	b.pageMounted = true
	return b
}

// browserJar is a minimal cookie store for page requests.
type browserJar map[string]string

func (j browserJar) header() string {
	var parts []string
	for k, v := range j {
		parts = append(parts, k+"="+v)
	}
	return strings.Join(parts, "; ")
}

func (j browserJar) take(r response) {
	for _, c := range r.cookie {
		if c.MaxAge < 0 {
			delete(j, c.Name)
		} else {
			j[c.Name] = c.Value
		}
	}
}

// page sends a browser-like request (HTML wanted, cookies from jar).
func (b *bundle) page(jar browserJar, method, path string, form url.Values) response {
	b.t.Helper()
	return b.pageIn(jar, "", method, path, form)
}

// pageIn is page from a browser whose languages are acceptLanguage.
func (b *bundle) pageIn(jar browserJar, acceptLanguage, method, path string, form url.Values) response {
	b.t.Helper()
	r := req{method: method, path: path, header: map[string]string{"Accept": "text/html"}}
	if acceptLanguage != "" {
		r.header["Accept-Language"] = acceptLanguage
	}
	if c := jar.header(); c != "" {
		r.header["Cookie"] = c
	}
	if form != nil {
		r.body, r.contentType = []byte(form.Encode()), "application/x-www-form-urlencoded"
	}
	resp := b.do(r)
	jar.take(resp)
	return resp
}

var csrfInput = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

func csrfOf(t *testing.T, r response) string {
	t.Helper()
	m := csrfInput.FindSubmatch(r.Body)
	if m == nil {
		t.Fatalf("no csrf field in the page (HTTP %d): %s", r.Status, r.Body)
	}
	return string(m[1])
}

func TestPageHeadersWordingAndCSRFCookie(t *testing.T) {
	t.Parallel()
	b := setupPage(t)
	b.createRelease(releaseBody("page-headers", time.Now().Add(48*time.Hour)))
	jar := browserJar{}
	r := b.page(jar, http.MethodGet, "/r/page-headers", nil)
	if r.Status != http.StatusOK || !strings.HasPrefix(r.Header.Get("Content-Type"), "text/html") {
		t.Fatalf("release page: HTTP %d %s", r.Status, r.Header.Get("Content-Type"))
	}
	fakeOrigin := b.fake // the authorize URL's origin must be allowed as a form target
	_ = fakeOrigin
	authURL := b.startURL(providers.Spotify, map[string]any{"release": "page-headers", "consent": true}, "")
	u, _ := url.Parse(authURL)
	csp := r.Header.Get("Content-Security-Policy")
	for _, want := range []string{"default-src 'self'", "script-src 'self'", "style-src 'self'", "frame-ancestors 'none'",
		"base-uri 'none'", "form-action 'self' " + u.Scheme + "://" + u.Host} {
		if !strings.Contains(csp, want) {
			t.Errorf("CSP %q lacks %q", csp, want)
		}
	}
	for k, v := range map[string]string{"Referrer-Policy": "no-referrer", "X-Content-Type-Options": "nosniff", "X-Frame-Options": "DENY"} {
		if got := r.Header.Get(k); got != v {
			t.Errorf("%s = %q, want %q", k, got, v)
		}
	}
	body := string(r.Body)
	for _, want := range []string{`<html lang="en" dir="ltr">`, "The Album", "The Artist", `name="consent_version" value="` + api.DefaultConsentVersion + `"`,
		`name="consent_locale" value="en"`,
		`<input type="checkbox" name="actions_spotify" value="follow" id="act-spotify-follow" checked>`,
		`<label for="act-youtube-like">Like the video</label>`, `name="choose" value="1"`,
		"save the release's album and tracks to my library", "like the release's video", b.url + "/me",
		"follow the artist's playlist", "subscribe to the artist's channel",
		"create one private playlist in my account named “<bdi>Night Drive: The Examples</bdi>” and add the release's tracks to it",
		"create one private playlist in my account named “<bdi>Night Drive: The Examples</bdi>” and add the release's video to it",
		`<label for="act-youtube-add_to_my_playlist">Add the video to a new private playlist of mine</label>`,
		`value="spotify"`, `value="youtube"`, `<label for="consent">`} {
		if !strings.Contains(body, want) {
			t.Errorf("release page lacks %q", want)
		}
	}
	if strings.Contains(body, "<script>") || strings.Contains(body, " style=") || strings.Contains(body, "https://") {
		t.Errorf("release page has inline script/style or a third-party URL")
	}
	ck, ok := r.cookieValue(api.CSRFCookie)
	if !ok || !ck.HttpOnly || ck.SameSite != http.SameSiteStrictMode || ck.Value != csrfOf(t, r) {
		t.Errorf("csrf cookie = %+v", ck)
	}
	// A second visit keeps the token (other tabs stay valid).
	if r2 := b.page(jar, http.MethodGet, "/r/page-headers", nil); csrfOf(t, r2) != ck.Value {
		t.Errorf("the csrf token changed between visits")
	}
	for _, asset := range []string{"/static/page.css", "/static/page.js"} {
		if a := b.page(jar, http.MethodGet, asset, nil); a.Status != http.StatusOK || a.Header.Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("%s: HTTP %d", asset, a.Status)
		}
	}
	if nf := b.page(jar, http.MethodGet, "/r/no-such-release", nil); nf.Status != http.StatusNotFound || !strings.Contains(string(nf.Body), "find this release") {
		t.Errorf("unknown release: HTTP %d %s", nf.Status, nf.Body)
	}
	// The JSON API's errors are untouched.
	if j := b.do(req{method: http.MethodGet, path: "/v1/nothing"}); j.Status != http.StatusNotFound || j.errorCode(t) != "not_found" {
		t.Errorf("API 404: %d %s", j.Status, j.Body)
	}
}

func TestPageStartRefusesWithoutConsentOrCSRF(t *testing.T) {
	t.Parallel()
	b := setupPage(t)
	b.createRelease(releaseBody("page-refusals", time.Now().Add(48*time.Hour)))
	jar := browserJar{}
	tok := csrfOf(t, b.page(jar, http.MethodGet, "/r/page-refusals", nil))
	before := b.fingerprint()

	// No consent (the no-JavaScript path): a page saying so, nothing stored.
	r := b.page(jar, http.MethodPost, "/r/page-refusals/start", url.Values{"csrf": {tok}, "provider": {"spotify"}, "zone": {"Europe/Paris"}})
	if r.Status != http.StatusBadRequest || !strings.Contains(string(r.Body), "Please tick the consent box") ||
		!strings.Contains(string(r.Body), `href="/r/page-refusals"`) {
		t.Errorf("start without consent: HTTP %d %s", r.Status, r.Body)
	}
	// CSRF: missing, wrong, no cookie, cross-site.
	consent := url.Values{"provider": {"spotify"}, "consent": {"1"}}
	cases := map[string]struct {
		jar  browserJar
		form url.Values
		hdr  string
	}{
		"missing token": {jar, consent, ""},
		"wrong token":   {jar, withValue(consent, "csrf", strings.Repeat("x", 43)), ""},
		"no cookie":     {browserJar{}, withValue(consent, "csrf", tok), ""},
		"cross-site":    {jar, withValue(consent, "csrf", tok), "cross-site"},
	}
	for name, tc := range cases {
		rq := req{method: http.MethodPost, path: "/r/page-refusals/start", body: []byte(tc.form.Encode()),
			contentType: "application/x-www-form-urlencoded", header: map[string]string{"Accept": "text/html"}}
		if c := tc.jar.header(); c != "" {
			rq.header["Cookie"] = c
		}
		if tc.hdr != "" {
			rq.header["Sec-Fetch-Site"] = tc.hdr
		}
		r := b.do(rq)
		if r.Status != http.StatusForbidden || !strings.Contains(string(r.Body), "This form has expired") {
			t.Errorf("%s: HTTP %d %s", name, r.Status, r.Body)
		}
	}
	b.sameFingerprint(before, b.fingerprint(), "refused starts")
}

func withValue(v url.Values, k, val string) url.Values {
	out := url.Values{}
	for kk, vv := range v {
		out[kk] = vv
	}
	out.Set(k, val)
	return out
}

// TestPageStateIsBoundToTheBrowser: a callback link carried to another
// browser (login CSRF) is refused with nothing written and the code
// unused; the browser that started completes.
func TestPageStateIsBoundToTheBrowser(t *testing.T) {
	t.Parallel()
	b := setupPage(t)
	b.createRelease(releaseBody("page-binding", time.Now().Add(48*time.Hour)))
	start := func(jar browserJar) url.Values {
		tok := csrfOf(t, b.page(jar, http.MethodGet, "/r/page-binding", nil))
		r := b.page(jar, http.MethodPost, "/r/page-binding/start",
			url.Values{"csrf": {tok}, "provider": {"spotify"}, "consent": {"1"}, "zone": {"America/New_York"}})
		if r.Status != http.StatusFound {
			t.Fatalf("start: HTTP %d %s", r.Status, r.Body)
		}
		ck, ok := r.cookieValue(api.BindingCookie)
		if !ok || !ck.HttpOnly || ck.SameSite != http.SameSiteLaxMode || ck.MaxAge != int(api.StateTTL/time.Second) {
			t.Fatalf("binding cookie = %+v", ck)
		}
		return b.consent(r.Header.Get("Location"), "")
	}
	grants := func() int { return len(b.fake.State().Grants) }

	// The attacker's completed link, opened by a victim's browser.
	attacker := browserJar{}
	q := start(attacker)
	victim := browserJar{api.BindingCookie: strings.Repeat("v", 43)}
	before, g := b.fingerprint("oauth_states"), grants()
	r := b.page(victim, http.MethodGet, registry.CallbackPath(providers.Spotify)+"?"+q.Encode(), nil)
	if r.Status != http.StatusBadRequest || !strings.Contains(string(r.Body), "start again in this browser") ||
		!strings.Contains(string(r.Body), `href="/r/page-binding"`) {
		t.Errorf("foreign browser: HTTP %d %s", r.Status, r.Body)
	}
	if _, ok := r.cookieValue(api.FanCookie); ok {
		t.Errorf("a fan cookie was set in the foreign browser")
	}
	b.sameFingerprint(before, b.fingerprint("oauth_states"), "foreign browser")
	if grants() != g {
		t.Errorf("the code was exchanged")
	}
	// Same without any cookie: still refused (a bound state is a page
	// flow, so the answer is a page whatever the client asks for).
	q = start(attacker)
	if r := b.callback(providers.Spotify, q, ""); r.Status != http.StatusBadRequest || !strings.Contains(string(r.Body), "state_browser_mismatch") {
		t.Errorf("no cookie: HTTP %d %s", r.Status, r.Body)
	}

	// The browser that started completes, lands on the confirmation.
	fan := browserJar{}
	q = start(fan)
	r = b.page(fan, http.MethodGet, registry.CallbackPath(providers.Spotify)+"?"+q.Encode(), nil)
	if r.Status != http.StatusSeeOther || !strings.HasPrefix(r.Header.Get("Location"), "/me/presaves/") || fan[api.FanCookie] == "" {
		t.Fatalf("bound callback: HTTP %d %s %v", r.Status, r.Header.Get("Location"), fan)
	}
	if r.Header.Get("Referrer-Policy") != "no-referrer" || r.Header.Get("Cache-Control") != "no-store" {
		t.Errorf("callback headers: %v", r.Header)
	}
	if n := b.count("presaves", "fan_zone = 'America/New_York' AND consent_version = $1", api.DefaultConsentVersion); n != 1 {
		t.Errorf("presaves with the fan's zone and the consent version = %d", n)
	}
	conf := b.page(fan, http.MethodGet, r.Header.Get("Location"), nil)
	if conf.Status != http.StatusOK || !strings.Contains(string(conf.Body), "You&#39;re all set") ||
		!strings.Contains(string(conf.Body), "America/New_York") {
		t.Errorf("confirmation: HTTP %d %s", conf.Status, conf.Body)
	}
	// Another browser cannot read it.
	if other := b.page(browserJar{}, http.MethodGet, r.Header.Get("Location"), nil); other.Status != http.StatusUnauthorized {
		t.Errorf("confirmation without the fan cookie: HTTP %d", other.Status)
	}
}

func TestPageCallbackErrorsAreHTMLForBrowsersOnly(t *testing.T) {
	t.Parallel()
	b := setupPage(t)
	q := url.Values{"state": {"forged-state-forged-state-forged-state-abcd"}, "code": {"c"}}
	path := registry.CallbackPath(providers.YouTube) + "?" + q.Encode()
	if r := b.page(browserJar{}, http.MethodGet, path, nil); r.Status != http.StatusBadRequest ||
		!strings.Contains(string(r.Body), "This link has expired") || r.Header.Get("Content-Security-Policy") == "" {
		t.Errorf("browser: HTTP %d %s", r.Status, r.Body)
	}
	if r := b.do(req{method: http.MethodGet, path: path}); r.errorCode(t) != "state_invalid" {
		t.Errorf("API client: %s", r.Body)
	}
	// An API (unbound) flow keeps its JSON answer on success.
	b.createRelease(releaseBody("page-api-flow", time.Now().Add(48*time.Hour)))
	c := b.connect(providers.YouTube, "page-api-flow", "", "")
	if c.FanToken == "" {
		t.Errorf("API flow: %+v", c)
	}
}

func TestPageExportIsTheAPIExport(t *testing.T) {
	t.Parallel()
	b := setupPage(t)
	b.createRelease(releaseBody("page-export", time.Now().Add(48*time.Hour)))
	c := b.connect(providers.Spotify, "page-export", "", "")
	jar := browserJar{api.FanCookie: c.FanToken}
	dl := b.page(jar, http.MethodGet, "/me/export", nil)
	if dl.Status != http.StatusOK || !strings.HasPrefix(dl.Header.Get("Content-Disposition"), "attachment") {
		t.Fatalf("export: HTTP %d %v", dl.Status, dl.Header)
	}
	api := b.do(req{method: http.MethodGet, path: "/v1/me", header: fanHeader(c.FanToken)})
	var x, y any
	dl.decode(t, &x)
	api.decode(t, &y)
	xb, _ := json.Marshal(x)
	yb, _ := json.Marshal(y)
	if string(xb) != string(yb) {
		t.Errorf("download differs from GET /v1/me:\n%s\n%s", xb, yb)
	}
}

func TestPageNeedsTheConsentWording(t *testing.T) {
	t.Parallel()
	b := setup(t) // ConsentVersion test-v1 has no wording
	if err := b.srv.MountPage(); err == nil || !strings.Contains(err.Error(), "test-v1") {
		t.Errorf("MountPage with an unknown consent version: %v", err)
	}
}

// shippedWordings pins every consent wording, each locale of each
// version: a version and locale are recorded with the pre-saves
// consented under them, so the text must never change. Add a new version
// (and its lines here) instead.
var shippedWordings = map[string]string{
	"2026-11-v1.html":       "11a867b6260c6913658c80a9aa340e9511c82663a3860d326a60876e21aecaa2",
	"2026-11-v2.html":       "970a06349157350717f21d6c4b90790549b3e641d827aadd09b7775e86e39409",
	"2026-12-v3.html":       "6e1552786de1b42827f746a419262f444e0cb03adff6e075edcdd21692fb3dd3",
	"2026-12-v4.html":       "0190e206d22aa204b55f52cc9b322ef022d9f51637b40ce5f72df372c31cc6bc",
	"2026-12-v5/ar.html":    "cd2ed0c0eca36d4468922777077910197ceb5b9b73793e6907a44c2750f37a0c",
	"2026-12-v5/de.html":    "b692f9a6c73244df0dcb4da6ce676b78293d2ae79c53600f7c1e4e15e2d5c9e6",
	"2026-12-v5/en.html":    "fb2e926dae0f5abc52ab928448a690840a12f77f0328f9c3307326f055c02109",
	"2026-12-v5/es.html":    "3ee62187740a82d9cb9f6f2afc3e1934d941130266991d6dba63ef53275e41bc",
	"2026-12-v5/fr.html":    "119ec5d86883d0aa35cde8d01d411b9bf39b1f9c674d4284a890ff8b6cc2d777",
	"2026-12-v5/ja.html":    "fa5bef3b511c03f2b0bd9333106cf11f1fcfafb842f4039be7cd13361c483d1f",
	"2026-12-v5/pt-BR.html": "bda4860179afa9aa2254bbc8e52cca592f94b40949ea376463b602112f318125",
	"2026-12-v5/ur.html":    "a4fdcf4bde044d7b3473f03682e13e3da19c0fad484ea47e69c7f335d16a76f7",
}

func TestConsentWordingsNeverChange(t *testing.T) {
	t.Parallel()
	var files []string
	for _, pattern := range []string{"*.html", "*/*.html"} {
		f, err := fs.Glob(os.DirFS("templates/consent"), pattern)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, f...)
	}
	if len(files) != len(shippedWordings) {
		t.Errorf("%d consent wordings, %d pinned: pin each new one here", len(files), len(shippedWordings))
	}
	for _, f := range files {
		b, err := os.ReadFile(filepath.Join("templates/consent", f))
		if err != nil {
			t.Fatal(err)
		}
		h := sha256.Sum256(b)
		if want, ok := shippedWordings[f]; !ok || want != hex.EncodeToString(h[:]) {
			t.Errorf("consent wording %s has sha256 %x; shipped wordings never change (add a new version)", f, h)
		}
	}
}

// pageStart runs the page's start in jar and returns the consent
// screen's URL.
func (b *bundle) pageStart(jar browserJar, slug string, p providers.Name) string {
	b.t.Helper()
	tok := csrfOf(b.t, b.page(jar, http.MethodGet, "/r/"+slug, nil))
	r := b.page(jar, http.MethodPost, "/r/"+slug+"/start", url.Values{"csrf": {tok}, "provider": {string(p)}, "consent": {"1"}})
	if r.Status != http.StatusFound {
		b.t.Fatalf("start: HTTP %d %s", r.Status, r.Body)
	}
	return r.Header.Get("Location")
}

func TestPageErrorsAFanUnderstands(t *testing.T) {
	t.Parallel()
	b := setupPage(t)
	rel := b.createRelease(releaseBody("page-errors", time.Now().Add(48*time.Hour)))
	cb := func(jar browserJar, p providers.Name, q url.Values) response {
		return b.page(jar, http.MethodGet, registry.CallbackPath(p)+"?"+q.Encode(), nil)
	}

	jar := browserJar{}
	denied := cb(jar, providers.YouTube, b.consent(b.pageStart(jar, "page-errors", providers.YouTube)+"&deny=1", ""))
	if denied.Status != http.StatusForbidden || !strings.Contains(string(denied.Body), "Nothing was saved") ||
		!strings.Contains(string(denied.Body), `href="/r/page-errors"`) {
		t.Errorf("denied: HTTP %d %s", denied.Status, denied.Body)
	}

	// Cancelled while the fan was on the consent screen.
	q := b.consent(b.pageStart(jar, "page-errors", providers.Spotify), "")
	b.admin(http.MethodPost, "/v1/releases/"+rel.ID+"/cancel", nil, http.StatusOK)
	before := b.fingerprint("oauth_states")
	r := cb(jar, providers.Spotify, q)
	if r.Status != http.StatusConflict || !strings.Contains(string(r.Body), "takes no more pre-saves") {
		t.Errorf("cancelled: HTTP %d %s", r.Status, r.Body)
	}
	b.sameFingerprint(before, b.fingerprint("oauth_states"), "cancelled release")
	page := b.page(jar, http.MethodGet, "/r/page-errors", nil)
	if page.Status != http.StatusOK || !strings.Contains(string(page.Body), "is cancelled and takes no more pre-saves") ||
		strings.Contains(string(page.Body), "<form") {
		t.Errorf("cancelled release page: HTTP %d %s", page.Status, page.Body)
	}
}

func TestPageRateLimitIsAPage(t *testing.T) {
	t.Parallel()
	b := setupPage(t, func(c *api.Config) { c.FanRateLimit, c.FanRateBurst = 0.001, 2 })
	b.createRelease(releaseBody("page-limit", time.Now().Add(48*time.Hour)))
	var last response
	for range 3 {
		last = b.page(browserJar{}, http.MethodGet, "/r/page-limit", nil)
	}
	if last.Status != http.StatusTooManyRequests || !strings.Contains(string(last.Body), "Too many tries at once") ||
		last.Header.Get("Content-Security-Policy") == "" {
		t.Errorf("rate limited: HTTP %d %s", last.Status, last.Body)
	}
}

func TestPageManageWithoutAFan(t *testing.T) {
	t.Parallel()
	b := setupPage(t)
	for _, ck := range []browserJar{{}, {api.FanCookie: "not-a-token"}} {
		r := b.page(ck, http.MethodGet, "/me", nil)
		if r.Status != http.StatusOK || !strings.Contains(string(r.Body), "This browser has no pre-saves with us") {
			t.Errorf("/me with %v: HTTP %d", ck, r.Status)
		}
	}
	// State-changing pages need the fan, then the CSRF token.
	if r := b.page(browserJar{}, http.MethodPost, "/me/delete", url.Values{}); r.Status != http.StatusUnauthorized {
		t.Errorf("delete without a fan: HTTP %d", r.Status)
	}
	c := b.connect(providers.Spotify, b.createRelease(releaseBody("page-nofan", time.Now().Add(48*time.Hour))).Slug, "", "")
	jar := browserJar{api.FanCookie: c.FanToken}
	if r := b.page(jar, http.MethodPost, "/me/delete", url.Values{}); r.Status != http.StatusForbidden || b.count("fans", "") != 1 {
		t.Errorf("delete without a CSRF token: HTTP %d", r.Status)
	}
}

// The fan chooses the actions on the page: the boxes left ticked are
// what is consented to (and the scopes asked for); none ticked is a
// refusal page that stores nothing.
func TestPageFanChoosesTheActions(t *testing.T) {
	t.Parallel()
	b := setupPage(t)
	b.createRelease(releaseBody("page-choices", time.Now().Add(48*time.Hour)))
	jar := browserJar{}
	tok := csrfOf(t, b.page(jar, http.MethodGet, "/r/page-choices", nil))
	before := b.fingerprint()
	form := url.Values{"csrf": {tok}, "provider": {"spotify"}, "consent": {"1"}, "choose": {"1"}, "zone": {"Europe/Paris"}}

	// Every Spotify box unticked (YouTube's ticked): refused, nothing stored.
	r := b.page(jar, http.MethodPost, "/r/page-choices/start", withValue(form, "actions_youtube", "like"))
	if r.Status != http.StatusBadRequest || !strings.Contains(string(r.Body), "Choose what presave may do") ||
		!strings.Contains(string(r.Body), `href="/r/page-choices"`) {
		t.Errorf("start with nothing ticked: HTTP %d %s", r.Status, r.Body)
	}
	b.sameFingerprint(before, b.fingerprint(), "a start with nothing ticked")

	// Only "save" ticked: the consent screen asks for the library scopes
	// alone, and the pre-save holds that one action.
	r = b.page(jar, http.MethodPost, "/r/page-choices/start", withValue(form, "actions_spotify", "save"))
	if r.Status != http.StatusFound {
		t.Fatalf("start with save ticked: HTTP %d %s", r.Status, r.Body)
	}
	auth, err := url.Parse(r.Header.Get("Location"))
	if err != nil {
		t.Fatal(err)
	}
	if scope := auth.Query().Get("scope"); !strings.Contains(scope, "user-library-modify") || strings.Contains(scope, "playlist") {
		t.Errorf("scopes asked for save alone: %q", scope)
	}
	q := b.consent(r.Header.Get("Location"), "")
	cb := b.page(jar, http.MethodGet, registry.CallbackPath(providers.Spotify)+"?"+q.Encode(), nil)
	if cb.Status != http.StatusSeeOther {
		t.Fatalf("callback: HTTP %d %s", cb.Status, cb.Body)
	}
	if n := b.count("presaves", "provider = 'spotify' AND actions = '{save}' AND consent_version = $1", api.DefaultConsentVersion); n != 1 {
		t.Errorf("pre-saves with only the ticked action = %d, want 1", n)
	}

	// A box for an action the release does not offer is refused.
	r = b.page(jar, http.MethodPost, "/r/page-choices/start", withValue(form, "actions_spotify", "like"))
	if r.Status != http.StatusBadRequest || !strings.Contains(string(r.Body), "<code>action_not_offered</code>") {
		t.Errorf("start with an action Spotify does not have: HTTP %d %s", r.Status, r.Body)
	}
}
