package postgres

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// FinanceSession is a person logged in to the finance page, as every engine on the database finds
// it: by the SHA-256 of its id, which only the person's cookie holds.
type FinanceSession struct {
	IDHash  [sha256.Size]byte
	Who     string // the name given at login
	Started time.Time
	Expires time.Time
}

// StartFinanceSession records sess. It first ends the sessions that have ended by sess.Started
// and then, while maxSessions are open, those closest to their end, so that at most maxSessions
// are open once it commits. Logins at once take their turns: each locks the sessions it counts.
func (s *Store) StartFinanceSession(ctx context.Context, sess FinanceSession, maxSessions int) error {
	if sess.Who == "" || !sess.Expires.After(sess.Started) || maxSessions < 1 {
		return fmt.Errorf("finance session: who, a span and a bound are required")
	}
	return s.retryTx(ctx, "start finance session", false, func(ctx context.Context, tx pgx.Tx, _ int) error {
		// Lock every open session (a few hundred rows at most): a login at once waits here,
		// and its count below then sees this one's.
		if _, err := tx.Exec(ctx, `SELECT id_hash FROM finance_sessions FOR UPDATE`); err != nil {
			return fmt.Errorf("lock finance sessions: %w", err)
		}
		if _, err := tx.Exec(ctx, `DELETE FROM finance_sessions WHERE expires_at <= $1`, sess.Started); err != nil {
			return fmt.Errorf("end finance sessions that have ended: %w", err)
		}
		var open int
		if err := tx.QueryRow(ctx, `SELECT count(*) FROM finance_sessions`).Scan(&open); err != nil {
			return fmt.Errorf("count finance sessions: %w", err)
		}
		if over := open - maxSessions + 1; over > 0 {
			if _, err := tx.Exec(ctx, `DELETE FROM finance_sessions WHERE id_hash IN (
				SELECT id_hash FROM finance_sessions ORDER BY expires_at, id_hash LIMIT $1)`, over); err != nil {
				return fmt.Errorf("end the finance sessions closest to their end: %w", err)
			}
		}
		if _, err := tx.Exec(ctx, `INSERT INTO finance_sessions (id_hash, who, started_at, expires_at) VALUES ($1, $2, $3, $4)`,
			sess.IDHash[:], sess.Who, sess.Started.UTC(), sess.Expires.UTC()); err != nil {
			return fmt.Errorf("record finance session: %w", err)
		}
		return nil
	})
}

// FinanceSessionAt returns the session whose id hashes to idHash if it is open at now: found is
// false for none, or one that has ended.
func (s *Store) FinanceSessionAt(ctx context.Context, idHash [sha256.Size]byte, now time.Time) (FinanceSession, bool, error) {
	sess := FinanceSession{IDHash: idHash}
	err := s.pool.QueryRow(ctx, `SELECT who, started_at, expires_at FROM finance_sessions WHERE id_hash = $1 AND expires_at > $2`,
		idHash[:], now.UTC()).Scan(&sess.Who, &sess.Started, &sess.Expires)
	if errors.Is(err, pgx.ErrNoRows) {
		return FinanceSession{}, false, nil
	}
	if err != nil {
		return FinanceSession{}, false, fmt.Errorf("read finance session: %w", err)
	}
	return sess, true, nil
}

// EndFinanceSession ends the session whose id hashes to idHash; ending one that is not open does
// nothing.
func (s *Store) EndFinanceSession(ctx context.Context, idHash [sha256.Size]byte) error {
	if _, err := s.pool.Exec(ctx, `DELETE FROM finance_sessions WHERE id_hash = $1`, idHash[:]); err != nil {
		return fmt.Errorf("end finance session: %w", err)
	}
	return nil
}
