package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/presave/presave/internal/providers"
)

// relayLock names the advisory lock that keeps the relay single across the
// cluster. It is derived from the schema so that separate schemas (tests,
// staging next to production) never block each other.
const relayLock = `hashtext(current_schema() || ':presave-relay')`

// ClaimDuePresaves is the relay's claim: under a transaction-scoped
// advisory lock (one relay at a time, cluster-wide), it moves up to batch
// pending pre-saves due within window to enqueued and returns them, oldest
// due first. ran is false when another relay holds the lock. The caller
// enqueues each; a process dying before it does leaves enqueued rows
// without a task, which InFlightPresaves finds.
func (s *Store) ClaimDuePresaves(ctx context.Context, window time.Duration, batch int) (claimed []DuePresave, ran bool, err error) {
	err = s.inTx(ctx, func(tx pgx.Tx) error {
		if err := tx.QueryRow(ctx, `SELECT pg_try_advisory_xact_lock(`+relayLock+`)`).Scan(&ran); err != nil || !ran {
			return err
		}
		// SKIP LOCKED: rows a consent or reschedule is changing right now
		// are left for the next tick instead of blocking the relay.
		rows, err := tx.Query(ctx, `
			WITH due AS (
				SELECT id FROM presaves
				WHERE status = 'pending' AND due_at <= now() + make_interval(secs => $1)
				ORDER BY due_at LIMIT $2
				FOR UPDATE SKIP LOCKED)
			UPDATE presaves p SET status = 'enqueued', enqueued_at = now(), updated_at = now()
			FROM due WHERE p.id = due.id
			RETURNING p.id, p.generation, p.provider, p.due_at, p.fan_id`, window.Seconds(), batch)
		if err != nil {
			return err
		}
		claimed, err = collectDue(rows)
		return err
	})
	if err != nil {
		return nil, false, fmt.Errorf("store: claim due presaves: %w", err)
	}
	return claimed, ran, nil
}

// InFlightCursor pages through in-flight pre-saves by (due_at, id).
type InFlightCursor struct {
	DueAt time.Time
	ID    uuid.UUID
}

// InFlightPresaves lists enqueued or running pre-saves due within window,
// after the cursor (zero value: from the start), so the relay can put back
// the tasks Redis lost.
func (s *Store) InFlightPresaves(ctx context.Context, window time.Duration, after InFlightCursor, limit int) ([]DuePresave, error) {
	rows, err := s.pool.Query(ctx, `
		SELECT id, generation, provider, due_at, fan_id FROM presaves
		WHERE status IN ('enqueued', 'running') AND due_at <= now() + make_interval(secs => $1)
			AND (due_at, id) > ($2, $3)
		ORDER BY due_at, id LIMIT $4`, window.Seconds(), after.DueAt, after.ID, limit)
	if err != nil {
		return nil, fmt.Errorf("store: in-flight presaves: %w", err)
	}
	out, err := collectDue(rows)
	if err != nil {
		return nil, fmt.Errorf("store: in-flight presaves: %w", err)
	}
	return out, nil
}

// ReviveStuckPresaves makes runnable again up to limit pre-saves that have
// been running for longer than timeout (their worker died): each gets a
// new generation, so the dead worker's task, when asynq recovers it, is
// stale and does nothing, and status enqueued. The caller enqueues each.
// timeout must exceed the longest a handler may run, or a slow but live
// handler would race the revived task.
func (s *Store) ReviveStuckPresaves(ctx context.Context, timeout time.Duration, limit int) ([]DuePresave, error) {
	rows, err := s.pool.Query(ctx, `
		WITH stuck AS (
			SELECT id FROM presaves
			WHERE status = 'running' AND started_at < now() - make_interval(secs => $1)
			ORDER BY started_at LIMIT $2
			FOR UPDATE SKIP LOCKED)
		UPDATE presaves p SET generation = p.generation + 1, status = 'enqueued', enqueued_at = now(),
			last_error = 'revived: running past its lease', updated_at = now()
		FROM stuck WHERE p.id = stuck.id
		RETURNING p.id, p.generation, p.provider, p.due_at, p.fan_id`, timeout.Seconds(), limit)
	if err != nil {
		return nil, fmt.Errorf("store: revive stuck presaves: %w", err)
	}
	out, err := collectDue(rows)
	if err != nil {
		return nil, fmt.Errorf("store: revive stuck presaves: %w", err)
	}
	return out, nil
}

// PurgeUnneededTokens is the sweeper's safety net for invariant 4: it
// purges up to limit tokens that no open pre-save needs, skipping tokens
// written within grace (a flow that stores a token just before its
// pre-save). Each purge runs in its own transaction with the same check
// and lock as every other purge path.
func (s *Store) PurgeUnneededTokens(ctx context.Context, grace time.Duration, limit int, revocable Revocable) ([]PurgedToken, error) {
	rows, err := s.pool.Query(ctx, `
		SELECT t.fan_id, t.provider FROM provider_tokens t
		WHERE greatest(t.created_at, coalesce(t.rotated_at, t.created_at)) < now() - make_interval(secs => $1)
			AND NOT EXISTS (SELECT 1 FROM presaves p WHERE p.fan_id = t.fan_id AND p.provider = t.provider
				AND p.status IN ('pending', 'enqueued', 'running'))
		LIMIT $2`, grace.Seconds(), limit)
	if err != nil {
		return nil, fmt.Errorf("store: unneeded tokens: %w", err)
	}
	type fp struct {
		fan uuid.UUID
		p   providers.Name
	}
	cands, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (fp, error) {
		var c fp
		err := row.Scan(&c.fan, &c.p)
		return c, err
	})
	if err != nil {
		return nil, fmt.Errorf("store: unneeded tokens: %w", err)
	}
	var out []PurgedToken
	for _, c := range cands {
		var pt Purge
		err := s.inTx(ctx, func(tx pgx.Tx) error {
			var err error
			pt, err = s.purgeIfUnneeded(ctx, tx, c.fan, c.p, revocable, "unneeded")
			return err
		})
		if err != nil {
			return out, fmt.Errorf("store: purge unneeded token: %w", err)
		}
		if pt.Deleted {
			out = append(out, PurgedToken{FanID: c.fan, Provider: c.p, Purge: pt})
		}
	}
	return out, nil
}

// RevocationIDsAfter lists pending revocations by ID (UUIDv7: creation
// order) after the cursor (uuid.Nil: from the start), so the sweeper can
// walk all of them, not only the oldest page.
func (s *Store) RevocationIDsAfter(ctx context.Context, after uuid.UUID, limit int) ([]uuid.UUID, error) {
	rows, err := s.pool.Query(ctx, `SELECT id FROM token_revocations WHERE id > $1 ORDER BY id LIMIT $2`, after, limit)
	if err != nil {
		return nil, fmt.Errorf("store: revocations: %w", err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[uuid.UUID])
	if err != nil {
		return nil, fmt.Errorf("store: revocations: %w", err)
	}
	return ids, nil
}

// MarkDueEnqueued is for the scheduler: it moves a pending
// pre-save of the given generation to enqueued and returns it as the task
// will name it (with its fan). ok is false when the pre-save is no longer
// pending at that generation.
func (s *Store) MarkDueEnqueued(ctx context.Context, id uuid.UUID, generation int) (d DuePresave, ok bool, err error) {
	err = s.pool.QueryRow(ctx, `
		UPDATE presaves SET status = 'enqueued', enqueued_at = now(), updated_at = now()
		WHERE id = $1 AND generation = $2 AND status = 'pending'
		RETURNING id, generation, provider, due_at, fan_id`, id, generation).
		Scan(&d.ID, &d.Generation, &d.Provider, &d.DueAt, &d.FanID)
	if errors.Is(err, pgx.ErrNoRows) {
		return DuePresave{}, false, nil
	}
	if err != nil {
		return DuePresave{}, false, fmt.Errorf("store: mark enqueued: %w", err)
	}
	return d, true, nil
}
