package postgres_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/joinincard/engine/internal/pgtest"
	"github.com/joinincard/engine/ledger"
	"github.com/joinincard/engine/loadtest"
	"github.com/joinincard/engine/postgres"
	"github.com/joinincard/engine/reconcile"
	"github.com/joinincard/engine/reconcile/statement"
	"github.com/joinincard/engine/settlement"
	"github.com/joinincard/engine/settlement/bankfile"
)

// settledDay is the hand-computed day, closed, with the reconciler.
func settledDay(t *testing.T) (*settleWorld, *postgres.Reconciler, settlement.Date) {
	t.Helper()
	w := newSettleWorld(t, pgtest.NewStore(t))
	w.day(t)
	day := settlement.Date{Year: 2026, Month: 3, Day: 3}
	w.clock.Set(sh("2026-03-03 23:10"))
	if _, err := w.set.Close(context.Background(), day); err != nil {
		t.Fatal(err)
	}
	rules, err := reconcile.DefaultRules()
	if err != nil {
		t.Fatal(err)
	}
	return w, postgres.NewReconciler(w.st, rules), day
}

// fileOf reads bank's file of cycle d as the bank received it.
func fileOf(t *testing.T, w *settleWorld, bank string, d settlement.Date) *bankfile.File {
	t.Helper()
	var buf bytes.Buffer
	if _, _, err := w.set.WriteFile(context.Background(), &buf, bank, d, bankfile.FormatCSV, false); err != nil {
		t.Fatal(err)
	}
	f, err := bankfile.ReadCSV(&buf)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// importStatement writes s in format f and imports it as the bank would send it.
func importStatement(t *testing.T, r *postgres.Reconciler, s *statement.Statement, f statement.Format) (postgres.Imported, bool, error) {
	t.Helper()
	var buf bytes.Buffer
	write := statement.WriteXML
	if f == statement.FormatCSV {
		write = statement.WriteCSV
	}
	if err := write(&buf, s.Header, func(yield func(statement.Entry) bool) {
		for _, e := range s.Entries {
			if !yield(e) {
				return
			}
		}
	}); err != nil {
		t.Fatal(err)
	}
	rd, err := statement.Open(&buf, f)
	if err != nil {
		return postgres.Imported{}, false, err
	}
	return r.Import(context.Background(), rd)
}

var dayBanks = []string{"ACQ-X", "ACQ-Y", "ACQ-Z", "ISS-A", "ISS-B"}

// A day whose statements book every item as the files said reconciles clean: every item matched,
// no break; the same statement again is a replay; a statement refused on its totals keeps nothing.
func TestReconcileADayClean(t *testing.T) {
	ctx := context.Background()
	w, r, day := settledDay(t)
	created := sh("2026-03-04 20:00")
	for i, bank := range dayBanks {
		s := loadtest.StatementFor(fileOf(t, w, bank, day), 1, 0, created)
		format := statement.FormatXML
		if i%2 == 1 {
			format = statement.FormatCSV
		}
		imp, replayed, err := importStatement(t, r, s, format)
		if err != nil || replayed || imp.Entries != int64(len(s.Entries)) {
			t.Fatalf("%s: %+v replayed %v, %v", bank, imp, replayed, err)
		}
		if _, replayed, err := importStatement(t, r, s, statement.FormatXML); err != nil || !replayed {
			t.Fatalf("%s again: replayed %v, %v", bank, replayed, err)
		}
	}
	reps, err := r.ReconcileAll(ctx)
	if err != nil {
		t.Fatal(err)
	}
	checkOpenQueues(t, w.st)
	matched := int64(0)
	for _, rep := range reps {
		matched += rep.Matched
		for kind, n := range rep.Breaks {
			t.Errorf("%s: %d %s breaks on a clean day", rep.Bank, n, kind)
		}
	}
	if matched != 10 {
		t.Fatalf("%d items matched, want the day's 10: %+v", matched, reps)
	}
	breaks, err := r.Breaks(ctx, postgres.BreakFilter{})
	if err != nil || len(breaks) != 0 {
		t.Fatalf("breaks %+v, %v", breaks, err)
	}
	rep, err := r.CycleReport(ctx, w.set, day)
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range rep.Banks {
		if b.MatchedItems != b.Items || b.Matched != b.Settled || b.Closing != b.Opening+b.Settled || b.Open != 0 {
			t.Errorf("%s's report %+v", b.Bank, b)
		}
	}
	// Reconciling again finds nothing new.
	again, err := r.Reconcile(ctx, "ACQ-Z")
	if err != nil || again.Matched != 0 || again.Entries != 0 {
		t.Fatalf("reconcile again: %+v %v", again, err)
	}
	// Another statement with the same id and other content, or a statement whose totals do not
	// add up, is refused and keeps nothing.
	s := loadtest.StatementFor(fileOf(t, w, "ACQ-X", day), 1, 0, created)
	s.Entries[0].Amount++
	loadtest.Retotal(s)
	if _, _, err := importStatement(t, r, s, statement.FormatXML); !errors.Is(err, postgres.ErrStatementConflict) {
		t.Fatalf("the same id with other content: %v", err)
	}
	var n int
	if err := w.st.Pool().QueryRow(ctx, `SELECT count(*) FROM statement_entries`).Scan(&n); err != nil || n != 10 {
		t.Fatalf("%d entries kept, want 10: %v", n, err)
	}
}

// A day with one break of each kind: an entry missing at the bank, an entry that names nothing of
// ours, an amount one fen off, an entry booked twice, a late value date, and a statement missing
// from a bank's sequence. Each is found and classified exactly, and resolved as finance staff do.
func TestReconcileFindsEachBreak(t *testing.T) {
	ctx := context.Background()
	w, r, day := settledDay(t)
	created := sh("2026-03-05 20:00")
	value := settlement.Date{Year: 2026, Month: 3, Day: 4}
	statements := map[string]*statement.Statement{}
	for _, bank := range dayBanks {
		s := loadtest.StatementFor(fileOf(t, w, bank, day), 1, 0, created)
		s.Header.To = settlement.AddDays(value, 1) // the statements run a day past the value date
		statements[bank] = s
	}
	w.clock.Set(created) // the statements arrive when the bank created them, after their period
	// ACQ-Z: the pharmacy's 1,200.00 is missing; ACQ-X: an entry nobody settled; ACQ-Y: the
	// grocer's 119.62 booked as 119.61; ISS-A: the cardholder's 1,014.00 booked twice; ISS-B: the
	// cardholder's 177.50 booked two days late.
	z := statements["ACQ-Z"]
	var pharmacy statement.Entry
	for i, e := range z.Entries {
		if e.Amount == 1200_00 {
			pharmacy = e
			z.Entries = append(z.Entries[:i], z.Entries[i+1:]...)
			break
		}
	}
	x := statements["ACQ-X"]
	x.Entries = append(x.Entries, statement.Entry{Amount: 42_00, Direction: statement.Credit, BookingDate: value, ValueDate: value,
		EntryRef: "B-STRANGER", EndToEndRef: "PAYROLL-0001", AdditionalInfo: "陌生款项 stranger"})
	y := statements["ACQ-Y"]
	for i, e := range y.Entries {
		if e.Amount == 119_62 {
			y.Entries[i].Amount = 119_61
		}
	}
	a := statements["ISS-A"]
	a.Entries = append(a.Entries, a.Entries[0])
	b := statements["ISS-B"]
	b.Entries[0].ValueDate = settlement.AddDays(value, 2)
	for _, s := range statements {
		loadtest.Retotal(s)
	}
	for _, bank := range dayBanks {
		if _, _, err := importStatement(t, r, statements[bank], statement.FormatXML); err != nil {
			t.Fatalf("%s: %v", bank, err)
		}
	}
	// ISS-B's third statement arrives; its second never does.
	third := &statement.Statement{Header: statement.Header{StatementID: "STMT-ISS-B-000003", CreatedAt: created, BankID: "ISS-B",
		Sequence: 3, From: settlement.AddDays(value, 1), To: settlement.AddDays(value, 1), Currency: statement.CurrencyCNY,
		OpeningBalance: b.Header.ClosingBalance}}
	loadtest.Retotal(third)
	if _, _, err := importStatement(t, r, third, statement.FormatCSV); err != nil {
		t.Fatal(err)
	}
	if _, err := r.ReconcileAll(ctx); err != nil {
		t.Fatal(err)
	}
	checkOpenQueues(t, w.st)
	breaks, err := r.Breaks(ctx, postgres.BreakFilter{Open: true})
	if err != nil {
		t.Fatal(err)
	}
	got := openBreakLines(t, r)
	want := []string{
		"ACQ-X missing_in_ledger booked 42.00",
		"ACQ-Y amount_mismatch expected 119.62 booked 119.61",
		"ACQ-Z missing_at_bank expected 1,200.00",
		"ISS-A duplicate expected -1,014.00 booked -1,014.00",
		"ISS-B statement_gap",
		"ISS-B timing expected -177.50 booked -177.50",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("breaks:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	// Ageing: at the store's clock (Mar 4 23:10) the breaks are a day old or less.
	for _, br := range breaks {
		if br.Bucket != reconcile.Age0to1 {
			t.Errorf("%s %s aged %d days (%s)", br.Bank, br.Kind, br.Age, br.Bucket)
		}
	}

	// The missing pharmacy entry arrives in ACQ-Z's next statement: its break is resolved by the
	// engine, and the item matched.
	next := &statement.Statement{Header: statement.Header{StatementID: "STMT-ACQ-Z-000002", CreatedAt: created, BankID: "ACQ-Z",
		Sequence: 2, From: settlement.AddDays(value, 2), To: settlement.AddDays(value, 2), Currency: statement.CurrencyCNY,
		OpeningBalance: z.Header.ClosingBalance}, Entries: []statement.Entry{pharmacy}}
	next.Entries[0].BookingDate = settlement.AddDays(value, 2)
	next.Entries[0].ValueDate = settlement.AddDays(value, 2)
	loadtest.Retotal(next)
	if _, _, err := importStatement(t, r, next, statement.FormatXML); err != nil {
		t.Fatal(err)
	}
	rep, err := r.Reconcile(ctx, "ACQ-Z")
	if err != nil || rep.Resolved != 1 {
		t.Fatalf("the late entry: %+v %v", rep, err)
	}
	open, _ := r.Breaks(ctx, postgres.BreakFilter{Open: true, Bank: "ACQ-Z"})
	late, _ := r.Breaks(ctx, postgres.BreakFilter{Bank: "ACQ-Z"})
	// Booked two days late, the match is a timing break of its own.
	if len(late) != 2 || len(open) != 1 || open[0].Kind != reconcile.Timing {
		t.Fatalf("ACQ-Z's breaks after the late entry: open %+v, all %+v", open, late)
	}

	// Finance staff resolve: the stranger by a note, the fen by an adjustment through the ledger.
	var stranger, fen ledger.ID
	for _, br := range breaks {
		switch br.Kind {
		case reconcile.MissingInLedger:
			stranger = br.ID
		case reconcile.AmountMismatch:
			fen = br.ID
		}
	}
	resolved, err := r.ResolveWithNote(ctx, stranger, "Li Na 李娜", "payroll credit of the bank's own, not ours")
	if err != nil || resolved.Resolution == nil || resolved.Resolution.By != "Li Na 李娜" || len(resolved.Entries) != 1 {
		t.Fatalf("note: %+v %v", resolved, err)
	}
	if _, err := r.ResolveWithNote(ctx, stranger, "Li Na", "again"); !errors.Is(err, postgres.ErrBreakResolved) {
		t.Fatalf("resolved twice: %v", err)
	}
	before := balance(t, w.st, settlement.PositionAccount("ACQ-Y")).Net()
	adj, err := r.ResolveWithAdjustment(ctx, fen, "Wang Wei", "the bank rounded the grocer's fee")
	if err != nil || adj.Resolution == nil || adj.Resolution.TransferID.IsZero() {
		t.Fatalf("adjustment: %+v %v", adj, err)
	}
	if after := balance(t, w.st, settlement.PositionAccount("ACQ-Y")).Net(); after != before-1 {
		t.Fatalf("ACQ-Y's position moved from %d to %d, want one fen less", before, after)
	}
	if _, err := r.ResolveWithNote(ctx, ledger.ID{1}, "x", "y"); !errors.Is(err, postgres.ErrNotFound) {
		t.Fatalf("an unknown break: %v", err)
	}
	report, err := r.CycleReport(ctx, w.set, day)
	if err != nil {
		t.Fatal(err)
	}
	for _, br := range report.Banks {
		if br.Bank == "ACQ-Y" && (br.Breaks[reconcile.AmountMismatch][reconcile.Age0to1] != 1 || br.Open != 0 || br.MatchedItems != 1) {
			t.Errorf("ACQ-Y's report %+v", br)
		}
	}
	var _ = time.Second
}

// A bank that books its file's net position in one entry matches every item of the file (one to
// many); one that splits an item's payment matches it by the parts (many to one); entries without
// a reference are suggested for the items they fit, and a person's word makes them matches or
// breaks.
func TestReconcileNetsSplitsAndSuggestions(t *testing.T) {
	ctx := context.Background()
	w, r, day := settledDay(t)
	created := sh("2026-03-04 20:00")
	value := settlement.Date{Year: 2026, Month: 3, Day: 4}
	entry := func(amount int64, ref, bankRef string) statement.Entry {
		dir := statement.Credit
		if amount < 0 {
			dir, amount = statement.Debit, -amount
		}
		return statement.Entry{Amount: amount, Direction: dir, BookingDate: value, ValueDate: value, EntryRef: bankRef, EndToEndRef: ref}
	}
	stmt := func(bank string, entries ...statement.Entry) *statement.Statement {
		s := &statement.Statement{Header: statement.Header{StatementID: "STMT-" + bank + "-1", CreatedAt: created, BankID: bank, Sequence: 1,
			From: value, To: value, Currency: statement.CurrencyCNY}, Entries: entries}
		loadtest.Retotal(s)
		return s
	}
	z := fileOf(t, w, "ACQ-Z", day)
	x := fileOf(t, w, "ACQ-X", day)
	var shop bankfile.Item
	for _, it := range x.Items {
		if it.Party == "shop-1" {
			shop = it
		}
	}
	for _, s := range []*statement.Statement{
		stmt("ACQ-Z", entry(z.Header.Net, z.Header.MessageID, "Z-NET")),
		stmt("ACQ-X", entry(100_00, shop.ID, "X-1"), entry(shop.Amount-100_00, shop.ID, "X-2"), entry(55_50, "", "X-3")),
		stmt("ACQ-Y", entry(119_62, "", "Y-1"), entry(14_00, "", "Y-2")),
	} {
		if _, _, err := importStatement(t, r, s, statement.FormatXML); err != nil {
			t.Fatal(err)
		}
	}
	reps, err := r.ReconcileAll(ctx)
	if err != nil {
		t.Fatal(err)
	}
	checkOpenQueues(t, w.st)
	byBank := map[string]postgres.ReconcileReport{}
	for _, rep := range reps {
		byBank[rep.Bank] = rep
	}
	if z := byBank["ACQ-Z"]; z.Matched != 1 || len(z.Breaks) != 0 {
		t.Fatalf("ACQ-Z's net position: %+v", z)
	}
	if x := byBank["ACQ-X"]; x.Matched != 1 || x.Suggested != 1 || len(x.Breaks) != 0 {
		t.Fatalf("ACQ-X's split payment and its kiosk: %+v", x)
	}
	if y := byBank["ACQ-Y"]; y.Suggested != 2 || len(y.Breaks) != 0 {
		t.Fatalf("ACQ-Y's unreferenced entries: %+v", y)
	}
	report, err := r.CycleReport(ctx, w.set, day)
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range report.Banks {
		want := map[string]int64{"ACQ-Z": 4, "ACQ-X": 1, "ACQ-Y": 0}[b.Bank]
		if b.MatchedItems != want && (b.Bank == "ACQ-Z" || b.Bank == "ACQ-X" || b.Bank == "ACQ-Y") {
			t.Errorf("%s: %d items matched, want %d", b.Bank, b.MatchedItems, want)
		}
	}
	sugg, err := r.Suggestions(ctx, "ACQ-Y")
	if err != nil || len(sugg) != 2 {
		t.Fatalf("suggestions %+v, %v", sugg, err)
	}
	for _, s := range sugg {
		accept := s.Amount == 119_62
		if err := r.Confirm(ctx, s.ID, accept, "Zhao Lei"); err != nil {
			t.Fatal(err)
		}
		if err := r.Confirm(ctx, s.ID, accept, "Zhao Lei"); err == nil {
			t.Fatal("a suggestion was confirmed twice")
		}
	}
	report, _ = r.CycleReport(ctx, w.set, day)
	for _, b := range report.Banks {
		if b.Bank == "ACQ-Y" && b.MatchedItems != 1 {
			t.Errorf("ACQ-Y after the confirmation: %+v", b)
		}
	}
	breaks, _ := r.Breaks(ctx, postgres.BreakFilter{Bank: "ACQ-Y", Open: true})
	if len(breaks) != 1 || breaks[0].Kind != reconcile.MissingInLedger || *breaks[0].Actual != 14_00 {
		t.Fatalf("ACQ-Y's refused suggestion: %+v", breaks)
	}
	// The next runs leave the accepted item, and not the refused one, out of what they read.
	if _, err := r.ReconcileAll(ctx); err != nil {
		t.Fatal(err)
	}
	checkOpenQueues(t, w.st)
}

// openBreakLines lists the open breaks one per line, sorted: bank, kind, and what was expected and
// booked where the break has them.
func openBreakLines(t *testing.T, r *postgres.Reconciler) []string {
	t.Helper()
	breaks, err := r.Breaks(context.Background(), postgres.BreakFilter{Open: true})
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
	return got
}
