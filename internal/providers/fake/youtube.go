package fake

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

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

// ytPlaylistLocked finds the playlist a playlistItems call names,
// answering 404 playlistNotFound for one not out yet and for another
// user's private playlist. s.mu must be held.
func (s *Server) ytPlaylistLocked(w http.ResponseWriter, g *grant, id string) (*playlist, bool) {
	pl := s.playlistLocked(providers.YouTube, id)
	if s.notLiveLocked(id) || (!pl.public && pl.owner != g.user) {
		gError(w, http.StatusNotFound, "playlistNotFound", "youtube.playlistItem", "The playlist identified with the request's playlistId parameter cannot be found.")
		return nil, false
	}
	return pl, true
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
	maxRes, offset, ok := ytPage(w, q)
	if !ok {
		return
	}
	s.mu.Lock()
	pl, ok := s.ytPlaylistLocked(w, g, pid)
	if !ok {
		s.mu.Unlock()
		return
	}
	var match []ytPlaylistItem
	for i, v := range pl.items {
		if vid == "" || v == vid {
			match = append(match, mkItem(pid, i, v))
		}
	}
	s.mu.Unlock()
	total := len(match)
	offset = min(offset, total)
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

// ytPage reads maxResults ("Acceptable values are 0 to 50, inclusive.
// The default value is 5.") and the page token.
func ytPage(w http.ResponseWriter, q url.Values) (maxRes, offset int, ok bool) {
	maxRes = 5
	if v := q.Get("maxResults"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 || n > 50 {
			gError(w, http.StatusBadRequest, "invalidParameter", "global", "maxResults must be 0 to 50")
			return 0, 0, false
		}
		maxRes = n
	}
	if v := q.Get("pageToken"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			gError(w, http.StatusBadRequest, "invalidPageToken", "global", "The request specifies an invalid page token.")
			return 0, 0, false
		}
		offset = n
	}
	return maxRes, offset, true
}

// ytPlaylistInsert answers playlistItems.insert. The errors are the
// reference's: 403 playlistItemsNotAccessible ("The request is not
// properly authorized to insert the specified playlist item.") for a
// playlist of another channel, 400 playlistOperationUnsupported for an
// uploads (UU…) playlist, 404 playlistNotFound and videoNotFound, 403
// playlistContainsMaximumNumberOfVideos.
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
	if strings.HasPrefix(pid, "UU") {
		gError(w, http.StatusBadRequest, "playlistOperationUnsupported", "youtube.playlistItem", "The API does not support the ability to insert videos into the specified playlist.")
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	pl, ok := s.ytPlaylistLocked(w, g, pid)
	if !ok {
		return
	}
	if pl.owner != g.user {
		gError(w, http.StatusForbidden, "playlistItemsNotAccessible", "youtube.playlistItem", "The request is not properly authorized to insert the specified playlist item.")
		return
	}
	if s.notLiveLocked(vid) {
		gError(w, http.StatusNotFound, "videoNotFound", "youtube.playlistItem", "Video not found.")
		return
	}
	if len(pl.items) >= maxPlaylistItems {
		gError(w, http.StatusForbidden, "playlistContainsMaximumNumberOfVideos", "youtube.playlistItem", "The playlist already contains the maximum allowed number of items.")
		return
	}
	// Appends even a duplicate, as YouTube does: tests can see a double insert.
	pl.items = append(pl.items, vid)
	writeJSON(w, http.StatusOK, mkItem(pid, len(pl.items)-1, vid))
}

// ytMine checks a list request for part and mine=true (the one filter
// presave uses, so the only one the fake serves; the API needs exactly
// one filter) and reads its page.
func ytMine(w http.ResponseWriter, q url.Values) (maxRes, offset int, ok bool) {
	if q.Get("part") == "" || q.Get("mine") != "true" {
		gError(w, http.StatusBadRequest, "missingRequiredParameter", "youtube.parameter", "part and a filter (mine=true) are required")
		return 0, 0, false
	}
	return ytPage(w, q)
}

// ytPlaylistJSON is a playlist resource.
func ytPlaylistJSON(pl *playlist) map[string]any {
	privacy := "private"
	if pl.public {
		privacy = "public"
	}
	return map[string]any{
		"kind": "youtube#playlist", "id": pl.id,
		"snippet": map[string]any{"title": pl.name, "description": pl.description, "channelId": channelOf(pl.owner)},
		"status":  map[string]any{"privacyStatus": privacy},
	}
}

// channelOf is the YouTube channel ID of a fake Google user.
func channelOf(user string) string {
	id := "UC" + user
	for len(id) < 24 {
		id += "0"
	}
	return id[:24]
}

// ytPlaylists answers playlists.list with mine=true: the user's own
// playlists, maxResults a page (1 unit).
func (s *Server) ytPlaylists(w http.ResponseWriter, r *http.Request, g *grant) {
	if !ytScopeOK(w, g) {
		return
	}
	maxRes, offset, ok := ytMine(w, r.URL.Query())
	if !ok {
		return
	}
	s.mu.Lock()
	own := s.ownedLocked(providers.YouTube, g.user)
	total := len(own)
	items := []map[string]any{}
	end := min(offset+maxRes, total)
	for _, pl := range own[min(offset, total):end] {
		items = append(items, ytPlaylistJSON(pl))
	}
	s.mu.Unlock()
	resp := map[string]any{"kind": "youtube#playlistListResponse", "items": items,
		"pageInfo": map[string]int{"totalResults": total, "resultsPerPage": maxRes}}
	if end < total {
		resp["nextPageToken"] = strconv.Itoa(end)
	}
	writeJSON(w, http.StatusOK, resp)
}

// ytPlaylistCreate answers playlists.insert (50 units): snippet.title
// required (400 playlistTitleRequired), at most 150 characters and
// without < or > (400 invalidPlaylistSnippet); status.privacyStatus
// private, public or unlisted.
func (s *Server) ytPlaylistCreate(w http.ResponseWriter, r *http.Request, g *grant) {
	if !ytScopeOK(w, g) {
		return
	}
	var body struct {
		Snippet *struct {
			Title       string `json:"title"`
			Description string `json:"description"`
		} `json:"snippet"`
		Status *struct {
			PrivacyStatus string `json:"privacyStatus"`
		} `json:"status"`
	}
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<16)).Decode(&body); err != nil || r.URL.Query().Get("part") == "" {
		gError(w, http.StatusBadRequest, "parseError", "global", "Parse Error")
		return
	}
	if body.Snippet == nil || body.Snippet.Title == "" {
		gError(w, http.StatusBadRequest, "playlistTitleRequired", "youtube.playlist", "The request must specify a playlist title.")
		return
	}
	if utf8.RuneCountInString(body.Snippet.Title) > 150 || strings.ContainsAny(body.Snippet.Title+body.Snippet.Description, "<>") ||
		len(body.Snippet.Description) > 5000 {
		gError(w, http.StatusBadRequest, "invalidPlaylistSnippet", "youtube.playlist", "The request provides an invalid playlist snippet.")
		return
	}
	public := false // the API's default privacy is private
	if body.Status != nil {
		switch body.Status.PrivacyStatus {
		case "", "private", "unlisted":
		case "public":
			public = true
		default:
			gError(w, http.StatusBadRequest, "invalidValue", "youtube.playlist", "Invalid privacyStatus.")
			return
		}
	}
	s.mu.Lock()
	pl := s.createPlaylistLocked(providers.YouTube, g.user, body.Snippet.Title, body.Snippet.Description, public)
	out := ytPlaylistJSON(pl)
	delay := s.createDelay
	s.mu.Unlock()
	s.answerAfter(r, delay)
	writeJSON(w, http.StatusOK, out)
}

// ytSubscriptions answers subscriptions.list with mine=true and
// forChannelId (1 unit): the user's subscriptions to those channels.
func (s *Server) ytSubscriptions(w http.ResponseWriter, r *http.Request, g *grant) {
	if !ytScopeOK(w, g) {
		return
	}
	q := r.URL.Query()
	maxRes, _, ok := ytMine(w, q)
	if !ok {
		return
	}
	want := splitList(q.Get("forChannelId"))
	s.mu.Lock()
	u := s.userLocked(providers.YouTube, g.user)
	items := []map[string]any{}
	for _, ch := range keys(u.subscriptions) {
		if (len(want) == 0 || slices.Contains(want, ch)) && len(items) < maxRes {
			items = append(items, ytSubscriptionJSON(g.user, ch))
		}
	}
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{"kind": "youtube#subscriptionListResponse", "items": items,
		"pageInfo": map[string]int{"totalResults": len(items), "resultsPerPage": maxRes}})
}

func ytSubscriptionJSON(user, channel string) map[string]any {
	return map[string]any{"kind": "youtube#subscription", "id": "sub-" + user + "-" + channel,
		"snippet": map[string]any{"resourceId": map[string]string{"kind": "youtube#channel", "channelId": channel}}}
}

// ytSubscribe answers subscriptions.insert (50 units). Errors, from the
// reference: 400 subscriptionDuplicate ("The subscription that you are
// trying to create already exists."), 400 subscriptionForbidden for
// one's own channel ("You cannot subscribe to your own channel." is how
// the API words it), 404 publisherNotFound ("The resource specified by
// the request's snippet.resourceId property cannot be found.").
func (s *Server) ytSubscribe(w http.ResponseWriter, r *http.Request, g *grant) {
	if !ytScopeOK(w, g) {
		return
	}
	var body struct {
		Snippet *struct {
			ResourceID struct {
				Kind      string `json:"kind"`
				ChannelID string `json:"channelId"`
			} `json:"resourceId"`
		} `json:"snippet"`
	}
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<16)).Decode(&body); err != nil || r.URL.Query().Get("part") == "" ||
		body.Snippet == nil || body.Snippet.ResourceID.ChannelID == "" || body.Snippet.ResourceID.Kind != "youtube#channel" {
		gError(w, http.StatusBadRequest, "required", "global", "snippet.resourceId (kind youtube#channel, channelId) is required")
		return
	}
	ch := body.Snippet.ResourceID.ChannelID
	s.mu.Lock()
	defer s.mu.Unlock()
	u := s.userLocked(providers.YouTube, g.user)
	switch {
	case s.notLiveLocked(ch):
		gError(w, http.StatusNotFound, "publisherNotFound", "youtube.subscription", "The resource specified by the request's snippet.resourceId property cannot be found.")
	case ch == channelOf(g.user):
		gError(w, http.StatusBadRequest, "subscriptionForbidden", "youtube.subscription", "You cannot subscribe to your own channel.")
	case u.subscriptions[ch]:
		gError(w, http.StatusBadRequest, "subscriptionDuplicate", "youtube.subscription", "The subscription that you are trying to create already exists.")
	default:
		u.subscriptions[ch] = true
		writeJSON(w, http.StatusOK, ytSubscriptionJSON(g.user, ch))
	}
}
