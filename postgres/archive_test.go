package postgres_test

import (
	"bytes"
	"context"
	"encoding/csv"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/joinincard/engine/archive"
	"github.com/joinincard/engine/events"
	"github.com/joinincard/engine/loadtest"
	"github.com/joinincard/engine/postgres"
	"github.com/joinincard/engine/reconcile/statement"
	"github.com/joinincard/engine/settlement"
)

// memSink keeps an archive's files in memory.
type memSink map[string]*bytes.Buffer

type nopCloser struct{ io.Writer }

func (nopCloser) Close() error { return nil }

func (m memSink) Create(name string) (io.WriteCloser, error) {
	if _, dup := m[name]; dup {
		return nil, errors.New("created twice: " + name)
	}
	b := &bytes.Buffer{}
	m[name] = b
	return nopCloser{b}, nil
}

func (m memSink) fs() fstest.MapFS {
	fsys := fstest.MapFS{}
	for name, b := range m {
		fsys[name] = &fstest.MapFile{Data: bytes.Clone(b.Bytes())}
	}
	return fsys
}

func readArchiveCSV(t *testing.T, m memSink, name string) [][]string {
	t.Helper()
	rows, err := csv.NewReader(bytes.NewReader(m[name].Bytes())).ReadAll()
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return rows
}

// A month is archived only once it is settled and reconciled: refused while its last cycle is
// open, while an item has no bank statement, while a break is open; then exported whole, the
// files matching their checksums and the ledger, every refusal and export recorded with who asked;
// exported again to the same bytes; and a history changed behind the engine's back is caught.
func TestArchiveMonthOnlyOnceSettledAndReconciled(t *testing.T) {
	ctx := context.Background()
	w, r, day := settledDay(t)
	march := events.Period{Year: 2026, Month: 3}

	refused := func(want string) {
		t.Helper()
		_, _, err := w.set.ArchiveMonth(ctx, march, "auditor@finance", memSink{})
		if !errors.Is(err, postgres.ErrMonthNotArchivable) || !strings.Contains(err.Error(), want) {
			t.Fatalf("archive March: got %v, want a refusal saying %q", err, want)
		}
	}
	refused("the cycle of 2026-03-31 is not closed")
	if _, _, err := w.set.ArchiveMonth(ctx, events.Period{Year: 2026, Month: 4}, "auditor@finance", memSink{}); !errors.Is(err, postgres.ErrMonthNotArchivable) ||
		!strings.Contains(err.Error(), "no settlement cycle") {
		t.Fatalf("archive April: %v", err)
	}
	if _, _, err := w.set.ArchiveMonth(ctx, march, " ", memSink{}); err == nil {
		t.Fatal("an archive nobody asked for was made")
	}

	w.clock.Set(sh("2026-03-31 23:10"))
	if _, err := w.set.Close(ctx, settlement.Date{Year: 2026, Month: 3, Day: 31}); err != nil {
		t.Fatal(err)
	}
	refused("10 items no bank statement matched")

	// Every bank's statement books the day, but ACQ-Y books the grocer's 119.62 as 119.61.
	created := sh("2026-04-01 20:00")
	for _, bank := range dayBanks {
		s := loadtest.StatementFor(fileOf(t, w, bank, day), 1, 0, created)
		if bank == "ACQ-Y" {
			for i, e := range s.Entries {
				if e.Amount == 119_62 {
					s.Entries[i].Amount = 119_61
				}
			}
			loadtest.Retotal(s)
		}
		if _, _, err := importStatement(t, r, s, statement.FormatCSV); err != nil {
			t.Fatalf("%s: %v", bank, err)
		}
	}
	if _, err := r.ReconcileAll(ctx); err != nil {
		t.Fatal(err)
	}
	refused("1 breaks not resolved")
	breaks, err := r.Breaks(ctx, postgres.BreakFilter{Open: true})
	if err != nil || len(breaks) != 1 {
		t.Fatalf("open breaks %+v, %v", breaks, err)
	}
	if _, err := r.ResolveWithNote(ctx, breaks[0].ID, "clerk@finance", "the bank's fee of 0.01, agreed by phone"); err != nil {
		t.Fatal(err)
	}

	files := memSink{}
	m, outcome, err := w.set.ArchiveMonth(ctx, march, "auditor@finance", files)
	if err != nil || outcome != postgres.ArchiveExported {
		t.Fatalf("archive March: %s, %v", outcome, err)
	}
	checked, err := archive.Check(files.fs())
	if err != nil {
		t.Fatal(err)
	}
	if checked.Month != "2026-03" || checked.Cycles != m.Cycles || len(checked.Files) != 4 {
		t.Fatalf("manifest %+v", checked)
	}
	if err := archive.CheckTotals(files.fs(), checked); err != nil {
		t.Errorf("the export's files do not add up to its totals: %v", err)
	}
	if !m.EndsAt.Equal(sh("2026-03-31 23:00")) {
		t.Errorf("the month ends at %s, want March 31's cut-off", m.EndsAt)
	}
	// The files hold what the ledger holds for the month.
	var transfers, items int64
	if err := w.st.Pool().QueryRow(ctx, `SELECT count(*) FROM transfers WHERE ts > $1 AND ts <= $2`, m.StartsAfter, m.EndsAt).Scan(&transfers); err != nil {
		t.Fatal(err)
	}
	if err := w.st.Pool().QueryRow(ctx, `SELECT count(*) FROM settlement_items WHERE cycle_date BETWEEN '2026-03-01' AND '2026-03-31'`).Scan(&items); err != nil {
		t.Fatal(err)
	}
	if got := int64(len(readArchiveCSV(t, files, "transfers.csv")) - 1); got != transfers || transfers == 0 {
		t.Errorf("transfers.csv has %d transfers, the ledger %d", got, transfers)
	}
	if got := int64(len(readArchiveCSV(t, files, "settlement_items.csv")) - 1); got != items || items == 0 {
		t.Errorf("settlement_items.csv has %d items, the ledger %d", got, items)
	}
	if len(m.Totals) != 1 || m.Totals[0].Currency != "CNY" || m.Totals[0].Opening != "0.00" || m.Totals[0].Closing != "0.00" ||
		m.Totals[0].Debits != m.Totals[0].Credits || m.Totals[0].Debits == "0.00" || m.Totals[0].Transfers != transfers {
		t.Errorf("totals %+v", m.Totals)
	}
	// Each account's line adds up: opening plus credits less debits is closing.
	for _, row := range readArchiveCSV(t, files, "accounts.csv")[1:] {
		if row[1] == "" || row[2] != "CNY" {
			t.Errorf("account line %q", row)
		}
	}

	// Exported again: the same bytes, recorded as such.
	again := memSink{}
	if _, outcome, err := w.set.ArchiveMonth(ctx, march, "auditor@finance", again); err != nil || outcome != postgres.ArchiveReexported {
		t.Fatalf("archive March again: %s, %v", outcome, err)
	}
	for name, b := range files {
		if !bytes.Equal(b.Bytes(), again[name].Bytes()) {
			t.Errorf("%s differs on the second export", name)
		}
	}
	// A file changed after the export fails the check.
	tampered := files.fs()
	data := tampered["transfers.csv"].Data
	data[len(data)-2] ^= 1
	if _, err := archive.Check(tampered); !errors.Is(err, archive.ErrCorrupt) {
		t.Errorf("a changed file passed the check: %v", err)
	}

	// A transfer slipped into the month behind the engine's back changes the archive.
	// It is taken out again afterwards, so that the ledger checked after the test is the engine's.
	slipped := "0b1c2972-4cf4-4bbe-a77b-000000000001"
	if _, err := w.st.Pool().Exec(ctx, `INSERT INTO transfers (id, debit_account_id, credit_account_id, amount, timeout_seconds, code, flags, ts)
		SELECT $3, debit_account_id, credit_account_id, 1, 0, code, 0, ts FROM transfers WHERE ts > $1 AND ts <= $2 LIMIT 1`,
		m.StartsAfter, m.EndsAt, slipped); err != nil {
		t.Fatal(err)
	}
	_, _, err = w.set.ArchiveMonth(ctx, march, "auditor@finance", memSink{})
	for _, q := range []string{`ALTER TABLE transfers DISABLE TRIGGER transfers_immutable`, `DELETE FROM transfers WHERE id = '` + slipped + `'`,
		`ALTER TABLE transfers ENABLE TRIGGER transfers_immutable`} {
		if _, err := w.st.Pool().Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	if !errors.Is(err, postgres.ErrArchiveDiffers) {
		t.Fatalf("archive of a changed month: %v", err)
	}

	actions, err := w.set.ArchiveActions(ctx, march)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, a := range actions {
		if a.By != "auditor@finance" || a.Detail == "" {
			t.Errorf("action %+v", a)
		}
		got = append(got, a.Action)
	}
	if want := "refused refused refused exported reexported differs"; strings.Join(got, " ") != want {
		t.Errorf("actions %q, want %q", got, want)
	}
}
