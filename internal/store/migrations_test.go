package store_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/tern/v2/migrate"

	"github.com/presave/presave/internal/scratch"
	"github.com/presave/presave/internal/store/storetest"
	"github.com/presave/presave/migrations"
)

// TestMigration005RetiresThePlaylistAction: data written under migration
// 004 (a release with the artist's playlists, open pre-saves consenting
// to "playlist", a consent in flight) comes out of 005 as the migration
// says: the Spotify playlist becomes the one fans follow, the YouTube one
// is gone, an open pre-save's playlist action failed with action_retired
// (its other actions untouched), a finished pre-save unchanged, and the
// consent in flight dropped.
func TestMigration005RetiresThePlaylistAction(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var r [6]byte
	_, _ = rand.Read(r[:])
	schema := "t_migration005_" + hex.EncodeToString(r[:])
	admin, err := pgx.Connect(ctx, storetest.BaseURL())
	if err != nil {
		t.Fatal(err)
	}
	// Cleanups run after the deferred calls: the admin connection closes
	// in the cleanup, after it dropped the schema.
	t.Cleanup(func() {
		if _, err := admin.Exec(context.Background(), `DROP SCHEMA `+pgx.Identifier{schema}.Sanitize()+` CASCADE`); err != nil {
			t.Errorf("drop schema %s: %v", schema, err)
		}
		admin.Close(context.Background())
	})
	if _, err := admin.Exec(ctx, `CREATE SCHEMA `+pgx.Identifier{schema}.Sanitize()); err != nil {
		t.Fatal(err)
	}
	u, err := scratch.WithSearchPath(storetest.BaseURL(), schema)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := pgx.Connect(ctx, u)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	m, err := migrate.NewMigrator(ctx, conn, "schema_version")
	if err != nil {
		t.Fatal(err)
	}
	if err := m.LoadMigrations(migrations.FS); err != nil {
		t.Fatal(err)
	}
	if err := m.MigrateTo(ctx, 4); err != nil {
		t.Fatal(err)
	}

	rel, fan, other := uuid.New(), uuid.New(), uuid.New()
	open, only, done := uuid.New(), uuid.New(), uuid.New()
	exec := func(sql string, args ...any) {
		t.Helper()
		if _, err := conn.Exec(ctx, sql, args...); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	exec(`INSERT INTO fans (id) VALUES ($1), ($2)`, fan, other)
	exec(`INSERT INTO releases (id, slug, title, artist, timing, release_at, spotify_track_ids, spotify_playlist_id, youtube_video_id, youtube_playlist_id)
		VALUES ($1, 'old', 'T', 'A', 'fixed', now() + interval '1 day', '{t1}', '37i9dQZF1DXcBWIGoYBM5M', 'dQw4w9WgXcQ', 'PLrAXtmErZgOeiKm4sgNOknGvNjby9efdf')`, rel)
	presave := func(id, fan uuid.UUID, provider string, actions []string, status, results string) {
		exec(`INSERT INTO presaves (id, fan_id, release_id, provider, actions, consented_at, consent_version, fan_zone, due_at, status, results)
			VALUES ($1, $2, $3, $4, $5, now(), '2026-11-v2', 'UTC', now() + interval '1 day', $6, $7)`, id, fan, rel, provider, actions, status, results)
	}
	presave(open, fan, "spotify", []string{"save", "playlist"}, "pending", `{}`)
	presave(only, fan, "youtube", []string{"playlist"}, "enqueued", `{}`)
	presave(done, other, "youtube", []string{"like", "playlist"}, "done", `{"like": {"outcome": "ok", "at": "2026-11-01T00:00:00Z"}, "playlist": {"outcome": "ok", "at": "2026-11-01T00:00:00Z"}}`)
	exec(`INSERT INTO oauth_states (state_hash, provider, release_id, key_id, verifier_sealed, actions, fan_zone, consent_version, expires_at, browser_binding)
		VALUES ($1, 'spotify', $2, 'k1', '\x00', '{save,playlist}', 'UTC', '2026-11-v2', now() + interval '5 minutes', $1)`, make([]byte, 32), rel)

	if err := m.MigrateTo(ctx, 5); err != nil {
		t.Fatal(err)
	}

	var follow, trackIDs, ytVideo, ytChannel *string
	if err := conn.QueryRow(ctx, `SELECT spotify_follow_playlist_id, array_to_string(spotify_track_ids, ','), youtube_video_id, youtube_channel_id FROM releases WHERE id = $1`, rel).
		Scan(&follow, &trackIDs, &ytVideo, &ytChannel); err != nil {
		t.Fatal(err)
	}
	if follow == nil || *follow != "37i9dQZF1DXcBWIGoYBM5M" || *trackIDs != "t1" || *ytVideo != "dQw4w9WgXcQ" || ytChannel != nil {
		t.Errorf("release after 005: follow %v, tracks %v, video %v, channel %v", follow, trackIDs, ytVideo, ytChannel)
	}
	var n int
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM information_schema.columns WHERE table_schema = $1 AND column_name IN ('youtube_playlist_id', 'spotify_playlist_id')`, schema).Scan(&n); err != nil || n != 0 {
		t.Errorf("old playlist columns left: %d (%v)", n, err)
	}
	results := func(id uuid.UUID) map[string]map[string]any {
		t.Helper()
		var raw []byte
		if err := conn.QueryRow(ctx, `SELECT results FROM presaves WHERE id = $1`, id).Scan(&raw); err != nil {
			t.Fatal(err)
		}
		var out map[string]map[string]any
		if err := json.Unmarshal(raw, &out); err != nil {
			t.Fatal(err)
		}
		return out
	}
	for _, id := range []uuid.UUID{open, only} {
		got := results(id)
		if pl := got["playlist"]; pl["outcome"] != "failed" || pl["reason"] != "action_retired" || pl["at"] == nil {
			t.Errorf("open pre-save %s: playlist result %v, want failed/action_retired", id, pl)
		}
		if _, ok := got["save"]; ok {
			t.Errorf("open pre-save %s: its save action was touched: %v", id, got)
		}
	}
	if got := results(done); got["playlist"]["outcome"] != "ok" {
		t.Errorf("finished pre-save changed: %v", got)
	}
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM oauth_states`).Scan(&n); err != nil || n != 0 {
		t.Errorf("consents in flight with the playlist action left: %d (%v)", n, err)
	}
}
