package postgres_test

import (
	"context"
	"fmt"
	"io/fs"
	"slices"
	"strings"
	"testing"

	"github.com/joinincard/engine/migrations"
	"github.com/joinincard/engine/postgres"
)

// checkOpenQueues checks, right after every bank with statements was reconciled, what a bank's
// next reconciliation reads against the history it stands for. recon_open_entries holds exactly the statement entries no match holds. recon_open_items
// holds exactly the items sent to a bank that a later run could still find missing at the bank:
// not matched nor accepted, nor their file's net; no entry names them or their file; no
// missing_at_bank break was recorded for them; their bank did not reject them. And the backfill of
// migration 0040 gives the same entries, and no fewer items (the first run takes out the rest).
func checkOpenQueues(t *testing.T, st *postgres.Store) {
	t.Helper()
	ctx := context.Background()
	set := func(query string) []string {
		t.Helper()
		rows, err := st.Pool().Query(ctx, query)
		if err != nil {
			t.Fatalf("%v\n%s", err, query)
		}
		defer rows.Close()
		var out []string
		for rows.Next() {
			vals, err := rows.Values()
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, fmt.Sprint(vals...))
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		slices.Sort(out)
		return out
	}
	openEntries := set(`SELECT bank_id, statement_id, line FROM recon_open_entries`)
	wantEntries := set(`SELECT e.bank_id, e.statement_id, e.line FROM statement_entries e
		WHERE NOT EXISTS (SELECT 1 FROM recon_match_entries m WHERE m.bank_id = e.bank_id AND m.statement_id = e.statement_id AND m.line = e.line)`)
	if !slices.Equal(openEntries, wantEntries) {
		t.Errorf("open entries %v, want the entries no match holds %v", openEntries, wantEntries)
	}
	// Items are taken out by their bank's run: the banks that sent statements.
	openItems := set(`SELECT bank_id, value_date, item_id FROM recon_open_items WHERE bank_id IN (SELECT bank_id FROM bank_statements)`)
	wantItems := set(`SELECT i.bank_id, c.value_date, i.item_id FROM settlement_items i
		JOIN settlement_cycles c ON c.cycle_date = i.cycle_date
		JOIN settlement_files f ON f.bank_id = i.bank_id AND f.cycle_date = i.cycle_date
		WHERE i.bank_id <> '' AND i.bank_id IN (SELECT bank_id FROM bank_statements)
			AND NOT EXISTS (SELECT 1 FROM recon_matches m LEFT JOIN recon_confirmations k ON k.match_id = m.match_id
				WHERE (m.item_id = i.item_id OR (m.bank_id = i.bank_id AND m.file_id = f.message_id)) AND (m.status = 'matched' OR k.accepted))
			AND NOT EXISTS (SELECT 1 FROM statement_entries e WHERE e.bank_id = i.bank_id AND (e.item_id = i.item_id OR e.file_id = f.message_id))
			AND NOT EXISTS (SELECT 1 FROM recon_breaks b WHERE b.item_id = i.item_id AND b.kind = 'missing_at_bank')
			AND NOT EXISTS (SELECT 1 FROM settlement_item_results r WHERE r.item_id = i.item_id AND NOT r.accepted)`)
	if !slices.Equal(openItems, wantItems) {
		t.Errorf("open items %v, want the items a run could still find missing %v", openItems, wantItems)
	}
	// The migration's backfill, read as the queries it inserts from.
	sql, err := fs.ReadFile(migrations.FS, "0040_recon_open.sql")
	if err != nil {
		t.Fatal(err)
	}
	var backfills []string
	for _, stmt := range strings.Split(string(sql), ";") {
		if i := strings.Index(stmt, "INSERT INTO"); i >= 0 {
			stmt = stmt[i:]
			backfills = append(backfills, stmt[strings.Index(stmt, "SELECT"):])
		}
	}
	if len(backfills) != 2 {
		t.Fatalf("migration 0040 has %d backfills, want 2", len(backfills))
	}
	if got := set(backfills[0]); !slices.Equal(got, wantEntries) {
		t.Errorf("the migration would open the entries %v, want %v", got, wantEntries)
	}
	backfilled := set(backfills[1])
	for _, it := range wantItems {
		if _, found := slices.BinarySearch(backfilled, it); !found {
			t.Errorf("the migration would not open item %s, which a run could still find missing", it)
		}
	}
}
