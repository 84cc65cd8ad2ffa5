// Package config reads presave's configuration from the environment.
// Every setting has a default that works on a developer's machine, except
// the token keys, which must be given outside dev mode.
package config

import (
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/presave/presave/internal/seal"
)

// DevTokenKeys is the well-known key used only in dev mode (PRESAVE_DEV=1)
// when TOKEN_KEYS is unset. It is public: never use it for real fans.
const DevTokenKeys = "dev:ZGV2LW9ubHkta2V5LWRvLW5vdC11c2UtaW4tcHJvZCE="

// Env reads variables; tests pass a map's lookup instead of os.Getenv.
type Env func(string) string

// String returns the variable or def when it is unset or empty.
func (e Env) String(name, def string) string {
	if v := strings.TrimSpace(e(name)); v != "" {
		return v
	}
	return def
}

// Int parses an integer variable.
func (e Env) Int(name string, def int) (int, error) {
	v := e.String(name, "")
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		return 0, fmt.Errorf("%s=%q is not an integer", name, v)
	}
	return n, nil
}

// Float parses a floating-point variable.
func (e Env) Float(name string, def float64) (float64, error) {
	v := e.String(name, "")
	if v == "" {
		return def, nil
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil {
		return 0, fmt.Errorf("%s=%q is not a number", name, v)
	}
	return f, nil
}

// Duration parses a Go duration ("10m", "250ms").
func (e Env) Duration(name string, def time.Duration) (time.Duration, error) {
	v := e.String(name, "")
	if v == "" {
		return def, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		return 0, fmt.Errorf("%s=%q is not a duration like 10s or 5m", name, v)
	}
	return d, nil
}

// Bool parses a boolean variable (1/true/yes).
func (e Env) Bool(name string, def bool) (bool, error) {
	v := strings.ToLower(e.String(name, ""))
	switch v {
	case "":
		return def, nil
	case "1", "true", "yes", "on":
		return true, nil
	case "0", "false", "no", "off":
		return false, nil
	}
	return false, fmt.Errorf("%s=%q is not a boolean (true or false)", name, v)
}

// Common is what both binaries need.
type Common struct {
	DatabaseURL string
	// MigrateURL is where migrations run (DATABASE_MIGRATE_URL, else
	// DatabaseURL): a direct connection when DATABASE_URL goes through
	// PgBouncer in transaction mode, since the migrator's lock is
	// session-level.
	MigrateURL string
	RedisURL   string
	Dev        bool
	Ring       *seal.Ring
	LogLevel   slog.Level
	LogJSON    bool
}

// Defaults for a developer's machine.
const (
	DefaultDatabaseURL = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"
	DefaultRedisURL    = "redis://127.0.0.1:6379/0"
	// DefaultPublicURL is where the API is seen from outside: the base
	// of the OAuth redirect URIs.
	DefaultPublicURL = "http://127.0.0.1:8080"
)

// PublicURL reads PUBLIC_URL (DefaultPublicURL when unset) without its
// trailing slash: the API and the workers must derive the same redirect
// URIs from it.
func (e Env) PublicURL() string {
	return strings.TrimRight(e.String("PUBLIC_URL", DefaultPublicURL), "/")
}

// LoadCommon reads DATABASE_URL, DATABASE_MIGRATE_URL, REDIS_URL,
// PRESAVE_DEV, TOKEN_KEYS, LOG_LEVEL and LOG_FORMAT. Outside dev mode a
// missing or bad TOKEN_KEYS is an error that says how to make a key.
func LoadCommon(env Env) (Common, error) {
	var c Common
	var err error
	c.DatabaseURL = env.String("DATABASE_URL", DefaultDatabaseURL)
	c.MigrateURL = env.String("DATABASE_MIGRATE_URL", c.DatabaseURL)
	c.RedisURL = env.String("REDIS_URL", DefaultRedisURL)
	if c.Dev, err = env.Bool("PRESAVE_DEV", false); err != nil {
		return c, err
	}
	keys := env.String("TOKEN_KEYS", "")
	if keys == "" && c.Dev {
		keys = DevTokenKeys
	}
	if keys == "" {
		return c, fmt.Errorf("TOKEN_KEYS is not set: presave will not store fans' tokens without an encryption key. Set TOKEN_KEYS=id:base64key (%s), or PRESAVE_DEV=1 for a public development key", seal.HowToMakeKey)
	}
	if c.Ring, err = seal.ParseRing(keys); err != nil {
		return c, fmt.Errorf("TOKEN_KEYS: %w", err)
	}
	if err := c.LogLevel.UnmarshalText([]byte(env.String("LOG_LEVEL", "info"))); err != nil {
		return c, fmt.Errorf("LOG_LEVEL: %w", err)
	}
	switch f := env.String("LOG_FORMAT", "text"); f {
	case "text":
	case "json":
		c.LogJSON = true
	default:
		return c, fmt.Errorf("LOG_FORMAT=%q: want text or json", f)
	}
	return c, nil
}

// Logger builds the process logger.
func (c Common) Logger(w io.Writer) *slog.Logger {
	opts := &slog.HandlerOptions{Level: c.LogLevel}
	if c.LogJSON {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}
