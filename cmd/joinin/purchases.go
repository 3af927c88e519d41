package main

import (
	"context"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	joininhttp "github.com/joinincard/engine/http"
	"github.com/joinincard/engine/postgres"
)

// startPurchases starts the purchase engine's committer, which commits merchants' authorizations,
// captures, voids and refunds in shared transactions, and returns the purchase API. The
// committer runs until stop, not until ctx ends: call stop after the HTTP server has drained, so
// that the requests it was still answering are committed rather than refused.
//
// The committer's transactions are measured on reg: how many requests each carried and how long
// it took, which bounds an authorization's latency.
func startPurchases(ctx context.Context, st *postgres.Store, reg prometheus.Registerer) (api joininhttp.Feature, stop func(), err error) {
	p, err := postgres.NewPurchases(st)
	if err != nil {
		return nil, nil, fmt.Errorf("purchases: %w", err)
	}
	requests := prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "joinin_purchase_commit_requests", Help: "Merchant requests committed per purchase transaction.",
		Buckets: prometheus.ExponentialBuckets(1, 2, 9), // 1 .. 256, the committer's bound
	})
	seconds := prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "joinin_purchase_commit_seconds", Help: "Time per purchase transaction, retries included.",
		Buckets: prometheus.ExponentialBuckets(0.0005, 2, 12), // 0.5 ms .. 1 s
	})
	if err := reg.Register(requests); err != nil {
		return nil, nil, fmt.Errorf("purchases metrics: %w", err)
	}
	if err := reg.Register(seconds); err != nil {
		return nil, nil, fmt.Errorf("purchases metrics: %w", err)
	}
	p.OnCommit = func(n int, took time.Duration) {
		requests.Observe(float64(n))
		seconds.Observe(took.Seconds())
	}
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan struct{})
	go func() {
		defer close(done)
		p.Run(runCtx)
	}()
	return joininhttp.NewPurchases(p), func() {
		cancel()
		<-done
	}, nil
}
