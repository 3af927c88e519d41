package statement_test

import (
	"bytes"
	"slices"
	"testing"
	"time"

	"github.com/joinincard/engine/events"
	"github.com/joinincard/engine/reconcile/statement"
)

var shanghai = time.FixedZone("CST", 8*60*60)

func date(y int, m time.Month, d int) events.Date { return events.Date{Year: y, Month: m, Day: d} }

// icbc is a day's statement of a bank that received a settlement file's net as one entry and
// some items one by one: credits and debits, Chinese texts, an entry the bank booked twice (the
// same payment, the same reference), a fee that carries no reference of the engine's, and an
// entry whose reference the bank made up.
func icbc() *statement.Statement {
	day := date(2026, 10, 10)
	entries := []statement.Entry{
		{Amount: 124148624, Direction: statement.Credit, BookingDate: day, ValueDate: day,
			EntryRef: "2026101000000417", EndToEndRef: "JIC-20261009-3637c6c0-000042",
			AdditionalInfo: "清算款 2026-10-09 第42批"},
		{Amount: 152000, Direction: statement.Debit, BookingDate: day, ValueDate: day,
			EntryRef: "2026101000000418", EndToEndRef: "0199d3a2c4d07e4b9a1c5d2e3f405103",
			AdditionalInfo: "Stephen Fox 卡消费结算"},
		{Amount: 865040, Direction: statement.Credit, BookingDate: day, ValueDate: day,
			EntryRef: "2026101000000419", EndToEndRef: "0199d3a2c4d07e4b9a1c5d2e3f405102",
			AdditionalInfo: "西湖区百姓大药房"},
		{Amount: 865040, Direction: statement.Credit, BookingDate: day, ValueDate: day,
			EntryRef: "2026101000000419", EndToEndRef: "0199d3a2c4d07e4b9a1c5d2e3f405102",
			AdditionalInfo: "西湖区百姓大药房"},
		{Amount: 2500, Direction: statement.Debit, BookingDate: day, ValueDate: day,
			EntryRef: "2026101000000420", AdditionalInfo: "账户管理费 account fee"},
		{Amount: 8800, Direction: statement.Credit, BookingDate: day, ValueDate: date(2026, 10, 9),
			EntryRef: "2026101000000421", EndToEndRef: "RTN-AC04-0199d3a2"},
	}
	return withTotals(statement.Header{
		StatementID:    "ICBC-HZ-S-20261010-12",
		CreatedAt:      time.Date(2026, 10, 11, 2, 0, 0, 0, shanghai),
		BankID:         "ICBC-HZ",
		Sequence:       12,
		From:           day,
		To:             day,
		Currency:       statement.CurrencyCNY,
		OpeningBalance: 500000000,
	}, entries)
}

// abcCopy is a duplicate copy of a week's statement over the National Day holiday, of an account
// that was overdrawn (debit balances): texts that spreadsheets take for formulas and XML's markup
// characters, a reference the bank wrote in upper case, entries valued after their booking day.
func abcCopy() *statement.Statement {
	entries := []statement.Entry{
		{Amount: 2870135, Direction: statement.Debit, BookingDate: date(2026, 10, 7), ValueDate: date(2026, 10, 8),
			EntryRef: "ABC0000077", EndToEndRef: "JIC-20260930-253cdcdc-000007",
			AdditionalInfo: `=HYPERLINK("http://x") 结算 & <净额>`},
		{Amount: 100000, Direction: statement.Credit, BookingDate: date(2026, 10, 3), ValueDate: date(2026, 10, 3),
			EntryRef: "-0003", EndToEndRef: "0199D3A2C4D07E4B9A1C5D2E3F405203",
			AdditionalInfo: "@merchant-sh-0042 餐厅"},
		{Amount: 1000, Direction: statement.Debit, BookingDate: date(2026, 10, 7), ValueDate: date(2026, 10, 7),
			EntryRef: "'ABC-FEE-7", AdditionalInfo: "+手续费 fee, cycle 2026-09-29"},
	}
	return withTotals(statement.Header{
		StatementID:    "ABC-SH-20261007-7",
		CreatedAt:      time.Date(2026, 10, 8, 1, 0, 0, 500000000, time.UTC),
		BankID:         "ABC-SH",
		Sequence:       7,
		Copy:           true,
		From:           date(2026, 10, 1),
		To:             date(2026, 10, 7),
		Currency:       statement.CurrencyCNY,
		OpeningBalance: -1200000,
	}, entries)
}

// empty is a day without bookings: a statement is still sent, its balance unchanged.
func empty() *statement.Statement {
	return withTotals(statement.Header{
		StatementID: "CCB-NB-20261012-1",
		CreatedAt:   time.Date(2026, 10, 13, 1, 30, 0, 0, shanghai),
		BankID:      "CCB-NB",
		Sequence:    1,
		From:        date(2026, 10, 12),
		To:          date(2026, 10, 12),
		Currency:    statement.CurrencyCNY,
	}, nil)
}

// withTotals computes the totals and the closing balance as a bank does: independently of the
// package.
func withTotals(h statement.Header, entries []statement.Entry) *statement.Statement {
	h.NumberOfEntries, h.Sum, h.Net = 0, 0, 0
	for _, e := range entries {
		h.NumberOfEntries++
		h.Sum += e.Amount
		if e.Direction == statement.Credit {
			h.Net += e.Amount
		} else {
			h.Net -= e.Amount
		}
	}
	h.ClosingBalance = h.OpeningBalance + h.Net
	return &statement.Statement{Header: h, Entries: entries}
}

func writeXML(t testing.TB, s *statement.Statement) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := statement.WriteXML(&b, s.Header, slices.Values(s.Entries)); err != nil {
		t.Fatalf("WriteXML: %v", err)
	}
	return b.Bytes()
}

func writeCSV(t testing.TB, s *statement.Statement) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := statement.WriteCSV(&b, s.Header, slices.Values(s.Entries)); err != nil {
		t.Fatalf("WriteCSV: %v", err)
	}
	return b.Bytes()
}

func readXML(b []byte) (*statement.Statement, error) {
	return statement.ReadAll(bytes.NewReader(b), statement.FormatXML)
}

func readCSV(b []byte) (*statement.Statement, error) {
	return statement.ReadAll(bytes.NewReader(b), statement.FormatCSV)
}

// sameStatement reports whether two statements have the same content: times as instants in the
// same offset, and no difference between no entries and an empty list.
func sameStatement(a, b *statement.Statement) bool {
	ha, hb := a.Header, b.Header
	if !ha.CreatedAt.Equal(hb.CreatedAt) || ha.CreatedAt.Format(time.RFC3339Nano) != hb.CreatedAt.Format(time.RFC3339Nano) {
		return false
	}
	ha.CreatedAt, hb.CreatedAt = time.Time{}, time.Time{}
	return ha == hb && slices.Equal(a.Entries, b.Entries)
}
