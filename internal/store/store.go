// Package store is presave's PostgreSQL layer: every SQL statement lives
// here (ARCHITECTURE.md, invariant 5). Tokens are sealed and opened at this
// boundary, so no plaintext token ever reaches the database.
package store

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"sync/atomic"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/tern/v2/migrate"

	"github.com/presave/presave/internal/providers"
	"github.com/presave/presave/internal/seal"
	"github.com/presave/presave/migrations"
)

// Errors callers check with errors.Is.
var (
	// ErrNotFound: no such row (or not this fan's).
	ErrNotFound = errors.New("not found")
	// ErrConflict: a unique value (e.g. a release slug) is taken.
	ErrConflict = errors.New("conflict")
)

// DefaultMaxConns is the connection pool size unless DATABASE_URL sets
// pool_max_conns.
const DefaultMaxConns = 10

// Store is presave's database. It is safe for concurrent use.
type Store struct {
	pool *pgxpool.Pool
	ring *seal.Ring
	// revocable says which providers' grants are revoked at the provider
	// after a purge (a sealed copy then waits in token_revocations); nil:
	// none (WithRevocable).
	revocable Revocable
	// statements counts the statements sent (Open's pool only).
	statements *statementCounter
}

// WithRevocable returns the store (sharing its pool) that keeps a sealed
// copy of a purged grant for revocation when revocable says its provider
// has a revoke endpoint: a fixed property of the providers, so it is set
// once, not passed to every purge.
func (s *Store) WithRevocable(revocable Revocable) *Store {
	c := *s
	c.revocable = revocable
	return &c
}

// revocableAt reports whether p's grants are revoked after a purge.
func (s *Store) revocableAt(p providers.Name) bool { return s.revocable != nil && s.revocable(p) }

// Open connects to databaseURL. ring seals and opens tokens.
func Open(ctx context.Context, databaseURL string, ring *seal.Ring) (*Store, error) {
	cfg, err := pgxpool.ParseConfig(databaseURL)
	if err != nil {
		return nil, fmt.Errorf("store: DATABASE_URL: %w", err)
	}
	// pgxpool's default (the number of CPUs, at least 4) starves a worker
	// running dozens of tasks at once; pool_max_conns in the URL wins.
	if !strings.Contains(databaseURL, "pool_max_conns") {
		cfg.MaxConns = DefaultMaxConns
	}
	counter := &statementCounter{}
	cfg.ConnConfig.Tracer = counter
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("store: connect: %w", err)
	}
	st := New(pool, ring)
	st.statements = counter
	return st, nil
}

// Statements is how many statements the store has sent to PostgreSQL
// (BEGIN and COMMIT included, each statement of a pipeline counted), for
// the workers' metrics: batching shows as fewer statements per pre-save.
// Zero for a store built by New.
func (s *Store) Statements() int64 {
	if s.statements == nil {
		return 0
	}
	return s.statements.n.Load()
}

// statementCounter is a pgx tracer that counts statements and does
// nothing else (an atomic add each).
type statementCounter struct{ n atomic.Int64 }

func (c *statementCounter) TraceQueryStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceQueryStartData) context.Context {
	c.n.Add(1)
	return ctx
}
func (c *statementCounter) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}
func (c *statementCounter) TraceBatchStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceBatchStartData) context.Context {
	return ctx
}
func (c *statementCounter) TraceBatchQuery(context.Context, *pgx.Conn, pgx.TraceBatchQueryData) {
	c.n.Add(1)
}
func (c *statementCounter) TraceBatchEnd(context.Context, *pgx.Conn, pgx.TraceBatchEndData) {}

// New wraps an existing pool.
func New(pool *pgxpool.Pool, ring *seal.Ring) *Store {
	return &Store{pool: pool, ring: ring}
}

// Close closes the pool.
func (s *Store) Close() { s.pool.Close() }

// Ping checks that PostgreSQL answers.
func (s *Store) Ping(ctx context.Context) error { return s.pool.Ping(ctx) }

// Pool exposes the pool to what reads the database raw: the end-state
// reads of internal/store/inspect and tests checking rows. The binaries
// call Store methods only.
func (s *Store) Pool() *pgxpool.Pool { return s.pool }

// Migrate applies every pending migration from migrations.FS. tern holds a
// PostgreSQL advisory lock while it migrates, so several binaries starting
// at once apply each migration exactly once; running it again is a no-op.
func Migrate(ctx context.Context, databaseURL string) error {
	// Parsed as a pool URL so pool settings (pool_max_conns) in it are
	// accepted rather than sent to the server.
	pcfg, err := pgxpool.ParseConfig(databaseURL)
	if err != nil {
		return fmt.Errorf("migrate: DATABASE_URL: %w", err)
	}
	conn, err := pgx.ConnectConfig(ctx, pcfg.ConnConfig)
	if err != nil {
		return fmt.Errorf("migrate: connect: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	m, err := migrate.NewMigrator(ctx, conn, "schema_version")
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	if err := m.LoadMigrations(migrations.FS); err != nil {
		return fmt.Errorf("migrate: load: %w", err)
	}
	if err := m.Migrate(ctx); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	return nil
}

// MigrationStatus reports the schema version the database is at (0 when
// never migrated) and the latest this build carries, changing nothing:
// equal once migrated.
func MigrationStatus(ctx context.Context, databaseURL string) (current, latest int32, err error) {
	files, err := fs.Glob(migrations.FS, "*.sql")
	if err != nil {
		return 0, 0, err
	}
	pcfg, err := pgxpool.ParseConfig(databaseURL)
	if err != nil {
		return 0, 0, fmt.Errorf("DATABASE_URL: %w", err)
	}
	conn, err := pgx.ConnectConfig(ctx, pcfg.ConnConfig)
	if err != nil {
		return 0, 0, fmt.Errorf("connect: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	// tern's table (see Migrate), read only when it exists.
	var exists bool
	if err := conn.QueryRow(ctx, `SELECT to_regclass('schema_version') IS NOT NULL`).Scan(&exists); err != nil || !exists {
		return 0, int32(len(files)), err
	}
	err = conn.QueryRow(ctx, `SELECT version FROM schema_version`).Scan(&current)
	return current, int32(len(files)), err
}

// inTx runs fn in a transaction, committing if it returns nil.
func (s *Store) inTx(ctx context.Context, fn func(pgx.Tx) error) error {
	return pgx.BeginFunc(ctx, s.pool, fn)
}

// inPipelinedTx runs a transaction in two round trips: BEGIN travels with
// the first batch (whose answers the caller needs before it can write),
// COMMIT with the batch then returns. pgx.BeginFunc would take four:
// BEGIN, the reads, the writes, COMMIT. A failed statement aborts the
// transaction (every later statement in its batch is skipped), and it is
// rolled back; a connection left inside a transaction is never reused
// (the pool closes it on release).
func (s *Store) inPipelinedTx(ctx context.Context, first *pgx.Batch, then func() (*pgx.Batch, error)) (err error) {
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return err
	}
	defer conn.Release()
	defer func() {
		if err != nil && conn.Conn().PgConn().TxStatus() != 'I' {
			// Best effort: if this fails too, the pool discards the
			// connection, which ends the transaction.
			_, _ = conn.Exec(context.WithoutCancel(ctx), "ROLLBACK")
		}
	}()
	b := &pgx.Batch{}
	b.Queue("BEGIN")
	b.QueuedQueries = append(b.QueuedQueries, first.QueuedQueries...)
	if err := conn.SendBatch(ctx, b).Close(); err != nil {
		return err
	}
	last, err := then()
	if err != nil {
		return err
	}
	last.Queue("COMMIT")
	if err := conn.SendBatch(ctx, last).Close(); err != nil {
		return err
	}
	if st := conn.Conn().PgConn().TxStatus(); st != 'I' {
		return fmt.Errorf("store: transaction still open after COMMIT (status %q)", st)
	}
	return nil
}

func isUniqueViolation(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "23505"
}

func notFound(err error) error {
	if errors.Is(err, pgx.ErrNoRows) {
		return ErrNotFound
	}
	return err
}
