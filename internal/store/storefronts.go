package store

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"
)

// StorefrontCode is what one of a release's codes resolved to in one
// storefront: its catalogue ID, or "" when the storefront had nothing
// yet when it was looked up (CheckedAt).
type StorefrontCode struct {
	ID        string
	CheckedAt time.Time
}

// StorefrontCodes reads what the release's codes resolved to in the
// storefront, by CodeKey.
func (s *Store) StorefrontCodes(ctx context.Context, releaseID uuid.UUID, storefront string) (map[string]StorefrontCode, error) {
	rows, err := s.pool.Query(ctx, `
		SELECT code, coalesce(catalog_id, ''), checked_at FROM applemusic_resolutions WHERE release_id = $1 AND storefront = $2`,
		releaseID, storefront)
	if err != nil {
		return nil, fmt.Errorf("store: storefront codes: %w", err)
	}
	defer rows.Close()
	out := map[string]StorefrontCode{}
	for rows.Next() {
		var code string
		var c StorefrontCode
		if err := rows.Scan(&code, &c.ID, &c.CheckedAt); err != nil {
			return nil, fmt.Errorf("store: storefront codes: %w", err)
		}
		out[code] = c
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: storefront codes: %w", err)
	}
	return out, nil
}

// PutStorefrontCodes records lookups of the release's codes in the
// storefront (by CodeKey; "" for a code not found), replacing earlier
// ones. A release deleted meanwhile records nothing.
func (s *Store) PutStorefrontCodes(ctx context.Context, releaseID uuid.UUID, storefront string, found map[string]StorefrontCode) error {
	codes, ids, at := make([]string, 0, len(found)), make([]*string, 0, len(found)), make([]time.Time, 0, len(found))
	for code, c := range found {
		codes, ids, at = append(codes, code), append(ids, nullable(c.ID)), append(at, c.CheckedAt)
	}
	_, err := s.pool.Exec(ctx, `
		INSERT INTO applemusic_resolutions (release_id, storefront, code, catalog_id, checked_at)
		SELECT $1, $2, c.code, c.id, c.at FROM unnest($3::text[], $4::text[], $5::timestamptz[]) AS c(code, id, at)
		WHERE EXISTS (SELECT 1 FROM releases WHERE id = $1)
		ON CONFLICT (release_id, storefront, code) DO UPDATE SET catalog_id = EXCLUDED.catalog_id, checked_at = EXCLUDED.checked_at`,
		releaseID, storefront, codes, ids, at)
	if err != nil {
		return fmt.Errorf("store: put storefront codes: %w", err)
	}
	return nil
}
