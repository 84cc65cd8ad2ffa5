// Package migrations holds presave's schema as numbered plain-SQL files,
// embedded so the binaries carry them and apply them on start.
//
// Files are named NNN_description.sql and applied in order by
// github.com/jackc/tern/v2 (see internal/store.Migrate). Never edit a
// migration that has shipped: add a new one.
package migrations

import "embed"

// FS holds every migration file.
//
//go:embed *.sql
var FS embed.FS
