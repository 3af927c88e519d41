package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/joinincard/engine/clearing"
	"github.com/joinincard/engine/events"
	"github.com/joinincard/engine/internal/pgtest"
	"github.com/joinincard/engine/loadtest"
	"github.com/joinincard/engine/postgres"
	"github.com/joinincard/engine/reconcile"
	"github.com/joinincard/engine/reconcile/statement"
)

// retriedImport is a reconciler whose imports fail their first attempt with a conflict once the
// statement's entries are read, as a serialization failure on CockroachDB or a concurrent import
// of the same statement on PostgreSQL does; the store then runs the transaction again.
func retriedImport(t *testing.T) (*postgres.Store, *postgres.Reconciler, *int) {
	t.Helper()
	st := pgtest.NewStore(t)
	if _, err := st.RegisterParty(context.Background(), clearing.PartyBank, "ICBC-JX", "ICBC Jiaxing"); err != nil {
		t.Fatal(err)
	}
	rules, err := reconcile.DefaultRules()
	if err != nil {
		t.Fatal(err)
	}
	r := postgres.NewReconciler(st, rules)
	attempts := 0
	postgres.SetAfterEntries(r, func() error {
		attempts++
		if attempts == 1 {
			return postgres.Retryable(errors.New("could not serialize access"))
		}
		return nil
	})
	return st, r, &attempts
}

func retryStatement() *statement.Statement {
	d := events.Date{Year: 2026, Month: time.March, Day: 4}
	s := &statement.Statement{Header: statement.Header{StatementID: "STMT-ICBC-JX-000001", CreatedAt: time.Date(2026, 3, 5, 8, 0, 0, 0, time.UTC),
		BankID: "ICBC-JX", Sequence: 1, From: d, To: d, Currency: statement.CurrencyCNY}}
	for i, amount := range []int64{345_50, 12_00, 7_25} {
		s.Entries = append(s.Entries, statement.Entry{Amount: amount, Direction: statement.Debit, BookingDate: d, ValueDate: d,
			EntryRef: fmt.Sprintf("E-%d", i+1), AdditionalInfo: "清算 settlement"})
	}
	loadtest.Retotal(s)
	return s
}

// An import whose transaction is retried after it read the statement cannot read it again: it
// fails saying so, keeps nothing (never a statement without its entries), and the statement
// imports whole when sent again.
func TestImportRetriedAfterReadingItsStatementKeepsNothing(t *testing.T) {
	st, r, attempts := retriedImport(t)
	ctx := context.Background()
	s := retryStatement()
	_, _, err := importStatement(t, r, s, statement.FormatXML)
	if !errors.Is(err, postgres.ErrStatementReadOnce) || *attempts != 1 {
		t.Fatalf("the retried import: %v after %d attempts, want ErrStatementReadOnce", err, *attempts)
	}
	var statements, entries int
	if err := st.Pool().QueryRow(ctx, `SELECT (SELECT count(*) FROM bank_statements), (SELECT count(*) FROM statement_entries)`).
		Scan(&statements, &entries); err != nil || statements != 0 || entries != 0 {
		t.Fatalf("after the retried import: %d statements, %d entries, %v", statements, entries, err)
	}
	imp, replayed, err := importStatement(t, r, s, statement.FormatCSV)
	if err != nil || replayed || imp.Entries != 3 {
		t.Fatalf("sent again: %+v %v %v", imp, replayed, err)
	}
	if err := st.Pool().QueryRow(ctx, `SELECT (SELECT count(*) FROM bank_statements), (SELECT count(*) FROM statement_entries)`).
		Scan(&statements, &entries); err != nil || statements != 1 || entries != 3 {
		t.Errorf("sent again: %d statements, %d entries, %v", statements, entries, err)
	}
}

// A replay whose transaction is retried after it read the statement still compares the whole
// statement: the same content is a replay, not a conflict; other content is a conflict.
func TestImportReplayRetriedStillComparesTheWholeStatement(t *testing.T) {
	_, r, attempts := retriedImport(t)
	s := retryStatement()
	*attempts = 1 // the first import goes through
	if _, _, err := importStatement(t, r, s, statement.FormatXML); err != nil {
		t.Fatal(err)
	}
	*attempts = 0
	imp, replayed, err := importStatement(t, r, s, statement.FormatCSV)
	if err != nil || !replayed || imp.Entries != 3 || *attempts != 2 {
		t.Fatalf("the same statement, retried: %+v replayed %v, %v after %d attempts", imp, replayed, err, *attempts)
	}
	*attempts = 0
	s.Entries[2].AdditionalInfo = "other"
	if _, _, err := importStatement(t, r, s, statement.FormatXML); !errors.Is(err, postgres.ErrStatementConflict) || *attempts != 2 {
		t.Fatalf("other content, retried: %v after %d attempts", err, *attempts)
	}
}

// A statement whose period ends after the engine's today (Asia/Shanghai, by the store's clock)
// past the tolerance is refused, naming the day, and nothing of it is kept: one mistyped year
// would otherwise make every item of the bank missing at once. Up to the tolerance it imports.
func TestImportRefusesAStatementFromTheFuture(t *testing.T) {
	st, r, _ := retriedImport(t)
	postgres.SetAfterEntries(r, nil)
	ctx := context.Background()
	pgtest.ClockFrom(st, time.Date(2026, 3, 4, 23, 30, 0, 0, time.UTC)) // 03-05 07:30 in Shanghai
	s := retryStatement()
	s.Header.To = events.Date{Year: 2062, Month: time.March, Day: 5}
	_, _, err := importStatement(t, r, s, statement.FormatXML)
	if !errors.Is(err, postgres.ErrStatementFuture) || !strings.Contains(err.Error(), "2062-03-05") {
		t.Fatalf("a statement to 2062-03-05: %v, want ErrStatementFuture naming the day", err)
	}
	late := events.Date{Year: 2026, Month: time.March, Day: 5 + postgres.StatementFutureDays + 1}
	s.Header.To = late
	if _, _, err := importStatement(t, r, s, statement.FormatCSV); !errors.Is(err, postgres.ErrStatementFuture) {
		t.Fatalf("a statement to %v, past the tolerance: %v, want ErrStatementFuture", late, err)
	}
	var statements, entries int
	if err := st.Pool().QueryRow(ctx, `SELECT (SELECT count(*) FROM bank_statements), (SELECT count(*) FROM statement_entries)`).
		Scan(&statements, &entries); err != nil || statements != 0 || entries != 0 {
		t.Fatalf("after the refusals: %d statements, %d entries, %v", statements, entries, err)
	}
	s.Header.To = events.Date{Year: 2026, Month: time.March, Day: 5 + postgres.StatementFutureDays}
	if imp, _, err := importStatement(t, r, s, statement.FormatCSV); err != nil || imp.Entries != 3 {
		t.Fatalf("a statement to today plus the tolerance: %+v %v", imp, err)
	}
}

// TestImportWithholdsPersonalNumbersInEntryTexts: a bank's free text about an entry (the
// remittance text its payer wrote) may hold a passport, social security or work permit number:
// the entry is imported, its text kept with the number withheld, the rest of the text readable.
func TestImportWithholdsPersonalNumbersInEntryTexts(t *testing.T) {
	st, r, attempts := retriedImport(t)
	*attempts = 1
	s := retryStatement()
	numbers := []string{"E98765432X", "11010519491231002X", "WP20250001234"}
	for i, n := range numbers {
		s.Entries[i].AdditionalInfo = "rent paid for passport " + n + " thanks"
	}
	if _, _, err := importStatement(t, r, s, statement.FormatCSV); err != nil {
		t.Fatal(err)
	}
	rows, err := st.Pool().Query(context.Background(), `SELECT info FROM statement_entries ORDER BY line`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	n := 0
	for rows.Next() {
		var info string
		if err := rows.Scan(&info); err != nil {
			t.Fatal(err)
		}
		if strings.Contains(info, numbers[n]) || !strings.HasPrefix(info, "rent paid for passport ") || !strings.HasSuffix(info, " thanks") {
			t.Errorf("entry %d: info %q", n+1, info)
		}
		n++
	}
	if err := rows.Err(); err != nil || n != 3 {
		t.Fatalf("%d entries, %v", n, err)
	}
}
