package fake

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"

	"github.com/presave/presave/internal/providers"
)

const (
	scopeLibModify  = "user-library-modify"
	scopeLibRead    = "user-library-read"
	scopeFollowMod  = "user-follow-modify"
	scopeFollowRead = "user-follow-read"
)

// set returns the user's collection of a kind.
func (u *user) set(kind string) map[string]bool {
	switch kind {
	case "album":
		return u.albums
	case "track":
		return u.tracks
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

// writable checks scopes and liveness. s.mu must be held.
func (s *Server) writableLocked(w http.ResponseWriter, g *grant, items []item, library bool) bool {
	for _, it := range items {
		var ok bool
		switch {
		case it.kind == "artist" && library:
			ok = hasScope(g.scopes, scopeLibModify, scopeFollowMod)
		case it.kind == "artist":
			ok = hasScope(g.scopes, scopeFollowMod)
		default:
			ok = hasScope(g.scopes, scopeLibModify)
		}
		if !ok {
			spError(w, http.StatusForbidden, "Insufficient client scope", "")
			return false
		}
	}
	for _, it := range items {
		if s.notLiveLocked(it.id) {
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
	s.spPut(w, g, items, true, http.StatusOK)
}

func (s *Server) spPut(w http.ResponseWriter, g *grant, items []item, library bool, status int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.writableLocked(w, g, items, library) {
		return
	}
	u := s.userLocked(providers.Spotify, g.user)
	for _, it := range items {
		u.set(it.kind)[it.id] = true
	}
	w.WriteHeader(status)
}

func (s *Server) spContains(w http.ResponseWriter, g *grant, items []item, library bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, it := range items {
		var ok bool
		switch {
		case it.kind == "artist" && library:
			ok = hasScope(g.scopes, scopeLibRead, scopeLibModify, scopeFollowRead)
		case it.kind == "artist":
			ok = hasScope(g.scopes, scopeFollowRead)
		default:
			ok = hasScope(g.scopes, scopeLibRead)
		}
		if !ok {
			spError(w, http.StatusForbidden, "Insufficient client scope", "")
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
	s.spContains(w, g, items, true)
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
		s.spPut(w, g, items, false, status)
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
		s.spContains(w, g, items, false)
	}
}

func (s *Server) spPlaylistGet(legacy bool) apiHandler {
	return func(w http.ResponseWriter, r *http.Request, g *grant) {
		if legacy && s.legacyForbidden(w) {
			return
		}
		pid := r.PathValue("id")
		q := r.URL.Query()
		offset, _ := strconv.Atoi(q.Get("offset"))
		// "limit: The maximum number of items to return. Default: 20.
		// Minimum: 1. Maximum: 50." (Get Playlist Items).
		limit, err := strconv.Atoi(q.Get("limit"))
		if err != nil || limit <= 0 {
			limit = 20
		}
		if offset < 0 || limit > 50 {
			spError(w, http.StatusBadRequest, "Invalid limit or offset", "")
			return
		}
		s.mu.Lock()
		if !hasScope(g.scopes, "playlist-read-private", "playlist-modify-public", "playlist-modify-private") {
			s.mu.Unlock()
			spError(w, http.StatusForbidden, "Insufficient client scope", "")
			return
		}
		if s.notLiveLocked(pid) {
			s.mu.Unlock()
			spError(w, http.StatusNotFound, "Resource not found", "")
			return
		}
		all := s.userLocked(providers.Spotify, g.user).playlists[pid]
		end := min(offset+limit, len(all))
		page := []string{}
		if offset < len(all) {
			page = append(page, all[offset:end]...)
		}
		total := len(all)
		s.mu.Unlock()

		items := make([]map[string]any, len(page))
		for i, uri := range page {
			_, id, _ := parseURI(uri)
			obj := map[string]any{"type": "track", "id": id, "uri": uri}
			it := map[string]any{"added_at": "2026-01-01T00:00:00Z", "is_local": false, "track": obj}
			if !legacy {
				it["item"] = obj // the 2026 shape; "track" kept for older readers
			}
			items[i] = it
		}
		base := fmt.Sprintf("http://%s%s", r.Host, r.URL.Path)
		var next any
		if end < total {
			next = fmt.Sprintf("%s?offset=%d&limit=%d", base, end, limit)
		}
		writeJSON(w, http.StatusOK, map[string]any{
			"href": base, "items": items, "limit": limit, "offset": offset,
			"total": total, "next": next, "previous": nil,
		})
	}
}

func (s *Server) spPlaylistAdd(legacy bool) apiHandler {
	return func(w http.ResponseWriter, r *http.Request, g *grant) {
		if legacy && s.legacyForbidden(w) {
			return
		}
		pid := r.PathValue("id")
		var body struct {
			URIs []string `json:"uris"`
		}
		if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20)).Decode(&body); err != nil ||
			len(body.URIs) == 0 || len(body.URIs) > 100 {
			spError(w, http.StatusBadRequest, "uris: 1 to 100 URIs required", "")
			return
		}
		for _, u := range body.URIs {
			if k, _, err := parseURI(u); err != nil || k != "track" {
				spError(w, http.StatusBadRequest, "Invalid track uri", "")
				return
			}
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		if !hasScope(g.scopes, "playlist-modify-public", "playlist-modify-private") {
			spError(w, http.StatusForbidden, "Insufficient client scope", "")
			return
		}
		if s.notLiveLocked(pid) {
			spError(w, http.StatusNotFound, "Resource not found", "")
			return
		}
		for _, u := range body.URIs {
			_, id, _ := parseURI(u)
			if s.notLiveLocked(id) {
				nonExisting(w)
				return
			}
		}
		u := s.userLocked(providers.Spotify, g.user)
		// Appends as Spotify does: duplicates are kept, so tests can see them.
		u.playlists[pid] = append(u.playlists[pid], body.URIs...)
		writeJSON(w, http.StatusCreated, map[string]string{
			"snapshot_id": fmt.Sprintf("snap-%d", len(u.playlists[pid])),
		})
	}
}
