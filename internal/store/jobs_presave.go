package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/presave/presave/internal/providers"
)

// The worker's view of a pre-save's lifecycle. Every write is conditioned
// on the pre-save's ID AND generation: a reschedule, re-consent or
// cancellation that bumped the generation meanwhile always wins, and the
// stale task's write does nothing.

// LeasedError means another attempt of the pre-save is running and holds
// its lease until Until: the caller should try again after that.
type LeasedError struct{ Until time.Time }

func (e *LeasedError) Error() string {
	return "store: presave is running elsewhere until " + e.Until.Format(time.RFC3339)
}

// StartPresave marks the pre-save running for this generation and takes
// its lease for lease (an attempt's time limit plus bookkeeping):
// attempts+1, started_at = now. It reports false (and no error) when the
// pre-save is not enqueued or running at that generation; the task is
// then stale (every path that queues a task marks the row enqueued first,
// and a postponed pre-save is pending until the relay claims it again).
// It returns a *LeasedError when another attempt holds the lease.
func (s *Store) StartPresave(ctx context.Context, id uuid.UUID, generation int, lease time.Duration) (Presave, bool, error) {
	p, err := scanPresave(s.pool.QueryRow(ctx, `
		UPDATE presaves SET status = 'running', attempts = attempts + 1, started_at = now(),
			lease_until = now() + make_interval(secs => $3), updated_at = now()
		WHERE id = $1 AND generation = $2
		  AND (status = 'enqueued' OR (status = 'running' AND (lease_until IS NULL OR lease_until < now())))
		RETURNING `+presaveColumns, id, generation, lease.Seconds()))
	if err == nil {
		return p, true, nil
	}
	if !errors.Is(err, ErrNotFound) {
		return Presave{}, false, fmt.Errorf("store: start presave: %w", err)
	}
	var until *time.Time
	err = s.pool.QueryRow(ctx, `
		SELECT lease_until FROM presaves
		WHERE id = $1 AND generation = $2 AND status = 'running' AND lease_until >= now()`, id, generation).Scan(&until)
	if err == nil && until != nil {
		return Presave{}, false, &LeasedError{Until: *until}
	}
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return Presave{}, false, fmt.Errorf("store: start presave: %w", err)
	}
	return Presave{}, false, nil
}

// RecordActionResult stores one action's result as soon as it is known,
// so a retry after a crash skips what already succeeded. It reports false
// when the generation moved on.
func (s *Store) RecordActionResult(ctx context.Context, id uuid.UUID, generation int, a providers.Action, r ActionResult) (bool, error) {
	b, err := json.Marshal(r)
	if err != nil {
		return false, err
	}
	tag, err := s.pool.Exec(ctx, `
		UPDATE presaves SET results = results || jsonb_build_object($3::text, $4::jsonb), updated_at = now()
		WHERE id = $1 AND generation = $2`, id, generation, string(a), b)
	if err != nil {
		return false, fmt.Errorf("store: record action result: %w", err)
	}
	return tag.RowsAffected() == 1, nil
}

// RequeuePresave hands a running pre-save back to its queue (its task will
// be retried): status enqueued, with the error that made it wait. It
// reports false when the generation moved on.
func (s *Store) RequeuePresave(ctx context.Context, id uuid.UUID, generation int, lastError string) (bool, error) {
	tag, err := s.pool.Exec(ctx, `
		UPDATE presaves SET status = 'enqueued', last_error = NULLIF($3, ''), lease_until = NULL, updated_at = now()
		WHERE id = $1 AND generation = $2 AND status IN ('enqueued', 'running')`, id, generation, lastError)
	if err != nil {
		return false, fmt.Errorf("store: requeue presave: %w", err)
	}
	return tag.RowsAffected() == 1, nil
}

// PostponePresave puts a pre-save that is not due yet back to pending, for
// the relay to claim when it comes within the window again.
func (s *Store) PostponePresave(ctx context.Context, id uuid.UUID, generation int) (bool, error) {
	tag, err := s.pool.Exec(ctx, `
		UPDATE presaves SET status = 'pending', enqueued_at = NULL, lease_until = NULL, updated_at = now()
		WHERE id = $1 AND generation = $2 AND status IN ('enqueued', 'running')`, id, generation)
	if err != nil {
		return false, fmt.Errorf("store: postpone presave: %w", err)
	}
	return tag.RowsAffected() == 1, nil
}

// Finish is a pre-save's final state, as the worker decided it.
type Finish struct {
	ID         uuid.UUID
	Generation int
	// Status is done, partial or failed.
	Status PresaveStatus
	// Results are merged into the stored results (per action).
	Results   map[providers.Action]ActionResult
	LastError string
	// PurgeReason is recorded with a revocation.
	PurgeReason string
	// PurgeAlways deletes the fan's token at this provider whatever else
	// needed it (the grant is invalid: it helps nobody).
	PurgeAlways bool
}

// Finished is what FinishPresave did.
type Finished struct {
	// Applied is false when the generation moved on (nothing written).
	Applied bool
	// FanID and Provider name the token the purge concerned.
	FanID    uuid.UUID
	Provider providers.Name
	// Purge says whether the token was deleted and which revocation, if
	// any, needs a purge task.
	Purge Purge
}

// FinishPresave records a final state and, in the same transaction,
// deletes the fan's token at the provider when no open pre-save needs it
// any more (ARCHITECTURE.md invariant 4). The caller enqueues a purge task
// for Finished.Purge.RevocationID when it is set.
func (s *Store) FinishPresave(ctx context.Context, f Finish, revocable Revocable) (Finished, error) {
	if f.Status != PresaveDone && f.Status != PresavePartial && f.Status != PresaveFailed {
		return Finished{}, fmt.Errorf("store: finish presave: %q is not a final status", f.Status)
	}
	results := map[providers.Action]ActionResult{}
	for a, r := range f.Results {
		results[a] = r
	}
	b, err := json.Marshal(results)
	if err != nil {
		return Finished{}, err
	}
	var out Finished
	err = s.inTx(ctx, func(tx pgx.Tx) error {
		err := tx.QueryRow(ctx, `
			UPDATE presaves SET status = $3, results = results || $4::jsonb, last_error = NULLIF($5, ''),
				completed_at = now(), updated_at = now()
			WHERE id = $1 AND generation = $2 AND status IN ('pending', 'enqueued', 'running')
			RETURNING fan_id, provider`, f.ID, f.Generation, f.Status, string(b), f.LastError).Scan(&out.FanID, &out.Provider)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil
		}
		if err != nil {
			return err
		}
		out.Applied = true
		reason := f.PurgeReason
		if reason == "" {
			reason = "presave_" + string(f.Status)
		}
		if f.PurgeAlways {
			out.Purge, err = s.purgeToken(ctx, tx, out.FanID, out.Provider, revocable != nil && revocable(out.Provider), reason)
		} else {
			out.Purge, err = s.purgeIfUnneeded(ctx, tx, out.FanID, out.Provider, revocable, reason)
		}
		return err
	})
	if err != nil {
		return Finished{}, fmt.Errorf("store: finish presave: %w", err)
	}
	return out, nil
}

// DuePresave is a pre-save the relay or sweeper hands to the queue.
type DuePresave struct {
	ID         uuid.UUID
	Generation int
	Provider   providers.Name
	DueAt      time.Time
}

func collectDue(rows pgx.Rows) ([]DuePresave, error) {
	return pgx.CollectRows(rows, func(row pgx.CollectableRow) (DuePresave, error) {
		var d DuePresave
		err := row.Scan(&d.ID, &d.Generation, &d.Provider, &d.DueAt)
		return d, err
	})
}
