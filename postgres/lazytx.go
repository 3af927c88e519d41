package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// lazyTx is a transaction on a pooled connection whose BEGIN goes to the server with its first
// batch of statements, in that batch's round trip (pgx's Batch.BeginTx), rather than in one of
// its own: a writer whose transaction is one batch of writes and a COMMIT (the transfers
// committer, on cached balances) pays two round trips, not three. Any other first statement is
// preceded by a BEGIN of its own, as pgx's transactions are. A COMMIT may go in the round trip
// of the last batch too (the purchase committer's, purchaseRows.commit): the transaction is then
// over, nothing more is sent in it, and Commit has nothing to send. Like pgx.Tx, it is not safe
// for concurrent use.
type lazyTx struct {
	conn *pgxpool.Conn
	// tx is the transaction once its BEGIN was sent; nil before.
	tx pgx.Tx
	// closed says the transaction ended and the connection went back to the pool.
	closed bool
	// broken is why Conn could not begin the transaction; Commit returns it.
	broken error
}

// lazyBeginTimeout bounds the BEGIN that Conn sends, which has no caller's context: a BEGIN
// takes a round trip, and a server that does not answer one in ten seconds does not answer.
const lazyBeginTimeout = 10 * time.Second

// ended reports whether a COMMIT sent in a batch ended the transaction: the connection is out of
// any transaction since it began. (A statement that failed leaves it in a failed one, and the
// COMMIT after it in the batch is not run.) Nothing more may be sent in it: it would run outside.
func (t *lazyTx) ended() bool {
	return t.tx != nil && t.conn.Conn().PgConn().TxStatus() == 'I'
}

var _ pgx.Tx = (*lazyTx)(nil)

// beginLazy acquires a connection for a lazyTx.
func (s *Store) beginLazy(ctx context.Context) (*lazyTx, error) {
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return nil, err
	}
	return &lazyTx{conn: conn}, nil
}

// begin sends a BEGIN of its own, unless one was sent.
func (t *lazyTx) begin(ctx context.Context) (pgx.Tx, error) {
	switch {
	case t.closed || t.ended():
		return nil, pgx.ErrTxClosed
	case t.tx != nil:
		return t.tx, nil
	}
	tx, err := t.conn.Begin(ctx)
	if err != nil {
		return nil, err
	}
	t.tx = tx
	return tx, nil
}

// SendBatch sends b, with the transaction's BEGIN first if none was sent yet.
func (t *lazyTx) SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults {
	switch {
	case t.closed || t.ended():
		return pgx.FailedBatchResults(b, pgx.ErrTxClosed)
	case t.tx != nil:
		return t.tx.SendBatch(ctx, b)
	}
	withBegin := &pgx.Batch{}
	withBegin.BeginTx(pgx.TxOptions{})
	withBegin.QueuedQueries = append(withBegin.QueuedQueries, b.QueuedQueries...)
	br := t.conn.SendBatch(ctx, withBegin)
	t.tx = br.Tx()
	return &begunResults{BatchResults: br}
}

// Commit commits, and gives the connection back. A transaction that sent nothing has nothing to
// commit, and one whose COMMIT went with its last batch has committed.
func (t *lazyTx) Commit(ctx context.Context) error {
	if t.closed {
		return pgx.ErrTxClosed
	}
	var err error
	switch {
	case t.broken != nil:
		err = t.broken
	case t.tx != nil && !t.ended():
		err = t.tx.Commit(ctx)
	}
	t.release()
	return err
}

// Rollback rolls back, and gives the connection back; the pool closes a connection left inside
// a transaction rather than reuse it.
func (t *lazyTx) Rollback(ctx context.Context) error {
	if t.closed {
		return pgx.ErrTxClosed
	}
	var err error
	if t.tx != nil && !t.ended() {
		err = t.tx.Rollback(ctx)
	}
	t.release()
	return err
}

func (t *lazyTx) release() {
	t.closed = true
	t.conn.Release()
}

func (t *lazyTx) Begin(ctx context.Context) (pgx.Tx, error) {
	tx, err := t.begin(ctx)
	if err != nil {
		return nil, err
	}
	return tx.Begin(ctx)
}

func (t *lazyTx) CopyFrom(ctx context.Context, table pgx.Identifier, columns []string, rows pgx.CopyFromSource) (int64, error) {
	tx, err := t.begin(ctx)
	if err != nil {
		return 0, err
	}
	return tx.CopyFrom(ctx, table, columns, rows)
}

// LargeObjects are the transaction's once its BEGIN was sent; before, none.
func (t *lazyTx) LargeObjects() pgx.LargeObjects {
	if t.tx == nil {
		return pgx.LargeObjects{}
	}
	return t.tx.LargeObjects()
}

func (t *lazyTx) Prepare(ctx context.Context, name, sql string) (*pgconn.StatementDescription, error) {
	tx, err := t.begin(ctx)
	if err != nil {
		return nil, err
	}
	return tx.Prepare(ctx, name, sql)
}

func (t *lazyTx) Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	tx, err := t.begin(ctx)
	if err != nil {
		return pgconn.CommandTag{}, err
	}
	return tx.Exec(ctx, sql, args...)
}

func (t *lazyTx) Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	tx, err := t.begin(ctx)
	if err != nil {
		return nil, err
	}
	return tx.Query(ctx, sql, args...)
}

func (t *lazyTx) QueryRow(ctx context.Context, sql string, args ...any) pgx.Row {
	tx, err := t.begin(ctx)
	if err != nil {
		return errRow{err}
	}
	return tx.QueryRow(ctx, sql, args...)
}

// Conn is the connection, for a caller that sends on it directly (a COPY of encoded rows,
// copyRows): the transaction begins first, so that they are in it. Conn has no context to begin
// with: BEGIN is bounded by lazyBeginTimeout, and should it fail, the connection is closed, so
// that whatever is sent next on it fails, and Commit with it: nothing runs outside the
// transaction.
func (t *lazyTx) Conn() *pgx.Conn {
	if t.tx == nil && !t.closed && t.broken == nil {
		ctx, cancel := context.WithTimeout(context.Background(), lazyBeginTimeout)
		defer cancel()
		if _, err := t.begin(ctx); err != nil {
			t.broken = errors.Join(err, t.conn.Conn().Close(ctx))
		}
	}
	return t.conn.Conn()
}

// begunResults are the results of a batch sent with the transaction's BEGIN first: the BEGIN's
// is read before the caller's first.
type begunResults struct {
	pgx.BatchResults
	read bool
}

func (r *begunResults) skip() error {
	if r.read {
		return nil
	}
	r.read = true
	if _, err := r.BatchResults.Exec(); err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	return nil
}

func (r *begunResults) Exec() (pgconn.CommandTag, error) {
	if err := r.skip(); err != nil {
		return pgconn.CommandTag{}, err
	}
	return r.BatchResults.Exec()
}

func (r *begunResults) Query() (pgx.Rows, error) {
	if err := r.skip(); err != nil {
		return nil, err
	}
	return r.BatchResults.Query()
}

func (r *begunResults) QueryRow() pgx.Row {
	if err := r.skip(); err != nil {
		return errRow{err}
	}
	return r.BatchResults.QueryRow()
}

func (r *begunResults) Close() error {
	if err := r.skip(); err != nil {
		return errors.Join(err, r.BatchResults.Close())
	}
	return r.BatchResults.Close()
}

// errRow is a row whose query failed before it was sent.
type errRow struct{ err error }

func (r errRow) Scan(...any) error { return r.err }

// queueCommit queues the transaction's COMMIT on b, as the last statement of a lazy transaction's
// last batch (lazyTx.ended): a transaction that failed answers its COMMIT with ROLLBACK, which
// fails the batch with pgx.ErrTxCommitRollback.
func queueCommit(b *pgx.Batch) {
	b.Queue("COMMIT").Exec(func(tag pgconn.CommandTag) error {
		if tag.String() == "ROLLBACK" {
			return pgx.ErrTxCommitRollback
		}
		return nil
	})
}
