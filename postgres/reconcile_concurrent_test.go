package postgres_test

import (
	"context"
	"sync"
	"testing"

	"github.com/joinincard/engine/loadtest"
	"github.com/joinincard/engine/postgres"
	"github.com/joinincard/engine/reconcile"
	"github.com/joinincard/engine/reconcile/statement"
)

// TestConcurrentReconcilesOfABankHaveOneEffect imports a bank's statement, then reconciles the
// bank from several requests at once, as concurrent imports of the same statement do: together
// they report each entry reconciled once and each match once, as one reconciliation would.
func TestConcurrentReconcilesOfABankHaveOneEffect(t *testing.T) {
	ctx := context.Background()
	w, r, day := settledDay(t)
	s := loadtest.StatementFor(fileOf(t, w, "ISS-A", day), 1, 0, sh("2026-03-04 20:00"))
	// The bank booked every entry twice: matches and duplicates.
	s.Entries = append(s.Entries, s.Entries...)
	loadtest.Retotal(s)
	if _, _, err := importStatement(t, r, s, statement.FormatCSV); err != nil {
		t.Fatal(err)
	}
	const runs = 6
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		reps []postgres.ReconcileReport
	)
	for range runs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rep, err := r.Reconcile(ctx, "ISS-A")
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			reps = append(reps, rep)
			mu.Unlock()
		}()
	}
	wg.Wait()
	var entries, matched, duplicates int64
	for _, rep := range reps {
		entries += rep.Entries
		matched += rep.Matched
		duplicates += rep.Breaks[reconcile.Duplicate]
	}
	n := int64(len(s.Entries))
	if entries != n || matched != n/2 || duplicates != n/2 {
		t.Errorf("%d runs at once reported %d entries, %d matches, %d duplicates; want %d, %d, %d: %+v",
			runs, entries, matched, duplicates, n, n/2, n/2, reps)
	}
}
