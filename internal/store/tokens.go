package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/presave/presave/internal/providers"
	"github.com/presave/presave/internal/seal"
)

// Token is a fan's grant at one provider, in plaintext. It exists only in
// memory; the store seals it on every write.
type Token struct {
	FanID    uuid.UUID
	Provider providers.Name
	// AccountID is the provider account the grant belongs to.
	AccountID    string
	RefreshToken string
	AccessToken  string    // may be empty
	Expiry       time.Time // of the access token
	Scopes       []string
	AuthorizedAt time.Time // the fan's original authorization
	KeyID        string    // the key the row is sealed under (read only)
	// Storefront is the fan's Apple Music storefront ("" elsewhere),
	// kept with the grant and gone with it.
	Storefront string
	CreatedAt  time.Time
	RotatedAt  *time.Time
}

// TokenNeededSQL is the one spelling of "a token is still needed": an
// open pre-save of the token's fan and provider exists. fan and provider
// are SQL expressions naming the token's owner; except, when not empty,
// is an SQL expression of a pre-save ID that does not count (the one
// finishing).
func TokenNeededSQL(fan, provider, except string) string {
	q := `EXISTS (SELECT 1 FROM presaves o WHERE o.fan_id = ` + fan + ` AND o.provider = ` + provider
	if except != "" {
		q += ` AND o.id <> ` + except
	}
	return q + ` AND o.status IN ` + openStatuses + `)`
}

// ErrTokenUnreadable: a stored grant does not authenticate under its key
// (tampered with, or copied from another fan's or provider's row). It
// will never open, so whatever needed it cannot run. A grant sealed under
// a key the ring lacks is not this error but seal.ErrUnknownKey: the
// operator may yet restore the key.
var ErrTokenUnreadable = errors.New("stored grant does not authenticate")

// openError is the error of a sealed token half that did not open.
func openError(which, keyID string, err error) error {
	if errors.Is(err, seal.ErrOpen) {
		return fmt.Errorf("store: open %s token (key %s): %w: %w", which, keyID, ErrTokenUnreadable, err)
	}
	return fmt.Errorf("store: open %s token (key %s): %w", which, keyID, err)
}

func tokenOwner(fanID uuid.UUID, p providers.Name, which string) []byte {
	return seal.Owner("token", fanID.String(), string(p), which)
}

// sealToken seals both halves under the primary key, so one key_id
// describes the whole row.
func (s *Store) sealToken(t Token) (keyID string, refresh, access []byte, err error) {
	keyID, refresh, err = s.ring.Seal([]byte(t.RefreshToken), tokenOwner(t.FanID, t.Provider, "refresh"))
	if err != nil {
		return "", nil, nil, err
	}
	if t.AccessToken != "" {
		if _, access, err = s.ring.Seal([]byte(t.AccessToken), tokenOwner(t.FanID, t.Provider, "access")); err != nil {
			return "", nil, nil, err
		}
	}
	return keyID, refresh, access, nil
}

// putTokenQuery seals t and returns the upsert that stores it, so a
// caller can also send it in a batch with other statements.
func (s *Store) putTokenQuery(t Token) (string, []any, error) {
	keyID, refresh, access, err := s.sealToken(t)
	if err != nil {
		return "", nil, err
	}
	var expiry *time.Time
	if access != nil && !t.Expiry.IsZero() {
		expiry = &t.Expiry
	}
	if t.Scopes == nil {
		t.Scopes = []string{}
	}
	return `
		INSERT INTO provider_tokens (fan_id, provider, key_id, refresh_sealed, access_sealed, access_expires_at, scopes, authorized_at, account_id, storefront)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
		ON CONFLICT (fan_id, provider) DO UPDATE SET
			key_id = EXCLUDED.key_id, refresh_sealed = EXCLUDED.refresh_sealed,
			access_sealed = EXCLUDED.access_sealed, access_expires_at = EXCLUDED.access_expires_at,
			scopes = EXCLUDED.scopes, authorized_at = EXCLUDED.authorized_at, account_id = EXCLUDED.account_id,
			storefront = EXCLUDED.storefront, rotated_at = now()`,
		[]any{t.FanID, t.Provider, keyID, refresh, access, expiry, t.Scopes, t.AuthorizedAt, nullable(t.AccountID), nullable(t.Storefront)}, nil
}

// UpdateToken stores a refreshed token (new access token and expiry, and
// the rotated refresh token if the provider rotated it), sealed under the
// primary key. It does nothing (and returns ErrNotFound) when the row was
// purged meanwhile: a purge always wins over a refresh.
func (s *Store) UpdateToken(ctx context.Context, t Token) error {
	keyID, refresh, access, err := s.sealToken(t)
	if err != nil {
		return err
	}
	var expiry *time.Time
	if access != nil && !t.Expiry.IsZero() {
		expiry = &t.Expiry
	}
	tag, err := s.pool.Exec(ctx, `
		UPDATE provider_tokens SET key_id = $3, refresh_sealed = $4, access_sealed = $5, access_expires_at = $6, rotated_at = now()
		WHERE fan_id = $1 AND provider = $2`, t.FanID, t.Provider, keyID, refresh, access, expiry)
	if err != nil {
		return fmt.Errorf("store: update token: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("store: update token: %w", ErrNotFound)
	}
	return nil
}

// Purge is the outcome of purging a token.
type Purge struct {
	// Deleted is true when a token row was deleted.
	Deleted bool
	// RevocationID names the token_revocations row to revoke at the
	// provider; uuid.Nil when there is nothing to revoke (no row, or the
	// provider has no revoke endpoint).
	RevocationID uuid.UUID
}

// purgeToken deletes the fan's token at p inside tx. When p's grants are
// revocable, the
// sealed refresh token moves to token_revocations, re-sealed so that it is
// bound to the revocation row and no longer to the fan.
func (s *Store) purgeToken(ctx context.Context, tx pgx.Tx, fanID uuid.UUID, p providers.Name, reason string) (Purge, error) {
	var refresh []byte
	err := tx.QueryRow(ctx, `DELETE FROM provider_tokens WHERE fan_id = $1 AND provider = $2 RETURNING refresh_sealed`, fanID, p).Scan(&refresh)
	if err != nil {
		if errors.Is(err, pgx.ErrNoRows) {
			return Purge{}, nil
		}
		return Purge{}, fmt.Errorf("store: purge token: %w", err)
	}
	if !s.revocableAt(p) {
		return Purge{Deleted: true}, nil
	}
	r, ok, err := s.revocationRow(fanID, p, refresh, reason)
	if err != nil {
		return Purge{}, err
	}
	if !ok {
		// Unreadable (key removed): nothing to revoke, but the row is gone.
		return Purge{Deleted: true}, nil
	}
	q := insertRevocations([]newRevocation{r})
	if _, err := tx.Exec(ctx, q.SQL, q.Arguments...); err != nil {
		return Purge{}, fmt.Errorf("store: queue revocation: %w", err)
	}
	return Purge{Deleted: true, RevocationID: r.id}, nil
}

// RotateKeys re-seals up to batch token rows and pending revocations that
// are not under the primary key, in one transaction. (OAuth states live
// ten minutes: rotating them is not worth it; states sealed under a
// removed key simply expire.) It returns how many it re-sealed; call it
// until it returns 0.
func (s *Store) RotateKeys(ctx context.Context, batch int) (int, error) {
	primary := s.ring.Primary()
	n := 0
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		var err error
		if n, err = s.rotateTokens(ctx, tx, primary, batch); err != nil || n >= batch {
			return err
		}
		m, err := s.rotateRevocations(ctx, tx, primary, batch-n)
		n += m
		return err
	})
	return n, err
}

// rotateTokens re-seals up to limit token rows not under primary.
func (s *Store) rotateTokens(ctx context.Context, tx pgx.Tx, primary string, limit int) (int, error) {
	rows, err := tx.Query(ctx, `
		SELECT fan_id, provider, refresh_sealed, access_sealed FROM provider_tokens
		WHERE key_id <> $1 LIMIT $2 FOR UPDATE SKIP LOCKED`, primary, limit)
	if err != nil {
		return 0, err
	}
	type row struct {
		fan  uuid.UUID
		p    providers.Name
		r, a []byte
	}
	todo, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (row, error) {
		var v row
		err := r.Scan(&v.fan, &v.p, &v.r, &v.a)
		return v, err
	})
	if err != nil {
		return 0, err
	}
	for _, r := range todo {
		keyID, refresh, err := s.reseal(r.r, tokenOwner(r.fan, r.p, "refresh"))
		if err != nil {
			return 0, fmt.Errorf("rotate: fan %s %s: %w", r.fan, r.p, err)
		}
		var access []byte
		if r.a != nil {
			if _, access, err = s.reseal(r.a, tokenOwner(r.fan, r.p, "access")); err != nil {
				return 0, fmt.Errorf("rotate: fan %s %s access: %w", r.fan, r.p, err)
			}
		}
		if _, err := tx.Exec(ctx, `UPDATE provider_tokens SET key_id = $3, refresh_sealed = $4, access_sealed = $5 WHERE fan_id = $1 AND provider = $2`,
			r.fan, r.p, keyID, refresh, access); err != nil {
			return 0, err
		}
	}
	return len(todo), nil
}

// reseal opens a sealed value and seals it again under the primary key,
// bound to the same owner.
func (s *Store) reseal(sealed, owner []byte) (string, []byte, error) {
	pt, err := s.ring.Open(sealed, owner)
	if err != nil {
		return "", nil, err
	}
	return s.ring.Seal(pt, owner)
}

// TokenCursor pages through the stored tokens by their key.
type TokenCursor struct {
	FanID    uuid.UUID
	Provider providers.Name
}

// PurgeUnneededTokens is the sweeper's safety net for invariant 4: it
// looks at the next limit stored tokens after the cursor (in key order)
// and purges those no open pre-save needs, skipping tokens written
// within grace (a flow that stores a token just before its pre-save).
// Each purge runs in its own transaction with the same check and lock
// as every other purge path. It returns where the next call goes on
// (the zero cursor once it went round), so a run costs limit key
// lookups however many tokens are stored.
func (s *Store) PurgeUnneededTokens(ctx context.Context, grace time.Duration, after TokenCursor, limit int) ([]PurgedToken, TokenCursor, error) {
	var next TokenCursor
	rows, err := s.pool.Query(ctx, `
		WITH page AS (
			SELECT fan_id, provider, created_at, rotated_at FROM provider_tokens
			WHERE (fan_id, provider) > ($2, $3) ORDER BY fan_id, provider LIMIT $4)
		SELECT t.fan_id, t.provider,
			greatest(t.created_at, coalesce(t.rotated_at, t.created_at)) < now() - make_interval(secs => $1)
				AND NOT `+TokenNeededSQL("t.fan_id", "t.provider", "")+`
		FROM page t ORDER BY t.fan_id, t.provider`, grace.Seconds(), after.FanID, after.Provider, limit)
	if err != nil {
		return nil, next, fmt.Errorf("store: unneeded tokens: %w", err)
	}
	type fp struct {
		fan      uuid.UUID
		p        providers.Name
		unneeded bool
	}
	page, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (fp, error) {
		var c fp
		err := row.Scan(&c.fan, &c.p, &c.unneeded)
		return c, err
	})
	if err != nil {
		return nil, next, fmt.Errorf("store: unneeded tokens: %w", err)
	}
	if len(page) == limit {
		last := page[len(page)-1]
		next = TokenCursor{FanID: last.fan, Provider: last.p}
	}
	var out []PurgedToken
	for _, c := range page {
		if !c.unneeded {
			continue
		}
		var pt Purge
		err := s.inTx(ctx, func(tx pgx.Tx) error {
			var err error
			pt, err = s.purgeIfUnneeded(ctx, tx, c.fan, c.p, "unneeded")
			return err
		})
		if err != nil {
			return out, next, fmt.Errorf("store: purge unneeded token: %w", err)
		}
		if pt.Deleted {
			out = append(out, PurgedToken{FanID: c.fan, Provider: c.p, Purge: pt})
		}
	}
	return out, next, nil
}

// AppAccounts counts, up to limit, the accounts other than the fan's (and
// other than account, when not empty) that hold a grant of provider p:
// how full a provider app capped in users is.
func (s *Store) AppAccounts(ctx context.Context, p providers.Name, fanID uuid.UUID, account string, limit int) (int, error) {
	var n int
	err := s.pool.QueryRow(ctx, `
		SELECT count(*) FROM (
			SELECT 1 FROM provider_tokens
			WHERE provider = $1 AND fan_id <> $2 AND ($3 = '' OR account_id IS DISTINCT FROM $3)
			LIMIT $4) t`, p, fanID, account, limit).Scan(&n)
	return n, err
}

// SealedKey is what is stored under one key ID.
type SealedKey struct {
	// Values counts the grants, pending revocations and OAuth states
	// sealed under it.
	Values int
	// Opens is false when the ring failed to open a grant sealed under
	// it: the ring holds a different key of that ID (or none).
	Opens bool
}

// SealedKeys reports, per key ID, the stored values sealed under it and
// whether the ring opens one of its grants: every key must be in the ring
// for its values to open. It reads every row once (an operator's check,
// not a hot path).
func (s *Store) SealedKeys(ctx context.Context) (map[string]SealedKey, error) {
	rows, err := s.pool.Query(ctx, `
		SELECT key_id, count(*) FROM (
			SELECT key_id FROM provider_tokens
			UNION ALL SELECT key_id FROM token_revocations
			UNION ALL SELECT key_id FROM oauth_states) k
		GROUP BY key_id`)
	if err != nil {
		return nil, err
	}
	out := map[string]SealedKey{}
	var id string
	var n int
	if _, err := pgx.ForEachRow(rows, []any{&id, &n}, func() error { out[id] = SealedKey{Values: n, Opens: true}; return nil }); err != nil {
		return nil, err
	}
	rows, err = s.pool.Query(ctx, `SELECT DISTINCT ON (key_id) key_id, fan_id, provider, refresh_sealed FROM provider_tokens ORDER BY key_id`)
	if err != nil {
		return nil, err
	}
	var fan uuid.UUID
	var p providers.Name
	var sealed []byte
	_, err = pgx.ForEachRow(rows, []any{&id, &fan, &p, &sealed}, func() error {
		k := out[id]
		_, oerr := s.ring.Open(sealed, tokenOwner(fan, p, "refresh"))
		k.Opens = oerr == nil
		out[id] = k
		return nil
	})
	return out, err
}
