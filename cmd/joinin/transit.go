package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	joininhttp "github.com/joinincard/engine/http"
	"github.com/joinincard/engine/postgres"
	"github.com/joinincard/engine/transit"
)

const (
	// defaultTransitInterval is how often transit clearing runs its pass: taps from Kafka are
	// decided, late taps re-priced and due travel days charged within half a minute, and a card
	// whose funds arrived leaves the deny list as soon.
	defaultTransitInterval = 30 * time.Second
	// maxTransitRounds bounds each step's rounds in one pass (a drain or a re-pricing per round):
	// a million taps from Kafka per pass; the next pass goes on.
	maxTransitRounds = 100
)

// startTransit runs transit clearing in the background, a pass every interval, by the fare
// tables in force (tr), until stop is called: it returns the transit API to serve.
func startTransit(ctx context.Context, st *postgres.Store, tr *postgres.Tariffs, interval time.Duration, log *slog.Logger) (api joininhttp.Feature, stop func()) {
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan struct{})
	go func() {
		defer close(done)
		runTransitClearing(runCtx, st, tr, interval, log)
	}()
	return joininhttp.NewTransitLive(st, tr.Fares), func() {
		cancel()
		<-done
	}
}

// runTransitClearing runs a transit pass every interval until ctx is done. Each pass prices by
// the fare tables in force when it starts, after looking for versions another process uploaded;
// a pass that finds tables uploaded since (postgres.ErrStaleTariffs) stops, and the next one
// goes on with them.
func runTransitClearing(ctx context.Context, st *postgres.Store, tr *postgres.Tariffs, interval time.Duration, log *slog.Logger) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		err := tr.Refresh(ctx)
		if err == nil {
			err = transitPass(ctx, st, tr.Fares(), log)
		}
		switch {
		case errors.Is(err, postgres.ErrStaleTariffs):
			log.Info("transit clearing: a fare table was uploaded during the pass; the next pass prices by it")
		case err != nil && ctx.Err() == nil:
			log.Warn("transit clearing", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// transitPass decides the taps Kafka delivered, re-prices the closed days late taps changed,
// charges the travel days whose time has come, and retries what cards could not pay, in that
// order: a day is charged with every tap that arrived before it closed.
func transitPass(ctx context.Context, st *postgres.Store, tables *transit.Tables, log *slog.Logger) error {
	drained := 0
	for range maxTransitRounds {
		n, err := st.DrainTransitTaps(ctx, tables)
		if err != nil {
			return fmt.Errorf("drain taps: %w", err)
		}
		drained += n
		if n == 0 {
			break
		}
	}
	var total postgres.TransitCloseReport
	repriced := 0
	for range maxTransitRounds {
		n, rep, err := st.RepriceTransitDays(ctx, tables, st.Now())
		if err != nil {
			return fmt.Errorf("re-price late taps: %w", err)
		}
		repriced += n
		total.Add(rep)
		if n == 0 {
			break
		}
	}
	rep, err := st.CloseTransitDays(ctx, tables, st.Now())
	total.Add(rep)
	if err != nil {
		return fmt.Errorf("close travel days: %w", err)
	}
	retried, rep, err := st.RetryOwedFares(ctx, tables, st.Now())
	if err != nil {
		return fmt.Errorf("retry unpaid fares: %w", err)
	}
	total.Add(rep)
	if drained+repriced+total.DaysClosed+total.Transfers > 0 {
		log.Info("transit clearing", "taps_from_kafka", drained, "card_weeks_repriced", repriced, "days_closed", total.DaysClosed,
			"card_days_priced", total.Cards, "transfers", total.Transfers, "charged_fen", total.Charged,
			"unpaid", total.Unpaid, "unpaid_retried", retried)
	}
	return nil
}
