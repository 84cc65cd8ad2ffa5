package fake

import (
	"context"
	crand "crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/presave/presave/internal/providers"
)

func (s *Server) routes() {
	m := http.NewServeMux()
	s.mux = m
	sp, yt := providers.Spotify, providers.YouTube

	// Spotify accounts.
	s.handle(m, "GET /authorize", sp, s.authorize(sp))
	s.handle(m, "POST /api/token", sp, s.token(sp))
	// Spotify Web API.
	s.handle(m, "GET /v1/me", sp, s.api(sp, 0, s.spMe))
	s.handle(m, "PUT /v1/me/library", sp, s.api(sp, 0, s.spLibraryPut))
	s.handle(m, "GET /v1/me/library/contains", sp, s.api(sp, 0, s.spLibraryContains))
	s.handle(m, "PUT /v1/me/albums", sp, s.api(sp, 0, s.spLegacyPut("album")))
	s.handle(m, "PUT /v1/me/tracks", sp, s.api(sp, 0, s.spLegacyPut("track")))
	s.handle(m, "PUT /v1/me/following", sp, s.api(sp, 0, s.spLegacyPut("artist")))
	s.handle(m, "GET /v1/me/albums/contains", sp, s.api(sp, 0, s.spLegacyContains("album")))
	s.handle(m, "GET /v1/me/tracks/contains", sp, s.api(sp, 0, s.spLegacyContains("track")))
	s.handle(m, "GET /v1/me/following/contains", sp, s.api(sp, 0, s.spLegacyContains("artist")))
	s.handle(m, "GET /v1/playlists/{id}/items", sp, s.api(sp, 0, s.spPlaylistGet(false)))
	s.handle(m, "GET /v1/playlists/{id}/tracks", sp, s.api(sp, 0, s.spPlaylistGet(true)))
	s.handle(m, "POST /v1/playlists/{id}/items", sp, s.api(sp, 0, s.spPlaylistAdd(false)))
	s.handle(m, "POST /v1/playlists/{id}/tracks", sp, s.api(sp, 0, s.spPlaylistAdd(true)))
	s.handle(m, "GET /v1/me/playlists", sp, s.api(sp, 0, s.spMyPlaylists))
	s.handle(m, "GET /v1/search", sp, s.appAPI(sp, 0, s.spSearch))
	s.handle(m, "POST /v1/me/playlists", sp, s.api(sp, 0, s.spCreatePlaylist(false)))
	s.handle(m, "POST /v1/users/{user_id}/playlists", sp, s.api(sp, 0, s.spCreatePlaylist(true)))
	s.handle(m, "PUT /v1/playlists/{id}/followers", sp, s.api(sp, 0, s.spFollowPlaylist))
	s.handle(m, "GET /v1/playlists/{id}/followers/contains", sp, s.api(sp, 0, s.spFollowsPlaylist))
	// Google OAuth and YouTube. Costs are YouTube Data API quota units.
	s.handle(m, "GET /o/oauth2/auth", yt, s.authorize(yt))
	s.handle(m, "POST /google/token", yt, s.token(yt))
	s.handle(m, "POST /google/revoke", yt, s.googleRevoke)
	s.handle(m, "GET /google/v1/userinfo", yt, s.api(yt, 0, s.ytUserinfo))
	s.handle(m, "GET /youtube/v3/videos/getRating", yt, s.api(yt, 1, s.ytGetRating))
	s.handle(m, "POST /youtube/v3/videos/rate", yt, s.api(yt, 50, s.ytRate))
	s.handle(m, "GET /youtube/v3/playlistItems", yt, s.api(yt, 1, s.ytPlaylistList))
	s.handle(m, "POST /youtube/v3/playlistItems", yt, s.api(yt, 50, s.ytPlaylistInsert))
	s.handle(m, "GET /youtube/v3/playlists", yt, s.api(yt, 1, s.ytPlaylists))
	s.handle(m, "POST /youtube/v3/playlists", yt, s.api(yt, 50, s.ytPlaylistCreate))
	s.handle(m, "GET /youtube/v3/subscriptions", yt, s.api(yt, 1, s.ytSubscriptions))
	s.handle(m, "POST /youtube/v3/subscriptions", yt, s.api(yt, 50, s.ytSubscribe))
	s.appleRoutes(m)
	// Control plane (not counted, no faults).
	s.controlRoutes(m)
}

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// handle registers h under pattern, with injected latency, the request-rate
// meter and a call counter keyed "pattern status".
func (s *Server) handle(m *http.ServeMux, pattern string, p providers.Name, h http.HandlerFunc) {
	s.routeOwner[pattern] = p
	m.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		start := s.now()
		r = r.WithContext(context.WithValue(r.Context(), arrivalKey{}, time.Now()))
		s.mu.Lock()
		lat := s.faults[p].latency
		s.meterLocked(p, start)
		s.mu.Unlock()
		if lat > 0 {
			t := time.NewTimer(lat)
			select {
			case <-t.C:
			case <-r.Context().Done():
				t.Stop()
				return
			}
		}
		sw := &statusWriter{ResponseWriter: w}
		h(sw, r)
		if sw.status == 0 {
			sw.status = http.StatusOK
		}
		s.mu.Lock()
		s.calls[pattern+" "+strconv.Itoa(sw.status)]++
		s.mu.Unlock()
		// Only the route and status: query strings may carry codes or tokens.
		s.log.Debug("fake request", "provider", string(p), "route", pattern, "status", sw.status)
	})
}

// meterLocked tracks the busiest second seen per provider. s.mu must be held.
func (s *Server) meterLocked(p providers.Name, t time.Time) {
	m := s.rates[p]
	sec := t.Unix()
	if sec != m.sec {
		m.sec, m.count = sec, 0
	}
	m.count++
	m.max = max(m.max, m.count)
}

type apiHandler func(w http.ResponseWriter, r *http.Request, g *grant)

// arrivalKey holds, in a request's context, the wall-clock time it
// arrived (before injected latency): when a write "started".
type arrivalKey struct{}

// api authenticates the bearer token, then applies the rate limit, the 5xx
// fraction and the quota before calling h. cost is YouTube quota units.
func (s *Server) api(p providers.Name, cost int, h apiHandler) http.HandlerFunc {
	return s.apiFor(p, cost, false, h)
}

// appAPI is api for an endpoint an app token (client credentials, no
// user) may call too: Spotify's catalogue search.
func (s *Server) appAPI(p providers.Name, cost int, h apiHandler) http.HandlerFunc {
	return s.apiFor(p, cost, true, h)
}

func (s *Server) apiFor(p providers.Name, cost int, appOK bool, h apiHandler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		now := s.now()
		s.mu.Lock()
		g, refuse := s.authLocked(r, p, appOK, now)
		if refuse == nil {
			refuse = s.faultLocked(r, p, g, cost, now)
		}
		if refuse == nil && r.Method != http.MethodGet {
			at, _ := r.Context().Value(arrivalKey{}).(time.Time)
			s.writes = append(s.writes, Write{Provider: p, User: g.user, Route: r.Method + " " + r.URL.Path, At: at})
		}
		s.mu.Unlock()
		if refuse != nil {
			refuse(w)
			return
		}
		h(w, r, g)
	}
}

// authLocked finds the grant of the request's bearer token, or returns
// the answer refusing it. s.mu must be held.
func (s *Server) authLocked(r *http.Request, p providers.Name, appOK bool, now time.Time) (*grant, func(http.ResponseWriter)) {
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	at := s.access[tok]
	switch {
	case !ok || at == nil || at.g.p != p || at.g.revoked:
		return nil, func(w http.ResponseWriter) { s.unauthorized(w, p, "Invalid access token") }
	case at.g.user == "" && !appOK:
		// A client-credentials token names no user: "Since this flow
		// does not include authorization, only endpoints that do not
		// access user information can be accessed." The status is not
		// documented; refusing is what matters.
		return nil, func(w http.ResponseWriter) {
			spError(w, http.StatusUnauthorized, "This request requires user authentication.", "")
		}
	case !now.Before(at.expires):
		return nil, func(w http.ResponseWriter) { s.unauthorized(w, p, "The access token expired") }
	}
	return at.g, nil
}

// faultLocked applies the provider's limits and the injected faults to
// an authenticated request (and spends its YouTube units), returning
// the answer refusing it, or nil. s.mu must be held.
func (s *Server) faultLocked(r *http.Request, p providers.Name, g *grant, cost int, now time.Time) func(http.ResponseWriter) {
	f := s.faults[p]
	if wait, limited := f.limitLocked(g.clientID, now); limited {
		if p == providers.Spotify {
			// "429: The app has exceeded its rate limits", with a
			// Retry-After header in seconds (Web API, "Rate Limits").
			return func(w http.ResponseWriter) {
				w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(wait.Seconds()))))
				spError(w, http.StatusTooManyRequests, "API rate limit exceeded", "")
			}
		}
		// The YouTube Data API's errors table: 403 rateLimitExceeded
		// (domain usageLimits), no Retry-After; Google asks for
		// exponential backoff.
		return func(w http.ResponseWriter) {
			gError(w, http.StatusForbidden, "rateLimitExceeded", "usageLimits", "Rate Limit Exceeded")
		}
	}
	if p == providers.YouTube && s.noChannel[g.user] && !strings.HasPrefix(r.URL.Path, "/google/") {
		// "youtubeSignupRequired: This error indicates that the user has
		// an unlinked Google Account, which means that the user has a
		// Google Account but does not have a YouTube channel." (YouTube
		// Data API, errors, 401 Unauthorized).
		return func(w http.ResponseWriter) {
			gError(w, http.StatusUnauthorized, "youtubeSignupRequired", "youtube.header", "Unauthorized")
		}
	}
	if f.errorRate > 0 && rand.Float64() < f.errorRate {
		if p == providers.Spotify {
			return func(w http.ResponseWriter) { spError(w, http.StatusServiceUnavailable, "Service unavailable", "") }
		}
		return func(w http.ResponseWriter) {
			gError(w, http.StatusServiceUnavailable, "backendError", "global", "The service is currently unavailable.")
		}
	}
	if p == providers.Spotify && now.Before(f.quotaUntil) {
		left := f.quotaUntil.Sub(now)
		return func(w http.ResponseWriter) {
			w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(left.Seconds()))))
			spError(w, http.StatusTooManyRequests, "Quota exceeded", "QUOTA_EXCEEDED")
		}
	}
	if p == providers.YouTube && cost > 0 {
		q := s.quotaLocked(g.clientID, now)
		if now.Before(f.quotaUntil) || q.used+cost > s.dailyLim {
			return func(w http.ResponseWriter) {
				gError(w, http.StatusForbidden, "quotaExceeded", "youtube.quota",
					"The request cannot be completed because you have exceeded your quota.")
			}
		}
		q.used += cost
	}
	return nil
}

// limitLocked applies GCRA (a token bucket of size burst refilled at rps)
// per client ID, and returns how long to wait when over the limit.
func (f *faults) limitLocked(client string, now time.Time) (time.Duration, bool) {
	if f.rps <= 0 {
		return 0, false
	}
	interval := time.Duration(float64(time.Second) / f.rps)
	tat := f.tat[client]
	if tat.Before(now) {
		tat = now
	}
	allowAt := tat.Add(-time.Duration(max(f.burst, 1)-1) * interval)
	if now.Before(allowAt) {
		return allowAt.Sub(now), true
	}
	f.tat[client] = tat.Add(interval)
	return 0, false
}

// quotaLocked returns today's (Pacific) quota use of a project.
func (s *Server) quotaLocked(client string, now time.Time) *quotaDay {
	day := now.In(s.pt).Format(time.DateOnly)
	q := s.quota[client]
	if q == nil || q.day != day {
		q = &quotaDay{day: day}
		s.quota[client] = q
	}
	return q
}

func (s *Server) unauthorized(w http.ResponseWriter, p providers.Name, msg string) {
	if p == providers.Spotify {
		w.Header().Set("WWW-Authenticate", `Bearer realm="spotify", error="invalid_token"`)
		spError(w, http.StatusUnauthorized, msg, "")
		return
	}
	w.Header().Set("WWW-Authenticate", `Bearer realm="https://accounts.google.com/", error="invalid_token"`)
	gError(w, http.StatusUnauthorized, "authError", "global", "Request had invalid authentication credentials.")
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// spError writes Spotify's error shape.
func spError(w http.ResponseWriter, status int, msg, reason string) {
	e := map[string]any{"status": status, "message": msg}
	if reason != "" {
		e["reason"] = reason
	}
	writeJSON(w, status, map[string]any{"error": e})
}

// gError writes Google's error shape.
func gError(w http.ResponseWriter, code int, reason, domain, msg string) {
	writeJSON(w, code, map[string]any{"error": map[string]any{
		"code":    code,
		"message": msg,
		"errors":  []map[string]string{{"message": msg, "domain": domain, "reason": reason}},
		"status":  googleStatus(code),
	}})
}

func googleStatus(code int) string {
	switch code {
	case 400:
		return "INVALID_ARGUMENT"
	case 401:
		return "UNAUTHENTICATED"
	case 403:
		return "PERMISSION_DENIED"
	case 404:
		return "NOT_FOUND"
	case 429:
		return "RESOURCE_EXHAUSTED"
	}
	return "UNAVAILABLE"
}

func oauthError(w http.ResponseWriter, status int, code, desc string) {
	writeJSON(w, status, map[string]string{"error": code, "error_description": desc})
}

// authorizeRefusal is the error page of an authorize request that never
// reaches the consent dialog, or its redirect URI. Both services show an
// error page and never redirect for a bad redirect URI or a client they
// do not know (Spotify "INVALID_CLIENT: Invalid client", Google "Error
// 401: invalid_client").
func (s *Server) authorizeRefusal(p providers.Name, q url.Values) (*url.URL, string) {
	redirect, err := url.Parse(q.Get("redirect_uri"))
	switch {
	case err != nil || q.Get("redirect_uri") == "" || !redirect.IsAbs():
		return nil, "invalid redirect_uri"
	case !secureRedirect(p, redirect):
		return nil, "INVALID_CLIENT: Insecure redirect URI"
	case q.Get("client_id") == "" || q.Get("response_type") != "code":
		return nil, "invalid client_id or response_type"
	}
	if apps := s.apps[p]; apps != nil {
		if _, ok := apps[q.Get("client_id")]; !ok {
			return nil, "INVALID_CLIENT: Invalid client"
		}
	}
	return redirect, ""
}

// authorize auto-approves the consent screen and redirects with a code.
func (s *Server) authorize(p providers.Name) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		redirect, refusal := s.authorizeRefusal(p, q)
		if refusal != "" {
			http.Error(w, refusal, http.StatusBadRequest)
			return
		}
		rq := redirect.Query()
		if st := q.Get("state"); st != "" {
			rq.Set("state", st)
		}
		if q.Get("deny") == "1" {
			rq.Set("error", "access_denied")
			redirect.RawQuery = rq.Encode()
			http.Redirect(w, r, redirect.String(), http.StatusFound)
			return
		}
		if m := q.Get("code_challenge_method"); q.Get("code_challenge") != "" && m != "S256" {
			rq.Set("error", "invalid_request")
			redirect.RawQuery = rq.Encode()
			http.Redirect(w, r, redirect.String(), http.StatusFound)
			return
		}
		uid := q.Get("user")
		if uid == "" {
			if p == providers.Spotify {
				uid = randomToken("user")[:16]
			} else {
				uid = randomDigits(21)
			}
		}
		scopes := strings.Fields(q.Get("scope"))
		code := randomToken("code-")
		s.mu.Lock()
		// Both services skip their dialog for a user who already approved
		// these scopes for this client, unless the request forces it:
		// Spotify's show_dialog=true ("force the user to approve the app
		// again if they've already done so"; the default false lets an
		// approved user be redirected at once) and Google's prompt=consent
		// (without it, an approved user is not asked again). The fake's
		// "user" parameter stands for the user who approves when asked.
		ak := approvalKey{p: p, client: q.Get("client_id"), userID: uid}
		forced := (p == providers.Spotify && q.Get("show_dialog") == "true") ||
			(p == providers.YouTube && slices.Contains(strings.Fields(q.Get("prompt")), "consent"))
		known := s.approved[ak]
		if !forced && len(known) > 0 && !slices.ContainsFunc(scopes, func(sc string) bool { return !slices.Contains(known, sc) }) {
			s.silent++
		} else {
			s.dialogs++
		}
		for _, sc := range scopes {
			if !slices.Contains(known, sc) {
				known = append(known, sc)
			}
		}
		s.approved[ak] = known
		s.codes[code] = &authCode{
			p: p, clientID: q.Get("client_id"), redirectURI: q.Get("redirect_uri"),
			challenge: q.Get("code_challenge"), method: q.Get("code_challenge_method"),
			scopes: scopes, user: uid, expires: s.now().Add(10 * time.Minute),
		}
		s.mu.Unlock()
		rq.Set("code", code)
		redirect.RawQuery = rq.Encode()
		http.Redirect(w, r, redirect.String(), http.StatusFound)
	}
}

// exchangeCodeLocked redeems an authorization code (single use, even
// when the exchange fails) for a new grant, answering the OAuth error
// itself when it cannot. s.mu must be held.
func (s *Server) exchangeCodeLocked(w http.ResponseWriter, r *http.Request, p providers.Name, clientID string, now time.Time) (*grant, bool) {
	code := r.PostForm.Get("code")
	c := s.codes[code]
	delete(s.codes, code)
	switch {
	case c == nil || c.p != p || !now.Before(c.expires):
		oauthError(w, http.StatusBadRequest, "invalid_grant", "Invalid authorization code")
		return nil, false
	case c.clientID != clientID:
		oauthError(w, http.StatusBadRequest, "invalid_grant", "client mismatch")
		return nil, false
	case c.redirectURI != r.PostForm.Get("redirect_uri"):
		oauthError(w, http.StatusBadRequest, "invalid_grant", "Invalid redirect URI")
		return nil, false
	case c.challenge != "" && s256(r.PostForm.Get("code_verifier")) != c.challenge:
		oauthError(w, http.StatusBadRequest, "invalid_grant", "code_verifier was incorrect")
		return nil, false
	}
	g := &grant{p: p, clientID: clientID, user: c.user, scopes: c.scopes, refresh: randomToken("rt-"), authorized: now}
	s.grants = append(s.grants, g)
	s.refresh[g.refresh] = g
	return g, true
}

// refreshLocked finds the grant of a refresh token, rotating the token
// when the provider is set to. s.mu must be held.
func (s *Server) refreshLocked(w http.ResponseWriter, r *http.Request, p providers.Name, clientID string, now time.Time) (g *grant, rotated, ok bool) {
	g = s.refresh[r.PostForm.Get("refresh_token")]
	if g == nil || g.revoked || g.p != p || g.clientID != clientID {
		if p == providers.YouTube {
			// Google's text for a revoked or expired refresh token.
			oauthError(w, http.StatusBadRequest, "invalid_grant", "Token has been expired or revoked.")
		} else {
			oauthError(w, http.StatusBadRequest, "invalid_grant", "Refresh token revoked")
		}
		return nil, false, false
	}
	if p == providers.Spotify && !now.Before(spotifyRefreshExpiry(g.authorized)) {
		oauthError(w, http.StatusBadRequest, "invalid_grant", "Refresh token expired")
		return nil, false, false
	}
	if s.rotate[p] {
		delete(s.refresh, g.refresh)
		g.refresh = randomToken("rt-")
		s.refresh[g.refresh] = g
		rotated = true
	}
	return g, rotated, true
}

// sweepAccessLocked forgets dead access tokens, at most once a minute
// and only once there are many: long benchmarks refresh a lot, and a
// sweep scans every token under the lock every request takes. s.mu must
// be held.
func (s *Server) sweepAccessLocked(now time.Time) {
	if len(s.access) < 10000 || now.Before(s.accessSweep) {
		return
	}
	for k, old := range s.access {
		if !now.Before(old.expires) || old.g.revoked {
			delete(s.access, k)
		}
	}
	s.accessSweep = now.Add(time.Minute)
}

// token implements the authorization_code (with PKCE) and refresh_token grants.
func (s *Server) token(p providers.Name) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if err := r.ParseForm(); err != nil {
			oauthError(w, http.StatusBadRequest, "invalid_request", "bad form")
			return
		}
		clientID := r.PostForm.Get("client_id")
		if id, _, ok := r.BasicAuth(); ok {
			clientID = id
		}
		if clientID == "" {
			oauthError(w, http.StatusUnauthorized, "invalid_client", "client authentication failed")
			return
		}
		if !s.authenticClient(w, r, p, clientID) {
			return
		}
		now := s.now()
		s.mu.Lock()
		defer s.mu.Unlock()
		var g *grant
		rotated, ok := false, false
		switch r.PostForm.Get("grant_type") {
		case "authorization_code":
			g, ok = s.exchangeCodeLocked(w, r, p, clientID, now)
			rotated = true
		case "refresh_token":
			g, rotated, ok = s.refreshLocked(w, r, p, clientID, now)
		case "client_credentials":
			g, ok = s.appGrantLocked(w, r, p, clientID)
		default:
			oauthError(w, http.StatusBadRequest, "unsupported_grant_type", "")
		}
		if !ok {
			return
		}
		s.sweepAccessLocked(now)
		at := randomToken("at-")
		s.access[at] = &accessToken{g: g, expires: now.Add(s.ttl)}
		resp := map[string]any{
			"access_token": at,
			"token_type":   "Bearer",
			"expires_in":   int(s.ttl.Seconds()),
		}
		if g.user != "" {
			resp["scope"] = strings.Join(g.scopes, " ")
		}
		if rotated {
			resp["refresh_token"] = g.refresh
		}
		if p == providers.YouTube && r.PostForm.Get("grant_type") == "authorization_code" && hasScope(g.scopes, "openid") {
			// Like Google's, an ID token with the account's "sub" (and no
			// profile: presave asks for none).
			resp["id_token"] = idToken(clientID, g.user, now)
		}
		w.Header().Set("Cache-Control", "no-store")
		writeJSON(w, http.StatusOK, resp)
	}
}

// secureRedirect is each service's rule for redirect URIs. Spotify: "Use
// HTTPS for your redirect URI, unless you are using a loopback address,
// when HTTP is permitted", the loopback given as an IP literal
// (127.0.0.1 or [::1]): "localhost is not allowed" (its "Redirect URIs"
// page, enforced for every app since November 2025). Google: "Redirect
// URIs must use the HTTPS scheme, not plain HTTP. Localhost URIs
// (including localhost IP address URIs) are exempt from this rule" (its
// OAuth 2.0 policy's redirect URI validation).
func secureRedirect(p providers.Name, u *url.URL) bool {
	if u.Scheme == "https" {
		return true
	}
	if u.Scheme != "http" {
		return false
	}
	if ip, err := netip.ParseAddr(strings.Trim(u.Hostname(), "[]")); err == nil {
		return ip.IsLoopback()
	}
	return p == providers.YouTube && u.Hostname() == "localhost"
}

// authenticClient checks a token request's client against the apps
// registered for p (Options.Apps; with none, any client ID passes). Both
// answer 401 "invalid_client" for an unknown client or a wrong secret
// (RFC 6749 section 5.2; the descriptions are each service's). Spotify's
// "Authorization code with PKCE" flow sends no secret, so a Spotify
// request without one passes here, except the client credentials grant,
// which is nothing but the secret.
func (s *Server) authenticClient(w http.ResponseWriter, r *http.Request, p providers.Name, clientID string) bool {
	apps := s.apps[p]
	if apps == nil {
		return true
	}
	secret := r.PostForm.Get("client_secret")
	if _, sec, ok := r.BasicAuth(); ok {
		secret = sec
	}
	want, known := apps[clientID]
	unknown, wrong := "Invalid client", "Invalid client secret"
	if p == providers.YouTube {
		unknown, wrong = "The OAuth client was not found.", "Unauthorized"
	}
	switch {
	case !known:
		oauthError(w, http.StatusUnauthorized, "invalid_client", unknown)
		return false
	case secret == "" && p == providers.Spotify && r.PostForm.Get("grant_type") != "client_credentials":
		return true
	case secret == "" && p == providers.YouTube:
		// A web application's client must send its secret.
		oauthError(w, http.StatusBadRequest, "invalid_request", "client_secret is missing.")
		return false
	case secret != want:
		oauthError(w, http.StatusUnauthorized, "invalid_client", wrong)
		return false
	}
	return true
}

// appGrantLocked is Spotify's client credentials grant: the app
// authenticates with its ID and secret (HTTP Basic, or client_id and
// client_secret in the body) and gets an access token naming no user and
// no refresh token ("Client Credentials Flow"). Google's YouTube Data
// API has no such grant here. s.mu must be held.
func (s *Server) appGrantLocked(w http.ResponseWriter, r *http.Request, p providers.Name, clientID string) (*grant, bool) {
	secret := r.PostForm.Get("client_secret")
	if _, sec, ok := r.BasicAuth(); ok {
		secret = sec
	}
	switch {
	case p != providers.Spotify:
		oauthError(w, http.StatusBadRequest, "unsupported_grant_type", "")
		return nil, false
	case secret == "":
		oauthError(w, http.StatusUnauthorized, "invalid_client", "Invalid client secret")
		return nil, false
	}
	return &grant{p: p, clientID: clientID}, true
}

// googleRevoke revokes the grant an access or refresh token belongs to.
func (s *Server) googleRevoke(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		oauthError(w, http.StatusBadRequest, "invalid_request", "bad form")
		return
	}
	tok := r.Form.Get("token")
	s.mu.Lock()
	defer s.mu.Unlock()
	g := s.refresh[tok]
	if at := s.access[tok]; g == nil && at != nil {
		g = at.g
	}
	if g == nil || g.revoked || g.p != providers.YouTube {
		oauthError(w, http.StatusBadRequest, "invalid_token", "Token expired or revoked")
		return
	}
	s.revokeGrantLocked(g)
	s.revoked = append(s.revoked, RevokedGrant{Provider: g.p, User: g.user, ClientID: g.clientID, At: s.now()})
	writeJSON(w, http.StatusOK, map[string]any{})
}

// revokeGrantLocked kills a grant and with it every access token issued
// under it: they stay in s.access until the next sweep, but every lookup
// checks the grant (walking all access tokens here made each revoke cost
// O(fans) under the server's lock).
func (s *Server) revokeGrantLocked(g *grant) {
	g.revoked = true
	delete(s.refresh, g.refresh)
}

func splitList(v string) []string {
	var out []string
	for _, x := range strings.Split(v, ",") {
		if x = strings.TrimSpace(x); x != "" {
			out = append(out, x)
		}
	}
	return out
}

// parseURI splits "spotify:track:ID".
func parseURI(u string) (kind, id string, err error) {
	parts := strings.Split(u, ":")
	if len(parts) != 3 || parts[0] != "spotify" || parts[2] == "" {
		return "", "", fmt.Errorf("invalid uri %q", u)
	}
	switch parts[1] {
	case "album", "track", "artist", "playlist":
		return parts[1], parts[2], nil
	}
	return "", "", fmt.Errorf("unsupported uri type %q", parts[1])
}

// idToken is a Google-shaped OpenID ID token. Its signature is random
// bytes: the fake has no key Google's JWKS would name, and presave does
// not check the signature of an ID token it got straight from the token
// endpoint (OpenID Connect Core 3.1.3.7 lets TLS stand in for it).
func idToken(clientID, sub string, now time.Time) string {
	enc := base64.RawURLEncoding
	header, _ := json.Marshal(map[string]string{"alg": "RS256", "kid": "fake", "typ": "JWT"})
	claims, _ := json.Marshal(map[string]any{
		"iss": "https://accounts.google.com", "azp": clientID, "aud": clientID, "sub": sub,
		"iat": now.Unix(), "exp": now.Add(time.Hour).Unix(),
	})
	sig := make([]byte, 256)
	_, _ = crand.Read(sig)
	return enc.EncodeToString(header) + "." + enc.EncodeToString(claims) + "." + enc.EncodeToString(sig)
}
