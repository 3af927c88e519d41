package medical

import (
	"fmt"
	"math/big"
	"math/rand/v2"
	"testing"

	"github.com/shopspring/decimal"
)

// propertyRounds is how many random baskets the property test splits: a few hundred thousand
// splits a second, so this is well under a second, and enough to hit every rounding edge and
// cap crossing many times over.
const propertyRounds = 20000

// TestSplitProperties splits random baskets under the sample policies and random ones, against
// random accumulators and personal balances, and checks every split against the rules it must
// keep and against a reference model written with exact rationals.
func TestSplitProperties(t *testing.T) {
	rng := rand.New(rand.NewPCG(20260301, 6))
	policies := samples(t).All()
	for range 20 {
		policies = append(policies, randomPolicy(rng))
	}
	for i := range propertyRounds {
		p := policies[rng.IntN(len(policies))]
		b := randomBasket(rng)
		tier := Tier(1 + rng.IntN(3))
		acc := randomAccumulators(rng, p)
		personal := randomAmount(rng)
		if rng.IntN(4) == 0 {
			personal = 0
		}
		s, err := p.Split(b, tier, acc, personal)
		if err != nil {
			t.Fatalf("round %d: %v", i, err)
		}
		if err := checkSplit(p, b, tier, acc, personal, s); err != nil {
			t.Fatalf("round %d, policy %s, tier %d, basket %+v, acc %+v, personal %d: %v\nsplit %+v", i, p.ID(), tier, b, acc, personal, err, s)
		}
	}
}

// TestYearNeverPassesTheCap settles random years of baskets, one after another, and checks that
// the fund's total in each cap bucket never passes the cap.
func TestYearNeverPassesTheCap(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 2026))
	for year := range 200 {
		p := randomPolicy(rng)
		acc := Accumulators{}.Clone()
		paid := map[string]int64{}
		for range 40 {
			b := randomBasket(rng)
			s, err := p.Split(b, Tier(1+rng.IntN(3)), acc, randomAmount(rng))
			if err != nil {
				t.Fatal(err)
			}
			acc = acc.Plus(s.Delta)
			for _, c := range p.Visits[b.VisitKind].Caps {
				paid[c] += s.Fund
			}
		}
		for c, v := range paid {
			if v > p.Caps[c] {
				t.Fatalf("year %d, policy %+v: the fund paid %d against cap %s of %d", year, p, v, c, p.Caps[c])
			}
			if acc.Fund[c] != v {
				t.Fatalf("year %d: accumulator %s is %d, the fund paid %d", year, c, acc.Fund[c], v)
			}
		}
	}
}

func checkSplit(p *Policy, b Basket, tier Tier, acc Accumulators, personal int64, s Split) error {
	var total, classC int64
	for _, it := range b.Items {
		total += it.Amount
		if it.Class == ClassC {
			classC += it.Amount
		}
	}
	switch {
	case s.Total != total:
		return fmt.Errorf("total %d, the items sum to %d", s.Total, total)
	case s.Fund < 0 || s.Personal < 0 || s.Cash < 0:
		return fmt.Errorf("a negative part")
	case s.Fund+s.Personal+s.Cash != s.Total:
		return fmt.Errorf("the parts do not sum to the total")
	case s.Personal > max(personal, 0):
		return fmt.Errorf("the personal account pays %d of its %d", s.Personal, personal)
	case s.Cash < classC:
		return fmt.Errorf("cash %d pays less than the class C items %d", s.Cash, classC)
	}
	rule := p.Visits[b.VisitKind]
	for _, c := range rule.Caps {
		if s.Fund > 0 && acc.Fund[c]+s.Fund > p.Caps[c] {
			return fmt.Errorf("the fund pays %d past cap %s: %d paid of %d", s.Fund, c, acc.Fund[c], p.Caps[c])
		}
		if s.Fund > 0 && s.Delta.Fund[c] != s.Fund {
			return fmt.Errorf("cap %s accumulates %d, the fund paid %d", c, s.Delta.Fund[c], s.Fund)
		}
	}
	if d := p.Deductibles[rule.Deductible]; d.Scope == PerYear && s.Deductible > 0 && acc.Deductible[rule.Deductible]+s.Deductible > d.ByTier[tier] {
		return fmt.Errorf("the yearly deductible is met past its amount")
	}
	want := reference(p, b, tier, acc, personal)
	got := [...]int64{s.Fund, s.Personal, s.Cash, s.ClassBSelfPay, s.Deductible, s.CoPayment, s.OverCap, s.PersonalAccountFirst}
	if got != want {
		return fmt.Errorf("split %v, the reference model says %v (fund, personal, cash, class B, deductible, co-pay, over cap, first)", got, want)
	}
	return nil
}

// reference is the split as the policy states it, computed with exact rationals and its own
// half-even rounding, sharing no code with Split but the policy's figures.
func reference(p *Policy, b Basket, tier Tier, acc Accumulators, personal int64) [8]int64 {
	rule := p.Visits[b.VisitKind]
	var a, bb, c int64
	var classB []Item
	for _, it := range b.Items {
		switch it.Class {
		case ClassA:
			a += it.Amount
		case ClassB:
			bb += it.Amount
			classB = append(classB, it)
		default:
			c += it.Amount
		}
	}
	wallet := personal
	if wallet < 0 {
		wallet = 0
	}
	var first int64
	if rule.PersonalAccountFirst {
		first = wallet
		if a+bb < first {
			first = a + bb
		}
		fromB := first
		if bb < fromB {
			fromB = bb
		}
		bb -= fromB
		a -= first - fromB
		wallet -= first
	}
	// The personal account paid the class B items first in their order; each share applies to
	// what is left of its items, summed per share before rounding.
	paidB := bbTotal(classB) - bb
	byShare := map[string]int64{}
	shares := map[string]decimal.Decimal{}
	for _, it := range classB {
		take := paidB
		if it.Amount < take {
			take = it.Amount
		}
		paidB -= take
		r := p.ClassBSelfPay
		if it.SelfPay != nil {
			r = *it.SelfPay
		}
		k := r.String()
		shares[k] = r
		byShare[k] += it.Amount - take
	}
	var selfB int64
	for k, amount := range byShare {
		selfB += roundHalfEven(amount, shares[k])
	}
	eligible := a + bb - selfB
	d := p.Deductibles[rule.Deductible]
	dedLeft := d.ByTier[tier]
	if d.Scope == PerYear {
		dedLeft -= acc.Deductible[rule.Deductible]
		if dedLeft < 0 {
			dedLeft = 0
		}
	}
	ded := eligible
	if dedLeft < ded {
		ded = dedLeft
	}
	above := eligible - ded
	ratio := rule.FundRatio[tier]
	if e := b.Elsewhere; e != nil {
		cut := p.OtherCity.UnregisteredCut
		if e.Registered {
			cut = p.OtherCity.RegisteredCut
		}
		ratio = ratio.Sub(cut)
		if ratio.IsNegative() {
			ratio = decimal.Zero
		}
	}
	share := roundHalfEven(above, ratio)
	co := above - share
	room := int64(1) << 62
	for _, name := range rule.Caps {
		if r := p.Caps[name] - acc.Fund[name]; r < room {
			room = r
		}
	}
	if room < 0 {
		room = 0
	}
	fund := share
	if room < fund {
		fund = room
	}
	over := share - fund
	owed := selfB + ded + co + over
	later := wallet
	if owed < later {
		later = owed
	}
	pers := first + later
	total := a + bb + c + first
	return [8]int64{fund, pers, total - fund - pers, selfB, ded, co, over, first}
}

// roundHalfEven is fen times r, rounded to the fen half to even, in exact rationals.
func roundHalfEven(fen int64, r decimal.Decimal) int64 {
	x := new(big.Rat).Mul(new(big.Rat).SetInt64(fen), r.Rat())
	q, m := new(big.Int).QuoRem(x.Num(), x.Denom(), new(big.Int)) // x >= 0: truncation is floor
	twice := new(big.Int).Mul(m, big.NewInt(2))
	switch twice.Cmp(x.Denom()) {
	case 1:
		q.Add(q, big.NewInt(1))
	case 0:
		if q.Bit(0) == 1 {
			q.Add(q, big.NewInt(1))
		}
	}
	return q.Int64()
}

// randomAmount is an amount in fen spread over every magnitude: fen, yuan, hundreds, tens of
// thousands; a few at the odd half fen that rounding decides.
func randomAmount(rng *rand.Rand) int64 {
	switch rng.IntN(5) {
	case 0:
		return 1 + rng.Int64N(100)
	case 1:
		return 1 + rng.Int64N(10_000)
	case 2:
		return 1 + rng.Int64N(1_000_000)
	case 3:
		return 1 + rng.Int64N(100_000_000)
	}
	return 5 + 10*rng.Int64N(100_000)
}

func bbTotal(items []Item) int64 {
	var t int64
	for _, it := range items {
		t += it.Amount
	}
	return t
}

// selfPayShares are the class B shares random items take from their catalogue (nil: the
// policy's), odd ones included.
var selfPayShares = []string{"", "0.05", "0.1", "0.10", "0.2", "0.3333", "1", "0"}

func randomBasket(rng *rand.Rand) Basket {
	kinds := VisitKinds()
	b := Basket{VisitKind: kinds[rng.IntN(len(kinds))]}
	n := 1 + rng.IntN(12)
	for range n {
		it := Item{Class: Classes()[rng.IntN(3)], Amount: randomAmount(rng) / int64(n)}
		if sh := selfPayShares[rng.IntN(len(selfPayShares))]; it.Class == ClassB && sh != "" {
			r := decimal.RequireFromString(sh)
			it.SelfPay = &r
		}
		b.Items = append(b.Items, it)
	}
	if rng.IntN(2) == 0 {
		b.Elsewhere = &Elsewhere{City: "elsewhere", Registered: rng.IntN(2) == 0}
	}
	for i := range b.Items {
		b.Items[i].Amount = max(b.Items[i].Amount, 1)
	}
	return b
}

// randomAccumulators are below, at and past the policy's deductibles and caps.
func randomAccumulators(rng *rand.Rand, p *Policy) Accumulators {
	a := Accumulators{}.Clone()
	pick := func(limit int64) int64 {
		switch rng.IntN(4) {
		case 0:
			return 0
		case 1:
			return limit
		case 2:
			return limit + rng.Int64N(1000) // a policy lowered mid-year leaves some past it
		}
		return rng.Int64N(limit + 1)
	}
	for name, d := range p.Deductibles {
		a.Deductible[name] = pick(d.ByTier[MaxTier])
	}
	for name, c := range p.Caps {
		a.Fund[name] = pick(c)
	}
	return a
}

// randomPolicy has random ratios (with odd decimals), deductibles and caps, small ones included
// so that baskets cross them often.
func randomPolicy(rng *rand.Rand) *Policy {
	ratio := func() decimal.Decimal {
		if rng.IntN(6) == 0 {
			return decimal.NewFromInt(int64(rng.IntN(2))) // 0 or 1
		}
		return decimal.New(rng.Int64N(10_001), -maxRatioPlaces)
	}
	p := &Policy{City: "random", Year: 2026, Name: "random", ClassBSelfPay: ratio(),
		Deductibles: map[string]Deductible{}, Caps: map[string]int64{}, Visits: map[VisitKind]VisitRule{},
		OtherCity: OtherCityRule{RegisteredCut: ratio(), UnregisteredCut: ratio()}}
	for _, name := range []string{"d1", "d2"} {
		d := Deductible{Scope: PerYear}
		if rng.IntN(2) == 0 {
			d.Scope = PerVisit
		}
		for t := MinTier; t <= MaxTier; t++ {
			d.ByTier[t] = rng.Int64N(300_000)
			if d.Scope == PerYear && t > MinTier {
				d.ByTier[t] = d.ByTier[MinTier]
			}
		}
		p.Deductibles[name] = d
	}
	for _, name := range []string{"c1", "c2"} {
		p.Caps[name] = rng.Int64N(5_000_000)
	}
	for _, k := range VisitKinds() {
		r := VisitRule{PersonalAccountFirst: rng.IntN(2) == 0, Deductible: []string{"d1", "d2"}[rng.IntN(2)]}
		r.Caps = [][]string{{"c1"}, {"c2"}, {"c1", "c2"}}[rng.IntN(3)]
		for t := MinTier; t <= MaxTier; t++ {
			r.FundRatio[t] = ratio()
		}
		p.Visits[k] = r
	}
	return p
}

// BenchmarkSplit measures one split of a ten-item basket with its rule trail.
func BenchmarkSplit(b *testing.B) {
	p, ok := samples(b).For("jiaxing", 2026)
	if !ok {
		b.Fatal("no jiaxing-2026")
	}
	rng := rand.New(rand.NewPCG(1, 2))
	basket := Basket{VisitKind: Outpatient}
	for range 10 {
		basket.Items = append(basket.Items, Item{Class: Classes()[rng.IntN(3)], Amount: 1 + rng.Int64N(100_000)})
	}
	acc := Accumulators{Deductible: map[string]int64{"outpatient": 50_000}, Fund: map[string]int64{"outpatient": 700_000, "total": 700_000}}
	for b.Loop() {
		if _, err := p.Split(basket, 2, acc, 30_000); err != nil {
			b.Fatal(err)
		}
	}
}
