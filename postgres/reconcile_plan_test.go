package postgres_test

import (
	"context"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/joinincard/engine/internal/pgtest"
	"github.com/joinincard/engine/loadtest"
	"github.com/joinincard/engine/postgres"
	"github.com/joinincard/engine/reconcile"
	"github.com/joinincard/engine/reconcile/statement"
	"github.com/joinincard/engine/settlement"
	"github.com/joinincard/engine/settlement/bankfile"
)

// The items an unreferenced statement entry may be suggested for are read by their amounts from
// the cycles paid near its value date: with two years of a bank's items, each amount recurring
// every day, the lookup for a chunk of amounts reads about what it finds, neither every item of
// the amounts in the bank's history nor every item of the bank in the window's days.
func TestSuggestionCandidatesAreReadFromTheirWindow(t *testing.T) {
	if testing.Short() {
		t.Skip("fills tables with hundreds of thousands of rows")
	}
	ctx := context.Background()
	st := pgtest.NewStore(t)
	if pg, err := st.IsPostgreSQL(ctx); err != nil || !pg {
		t.Skipf("reads PostgreSQL's EXPLAIN ANALYZE: %v", err)
	}
	tx, err := st.Pool().Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tx.Rollback(ctx) }()
	const (
		days    = 730 // cycles: two years
		amounts = 200 // distinct amounts, each on every day
	)
	start := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, fill := range []string{
		`INSERT INTO settlement_cycles (cycle_date, starts_after, ends_at, value_date, status, items_written, postings_written,
				fee_income, closing_at, closed_at)
			SELECT $2::DATE + g, now(), now(), $2::DATE + g + 1, 'closed', true, true, 0, now(), now() FROM generate_series(0, $1 - 1) g`,
		`INSERT INTO settlement_files (bank_id, cycle_date, sequence, message_id, created_at, entries, control_sum, net,
				xml_sha256, xml_size, csv_sha256, csv_size)
			SELECT b, $2::DATE + g, g + 1, b || '-' || g, now(), 1, 0, 0, '', 0, '', 0
			FROM generate_series(0, $1 - 1) g, unnest(ARRAY['ICBC-JX', 'ABC-SH']) AS b`,
		// planRows items of each bank, their amounts recurring every day.
		`INSERT INTO settlement_items (item_id, cycle_date, bank_id, account_id, counter_account_id, kind, party, party_name,
				amount, transit, purchases, medical, fees, entries)
			SELECT md5(b || g::TEXT)::UUID, $2::DATE + (g % $1), b, md5('a' || g::TEXT)::UUID, md5('c')::UUID, 'merchant',
				'm-' || g, 'Merchant', 1000 + (g / $1 % ` + strconv.Itoa(amounts) + `) * 100, 0, 1000, 0, 0, 1
			FROM generate_series(0, ` + strconv.Itoa(planRows) + ` - 1) g, unnest(ARRAY['ICBC-JX', 'ABC-SH']) AS b`,
	} {
		if _, err := tx.Exec(ctx, fill, days, start); err != nil {
			t.Fatalf("%v\n%s", err, fill)
		}
	}
	if _, err := tx.Exec(ctx, `ANALYZE`); err != nil {
		t.Fatal(err)
	}
	// A chunk of three amounts, a week of value dates near the end of the history.
	from, to := start.AddDate(0, 0, 700), start.AddDate(0, 0, 706)
	args := []any{"ICBC-JX", []int64{1000, 1500, 2900}, from, to}
	var want int
	if err := tx.QueryRow(ctx, `SELECT count(*) FROM (`+postgres.SuggestItemsLookup+`) c`, args...).Scan(&want); err != nil {
		t.Fatal(err)
	}
	rows, err := tx.Query(ctx, "EXPLAIN ANALYZE "+postgres.SuggestItemsLookup, args...)
	if err != nil {
		t.Fatal(err)
	}
	var plan []string
	for rows.Next() {
		var line string
		if err := rows.Scan(&line); err != nil {
			t.Fatal(err)
		}
		plan = append(plan, line)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	text := strings.Join(plan, "\n")
	read := itemsRead(plan)
	// Each amount recurs planRows/amounts times in the history, 3 of them on each day of the window.
	if want == 0 || read > 4*want || strings.Contains(text, "Seq Scan on settlement_items") {
		t.Fatalf("%d candidates, %d items read of %d in the bank's history:\n%s", want, read, planRows, text)
	}
	t.Logf("%d candidates, %d items read", want, read)
}

var (
	planActual  = regexp.MustCompile(`actual time=\S+ rows=(\d+) loops=(\d+)`)
	planRemoved = regexp.MustCompile(`Rows Removed by (?:Filter|Index Recheck): (\d+)`)
)

// itemsRead sums what a plan's scans of settlement_items returned and filtered out, over their
// loops.
func itemsRead(plan []string) int {
	n := 0
	for i, line := range plan {
		if !strings.Contains(line, " on settlement_items ") {
			continue
		}
		m := planActual.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		r, _ := strconv.Atoi(m[1])
		loops, _ := strconv.Atoi(m[2])
		n += r * loops
		// The node's own lines follow, more indented, up to the next node.
		for _, next := range plan[i+1:] {
			if strings.Contains(next, "->") {
				break
			}
			if rm := planRemoved.FindStringSubmatch(next); rm != nil {
				k, _ := strconv.Atoi(rm[1])
				n += k * loops
			}
		}
	}
	return n
}

// An unreferenced entry within a bank's amount tolerance of an item is suggested for it, whether
// the lookup spells out each amount the tolerance takes (two fen either way) or, for a tolerance
// too wide to (100.00, with two entries), reads the bank's items of the days by range.
func TestReconcileSuggestsWithinTheAmountTolerance(t *testing.T) {
	ctx := context.Background()
	w, _, day := settledDay(t)
	rules, err := reconcile.ReadRules(strings.NewReader(`{"default": {"amount_tolerance": "0.00", "value_date_days": 0,
		"suggest_days": 3, "missing_after_days": 1}, "banks": {
		"ACQ-Y": {"amount_tolerance": "0.02", "value_date_days": 0, "suggest_days": 3, "missing_after_days": 1},
		"ACQ-X": {"amount_tolerance": "100.00", "value_date_days": 0, "suggest_days": 3, "missing_after_days": 1}}}`))
	if err != nil {
		t.Fatal(err)
	}
	r := postgres.NewReconciler(w.st, rules)
	value := settlement.Date{Year: 2026, Month: 3, Day: 4}
	stmt := func(bank string, amounts ...int64) *statement.Statement {
		s := &statement.Statement{Header: statement.Header{StatementID: "STMT-" + bank + "-1", CreatedAt: sh("2026-03-04 20:00"),
			BankID: bank, Sequence: 1, From: value, To: value, Currency: statement.CurrencyCNY}}
		for i, a := range amounts {
			s.Entries = append(s.Entries, statement.Entry{Amount: a, Direction: statement.Credit, BookingDate: value, ValueDate: value,
				EntryRef: bank + "-" + strconv.Itoa(i+1)})
		}
		loadtest.Retotal(s)
		return s
	}
	items := map[string]bankfile.Item{}
	for _, bank := range []string{"ACQ-X", "ACQ-Y"} {
		f := fileOf(t, w, bank, day)
		items[bank] = f.Items[0]
	}
	x, y := items["ACQ-X"], items["ACQ-Y"]
	for _, s := range []*statement.Statement{stmt("ACQ-Y", y.Amount+2, y.Amount+3), stmt("ACQ-X", x.Amount+1, x.Amount+2)} {
		if _, _, err := importStatement(t, r, s, statement.FormatXML); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := r.ReconcileAll(ctx); err != nil {
		t.Fatal(err)
	}
	for bank, want := range map[string]int64{"ACQ-Y": y.Amount + 2, "ACQ-X": x.Amount + 1} {
		sugg, err := r.Suggestions(ctx, bank)
		if err != nil {
			t.Fatal(err)
		}
		found := false
		for _, s := range sugg {
			found = found || s.Amount == want && strings.ReplaceAll(s.Item.String(), "-", "") == items[bank].ID
		}
		if !found {
			t.Errorf("%s: the entry of %d is not suggested for item %s of %d: %+v", bank, want, items[bank].ID, items[bank].Amount, sugg)
		}
	}
	checkOpenQueues(t, w.st)
}
