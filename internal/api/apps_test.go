package api_test

import (
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/presave/presave/internal/providers"
	"github.com/presave/presave/internal/providers/spotify"
	"github.com/presave/presave/internal/wire"
)

// warningCodes lists ws as "provider code".
func warningCodes(ws []wire.Warning) []string {
	var out []string
	for _, w := range ws {
		if w.Message == "" {
			out = append(out, w.Provider+" "+w.Code+" (no message)")
			continue
		}
		out = append(out, w.Provider+" "+w.Code)
	}
	slices.Sort(out)
	return out
}

// TestSpotifyDevelopmentModeServesFiveAccounts: with the app in
// development mode the release is warned of the cap, the sixth account
// is refused at the callback (its start came before the fifth was
// taken) and a seventh at the start, while fans already served go on.
func TestSpotifyDevelopmentModeServesFiveAccounts(t *testing.T) {
	t.Parallel()
	b := setupEnv(t, map[string]string{"SPOTIFY_APP_MODE": "development"})
	rel := b.createRelease(releaseBody("dev-mode", time.Now().Add(72*time.Hour)))
	if got, want := warningCodes(rel.Warnings), []string{"spotify app_user_cap"}; !slices.Equal(got, want) {
		t.Fatalf("release warnings = %v, want %v", got, want)
	}
	var first connected
	for i := range spotify.DevelopmentUsers - 1 {
		c := b.connect(providers.Spotify, rel.Slug, "dev-fan-"+string(rune('a'+i)), "")
		if i == 0 {
			first = c
		}
	}
	start := map[string]any{"release": rel.Slug, "consent": true, "zone": "Europe/Paris"}
	fifth := b.startURL(providers.Spotify, start, "")
	sixth := b.startURL(providers.Spotify, start, "")
	if r := b.callback(providers.Spotify, b.consent(fifth, "dev-fan-e"), ""); r.Status != http.StatusOK {
		t.Fatalf("fifth account: HTTP %d: %s", r.Status, r.Body)
	}
	r := b.callback(providers.Spotify, b.consent(sixth, "dev-fan-f"), "")
	if r.Status != http.StatusConflict || r.errorCode(t) != "provider_app_full" {
		t.Fatalf("sixth account's callback: HTTP %d: %s, want 409 provider_app_full", r.Status, r.Body)
	}
	if n := b.count("provider_tokens", "provider = 'spotify'"); n != spotify.DevelopmentUsers {
		t.Errorf("%d Spotify grants stored, want %d", n, spotify.DevelopmentUsers)
	}
	r = b.do(req{method: http.MethodPost, path: "/v1/connect/spotify/start", json: start})
	if r.Status != http.StatusConflict || r.errorCode(t) != "provider_app_full" {
		t.Fatalf("seventh account's start: HTTP %d: %s, want 409 provider_app_full", r.Status, r.Body)
	}

	// A fan the app serves pre-saves another release; YouTube is not capped.
	other := b.createRelease(releaseBody("dev-mode-2", time.Now().Add(96*time.Hour)))
	b.connect(providers.Spotify, other.Slug, "dev-fan-a", first.FanToken)
	b.connect(providers.YouTube, rel.Slug, "dev-fan-g", "")

	var plan wire.Plan
	b.admin(http.MethodGet, "/v1/releases/"+rel.ID+"/plan", nil, http.StatusOK).decode(t, &plan)
	if got, want := warningCodes(plan.Warnings), []string{"spotify app_full", "spotify app_user_cap"}; !slices.Equal(got, want) {
		t.Errorf("plan warnings = %v, want %v", got, want)
	}
}

// TestGoogleTestingStatusWarnsOfItsLimits: a Google app in "Testing"
// serves 100 test users, each grant for 7 days: a release further away
// is warned that fans can pre-save it on YouTube only in its last days,
// and such a fan's start is refused (the grant would be dead by then).
func TestGoogleTestingStatusWarnsOfItsLimits(t *testing.T) {
	t.Parallel()
	b := setupEnv(t, map[string]string{"GOOGLE_APP_TESTING": "true"})
	far := b.createRelease(releaseBody("testing-far", time.Now().Add(30*24*time.Hour)))
	if got, want := warningCodes(far.Warnings), []string{"youtube app_user_cap", "youtube grant_lifetime"}; !slices.Equal(got, want) {
		t.Fatalf("warnings of a release in 30 days = %v, want %v", got, want)
	}
	var got wire.Release
	b.admin(http.MethodGet, "/v1/releases/"+far.ID, nil, http.StatusOK).decode(t, &got)
	if !slices.Equal(warningCodes(got.Warnings), warningCodes(far.Warnings)) {
		t.Errorf("GET answers warnings %v, POST %v", warningCodes(got.Warnings), warningCodes(far.Warnings))
	}
	r := b.do(req{method: http.MethodPost, path: "/v1/connect/youtube/start", json: map[string]any{"release": far.Slug, "consent": true}})
	if r.Status != http.StatusUnprocessableEntity || r.errorCode(t) != "youtube_horizon_exceeded" {
		t.Errorf("YouTube start 30 days ahead: HTTP %d: %s", r.Status, r.Body)
	}

	near := b.createRelease(releaseBody("testing-near", time.Now().Add(48*time.Hour)))
	if got, want := warningCodes(near.Warnings), []string{"youtube app_user_cap"}; !slices.Equal(got, want) {
		t.Errorf("warnings of a release in 2 days = %v, want %v", got, want)
	}
	b.connect(providers.YouTube, near.Slug, "testing-fan", "")

	// Cancelled, the release warns of nothing.
	var cancelled wire.Release
	b.admin(http.MethodPost, "/v1/releases/"+far.ID+"/cancel", nil, http.StatusOK).decode(t, &cancelled)
	if len(cancelled.Warnings) != 0 {
		t.Errorf("a cancelled release warns %v", warningCodes(cancelled.Warnings))
	}
}
