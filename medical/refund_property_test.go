package medical

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"testing"
)

// refundYears is how many random cardholder years the refund property test plays: each settles a
// few dozen bills and stays and refunds them in random pieces, tens of thousands of splits in
// well under a second.
const refundYears = 400

// modelBill is a settled bill of the model year, with its refunds.
type modelBill struct {
	basket  Basket
	tier    Tier
	split   Split
	refunds []Refund
	stay    bool // a bill of a stay: trued up, not refunded on its own
}

// modelYear is a cardholder's year under one policy: accumulators and personal account.
type modelYear struct {
	p        *Policy
	acc      Accumulators
	personal int64
	bills    []*modelBill
}

// TestRefundProperties plays random years under the shipped cities' policies (and random ones):
// bills, inpatient stays trued up at their final bill, and refunds in random pieces, checking
// after every step that the parts sum to each bill and each refund, that no accumulator goes
// negative or past its cap, that a stay ends as one bill of it would, and at the end that
// refunding every bill in full restores every accumulator and balance, so that the year's first
// purchase then splits exactly as it did.
func TestRefundProperties(t *testing.T) {
	rng := rand.New(rand.NewPCG(2026, 15))
	policies := samples(t).All()
	for range 10 {
		policies = append(policies, randomPolicy(rng))
	}
	for year := range refundYears {
		y := &modelYear{p: policies[rng.IntN(len(policies))], acc: Accumulators{}.Clone(), personal: randomAmount(rng)}
		if rng.IntN(3) == 0 {
			y.personal = 0
		}
		startPersonal := y.personal
		for step := range 30 {
			var err error
			switch k := rng.IntN(10); {
			case k < 4 || len(y.bills) == 0:
				err = y.settle(randomBasket(rng), Tier(1+rng.IntN(3)))
			case k < 5:
				err = y.stay(rng)
			default:
				b := y.bills[rng.IntN(len(y.bills))]
				if left, _ := RefundableOf(b.split, b.refunds); !b.stay && left.Parts.Total() > 0 {
					err = y.refund(b, pieceOf(rng, left.Parts.Total()))
				}
			}
			if err == nil {
				err = y.check()
			}
			if err != nil {
				t.Fatalf("year %d (%s), step %d: %v", year, y.p.ID(), step, err)
			}
		}
		// Refund everything left, in random pieces, bills in random order.
		for _, i := range rng.Perm(len(y.bills)) {
			b := y.bills[i]
			for {
				left, err := RefundableOf(b.split, b.refunds)
				if err != nil {
					t.Fatal(err)
				}
				if left.Parts.Total() == 0 {
					break
				}
				if err := y.refund(b, pieceOf(rng, left.Parts.Total())); err != nil {
					t.Fatalf("year %d: %v", year, err)
				}
				if err := y.check(); err != nil {
					t.Fatalf("year %d: %v", year, err)
				}
			}
		}
		for _, m := range []map[string]int64{y.acc.Deductible, y.acc.Fund} {
			for k, v := range m {
				if v != 0 {
					t.Fatalf("year %d (%s): all refunded, accumulator %s holds %d", year, y.p.ID(), k, v)
				}
			}
		}
		if y.personal != startPersonal {
			t.Fatalf("year %d: all refunded, personal account %d, started at %d", year, y.personal, startPersonal)
		}
		first := y.bills[0]
		again, err := y.p.Split(first.basket, first.tier, y.acc, y.personal)
		if err != nil || PartsOf(again) != PartsOf(first.split) {
			t.Fatalf("year %d: the first purchase again splits %+v, first %+v, %v", year, PartsOf(again), PartsOf(first.split), err)
		}
	}
}

// pieceOf is a refund of what is left: all of it, one fen, or anything between.
func pieceOf(rng *rand.Rand, left int64) int64 {
	switch rng.IntN(4) {
	case 0:
		return left
	case 1:
		return 1
	}
	return 1 + rng.Int64N(left)
}

func (y *modelYear) settle(b Basket, t Tier) error {
	s, err := y.p.Split(b, t, y.acc, y.personal)
	if err != nil {
		return err
	}
	if s.Fund+s.Personal+s.Cash != s.Total || s.Personal > y.personal {
		return fmt.Errorf("split %+v with %d in the personal account", PartsOf(s), y.personal)
	}
	y.acc, y.personal = y.acc.Plus(s.Delta), y.personal-s.Personal
	y.bills = append(y.bills, &modelBill{basket: b, tier: t, split: s})
	return nil
}

// stay settles an inpatient stay of two to four bills, each on the accumulators as they stand,
// then trues it up, and checks it ended as one bill of the whole stay would have.
func (y *modelYear) stay(rng *rand.Rand) error {
	tier := Tier(1 + rng.IntN(3))
	accBefore, personalBefore := y.acc.Clone(), y.personal
	var (
		all      []Item
		billed   Parts
		released = Accumulators{}.Clone()
		bills    []*modelBill
	)
	for range 2 + rng.IntN(3) {
		b := randomBasket(rng)
		b.VisitKind = Inpatient
		if err := y.settle(b, tier); err != nil {
			return err
		}
		bl := y.bills[len(y.bills)-1]
		bl.stay = true
		bills = append(bills, bl)
		all = append(all, b.Items...)
		billed = billed.Plus(PartsOf(bl.split))
		released = released.Plus(bl.split.Delta)
	}
	u, err := y.p.TrueUpStay(all, nil, tier, billed, released, y.acc, y.personal)
	if err != nil {
		return err
	}
	if u.Adjustment.Total() != 0 || PartsOf(u.Whole).Total() != billed.Total() {
		return fmt.Errorf("true-up %+v of %+v", u.Adjustment, billed)
	}
	if -u.Adjustment.Personal > billed.Personal || u.Adjustment.Personal > y.personal {
		return fmt.Errorf("true-up takes %d from a personal account with %d", u.Adjustment.Personal, y.personal)
	}
	if y.acc, err = u.After(y.acc); err != nil {
		return err
	}
	y.personal -= u.Adjustment.Personal
	once, err := y.p.Split(Basket{VisitKind: Inpatient, Items: all}, tier, accBefore, personalBefore)
	if err != nil && len(all) <= MaxItems {
		return err
	}
	if err == nil && (PartsOf(once) != PartsOf(u.Whole) || !maps.Equal(accBefore.Plus(once.Delta).Fund, y.acc.Fund) ||
		!maps.Equal(accBefore.Plus(once.Delta).Deductible, y.acc.Deductible)) {
		return fmt.Errorf("stay trued up to %+v, billed once %+v", PartsOf(u.Whole), PartsOf(once))
	}
	// The stay's bills now carry the whole stay's split between them, as one: the model keeps
	// the whole as the first bill's and empties the others, so refunds see the stay as one bill.
	bills[0].split, bills[0].stay = u.Whole, false
	bills[0].basket = Basket{VisitKind: Inpatient, Items: all}
	for _, b := range bills[1:] {
		b.split = Split{Delta: Accumulators{}.Clone()}
	}
	return nil
}

func (y *modelYear) refund(b *modelBill, amount int64) error {
	left, err := RefundableOf(b.split, b.refunds)
	if err != nil {
		return err
	}
	parts, d, err := PlanRefund(left, amount)
	if err != nil {
		return err
	}
	if parts.Total() != amount || parts.Fund < 0 || parts.Personal < 0 || parts.Cash < 0 {
		return fmt.Errorf("refund of %d: parts %+v", amount, parts)
	}
	if y.acc, err = y.acc.Minus(d); err != nil {
		return fmt.Errorf("refund of %d: %w", amount, err)
	}
	y.personal += parts.Personal
	b.refunds = append(b.refunds, Refund{Amount: amount, Parts: parts, Delta: d})
	return nil
}

// check: the accumulators never negative nor past a cap, and every bill's refunds within it.
func (y *modelYear) check() error {
	for k, v := range y.acc.Deductible {
		if v < 0 {
			return fmt.Errorf("deductible %s at %d", k, v)
		}
	}
	for k, v := range y.acc.Fund {
		if v < 0 || v > y.p.Caps[k] {
			return fmt.Errorf("fund cap %s at %d of %d", k, v, y.p.Caps[k])
		}
	}
	var fundSum int64
	for _, b := range y.bills {
		left, err := RefundableOf(b.split, b.refunds)
		if err != nil {
			return err
		}
		var refunded int64
		for _, r := range b.refunds {
			refunded += r.Amount
		}
		if left.Parts.Total() != b.split.Total-refunded {
			return fmt.Errorf("bill of %d with %d refunded leaves %+v", b.split.Total, refunded, left.Parts)
		}
		fundSum += left.Parts.Fund
	}
	// Every cap bucket holds at most what the fund still pays for the year's bills.
	for k, v := range y.acc.Fund {
		if v > fundSum {
			return fmt.Errorf("fund cap %s holds %d, the bills' fund parts %d", k, v, fundSum)
		}
	}
	return nil
}
