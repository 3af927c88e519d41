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

// TestAdjustingAnExtraBookingMovesItsWholeAmount: the bank booked an item twice (a duplicate) and
// once more at another amount after the item matched. Each extra booking is money the engine did
// not settle, so its adjustment moves the bank's position by all of it, not by its difference
// from the item it repeats (nothing, or the item less the booking).
func TestAdjustingAnExtraBookingMovesItsWholeAmount(t *testing.T) {
	ctx := context.Background()
	w, r, day := settledDay(t)
	s := loadtest.StatementFor(fileOf(t, w, "ISS-A", day), 1, 0, sh("2026-03-04 20:00"))
	first := s.Entries[0]
	other := first
	other.Amount, other.EntryRef = 7_00, "EXTRA-7"
	s.Entries = append(s.Entries, first, other)
	loadtest.Retotal(s)
	if _, _, err := importStatement(t, r, s, statement.FormatCSV); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Reconcile(ctx, "ISS-A"); err != nil {
		t.Fatal(err)
	}
	breaks, err := r.Breaks(ctx, postgres.BreakFilter{Bank: "ISS-A", Open: true})
	if err != nil {
		t.Fatal(err)
	}
	sign := int64(1)
	if first.Direction == statement.Debit {
		sign = -1
	}
	want := map[reconcile.BreakKind]int64{reconcile.Duplicate: sign * first.Amount, reconcile.AmountMismatch: sign * 7_00}
	for _, b := range breaks {
		amount, ok := want[b.Kind]
		if !ok {
			continue
		}
		delete(want, b.Kind)
		adj, err := r.ResolveWithAdjustment(ctx, b.ID, "王芳", "booked again by the bank")
		if err != nil {
			t.Errorf("%s: %v", b.Kind, err)
			continue
		}
		tr, err := w.st.Transfer(ctx, adj.Resolution.TransferID)
		if err != nil {
			t.Fatal(err)
		}
		moved := tr.Amount
		if tr.DebitAccountID != postgres.ReconciliationAccount {
			moved = -moved
		}
		if moved != amount {
			t.Errorf("%s of %d adjusted by %d, want %d", b.Kind, *b.Actual, moved, amount)
		}
	}
	if len(want) != 0 {
		t.Errorf("breaks %+v lack %v", breaks, want)
	}
}

// TestAFilesNetAfterItsItemIsNotMatchedTwice: the bank books one item of a file on its own, then
// the file's whole net as one entry. The net holds the item again: it is not matched whole
// (which would match the item a second time and hide that the bank booked it twice) but is an
// amount mismatch against the net without the item; the net without the item matches.
func TestAFilesNetAfterItsItemIsNotMatchedTwice(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name      string
		less      bool // the bank booked the net less the item
		wantMatch bool
	}{{"the whole net", false, false}, {"the net less the item", true, true}} {
		t.Run(tc.name, func(t *testing.T) {
			w, r, day := settledDay(t)
			f := fileOf(t, w, "ACQ-Z", day)
			if len(f.Items) < 2 {
				t.Fatalf("ISS-A has %d items, want 2 or more", len(f.Items))
			}
			s := loadtest.StatementFor(f, 1, 0, sh("2026-03-04 20:00"))
			item := s.Entries[0]
			net := f.Header.Net
			if tc.less {
				net -= item.Signed()
			}
			e := statement.Entry{Amount: net, Direction: statement.Credit, BookingDate: item.BookingDate, ValueDate: item.ValueDate,
				EntryRef: "NET-1", EndToEndRef: f.Header.MessageID}
			if net < 0 {
				e.Amount, e.Direction = -net, statement.Debit
			}
			s.Entries = []statement.Entry{item, e}
			loadtest.Retotal(s)
			if _, _, err := importStatement(t, r, s, statement.FormatCSV); err != nil {
				t.Fatal(err)
			}
			rep, err := r.Reconcile(ctx, "ACQ-Z")
			if err != nil {
				t.Fatal(err)
			}
			var fileMatched bool
			if err := w.st.Pool().QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM recon_matches WHERE file_id = $1 AND status = 'matched')`,
				f.Header.MessageID).Scan(&fileMatched); err != nil {
				t.Fatal(err)
			}
			if fileMatched != tc.wantMatch || tc.wantMatch == (rep.Breaks[reconcile.AmountMismatch] == 1) {
				t.Errorf("the file's net matched %v, want %v: %+v", fileMatched, tc.wantMatch, rep)
			}
		})
	}
}
