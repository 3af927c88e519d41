package main

import (
	"context"
	"log/slog"
	"time"

	"github.com/joinincard/engine/postgres"
)

const (
	// defaultVerifyInterval is how often serve checkpoints the closed days and checks what came
	// after the newest checkpoint: each run then reads about an hour of transfers, and a broken
	// invariant is seen within the hour.
	defaultVerifyInterval = time.Hour
	// verifyFirstDelay is how long after its start serve verifies for the first time: long enough
	// to be caught up on its partitions, short enough that a new deployment's first checkpoint is
	// not an interval away.
	verifyFirstDelay = time.Minute
)

// ledgerVerifier checkpoints closed days and checks what came after (the store's
// VerifyIncremental).
type ledgerVerifier interface {
	VerifyIncremental(ctx context.Context) (postgres.Report, error)
}

var _ ledgerVerifier = (*postgres.Store)(nil)

// verifyLedger verifies the ledger first after first, then every interval, until ctx is done,
// as `joinin verify` does: the closed days since the newest checkpoint are checked and
// checkpointed, and what came after is checked against the newest. Problems are logged as
// errors and counted in the metrics; a run that fails (the database unreachable) is tried again
// at the next interval. Several engines may verify at once: a day another has checkpointed is
// left as it is.
func verifyLedger(ctx context.Context, v ledgerVerifier, first, every time.Duration, log *slog.Logger, m *serveMetrics) {
	wait := first
	for {
		if !waitOrDone(ctx, wait) {
			return
		}
		wait = every
		began := time.Now()
		rep, err := v.VerifyIncremental(ctx)
		took := time.Since(began).Round(time.Millisecond)
		switch {
		case err != nil:
			if ctx.Err() != nil {
				return
			}
			m.verifications.WithLabelValues("error").Inc()
			log.Warn("verify the ledger: the next try is at the next interval", "err", err, "next", every)
		case !rep.OK():
			m.verifications.WithLabelValues("problems").Inc()
			m.verifyProblems.Set(float64(len(rep.Problems)))
			m.checkpointedDays.Add(float64(len(rep.Checkpointed)))
			log.Error("the ledger failed verification: run `joinin verify --full` and stop writing until it is understood",
				"problems", len(rep.Problems), "first", rep.Problems[0], "mode", rep.Mode, "took", took)
		default:
			m.verifications.WithLabelValues("ok").Inc()
			m.verifyProblems.Set(0)
			m.checkpointedDays.Add(float64(len(rep.Checkpointed)))
			log.Info("ledger verified", "mode", rep.Mode, "checkpointed", rep.Checkpointed, "accounts", rep.Accounts,
				"transfers", rep.Transfers, "took", took)
		}
	}
}

// waitOrDone waits d, or until ctx is done; it reports whether the loop waiting goes on. The
// engine's watches (the ledger's verification, the buffers, the calendar, the medical policies)
// look, then wait for their interval.
func waitOrDone(ctx context.Context, d time.Duration) bool {
	select {
	case <-ctx.Done():
		return false
	case <-time.After(d):
		return true
	}
}
