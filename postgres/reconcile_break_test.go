package postgres_test

import (
	"context"
	"testing"

	"github.com/joinincard/engine/postgres"
	"github.com/joinincard/engine/reconcile"
	"github.com/joinincard/engine/settlement"
)

// TestReconcileRecordsABreakWithItsEntries reconciles a statement whose first entry names an item
// with another amount and whose second matches another: the run records the match (and its step
// that resolves the breaks of matched entries runs) and the amount mismatch with its entry (and
// its step that resolves the smaller breaks it supersedes runs), and a second run records nothing
// new.
func TestReconcileRecordsABreakWithItsEntries(t *testing.T) {
	ctx := context.Background()
	w := newEdgeWorld(t, sh("2026-03-03 10:00"))
	w.buy(t, 0, 123_45)
	w.buy(t, 1, 67_89)
	w.clock.Set(sh("2026-03-03 23:30"))
	day := settlement.Date{Year: 2026, Month: 3, Day: 3}
	if _, err := w.set.Close(ctx, day); err != nil {
		t.Fatal(err)
	}
	var item, other [16]byte
	for _, q := range []struct {
		amount int64
		id     *[16]byte
	}{{-123_45, &item}, {-67_89, &other}} {
		if err := w.st.Pool().QueryRow(ctx, `SELECT item_id FROM settlement_items WHERE cycle_date = $1 AND bank_id = 'ISS' AND amount = $2`,
			settlement.DateTime(day), q.amount).Scan(q.id); err != nil {
			t.Fatal(err)
		}
	}
	vd := settlement.DateTime(settlement.Date{Year: 2026, Month: 3, Day: 4})
	if _, err := w.st.Pool().Exec(ctx, `INSERT INTO bank_statements (bank_id, statement_id, sequence, created_at, from_date, to_date,
			opening, closing, entries, control_sum, net, content_hash, imported_at)
		VALUES ('ISS', 'STMT-1', 1, now(), $1, $1, 0, -18789, 2, 18789, -18789, 'test', now())`, vd); err != nil {
		t.Fatal(err)
	}
	if _, err := w.st.Pool().Exec(ctx, `INSERT INTO statement_entries (bank_id, statement_id, line, entry_ref, ref, item_id, file_id,
			amount, booking_date, value_date, info)
		VALUES ('ISS', 'STMT-1', 1, 'E1', 'ref', $2, NULL, -12000, $1, $1, 'short'),
			('ISS', 'STMT-1', 2, 'E2', 'ref', $3, NULL, -6789, $1, $1, 'in full')`, vd, item, other); err != nil {
		t.Fatal(err)
	}
	openEntries(t, w.st)
	rules, err := reconcile.DefaultRules()
	if err != nil {
		t.Fatal(err)
	}
	rec := postgres.NewReconciler(w.st, rules)
	rep, err := rec.Reconcile(ctx, "ISS")
	if err != nil {
		t.Fatal(err)
	}
	if rep.Matched != 1 || rep.Breaks[reconcile.AmountMismatch] != 1 {
		t.Fatalf("report %+v", rep)
	}
	breaks, err := rec.Breaks(ctx, postgres.BreakFilter{Bank: "ISS", Open: true})
	if err != nil || len(breaks) != 1 {
		t.Fatalf("breaks %+v: %v", breaks, err)
	}
	b, err := rec.Break(ctx, breaks[0].ID)
	if err != nil || b.Kind != reconcile.AmountMismatch || *b.Expected != -123_45 || *b.Actual != -120_00 || len(b.Entries) != 1 {
		t.Fatalf("break %+v: %v", b, err)
	}
	if rep, err := rec.Reconcile(ctx, "ISS"); err != nil || len(rep.Breaks) != 0 {
		t.Fatalf("again: %+v %v", rep, err)
	}
}

// TestAResolvedBreakStopsAgeing resolves a break three days after its value date and reads it
// forty days later: its age stays what it was when resolved, in the break and in its cycle's
// report, while an open one goes on ageing.
func TestAResolvedBreakStopsAgeing(t *testing.T) {
	ctx := context.Background()
	w := newEdgeWorld(t, sh("2026-03-03 10:00"))
	w.buy(t, 0, 123_45)
	w.buy(t, 1, 67_89)
	w.clock.Set(sh("2026-03-03 23:30"))
	day := settlement.Date{Year: 2026, Month: 3, Day: 3}
	if _, err := w.set.Close(ctx, day); err != nil {
		t.Fatal(err)
	}
	var items [2][16]byte
	for i, amount := range []int64{-123_45, -67_89} {
		if err := w.st.Pool().QueryRow(ctx, `SELECT item_id FROM settlement_items WHERE cycle_date = $1 AND bank_id = 'ISS' AND amount = $2`,
			settlement.DateTime(day), amount).Scan(&items[i]); err != nil {
			t.Fatal(err)
		}
	}
	vd := settlement.DateTime(settlement.Date{Year: 2026, Month: 3, Day: 4})
	if _, err := w.st.Pool().Exec(ctx, `INSERT INTO bank_statements (bank_id, statement_id, sequence, created_at, from_date, to_date,
			opening, closing, entries, control_sum, net, content_hash, imported_at)
		VALUES ('ISS', 'STMT-1', 1, now(), $1, $1, 0, -18789, 2, 18789, -18789, 'test', now())`, vd); err != nil {
		t.Fatal(err)
	}
	if _, err := w.st.Pool().Exec(ctx, `INSERT INTO statement_entries (bank_id, statement_id, line, entry_ref, ref, item_id, file_id,
			amount, booking_date, value_date, info)
		VALUES ('ISS', 'STMT-1', 1, 'E1', 'ref', $2, NULL, -12000, $1, $1, 'short'),
			('ISS', 'STMT-1', 2, 'E2', 'ref', $3, NULL, -6700, $1, $1, 'short too')`, vd, items[0], items[1]); err != nil {
		t.Fatal(err)
	}
	openEntries(t, w.st)
	rules, err := reconcile.DefaultRules()
	if err != nil {
		t.Fatal(err)
	}
	rec := postgres.NewReconciler(w.st, rules)
	if _, err := rec.Reconcile(ctx, "ISS"); err != nil {
		t.Fatal(err)
	}
	breaks, err := rec.Breaks(ctx, postgres.BreakFilter{Bank: "ISS", Open: true})
	if err != nil || len(breaks) != 2 {
		t.Fatalf("breaks %+v: %v", breaks, err)
	}
	w.clock.Set(sh("2026-03-07 12:00"))
	if _, err := rec.ResolveWithNote(ctx, breaks[0].ID, "王芳", "the bank will pay the rest"); err != nil {
		t.Fatal(err)
	}
	w.clock.Set(sh("2026-04-16 12:00"))
	resolved, err := rec.Break(ctx, breaks[0].ID)
	if err != nil || resolved.Age != 3 || resolved.Bucket != reconcile.Age2to7 {
		t.Errorf("resolved three days after its value date, aged %d (%s) forty days later: %v", resolved.Age, resolved.Bucket, err)
	}
	open, err := rec.Break(ctx, breaks[1].ID)
	if err != nil || open.Age != 43 || open.Bucket != reconcile.AgeOver30 {
		t.Errorf("open, aged %d (%s): %v", open.Age, open.Bucket, err)
	}
	rep, err := rec.CycleReport(ctx, w.set, day)
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range rep.Banks {
		if b.Bank != "ISS" {
			continue
		}
		if got := b.Breaks[reconcile.AmountMismatch]; got[reconcile.Age2to7] != 1 || got[reconcile.AgeOver30] != 1 {
			t.Errorf("the report's amount mismatches by age: %v", got)
		}
	}
}
