package applemusic

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

	"github.com/presave/presave/internal/providers"
	"github.com/presave/presave/internal/providers/internal/oauthx"
)

// maxIDs is how many IDs one catalogue request names. Apple documents
// no limit for albums ("ids", a comma-separated list); 25 keeps every
// URL short whatever the IDs.
const maxIDs = 25

// maxPages bounds the pages of a paginated read (library playlists, a
// playlist's tracks): 100 pages of 100.
const maxPages = 100

// client performs pre-saves with one fan's Music User Token ("" for
// catalogue requests made with the developer token alone).
type client struct {
	p    *Provider
	user string
	// albumSongs holds the songs of the albums the library check read
	// (Apple includes an album's tracks relationship), so the playlist
	// add needs no second read; created holds the playlists this client
	// created, known empty until it adds to them. A client lives for one
	// attempt.
	albumSongs map[string][]string
	created    map[string]bool
}

// apiError is a failed Music API answer: its status, Retry-After and
// the first entry of its "errors" array.
type apiError struct {
	Status     int
	RetryAfter string
	Code       string // Apple's error code, e.g. "40015"
	Title      string
}

func (e *apiError) Error() string {
	if e.Title != "" {
		return fmt.Sprintf("HTTP %d %s (%s)", e.Status, e.Title, e.Code)
	}
	return fmt.Sprintf("HTTP %d", e.Status)
}

// errorsBody is Apple's error document.
type errorsBody struct {
	Errors []struct {
		Code   string `json:"code"`
		Title  string `json:"title"`
		Status string `json:"status"`
	} `json:"errors"`
}

// do sends one request with the developer token (and the user token when
// the client has one), decoding a JSON answer into out when non-nil. A
// status outside ok is an *apiError, other failures are returned as is.
func (c *client) do(ctx context.Context, method, path string, q url.Values, in, out any, ok ...int) error {
	dev, err := c.p.cfg.DevTokens.Token()
	if err != nil {
		return err
	}
	u := c.p.base.JoinPath(path)
	u.RawQuery = q.Encode()
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), body)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+dev)
	if c.user != "" {
		req.Header.Set("Music-User-Token", c.user)
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.p.hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return err
	}
	if !slices.Contains(ok, resp.StatusCode) {
		ae := &apiError{Status: resp.StatusCode, RetryAfter: resp.Header.Get("Retry-After")}
		var eb errorsBody
		if json.Unmarshal(data, &eb) == nil && len(eb.Errors) > 0 {
			ae.Code, ae.Title = eb.Errors[0].Code, eb.Errors[0].Title
		}
		return ae
	}
	if out != nil && len(data) > 0 {
		if err := json.Unmarshal(data, out); err != nil {
			return fmt.Errorf("decoding %s %s: %w", method, path, err)
		}
	}
	return nil
}

// call runs fn and classifies its error for op.
func (c *client) call(ctx context.Context, op string, fn func() error) error {
	err := fn()
	if err == nil {
		return nil
	}
	return c.classify(ctx, op, err)
}

// classify maps an error to its class, from Apple's "HTTP Status Codes"
// table: 401 is the developer token's (or, on personal endpoints, a user
// not signed in or without a subscription), 403 the Music User Token's,
// 404 a resource that does not exist (in the storefront: not out yet),
// 429 too many requests, 5xx the service's trouble.
func (c *client) classify(ctx context.Context, op string, err error) error {
	if pe, ok := providers.AsError(err); ok {
		return pe
	}
	e := &providers.Error{Provider: providers.AppleMusic, Op: op, Err: err}
	var ae *apiError
	if !errors.As(err, &ae) {
		var ne net.Error
		e.Class = providers.Permanent
		if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) || errors.As(err, &ne) {
			e.Class = providers.Retryable
		}
		return e
	}
	e.Status = ae.Status
	switch {
	case ae.Status == http.StatusUnauthorized:
		c.unauthorized(ctx, e)
	case ae.Status == http.StatusForbidden:
		// "an issue with the music user token": expired, revoked, or the
		// account never accepted the privacy setting. The fan must
		// connect again.
		e.Class, e.Reason = providers.GrantInvalid, "user_token_rejected"
	case ae.Status == http.StatusBadRequest && ae.Code == "40015":
		// "Insufficient Privileges": the account has no Apple Music
		// subscription (Apple's answer on its developer forums). The
		// fan's account, not the release.
		e.Class, e.Reason, e.Account = providers.Permanent, "no_subscription", true
	case ae.Status == http.StatusNotFound:
		e.Class, e.Reason = providers.NotLiveYet, "not_found"
	case ae.Status == http.StatusTooManyRequests:
		// Apple documents the status, not a wait: without Retry-After
		// the workers take their shared backoff, as for YouTube's.
		e.Class, e.Reason, e.RetryAfter = providers.RateLimited, "rate_limited", oauthx.RetryAfter(ae.RetryAfter)
	case ae.Status >= 500:
		e.Class = providers.Retryable
	default:
		e.Class, e.Reason = providers.Permanent, "bad_request"
	}
	return e
}

// unauthorized classifies a 401. Apple answers it for a bad developer
// token, and on personal endpoints for a user not signed in or without a
// subscription. A developer token problem is ours, and must never purge
// every fan's grant: when the developer token alone is refused too, the
// error is retryable (the operator fixes the key) and says so; otherwise
// it is the fan's.
func (c *client) unauthorized(ctx context.Context, e *providers.Error) {
	if c.user == "" || !c.p.devTokenWorks(ctx) {
		e.Class, e.Reason = providers.Retryable, "developer_token_rejected"
		return
	}
	e.Class, e.Reason = providers.GrantInvalid, "user_unauthorized"
}

// resource is the part of a Music API resource we read.
type resource struct {
	ID         string `json:"id"`
	Type       string `json:"type"`
	Attributes struct {
		Name        string `json:"name"`
		CanEdit     bool   `json:"canEdit"`
		Description struct {
			Standard string `json:"standard"`
		} `json:"description"`
		PlayParams struct {
			CatalogID string `json:"catalogId"`
		} `json:"playParams"`
	} `json:"attributes"`
	Relationships struct {
		Library struct {
			Data []resource `json:"data"`
		} `json:"library"`
		// Tracks is an album's songs (included by default, the first
		// page).
		Tracks struct {
			Data []resource `json:"data"`
			Next string     `json:"next"`
		} `json:"tracks"`
	} `json:"relationships"`
}

// page is a (paginated) resource collection.
type page struct {
	Data []resource `json:"data"`
	Next string     `json:"next"`
}

// storefront reads the fan's storefront (GET /v1/me/storefront).
func (c *client) storefront(ctx context.Context) (string, error) {
	var out page
	err := c.call(ctx, "storefront", func() error {
		return c.do(ctx, http.MethodGet, "v1/me/storefront", nil, nil, &out, http.StatusOK)
	})
	if err != nil {
		return "", err
	}
	if len(out.Data) == 0 || !ValidStorefront(out.Data[0].ID) {
		return "", &providers.Error{Provider: providers.AppleMusic, Op: "storefront", Class: providers.Permanent,
			Reason: "storefront_invalid", Account: true, Err: errors.New("no storefront in the answer")}
	}
	return out.Data[0].ID, nil
}

// resolve finds a code in a storefront (filter[upc] on albums,
// filter[isrc] on songs); "" when the catalogue has nothing yet.
func (c *client) resolve(ctx context.Context, sf string, kind providers.CodeKind, code string) (string, error) {
	path, filter := "albums", "filter[upc]"
	if kind == providers.CodeISRC {
		path, filter = "songs", "filter[isrc]"
	}
	var out page
	err := c.do(ctx, http.MethodGet, "v1/catalog/"+sf+"/"+path, url.Values{filter: {code}}, nil, &out, http.StatusOK)
	var ae *apiError
	if errors.As(err, &ae) && ae.Status == http.StatusNotFound {
		return "", nil
	}
	if err != nil {
		return "", c.classify(ctx, "resolve", err)
	}
	if len(out.Data) == 0 {
		return "", nil
	}
	return out.Data[0].ID, nil
}

// Perform implements providers.Client.
func (c *client) Perform(ctx context.Context, a providers.Action, t providers.Target) (providers.Outcome, error) {
	switch a {
	case providers.ActionAddToLibrary:
		return c.addToLibrary(ctx, t, true)
	case providers.ActionAddToMyPlaylist:
		if t.MyPlaylist.ID == "" {
			return "", &providers.Error{Provider: providers.AppleMusic, Op: string(a), Class: providers.Permanent,
				Reason: "playlist_unknown", Err: errors.New("the fan's playlist is not known yet (OwnPlaylist first)")}
		}
		return c.addToPlaylist(ctx, t, t.MyPlaylist.ID, true)
	}
	return "", &providers.Error{Provider: providers.AppleMusic, Op: string(a), Class: providers.Permanent,
		Reason: "action_unsupported", Err: fmt.Errorf("apple music does not offer %q", a)}
}

// InEffect implements providers.Client.
func (c *client) InEffect(ctx context.Context, a providers.Action, t providers.Target) (bool, error) {
	var out providers.Outcome
	var err error
	switch a {
	case providers.ActionAddToLibrary:
		out, err = c.addToLibrary(ctx, t, false)
	case providers.ActionAddToMyPlaylist:
		if t.MyPlaylist.ID == "" {
			return false, nil
		}
		out, err = c.addToPlaylist(ctx, t, t.MyPlaylist.ID, false)
	default:
		return false, nil
	}
	return out == providers.OutcomeAlready, err
}

// libraryItems is what add_to_library adds: the album when the release
// names one, else its songs.
func libraryItems(t providers.Target) (kind string, ids []string) {
	if len(t.AlbumIDs) > 0 {
		return "albums", t.AlbumIDs
	}
	return "songs", t.TrackIDs
}

// notInStorefront is the error of a target the fan's storefront does not
// have (yet).
func notInStorefront(op, sf string) error {
	return &providers.Error{Provider: providers.AppleMusic, Op: op, Class: providers.NotLiveYet, Reason: "not_in_storefront",
		Err: fmt.Errorf("not available in storefront %q yet", sf)}
}

// notVerified is the error of a write Apple accepted that did not show up
// on reading back: "There may be a delay before a new resource appears",
// so it is retried, and fails with this reason when it never does.
func notVerified(op string) error {
	return &providers.Error{Provider: providers.AppleMusic, Op: op, Class: providers.Retryable, Reason: "add_not_verified",
		Err: errors.New("accepted, but not found on reading back")}
}

// addToLibrary checks that the items exist in the fan's storefront and
// which are in the library already, adds the others (write), and reads
// back: Apple answers 202 even for IDs it ignored.
func (c *client) addToLibrary(ctx context.Context, t providers.Target, write bool) (providers.Outcome, error) {
	op := string(providers.ActionAddToLibrary)
	kind, ids := libraryItems(t)
	if len(ids) == 0 || !ValidStorefront(t.Storefront) {
		return "", notInStorefront(op, t.Storefront)
	}
	missing, err := c.notInLibrary(ctx, op, t.Storefront, kind, ids)
	if err != nil || len(missing) == 0 {
		return providers.OutcomeAlready, err
	}
	if !write {
		return providers.OutcomeOK, nil
	}
	err = c.call(ctx, op, func() error {
		return c.do(ctx, http.MethodPost, "v1/me/library", url.Values{"ids[" + kind + "]": {strings.Join(missing, ",")}}, nil, nil,
			http.StatusAccepted, http.StatusNoContent, http.StatusOK)
	})
	if err != nil {
		return "", err
	}
	if missing, err = c.notInLibrary(ctx, op, t.Storefront, kind, missing); err != nil {
		return "", err
	}
	if len(missing) > 0 {
		return "", notVerified(op)
	}
	return providers.OutcomeOK, nil
}

// noteAlbumSongs remembers an album's songs when the answer holds them
// all (no further page).
func (c *client) noteAlbumSongs(r resource) {
	if r.Type != "albums" || len(r.Relationships.Tracks.Data) == 0 || r.Relationships.Tracks.Next != "" {
		return
	}
	if c.albumSongs == nil {
		c.albumSongs = map[string][]string{}
	}
	var songs []string
	for _, t := range r.Relationships.Tracks.Data {
		if t.Type == "songs" {
			songs = append(songs, t.ID)
		}
	}
	c.albumSongs[r.ID] = songs
}

// notInLibrary reads the items from the storefront's catalogue with
// their library relationship and returns those not in the fan's library.
// An item the catalogue does not return is not in the storefront (yet).
func (c *client) notInLibrary(ctx context.Context, op, sf, kind string, ids []string) ([]string, error) {
	var missing []string
	for chunk := range slices.Chunk(ids, maxIDs) {
		var out page
		err := c.call(ctx, op, func() error {
			return c.do(ctx, http.MethodGet, "v1/catalog/"+sf+"/"+kind,
				url.Values{"ids": {strings.Join(chunk, ",")}, "relate": {"library"}}, nil, &out, http.StatusOK)
		})
		if err != nil {
			return nil, err
		}
		found := map[string]bool{}
		for _, r := range out.Data {
			found[r.ID] = true
			c.noteAlbumSongs(r)
			if len(r.Relationships.Library.Data) == 0 && slices.Contains(chunk, r.ID) {
				missing = append(missing, r.ID)
			}
		}
		for _, id := range chunk {
			if !found[id] {
				return nil, notInStorefront(op, sf)
			}
		}
	}
	return missing, nil
}
