// Package fake is an in-process stand-in for Spotify (accounts + Web API)
// and Google (OAuth + YouTube Data API), served by one http.Handler so a
// single base URL configures everything. It is the test double for
// internal/providers: the real client libraries talk to it over real HTTP.
//
// Layout under one base URL (see URLs):
//
//	/authorize, /api/token                 Spotify accounts
//	/v1/...                                Spotify Web API (library and legacy endpoints)
//	/o/oauth2/auth                         Google consent (auto-approves)
//	/google/token, /google/revoke          Google token (an ID token with "sub" for openid) and revoke
//	/google/v1/userinfo                    OpenID userinfo (only "sub")
//	/youtube/v3/...                        YouTube Data API
//	/v1/catalog/..., /v1/me/library...     Apple Music API (see applemusic.go)
//	/musickit/v3/musickit.js               a stand-in MusicKit JS with a consent screen
//	/_fake/...                             fault injection and state (JSON)
//
// Consent auto-approves: the user is the "user" query parameter of the
// authorize URL if present, else a generated ID; "deny=1" answers
// error=access_denied. State, faults and counters are guarded by one mutex
// that is never held while sleeping for injected latency.
package fake

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"
	_ "time/tzdata" // quota resets at midnight America/Los_Angeles wherever we run

	"github.com/presave/presave/internal/providers"
)

// Options configure a Server. The zero value is usable.
type Options struct {
	// Now is the clock; time.Now when nil.
	Now func() time.Time
	// AccessTokenTTL is the lifetime of access tokens (default 1h).
	AccessTokenTTL time.Duration
	// RotateRefreshTokens makes every refresh issue a new refresh token
	// and invalidate the old one, for both providers (see SetRotation).
	RotateRefreshTokens bool
	// YouTubeDailyQuota is the per-project unit budget (default 10,000).
	YouTubeDailyQuota int
	// Logger receives one debug line per request (never a token); nil discards.
	Logger *slog.Logger
	// Apps are the apps registered with the fake, as in each service's
	// developer console. A provider with apps registered authenticates
	// every client against them at its authorize and token endpoints;
	// one without takes any client ID as registered, for tests that are
	// not about app credentials.
	Apps []App
}

// App is one app registered with a provider: its client ID and secret.
type App struct {
	Provider     providers.Name
	ClientID     string
	ClientSecret string
}

// URLSet is every base URL a client needs to use the fake at base, and
// the app statuses that match it.
type URLSet struct {
	SpotifyAccountsURL string // SPOTIFY_ACCOUNTS_URL
	SpotifyAPIURL      string // SPOTIFY_API_URL
	GoogleAuthURL      string // GOOGLE_AUTH_URL
	GoogleTokenURL     string // GOOGLE_TOKEN_URL
	GoogleRevokeURL    string // GOOGLE_REVOKE_URL
	GoogleUserinfoURL  string // GOOGLE_USERINFO_URL
	YouTubeAPIURL      string // YOUTUBE_API_URL
	AppleMusicAPIURL   string // APPLE_MUSIC_API_URL
	MusicKitJSURL      string // MUSICKIT_JS_URL (the API's)
	// The app status matching the fake's apps, which cap no users:
	// Spotify's in extended quota mode, Google's in production.
	SpotifyAppMode   string // SPOTIFY_APP_MODE
	GoogleAppTesting string // GOOGLE_APP_TESTING
}

// URLs returns the URLs of the fake served at base (e.g. "http://127.0.0.1:8090").
func URLs(base string) URLSet {
	base = strings.TrimRight(base, "/")
	return URLSet{
		SpotifyAccountsURL: base,
		SpotifyAPIURL:      base + "/v1/",
		GoogleAuthURL:      base + "/o/oauth2/auth",
		GoogleTokenURL:     base + "/google/token",
		GoogleRevokeURL:    base + "/google/revoke",
		GoogleUserinfoURL:  base + "/google/v1/userinfo",
		YouTubeAPIURL:      base + "/",
		AppleMusicAPIURL:   base + "/",
		MusicKitJSURL:      base + "/musickit/v3/musickit.js",
		SpotifyAppMode:     "extended",
		GoogleAppTesting:   "false",
	}
}

// Env returns the URLs and app statuses as environment variable
// settings, in a stable order.
func (u URLSet) Env() [][2]string {
	return [][2]string{
		{"SPOTIFY_ACCOUNTS_URL", u.SpotifyAccountsURL},
		{"SPOTIFY_API_URL", u.SpotifyAPIURL},
		{"GOOGLE_AUTH_URL", u.GoogleAuthURL},
		{"GOOGLE_TOKEN_URL", u.GoogleTokenURL},
		{"GOOGLE_REVOKE_URL", u.GoogleRevokeURL},
		{"GOOGLE_USERINFO_URL", u.GoogleUserinfoURL},
		{"YOUTUBE_API_URL", u.YouTubeAPIURL},
		{"APPLE_MUSIC_API_URL", u.AppleMusicAPIURL},
		{"MUSICKIT_JS_URL", u.MusicKitJSURL},
		{"SPOTIFY_APP_MODE", u.SpotifyAppMode},
		{"GOOGLE_APP_TESTING", u.GoogleAppTesting},
	}
}

// Server is the fake provider. Create it with New.
type Server struct {
	opts Options
	mux  *http.ServeMux
	// routeOwner is the provider each route pattern belongs to (set up
	// once by routes, read only after).
	routeOwner map[string]providers.Name
	log        *slog.Logger
	pt         *time.Location

	mu     sync.Mutex
	ttl    time.Duration
	rotate map[providers.Name]bool
	codes  map[string]*authCode
	access map[string]*accessToken
	// accessSweep is when expired and revoked access tokens may next be
	// swept out of access.
	accessSweep time.Time
	refresh     map[string]*grant
	grants      []*grant
	users       map[userKey]*user
	faults      map[providers.Name]*faults
	notLive     map[string]time.Time
	calls       map[string]int
	revoked     []RevokedGrant
	quota       map[string]*quotaDay // YouTube, per client ID (project)
	dailyLim    int
	rates       map[providers.Name]*rateMeter
	legacy403   bool
	// noChannel holds the Google users without a YouTube channel.
	noChannel map[string]bool
	// playlists holds every playlist by provider and ID; created lists
	// those users created, oldest first.
	playlists map[userKey]*playlist
	created   []*playlist
	// createDelay holds the answer to a playlist creation after the
	// playlist exists (SetCreateDelay).
	createDelay time.Duration
	// catalogue finds releases by "upc:CODE" or "isrc:CODE" (SetCatalogue).
	catalogue map[string]catalogueEntry
	// apple is the Apple Music catalogue, keys and user tokens.
	apple *appleMusic
	// apps holds the registered apps' secrets by provider and client ID.
	apps map[providers.Name]map[string]string
	// writes logs every authenticated write request (not its body).
	writes []Write
	// approved is what each user granted each client so far, and
	// dialogs/silent count how authorizations went (see authorize).
	approved map[approvalKey][]string
	dialogs  int
	silent   int
}

// approvalKey names one user's approval of one client.
type approvalKey struct {
	p              providers.Name
	client, userID string
}

type userKey struct {
	p  providers.Name
	id string
}

type user struct {
	albums, tracks, artists, likes map[string]bool
	// followed holds the Spotify playlists the user follows;
	// subscriptions the YouTube channels the user subscribes to.
	followed, subscriptions map[string]bool
}

type authCode struct {
	p           providers.Name
	clientID    string
	redirectURI string
	challenge   string
	method      string
	scopes      []string
	user        string
	expires     time.Time
}

type grant struct {
	p        providers.Name
	clientID string
	user     string
	scopes   []string
	refresh  string
	revoked  bool
	// authorized is when the code was exchanged: a Spotify refresh
	// token dies six calendar months later, refreshed or not.
	authorized time.Time
}

// spotifyRefreshExpiry is when a Spotify grant authorized at t stops
// refreshing: six calendar months later ("Refresh tokens are valid for
// 6 months"), on the month's last day when it has no such day. The
// documentation does not say which; the earlier day is the stricter.
func spotifyRefreshExpiry(t time.Time) time.Time {
	t = t.UTC()
	end := time.Date(t.Year(), t.Month()+7, 0, 0, 0, 0, 0, time.UTC).Day() // days in the sixth month on
	return time.Date(t.Year(), t.Month()+6, min(t.Day(), end), t.Hour(), t.Minute(), t.Second(), t.Nanosecond(), time.UTC)
}

type accessToken struct {
	g       *grant
	expires time.Time
}

type faults struct {
	latency    time.Duration
	rps        float64
	burst      int
	tat        map[string]time.Time // GCRA theoretical arrival time per client ID
	errorRate  float64
	quotaUntil time.Time // forced quota exhaustion
}

type quotaDay struct {
	day  string
	used int
}

type rateMeter struct {
	sec   int64
	count int
	max   int
}

// New returns a fake provider.
func New(opts Options) *Server {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.AccessTokenTTL <= 0 {
		opts.AccessTokenTTL = time.Hour
	}
	if opts.YouTubeDailyQuota <= 0 {
		opts.YouTubeDailyQuota = 10000
	}
	lg := opts.Logger
	if lg == nil {
		lg = slog.New(slog.DiscardHandler)
	}
	pt, err := time.LoadLocation("America/Los_Angeles")
	if err != nil {
		panic(err) // time/tzdata is embedded: cannot happen
	}
	s := &Server{
		opts: opts, log: lg, pt: pt,
		ttl:        opts.AccessTokenTTL,
		rotate:     map[providers.Name]bool{providers.Spotify: opts.RotateRefreshTokens, providers.YouTube: opts.RotateRefreshTokens},
		apple:      newAppleMusic(),
		routeOwner: map[string]providers.Name{},
		codes:      map[string]*authCode{},
		access:     map[string]*accessToken{},
		refresh:    map[string]*grant{},
		users:      map[userKey]*user{},
		faults:     map[providers.Name]*faults{providers.Spotify: newFaults(), providers.YouTube: newFaults(), providers.AppleMusic: newFaults()},
		notLive:    map[string]time.Time{},
		calls:      map[string]int{},
		quota:      map[string]*quotaDay{},
		dailyLim:   opts.YouTubeDailyQuota,
		rates:      map[providers.Name]*rateMeter{providers.Spotify: {}, providers.YouTube: {}, providers.AppleMusic: {}},
		approved:   map[approvalKey][]string{},
		noChannel:  map[string]bool{},
		playlists:  map[userKey]*playlist{},
		catalogue:  map[string]catalogueEntry{},
		apps:       map[providers.Name]map[string]string{},
	}
	for _, a := range opts.Apps {
		if s.apps[a.Provider] == nil {
			s.apps[a.Provider] = map[string]string{}
		}
		s.apps[a.Provider][a.ClientID] = a.ClientSecret
	}
	s.routes()
	return s
}

func newFaults() *faults { return &faults{tat: map[string]time.Time{}} }

// ProviderOf names the provider whose API r calls ("" for the control
// API and unknown routes).
func (s *Server) ProviderOf(r *http.Request) providers.Name {
	_, pattern := s.mux.Handler(r)
	return s.routeOwner[pattern]
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

func (s *Server) now() time.Time { return s.opts.Now() }

func randomToken(prefix string) string {
	b := make([]byte, 16)
	_, _ = rand.Read(b) // never fails (crypto/rand)
	return prefix + hex.EncodeToString(b)
}

// randomDigits returns n random decimal digits, like a Google "sub".
func randomDigits(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	for i := range b {
		b[i] = '0' + b[i]%10
	}
	if b[0] == '0' {
		b[0] = '1'
	}
	return string(b)
}

func s256(verifier string) string {
	h := sha256.Sum256([]byte(verifier))
	return base64.RawURLEncoding.EncodeToString(h[:])
}

// userLocked returns (creating) the state of user id at p. s.mu must be held.
func (s *Server) userLocked(p providers.Name, id string) *user {
	k := userKey{p, id}
	u := s.users[k]
	if u == nil {
		u = &user{
			albums: map[string]bool{}, tracks: map[string]bool{}, artists: map[string]bool{},
			likes: map[string]bool{}, followed: map[string]bool{}, subscriptions: map[string]bool{},
		}
		s.users[k] = u
	}
	return u
}

// notLiveLocked reports whether id is not live yet. s.mu must be held.
func (s *Server) notLiveLocked(id string) bool {
	until, ok := s.notLive[id]
	return ok && s.now().Before(until)
}

func hasScope(scopes []string, want ...string) bool {
	for _, w := range want {
		if slices.Contains(scopes, w) {
			return true
		}
	}
	return false
}

// nextPacificMidnight is when YouTube quotas reset after t.
func (s *Server) nextPacificMidnight(t time.Time) time.Time {
	lt := t.In(s.pt)
	return time.Date(lt.Year(), lt.Month(), lt.Day()+1, 0, 0, 0, 0, s.pt)
}
