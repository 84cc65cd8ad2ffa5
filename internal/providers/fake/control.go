package fake

import (
	"encoding/json"
	"maps"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"time"

	"github.com/presave/presave/internal/providers"
)

// RevokedGrant is one grant revoked through Google's revoke endpoint.
type RevokedGrant struct {
	Provider providers.Name `json:"provider"`
	User     string         `json:"user"`
	ClientID string         `json:"client_id"`
	At       time.Time      `json:"at"`
}

// UserState is one user's state at one provider. Playlists are those the
// user owns, oldest first, their items in order, duplicates included, so
// "exactly once" (one playlist, each item once) is checkable.
type UserState struct {
	Provider          providers.Name  `json:"provider"`
	ID                string          `json:"id"`
	Albums            []string        `json:"albums"`
	Tracks            []string        `json:"tracks"`
	Artists           []string        `json:"artists"`            // followed
	FollowedPlaylists []string        `json:"followed_playlists"` // Spotify
	Likes             []string        `json:"likes"`              // YouTube videos rated "like"
	Subscriptions     []string        `json:"subscriptions"`      // YouTube channels
	Playlists         []PlaylistState `json:"playlists"`
}

// GrantState describes one grant (never its tokens).
type GrantState struct {
	Provider providers.Name `json:"provider"`
	User     string         `json:"user"`
	ClientID string         `json:"client_id"`
	Scopes   []string       `json:"scopes"`
	Revoked  bool           `json:"revoked"`
}

// State is a snapshot of everything a test or the demo may assert on.
type State struct {
	Users []UserState `json:"users"`
	// Calls counts requests by "METHOD /route status", e.g.
	// "POST /v1/playlists/{id}/items 201".
	Calls map[string]int `json:"calls"`
	// Routes names the provider of each "METHOD /route".
	Routes  map[string]providers.Name `json:"routes"`
	Grants  []GrantState              `json:"grants"`
	Revoked []RevokedGrant            `json:"revoked"`
	// MaxRate is the most requests seen in one wall-clock second, per provider.
	MaxRate map[providers.Name]int `json:"max_rate_per_second"`
	// QuotaUsed is today's YouTube units used per client ID (project).
	QuotaUsed map[string]int `json:"youtube_quota_used"`
}

func keys(m map[string]bool) []string {
	out := slices.Collect(maps.Keys(m))
	sort.Strings(out)
	if out == nil {
		out = []string{}
	}
	return out
}

// userStateLocked snapshots one user. s.mu must be held.
func (s *Server) userStateLocked(p providers.Name, id string, u *user) UserState {
	pl := []PlaylistState{}
	for _, x := range s.ownedLocked(p, id) {
		pl = append(pl, x.state())
	}
	return UserState{
		Provider: p, ID: id, Albums: keys(u.albums), Tracks: keys(u.tracks), Artists: keys(u.artists),
		FollowedPlaylists: keys(u.followed), Likes: keys(u.likes), Subscriptions: keys(u.subscriptions), Playlists: pl,
	}
}

// State returns a deep copy of the fake's state.
func (s *Server) State() State {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := State{
		Calls:     maps.Clone(s.calls),
		Revoked:   slices.Clone(s.revoked),
		MaxRate:   map[providers.Name]int{},
		QuotaUsed: map[string]int{},
		Users:     []UserState{},
		Grants:    []GrantState{},
		Routes:    maps.Clone(s.routeOwner),
	}
	for k, u := range s.users {
		st.Users = append(st.Users, s.userStateLocked(k.p, k.id, u))
	}
	sort.Slice(st.Users, func(i, j int) bool {
		a, b := st.Users[i], st.Users[j]
		return a.Provider < b.Provider || (a.Provider == b.Provider && a.ID < b.ID)
	})
	for _, g := range s.grants {
		st.Grants = append(st.Grants, GrantState{Provider: g.p, User: g.user, ClientID: g.clientID, Scopes: slices.Clone(g.scopes), Revoked: g.revoked})
	}
	for p, m := range s.rates {
		st.MaxRate[p] = m.max
	}
	now := s.now()
	for c := range s.quota {
		st.QuotaUsed[c] = s.quotaLocked(c, now).used
	}
	return st
}

// User returns one user's state (empty if unknown).
func (s *Server) User(p providers.Name, id string) UserState {
	s.mu.Lock()
	defer s.mu.Unlock()
	u, ok := s.users[userKey{p, id}]
	if !ok {
		u = &user{}
	}
	return s.userStateLocked(p, id, u)
}

// IssuedTokens returns every refresh and access token the fake issued to
// one user at p (revoked and expired ones included but not swept ones),
// so a test can check that none of them leaks anywhere. For Apple Music
// they are the Music User Tokens, and userID "" means every user's: our
// side never learns who an Apple Music fan is.
func (s *Server) IssuedTokens(p providers.Name, userID string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	if p == providers.AppleMusic {
		for tok, u := range s.apple.tokens {
			if userID == "" || u.id == userID {
				out = append(out, tok)
			}
		}
		return out
	}
	for _, g := range s.grants {
		if g.p == p && g.user == userID {
			out = append(out, g.refresh)
		}
	}
	for tok, at := range s.access {
		if at.g.p == p && at.g.user == userID {
			out = append(out, tok)
		}
	}
	return out
}

// PlaylistItems returns the items of a playlist in order, duplicates
// included: Spotify track URIs or YouTube video IDs.
func (s *Server) PlaylistItems(p providers.Name, playlistID string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if pl, ok := s.playlists[userKey{p, playlistID}]; ok {
		return slices.Clone(pl.items)
	}
	return nil
}

// SetCreateDelay holds every playlist creation's answer for d after the
// playlist exists, so a test can kill a worker between a creation and
// its recording (0 turns it off).
func (s *Server) SetCreateDelay(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.createDelay = d
}

// Created counts the playlists users created at p.
func (s *Server) Created(p providers.Name) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, pl := range s.created {
		if pl.p == p {
			n++
		}
	}
	return n
}

// Write is one authenticated write request (a library save, a follow,
// a playlist insert, a like) as it arrived, before any injected latency.
type Write struct {
	Provider providers.Name `json:"provider"`
	User     string         `json:"user"`
	// Route is the method and path, e.g. "PUT /v1/me/library".
	Route string    `json:"route"`
	At    time.Time `json:"at"`
}

// WritesSince returns the write requests that arrived at or after t.
func (s *Server) WritesSince(t time.Time) []Write {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Write
	for _, w := range s.writes {
		if !w.At.Before(t) {
			out = append(out, w)
		}
	}
	return out
}

// Authorizations counts how the consent screen went: shown (the user saw
// the dialog and approved) or silent (an earlier approval was reused
// without showing anything, as the real services do unless told not to).
func (s *Server) Authorizations() (shown, silent int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.dialogs, s.silent
}

// Calls returns how many requests to route (e.g. "PUT /v1/me/library")
// were answered with status.
func (s *Server) Calls(route string, status int) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls[route+" "+strconv.Itoa(status)]
}

// CallCounts returns the request counts by "METHOD /route status", as in
// State().Calls, without copying every user's library: cheap enough to
// poll while a benchmark runs.
func (s *Server) CallCounts() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return maps.Clone(s.calls)
}

// Revoked returns the grants revoked through Google's revoke endpoint.
func (s *Server) Revoked() []RevokedGrant {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.revoked)
}

// SetLatency delays every request to p by d (0 disables).
func (s *Server) SetLatency(p providers.Name, d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults[p].latency = d
}

// SetRateLimit limits API requests to p to rps per second per app (client
// ID) with the given burst, answering 429 with Retry-After beyond it.
// rps <= 0 disables the limit.
func (s *Server) SetRateLimit(p providers.Name, rps float64, burst int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f := s.faults[p]
	f.rps, f.burst = rps, max(burst, 1)
	clear(f.tat)
}

// SetErrorRate answers the given fraction (0..1) of API requests to p with 503.
func (s *Server) SetErrorRate(p providers.Name, fraction float64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults[p].errorRate = fraction
}

// ExhaustQuota makes p answer quota errors until until: Spotify 429 with
// "reason":"QUOTA_EXCEEDED", YouTube 403 quotaExceeded. A zero until means
// the next midnight Pacific time (YouTube's reset) or one hour (Spotify).
func (s *Server) ExhaustQuota(p providers.Name, until time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if until.IsZero() {
		if p == providers.YouTube {
			until = s.nextPacificMidnight(s.now())
		} else {
			until = s.now().Add(time.Hour)
		}
	}
	s.faults[p].quotaUntil = until
}

// ResetQuota ends a forced quota exhaustion and clears YouTube usage.
func (s *Server) ResetQuota(p providers.Name) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults[p].quotaUntil = time.Time{}
	if p == providers.YouTube {
		clear(s.quota)
	}
}

// SetDailyQuota sets YouTube's per-project daily unit budget.
func (s *Server) SetDailyQuota(units int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.dailyLim = units
}

// QuotaUsed returns the YouTube units a project (client ID) used today.
func (s *Server) QuotaUsed(clientID string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.quotaLocked(clientID, s.now()).used
}

// RevokeUser revokes every grant userID gave at p, as if the fan removed
// the app: access tokens answer 401 and refreshes invalid_grant. It
// returns the number of grants revoked.
func (s *Server) RevokeUser(p providers.Name, userID string) int {
	if p == providers.AppleMusic {
		return s.RevokeAppleUser(userID)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, g := range s.grants {
		if g.p == p && g.user == userID && !g.revoked {
			s.revokeGrantLocked(g)
			n++
		}
	}
	return n
}

// ExpireAccessTokens expires userID's access tokens at p on the server
// side only, so the client still believes them valid and must handle 401.
func (s *Server) ExpireAccessTokens(p providers.Name, userID string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, at := range s.access {
		if at.g.p == p && at.g.user == userID {
			at.expires = time.Time{}
		}
	}
}

// SetNotLiveUntil makes id (a Spotify album/track/artist/playlist ID or a
// YouTube video/playlist ID) answer 404 until until; zero clears it.
func (s *Server) SetNotLiveUntil(id string, until time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if until.IsZero() {
		delete(s.notLive, id)
		return
	}
	s.notLive[id] = until
}

// SetRotation chooses whether refreshes at p rotate the refresh token.
func (s *Server) SetRotation(p providers.Name, rotate bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rotate[p] = rotate
}

// SetAccessTokenTTL sets the lifetime of access tokens issued from now on.
func (s *Server) SetAccessTokenTTL(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ttl = d
}

// SetNoChannel makes a Google user one without a YouTube channel: every
// YouTube Data API call on their behalf answers 401 youtubeSignupRequired.
func (s *Server) SetNoChannel(userID string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.noChannel[userID] = true
}

// SetLegacyForbidden makes Spotify's pre-2026 endpoints (/me/albums,
// /me/tracks, /me/following, /playlists/{id}/tracks) answer 403, as they
// do for development-mode apps since March 2026.
func (s *Server) SetLegacyForbidden(forbidden bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.legacy403 = forbidden
}

// controlRoutes serves the fault-injection and state API under /_fake/.
func (s *Server) controlRoutes(m *http.ServeMux) {
	// Liveness for process supervisors (the demo, the reliability suite).
	m.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	m.HandleFunc("GET /_fake/state", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, s.State())
	})
	m.HandleFunc("POST /_fake/faults", s.ctlFaults)
	m.HandleFunc("POST /_fake/quota", s.ctlQuota)
	m.HandleFunc("POST /_fake/revoke", s.ctlRevoke)
	m.HandleFunc("POST /_fake/expire", s.ctlExpire)
	m.HandleFunc("POST /_fake/notlive", s.ctlNotlive)
	m.HandleFunc("POST /_fake/rotation", s.ctlRotation)
	m.HandleFunc("POST /_fake/legacy", s.ctlLegacy)
	m.HandleFunc("POST /_fake/playlists", s.ctlPlaylists)
	m.HandleFunc("POST /_fake/catalogue", s.ctlCatalogue)
	s.appleControlRoutes(m)
}

// ctlCatalogue handles POST /_fake/catalogue.
func (s *Server) ctlCatalogue(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Kind   string    `json:"kind"` // "upc" or "isrc"
		Code   string    `json:"code"`
		ID     string    `json:"id"`
		LiveAt time.Time `json:"live_at"`
	}
	if !decode(w, r, &req) {
		return
	}
	if (req.Kind != "upc" && req.Kind != "isrc") || req.Code == "" || req.ID == "" {
		http.Error(w, `kind ("upc" or "isrc"), code and id are required`, http.StatusBadRequest)
		return
	}
	s.SetCatalogue(req.Kind, req.Code, req.ID, req.LiveAt)
	w.WriteHeader(http.StatusNoContent)
}

// ctlPlaylists handles POST /_fake/playlists.
func (s *Server) ctlPlaylists(w http.ResponseWriter, r *http.Request) {
	var req struct {
		CreateDelay string `json:"create_delay"` // Go duration; "0s" turns it off
	}
	if !decode(w, r, &req) {
		return
	}
	d, err := time.ParseDuration(req.CreateDelay)
	if err != nil {
		http.Error(w, "create_delay: "+err.Error(), http.StatusBadRequest)
		return
	}
	s.SetCreateDelay(d)
	w.WriteHeader(http.StatusNoContent)
}

// ctlFaults handles POST /_fake/faults.
func (s *Server) ctlFaults(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Provider       providers.Name `json:"provider"`
		Latency        *string        `json:"latency"` // Go duration, e.g. "150ms"
		RateLimitRPS   *float64       `json:"rate_limit_rps"`
		RateLimitBurst int            `json:"rate_limit_burst"`
		ErrorRate      *float64       `json:"error_rate"`
	}
	if !decode(w, r, &req) || !validProvider(w, req.Provider) {
		return
	}
	if req.Latency != nil {
		d, err := time.ParseDuration(*req.Latency)
		if err != nil {
			http.Error(w, "latency: "+err.Error(), http.StatusBadRequest)
			return
		}
		s.SetLatency(req.Provider, d)
	}
	if req.RateLimitRPS != nil {
		s.SetRateLimit(req.Provider, *req.RateLimitRPS, req.RateLimitBurst)
	}
	if req.ErrorRate != nil {
		s.SetErrorRate(req.Provider, *req.ErrorRate)
	}
	w.WriteHeader(http.StatusNoContent)
}

// ctlQuota handles POST /_fake/quota.
func (s *Server) ctlQuota(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Provider   providers.Name `json:"provider"`
		Exhausted  bool           `json:"exhausted"`
		Until      time.Time      `json:"until"`
		Reset      bool           `json:"reset"`
		DailyLimit int            `json:"daily_limit"`
	}
	if !decode(w, r, &req) || !validProvider(w, req.Provider) {
		return
	}
	if req.Reset {
		s.ResetQuota(req.Provider)
	}
	if req.Exhausted {
		s.ExhaustQuota(req.Provider, req.Until)
	}
	if req.DailyLimit > 0 {
		s.SetDailyQuota(req.DailyLimit)
	}
	w.WriteHeader(http.StatusNoContent)
}

// ctlRevoke handles POST /_fake/revoke.
func (s *Server) ctlRevoke(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Provider providers.Name `json:"provider"`
		User     string         `json:"user"`
	}
	if !decode(w, r, &req) || !validProvider(w, req.Provider) {
		return
	}
	writeJSON(w, http.StatusOK, map[string]int{"revoked": s.RevokeUser(req.Provider, req.User)})
}

// ctlExpire handles POST /_fake/expire.
func (s *Server) ctlExpire(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Provider providers.Name `json:"provider"`
		User     string         `json:"user"`
	}
	if !decode(w, r, &req) || !validProvider(w, req.Provider) {
		return
	}
	s.ExpireAccessTokens(req.Provider, req.User)
	w.WriteHeader(http.StatusNoContent)
}

// ctlNotlive handles POST /_fake/notlive.
func (s *Server) ctlNotlive(w http.ResponseWriter, r *http.Request) {
	var req struct {
		ID    string    `json:"id"`
		Until time.Time `json:"until"` // zero clears
	}
	if !decode(w, r, &req) {
		return
	}
	if req.ID == "" {
		http.Error(w, "id required", http.StatusBadRequest)
		return
	}
	s.SetNotLiveUntil(req.ID, req.Until)
	w.WriteHeader(http.StatusNoContent)
}

// ctlRotation handles POST /_fake/rotation.
func (s *Server) ctlRotation(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Provider providers.Name `json:"provider"`
		Rotate   bool           `json:"rotate"`
	}
	if !decode(w, r, &req) || !validProvider(w, req.Provider) {
		return
	}
	s.SetRotation(req.Provider, req.Rotate)
	w.WriteHeader(http.StatusNoContent)
}

// ctlLegacy handles POST /_fake/legacy.
func (s *Server) ctlLegacy(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Forbidden bool `json:"forbidden"`
	}
	if !decode(w, r, &req) {
		return
	}
	s.SetLegacyForbidden(req.Forbidden)
	w.WriteHeader(http.StatusNoContent)
}

func decode(w http.ResponseWriter, r *http.Request, v any) bool {
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<16)).Decode(v); err != nil {
		http.Error(w, "bad JSON: "+err.Error(), http.StatusBadRequest)
		return false
	}
	return true
}

func validProvider(w http.ResponseWriter, p providers.Name) bool {
	if !p.Valid() {
		http.Error(w, `provider must be "spotify", "youtube" or "applemusic"`, http.StatusBadRequest)
		return false
	}
	return true
}
