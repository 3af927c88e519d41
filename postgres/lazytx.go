package postgres

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// lazyTx is a transaction on a pooled connection whose BEGIN goes to the server with its first
// batch of statements, in that batch's round trip, rather than in a round trip of its own: a
// transaction that starts with a batch of reads (the purchase committer's) saves one round trip
// in four. A first statement sent alone (Exec, Query, CopyFrom) is preceded by BEGIN in a round
// trip of its own, as a pgx transaction's is. A transaction that sent nothing commits and rolls
// back without a word to the server.
//
// It is one attempt of a transaction: used by one goroutine, ended by Commit or Rollback, which
// hand the connection back to the pool (the pool closes a connection left in a transaction).
type lazyTx struct {
	c      *pgxpool.Conn
	begun  bool
	closed bool
	broken error // why Conn could not begin the transaction
}

// lazyBeginTimeout bounds the BEGIN that Conn sends, which has no caller's context: a BEGIN
// takes a round trip, and a server that does not answer one in ten seconds does not answer.
const lazyBeginTimeout = 10 * time.Second

var errNestedTx = errors.New("nested transactions are not used")

// begin sends BEGIN in a round trip of its own, unless the transaction has begun.
func (t *lazyTx) begin(ctx context.Context) error {
	if t.closed || t.ended() {
		return pgx.ErrTxClosed
	}
	if t.begun {
		return nil
	}
	if _, err := t.c.Exec(ctx, "BEGIN"); err != nil {
		return err
	}
	t.begun = true
	return nil
}

// SendBatch sends b, preceded by BEGIN if the transaction has not begun, in one round trip.
func (t *lazyTx) SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults {
	switch {
	case t.closed || t.ended():
		return pgx.FailedBatchResults(b, pgx.ErrTxClosed)
	case t.begun:
		return t.c.SendBatch(ctx, b)
	}
	t.begun = true
	q := &pgx.Batch{QueuedQueries: make([]*pgx.QueuedQuery, 0, len(b.QueuedQueries)+1)}
	q.Queue("BEGIN")
	q.QueuedQueries = append(q.QueuedQueries, b.QueuedQueries...)
	res := t.c.SendBatch(ctx, q)
	// BEGIN's result is read here; an error it had stays in res, and its caller reads it from
	// the first statement's result.
	if _, err := res.Exec(); err != nil {
		return pgx.FailedBatchResults(b, errors.Join(err, res.Close()))
	}
	return res
}

func (t *lazyTx) Commit(ctx context.Context) error {
	if t.closed {
		return pgx.ErrTxClosed
	}
	t.closed = true
	defer t.c.Release()
	if t.broken != nil {
		return t.broken
	}
	if !t.begun || t.ended() {
		// Nothing sent, or a COMMIT sent with the last batch (purchaseRows.commit) ended it.
		return nil
	}
	tag, err := t.c.Exec(ctx, "COMMIT")
	if err != nil {
		return err
	}
	if tag.String() == "ROLLBACK" {
		return pgx.ErrTxCommitRollback
	}
	return nil
}

// ended reports whether a COMMIT sent in a batch ended the transaction: the connection is out of
// any transaction since it began. (A statement that failed leaves it in a failed one, and the
// COMMIT after it in the batch is not run.) Nothing more may be sent in it: it would run outside.
func (t *lazyTx) ended() bool {
	return t.begun && t.c.Conn().PgConn().TxStatus() == 'I'
}

func (t *lazyTx) Rollback(ctx context.Context) error {
	if t.closed {
		return pgx.ErrTxClosed
	}
	t.closed = true
	defer t.c.Release()
	if !t.begun {
		return nil
	}
	_, err := t.c.Exec(ctx, "ROLLBACK")
	return err
}

func (t *lazyTx) Begin(context.Context) (pgx.Tx, error) { return nil, errNestedTx }

func (t *lazyTx) CopyFrom(ctx context.Context, table pgx.Identifier, columns []string, src pgx.CopyFromSource) (int64, error) {
	if err := t.begin(ctx); err != nil {
		return 0, err
	}
	return t.c.CopyFrom(ctx, table, columns, src)
}

// LargeObjects are not used: the zero value, whose methods fail.
func (t *lazyTx) LargeObjects() pgx.LargeObjects { return pgx.LargeObjects{} }

func (t *lazyTx) Prepare(ctx context.Context, name, sql string) (*pgconn.StatementDescription, error) {
	if err := t.begin(ctx); err != nil {
		return nil, err
	}
	return t.c.Conn().Prepare(ctx, name, sql)
}

func (t *lazyTx) Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	if err := t.begin(ctx); err != nil {
		return pgconn.CommandTag{}, err
	}
	return t.c.Exec(ctx, sql, args...)
}

func (t *lazyTx) Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	if err := t.begin(ctx); err != nil {
		return nil, err
	}
	return t.c.Query(ctx, sql, args...)
}

func (t *lazyTx) QueryRow(ctx context.Context, sql string, args ...any) pgx.Row {
	if err := t.begin(ctx); err != nil {
		return failedRow{err}
	}
	return t.c.QueryRow(ctx, sql, args...)
}

// Conn is the transaction's connection, for statements sent on it directly (copyRows): the
// transaction begins first, so that they are in it. Conn has no context to begin with: BEGIN is
// bounded by lazyBeginTimeout, and should it fail, so does whatever is sent next on the
// connection, and the transaction with it.
func (t *lazyTx) Conn() *pgx.Conn {
	if !t.begun && !t.closed {
		ctx, cancel := context.WithTimeout(context.Background(), lazyBeginTimeout)
		defer cancel()
		if err := t.begin(ctx); err != nil {
			// Nothing may run outside the transaction: the connection is closed, so whatever
			// is sent next fails, and so does Commit.
			t.broken = errors.Join(err, t.c.Conn().Close(ctx))
		}
	}
	return t.c.Conn()
}

// failedRow is a row that was not read.
type failedRow struct{ err error }

func (r failedRow) Scan(...any) error { return r.err }
