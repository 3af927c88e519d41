package postgres

import (
	"context"
	"fmt"
)

// BufferFit compares PostgreSQL's shared buffers with the balance history's primary key
// (account_balances_pkey). Each batch writes a balance version of most of its cards at their
// places all over that key, so once the key outgrows the buffers every batch reads those pages
// from outside them and the consumer slows down as the ledger grows; the server's
// shared_buffers, not the engine, is then the lever.
type BufferFit struct {
	// Known is false on CockroachDB, which has no shared buffers to size.
	Known         bool
	SharedBuffers int64 // bytes
	BalanceKey    int64 // bytes
}

// Short says the balance history's key no longer fits the shared buffers.
func (f BufferFit) Short() bool { return f.Known && f.BalanceKey > f.SharedBuffers }

// BufferFit reads the shared buffers' size and the balance key's on PostgreSQL.
func (s *Store) BufferFit(ctx context.Context) (BufferFit, error) {
	if !s.postgreSQL {
		return BufferFit{}, nil
	}
	f := BufferFit{Known: true}
	if err := s.pool.QueryRow(ctx, `SELECT pg_size_bytes(current_setting('shared_buffers')),
		pg_relation_size('account_balances_pkey'::REGCLASS)`).Scan(&f.SharedBuffers, &f.BalanceKey); err != nil {
		return BufferFit{}, fmt.Errorf("shared buffers and balance key sizes: %w", err)
	}
	return f, nil
}
