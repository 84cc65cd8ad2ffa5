package fake

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"

	"github.com/presave/presave/internal/providers"
)

// maxPlaylistItems is YouTube's playlist size limit.
const maxPlaylistItems = 5000

func ytScopeOK(w http.ResponseWriter, g *grant) bool {
	if hasScope(g.scopes, "https://www.googleapis.com/auth/youtube", "https://www.googleapis.com/auth/youtube.force-ssl") {
		return true
	}
	gError(w, http.StatusForbidden, "insufficientPermissions", "global", "Request had insufficient authentication scopes.")
	return false
}

func (s *Server) ytUserinfo(w http.ResponseWriter, _ *http.Request, g *grant) {
	if !hasScope(g.scopes, "openid") {
		gError(w, http.StatusForbidden, "insufficientPermissions", "global", "Request had insufficient authentication scopes.")
		return
	}
	// Only "sub": presave requests no profile or e-mail scope.
	writeJSON(w, http.StatusOK, map[string]string{"sub": g.user})
}

func (s *Server) ytGetRating(w http.ResponseWriter, r *http.Request, g *grant) {
	if !ytScopeOK(w, g) {
		return
	}
	ids := splitList(r.URL.Query().Get("id"))
	if len(ids) == 0 || len(ids) > 50 {
		gError(w, http.StatusBadRequest, "invalidVideoId", "youtube.video", "id: 1 to 50 video IDs required")
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	u := s.userLocked(providers.YouTube, g.user)
	items := make([]map[string]string, 0, len(ids))
	for _, id := range ids {
		if s.notLiveLocked(id) {
			gError(w, http.StatusNotFound, "videoNotFound", "youtube.video", "The video that you are trying to rate cannot be found.")
			return
		}
		rating := "none"
		if u.likes[id] {
			rating = "like"
		}
		items = append(items, map[string]string{"videoId": id, "rating": rating})
	}
	writeJSON(w, http.StatusOK, map[string]any{"kind": "youtube#videoGetRatingResponse", "items": items})
}

func (s *Server) ytRate(w http.ResponseWriter, r *http.Request, g *grant) {
	if !ytScopeOK(w, g) {
		return
	}
	q := r.URL.Query()
	id, rating := q.Get("id"), q.Get("rating")
	if id == "" || (rating != "like" && rating != "dislike" && rating != "none") {
		gError(w, http.StatusBadRequest, "invalidRating", "youtube.video", "id and rating (like|dislike|none) are required")
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.notLiveLocked(id) {
		gError(w, http.StatusNotFound, "videoNotFound", "youtube.video", "The video that you are trying to rate cannot be found.")
		return
	}
	u := s.userLocked(providers.YouTube, g.user)
	if rating == "like" {
		u.likes[id] = true
	} else {
		delete(u.likes, id)
	}
	w.WriteHeader(http.StatusNoContent)
}

type ytPlaylistItem struct {
	Kind    string    `json:"kind"`
	ID      string    `json:"id"`
	Snippet ytSnippet `json:"snippet"`
}

type ytSnippet struct {
	PlaylistID string `json:"playlistId"`
	Position   int    `json:"position"`
	ResourceID struct {
		Kind    string `json:"kind"`
		VideoID string `json:"videoId"`
	} `json:"resourceId"`
}

func mkItem(pid string, pos int, vid string) ytPlaylistItem {
	it := ytPlaylistItem{Kind: "youtube#playlistItem", ID: fmt.Sprintf("pli-%s-%d", pid, pos)}
	it.Snippet.PlaylistID, it.Snippet.Position = pid, pos
	it.Snippet.ResourceID.Kind, it.Snippet.ResourceID.VideoID = "youtube#video", vid
	return it
}

func (s *Server) ytPlaylistList(w http.ResponseWriter, r *http.Request, g *grant) {
	if !ytScopeOK(w, g) {
		return
	}
	q := r.URL.Query()
	pid, vid := q.Get("playlistId"), q.Get("videoId")
	if q.Get("part") == "" || pid == "" {
		gError(w, http.StatusBadRequest, "required", "global", "part and playlistId are required")
		return
	}
	maxRes, err := strconv.Atoi(q.Get("maxResults"))
	if err != nil || maxRes <= 0 {
		maxRes = 5
	}
	maxRes = min(maxRes, 50)
	offset, _ := strconv.Atoi(q.Get("pageToken"))
	s.mu.Lock()
	if s.notLiveLocked(pid) {
		s.mu.Unlock()
		gError(w, http.StatusNotFound, "playlistNotFound", "youtube.playlistItem", "The playlist identified with the request's playlistId parameter cannot be found.")
		return
	}
	var match []ytPlaylistItem
	for i, v := range s.userLocked(providers.YouTube, g.user).playlists[pid] {
		if vid == "" || v == vid {
			match = append(match, mkItem(pid, i, v))
		}
	}
	s.mu.Unlock()
	total := len(match)
	offset = max(0, min(offset, total))
	end := min(offset+maxRes, total)
	resp := map[string]any{
		"kind":     "youtube#playlistItemListResponse",
		"items":    append([]ytPlaylistItem{}, match[offset:end]...),
		"pageInfo": map[string]int{"totalResults": total, "resultsPerPage": maxRes},
	}
	if end < total {
		resp["nextPageToken"] = strconv.Itoa(end)
	}
	writeJSON(w, http.StatusOK, resp)
}

func (s *Server) ytPlaylistInsert(w http.ResponseWriter, r *http.Request, g *grant) {
	if !ytScopeOK(w, g) {
		return
	}
	var body struct {
		Snippet *ytSnippet `json:"snippet"`
	}
	err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20)).Decode(&body)
	if err != nil || r.URL.Query().Get("part") == "" || body.Snippet == nil ||
		body.Snippet.PlaylistID == "" || body.Snippet.ResourceID.VideoID == "" {
		gError(w, http.StatusBadRequest, "required", "global", "snippet.playlistId and snippet.resourceId.videoId are required")
		return
	}
	pid, vid := body.Snippet.PlaylistID, body.Snippet.ResourceID.VideoID
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.notLiveLocked(pid) {
		gError(w, http.StatusNotFound, "playlistNotFound", "youtube.playlistItem", "Playlist not found.")
		return
	}
	if s.notLiveLocked(vid) {
		gError(w, http.StatusNotFound, "videoNotFound", "youtube.playlistItem", "Video not found.")
		return
	}
	u := s.userLocked(providers.YouTube, g.user)
	if len(u.playlists[pid]) >= maxPlaylistItems {
		gError(w, http.StatusForbidden, "playlistContainsMaximumNumberOfVideos", "youtube.playlistItem", "The playlist already contains the maximum allowed number of items.")
		return
	}
	// Appends even a duplicate, as YouTube does: tests can see a double insert.
	u.playlists[pid] = append(u.playlists[pid], vid)
	writeJSON(w, http.StatusOK, mkItem(pid, len(u.playlists[pid])-1, vid))
}
