package medical

import (
	"fmt"
	"github.com/shopspring/decimal"
	"slices"
	"time"

	"github.com/google/uuid"

	"github.com/joinincard/engine/events"
	"github.com/joinincard/engine/ledger"
)

// StayBillKind is what a bill of an inpatient stay is: an interim bill (中途结算), settled on the
// accumulators as they stand, or the final bill at discharge (出院结算), which settles like an
// interim one and then trues the whole stay up.
type StayBillKind string

const (
	StayInterim StayBillKind = "interim"
	StayFinal   StayBillKind = "final"
)

// StayBillKinds lists the kinds of stay bill.
func StayBillKinds() []StayBillKind { return []StayBillKind{StayInterim, StayFinal} }

// MaxStayRefBytes bounds an institution's admission id (住院号), as a settlement id.
const MaxStayRefBytes = 64

// StayBill marks a settlement as a bill of the inpatient stay Ref (the institution's admission
// id): its interim bills, then one final bill.
type StayBill struct {
	Ref  string
	Kind StayBillKind
}

// Validate checks a stay bill's shape and that its basket is an inpatient one.
func (s StayBill) Validate(visit VisitKind) error {
	switch {
	case !slices.Contains(StayBillKinds(), s.Kind):
		return fmt.Errorf("%w: stay bill %q, want one of %q", ErrInvalid, s.Kind, StayBillKinds())
	case s.Ref == "" || len(s.Ref) > MaxStayRefBytes:
		return fmt.Errorf("%w: stay id must be 1 to %d bytes", ErrInvalid, MaxStayRefBytes)
	case visit != Inpatient:
		return fmt.Errorf("%w: a stay's bills are inpatient, not %s", ErrInvalid, visit)
	}
	for i := 0; i < len(s.Ref); i++ {
		if s.Ref[i] <= ' ' || s.Ref[i] >= 0x7f {
			return fmt.Errorf("%w: stay id must be printable ascii without spaces", ErrInvalid)
		}
	}
	return nil
}

// TrueUp is the end of an inpatient stay: the split of the whole stay as if it had been billed
// once, at its final bill, and the adjustments that bring what its bills paid to it. The
// adjustments sum to zero (the whole stay's total is the bills' total); each may be of either
// sign: positive, the payer pays the institution more; negative, the institution gives back.
type TrueUp struct {
	ID      uuid.UUID
	StayRef string
	// Bills are the ids of the stay's settlements, interim and final, in the order they settled.
	Bills []uuid.UUID
	// Whole is the stay's split as one bill; Billed what its bills paid; Adjustment the
	// difference, Whole less Billed.
	Whole      Split
	Billed     Parts
	Adjustment Parts
	// Released is what the bills had added to the accumulators, taken away before the whole stay
	// adds Whole.Delta: the stay ends with the accumulators one bill would leave.
	Released Accumulators
	Day      events.Date
	At       time.Time
	// FundTransfer, PersonalTransfer and CashTransfer are the ledger transfers of the
	// adjustments; zero for an adjustment of zero.
	FundTransfer, PersonalTransfer, CashTransfer ledger.ID
	// The card's balances after the true-up.
	PersonalBalanceAfter int64
	FundsAvailableAfter  int64
}

// StayBasket is the basket of a whole stay: the items of its bills, or, for a stay of more items
// than a basket holds, one item per class and class B self-pay share, since a split reads only
// the total of each (items of one share are summed, then rounded once).
func StayBasket(items []Item) (Basket, error) {
	b := Basket{VisitKind: Inpatient}
	if len(items) <= MaxItems {
		b.Items = slices.Clone(items)
		return b, b.Validate()
	}
	type group struct {
		class Class
		share string // the self-pay share as written; "" takes the policy's
	}
	totals := map[group]int64{}
	shares := map[group]*decimal.Decimal{}
	var order []group
	for _, it := range items {
		if !slices.Contains(Classes(), it.Class) {
			return b, fmt.Errorf("%w: stay item of class %q", ErrInvalid, it.Class)
		}
		g := group{class: it.Class}
		if it.SelfPay != nil {
			g.share = it.SelfPay.String()
		}
		if _, seen := totals[g]; !seen {
			order = append(order, g)
			shares[g] = it.SelfPay
		}
		totals[g] += it.Amount // each at most MaxAmount, at most a few thousand: no overflow
	}
	for i, g := range order {
		b.Items = append(b.Items, Item{Code: fmt.Sprintf("STAY-%s-%d", g.class, i+1), Class: g.class, Amount: totals[g], SelfPay: shares[g]})
	}
	return b, b.Validate()
}

// TrueUpStay works out the true-up of an inpatient stay at an institution of tier t. items are the
// items of all its bills; billed the parts they paid, and released what they added to the
// accumulators. acc are the cardholder's accumulators as they stand after its final bill and
// personalAvailable what the personal account can spend then. The whole stay is split on the
// accumulators without the bills' contributions and a personal account with what the bills took
// from it back: as if the stay had been billed once, now. where is the stay's treating city when
// that is not the insured city (nil when it is), as its final bill was settled: the fund's ratio
// cut for a visit elsewhere applies to the whole stay as it did to its bills.
func (p *Policy) TrueUpStay(items []Item, where *Elsewhere, t Tier, billed Parts, released, acc Accumulators, personalAvailable int64) (TrueUp, error) {
	b, err := StayBasket(items)
	if err != nil {
		return TrueUp{}, err
	}
	b.Elsewhere = where
	base, err := acc.Minus(released)
	if err != nil {
		return TrueUp{}, fmt.Errorf("stay: the accumulators hold less than its bills added: %w", err)
	}
	whole, err := p.Split(b, t, base, max(personalAvailable, 0)+billed.Personal)
	if err != nil {
		return TrueUp{}, err
	}
	u := TrueUp{Whole: whole, Billed: billed, Adjustment: PartsOf(whole).Minus(billed), Released: released.Clone()}
	if u.Adjustment.Total() != 0 || whole.Total != billed.Total() {
		return TrueUp{}, fmt.Errorf("stay: the bills' parts %+v do not sum to the stay's total %d", billed, whole.Total)
	}
	return u, nil
}

// After is the accumulators a true-up leaves from acc, those that stood after the final bill.
func (u *TrueUp) After(acc Accumulators) (Accumulators, error) {
	base, err := acc.Minus(u.Released)
	if err != nil {
		return acc, err
	}
	return base.Plus(u.Whole.Delta), nil
}
