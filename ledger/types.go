package ledger

import (
	"encoding/hex"
	"fmt"
	"math"
)

// ID identifies an account or a transfer. It has the layout of a UUID; transfer ids are UUIDv7 so
// that they sort by creation time and insert at the right edge of the store's index.
type ID [16]byte

// IsZero reports whether id is the zero ID, which never names an account or a transfer.
func (id ID) IsZero() bool { return id == ID{} }

// String formats id in the canonical 8-4-4-4-12 UUID form.
func (id ID) String() string { return string(id.Append(make([]byte, 0, 36))) }

// Append appends id in the canonical 8-4-4-4-12 UUID form to b.
func (id ID) Append(b []byte) []byte {
	var buf [36]byte
	hex.Encode(buf[0:8], id[0:4])
	buf[8] = '-'
	hex.Encode(buf[9:13], id[4:6])
	buf[13] = '-'
	hex.Encode(buf[14:18], id[6:8])
	buf[18] = '-'
	hex.Encode(buf[19:23], id[8:10])
	buf[23] = '-'
	hex.Encode(buf[24:], id[10:])
	return append(b, buf[:]...)
}

// Currency is an ISO 4217 alphabetic code. Accounts hold one currency; a transfer moves money
// between two accounts of the same currency.
type Currency string

// currencyMinorUnits lists the currencies the engine books and their number of decimal places.
// CNY is the card's currency; the others appear in foreign-card comparisons and FX postings.
var currencyMinorUnits = map[Currency]int32{
	"CNY": 2,
	"HKD": 2,
	"USD": 2,
	"EUR": 2,
	"JPY": 0,
}

// MinorUnits returns the number of decimal places of c and whether the engine knows c.
func (c Currency) MinorUnits() (int32, bool) {
	n, ok := currencyMinorUnits[c]
	return n, ok
}

// ParseCurrency returns the currency named by code, or an error for a code the engine does not book.
func ParseCurrency(code string) (Currency, error) {
	c := Currency(code)
	if _, ok := currencyMinorUnits[c]; !ok {
		return "", fmt.Errorf("unknown currency %q", code)
	}
	return c, nil
}

// Kind says what an account is for. It drives reports and the chart of accounts; the engine's
// rules depend only on the account's flags and limit.
type Kind uint8

const (
	KindUnknown            Kind = iota
	KindCardholderFunds         // a cardholder's funds: the linked bank account as mirrored in the ledger
	KindMedicalPersonal         // a cardholder's personal medical account
	KindOperatorClearing        // what a transit operator is owed for taps, until settlement
	KindMerchantClearing        // what a merchant, venue, pharmacy or hospital is owed, until settlement
	KindFeeIncome               // merchant discount and network fees earned
	KindBankSettlement          // a bank's position in the settlement cycle
	KindInsuranceFund           // a city's pooled medical insurance fund
	KindSuspense                // items held until they are matched, e.g. unpaid fares
	KindSettlementPosition      // what a bank is owed (credit) or owes (debit) from settled cycles
	kindCount
)

var kindNames = [kindCount]string{
	"unknown", "cardholder_funds", "medical_personal", "operator_clearing", "merchant_clearing",
	"fee_income", "bank_settlement", "insurance_fund", "suspense", "settlement_position",
}

func (k Kind) String() string {
	if k < kindCount {
		return kindNames[k]
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// ParseKind returns the Kind named s.
func ParseKind(s string) (Kind, error) {
	for k := KindCardholderFunds; k < kindCount; k++ {
		if kindNames[k] == s {
			return k, nil
		}
	}
	return KindUnknown, fmt.Errorf("unknown account kind %q", s)
}

// AccountFlags are an account's balance constraints.
type AccountFlags uint16

const (
	// DebitsMustNotExceedCredits: the account's debits (pending and posted) may exceed its posted
	// credits by at most Limit. A cardholder's funds account has it: Limit is the overdraft, 0 for none.
	DebitsMustNotExceedCredits AccountFlags = 1 << iota
	// CreditsMustNotExceedDebits: the account's credits (pending and posted) may exceed its posted
	// debits by at most Limit, e.g. a prepaid account with a maximum balance.
	CreditsMustNotExceedDebits

	accountFlagsValid = DebitsMustNotExceedCredits | CreditsMustNotExceedDebits
)

// Balance is an account's four running totals. Everything else (available, net) derives from them.
type Balance struct {
	DebitsPending  int64
	DebitsPosted   int64
	CreditsPending int64
	CreditsPosted  int64
}

// Net is credits posted minus debits posted: positive for a credit-normal account in credit.
func (b Balance) Net() int64 { return b.CreditsPosted - b.DebitsPosted }

// Account is an account's definition and its balance as the batch sees it.
type Account struct {
	ID       ID
	Currency Currency
	Kind     Kind
	Flags    AccountFlags
	// Limit is how far the constrained side may pass the other, in minor units: an overdraft for
	// DebitsMustNotExceedCredits, a credit ceiling for CreditsMustNotExceedDebits.
	Limit int64
	// Ceiling, when positive, is the most either side of the account (its debits, pending and
	// posted together, or its credits) may total, below math.MaxInt64: a balance kept in parts
	// that are summed on read gives each part a share of int64, so that no sum of the parts can
	// pass it. 0 is math.MaxInt64.
	Ceiling int64
	Balance

	// batch bookkeeping, owned by Apply: the balance before the batch, and the batch that touched
	// it (or, once the batch is applied, the token that listed it in Outcome.Touched). A batch is
	// known by a pointer of its own, so an Account copied from another State (a cache, a
	// snapshot) never looks touched by the current batch.
	before  Balance
	touched *batchToken
}

// batchToken identifies one Apply call by its address.
type batchToken struct{ _ byte }

// Available is what a debit-constrained account can still spend: posted credits plus the overdraft
// limit, less posted and pending debits. It is meaningful for DebitsMustNotExceedCredits accounts.
// It saturates at math.MaxInt64 rather than wrap when posted credits and a large limit pass it.
func (a *Account) Available() int64 {
	debits := a.DebitsPosted + a.DebitsPending // both fit together: Apply keeps it so
	headroom := a.Limit - debits               // non-negative minus non-negative cannot overflow
	if a.CreditsPosted > math.MaxInt64-headroom && headroom > 0 {
		return math.MaxInt64
	}
	return a.CreditsPosted + headroom
}

// ceiling is the most either side of a may total.
func (a *Account) ceiling() int64 {
	if a.Ceiling > 0 {
		return a.Ceiling
	}
	return math.MaxInt64
}

// Validate reports whether the account's definition is well formed.
func (a *Account) Validate() error {
	switch {
	case a.ID.IsZero():
		return fmt.Errorf("account id must not be zero")
	case a.Kind == KindUnknown || a.Kind >= kindCount:
		return fmt.Errorf("account %s: unknown kind %d", a.ID, a.Kind)
	case a.Flags&^accountFlagsValid != 0:
		return fmt.Errorf("account %s: unknown flags %#x", a.ID, uint16(a.Flags))
	case a.Flags == accountFlagsValid:
		return fmt.Errorf("account %s: debit and credit constraints are mutually exclusive", a.ID)
	case a.Limit < 0:
		return fmt.Errorf("account %s: limit must not be negative", a.ID)
	case a.Ceiling < 0:
		return fmt.Errorf("account %s: ceiling must not be negative", a.ID)
	}
	if _, ok := a.Currency.MinorUnits(); !ok {
		return fmt.Errorf("account %s: unknown currency %q", a.ID, a.Currency)
	}
	return nil
}

// Code says what a transfer is for (a tap charge, a purchase, a fee). The engine stores it and
// compares it for idempotency; its meaning belongs to the packages that create transfers.
type Code uint16

// TransferFlags select what a transfer does.
type TransferFlags uint16

const (
	// Linked chains this transfer to the next one in the batch: the chain applies all or nothing.
	Linked TransferFlags = 1 << iota
	// Pending places a hold: the amount counts against the debit account's available balance
	// until the hold is posted, voided or expires.
	Pending
	// PostPending posts the hold named by Ref, fully or partly; the rest is released.
	PostPending
	// VoidPending releases the hold named by Ref.
	VoidPending
	// ExpirePending releases the hold named by Ref once its timeout has passed. The store's
	// expiry sweep submits it; a post or void after the timeout gets PendingExpired.
	ExpirePending
	// Reversal moves money back along the posted transfer named by Ref, at most its amount, once.
	Reversal

	transferFlagsValid = Linked | Pending | PostPending | VoidPending | ExpirePending | Reversal
	// refFlags are the flags that make a transfer act on another one, named by Ref.
	refFlags = PostPending | VoidPending | ExpirePending | Reversal
)

// Transfer moves Amount from the debit account to the credit account. It is immutable once
// created: corrections are new transfers.
type Transfer struct {
	ID              ID
	DebitAccountID  ID
	CreditAccountID ID
	Amount          int64
	// Ref names the transfer this one acts on: the hold for PostPending, VoidPending and
	// ExpirePending, the original for Reversal. Zero otherwise.
	Ref ID
	// UserData links the transfer to the business event that caused it (an event id).
	UserData ID
	// TimeoutSeconds is how long a Pending hold lives; 0 means until posted or voided.
	TimeoutSeconds uint32
	Code           Code
	Flags          TransferFlags
	// Currency, when set, is the currency the caller states the amount in: the transfer is
	// refused with CurrencyMismatch unless its accounts (a resolving transfer's, those of the
	// transfer it acts on) hold it, and a replay with another currency is not that transfer
	// again. It is not stored: a transfer's currency is its accounts'. Empty checks nothing.
	Currency Currency
	// Timestamp is when the engine applied the transfer, in Unix microseconds. Apply sets it;
	// whatever the caller put there is ignored.
	Timestamp int64
}

// ExpiresAt is when a Pending hold expires, in Unix microseconds, or 0 if it does not.
func (t *Transfer) ExpiresAt() int64 {
	if t.Flags&Pending == 0 || t.TimeoutSeconds == 0 {
		return 0
	}
	return t.Timestamp + int64(t.TimeoutSeconds)*1_000_000
}

// Resolution records that a transfer has been acted on: a hold posted, voided or expired, or a
// posted transfer reversed. Each transfer can be resolved once; the store keys resolutions by
// Target, so a second resolution cannot be written even by a concurrent writer.
type Resolution struct {
	Target ID
	By     ID
	Kind   ResolutionKind
}

// ResolutionKind says how a transfer was resolved.
type ResolutionKind uint8

const (
	ResolutionNone ResolutionKind = iota
	ResolutionPosted
	ResolutionVoided
	ResolutionExpired
	ResolutionReversed
)

var resolutionNames = [...]string{"none", "posted", "voided", "expired", "reversed"}

func (k ResolutionKind) String() string {
	if int(k) < len(resolutionNames) {
		return resolutionNames[k]
	}
	return fmt.Sprintf("resolution(%d)", uint8(k))
}

// ParseResolutionKind returns the ResolutionKind named s.
func ParseResolutionKind(s string) (ResolutionKind, error) {
	for k := ResolutionPosted; int(k) < len(resolutionNames); k++ {
		if resolutionNames[k] == s {
			return k, nil
		}
	}
	return ResolutionNone, fmt.Errorf("unknown resolution kind %q", s)
}

func resolutionOf(f TransferFlags) ResolutionKind {
	switch {
	case f&PostPending != 0:
		return ResolutionPosted
	case f&VoidPending != 0:
		return ResolutionVoided
	case f&ExpirePending != 0:
		return ResolutionExpired
	case f&Reversal != 0:
		return ResolutionReversed
	}
	return ResolutionNone
}
