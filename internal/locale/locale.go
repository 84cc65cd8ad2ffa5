// Package locale holds the languages the fan's pages speak: one message
// catalogue per locale (catalogues/<BCP 47 tag>.json, embedded), the
// choice of a locale from a browser's Accept-Language, and dates, times
// and numbers written the locale's way.
//
// Catalogues are golang.org/x/text/message catalogues: x/text is the Go
// project's own implementation of CLDR's language matching, plural rules
// and number systems, and it was already in the module graph; its
// printf-style messages take positional arguments (%[2]s before %[1]s),
// which word order in Japanese, Arabic or Urdu needs.
//
// A catalogue file is a JSON object of message keys. A value is either a
// string or, for a message that depends on a count, an object of CLDR
// plural categories ("zero", "one", "two", "few", "many", "other") whose
// count is the message's first argument. Every catalogue has every key
// (a test checks it), "locale.name" (the language's own name for itself)
// and "locale.dir" ("ltr" or "rtl").
package locale

import (
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"sort"
	"strings"

	"golang.org/x/text/feature/plural"
	"golang.org/x/text/language"
	"golang.org/x/text/message"
	"golang.org/x/text/message/catalog"
)

//go:embed catalogues/*.json
var catalogueFiles embed.FS

// Fallback is the locale of a fan whose languages presave does not speak,
// and the one every other catalogue is translated from.
const Fallback = "en"

// Locale is one language presave speaks.
type Locale struct {
	tag  language.Tag
	code string
	p    *message.Printer
	keys map[string]bool
	// name, dir and cal are read on every page: formatted once, at load.
	name, dir string
	cal       Calendar
}

// Code is the locale's BCP 47 tag as presave records it ("pt-BR").
func (l *Locale) Code() string { return l.code }

// Tag is the locale's language tag.
func (l *Locale) Tag() language.Tag { return l.tag }

// Name is the language's name for itself ("日本語").
func (l *Locale) Name() string { return l.name }

// Dir is the writing direction: "ltr" or "rtl".
func (l *Locale) Dir() string { return l.dir }

// Has reports whether the catalogue has key.
func (l *Locale) Has(key string) bool { return l.keys[key] }

// Sprintf formats the message key with args the locale's way: numbers
// (int and the values of this package's number helpers) in its digits,
// the plural form its rules choose. A key no catalogue has is returned
// as it is (a test makes sure templates only use keys that exist).
func (l *Locale) Sprintf(key string, args ...any) string {
	return l.p.Sprintf(key, args...)
}

// Set is the shipped locales.
type Set struct {
	all     []*Locale
	byCode  map[string]*Locale
	matcher language.Matcher
}

// Load reads the embedded catalogues.
func Load() (*Set, error) {
	return LoadFS(catalogueFiles)
}

// LoadFS reads the catalogues in fsys's catalogues folder.
func LoadFS(fsys fs.FS) (*Set, error) {
	files, err := fs.Glob(fsys, "catalogues/*.json")
	if err != nil {
		return nil, err
	}
	// The fallback first: the matcher answers its first tag when nothing
	// matches.
	sort.SliceStable(files, func(i, j int) bool {
		return path.Base(files[i]) == Fallback+".json" && path.Base(files[j]) != Fallback+".json"
	})
	b := catalog.NewBuilder(catalog.Fallback(language.MustParse(Fallback)))
	s := &Set{byCode: map[string]*Locale{}}
	var tags []language.Tag
	for _, f := range files {
		code := strings.TrimSuffix(path.Base(f), ".json")
		tag, err := language.Parse(code)
		if err != nil || tag.String() != code {
			return nil, fmt.Errorf("locale: catalogue %s: the name must be a canonical BCP 47 tag (%v)", f, err)
		}
		raw, err := fs.ReadFile(fsys, f)
		if err != nil {
			return nil, err
		}
		keys, err := addCatalogue(b, tag, raw)
		if err != nil {
			return nil, fmt.Errorf("locale: catalogue %s: %w", f, err)
		}
		l := &Locale{tag: tag, code: code, keys: keys}
		s.all = append(s.all, l)
		s.byCode[code] = l
		tags = append(tags, tag)
	}
	if len(s.all) == 0 || s.all[0].code != Fallback {
		return nil, fmt.Errorf("locale: no %s catalogue", Fallback)
	}
	for _, l := range s.all {
		l.p = message.NewPrinter(l.tag, message.Catalog(b))
		l.name, l.dir, l.cal = l.p.Sprintf("locale.name"), l.p.Sprintf("locale.dir"), l.calendar()
		if l.dir != "ltr" && l.dir != "rtl" {
			return nil, fmt.Errorf("locale: %s: locale.dir is %q, want ltr or rtl", l.code, l.dir)
		}
	}
	s.matcher = language.NewMatcher(tags)
	return s, nil
}

// addCatalogue adds one locale's messages to b and returns its keys.
func addCatalogue(b *catalog.Builder, tag language.Tag, raw []byte) (map[string]bool, error) {
	var msgs map[string]json.RawMessage
	if err := json.Unmarshal(raw, &msgs); err != nil {
		return nil, err
	}
	keys := map[string]bool{}
	for key, v := range msgs {
		keys[key] = true
		var s string
		if err := json.Unmarshal(v, &s); err == nil {
			if err := b.SetString(tag, key, s); err != nil {
				return nil, fmt.Errorf("%s: %w", key, err)
			}
			continue
		}
		forms, err := pluralForms(v)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", key, err)
		}
		if err := b.Set(tag, key, plural.Selectf(1, "%d", forms...)); err != nil {
			return nil, fmt.Errorf("%s: %w", key, err)
		}
	}
	return keys, nil
}

// Categories are CLDR's plural categories, in its order.
var Categories = []string{"zero", "one", "two", "few", "many", "other"}

// pluralForms reads a plural message: its cases in CLDR's order, "other"
// required.
func pluralForms(v json.RawMessage) ([]any, error) {
	var forms map[string]string
	if err := json.Unmarshal(v, &forms); err != nil {
		return nil, errors.New("a message is a string or an object of plural forms")
	}
	if _, ok := forms["other"]; !ok {
		return nil, errors.New(`a plural message needs its "other" form`)
	}
	var out []any
	for _, c := range Categories {
		if m, ok := forms[c]; ok {
			out = append(out, c, m)
		}
	}
	for c := range forms {
		if !slices.Contains(Categories, c) {
			return nil, fmt.Errorf("%q is not a CLDR plural category", c)
		}
	}
	return out, nil
}

// All is every shipped locale, the fallback first.
func (s *Set) All() []*Locale { return s.all }

// Lookup finds a shipped locale by its code.
func (s *Set) Lookup(code string) (*Locale, bool) {
	l, ok := s.byCode[code]
	return l, ok
}

// Default is the fallback locale.
func (s *Set) Default() *Locale { return s.all[0] }

// Match chooses the locale for an Accept-Language header: the best
// match CLDR's matcher finds among the shipped locales (pt-PT and pt
// find pt-BR, ar-EG finds ar), the fallback when none is close enough.
func (s *Set) Match(acceptLanguage string) *Locale {
	prefs, _, err := language.ParseAcceptLanguage(acceptLanguage)
	if err != nil || len(prefs) == 0 {
		return s.Default()
	}
	_, i, conf := s.matcher.Match(prefs...)
	if conf == language.No {
		return s.Default()
	}
	return s.all[i]
}
