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

// PgBouncerURL is PGBOUNCER_URL: when set, every scratch home is a
// database of its own, reached through that PgBouncer (transaction
// pooling cannot carry a connection's search_path, so the schema is the
// database's default), and migrated over a direct connection, as
// DATABASE_MIGRATE_URL does in production.
func PgBouncerURL() string { return os.Getenv("PGBOUNCER_URL") }

// Schema is a fresh schema with a Store open on it.
type Schema struct {
	Store *store.Store
	Ring  *seal.Ring
	Keys  string // the TOKEN_KEYS value of Ring
	// URL is the DATABASE_URL selecting the schema (for subprocesses):
	// through PgBouncer when PGBOUNCER_URL is set.
	URL string
	// MigrateURL is its DATABASE_MIGRATE_URL: a direct connection.
	MigrateURL string
	// DirectURL is the database holding the schema, directly and with no
	// search_path (for tools such as pg_dump).
	DirectURL string
	Schema    string
}

var unsafe = regexp.MustCompile(`[^a-z0-9_]+`)

// NewSchema makes a fresh schema named prefix plus a random suffix in
// the database at base (with PGBOUNCER_URL, in a database of that name),
// migrates it and opens a Store on it with a random key ring. drop closes
// the store and drops the schema (or the database).
func NewSchema(ctx context.Context, base, prefix string) (b Schema, drop func() error, err error) {
	var r [6]byte
	_, _ = rand.Read(r[:])
	name := unsafe.ReplaceAllString(strings.ToLower(prefix), "_") + "_" + hex.EncodeToString(r[:])
	h, err := newHome(ctx, base, name)
	if err != nil {
		return Schema{}, nil, err
	}
	var st *store.Store
	drop = func() error {
		if st != nil {
			st.Close()
		}
		return h.drop()
	}
	fail := func(err error) (Schema, func() error, error) {
		_ = drop()
		return Schema{}, nil, err
	}
	u, err := WithParam(h.url, "pool_max_conns", strconv.Itoa(PoolConns))
	if err != nil {
		return fail(err)
	}
	if err := store.Migrate(ctx, h.migrateURL); err != nil {
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
	return Schema{Store: st, Ring: ring, Keys: keys, URL: u, MigrateURL: h.migrateURL, DirectURL: h.directURL, Schema: name}, drop, nil
}

// home is where a scratch schema lives and how to reach it.
type home struct {
	url, migrateURL, directURL string
	drop                       func() error
}

// newHome creates the schema name: in the database at base, selected by
// the URLs' search_path; or, with PGBOUNCER_URL, in a new database of
// that name whose default search_path is the schema, reached through
// PgBouncer.
func newHome(ctx context.Context, base, name string) (home, error) {
	admin, err := pgx.Connect(ctx, base)
	if err != nil {
		return home{}, fmt.Errorf("connect %s: %w", base, err)
	}
	defer admin.Close(context.Background())
	ident := pgx.Identifier{name}.Sanitize()
	pgb := PgBouncerURL()
	if pgb == "" {
		if _, err := admin.Exec(ctx, `CREATE SCHEMA `+ident); err != nil {
			return home{}, fmt.Errorf("create schema: %w", err)
		}
		h := home{directURL: base, drop: func() error { return execBase(base, `DROP SCHEMA `+ident+` CASCADE`) }}
		h.url, err = WithSearchPath(base, name)
		h.migrateURL = h.url
		if err != nil {
			_ = h.drop()
		}
		return h, err
	}
	if _, err := admin.Exec(ctx, `CREATE DATABASE `+ident); err != nil {
		return home{}, fmt.Errorf("create database: %w", err)
	}
	// FORCE: PgBouncer keeps its server connections to the database open.
	h := home{drop: func() error { return execBase(base, `DROP DATABASE `+ident+` WITH (FORCE)`) }}
	if h.directURL, err = withDatabase(base, name); err == nil {
		h.migrateURL = h.directURL
		h.url, err = withDatabase(pgb, name)
	}
	if err == nil {
		err = execBase(h.directURL, `CREATE SCHEMA `+ident+`; ALTER DATABASE `+ident+` SET search_path = `+ident)
	}
	if err != nil {
		_ = h.drop()
		return home{}, err
	}
	return h, nil
}

// execBase runs sql on a connection of its own to databaseURL.
func execBase(databaseURL, sql string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, databaseURL)
	if err != nil {
		return fmt.Errorf("scratch: %w", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, sql); err != nil {
		return fmt.Errorf("scratch: %s: %w", sql, err)
	}
	return nil
}

// withDatabase returns databaseURL naming the database name.
func withDatabase(databaseURL, name string) (string, error) {
	u, err := url.Parse(databaseURL)
	if err != nil {
		return "", fmt.Errorf("scratch: parse %q: %w", databaseURL, err)
	}
	u.Path = "/" + name
	return u.String(), nil
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
