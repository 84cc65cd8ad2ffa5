package api_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/presave/presave/internal/providers"
	"github.com/presave/presave/internal/providers/registry"
	"github.com/presave/presave/internal/wire"
)

// TestCampaignGuardAPI: canary_fans are validated and kept, the release
// shows its guards, and resume opens them (refusing what it cannot do).
func TestCampaignGuardAPI(t *testing.T) {
	t.Parallel()
	b := setup(t)
	at := time.Now().Add(24 * time.Hour)

	bad := releaseBody("guard-bad", at)
	bad["canary_fans"] = []string{"team"}
	if code := b.admin(http.MethodPost, "/v1/releases", bad, http.StatusBadRequest).errorCode(t); code != "invalid_canary_fans" {
		t.Errorf("canary_fans [team]: %s, want invalid_canary_fans", code)
	}
	bad["canary_fans"] = []string{uuid.NewString()}
	if code := b.admin(http.MethodPost, "/v1/releases", bad, http.StatusBadRequest).errorCode(t); code != "unknown_canary_fan" {
		t.Errorf("canary_fans [unknown]: %s, want unknown_canary_fan", code)
	}

	rel := b.createRelease(releaseBody("guarded", at))
	for _, p := range []string{"spotify", "youtube"} {
		if g := rel.Guards[p]; g.State != "canary" || g.Canary != 0 || g.Pause != nil {
			t.Errorf("new release's %s guard %+v, want a canary not chosen yet", p, g)
		}
	}
	team := b.connect(providers.Spotify, rel.Slug, "team-account", "")
	var patched wire.Release
	b.admin(http.MethodPatch, "/v1/releases/"+rel.ID, map[string]any{"canary_fans": []string{team.FanID}}, http.StatusOK).decode(t, &patched)
	if len(patched.CanaryFans) != 1 || patched.CanaryFans[0] != team.FanID {
		t.Errorf("canary_fans after PATCH = %v, want [%s]", patched.CanaryFans, team.FanID)
	}

	if code := b.admin(http.MethodPost, "/v1/releases/"+rel.ID+"/resume", map[string]any{"provider": "apple"}, http.StatusBadRequest).errorCode(t); code != "unknown_provider" {
		t.Errorf("resume apple: %s, want unknown_provider", code)
	}
	b.admin(http.MethodPost, "/v1/releases/"+uuid.NewString()+"/resume", nil, http.StatusNotFound)
	var resumed wire.Release
	b.admin(http.MethodPost, "/v1/releases/"+rel.ID+"/resume", map[string]any{"provider": "spotify"}, http.StatusOK).decode(t, &resumed)
	if g := resumed.Guards["spotify"]; g.State != "open" || g.OpenedAt == nil {
		t.Errorf("spotify guard after resume %+v, want open", g)
	}
	if g := resumed.Guards["youtube"]; g.State != "canary" {
		t.Errorf("youtube guard after resuming spotify %+v, want still in its canary", g)
	}
	if n, ok := resumed.Resumed["spotify"]; !ok || n != 0 {
		t.Errorf("resumed = %v, want spotify: 0", resumed.Resumed)
	}
	// Again: nothing to open, nothing changes.
	var again wire.Release
	b.admin(http.MethodPost, "/v1/releases/"+rel.ID+"/resume", nil, http.StatusOK).decode(t, &again)
	if _, ok := again.Resumed["spotify"]; ok || again.Guards["youtube"].State != "open" {
		t.Errorf("second resume: resumed %v, youtube %s; want only youtube opened", again.Resumed, again.Guards["youtube"].State)
	}

	b.admin(http.MethodPost, "/v1/releases/"+rel.ID+"/cancel", nil, http.StatusOK)
	if code := b.admin(http.MethodPost, "/v1/releases/"+rel.ID+"/resume", nil, http.StatusConflict).errorCode(t); code != "release_not_scheduled" {
		t.Errorf("resume a cancelled release: %s, want release_not_scheduled", code)
	}
}

// TestReleaseByCodes: a Spotify target may be a UPC and ISRCs alone;
// bad codes are refused; the release shows its resolution pending and
// the plan says its targets are not resolved.
func TestReleaseByCodes(t *testing.T) {
	t.Parallel()
	b := setup(t)
	at := time.Now().Add(24 * time.Hour)
	body := func(upc string, isrcs ...string) map[string]any {
		m := releaseBody("by-codes", at)
		m["spotify"] = map[string]any{"upc": upc, "isrcs": isrcs, "my_playlist": map[string]any{"name": "Mine"}}
		return m
	}
	for _, tt := range []struct {
		upc   string
		isrcs []string
		code  string
	}{
		{"12345", nil, "invalid_upc"},
		{"602435123456", []string{"US-RC1-76-0783"}, "invalid_isrc"},
		{"60243512345X", nil, "invalid_upc"},
	} {
		if code := b.admin(http.MethodPost, "/v1/releases", body(tt.upc, tt.isrcs...), http.StatusBadRequest).errorCode(t); code != tt.code {
			t.Errorf("upc %q isrcs %v: %s, want %s", tt.upc, tt.isrcs, code, tt.code)
		}
	}
	rel := b.createRelease(body("0602435123456", "usrc1-76-07839"))
	if rel.Spotify.UPC != "0602435123456" || len(rel.Spotify.ISRCs) != 1 || rel.Spotify.ISRCs[0] != "USRC17607839" {
		t.Errorf("codes %q %v, want them as given, normalized", rel.Spotify.UPC, rel.Spotify.ISRCs)
	}
	if r := rel.Spotify.Resolution; r == nil || r.State != "pending" || r.Searches != 0 {
		t.Errorf("resolution %+v, want pending", r)
	}
	if acts := rel.Actions["spotify"]; len(acts) != 2 || acts[0] != "save" || acts[1] != "add_to_my_playlist" {
		t.Errorf("spotify actions %v, want save and add_to_my_playlist from the codes", acts)
	}
	var plan wire.Plan
	b.admin(http.MethodGet, "/v1/releases/"+rel.ID+"/plan", nil, http.StatusOK).decode(t, &plan)
	if plan.Providers["spotify"].Resolved || !plan.Providers["youtube"].Resolved {
		t.Errorf("plan resolved: spotify %v youtube %v, want false and true", plan.Providers["spotify"].Resolved, plan.Providers["youtube"].Resolved)
	}
	// The operator sets the IDs by hand: the search ends.
	var patched wire.Release
	b.admin(http.MethodPatch, "/v1/releases/"+rel.ID, map[string]any{"spotify": map[string]any{"album_ids": []string{spAlbum}}}, http.StatusOK).decode(t, &patched)
	if r := patched.Spotify.Resolution; r == nil || r.State != "operator" {
		t.Errorf("resolution after PATCH album_ids %+v, want operator", r)
	}
}

// TestConsentWaitsForTheCanary: a consent due within the relay window is
// queued at once only when the release's guard is open; in its canary it
// waits as pending for the relay, instead of being queued to be held back.
func TestConsentWaitsForTheCanary(t *testing.T) {
	t.Parallel()
	b := setup(t)
	rel := b.createRelease(releaseBody("soon-canary", time.Now().Add(5*time.Minute)))
	first := b.connect(providers.Spotify, rel.Slug, "before-canary", "")
	if first.Queued || first.Presave.Status != "pending" {
		t.Errorf("consent in the canary: queued %v, status %s; want pending, not queued", first.Queued, first.Presave.Status)
	}
	b.openGuards(rel)
	second := b.connect(providers.Spotify, rel.Slug, "after-canary", "")
	if !second.Queued || second.Presave.Status != "enqueued" {
		t.Errorf("consent once open: queued %v, status %s; want enqueued and queued", second.Queued, second.Presave.Status)
	}
}

// TestHeldOnMe: /me tells a fan whose pre-save is held that it waits for
// the artist's team, not that it runs at a time already past.
func TestHeldOnMe(t *testing.T) {
	t.Parallel()
	b := setupPage(t)
	rel := b.createRelease(releaseBody("held-me", time.Now().Add(24*time.Hour)))
	jar := browserJar{}
	cb := b.page(jar, http.MethodGet, registry.CallbackPath(providers.Spotify)+"?"+b.consent(b.pageStart(jar, rel.Slug, providers.Spotify), "held-fan").Encode(), nil)
	if cb.Status != http.StatusSeeOther && cb.Status != http.StatusFound {
		t.Fatalf("page callback: HTTP %d %s", cb.Status, cb.Body)
	}
	if _, err := b.st.Pool().Exec(b.ctx(), `UPDATE presaves SET status = 'held' WHERE release_id = $1`, rel.ID); err != nil {
		t.Fatal(err)
	}
	me := string(b.page(jar, http.MethodGet, "/me", nil).Body)
	if !strings.Contains(me, "On hold: something is wrong with this release on Spotify") || strings.Contains(me, "Runs on") {
		t.Errorf("/me for a held pre-save: %s", me)
	}
}
