package fake

import (
	"net/http"
	"strconv"
	"strings"
	"time"
)

// catalogueEntry is a release the catalogue knows by its UPC (an album)
// or ISRC (a track), findable from liveAt on.
type catalogueEntry struct {
	kind   string // "album" or "track"
	id     string
	liveAt time.Time
}

// SetCatalogue makes the Spotify catalogue find the album with ID id by
// its UPC (kind "upc") or the track by its ISRC (kind "isrc") from
// liveAt on; before that a search finds nothing, as for a release not
// yet delivered to Spotify.
func (s *Server) SetCatalogue(kind, code, id string, liveAt time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := "album"
	if kind == "isrc" {
		k = "track"
	}
	s.catalogue[strings.ToLower(kind)+":"+strings.ToUpper(code)] = catalogueEntry{kind: k, id: id, liveAt: liveAt}
}

// spSearch answers GET /v1/search ("Search for Item"): q (required) with
// field filters, of which the fake serves the two a pre-save resolution
// uses, "upc:" (with type=album) and "isrc:" (with type=track); type
// required; limit 1–10, default 5 (the February 2026 change: "limit
// maximum 50 → 10, default 20 → 5"); offset. App tokens (client
// credentials) may call it. Anything else in q finds nothing: the fake has
// no free-text catalogue, and a resolution must not match on names.
func (s *Server) spSearch(w http.ResponseWriter, r *http.Request, _ *grant) {
	q := r.URL.Query()
	query, typ := strings.TrimSpace(q.Get("q")), q.Get("type")
	if query == "" {
		spError(w, http.StatusBadRequest, "No search query", "")
		return
	}
	if typ == "" {
		spError(w, http.StatusBadRequest, "Missing parameter type", "")
		return
	}
	if typ != "album" && typ != "track" && typ != "artist" && typ != "playlist" {
		spError(w, http.StatusBadRequest, "Bad search type field", "")
		return
	}
	limit := 5
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 10 {
			spError(w, http.StatusBadRequest, "Invalid limit", "")
			return
		}
		limit = n
	}
	var items []map[string]any
	field, code, _ := strings.Cut(query, ":")
	field = strings.ToLower(field)
	s.mu.Lock()
	e, ok := s.catalogue[field+":"+strings.ToUpper(strings.TrimSpace(code))]
	live := ok && !s.now().Before(e.liveAt) && e.kind == typ &&
		((field == "upc" && typ == "album") || (field == "isrc" && typ == "track"))
	s.mu.Unlock()
	if live && limit > 0 {
		items = append(items, map[string]any{"id": e.id, "type": e.kind, "uri": "spotify:" + e.kind + ":" + e.id, "name": "Release " + e.id})
	}
	if items == nil {
		items = []map[string]any{}
	}
	writeJSON(w, http.StatusOK, map[string]any{typ + "s": pageJSON(r, items, limit, 0, len(items))})
}
