package api_test

import (
	"encoding/json"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/html"

	"github.com/presave/presave/internal/api"
	"github.com/presave/presave/internal/locale"
	"github.com/presave/presave/internal/providers"
	"github.com/presave/presave/internal/providers/registry"
	"github.com/presave/presave/internal/store"
)

func locales(t *testing.T) *locale.Set {
	t.Helper()
	s, err := locale.Load()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

var (
	templateAction = regexp.MustCompile(`(?s)\{\{.*?\}\}`)
	word           = regexp.MustCompile(`[A-Za-z]{2,}`)
	// brand is the one word a template may hold: the product's name.
	brand = map[string]bool{"presave": true}
	// textAttrs are the attributes a person reads (or hears).
	textAttrs = map[string]bool{"aria-label": true, "title": true, "alt": true, "placeholder": true, "aria-description": true, "label": true}
)

// englishIn lists the words of literal text in a template: its text and
// the attributes people read, outside {{actions}}.
func englishIn(src string) []string {
	z := html.NewTokenizer(strings.NewReader(templateAction.ReplaceAllString(src, " ")))
	var found []string
	check := func(s string) {
		for _, w := range word.FindAllString(s, -1) {
			if !brand[w] {
				found = append(found, w)
			}
		}
	}
	inScript := false
	for {
		switch z.Next() {
		case html.ErrorToken:
			return found
		case html.TextToken:
			if !inScript {
				check(string(z.Text()))
			}
		case html.StartTagToken, html.SelfClosingTagToken:
			name, more := z.TagName()
			inScript = string(name) == "script"
			for more {
				var k, v []byte
				k, v, more = z.TagAttr()
				if textAttrs[string(k)] {
					check(string(v))
				}
			}
		case html.EndTagToken:
			inScript = false
		}
	}
}

// TestTemplatesHoldNoEnglish: every fan-facing template (all but the
// consent wordings, which are versioned translations of their own) takes
// its words from the catalogues.
func TestTemplatesHoldNoEnglish(t *testing.T) {
	t.Parallel()
	// The check itself finds English.
	if got := englishIn(`<p class="x">Hello {{.Name}}</p><a aria-label="Go back" href="/me">{{t "k"}}</a>`); strings.Join(got, " ") != "Hello Go back" {
		t.Fatalf("englishIn found %q", got)
	}
	files, err := filepath.Glob("templates/*.html")
	if err != nil || len(files) < 6 {
		t.Fatalf("templates: %v %v", files, err)
	}
	for _, f := range files {
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if w := englishIn(string(src)); len(w) > 0 {
			t.Errorf("%s holds literal text %q: put it in internal/locale/catalogues", f, w)
		}
	}
}

var (
	keyInTemplate = regexp.MustCompile(`\{\{[^}]*\bt "([^"]+)"`)
	keyInGo       = regexp.MustCompile(`(?:message\([a-z]+, |Sprintf\()"([a-z][a-z_.]+)"`)
)

// TestEveryKeyUsedExists: each message a template or the page's code
// names is in the catalogues (and TestCataloguesHaveTheSameKeysAndArguments
// makes every catalogue have every key).
func TestEveryKeyUsedExists(t *testing.T) {
	t.Parallel()
	en := locales(t).Default()
	used := map[string]string{}
	for _, pattern := range []string{"templates/*.html", "*.go"} {
		files, _ := filepath.Glob(pattern)
		for _, f := range files {
			if strings.HasSuffix(f, "_test.go") {
				continue
			}
			src, _ := os.ReadFile(f)
			re := keyInGo
			if strings.HasSuffix(f, ".html") {
				re = keyInTemplate
			}
			for _, m := range re.FindAllStringSubmatch(string(src), -1) {
				used[m[1]] = f
			}
		}
	}
	if len(used) < 40 {
		t.Fatalf("found only %d keys: the patterns no longer match the code", len(used))
	}
	// Keys made of a prefix and a value.
	for _, s := range []store.PresaveStatus{store.PresavePending, store.PresaveEnqueued, store.PresaveRunning, store.PresaveHeld,
		store.PresaveDone, store.PresavePartial, store.PresaveFailed, store.PresaveCancelled, store.PresaveNeedsReconnect} {
		used["status."+string(s)] = "a pre-save status"
	}
	for _, s := range []store.ReleaseStatus{store.ReleaseReleased, store.ReleaseCancelled} {
		used["release.closed."+string(s)] = "a release status"
	}
	for _, d := range []string{"withdrawn", "disconnected"} {
		used["me.done."+d] = "an outcome"
	}
	for _, a := range []providers.Action{providers.ActionSave, providers.ActionAddToLibrary, providers.ActionFollow,
		providers.ActionFollowPlaylist, providers.ActionLike, providers.ActionSubscribe} {
		used["action."+string(a)] = "an action"
	}
	for _, n := range providers.Names {
		used["action.add_to_my_playlist."+string(n)] = "an action"
		used["error."+string(n)+"_horizon_exceeded.title"] = "a provider's horizon"
	}
	for k, where := range used {
		if !en.Has(k) && !strings.HasSuffix(k, ".") {
			t.Errorf("%s uses %q, which no catalogue has", where, k)
		}
	}
}

// arabicRelease creates a release whose title is Arabic (and its artist
// Latin), out at one instant, and returns that instant.
func (b *bundle) arabicRelease(slug string) time.Time {
	b.t.Helper()
	at := time.Date(time.Now().Year()+1, 3, 20, 18, 30, 0, 0, time.UTC)
	body := releaseBody(slug, at)
	body["title"], body["artist"] = "ليلة الإطلاق", "The Loopback Choir"
	b.createRelease(body)
	return at
}

// TestThePageInEveryLocale: the release page in each shipped language,
// chosen by Accept-Language, with its consent wording in that language.
func TestThePageInEveryLocale(t *testing.T) {
	t.Parallel()
	b := setupPage(t)
	at := b.arabicRelease("every-locale")
	leaked := regexp.MustCompile(`\b(layout|release|action|me|error|status|date|presave|withdraw|disconnect|delete|confirm|message|musickit|export)\.[a-z_]+`)
	for _, l := range locales(t).All() {
		r := b.pageIn(browserJar{}, l.Code()+",en;q=0.5", http.MethodGet, "/r/every-locale", nil)
		page := string(r.Body)
		if r.Status != http.StatusOK || r.Header.Get("Content-Language") != l.Code() || !strings.Contains(r.Header.Get("Vary"), "Accept-Language") {
			t.Errorf("%s: HTTP %d, Content-Language %q, Vary %q", l.Code(), r.Status, r.Header.Get("Content-Language"), r.Header.Get("Vary"))
		}
		for _, want := range []string{
			`<html lang="` + l.Code() + `" dir="` + l.Dir() + `">`,
			`name="consent_locale" value="` + l.Code() + `"`,
			`id="consent-text" lang="` + l.Code() + `" dir="` + l.Dir() + `"`,
			// The title as the artist team wrote it, isolated.
			`<h1 id="rel-title"><bdi>ليلة الإطلاق</bdi></h1>`, "<bdi>ليلة الإطلاق</bdi>", "<bdi>The Loopback Choir</bdi>",
			// The day the locale's way, the same in the page and its consent.
			l.Day(at), "<bdi>" + api.DefaultConsentVersion + "</bdi>",
			`aria-current="true">` + l.Name() + `</a>`,
		} {
			if !strings.Contains(page, want) {
				t.Errorf("%s: the release page lacks %q", l.Code(), want)
			}
		}
		if m := leaked.FindString(templateAction.ReplaceAllString(page, "")); m != "" {
			t.Errorf("%s: a message key shows: %q", l.Code(), m)
		}
		if l.Code() != "en" && strings.Contains(page, "Tick the box to enable the buttons") {
			t.Errorf("%s: English text on the page", l.Code())
		}
	}
}

func TestLanguageSwitch(t *testing.T) {
	t.Parallel()
	b := setupPage(t)
	b.createRelease(releaseBody("switch", time.Now().Add(48*time.Hour)))
	jar := browserJar{}
	page := b.pageIn(jar, "de", http.MethodGet, "/r/switch", nil)
	link := `href="/lang/ja?next=%2Fr%2Fswitch"`
	if !strings.Contains(string(page.Body), link) || !strings.Contains(string(page.Body), `lang="de" dir="ltr"`) {
		t.Fatalf("the German page lacks the switch to Japanese %s", page.Body)
	}
	r := b.pageIn(jar, "de", http.MethodGet, "/lang/ja?next=%2Fr%2Fswitch", nil)
	if r.Status != http.StatusSeeOther || r.Header.Get("Location") != "/r/switch" || jar[api.LanguageCookie] != "ja" {
		t.Fatalf("switch: HTTP %d to %q, cookie %q", r.Status, r.Header.Get("Location"), jar[api.LanguageCookie])
	}
	// The choice beats Accept-Language, on every page.
	for _, path := range []string{"/r/switch", "/me", "/me/presaves/not-an-id"} {
		if p := b.pageIn(jar, "de", http.MethodGet, path, nil); !strings.Contains(string(p.Body), `<html lang="ja" dir="ltr">`) {
			t.Errorf("%s after choosing Japanese: %.300s", path, p.Body)
		}
	}
	// Only this site's paths: never an open redirect.
	for _, next := range []string{"//evil.example/x", "https://evil.example/", "/\\evil.example", "", "javascript:alert(1)", "r/switch"} {
		r := b.page(browserJar{}, http.MethodGet, "/lang/fr?next="+url.QueryEscape(next), nil)
		if r.Status != http.StatusSeeOther || r.Header.Get("Location") != "/me" {
			t.Errorf("next=%q: HTTP %d to %q", next, r.Status, r.Header.Get("Location"))
		}
	}
	// An OAuth callback's page never puts its code and state in a link.
	stale := b.page(browserJar{}, http.MethodGet, registry.CallbackPath(providers.Spotify)+"?state=stale-state-stale-state-stale-state-stale0&code=secret-code", nil)
	if body := string(stale.Body); !strings.Contains(body, `href="/lang/ja?next=%2Fme"`) || strings.Contains(body, "secret-code") {
		t.Errorf("the callback's error page links the switch to: %s", body)
	}
	if r := b.page(browserJar{}, http.MethodGet, "/lang/xx?next=/me", nil); r.Status != http.StatusNotFound || len(r.cookie) != 0 {
		t.Errorf("an unknown language: HTTP %d, cookies %v", r.Status, r.cookie)
	}
	// A cookie naming no shipped locale is ignored.
	if p := b.pageIn(browserJar{api.LanguageCookie: "klingon"}, "fr", http.MethodGet, "/me", nil); !strings.Contains(string(p.Body), `lang="fr"`) {
		t.Errorf("a bad language cookie: %.200s", p.Body)
	}
}

// TestConsentRecordsItsLocale: a fan reading Arabic consents to the
// Arabic wording; the pre-save keeps the version and the locale, the
// export says both, and the confirmation shows the Arabic text again
// even when the page is then read in English.
func TestConsentRecordsItsLocale(t *testing.T) {
	t.Parallel()
	b := setupPage(t)
	b.createRelease(releaseBody("in-arabic", time.Now().Add(48*time.Hour)))
	jar := browserJar{}
	page := b.pageIn(jar, "ar", http.MethodGet, "/r/in-arabic", nil)
	form := url.Values{"csrf": {csrfOf(t, page)}, "provider": {"spotify"}, "consent": {"1"},
		"consent_version": {api.DefaultConsentVersion}, "consent_locale": {"ar"}}
	r := b.pageIn(jar, "ar", http.MethodPost, "/r/in-arabic/start", form)
	if r.Status != http.StatusFound {
		t.Fatalf("start: HTTP %d %s", r.Status, r.Body)
	}
	q := b.consent(r.Header.Get("Location"), "")
	cb := b.pageIn(jar, "ar", http.MethodGet, registry.CallbackPath(providers.Spotify)+"?"+q.Encode(), nil)
	if cb.Status != http.StatusSeeOther {
		t.Fatalf("callback: HTTP %d %s", cb.Status, cb.Body)
	}
	if n := b.count("presaves", "consent_version = $1 AND consent_locale = 'ar'", api.DefaultConsentVersion); n != 1 {
		t.Errorf("pre-saves recorded with version and locale ar: %d", n)
	}
	var ex struct {
		About    string `json:"about"`
		Presaves []struct {
			Consent struct{ Version, Locale string } `json:"consent"`
		} `json:"presaves"`
	}
	dl := b.pageIn(jar, "ar", http.MethodGet, "/me/export", nil)
	if err := json.Unmarshal(dl.Body, &ex); err != nil {
		t.Fatal(err)
	}
	ar, _ := locales(t).Lookup("ar")
	if len(ex.Presaves) != 1 || ex.Presaves[0].Consent.Locale != "ar" || ex.Presaves[0].Consent.Version != api.DefaultConsentVersion ||
		ex.About != ar.Sprintf("export.about") {
		t.Errorf("export: %s", dl.Body)
	}
	confirmation := b.pageIn(jar, "en", http.MethodGet, cb.Header.Get("Location"), nil)
	if c := string(confirmation.Body); !strings.Contains(c, `<html lang="en" dir="ltr">`) ||
		!strings.Contains(c, `class="consent-text agreed" lang="ar" dir="rtl"`) || !strings.Contains(c, "مرة واحدة فقط") {
		t.Errorf("the confirmation in English does not show the Arabic wording agreed to: %s", c)
	}

	// The JSON API names the locale too; one the wording lacks is refused.
	b.startURL(providers.YouTube, map[string]any{"release": "in-arabic", "consent": true, "consent_locale": "ja"}, "")
	bad := b.do(req{method: http.MethodPost, path: "/v1/connect/youtube/start",
		json: map[string]any{"release": "in-arabic", "consent": true, "consent_locale": "tlh"}})
	if bad.Status != http.StatusBadRequest || !strings.Contains(string(bad.Body), "consent_locale_unknown") {
		t.Errorf("an unknown consent locale: HTTP %d %s", bad.Status, bad.Body)
	}
	if n := b.count("oauth_states", "consent_locale = 'ja'"); n != 1 {
		t.Errorf("states started in Japanese: %d", n)
	}
}

// TestAnEnglishOnlyWordingStaysEnglish: under a version that exists only
// in English, a Japanese page shows and records the English wording.
func TestAnEnglishOnlyWordingStaysEnglish(t *testing.T) {
	t.Parallel()
	b := setupPage(t, func(c *api.Config) { c.ConsentVersion = "2026-12-v4" })
	b.createRelease(releaseBody("english-only", time.Now().Add(48*time.Hour)))
	page := string(b.pageIn(browserJar{}, "ja", http.MethodGet, "/r/english-only", nil).Body)
	for _, want := range []string{`<html lang="ja" dir="ltr">`, `name="consent_locale" value="en"`, `id="consent-text" lang="en" dir="ltr"`,
		"I allow presave to act"} {
		if !strings.Contains(page, want) {
			t.Errorf("the Japanese page under an English-only wording lacks %q", want)
		}
	}
}

// TestATitleCannotForgeAnArgument: a title holding the characters that
// stand in for a message's arguments is shown as it is, never replaced
// by another argument.
func TestATitleCannotForgeAnArgument(t *testing.T) {
	t.Parallel()
	b := setupPage(t)
	body := releaseBody("forged", time.Now().Add(48*time.Hour))
	body["title"], body["artist"] = "A\uE0001\uE001B", "<i>Artist</i>"
	b.createRelease(body)
	page := string(b.page(browserJar{}, http.MethodGet, "/r/forged", nil).Body)
	if !strings.Contains(page, "<title>A\uE0001\uE001B by &lt;i&gt;Artist&lt;/i&gt; · presave</title>") {
		t.Errorf("the page's title: %s", regexp.MustCompile(`<title>.*</title>`).FindString(page))
	}
}
