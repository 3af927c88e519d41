package purchases

import (
	"fmt"
	"time"

	"github.com/joinincard/engine/cards"
	"github.com/joinincard/engine/clearing"
	"github.com/joinincard/engine/fees"
	"github.com/joinincard/engine/ledger"
)

// MaxRefunds bounds the refunds of one purchase: a pharmacy taking back a basket item by item.
const MaxRefunds = 100

// Status is where an authorization is in its life.
type Status string

const (
	StatusDeclined   Status = "declined"   // never held anything
	StatusAuthorized Status = "authorized" // holding funds, open to capture, void and increments
	StatusCaptured   Status = "captured"   // a purchase: posted, fully or partly, and refundable
	StatusVoided     Status = "voided"     // released by the merchant
	StatusExpired    Status = "expired"    // released after its timeout, or past it
)

// Hold is one pending transfer of an authorization: its own, or an approved increment's.
type Hold struct {
	ID        ledger.ID
	Amount    int64
	CreatedAt time.Time // when it was approved: the day whose total it counts in
}

// Authorization is an authorization with what has happened to it since: the state every
// operation on it is judged against.
type Authorization struct {
	ID         ledger.ID // also the id of its first hold's transfer
	MerchantID string
	MCC        string
	// CardToken is the card's own token, whichever token the request used; "" when no card had
	// it (the request's token is not kept: a client may have sent a card number in its place).
	CardToken string
	Funds     ledger.ID // the card's funds account; zero when no card had the token
	Merchant  ledger.ID // the merchant's clearing account
	Amount    int64     // asked, in fen; 0 when the amount was invalid
	Decision
	CreatedAt time.Time
	ExpiresAt time.Time // zero when declined

	Holds      []Hold // the approved holds, its own first, then its increments'
	Increments int    // increments asked, approved or declined
	Close      *Close // its capture or void, once
	Expired    bool   // the sweep has expired its holds
	Refunded   int64  // refunded so far
	Refunds    int    // refunds so far
}

// Held is what the authorization holds or held: its hold and its approved increments.
func (a *Authorization) Held() int64 {
	var n int64
	for _, h := range a.Holds {
		n += h.Amount
	}
	return n
}

// ReleasedWithin is the part of released, what a capture or void gave back of the holds, that
// came from holds approved in [start, end): the day whose total each counts in. A capture posts
// the holds in order, so what it releases is the latest holds' first; a void releases them all.
func (a *Authorization) ReleasedWithin(released int64, start, end time.Time) int64 {
	var n int64
	for i := len(a.Holds) - 1; i >= 0 && released > 0; i-- {
		h := a.Holds[i]
		part := min(released, h.Amount)
		released -= part
		if !h.CreatedAt.Before(start) && h.CreatedAt.Before(end) {
			n += part
		}
	}
	return n
}

// Status is the authorization's status at now.
func (a *Authorization) Status(now time.Time) Status {
	switch {
	case !a.Approved:
		return StatusDeclined
	case a.Close != nil && a.Close.Kind == Captured:
		return StatusCaptured
	case a.Close != nil:
		return StatusVoided
	case a.Expired || !now.Add(ExpiryMargin).Before(a.ExpiresAt):
		return StatusExpired
	}
	return StatusAuthorized
}

// CloseKind says how an authorization was closed.
type CloseKind string

const (
	Captured CloseKind = "captured"
	Voided   CloseKind = "voided"
)

// Close is the capture or void of an authorization. Each authorization is closed once.
type Close struct {
	ID              ledger.ID
	AuthorizationID ledger.ID
	Kind            CloseKind
	Amount          int64            // captured; 0 for a void
	Released        int64            // held and not captured
	Fee             fees.Fee         // what the merchant paid on the capture
	Foreign         fees.ForeignCost // what the capture would have cost on a foreign card
	CreatedAt       time.Time
}

// Increment is a request to raise an authorization, approved with a hold of its own or declined.
type Increment struct {
	ID              ledger.ID // also its hold's transfer id when approved
	AuthorizationID ledger.ID
	Amount          int64
	Decision
	CreatedAt time.Time
}

// Refund gives money back against a captured purchase.
type Refund struct {
	ID              ledger.ID
	AuthorizationID ledger.ID
	Seq             int   // 1 for the purchase's first refund
	Amount          int64 // this refund
	RefundedTotal   int64 // the purchase's refunds up to and with this one
	FeeReturned     fees.Fee
	// ForeignNet is what the purchase, net of its refunds so far, would have cost on a foreign
	// card: the card's saving on it from now on.
	ForeignNet fees.ForeignCost
	TransferID ledger.ID // the refund's transfer to the card
	CreatedAt  time.Time
}

// RefusalCode says why an operation on an authorization is refused.
type RefusalCode string

const (
	RefusedNotFound RefusalCode = "not_found" // no such authorization for this merchant
	RefusedInvalid  RefusalCode = "invalid"   // the amount is not one
	RefusedConflict RefusalCode = "conflict"  // the authorization's state does not allow it
)

// Refusal is an operation refused by the authorization's state: nothing of it was applied.
type Refusal struct {
	Code    RefusalCode
	Message string
}

func (r *Refusal) Error() string { return string(r.Code) + ": " + r.Message }

func refuse(code RefusalCode, format string, args ...any) *Refusal {
	return &Refusal{Code: code, Message: fmt.Sprintf(format, args...)}
}

// checkOpen refuses an operation that needs an authorization still holding funds.
func (a *Authorization) checkOpen(now time.Time) *Refusal {
	switch a.Status(now) {
	case StatusDeclined:
		return refuse(RefusedConflict, "the authorization was declined")
	case StatusCaptured:
		return refuse(RefusedConflict, "the authorization is already captured")
	case StatusVoided:
		return refuse(RefusedConflict, "the authorization is voided")
	case StatusExpired:
		return refuse(RefusedConflict, "the authorization has expired")
	}
	return nil
}

// PlanAuthorization makes an authorization from its decision and, when approved, its hold: a
// pending transfer from the card's funds to the merchant's clearing account whose id is the
// authorization's, expiring after the merchant category's timeout.
func PlanAuthorization(id ledger.ID, m *Merchant, card *cards.Card, amount int64, d Decision, now time.Time) (Authorization, *ledger.Transfer) {
	a := Authorization{ID: id, MerchantID: m.ID, MCC: m.MCC, Merchant: m.Account(), Amount: amount, Decision: d, CreatedAt: now}
	if card != nil {
		a.CardToken, a.Funds = card.Token, card.FundsAccount
	}
	if !d.Approved {
		return a, nil
	}
	timeout := HoldTimeout(m.MCC)
	a.ExpiresAt = now.Add(timeout)
	return a, &ledger.Transfer{ID: id, DebitAccountID: a.Funds, CreditAccountID: a.Merchant, Amount: amount,
		UserData: id, TimeoutSeconds: uint32(timeout / time.Second), Code: clearing.CodeAuthorization, Flags: ledger.Pending}
}

// Approve records the ledger's approval of the authorization's own hold.
func (a *Authorization) Approve() {
	a.Holds = []Hold{{ID: a.ID, Amount: a.Amount, CreatedAt: a.CreatedAt}}
}

// Decline records a decline that came after the domain's approval (the ledger's).
func (a *Authorization) Decline(d Decision) { a.Decision, a.ExpiresAt, a.Holds = d, time.Time{}, nil }

// IncrementCheck is what an increment's decision reads beyond the authorization.
type IncrementCheck struct {
	Card      *cards.Card // the authorization's card as it is now
	Amount    int64
	AmountErr error
	Limits    Limits
	UsedToday int64
	Now       time.Time
}

// PlanIncrement raises an open authorization at a merchant whose category allows it. The
// increment is judged like an authorization, its per-transaction limit covering what the
// authorization already holds; approved, its hold expires with the authorization's.
func PlanIncrement(a *Authorization, id ledger.ID, c IncrementCheck) (Increment, *ledger.Transfer, *Refusal) {
	if r := a.checkOpen(c.Now); r != nil {
		return Increment{}, nil, r
	}
	if !IncrementalAllowed(a.MCC) {
		return Increment{}, nil, refuse(RefusedConflict, "merchants of category %s may not raise an authorization", a.MCC)
	}
	if a.Increments >= MaxIncrements {
		return Increment{}, nil, refuse(RefusedConflict, "the authorization has %d increments, the most it may have", MaxIncrements)
	}
	inc := Increment{ID: id, AuthorizationID: a.ID, Amount: c.Amount, CreatedAt: c.Now}
	inc.Decision = Decide(Check{MCC: a.MCC, Card: c.Card, Amount: c.Amount, AmountErr: c.AmountErr, Limits: c.Limits,
		Committed: a.Held(), UsedToday: c.UsedToday, Now: c.Now})
	if c.AmountErr != nil {
		inc.Amount = 0
	}
	if !inc.Approved {
		return inc, nil, nil
	}
	// Rounded up to the second: the increment's hold outlives the authorization's by less than
	// one, and a capture is judged by the authorization's expiry.
	left := a.ExpiresAt.Sub(c.Now)
	timeout := uint32((left + time.Second - 1) / time.Second)
	return inc, &ledger.Transfer{ID: id, DebitAccountID: a.Funds, CreditAccountID: a.Merchant, Amount: c.Amount,
		UserData: id, TimeoutSeconds: timeout, Code: clearing.CodeAuthorization, Flags: ledger.Pending}, nil
}

// ApplyIncrement records an increment decided and applied (or declined by the ledger).
func (a *Authorization) ApplyIncrement(inc Increment) {
	a.Increments++
	if inc.Approved {
		a.Holds = append(a.Holds, Hold{ID: inc.ID, Amount: inc.Amount, CreatedAt: inc.CreatedAt})
	}
}

// PlanCapture captures amount of an open authorization: its holds posted in order until amount
// is covered and the rest voided, then the merchant's fee by its plan, all one linked group. ids
// gives the transfers' ids.
func PlanCapture(a *Authorization, id ledger.ID, amount int64, plan *fees.Plan, foreign fees.ForeignCard,
	ids func() ledger.ID, now time.Time) (Close, []ledger.Transfer, *Refusal) {
	if r := a.checkOpen(now); r != nil {
		return Close{}, nil, r
	}
	if amount <= 0 || amount > MaxAmount {
		return Close{}, nil, refuse(RefusedInvalid, "amount must be from 0.01 to %s CNY", FormatAmount(MaxAmount))
	}
	if held := a.Held(); amount > held {
		return Close{}, nil, refuse(RefusedConflict, "capture of %s CNY exceeds the %s CNY held", FormatAmount(amount), FormatAmount(held))
	}
	fee, err := plan.Fee(a.MCC, amount)
	if err != nil {
		return Close{}, nil, refuse(RefusedInvalid, "%v", err)
	}
	cost, err := foreign.Cost(amount)
	if err != nil {
		return Close{}, nil, refuse(RefusedInvalid, "%v", err)
	}
	c := Close{ID: id, AuthorizationID: a.ID, Kind: Captured, Amount: amount, Released: a.Held() - amount,
		Fee: fee, Foreign: cost, CreatedAt: now}
	var ts []ledger.Transfer
	left := amount
	for _, h := range a.Holds {
		post := min(left, h.Amount)
		left -= post
		if post > 0 {
			ts = append(ts, ledger.Transfer{ID: ids(), Ref: h.ID, Amount: post, UserData: id, Code: clearing.CodePurchase, Flags: ledger.PostPending})
		} else {
			ts = append(ts, ledger.Transfer{ID: ids(), Ref: h.ID, UserData: id, Code: clearing.CodeAuthorizationVoid, Flags: ledger.VoidPending})
		}
	}
	if fee.Total() > 0 {
		ts = append(ts, ledger.Transfer{ID: ids(), DebitAccountID: a.Merchant, CreditAccountID: clearing.FeeIncomeAccount,
			Amount: fee.Total(), UserData: id, Code: clearing.CodeMerchantFee})
	}
	return c, linked(ts), nil
}

// PlanVoid releases every hold of an open authorization, one linked group.
func PlanVoid(a *Authorization, id ledger.ID, ids func() ledger.ID, now time.Time) (Close, []ledger.Transfer, *Refusal) {
	if r := a.checkOpen(now); r != nil {
		return Close{}, nil, r
	}
	c := Close{ID: id, AuthorizationID: a.ID, Kind: Voided, Released: a.Held(), CreatedAt: now}
	ts := make([]ledger.Transfer, 0, len(a.Holds))
	for _, h := range a.Holds {
		ts = append(ts, ledger.Transfer{ID: ids(), Ref: h.ID, UserData: id, Code: clearing.CodeAuthorizationVoid, Flags: ledger.VoidPending})
	}
	return c, linked(ts), nil
}

// ApplyClose records a capture or void the ledger applied.
func (a *Authorization) ApplyClose(c Close) { a.Close = &c }

// PlanRefund gives amount back against a captured purchase: the money from the merchant's
// clearing account to the card, and the fee share the merchant's plan returns, one linked group.
// All refunds together never exceed what was captured. A refund is a transfer of its own, not a
// ledger reversal, which a purchase could have only once.
func PlanRefund(a *Authorization, id ledger.ID, amount int64, plan *fees.Plan, foreign fees.ForeignCard,
	ids func() ledger.ID, now time.Time) (Refund, []ledger.Transfer, *Refusal) {
	switch {
	case !a.Approved:
		return Refund{}, nil, refuse(RefusedConflict, "the authorization was declined")
	case a.Close == nil || a.Close.Kind != Captured:
		return Refund{}, nil, refuse(RefusedConflict, "the authorization is not captured")
	case amount <= 0 || amount > MaxAmount:
		return Refund{}, nil, refuse(RefusedInvalid, "amount must be from 0.01 to %s CNY", FormatAmount(MaxAmount))
	case a.Refunds >= MaxRefunds:
		return Refund{}, nil, refuse(RefusedConflict, "the purchase has %d refunds, the most it may have", MaxRefunds)
	}
	net := a.Close.Amount - a.Refunded
	if amount > net {
		return Refund{}, nil, refuse(RefusedConflict, "refund of %s CNY exceeds the %s CNY captured and not yet refunded",
			FormatAmount(amount), FormatAmount(net))
	}
	fee, err := plan.RefundReturn(a.MCC, net, amount)
	if err != nil {
		return Refund{}, nil, refuse(RefusedInvalid, "%v", err)
	}
	cost, err := foreign.Cost(net - amount)
	if err != nil {
		return Refund{}, nil, refuse(RefusedInvalid, "%v", err)
	}
	r := Refund{ID: id, AuthorizationID: a.ID, Seq: a.Refunds + 1, Amount: amount, RefundedTotal: a.Refunded + amount,
		FeeReturned: fee, ForeignNet: cost, TransferID: ids(), CreatedAt: now}
	ts := []ledger.Transfer{{ID: r.TransferID, DebitAccountID: a.Merchant, CreditAccountID: a.Funds, Amount: amount,
		UserData: id, Code: clearing.CodeRefund}}
	if fee.Total() > 0 {
		ts = append(ts, ledger.Transfer{ID: ids(), DebitAccountID: clearing.FeeIncomeAccount, CreditAccountID: a.Merchant,
			Amount: fee.Total(), UserData: id, Code: clearing.CodeMerchantFee})
	}
	return r, linked(ts), nil
}

// ApplyRefund records a refund the ledger applied.
func (a *Authorization) ApplyRefund(r Refund) {
	a.Refunded, a.Refunds = r.RefundedTotal, r.Seq
}

// PlanFeeAdjustment is the transfer that moves a fee adjustment of purchase id (the difference
// fees.Plan.Adjustment gives, signed) between the merchant's clearing account and fee income:
// from the merchant when it owes more, back to it when it owes less; nil when the components
// cancel out. It is a transfer of its own: the capture's fee and the refunds' stay as they were.
func PlanFeeAdjustment(transferID, id, merchant ledger.ID, adj fees.Fee) *ledger.Transfer {
	total := adj.Total()
	if total == 0 {
		return nil
	}
	t := &ledger.Transfer{ID: transferID, DebitAccountID: merchant, CreditAccountID: clearing.FeeIncomeAccount, Amount: total,
		UserData: id, Code: clearing.CodeMerchantFeeAdjustment}
	if total < 0 {
		t.DebitAccountID, t.CreditAccountID, t.Amount = clearing.FeeIncomeAccount, merchant, -total
	}
	return t
}

// linked flags every transfer but the last as linked to the next: the group applies whole or not.
func linked(ts []ledger.Transfer) []ledger.Transfer {
	for i := range ts {
		if i < len(ts)-1 {
			ts[i].Flags |= ledger.Linked
		}
	}
	return ts
}
