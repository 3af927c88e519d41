package main

import (
	"context"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	joininhttp "github.com/joinincard/engine/http"
	"github.com/joinincard/engine/postgres"
)

// startTransfers starts the transfers committer, which commits the admin's transfers (POST
// /v1/transfers) in shared transactions, and returns the transfers API. The committer runs until
// stop, not until ctx ends: call stop after the HTTP server has drained, so that the requests it
// was still answering are committed rather than refused.
//
// The committer's transactions are measured on reg, if it is not nil: how many requests and
// transfers each carried and how long it took.
func startTransfers(ctx context.Context, st *postgres.Store, reg prometheus.Registerer) (tr *postgres.Transfers, api joininhttp.Feature, stop func(), err error) {
	tr = postgres.NewTransfers(st)
	if reg != nil {
		requests := prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "joinin_transfer_commit_requests", Help: "Transfer requests committed per transaction.",
			Buckets: prometheus.ExponentialBuckets(1, 2, 13), // 1 .. 4,096, the queue's bound
		})
		transfers := prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "joinin_transfer_commit_transfers", Help: "Transfers committed per transaction.",
			Buckets: prometheus.ExponentialBuckets(1, 2, 15), // 1 .. 16,384, the ledger's batch bound
		})
		seconds := prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "joinin_transfer_commit_seconds", Help: "Time per transfer transaction, retries included.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 12), // 0.5 ms .. 1 s
		})
		for _, c := range []prometheus.Collector{requests, transfers, seconds} {
			if err := reg.Register(c); err != nil {
				return nil, nil, nil, fmt.Errorf("transfers metrics: %w", err)
			}
		}
		tr.OnCommit = func(n, m int, took time.Duration) {
			requests.Observe(float64(n))
			transfers.Observe(float64(m))
			seconds.Observe(took.Seconds())
		}
	}
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan struct{})
	go func() {
		defer close(done)
		tr.Run(runCtx)
	}()
	return tr, joininhttp.NewTransfers(tr), func() {
		cancel()
		<-done
	}, nil
}
