package applemusic

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/presave/presave/internal/providers"
)

// OwnPlaylist finds the fan's playlist for t.MyPlaylist among the library
// playlists the fan can edit, by the marker ending its description, or
// creates it (POST /v1/me/library/playlists).
func (c *client) OwnPlaylist(ctx context.Context, t providers.Target) (string, error) {
	op := "own_playlist"
	if t.MyPlaylist.Name == "" || t.MyPlaylist.Key == "" {
		return "", &providers.Error{Provider: providers.AppleMusic, Op: op, Class: providers.Permanent,
			Reason: "playlist_unnamed", Err: errors.New("the release names no playlist")}
	}
	marker := providers.PlaylistMarker(t.MyPlaylist.Key)
	var found string
	err := c.pages(ctx, op, "v1/me/library/playlists", func(r resource) bool {
		if r.Attributes.CanEdit && strings.HasSuffix(r.Attributes.Description.Standard, marker) {
			found = r.ID
			return false
		}
		return true
	})
	if err != nil || found != "" {
		return found, err
	}
	body := map[string]any{"attributes": map[string]string{
		"name": t.MyPlaylist.Name, "description": t.MyPlaylist.FullDescription(),
	}}
	var out page
	err = c.call(ctx, op, func() error {
		return c.do(ctx, http.MethodPost, "v1/me/library/playlists", nil, body, &out, http.StatusCreated)
	})
	if err != nil {
		return "", err
	}
	if len(out.Data) == 0 || out.Data[0].ID == "" {
		return "", &providers.Error{Provider: providers.AppleMusic, Op: op, Class: providers.Retryable,
			Reason: "playlist_not_returned", Err: errors.New("created, but no playlist in the answer")}
	}
	if c.created == nil {
		c.created = map[string]bool{}
	}
	c.created[out.Data[0].ID] = true
	return out.Data[0].ID, nil
}

// pages walks a paginated collection (limit 100, following "next")
// until each returns false or the pages end.
func (c *client) pages(ctx context.Context, op, path string, each func(resource) bool) error {
	q := url.Values{"limit": {"100"}}
	for range maxPages {
		var out page
		err := c.call(ctx, op, func() error { return c.do(ctx, http.MethodGet, path, q, nil, &out, http.StatusOK) })
		if err != nil {
			return err
		}
		for _, r := range out.Data {
			if !each(r) {
				return nil
			}
		}
		next, err := url.Parse(out.Next)
		if out.Next == "" || err != nil {
			return nil
		}
		path, q = strings.TrimPrefix(next.Path, "/"), next.Query()
	}
	return nil
}

// addToPlaylist adds the release's songs missing from the fan's playlist
// id (write), then reads the playlist back.
func (c *client) addToPlaylist(ctx context.Context, t providers.Target, id string, write bool) (providers.Outcome, error) {
	op := string(providers.ActionAddToMyPlaylist)
	songs, err := c.songs(ctx, op, t)
	if err != nil {
		return "", err
	}
	missing := songs
	if !c.created[id] {
		// A playlist this attempt created is empty: nothing to read.
		if missing, err = c.notInPlaylist(ctx, op, id, songs); err != nil || len(missing) == 0 {
			return providers.OutcomeAlready, err
		}
	}
	delete(c.created, id)
	if !write {
		return providers.OutcomeOK, nil
	}
	data := make([]map[string]string, 0, len(missing))
	for _, s := range missing {
		data = append(data, map[string]string{"id": s, "type": "songs"})
	}
	err = c.call(ctx, op, func() error {
		return c.do(ctx, http.MethodPost, "v1/me/library/playlists/"+url.PathEscape(id)+"/tracks", nil,
			map[string]any{"data": data}, nil, http.StatusNoContent, http.StatusOK, http.StatusAccepted)
	})
	if providers.ClassOf(err) == providers.NotLiveYet {
		// The fan deleted the playlist: their account's doing, not the
		// release's.
		return "", &providers.Error{Provider: providers.AppleMusic, Op: op, Class: providers.Permanent, Reason: "playlist_gone",
			Account: true, Err: errors.New("the fan's playlist no longer exists")}
	}
	if err != nil {
		return "", err
	}
	if missing, err = c.notInPlaylist(ctx, op, id, missing); err != nil {
		return "", err
	}
	if len(missing) > 0 {
		return "", notVerified(op)
	}
	return providers.OutcomeOK, nil
}

// songs is the catalogue songs the playlist receives, all present in the
// fan's storefront: the release's songs, or its album's tracks.
func (c *client) songs(ctx context.Context, op string, t providers.Target) ([]string, error) {
	sf := t.Storefront
	if !ValidStorefront(sf) || (len(t.TrackIDs) == 0 && len(t.AlbumIDs) == 0) {
		return nil, notInStorefront(op, sf)
	}
	if len(t.TrackIDs) > 0 {
		var out page
		err := c.call(ctx, op, func() error {
			return c.do(ctx, http.MethodGet, "v1/catalog/"+sf+"/songs", url.Values{"ids": {strings.Join(t.TrackIDs, ",")}}, nil, &out, http.StatusOK)
		})
		if err != nil {
			return nil, err
		}
		for _, id := range t.TrackIDs {
			if !slices.ContainsFunc(out.Data, func(r resource) bool { return r.ID == id }) {
				return nil, notInStorefront(op, sf)
			}
		}
		return t.TrackIDs, nil
	}
	var songs []string
	for _, album := range t.AlbumIDs {
		if known, ok := c.albumSongs[album]; ok {
			songs = append(songs, known...)
			continue
		}
		err := c.pages(ctx, op, "v1/catalog/"+sf+"/albums/"+url.PathEscape(album)+"/tracks", func(r resource) bool {
			if r.Type == "songs" {
				songs = append(songs, r.ID)
			}
			return true
		})
		if providers.ClassOf(err) == providers.NotLiveYet {
			return nil, notInStorefront(op, sf)
		}
		if err != nil {
			return nil, err
		}
	}
	return songs, nil
}

// notInPlaylist returns the songs of want the playlist does not hold (by
// the catalogue ID of its library songs). Apple answers 404 for the
// tracks of an empty playlist; one the fan deleted answers 404 to the
// add that follows (playlistGone).
func (c *client) notInPlaylist(ctx context.Context, op, id string, want []string) ([]string, error) {
	have := map[string]bool{}
	err := c.pages(ctx, op, "v1/me/library/playlists/"+url.PathEscape(id)+"/tracks", func(r resource) bool {
		have[r.Attributes.PlayParams.CatalogID] = true
		return true
	})
	if providers.ClassOf(err) == providers.NotLiveYet {
		err = nil
	}
	if err != nil {
		return nil, err
	}
	var missing []string
	for _, s := range want {
		if !have[s] {
			missing = append(missing, s)
		}
	}
	return missing, nil
}
