// Package inspect reads how a run ended, for the demo, the benchmark and
// the reliability suite (how many pre-saves ended how, what secrets are
// left, when actions ran), and seeds the benchmark's synthetic pre-saves.
// Neither binary links it. Read-only except SeedSyntheticPresaves.
package inspect

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/presave/presave/internal/providers"
	"github.com/presave/presave/internal/store"
)

// PresaveTally is how many pre-saves of one provider are in one status
// with one last error (the failure reason of a finished pre-save; empty
// when none).
type PresaveTally struct {
	Provider providers.Name
	Status   store.PresaveStatus
	Reason   string
	N        int
}

// TallyPresaves counts the pre-saves of the given releases (all releases
// when none is given) by provider, status and last error.
func TallyPresaves(ctx context.Context, st *store.Store, releaseIDs ...uuid.UUID) ([]PresaveTally, error) {
	rows, err := st.Pool().Query(ctx, `
		SELECT provider, status, coalesce(last_error, ''), count(*)
		FROM presaves
		WHERE cardinality($1::uuid[]) = 0 OR release_id = ANY($1)
		GROUP BY 1, 2, 3 ORDER BY 1, 2, 3`, nonNilIDs(releaseIDs))
	if err != nil {
		return nil, fmt.Errorf("inspect: tally presaves: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (PresaveTally, error) {
		var t PresaveTally
		err := r.Scan(&t.Provider, &t.Status, &t.Reason, &t.N)
		return t, err
	})
	if err != nil {
		return nil, fmt.Errorf("inspect: tally presaves: %w", err)
	}
	return out, nil
}

func nonNilIDs(ids []uuid.UUID) []uuid.UUID {
	if ids == nil {
		return []uuid.UUID{}
	}
	return ids
}

// Secrets counts what is left of fans' grants: token rows and
// revocations still waiting to be done at the provider.
type Secrets struct {
	Tokens int
	// Unneeded counts the token rows no open pre-save needs: they should
	// have been purged (ARCHITECTURE.md invariant 4).
	Unneeded    int
	Revocations int
}

// CountSecrets counts token rows (all, and those no open pre-save
// needs) and pending revocations in the whole database (schema).
func CountSecrets(ctx context.Context, st *store.Store) (Secrets, error) {
	var c Secrets
	err := st.Pool().QueryRow(ctx, `
		SELECT (SELECT count(*) FROM provider_tokens),
			(SELECT count(*) FROM provider_tokens t WHERE NOT `+store.TokenNeededSQL("t.fan_id", "t.provider", "")+`),
			(SELECT count(*) FROM token_revocations)`).
		Scan(&c.Tokens, &c.Unneeded, &c.Revocations)
	if err != nil {
		return Secrets{}, fmt.Errorf("inspect: count secrets: %w", err)
	}
	return c, nil
}

// ActionTimes summarises when the actions of some releases' pre-saves
// happened, from the time recorded with each action's result (set once
// per action, so retries and crashes do not move it).
type ActionTimes struct {
	// Presaves is how many pre-saves have at least one recorded action.
	Presaves int
	// Actions is how many action results are recorded (any outcome).
	Actions int
	// FirstDue is the earliest due_at among them; LastAction the latest
	// recorded action.
	FirstDue, LastAction time.Time
	// Lateness percentiles of (first recorded action − due_at).
	P50, P99, Max time.Duration
	// Early counts pre-saves with an action recorded before their due_at
	// (more than one second before, to ignore clock rounding): there
	// must be none.
	Early int
}

// PresaveActionTimes reads ActionTimes for the given releases (all when
// none is given).
func PresaveActionTimes(ctx context.Context, st *store.Store, releaseIDs ...uuid.UUID) (ActionTimes, error) {
	var t ActionTimes
	var firstDue, last *time.Time
	var p50, p99, pmax *float64
	err := st.Pool().QueryRow(ctx, `
		WITH a AS (
			SELECT p.due_at, min((r.value->>'at')::timestamptz) AS first_at,
				max((r.value->>'at')::timestamptz) AS last_at, count(*) AS n
			FROM presaves p, jsonb_each(p.results) r
			WHERE (cardinality($1::uuid[]) = 0 OR p.release_id = ANY($1)) AND r.value ? 'at'
			GROUP BY p.id, p.due_at
		)
		SELECT count(*), coalesce(sum(n), 0)::int, min(due_at), max(last_at),
			percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM first_at - due_at)),
			percentile_cont(0.99) WITHIN GROUP (ORDER BY extract(epoch FROM first_at - due_at)),
			max(extract(epoch FROM first_at - due_at))::float8,
			count(*) FILTER (WHERE first_at < due_at - interval '1 second')
		FROM a`, nonNilIDs(releaseIDs)).
		Scan(&t.Presaves, &t.Actions, &firstDue, &last, &p50, &p99, &pmax, &t.Early)
	if err != nil {
		return ActionTimes{}, fmt.Errorf("inspect: presave action times: %w", err)
	}
	if firstDue != nil {
		t.FirstDue = *firstDue
	}
	if last != nil {
		t.LastAction = *last
	}
	sec := func(f *float64) time.Duration {
		if f == nil {
			return 0
		}
		return time.Duration(*f * float64(time.Second))
	}
	t.P50, t.P99, t.Max = sec(p50), sec(p99), sec(pmax)
	return t, nil
}

// HasToken reports whether a grant is stored for the fan at p.
func HasToken(ctx context.Context, st *store.Store, fanID uuid.UUID, p providers.Name) (bool, error) {
	var ok bool
	err := st.Pool().QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM provider_tokens WHERE fan_id = $1 AND provider = $2)`, fanID, p).Scan(&ok)
	return ok, err
}
