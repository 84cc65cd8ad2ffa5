package store

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/presave/presave/internal/providers"
)

// ResolutionState is where the resolution of a release's Spotify codes
// (UPC, ISRCs) into IDs stands.
type ResolutionState string

// Resolution states.
const (
	// ResolutionNone: the release names no code.
	ResolutionNone ResolutionState = "none"
	// ResolutionPending: some code is not found yet; the release's Spotify
	// pre-saves wait.
	ResolutionPending ResolutionState = "pending"
	// ResolutionResolved: every code was found.
	ResolutionResolved ResolutionState = "resolved"
	// ResolutionOperator: the IDs were set by hand while a code was
	// pending; nothing is searched any more.
	ResolutionOperator ResolutionState = "operator"
)

// Resolution is what a release's codes resolved to.
type Resolution struct {
	State ResolutionState
	// Found maps a code (CodeKey) to the ID it resolved to, and when.
	Found    map[string]Resolved
	Attempts int
	// NextAt is when the next search is due (nil: as soon as the release
	// comes due).
	NextAt *time.Time
}

// Resolved is one code's resolution.
type Resolved struct {
	ID string    `json:"id"`
	At time.Time `json:"at"`
}

// CodeKey names a code in Resolution.Found: "upc:CODE" or "isrc:CODE".
func CodeKey(kind providers.CodeKind, code string) string { return string(kind) + ":" + code }

// Code is one of a release's codes.
type Code struct {
	Kind providers.CodeKind
	Code string
}

// SpotifyCodes lists the release's codes: its UPC, then its ISRCs.
func (r Release) SpotifyCodes() []Code {
	var out []Code
	if r.SpotifyUPC != "" {
		out = append(out, Code{providers.CodeUPC, r.SpotifyUPC})
	}
	for _, isrc := range r.SpotifyISRCs {
		out = append(out, Code{providers.CodeISRC, isrc})
	}
	return out
}

// Unresolved lists the codes not found yet.
func (r Release) Unresolved() []Code {
	var out []Code
	for _, c := range r.SpotifyCodes() {
		if _, ok := r.SpotifyResolution.Found[CodeKey(c.Kind, c.Code)]; !ok {
			out = append(out, c)
		}
	}
	return out
}

// settleResolution is r's resolution after it replaced old (the zero
// Release for a new one): what old found for codes r still names is
// kept; IDs changed by hand while a code was pending end the search
// (operator); otherwise it is resolved when every code is found, pending
// when not (searched afresh when the codes changed).
func settleResolution(old, r Release) Resolution {
	codes := r.SpotifyCodes()
	if len(codes) == 0 {
		return Resolution{State: ResolutionNone, Found: map[string]Resolved{}}
	}
	prev := old.SpotifyResolution
	out := Resolution{Found: map[string]Resolved{}, Attempts: prev.Attempts, NextAt: prev.NextAt}
	for _, c := range codes {
		if f, ok := prev.Found[CodeKey(c.Kind, c.Code)]; ok {
			out.Found[CodeKey(c.Kind, c.Code)] = f
		}
	}
	sameCodes := old.SpotifyUPC == r.SpotifyUPC && slices.Equal(old.SpotifyISRCs, r.SpotifyISRCs)
	byHand := !slices.Equal(old.SpotifyAlbumIDs, r.SpotifyAlbumIDs) || !slices.Equal(old.SpotifyTrackIDs, r.SpotifyTrackIDs)
	switch {
	case len(out.Found) == len(codes):
		out.State = ResolutionResolved
	case old.ID != uuid.Nil && (prev.State == ResolutionPending || prev.State == ResolutionOperator) && byHand:
		out.State = ResolutionOperator
	case prev.State == ResolutionOperator && sameCodes:
		out.State = ResolutionOperator
	default:
		out.State = ResolutionPending
		if !sameCodes {
			out.Attempts, out.NextAt = 0, nil
		}
	}
	return out
}

func foundJSON(f map[string]Resolved) []byte {
	if f == nil {
		f = map[string]Resolved{}
	}
	b, _ := json.Marshal(f)
	return b
}

// DueResolution is a release whose codes are to be searched now.
type DueResolution struct {
	Release Release
	// FirstDue is when its first open Spotify pre-save is due.
	FirstDue time.Time
}

// ResolutionsDue lists the scheduled releases with a pending resolution
// whose next search is due and whose first open Spotify pre-save is due
// within window: the search starts shortly before the release goes
// live. On the releases_resolution_pending index.
func (s *Store) ResolutionsDue(ctx context.Context, window time.Duration) ([]DueResolution, error) {
	rows, err := s.pool.Query(ctx, `
		SELECT `+prefixed("r.", releaseColumns)+`, f.first_due
		FROM releases r
		CROSS JOIN LATERAL (SELECT min(p.due_at) AS first_due FROM presaves p
			WHERE p.release_id = r.id AND p.provider = 'spotify' AND p.status IN `+runnableStatuses+`) f
		WHERE r.spotify_resolution = 'pending' AND r.status = 'scheduled'
		  AND (r.spotify_resolve_next_at IS NULL OR r.spotify_resolve_next_at <= now())
		  AND f.first_due <= now() + make_interval(secs => $1)`, window.Seconds())
	if err != nil {
		return nil, fmt.Errorf("store: resolutions due: %w", err)
	}
	defer rows.Close()
	var out []DueResolution
	for rows.Next() {
		var d DueResolution
		if d.Release, err = scanRelease(extraRow{rows, []any{&d.FirstDue}}); err != nil {
			return nil, fmt.Errorf("store: resolutions due: %w", err)
		}
		out = append(out, d)
	}
	return out, rows.Err()
}

// RecordResolution records a search of a pending release's codes: the
// codes found (CodeKey to ID) join the release's album and track IDs,
// and the next search is due at next when some code is still missing.
// When the last code is found the release is resolved, and a guard its
// resolution had paused goes back to its canary. It reports the release
// as it now stands; a release no longer pending is left alone (an
// operator set its IDs meanwhile).
func (s *Store) RecordResolution(ctx context.Context, id uuid.UUID, found map[string]string, next time.Time) (Release, error) {
	var out Release
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		r, err := scanRelease(tx.QueryRow(ctx, `SELECT `+releaseColumns+` FROM releases WHERE id = $1 FOR UPDATE`, id))
		if err != nil {
			return err
		}
		out = r
		if r.SpotifyResolution.State != ResolutionPending {
			return nil
		}
		res := r.SpotifyResolution
		now := time.Now().UTC()
		for _, c := range r.SpotifyCodes() {
			key := CodeKey(c.Kind, c.Code)
			rid, ok := found[key]
			if !ok || rid == "" {
				continue
			}
			res.Found[key] = Resolved{ID: rid, At: now}
			if c.Kind == providers.CodeUPC && !slices.Contains(r.SpotifyAlbumIDs, rid) {
				r.SpotifyAlbumIDs = append(r.SpotifyAlbumIDs, rid)
			}
			if c.Kind == providers.CodeISRC && !slices.Contains(r.SpotifyTrackIDs, rid) {
				r.SpotifyTrackIDs = append(r.SpotifyTrackIDs, rid)
			}
		}
		res.Attempts++
		res.NextAt = &next
		if len(res.Found) == len(r.SpotifyCodes()) {
			res.State, res.NextAt = ResolutionResolved, nil
		}
		if out, err = scanRelease(tx.QueryRow(ctx, `
			UPDATE releases SET spotify_album_ids = $2, spotify_track_ids = $3, spotify_resolution = $4,
				spotify_resolved = $5, spotify_resolve_attempts = $6, spotify_resolve_next_at = $7, updated_at = now()
			WHERE id = $1 RETURNING `+releaseColumns,
			id, nonNil(r.SpotifyAlbumIDs), nonNil(r.SpotifyTrackIDs), res.State, foundJSON(res.Found), res.Attempts, res.NextAt)); err != nil {
			return err
		}
		if res.State == ResolutionResolved {
			_, err = tx.Exec(ctx, `
				UPDATE release_guards SET state = 'canary', paused_at = NULL, pause_cause = NULL, pause_action = NULL,
					pause_error = NULL, pause_failed = NULL, pause_seen = NULL, updated_at = now()
				WHERE release_id = $1 AND provider = 'spotify' AND state = 'paused' AND pause_cause = $2`, id, PauseUnresolved)
		}
		return err
	})
	if err != nil {
		return Release{}, fmt.Errorf("store: record resolution: %w", err)
	}
	return out, nil
}
