package postgres_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/joinincard/engine/cards"
	"github.com/joinincard/engine/postgres"
	"github.com/joinincard/engine/settlement"
)

// Closes of one cycle asked at once, as an admin's retries or several engines' timers do, each
// by a settlement of its own (a process of its own): every one answers the closed cycle, none
// a conflict or busy, and the cycle's items and files are written once.
func TestConcurrentClosesOfOneCycleAllAnswerItClosed(t *testing.T) {
	ctx := context.Background()
	s := newShop(t, 4, fen1000)
	A, C := postgres.OpAuthorize, postgres.OpCapture
	s.run(t, 0, []pstep{
		{op: A, merchant: "shop-1", auth: "a", amount: "300.00", want: "approved", available: skip, posted: skip},
		{op: C, merchant: "shop-1", auth: "a", amount: "280.00", want: "ok", available: skip, posted: skip},
	})
	s.run(t, 1, []pstep{
		{op: A, merchant: "pharmacy-1", auth: "a", amount: "50.00", want: "approved", available: skip, posted: skip},
		{op: C, merchant: "pharmacy-1", auth: "a", amount: "50.00", want: "ok", available: skip, posted: skip},
	})
	day := settlement.Date{Year: 2026, Month: 3, Day: 3}
	s.clock.Store(time.Date(2026, 3, 3, 23, 30, 0, 0, cards.Shanghai).UnixMicro())

	const closers = 12
	var wg sync.WaitGroup
	errs := make([]error, closers)
	got := make([]postgres.Cycle, closers)
	for i := range closers {
		set := newSettlement(t, s.st)
		wg.Add(1)
		go func() {
			defer wg.Done()
			got[i], errs[i] = set.Close(ctx, day)
		}()
	}
	wg.Wait()
	for i := range closers {
		if errs[i] != nil || got[i].Status != postgres.CycleClosed || got[i].Date != day {
			t.Errorf("close %d: %+v %v", i, got[i], errs[i])
		}
	}
	var items, files int
	if err := s.st.Pool().QueryRow(ctx, `SELECT count(*) FROM settlement_items WHERE cycle_date = $1`, settlement.DateTime(day)).Scan(&items); err != nil {
		t.Fatal(err)
	}
	if err := s.st.Pool().QueryRow(ctx, `SELECT count(*) FROM settlement_files WHERE cycle_date = $1 AND sequence <> 1`,
		settlement.DateTime(day)).Scan(&files); err != nil {
		t.Fatal(err)
	}
	sums := sumItems(t, s.st, day)
	total := sums.held + got[0].FeeIncome
	for _, v := range sums.banks {
		total += v
	}
	if items == 0 || files != 0 || total != 0 {
		t.Errorf("%d items summing to %d with the fee income, %d files numbered past 1", items, total, files)
	}
}
