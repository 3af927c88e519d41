// Package cards is the card registry's domain: a Join in Card with the ten and more elements behind
// it, and the status rules. Personal numbers (card, passport, social security, work permit, bank
// account) exist here only as tokens and masked forms; the clear numbers never reach this package.
package cards

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/joinincard/engine/cities"
	"github.com/joinincard/engine/events"
	"github.com/joinincard/engine/ledger"
)

// Shanghai is the card's civil time zone: travel days, permit validity and settlement cut-offs are
// reckoned in it. China has kept UTC+8 without daylight saving since 1991.
var Shanghai = time.FixedZone("CST", 8*60*60)

// RefusedMCCs are the merchant categories the card program does not pay: betting (7995),
// quasi-cash (6051) and money transfer (4829), which a resident's salary card may not be drawn
// down by. An authorization at such a merchant is declined, and a clearing record of one that no
// authorization preceded is refused.
var RefusedMCCs = []string{"4829", "6051", "7995"}

// PaysMerchant reports whether the card pays merchants of category mcc.
func PaysMerchant(mcc string) bool { return !slices.Contains(RefusedMCCs, mcc) }

// Status is what a card may do now. Only an active card authorizes payments.
type Status string

const (
	StatusActive        Status = "active"
	StatusBlocked       Status = "blocked"        // blocked by the issuer or the cardholder
	StatusPermitExpired Status = "permit_expired" // the work permit's validity has ended
	StatusClosed        Status = "closed"
)

// Card is one Join in Card: a physical card and a digital token on a phone, one funds account
// (the linked bank account as mirrored in the ledger) and one personal medical account.
type Card struct {
	Token          string // the card's token, the key of its events
	PhysicalToken  string // optional
	DigitalToken   string // optional
	HolderName     string
	Nationality    string // ISO 3166-1 alpha-3
	PassportToken  string
	PassportMasked string
	SSNToken       string
	SSNMasked      string
	PermitToken    string
	PermitMasked   string
	// PermitValidUntil is the last day, in Shanghai, on which the work permit is valid.
	PermitValidUntil  events.Date
	InsuranceCity     string
	IssuerBank        string
	BankAccountToken  string
	BankAccountMasked string
	CardNumberMasked  string
	// Declared is the status the issuer set: active, blocked or closed. Status derives the rest.
	Declared     events.CardStatus
	StatusReason string
	// FundsAccount and MedicalAccount are the card's ledger accounts.
	FundsAccount   ledger.ID
	MedicalAccount ledger.ID
	// IssuedAt is when the issuer issued the card: its registration's occurred_at. Zero when not
	// known, for a card registered before the engine kept it.
	IssuedAt time.Time
}

// Status derives the card's status at instant now: closed and blocked as declared, otherwise
// permit_expired once the permit's last valid day has passed in Shanghai, otherwise active.
func (c *Card) Status(now time.Time) Status {
	switch c.Declared {
	case events.StatusClosed:
		return StatusClosed
	case events.StatusBlocked:
		return StatusBlocked
	}
	if PermitExpired(c.PermitValidUntil, now) {
		return StatusPermitExpired
	}
	return StatusActive
}

// PermitExpired reports whether a permit valid until validUntil has expired at instant at: its
// last valid day has passed in Shanghai.
func PermitExpired(validUntil events.Date, at time.Time) bool {
	y, m, d := at.In(Shanghai).Date()
	return dateBefore(validUntil, events.Date{Year: y, Month: m, Day: d})
}

// PermitExpiredSince is the instant a permit valid until validUntil expires: midnight in Shanghai
// after its last valid day.
func PermitExpiredSince(validUntil events.Date) time.Time {
	return time.Date(validUntil.Year, validUntil.Month, validUntil.Day+1, 0, 0, 0, 0, Shanghai)
}

// StatusChange is a declared status as the engine recorded it: in force from At, the instant the
// engine applied the change, until the next change.
type StatusChange struct {
	At       time.Time
	Declared events.CardStatus
	Reason   string
}

// Cause says why a card may not pay, in the words a transit gate or a merchant's terminal shows:
// the deny list carries it.
type Cause string

const (
	CauseLost          Cause = "lost"           // blocked, the card reported lost
	CauseStolen        Cause = "stolen"         // blocked, the card reported stolen
	CauseBlocked       Cause = "blocked"        // blocked for any other reason
	CauseClosed        Cause = "closed"         // closed for good
	CausePermitExpired Cause = "permit_expired" // the cardholder's work permit has expired
)

// CauseOf is why a card in status s may not pay, with reason the text its status was declared
// with; "" for an active card. A block whose reason says stolen or theft is stolen, one that says
// lost or missing is lost (as words, in any case), and any other is blocked.
func CauseOf(s Status, reason string) Cause {
	switch s {
	case StatusClosed:
		return CauseClosed
	case StatusPermitExpired:
		return CausePermitExpired
	case StatusBlocked:
	default:
		return ""
	}
	words := strings.FieldsFunc(strings.ToLower(reason), func(r rune) bool { return r < 'a' || r > 'z' })
	cause := CauseBlocked
	for _, w := range words {
		switch w {
		case "stolen", "theft":
			return CauseStolen
		case "lost", "missing":
			cause = CauseLost
		}
	}
	return cause
}

// StatusAt derives a card's status at instant at from the declared statuses the engine recorded
// for it (history, oldest first; a card is active from its registration until the first) and its
// permit's validity: the status, why it may not pay, and since when. A card active at at has no
// cause, and since is zero.
func StatusAt(history []StatusChange, permitValidUntil events.Date, at time.Time) (Status, Cause, time.Time) {
	var inForce *StatusChange
	for i := range history {
		if history[i].At.After(at) {
			break
		}
		inForce = &history[i]
	}
	if inForce != nil {
		switch inForce.Declared {
		case events.StatusClosed:
			return StatusClosed, CauseClosed, inForce.At
		case events.StatusBlocked:
			return StatusBlocked, CauseOf(StatusBlocked, inForce.Reason), inForce.At
		}
	}
	if PermitExpired(permitValidUntil, at) {
		return StatusPermitExpired, CausePermitExpired, PermitExpiredSince(permitValidUntil)
	}
	return StatusActive, "", time.Time{}
}

func dateBefore(a, b events.Date) bool {
	if a.Year != b.Year {
		return a.Year < b.Year
	}
	if a.Month != b.Month {
		return a.Month < b.Month
	}
	return a.Day < b.Day
}

// FromRegistration builds a card from its registration event, with its two ledger accounts. Its
// insurance city is the city's canonical id, whichever of its names the event used.
func FromRegistration(token string, r *events.CardRegistered) Card {
	return Card{
		Token: token, PhysicalToken: r.PhysicalToken, DigitalToken: r.DigitalToken,
		HolderName: r.HolderName, Nationality: r.Nationality,
		PassportToken: r.PassportToken, PassportMasked: r.PassportMasked,
		SSNToken: r.SocialSecurityToken, SSNMasked: r.SocialSecurityMasked,
		PermitToken: r.WorkPermitToken, PermitMasked: r.WorkPermitMasked, PermitValidUntil: r.PermitValidUntil,
		InsuranceCity: cities.Canonical(r.InsuranceCity), IssuerBank: r.IssuerBank,
		BankAccountToken: r.BankAccountToken, BankAccountMasked: r.BankAccountMasked,
		CardNumberMasked: r.CardNumberMasked,
		Declared:         events.StatusActive,
		FundsAccount:     AccountID("funds", token),
		MedicalAccount:   AccountID("medical", token),
	}
}

// Currency is the currency of a card's accounts: the card pays on domestic rails.
const Currency ledger.Currency = "CNY"

// Accounts returns the ledger accounts a new card opens: funds that cannot be overdrawn, and a
// personal medical account that cannot be overdrawn either.
func (c *Card) Accounts() []ledger.Account {
	return []ledger.Account{
		{ID: c.FundsAccount, Currency: Currency, Kind: ledger.KindCardholderFunds, Flags: ledger.DebitsMustNotExceedCredits},
		{ID: c.MedicalAccount, Currency: Currency, Kind: ledger.KindMedicalPersonal, Flags: ledger.DebitsMustNotExceedCredits},
	}
}

// Tokens lists every token that names this card: its own, and its physical and digital tokens.
func (c *Card) Tokens() []string {
	ts := []string{c.Token}
	for _, t := range []string{c.PhysicalToken, c.DigitalToken} {
		// Each once: a registration may name the card's own token, or one token as both the
		// physical and the digital card's.
		if t != "" && !slices.Contains(ts, t) {
			ts = append(ts, t)
		}
	}
	return ts
}

// Validate checks what the registry needs beyond what the event decoder already checked.
func (c *Card) Validate() error {
	if c.Token == "" {
		return fmt.Errorf("card token is empty")
	}
	if c.FundsAccount.IsZero() || c.MedicalAccount.IsZero() {
		return fmt.Errorf("card %s has no accounts", c.Token)
	}
	return nil
}
