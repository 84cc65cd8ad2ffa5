package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/presave/presave/internal/providers"
)

// Timing says when a release goes live.
type Timing string

// Release timings.
const (
	// TimingFixed: one instant for everybody (Release.ReleaseAt).
	TimingFixed Timing = "fixed"
	// TimingLocal: 00:00 of Release.ReleaseDate in each fan's own zone, as
	// Spotify releases go live.
	TimingLocal Timing = "local"
)

// ReleaseStatus is a release's lifecycle state.
type ReleaseStatus string

// Release statuses.
const (
	ReleaseScheduled ReleaseStatus = "scheduled"
	ReleaseReleased  ReleaseStatus = "released"
	ReleaseCancelled ReleaseStatus = "cancelled"
)

// Release is an upcoming release and what pre-saving it does.
type Release struct {
	ID     uuid.UUID
	Slug   string
	Title  string
	Artist string

	Timing      Timing
	ReleaseAt   time.Time // TimingFixed, UTC
	ReleaseDate time.Time // TimingLocal: the calendar date (midnight UTC of it)
	DefaultZone string    // TimingLocal: used when a fan's zone is unknown

	SpotifyAlbumIDs  []string
	SpotifyTrackIDs  []string
	SpotifyArtistIDs []string
	// SpotifyFollowPlaylistID is the artist's playlist fans follow.
	SpotifyFollowPlaylistID string
	// SpotifyMyPlaylist names the playlist of the fan's own that receives
	// the tracks (add_to_my_playlist); no name, no such action.
	SpotifyMyPlaylist MyPlaylist
	YouTubeVideoID    string
	// YouTubeChannelID is the artist's channel fans subscribe to.
	YouTubeChannelID string
	// YouTubeMyPlaylist names the playlist of the fan's own that
	// receives the video.
	YouTubeMyPlaylist MyPlaylist
	// AppleMusicAlbumIDs and AppleMusicSongIDs are Apple Music catalogue
	// IDs; with AppleMusicByCodes the release's UPC and ISRCs are looked
	// up in each fan's storefront instead (or as well).
	AppleMusicByCodes  bool
	AppleMusicAlbumIDs []string
	AppleMusicSongIDs  []string
	// AppleMusicMyPlaylist names the playlist of the fan's own that
	// receives the songs.
	AppleMusicMyPlaylist MyPlaylist

	// SpotifyUPC and SpotifyISRCs name the album and tracks by code; the
	// resolution (SpotifyResolution) adds the IDs they name to
	// SpotifyAlbumIDs and SpotifyTrackIDs, once per release.
	SpotifyUPC        string
	SpotifyISRCs      []string
	SpotifyResolution Resolution

	// CanaryFans are the artist team's own fans (their accounts,
	// connected like any fan's): their pre-saves run first in the
	// release's canary on each provider.
	CanaryFans []uuid.UUID

	Status    ReleaseStatus
	CreatedAt time.Time
	UpdatedAt time.Time
}

// MyPlaylist is how the playlist presave creates in a fan's account is
// named and described.
type MyPlaylist struct {
	Name        string
	Description string
}

// Target is what the release asks of provider p.
func (r Release) Target(p providers.Name) providers.Target {
	my := func(m MyPlaylist) providers.MyPlaylist {
		if m.Name == "" {
			return providers.MyPlaylist{}
		}
		return providers.MyPlaylist{Name: m.Name, Description: m.Description, Key: r.ID.String()}
	}
	switch p {
	case providers.Spotify:
		return providers.Target{AlbumIDs: r.SpotifyAlbumIDs, TrackIDs: r.SpotifyTrackIDs, ArtistIDs: r.SpotifyArtistIDs,
			FollowPlaylistID: r.SpotifyFollowPlaylistID, MyPlaylist: my(r.SpotifyMyPlaylist),
			UPC: r.SpotifyUPC, ISRCs: r.SpotifyISRCs}
	case providers.YouTube:
		return providers.Target{VideoID: r.YouTubeVideoID, ChannelID: r.YouTubeChannelID, MyPlaylist: my(r.YouTubeMyPlaylist)}
	case providers.AppleMusic:
		t := providers.Target{AlbumIDs: r.AppleMusicAlbumIDs, TrackIDs: r.AppleMusicSongIDs, MyPlaylist: my(r.AppleMusicMyPlaylist)}
		if r.AppleMusicByCodes {
			t.UPC, t.ISRCs = r.SpotifyUPC, r.SpotifyISRCs
		}
		return t
	}
	return providers.Target{}
}

// SameTiming reports whether r goes live when o does: the same timing,
// instant, date and default zone. A release whose timing changed moves
// its pre-saves.
func (r Release) SameTiming(o Release) bool {
	return r.Timing == o.Timing && r.ReleaseAt.Equal(o.ReleaseAt) && r.ReleaseDate.Equal(o.ReleaseDate) && r.DefaultZone == o.DefaultZone
}

// DueAt is when the release goes live for a fan in zone (an IANA name;
// empty means the release's default zone).
func (r Release) DueAt(zone string) (time.Time, error) {
	if r.Timing == TimingFixed {
		return r.ReleaseAt.UTC(), nil
	}
	if zone == "" {
		zone = r.DefaultZone
	}
	loc, err := time.LoadLocation(zone)
	if err != nil {
		return time.Time{}, fmt.Errorf("zone %q: %w", zone, err)
	}
	y, m, d := r.ReleaseDate.Date()
	return time.Date(y, m, d, 0, 0, 0, 0, loc).UTC(), nil
}

const releaseColumns = `id, slug, title, artist, timing, release_at, release_date, default_zone,
	spotify_album_ids, spotify_track_ids, spotify_artist_ids, spotify_follow_playlist_id,
	spotify_my_playlist_name, spotify_my_playlist_description,
	youtube_video_id, youtube_channel_id, youtube_my_playlist_name, youtube_my_playlist_description,
	canary_fans, spotify_upc, spotify_isrcs, spotify_resolution, spotify_resolved, spotify_resolve_attempts,
	spotify_resolve_next_at, status, created_at, updated_at,
	applemusic_by_codes, applemusic_album_ids, applemusic_song_ids, applemusic_my_playlist_name, applemusic_my_playlist_description`

func scanRelease(row pgx.Row) (Release, error) {
	var r Release
	var at, date *time.Time
	var zone, spf, spn, spd, yv, yc, ypn, ypd, upc, apn, apd *string
	var resolved []byte
	res := &r.SpotifyResolution
	err := row.Scan(&r.ID, &r.Slug, &r.Title, &r.Artist, &r.Timing, &at, &date, &zone,
		&r.SpotifyAlbumIDs, &r.SpotifyTrackIDs, &r.SpotifyArtistIDs, &spf, &spn, &spd,
		&yv, &yc, &ypn, &ypd, &r.CanaryFans, &upc, &r.SpotifyISRCs, &res.State, &resolved, &res.Attempts, &res.NextAt,
		&r.Status, &r.CreatedAt, &r.UpdatedAt,
		&r.AppleMusicByCodes, &r.AppleMusicAlbumIDs, &r.AppleMusicSongIDs, &apn, &apd)
	if err != nil {
		return Release{}, notFound(err)
	}
	r.AppleMusicMyPlaylist = MyPlaylist{Name: deref(apn), Description: deref(apd)}
	r.SpotifyUPC = deref(upc)
	if err := json.Unmarshal(resolved, &res.Found); err != nil {
		return Release{}, fmt.Errorf("spotify_resolved: %w", err)
	}
	if at != nil {
		r.ReleaseAt = at.UTC()
	}
	if date != nil {
		r.ReleaseDate = *date
	}
	r.DefaultZone, r.SpotifyFollowPlaylistID = deref(zone), deref(spf)
	r.SpotifyMyPlaylist = MyPlaylist{Name: deref(spn), Description: deref(spd)}
	r.YouTubeVideoID, r.YouTubeChannelID = deref(yv), deref(yc)
	r.YouTubeMyPlaylist = MyPlaylist{Name: deref(ypn), Description: deref(ypd)}
	return r, nil
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

func nullable(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// releaseArgs returns the column values in releaseColumns order after id.
func releaseArgs(r Release) []any {
	var at, date *time.Time
	if r.Timing == TimingFixed {
		t := r.ReleaseAt.UTC()
		at = &t
	} else {
		y, m, d := r.ReleaseDate.Date()
		t := time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
		date = &t
	}
	return []any{r.Slug, r.Title, r.Artist, r.Timing, at, date, nullable(r.DefaultZone),
		nonNil(r.SpotifyAlbumIDs), nonNil(r.SpotifyTrackIDs), nonNil(r.SpotifyArtistIDs), nullable(r.SpotifyFollowPlaylistID),
		nullable(r.SpotifyMyPlaylist.Name), nullable(r.SpotifyMyPlaylist.Description),
		nullable(r.YouTubeVideoID), nullable(r.YouTubeChannelID),
		nullable(r.YouTubeMyPlaylist.Name), nullable(r.YouTubeMyPlaylist.Description), nonNilIDs(r.CanaryFans),
		nullable(r.SpotifyUPC), nonNil(r.SpotifyISRCs), r.SpotifyResolution.State, foundJSON(r.SpotifyResolution.Found),
		r.SpotifyResolution.Attempts, r.SpotifyResolution.NextAt,
		r.AppleMusicByCodes, nonNil(r.AppleMusicAlbumIDs), nonNil(r.AppleMusicSongIDs),
		nullable(r.AppleMusicMyPlaylist.Name), nullable(r.AppleMusicMyPlaylist.Description)}
}

func nonNilIDs(ids []uuid.UUID) []uuid.UUID {
	if ids == nil {
		return []uuid.UUID{}
	}
	return ids
}

// CreateRelease stores a new release (validated by the caller) and returns
// it with its ID, with a campaign guard per provider in its canary.
// ErrConflict when the slug is taken.
func (s *Store) CreateRelease(ctx context.Context, r Release) (Release, error) {
	r.ID = uuid.Must(uuid.NewV7())
	r.SpotifyResolution = settleResolution(Release{}, r)
	args := append([]any{r.ID}, releaseArgs(r)...)
	args = append(args, providers.Names)
	row := s.pool.QueryRow(ctx, `
		WITH r AS (
			INSERT INTO releases (id, slug, title, artist, timing, release_at, release_date, default_zone,
				spotify_album_ids, spotify_track_ids, spotify_artist_ids, spotify_follow_playlist_id,
				spotify_my_playlist_name, spotify_my_playlist_description,
				youtube_video_id, youtube_channel_id, youtube_my_playlist_name, youtube_my_playlist_description, canary_fans,
				spotify_upc, spotify_isrcs, spotify_resolution, spotify_resolved, spotify_resolve_attempts, spotify_resolve_next_at,
				applemusic_by_codes, applemusic_album_ids, applemusic_song_ids, applemusic_my_playlist_name, applemusic_my_playlist_description)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, $23, $24, $25,
				$26, $27, $28, $29, $30)
			RETURNING `+releaseColumns+`),
		g AS (INSERT INTO release_guards (release_id, provider) SELECT r.id, p FROM r, unnest($31::text[]) AS p)
		SELECT `+releaseColumns+` FROM r`, args...)
	out, err := scanRelease(row)
	if err != nil {
		if isUniqueViolation(err) {
			return Release{}, fmt.Errorf("store: release slug %q: %w", r.Slug, ErrConflict)
		}
		return Release{}, fmt.Errorf("store: create release: %w", err)
	}
	return out, nil
}

// Release reads a release by ID.
func (s *Store) Release(ctx context.Context, id uuid.UUID) (Release, error) {
	r, err := scanRelease(s.pool.QueryRow(ctx, `SELECT `+releaseColumns+` FROM releases WHERE id = $1`, id))
	if err != nil {
		return Release{}, fmt.Errorf("store: release: %w", err)
	}
	return r, nil
}

// ReleaseBySlug reads a release by slug.
func (s *Store) ReleaseBySlug(ctx context.Context, slug string) (Release, error) {
	r, err := scanRelease(s.pool.QueryRow(ctx, `SELECT `+releaseColumns+` FROM releases WHERE slug = $1`, slug))
	if err != nil {
		return Release{}, fmt.Errorf("store: release %q: %w", slug, err)
	}
	return r, nil
}

// ListReleases lists releases newest first, after the cursor (a release
// ID; uuid.Nil for the first page). IDs are UUIDv7, so they sort by
// creation time.
func (s *Store) ListReleases(ctx context.Context, after uuid.UUID, limit int) ([]Release, error) {
	q := `SELECT ` + releaseColumns + ` FROM releases WHERE ($1::uuid IS NULL OR id < $1) ORDER BY id DESC LIMIT $2`
	var cursor *uuid.UUID
	if after != uuid.Nil {
		cursor = &after
	}
	rows, err := s.pool.Query(ctx, q, cursor, limit)
	if err != nil {
		return nil, fmt.Errorf("store: list releases: %w", err)
	}
	defer rows.Close()
	var out []Release
	for rows.Next() {
		r, err := scanRelease(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// Superseded is a pre-save whose generation moved on (its release was
// moved, or it was cancelled): a task of OldGeneration is stale.
type Superseded struct {
	PresaveID uuid.UUID
	// Provider says which queue the pre-save's task is in.
	Provider      providers.Name
	OldGeneration int
	Generation    int
	DueAt         time.Time
	// WasRunning (cancellations only) says an attempt held the pre-save's
	// lease when it was cancelled: at most the action it had under way
	// may still complete, and its result is recorded on the pre-save.
	WasRunning bool
}

// UpdateRelease replaces a scheduled release's fields (not its ID, status
// or timestamps). When the release time changes, every not-yet-running
// pre-save of it gets its new due_at and a new generation and goes back to
// pending, so a task already queued for the old time finds itself stale
// and does nothing (see Presave.Generation); the returned list lets the
// caller delete those tasks from the queue at once.
func (s *Store) UpdateRelease(ctx context.Context, r Release) (Release, []Superseded, error) {
	var out Release
	var moved []Superseded
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		old, err := scanRelease(tx.QueryRow(ctx, `SELECT `+releaseColumns+` FROM releases WHERE id = $1 FOR UPDATE`, r.ID))
		if err != nil {
			return err
		}
		if old.Status != ReleaseScheduled {
			return fmt.Errorf("release is %s: %w", old.Status, ErrConflict)
		}
		r.SpotifyResolution = settleResolution(old, r)
		args := append([]any{r.ID}, releaseArgs(r)...)
		out, err = scanRelease(tx.QueryRow(ctx, `
			UPDATE releases SET slug = $2, title = $3, artist = $4, timing = $5, release_at = $6, release_date = $7,
				default_zone = $8, spotify_album_ids = $9, spotify_track_ids = $10, spotify_artist_ids = $11,
				spotify_follow_playlist_id = $12, spotify_my_playlist_name = $13, spotify_my_playlist_description = $14,
				youtube_video_id = $15, youtube_channel_id = $16, youtube_my_playlist_name = $17,
				youtube_my_playlist_description = $18, canary_fans = $19, spotify_upc = $20, spotify_isrcs = $21,
				spotify_resolution = $22, spotify_resolved = $23, spotify_resolve_attempts = $24, spotify_resolve_next_at = $25,
				applemusic_by_codes = $26, applemusic_album_ids = $27, applemusic_song_ids = $28,
				applemusic_my_playlist_name = $29, applemusic_my_playlist_description = $30, updated_at = now()
			WHERE id = $1 RETURNING `+releaseColumns, args...))
		if err != nil {
			if isUniqueViolation(err) {
				return fmt.Errorf("release slug %q: %w", r.Slug, ErrConflict)
			}
			return err
		}
		if old.SameTiming(out) {
			return nil
		}
		// Local timing: midnight of the date in each fan's zone, computed by
		// PostgreSQL from the same IANA names.
		rows, err := tx.Query(ctx, `
			UPDATE presaves p SET
				due_at = CASE WHEN r.timing = 'fixed' THEN r.release_at
				              ELSE (r.release_date::timestamp AT TIME ZONE p.fan_zone) END,
				generation = p.generation + 1, status = 'pending', enqueued_at = NULL, updated_at = now()
			FROM releases r
			WHERE r.id = p.release_id AND p.release_id = $1 AND p.status IN ('pending', 'enqueued')
			RETURNING p.id, p.provider, p.generation - 1, p.generation, p.due_at`, r.ID)
		if err != nil {
			return err
		}
		moved, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (Superseded, error) {
			var m Superseded
			err := row.Scan(&m.PresaveID, &m.Provider, &m.OldGeneration, &m.Generation, &m.DueAt)
			return m, err
		})
		return err
	})
	if err != nil {
		return Release{}, nil, fmt.Errorf("store: update release: %w", err)
	}
	return out, moved, nil
}

// Cancelled is what cancelling a release (or a fan's pre-saves) ended.
type Cancelled struct {
	// Presaves lists the cancelled pre-saves with the generation whose
	// queued task (if any) is now stale.
	Presaves []Superseded
	// Purges lists the tokens deleted because nothing needs them any more;
	// a non-nil RevocationID needs a purge task.
	Purges []PurgedToken
}

// PurgedToken is one token deleted by a cancellation.
type PurgedToken struct {
	FanID    uuid.UUID
	Provider providers.Name
	Purge
}

// Revocable says whether a provider has a revoke endpoint; the store
// keeps a sealed copy of a grant only for those.
type Revocable func(providers.Name) bool

// CancelRelease cancels a scheduled release and its pending pre-saves, and
// purges the tokens that nothing else needs, in one transaction.
func (s *Store) CancelRelease(ctx context.Context, id uuid.UUID) (Cancelled, error) {
	var out Cancelled
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		var status ReleaseStatus
		if err := tx.QueryRow(ctx, `SELECT status FROM releases WHERE id = $1 FOR UPDATE`, id).Scan(&status); err != nil {
			return notFound(err)
		}
		if status == ReleaseCancelled {
			return nil
		}
		if _, err := tx.Exec(ctx, `UPDATE releases SET status = 'cancelled', updated_at = now() WHERE id = $1`, id); err != nil {
			return err
		}
		var err error
		out, err = s.cancelPresaves(ctx, tx, `release_id = $1`, []any{id}, "release_cancelled")
		return err
	})
	if err != nil {
		return Cancelled{}, fmt.Errorf("store: cancel release: %w", err)
	}
	return out, nil
}

// cancelPresaves cancels the not-finished pre-saves matching where (a
// condition on presaves with its args), then purges every token of the
// affected fans that no open pre-save needs any more.
func (s *Store) cancelPresaves(ctx context.Context, tx pgx.Tx, where string, args []any, reason string) (Cancelled, error) {
	return s.closePresaves(ctx, tx, PresaveCancelled, where, args, reason)
}

// NeedReconnect closes the given open pre-saves as needs_reconnect (the
// release moved past their grant's expiry) and purges every token of
// their fans that no open pre-save needs any more: a grant that cannot
// deliver is not kept. A new consent reopens them.
func (s *Store) NeedReconnect(ctx context.Context, ids []uuid.UUID) (Cancelled, error) {
	var out Cancelled
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		var err error
		out, err = s.closePresaves(ctx, tx, PresaveNeedsReconnect, `id = ANY($1)`, []any{ids}, "grant_expires_before_release")
		return err
	})
	if err != nil {
		return Cancelled{}, fmt.Errorf("store: need reconnect: %w", err)
	}
	return out, nil
}

// closePresaves ends the open pre-saves matching where with status and
// reason, then purges the tokens of their fans that no open pre-save
// needs any more.
func (s *Store) closePresaves(ctx context.Context, tx pgx.Tx, status PresaveStatus, where string, args []any, reason string) (Cancelled, error) {
	return s.closeWith(ctx, tx, status, where, args, reason, false)
}

// closePresavesKeepingReason is closePresaves for pre-saves that end
// with the reason they were waiting on (their target error), reason
// only standing in when they have none; one with an action done ends
// partial rather than status.
func (s *Store) closePresavesKeepingReason(ctx context.Context, tx pgx.Tx, status PresaveStatus, where string, args []any, reason string) (Cancelled, error) {
	return s.closeWith(ctx, tx, status, where, args, reason, true)
}

func (s *Store) closeWith(ctx context.Context, tx pgx.Tx, status PresaveStatus, where string, args []any, reason string, keepTarget bool) (Cancelled, error) {
	var out Cancelled
	lastError, statusSQL := fmt.Sprintf("$%d", len(args)+1), fmt.Sprintf("$%d", len(args)+2)
	if keepTarget {
		// A pre-save some of whose actions succeeded ends partial.
		lastError = "coalesce(p.target_error, " + lastError + ")"
		statusSQL = `CASE WHEN EXISTS (SELECT 1 FROM jsonb_each(p.results) AS e (k, v) WHERE e.v->>'outcome' <> 'failed')
			THEN 'partial' ELSE ` + statusSQL + ` END`
	}
	rows, err := tx.Query(ctx, `
		WITH old AS (
			SELECT id, status = 'running' AND lease_until > now() AS running FROM presaves
			WHERE `+where+` AND status IN `+openStatuses+` FOR UPDATE)
		UPDATE presaves p SET status = `+statusSQL+`, generation = p.generation + 1, completed_at = now(),
			last_error = `+lastError+`, updated_at = now()
		FROM old WHERE p.id = old.id
		RETURNING p.id, p.generation - 1, p.generation, p.due_at, p.fan_id, p.provider, old.running`, append(args, reason, status)...)
	if err != nil {
		return out, err
	}
	type fp struct {
		fan uuid.UUID
		p   providers.Name
	}
	seen := map[fp]bool{}
	var owners []fp
	for rows.Next() {
		var m Superseded
		var o fp
		if err := rows.Scan(&m.PresaveID, &m.OldGeneration, &m.Generation, &m.DueAt, &o.fan, &o.p, &m.WasRunning); err != nil {
			rows.Close()
			return out, err
		}
		m.Provider = o.p
		out.Presaves = append(out.Presaves, m)
		if !seen[o] {
			seen[o] = true
			owners = append(owners, o)
		}
	}
	if err := rows.Err(); err != nil {
		return out, err
	}
	for _, o := range owners {
		pt, err := s.purgeIfUnneeded(ctx, tx, o.fan, o.p, reason)
		if err != nil {
			return out, err
		}
		if pt.Deleted {
			out.Purges = append(out.Purges, PurgedToken{FanID: o.fan, Provider: o.p, Purge: pt})
		}
	}
	return out, nil
}

// purgeIfUnneeded purges the fan's token at p when no open pre-save needs
// it. It locks the token row first so a concurrent consent that is about
// to rely on the token waits for the decision.
func (s *Store) purgeIfUnneeded(ctx context.Context, tx pgx.Tx, fan uuid.UUID, p providers.Name, reason string) (Purge, error) {
	var needed bool
	err := tx.QueryRow(ctx, `
		SELECT `+TokenNeededSQL("$1", "$2", "")+`
		FROM provider_tokens WHERE fan_id = $1 AND provider = $2 FOR UPDATE`, fan, p).Scan(&needed)
	if errors.Is(err, pgx.ErrNoRows) {
		return Purge{}, nil
	}
	if err != nil || needed {
		return Purge{}, err
	}
	return s.purgeToken(ctx, tx, fan, p, reason)
}

// ReleaseCounts counts a release's pre-saves by provider and status.
func (s *Store) ReleaseCounts(ctx context.Context, id uuid.UUID) (map[providers.Name]map[string]int, error) {
	rows, err := s.pool.Query(ctx, `SELECT provider, status, count(*) FROM presaves WHERE release_id = $1 GROUP BY provider, status`, id)
	if err != nil {
		return nil, fmt.Errorf("store: release counts: %w", err)
	}
	defer rows.Close()
	out := map[providers.Name]map[string]int{}
	for rows.Next() {
		var p providers.Name
		var st string
		var n int
		if err := rows.Scan(&p, &st, &n); err != nil {
			return nil, err
		}
		if out[p] == nil {
			out[p] = map[string]int{}
		}
		out[p][st] = n
	}
	return out, rows.Err()
}

// ReleasesByID reads the releases with the given IDs in one query (for
// the fan export, which names the release of every pre-save). Unknown IDs
// are simply absent from the map.
func (s *Store) ReleasesByID(ctx context.Context, ids []uuid.UUID) (map[uuid.UUID]Release, error) {
	out := make(map[uuid.UUID]Release, len(ids))
	if len(ids) == 0 {
		return out, nil
	}
	rows, err := s.pool.Query(ctx, `SELECT `+releaseColumns+` FROM releases WHERE id = ANY($1)`, ids)
	if err != nil {
		return nil, fmt.Errorf("store: releases by id: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		r, err := scanRelease(rows)
		if err != nil {
			return nil, fmt.Errorf("store: releases by id: %w", err)
		}
		out[r.ID] = r
	}
	return out, rows.Err()
}

// ZoneKnown reports whether PostgreSQL knows the IANA zone name. Zones are
// computed both in Go and in SQL (UpdateRelease moves local-time
// pre-saves with AT TIME ZONE), so a zone is only accepted when both
// agree on it; otherwise one bad name could make every later update of
// its release fail.
func (s *Store) ZoneKnown(ctx context.Context, name string) (bool, error) {
	var ok bool
	err := s.pool.QueryRow(ctx, `SELECT (now() AT TIME ZONE $1::text) IS NOT NULL`, name).Scan(&ok)
	var pe *pgconn.PgError
	if errors.As(err, &pe) && pe.Code == "22023" { // invalid_parameter_value: time zone not recognized
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("store: zone known: %w", err)
	}
	return ok, nil
}
