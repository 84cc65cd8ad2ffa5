package fake

import (
	"net/http"

	"github.com/presave/presave/internal/providers"
)

// Spotify scopes, and which a library URI of each kind needs: the
// endpoint reference of "Save Items to Library" and "Check User's Saved
// Items" lists the scopes of the entity endpoints it replaced, per kind
// (albums and tracks: the library scopes; artists: the follow scopes;
// playlists: the playlist scopes). A call whose token lacks the scope
// gets 403 "Insufficient client scope", as every endpoint answers.
const (
	scopeLibModify   = "user-library-modify"
	scopeLibRead     = "user-library-read"
	scopeFollowMod   = "user-follow-modify"
	scopeFollowRead  = "user-follow-read"
	scopePlPublic    = "playlist-modify-public"
	scopePlPrivate   = "playlist-modify-private"
	scopePlReadPriv  = "playlist-read-private"
	insufficientText = "Insufficient client scope"
)

// writeScopes and readScopes are the scopes (any one of) that saving or
// checking a URI of each kind needs.
var (
	writeScopes = map[string][]string{
		"album": {scopeLibModify}, "track": {scopeLibModify},
		"artist": {scopeFollowMod}, "playlist": {scopePlPublic, scopePlPrivate},
	}
	readScopes = map[string][]string{
		"album": {scopeLibRead}, "track": {scopeLibRead},
		"artist": {scopeFollowRead}, "playlist": {scopePlReadPriv},
	}
)

// set returns the user's collection of a kind.
func (u *user) set(kind string) map[string]bool {
	switch kind {
	case "album":
		return u.albums
	case "track":
		return u.tracks
	case "playlist":
		return u.followed
	}
	return u.artists
}

func (s *Server) spMe(w http.ResponseWriter, _ *http.Request, g *grant) {
	// Only the ID: presave never needs (or stores) profile data.
	writeJSON(w, http.StatusOK, map[string]any{
		"id": g.user, "type": "user", "uri": "spotify:user:" + g.user,
	})
}

type item struct{ kind, id string }

// parseURIs validates a library "uris" parameter.
func parseURIs(w http.ResponseWriter, r *http.Request) ([]item, bool) {
	uris := splitList(r.URL.Query().Get("uris"))
	if len(uris) == 0 || len(uris) > 40 {
		spError(w, http.StatusBadRequest, "uris: 1 to 40 URIs required", "")
		return nil, false
	}
	out := make([]item, 0, len(uris))
	for _, u := range uris {
		k, id, err := parseURI(u)
		if err != nil {
			spError(w, http.StatusBadRequest, err.Error(), "")
			return nil, false
		}
		out = append(out, item{k, id})
	}
	return out, true
}

// legacyMaxIDs is how many IDs one legacy call takes: 20 for
// /me/albums (and its contains), 50 for /me/tracks and /me/following
// (Web API reference, "Save Albums for Current User": "Maximum: 20 IDs";
// "Save Tracks for Current User" and "Follow Artists or Users":
// "Maximum: 50 IDs").
var legacyMaxIDs = map[string]int{"album": 20, "track": 50, "artist": 50}

// parseIDs validates a legacy "ids" parameter.
func parseIDs(w http.ResponseWriter, r *http.Request, kind string) ([]item, bool) {
	ids := splitList(r.URL.Query().Get("ids"))
	if len(ids) == 0 {
		spError(w, http.StatusBadRequest, "Missing required field: ids", "")
		return nil, false
	}
	if len(ids) > legacyMaxIDs[kind] {
		spError(w, http.StatusBadRequest, "Too many ids requested", "")
		return nil, false
	}
	out := make([]item, 0, len(ids))
	for _, id := range ids {
		out = append(out, item{kind, id})
	}
	return out, true
}

// writableLocked checks scopes and liveness. s.mu must be held.
func (s *Server) writableLocked(w http.ResponseWriter, g *grant, items []item) bool {
	for _, it := range items {
		if !hasScope(g.scopes, writeScopes[it.kind]...) {
			spError(w, http.StatusForbidden, insufficientText, "")
			return false
		}
	}
	for _, it := range items {
		// Another user's private playlist is, to this user, an ID that
		// does not exist.
		if s.notLiveLocked(it.id) || (it.kind == "playlist" && !s.playlistLocked(providers.Spotify, it.id).visibleTo(g.user)) {
			nonExisting(w)
			return false
		}
	}
	return true
}

// nonExisting is Spotify's answer to a library or playlist write naming
// an ID it does not know (yet): 400, not 404 (Web API reference, "Save
// Items to User's Library" and "Add Items to Playlist"; observed the same
// for the legacy /me/albums, /me/tracks and /me/following).
func nonExisting(w http.ResponseWriter) {
	spError(w, http.StatusBadRequest, "Payload contains a non-existing ID", "")
}

func (s *Server) spLibraryPut(w http.ResponseWriter, r *http.Request, g *grant) {
	items, ok := parseURIs(w, r)
	if !ok {
		return
	}
	s.spPut(w, g, items, http.StatusOK)
}

func (s *Server) spPut(w http.ResponseWriter, g *grant, items []item, status int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.writableLocked(w, g, items) {
		return
	}
	u := s.userLocked(providers.Spotify, g.user)
	for _, it := range items {
		u.set(it.kind)[it.id] = true
	}
	w.WriteHeader(status)
}

func (s *Server) spContains(w http.ResponseWriter, g *grant, items []item) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, it := range items {
		if !hasScope(g.scopes, readScopes[it.kind]...) {
			spError(w, http.StatusForbidden, insufficientText, "")
			return
		}
	}
	u := s.userLocked(providers.Spotify, g.user)
	out := make([]bool, len(items))
	for i, it := range items {
		out[i] = u.set(it.kind)[it.id]
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) spLibraryContains(w http.ResponseWriter, r *http.Request, g *grant) {
	items, ok := parseURIs(w, r)
	if !ok {
		return
	}
	s.spContains(w, g, items)
}

// legacyForbiddenLocked answers 403 when legacy endpoints are disabled,
// as Spotify does for development-mode apps since March 2026.
func (s *Server) legacyForbidden(w http.ResponseWriter) bool {
	s.mu.Lock()
	f := s.legacy403
	s.mu.Unlock()
	if f {
		spError(w, http.StatusForbidden, "Forbidden", "")
	}
	return f
}

func (s *Server) spLegacyPut(kind string) apiHandler {
	return func(w http.ResponseWriter, r *http.Request, g *grant) {
		if s.legacyForbidden(w) {
			return
		}
		if kind == "artist" && r.URL.Query().Get("type") != "artist" {
			spError(w, http.StatusBadRequest, "type must be artist", "")
			return
		}
		items, ok := parseIDs(w, r, kind)
		if !ok {
			return
		}
		status := http.StatusOK
		if kind == "artist" {
			status = http.StatusNoContent
		}
		s.spPut(w, g, items, status)
	}
}

func (s *Server) spLegacyContains(kind string) apiHandler {
	return func(w http.ResponseWriter, r *http.Request, g *grant) {
		if s.legacyForbidden(w) {
			return
		}
		if kind == "artist" && r.URL.Query().Get("type") != "artist" {
			spError(w, http.StatusBadRequest, "type must be artist", "")
			return
		}
		items, ok := parseIDs(w, r, kind)
		if !ok {
			return
		}
		s.spContains(w, g, items)
	}
}
