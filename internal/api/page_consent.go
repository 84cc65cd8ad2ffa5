package api

import (
	"bytes"
	"fmt"
	"html/template"
	"io/fs"
	"slices"
	"strings"

	"github.com/presave/presave/internal/locale"
	"github.com/presave/presave/internal/presave"
	"github.com/presave/presave/internal/store"
)

// Consent wordings are versioned documents, never edited once shipped
// (a test pins each one's SHA-256): a pre-save records the version and
// the locale of the text its fan agreed to, and its confirmation shows
// that text again. A version is a folder of one file per locale,
// templates/consent/<version>/<locale>.html, all saying the same thing;
// versions from before locales are one English file,
// templates/consent/<version>.html.

// wordingKey names a wording in page.wordings.
func wordingKey(version, loc string) string { return version + "/" + loc }

// wordingFiles lists every consent wording's file by its wordingKey: a
// version's folder gives one per locale, a file of its own is English.
func wordingFiles() (map[string]string, error) {
	out := map[string]string{}
	for _, pattern := range []string{"templates/consent/*.html", "templates/consent/*/*.html"} {
		files, err := fs.Glob(pageFiles, pattern)
		if err != nil {
			return nil, fmt.Errorf("api: consent wordings: %w", err)
		}
		for _, f := range files {
			key := strings.TrimSuffix(strings.TrimPrefix(f, "templates/consent/"), ".html")
			if !strings.Contains(key, "/") {
				key = wordingKey(key, presave.DefaultConsentLocale)
			}
			out[key] = f
		}
	}
	return out, nil
}

// loadWordings parses every consent wording.
func loadWordings(funcs template.FuncMap) (map[string]*template.Template, error) {
	files, err := wordingFiles()
	if err != nil {
		return nil, err
	}
	out := map[string]*template.Template{}
	for key, f := range files {
		t, err := template.New("consent").Funcs(funcs).ParseFS(pageFiles, f)
		if err != nil {
			return nil, fmt.Errorf("api: consent wording %s: %w", f, err)
		}
		out[key] = t
	}
	return out, nil
}

// consentLocales lists the locales version's wording exists in (none
// when it has no wording).
func consentLocales(version string) ([]string, error) {
	files, err := wordingFiles()
	if err != nil {
		return nil, err
	}
	var out []string
	for key := range files {
		if v, l, _ := strings.Cut(key, "/"); v == version {
			out = append(out, l)
		}
	}
	slices.Sort(out)
	return out, nil
}

// consentView is what a consent wording template sees.
type consentView struct {
	Version       string
	Title, Artist string
	// Fixed is true for a release at one instant; otherwise it comes out
	// at midnight in each fan's zone.
	Fixed bool
	// Day and Clock are the release's day and time in Zone, written the
	// wording's locale's way.
	Day, Clock, Zone string
	Offers           []offer
	// ManageURL is where a fan withdraws.
	ManageURL string
}

// consentLocale is the locale of the current wording a fan reading l
// sees: l's own when the wording exists in it, else English.
func (p *page) consentLocale(l *locale.Locale) *locale.Locale {
	if _, ok := p.wordings[wordingKey(p.s.cfg.ConsentVersion, l.Code())]; ok {
		return l
	}
	return p.s.locales.Default()
}

// consentText renders the wording of version in the locale loc for a
// release, its day and time given in zone.
func (p *page) consentText(version string, loc *locale.Locale, r store.Release, zone string, offers []offer) (template.HTML, error) {
	t, ok := p.wordings[wordingKey(version, loc.Code())]
	if !ok {
		return "", fmt.Errorf("api: no consent wording %s in %s", version, loc.Code())
	}
	due, err := r.DueAt(zone)
	if err != nil {
		return "", err
	}
	v := consentView{Version: version, Title: r.Title, Artist: r.Artist, Fixed: r.Timing == store.TimingFixed,
		Zone: zone, Offers: offers, ManageURL: p.s.cfg.PublicURL + "/me"}
	v.Day, v.Clock = when(loc, due, zone)
	var buf bytes.Buffer
	if err := t.ExecuteTemplate(&buf, "consent", v); err != nil {
		return "", fmt.Errorf("api: render consent %s/%s: %w", version, loc.Code(), err)
	}
	// Safe: html/template escaped everything the wording interpolates.
	return template.HTML(buf.String()), nil //nolint:gosec // output of html/template
}
