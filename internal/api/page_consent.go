package api

import (
	"bytes"
	"fmt"
	"html/template"
	"io/fs"
	"path"
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

// loadWordings parses every consent wording.
func loadWordings(funcs template.FuncMap) (map[string]*template.Template, error) {
	out := map[string]*template.Template{}
	for _, pattern := range []string{"templates/consent/*.html", "templates/consent/*/*.html"} {
		files, err := fs.Glob(pageFiles, pattern)
		if err != nil {
			return nil, fmt.Errorf("api: consent wordings: %w", err)
		}
		for _, f := range files {
			t, err := template.New("consent").Funcs(funcs).ParseFS(pageFiles, f)
			if err != nil {
				return nil, fmt.Errorf("api: consent wording %s: %w", f, err)
			}
			rel := strings.TrimSuffix(strings.TrimPrefix(f, "templates/consent/"), ".html")
			if !strings.Contains(rel, "/") {
				rel = wordingKey(rel, presave.DefaultConsentLocale)
			}
			out[rel] = t
		}
	}
	return out, nil
}

// consentLocales lists the locales version's wording exists in (none
// when it has no wording).
func consentLocales(version string) []string {
	var out []string
	if _, err := fs.Stat(pageFiles, "templates/consent/"+version+".html"); err == nil {
		out = append(out, presave.DefaultConsentLocale)
	}
	files, _ := fs.Glob(pageFiles, "templates/consent/"+version+"/*.html")
	for _, f := range files {
		if l := strings.TrimSuffix(path.Base(f), ".html"); !slices.Contains(out, l) {
			out = append(out, l)
		}
	}
	return out
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
