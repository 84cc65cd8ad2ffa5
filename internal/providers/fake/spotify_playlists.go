package fake

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/presave/presave/internal/providers"
)

// Spotify's playlist endpoints, from the Web API reference: "Get
// Playlist Items", "Add Items to Playlist", "Get Current User's
// Playlists", "Create Playlist" (POST /me/playlists; legacy POST
// /users/{user_id}/playlists), "Follow Playlist" and "Check if Current
// User Follows Playlist". Ownership is the rule the old fake lacked:
// only the owner adds to a playlist ("You cannot add tracks to a
// playlist you don't own."), private playlists are invisible to others,
// and in development mode reading another user's playlist items is
// refused.

// modifyScope is the scope changing a public or a private playlist
// needs (adding to it, creating it, following it): "playlist-modify-public"
// or "playlist-modify-private", as each endpoint's reference words it.
func modifyScope(public bool) string {
	if public {
		return scopePlPublic
	}
	return scopePlPrivate
}

// spPlaylistJSON is a playlist object as Spotify answers it.
func spPlaylistJSON(r *http.Request, pl *playlist, legacy bool) map[string]any {
	href := fmt.Sprintf("http://%s/v1/playlists/%s", r.Host, pl.id)
	items := map[string]any{"href": href + "/items", "total": len(pl.items)}
	out := map[string]any{
		"id": pl.id, "name": pl.name, "description": pl.description, "public": pl.public, "collaborative": false,
		"owner": map[string]any{"id": pl.owner, "type": "user", "uri": "spotify:user:" + pl.owner},
		"uri":   "spotify:playlist:" + pl.id, "href": href, "type": "playlist",
		"snapshot_id": fmt.Sprintf("snap-%d", len(pl.items)),
	}
	if legacy {
		out["tracks"] = map[string]any{"href": href + "/tracks", "total": len(pl.items)}
	} else {
		out["items"] = items // the 2026 name; "tracks" is null there
		out["tracks"] = nil
	}
	return out
}

// visibleLocked answers 404 for another user's private playlist (or one
// not out yet) and, when reading its items, 403 in development mode for
// another user's playlist and 403 without playlist-read-private for a
// private one. s.mu must be held.
func (s *Server) visibleLocked(w http.ResponseWriter, g *grant, pl *playlist, read bool) bool {
	switch {
	case s.notLiveLocked(pl.id) || !pl.visibleTo(g.user):
		spError(w, http.StatusNotFound, "Resource not found", "")
		return false
	case read && s.legacy403 && pl.owner != g.user:
		spError(w, http.StatusForbidden, "Forbidden", "")
		return false
	case read && !pl.public && !hasScope(g.scopes, scopePlReadPriv):
		spError(w, http.StatusForbidden, insufficientText, "")
		return false
	}
	return true
}

// pageParams reads limit and offset: "limit: Default: 20. Minimum: 1.
// Maximum: 50." for playlist items and the current user's playlists.
func pageParams(w http.ResponseWriter, r *http.Request) (limit, offset int, ok bool) {
	q := r.URL.Query()
	limit, offset = 20, 0
	var err error
	if v := q.Get("limit"); v != "" {
		if limit, err = strconv.Atoi(v); err != nil || limit < 1 || limit > 50 {
			spError(w, http.StatusBadRequest, "Invalid limit", "")
			return 0, 0, false
		}
	}
	if v := q.Get("offset"); v != "" {
		if offset, err = strconv.Atoi(v); err != nil || offset < 0 {
			spError(w, http.StatusBadRequest, "Invalid offset", "")
			return 0, 0, false
		}
	}
	return limit, offset, true
}

func pageJSON(r *http.Request, items []map[string]any, limit, offset, total int) map[string]any {
	base := fmt.Sprintf("http://%s%s", r.Host, r.URL.Path)
	var next any
	if offset+len(items) < total {
		next = fmt.Sprintf("%s?offset=%d&limit=%d", base, offset+len(items), limit)
	}
	return map[string]any{"href": base, "items": items, "limit": limit, "offset": offset,
		"total": total, "next": next, "previous": nil}
}

func (s *Server) spPlaylistGet(legacy bool) apiHandler {
	return func(w http.ResponseWriter, r *http.Request, g *grant) {
		if legacy && s.legacyForbidden(w) {
			return
		}
		limit, offset, ok := pageParams(w, r)
		if !ok {
			return
		}
		s.mu.Lock()
		pl := s.playlistLocked(providers.Spotify, r.PathValue("id"))
		if !s.visibleLocked(w, g, pl, true) {
			s.mu.Unlock()
			return
		}
		total := len(pl.items)
		var page []string
		if offset < total {
			page = append(page, pl.items[offset:min(offset+limit, total)]...)
		}
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
		writeJSON(w, http.StatusOK, pageJSON(r, items, limit, offset, total))
	}
}

func (s *Server) spPlaylistAdd(legacy bool) apiHandler {
	return func(w http.ResponseWriter, r *http.Request, g *grant) {
		if legacy && s.legacyForbidden(w) {
			return
		}
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
		pl := s.playlistLocked(providers.Spotify, r.PathValue("id"))
		if !s.visibleLocked(w, g, pl, false) {
			return
		}
		// "Adding items to the current user's public playlists requires
		// authorization of the playlist-modify-public scope; adding items
		// to the current user's private playlist (including
		// collaborative playlists) requires the playlist-modify-private
		// scope."
		if !hasScope(g.scopes, modifyScope(pl.public)) {
			spError(w, http.StatusForbidden, insufficientText, "")
			return
		}
		if pl.owner != g.user {
			spError(w, http.StatusForbidden, "You cannot add tracks to a playlist you don't own.", "")
			return
		}
		for _, u := range body.URIs {
			_, id, _ := parseURI(u)
			if s.notLiveLocked(id) {
				nonExisting(w)
				return
			}
		}
		// Appends as Spotify does: duplicates are kept, so tests can see them.
		pl.items = append(pl.items, body.URIs...)
		writeJSON(w, http.StatusCreated, map[string]string{"snapshot_id": fmt.Sprintf("snap-%d", len(pl.items))})
	}
}

// spMyPlaylists answers GET /v1/me/playlists: the playlists the user
// owns or follows, private ones only with playlist-read-private ("Private
// playlists are only retrievable for the current user and requires the
// playlist-read-private scope").
func (s *Server) spMyPlaylists(w http.ResponseWriter, r *http.Request, g *grant) {
	limit, offset, ok := pageParams(w, r)
	if !ok {
		return
	}
	s.mu.Lock()
	var all []*playlist
	for _, pl := range s.ownedLocked(providers.Spotify, g.user) {
		if pl.public || hasScope(g.scopes, scopePlReadPriv) {
			all = append(all, pl)
		}
	}
	for id := range s.userLocked(providers.Spotify, g.user).followed {
		all = append(all, s.playlistLocked(providers.Spotify, id))
	}
	total := len(all)
	items := []map[string]any{}
	for _, pl := range all[min(offset, total):min(offset+limit, total)] {
		items = append(items, spPlaylistJSON(r, pl, false))
	}
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, pageJSON(r, items, limit, offset, total))
}

// spCreatePlaylist answers POST /v1/me/playlists and, legacy, POST
// /v1/users/{user_id}/playlists ("Create a playlist for a Spotify user.
// (The playlist will be empty until you add tracks.)"): name required,
// public defaulting to true; a public playlist needs
// playlist-modify-public, a private one playlist-modify-private.
func (s *Server) spCreatePlaylist(legacy bool) apiHandler {
	return func(w http.ResponseWriter, r *http.Request, g *grant) {
		if legacy && s.legacyForbidden(w) {
			return
		}
		if legacy && r.PathValue("user_id") != g.user {
			spError(w, http.StatusForbidden, "You cannot create a playlist for another user", "")
			return
		}
		var body struct {
			Name          *string `json:"name"`
			Public        *bool   `json:"public"`
			Collaborative bool    `json:"collaborative"`
			Description   string  `json:"description"`
		}
		if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<16)).Decode(&body); err != nil {
			spError(w, http.StatusBadRequest, "Error parsing JSON.", "")
			return
		}
		if body.Name == nil || *body.Name == "" {
			spError(w, http.StatusBadRequest, "Missing required field: name", "")
			return
		}
		public := body.Public == nil || *body.Public
		if !hasScope(g.scopes, modifyScope(public)) {
			spError(w, http.StatusForbidden, insufficientText, "")
			return
		}
		s.mu.Lock()
		pl := s.createPlaylistLocked(providers.Spotify, g.user, *body.Name, body.Description, public)
		out := spPlaylistJSON(r, pl, legacy)
		delay := s.createDelay
		s.mu.Unlock()
		s.answerAfter(r, delay)
		writeJSON(w, http.StatusCreated, out)
	}
}

// spFollowPlaylist answers PUT /v1/playlists/{id}/followers (legacy):
// an optional JSON body {"public": bool}, public by default; a public
// follow needs playlist-modify-public, a private one
// playlist-modify-private.
func (s *Server) spFollowPlaylist(w http.ResponseWriter, r *http.Request, g *grant) {
	if s.legacyForbidden(w) {
		return
	}
	raw, _ := io.ReadAll(http.MaxBytesReader(w, r.Body, 1<<16))
	public := true
	if len(bytes.TrimSpace(raw)) > 0 {
		var body struct {
			Public *bool `json:"public"`
		}
		// An object, as the reference shows: a bare "false" is not one.
		if err := json.Unmarshal(raw, &body); err != nil {
			spError(w, http.StatusBadRequest, "Error parsing JSON.", "")
			return
		}
		if body.Public != nil {
			public = *body.Public
		}
	}
	if !hasScope(g.scopes, modifyScope(public)) {
		spError(w, http.StatusForbidden, insufficientText, "")
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	pl := s.playlistLocked(providers.Spotify, r.PathValue("id"))
	if !s.visibleLocked(w, g, pl, false) {
		return
	}
	s.userLocked(providers.Spotify, g.user).followed[pl.id] = true
	w.WriteHeader(http.StatusOK)
}

// spFollowsPlaylist answers GET /v1/playlists/{id}/followers/contains:
// "ids" is deprecated and optional, a single user ID (the current
// user's) when given; the answer is an array of one boolean.
func (s *Server) spFollowsPlaylist(w http.ResponseWriter, r *http.Request, g *grant) {
	if s.legacyForbidden(w) {
		return
	}
	ids := splitList(r.URL.Query().Get("ids"))
	if len(ids) > 1 || (len(ids) == 1 && ids[0] != g.user) {
		spError(w, http.StatusBadRequest, "ids: only the current user's ID", "")
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	pl := s.playlistLocked(providers.Spotify, r.PathValue("id"))
	if s.notLiveLocked(pl.id) {
		spError(w, http.StatusNotFound, "Resource not found", "")
		return
	}
	writeJSON(w, http.StatusOK, []bool{s.userLocked(providers.Spotify, g.user).followed[pl.id]})
}

// answerAfter holds a write's answer for d after the write took effect:
// a worker killed meanwhile has made the write without seeing it, the
// case a retry must not repeat.
func (s *Server) answerAfter(r *http.Request, d time.Duration) {
	if d <= 0 {
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-r.Context().Done():
	}
}
