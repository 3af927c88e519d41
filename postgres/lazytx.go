package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// lazyTx is a transaction on a pooled connection whose BEGIN goes to the server with its first
// batch of statements, in that batch's round trip (pgx's Batch.BeginTx), rather than in one of
// its own: a writer whose transaction is one batch of writes and a COMMIT (the transfers
// committer, on cached balances) pays two round trips, not three. Any other first statement is
// preceded by a BEGIN of its own, as pgx's transactions are. Like pgx.Tx, it is not safe for
// concurrent use.
type lazyTx struct {
	conn *pgxpool.Conn
	// tx is the transaction once its BEGIN was sent; nil before.
	tx pgx.Tx
	// closed says the transaction ended and the connection went back to the pool.
	closed bool
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
	case t.closed:
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
	case t.closed:
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
// commit.
func (t *lazyTx) Commit(ctx context.Context) error {
	if t.closed {
		return pgx.ErrTxClosed
	}
	var err error
	if t.tx != nil {
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
	if t.tx != nil {
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

// Conn is the connection, for a caller that sends on it directly (a COPY of encoded rows): it
// must have sent a statement through the transaction first, so that the BEGIN went before.
func (t *lazyTx) Conn() *pgx.Conn { return t.conn.Conn() }

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
