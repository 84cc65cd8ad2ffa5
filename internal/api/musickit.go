package api

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/presave/presave/internal/presave"
	"github.com/presave/presave/internal/providers"
)

// Apple Music has no OAuth redirect: the fan authorizes in MusicKit JS,
// on a page of ours. A start (the page's form or the JSON API) records
// the one-time state as for the others and sends the fan to
//
//	GET  /connect/applemusic/authorize?state=…   the MusicKit page
//	POST /connect/applemusic/callback            the page posts the Music User Token (or error=access_denied) with the state
//
// and the post completes exactly like an OAuth callback: the same state,
// binding cookie, consent record and scheduling (presave.CompleteConnect).

// DefaultMusicKitJSURL is Apple's MusicKit JS v3.
const DefaultMusicKitJSURL = "https://js-cdn.music.apple.com/musickit/v3/musickit.js"

// musicKitProvider is what the MusicKit page needs of Apple Music.
type musicKitProvider interface {
	// DeveloperToken is the token MusicKit.configure takes (public by
	// Apple's design).
	DeveloperToken() (string, error)
	// APIOrigin is the origin MusicKit JS calls (the CSP's connect-src).
	APIOrigin() string
}

// musicKit returns Apple Music when it is configured.
func (s *Server) musicKit() (musicKitProvider, bool) {
	p, ok := s.providers.Get(providers.AppleMusic)
	if !ok {
		return nil, false
	}
	mk, ok := p.(musicKitProvider)
	return mk, ok
}

// musicKitCSP is the MusicKit page's policy: the page's own (base) with
// exactly MusicKit JS's origin added to script-src and Apple Music's API
// origin as connect-src. "" when Apple Music is not configured.
func (s *Server) musicKitCSP(base string) (string, error) {
	mk, ok := s.musicKit()
	if !ok {
		return "", nil
	}
	u, err := url.Parse(s.cfg.MusicKitJSURL)
	if err != nil || u.Scheme == "" || u.Host == "" {
		return "", fmt.Errorf("MUSICKIT_JS_URL=%q has no origin", s.cfg.MusicKitJSURL)
	}
	csp := strings.Replace(base, "script-src 'self'", "script-src 'self' "+u.Scheme+"://"+u.Host, 1)
	return csp + "; connect-src 'self' " + mk.APIOrigin(), nil
}

// musicKitView is what the MusicKit page shows.
type musicKitView struct {
	State, DeveloperToken, ScriptURL, Callback string
}

// maxStateLen bounds a state in a URL: ours are 43 characters.
const maxStateLen = 128

// musicKitPage handles GET /connect/applemusic/authorize?state=…: the
// page that runs MusicKit JS. It holds nothing secret (the developer
// token is public by Apple's design); the state only completes in the
// browser that started it.
func (p *page) musicKitPage(c echo.Context) error {
	mk, ok := p.s.musicKit()
	if !ok {
		return presave.ErrUnknownProvider(string(providers.AppleMusic))
	}
	state := c.QueryParam("state")
	if state == "" || len(state) > maxStateLen {
		return badRequest("state_invalid", "This sign-in link is incomplete; please start again.")
	}
	dev, err := mk.DeveloperToken()
	if err != nil {
		return err
	}
	h := c.Response().Header()
	h.Set("Content-Security-Policy", p.musicKitCSP)
	h.Set(echo.HeaderCacheControl, "no-store")
	return p.render(c, http.StatusOK, "musickit", message(p.s.localeOf(c), "musickit.title"), musicKitView{
		State: state, DeveloperToken: dev, ScriptURL: p.s.cfg.MusicKitJSURL, Callback: "/connect/applemusic/callback",
	})
}

// errCrossSitePost refuses a post to the MusicKit callback from another
// site.
var errCrossSitePost = errorf(http.StatusForbidden, "cross_site_post",
	"This sign-in was posted from another site; for your safety nothing was saved. Please start again from the release page.")

// musicKitCallback handles POST /connect/applemusic/callback: a form
// (state, music_user_token, or error) from the MusicKit page. A browser
// names the posting page's origin, or "null" (our pages' no-referrer
// policy hides it); one that names another site is refused before
// anything else (the state and the binding cookie would refuse it too).
// A browser's refusals are pages, as for the OAuth callbacks.
func (s *Server) musicKitCallback(c echo.Context) error {
	err := s.musicKitPost(c)
	if err != nil && s.page != nil && s.page.browserRequest(c) {
		c.Set(pageKey, true)
	}
	return err
}

func (s *Server) musicKitPost(c echo.Context) error {
	if o := c.Request().Header.Get(echo.HeaderOrigin); o != "" && o != "null" && o != s.publicOrigin() {
		return errCrossSitePost
	}
	if ct := c.Request().Header.Get(echo.HeaderContentType); !strings.HasPrefix(ct, echo.MIMEApplicationForm) {
		return errorf(http.StatusUnsupportedMediaType, "unsupported_media_type", "Post the state and the Music User Token as a form (%s).", echo.MIMEApplicationForm)
	}
	form, err := c.FormParams()
	if err != nil {
		return badRequest("invalid_form", "The form could not be read.")
	}
	if err := checkValues(form); err != nil {
		return err
	}
	return s.finishConnect(c, presave.Callback{Provider: string(providers.AppleMusic),
		Code: form.Get("music_user_token"), State: form.Get("state"), Error: form.Get("error")})
}

// publicOrigin is PUBLIC_URL's origin.
func (s *Server) publicOrigin() string {
	u, err := url.Parse(s.cfg.PublicURL)
	if err != nil {
		return ""
	}
	return u.Scheme + "://" + u.Host
}
