// Package providers defines what presave needs from a music provider
// (Spotify, YouTube, Apple Music): OAuth 2.0 with PKCE (or, for Apple
// Music, a user token from MusicKit JS), the account ID, token refresh
// with rotation reporting, idempotent pre-save actions and grant
// revocation. Every error a provider returns is a *Error with a Class:
// each client classifies its own service's answers once (its classify
// function), so the API and the workers decide retry/wait/defer/give-up
// the same way from the Class alone.
//
// Provider HTTP lives only under this package (ARCHITECTURE.md, invariant 5).
package providers

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"time"

	"golang.org/x/oauth2"
)

// Name identifies a provider. The values are stored in PostgreSQL.
type Name string

// The providers presave supports.
const (
	Spotify    Name = "spotify"
	YouTube    Name = "youtube"
	AppleMusic Name = "applemusic"
)

// Names lists every supported provider.
var Names = []Name{Spotify, YouTube, AppleMusic}

// Valid reports whether n is a supported provider.
func (n Name) Valid() bool { return n == Spotify || n == YouTube || n == AppleMusic }

// HasAccountID reports whether the provider names the fan's account:
// Apple Music's API has no user ID, so an Apple Music connection is
// linked to our fan and to nothing at Apple.
func (n Name) HasAccountID() bool { return n != AppleMusic }

// Label is how fans see the provider's name.
func (n Name) Label() string {
	switch n {
	case Spotify:
		return "Spotify"
	case YouTube:
		return "YouTube"
	case AppleMusic:
		return "Apple Music"
	}
	return string(n)
}

// Action is one thing a fan consents to. The values are stored in
// PostgreSQL and shown to fans, so they never change meaning.
type Action string

// The pre-save actions. Every one acts only on what the fan's account may
// change: its library, what it follows, and playlists it owns.
const (
	// ActionSave saves the release's albums and tracks to the fan's Spotify library.
	ActionSave Action = "save"
	// ActionAddToLibrary adds the release's album (or, when only its
	// songs are known, its songs) to the fan's Apple Music library.
	ActionAddToLibrary Action = "add_to_library"
	// ActionFollow follows the release's artists on Spotify.
	ActionFollow Action = "follow"
	// ActionFollowPlaylist follows (saves) the artist's Spotify playlist.
	ActionFollowPlaylist Action = "follow_playlist"
	// ActionAddToMyPlaylist adds the release's tracks (Spotify) or video
	// (YouTube) or songs (Apple Music) to a playlist of the fan's own that presave creates on
	// release day, named as the release says, once.
	ActionAddToMyPlaylist Action = "add_to_my_playlist"
	// ActionLike likes the release's YouTube video.
	ActionLike Action = "like"
	// ActionSubscribe subscribes the fan to the artist's YouTube channel.
	ActionSubscribe Action = "subscribe"
	// ActionPlaylist is retired: it added to the release's playlist,
	// which belongs to the artist, and neither service lets a fan's
	// account add to a playlist it does not own. No provider offers it;
	// migration 005 failed the open pre-saves' "playlist" action with
	// ReasonActionRetired.
	ActionPlaylist Action = "playlist"
)

// ReasonActionRetired is the failure reason of a retired action.
const ReasonActionRetired = "action_retired"

// Target is what a release asks of one provider. Spotify uses the
// album/track/artist IDs and FollowPlaylistID; Apple Music the album and
// track (song) IDs of its catalogue; YouTube uses VideoID and ChannelID;
// all use MyPlaylist.
type Target struct {
	AlbumIDs  []string
	TrackIDs  []string
	ArtistIDs []string
	// FollowPlaylistID is the artist's Spotify playlist to follow.
	FollowPlaylistID string
	VideoID          string
	// ChannelID is the artist's YouTube channel to subscribe to.
	ChannelID string
	// MyPlaylist is the fan's own playlist to add the release to.
	MyPlaylist MyPlaylist
	// UPC and ISRCs name the album and tracks by code, for a provider to
	// find its own IDs by (Resolver) once per release; the actions they
	// allow are offered before that, and run once the IDs are found.
	UPC   string
	ISRCs []string
	// AccountID is the fan's provider account ID (set by the worker from
	// the pre-save; empty for release-level uses such as Actions).
	AccountID string
	// Storefront is the fan's Apple Music storefront (set by the worker
	// from the grant): the catalogue its IDs belong to.
	Storefront string
}

// CodeKind is a catalogue code a release may name its targets by.
type CodeKind string

// Catalogue codes.
const (
	// CodeUPC is an album's Universal Product Code.
	CodeUPC CodeKind = "upc"
	// CodeISRC is a track's International Standard Recording Code.
	CodeISRC CodeKind = "isrc"
)

// StorefrontResolver is a provider whose catalogue differs by storefront
// (Apple Music): it finds IDs by code with the app's own credentials in
// one storefront, once per release and storefront, never per fan.
type StorefrontResolver interface {
	// ResolveIn returns the ID of the album (CodeUPC) or track
	// (CodeISRC) the code names in storefront, or "" while it has none.
	ResolveIn(ctx context.Context, storefront string, kind CodeKind, code string) (string, error)
}

// Resolver is a provider that finds its catalogue IDs by code with the
// app's own credentials, no fan's grant: once per release, not per fan.
type Resolver interface {
	// Resolve returns the ID of the album (CodeUPC) or track (CodeISRC)
	// the code names, or "" while the catalogue has none.
	Resolve(ctx context.Context, kind CodeKind, code string) (string, error)
}

// MyPlaylist describes the playlist presave creates in the fan's account
// for ActionAddToMyPlaylist. Name empty means the release offers none.
type MyPlaylist struct {
	Name        string
	Description string
	// Key names the release: the playlist's description ends with
	// PlaylistMarker(Key), which is how a retry finds the playlist an
	// earlier attempt created, even one that crashed before recording it.
	Key string
	// ID is the playlist once known (recorded by an earlier attempt).
	ID string
}

// PlaylistMarker is the text that ends the description of every playlist
// presave creates for the release key: short, and unlike anything a
// person writes.
func PlaylistMarker(key string) string { return "[presave:" + key + "]" }

// FullDescription is the description presave gives the playlist: the
// release's, then the marker.
func (m MyPlaylist) FullDescription() string {
	if m.Description == "" {
		return PlaylistMarker(m.Key)
	}
	return m.Description + " " + PlaylistMarker(m.Key)
}

// Outcome is what happened to one action: the result of a successful
// Perform (ok, already), or failed as recorded by the worker.
type Outcome string

// Outcomes recorded per action.
const (
	OutcomeOK      Outcome = "ok"      // we performed it
	OutcomeAlready Outcome = "already" // it was already in effect; nothing sent
	// OutcomeFailed is recorded for an action that could not be done
	// (with a reason); Perform reports failures as errors, never as this.
	OutcomeFailed Outcome = "failed"
)

// Grant is what a completed authorization yields.
type Grant struct {
	Token     *oauth2.Token // access + refresh token and expiry
	AccountID string        // the provider's account ID (Spotify user ID, Google "sub"; none for Apple Music)
	Scopes    []string      // scopes granted
	// Storefront is the fan's Apple Music storefront ("" elsewhere).
	Storefront string
}

// Provider is one music provider.
type Provider interface {
	// Name is the provider's name.
	Name() Name
	// Actions lists the actions t makes possible on this provider, in a
	// stable order.
	Actions(t Target) []Action
	// Scopes returns the minimum OAuth scopes the actions need.
	Scopes(actions []Action) []string
	// AuthCodeURL returns the consent-screen URL for the state, with a
	// PKCE S256 challenge derived from verifier (oauth2.GenerateVerifier).
	// Apple Music has no OAuth: its URL is our own page that runs
	// MusicKit JS for the state.
	AuthCodeURL(state, verifier string, scopes []string) string
	// Exchange trades an authorization code (and the PKCE verifier) for a
	// token and reads the provider account ID. For Apple Music the code
	// is the Music User Token MusicKit JS obtained (no verifier): it is
	// checked against the API and its storefront read.
	Exchange(ctx context.Context, code, verifier string) (Grant, error)
	// Client returns a client acting for the fan holding tok. It refreshes
	// the access token when needed; after every refresh it calls onRefresh
	// (if non-nil) with the new token, whose RefreshToken is the rotated
	// one when the provider rotated it and the old one otherwise.
	Client(ctx context.Context, tok *oauth2.Token, onRefresh func(*oauth2.Token)) Client
	// Revoke revokes the grant at the provider. It returns
	// ErrRevokeUnsupported when the provider has no revoke endpoint and
	// ErrAlreadyRevoked when the provider no longer knows the grant;
	// RevokeSettled reads the answer.
	Revoke(ctx context.Context, refreshToken string) error
	// QuotaCost is the provider quota units one Perform of a costs
	// (YouTube writes cost 50 units of a daily per-project budget); 0
	// when the provider has no unit quota. With out "" it is the most it
	// can cost (what to reserve, or what a failed call may have spent);
	// with its outcome, what it did cost (OutcomeAlready: the check only).
	QuotaCost(a Action, out Outcome) int
	// QuotaDay names the provider's quota day containing t and when it
	// ends ("" and the zero time for a provider without a daily quota).
	QuotaDay(t time.Time) (day string, ends time.Time)
	// GrantExpiry is when a grant authorized at authorizedAt stops
	// working whatever we do (refreshing does not extend it), or the zero
	// time when the provider sets no fixed lifetime.
	GrantExpiry(authorizedAt time.Time) time.Time
	// Calls is how many requests one Perform of a on t makes at most when
	// it writes (checks included): what the shared rate limiter charges
	// up front, since it cannot see individual requests.
	Calls(a Action, t Target) int
	// App is the status and limits of the app presave is registered as
	// at the provider, as configured.
	App() App
	// CheckApp asks the provider, for no fan, whether it accepts the
	// app's credentials: nil when it does, else a *Error (Reason
	// "invalid_client" when it refused them).
	CheckApp(ctx context.Context) error
}

// App is what a provider app allows whatever our code does: the status
// the provider's console shows for it (SPOTIFY_APP_MODE,
// GOOGLE_APP_TESTING) and the caps that status sets.
type App struct {
	// Status is the app's status as the provider's console names it
	// ("development", "extended quota"; "testing", "in production"; "").
	Status string
	// MaxUsers is how many distinct accounts the app may serve in that
	// status (0: no cap): the users a Spotify development-mode app
	// allow-lists, the test users of a Google app in "Testing".
	MaxUsers int
	// Declared is false when the status is presave's default rather than
	// set by the operator.
	Declared bool
}

// Client performs pre-save actions for one fan.
type Client interface {
	// Perform applies a to t so that a retry after a crash never
	// duplicates anything: a write the API makes idempotent (saving,
	// following, liking) is sent without a check and answers OutcomeOK
	// (whether or not it was in effect before: we cannot tell); a write
	// that is not (adding to a playlist) checks first and answers
	// OutcomeAlready without writing when it is in effect.
	Perform(ctx context.Context, a Action, t Target) (Outcome, error)
	// InEffect reports whether a is already in effect for t.
	InEffect(ctx context.Context, a Action, t Target) (bool, error)
	// OwnPlaylist returns the ID of the fan's playlist for
	// t.MyPlaylist: the one an earlier attempt created (found by its
	// marker among the playlists the fan owns), or a new one. The worker
	// records the ID before ActionAddToMyPlaylist adds to it, so no
	// retry creates a second playlist.
	OwnPlaylist(ctx context.Context, t Target) (string, error)
}

// Combiner is a provider whose client performs several idempotent
// actions in one request (CombinedClient): Spotify's library endpoint
// saves albums and tracks and follows artists and playlists together.
type Combiner interface {
	// Combine returns the actions of as that one PerformCombined does
	// together on t, in as's order: two or more, or nil.
	Combine(as []Action, t Target) []Action
	// CombinedCalls is how many requests PerformCombined of as on t makes.
	CombinedCalls(as []Action, t Target) int
}

// CombinedClient is the client of a Combiner.
type CombinedClient interface {
	// PerformCombined writes every action of as (Combiner.Combine's) on
	// t. They are idempotent: on success each is OutcomeOK. An error
	// does not say which action it concerns; the caller performs them
	// one by one to find out.
	PerformCombined(ctx context.Context, as []Action, t Target) error
}

// PlanCalls is how many requests performing as on t takes at most: the
// actions p combines together (Combiner), the others one by one
// (Provider.Calls). The worker's pacing and the release plan count this
// way.
func PlanCalls(p Provider, as []Action, t Target) int {
	calls := 0
	if c, ok := p.(Combiner); ok {
		if group := c.Combine(as, t); len(group) > 1 {
			calls += c.CombinedCalls(group, t)
			as = slices.DeleteFunc(slices.Clone(as), func(a Action) bool { return slices.Contains(group, a) })
		}
	}
	for _, a := range as {
		calls += p.Calls(a, t)
	}
	return calls
}

// ErrRevokeUnsupported is returned by Revoke when the provider offers no
// way to revoke a grant (Spotify): deleting our copy is all we can do.
var ErrRevokeUnsupported = errors.New("provider has no revoke endpoint")

// ErrAlreadyRevoked is returned by Revoke when the provider no longer
// knows the grant (revoked by the fan, expired, or revoked by an earlier
// attempt of ours): what the revoke wanted.
var ErrAlreadyRevoked = errors.New("grant already revoked")

// RevokeOutcome is what a revoke settled, for the metric and the log.
type RevokeOutcome string

// Revoke outcomes.
const (
	RevokeRevoked RevokeOutcome = "revoked"         // the provider revoked it
	RevokeDeleted RevokeOutcome = "deleted"         // no revoke endpoint: our copy is gone, that is all
	RevokeAlready RevokeOutcome = "already_revoked" // the provider no longer knew it
)

// RevokeSettled reports what a Revoke's error means: ok is true when the
// grant no longer works at the provider (or cannot be revoked there), so
// our copy can go; false means try again or give up by the error's Class.
// The one place that reads Revoke's answers.
func RevokeSettled(err error) (RevokeOutcome, bool) {
	switch {
	case err == nil:
		return RevokeRevoked, true
	case errors.Is(err, ErrRevokeUnsupported):
		return RevokeDeleted, true
	case errors.Is(err, ErrAlreadyRevoked), ClassOf(err) == GrantInvalid:
		return RevokeAlready, true
	}
	return "", false
}

// Class says what a caller should do about an error.
type Class int

// Error classes, from most to least hopeful.
const (
	// Retryable: 5xx, network trouble, timeouts. Retry with backoff.
	Retryable Class = iota + 1
	// RateLimited: 429. Wait Error.RetryAfter; not a failure.
	RateLimited
	// QuotaExhausted: a daily unit quota is spent. Wait until Error.ResetAt; not a failure.
	QuotaExhausted
	// NotLiveYet: the target does not exist yet (release not out). Retry later, bounded.
	NotLiveYet
	// GrantInvalid: invalid_grant or revoked. The fan must reconnect; never retry.
	GrantInvalid
	// Permanent: anything else that will not change by retrying.
	Permanent
)

func (c Class) String() string {
	switch c {
	case Retryable:
		return "retryable"
	case RateLimited:
		return "rate_limited"
	case QuotaExhausted:
		return "quota_exhausted"
	case NotLiveYet:
		return "not_live_yet"
	case GrantInvalid:
		return "grant_invalid"
	case Permanent:
		return "permanent"
	}
	return fmt.Sprintf("class(%d)", int(c))
}

// Error is a classified provider error.
type Error struct {
	Provider   Name
	Op         string        // what we were doing, e.g. "save", "exchange", "refresh"
	Class      Class         // what to do about it
	Status     int           // HTTP status, 0 if none
	Reason     string        // machine-readable reason, e.g. "quotaExceeded", "invalid_grant"
	RetryAfter time.Duration // RateLimited: how long to wait
	ResetAt    time.Time     // QuotaExhausted: when the quota resets
	// Account marks a Permanent error that belongs to the fan's account
	// (no YouTube channel, no account ID), not to the release's target:
	// it never counts against the campaign (IsTargetError).
	Account bool
	Err     error // the underlying error, never carrying a token
}

func (e *Error) Error() string {
	s := fmt.Sprintf("%s %s: %s", e.Provider, e.Op, e.Class)
	if e.Status != 0 {
		s += fmt.Sprintf(" (HTTP %d", e.Status)
		if e.Reason != "" {
			s += " " + e.Reason
		}
		s += ")"
	} else if e.Reason != "" {
		s += " (" + e.Reason + ")"
	}
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

func (e *Error) Unwrap() error { return e.Err }

// ClassOf classifies any error: a *Error carries its class; context
// deadlines and network errors are Retryable; a canceled context is
// Retryable too (the work was interrupted, not refused); anything else is
// Permanent.
func ClassOf(err error) Class {
	if err == nil {
		return 0
	}
	var pe *Error
	if errors.As(err, &pe) {
		return pe.Class
	}
	var ne net.Error
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) || errors.As(err, &ne) {
		return Retryable
	}
	return Permanent
}

// IsTargetError reports whether err is an action failing because of the
// release's target rather than the fan: not live (not found, a
// non-existing ID) or refused for good (forbidden, invalid), and not an
// error the provider marked as the fan's account's. Grant, rate, quota
// and transient errors never are. The campaign guard counts these.
func IsTargetError(err error) bool {
	switch ClassOf(err) {
	case NotLiveYet:
		return true
	case Permanent:
		pe, ok := AsError(err)
		return !ok || !pe.Account
	}
	return false
}

// AsError returns err's *Error, if it has one.
func AsError(err error) (*Error, bool) {
	var pe *Error
	ok := errors.As(err, &pe)
	return pe, ok
}
