package postgres

import (
	"context"
	"fmt"
	"slices"
	"strings"
)

// Queue tables. Five tables are queues, not history: rows go in, are taken out oldest first or
// in key order, and are deleted, so they stay small however long the engine runs:
//   - taps: the Kafka inbox of transit taps, drained by DrainTransitTaps (tapsDrainClaim);
//   - open_holds: the holds with a timeout still open, the expiry sweep's work queue
//     (expiredHoldsLookup), left by every hold posted, voided or expired;
//   - transit_reprice: travel days waiting to be re-priced (repriceClaim);
//   - recon_open_entries and recon_open_items: the statement entries and settlement items a
//     bank's reconciliation has still to decide, left once it has (reconRun.close).
//
// On PostgreSQL a deleted row stays in the table and its index entries stay in the index until a
// vacuum removes them, and the claims read from the head of an index, just where the deleted
// rows pile up. PostgreSQL's default vacuums a table once its dead rows reach a fifth of the
// rows it last counted there, and a queue's size swings: after a backlog of a million taps the
// next vacuum waits for 200,000 dead rows, however small the queue has become, and every claim
// steps over them. These tables are vacuumed and analyzed after a fixed number of changes
// instead, whatever their size, without the cost-based pauses meant for big tables.
//
// The settings are PostgreSQL storage parameters (ALTER TABLE ... SET (autovacuum_...)), which
// CockroachDB refuses: it accepts only autovacuum_enabled and fillfactor, and ignores them. No
// syntax both accept sets them, so they are not in a migration (migrations_test.go refuses them
// there) but applied here, after the migrations, and only when the server is PostgreSQL.
// CockroachDB needs none of it: its MVCC garbage collection is per range, by age
// (gc.ttlseconds), not by a fraction of the table.

// queueTables are the queue tables, in the order their settings are applied.
var queueTables = []string{"taps", "open_holds", "transit_reprice", "recon_open_entries", "recon_open_items"}

// queueStorage are the storage parameters of a queue table on PostgreSQL, written as
// pg_class.reloptions lists them.
var queueStorage = []string{
	// analyze once 1,000 rows changed, so the planner sees a small table and keeps to its indexes
	"autovacuum_analyze_scale_factor=0",
	"autovacuum_analyze_threshold=1000",
	// no throttling: a vacuum of a small table is short, and the dead rows slow every claim
	"autovacuum_vacuum_cost_delay=0",
	// vacuum once 1,000 rows are dead, not a fraction of the table
	"autovacuum_vacuum_scale_factor=0",
	"autovacuum_vacuum_threshold=1000",
}

// IsPostgreSQL reports whether the server is PostgreSQL (not CockroachDB, whose version()
// starts with "CockroachDB").
func (s *Store) IsPostgreSQL(ctx context.Context) (bool, error) {
	var v string
	if err := s.pool.QueryRow(ctx, `SELECT version()`).Scan(&v); err != nil {
		return false, fmt.Errorf("server version: %w", err)
	}
	return strings.HasPrefix(v, "PostgreSQL"), nil
}

// tuneQueues gives the queue tables their storage parameters on PostgreSQL, where the tables
// lack any of them (an ALTER TABLE takes a lock, so it is not taken for nothing), and
// does nothing on CockroachDB.
func (s *Store) tuneQueues(ctx context.Context) error {
	if !s.postgreSQL {
		return nil
	}
	for _, table := range queueTables {
		var have []string
		if err := s.pool.QueryRow(ctx, `SELECT COALESCE(c.reloptions, '{}') FROM pg_class c
			JOIN pg_namespace n ON n.oid = c.relnamespace
			WHERE c.relname = $1 AND n.nspname = current_schema()`, table).Scan(&have); err != nil {
			return fmt.Errorf("storage parameters of %s: %w", table, err)
		}
		if !slices.ContainsFunc(queueStorage, func(p string) bool { return !slices.Contains(have, p) }) {
			continue
		}
		// The names are this file's constants, not input.
		if _, err := s.pool.Exec(ctx, `ALTER TABLE `+table+` SET (`+strings.Join(queueStorage, ", ")+`)`); err != nil {
			return fmt.Errorf("tune queue table %s: %w", table, err)
		}
	}
	return nil
}
