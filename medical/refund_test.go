package medical

import (
	"errors"
	"fmt"
	"maps"
	"math/big"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/shopspring/decimal"
)

// refundStep is one refund of a bill, with what it must give back and leave, in yuan.
type refundStep struct {
	name             string
	amount           string
	fund, pers, cash string
	deductible       string // what the refund takes off the deductible bucket
	leftDed          string // what the bill still holds in the deductible bucket afterwards
	leftFund         string // and in every cap bucket
}

// refundScenario is a bill under a sample policy and the refunds that take it back in full.
type refundScenario struct {
	name             string
	city             string
	visit            VisitKind
	tier             Tier
	items, personal  string
	fund, pers, cash string // the bill's split
	steps            []refundStep
}

// A partial refund gives back each part in proportion, half-even to the fen, the remainder in
// cash, and takes its share off the accumulators; the last refund gives back exactly what is left,
// and the same purchase then splits the same way.
func TestRefundScenarios(t *testing.T) {
	for _, sc := range []refundScenario{{
		// Jiaxing 2026, tier 3 outpatient, A1200 B300 with nothing met and 500 in the personal
		// account: fund 282, personal 500, cash 718 (deductible 1000 met, 282 against both caps).
		name: "jiaxing outpatient", city: "jiaxing", visit: Outpatient, tier: 3, items: "A1200 B300", personal: "500",
		fund: "282", pers: "500", cash: "718",
		steps: []refundStep{
			// 282 × 300 / 1500 = 56.40; 500 × 300 / 1500 = 100; cash 143.60; deductible 1000 × 300 / 1500.
			{"a fifth", "300", "56.40", "100", "143.60", "200", "800", "225.60"},
			// 22560 × 1 / 120000 = 0.188 fen: 0; 40000 × 1 / 120000 = 0.33: 0; the fen is cash. The
			// deductible's 80000 × 1 / 120000 = 0.67 fen rounds to 1.
			{"one fen", "0.01", "0", "0", "0.01", "0.01", "799.99", "225.60"},
			// The rest: exactly what is left of each part and of each accumulator.
			{"the rest", "1199.99", "225.60", "400", "574.39", "799.99", "0", "0"},
		},
	}, {
		// Shanghai 2026, tier 1 outpatient, personal account first: A2000 B500 with 300 in the
		// personal account, nothing met. The account pays 300 of class B first; 20% of the other
		// 200 of B is self-pay (40); 2160 eligible: 1500 deductible, 75% of 660 = 495 to the fund,
		// 165 co-payment; cash 40 + 1500 + 165 = 1705.
		name: "shanghai outpatient, personal account first", city: "shanghai", visit: Outpatient, tier: 1, items: "A2000 B500",
		personal: "300", fund: "495", pers: "300", cash: "1705",
		steps: []refundStep{
			// 495 × 1000 / 2500 = 198; 300 × 1000 / 2500 = 120; cash 682; deductible 600.
			{"1000", "1000", "198", "120", "682", "600", "900", "297"},
			// Of 1500 left: 29700 × 33333 / 150000 = 6599.93 fen: 66.00; 18000 × 33333 / 150000 =
			// 3999.96: 40.00; cash 227.33; deductible 90000 × 33333 / 150000 = 19999.8: 200.00.
			{"a third of a fen less", "333.33", "66", "40", "227.33", "200", "700", "231"},
			{"the rest", "1166.67", "231", "140", "795.67", "700", "0", "0"},
		},
	}} {
		t.Run(sc.name, func(t *testing.T) { runRefundScenario(t, sc) })
	}
}

func runRefundScenario(t *testing.T, sc refundScenario) {
	p := policy(t, sc.city, 2026)
	b := Basket{VisitKind: sc.visit, Items: items(t, sc.items)}
	s, err := p.Split(b, sc.tier, Accumulators{}.Clone(), yuan(t, sc.personal))
	if err != nil {
		t.Fatal(err)
	}
	if PartsOf(s) != (Parts{Fund: yuan(t, sc.fund), Personal: yuan(t, sc.pers), Cash: yuan(t, sc.cash)}) {
		t.Fatalf("split %+v", PartsOf(s))
	}
	rule := p.Visits[sc.visit]
	var refunds []Refund
	acc := Accumulators{}.Clone().Plus(s.Delta)
	for _, st := range sc.steps {
		left, err := RefundableOf(s, refunds)
		if err != nil {
			t.Fatal(err)
		}
		parts, d, err := PlanRefund(left, yuan(t, st.amount))
		if err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		want := Parts{Fund: yuan(t, st.fund), Personal: yuan(t, st.pers), Cash: yuan(t, st.cash)}
		if parts != want {
			t.Errorf("%s: parts %+v, want %+v", st.name, parts, want)
		}
		if d.Deductible[rule.Deductible] != yuan(t, st.deductible) {
			t.Errorf("%s: deductible taken %d", st.name, d.Deductible[rule.Deductible])
		}
		for _, c := range rule.Caps {
			if d.Fund[c] != parts.Fund {
				t.Errorf("%s: cap %s lost %d, the fund's part is %d", st.name, c, d.Fund[c], parts.Fund)
			}
		}
		refunds = append(refunds, Refund{Ref: st.name, Amount: parts.Total(), Parts: parts, Delta: d})
		if acc, err = acc.Minus(d); err != nil {
			t.Fatal(err)
		}
		if acc.Deductible[rule.Deductible] != yuan(t, st.leftDed) {
			t.Errorf("%s: deductible left %d", st.name, acc.Deductible[rule.Deductible])
		}
		for _, c := range rule.Caps {
			if acc.Fund[c] != yuan(t, st.leftFund) {
				t.Errorf("%s: cap %s left %d", st.name, c, acc.Fund[c])
			}
		}
	}
	// Fully refunded: nothing is left, the next fen is refused, and the same purchase splits the
	// same way again.
	left, err := RefundableOf(s, refunds)
	if err != nil || left.Parts != (Parts{}) {
		t.Fatalf("left %+v, %v", left, err)
	}
	_, _, err = PlanRefund(left, 1)
	var r *Refusal
	if !errors.As(err, &r) || r.Reason != ReasonRefundExceedsSettlement {
		t.Fatalf("a refund past the bill: %v", err)
	}
	again, err := p.Split(b, sc.tier, acc, yuan(t, sc.personal))
	if err != nil || PartsOf(again) != PartsOf(s) || !maps.Equal(again.Delta.Fund, s.Delta.Fund) ||
		!maps.Equal(again.Delta.Deductible, s.Delta.Deductible) {
		t.Fatalf("the same purchase after a full refund: %+v, %v", again, err)
	}
}

// Rounding at the half fen is half-even; where rounding would give back cash the bill never had
// in cash, the fen comes from the personal account, then the fund.
func TestRefundRounding(t *testing.T) {
	cases := []struct {
		name   string
		left   Parts
		amount int64
		want   Parts
	}{
		{"half down to even", Parts{Fund: 5, Cash: 5}, 5, Parts{Fund: 2, Cash: 3}},
		{"half up to even", Parts{Fund: 7, Cash: 3}, 5, Parts{Fund: 4, Cash: 1}},
		{"no cash: the fen from the personal account", Parts{Fund: 1, Personal: 1}, 1, Parts{Personal: 1}},
		{"no cash, no personal: from the fund", Parts{Fund: 3}, 1, Parts{Fund: 1}},
		{"both up: personal cut to the amount", Parts{Fund: 3, Personal: 3}, 3, Parts{Fund: 2, Personal: 1}},
		{"all of it", Parts{Fund: 101, Personal: 7, Cash: 3}, 111, Parts{Fund: 101, Personal: 7, Cash: 3}},
		{"largest amounts", Parts{Fund: MaxAmount - 1, Personal: 1}, MaxAmount / 2,
			Parts{Fund: MaxAmount / 2, Personal: 0}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, _, err := PlanRefund(Refundable{Parts: c.left, Delta: Accumulators{}.Clone()}, c.amount)
			if err != nil || got != c.want {
				t.Errorf("got %+v, %v; want %+v", got, err, c.want)
			}
		})
	}
	for _, amount := range []int64{0, -1, MaxAmount + 1} {
		if _, _, err := PlanRefund(Refundable{Parts: Parts{Cash: MaxAmount}}, amount); !errors.Is(err, ErrInvalid) {
			t.Errorf("amount %d: %v, want invalid", amount, err)
		}
	}
}

// shareOf against exact rationals, at every magnitude.
func TestShareOfIsHalfEven(t *testing.T) {
	rng := rand.New(rand.NewPCG(15, 56))
	for range 20000 {
		total := randomAmount(rng)
		part, amount := rng.Int64N(total+1), rng.Int64N(total+1)
		q := new(big.Rat).SetFrac(new(big.Int).Mul(big.NewInt(part), big.NewInt(amount)), big.NewInt(total))
		want := ratHalfEven(q)
		if got := shareOf(part, amount, total); got != want {
			t.Fatalf("shareOf(%d, %d, %d) = %d, want %d", part, amount, total, got, want)
		}
	}
}

func ratHalfEven(q *big.Rat) int64 {
	n, d := q.Num(), q.Denom()
	whole, rem := new(big.Int).QuoRem(n, d, new(big.Int))
	switch c := new(big.Int).Mul(rem, big.NewInt(2)).Cmp(d); {
	case c > 0, c == 0 && whole.Bit(0) == 1:
		whole.Add(whole, big.NewInt(1))
	}
	return whole.Int64()
}

// The stay's final bill trues it up to one bill: Jiaxing 2026, tier 3 inpatient, a per-visit
// deductible of 800, 85% to the fund, 10% self-pay of class B. Each interim bill meets the
// deductible again; the stay meets it once.
func TestStayScenariosJiaxing(t *testing.T) {
	p := policy(t, "jiaxing", 2026)
	type bill struct {
		items            string
		fund, pers, cash string
	}
	for _, c := range []struct {
		name       string
		personal   string // the personal account's balance before the stay
		bills      []bill
		wholeYuan  [3]string
		adjustYuan [3]string // fund, personal, cash
	}{{
		name: "no personal account", personal: "0",
		bills: []bill{
			// 10000 eligible: 800 deductible, 85% of 9200 = 7820 to the fund, 1380 co-payment.
			{"A10000", "7820", "0", "2180"},
			// 200 self-pay of B2000; 6800 eligible: 800 deductible again, 85% of 6000 = 5100.
			{"A5000 B2000", "5100", "0", "1900"},
			// The final bill: 3000 eligible: 800 again, 85% of 2200 = 1870; class C 500 in cash.
			{"A3000 C500", "1870", "0", "1630"},
		},
		// The whole stay: A18000 B2000 C500. 200 self-pay; 19800 eligible: 800 deductible once, 85%
		// of 19000 = 16150 to the fund, 2850 co-payment; cash 500 + 200 + 800 + 2850 = 4350. The
		// bills paid fund 14790, cash 5710: the fund pays 1360 more, the card gets 1360 back.
		wholeYuan: [3]string{"16150", "0", "4350"}, adjustYuan: [3]string{"1360", "0", "-1360"},
	}, {
		name: "personal account of 5000", personal: "5000",
		bills: []bill{
			// The cardholder's shares, 2180 and 1900, from the personal account; of the final
			// bill's 1130 it pays the 920 left, cash the other 210 and class C's 500.
			{"A10000", "7820", "2180", "0"},
			{"A5000 B2000", "5100", "1900", "0"},
			{"A3000 C500", "1870", "920", "710"},
		},
		// The whole stay's cardholder share of catalogue items, 3850, all from the personal
		// account's 5000; cash only class C's 500. The account gets 1150 back, the card 210.
		wholeYuan: [3]string{"16150", "3850", "500"}, adjustYuan: [3]string{"1360", "-1150", "-210"},
	}} {
		t.Run(c.name, func(t *testing.T) {
			acc := Accumulators{}.Clone()
			personal := yuan(t, c.personal)
			var (
				all      []Item
				billed   Parts
				released = Accumulators{}.Clone()
			)
			for i, b := range c.bills {
				s, err := p.Split(Basket{VisitKind: Inpatient, Items: items(t, b.items)}, 3, acc, personal)
				if err != nil {
					t.Fatal(err)
				}
				if want := (Parts{Fund: yuan(t, b.fund), Personal: yuan(t, b.pers), Cash: yuan(t, b.cash)}); PartsOf(s) != want {
					t.Errorf("bill %d: %+v, want %+v", i, PartsOf(s), want)
				}
				acc, released = acc.Plus(s.Delta), released.Plus(s.Delta)
				billed = billed.Plus(PartsOf(s))
				personal -= s.Personal
				all = append(all, items(t, b.items)...)
			}
			u, err := p.TrueUpStay(all, nil, 3, billed, released, acc, personal)
			if err != nil {
				t.Fatal(err)
			}
			signed := func(s string) int64 {
				if v, ok := strings.CutPrefix(s, "-"); ok {
					return -yuan(t, v)
				}
				return yuan(t, s)
			}
			if want := (Parts{Fund: yuan(t, c.wholeYuan[0]), Personal: yuan(t, c.wholeYuan[1]), Cash: yuan(t, c.wholeYuan[2])}); PartsOf(u.Whole) != want {
				t.Errorf("whole stay %+v, want %+v", PartsOf(u.Whole), want)
			}
			if want := (Parts{Fund: signed(c.adjustYuan[0]), Personal: signed(c.adjustYuan[1]), Cash: signed(c.adjustYuan[2])}); u.Adjustment != want {
				t.Errorf("adjustment %+v, want %+v", u.Adjustment, want)
			}
			after, err := u.After(acc)
			if err != nil || after.Deductible["inpatient"] != yuan(t, "800") || after.Fund["total"] != yuan(t, "16150") {
				t.Errorf("accumulators after the stay %+v, %v", after, err)
			}
			// Exactly one bill of the whole stay.
			once, err := p.Split(Basket{VisitKind: Inpatient, Items: all}, 3, Accumulators{}.Clone(), yuan(t, c.personal))
			if err != nil || PartsOf(once) != PartsOf(u.Whole) || !maps.Equal(once.Delta.Fund, after.Fund) ||
				!maps.Equal(once.Delta.Deductible, after.Deductible) {
				t.Errorf("billed once %+v, trued up %+v, %v", PartsOf(once), PartsOf(u.Whole), err)
			}
		})
	}
}

// Shanghai 2026, tier 2 inpatient: a yearly deductible of 1500 met across bills, so the stay
// trues up to nothing; the personal account, which paid the first bill, pays the same.
func TestStayScenariosShanghai(t *testing.T) {
	p := policy(t, "shanghai", 2026)
	acc := Accumulators{}.Clone()
	personal := yuan(t, "300")
	var (
		all              []Item
		billed           Parts
		released         = Accumulators{}.Clone()
		wantFund, wantPs = []string{"0", "3045"}, []string{"300", "0"}
	)
	for i, b := range []string{"A1000", "A4000"} {
		s, err := p.Split(Basket{VisitKind: Inpatient, Items: items(t, b)}, 2, acc, personal)
		if err != nil {
			t.Fatal(err)
		}
		// 1000: all deductible, 300 of it from the personal account; 4000: 500 deductible left,
		// 87% of 3500 = 3045 to the fund.
		if s.Fund != yuan(t, wantFund[i]) || s.Personal != yuan(t, wantPs[i]) {
			t.Errorf("bill %d: %+v", i, PartsOf(s))
		}
		personal -= s.Personal
		acc, released = acc.Plus(s.Delta), released.Plus(s.Delta)
		billed = billed.Plus(PartsOf(s))
		all = append(all, items(t, b)...)
	}
	u, err := p.TrueUpStay(all, nil, 2, billed, released, acc, personal)
	if err != nil || u.Adjustment != (Parts{}) || PartsOf(u.Whole) != billed {
		t.Errorf("true-up %+v of %+v, %v", u.Adjustment, billed, err)
	}
}

func TestStayBillValidate(t *testing.T) {
	for _, c := range []struct {
		bill  StayBill
		visit VisitKind
		ok    bool
	}{
		{StayBill{Ref: "ADM-1", Kind: StayInterim}, Inpatient, true},
		{StayBill{Ref: "ADM-1", Kind: StayFinal}, Inpatient, true},
		{StayBill{Ref: "ADM-1", Kind: "partial"}, Inpatient, false},
		{StayBill{Ref: "", Kind: StayFinal}, Inpatient, false},
		{StayBill{Ref: "ADM 1", Kind: StayFinal}, Inpatient, false},
		{StayBill{Ref: string(make([]byte, MaxStayRefBytes+1)), Kind: StayFinal}, Inpatient, false},
		{StayBill{Ref: "ADM-1", Kind: StayInterim}, Outpatient, false},
	} {
		if err := c.bill.Validate(c.visit); (err == nil) != c.ok || err != nil && !errors.Is(err, ErrInvalid) {
			t.Errorf("%+v %s: %v", c.bill, c.visit, err)
		}
	}
}

// A stay longer than a basket's MaxItems lines is priced on its classes' totals, as its lines
// would be.
func TestStayBasketOfALongStay(t *testing.T) {
	p := policy(t, "jiaxing", 2026)
	var long []Item
	for i := range MaxItems + 100 {
		long = append(long, Item{Code: fmt.Sprintf("X%d", i), Class: Classes()[i%3], Amount: int64(1000 + i)})
	}
	b, err := StayBasket(long)
	if err != nil || len(b.Items) != 3 {
		t.Fatalf("stay basket of %d lines: %d lines, %v", len(long), len(b.Items), err)
	}
	byLine, err := StayBasket(long[:MaxItems])
	if err != nil || len(byLine.Items) != MaxItems {
		t.Fatalf("stay basket of %d lines: %d lines, %v", MaxItems, len(byLine.Items), err)
	}
	whole, err := p.Split(b, 2, Accumulators{}.Clone(), 0)
	if err != nil {
		t.Fatal(err)
	}
	var sums [3]int64
	for i, it := range long {
		sums[i%3] += it.Amount
	}
	want, err := p.Split(Basket{VisitKind: Inpatient, Items: []Item{{Class: ClassA, Amount: sums[0]}, {Class: ClassB, Amount: sums[1]},
		{Class: ClassC, Amount: sums[2]}}}, 2, Accumulators{}.Clone(), 0)
	if err != nil || PartsOf(whole) != PartsOf(want) {
		t.Errorf("long stay %+v, by class %+v, %v", PartsOf(whole), PartsOf(want), err)
	}
}

// A long stay whose class B items carry the catalogue's own self-pay shares keeps one item per
// share: the split reads each share's total, so collapsing B items of different shares into one
// would price them at the wrong share.
func TestStayBasketKeepsEachSelfPayShare(t *testing.T) {
	p := policy(t, "jiaxing", 2026)
	shares := []*decimal.Decimal{nil, ptr(decimal.RequireFromString("0.05")), ptr(decimal.RequireFromString("0.30"))}
	var long []Item
	sums := map[int]int64{}
	for i := range MaxItems + 10 {
		long = append(long, Item{Code: fmt.Sprintf("B%d", i), Class: ClassB, Amount: int64(2000 + i), SelfPay: shares[i%3]})
		sums[i%3] += int64(2000 + i)
	}
	b, err := StayBasket(long)
	if err != nil || len(b.Items) != 3 {
		t.Fatalf("stay basket of %d lines of three shares: %d items, %v", len(long), len(b.Items), err)
	}
	whole, err := p.Split(b, 2, Accumulators{}.Clone(), 0)
	if err != nil {
		t.Fatal(err)
	}
	var items []Item
	for i, s := range shares {
		items = append(items, Item{Class: ClassB, Amount: sums[i], SelfPay: s})
	}
	want, err := p.Split(Basket{VisitKind: Inpatient, Items: items}, 2, Accumulators{}.Clone(), 0)
	if err != nil || PartsOf(whole) != PartsOf(want) {
		t.Errorf("long stay %+v, by share %+v, %v", PartsOf(whole), PartsOf(want), err)
	}
	if PartsOf(whole).Cash == 0 {
		t.Errorf("long stay of class B items paid no cash: %+v", PartsOf(whole))
	}
}

func ptr[T any](v T) *T { return &v }
