// Package storetest gives each test its own PostgreSQL schema (a scratch
// schema), migrated from zero and dropped when the test ends, so tests run
// in parallel against the real database and leave nothing behind.
package storetest

import (
	"context"
	"strings"
	"time"

	"github.com/presave/presave/internal/scratch"
)

// Bundle is what a test gets: the schema and the Store open on it.
type Bundle = scratch.Schema

// TestPoolConns caps each test store's connection pool.
const TestPoolConns = scratch.PoolConns

// BaseURL is the database tests use: DATABASE_URL, or the local default.
func BaseURL() string { return scratch.DatabaseURL() }

// RandomKeys returns a TOKEN_KEYS value with one fresh key named id.
func RandomKeys(id string) string { return scratch.RandomKeys(id) }

// TB is the part of testing.TB the helper uses.
type TB = scratch.TB

// New creates a fresh schema, migrates it and opens a Store on it with a
// random key ring. Everything is dropped in t.Cleanup.
func New(t TB) Bundle {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	name := strings.ToLower(t.Name())
	if len(name) > 30 {
		name = name[:30]
	}
	b, drop, err := scratch.NewSchema(ctx, BaseURL(), "t_"+name)
	if err != nil {
		t.Fatalf("storetest: %v (is PostgreSQL running? scripts/services.sh starts it)", err)
	}
	t.Cleanup(func() {
		if err := drop(); err != nil {
			t.Errorf("storetest: %v", err)
		}
	})
	return b
}
