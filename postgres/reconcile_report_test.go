package postgres_test

import (
	"context"
	"testing"

	"github.com/joinincard/engine/postgres"
	"github.com/joinincard/engine/reconcile"
	"github.com/joinincard/engine/settlement"
)

// TestCycleReportClosesOnTheCyclesPostings: a bank's closing position in a cycle's report is its
// position as the cycle's postings left it, Opening plus Settled, even when the postings' batches
// are stamped after the instant the close was recorded (a batch is stamped after the versions it
// builds on, and may lead the writer's clock): here the clock stands still through the close.
func TestCycleReportClosesOnTheCyclesPostings(t *testing.T) {
	ctx := context.Background()
	w := newEdgeWorld(t, sh("2026-03-03 10:00"))
	w.buy(t, 0, 123_45)
	w.buy(t, 1, 67_89)
	w.clock.Set(sh("2026-03-03 23:30"))
	day := settlement.Date{Year: 2026, Month: 3, Day: 3}
	if _, err := w.set.Close(ctx, day); err != nil {
		t.Fatal(err)
	}
	rules, err := reconcile.DefaultRules()
	if err != nil {
		t.Fatal(err)
	}
	rep, err := postgres.NewReconciler(w.st, rules).CycleReport(ctx, w.set, day)
	if err != nil {
		t.Fatal(err)
	}
	settled := map[string]int64{}
	for _, b := range rep.Banks {
		settled[b.Bank] = b.Settled
		if b.Closing != b.Opening+b.Settled {
			t.Errorf("%s: opening %d, settled %d, closing %d", b.Bank, b.Opening, b.Settled, b.Closing)
		}
	}
	if settled["ISS"] != -191_34 || settled["ACQ"] == 0 {
		t.Fatalf("settled %v", settled)
	}
	closing := map[string]int64{}
	for _, b := range rep.Banks {
		closing[b.Bank] = b.Closing
	}

	// The next cycle opens where this one closed, and closes on its own postings.
	w.buy(t, 0, 10_00)
	w.clock.Set(sh("2026-03-04 23:30"))
	next := settlement.AddDays(day, 1)
	if _, err := w.set.Close(ctx, next); err != nil {
		t.Fatal(err)
	}
	rep, err = postgres.NewReconciler(w.st, rules).CycleReport(ctx, w.set, next)
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range rep.Banks {
		if b.Opening != closing[b.Bank] || b.Closing != b.Opening+b.Settled {
			t.Errorf("%s the next day: opening %d (closed at %d), settled %d, closing %d", b.Bank, b.Opening, closing[b.Bank], b.Settled, b.Closing)
		}
	}
}
