package applemusic

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"time"

	"golang.org/x/oauth2"

	"github.com/presave/presave/internal/providers"
	"github.com/presave/presave/internal/providers/internal/oauthx"
)

// Defaults.
const (
	// APIURLDefault is Apple's Music API host.
	APIURLDefault = "https://api.music.apple.com/"
	// UserTokenLifetimeDefault is how long we count on a Music User Token
	// (APPLE_USER_TOKEN_LIFETIME). Apple documents no lifetime: tokens
	// last months and then answer 403. Six months is what MusicKit
	// integrators report; the campaign guard refuses pre-saves due later.
	UserTokenLifetimeDefault = 180 * 24 * time.Hour
	// devProbeTTL is how long a check that the developer token works is
	// trusted when a 401 needs telling apart (see unauthorized).
	devProbeTTL = 30 * time.Second
)

// Config configures the provider.
type Config struct {
	// DevTokens signs the developer token; required.
	DevTokens *DevTokens
	// APIURL is the Music API's base URL (APIURLDefault when empty).
	APIURL string
	// AuthorizeURL is our own page that runs MusicKit JS for a state
	// (AuthCodeURL adds ?state=…); required.
	AuthorizeURL string
	// UserTokenLifetime is how long a Music User Token is counted on
	// (UserTokenLifetimeDefault when zero).
	UserTokenLifetime time.Duration
	HTTPClient        *http.Client
}

// Provider is Apple Music. Create it with New.
type Provider struct {
	cfg  Config
	base *url.URL
	hc   *http.Client

	mu sync.Mutex
	// devOKUntil is until when the developer token is known to work
	// (a catalogue request with it alone succeeded).
	devOKUntil time.Time
}

// New validates cfg and returns the provider.
func New(cfg Config) (*Provider, error) {
	if cfg.DevTokens == nil {
		return nil, errors.New("applemusic: a developer token signer is required")
	}
	if cfg.AuthorizeURL == "" {
		return nil, errors.New("applemusic: the authorize page URL is required")
	}
	if cfg.APIURL == "" {
		cfg.APIURL = APIURLDefault
	}
	if cfg.UserTokenLifetime == 0 {
		cfg.UserTokenLifetime = UserTokenLifetimeDefault
	}
	if cfg.UserTokenLifetime < 2*24*time.Hour {
		return nil, fmt.Errorf("applemusic: user token lifetime %s is shorter than two days", cfg.UserTokenLifetime)
	}
	base, err := url.Parse(strings.TrimRight(cfg.APIURL, "/") + "/")
	if err != nil || !base.IsAbs() {
		return nil, fmt.Errorf("applemusic: APPLE_MUSIC_API_URL %q is not an absolute URL", cfg.APIURL)
	}
	return &Provider{cfg: cfg, base: base, hc: oauthx.BaseClient(cfg.HTTPClient)}, nil
}

// Name implements providers.Provider.
func (p *Provider) Name() providers.Name { return providers.AppleMusic }

// DeveloperToken is the current developer token, which the page hands
// to MusicKit JS (MusicKit.configure): Apple designs it to be public.
func (p *Provider) DeveloperToken() (string, error) { return p.cfg.DevTokens.Token() }

// APIOrigin is the Music API's origin, which MusicKit JS calls from the
// fan's browser.
func (p *Provider) APIOrigin() string { return p.base.Scheme + "://" + p.base.Host }

// Actions: add_to_library when the release names its album or songs
// (by ID or by code), add_to_my_playlist when it also names the fan's
// playlist.
func (p *Provider) Actions(t providers.Target) []providers.Action {
	if len(t.AlbumIDs) == 0 && len(t.TrackIDs) == 0 && t.UPC == "" && len(t.ISRCs) == 0 {
		return nil
	}
	out := []providers.Action{providers.ActionAddToLibrary}
	if t.MyPlaylist.Name != "" {
		out = append(out, providers.ActionAddToMyPlaylist)
	}
	return out
}

// Scopes: MusicKit has none; a Music User Token reaches the whole
// library, which the consent wording says.
func (p *Provider) Scopes([]providers.Action) []string { return nil }

// AuthCodeURL is our MusicKit page for the state: Apple Music has no
// OAuth redirect, the fan authorizes in MusicKit JS on that page.
func (p *Provider) AuthCodeURL(state, _ string, _ []string) string {
	return p.cfg.AuthorizeURL + "?" + url.Values{"state": {state}}.Encode()
}

// maxUserToken bounds the Music User Token we accept; real ones are a
// few hundred characters.
const maxUserToken = 4096

// userTokenChars is what a Music User Token is made of (base64 and
// JWT-like text); anything else is refused before it reaches a header.
var userTokenChars = regexp.MustCompile(`^[A-Za-z0-9+/=._~-]+$`)

// Exchange checks a Music User Token from MusicKit JS against the API
// (GET /v1/me/storefront) and returns it as a grant with the fan's
// storefront; the verifier is unused. The token is kept as the grant's
// refresh token: it is the lasting secret, and there is no other.
func (p *Provider) Exchange(ctx context.Context, userToken, _ string) (providers.Grant, error) {
	if userToken == "" || len(userToken) > maxUserToken || !userTokenChars.MatchString(userToken) {
		return providers.Grant{}, &providers.Error{Provider: providers.AppleMusic, Op: "exchange", Class: providers.GrantInvalid,
			Reason: "user_token_malformed", Err: errors.New("not a Music User Token")}
	}
	c := &client{p: p, user: userToken}
	sf, err := c.storefront(ctx)
	if err != nil {
		return providers.Grant{}, err
	}
	return providers.Grant{Token: &oauth2.Token{RefreshToken: userToken}, Storefront: sf}, nil
}

// GrantExpiry is when a Music User Token obtained at authorizedAt is no
// longer counted on: it cannot be refreshed.
func (p *Provider) GrantExpiry(authorizedAt time.Time) time.Time {
	return authorizedAt.Add(p.cfg.UserTokenLifetime)
}

// Revoke: Apple offers no revoke endpoint; deleting our sealed copy is
// all there is.
func (p *Provider) Revoke(context.Context, string) error { return providers.ErrRevokeUnsupported }

// QuotaDay: Apple Music has no daily unit quota.
func (p *Provider) QuotaDay(time.Time) (string, time.Time) { return "", time.Time{} }

// QuotaCost: none.
func (p *Provider) QuotaCost(providers.Action, providers.Outcome) int { return 0 }

// Calls: add_to_library checks the catalogue (with the library
// relationship), adds, and reads back, per chunk of IDs;
// add_to_my_playlist lists the songs, reads the playlist, adds, and
// reads back.
func (p *Provider) Calls(a providers.Action, t providers.Target) int {
	switch a {
	case providers.ActionAddToLibrary:
		_, ids := libraryItems(t)
		n := max(1, (len(ids)+maxIDs-1)/maxIDs)
		return 2*n + 1
	case providers.ActionAddToMyPlaylist:
		return 4
	}
	return 1
}

// Client returns the client acting with the fan's Music User Token (the
// grant's refresh token). Nothing refreshes: onRefresh is never called.
func (p *Provider) Client(_ context.Context, tok *oauth2.Token, _ func(*oauth2.Token)) providers.Client {
	return &client{p: p, user: tok.RefreshToken}
}

// ResolveIn finds the album (CodeUPC) or song (CodeISRC) a code names in
// a storefront's catalogue, with the developer token alone.
func (p *Provider) ResolveIn(ctx context.Context, storefront string, kind providers.CodeKind, code string) (string, error) {
	if !ValidStorefront(storefront) {
		return "", &providers.Error{Provider: providers.AppleMusic, Op: "resolve", Class: providers.Permanent,
			Reason: "storefront_invalid", Err: fmt.Errorf("storefront %q", storefront)}
	}
	c := &client{p: p}
	return c.resolve(ctx, storefront, kind, code)
}

var storefrontID = regexp.MustCompile(`^[a-z]{2}$`)

// ValidStorefront reports whether s is a storefront ID as Apple names
// them: an ISO 3166-1 alpha-2 country code, lower case.
func ValidStorefront(s string) bool { return storefrontID.MatchString(s) }

// App implements providers.Provider: an Apple Developer Program
// membership has no app status and no user cap, only the key.
func (p *Provider) App() providers.App { return providers.App{Declared: true} }

// CheckApp implements providers.Provider: the developer token is signed
// and sent to "Get a Storefront" (GET /v1/storefronts/us), which needs
// nothing else; Apple answers 401 to a token it does not accept.
func (p *Provider) CheckApp(ctx context.Context) error {
	c := &client{p: p}
	return c.call(ctx, "app", func() error {
		return c.do(ctx, http.MethodGet, "v1/storefronts/us", nil, nil, nil, http.StatusOK)
	})
}

// devTokenWorks reports whether the developer token alone is accepted
// (GET /v1/storefronts/us), remembering a yes for devProbeTTL.
func (p *Provider) devTokenWorks(ctx context.Context) bool {
	p.mu.Lock()
	ok := time.Now().Before(p.devOKUntil)
	p.mu.Unlock()
	if ok {
		return true
	}
	c := &client{p: p}
	if err := c.do(ctx, http.MethodGet, "v1/storefronts/us", nil, nil, nil, http.StatusOK); err != nil {
		return false
	}
	p.mu.Lock()
	p.devOKUntil = time.Now().Add(devProbeTTL)
	p.mu.Unlock()
	return true
}
