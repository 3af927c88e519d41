package postgres_test

import (
	"context"
	"testing"
	"time"

	"github.com/joinincard/engine/events"
	"github.com/joinincard/engine/ledger"
	"github.com/joinincard/engine/loadtest"
	"github.com/joinincard/engine/postgres"
	"github.com/joinincard/engine/reconcile/statement"
	"github.com/joinincard/engine/settlement"
	"github.com/joinincard/engine/settlement/bankfile"
)

// An item a bank rejected in its acknowledgement is owed nothing in its cycle: the bank never
// books it, and the later cycle that offers it again is reconciled on its own. The month is
// archived once everything the banks were owed is booked, the rejected item not waiting for a
// statement that will never book it; the month's settlement net is what the banks settled.
func TestArchiveMonthWithAnItemTheBankRejected(t *testing.T) {
	ctx := context.Background()
	w, r, day := settledDay(t)
	march := events.Period{Year: 2026, Month: 3}

	w.clock.Set(sh("2026-03-04 08:05"))
	f := fileOf(t, w, "ACQ-Y", day)
	rejected := f.Items[0]
	ack := &bankfile.Ack{MessageID: "ACK-ACQ-Y", CreatedAt: sh("2026-03-04 08:00"), FileMessageID: f.Header.MessageID, BankID: "ACQ-Y",
		Status: bankfile.StatusPartial, Items: []bankfile.ItemStatus{{ItemID: rejected.ID, ReasonCode: "AC04", Reason: "account closed"}}}
	if _, _, err := w.set.Acknowledge(ctx, "ACQ-Y", ack); err != nil {
		t.Fatal(err)
	}
	w.clock.Set(sh("2026-03-31 23:10"))
	if _, err := w.set.Close(ctx, settlement.Date{Year: 2026, Month: 3, Day: 31}); err != nil {
		t.Fatal(err)
	}

	// Every bank's statements book every file of the month as sent, but the rejected item.
	rows, err := w.st.Pool().Query(ctx, `SELECT bank_id, cycle_date FROM settlement_files
		WHERE cycle_date BETWEEN '2026-03-01' AND '2026-03-31' ORDER BY bank_id, cycle_date`)
	if err != nil {
		t.Fatal(err)
	}
	type file struct {
		bank string
		day  time.Time
	}
	var sent []file
	for rows.Next() {
		var f file
		if err := rows.Scan(&f.bank, &f.day); err != nil {
			t.Fatal(err)
		}
		sent = append(sent, f)
	}
	rows.Close()
	seq, closing := map[string]int64{}, map[string]int64{}
	reoffered := false
	for _, sf := range sent {
		bf := fileOf(t, w, sf.bank, settlement.DateOf(sf.day))
		seq[sf.bank]++
		s := loadtest.StatementFor(bf, seq[sf.bank], closing[sf.bank], sh("2026-04-01 20:00"))
		var kept []statement.Entry
		for _, e := range s.Entries {
			if e.EndToEndRef != rejected.ID {
				kept = append(kept, e)
			}
		}
		s.Entries = kept
		loadtest.Retotal(s)
		closing[sf.bank] = s.Header.ClosingBalance
		if _, _, err := importStatement(t, r, s, statement.FormatCSV); err != nil {
			t.Fatalf("%s %s: %v", sf.bank, sf.day, err)
		}
		for _, it := range bf.Items {
			reoffered = reoffered || (sf.bank == "ACQ-Y" && it.Amount == rejected.Amount && it.ID != rejected.ID)
		}
	}
	if !reoffered {
		t.Fatal("the rejected item was not offered again in the month")
	}
	if _, err := r.ReconcileAll(ctx); err != nil {
		t.Fatal(err)
	}
	breaks, err := r.Breaks(ctx, postgres.BreakFilter{Open: true})
	if err != nil || len(breaks) != 0 {
		t.Fatalf("open breaks %+v, %v", breaks, err)
	}

	files := memSink{}
	m, outcome, err := w.set.ArchiveMonth(ctx, march, "auditor@finance", files)
	if err != nil || outcome != postgres.ArchiveExported {
		t.Fatalf("archive March: %s, %v", outcome, err)
	}
	// The month's settlement net is what the banks' statements booked for the month's files.
	var booked int64
	for _, c := range closing {
		booked += c
	}
	if want := ledger.FormatDecimal(booked, "CNY"); len(m.Totals) != 1 || m.Totals[0].SettlementNet != want {
		t.Errorf("totals %+v, want the settlement net the banks booked, %s", m.Totals, want)
	}
}
