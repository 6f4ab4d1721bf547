// Package migrations holds the numbered SQL migrations of the WCP360 schema,
// embedded in the binary. Files are named NNN_name.up.sql and
// NNN_name.down.sql; versions start at 001 and have no gaps. The migrator in
// internal/store applies them under an advisory lock, each in its own
// transaction, and records them in schema_migrations (which it owns: no
// migration creates or drops it).
package migrations

import "embed"

// FS holds every migration file.
//
//go:embed *.sql
var FS embed.FS
