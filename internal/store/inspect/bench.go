package inspect

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/presave/presave/internal/store"
)

// SeedSyntheticPresaves inserts n fans, each with one pending Spotify
// pre-save of release due at dueAt, in one statement. They have no token:
// the benchmark uses them to show that future pre-saves live in
// PostgreSQL and cost Redis nothing. Not for production use.
func SeedSyntheticPresaves(ctx context.Context, st *store.Store, releaseID uuid.UUID, n int, dueAt time.Time) error {
	_, err := st.Pool().Exec(ctx, `
		WITH f AS (
			INSERT INTO fans (id) SELECT gen_random_uuid() FROM generate_series(1, $2) RETURNING id
		)
		INSERT INTO presaves (id, fan_id, release_id, provider, actions, consented_at, consent_version, fan_zone, due_at)
		SELECT gen_random_uuid(), f.id, $1, 'spotify', '{save}', now(), 'bench', 'UTC', $3 FROM f`,
		releaseID, n, dueAt)
	if err != nil {
		return fmt.Errorf("inspect: seed presaves: %w", err)
	}
	return nil
}

// SeedHistory inserts n fans, each with one Spotify pre-save of release
// done a month ago (no token, as after a purge), in one statement, then
// VACUUM ANALYZE: a platform's history after a year, for the benchmark's
// -history. Not for production use.
func SeedHistory(ctx context.Context, st *store.Store, releaseID uuid.UUID, n int) error {
	_, err := st.Pool().Exec(ctx, `
		WITH f AS (
			INSERT INTO fans (id) SELECT gen_random_uuid() FROM generate_series(1, $2) RETURNING id
		)
		INSERT INTO presaves (id, fan_id, release_id, provider, actions, consented_at, consent_version, fan_zone, due_at,
			status, results, attempts, started_at, completed_at, ended_at)
		SELECT gen_random_uuid(), f.id, $1, 'spotify', '{save}', now() - interval '40 days', 'bench', 'UTC',
			now() - interval '30 days', 'done',
			jsonb_build_object('save', jsonb_build_object('outcome', 'ok', 'at', now() - interval '30 days')),
			1, now() - interval '30 days', now() - interval '30 days', now() - interval '30 days'
		FROM f`, releaseID, n)
	if err != nil {
		return fmt.Errorf("inspect: seed history: %w", err)
	}
	if _, err := st.Pool().Exec(ctx, `VACUUM ANALYZE presaves, fans`); err != nil {
		return fmt.Errorf("inspect: seed history: vacuum: %w", err)
	}
	return nil
}

// Timings summarises how a release's pre-saves ran.
type Timings struct {
	Total, Finished, Done, Failed int
	// FirstDue is the earliest due_at; LastCompleted the latest completed_at.
	FirstDue, LastCompleted time.Time
	// LatenessP50/P99 are percentiles of started_at - due_at, seconds.
	LatenessP50, LatenessP99, LatenessMax float64
}

// ReleaseTimings reads how the release's pre-saves ran: how many finished,
// and the lateness from due_at to the start of the task that ran them.
func ReleaseTimings(ctx context.Context, st *store.Store, releaseID uuid.UUID) (Timings, error) {
	var t Timings
	var firstDue, lastDone *time.Time
	var p50, p99, pmax *float64
	err := st.Pool().QueryRow(ctx, `
		SELECT count(*),
			count(*) FILTER (WHERE status IN ('done', 'partial', 'failed', 'cancelled')),
			count(*) FILTER (WHERE status = 'done'),
			count(*) FILTER (WHERE status IN ('failed', 'partial')),
			min(due_at), max(completed_at),
			percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM started_at - due_at)),
			percentile_cont(0.99) WITHIN GROUP (ORDER BY extract(epoch FROM started_at - due_at)),
			max(extract(epoch FROM started_at - due_at))::float8
		FROM presaves WHERE release_id = $1`, releaseID).
		Scan(&t.Total, &t.Finished, &t.Done, &t.Failed, &firstDue, &lastDone, &p50, &p99, &pmax)
	if err != nil {
		return Timings{}, fmt.Errorf("inspect: release timings: %w", err)
	}
	if firstDue != nil {
		t.FirstDue = *firstDue
	}
	if lastDone != nil {
		t.LastCompleted = *lastDone
	}
	if p50 != nil {
		t.LatenessP50, t.LatenessP99, t.LatenessMax = *p50, *p99, *pmax
	}
	return t, nil
}
