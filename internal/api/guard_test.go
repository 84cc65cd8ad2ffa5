package api_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/presave/presave/internal/providers"
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
