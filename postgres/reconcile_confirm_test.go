package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/joinincard/engine/postgres"
	"github.com/joinincard/engine/reconcile"
	"github.com/joinincard/engine/settlement"
)

// TestConfirmOfADecidedSuggestionIsNotPending confirms a suggestion once, then again, and refuses
// a match the rules made: both are ErrNotPending, which a page tells a person apart from a
// failure.
func TestConfirmOfADecidedSuggestionIsNotPending(t *testing.T) {
	ctx := context.Background()
	w := newEdgeWorld(t, sh("2026-03-03 10:00"))
	w.buy(t, 0, 123_45)
	w.buy(t, 1, 67_89)
	w.clock.Set(sh("2026-03-03 23:30"))
	day := settlement.Date{Year: 2026, Month: 3, Day: 3}
	if _, err := w.set.Close(ctx, day); err != nil {
		t.Fatal(err)
	}
	// ISS's statement books the first card's item without a reference (a suggestion) and the
	// second's naming it (a match).
	var first, second [16]byte
	for _, q := range []struct {
		amount int64
		id     *[16]byte
	}{{-123_45, &first}, {-67_89, &second}} {
		if err := w.st.Pool().QueryRow(ctx, `SELECT item_id FROM settlement_items WHERE cycle_date = $1 AND bank_id = 'ISS' AND amount = $2`,
			settlement.DateTime(day), q.amount).Scan(q.id); err != nil {
			t.Fatal(err)
		}
	}
	vd := settlement.DateTime(settlement.Date{Year: 2026, Month: 3, Day: 4})
	if _, err := w.st.Pool().Exec(ctx, `INSERT INTO bank_statements (bank_id, statement_id, sequence, created_at, from_date, to_date,
			opening, closing, entries, control_sum, net, content_hash, imported_at)
		VALUES ('ISS', 'STMT-1', 1, now(), $1, $1, 0, -19134, 2, 19134, -19134, 'test', now())`, vd); err != nil {
		t.Fatal(err)
	}
	if _, err := w.st.Pool().Exec(ctx, `INSERT INTO statement_entries (bank_id, statement_id, line, entry_ref, ref, item_id, file_id,
			amount, booking_date, value_date, info)
		VALUES ('ISS', 'STMT-1', 1, 'E1', '', NULL, NULL, -12345, $1, $1, 'no reference'),
			('ISS', 'STMT-1', 2, 'E2', 'ref', $2, NULL, -6789, $1, $1, 'named')`, vd, second); err != nil {
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
	sugg, err := rec.Suggestions(ctx, "ISS")
	if err != nil || len(sugg) != 1 || sugg[0].Item != first {
		t.Fatalf("suggestions %+v: %v", sugg, err)
	}
	if err := rec.Confirm(ctx, sugg[0].ID, true, "王芳"); err != nil {
		t.Fatal(err)
	}
	if err := rec.Confirm(ctx, sugg[0].ID, false, "Anna"); !errors.Is(err, postgres.ErrNotPending) {
		t.Errorf("confirmed twice: %v, want ErrNotPending", err)
	}
	var matched [16]byte
	if err := w.st.Pool().QueryRow(ctx, `SELECT match_id FROM recon_matches WHERE item_id = $1`, second).Scan(&matched); err != nil {
		t.Fatal(err)
	}
	if err := rec.Confirm(ctx, matched, true, "Anna"); !errors.Is(err, postgres.ErrNotPending) {
		t.Errorf("a match confirmed: %v, want ErrNotPending", err)
	}
}

// TestAcceptingASuggestionForAnItemMatchedSinceIsRefused books an item without a reference (a
// suggestion), then naming it in the next statement (a match): accepting the suggestion then
// would match the item twice and count its money twice, so it is refused, and the item keeps one
// match.
func TestAcceptingASuggestionForAnItemMatchedSinceIsRefused(t *testing.T) {
	ctx := context.Background()
	w, rec, item := oneItemDay(t)
	for seq, ref := range []any{nil, item} {
		bookItem(t, w, seq+1, ref)
		if _, err := rec.Reconcile(ctx, "ISS"); err != nil {
			t.Fatal(err)
		}
	}
	sugg, err := rec.Suggestions(ctx, "ISS")
	if err != nil || len(sugg) != 1 || sugg[0].Item != item {
		t.Fatalf("suggestions %+v: %v", sugg, err)
	}
	if err := rec.Confirm(ctx, sugg[0].ID, true, "王芳"); !errors.Is(err, postgres.ErrMatchedSince) {
		t.Errorf("accepted a suggestion for an item matched since: %v, want ErrMatchedSince", err)
	}
	var standing int
	if err := w.st.Pool().QueryRow(ctx, `SELECT count(*) FROM recon_matches m LEFT JOIN recon_confirmations k ON k.match_id = m.match_id
		WHERE m.item_id = $1 AND (m.status = 'matched' OR k.accepted)`, item).Scan(&standing); err != nil {
		t.Fatal(err)
	}
	if standing != 1 {
		t.Errorf("the item has %d standing matches, want 1", standing)
	}
	// Refusing it stays possible: its entry is then missing in the ledger.
	if err := rec.Confirm(ctx, sugg[0].ID, false, "王芳"); err != nil {
		t.Fatal(err)
	}
}

// TestARefusedSuggestionLeavesTheItemMissingAtTheBank: the bank booked an entry without a
// reference that fits an item, suggested for it; a person refuses it. The item is then booked by
// nothing, and once the bank's next statements run past its value date it is missing at the
// bank, as any item nothing booked.
func TestARefusedSuggestionLeavesTheItemMissingAtTheBank(t *testing.T) {
	ctx := context.Background()
	w, rec, _ := oneItemDay(t)
	vd := settlement.DateTime(settlement.Date{Year: 2026, Month: 3, Day: 4})
	to := settlement.DateTime(settlement.Date{Year: 2026, Month: 3, Day: 6})
	if _, err := w.st.Pool().Exec(ctx, `INSERT INTO bank_statements (bank_id, statement_id, sequence, created_at, from_date, to_date,
			opening, closing, entries, control_sum, net, content_hash, imported_at)
		VALUES ('ISS', 'STMT-1', 1, now(), $1, $1, 0, -12345, 1, 12345, -12345, 'test', now())`, vd); err != nil {
		t.Fatal(err)
	}
	if _, err := w.st.Pool().Exec(ctx, `INSERT INTO statement_entries (bank_id, statement_id, line, entry_ref, ref, item_id, file_id,
			amount, booking_date, value_date, info)
		VALUES ('ISS', 'STMT-1', 1, 'E1', '', NULL, NULL, -12345, $1, $1, '')`, vd); err != nil {
		t.Fatal(err)
	}
	openEntries(t, w.st)
	if _, err := rec.Reconcile(ctx, "ISS"); err != nil {
		t.Fatal(err)
	}
	sugg, err := rec.Suggestions(ctx, "ISS")
	if err != nil || len(sugg) != 1 {
		t.Fatalf("suggestions %+v: %v", sugg, err)
	}
	if err := rec.Confirm(ctx, sugg[0].ID, false, "王芳"); err != nil {
		t.Fatal(err)
	}
	// The next statement runs two days on, booking nothing.
	if _, err := w.st.Pool().Exec(ctx, `INSERT INTO bank_statements (bank_id, statement_id, sequence, created_at, from_date, to_date,
			opening, closing, entries, control_sum, net, content_hash, imported_at)
		VALUES ('ISS', 'STMT-2', 2, now(), $1, $1, -12345, -12345, 0, 0, 0, 'test', now())`, to); err != nil {
		t.Fatal(err)
	}
	rep, err := rec.Reconcile(ctx, "ISS")
	if err != nil {
		t.Fatal(err)
	}
	if rep.Breaks[reconcile.MissingAtBank] != 1 {
		t.Errorf("after the refusal: %+v, want the item missing at the bank", rep)
	}
	checkOpenQueues(t, w.st)
}

// oneItemDay is a day of one purchase of 123.45 closed, with its reconciler: the item the card's
// bank ISS pays for it, valued on 4 March.
func oneItemDay(t *testing.T) (*edgeWorld, *postgres.Reconciler, [16]byte) {
	t.Helper()
	ctx := context.Background()
	w := newEdgeWorld(t, sh("2026-03-03 10:00"))
	w.buy(t, 0, 123_45)
	w.clock.Set(sh("2026-03-03 23:30"))
	day := settlement.Date{Year: 2026, Month: 3, Day: 3}
	if _, err := w.set.Close(ctx, day); err != nil {
		t.Fatal(err)
	}
	var item [16]byte
	if err := w.st.Pool().QueryRow(ctx, `SELECT item_id FROM settlement_items WHERE cycle_date = $1 AND bank_id = 'ISS' AND amount = -12345`,
		settlement.DateTime(day)).Scan(&item); err != nil {
		t.Fatal(err)
	}
	rules, err := reconcile.DefaultRules()
	if err != nil {
		t.Fatal(err)
	}
	return w, postgres.NewReconciler(w.st, rules), item
}

// bookItem imports ISS's statement seq of 4 March: one entry of -123.45 naming ref (an item id, or
// nil for nothing of ours).
func bookItem(t *testing.T, w *edgeWorld, seq int, ref any) {
	t.Helper()
	ctx := context.Background()
	vd := settlement.DateTime(settlement.Date{Year: 2026, Month: 3, Day: 4})
	stmt := fmt.Sprintf("STMT-%d", seq)
	if _, err := w.st.Pool().Exec(ctx, `INSERT INTO bank_statements (bank_id, statement_id, sequence, created_at, from_date, to_date,
			opening, closing, entries, control_sum, net, content_hash, imported_at)
		VALUES ('ISS', $1, $2, now(), $3, $3, 0, -12345, 1, 12345, -12345, $1, now())`, stmt, seq, vd); err != nil {
		t.Fatal(err)
	}
	if _, err := w.st.Pool().Exec(ctx, `INSERT INTO statement_entries (bank_id, statement_id, line, entry_ref, ref, item_id, file_id,
			amount, booking_date, value_date, info)
		VALUES ('ISS', $1, 1, 'E1', '', $2, NULL, -12345, $3, $3, '')`, stmt, ref, vd); err != nil {
		t.Fatal(err)
	}
	openEntries(t, w.st)
}

// openEntries puts the statement entries a test wrote straight into the database where an import
// puts them: open for the bank's next reconciliation.
func openEntries(t *testing.T, st *postgres.Store) {
	t.Helper()
	if _, err := st.Pool().Exec(context.Background(), `INSERT INTO recon_open_entries (bank_id, statement_id, line)
		SELECT e.bank_id, e.statement_id, e.line FROM statement_entries e
		WHERE NOT EXISTS (SELECT 1 FROM recon_open_entries o WHERE o.bank_id = e.bank_id AND o.statement_id = e.statement_id AND o.line = e.line)
			AND NOT EXISTS (SELECT 1 FROM recon_match_entries m WHERE m.bank_id = e.bank_id AND m.statement_id = e.statement_id AND m.line = e.line)`); err != nil {
		t.Fatal(err)
	}
}
