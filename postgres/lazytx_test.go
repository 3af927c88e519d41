package postgres_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/joinincard/engine/internal/pgtest"
	"github.com/joinincard/engine/postgres"
)

// A transaction whose BEGIN goes with its first batch is one transaction from that batch on: a
// setting made for the transaction in the batch holds in the statements after it, what it wrote
// is seen by nobody else until it commits, and a rollback leaves nothing.
func TestLazyTransactionBeginsWithItsFirstBatch(t *testing.T) {
	ctx := context.Background()
	st := pgtest.NewStore(t)
	if pg, err := st.IsPostgreSQL(ctx); err != nil || !pg {
		t.Skipf("plan_cache_mode is PostgreSQL's: %v", err)
	}
	cursor := func(name string) (int64, bool) {
		var pos int64
		err := st.Pool().QueryRow(ctx, `SELECT position FROM cursors WHERE name = $1`, name).Scan(&pos)
		if errors.Is(err, pgx.ErrNoRows) {
			return 0, false
		}
		if err != nil {
			t.Fatal(err)
		}
		return pos, true
	}
	for _, commit := range []bool{false, true} {
		name := "lazy-rolled-back"
		if commit {
			name = "lazy-committed"
		}
		tx, err := postgres.BeginLazy(ctx, st)
		if err != nil {
			t.Fatal(err)
		}
		b := &pgx.Batch{}
		b.Queue(postgres.CustomPlans)
		b.Queue(`INSERT INTO cursors (name, position, updated_at) VALUES ($1, 7, $2)`, name, time.Now())
		if err := tx.SendBatch(ctx, b).Close(); err != nil {
			t.Fatal(err)
		}
		var mode string
		if err := tx.QueryRow(ctx, `SELECT current_setting('plan_cache_mode')`).Scan(&mode); err != nil {
			t.Fatal(err)
		}
		if mode != "force_custom_plan" {
			t.Errorf("after the first batch, plan_cache_mode is %q: the batch was not in the transaction", mode)
		}
		if _, ok := cursor(name); ok {
			t.Errorf("%s: seen before the transaction ended", name)
		}
		if commit {
			err = tx.Commit(ctx)
		} else {
			err = tx.Rollback(ctx)
		}
		if err != nil {
			t.Fatal(err)
		}
		if pos, ok := cursor(name); ok != commit || (ok && pos != 7) {
			t.Errorf("%s: stored %v at %d after the transaction ended", name, ok, pos)
		}
	}
	// A COMMIT sent with the last batch ends the transaction: Commit then has nothing to send.
	// A statement that fails before it leaves the transaction failed, and the COMMIT is not run.
	for _, fail := range []bool{false, true} {
		name := "lazy-committed-with-batch"
		if fail {
			name = "lazy-failed-before-commit"
		}
		tx, err := postgres.BeginLazy(ctx, st)
		if err != nil {
			t.Fatal(err)
		}
		b := &pgx.Batch{}
		b.Queue(`INSERT INTO cursors (name, position, updated_at) VALUES ($1, 7, $2)`, name, time.Now())
		if fail {
			b.Queue(`INSERT INTO cursors (name, position, updated_at) VALUES ($1, 8, $2)`, name, time.Now())
		}
		b.Queue("COMMIT")
		err = tx.SendBatch(ctx, b).Close()
		if fail != (err != nil) {
			t.Fatalf("%s: batch: %v", name, err)
		}
		if !fail {
			// Nothing runs after the COMMIT, outside the transaction.
			if _, err := tx.Exec(ctx, `DELETE FROM cursors WHERE name = $1`, name); !errors.Is(err, pgx.ErrTxClosed) {
				t.Errorf("%s: a statement after the COMMIT: %v, want ErrTxClosed", name, err)
			}
		}
		if fail {
			err = tx.Rollback(ctx)
		} else {
			err = tx.Commit(ctx)
		}
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if _, ok := cursor(name); ok == fail {
			t.Errorf("%s: stored %v", name, ok)
		}
	}
	// A transaction that sent nothing ends without a word to the server, and its connection
	// goes back to the pool in a state fit for the next.
	for range 3 {
		tx, err := postgres.BeginLazy(ctx, st)
		if err != nil {
			t.Fatal(err)
		}
		if err := tx.Commit(ctx); err != nil {
			t.Fatal(err)
		}
		if err := tx.Rollback(ctx); !errors.Is(err, pgx.ErrTxClosed) {
			t.Errorf("rollback after commit: %v, want ErrTxClosed", err)
		}
	}
}

// A transaction whose BEGIN goes with its first batch is one transaction from that batch to its
// commit: the batch's statements and the later ones share one transaction id, a reader of the
// batch's results reads its own first, and what a rolled back attempt wrote is gone.
func TestLazyTransactionIsOneTransactionFromItsFirstBatch(t *testing.T) {
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
