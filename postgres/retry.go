package postgres

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/cockroach-go/v2/crdb"
	"github.com/jackc/pgx/v5"
)

const (
	// maxTxRetries bounds how often one transaction is retried after a conflict. Batches of one
	// consumer never contend with each other; a conflict means two writers raced for an account,
	// and eight rounds of jittered backoff separate any two writers on a two-core machine.
	maxTxRetries = 8
	// retryBackoffMax caps the sleep before a retry: long enough for the winner of a race to
	// commit a 16k-transfer batch, short enough to keep a consumer's latency bounded.
	retryBackoffMax = 200 * time.Millisecond
)

// conflictError marks a conflict between concurrent writers that the store resolves by running
// the whole transaction again: a unique key taken by a concurrent batch, or a deadlock. It reports
// SQLSTATE 40001 so that crdb.ExecuteCtx retries it like a serialization failure.
type conflictError struct{ err error }

func (e conflictError) Error() string    { return e.err.Error() }
func (e conflictError) Unwrap() error    { return e.err }
func (e conflictError) SQLState() string { return "40001" }

// retry runs fn in a transaction (attempt counts from 1), retried whole on conflicts at most maxTxRetries times. Each
// attempt is a fresh transaction (begin, work, commit) and the commit's error is returned, so a
// batch reported as written was committed. A commit whose outcome is unknown (the connection
// broke during COMMIT) is returned as an error: the caller resubmits, and transfer ids make that
// safe.
//
// fn must have no effect outside the transaction: it may run several times.
func (s *Store) retry(ctx context.Context, what string, fn func(ctx context.Context, tx pgx.Tx, attempt int) error) error {
	return s.retryTx(ctx, what, false, fn)
}

// retryTx is retry; with lazy set, each attempt's BEGIN goes with its first batch (lazyTx).
func (s *Store) retryTx(ctx context.Context, what string, lazy bool, fn func(ctx context.Context, tx pgx.Tx, attempt int) error) error {
	attempt := 0
	s.txStats.transactions.Add(1)
	err := crdb.ExecuteCtx(crdb.WithMaxRetries(ctx, maxTxRetries), func(ctx context.Context, _ ...interface{}) error {
		if attempt > 0 {
			s.txStats.retries.Add(1)
			if err := sleep(ctx, backoff(attempt)); err != nil {
				return err
			}
		}
		attempt++
		tx, err := s.begin(ctx, lazy)
		if err != nil {
			return fmt.Errorf("begin: %w", err)
		}
		if err := fn(ctx, tx, attempt); err != nil {
			// The rollback's own error adds nothing: the transaction is abandoned either way.
			_ = tx.Rollback(ctx)
			return classify(err)
		}
		if err := tx.Commit(ctx); err != nil {
			return classify(fmt.Errorf("commit: %w", err))
		}
		return nil
	})
	if err != nil {
		if IsConflict(err) {
			s.txStats.exhausted.Add(1)
		}
		return fmt.Errorf("%s: %w", what, err)
	}
	return nil
}

// begin starts an attempt's transaction: at once, or with its first batch (lazy).
func (s *Store) begin(ctx context.Context, lazy bool) (pgx.Tx, error) {
	if !lazy {
		return s.pool.Begin(ctx)
	}
	c, err := s.pool.Acquire(ctx)
	if err != nil {
		return nil, err
	}
	return &lazyTx{c: c}, nil
}

// txCounters count the store's write transactions and their retries since it was opened.
type txCounters struct {
	transactions, retries, exhausted atomic.Int64
}

// TxStats is what the store's write transactions cost in retries, since the store was opened.
type TxStats struct {
	// Transactions counts write transactions run (InTx), whatever their outcome.
	Transactions int64
	// Retries counts attempts after the first: each one a whole transaction run again after a
	// conflict with a concurrent writer (a key taken by another batch, a deadlock, a
	// serialization failure).
	Retries int64
	// Exhausted counts transactions that still conflicted after maxTxRetries retries and failed.
	Exhausted int64
}

// TxStats returns the store's transaction counts.
func (s *Store) TxStats() TxStats {
	return TxStats{Transactions: s.txStats.transactions.Load(), Retries: s.txStats.retries.Load(),
		Exhausted: s.txStats.exhausted.Load()}
}

// pgCheckViolation is the SQLSTATE of a row a CHECK constraint refuses.
const pgCheckViolation = "23514"

// classify marks the errors that mean "a concurrent writer got there first" as retryable.
func classify(err error) error {
	switch pgCode(err) {
	case "23505", "40P01": // unique_violation, deadlock_detected
		return conflictError{err}
	}
	return err
}

func backoff(attempt int) time.Duration {
	ceiling := time.Millisecond << min(attempt, 8)
	ceiling = min(ceiling, retryBackoffMax)
	return time.Duration(rand.Int64N(int64(ceiling)) + 1)
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// IsConflict reports whether err is a write conflict that outlasted the store's retries.
func IsConflict(err error) bool {
	var c conflictError
	return errors.As(err, &c) || pgCode(err) == "40001"
}
