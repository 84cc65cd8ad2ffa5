package jobs_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/presave/presave/internal/providers"
	"github.com/presave/presave/internal/store"
	"github.com/presave/presave/internal/store/inspect"
)

// TestRetiredPlaylistActionEndsAsTheMigrationSays: pre-saves consented to
// the retired "playlist" action, as migration 005 leaves them (that
// action failed with action_retired), run their other actions and end
// partial; one consented to nothing else ends failed. No provider call
// touches a playlist, and every token goes.
func TestRetiredPlaylistActionEndsAsTheMigrationSays(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	ctx := context.Background()
	rel := b.newRelease("retired", time.Now().Add(2*time.Second))
	fans := b.consentMany(rel, "old", 1, providers.Spotify, providers.YouTube)
	retired := `{"playlist": {"outcome": "failed", "reason": "action_retired", "at": "2026-12-01T00:00:00Z"}}`
	for _, f := range fans {
		actions := "{save,playlist}"
		if f.provider == providers.YouTube {
			actions = "{playlist}"
		}
		if _, err := b.st.Pool().Exec(ctx, `UPDATE presaves SET actions = $2, results = $3::jsonb WHERE id = $1`, f.presave.ID, actions, retired); err != nil {
			t.Fatal(err)
		}
	}
	b.startWorker()
	b.waitFinal(fans, time.Minute)
	for _, f := range fans {
		ps, err := b.st.Presave(ctx, f.presave.ID)
		if err != nil {
			t.Fatal(err)
		}
		want := store.PresavePartial
		if f.provider == providers.YouTube {
			want = store.PresaveFailed
		}
		if ps.Status != want || ps.Results[providers.ActionPlaylist].Reason != providers.ReasonActionRetired {
			t.Errorf("%s: status %s, results %+v; want %s with playlist failed as retired", f.provider, ps.Status, ps.Results, want)
		}
		if has, err := inspect.HasToken(ctx, b.st, ps.FanID, f.provider); err != nil || has {
			t.Errorf("%s: token still stored (%v)", f.provider, err)
		}
	}
	if u := b.fake.User(providers.Spotify, "old-0"); len(u.Albums) != 1 || len(u.Playlists) != 0 {
		t.Errorf("spotify: albums %v, playlists %+v; want the album saved and no playlist", u.Albums, u.Playlists)
	}
	for k := range b.fake.CallCounts() {
		if strings.Contains(k, "playlist") {
			t.Errorf("a playlist endpoint was called: %s", k)
		}
	}
}
