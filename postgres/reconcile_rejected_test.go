package postgres_test

import (
	"context"
	"fmt"
	"sort"
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
	breaks, err := r.Breaks(ctx, postgres.BreakFilter{Open: true})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, br := range breaks {
		amount := ""
		if br.Expected != nil {
			amount += " expected " + ledger.FormatAmount(*br.Expected, "CNY")
		}
		if br.Actual != nil {
			amount += " booked " + ledger.FormatAmount(*br.Actual, "CNY")
		}
		got = append(got, fmt.Sprintf("%s %s%s", br.Bank, br.Kind, amount))
	}
	sort.Strings(got)
	want := []string{fmt.Sprintf("ACQ-X amount_mismatch expected 0.00 booked %s", ledger.FormatAmount(rejected["ACQ-X"].Amount, "CNY"))}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("breaks:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
