package store

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/presave/presave/internal/providers"
	"github.com/presave/presave/internal/seal"
)

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

// newRevocation is a deleted token's grant re-sealed for a new
// revocation row; token is the grant in plaintext (memory only).
type newRevocation struct {
	id       uuid.UUID
	provider providers.Name
	keyID    string
	sealed   []byte
	reason   string
	token    string
}

// revocationRow re-seals a deleted token's refresh token for a new
// revocation row; false (and no error) when the token cannot be opened.
func (s *Store) revocationRow(fanID uuid.UUID, p providers.Name, refresh []byte, reason string) (newRevocation, bool, error) {
	rt, err := s.ring.Open(refresh, tokenOwner(fanID, p, "refresh"))
	if err != nil {
		return newRevocation{}, false, nil
	}
	r := newRevocation{id: uuid.Must(uuid.NewV7()), provider: p, reason: reason, token: string(rt)}
	r.keyID, r.sealed, err = s.ring.Seal(rt, revocationOwner(r.id, p))
	if err != nil {
		return newRevocation{}, false, err
	}
	return r, true, nil
}

// insertRevocations is the one statement that writes revocation rows,
// however many.
func insertRevocations(rs []newRevocation) *pgx.QueuedQuery {
	ids, provs, keys, sealed, why := make([]uuid.UUID, len(rs)), make([]string, len(rs)), make([]string, len(rs)),
		make([][]byte, len(rs)), make([]string, len(rs))
	for i, r := range rs {
		ids[i], provs[i], keys[i], sealed[i], why[i] = r.id, string(r.provider), r.keyID, r.sealed, r.reason
	}
	return &pgx.QueuedQuery{
		SQL: `INSERT INTO token_revocations (id, provider, key_id, token_sealed, reason)
			SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::bytea[], $5::text[])`,
		Arguments: []any{ids, provs, keys, sealed, why},
	}
}

func revocationOwner(id uuid.UUID, p providers.Name) []byte {
	return seal.Owner("revocation", id.String(), string(p))
}

// Revocation is a grant waiting to be revoked at the provider.
type Revocation struct {
	ID           uuid.UUID
	Provider     providers.Name
	RefreshToken string
	Reason       string
	Attempts     int
	CreatedAt    time.Time
}

// Revocation opens a pending revocation. ErrNotFound when it is done.
func (s *Store) Revocation(ctx context.Context, id uuid.UUID) (Revocation, error) {
	r := Revocation{ID: id}
	var sealed []byte
	err := s.pool.QueryRow(ctx, `SELECT provider, token_sealed, reason, attempts, created_at FROM token_revocations WHERE id = $1`, id).
		Scan(&r.Provider, &sealed, &r.Reason, &r.Attempts, &r.CreatedAt)
	if err != nil {
		return Revocation{}, fmt.Errorf("store: revocation: %w", notFound(err))
	}
	rt, err := s.ring.Open(sealed, revocationOwner(id, r.Provider))
	if err != nil {
		return Revocation{}, fmt.Errorf("store: open revocation: %w", err)
	}
	r.RefreshToken = string(rt)
	return r, nil
}

// PendingRevocations counts the grants still to revoke at a provider
// (rows leave the table once revoked or given up), by provider.
func (s *Store) PendingRevocations(ctx context.Context) (map[providers.Name]int, error) {
	rows, err := s.pool.Query(ctx, `SELECT provider, count(*) FROM token_revocations GROUP BY provider`)
	if err != nil {
		return nil, err
	}
	out := map[providers.Name]int{}
	var p providers.Name
	var n int
	_, err = pgx.ForEachRow(rows, []any{&p, &n}, func() error { out[p] = n; return nil })
	return out, err
}

// RevocationFailed records a failed revoke attempt (the error must not
// carry the token).
func (s *Store) RevocationFailed(ctx context.Context, id uuid.UUID, errText string) error {
	_, err := s.pool.Exec(ctx, `UPDATE token_revocations SET attempts = attempts + 1, last_error = $2 WHERE id = $1`, id, errText)
	return err
}

// DeleteRevocation forgets a revocation: it succeeded or was given up.
func (s *Store) DeleteRevocation(ctx context.Context, id uuid.UUID) error {
	return s.DeleteRevocations(ctx, []uuid.UUID{id})
}

// DeleteRevocations deletes revocations that are done, in one statement.
func (s *Store) DeleteRevocations(ctx context.Context, ids []uuid.UUID) error {
	if _, err := s.pool.Exec(ctx, `DELETE FROM token_revocations WHERE id = ANY ($1)`, ids); err != nil {
		return fmt.Errorf("store: delete revocations: %w", err)
	}
	return nil
}

// rotateRevocations re-seals up to limit pending revocations not under
// primary (RotateKeys).
func (s *Store) rotateRevocations(ctx context.Context, tx pgx.Tx, primary string, limit int) (int, error) {
	rows, err := tx.Query(ctx, `SELECT id, provider, token_sealed FROM token_revocations WHERE key_id <> $1 LIMIT $2 FOR UPDATE SKIP LOCKED`, primary, limit)
	if err != nil {
		return 0, err
	}
	type rev struct {
		id uuid.UUID
		p  providers.Name
		s  []byte
	}
	revs, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (rev, error) {
		var v rev
		err := r.Scan(&v.id, &v.p, &v.s)
		return v, err
	})
	if err != nil {
		return 0, err
	}
	for _, r := range revs {
		keyID, sealed, err := s.reseal(r.s, revocationOwner(r.id, r.p))
		if err != nil {
			return 0, fmt.Errorf("rotate: revocation %s: %w", r.id, err)
		}
		if _, err := tx.Exec(ctx, `UPDATE token_revocations SET key_id = $2, token_sealed = $3 WHERE id = $1`, r.id, keyID, sealed); err != nil {
			return 0, err
		}
	}
	return len(revs), nil
}
