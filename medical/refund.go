package medical

import (
	"fmt"
	"maps"
	"math/bits"
	"slices"
	"time"

	"github.com/google/uuid"

	"github.com/joinincard/engine/clearing"
	"github.com/joinincard/engine/events"
	"github.com/joinincard/engine/ledger"
)

// Transfer codes of refunds and of inpatient stays' true-ups, kept with every other code in
// package clearing.
const (
	CodeRefund         = clearing.CodeMedicalRefund         // a part given back by a partial refund
	CodeStayAdjustment = clearing.CodeMedicalStayAdjustment // a part moved by a stay's final true-up
)

// Reasons of refusals of refunds and stay bills.
const (
	// ReasonRefundExceedsSettlement: the refund would take the bill's refunds past its total.
	ReasonRefundExceedsSettlement Reason = "refund_exceeds_settlement"
	// ReasonRefundIDReused: the refund id was used for another refund of the settlement.
	ReasonRefundIDReused Reason = "refund_id_reused"
	// ReasonSettlementRefunded: a settlement with refunds is not cancelled or reversed: refund
	// what is left of it instead.
	ReasonSettlementRefunded Reason = "settlement_refunded"
	// ReasonStayBill: a bill of an inpatient stay is not refunded on its own: a stay is refunded,
	// once its final bill has trued it up, through that final bill.
	ReasonStayBill Reason = "stay_bill"
	// ReasonStayClosed: the stay's final bill was settled: no more bills join it, and its bills
	// are not cancelled or reversed.
	ReasonStayClosed Reason = "stay_closed"
	// ReasonStayMismatch: the bill does not fit the stay: another card, or a policy year before
	// one of the stay's bills (a stay across the new year counts in its final bill's year).
	ReasonStayMismatch Reason = "stay_mismatch"
)

// Parts are how an amount is paid: by the pooled fund, the personal medical account and cash.
type Parts struct {
	Fund     int64
	Personal int64
	Cash     int64
}

// PartsOf returns a split's three parts.
func PartsOf(s Split) Parts { return Parts{Fund: s.Fund, Personal: s.Personal, Cash: s.Cash} }

// Total is the parts' sum.
func (p Parts) Total() int64 { return p.Fund + p.Personal + p.Cash }

// Plus returns p with o added, part by part.
func (p Parts) Plus(o Parts) Parts {
	return Parts{Fund: p.Fund + o.Fund, Personal: p.Personal + o.Personal, Cash: p.Cash + o.Cash}
}

// Minus returns p with o taken away, part by part.
func (p Parts) Minus(o Parts) Parts {
	return Parts{Fund: p.Fund - o.Fund, Personal: p.Personal - o.Personal, Cash: p.Cash - o.Cash}
}

// Refund is a part of a settled bill given back to those who paid it: the fund, the personal
// account and the card's funds, in proportion to what each still has in the bill. Its
// accumulator delta is what it took from the cardholder's yearly accumulators.
type Refund struct {
	ID           uuid.UUID
	SettlementID uuid.UUID
	Ref          string // the institution's refund id, unique per settlement
	Reason       string
	Amount       int64
	Parts        Parts
	Delta        Accumulators
	Day          events.Date
	At           time.Time
	// FundTransfer, PersonalTransfer and CashTransfer are the ledger transfers of the three
	// parts; zero for a part of zero.
	FundTransfer, PersonalTransfer, CashTransfer ledger.ID
	// The card's balances after the parts came back.
	PersonalBalanceAfter int64
	FundsAvailableAfter  int64
}

// RefundBase is what a settlement's refunds apportion: its split, or for the final bill of a
// trued-up inpatient stay, the whole stay's: a stay is refunded through its final bill, as the one
// bill it ended as.
func RefundBase(s *Settlement) Split {
	if s.TrueUp != nil {
		return s.TrueUp.Whole
	}
	return s.Split
}

// Refundable is what is left of a settled bill to refund: its parts and its contribution to the
// accumulators, less what its refunds gave back.
type Refundable struct {
	Parts Parts
	Delta Accumulators
}

// RefundableOf returns what is left to refund of a bill split as s after refunds.
func RefundableOf(s Split, refunds []Refund) (Refundable, error) {
	left := Refundable{Parts: PartsOf(s), Delta: s.Delta.Clone()}
	for _, r := range refunds {
		left.Parts = left.Parts.Minus(r.Parts)
		d, err := left.Delta.Minus(r.Delta)
		if err != nil {
			return left, fmt.Errorf("refund %s takes more than the bill added: %w", r.Ref, err)
		}
		left.Delta = d
	}
	if left.Parts.Fund < 0 || left.Parts.Personal < 0 || left.Parts.Cash < 0 {
		return left, fmt.Errorf("refunds give back more than the bill's parts: %+v left", left.Parts)
	}
	return left, nil
}

// PlanRefund apportions a refund of amount fen of what is left of a bill: each of the fund's and
// the personal account's parts gives back its share, amount × part ÷ what is left, rounded
// half-even to the fen, and cash the remainder. Where rounding would give back more cash than is
// left of the cash part, the extra fen come from the personal account's part, then the fund's.
// The accumulators lose the fund's part from every fund cap bucket the bill counted against, and
// each deductible bucket its share of the deductible met, rounded the same way. A refund of all
// that is left gives back exactly every part and every accumulator the bill still holds, so a bill
// refunded in full leaves the accumulators as they were before it.
//
// A refund past what is left is refused (refund_exceeds_settlement); a refund that is not
// positive is invalid.
func PlanRefund(left Refundable, amount int64) (Parts, Accumulators, error) {
	total := left.Parts.Total()
	switch {
	case amount <= 0:
		return Parts{}, Accumulators{}, fmt.Errorf("%w: a refund's amount must be positive", ErrInvalid)
	case amount > MaxAmount:
		return Parts{}, Accumulators{}, fmt.Errorf("%w: a refund's amount is over %s", ErrInvalid, FormatAmount(MaxAmount))
	case amount > total:
		return Parts{}, Accumulators{}, Refuse(ReasonRefundExceedsSettlement, "a refund of %s is more than the %s left to refund",
			FormatAmount(amount), FormatAmount(total))
	}
	var p Parts
	p.Fund = shareOf(left.Parts.Fund, amount, total)
	p.Personal = min(shareOf(left.Parts.Personal, amount, total), amount-p.Fund)
	p.Cash = amount - p.Fund - p.Personal
	if extra := p.Cash - left.Parts.Cash; extra > 0 {
		fromPersonal := min(extra, left.Parts.Personal-p.Personal)
		p.Personal += fromPersonal
		p.Fund += extra - fromPersonal
		p.Cash = left.Parts.Cash
	}
	d := Accumulators{Deductible: map[string]int64{}, Fund: map[string]int64{}}
	for _, k := range slices.Sorted(maps.Keys(left.Delta.Deductible)) {
		if v := shareOf(left.Delta.Deductible[k], amount, total); v > 0 {
			d.Deductible[k] = v
		}
	}
	if p.Fund > 0 {
		for k := range left.Delta.Fund {
			d.Fund[k] = p.Fund
		}
	}
	if err := checkRefund(left, amount, p, d); err != nil {
		return Parts{}, Accumulators{}, err
	}
	return p, d, nil
}

// checkRefund asserts a planned refund's invariants: a failure is a bug in PlanRefund.
func checkRefund(left Refundable, amount int64, p Parts, d Accumulators) error {
	switch {
	case p.Total() != amount:
		return fmt.Errorf("refund invariant: parts %+v do not sum to %d", p, amount)
	case p.Fund < 0 || p.Personal < 0 || p.Cash < 0:
		return fmt.Errorf("refund invariant: a negative part in %+v", p)
	case p.Fund > left.Parts.Fund || p.Personal > left.Parts.Personal || p.Cash > left.Parts.Cash:
		return fmt.Errorf("refund invariant: parts %+v past what is left %+v", p, left.Parts)
	}
	if _, err := left.Delta.Minus(d); err != nil {
		return fmt.Errorf("refund invariant: %w", err)
	}
	if amount == left.Parts.Total() && p != left.Parts {
		return fmt.Errorf("refund invariant: a refund of all that is left gives back %+v of %+v", p, left.Parts)
	}
	return nil
}

// shareOf is part × amount ÷ total, rounded half-even to the fen: 0 <= part, amount <= total,
// so the result is at most part. The product is worked out in 128 bits: both factors may reach
// MaxAmount.
func shareOf(part, amount, total int64) int64 {
	if part <= 0 || amount <= 0 || total <= 0 {
		return 0
	}
	hi, lo := bits.Mul64(uint64(part), uint64(amount))
	q, r := bits.Div64(hi, lo, uint64(total)) // hi < total since part × amount ÷ total <= part
	switch twice := 2 * r; {
	case twice > uint64(total), twice == uint64(total) && q%2 == 1:
		q++
	}
	return int64(q)
}
