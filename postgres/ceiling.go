package postgres

import (
	"context"
	"encoding/binary"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/joinincard/engine/ledger"
)

// CopyCeiling measures what PostgreSQL itself allows the ledger: n transfer rows, encoded before
// the clock starts, copied into a table shaped as transfers (its columns, keys and indexes) in
// transactions of batch rows, with no reads and no decisions. It returns rows per second. The table
// is made for the measurement and dropped after it.
func (s *Store) CopyCeiling(ctx context.Context, n, batch int) (float64, error) {
	if n < 1 || batch < 1 || batch > ledger.MaxBatchTransfers {
		return 0, fmt.Errorf("copy ceiling: %d rows in batches of %d", n, batch)
	}
	const table = "ceiling_transfers"
	if _, err := s.pool.Exec(ctx, `DROP TABLE IF EXISTS `+table); err != nil {
		return 0, fmt.Errorf("copy ceiling: %w", err)
	}
	if _, err := s.pool.Exec(ctx, `CREATE TABLE `+table+` (LIKE transfers INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING INDEXES)`); err != nil {
		return 0, fmt.Errorf("copy ceiling: %w", err)
	}
	defer func() { _, _ = s.pool.Exec(context.WithoutCancel(ctx), `DROP TABLE IF EXISTS `+table) }()
	// Encoded first: the clock measures the database, not the encoding.
	var bufs []*copyWriter
	now := s.Now().UnixMicro()
	for done := 0; done < n; done += batch {
		rows := min(batch, n-done)
		w := newCopyWriter(rows, 180)
		for i := range rows {
			seq := uint64(done + i)
			var id, debit, credit [16]byte
			binary.BigEndian.PutUint64(id[:8], uint64(now/1000)<<16)
			binary.BigEndian.PutUint64(id[8:], seq)
			id[6], id[8] = id[6]&0x0f|0x70, id[8]&0x3f|0x80
			binary.BigEndian.PutUint64(debit[8:], seq%100_000)
			credit[0] = 1
			w.row(11)
			w.uuid(id)
			w.uuid(debit)
			w.uuid(credit)
			w.int64(int64(1 + seq%5000))
			w.null()
			w.null()
			w.int64(0)
			w.int32(21)
			w.int32(0)
			w.timestamp(now)
			w.null()
		}
		bufs = append(bufs, w)
	}
	columns := []string{"id", "debit_account_id", "credit_account_id", "amount", "ref_id", "user_data", "timeout_seconds", "code", "flags", "ts", "expires_at"}
	start := time.Now()
	for _, w := range bufs {
		err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error { return copyRows(ctx, tx, table, columns, w) })
		if err != nil {
			return 0, fmt.Errorf("copy ceiling: %w", err)
		}
	}
	return float64(n) / time.Since(start).Seconds(), nil
}
