package store

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/presave/presave/internal/providers"
)

// Token opens the fan's grant at provider p, for the store's tests of
// sealing and rotation; production opens a grant only through
// BeginAttempt. ErrNotFound when none is
// stored (purged, never connected).
func (s *Store) Token(ctx context.Context, fanID uuid.UUID, p providers.Name) (Token, error) {
	t := Token{FanID: fanID, Provider: p}
	var refresh, access []byte
	var expiry *time.Time
	err := s.pool.QueryRow(ctx, `
		SELECT key_id, refresh_sealed, access_sealed, access_expires_at, scopes, authorized_at, created_at, rotated_at
		FROM provider_tokens WHERE fan_id = $1 AND provider = $2`, fanID, p).
		Scan(&t.KeyID, &refresh, &access, &expiry, &t.Scopes, &t.AuthorizedAt, &t.CreatedAt, &t.RotatedAt)
	if err != nil {
		return Token{}, fmt.Errorf("store: token: %w", notFound(err))
	}
	rt, err := s.ring.Open(refresh, tokenOwner(fanID, p, "refresh"))
	if err != nil {
		return Token{}, openError("refresh", t.KeyID, err)
	}
	t.RefreshToken = string(rt)
	if access != nil {
		at, err := s.ring.Open(access, tokenOwner(fanID, p, "access"))
		if err != nil {
			return Token{}, openError("access", t.KeyID, err)
		}
		t.AccessToken = string(at)
		if expiry != nil {
			t.Expiry = *expiry
		}
	}
	return t, nil
}
