// Package registry builds the configured providers from the environment,
// so the API and the worker construct them the same way. Production needs
// only client credentials; every base URL defaults to the real host and
// can point at the fake provider instead.
package registry

import (
	"errors"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/presave/presave/internal/config"
	"github.com/presave/presave/internal/providers"
	"github.com/presave/presave/internal/providers/applemusic"
	"github.com/presave/presave/internal/providers/spotify"
	"github.com/presave/presave/internal/providers/youtube"
)

// Set holds one provider per name.
type Set map[providers.Name]providers.Provider

// Get returns the provider named n, or false.
func (s Set) Get(n providers.Name) (providers.Provider, bool) {
	p, ok := s[n]
	return p, ok
}

// Revocable reports whether provider n has a revoke endpoint, i.e. whether
// a purged grant must still be revoked there. It fits store.Revocable.
func (s Set) Revocable(n providers.Name) bool {
	// Spotify and Apple Music offer no way to revoke a grant; Google does.
	return n == providers.YouTube
}

// CallbackPath is the API route the providers redirect back to (for
// Apple Music: the route our MusicKit page posts the user token to).
func CallbackPath(n providers.Name) string { return "/connect/" + string(n) + "/callback" }

// The client credentials presave uses when none are configured: the ones
// the fake provider (cmd/fakeprovider) registers. No real service knows
// them, which preflight reports.
const (
	DevClientID     = "presave-dev"
	DevClientSecret = "presave-dev-secret"
)

// AuthorizePath is the API route of the page that runs MusicKit JS for
// an Apple Music connection (Apple Music has no OAuth redirect).
const AuthorizePath = "/connect/applemusic/authorize"

// FromEnv builds both providers. publicURL is the API's externally visible
// base URL (PUBLIC_URL), used for the OAuth redirect URIs.
//
// Variables: SPOTIFY_CLIENT_ID, SPOTIFY_CLIENT_SECRET, SPOTIFY_ACCOUNTS_URL,
// SPOTIFY_API_URL, SPOTIFY_API_MODE (library|legacy), GOOGLE_CLIENT_ID,
// GOOGLE_CLIENT_SECRET, GOOGLE_AUTH_URL, GOOGLE_TOKEN_URL,
// GOOGLE_REVOKE_URL, GOOGLE_USERINFO_URL, YOUTUBE_API_URL,
// GOOGLE_APP_TESTING (the Google OAuth app is in "Testing" status),
// SPOTIFY_APP_MODE (development|extended) and SPOTIFY_APP_USERS,
// PROVIDER_TIMEOUT (per HTTP call, default 20s), and for Apple Music
// (configured only when APPLE_TEAM_ID is set) APPLE_TEAM_ID,
// APPLE_KEY_ID, APPLE_PRIVATE_KEY or APPLE_PRIVATE_KEY_FILE,
// APPLE_MUSIC_API_URL, APPLE_USER_TOKEN_LIFETIME (default 180d).
func FromEnv(env config.Env, publicURL string) (Set, error) {
	publicURL = strings.TrimRight(publicURL, "/")
	timeout, err := env.Duration("PROVIDER_TIMEOUT", 20*time.Second)
	if err != nil {
		return nil, err
	}
	// One transport, sized for a release-day burst against one host.
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConns, tr.MaxIdleConnsPerHost = 512, 256
	hc := &http.Client{Timeout: timeout, Transport: tr}

	mode := env.String("SPOTIFY_API_MODE", spotify.ModeLibrary)
	if mode != spotify.ModeLibrary && mode != spotify.ModeLegacy {
		return nil, fmt.Errorf("SPOTIFY_API_MODE=%q: want %s or %s", mode, spotify.ModeLibrary, spotify.ModeLegacy)
	}
	app, err := spotifyApp(env)
	if err != nil {
		return nil, err
	}
	if app.Status == spotify.AppDevelopment && mode == spotify.ModeLegacy {
		return nil, fmt.Errorf("SPOTIFY_API_MODE=%s needs an app in extended quota mode: Spotify closed those endpoints to development-mode apps in March 2026 (set SPOTIFY_APP_MODE=%s if yours has extended quota, or use %s)",
			spotify.ModeLegacy, spotify.AppExtended, spotify.ModeLibrary)
	}
	sp := spotify.New(spotify.Config{
		ClientID:     env.String("SPOTIFY_CLIENT_ID", DevClientID),
		ClientSecret: env.String("SPOTIFY_CLIENT_SECRET", DevClientSecret),
		RedirectURL:  publicURL + CallbackPath(providers.Spotify),
		AccountsURL:  env.String("SPOTIFY_ACCOUNTS_URL", ""),
		APIURL:       env.String("SPOTIFY_API_URL", ""),
		Mode:         mode,
		App:          app,
		HTTPClient:   hc,
	})
	testing, err := env.Bool("GOOGLE_APP_TESTING", false)
	if err != nil {
		return nil, err
	}
	yt := youtube.New(youtube.Config{
		Testing:         testing,
		TestingDeclared: env.String("GOOGLE_APP_TESTING", "") != "",
		ClientID:        env.String("GOOGLE_CLIENT_ID", DevClientID),
		ClientSecret:    env.String("GOOGLE_CLIENT_SECRET", DevClientSecret),
		RedirectURL:     publicURL + CallbackPath(providers.YouTube),
		AuthURL:         env.String("GOOGLE_AUTH_URL", ""),
		TokenURL:        env.String("GOOGLE_TOKEN_URL", ""),
		RevokeURL:       env.String("GOOGLE_REVOKE_URL", ""),
		UserinfoURL:     env.String("GOOGLE_USERINFO_URL", ""),
		APIURL:          env.String("YOUTUBE_API_URL", ""),
		HTTPClient:      hc,
	})
	set := Set{providers.Spotify: sp, providers.YouTube: yt}
	am, err := appleMusicFromEnv(env, publicURL, hc)
	if err != nil {
		return nil, err
	}
	if am != nil {
		set[providers.AppleMusic] = am
	}
	return set, nil
}

// spotifyApp reads the Spotify app's status (SPOTIFY_APP_MODE, default
// development: where every app starts) and, for a development-mode app
// older than Spotify's 5-user cap, its allow-list size (SPOTIFY_APP_USERS).
func spotifyApp(env config.Env) (providers.App, error) {
	app := providers.App{Status: env.String("SPOTIFY_APP_MODE", spotify.AppDevelopment), Declared: env.String("SPOTIFY_APP_MODE", "") != ""}
	if app.Status != spotify.AppDevelopment && app.Status != spotify.AppExtended {
		return app, fmt.Errorf("SPOTIFY_APP_MODE=%q: want %s or %s, as the app's settings in Spotify's developer dashboard show", app.Status, spotify.AppDevelopment, spotify.AppExtended)
	}
	users, err := env.Int("SPOTIFY_APP_USERS", 0)
	switch {
	case err != nil:
		return app, err
	case users < 0 || users > 0 && app.Status != spotify.AppDevelopment:
		return app, fmt.Errorf("SPOTIFY_APP_USERS=%d: only a development-mode app has a user cap (a positive number)", users)
	}
	app.MaxUsers = users
	return app, nil
}

// appleMusicFromEnv builds Apple Music when APPLE_TEAM_ID is set (nil
// otherwise: the provider is not offered).
func appleMusicFromEnv(env config.Env, publicURL string, hc *http.Client) (*applemusic.Provider, error) {
	team := env.String("APPLE_TEAM_ID", "")
	if team == "" {
		if env.String("APPLE_KEY_ID", "") != "" || env.String("APPLE_PRIVATE_KEY", "") != "" || env.String("APPLE_PRIVATE_KEY_FILE", "") != "" {
			return nil, errors.New("APPLE_KEY_ID or APPLE_PRIVATE_KEY is set without APPLE_TEAM_ID: set all three to offer Apple Music, or none")
		}
		return nil, nil
	}
	key := []byte(env.String("APPLE_PRIVATE_KEY", ""))
	if file := env.String("APPLE_PRIVATE_KEY_FILE", ""); file != "" {
		if len(key) > 0 {
			return nil, errors.New("set APPLE_PRIVATE_KEY or APPLE_PRIVATE_KEY_FILE, not both")
		}
		b, err := os.ReadFile(file)
		if err != nil {
			return nil, fmt.Errorf("APPLE_PRIVATE_KEY_FILE: %w", err)
		}
		key = b
	}
	// A PEM pasted into one line of an env file keeps its line breaks as \n.
	key = []byte(strings.ReplaceAll(string(key), `\n`, "\n"))
	dev, err := applemusic.NewDevTokens(applemusic.DevTokenConfig{TeamID: team, KeyID: env.String("APPLE_KEY_ID", ""), PrivateKey: key})
	if err != nil {
		return nil, err
	}
	lifetime, err := Days(env, "APPLE_USER_TOKEN_LIFETIME", applemusic.UserTokenLifetimeDefault)
	if err != nil {
		return nil, err
	}
	return applemusic.New(applemusic.Config{DevTokens: dev, APIURL: env.String("APPLE_MUSIC_API_URL", ""),
		AuthorizeURL: publicURL + AuthorizePath, UserTokenLifetime: lifetime, HTTPClient: hc})
}

// Days reads a duration given in days ("180d") or as a Go duration.
func Days(env config.Env, name string, def time.Duration) (time.Duration, error) {
	v := env.String(name, "")
	if n, ok := strings.CutSuffix(v, "d"); ok {
		d, err := strconv.Atoi(n)
		if err != nil || d <= 0 {
			return 0, fmt.Errorf("%s=%q: want a number of days such as 180d", name, v)
		}
		return time.Duration(d) * 24 * time.Hour, nil
	}
	return env.Duration(name, def)
}
