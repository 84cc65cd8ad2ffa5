// Package spotify implements providers.Provider for Spotify.
//
// It uses github.com/zmb3/spotify/v2 where the library fits (the account
// ID, and the pre-2026 "legacy" library, follow and playlist endpoints) and
// calls the 2026 endpoints it lacks (/me/library, /playlists/{id}/items)
// directly through the same authenticated client. zmb3's WithRetry is never
// used: it retries without a cap and loses POST bodies; the workers own
// retries. Every error leaves this package as a classified *providers.Error.
package spotify

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	zspotify "github.com/zmb3/spotify/v2"
	"golang.org/x/oauth2"

	"github.com/presave/presave/internal/providers"
	"github.com/presave/presave/internal/providers/internal/oauthx"
)

// Modes select which Spotify endpoints the client uses.
const (
	// ModeLibrary uses /me/library and /playlists/{id}/items, the only
	// endpoints development-mode apps may call since March 2026.
	ModeLibrary = "library"
	// ModeLegacy uses /me/albums, /me/tracks, /me/following and
	// /playlists/{id}/tracks, still open to extended-quota apps.
	ModeLegacy = "legacy"
)

// App statuses (Spotify's "Quota modes"): every app starts in
// development mode; extended quota mode is granted on application.
const (
	AppDevelopment = "development"
	AppExtended    = "extended"
)

// DevelopmentUsers is how many users a development-mode app serves: "Up
// to 5 authenticated Spotify users can use an app that is in development
// mode", each added to its allowlist by hand ("Quota modes", since the
// February 2026 changes; apps older than 11 February 2026 keep the users
// they had, and their operators set SPOTIFY_APP_USERS). Requests for a
// user not on the list answer 403.
const DevelopmentUsers = 5

// Scopes used by the actions.
const (
	ScopeLibraryModify   = "user-library-modify"
	ScopeLibraryRead     = "user-library-read"
	ScopeFollowModify    = "user-follow-modify"
	ScopeFollowRead      = "user-follow-read"
	ScopePlaylistPublic  = "playlist-modify-public"
	ScopePlaylistPrivate = "playlist-modify-private"
	ScopePlaylistRead    = "playlist-read-private"
)

// Config configures the Spotify provider. Empty URLs default to Spotify's.
type Config struct {
	ClientID     string
	ClientSecret string
	RedirectURL  string
	// AccountsURL is the accounts service base (default https://accounts.spotify.com).
	AccountsURL string
	// APIURL is the Web API base, ending in "/" (default https://api.spotify.com/v1/).
	APIURL string
	// Mode is ModeLibrary (default) or ModeLegacy.
	Mode string
	// App is the app's status (AppDevelopment, the default, or
	// AppExtended) and user cap (DevelopmentUsers when zero in
	// development mode).
	App providers.App
	// HTTPClient is the base client for every call (default: 30s timeout).
	HTTPClient *http.Client
}

// Provider is Spotify. Create it with New.
type Provider struct {
	cfg   Config
	oauth *oauth2.Config
	base  *http.Client
	// app is the client on the app's own token (appClient).
	appOnce sync.Once
	app     *http.Client
}

var _ providers.Provider = (*Provider)(nil)

// New returns the Spotify provider.
func New(cfg Config) *Provider {
	if cfg.AccountsURL == "" {
		cfg.AccountsURL = "https://accounts.spotify.com"
	}
	cfg.AccountsURL = strings.TrimRight(cfg.AccountsURL, "/")
	if cfg.APIURL == "" {
		cfg.APIURL = "https://api.spotify.com/v1/"
	}
	if !strings.HasSuffix(cfg.APIURL, "/") {
		cfg.APIURL += "/"
	}
	if cfg.Mode == "" {
		cfg.Mode = ModeLibrary
	}
	if cfg.App.Status == "" {
		cfg.App.Status = AppDevelopment
	}
	if cfg.App.Status == AppDevelopment && cfg.App.MaxUsers == 0 {
		cfg.App.MaxUsers = DevelopmentUsers
	}
	return &Provider{
		cfg:  cfg,
		base: oauthx.BaseClient(cfg.HTTPClient),
		// spotifyauth cannot point its token endpoint elsewhere, so the
		// config is built here.
		oauth: &oauth2.Config{
			ClientID:     cfg.ClientID,
			ClientSecret: cfg.ClientSecret,
			RedirectURL:  cfg.RedirectURL,
			Endpoint: oauth2.Endpoint{
				AuthURL:   cfg.AccountsURL + "/authorize",
				TokenURL:  cfg.AccountsURL + "/api/token",
				AuthStyle: oauth2.AuthStyleInParams,
			},
		},
	}
}

// Name implements providers.Provider.
func (p *Provider) Name() providers.Name { return providers.Spotify }

// Mode returns the endpoint mode in use.
func (p *Provider) Mode() string { return p.cfg.Mode }

// App implements providers.Provider.
func (p *Provider) App() providers.App { return p.cfg.App }

// Actions implements providers.Provider.
func (p *Provider) Actions(t providers.Target) []providers.Action {
	var out []providers.Action
	if len(t.AlbumIDs) > 0 || len(t.TrackIDs) > 0 || t.UPC != "" || len(t.ISRCs) > 0 {
		out = append(out, providers.ActionSave)
	}
	if len(t.ArtistIDs) > 0 {
		out = append(out, providers.ActionFollow)
	}
	if t.FollowPlaylistID != "" {
		out = append(out, providers.ActionFollowPlaylist)
	}
	if t.MyPlaylist.Name != "" && (len(t.TrackIDs) > 0 || len(t.ISRCs) > 0) {
		out = append(out, providers.ActionAddToMyPlaylist)
	}
	return out
}

// Scopes implements providers.Provider: what each action's endpoints
// need (Web API reference, each endpoint's "Authorization scopes"), the
// same in both modes except where noted:
//   - save: user-library-modify, and user-library-read for the check;
//   - follow (an artist, /me/library or /me/following):
//     user-follow-modify, and user-follow-read for the check;
//   - follow_playlist: in library mode a playlist URI through /me/library,
//     which the reference lists under playlist-modify-public; in legacy
//     mode /playlists/{id}/followers, followed privately ("public":
//     false), which needs playlist-modify-private; playlist-read-private
//     for the check of a private follow;
//   - add_to_my_playlist: playlist-modify-private to create the fan's
//     private playlist and add to it, playlist-read-private to find it
//     among the fan's playlists and read its items.
func (p *Provider) Scopes(actions []providers.Action) []string {
	var out []string
	add := func(s ...string) {
		for _, x := range s {
			if !slices.Contains(out, x) {
				out = append(out, x)
			}
		}
	}
	for _, a := range actions {
		switch a {
		case providers.ActionSave:
			add(ScopeLibraryModify, ScopeLibraryRead)
		case providers.ActionFollow:
			add(ScopeFollowModify, ScopeFollowRead)
		case providers.ActionFollowPlaylist:
			if p.cfg.Mode == ModeLegacy {
				add(ScopePlaylistPrivate, ScopePlaylistRead)
			} else {
				add(ScopePlaylistPublic, ScopePlaylistRead)
			}
		case providers.ActionAddToMyPlaylist:
			add(ScopePlaylistPrivate, ScopePlaylistRead)
		}
	}
	return out
}

// AuthCodeURL implements providers.Provider. show_dialog=true makes
// Spotify show its dialog even to a fan who approved us before (by
// default it redirects them back at once): a flow the fan did not start
// themselves cannot then complete without them noticing.
func (p *Provider) AuthCodeURL(state, verifier string, scopes []string) string {
	// The scopes go in as a parameter: copying p.oauth to set its Scopes
	// would race with a concurrent Exchange, which updates the config's
	// auth-style cache.
	return p.oauth.AuthCodeURL(state, oauth2.SetAuthURLParam("scope", strings.Join(scopes, " ")),
		oauth2.SetAuthURLParam("show_dialog", "true"), oauth2.S256ChallengeOption(verifier))
}

// Exchange implements providers.Provider.
func (p *Provider) Exchange(ctx context.Context, code, verifier string) (providers.Grant, error) {
	tok, err := p.oauth.Exchange(oauthx.WithBase(ctx, p.base), code, oauth2.VerifierOption(verifier))
	if err != nil {
		return providers.Grant{}, classify("exchange", err, oauthx.Failure{})
	}
	hc := oauthx.NewClient(oauthx.NewSource(p.oauth, p.base, tok, nil), p.base)
	cctx, failure := oauthx.WithCapture(ctx)
	// /v1/me: only the "id" is kept; no profile scope is requested.
	me, err := zspotify.New(hc, zspotify.WithBaseURL(p.cfg.APIURL)).CurrentUser(cctx)
	if err != nil {
		return providers.Grant{}, classify("account", err, failure())
	}
	if me.ID == "" {
		return providers.Grant{}, &providers.Error{Provider: providers.Spotify, Op: "account", Class: providers.Permanent, Reason: "no_account_id", Account: true}
	}
	var scopes []string
	if s, ok := tok.Extra("scope").(string); ok {
		scopes = strings.Fields(s)
	}
	return providers.Grant{Token: tok, AccountID: me.ID, Scopes: scopes}, nil
}

// GrantExpiry implements providers.Provider. Spotify's refresh tokens
// expire six calendar months after the authorization, and refreshing
// does not extend them ("Refresh tokens are valid for 6 months"; the
// token's life counts from the code exchange). A month without the
// authorization's day ends the six months on its last day (August 31
// ends February 28 or 29), in UTC.
func (p *Provider) GrantExpiry(authorizedAt time.Time) time.Time {
	return AddMonths(authorizedAt.UTC(), 6)
}

// AddMonths adds n calendar months to t, clamping the day to the last
// day of the resulting month (time.AddDate would roll August 31 + 6
// months over into March).
func AddMonths(t time.Time, n int) time.Time {
	y, m, d := t.Date()
	first := time.Date(y, m+time.Month(n), 1, t.Hour(), t.Minute(), t.Second(), t.Nanosecond(), t.Location())
	last := first.AddDate(0, 1, -1).Day()
	return first.AddDate(0, 0, min(d, last)-1)
}

// Revoke implements providers.Provider: Spotify has no revoke endpoint.
func (p *Provider) Revoke(context.Context, string) error { return providers.ErrRevokeUnsupported }

// QuotaDay implements providers.Provider: Spotify has no daily quota.
func (p *Provider) QuotaDay(time.Time) (string, time.Time) { return "", time.Time{} }

// QuotaCost implements providers.Provider: Spotify has no unit quota.
func (p *Provider) QuotaCost(providers.Action, providers.Outcome) int { return 0 }

// Batch sizes of the endpoints the client calls (the most IDs or URIs
// one request takes, from the Web API reference): /me/library and
// /me/library/contains take 40 URIs; the legacy /me/albums (and its
// contains) 20 IDs, /me/tracks and /me/following 50; adding to a
// playlist 100 URIs; a playlist's items and the fan's playlists are read
// 50 per page.
const (
	libraryBatch     = 40
	legacyAlbumBatch = 20
	legacyBatch      = 50
	playlistAddBatch = 100
	playlistPage     = 50
)

// legacyBatchOf is the batch size of a legacy endpoint by URI kind.
func legacyBatchOf(kind string) int {
	if kind == "album" {
		return legacyAlbumBatch
	}
	return legacyBatch
}

var (
	_ providers.Combiner       = (*Provider)(nil)
	_ providers.CombinedClient = (*client)(nil)
)

// combinable are the actions /me/library writes (library mode): saving
// albums and tracks, following artists and playlists ("Save Items to
// User's Library" takes their URIs together, 40 a request).
var combinable = []providers.Action{providers.ActionSave, providers.ActionFollow, providers.ActionFollowPlaylist}

// Combine implements providers.Combiner: in library mode, the library
// actions of as; the legacy endpoints are one per kind.
func (p *Provider) Combine(as []providers.Action, t providers.Target) []providers.Action {
	if p.cfg.Mode != ModeLibrary {
		return nil
	}
	var out []providers.Action
	for _, a := range as {
		if slices.Contains(combinable, a) && len(libraryURIs(a, t)) > 0 {
			out = append(out, a)
		}
	}
	if len(out) < 2 {
		return nil
	}
	return out
}

// CombinedCalls implements providers.Combiner: one write per 40 URIs.
func (p *Provider) CombinedCalls(as []providers.Action, t providers.Target) int {
	n := 0
	for _, a := range as {
		n += len(libraryURIs(a, t))
	}
	return max(1, (n+libraryBatch-1)/libraryBatch)
}

// PerformCombined implements providers.CombinedClient.
func (c *client) PerformCombined(ctx context.Context, as []providers.Action, t providers.Target) error {
	var all []string
	for _, a := range as {
		all = append(all, libraryURIs(a, t)...)
	}
	return c.call(ctx, "library", func(ctx context.Context) error { return c.writeItems(ctx, all) })
}

// libraryURIs are the URIs a library action writes.
func libraryURIs(a providers.Action, t providers.Target) []string {
	switch a {
	case providers.ActionSave:
		return append(uris("album", t.AlbumIDs), uris("track", t.TrackIDs)...)
	case providers.ActionFollow:
		return uris("artist", t.ArtistIDs)
	case providers.ActionFollowPlaylist:
		if t.FollowPlaylistID != "" {
			return uris("playlist", []string{t.FollowPlaylistID})
		}
	}
	return nil
}

// Calls implements providers.Provider: the requests one Perform of a
// makes when it writes: one write per batch for the idempotent actions
// (no check), and for add_to_my_playlist the playlist's items read, the
// adds, and finding or creating the playlist when t does not name it.
func (p *Provider) Calls(a providers.Action, t providers.Target) int {
	n := func(count, batch int) int { return max(1, (count+batch-1)/batch) }
	switch a {
	case providers.ActionSave:
		if p.cfg.Mode == ModeLegacy {
			calls := 0
			if len(t.AlbumIDs) > 0 {
				calls += n(len(t.AlbumIDs), legacyAlbumBatch)
			}
			if len(t.TrackIDs) > 0 {
				calls += n(len(t.TrackIDs), legacyBatch)
			}
			return max(calls, 1)
		}
		return n(len(t.AlbumIDs)+len(t.TrackIDs), libraryBatch)
	case providers.ActionFollow:
		if p.cfg.Mode == ModeLegacy {
			return n(len(t.ArtistIDs), legacyBatch)
		}
		return n(len(t.ArtistIDs), libraryBatch)
	case providers.ActionFollowPlaylist:
		return 1
	case providers.ActionAddToMyPlaylist:
		calls := 1 + n(len(t.TrackIDs), playlistAddBatch) // the (empty) playlist's items, then the adds
		if t.MyPlaylist.ID == "" {
			calls += 2
		}
		return calls
	}
	return 1
}

// Client implements providers.Provider. Refreshes run within the context
// of the call that needs them.
func (p *Provider) Client(_ context.Context, tok *oauth2.Token, onRefresh func(*oauth2.Token)) providers.Client {
	src := oauthx.NewSource(p.oauth, p.base, tok, onRefresh)
	hc := oauthx.NewClient(src, p.base)
	return &client{
		p:   p,
		src: src,
		hc:  hc,
		sp:  zspotify.New(hc, zspotify.WithBaseURL(p.cfg.APIURL)),
	}
}

type client struct {
	p   *Provider
	src *oauthx.Source
	hc  *http.Client
	sp  *zspotify.Client
}

// call runs fn, and once more after a forced refresh if Spotify answered
// 401 (the access token died early); errors come back classified.
func (c *client) call(ctx context.Context, op string, fn func(ctx context.Context) error) error {
	for attempt := 0; ; attempt++ {
		cctx, failure := oauthx.WithCapture(ctx)
		err := fn(cctx)
		if err == nil {
			return nil
		}
		f := failure()
		if f.Status == http.StatusUnauthorized && attempt == 0 {
			c.src.Invalidate()
			continue
		}
		return classify(op, err, f)
	}
}

// Perform implements providers.Client.
func (c *client) Perform(ctx context.Context, a providers.Action, t providers.Target) (providers.Outcome, error) {
	var out providers.Outcome
	err := c.call(ctx, string(a), func(ctx context.Context) error {
		var err error
		out, err = c.perform(ctx, a, t, true)
		return err
	})
	return out, err
}

// InEffect implements providers.Client.
func (c *client) InEffect(ctx context.Context, a providers.Action, t providers.Target) (bool, error) {
	var out providers.Outcome
	err := c.call(ctx, string(a), func(ctx context.Context) error {
		var err error
		out, err = c.perform(ctx, a, t, false)
		return err
	})
	return out == providers.OutcomeAlready, err
}

// perform, with write, applies a: an idempotent write (saving,
// following) is sent as is; adding to the fan's playlist checks first
// and adds what is missing (OutcomeAlready when nothing was). Without
// write it only checks.
func (c *client) perform(ctx context.Context, a providers.Action, t providers.Target, write bool) (providers.Outcome, error) {
	switch a {
	case providers.ActionSave:
		if len(t.AlbumIDs) == 0 && len(t.TrackIDs) == 0 {
			return "", errNothing(a)
		}
		return c.saveItems(ctx, libraryURIs(a, t), write)
	case providers.ActionFollow:
		if len(t.ArtistIDs) == 0 {
			return "", errNothing(a)
		}
		return c.saveItems(ctx, libraryURIs(a, t), write)
	case providers.ActionFollowPlaylist:
		if t.FollowPlaylistID == "" {
			return "", errNothing(a)
		}
		if c.p.cfg.Mode == ModeLegacy {
			return c.legacyFollowPlaylist(ctx, t.FollowPlaylistID, t.AccountID, write)
		}
		return c.saveItems(ctx, libraryURIs(a, t), write)
	case providers.ActionAddToMyPlaylist:
		if t.MyPlaylist.ID == "" || len(t.TrackIDs) == 0 {
			return "", errNothing(a)
		}
		return c.addToPlaylist(ctx, t.MyPlaylist.ID, uris("track", t.TrackIDs), write)
	}
	return "", &providers.Error{Provider: providers.Spotify, Op: string(a), Class: providers.Permanent, Reason: "unsupported_action"}
}

// OwnPlaylist implements providers.Client.
func (c *client) OwnPlaylist(ctx context.Context, t providers.Target) (string, error) {
	if t.MyPlaylist.ID != "" {
		return t.MyPlaylist.ID, nil
	}
	if t.MyPlaylist.Name == "" || t.MyPlaylist.Key == "" {
		return "", errNothing(providers.ActionAddToMyPlaylist)
	}
	var id string
	err := c.call(ctx, string(providers.ActionAddToMyPlaylist), func(ctx context.Context) error {
		var err error
		id, err = c.ownPlaylist(ctx, t)
		return err
	})
	return id, err
}

func errNothing(a providers.Action) error {
	return &providers.Error{Provider: providers.Spotify, Op: string(a), Class: providers.Permanent, Reason: "empty_target"}
}

// uris turns IDs into "spotify:kind:id", dropping duplicates.
func uris(kind string, ids []string) []string {
	out := make([]string, 0, len(ids))
	for _, id := range ids {
		u := "spotify:" + kind + ":" + id
		if !slices.Contains(out, u) {
			out = append(out, u)
		}
	}
	return out
}

func chunks[T any](s []T, n int) [][]T {
	var out [][]T
	for len(s) > n {
		out = append(out, s[:n])
		s = s[n:]
	}
	if len(s) > 0 {
		out = append(out, s)
	}
	return out
}

// saveItems saves (or follows) URIs. A write sends them all without a
// check: saving to the library and following are idempotent ("Save Items
// to User's Library", PUT, and the legacy PUT endpoints: an item already
// saved stays saved once), so a check would prevent nothing and cost a
// request; the outcome is then ok, whether or not an item was there
// before. Without write it checks what is missing.
func (c *client) saveItems(ctx context.Context, all []string, write bool) (providers.Outcome, error) {
	if write {
		return providers.OutcomeOK, c.writeItems(ctx, all)
	}
	var missing []string
	if c.p.cfg.Mode == ModeLegacy {
		m, err := c.legacyMissing(ctx, all)
		if err != nil {
			return "", err
		}
		missing = m
	} else {
		m, err := c.libraryMissing(ctx, all)
		if err != nil {
			return "", err
		}
		missing = m
	}
	if len(missing) == 0 {
		return providers.OutcomeAlready, nil
	}
	return providers.OutcomeOK, nil
}

// writeItems saves (or follows) every URI, in the endpoints' batches.
func (c *client) writeItems(ctx context.Context, all []string) error {
	if c.p.cfg.Mode == ModeLegacy {
		return c.legacySave(ctx, all)
	}
	for _, part := range chunks(all, libraryBatch) {
		if err := c.do(ctx, http.MethodPut, "me/library?"+urisQuery(part), nil, nil, http.StatusOK, http.StatusNoContent); err != nil {
			return err
		}
	}
	return nil
}

func (c *client) libraryMissing(ctx context.Context, all []string) ([]string, error) {
	var missing []string
	for _, part := range chunks(all, libraryBatch) {
		var has []bool
		if err := c.do(ctx, http.MethodGet, "me/library/contains?"+urisQuery(part), nil, &has, http.StatusOK); err != nil {
			return nil, err
		}
		if len(has) != len(part) {
			return nil, fmt.Errorf("spotify: library/contains answered %d values for %d URIs", len(has), len(part))
		}
		for i, ok := range has {
			if !ok {
				missing = append(missing, part[i])
			}
		}
	}
	return missing, nil
}

// urisQuery encodes the "uris" parameter of the library endpoints.
func urisQuery(u []string) string {
	return url.Values{"uris": {strings.Join(u, ",")}}.Encode()
}
