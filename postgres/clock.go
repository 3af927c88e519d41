package postgres

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"
)

const (
	// maxTimestampLead bounds how far a batch's time may lead the clock of the writer that
	// commits it. A batch is stamped after every balance version it builds on, so a writer whose
	// clock ran ahead would carry its time to every later batch on the accounts it touched (the
	// hot ones: every batch touches them), and hold expiries and statement times with it. On the
	// database's clock (the default) writers agree within milliseconds; a lead of seconds means a
	// clock stepped back or a writer kept time of its own, and the batch is refused rather than
	// built on it.
	maxTimestampLead = 5 * time.Second
	// clockProbes is how many round trips one clock synchronization takes; the one with the
	// shortest round trip bounds the error best.
	clockProbes = 3
)

// ErrClockBehind is returned for a batch whose accounts' history is stamped more than
// maxTimestampLead after the writer's clock. Nothing was written.
var ErrClockBehind = errors.New("the ledger's history is ahead of this writer's clock")

// dbClock is the database server's clock as seen from this process: the process's clock minus
// the offset measured at the last synchronization. Every process writing to one database stamps
// its batches, and expires its holds, by this one clock.
type dbClock struct {
	offset atomic.Int64 // the process's clock minus the database's, nanoseconds
	synced atomic.Int64 // when the offset was measured, Unix nanoseconds; 0 never
}

func (c *dbClock) now() time.Time { return time.Now().Add(-time.Duration(c.offset.Load())) }

// SyncClock measures the offset of this process's clock from the database server's, which the
// store's default clock (Now) corrects by, and returns it. serve calls it periodically; Open
// calls it once.
func (s *Store) SyncClock(ctx context.Context) (time.Duration, error) {
	best, bestRTT := time.Duration(0), time.Duration(-1)
	for range clockProbes {
		var db time.Time
		sent := time.Now()
		if err := s.pool.QueryRow(ctx, `SELECT clock_timestamp()`).Scan(&db); err != nil {
			return 0, fmt.Errorf("read the database's clock: %w", err)
		}
		rtt := time.Since(sent)
		if bestRTT < 0 || rtt < bestRTT {
			// The database read its clock about halfway through the round trip.
			best, bestRTT = sent.Add(rtt/2).Sub(db), rtt
		}
	}
	s.clock.offset.Store(int64(best))
	s.clock.synced.Store(time.Now().UnixNano())
	return best, nil
}

// ClockStats is what the store knows of time: how far this process's clock is from the
// database's, and how far batch times led the writer's clock.
type ClockStats struct {
	// Offset is this process's clock minus the database's, at the last SyncClock.
	Offset time.Duration
	// LastLead is how far the last batch's time led the clock it was written by: zero unless the
	// accounts' history was stamped ahead of that clock.
	LastLead time.Duration
	// MaxLead is the largest lead since the store was opened.
	MaxLead time.Duration
}

// ClockStats returns the store's clock figures.
func (s *Store) ClockStats() ClockStats {
	return ClockStats{Offset: time.Duration(s.clock.offset.Load()), LastLead: time.Duration(s.lastLead.Load()),
		MaxLead: time.Duration(s.maxLead.Load())}
}

// batchTime is the time of a batch that builds on balance versions stamped up to latest (Unix
// microseconds) at clock reading now: after latest, so each account's history is ordered, and
// no more than maxTimestampLead after now.
func (s *Store) batchTime(now, latest int64) (int64, error) {
	ts := max(now, latest+1)
	lead := time.Duration(ts-now) * time.Microsecond
	s.lastLead.Store(int64(lead))
	for {
		m := s.maxLead.Load()
		if int64(lead) <= m || s.maxLead.CompareAndSwap(m, int64(lead)) {
			break
		}
	}
	if lead > maxTimestampLead {
		return 0, fmt.Errorf("%w: its accounts were last written %s after this writer's clock, more than %s", ErrClockBehind,
			lead.Round(time.Millisecond), maxTimestampLead)
	}
	return ts, nil
}
