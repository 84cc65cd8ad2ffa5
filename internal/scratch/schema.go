// Package scratch makes isolated, throw-away homes on shared servers: a
// fresh PostgreSQL schema, migrated from zero, and a leased Redis logical
// database. Tests (through storetest and redistest), the demo, the
// benchmark and the reliability suite each run in their own, side by side,
// and leave nothing behind. It imports no testing code, so the binaries
// that use it link none.
package scratch

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/presave/presave/internal/config"
	"github.com/presave/presave/internal/seal"
	"github.com/presave/presave/internal/store"
)

// TB is the part of testing.TB the test helpers over scratch use
// (storetest, redistest), declared here so that no package outside tests
// imports testing.
type TB interface {
	Helper()
	Name() string
	Cleanup(func())
	Errorf(format string, args ...any)
	Fatalf(format string, args ...any)
}

// DatabaseURL is the shared database: DATABASE_URL, or the local default.
func DatabaseURL() string {
	if u := os.Getenv("DATABASE_URL"); u != "" {
		return u
	}
	return config.DefaultDatabaseURL
}

// Schema is a fresh schema with a Store open on it.
type Schema struct {
	Store  *store.Store
	Ring   *seal.Ring
	Keys   string // the TOKEN_KEYS value of Ring
	URL    string // DATABASE_URL selecting the schema (for subprocesses)
	Schema string
}

var unsafe = regexp.MustCompile(`[^a-z0-9_]+`)

// NewSchema makes a fresh schema named prefix plus a random suffix in
// the database at base, migrates it and opens a Store on it with a random
// key ring. drop closes the store and drops the schema.
func NewSchema(ctx context.Context, base, prefix string) (b Schema, drop func() error, err error) {
	var r [6]byte
	_, _ = rand.Read(r[:])
	schema := unsafe.ReplaceAllString(strings.ToLower(prefix), "_") + "_" + hex.EncodeToString(r[:])

	admin, err := pgx.Connect(ctx, base)
	if err != nil {
		return Schema{}, nil, fmt.Errorf("connect %s: %w", base, err)
	}
	defer admin.Close(context.Background())
	if _, err := admin.Exec(ctx, `CREATE SCHEMA `+pgx.Identifier{schema}.Sanitize()); err != nil {
		return Schema{}, nil, fmt.Errorf("create schema: %w", err)
	}
	var st *store.Store
	drop = func() error {
		if st != nil {
			st.Close()
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		conn, err := pgx.Connect(ctx, base)
		if err != nil {
			return fmt.Errorf("drop schema %s: %w", schema, err)
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, `DROP SCHEMA `+pgx.Identifier{schema}.Sanitize()+` CASCADE`); err != nil {
			return fmt.Errorf("drop schema %s: %w", schema, err)
		}
		return nil
	}
	fail := func(err error) (Schema, func() error, error) {
		_ = drop()
		return Schema{}, nil, err
	}
	u, err := WithSearchPath(base, schema)
	if err == nil {
		u, err = WithParam(u, "pool_max_conns", strconv.Itoa(PoolConns))
	}
	if err != nil {
		return fail(err)
	}
	if err := store.Migrate(ctx, u); err != nil {
		return fail(err)
	}
	keys := RandomKeys("test")
	ring, err := seal.ParseRing(keys)
	if err != nil {
		return fail(err)
	}
	if st, err = store.Open(ctx, u, ring); err != nil {
		return fail(err)
	}
	return Schema{Store: st, Ring: ring, Keys: keys, URL: u, Schema: schema}, drop, nil
}

// PoolConns caps each scratch store's (and each process started with
// Schema.URL) connection pool: test packages run in parallel against one
// PostgreSQL, whose default limit is 100 connections.
const PoolConns = 4

// WithSearchPath returns databaseURL with its search_path set to schema.
func WithSearchPath(databaseURL, schema string) (string, error) {
	return WithParam(databaseURL, "search_path", schema)
}

// WithParam returns databaseURL with the query parameter key set to value
// (replacing any earlier value).
func WithParam(databaseURL, key, value string) (string, error) {
	u, err := url.Parse(databaseURL)
	if err != nil {
		return "", fmt.Errorf("scratch: parse %q: %w", databaseURL, err)
	}
	q := u.Query()
	q.Set(key, value)
	u.RawQuery = q.Encode()
	return u.String(), nil
}

// RandomKeys returns a TOKEN_KEYS value with one fresh key named id.
func RandomKeys(id string) string {
	k := make([]byte, seal.KeySize)
	_, _ = rand.Read(k)
	return id + ":" + base64.StdEncoding.EncodeToString(k)
}
