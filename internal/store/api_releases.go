package store

import (
	"context"
	"errors"
	"fmt"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgconn"
)

// ReleasesByID reads the releases with the given IDs in one query (for
// the fan export, which names the release of every pre-save). Unknown IDs
// are simply absent from the map.
func (s *Store) ReleasesByID(ctx context.Context, ids []uuid.UUID) (map[uuid.UUID]Release, error) {
	out := make(map[uuid.UUID]Release, len(ids))
	if len(ids) == 0 {
		return out, nil
	}
	rows, err := s.pool.Query(ctx, `SELECT `+releaseColumns+` FROM releases WHERE id = ANY($1)`, ids)
	if err != nil {
		return nil, fmt.Errorf("store: releases by id: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		r, err := scanRelease(rows)
		if err != nil {
			return nil, fmt.Errorf("store: releases by id: %w", err)
		}
		out[r.ID] = r
	}
	return out, rows.Err()
}

// ZoneKnown reports whether PostgreSQL knows the IANA zone name. Zones are
// computed both in Go and in SQL (UpdateRelease moves local-time
// pre-saves with AT TIME ZONE), so a zone is only accepted when both
// agree on it; otherwise one bad name could make every later update of
// its release fail.
func (s *Store) ZoneKnown(ctx context.Context, name string) (bool, error) {
	var ok bool
	err := s.pool.QueryRow(ctx, `SELECT (now() AT TIME ZONE $1::text) IS NOT NULL`, name).Scan(&ok)
	var pe *pgconn.PgError
	if errors.As(err, &pe) && pe.Code == "22023" { // invalid_parameter_value: time zone not recognized
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("store: zone known: %w", err)
	}
	return ok, nil
}
