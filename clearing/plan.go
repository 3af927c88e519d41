package clearing

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/joinincard/engine/cards"
	"github.com/joinincard/engine/cities"
	"github.com/joinincard/engine/events"
	"github.com/joinincard/engine/ledger"
)

// PartyKind is the kind of an organisation the engine books for.
type PartyKind string

const (
	PartyBank          PartyKind = "bank"           // an issuer or acquiring bank: its settlement account
	PartyMerchant      PartyKind = "merchant"       // a merchant, venue, pharmacy or hospital: its clearing account
	PartyOperator      PartyKind = "operator"       // a transit operator: its clearing account
	PartyInsuranceFund PartyKind = "insurance_fund" // a city's pooled medical insurance fund
)

// PartyKinds lists the kinds of party.
func PartyKinds() []PartyKind {
	return []PartyKind{PartyBank, PartyMerchant, PartyOperator, PartyInsuranceFund}
}

// AccountKind is the ledger kind of a party's account.
func (k PartyKind) AccountKind() (ledger.Kind, error) {
	switch k {
	case PartyBank:
		return ledger.KindBankSettlement, nil
	case PartyMerchant:
		return ledger.KindMerchantClearing, nil
	case PartyOperator:
		return ledger.KindOperatorClearing, nil
	case PartyInsuranceFund:
		return ledger.KindInsuranceFund, nil
	}
	return ledger.KindUnknown, fmt.Errorf("unknown party kind %q", k)
}

// PartyAccount is the ledger account of a party, derived from its kind and id. Every purchase,
// tap and settlement names a few parties, and the derivation is a SHA-256, so the derived ids are
// remembered (partyAccounts).
func PartyAccount(kind PartyKind, id string) ledger.ID {
	k := partyKey{kind, id}
	partyAccounts.RLock()
	acc, ok := partyAccounts.ids[k]
	partyAccounts.RUnlock()
	if ok {
		return acc
	}
	acc = cards.AccountID(string(kind), id)
	partyAccounts.Lock()
	if len(partyAccounts.ids) < maxPartyAccounts {
		partyAccounts.ids[k] = acc
	}
	partyAccounts.Unlock()
	return acc
}

// maxPartyAccounts bounds the remembered party accounts: every merchant, operator, bank and fund
// of a province is a few tens of thousands; past the bound ids are derived each time, so that ids
// sent by a caller cannot grow the memory without end.
const maxPartyAccounts = 1 << 16

type partyKey struct {
	kind PartyKind
	id   string
}

var partyAccounts = struct {
	sync.RWMutex
	ids map[partyKey]ledger.ID
}{ids: make(map[partyKey]ledger.ID)}

// CanonicalPartyID is the id a party is registered and found by: an insurance fund's is its
// city's canonical id (cities.Canonical), whichever of the city's names was given; every other
// party's id is as given.
func CanonicalPartyID(kind PartyKind, id string) string {
	if kind == PartyInsuranceFund {
		return cities.Canonical(id)
	}
	return id
}

// FeeIncomeAccount is the engine's income from merchant discount and network fees.
var FeeIncomeAccount = cards.AccountID("system", "fee_income")

// Directory is what planning reads about the world. The adapter prefetches it for a batch.
type Directory interface {
	// Card returns the card that token names (its own, physical or digital token).
	Card(token string) (*cards.Card, bool)
	// Party reports whether the party is registered.
	Party(kind PartyKind, id string) bool
	// MerchantCategory returns the category (MCC) a merchant was registered with, if it was
	// registered with one.
	MerchantCategory(id string) (string, bool)
	// ClearedPurchase returns the purchase an event applied before, with its refunds so far,
	// for refunds: the event's first transfer and how much of it was given back.
	ClearedPurchase(eventID uuid.UUID) (*ClearedPurchase, bool)
	// Purchases plans the clearing records of authorized purchases; nil when the adapter has
	// none to plan.
	Purchases() Purchases
	// StatusHistory returns the declared statuses the engine had recorded for card before the
	// batch, oldest first (a card is active until the first), for a purchase cleared without an
	// authorization.
	StatusHistory(card *cards.Card) []cards.StatusChange
}

// Purchases plans what a clearing record does to an authorization made through the
// authorization API, exactly as the API would: a purchase.cleared naming an authorization
// captures it (fully or partly, with the merchant's fee), and a purchase.refunded of such a
// capture is a refund against it (partial and repeated, never more than captured). The purchases
// adapter implements it, with what the batch's records name prefetched.
type Purchases interface {
	// PlanCapture plans the capture of data.AuthorizationID; a plan with no transfers and no
	// reason records a capture the API already made with the same amount.
	PlanCapture(e *events.Event, data *events.PurchaseCleared, card *cards.Card, now time.Time) Plan
	// PlanRefund plans a refund of an authorized purchase; ok is false when the original event
	// captured no authorization, and the refund is one of a purchase cleared without one.
	PlanRefund(e *events.Event, data *events.PurchaseRefunded, card *cards.Card, now time.Time) (plan Plan, ok bool)
}

// Status is what became of an event.
type Status string

const (
	Applied  Status = "applied"  // its transfers were created
	Accepted Status = "accepted" // recorded without transfers (a tap awaiting its travel day, a registry change)
	Rejected Status = "rejected" // refused with a reason; nothing of it was applied
)

// Plan is what an event should do: transfers to apply as one linked group, or why not.
type Plan struct {
	Transfers []ledger.Transfer
	// Reason says why an event is rejected; empty otherwise.
	Reason string
	// Refund is the record of a refund of a purchase cleared without an authorization, when the
	// event is one.
	Refund *ClearedRefund
}

// MaxClearedRefunds bounds the refunds of one purchase cleared without an authorization, as
// purchases.MaxRefunds bounds an authorized one's: a pharmacy taking back a basket item by item.
const MaxClearedRefunds = 100

// ClearedPurchase is a purchase an event applied before, as its refunds read it: the event's
// first transfer, and what the refunds applied since have given back.
type ClearedPurchase struct {
	EventID  uuid.UUID
	Type     events.Type
	Transfer ledger.Transfer
	Refunded int64 // fen given back so far
	Refunds  int   // refunds applied so far
}

// ClearedRefund is one refund of a purchase cleared without an authorization: the n-th of the
// purchase, with the running total. The store keeps them, one row per refund, and two writers
// refunding one purchase at once collide on (purchase, sequence): the total never passes the
// purchase.
type ClearedRefund struct {
	EventID         uuid.UUID // the purchase.refunded event
	OriginalEventID uuid.UUID // the purchase.cleared event refunded
	Seq             int       // 1 for the purchase's first refund
	Amount          int64
	RefundedTotal   int64 // the purchase's refunds up to and with this one
	Transfer        ledger.ID
}

// Reject returns a plan that refuses the event.
func Reject(format string, args ...any) Plan { return Plan{Reason: fmt.Sprintf(format, args...)} }

// PlanEvent decides the transfers of a money event. Registry events and taps plan no transfers:
// the adapter records them. now is the batch's time, for card status; presented is when the event
// reached the engine (its Kafka timestamp, at the latest now), for an offline purchase's
// presentment window.
func PlanEvent(e *events.Event, d Directory, now, presented time.Time) Plan {
	switch data := e.Data.(type) {
	case *events.FundsLoaded:
		card, ok := d.Card(e.CardToken)
		if !ok {
			return Reject("unknown card")
		}
		if why := notInCardCurrency(data.Amount); why != "" {
			return Reject("%s", why)
		}
		if card.Status(now) == cards.StatusClosed {
			return Reject("card is closed")
		}
		if !d.Party(PartyBank, card.IssuerBank) {
			return Reject("issuer bank %q is not registered", card.IssuerBank)
		}
		return single(e, ledger.Transfer{DebitAccountID: PartyAccount(PartyBank, card.IssuerBank),
			CreditAccountID: card.FundsAccount, Amount: data.Amount.Minor, Code: CodeFundsLoaded})
	case *events.PurchaseCleared:
		// A clearing record is a purchase the merchant has completed. One that completes an
		// authorization was judged when it was authorized (the card's status, the merchant's
		// category, the limits), so only the card's existence matters here. One that no
		// authorization preceded (an offline purchase) is refused at a category the card does not
		// pay, which the record itself says, when it is presented too late or for more than a
		// terminal may charge offline (offlinePurchaseBeyondBounds), and when the card could not
		// pay at the purchase's time (offlinePurchaseRefusal).
		card, ok := d.Card(e.CardToken)
		if !ok {
			return Reject("unknown card")
		}
		if why := notInCardCurrency(data.Amount); why != "" {
			return Reject("%s", why)
		}
		if data.AuthorizationID != uuid.Nil {
			if p := d.Purchases(); p != nil {
				return p.PlanCapture(e, data, card, now)
			}
			return Reject("authorization %s is not known", data.AuthorizationID)
		}
		if !cards.PaysMerchant(data.MCC) {
			return Reject("merchant category %s is one the card does not pay", data.MCC)
		}
		if !d.Party(PartyMerchant, data.MerchantID) {
			return Reject("merchant %q is not registered", data.MerchantID)
		}
		// The record states its own category, but a merchant registered with one the card does
		// not pay is not paid under another.
		if mcc, ok := d.MerchantCategory(data.MerchantID); ok && !cards.PaysMerchant(mcc) {
			return Reject("merchant %q is registered in category %s, one the card does not pay", data.MerchantID, mcc)
		}
		if why := offlinePurchaseBeyondBounds(e, data.Amount.Minor, presented); why != "" {
			return Reject("%s", why)
		}
		if why := offlinePurchaseRefusal(e, card, d.StatusHistory(card), now); why != "" {
			return Reject("%s", why)
		}
		return single(e, ledger.Transfer{DebitAccountID: card.FundsAccount,
			CreditAccountID: PartyAccount(PartyMerchant, data.MerchantID), Amount: data.Amount.Minor, Code: CodePurchase})
	case *events.PurchaseRefunded:
		card, ok := d.Card(e.CardToken)
		if !ok {
			return Reject("unknown card")
		}
		if why := notInCardCurrency(data.Amount); why != "" {
			return Reject("%s", why)
		}
		if p := d.Purchases(); p != nil {
			if plan, ok := p.PlanRefund(e, data, card, now); ok {
				return plan
			}
		}
		original, ok := d.ClearedPurchase(data.OriginalEventID)
		if !ok {
			return Reject("original purchase %s was not applied", data.OriginalEventID)
		}
		return planClearedRefund(e, data, card, original)
	case *events.MedicalContribution:
		card, ok := d.Card(e.CardToken)
		if !ok {
			return Reject("unknown card")
		}
		if why := notInCardCurrency(data.Amount); why != "" {
			return Reject("%s", why)
		}
		if why := contributionPeriodOutside(e, data.Period, now); why != "" {
			return Reject("%s", why)
		}
		// A closed card's personal account pays no bill again: the employer's money goes
		// elsewhere, as a load of a closed card's funds does.
		if card.Status(now) == cards.StatusClosed {
			return Reject("card is closed")
		}
		if !d.Party(PartyInsuranceFund, card.InsuranceCity) {
			return Reject("insurance fund of %q is not registered", card.InsuranceCity)
		}
		return single(e, ledger.Transfer{DebitAccountID: PartyAccount(PartyInsuranceFund, card.InsuranceCity),
			CreditAccountID: card.MedicalAccount, Amount: data.Amount.Minor, Code: CodeMedicalContribution})
	}
	return Plan{}
}

const (
	// MedicalContributionMaxLeadMonths is how many months after the month it is paid in a
	// contribution's period may be: an employer pays a month's contribution in that month, or at
	// the end of the month before. A period further ahead (9999-12) is a typing error, and taken
	// it would count in a year the card has not reached.
	MedicalContributionMaxLeadMonths = 1
	// MedicalContributionMaxArrearsMonths is how many months before the month it is paid in a
	// contribution's period may be: an employer paying arrears (补缴) for months it missed, as an
	// audit finds them some years on. A period further back (0001-01) is a typing error.
	MedicalContributionMaxArrearsMonths = 36
)

// contributionPeriodOutside says why a contribution's period is outside its window, or "" when it
// is within it. The months are Shanghai's. The month it is paid in is occurred_at's; ahead it
// counts from the earlier of occurred_at and now, since a producer's clock may have put
// occurred_at in the future, and a period there with it.
func contributionPeriodOutside(e *events.Event, p events.Period, now time.Time) string {
	monthOf := func(t time.Time) int {
		t = t.In(cards.Shanghai)
		return t.Year()*12 + int(t.Month()) - 1
	}
	periodOf := func(m int) events.Period { return events.Period{Year: m / 12, Month: time.Month(m%12 + 1)} }
	month := p.Year*12 + int(p.Month) - 1
	paidBy := e.OccurredAt
	if now.Before(paidBy) {
		paidBy = now
	}
	if latest := monthOf(paidBy) + MedicalContributionMaxLeadMonths; month > latest {
		return fmt.Sprintf("period %s is after %s: a contribution is for the month it is paid in or at most %d month ahead",
			p, periodOf(latest), MedicalContributionMaxLeadMonths)
	}
	if earliest := monthOf(e.OccurredAt) - MedicalContributionMaxArrearsMonths; month < earliest {
		return fmt.Sprintf("period %s is before %s: arrears are paid for at most %d months back",
			p, periodOf(earliest), MedicalContributionMaxArrearsMonths)
	}
	return ""
}

const (
	// MaxOfflinePurchaseAge is the presentment window of an offline purchase: its clearing record
	// must reach the engine at most this long after the purchase was made (occurred_at). A card
	// network gives an acquirer 30 days to present a transaction, after which the issuer may
	// refuse it; it is also how late an offline transit reader may upload a tap. A terminal that
	// stayed offline longer, or a record replayed from a merchant's archive, charges the card
	// nothing.
	MaxOfflinePurchaseAge = 30 * 24 * time.Hour
	// MaxOfflinePurchaseAmount is the most a terminal may charge the card offline, without asking
	// the engine: a network's offline ceiling (UnionPay's offline electronic cash holds at most
	// 1,000.00 CNY). A larger purchase is authorized online (POST /v1/authorizations), which
	// checks the card's limits and funds before the merchant hands the goods over.
	MaxOfflinePurchaseAmount int64 = 1000_00
	// MaxOfflinePurchaseLead is how far after its presentment an offline purchase may be dated: a
	// terminal's clock set to the wrong time zone (Shanghai time written as UTC is 8 hours ahead,
	// and no zone is more than 14 hours from UTC) or drifting. A record dated further ahead comes
	// from a clock that cannot be trusted, and a network refuses a transaction dated in the
	// future; taking it would also let a record escape the presentment window by its date.
	MaxOfflinePurchaseLead = 24 * time.Hour
	// MaxOfflinePurchaseBeforeIssue is how far before its card was issued (the registration's
	// occurred_at) an offline purchase may be dated: no terminal read a card that did not exist
	// yet, so an earlier date is a terminal's clock behind by as much as MaxOfflinePurchaseLead
	// allows ahead, and no more. A record dated further back names a card that could not pay.
	MaxOfflinePurchaseBeforeIssue = MaxOfflinePurchaseLead
)

// offlinePurchaseBeyondBounds says why a purchase cleared without an authorization is outside
// what a terminal may charge offline, presented at presented, or "" when it is within.
func offlinePurchaseBeyondBounds(e *events.Event, amount int64, presented time.Time) string {
	if age := presented.Sub(e.OccurredAt); age > MaxOfflinePurchaseAge {
		return fmt.Sprintf("offline purchase presented more than %d days after it was made: the presentment window is %d days",
			int64(age/(24*time.Hour)), int64(MaxOfflinePurchaseAge/(24*time.Hour)))
	}
	if lead := e.OccurredAt.Sub(presented); lead > MaxOfflinePurchaseLead {
		return fmt.Sprintf("offline purchase is dated more than %d hours after it was presented: the terminal's clock is wrong",
			int64(MaxOfflinePurchaseLead/time.Hour))
	}
	if amount > MaxOfflinePurchaseAmount {
		return fmt.Sprintf("offline purchase of %s CNY is over the %s CNY a terminal may approve offline",
			ledger.FormatDecimal(amount, cards.Currency), ledger.FormatDecimal(MaxOfflinePurchaseAmount, cards.Currency))
	}
	return ""
}

// offlinePurchaseRefusal says why a purchase cleared without an authorization may not charge the
// card, or "" when it may. A terminal that could not go online took the card in good faith: the
// purchase is owed if the card could pay when it was made (occurred_at), whatever became of the
// card since, and refused if by then the card was closed or blocked (by the statuses the engine
// had recorded, in force from the moment it recorded each, as a transit tap is judged) or its
// holder's permit had expired, which no online terminal would have let through; so is one dated
// before the card was issued by more than MaxOfflinePurchaseBeforeIssue. A purchase stamped
// after the batch's time is judged by the card's status now, with the batch's own changes.
func offlinePurchaseRefusal(e *events.Event, card *cards.Card, history []cards.StatusChange, now time.Time) string {
	if !card.IssuedAt.IsZero() && card.IssuedAt.Sub(e.OccurredAt) > MaxOfflinePurchaseBeforeIssue {
		return fmt.Sprintf("offline purchase is dated more than %d hours before its card was issued",
			int64(MaxOfflinePurchaseBeforeIssue/time.Hour))
	}
	status := card.Status(now)
	if !e.OccurredAt.After(now) {
		status, _, _ = cards.StatusAt(history, card.PermitValidUntil, e.OccurredAt)
	}
	switch status {
	case cards.StatusClosed:
		return "card was closed when the purchase was made"
	case cards.StatusBlocked:
		return "card was blocked when the purchase was made"
	case cards.StatusPermitExpired:
		return "cardholder's work permit had expired when the purchase was made"
	}
	return ""
}

// notInCardCurrency says why an amount cannot move a card's money: the ledger's transfers carry
// no currency of their own, so an amount in another currency the engine books would be taken as
// that many fen of the card's. Empty when the amount is in the card's currency.
func notInCardCurrency(m events.Money) string {
	if m.Currency != cards.Currency {
		return fmt.Sprintf("the amount is in %s, the card's accounts are in %s", m.Currency, cards.Currency)
	}
	return ""
}

// planClearedRefund plans a refund of a purchase cleared without an authorization: a transfer of
// its own from the merchant's clearing account back to the card's funds, so that a purchase can
// take many, never more than the purchase in all. Such a purchase paid no merchant fee (only a
// capture of an authorization does), so its refunds return none.
func planClearedRefund(e *events.Event, data *events.PurchaseRefunded, card *cards.Card, o *ClearedPurchase) Plan {
	merchant := PartyAccount(PartyMerchant, data.MerchantID)
	t := &o.Transfer
	switch {
	case o.Type != events.TypePurchaseCleared || t.Code != CodePurchase || t.Flags&^ledger.Linked != 0:
		return Reject("original event %s is not a purchase", o.EventID)
	case t.CreditAccountID != merchant:
		return Reject("original purchase %s was at another merchant", o.EventID)
	case t.DebitAccountID != card.FundsAccount:
		return Reject("original purchase %s is another card's", o.EventID)
	case o.Refunds >= MaxClearedRefunds:
		return Reject("purchase %s has %d refunds, the most it may have", o.EventID, MaxClearedRefunds)
	}
	left := t.Amount - o.Refunded
	if data.Amount.Minor > left {
		return Reject("refund of %s exceeds the %s purchased and not yet refunded",
			data.Amount, events.Money{Minor: left, Currency: data.Amount.Currency})
	}
	plan := single(e, ledger.Transfer{DebitAccountID: merchant, CreditAccountID: card.FundsAccount, Amount: data.Amount.Minor,
		Code: CodeRefund})
	plan.Refund = &ClearedRefund{EventID: e.ID, OriginalEventID: o.EventID, Seq: o.Refunds + 1, Amount: data.Amount.Minor,
		RefundedTotal: o.Refunded + data.Amount.Minor, Transfer: plan.Transfers[0].ID}
	return plan
}

// single plans one transfer for the event, with an id derived from the event.
func single(e *events.Event, t ledger.Transfer) Plan {
	t.ID = TransferID(e.ID, e.OccurredAt, 0)
	t.UserData = ledger.ID(e.ID)
	return Plan{Transfers: []ledger.Transfer{t}}
}

// TransferID derives the id of an event's leg-th transfer: a UUIDv7 whose time is the event's, so
// the ledger's index grows at its right edge, and whose other bits hash the event id and leg, so
// replaying the event can only ever name the same transfers.
func TransferID(eventID uuid.UUID, occurred time.Time, leg int) ledger.ID {
	var buf [20]byte
	copy(buf[:16], eventID[:])
	binary.BigEndian.PutUint32(buf[16:], uint32(leg))
	h := sha256.Sum256(buf[:])
	var id ledger.ID
	ms := uint64(occurred.UnixMilli())
	id[0], id[1], id[2], id[3], id[4], id[5] = byte(ms>>40), byte(ms>>32), byte(ms>>24), byte(ms>>16), byte(ms>>8), byte(ms)
	copy(id[6:], h[:10])
	id[6] = id[6]&0x0f | 0x70 // version 7
	id[8] = id[8]&0x3f | 0x80 // RFC 9562 variant
	return id
}
