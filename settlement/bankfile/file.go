package bankfile

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
	// MaxItems bounds the items of one file, and the item statuses of one acknowledgement. A
	// bank's cycle in a city holds up to about 100,000 items (one per merchant, operator and
	// card with activity); the bound leaves five times that, and keeps a file read whole (about
	// 300 bytes an item in memory) under 200 MB.
	MaxItems = 500_000
	// maxIDBytes: identifiers travel in ISO 20022 Max35Text elements (MsgId, EndToEndId). A UUID
	// fits as 32 hex digits without hyphens.
	maxIDBytes = 35
	// maxAccountIDBytes: a bank's and a party's identification travel in Max34Text (Othr/Id).
	maxAccountIDBytes = 34
	// maxTextRunes: names and references travel in Max140Text, counted in characters.
	maxTextRunes = 140
	// MaxTextRunes is maxTextRunes for the writers of names: a name longer is cut to it.
	MaxTextRunes = maxTextRunes
	// maxItemEntries: an item's count of ledger transfers travels in Max15NumericText.
	maxItemEntries = 999_999_999_999_999
)

// CurrencyCNY is the only currency of settlement files for now.
const CurrencyCNY = bankformat.CurrencyCNY

// File is one settlement file: what the engine tells one bank about one cycle.
type File struct {
	Header Header
	Items  []Item
}

// Header is what a settlement file says about itself. The caller computes the totals from the
// database; the writers check the items they stream add up to them, the readers recompute them.
type Header struct {
	MessageID string    // unique per file, e.g. "JIC-<bank>-<cycle yyyymmdd>-<seq>"; 1 to 35 printable ASCII characters
	CreatedAt time.Time // given by the caller, so that regenerating a file gives the same bytes
	BankID    string    // the bank's id in the engine; 1 to 34 printable ASCII characters
	BankName  string    // 1 to 140 characters
	CycleDate events.Date
	ValueDate events.Date // after CycleDate: the business day the money moves
	// Sequence numbers one bank's files from 1, with no gaps (CheckSequence). A duplicate copy
	// carries the sequence of the file it copies.
	Sequence int64
	Currency ledger.Currency // CNY only
	Copy     bool            // a duplicate copy of a file sent before, marked DUPL
	// NumberOfEntries is the number of items.
	NumberOfEntries int64
	// ControlSum is the sum of the items' amounts, in fen.
	ControlSum int64
	// Net is the items' credits minus their debits, in fen: positive, the bank receives;
	// negative, the bank pays.
	Net int64
}

// Item is one line of a settlement file: what one party earned or spent through the bank.
type Item struct {
	// ID is stable and unique in the file, 1 to 35 printable ASCII characters (ISO 20022's
	// EndToEndId): acknowledgements name the item by it. A UUID such as settlement's item id is
	// written as its 32 hex digits, hex.EncodeToString(id[:]): with hyphens it is 36.
	ID    string
	Kind  Kind
	Party string // the party's id or a masked card number (622848******1234), never an account or card number in clear
	// PartyName may be empty.
	PartyName string
	Amount    int64 // fen, positive
	Direction Direction
	Reference string // may be empty
	Entries   int64  // the ledger transfers behind the item, at least 1
}

// Kind says what an item is.
type Kind uint8

const (
	KindUnknown          Kind = iota
	KindCardholderSpend       // what the bank's cardholders spent with their cards
	KindMerchantEarnings      // what a merchant, venue, pharmacy or hospital banking with the bank earned
	KindOperatorEarnings      // what a transit operator banking with the bank earned
	KindMedicalFundShare      // the pooled medical insurance fund's share of medical purchases
	KindReturned              // the money of an item a bank rejected, returned
	KindAdjustment            // a correction of an earlier cycle
	KindReoffered             // an item a bank rejected, or that had no bank, offered again
	kindCount
)

var kindNames = [kindCount]string{
	"unknown", "cardholder_spend", "merchant_earnings", "operator_earnings", "medical_fund_share",
	"returned", "adjustment", "reoffered",
}

func (k Kind) String() string {
	if k < kindCount {
		return kindNames[k]
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// Kinds lists every valid kind, in the order of the documentation.
func Kinds() []Kind {
	ks := make([]Kind, 0, kindCount-1)
	for k := KindCardholderSpend; k < kindCount; k++ {
		ks = append(ks, k)
	}
	return ks
}

// ParseKind returns the kind named s.
func ParseKind(s string) (Kind, error) {
	for k := KindCardholderSpend; k < kindCount; k++ {
		if kindNames[k] == s {
			return k, nil
		}
	}
	return KindUnknown, errors.New("unknown item kind")
}

func (k Kind) valid() bool { return k > KindUnknown && k < kindCount }

// Direction is an item's direction from the bank's point of view, as ISO 20022 writes it.
type Direction string

const (
	Credit Direction = bankformat.Credit // the bank receives
	Debit  Direction = bankformat.Debit  // the bank pays
)

// signed is the item's amount as it counts in the net.
func (it Item) signed() int64 {
	if it.Direction == Debit {
		return -it.Amount
	}
	return it.Amount
}

// validate checks every field of h on its own (totals against items are checked by totals).
func (h Header) validate() error {
	fail := func(field string, err error) error {
		return &FieldError{Record: recordHeader, Field: field, Err: err}
	}
	if err := bankformat.CheckID(h.MessageID, maxIDBytes); err != nil {
		return fail("MessageID", err)
	}
	if err := bankformat.CheckTime(h.CreatedAt); err != nil {
		return fail("CreatedAt", err)
	}
	if err := checkAccountID(h.BankID, maxAccountIDBytes); err != nil {
		return fail("BankID", err)
	}
	if err := checkText(h.BankName, true); err != nil {
		return fail("BankName", err)
	}
	if err := bankformat.CheckDate(h.CycleDate); err != nil {
		return fail("CycleDate", err)
	}
	if err := bankformat.CheckDate(h.ValueDate); err != nil {
		return fail("ValueDate", err)
	}
	if !bankformat.Civil(h.ValueDate).After(bankformat.Civil(h.CycleDate)) {
		return fail("ValueDate", errors.New("must be after the cycle date"))
	}
	if h.Sequence < 1 {
		return fail("Sequence", errors.New("must be 1 or more"))
	}
	if h.Currency != CurrencyCNY {
		return fail("Currency", errors.New("settlement files are in CNY"))
	}
	if h.NumberOfEntries < 0 || h.NumberOfEntries > MaxItems {
		return fail("NumberOfEntries", fmt.Errorf("must be 0 to %d", MaxItems))
	}
	if h.ControlSum < 0 {
		return fail("ControlSum", errors.New("must not be negative"))
	}
	if h.Net < -h.ControlSum || h.Net > h.ControlSum {
		return fail("Net", errors.New("is larger than the control sum"))
	}
	return nil
}

// validate checks every field of it on its own.
func (it Item) validate(entry int) error {
	fail := func(field string, err error) error {
		return &FieldError{Record: recordItem, Entry: entry, Field: field, Err: err}
	}
	if err := bankformat.CheckID(it.ID, maxIDBytes); err != nil {
		return fail("ID", err)
	}
	if !it.Kind.valid() {
		return fail("Kind", errors.New("unknown item kind"))
	}
	if err := checkAccountID(it.Party, maxAccountIDBytes); err != nil {
		return fail("Party", err)
	}
	if err := checkText(it.PartyName, false); err != nil {
		return fail("PartyName", err)
	}
	if it.Amount <= 0 {
		return fail("Amount", errors.New("must be positive"))
	}
	if _, err := parseDirection(string(it.Direction)); err != nil {
		return fail("Direction", err)
	}
	if err := checkText(it.Reference, false); err != nil {
		return fail("Reference", err)
	}
	if it.Entries < 1 || it.Entries > maxItemEntries {
		return fail("Entries", fmt.Errorf("must be 1 to %d", int64(maxItemEntries)))
	}
	return nil
}

// totals recomputes a file's control totals from its items, and refuses duplicate item ids.
type totals struct {
	count int64
	sum   int64
	net   int64
	ids   map[string]struct{}
}

// add counts one item, validated or not: it validates it first. entry counts from 1.
func (t *totals) add(it Item, entry int) error {
	if err := it.validate(entry); err != nil {
		return err
	}
	if t.count == MaxItems {
		return &FieldError{Record: recordItem, Entry: entry, Err: fmt.Errorf("%w: more than %d items", ErrControlCount, MaxItems)}
	}
	if t.ids == nil {
		t.ids = make(map[string]struct{})
	}
	if _, dup := t.ids[it.ID]; dup {
		return &FieldError{Record: recordItem, Entry: entry, Field: "ID", Err: ErrDuplicateItem}
	}
	if t.sum > math.MaxInt64-it.Amount {
		return &FieldError{Record: recordItem, Entry: entry, Field: "Amount", Err: fmt.Errorf("%w: the sum overflows", ErrControlSum)}
	}
	t.ids[it.ID] = struct{}{}
	t.count++
	t.sum += it.Amount
	t.net += it.signed() // |net| <= sum, so it cannot overflow
	return nil
}

// check compares the recomputed totals with those stated, and names every one that disagrees.
// record, lines and fields say where the stated count, control sum and net are.
func (t *totals) check(h Header, record string, lines [3]int, fields [3]string) error {
	var errs []error
	if t.count != h.NumberOfEntries {
		errs = append(errs, &FieldError{Record: record, Line: lines[0], Field: fields[0],
			Err: fmt.Errorf("%w: states %d items, there are %d", ErrControlCount, h.NumberOfEntries, t.count)})
	}
	if t.sum != h.ControlSum {
		errs = append(errs, &FieldError{Record: record, Line: lines[1], Field: fields[1],
			Err: fmt.Errorf("%w: states %s, the items sum to %s", ErrControlSum, bankformat.FormatAmount(h.ControlSum), bankformat.FormatAmount(t.sum))})
	}
	if t.net != h.Net {
		errs = append(errs, &FieldError{Record: record, Line: lines[2], Field: fields[2],
			Err: fmt.Errorf("%w: states %s, the items net to %s", ErrNetTotal, bankformat.FormatAmount(h.Net), bankformat.FormatAmount(t.net))})
	}
	return errors.Join(errs...)
}

// goFields names the totals as the writers report them.
var goFields = [3]string{"NumberOfEntries", "ControlSum", "Net"}

// checkAccountID is bankformat.CheckID for an identifier a person chose (a bank's or a party's
// id), which must not be a card number in clear either.
func checkAccountID(s string, max int) error {
	if err := bankformat.CheckID(s, max); err != nil {
		return err
	}
	if events.ContainsCardNumber(s) {
		return ErrCardNumber
	}
	return nil
}
