package loadtest

import (
	"fmt"
	"time"

	"github.com/joinincard/engine/reconcile/statement"
	"github.com/joinincard/engine/settlement/bankfile"
)

// StatementFor is the statement a bank sends back after booking settlement file f as the file
// says: an entry per item, the item's id as its end-to-end reference, booked on the file's value
// date; numbered seq, with the account's balance opening at opening.
func StatementFor(f *bankfile.File, seq, opening int64, created time.Time) *statement.Statement {
	s := &statement.Statement{Header: statement.Header{
		StatementID: fmt.Sprintf("STMT-%s-%06d", f.Header.BankID, seq), CreatedAt: created, BankID: f.Header.BankID,
		Sequence: seq, From: f.Header.ValueDate, To: f.Header.ValueDate, Currency: statement.CurrencyCNY,
		OpeningBalance: opening,
	}}
	for i, it := range f.Items {
		dir := statement.Credit
		if it.Direction == bankfile.Debit {
			dir = statement.Debit
		}
		s.Entries = append(s.Entries, statement.Entry{Amount: it.Amount, Direction: dir, BookingDate: f.Header.ValueDate,
			ValueDate: f.Header.ValueDate, EntryRef: fmt.Sprintf("B%06d%06d", seq, i+1), EndToEndRef: it.ID})
	}
	Retotal(s)
	return s
}

// Retotal sets s's control totals and closing balance from its entries and opening balance, after
// entries are changed.
func Retotal(s *statement.Statement) {
	h := &s.Header
	h.NumberOfEntries, h.Sum, h.Net = int64(len(s.Entries)), 0, 0
	for _, e := range s.Entries {
		h.Sum += e.Amount
		h.Net += e.Signed()
	}
	h.ClosingBalance = h.OpeningBalance + h.Net
}
