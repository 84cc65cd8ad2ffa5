package api

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"net/http"
	"net/netip"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/labstack/echo/v4"
	"golang.org/x/oauth2"

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
	// Binding is the nonce that binds the state to the client starting
	// it (the start answer sets it as the BindingCookie); its hash is
	// recorded with the state and the callback demands the same cookie.
	// Required; never read from JSON.
	Binding string `json:"-"`
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

// CallbackRequest is what the provider's redirect brings back.
type CallbackRequest struct {
	Code  string
	State string
	// Error is the provider's error parameter (e.g. access_denied).
	Error string
	// FanToken is a fan token the request carried (cookie), if any.
	FanToken string
	// ClientIP is the fan's address.
	ClientIP netip.Addr
	// Binding is the browser-binding cookie the request carried, if any.
	Binding string
}

// callbackInfo is what a callback learned about its state, even when it
// failed: whether the fan page started it (answered in HTML) and its
// release.
type callbackInfo struct {
	viaPage bool
	release uuid.UUID
}

func randomToken() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

func (s *Server) provider(name string) (providers.Provider, error) {
	p, ok := s.providers.Get(providers.Name(name))
	if !ok || !providers.Name(name).Valid() {
		return nil, errorf(http.StatusNotFound, "unknown_provider", "presave connects spotify and youtube, not %q.", name)
	}
	return p, nil
}

// findRelease reads a release by ID or slug.
func (s *Server) findRelease(ctx context.Context, ref string) (store.Release, error) {
	var r store.Release
	var err error
	if id, perr := uuid.Parse(ref); perr == nil {
		r, err = s.store.Release(ctx, id)
	} else if len(ref) <= maxSlug && slugPattern.MatchString(ref) {
		r, err = s.store.ReleaseBySlug(ctx, ref)
	} else {
		err = store.ErrNotFound
	}
	if errors.Is(err, store.ErrNotFound) {
		return r, errReleaseNotFound
	}
	return r, err
}

func releaseNotOpen(r store.Release) *Error {
	return errorf(http.StatusConflict, "release_not_open", "This release is %s and takes no more pre-saves.", r.Status)
}

// spotifyHorizon refuses a Spotify pre-save due more than SpotifyHorizon
// after the authorization: its refresh token would have expired by then.
func spotifyHorizon(p providers.Name, due, authorizedAt time.Time) error {
	if p == providers.Spotify && due.After(authorizedAt.Add(SpotifyHorizon)) {
		return errorf(http.StatusUnprocessableEntity, "spotify_horizon_exceeded",
			"Spotify access lasts six months, and this release is due later than that; please come back closer to the release.")
	}
	return nil
}

// StartConnect checks a fan's request, records a one-time state (only its
// hash, with the sealed PKCE verifier, the release, the actions, the zone
// and the consent version) and returns the provider's consent-screen URL.
// fanID is the fan a valid fan token proved (uuid.Nil if none). It
// returns *Error for anything the fan can fix.
func (s *Server) StartConnect(ctx context.Context, providerName string, req StartRequest, clientIP netip.Addr, fanID uuid.UUID) (Started, error) {
	p, err := s.provider(providerName)
	if err != nil {
		return Started{}, err
	}
	if !req.Consent {
		return Started{}, badRequest("consent_required", "Tick the consent box: we only act on your account with your explicit consent.")
	}
	if req.Binding == "" {
		return Started{}, errors.New("api: a start must be bound to its client")
	}
	version := req.ConsentVersion
	if version == "" {
		version = s.cfg.ConsentVersion
	}
	if version != s.cfg.ConsentVersion {
		return Started{}, badRequest("consent_version_unknown", "The consent wording you saw is out of date; please reload the page.")
	}
	if req.Release == "" {
		return Started{}, badRequest("release_required", "Name the release (its slug or ID).")
	}
	r, err := s.findRelease(ctx, req.Release)
	if err != nil {
		return Started{}, err
	}
	if r.Status != store.ReleaseScheduled {
		return Started{}, releaseNotOpen(r)
	}
	offered := p.Actions(r.Target(p.Name()))
	if len(offered) == 0 {
		return Started{}, badRequest("provider_not_offered", "This release has nothing to pre-save on %s.", p.Name())
	}
	actions := offered
	if len(req.Actions) > 0 {
		actions = nil
		for _, a := range offered { // the provider's order, without duplicates
			if slices.Contains(req.Actions, a) {
				actions = append(actions, a)
			}
		}
		for _, a := range req.Actions {
			if !slices.Contains(offered, a) {
				return Started{}, badRequest("action_not_offered", "This release does not offer %q on %s (it offers %v).", a, p.Name(), offered)
			}
		}
	}
	zone := req.Zone
	if zone == "" {
		zone = r.DefaultZone
		if zone == "" {
			zone = "UTC"
		}
	}
	if err := s.checkZone(ctx, "zone", zone); err != nil {
		return Started{}, err
	}
	due, err := r.DueAt(zone)
	if err != nil {
		return Started{}, badRequest("invalid_zone", "zone must be an IANA time zone name such as Europe/Paris.")
	}
	now := s.now()
	// Checked here to spare the fan a useless trip to Spotify; the
	// callback checks again against the actual authorization time.
	if err := spotifyHorizon(p.Name(), due, now); err != nil {
		return Started{}, err
	}
	state, err := randomToken()
	if err != nil {
		return Started{}, err
	}
	verifier := oauth2.GenerateVerifier()
	st := store.OAuthState{
		Provider: p.Name(), ReleaseID: r.ID, Verifier: verifier, Actions: actions, FanZone: zone,
		ConsentVersion: version, FanID: fanID, ExpiresAt: now.Add(StateTTL), Binding: req.Binding, ViaPage: req.ViaPage,
	}
	if clientIP.IsValid() {
		prefix := store.AnonymizeIP(clientIP)
		st.ClientIPPrefix = &prefix
	}
	if err := s.store.CreateOAuthState(ctx, state, st); err != nil {
		return Started{}, err
	}
	return Started{AuthorizeURL: p.AuthCodeURL(state, verifier, p.Scopes(actions)), ExpiresAt: st.ExpiresAt}, nil
}

var providerErrorCode = regexp.MustCompile(`^[a-z_]{1,40}$`)

// errBindingMismatch refuses a bound state reached without its cookie.
var errBindingMismatch = errorf(http.StatusBadRequest, "state_browser_mismatch",
	"This sign-in was started in another browser, or took too long; for your safety nothing was saved. Please start again from the release page.")

// completeConnect finishes a connection: it consumes the state (unknown,
// reused or expired: refused, nothing written), exchanges the code with
// the verifier, and records fan, account, sealed token, pre-save and
// consent in one transaction, then schedules the pre-save. It returns
// *Error for every refusal; nothing is written unless it succeeds.
//
// Every state completes only with the binding it was started with
// (StartRequest.Binding, CallbackRequest.Binding): an authorize link or
// a callback link carried to another browser is refused before the code
// is exchanged. That is what makes the state's fan (the one whose token
// came with the start) safe to attach the account to: whoever completes
// the callback is the client that proved to be that fan.
func (s *Server) completeConnect(ctx context.Context, providerName string, req CallbackRequest) (*Connected, callbackInfo, error) {
	var info callbackInfo
	p, err := s.provider(providerName)
	if err != nil {
		return nil, info, err
	}
	if req.State == "" {
		return nil, info, badRequest("state_invalid", "This sign-in link is incomplete; please start again.")
	}
	now := s.now()
	// The state's release comes with it, read by the same statement.
	st, r, serr := s.store.ConsumeOAuthStateRelease(ctx, req.State, now)
	if serr == nil {
		info = callbackInfo{viaPage: st.ViaPage, release: st.ReleaseID}
	}
	res, err := s.finishConnect(ctx, p, req, st, r, serr, now)
	return res, info, err
}

// finishConnect is CompleteConnect after the state was consumed (serr is
// the consumption's error; r is the state's release as of then).
func (s *Server) finishConnect(ctx context.Context, p providers.Provider, req CallbackRequest, st store.OAuthState, r store.Release, serr error, now time.Time) (*Connected, error) {
	if req.Error != "" {
		// The state is spent either way; the fan's answer matters more
		// than whether it was still valid.
		if req.Error == "access_denied" {
			return nil, errorf(http.StatusForbidden, "consent_denied", "You declined on %s, so nothing was saved. You can start again at any time.", p.Name())
		}
		code := "unknown"
		if providerErrorCode.MatchString(req.Error) {
			code = req.Error
		}
		return nil, errorf(http.StatusBadGateway, "provider_error", "%s answered with the error %q; nothing was saved. Please start again.", p.Name(), code)
	}
	switch {
	case errors.Is(serr, store.ErrStateExpired):
		return nil, badRequest("state_expired", "This sign-in took longer than %d minutes; please start again.", int(StateTTL/time.Minute))
	case errors.Is(serr, store.ErrNotFound):
		return nil, badRequest("state_invalid", "This sign-in link is unknown or was already used; please start again.")
	case serr != nil:
		return nil, serr
	case st.Provider != p.Name():
		return nil, badRequest("state_invalid", "This sign-in link belongs to another provider; please start again.")
	case !st.BoundTo(req.Binding):
		// Checked before the code is exchanged: nothing is written and
		// the grant stays unused at the provider.
		return nil, errBindingMismatch
	}
	if req.Code == "" {
		return nil, badRequest("code_missing", "%s sent no authorization code; please start again.", p.Name())
	}
	if r.Status != store.ReleaseScheduled {
		return nil, releaseNotOpen(r)
	}
	due, err := r.DueAt(st.FanZone)
	if err != nil {
		return nil, err
	}
	grant, err := p.Exchange(ctx, req.Code, st.Verifier)
	if err != nil {
		switch providers.ClassOf(err) {
		case providers.GrantInvalid, providers.Permanent:
			return nil, &Error{Status: http.StatusBadRequest, Code: "code_invalid", Err: err,
				Message: "The authorization code was refused (expired or already used); please start again."}
		}
		return nil, &Error{Status: http.StatusBadGateway, Code: "provider_unavailable", Err: err,
			Message: "We could not reach " + string(p.Name()) + "; nothing was saved. Please try again in a moment."}
	}
	if grant.Token == nil || grant.Token.RefreshToken == "" || grant.AccountID == "" {
		return nil, errorf(http.StatusBadGateway, "provider_error", "%s did not grant lasting access; nothing was saved. Please start again.", p.Name())
	}
	if err := checkProviderText(string(p.Name()), "the account ID", grant.AccountID); err != nil {
		s.discardGrant(ctx, p, grant)
		return nil, err
	}
	if err := checkProviderText(string(p.Name()), "a granted scope", grant.Scopes...); err != nil {
		s.discardGrant(ctx, p, grant)
		return nil, err
	}
	if err := spotifyHorizon(p.Name(), due, now); err != nil {
		s.discardGrant(ctx, p, grant)
		return nil, err
	}

	// A fan who came back with their own token keeps it: no new session.
	var reuse string
	if req.FanToken != "" && st.FanID != uuid.Nil {
		if id, err := s.store.FanByToken(ctx, req.FanToken); err == nil && id == st.FanID {
			reuse = req.FanToken
		}
	}
	c := store.Consent{
		FanID: st.FanID, Provider: p.Name(), AccountID: grant.AccountID,
		Token: store.Token{
			RefreshToken: grant.Token.RefreshToken, AccessToken: grant.Token.AccessToken, Expiry: grant.Token.Expiry,
			Scopes: grant.Scopes, AuthorizedAt: now,
		},
		ReleaseID: r.ID, Actions: st.Actions, ConsentedAt: now, ConsentVersion: st.ConsentVersion,
		FanZone: st.FanZone, ClientIPPrefix: st.ClientIPPrefix, DueAt: due,
		// Due soon (queue's rule): recorded as enqueued in the consent
		// transaction itself and queued right after it, which spares
		// queue.Client.Schedule's separate UPDATE.
		Enqueue:          s.queue.DueSoon(due),
		ReleaseUpdatedAt: r.UpdatedAt,
	}
	newToken := randomToken
	if reuse != "" {
		newToken = nil
	}
	out, err := s.store.RecordConsent(ctx, c, newToken)
	if errors.Is(err, store.ErrAccountTaken) {
		// The provider account already belongs to another fan. Whoever
		// just proved control of it is that fan: record it there, with a
		// token for that fan.
		c.FanID, reuse = uuid.Nil, ""
		out, err = s.store.RecordConsent(ctx, c, randomToken)
	}
	switch {
	case errors.Is(err, store.ErrReleaseChanged):
		s.discardGrant(ctx, p, grant)
		return nil, errorf(http.StatusConflict, "release_changed",
			"The release was cancelled or rescheduled while you were connecting; nothing was saved. Please start again.")
	case errors.Is(err, store.ErrOtherAccount):
		s.discardGrant(ctx, p, grant)
		return nil, errorf(http.StatusConflict, "other_account_connected",
			"Your pending pre-saves on %s use another %s account; nothing was saved. Sign in with that account, or disconnect %s first (your pre-saves there are then withdrawn).",
			p.Name(), p.Name(), p.Name())
	case err != nil:
		return nil, err
	}
	res := &Connected{FanID: out.FanID, FanToken: out.FanToken, NewFan: out.FanCreated, Presave: presaveView(out.Presave, nil)}
	if reuse != "" {
		res.FanToken = reuse
	}
	ps := out.Presave
	if ps.Generation > 1 {
		// A repeated consent bumped the generation: the old task is stale.
		if err := s.queue.DropPresaveTask(ps.ID, ps.Generation-1, ps.Provider); err != nil {
			s.log.WarnContext(ctx, "dropping a superseded pre-save task", "presave_id", ps.ID, "err", err)
		}
	}
	if ps.Status == store.PresaveEnqueued {
		d := store.DuePresave{ID: ps.ID, Generation: ps.Generation, Provider: ps.Provider, DueAt: ps.DueAt, FanID: ps.FanID}
		if _, err := s.queue.Enqueue(ctx, d); err != nil {
			// Recorded as enqueued in PostgreSQL; the relay's rescue
			// queues enqueued pre-saves that have no task.
			s.log.WarnContext(ctx, "queueing a new pre-save; the relay will queue it", "presave_id", ps.ID, "err", err)
		} else {
			res.Queued = true
		}
	}
	return res, nil
}

// discardGrant revokes, where the provider allows, a grant just obtained
// for a connection that was then refused: nothing was stored, so nothing
// of ours may keep working at the provider either. Best effort: the
// refusal stands whatever the provider answers.
func (s *Server) discardGrant(ctx context.Context, p providers.Provider, g providers.Grant) {
	if g.Token == nil || g.Token.RefreshToken == "" {
		return
	}
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := p.Revoke(rctx, g.Token.RefreshToken); err != nil && !errors.Is(err, providers.ErrRevokeUnsupported) {
		s.log.WarnContext(ctx, "revoking the grant of a refused connection", "provider", p.Name(), "err", err)
	}
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
// ("1"/"true"/"on"/"yes") and consent_version. Only the page's
// CSRF-checked form may carry consent this way.
func startRequestFromForm(v url.Values) StartRequest {
	req := StartRequest{Release: v.Get("release"), Zone: v.Get("zone"), ConsentVersion: v.Get("consent_version")}
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
	fan, err := s.optionalFan(c)
	if err != nil {
		return err
	}
	if req.Binding, err = s.bindClient(c); err != nil {
		return err
	}
	res, err := s.StartConnect(ctxOf(c), c.Param("provider"), req, clientIP(c), fan)
	if err != nil {
		return err
	}
	c.Response().Header().Set(echo.HeaderCacheControl, "no-store")
	return c.JSON(http.StatusOK, res)
}

// startLink handles GET /v1/connect/{provider}/start?release=…: a link
// anyone can put on any site, so it never records a state or a consent.
// It sends the browser to the release's page, where the fan reads what
// will happen and ticks the consent box themselves.
func (s *Server) startLink(c echo.Context) error {
	if _, err := s.provider(c.Param("provider")); err != nil {
		return err
	}
	if err := checkValues(c.QueryParams()); err != nil {
		return err
	}
	ref := c.QueryParam("release")
	if ref == "" {
		return badRequest("release_required", "Name the release (its slug or ID).")
	}
	r, err := s.findRelease(ctxOf(c), ref)
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
		if nonce, err = randomToken(); err != nil {
			return "", err
		}
	}
	c.SetCookie(&http.Cookie{Name: BindingCookie, Value: nonce, Path: "/", MaxAge: int(StateTTL / time.Second),
		HttpOnly: true, SameSite: http.SameSiteLaxMode, Secure: strings.HasPrefix(s.cfg.PublicURL, "https://")})
	return nonce, nil
}

// callback handles GET /connect/{provider}/callback for one provider.
func (s *Server) callback(name providers.Name) echo.HandlerFunc {
	return func(c echo.Context) error {
		q := c.QueryParams()
		req := CallbackRequest{Code: q.Get("code"), State: q.Get("state"), Error: q.Get("error"), ClientIP: clientIP(c)}
		if ck, err := c.Cookie(FanCookie); err == nil {
			req.FanToken = ck.Value
		}
		if ck, err := c.Cookie(BindingCookie); err == nil {
			req.Binding = ck.Value
		}
		res, info, err := s.completeConnect(ctxOf(c), string(name), req)
		// This URL held a code and a state: keep it out of caches and of
		// the Referer of anything a rendered page loads.
		c.Response().Header().Set(echo.HeaderCacheControl, "no-store")
		c.Response().Header().Set("Referrer-Policy", "no-referrer")
		// The fan cookie only goes to the page's flow; API clients get
		// the fan token in the JSON answer. Either way the callback came
		// from the client that started the flow (its binding cookie).
		if err == nil && info.viaPage {
			s.SetFanCookie(c, res.FanToken)
		}
		// The fan page's flow answers in HTML, and so do failures a
		// browser meets; API clients keep their JSON.
		if s.page != nil && (info.viaPage || (err != nil && s.page.browserRequest(c))) {
			return s.page.callback(c, info, res, err)
		}
		if err != nil {
			return err
		}
		return c.JSON(http.StatusOK, res)
	}
}

// fanCookieMaxAge keeps the fan logged in on this browser for a year.
const fanCookieMaxAge = 365 * 24 * 60 * 60

// SetFanCookie sets the presave_fan cookie: HttpOnly, SameSite=Lax (it
// must come along on the provider's top-level redirect back to us),
// Secure when PUBLIC_URL is https.
func (s *Server) SetFanCookie(c echo.Context, token string) {
	c.SetCookie(&http.Cookie{
		Name: FanCookie, Value: token, Path: "/", MaxAge: fanCookieMaxAge,
		HttpOnly: true, SameSite: http.SameSiteLaxMode, Secure: strings.HasPrefix(s.cfg.PublicURL, "https://"),
	})
}

func (s *Server) clearFanCookie(c echo.Context) {
	c.SetCookie(&http.Cookie{
		Name: FanCookie, Value: "", Path: "/", MaxAge: -1,
		HttpOnly: true, SameSite: http.SameSiteLaxMode, Secure: strings.HasPrefix(s.cfg.PublicURL, "https://"),
	})
}
