// Package purchases is the domain of card purchases at merchants, venues and pharmacies:
// merchants, the authorization decision and its reason codes, per-card limits, hold timeouts by
// merchant category, and the life of an authorization after it (capture, void, expiry,
// incremental authorization, refunds), planned as ledger transfers.
//
// The package is pure: no I/O, no clock, no logger. The adapter reads the card, the limits, the
// day's usage and the authorization, and hands in the time and fresh transfer ids; what comes
// back is a decision or a plan of transfers for the ledger, which has the last word on funds.
package purchases

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/shopspring/decimal"

	"github.com/joinincard/engine/cards"
	"github.com/joinincard/engine/clearing"
	"github.com/joinincard/engine/fees"
	"github.com/joinincard/engine/ledger"
)

// Currency is the currency purchases are authorized in: the card pays on domestic CNY rails.
const Currency ledger.Currency = "CNY"

// Reason is why an authorization or an increment is declined. The codes are stable: merchants'
// terminals show them and act on them.
type Reason string

const (
	InsufficientFunds  Reason = "insufficient_funds"   // the card's available funds do not cover the amount
	CardBlocked        Reason = "card_blocked"         // the issuer or the cardholder blocked the card
	PermitExpired      Reason = "permit_expired"       // the cardholder's work permit has expired
	CardClosed         Reason = "card_closed"          // the card is closed
	LimitExceeded      Reason = "limit_exceeded"       // over the card's per-transaction or daily limit
	UnknownCard        Reason = "unknown_card"         // no card has this token
	InvalidAmount      Reason = "invalid_amount"       // not a positive CNY amount in fen within the bound
	MerchantNotAllowed Reason = "merchant_not_allowed" // the card does not pay merchants of this category
)

// Reasons lists every decline reason.
func Reasons() []Reason {
	return []Reason{InsufficientFunds, CardBlocked, PermitExpired, CardClosed, LimitExceeded, UnknownCard,
		InvalidAmount, MerchantNotAllowed}
}

const (
	// MaxAmount bounds one authorization, increment, capture or refund: 10,000,000.00 CNY is past
	// any card purchase, and a day's sum of them stays far inside int64.
	MaxAmount int64 = 1_000_000_000
	// DefaultPerTransaction is a card's per-transaction limit unless the issuer set another:
	// 50,000.00 CNY, the usual ceiling of a domestic debit card at a POS terminal.
	DefaultPerTransaction int64 = 5_000_000
	// DefaultPerDay is a card's daily limit unless the issuer set another: 100,000.00 CNY.
	DefaultPerDay int64 = 10_000_000
	// MaxIncrements bounds the increments of one authorization: a hotel stay extended night by
	// night for a fortnight, and a capture's linked group of at most MaxIncrements+2 transfers.
	MaxIncrements = 15
	// ExpiryMargin: an authorization this close to its expiry is treated as expired. A capture
	// planned a moment before the hold expires could find it expired when the ledger applies it;
	// refusing it a second early keeps the plan and the ledger in agreement.
	ExpiryMargin = time.Second
)

// Limits are a card's spending limits, in fen.
type Limits struct {
	PerTransaction int64 // one authorization, with its increments
	PerDay         int64 // the authorizations and increments approved in one Shanghai day
}

// DefaultLimits are the limits of a card whose issuer set none.
func DefaultLimits() Limits {
	return Limits{PerTransaction: DefaultPerTransaction, PerDay: DefaultPerDay}
}

// Validate reports whether l is usable: both limits positive, at most MaxAmount per transaction,
// and a day allowing at least one transaction.
func (l Limits) Validate() error {
	switch {
	case l.PerTransaction <= 0 || l.PerTransaction > MaxAmount:
		return fmt.Errorf("per-transaction limit must be from 0.01 to %s CNY", ledger.FormatAmount(MaxAmount, Currency))
	case l.PerDay < l.PerTransaction:
		return fmt.Errorf("daily limit must be at least the per-transaction limit")
	case l.PerDay > MaxDailyLimit:
		return fmt.Errorf("daily limit must be at most %s CNY", ledger.FormatAmount(MaxDailyLimit, Currency))
	}
	return nil
}

// MaxDailyLimit bounds a daily limit: ten transactions at the bound.
const MaxDailyLimit = 10 * MaxAmount

// Hold timeouts by merchant category: how long an authorization holds funds before the sweep
// releases it. Each is how long such a merchant may take to capture.
const (
	// DefaultHoldTimeout: a shop captures at its end-of-day batch; a week covers holidays.
	DefaultHoldTimeout = 7 * 24 * time.Hour
	// lodgingHoldTimeout: a hotel (7011) or car rental (7512) holds for the stay, up to a month.
	lodgingHoldTimeout = 30 * 24 * time.Hour
	// hospitalHoldTimeout: a hospital (8062) settles an inpatient stay at discharge.
	hospitalHoldTimeout = 30 * 24 * time.Hour
	// transitHoldTimeout: a transit operator (4111, 4131) prices a journey the same day.
	transitHoldTimeout = 24 * time.Hour
)

var holdTimeouts = map[string]time.Duration{
	"7011": lodgingHoldTimeout,
	"7512": lodgingHoldTimeout,
	"8062": hospitalHoldTimeout,
	"4111": transitHoldTimeout,
	"4131": transitHoldTimeout,
}

// HoldTimeout is how long an authorization at a merchant of category mcc holds funds.
func HoldTimeout(mcc string) time.Duration {
	if d, ok := holdTimeouts[mcc]; ok {
		return d
	}
	return DefaultHoldTimeout
}

// refusedMCCs are the categories the card program does not pay (cards.RefusedMCCs).
var refusedMCCs = cards.RefusedMCCs

// MerchantAllowed reports whether the card pays merchants of category mcc.
func MerchantAllowed(mcc string) bool { return cards.PaysMerchant(mcc) }

// incrementalMCCs are the categories that may raise an authorization after it: hotels (7011),
// car rental (7512), attractions with day passes (7991) and restaurants adding the tip (5812).
var incrementalMCCs = []string{"5812", "7011", "7512", "7991"}

// IncrementalAllowed reports whether merchants of category mcc may raise an authorization.
func IncrementalAllowed(mcc string) bool { return slices.Contains(incrementalMCCs, mcc) }

// Merchant is a merchant, venue, pharmacy or hospital that takes the card. It is a party of the
// registry (kind merchant), whose clearing account receives its purchases.
type Merchant struct {
	ID            string
	Name          string
	MCC           string
	City          string
	AcquiringBank string
	FeePlan       string
}

// Account is the merchant's clearing account.
func (m *Merchant) Account() ledger.ID { return clearing.PartyAccount(clearing.PartyMerchant, m.ID) }

// Validate checks what the domain needs of a merchant: an id, a name, a four-digit MCC, a city,
// an acquiring bank and a fee plan the catalog has.
func (m *Merchant) Validate(c *fees.Catalog) error {
	switch {
	case m.ID == "":
		return fmt.Errorf("merchant id is empty")
	case m.Name == "":
		return fmt.Errorf("merchant name is empty")
	case !fees.ValidMCC(m.MCC):
		return fmt.Errorf("mcc must be four digits")
	case m.City == "":
		return fmt.Errorf("city is empty")
	case m.AcquiringBank == "":
		return fmt.Errorf("acquiring bank is empty")
	}
	if _, ok := c.Plan(m.FeePlan); !ok {
		return fmt.Errorf("unknown fee plan %q, want one of %q", m.FeePlan, c.PlanIDs())
	}
	return nil
}

// maxAmountDigits bounds the integer digits of an amount: MaxAmount has eight in CNY, so nine or
// more is over the bound whatever follows, and is refused before decimal parses it.
const maxAmountDigits = 9

// ParseAmount reads a CNY amount written in yuan ("12.34") as fen: digits, an optional point with
// one or two decimals, no sign, no exponent, no leading zero, positive and at most MaxAmount. The
// error says what is wrong in words that never repeat more of the value than an amount.
func ParseAmount(s string) (int64, error) {
	whole, frac, hasPoint := strings.Cut(s, ".")
	switch {
	case s == "":
		return 0, fmt.Errorf("amount is empty")
	case !allDigits(whole) || hasPoint && !allDigits(frac):
		return 0, fmt.Errorf(`amount is not a decimal amount, want digits with an optional fraction such as "12.34"`)
	case len(whole) > 1 && whole[0] == '0':
		return 0, fmt.Errorf("amount has a leading zero")
	case len(frac) > 2:
		return 0, fmt.Errorf("amount has %d decimal places, CNY has 2", len(frac))
	case len(whole) > maxAmountDigits:
		return 0, fmt.Errorf("amount is over the bound of %s CNY", ledger.FormatAmount(MaxAmount, Currency))
	}
	d, err := decimal.NewFromString(s)
	if err != nil {
		return 0, fmt.Errorf("amount is not a decimal amount")
	}
	fen := d.Shift(2).IntPart() // exact: s has at most two decimals and nine integer digits
	switch {
	case fen == 0:
		return 0, fmt.Errorf("amount is zero, amounts must be positive")
	case fen > MaxAmount:
		return 0, fmt.Errorf("amount is over the bound of %s CNY", ledger.FormatAmount(MaxAmount, Currency))
	}
	return fen, nil
}

func allDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// FormatAmount writes fen as yuan with two decimals and no separators: 1234 is "12.34".
func FormatAmount(fen int64) string {
	return ledger.FormatDecimal(fen, Currency)
}

// Day returns the Shanghai calendar day that contains now, as the instants it starts and ends:
// daily limits count what was approved within it.
func Day(now time.Time) (start, end time.Time) {
	y, m, d := now.In(cards.Shanghai).Date()
	start = time.Date(y, m, d, 0, 0, 0, 0, cards.Shanghai)
	return start, start.AddDate(0, 0, 1)
}

// Check is what the authorization decision reads.
type Check struct {
	MCC string
	// Card is the card the request names, nil when no card has its token.
	Card *cards.Card
	// Amount is the amount to hold, in fen; AmountErr says why the request's amount is not one.
	Amount    int64
	AmountErr error
	Limits    Limits
	// Committed is what the authorization already holds: 0 for a new one, the authorization
	// and its increments so far for an increment. The per-transaction limit covers both.
	Committed int64
	// UsedToday is what the card had approved in the Shanghai day of Now before this request.
	UsedToday int64
	Now       time.Time
}

// Decision is the outcome of the domain's checks. An approval still needs the ledger's hold,
// which may decline it for insufficient funds.
type Decision struct {
	Approved bool
	Reason   Reason
	// Detail says more about a decline, in words for a merchant: never a personal value.
	Detail string
}

func decline(r Reason, format string, args ...any) Decision {
	return Decision{Reason: r, Detail: fmt.Sprintf(format, args...)}
}

// Decide judges an authorization (or an increment) before the ledger sees it: the merchant's
// category, the amount, the card and its status, then its limits. The order is the contract:
// a request with several faults is declined for the first.
func Decide(c Check) Decision {
	if !MerchantAllowed(c.MCC) {
		return decline(MerchantNotAllowed, "the card does not pay merchants of category %s", c.MCC)
	}
	if c.AmountErr != nil {
		return decline(InvalidAmount, "%v", c.AmountErr)
	}
	if c.Amount <= 0 || c.Amount > MaxAmount {
		return decline(InvalidAmount, "amount must be from 0.01 to %s CNY", FormatAmount(MaxAmount))
	}
	if c.Card == nil {
		return decline(UnknownCard, "no card has this token")
	}
	switch c.Card.Status(c.Now) {
	case cards.StatusClosed:
		return decline(CardClosed, "the card is closed")
	case cards.StatusBlocked:
		return decline(CardBlocked, "the card is blocked")
	case cards.StatusPermitExpired:
		return decline(PermitExpired, "the cardholder's work permit has expired")
	}
	if c.Committed+c.Amount > c.Limits.PerTransaction {
		return decline(LimitExceeded, "over the card's per-transaction limit of %s CNY", FormatAmount(c.Limits.PerTransaction))
	}
	if c.UsedToday+c.Amount > c.Limits.PerDay {
		return decline(LimitExceeded, "over the card's daily limit of %s CNY", FormatAmount(c.Limits.PerDay))
	}
	return Decision{Approved: true}
}

// FromLedger turns the ledger's refusal of an approved hold into a decline. A refusal other than
// one of funds is a fault of the plan, not of the card: an error.
func FromLedger(r ledger.Result) (Decision, error) {
	switch r {
	case ledger.InsufficientFunds:
		return decline(InsufficientFunds, "the card's available funds do not cover the amount"), nil
	case ledger.OverflowsDebits, ledger.OverflowsDebitsPending, ledger.OverflowsCredits, ledger.OverflowsCreditsPending:
		return decline(InvalidAmount, "the amount overflows the accounts it would move"), nil
	}
	return Decision{}, fmt.Errorf("the ledger refused a hold: %s", r)
}
