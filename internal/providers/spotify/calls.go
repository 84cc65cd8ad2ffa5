package spotify

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	zspotify "github.com/zmb3/spotify/v2"

	"github.com/presave/presave/internal/providers"
	"github.com/presave/presave/internal/providers/internal/oauthx"
)

// apiError is a failed direct call, decoded from Spotify's error JSON.
type apiError struct {
	Status  int
	Message string
	Reason  string
}

func (e *apiError) Error() string {
	return fmt.Sprintf("spotify: HTTP %d: %s", e.Status, e.Message)
}

type errorBody struct {
	Error struct {
		Status  int    `json:"status"`
		Message string `json:"message"`
		Reason  string `json:"reason"`
	} `json:"error"`
}

// do calls the Web API directly, for the endpoints zmb3 lacks.
func (c *client) do(ctx context.Context, method, path string, in, out any, ok ...int) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.p.cfg.APIURL+path, body)
	if err != nil {
		return err
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if !slices.Contains(ok, resp.StatusCode) {
		raw, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		var eb errorBody
		_ = json.Unmarshal(raw, &eb)
		return &apiError{Status: resp.StatusCode, Message: eb.Error.Message, Reason: eb.Error.Reason}
	}
	if out == nil || resp.StatusCode == http.StatusNoContent {
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("spotify: decode %s response: %w", method, err)
	}
	return nil
}

// splitURIs groups "spotify:kind:id" URIs into IDs by kind, in order.
func splitURIs(all []string) (kinds []string, byKind map[string][]zspotify.ID) {
	byKind = map[string][]zspotify.ID{}
	for _, u := range all {
		parts := strings.SplitN(u, ":", 3)
		if _, seen := byKind[parts[1]]; !seen {
			kinds = append(kinds, parts[1])
		}
		byKind[parts[1]] = append(byKind[parts[1]], zspotify.ID(parts[2]))
	}
	return kinds, byKind
}

func (c *client) legacyMissing(ctx context.Context, all []string) ([]string, error) {
	kinds, byKind := splitURIs(all)
	var missing []string
	for _, kind := range kinds {
		for _, part := range chunks(byKind[kind], legacyBatchOf(kind)) {
			var has []bool
			var err error
			switch kind {
			case "album":
				has, err = c.sp.UserHasAlbums(ctx, part...)
			case "track":
				has, err = c.sp.UserHasTracks(ctx, part...)
			case "artist":
				has, err = c.sp.CurrentUserFollows(ctx, "artist", part...)
			}
			if err != nil {
				return nil, err
			}
			if len(has) != len(part) {
				return nil, fmt.Errorf("spotify: contains answered %d values for %d IDs", len(has), len(part))
			}
			for i, ok := range has {
				if !ok {
					missing = append(missing, "spotify:"+kind+":"+string(part[i]))
				}
			}
		}
	}
	return missing, nil
}

func (c *client) legacySave(ctx context.Context, missing []string) error {
	kinds, byKind := splitURIs(missing)
	for _, kind := range kinds {
		for _, part := range chunks(byKind[kind], legacyBatchOf(kind)) {
			var err error
			switch kind {
			case "album":
				err = c.sp.AddAlbumsToLibrary(ctx, part...)
			case "track":
				err = c.sp.AddTracksToLibrary(ctx, part...)
			case "artist":
				err = c.sp.FollowArtist(ctx, part...)
			}
			if err != nil {
				return err
			}
		}
	}
	return nil
}

// addToPlaylist adds the track URIs the fan's playlist lacks. It reads
// every item first, so a retry after a crash never adds a duplicate.
func (c *client) addToPlaylist(ctx context.Context, id string, want []string, write bool) (providers.Outcome, error) {
	have, err := c.playlistURIs(ctx, id)
	if err != nil {
		if st, _ := statusOf(err); st == http.StatusNotFound {
			// The fan's playlist is gone: waiting will not bring it back.
			return "", &providers.Error{Provider: providers.Spotify, Op: string(providers.ActionAddToMyPlaylist),
				Class: providers.Permanent, Status: http.StatusNotFound, Reason: "playlist_not_found", Err: err}
		}
		return "", err
	}
	var missing []string
	for _, u := range want {
		if !have[u] {
			missing = append(missing, u)
		}
	}
	if len(missing) == 0 {
		return providers.OutcomeAlready, nil
	}
	if !write {
		return providers.OutcomeOK, nil
	}
	for _, part := range chunks(missing, playlistAddBatch) {
		if c.p.cfg.Mode == ModeLegacy {
			_, byKind := splitURIs(part)
			if _, err := c.sp.AddTracksToPlaylist(ctx, zspotify.ID(id), byKind["track"]...); err != nil {
				return "", err
			}
			continue
		}
		var res struct {
			SnapshotID string `json:"snapshot_id"`
		}
		body := map[string][]string{"uris": part}
		if err := c.do(ctx, http.MethodPost, "playlists/"+url.PathEscape(id)+"/items", body, &res, http.StatusCreated, http.StatusOK); err != nil {
			return "", err
		}
	}
	return providers.OutcomeOK, nil
}

// ownPlaylist finds the fan's playlist carrying t's marker, or creates
// it: private, named and described as the release says. GET
// /me/playlists lists the playlists the fan owns or follows, 50 a page;
// only one the fan owns counts.
func (c *client) ownPlaylist(ctx context.Context, t providers.Target) (string, error) {
	marker := providers.PlaylistMarker(t.MyPlaylist.Key)
	for offset := 0; ; {
		var page struct {
			Items []struct {
				ID          string `json:"id"`
				Description string `json:"description"`
				Owner       struct {
					ID string `json:"id"`
				} `json:"owner"`
			} `json:"items"`
			Next  *string `json:"next"`
			Total int     `json:"total"`
		}
		path := fmt.Sprintf("me/playlists?limit=%d&offset=%d", playlistPage, offset)
		if err := c.do(ctx, http.MethodGet, path, nil, &page, http.StatusOK); err != nil {
			return "", err
		}
		for _, pl := range page.Items {
			// Spotify HTML-escapes descriptions; the marker has nothing
			// to escape.
			if strings.Contains(pl.Description, marker) && (t.AccountID == "" || pl.Owner.ID == t.AccountID) {
				return pl.ID, nil
			}
		}
		offset += len(page.Items)
		if page.Next == nil || *page.Next == "" || len(page.Items) == 0 || offset >= page.Total {
			break
		}
	}
	if c.p.cfg.Mode == ModeLegacy {
		if t.AccountID == "" {
			return "", &providers.Error{Provider: providers.Spotify, Op: string(providers.ActionAddToMyPlaylist), Class: providers.Permanent, Reason: "no_account_id", Account: true}
		}
		pl, err := c.sp.CreatePlaylistForUser(ctx, t.AccountID, t.MyPlaylist.Name, t.MyPlaylist.FullDescription(), false, false)
		if err != nil {
			return "", err
		}
		return string(pl.ID), nil
	}
	var created struct {
		ID string `json:"id"`
	}
	body := map[string]any{"name": t.MyPlaylist.Name, "description": t.MyPlaylist.FullDescription(), "public": false}
	if err := c.do(ctx, http.MethodPost, "me/playlists", body, &created, http.StatusCreated, http.StatusOK); err != nil {
		return "", err
	}
	if created.ID == "" {
		return "", fmt.Errorf("spotify: created playlist has no id")
	}
	return created.ID, nil
}

// legacyFollowPlaylist follows the playlist through
// /playlists/{id}/followers, privately: a write is sent without a check
// (following is idempotent); without write it checks
// /playlists/{id}/followers/contains for the fan. The body is sent here
// rather than by zmb3's FollowPlaylist, which sends a bare boolean where
// the reference wants {"public": false}.
func (c *client) legacyFollowPlaylist(ctx context.Context, id, accountID string, write bool) (providers.Outcome, error) {
	if write {
		if err := c.do(ctx, http.MethodPut, "playlists/"+url.PathEscape(id)+"/followers", map[string]bool{"public": false}, nil, http.StatusOK, http.StatusNoContent); err != nil {
			return "", err
		}
		return providers.OutcomeOK, nil
	}
	if accountID == "" {
		return "", &providers.Error{Provider: providers.Spotify, Op: string(providers.ActionFollowPlaylist), Class: providers.Permanent, Reason: "no_account_id", Account: true}
	}
	has, err := c.sp.UserFollowsPlaylist(ctx, zspotify.ID(id), accountID)
	if err != nil {
		return "", err
	}
	if len(has) == 1 && has[0] {
		return providers.OutcomeAlready, nil
	}
	return providers.OutcomeOK, nil
}

// playlistURIs reads every item URI of a playlist, page by page.
func (c *client) playlistURIs(ctx context.Context, id string) (map[string]bool, error) {
	have := map[string]bool{}
	const limit = playlistPage
	for offset := 0; ; {
		if c.p.cfg.Mode == ModeLegacy {
			page, err := c.sp.GetPlaylistItems(ctx, zspotify.ID(id), zspotify.Limit(limit), zspotify.Offset(offset))
			if err != nil {
				return nil, err
			}
			for _, it := range page.Items {
				if it.Track.Track != nil {
					have[string(it.Track.Track.URI)] = true
				}
			}
			offset += len(page.Items)
			if page.Next == "" || len(page.Items) == 0 || offset >= int(page.Total) {
				return have, nil
			}
			continue
		}
		type obj struct {
			URI string `json:"uri"`
		}
		var page struct {
			Items []struct {
				Item  *obj `json:"item"`
				Track *obj `json:"track"` // pre-2026 name of the same field
			} `json:"items"`
			Next  *string `json:"next"`
			Total int     `json:"total"`
		}
		path := fmt.Sprintf("playlists/%s/items?limit=%d&offset=%d", url.PathEscape(id), limit, offset)
		if err := c.do(ctx, http.MethodGet, path, nil, &page, http.StatusOK); err != nil {
			return nil, err
		}
		for _, it := range page.Items {
			switch {
			case it.Item != nil:
				have[it.Item.URI] = true
			case it.Track != nil:
				have[it.Track.URI] = true
			}
		}
		offset += len(page.Items)
		if page.Next == nil || *page.Next == "" || len(page.Items) == 0 || offset >= page.Total {
			return have, nil
		}
	}
}

// statusOf is the HTTP status and Spotify's message of a failed call.
func statusOf(err error) (int, string) {
	var ae *apiError
	if errors.As(err, &ae) {
		return ae.Status, ae.Message
	}
	var se zspotify.Error
	if errors.As(err, &se) {
		return se.Status, se.Message
	}
	return 0, ""
}

// classify turns any error into a *providers.Error. f is the failed
// response the Capture transport saw, if any (zmb3 drops its headers and
// the "reason" field).
func classify(op string, err error, f oauthx.Failure) error {
	if pe, ok := providers.AsError(err); ok {
		return pe
	}
	e := &providers.Error{Provider: providers.Spotify, Op: op, Err: err}
	// Token endpoint failures (exchange or refresh) come first: they are
	// wrapped in *url.Error, which would otherwise look like a network error.
	if oauthx.ClassifyTokenEndpoint(e, err) {
		return e
	}
	status, reason, msg := f.Status, "", ""
	if status != 0 {
		var eb errorBody
		if json.Unmarshal(f.Body, &eb) == nil {
			reason, msg = eb.Error.Reason, eb.Error.Message
		}
	} else {
		status, msg = statusOf(err)
	}
	if status == 0 {
		var ne net.Error
		if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) || errors.As(err, &ne) {
			e.Class = providers.Retryable
		} else {
			e.Class = providers.Permanent
		}
		return e
	}
	e.Status, e.Reason = status, reason
	switch {
	case status == http.StatusUnauthorized:
		// Still 401 after a forced refresh: the grant no longer works.
		e.Class = providers.GrantInvalid
		e.Reason = "unauthorized"
	case status == http.StatusForbidden:
		// Missing scope, or (development mode) user not allow-listed.
		e.Class = providers.Permanent
		if e.Reason == "" {
			e.Reason = "forbidden"
		}
	case status == http.StatusBadRequest && strings.Contains(strings.ToLower(msg), "non-existing id"):
		// Spotify's answer to a library or playlist write naming an ID it
		// does not know: the release is not out yet, or (the campaign's
		// problem, not the fan's) the ID is wrong. Retry as not live; the
		// worker gives up after NOT_LIVE_GIVE_UP.
		e.Class, e.Reason = providers.NotLiveYet, "non_existing_id"
	case status == http.StatusNotFound:
		// An album or track that is not out yet.
		e.Class = providers.NotLiveYet
		if e.Reason == "" {
			e.Reason = "not_found"
		}
	case status == http.StatusTooManyRequests && reason == "QUOTA_EXCEEDED":
		e.Class = providers.QuotaExhausted
		wait := time.Hour // Spotify documents no reset time; check again in an hour
		if f.RetryAfter != "" {
			wait = oauthx.RetryAfter(f.RetryAfter)
		}
		e.ResetAt = time.Now().Add(wait)
	case status == http.StatusTooManyRequests:
		e.Class, e.RetryAfter = providers.RateLimited, oauthx.RetryAfter(f.RetryAfter)
		if e.Reason == "" {
			e.Reason = "rate_limited"
		}
	case status >= 500:
		e.Class = providers.Retryable
	default:
		e.Class = providers.Permanent
	}
	return e
}
