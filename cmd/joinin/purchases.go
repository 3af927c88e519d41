package main

import (
	"context"
	"fmt"

	joininhttp "github.com/joinincard/engine/http"
	"github.com/joinincard/engine/postgres"
)

// startPurchases starts the purchase engine's committer, which commits merchants' authorizations,
// captures, voids and refunds in shared transactions, and returns the purchase API. The
// committer runs until stop, not until ctx ends: call stop after the HTTP server has drained, so
// that the requests it was still answering are committed rather than refused.
func startPurchases(ctx context.Context, st *postgres.Store) (api joininhttp.Feature, stop func(), err error) {
	p, err := postgres.NewPurchases(st)
	if err != nil {
		return nil, nil, fmt.Errorf("purchases: %w", err)
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
