package postgres_test

import (
	"context"
	"testing"

	"github.com/joinincard/engine/loadtest"
	"github.com/joinincard/engine/postgres"
	"github.com/joinincard/engine/reconcile"
	"github.com/joinincard/engine/reconcile/statement"
	"github.com/joinincard/engine/settlement"
)

// TestAnItemSuggestedIsNotMissingAtTheBankInTheSameRun: a statement that runs past an item's
// value date and books it under no reference of ours suggests the entry for the item. The item
// waits for a person's decision; it is not also missing at the bank, in the run that suggested it
// or in the next.
func TestAnItemSuggestedIsNotMissingAtTheBankInTheSameRun(t *testing.T) {
	ctx := context.Background()
	w, r, _ := settledDay(t)
	value := settlement.Date{Year: 2026, Month: 3, Day: 4}
	covered := settlement.AddDays(value, 2)
	s := &statement.Statement{Header: statement.Header{StatementID: "STMT-ACQ-Y-1", CreatedAt: sh("2026-03-06 20:00"), BankID: "ACQ-Y",
		Sequence: 1, From: value, To: covered, Currency: statement.CurrencyCNY},
		Entries: []statement.Entry{
			{Amount: 119_62, Direction: statement.Credit, BookingDate: value, ValueDate: value, EntryRef: "Y-1"},
			{Amount: 14_00, Direction: statement.Credit, BookingDate: value, ValueDate: value, EntryRef: "Y-2"},
		}}
	loadtest.Retotal(s)
	w.clock.Set(s.Header.CreatedAt) // the statement arrives after its period
	if _, _, err := importStatement(t, r, s, statement.FormatXML); err != nil {
		t.Fatal(err)
	}
	for run := 1; run <= 2; run++ {
		rep, err := r.Reconcile(ctx, "ACQ-Y")
		if err != nil {
			t.Fatal(err)
		}
		if run == 1 && rep.Suggested != 2 {
			t.Fatalf("run 1 suggested %d entries, want 2: %+v", rep.Suggested, rep)
		}
		if n := rep.Breaks[reconcile.MissingAtBank]; n != 0 {
			t.Errorf("run %d: %d items suggested are also missing at the bank: %+v", run, n, rep)
		}
		breaks, err := r.Breaks(ctx, postgres.BreakFilter{Bank: "ACQ-Y", Open: true})
		if err != nil {
			t.Fatal(err)
		}
		if len(breaks) != 0 {
			t.Errorf("run %d: open breaks %+v, want none while the suggestions wait", run, breaks)
		}
	}
}
