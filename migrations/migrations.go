// Package migrations holds the engine's database schema as SQL files, embedded into the binary and
// applied in file-name order. The SQL is the common subset of PostgreSQL and CockroachDB: explicit
// primary keys, no sequences, no advisory locks.
package migrations

import "embed"

// FS holds the migration files, named NNNN_description.sql.
//
//go:embed *.sql
var FS embed.FS
