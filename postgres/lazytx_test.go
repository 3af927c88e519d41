package postgres_test

import (
	"context"
	"errors"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/joinincard/engine/internal/pgtest"
	"github.com/joinincard/engine/postgres"
)

// A transaction whose BEGIN goes with its first batch is one transaction from that batch to its
// commit: the batch's statements and the later ones share one transaction id, a reader of the
// batch's results reads its own first, and what a rolled back attempt wrote is gone.
func TestLazyTransactionBeginsWithItsFirstBatch(t *testing.T) {
	st := pgtest.NewStore(t)
	ctx := context.Background()
	if _, err := st.Pool().Exec(ctx, `CREATE TABLE lazy_probe (n INT PRIMARY KEY)`); err != nil {
		t.Fatal(err)
	}
	var inBatch, after int64
	attempts := 0
	err := postgres.InLazyTx(ctx, st, func(ctx context.Context, tx pgx.Tx) error {
		attempts++
		b := &pgx.Batch{}
		b.Queue(`INSERT INTO lazy_probe (n) VALUES ($1)`, attempts)
		b.Queue(`SELECT txid_current()`)
		res := tx.SendBatch(ctx, b)
		tag, err := res.Exec()
		if err != nil {
			return errors.Join(err, res.Close())
		}
		if tag.RowsAffected() != 1 {
			t.Errorf("the batch's first result is %q, want its insert's", tag)
		}
		if err := res.QueryRow().Scan(&inBatch); err != nil {
			return errors.Join(err, res.Close())
		}
		if err := res.Close(); err != nil {
			return err
		}
		if err := tx.QueryRow(ctx, `SELECT txid_current()`).Scan(&after); err != nil {
			return err
		}
		if attempts == 1 {
			return postgres.Retryable(errors.New("a conflict: run again"))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if inBatch != after {
		t.Errorf("the batch ran in transaction %d and the statement after it in %d, want one", inBatch, after)
	}
	var ns []int
	rows, err := st.Pool().Query(ctx, `SELECT n FROM lazy_probe ORDER BY n`)
	if err != nil {
		t.Fatal(err)
	}
	if ns, err = pgx.CollectRows(rows, pgx.RowTo[int]); err != nil {
		t.Fatal(err)
	}
	if len(ns) != 1 || ns[0] != 2 {
		t.Errorf("rows %v, want only the second attempt's", ns)
	}
}
