package api_test

import (
	"bytes"
	"context"
	"image"
	"image/png"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"github.com/presave/presave/internal/api"
)

// speak makes the browser send acceptLanguage with every request.
func speak(acceptLanguage string) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, _ *chromedp.Target) error {
		_, err := chromedp.Call(ctx, network.SetExtraHTTPHeaders,
			network.SetExtraHTTPHeadersParams{Headers: network.Headers{"Accept-Language": acceptLanguage}})
		return err
	})
}

// layout is what the browser computed for the release page.
type layout struct {
	Lang, Dir, TitleDir       string
	TitleAlign                float64
	Day, Clock, Zone          string
	ConsentLang, ConsentDir   string
	BoxLeft, LabelLeft        float64
	Buttons                   []float64
	ListPadLeft, ListPadRight float64
	Overflow                  float64
}

const measure = `(() => {
	const css = (el) => getComputedStyle(el);
	const rect = (sel) => document.querySelector(sel).getBoundingClientRect();
	const ul = document.querySelector('#consent-text ul');
	return {
		lang: document.documentElement.lang, dir: css(document.documentElement).direction,
		titleDir: css(document.querySelector('#rel-title bdi')).direction, titleAlign: document.querySelector('#rel-title bdi').getBoundingClientRect().left - document.querySelector('#rel-title').getBoundingClientRect().left,
		day: document.querySelector('.when .js-day').textContent, clock: document.querySelector('.when .js-clock').textContent,
		zone: document.querySelector('.when .js-zone').textContent,
		consentLang: document.querySelector('#consent-text').lang, consentDir: css(document.querySelector('#consent-text')).direction,
		boxLeft: rect('#consent').left, labelLeft: rect('label[for="consent"]').left,
		buttons: Array.from(document.querySelectorAll('.buttons .button')).map(b => b.getBoundingClientRect().left),
		listPadLeft: parseFloat(css(ul).paddingLeft), listPadRight: parseFloat(css(ul).paddingRight),
		overflow: document.documentElement.scrollWidth - window.innerWidth,
	};
})()`

// TestPageInEveryLanguageInABrowser opens the release page in each
// shipped language, chosen by Accept-Language, in headless Chromium: the
// document's language and direction, the day the page's script writes in
// the fan's zone (the same words the server writes), the consent box and
// buttons mirrored right to left in Arabic and Urdu, the Arabic title
// isolated in every language; then an Urdu fan pre-saves and the consent
// is recorded in Urdu. Screenshots at a phone's width of English,
// Japanese and Urdu go to the artefacts.
func TestPageInEveryLanguageInABrowser(t *testing.T) {
	t.Parallel()
	b := setupPage(t)
	at := b.arabicRelease("in-every-language")
	const zone = "Asia/Tokyo"
	tokyo, _ := time.LoadLocation(zone)
	ctx := browser(t, zone)
	s := &shooter{t: t, ctx: ctx, dir: artefacts(t)}
	var phones []image.Image
	for _, l := range locales(t).All() {
		do(t, ctx, "open the page in "+l.Code(),
			speak(l.Code()+";q=0.9,en;q=0.1"),
			chromedp.EmulateViewport(1024, 900),
			chromedp.Navigate(b.url+"/r/in-every-language"),
			chromedp.WaitVisible(chromedp.CSS("#rel-title")),
		)
		got := get(t, ctx, "measure "+l.Code(), chromedp.Evaluate[layout](measure))
		day, clock := l.Day(at.In(tokyo)), l.Clock(at.In(tokyo))
		if got.Lang != l.Code() || got.Dir != l.Dir() || got.ConsentLang != l.Code() || got.ConsentDir != l.Dir() {
			t.Errorf("%s: the page is lang=%q dir=%q, its consent lang=%q dir=%q", l.Code(), got.Lang, got.Dir, got.ConsentLang, got.ConsentDir)
		}
		if got.Day != day || got.Clock != clock || got.Zone != zone {
			t.Errorf("%s: the script wrote %q %q (%s), the catalogue says %q %q", l.Code(), got.Day, got.Clock, got.Zone, day, clock)
		}
		// The Arabic title reads right to left inside, and stands where
		// the page's headings stand: at the start of a left-to-right page.
		if got.TitleDir != "rtl" || (got.TitleAlign < 1) != (l.Dir() == "ltr") {
			t.Errorf("%s: the Arabic title is laid out %s, %.0fpx from the heading's left", l.Code(), got.TitleDir, got.TitleAlign)
		}
		rtl := l.Dir() == "rtl"
		if len(got.Buttons) < 2 {
			t.Fatalf("%s: %d buttons", l.Code(), len(got.Buttons))
		}
		// Right to left, the box stands right of its label, the first
		// button right of the second, the list indented on the right.
		if mirrored := got.BoxLeft > got.LabelLeft && got.Buttons[0] > got.Buttons[1] &&
			got.ListPadRight > 0 && got.ListPadLeft == 0; mirrored != rtl {
			t.Errorf("%s (%s): box at %.0f, label at %.0f, buttons at %v, list padding left %.0f right %.0f",
				l.Code(), l.Dir(), got.BoxLeft, got.LabelLeft, got.Buttons, got.ListPadLeft, got.ListPadRight)
		}
		if c := l.Code(); c == "en" || c == "ja" || c == "ur" {
			do(t, ctx, "phone width", chromedp.EmulateViewport(360, 740, chromedp.EmulateMobile))
			if o := get(t, ctx, "measure", chromedp.Evaluate[layout](measure)).Overflow; o > 0 {
				t.Errorf("%s: the page is %.0fpx wider than a 360px phone", c, o)
			}
			img, err := png.Decode(bytes.NewReader(s.shot("release-phone-" + c)))
			if err != nil {
				t.Fatal(err)
			}
			phones = append(phones, img)
		}
	}

	// The Urdu fan pre-saves: the consent is recorded in Urdu.
	do(t, ctx, "pre-save in Urdu",
		speak("ur"),
		chromedp.EmulateViewport(1024, 900),
		chromedp.Navigate(b.url+"/r/in-every-language"),
		chromedp.WaitVisible(chromedp.CSS("#rel-title")),
		chromedp.Click(chromedp.CSS("#consent")),
		chromedp.WaitEnabled(chromedp.CSS(`button[value="spotify"]`)),
		chromedp.Click(chromedp.CSS(`button[value="spotify"]`)),
		chromedp.WaitVisible(chromedp.CSS("#ps-title")),
	)
	ur, _ := locales(t).Lookup("ur")
	if h := get(t, ctx, "heading", chromedp.Text(chromedp.CSS("#ps-title"))); h != ur.Sprintf("presave.set") {
		t.Errorf("the Urdu confirmation says %q", h)
	}
	s.shot("confirmation-ur")
	if n := b.count("presaves", "provider = 'spotify' AND consent_version = $1 AND consent_locale = 'ur' AND fan_zone = $2",
		api.DefaultConsentVersion, zone); n != 1 {
		t.Errorf("the Urdu consent is not recorded with its version, locale and zone")
	}
	if os.Getenv("UPDATE_SCREENSHOT") == "1" {
		// The README's: the top of the page in English, Japanese, Urdu.
		path := filepath.Join("..", "..", "docs", "languages.png")
		if err := os.WriteFile(path, sideBySide(t, phones, 1000), 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("wrote %s", path)
	}
}

// TestLanguageSwitchWithoutJavaScript: with scripts off, the fan picks
// Japanese from the switch, the choice sticks from page to page, and the
// pre-save made there records the Japanese wording.
func TestLanguageSwitchWithoutJavaScript(t *testing.T) {
	t.Parallel()
	b := setupPage(t)
	b.createRelease(releaseBody("switch-no-js", time.Now().Add(72*time.Hour)))
	ctx := browser(t, "Europe/Berlin")
	lang := func() string {
		return get(t, ctx, "lang", chromedp.Evaluate[string](`document.documentElement.lang`))
	}
	do(t, ctx, "open the page in English without scripts",
		chromedp.Func(func(ctx context.Context, _ *chromedp.Target) error {
			_, err := chromedp.Call(ctx, emulation.SetScriptExecutionDisabled, emulation.SetScriptExecutionDisabledParams{Value: true})
			return err
		}),
		speak("en"),
		chromedp.Navigate(b.url+"/r/switch-no-js"),
		chromedp.WaitVisible(chromedp.CSS("#rel-title")),
	)
	if l, ran := lang(), get(t, ctx, "zone", chromedp.Value(chromedp.CSS("#zone"))); l != "en" || ran != "" {
		t.Fatalf("before the switch: lang %q, zone field %q (the script ran?)", l, ran)
	}
	do(t, ctx, "choose Japanese",
		chromedp.Click(chromedp.CSS(`nav.languages a[hreflang="ja"]`)),
		chromedp.WaitVisible(chromedp.CSS(`html[lang="ja"] #rel-title`)),
	)
	if loc := get(t, ctx, "location", chromedp.Location()); loc != b.url+"/r/switch-no-js" {
		t.Errorf("the switch led to %s", loc)
	}
	do(t, ctx, "another page", chromedp.Navigate(b.url+"/me"), chromedp.WaitVisible(chromedp.CSS("#me-title")))
	if l := lang(); l != "ja" {
		t.Errorf("/me after choosing Japanese is in %q", l)
	}
	do(t, ctx, "pre-save in Japanese without scripts",
		chromedp.Navigate(b.url+"/r/switch-no-js"),
		chromedp.WaitVisible(chromedp.CSS("#rel-title")),
		chromedp.Click(chromedp.CSS("#consent")),
		chromedp.Click(chromedp.CSS(`button[value="youtube"]`)),
		chromedp.WaitVisible(chromedp.CSS("#ps-title")),
	)
	if h := get(t, ctx, "heading", chromedp.Text(chromedp.CSS("#ps-title"))); h != "準備完了です" {
		t.Errorf("the confirmation says %q", h)
	}
	if n := b.count("presaves", "provider = 'youtube' AND consent_version = $1 AND consent_locale = 'ja'", api.DefaultConsentVersion); n != 1 {
		t.Errorf("the pre-save made in Japanese is not recorded with the Japanese wording")
	}
}
