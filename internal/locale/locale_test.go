package locale_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"golang.org/x/text/feature/plural"

	"github.com/presave/presave/internal/locale"
)

// Shipped are the locales the issue asks for; a catalogue more is fine,
// one fewer fails.
var shipped = []string{"en", "es", "pt-BR", "fr", "de", "ja", "ar", "ur"}

func load(t *testing.T) *locale.Set {
	t.Helper()
	s, err := locale.Load()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// catalogue reads one catalogue file as it is written.
func catalogue(t *testing.T, code string) map[string]json.RawMessage {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("catalogues", code+".json"))
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatalf("%s: %v", code, err)
	}
	return m
}

func TestEveryShippedLocaleLoads(t *testing.T) {
	s := load(t)
	var codes []string
	for _, l := range s.All() {
		codes = append(codes, l.Code())
	}
	if codes[0] != locale.Fallback {
		t.Errorf("the fallback is not first: %v", codes)
	}
	for _, c := range shipped {
		if !slices.Contains(codes, c) {
			t.Errorf("locale %s is not shipped (have %v)", c, codes)
		}
	}
	for _, l := range s.All() {
		want := "ltr"
		if l.Code() == "ar" || l.Code() == "ur" {
			want = "rtl"
		}
		if l.Dir() != want {
			t.Errorf("%s is written %s, want %s", l.Code(), l.Dir(), want)
		}
		if l.Name() == "" || l.Name() == "locale.name" {
			t.Errorf("%s has no name", l.Code())
		}
	}
}

// verbs are a message's printf arguments (%[2]s, %d), sorted: a
// translation must use exactly the arguments the English one does.
var verb = regexp.MustCompile(`%(\[\d+\])?[-+# 0]*\d*[a-z]`)

func verbs(s string) []string {
	v := verb.FindAllString(s, -1)
	sort.Strings(v)
	return slices.Compact(v)
}

func TestCataloguesHaveTheSameKeysAndArguments(t *testing.T) {
	en := catalogue(t, locale.Fallback)
	files, _ := filepath.Glob("catalogues/*.json")
	for _, f := range files {
		code := strings.TrimSuffix(filepath.Base(f), ".json")
		c := catalogue(t, code)
		for k := range en {
			if _, ok := c[k]; !ok {
				t.Errorf("%s misses %q", code, k)
			}
		}
		for k, v := range c {
			ev, ok := en[k]
			if !ok {
				t.Errorf("%s has %q, which English does not", code, k)
				continue
			}
			var es, s string
			if json.Unmarshal(ev, &es) == nil {
				if json.Unmarshal(v, &s) != nil {
					t.Errorf("%s: %q is a string in English, not here", code, k)
				} else if !slices.Equal(verbs(s), verbs(es)) {
					t.Errorf("%s: %q has arguments %v, English %v", code, k, verbs(s), verbs(es))
				}
				continue
			}
			var forms map[string]string
			if err := json.Unmarshal(v, &forms); err != nil {
				t.Errorf("%s: %q is plural in English, not here", code, k)
				continue
			}
			for cat, m := range forms {
				// A form may leave the count out ("one item"), never add
				// another argument.
				if vs := verbs(m); len(vs) > 1 || (len(vs) == 1 && vs[0] != "%d") {
					t.Errorf("%s: %q form %s has arguments %v", code, k, cat, vs)
				}
			}
		}
	}
}

// TestPluralFormsFollowCLDR: every plural message has each form CLDR's
// rules choose for its language (Arabic's six, Japanese's one).
func TestPluralFormsFollowCLDR(t *testing.T) {
	s := load(t)
	names := map[plural.Form]string{plural.Zero: "zero", plural.One: "one", plural.Two: "two", plural.Few: "few",
		plural.Many: "many", plural.Other: "other"}
	for _, l := range s.All() {
		for k, v := range catalogue(t, l.Code()) {
			var forms map[string]string
			if json.Unmarshal(v, &forms) != nil {
				continue
			}
			for n := 0; n <= 1000; n++ {
				f := plural.Cardinal.MatchPlural(l.Tag(), n, 0, 0, 0, 0)
				if _, ok := forms[names[f]]; !ok {
					t.Errorf("%s: %q has no %s form (CLDR's for %d)", l.Code(), k, names[f], n)
					break
				}
			}
		}
	}
	// And the choice is made: Arabic says two differently from three.
	ar, _ := s.Lookup("ar")
	if two, three := ar.Sprintf("me.waiting", 2), ar.Sprintf("me.waiting", 3); two == three || !strings.Contains(three, "٣") {
		t.Errorf("Arabic plural: 2 → %q, 3 → %q", two, three)
	}
}

func TestMatchAcceptLanguage(t *testing.T) {
	s := load(t)
	for _, tc := range []struct{ header, want string }{
		{"", "en"},
		{"ja", "ja"},
		{"ja-JP,ja;q=0.9,en;q=0.8", "ja"},
		{"pt-BR", "pt-BR"},
		{"pt-PT,pt;q=0.9", "pt-BR"},
		{"es-419", "es"},
		{"fr-CA,en;q=0.5", "fr"},
		{"de-CH", "de"},
		{"ar-EG", "ar"},
		{"ur-PK", "ur"},
		{"zh-CN", "en"},
		{"zh-CN,de;q=0.5", "de"},
		{"*", "en"},
		{"not a header;;", "en"},
	} {
		if got := s.Match(tc.header).Code(); got != tc.want {
			t.Errorf("Accept-Language %q → %s, want %s", tc.header, got, tc.want)
		}
	}
}

// TestDatesInEachLocale pins each locale's long date and time, as CLDR
// writes them (Chromium's Intl agrees on the names; the browser test
// checks the page's script writes the same).
func TestDatesInEachLocale(t *testing.T) {
	s := load(t)
	at := time.Date(2026, time.December, 4, 23, 5, 0, 0, time.UTC)
	want := map[string][2]string{
		"en":    {"Friday 4 December 2026", "23:05"},
		"es":    {"viernes, 4 de diciembre de 2026", "23:05"},
		"pt-BR": {"sexta-feira, 4 de dezembro de 2026", "23:05"},
		"fr":    {"vendredi 4 décembre 2026", "23:05"},
		"de":    {"Freitag, 4. Dezember 2026", "23:05"},
		"ja":    {"2026年12月4日金曜日", "23:05"},
		"ar":    {"الجمعة، ٤ ديسمبر ٢٠٢٦", "٢٣:٠٥"},
		"ur":    {"جمعہ، 4 دسمبر، 2026", "23:05"},
	}
	for code, w := range want {
		l, ok := s.Lookup(code)
		if !ok {
			t.Fatalf("no %s", code)
		}
		if d, c := l.Day(at), l.Clock(at); d != w[0] || c != w[1] {
			t.Errorf("%s: %q %q, want %q %q", code, d, c, w[0], w[1])
		}
		cal := l.Calendar()
		if len(cal.Weekdays) != 7 || len(cal.Months) != 12 || len([]rune(cal.Digits)) != 10 ||
			!strings.Contains(cal.Day, "{day}") || !strings.Contains(cal.Clock, "{minute}") {
			t.Errorf("%s: calendar %+v", code, cal)
		}
	}
	// Midnight and a year of four digits: no grouping, two-digit hours.
	de, _ := s.Lookup("de")
	if c := de.Clock(time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)); c != "00:00" {
		t.Errorf("midnight in German: %q", c)
	}
}

func TestLoadRefusesABrokenCatalogue(t *testing.T) {
	for name, body := range map[string]string{
		"not JSON":           `{`,
		"no other form":      `{"locale.name": "x", "locale.dir": "ltr", "n": {"one": "%d"}}`,
		"unknown category":   `{"locale.name": "x", "locale.dir": "ltr", "n": {"several": "%d", "other": "%d"}}`,
		"wrong direction":    `{"locale.name": "x", "locale.dir": "up"}`,
		"number not message": `{"locale.name": "x", "locale.dir": "ltr", "n": 3}`,
	} {
		dir := t.TempDir()
		if err := os.MkdirAll(filepath.Join(dir, "catalogues"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "catalogues", "en.json"), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := locale.LoadFS(os.DirFS(dir)); err == nil {
			t.Errorf("%s: loaded", name)
		}
	}
}
