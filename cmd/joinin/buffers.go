package main

import (
	"context"
	"log/slog"
	"time"

	"github.com/joinincard/engine/postgres"
)

// bufferSizer reads how PostgreSQL's shared buffers compare with the balance history's key.
type bufferSizer interface {
	BufferFit(ctx context.Context) (postgres.BufferFit, error)
}

var _ bufferSizer = (*postgres.Store)(nil)

// bufferCheckInterval is how often serve reads the sizes: the key grows by a day's balance
// versions in a day, so an hour sees it outgrow the buffers well before the slowdown matters.
const bufferCheckInterval = time.Hour

// bufferWarnGrowth is how much the balance key grows between two warnings that it outgrew the
// buffers: the first time it does, then at each half again, so the log says it about once per
// growth that matters and not every interval.
const bufferWarnGrowth = 1.5

// watchBuffers reads the shared buffers' and the balance key's sizes at start and then every
// interval until ctx is done, sets the gauges, and warns when the key has outgrown the buffers:
// from then on each batch reads its cards' balance pages from outside PostgreSQL's buffers, and
// the cure is the server's shared_buffers (docs/deploying.md). A read that fails is tried at
// the next interval. Nothing is read on CockroachDB.
func watchBuffers(ctx context.Context, b bufferSizer, every time.Duration, log *slog.Logger, m *serveMetrics) {
	var warnedAt int64 // the key's size at the last warning; 0 while none was given
	for {
		fit, err := b.BufferFit(ctx)
		switch {
		case err != nil:
			if ctx.Err() != nil {
				return
			}
			log.Warn("read the database's buffer sizes: the next try is at the next interval", "err", err, "next", every)
		case !fit.Known:
			return
		default:
			m.sharedBuffers.Set(float64(fit.SharedBuffers))
			m.balanceKey.Set(float64(fit.BalanceKey))
			if fit.Short() && (warnedAt == 0 || float64(fit.BalanceKey) >= float64(warnedAt)*bufferWarnGrowth) {
				warnedAt = fit.BalanceKey
				log.Warn("the balance history's key has outgrown PostgreSQL's shared buffers: each batch now reads its cards' "+
					"balance pages from outside them and the consumer slows as the ledger grows; raise shared_buffers above the key",
					"shared_buffers_mib", fit.SharedBuffers>>20, "balance_key_mib", fit.BalanceKey>>20)
			}
		}
		if !waitOrDone(ctx, every) {
			return
		}
	}
}
