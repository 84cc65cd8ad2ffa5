package api

import (
	"bytes"
	"crypto/subtle"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"mime"
	"net/http"
	"net/url"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/presave/presave/internal/locale"
	"github.com/presave/presave/internal/presave"
	"github.com/presave/presave/internal/providers"
)

// The fan's pre-save page: server-rendered HTML (html/template) with
// embedded assets, no third-party script, font or tracker. It lives in
// this package because it is the same flow as the JSON API (the same use
// cases of internal/presave) seen through a browser.
//
// Pages (routes.go's pageRoutes, added by MountPage: they are not part
// of the JSON API that openapi.json documents):
//
//	GET  /r/{slug}                             the release and its consent form
//	POST /r/{slug}/start                       start (302 to the provider's consent screen)
//	GET  /me                                   the fan's pre-saves and connections
//	GET  /me/presaves/{id}                     confirmation: what happens when
//	GET|POST /me/presaves/{id}/withdraw        withdraw (confirm, then do)
//	GET|POST /me/connections/{provider}/disconnect
//	GET|POST /me/delete                        delete my account (confirm, then do)
//	GET  /me/export                            my data, as a JSON download
//	GET  /lang/{locale}?next=/path             the language switch
//	GET  /static/*                             CSS and JS

// BindingCookie holds the nonce that binds an OAuth state to the browser
// that started it from the fan page (login CSRF). HttpOnly, SameSite=Lax
// (it must come along on the provider's top-level redirect back), and
// short-lived: a state lives StateTTL.
const BindingCookie = "presave_bind"

// CSRFCookie is the fan page's double-submit CSRF token: every
// state-changing form carries the same value in its csrf field.
// SameSite=Strict and HttpOnly: the forms get it from the server.
const CSRFCookie = "presave_csrf"

const (
	csrfField = "csrf"
	csrfKey   = "presave.csrf"
	backKey   = "presave.back"
	// tokenLen is the length of presave.NewToken's output (32 bytes, base64url).
	tokenLen = 43
)

//go:embed templates static
var pageFiles embed.FS

// page holds the parsed templates and the fixed response headers.
type page struct {
	s *Server
	// views holds one template set per locale and page: the layout plus
	// the page, its t function speaking that locale.
	views map[string]map[string]*template.Template
	// wordings holds each consent wording by version and locale
	// (wordingKey); the current one (Config.ConsentVersion) must exist in
	// English, older ones render the confirmation of pre-saves consented
	// under them.
	wordings map[string]*template.Template
	csp      string
	// musicKitCSP is the MusicKit page's: csp plus exactly the MusicKit
	// script's origin and the Apple Music API's (connect-src).
	musicKitCSP string
	secure      bool
	static      fs.FS
}

// pageViews are the page templates (templates/<name>.html).
var pageViews = []string{"release", "message", "manage", "presave", "confirm", "musickit"}

// MountPage adds the fan's pre-save page to the server: the routes above
// and HTML answers for the OAuth callbacks of flows started there. Call
// it once, before serving. It fails when CONSENT_VERSION has no wording
// (templates/consent/<version>.html).
func (s *Server) MountPage() error {
	if s.page != nil {
		return errors.New("api: the page is already mounted")
	}
	p := &page{s: s, views: map[string]map[string]*template.Template{}, secure: s.secureCookies()}
	if err := p.parseViews(); err != nil {
		return err
	}
	var err error
	if p.wordings, err = loadWordings(elementFuncs); err != nil {
		return err
	}
	if _, ok := p.wordings[wordingKey(s.cfg.ConsentVersion, presave.DefaultConsentLocale)]; !ok {
		return fmt.Errorf("CONSENT_VERSION=%q has no English wording: add internal/api/templates/consent/%s/en.html (never edit a shipped one)",
			s.cfg.ConsentVersion, s.cfg.ConsentVersion)
	}
	if p.static, err = fs.Sub(pageFiles, "static"); err != nil {
		return fmt.Errorf("api: page assets: %w", err)
	}
	origins, err := s.authOrigins()
	if err != nil {
		return err
	}
	// form-action must allow the provider: Chromium applies form-action
	// to every redirect of a form submission, and the start answers 302
	// to the consent screen (and that comes back to us: 'self').
	p.csp = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
		"frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
	for _, o := range origins {
		p.csp += " " + o
	}
	if p.musicKitCSP, err = s.musicKitCSP(p.csp); err != nil {
		return err
	}
	s.page = p
	s.pageRoutes(p)
	return nil
}

// parseViews parses each page once and gives every locale its copy,
// whose t speaks that locale.
func (p *page) parseViews() error {
	funcs := template.FuncMap{}
	for k, f := range elementFuncs {
		funcs[k] = f
	}
	for k, f := range localeFuncs(p.s.locales.Default()) {
		funcs[k] = f
	}
	for _, v := range pageViews {
		t, err := template.New(v).Funcs(funcs).ParseFS(pageFiles, "templates/layout.html", "templates/"+v+".html")
		if err != nil {
			return fmt.Errorf("api: page template %s: %w", v, err)
		}
		for _, l := range p.s.locales.All() {
			c, err := t.Clone()
			if err != nil {
				return fmt.Errorf("api: page template %s: %w", v, err)
			}
			if p.views[l.Code()] == nil {
				p.views[l.Code()] = map[string]*template.Template{}
			}
			p.views[l.Code()][v] = c.Funcs(localeFuncs(l))
		}
	}
	return nil
}

// authOrigins are the origins of the providers' consent screens, taken
// from the configured authorize URLs (the fake's on loopback in tests).
func (s *Server) authOrigins() ([]string, error) {
	var out []string
	for _, n := range providers.Names {
		pr, ok := s.providers.Get(n)
		if !ok {
			continue
		}
		u, err := url.Parse(pr.AuthCodeURL("state", "verifier-verifier-verifier-verifier-verifier", nil))
		if err != nil || u.Scheme == "" || u.Host == "" {
			return nil, fmt.Errorf("api: %s authorize URL has no origin: %w", n, err)
		}
		if o := u.Scheme + "://" + u.Host; !slices.Contains(out, o) {
			out = append(out, o)
		}
	}
	return out, nil
}

func providerLabel(n providers.Name) string { return n.Label() }

// headers sets the page's security headers. no-referrer matters most:
// the callback's URL carries an authorization code and a state.
func (p *page) headers(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		p.setHeaders(c)
		return next(c)
	}
}

func (p *page) setHeaders(c echo.Context) {
	h := c.Response().Header()
	h.Set("Content-Security-Policy", p.csp)
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Cross-Origin-Opener-Policy", "same-origin")
}

// back remembers where an error page's "go back" link points.
func (p *page) back(to string) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			c.Set(backKey, to)
			return next(c)
		}
	}
}

// pageKey marks a request to a page route: the error handler answers it
// with a page.
const pageKey = "presave.page"

// mark sets pageKey, so every failure of a page route (a handler's, the
// rate limiter's, echo's own) is rendered as a page by handleError.
func (p *page) mark(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		c.Set(pageKey, true)
		return next(c)
	}
}

// renderError renders an error page with the right status and a way
// back: the catalogue's words for the error's code, or general ones (an
// API message is English, so it is not shown to a fan).
func (p *page) renderError(c echo.Context, e *Error, back string) error {
	l := p.s.localeOf(c)
	title, msg := message(l, "error.generic.title"), message(l, "error.generic.text")
	if key := "error." + e.Code; l.Has(key + ".title") {
		title, msg = message(l, key+".title"), message(l, key+".text")
	} else if e.Status >= 500 {
		title = message(l, "error.server.title")
	}
	if back == "" {
		back = "/me"
	}
	c.Response().Header().Set(echo.HeaderCacheControl, "no-store")
	return p.render(c, e.Status, "message", title, messageView{Title: title, Message: msg, Code: e.Code, Back: back,
		BackLabel: message(l, "message.back")})
}

// messageView is a page that says one thing and offers a way on.
type messageView struct {
	Title, Message template.HTML
	Code, Back     string
	BackLabel      template.HTML
}

// layoutView is what the layout sees.
type layoutView struct {
	Title template.HTML
	// Lang and Dir are the page's locale and writing direction.
	Lang, Dir string
	Languages []languageLink
	// Calendar lets the page's script write dates in the fan's zone the
	// locale's way.
	Calendar locale.Calendar
	// CSRF is the double-submit token for the page's forms ("" when the
	// page has none: no cookie is set then).
	CSRF string
	Page any
}

// render executes a page in the request's locale into a buffer first, so
// a template failure is a clean error page and never half a page.
func (p *page) render(c echo.Context, status int, view string, title template.HTML, data any) error {
	var buf bytes.Buffer
	l := p.s.localeOf(c)
	lv := layoutView{Title: title, Lang: l.Code(), Dir: l.Dir(), Languages: p.languages(c, l), Calendar: l.Calendar(), Page: data}
	if tok, ok := c.Get(csrfKey).(string); ok {
		lv.CSRF = tok
	}
	if err := p.views[l.Code()][view].ExecuteTemplate(&buf, "layout", lv); err != nil {
		return fmt.Errorf("api: render %s: %w", view, err)
	}
	h := c.Response().Header()
	h.Set("Content-Language", l.Code())
	h.Add(echo.HeaderVary, "Accept-Language, Cookie")
	return c.HTMLBlob(status, buf.Bytes())
}

// csrfToken returns the browser's CSRF token, setting the cookie when it
// has none. Only pages with a form call it, so a page reached through a
// cross-site redirect (which never carries the Strict cookie) does not
// replace the token other tabs hold.
func (p *page) csrfToken(c echo.Context) (string, error) {
	if ck, err := c.Cookie(CSRFCookie); err == nil && len(ck.Value) == tokenLen {
		c.Set(csrfKey, ck.Value)
		return ck.Value, nil
	}
	tok, err := presave.NewToken()
	if err != nil {
		return "", err
	}
	c.SetCookie(&http.Cookie{Name: CSRFCookie, Value: tok, Path: "/", HttpOnly: true,
		SameSite: http.SameSiteStrictMode, Secure: p.secure})
	c.Set(csrfKey, tok)
	return tok, nil
}

var errCSRF = errorf(http.StatusForbidden, "csrf_invalid", "The form's CSRF token is missing or does not match.")

// checkCSRF guards a state-changing form: the form's csrf field must
// equal the CSRF cookie (double submit), and a browser that says the
// request is cross-site is refused outright.
func (p *page) checkCSRF(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if site := c.Request().Header.Get("Sec-Fetch-Site"); site == "cross-site" || site == "same-site" {
			return errCSRF
		}
		ck, err := c.Cookie(CSRFCookie)
		if err != nil || len(ck.Value) != tokenLen {
			return errCSRF
		}
		if !isMediaType(c, echo.MIMEApplicationForm) {
			return errCSRF
		}
		got := c.FormValue(csrfField)
		if subtle.ConstantTimeCompare([]byte(got), []byte(ck.Value)) != 1 {
			return errCSRF
		}
		c.Set(csrfKey, ck.Value)
		return next(c)
	}
}

// browserRequest reports whether a request comes from a browser showing
// pages: it asks for HTML (every navigation does). The binding cookie
// says nothing here: API clients carry it too.
func (p *page) browserRequest(c echo.Context) bool {
	for _, part := range strings.Split(c.Request().Header.Get(echo.HeaderAccept), ",") {
		if mt, _, err := mime.ParseMediaType(strings.TrimSpace(part)); err == nil && mt == echo.MIMETextHTML {
			return true
		}
	}
	return false
}

// asset serves the embedded CSS and JS.
func (p *page) asset(c echo.Context) error {
	name := strings.TrimPrefix(path.Clean("/"+c.Param("*")), "/")
	b, err := fs.ReadFile(p.static, name)
	if err != nil {
		return echo.ErrNotFound
	}
	ct := mime.TypeByExtension(path.Ext(name))
	if ct == "" {
		ct = echo.MIMEOctetStream
	}
	c.Response().Header().Set(echo.HeaderCacheControl, "public, max-age=300")
	return c.Blob(http.StatusOK, ct, b)
}

// callback answers the OAuth callback of a page flow: on success a
// redirect to the confirmation (so a reload never replays the code),
// otherwise an error page leading back to the release.
func (p *page) callback(c echo.Context, info presave.CallbackState, res *Connected, err error) error {
	p.setHeaders(c)
	if err != nil {
		back := "/me"
		if info.ReleaseID != [16]byte{} {
			if r, rerr := p.s.store.Release(ctxOf(c), info.ReleaseID); rerr == nil {
				back = "/r/" + r.Slug
			}
		}
		// handleError renders it, as for every page route.
		c.Set(pageKey, true)
		c.Set(backKey, back)
		return err
	}
	return c.Redirect(http.StatusSeeOther, "/me/presaves/"+res.Presave.ID.String())
}

// when is t in zone, as a fan reading l reads it.
func when(l *locale.Locale, t time.Time, zone string) (day, clock string) {
	loc, err := time.LoadLocation(zone)
	if err != nil {
		loc = time.UTC
	}
	t = t.In(loc)
	return l.Day(t), l.Clock(t)
}
