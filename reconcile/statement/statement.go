package statement

import (
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/joinincard/engine/events"
	"github.com/joinincard/engine/internal/bankformat"
	"github.com/joinincard/engine/ledger"
)

const (
	// MaxEntries bounds the entries of one statement. A bank's settlement account books about one
	// entry per settlement item, and a settlement file holds at most bankfile.MaxItems (500,000)
	// items a cycle: the bound takes ten such cycles, a statement covering a long holiday of daily
	// cycles at the largest files. Readers stream, so memory does not depend on it; it stops a
	// runaway file before its totals can mean anything.
	MaxEntries = 5_000_000
	// MaxReadAllEntries bounds the entries ReadAll collects: about 300 bytes an entry in memory,
	// so at most some 30 MB. Larger statements are read entry by entry with a Reader.
	MaxReadAllEntries = 100_000
	// maxIDBytes: the statement id, the bank's entry reference and the end-to-end reference travel
	// in ISO 20022 Max35Text elements (Stmt/Id, AcctSvcrRef, EndToEndId).
	maxIDBytes = 35
	// maxBankIDBytes: the bank's id travels in Max34Text (Acct/Id/Othr/Id), as in settlement files.
	maxBankIDBytes = 34
	// maxInfoRunes: an entry's additional information travels in Max500Text (AddtlNtryInf),
	// counted in characters.
	maxInfoRunes = 500
)

// CurrencyCNY is the only currency of statements for now, as of settlement files.
const CurrencyCNY = bankformat.CurrencyCNY

// Statement is a statement read whole (ReadAll); the writers and the Reader stream instead.
type Statement struct {
	Header  Header
	Entries []Entry
}

// Header is what a statement says about itself and the account's balances. The writers check the
// entries they stream add up to its totals; the readers recompute them.
type Header struct {
	StatementID string    // unique per bank and statement; 1 to 35 printable ASCII characters without spaces
	CreatedAt   time.Time // when the bank created the statement, with its zone
	BankID      string    // the bank sending it, by its id in the engine ("ICBC-HZ"); 1 to 34 printable ASCII characters without spaces
	// Sequence numbers one bank's statements from 1, with no gaps (CheckSequence). A duplicate
	// copy carries the sequence of the statement it copies.
	Sequence int64
	Copy     bool // a duplicate copy of a statement sent before, marked DUPL
	// From and To are the period the statement covers, both included: its entries are booked on
	// these days. From is not after To.
	From, To events.Date
	Currency ledger.Currency // CNY only
	// OpeningBalance and ClosingBalance are the account's booked balance at the start of From and
	// at the end of To, in fen: positive, a credit balance (the bank holds money on it); negative,
	// a debit balance. ClosingBalance is OpeningBalance plus Net.
	OpeningBalance int64
	ClosingBalance int64
	// NumberOfEntries is the number of entries.
	NumberOfEntries int64
	// Sum is the sum of the entries' amounts, without sign, in fen.
	Sum int64
	// Net is the entries' credits minus their debits, in fen.
	Net int64
}

// Entry is one booking on the account: money the bank received or paid.
type Entry struct {
	Amount    int64 // fen, positive
	Direction Direction
	// BookingDate is the day the bank booked the entry, within the statement's period;
	// ValueDate the day the money counts from (it may be before or after the booking date).
	BookingDate events.Date
	ValueDate   events.Date
	// EntryRef is the bank's own reference of the entry (AcctSvcrRef), 1 to 35 printable ASCII
	// characters without spaces. It is not unique: a bank that booked one payment twice may give
	// both bookings one reference, and reconciliation, not the reader, finds that out.
	EntryRef string
	// EndToEndRef is what the bank carried of the engine's reference: a settlement item id, a
	// settlement file's message id, or whatever else the bank wrote (ClassifyRef says which);
	// empty when the bank carried none (the XML writes ISO's NOTPROVIDED).
	EndToEndRef string
	// AdditionalInfo is the bank's free text about the entry, at most 500 characters; may be empty.
	AdditionalInfo string
}

// Direction is an entry's direction on the bank's account, as ISO 20022 writes it. It has the
// meaning of a settlement file item's direction: a CRDT item is money the bank receives, and
// shows on its statement as a CRDT entry.
type Direction string

const (
	Credit Direction = bankformat.Credit // the account was credited: the bank received
	Debit  Direction = bankformat.Debit  // the account was debited: the bank paid
)

// Signed is the entry's amount as it counts in the net: negative for a debit.
func (e Entry) Signed() int64 {
	if e.Direction == Debit {
		return -e.Amount
	}
	return e.Amount
}

// Header checks. Each checks one field, or the fields it names, and is used by the writers on the
// Header as a whole and by the readers as they read each value, so that an error names the
// element or column it is on.

func checkBankID(s string) error {
	if err := bankformat.CheckID(s, maxBankIDBytes); err != nil {
		return err
	}
	if events.ContainsCardNumber(s) {
		return ErrCardNumber
	}
	return nil
}

func checkSequence(n int64) error {
	if n < 1 {
		return errors.New("must be 1 or more")
	}
	return nil
}

func checkCurrency(c ledger.Currency) error {
	if c != CurrencyCNY {
		return errors.New("statements are in CNY")
	}
	return nil
}

func checkPeriod(from, to events.Date) error {
	if bankformat.Civil(to).Before(bankformat.Civil(from)) {
		return errors.New("the period ends before it starts")
	}
	return nil
}

// checkBalance refuses the one int64 that has no unsigned amount.
func checkBalance(fen int64) error {
	if fen == math.MinInt64 {
		return errors.New("is out of range")
	}
	return nil
}

func checkCount(n int64) error {
	if n < 0 || n > MaxEntries {
		return fmt.Errorf("%w: must be 0 to %d", ErrControlCount, MaxEntries)
	}
	return nil
}

func checkSum(sum int64) error {
	if sum < 0 {
		return errors.New("must not be negative")
	}
	return nil
}

func checkNet(net, sum int64) error {
	if net < -sum || net > sum {
		return errors.New("is larger than the control sum")
	}
	return nil
}

// checkClosing checks closing is opening plus net; what says what the net is ("the net",
// "the entries' net").
func checkClosing(opening, net, closing int64, what string) error {
	want, ok := addBalance(opening, net)
	if !ok {
		return fmt.Errorf("%w: the opening balance plus %s overflows", ErrClosingBalance, what)
	}
	if closing != want {
		return fmt.Errorf("%w: states %s, the opening balance %s plus %s %s is %s", ErrClosingBalance,
			bankformat.FormatAmount(closing), bankformat.FormatAmount(opening), what, bankformat.FormatAmount(net), bankformat.FormatAmount(want))
	}
	return nil
}

// addBalance adds two amounts, reporting false when the sum does not fit a balance.
func addBalance(a, b int64) (int64, bool) {
	s := a + b
	if (b > 0 && s < a) || (b < 0 && s > a) || s == math.MinInt64 {
		return 0, false
	}
	return s, true
}

// validateFields checks every field of h but the totals, each on its own.
func (h Header) validateFields() error {
	fail := func(field string, err error) error {
		return &FieldError{Record: recordHeader, Field: field, Err: err}
	}
	if err := bankformat.CheckID(h.StatementID, maxIDBytes); err != nil {
		return fail("StatementID", err)
	}
	if err := bankformat.CheckTime(h.CreatedAt); err != nil {
		return fail("CreatedAt", err)
	}
	if err := checkBankID(h.BankID); err != nil {
		return fail("BankID", err)
	}
	if err := checkSequence(h.Sequence); err != nil {
		return fail("Sequence", err)
	}
	if err := bankformat.CheckDate(h.From); err != nil {
		return fail("From", err)
	}
	if err := bankformat.CheckDate(h.To); err != nil {
		return fail("To", err)
	}
	if err := checkPeriod(h.From, h.To); err != nil {
		return fail("To", err)
	}
	if err := checkCurrency(h.Currency); err != nil {
		return fail("Currency", err)
	}
	if err := checkBalance(h.OpeningBalance); err != nil {
		return fail("OpeningBalance", err)
	}
	if err := checkBalance(h.ClosingBalance); err != nil {
		return fail("ClosingBalance", err)
	}
	return nil
}

// validateTotals checks h's totals among themselves and against its balances.
func (h Header) validateTotals() error {
	fail := func(field string, err error) error {
		return &FieldError{Record: recordHeader, Field: field, Err: err}
	}
	if err := checkCount(h.NumberOfEntries); err != nil {
		return fail("NumberOfEntries", err)
	}
	if err := checkSum(h.Sum); err != nil {
		return fail("Sum", err)
	}
	if err := checkNet(h.Net, h.Sum); err != nil {
		return fail("Net", err)
	}
	if err := checkClosing(h.OpeningBalance, h.Net, h.ClosingBalance, "the net"); err != nil {
		return fail("ClosingBalance", err)
	}
	return nil
}

func (h Header) validate() error {
	if err := h.validateFields(); err != nil {
		return err
	}
	return h.validateTotals()
}

// Entry checks, used as the header checks are.

func checkAmount(fen int64) error {
	if fen <= 0 {
		return errors.New("must be positive")
	}
	return nil
}

// checkBookingDate refuses a date outside the statement's period.
func checkBookingDate(d events.Date, h *Header) error {
	if err := bankformat.CheckDate(d); err != nil {
		return err
	}
	if c := bankformat.Civil(d); c.Before(bankformat.Civil(h.From)) || c.After(bankformat.Civil(h.To)) {
		return errors.New("is outside the statement's period")
	}
	return nil
}

// checkEndToEndRef refuses what is not an id, NOTPROVIDED spelt out (an entry without a reference
// has it empty), and a reference that is not one of the engine's own ids and may hold a card
// number in clear. The engine's item and message ids are hex and digits that may read like
// anything, so they are not searched for card numbers.
func checkEndToEndRef(s string) error {
	if s == "" {
		return nil
	}
	if s == notProvided {
		return errors.New("NOTPROVIDED is how the XML writes an empty reference")
	}
	if err := bankformat.CheckID(s, maxIDBytes); err != nil {
		return err
	}
	if ClassifyRef(s) == RefOther && events.ContainsCardNumber(s) {
		return ErrCardNumber
	}
	return nil
}

// validate checks every field of e on its own; n counts the entry from 1.
func (e Entry) validate(n int, h *Header) error {
	fail := func(field string, err error) error {
		return &FieldError{Record: recordEntry, Entry: n, Field: field, Err: err}
	}
	if err := checkAmount(e.Amount); err != nil {
		return fail("Amount", err)
	}
	if _, err := parseDirection(string(e.Direction)); err != nil {
		return fail("Direction", err)
	}
	if err := checkBookingDate(e.BookingDate, h); err != nil {
		return fail("BookingDate", err)
	}
	if err := bankformat.CheckDate(e.ValueDate); err != nil {
		return fail("ValueDate", err)
	}
	if err := bankformat.CheckID(e.EntryRef, maxIDBytes); err != nil {
		return fail("EntryRef", err)
	}
	if err := checkEndToEndRef(e.EndToEndRef); err != nil {
		return fail("EndToEndRef", err)
	}
	if err := checkText(e.AdditionalInfo, maxInfoRunes); err != nil {
		return fail("AdditionalInfo", err)
	}
	return nil
}

// totals recomputes a statement's control totals from its entries, one at a time.
type totals struct {
	count int64
	sum   int64
	net   int64
}

// add validates e, the n-th entry, and counts it.
func (t *totals) add(e Entry, n int, h *Header) error {
	if err := e.validate(n, h); err != nil {
		return err
	}
	if t.count == MaxEntries {
		return &FieldError{Record: recordEntry, Entry: n, Err: fmt.Errorf("%w: more than %d entries", ErrControlCount, MaxEntries)}
	}
	if t.sum > math.MaxInt64-e.Amount {
		return &FieldError{Record: recordEntry, Entry: n, Field: "Amount", Err: fmt.Errorf("%w: the sum overflows", ErrControlSum)}
	}
	t.count++
	t.sum += e.Amount
	t.net += e.Signed() // |net| <= sum, so it cannot overflow
	return nil
}

// place says where a stated total is, for an error about it.
type place struct {
	record string
	line   int
	field  string
}

// places are where the number of entries, the sum, the net and the closing balance are stated.
type places struct{ count, sum, net, closing place }

// goPlaces names the totals as the writers report them.
var goPlaces = places{
	count:   place{recordHeader, 0, "NumberOfEntries"},
	sum:     place{recordHeader, 0, "Sum"},
	net:     place{recordHeader, 0, "Net"},
	closing: place{recordHeader, 0, "ClosingBalance"},
}

// check compares the recomputed totals with those stated, and the closing balance with the
// opening balance plus the entries' net, and names every one that disagrees.
func (t *totals) check(h *Header, at places) error {
	var errs []error
	fail := func(p place, err error) {
		errs = append(errs, &FieldError{Record: p.record, Line: p.line, Field: p.field, Err: err})
	}
	if t.count != h.NumberOfEntries {
		fail(at.count, fmt.Errorf("%w: states %d entries, there are %d", ErrControlCount, h.NumberOfEntries, t.count))
	}
	if t.sum != h.Sum {
		fail(at.sum, fmt.Errorf("%w: states %s, the entries sum to %s", ErrControlSum,
			bankformat.FormatAmount(h.Sum), bankformat.FormatAmount(t.sum)))
	}
	if t.net != h.Net {
		fail(at.net, fmt.Errorf("%w: states %s, the entries net to %s", ErrNetTotal,
			bankformat.FormatAmount(h.Net), bankformat.FormatAmount(t.net)))
	}
	if err := checkClosing(h.OpeningBalance, t.net, h.ClosingBalance, "the entries' net"); err != nil {
		fail(at.closing, err)
	}
	return errors.Join(errs...)
}
