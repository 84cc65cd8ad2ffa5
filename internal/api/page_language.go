package api

import (
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"reflect"
	"strconv"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/presave/presave/internal/locale"
	"github.com/presave/presave/internal/providers"
	"github.com/presave/presave/internal/store"
)

// The fan page's language: the locale a fan chose with the page's
// language switch (LanguageCookie), else the best match of the browser's
// Accept-Language among the shipped catalogues (internal/locale), else
// English. Every text of the page comes from the locale's catalogue; the
// release's title and artist are shown as the artist team wrote them,
// isolated (<bdi>) so that a right-to-left title does not reorder the
// sentence around it.

// LanguageCookie remembers the language a fan chose with the switch: a
// preference, not a secret (a year, SameSite=Lax so a link to a release
// opens in it).
const LanguageCookie = "presave_lang"

const localeKey = "presave.locale"

// localeOf is the request's locale, chosen once per request.
func (s *Server) localeOf(c echo.Context) *locale.Locale {
	if l, ok := c.Get(localeKey).(*locale.Locale); ok {
		return l
	}
	l := s.chooseLocale(c.Request())
	c.Set(localeKey, l)
	return l
}

func (s *Server) chooseLocale(r *http.Request) *locale.Locale {
	if ck, err := r.Cookie(LanguageCookie); err == nil {
		if l, ok := s.locales.Lookup(ck.Value); ok {
			return l
		}
	}
	return s.locales.Match(r.Header.Get("Accept-Language"))
}

// language handles GET /lang/{code}?next=/path: the switch's links. It
// remembers the choice and goes back to the page (only a path of this
// site: never an open redirect).
func (p *page) language(c echo.Context) error {
	l, ok := p.s.locales.Lookup(c.Param("code"))
	if !ok {
		return echo.ErrNotFound
	}
	c.SetCookie(&http.Cookie{Name: LanguageCookie, Value: l.Code(), Path: "/", MaxAge: 365 * 24 * 3600,
		HttpOnly: true, SameSite: http.SameSiteLaxMode, Secure: p.secure})
	c.Response().Header().Set(echo.HeaderCacheControl, "no-store")
	return c.Redirect(http.StatusSeeOther, localPath(c.QueryParam("next")))
}

// localPath is next if it is a path on this site, else /me.
func localPath(next string) string {
	u, err := url.Parse(next)
	if err != nil || next == "" || u.Scheme != "" || u.Host != "" || u.User != nil || !strings.HasPrefix(next, "/") ||
		strings.HasPrefix(next, "//") || strings.ContainsAny(next, "\\\r\n\t") {
		return "/me"
	}
	return next
}

// languageLink is one entry of the language switch.
type languageLink struct {
	Code, Name, Dir, Href string
	Current               bool
}

// languages is the switch for a page: each link comes back to here (a
// GET's own address; after a form or on an OAuth callback's page, to
// where its error page leads: a callback's address holds a one-time code
// and state, never to be put in a link or requested again).
func (p *page) languages(c echo.Context, current *locale.Locale) []languageLink {
	here := c.Request().URL.RequestURI()
	if c.Request().Method != http.MethodGet || strings.HasSuffix(c.Path(), "/callback") {
		here, _ = c.Get(backKey).(string)
	}
	var out []languageLink
	for _, l := range p.s.locales.All() {
		out = append(out, languageLink{Code: l.Code(), Name: l.Name(), Dir: l.Dir(), Current: l == current,
			Href: "/lang/" + l.Code() + "?next=" + url.QueryEscape(localPath(here))})
	}
	return out
}

// The template functions. t writes a catalogue message: its text is
// escaped, and so is each string argument; an argument already
// template.HTML (one of the element helpers' results) is placed as it
// is, so a message can hold a <bdi> title or a link without the
// catalogue holding any markup. Numbers are written in the locale's
// digits.
func localeFuncs(l *locale.Locale) template.FuncMap {
	return template.FuncMap{
		"t":      func(key string, args ...any) template.HTML { return message(l, key, args...) },
		"status": func(s store.PresaveStatus) template.HTML { return message(l, "status."+string(s)) },
		"action": func(n providers.Name, a providers.Action) template.HTML { return actionLabel(l, n, a) },
	}
}

// elementFuncs build the HTML arguments of messages.
var elementFuncs = template.FuncMap{
	"bdi":    bdi,
	"strong": func(v any) template.HTML { return element("strong", "", v) },
	"code":   func(v any) template.HTML { return element("code", "", v) },
	// span's class names the element for the page's script (js-day).
	"span": func(class string, v any) template.HTML { return element("span", class, v) },
	"link": func(href string, v any) template.HTML {
		return template.HTML(`<a href="` + template.HTMLEscapeString(href) + `">` + string(htmlOf(v)) + `</a>`) //nolint:gosec // escaped
	},
}

// bdi isolates v's direction from the text around it (a title in
// Arabic inside an English sentence, say).
func bdi(v any) template.HTML { return element("bdi", "", v) }

func element(name, class string, v any) template.HTML {
	open := "<" + name
	if class != "" {
		open += ` class="` + template.HTMLEscapeString(class) + `"`
	}
	return template.HTML(open + ">" + string(htmlOf(v)) + "</" + name + ">") //nolint:gosec // escaped
}

// htmlOf is v as HTML: escaped unless it already is HTML.
func htmlOf(v any) template.HTML {
	if h, ok := v.(template.HTML); ok {
		return h
	}
	if rv := reflect.ValueOf(v); rv.Kind() == reflect.String {
		return template.HTML(template.HTMLEscapeString(rv.String())) //nolint:gosec // escaped
	}
	return template.HTML(template.HTMLEscapeString(fmt.Sprint(v))) //nolint:gosec // escaped
}

// Markers stand in for the HTML arguments while the message is formatted
// and escaped: private-use characters, which escaping leaves alone and no
// catalogue holds. A title may hold them too: the arguments go back in
// one pass, so a marker inside one is left as it is.
const markOpen, markClose = "\uE000", "\uE001"

// message formats key in l as HTML (see localeFuncs).
func message(l *locale.Locale, key string, args ...any) template.HTML {
	var parts []string
	fmtArgs := make([]any, len(args))
	for i, a := range args {
		_, isHTML := a.(template.HTML)
		if isHTML || reflect.ValueOf(a).Kind() == reflect.String {
			fmtArgs[i] = markOpen + strconv.Itoa(len(parts)) + markClose
			parts = append(parts, string(htmlOf(a)))
			continue
		}
		fmtArgs[i] = a
	}
	out := template.HTMLEscapeString(l.Sprintf(key, fmtArgs...))
	if len(parts) == 0 {
		return template.HTML(out) //nolint:gosec // escaped
	}
	// One pass: an argument's own text is never searched for markers.
	pairs := make([]string, 0, 2*len(parts))
	for i, p := range parts {
		pairs = append(pairs, markOpen+strconv.Itoa(i)+markClose, p)
	}
	return template.HTML(strings.NewReplacer(pairs...).Replace(out)) //nolint:gosec // the text escaped, each argument escaped or built by elementFuncs
}

// actionLabel is how the release page names an action in its choices.
func actionLabel(l *locale.Locale, n providers.Name, a providers.Action) template.HTML {
	key := "action." + string(a)
	if a == providers.ActionAddToMyPlaylist {
		key += "." + string(n)
	}
	if !l.Has(key) {
		return htmlOf(string(a))
	}
	return message(l, key)
}
