package postgres_test

import (
	"bytes"
	"context"
	"encoding/csv"
	"errors"
	"slices"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/joinincard/engine/archive"
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

	// The items file says which item the bank rejected, so an auditor, and the check of an
	// archive, recompute the net from it.
	if m.Format != archive.FormatV2 {
		t.Fatalf("format %q, want %q", m.Format, archive.FormatV2)
	}
	items := readArchiveCSV(t, files, "settlement_items.csv")
	if got := items[0][len(items[0])-1]; got != "rejected" {
		t.Fatalf("settlement_items.csv's last column is %q, want rejected", got)
	}
	marked := 0 // the file names an item by its UUID, a bank's file by its 32 hex digits
	for _, row := range items[1:] {
		switch last := row[len(row)-1]; {
		case strings.ReplaceAll(row[1], "-", "") == rejected.ID && last == "true":
			marked++
		case last != "false":
			t.Errorf("item %s marked rejected %q", row[1], last)
		}
	}
	if marked != 1 {
		t.Errorf("the rejected item is marked %d times, want once", marked)
	}
	checked, err := archive.Check(files.fs())
	if err != nil {
		t.Fatal(err)
	}
	if err := archive.CheckTotals(files.fs(), checked); err != nil {
		t.Fatal(err)
	}
	// The marker taken off the rejected item: its amount would count in the net, and the check
	// says so.
	var raw bytes.Buffer
	cw := csv.NewWriter(&raw)
	for _, row := range items {
		if strings.ReplaceAll(row[1], "-", "") == rejected.ID {
			row[len(row)-1] = "false"
		}
		if err := cw.Write(row); err != nil {
			t.Fatal(err)
		}
	}
	cw.Flush()
	changed := fstest.MapFS{}
	for name, f := range files.fs() {
		changed[name] = f
	}
	changed["settlement_items.csv"] = &fstest.MapFile{Data: raw.Bytes()}
	if err := archive.CheckTotals(changed, checked); !errors.Is(err, archive.ErrTotals) || !strings.Contains(err.Error(), "settlement_items_net") {
		t.Errorf("the check of an archive whose rejected item is unmarked: %v, want the settlement net named", err)
	}
}

// A month first exported before the items file said which items a bank rejected is exported
// again in that first layout, so that an unchanged history can still give the same bytes.
func TestArchiveMonthAgainInItsFirstFormat(t *testing.T) {
	ctx := context.Background()
	w, _, _ := settledDay(t)
	march := events.Period{Year: 2026, Month: 3}
	w.clock.Set(sh("2026-03-31 23:10"))
	if _, err := w.set.Close(ctx, settlement.Date{Year: 2026, Month: 3, Day: 31}); err != nil {
		t.Fatal(err)
	}
	// Reconciling the month is not the point here: every item is booked as sent.
	if _, err := w.st.Pool().Exec(ctx, `INSERT INTO recon_matches (match_id, bank_id, kind, status, item_id, amount, detail, matched_at)
		SELECT gen_random_uuid(), bank_id, 'one_to_one', 'matched', item_id, amount, 'booked', now() FROM settlement_items WHERE bank_id <> ''`); err != nil {
		t.Fatal(err)
	}
	// March's first export, as an engine before layouts were recorded wrote it: the migration
	// gives the row the first layout.
	if _, err := w.st.Pool().Exec(ctx, `INSERT INTO month_archives (month, starts_after, ends_at, manifest_sha256, transfers, exported_by, exported_at)
		VALUES ('2026-03-01', now(), now(), 'manifest of the first export', 0, 'auditor@finance', now())`); err != nil {
		t.Fatal(err)
	}
	again := memSink{}
	m, _, err := w.set.ArchiveMonth(ctx, march, "auditor@finance", again)
	if !errors.Is(err, postgres.ErrArchiveDiffers) {
		t.Fatalf("export again: %v, want ErrArchiveDiffers (the first export's checksum is made up)", err)
	}
	if m.Format != archive.FormatV1 {
		t.Fatalf("exported again as %q, want the first export's %q", m.Format, archive.FormatV1)
	}
	if header := readArchiveCSV(t, again, "settlement_items.csv")[0]; slices.Contains(header, "rejected") {
		t.Errorf("settlement_items.csv of the first layout has the column rejected: %v", header)
	}
	checked, err := archive.Check(again.fs())
	if err != nil {
		t.Fatal(err)
	}
	if err := archive.CheckTotals(again.fs(), checked); err != nil {
		t.Fatal(err)
	}
}
