// Package registry builds the configured providers from the environment,
// so the API and the worker construct them the same way. Production needs
// only client credentials; every base URL defaults to the real host and
// can point at the fake provider instead.
package registry

import (
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/presave/presave/internal/config"
	"github.com/presave/presave/internal/providers"
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
	// Spotify offers no way to revoke a grant; Google does.
	return n == providers.YouTube
}

// CallbackPath is the API route the providers redirect back to.
func CallbackPath(n providers.Name) string { return "/connect/" + string(n) + "/callback" }

// FromEnv builds both providers. publicURL is the API's externally visible
// base URL (PUBLIC_URL), used for the OAuth redirect URIs.
//
// Variables: SPOTIFY_CLIENT_ID, SPOTIFY_CLIENT_SECRET, SPOTIFY_ACCOUNTS_URL,
// SPOTIFY_API_URL, SPOTIFY_API_MODE (library|legacy), GOOGLE_CLIENT_ID,
// GOOGLE_CLIENT_SECRET, GOOGLE_AUTH_URL, GOOGLE_TOKEN_URL,
// GOOGLE_REVOKE_URL, GOOGLE_USERINFO_URL, YOUTUBE_API_URL,
// GOOGLE_APP_TESTING (the Google OAuth app is in "Testing" status),
// PROVIDER_TIMEOUT (per HTTP call, default 20s).
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
	sp := spotify.New(spotify.Config{
		ClientID:     env.String("SPOTIFY_CLIENT_ID", "presave-dev"),
		ClientSecret: env.String("SPOTIFY_CLIENT_SECRET", "presave-dev-secret"),
		RedirectURL:  publicURL + CallbackPath(providers.Spotify),
		AccountsURL:  env.String("SPOTIFY_ACCOUNTS_URL", ""),
		APIURL:       env.String("SPOTIFY_API_URL", ""),
		Mode:         mode,
		HTTPClient:   hc,
	})
	testing, err := env.Bool("GOOGLE_APP_TESTING", false)
	if err != nil {
		return nil, err
	}
	yt := youtube.New(youtube.Config{
		Testing:      testing,
		ClientID:     env.String("GOOGLE_CLIENT_ID", "presave-dev"),
		ClientSecret: env.String("GOOGLE_CLIENT_SECRET", "presave-dev-secret"),
		RedirectURL:  publicURL + CallbackPath(providers.YouTube),
		AuthURL:      env.String("GOOGLE_AUTH_URL", ""),
		TokenURL:     env.String("GOOGLE_TOKEN_URL", ""),
		RevokeURL:    env.String("GOOGLE_REVOKE_URL", ""),
		UserinfoURL:  env.String("GOOGLE_USERINFO_URL", ""),
		APIURL:       env.String("YOUTUBE_API_URL", ""),
		HTTPClient:   hc,
	})
	return Set{providers.Spotify: sp, providers.YouTube: yt}, nil
}
