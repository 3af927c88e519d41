package postgres_test

import (
	"context"
	"testing"

	"github.com/joinincard/engine/loadtest"
	"github.com/joinincard/engine/reconcile/statement"
)

// A reconciliation's entries are those it reconciled for the first time: run again over a
// statement whose entries are matched or in a break already, it counts none, though it decides
// the entries in a break again.
func TestReconcileCountsEntriesOnce(t *testing.T) {
	ctx := context.Background()
	w, r, day := settledDay(t)
	// ACQ-X books its first item 0.01 short (a break), and pays a fee nobody settled (a break).
	s := loadtest.StatementFor(fileOf(t, w, "ACQ-X", day), 1, 0, sh("2026-03-05 20:00"))
	s.Entries[0].Amount--
	fee := s.Entries[0]
	fee.Amount, fee.EntryRef, fee.EndToEndRef, fee.Direction = 3_00, "B-FEE", "", statement.Debit
	s.Entries = append(s.Entries, fee)
	loadtest.Retotal(s)
	if _, _, err := importStatement(t, r, s, statement.FormatCSV); err != nil {
		t.Fatal(err)
	}
	first, err := r.Reconcile(ctx, "ACQ-X")
	if err != nil {
		t.Fatal(err)
	}
	if first.Entries != int64(len(s.Entries)) || first.Breaks["amount_mismatch"] != 1 || first.Breaks["missing_in_ledger"] != 1 {
		t.Fatalf("first reconciliation %+v of %d entries", first, len(s.Entries))
	}
	again, err := r.Reconcile(ctx, "ACQ-X")
	if err != nil {
		t.Fatal(err)
	}
	if again.Entries != 0 || again.Matched != 0 || len(again.Breaks) != 0 {
		t.Fatalf("reconciled again: %+v", again)
	}
}
