package postgres_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/joinincard/engine/ledger"
	"github.com/joinincard/engine/loadtest"
	"github.com/joinincard/engine/postgres"
	"github.com/joinincard/engine/reconcile/statement"
	"github.com/joinincard/engine/settlement"
	"github.com/joinincard/engine/settlement/bankfile"
)

// An item a bank rejected in its acknowledgement went back to clearing and is offered again in
// the next cycle: the bank is owed nothing for it in this one. A statement that books it anyway
// is a break (the bank would be paid it twice once the next cycle settles it again), not a match;
// a statement that leaves it out is as expected, not a missing item; and a bank that books its
// file's net books the net of the items it accepted.
func TestReconcileItemsTheBankRejected(t *testing.T) {
	_, r, _, rejected := rejectedDay(t)
	got := openBreakLines(t, r)
	want := []string{fmt.Sprintf("ACQ-X amount_mismatch expected 0.00 booked %s", ledger.FormatAmount(rejected["ACQ-X"].Amount, "CNY"))}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("breaks:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// rejectedDay is the settled day whose three acquirers each rejected the first item of their
// file: ACQ-X's statement books every item, the rejected one too; ACQ-Y's the items it accepted;
// ACQ-Z's its file's net of the items it accepted, in one entry. The statements are reconciled.
func rejectedDay(t *testing.T) (*settleWorld, *postgres.Reconciler, settlement.Date, map[string]bankfile.Item) {
	t.Helper()
	ctx := context.Background()
	w, r, day := settledDay(t)
	created := sh("2026-03-05 20:00")
	value := settlement.Date{Year: 2026, Month: 3, Day: 4}
	// Each of the three acquirers rejects the first item of its file.
	rejected := map[string]bankfile.Item{}
	files := map[string]*bankfile.File{}
	w.clock.Set(sh("2026-03-04 08:05"))
	for _, bank := range []string{"ACQ-X", "ACQ-Y", "ACQ-Z"} {
		f := fileOf(t, w, bank, day)
		if len(f.Items) < 1 {
			t.Fatalf("%s's file has no item", bank)
		}
		files[bank], rejected[bank] = f, f.Items[0]
		ack := &bankfile.Ack{MessageID: "ACK-" + bank, CreatedAt: sh("2026-03-04 08:00"), FileMessageID: f.Header.MessageID, BankID: bank,
			Status: bankfile.StatusPartial, Items: []bankfile.ItemStatus{{ItemID: f.Items[0].ID, ReasonCode: "AC04", Reason: "account closed"}}}
		if _, _, err := w.set.Acknowledge(ctx, bank, ack); err != nil {
			t.Fatalf("%s's acknowledgement: %v", bank, err)
		}
	}
	// ACQ-X books every item of its file, the rejected one too.
	x := loadtest.StatementFor(files["ACQ-X"], 1, 0, created)
	x.Header.To = settlement.AddDays(value, 1)
	// ACQ-Y books the items it accepted only, and its statements run past the value date.
	y := loadtest.StatementFor(files["ACQ-Y"], 1, 0, created)
	y.Header.To = settlement.AddDays(value, 1)
	y.Entries = y.Entries[1:]
	// ACQ-Z books its file's net of the items it accepted in one entry.
	z := loadtest.StatementFor(files["ACQ-Z"], 1, 0, created)
	net := z.Header.Net - z.Entries[0].Signed()
	dir := statement.Credit
	if net < 0 {
		dir, net = statement.Debit, -net
	}
	z.Entries = []statement.Entry{{Amount: net, Direction: dir, BookingDate: value, ValueDate: value, EntryRef: "B-NET",
		EndToEndRef: files["ACQ-Z"].Header.MessageID}}
	for _, s := range []*statement.Statement{x, y, z} {
		loadtest.Retotal(s)
		if _, _, err := importStatement(t, r, s, statement.FormatCSV); err != nil {
			t.Fatalf("%s: %v", s.Header.BankID, err)
		}
	}
	if _, err := r.ReconcileAll(ctx); err != nil {
		t.Fatal(err)
	}
	return w, r, day, rejected
}

// A cycle's report shows what each bank rejected apart: the rejected items are neither settled
// in the cycle nor matched, whether the statement matched the items one by one or booked the
// file's net of the accepted items whole.
func TestCycleReportShowsRejectedItemsApart(t *testing.T) {
	ctx := context.Background()
	w, r, day, rejected := rejectedDay(t)
	rep, err := r.CycleReport(ctx, w.set, day)
	if err != nil {
		t.Fatal(err)
	}
	seen := 0
	for _, b := range rep.Banks {
		it, ok := rejected[b.Bank]
		if !ok {
			continue
		}
		seen++
		f := fileOf(t, w, b.Bank, day)
		got := fmt.Sprintf("settled %d, rejected %d of %d items, matched %d items, %d", b.Settled, b.RejectedItems, b.Items, b.MatchedItems, b.Matched)
		want := fmt.Sprintf("settled %d, rejected 1 of %d items, matched %d items, %d", f.Header.Net-signedOf(it), f.Header.NumberOfEntries,
			f.Header.NumberOfEntries-1, f.Header.Net-signedOf(it))
		if got != want || b.Rejected != signedOf(it) {
			t.Errorf("%s: %s, rejected %d; want %s, rejected %d", b.Bank, got, b.Rejected, want, signedOf(it))
		}
		if b.Closing != b.Opening+b.Settled+b.Rejected {
			t.Errorf("%s: opening %d, settled %d, rejected %d, closing %d", b.Bank, b.Opening, b.Settled, b.Rejected, b.Closing)
		}
	}
	if seen != 3 {
		t.Fatalf("the report has %d of the banks that rejected an item", seen)
	}
}

// signedOf is item it's amount as its file's net counts it.
func signedOf(it bankfile.Item) int64 {
	if it.Direction == bankfile.Debit {
		return -it.Amount
	}
	return it.Amount
}

// An acknowledgement rejecting an item can come after a statement matched it: the item is owed
// nothing in its cycle from then on, so what the bank booked for it is no longer as expected. The
// next reconciliation finds an amount mismatch against 0.00 for an item matched alone, and one
// against the net of the items accepted for a file whose net was matched whole; the matches
// stay in the history, but count no more as matched, and finding the breaks again adds nothing.
func TestReconcileItemsRejectedAfterTheyMatched(t *testing.T) {
	ctx := context.Background()
	w, r, day := settledDay(t)
	created := sh("2026-03-04 07:00")
	value := settlement.Date{Year: 2026, Month: 3, Day: 4}
	files := map[string]*bankfile.File{}
	for _, bank := range []string{"ACQ-X", "ACQ-Z"} {
		files[bank] = fileOf(t, w, bank, day)
	}
	// ACQ-X books every item of its file; ACQ-Z its file's net in one entry.
	x := loadtest.StatementFor(files["ACQ-X"], 1, 0, created)
	z := loadtest.StatementFor(files["ACQ-Z"], 1, 0, created)
	net, dir := z.Header.Net, statement.Credit
	if net < 0 {
		dir, net = statement.Debit, -net
	}
	z.Entries = []statement.Entry{{Amount: net, Direction: dir, BookingDate: value, ValueDate: value, EntryRef: "B-NET",
		EndToEndRef: files["ACQ-Z"].Header.MessageID}}
	loadtest.Retotal(z)
	for _, s := range []*statement.Statement{x, z} {
		if _, _, err := importStatement(t, r, s, statement.FormatCSV); err != nil {
			t.Fatalf("%s: %v", s.Header.BankID, err)
		}
	}
	if _, err := r.ReconcileAll(ctx); err != nil {
		t.Fatal(err)
	}
	if breaks, err := r.Breaks(ctx, postgres.BreakFilter{Open: true}); err != nil || len(breaks) != 0 {
		t.Fatalf("breaks before the acknowledgements: %+v, %v", breaks, err)
	}

	// Then each bank's acknowledgement rejects the first item of its file.
	w.clock.Set(sh("2026-03-04 08:05"))
	for bank, f := range files {
		ack := &bankfile.Ack{MessageID: "ACK-" + bank, CreatedAt: sh("2026-03-04 08:00"), FileMessageID: f.Header.MessageID, BankID: bank,
			Status: bankfile.StatusPartial, Items: []bankfile.ItemStatus{{ItemID: f.Items[0].ID, ReasonCode: "AC04", Reason: "account closed"}}}
		if _, _, err := w.set.Acknowledge(ctx, bank, ack); err != nil {
			t.Fatalf("%s's acknowledgement: %v", bank, err)
		}
	}
	reps, err := r.ReconcileAll(ctx)
	if err != nil {
		t.Fatal(err)
	}
	found := 0
	for _, rep := range reps {
		found += int(rep.Breaks["amount_mismatch"])
	}
	if found != 2 {
		t.Errorf("the reconciliation after the acknowledgements found %d amount mismatches: %+v", found, reps)
	}
	got := openBreakLines(t, r)
	zf := files["ACQ-Z"]
	want := []string{
		fmt.Sprintf("ACQ-X amount_mismatch expected 0.00 booked %s", ledger.FormatAmount(signedOf(files["ACQ-X"].Items[0]), "CNY")),
		fmt.Sprintf("ACQ-Z amount_mismatch expected %s booked %s", ledger.FormatAmount(zf.Header.Net-signedOf(zf.Items[0]), "CNY"),
			ledger.FormatAmount(zf.Header.Net, "CNY")),
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("breaks:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	rep, err := r.CycleReport(ctx, w.set, day)
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range rep.Banks {
		f, ok := files[b.Bank]
		if !ok {
			continue
		}
		want := f.Header.NumberOfEntries - 1
		if b.Bank == "ACQ-Z" {
			want = 0
		}
		if b.MatchedItems != want || b.Open != 1 {
			t.Errorf("%s: %d items matched, %d breaks open; want %d matched, 1 open", b.Bank, b.MatchedItems, b.Open, want)
		}
	}
	again, err := r.ReconcileAll(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, rep := range again {
		if len(rep.Breaks) != 0 || rep.Entries != 0 || rep.Matched != 0 {
			t.Errorf("reconciled again: %+v", rep)
		}
	}
}
