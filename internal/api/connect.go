package api

import (
	"errors"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/labstack/echo/v4"

	"github.com/presave/presave/internal/presave"
	"github.com/presave/presave/internal/providers"
	"github.com/presave/presave/internal/store"
)

// StartRequest is a fan's request to connect a provider for a release.
type StartRequest struct {
	// Release is the release's slug or ID.
	Release string `json:"release"`
	// Actions the fan consents to; empty means all the release offers on
	// the provider.
	Actions []providers.Action `json:"actions"`
	// Zone is the fan's IANA time zone; empty means the release's default
	// zone (local timing) or UTC.
	Zone string `json:"zone"`
	// Consent must be true: the fan ticked the consent box.
	Consent bool `json:"consent"`
	// ConsentVersion is the wording the fan saw; empty means the current
	// one, anything else must equal it.
	ConsentVersion string `json:"consent_version"`
	// ConsentLocale is the locale of the wording the fan saw; empty means
	// English.
	ConsentLocale string `json:"consent_locale"`
	// ViaPage marks a start from the fan page (its callback answers with
	// pages and the fan cookie). Never read from JSON.
	ViaPage bool `json:"-"`
}

// Started is where to send the fan next.
type Started struct {
	AuthorizeURL string    `json:"authorize_url"`
	ExpiresAt    time.Time `json:"expires_at"`
}

// Connected is the outcome of a successful callback.
type Connected struct {
	FanID uuid.UUID `json:"fan_id"`
	// FanToken proves who the fan is for self-service. It is shown once
	// (also set as the presave_fan cookie); only its hash is stored.
	FanToken string      `json:"fan_token"`
	NewFan   bool        `json:"new_fan"`
	Presave  PresaveView `json:"presave"`
	// Queued is true when the pre-save is due soon and already queued.
	Queued bool `json:"queued"`
}

func clientIP(c echo.Context) netip.Addr {
	a, err := netip.ParseAddr(c.RealIP())
	if err != nil {
		return netip.Addr{}
	}
	return a
}

// optionalFan is the fan a request's token proves, or uuid.Nil. A stale
// cookie (deleted account) must not stop anybody from connecting again.
func (s *Server) optionalFan(c echo.Context) (uuid.UUID, error) {
	tok, ok := fanToken(c)
	if !ok {
		return uuid.Nil, nil
	}
	id, err := s.store.FanByToken(ctxOf(c), tok)
	if errors.Is(err, store.ErrNotFound) {
		return uuid.Nil, nil
	}
	return id, err
}

// startRequestFromForm reads the fan page's start form: release,
// actions (repeated or comma-separated), zone, consent
// ("1"/"true"/"on"/"yes"), consent_version and consent_locale. Only the page's
// CSRF-checked form may carry consent this way.
func startRequestFromForm(v url.Values) StartRequest {
	req := StartRequest{Release: v.Get("release"), Zone: v.Get("zone"), ConsentVersion: v.Get("consent_version"),
		ConsentLocale: v.Get("consent_locale")}
	for _, a := range v["actions"] {
		for _, part := range strings.Split(a, ",") {
			if part = strings.TrimSpace(part); part != "" {
				req.Actions = append(req.Actions, providers.Action(part))
			}
		}
	}
	switch strings.ToLower(v.Get("consent")) {
	case "1", "true", "on", "yes":
		req.Consent = true
	}
	return req
}

// start handles POST /v1/connect/{provider}/start: a JSON body (a
// cross-site page cannot send one: it needs a CORS preflight, which we
// never grant), answered with {"authorize_url"} and the binding cookie
// the callback must bring back. A form post is refused (415): consent
// comes only from the fan page's CSRF-protected form or from JSON.
func (s *Server) start(c echo.Context) error {
	var req StartRequest
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	res, err := s.startConnect(c, c.Param("provider"), req)
	if err != nil {
		return err
	}
	c.Response().Header().Set(echo.HeaderCacheControl, "no-store")
	return c.JSON(http.StatusOK, res)
}

// startConnect runs the start use case for the request's client: the
// fan its token proves, its address, and a binding nonce it is handed as
// a cookie.
func (s *Server) startConnect(c echo.Context, provider string, req StartRequest) (Started, error) {
	fan, err := s.optionalFan(c)
	if err != nil {
		return Started{}, err
	}
	binding, err := s.bindClient(c)
	if err != nil {
		return Started{}, err
	}
	res, err := s.app.StartConnect(ctxOf(c), presave.Start{
		Provider: provider, Release: req.Release, Actions: req.Actions, Zone: req.Zone, Consent: req.Consent,
		ConsentVersion: req.ConsentVersion, ConsentLocale: req.ConsentLocale, Binding: binding, ViaPage: req.ViaPage, FanID: fan, ClientIP: clientIP(c),
	})
	if err != nil {
		return Started{}, err
	}
	return Started{AuthorizeURL: res.AuthorizeURL, ExpiresAt: res.ExpiresAt}, nil
}

// startLink handles GET /v1/connect/{provider}/start?release=…: a link
// anyone can put on any site, so it never records a state or a consent.
// It sends the browser to the release's page, where the fan reads what
// will happen and ticks the consent box themselves.
func (s *Server) startLink(c echo.Context) error {
	if _, err := s.app.Provider(c.Param("provider")); err != nil {
		return err
	}
	if err := checkValues(c.QueryParams()); err != nil {
		return err
	}
	ref := c.QueryParam("release")
	if ref == "" {
		return badRequest("release_required", "Name the release (its slug or ID).")
	}
	r, err := s.app.FindRelease(ctxOf(c), ref)
	if err != nil {
		return err
	}
	if s.page == nil {
		return errorf(http.StatusMethodNotAllowed, "method_not_allowed",
			"Start a connection with POST and a JSON body; a link cannot record consent.")
	}
	return c.Redirect(http.StatusSeeOther, "/r/"+url.PathEscape(r.Slug))
}

// bindClient returns the nonce that binds a new OAuth state to the client
// starting it and (re)sets it as the BindingCookie: HttpOnly,
// SameSite=Lax (it must come along on the provider's top-level redirect
// back to us), as long-lived as a state. A nonce the client already
// holds is reused, so two tabs starting at once both come back bound.
func (s *Server) bindClient(c echo.Context) (string, error) {
	nonce := ""
	if ck, err := c.Cookie(BindingCookie); err == nil && len(ck.Value) == tokenLen {
		nonce = ck.Value
	} else {
		var err error
		if nonce, err = presave.NewToken(); err != nil {
			return "", err
		}
	}
	c.SetCookie(&http.Cookie{Name: BindingCookie, Value: nonce, Path: "/", MaxAge: int(StateTTL / time.Second),
		HttpOnly: true, SameSite: http.SameSiteLaxMode, Secure: s.secureCookies()})
	return nonce, nil
}

// callback handles GET /connect/{provider}/callback for one provider.
func (s *Server) callback(name providers.Name) echo.HandlerFunc {
	return func(c echo.Context) error {
		q := c.QueryParams()
		return s.finishConnect(c, presave.Callback{Provider: string(name), Code: q.Get("code"), State: q.Get("state"), Error: q.Get("error")})
	}
}

// finishConnect completes a connection from what the provider sent back
// (a redirect's query, or the MusicKit page's post) and the browser's
// cookies, answering the page's flow with pages and API clients with
// JSON.
func (s *Server) finishConnect(c echo.Context, req presave.Callback) error {
	if ck, err := c.Cookie(FanCookie); err == nil {
		req.FanToken = ck.Value
	}
	if ck, err := c.Cookie(BindingCookie); err == nil {
		req.Binding = ck.Value
	}
	conn, info, err := s.app.CompleteConnect(ctxOf(c), req)
	var res *Connected
	if err == nil {
		res = &Connected{FanID: conn.FanID, FanToken: conn.FanToken, NewFan: conn.NewFan,
			Presave: presaveView(conn.Presave, nil), Queued: conn.Queued}
	}
	// This URL held a code and a state: keep it out of caches and of
	// the Referer of anything a rendered page loads.
	c.Response().Header().Set(echo.HeaderCacheControl, "no-store")
	c.Response().Header().Set("Referrer-Policy", "no-referrer")
	// The fan cookie only goes to the page's flow; API clients get
	// the fan token in the JSON answer. Either way the callback came
	// from the client that started the flow (its binding cookie).
	if err == nil && info.ViaPage {
		s.SetFanCookie(c, res.FanToken)
	}
	// The fan page's flow answers in HTML, and so do failures a
	// browser meets; API clients keep their JSON.
	if s.page != nil && (info.ViaPage || (err != nil && s.page.browserRequest(c))) {
		return s.page.callback(c, info, res, err)
	}
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, res)
}

// secureCookies reports whether our cookies are Secure: PUBLIC_URL is
// https.
func (s *Server) secureCookies() bool { return strings.HasPrefix(s.cfg.PublicURL, "https://") }

// fanCookieMaxAge keeps the fan logged in on this browser for a year.
const fanCookieMaxAge = 365 * 24 * 60 * 60

// SetFanCookie sets the presave_fan cookie: HttpOnly, SameSite=Lax (it
// must come along on the provider's top-level redirect back to us),
// Secure when PUBLIC_URL is https.
func (s *Server) SetFanCookie(c echo.Context, token string) {
	c.SetCookie(&http.Cookie{
		Name: FanCookie, Value: token, Path: "/", MaxAge: fanCookieMaxAge,
		HttpOnly: true, SameSite: http.SameSiteLaxMode, Secure: s.secureCookies(),
	})
}

func (s *Server) clearFanCookie(c echo.Context) {
	c.SetCookie(&http.Cookie{
		Name: FanCookie, Value: "", Path: "/", MaxAge: -1,
		HttpOnly: true, SameSite: http.SameSiteLaxMode, Secure: s.secureCookies(),
	})
}
