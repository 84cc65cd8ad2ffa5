package inspect

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/presave/presave/internal/store"
)

// RevocationHold holds a lock that makes every write to token_revocations
// wait: a worker's batch of finishes at a revocable provider then stops
// inside its transaction, its status changes and token deletions made
// and not committed, until Release. The reliability suite uses it to
// crash things while a batch is provably in flight. Not for production
// use.
type RevocationHold struct {
	tx  pgx.Tx
	pid int
}

// HoldRevocationWrites takes the lock (SHARE: reads go on, inserts and
// deletes wait).
func HoldRevocationWrites(ctx context.Context, st *store.Store) (*RevocationHold, error) {
	tx, err := st.Pool().Begin(ctx)
	if err != nil {
		return nil, fmt.Errorf("inspect: hold revocations: %w", err)
	}
	h := &RevocationHold{tx: tx}
	if _, err := tx.Exec(ctx, `LOCK TABLE token_revocations IN SHARE MODE`); err != nil {
		_ = tx.Rollback(ctx)
		return nil, fmt.Errorf("inspect: hold revocations: %w", err)
	}
	if err := tx.QueryRow(ctx, `SELECT pg_backend_pid()`).Scan(&h.pid); err != nil {
		_ = tx.Rollback(ctx)
		return nil, fmt.Errorf("inspect: hold revocations: %w", err)
	}
	return h, nil
}

// Waiting counts the revocation inserts waiting for the hold
// (PostgreSQL's own view of who blocks whom): each is a batch of
// finishes in flight.
func (h *RevocationHold) Waiting(ctx context.Context, st *store.Store) (int, error) {
	var n int
	err := st.Pool().QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity
		WHERE $1 = ANY (pg_blocking_pids(pid)) AND query LIKE 'INSERT INTO token_revocations%'`, h.pid).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("inspect: waiting on revocations: %w", err)
	}
	return n, nil
}

// Release lets the waiting writes go on.
func (h *RevocationHold) Release(ctx context.Context) error {
	err := h.tx.Rollback(ctx)
	if err != nil && !errors.Is(err, pgx.ErrTxClosed) {
		return fmt.Errorf("inspect: release revocations: %w", err)
	}
	return nil
}
