package store

import (
	"context"
	"crypto/sha256"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/presave/presave/internal/providers"
)

// FanByToken finds the fan a self-service token belongs to. ErrNotFound
// for an unknown token (or a deleted fan).
func (s *Store) FanByToken(ctx context.Context, token string) (uuid.UUID, error) {
	h := sha256.Sum256([]byte(token))
	var id uuid.UUID
	if err := s.pool.QueryRow(ctx, `SELECT fan_id FROM fan_sessions WHERE token_hash = $1`, h[:]).Scan(&id); err != nil {
		return uuid.Nil, fmt.Errorf("store: fan by token: %w", notFound(err))
	}
	return id, nil
}

// UnknownFans returns the IDs of ids that name no fan, in their order.
func (s *Store) UnknownFans(ctx context.Context, ids []uuid.UUID) ([]uuid.UUID, error) {
	rows, err := s.pool.Query(ctx, `
		SELECT i.id FROM unnest($1::uuid[]) WITH ORDINALITY AS i (id, n)
		WHERE NOT EXISTS (SELECT 1 FROM fans f WHERE f.id = i.id) ORDER BY i.n`, ids)
	if err != nil {
		return nil, fmt.Errorf("store: unknown fans: %w", err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[uuid.UUID])
	if err != nil {
		return nil, fmt.Errorf("store: unknown fans: %w", err)
	}
	return out, nil
}

// WithdrawPresave cancels one of the fan's pre-saves and purges its token
// if nothing else needs it. ErrNotFound when the pre-save is not the fan's.
func (s *Store) WithdrawPresave(ctx context.Context, fanID, presaveID uuid.UUID) (Cancelled, error) {
	var out Cancelled
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		var owner uuid.UUID
		if err := tx.QueryRow(ctx, `SELECT fan_id FROM presaves WHERE id = $1`, presaveID).Scan(&owner); err != nil || owner != fanID {
			return ErrNotFound
		}
		var err error
		out, err = s.cancelPresaves(ctx, tx, `id = $1`, []any{presaveID}, "consent_withdrawn")
		return err
	})
	if err != nil {
		return Cancelled{}, fmt.Errorf("store: withdraw: %w", err)
	}
	return out, nil
}

// Disconnect cancels the fan's open pre-saves on p and deletes the token
// and the account link, whatever else it was needed for.
func (s *Store) Disconnect(ctx context.Context, fanID uuid.UUID, p providers.Name) (Cancelled, error) {
	var out Cancelled
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		var err error
		if out, err = s.cancelPresaves(ctx, tx, `fan_id = $1 AND provider = $2`, []any{fanID, p}, "disconnected"); err != nil {
			return err
		}
		if len(out.Purges) == 0 {
			pt, err := s.purgeToken(ctx, tx, fanID, p, "disconnected")
			if err != nil {
				return err
			}
			if pt.Deleted {
				out.Purges = append(out.Purges, PurgedToken{FanID: fanID, Provider: p, Purge: pt})
			}
		}
		_, err = tx.Exec(ctx, `DELETE FROM fan_accounts WHERE fan_id = $1 AND provider = $2`, fanID, p)
		return err
	})
	if err != nil {
		return Cancelled{}, fmt.Errorf("store: disconnect: %w", err)
	}
	return out, nil
}

// DeleteFan deletes everything about the fan, irreversibly: it cancels
// the open pre-saves, moves revocable grants to token_revocations (bound
// to the revocation, not the fan) and deletes the fan, which cascades to
// accounts, sessions, tokens and pre-saves. ErrNotFound when the fan is
// already gone.
func (s *Store) DeleteFan(ctx context.Context, fanID uuid.UUID) (Cancelled, error) {
	var out Cancelled
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		var one int
		if err := tx.QueryRow(ctx, `SELECT 1 FROM fans WHERE id = $1 FOR UPDATE`, fanID).Scan(&one); err != nil {
			return notFound(err)
		}
		var err error
		if out, err = s.cancelPresaves(ctx, tx, `fan_id = $1`, []any{fanID}, "account_deleted"); err != nil {
			return err
		}
		for _, p := range providers.Names {
			pt, err := s.purgeToken(ctx, tx, fanID, p, "account_deleted")
			if err != nil {
				return err
			}
			if pt.Deleted {
				out.Purges = append(out.Purges, PurgedToken{FanID: fanID, Provider: p, Purge: pt})
			}
		}
		_, err = tx.Exec(ctx, `DELETE FROM fans WHERE id = $1`, fanID)
		return err
	})
	if err != nil {
		return Cancelled{}, fmt.Errorf("store: delete fan: %w", err)
	}
	return out, nil
}

// FanExport is everything presave holds about a fan, without any secret.
type FanExport struct {
	FanID     uuid.UUID
	CreatedAt time.Time
	Accounts  []ExportedAccount
	Tokens    []ExportedToken
	Presaves  []Presave
}

// ExportedAccount is a linked provider account.
type ExportedAccount struct {
	Provider  providers.Name
	AccountID string
	CreatedAt time.Time
}

// ExportedToken says a grant is stored, never the grant itself.
type ExportedToken struct {
	Provider     providers.Name
	Scopes       []string
	AuthorizedAt time.Time
	CreatedAt    time.Time
	// Storefront is the Apple Music storefront kept with the grant.
	Storefront string
}

// ExportFan gathers everything about the fan.
func (s *Store) ExportFan(ctx context.Context, fanID uuid.UUID) (FanExport, error) {
	out := FanExport{FanID: fanID}
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		if err := tx.QueryRow(ctx, `SELECT created_at FROM fans WHERE id = $1`, fanID).Scan(&out.CreatedAt); err != nil {
			return notFound(err)
		}
		rows, err := tx.Query(ctx, `SELECT provider, account_id, created_at FROM fan_accounts WHERE fan_id = $1 ORDER BY provider`, fanID)
		if err != nil {
			return err
		}
		if out.Accounts, err = pgx.CollectRows(rows, pgx.RowToStructByPos[ExportedAccount]); err != nil {
			return err
		}
		rows, err = tx.Query(ctx, `SELECT provider, scopes, authorized_at, created_at, coalesce(storefront, '') FROM provider_tokens WHERE fan_id = $1 ORDER BY provider`, fanID)
		if err != nil {
			return err
		}
		if out.Tokens, err = pgx.CollectRows(rows, pgx.RowToStructByPos[ExportedToken]); err != nil {
			return err
		}
		rows, err = tx.Query(ctx, `SELECT `+presaveColumns+` FROM presaves WHERE fan_id = $1 ORDER BY created_at`, fanID)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			p, err := scanPresave(rows)
			if err != nil {
				return err
			}
			out.Presaves = append(out.Presaves, p)
		}
		return rows.Err()
	})
	if err != nil {
		return FanExport{}, fmt.Errorf("store: export: %w", err)
	}
	return out, nil
}
