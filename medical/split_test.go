package medical

import (
	"errors"
	"maps"
	"strings"
	"testing"
	"time"

	"github.com/joinincard/engine/cards"
	"github.com/joinincard/engine/events"
)

func samples(t testing.TB) *Policies {
	t.Helper()
	ps, err := SamplePolicies()
	if err != nil {
		t.Fatal(err)
	}
	return ps
}

func policy(t testing.TB, city string, year int) *Policy {
	t.Helper()
	p, ok := samples(t).For(city, year)
	if !ok {
		t.Fatalf("no sample policy %s-%d", city, year)
	}
	return p
}

// yuan reads a test amount ("12.34") as fen.
func yuan(t testing.TB, s string) int64 {
	t.Helper()
	v, err := ParseAmount(s)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// items reads "A300 B86.94 C50" as items: a class letter and an amount in yuan each.
func items(t testing.TB, s string) []Item {
	t.Helper()
	var out []Item
	for _, f := range strings.Fields(s) {
		out = append(out, Item{Code: "X" + f[:1], Class: Class(f[:1]), Amount: yuan(t, f[1:])})
	}
	return out
}

// accs reads "d.outpatient=700 f.total=599000" as accumulators: d. a deductible bucket's amount
// met, f. a cap bucket's amount paid, in yuan.
func accs(t testing.TB, s string) Accumulators {
	t.Helper()
	a := Accumulators{}.Clone()
	for _, f := range strings.Fields(s) {
		k, v, _ := strings.Cut(f, "=")
		switch {
		case strings.HasPrefix(k, "d."):
			a.Deductible[k[2:]] = yuan(t, v)
		case strings.HasPrefix(k, "f."):
			a.Fund[k[2:]] = yuan(t, v)
		default:
			t.Fatalf("bad accumulator %q", f)
		}
	}
	return a
}

// scenario is one basket under one sample policy, with the split it must get.
type scenario struct {
	name     string
	visit    VisitKind
	tier     Tier
	items    string // see items
	before   string // see accs
	personal string // the personal account's available balance, yuan
	// want: the three parts, then the breakdown, in yuan; delta the accumulators added.
	fund, pers, cash                          string
	classB, deductible, coPay, overCap, first string
	delta                                     string
}

func runScenarios(t *testing.T, p *Policy, cases []scenario) {
	t.Helper()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s, err := p.Split(Basket{VisitKind: c.visit, Items: items(t, c.items)}, c.tier, accs(t, c.before), yuan(t, c.personal))
			if err != nil {
				t.Fatal(err)
			}
			got := []int64{s.Fund, s.Personal, s.Cash, s.ClassBSelfPay, s.Deductible, s.CoPayment, s.OverCap, s.PersonalAccountFirst}
			want := []string{c.fund, c.pers, c.cash, c.classB, c.deductible, c.coPay, c.overCap, c.first}
			names := []string{"fund", "personal", "cash", "class B self-pay", "deductible", "co-payment", "over cap", "personal first"}
			for i := range got {
				w := want[i]
				if w == "" {
					w = "0"
				}
				if got[i] != yuan(t, w) {
					t.Errorf("%s %s, want %s", names[i], FormatAmount(got[i]), w)
				}
			}
			if d := accs(t, c.delta); !maps.Equal(d.Deductible, s.Delta.Deductible) || !maps.Equal(d.Fund, s.Delta.Fund) {
				t.Errorf("delta %+v, want %+v", s.Delta, d)
			}
			if t.Failed() {
				for _, r := range s.Rules {
					t.Logf("%-24s %10s  %s", r.Step, FormatAmount(r.Amount), r.Note)
				}
			}
		})
	}
}

// Jiaxing 2026 (sample): fund first; class B self-pay 10%; a yearly outpatient deductible of
// 1000 shared with pharmacies, a per-visit inpatient deductible of 300/600/800 by tier;
// outpatient 80/70/60%, pharmacy 50%, inpatient 90/87/85%; caps: outpatient 8000, total 400000.
func TestScenariosJiaxing2026(t *testing.T) {
	runScenarios(t, policy(t, "jiaxing", 2026), []scenario{
		{name: "below the deductible", visit: Outpatient, tier: 3, items: "A300", personal: "500",
			pers: "300", deductible: "300", delta: "d.outpatient=300"},
		{name: "below the deductible, personal account short", visit: Outpatient, tier: 3, items: "A300", personal: "120.50",
			pers: "120.50", cash: "179.50", deductible: "300", delta: "d.outpatient=300"},
		{name: "crossing the deductible", visit: Outpatient, tier: 3, items: "A1500", before: "d.outpatient=700", personal: "200",
			fund: "720", pers: "200", cash: "580", deductible: "300", coPay: "480",
			delta: "d.outpatient=300 f.outpatient=720 f.total=720"},
		{name: "deductible met before", visit: Outpatient, tier: 1, items: "A500", before: "d.outpatient=1000", personal: "0",
			fund: "400", cash: "100", coPay: "100", delta: "f.outpatient=400 f.total=400"},
		{name: "class B self-pay first", visit: Outpatient, tier: 1, items: "B1000", before: "d.outpatient=1000", personal: "0",
			fund: "720", cash: "280", classB: "100", coPay: "180", delta: "f.outpatient=720 f.total=720"},
		{name: "at the outpatient cap", visit: Outpatient, tier: 2, items: "A2000", before: "d.outpatient=1000 f.outpatient=7800 f.total=7800", personal: "0",
			fund: "200", cash: "1800", coPay: "600", overCap: "1200", delta: "f.outpatient=200 f.total=200"},
		{name: "past the outpatient cap", visit: Outpatient, tier: 2, items: "A2000", before: "d.outpatient=1000 f.outpatient=8000 f.total=8000", personal: "5000",
			pers: "2000", coPay: "600", overCap: "1400"},
		{name: "the outpatient cap is not the inpatient one", visit: Inpatient, tier: 3, items: "A10000", before: "f.outpatient=8000 f.total=8000", personal: "0",
			fund: "7820", cash: "2180", deductible: "800", coPay: "1380", delta: "d.inpatient=800 f.total=7820"},
		{name: "at the total cap", visit: Inpatient, tier: 1, items: "A50000", before: "f.total=399000", personal: "0",
			fund: "1000", cash: "49000", deductible: "300", coPay: "4970", overCap: "43730", delta: "d.inpatient=300 f.total=1000"},
		{name: "items outside the catalogue are cash whatever the account holds", visit: Outpatient, tier: 3, items: "C120 A100", before: "d.outpatient=1000", personal: "1000",
			fund: "60", pers: "40", cash: "120", coPay: "40", delta: "f.outpatient=60 f.total=60"},
		{name: "only items outside the catalogue", visit: Outpatient, tier: 3, items: "C88.88", personal: "1000", cash: "88.88"},
		{name: "personal account empty", visit: Outpatient, tier: 1, items: "A500", before: "d.outpatient=1000", personal: "0",
			fund: "400", cash: "100", coPay: "100", delta: "f.outpatient=400 f.total=400"},
		{name: "per-visit inpatient deductible ignores what was met before", visit: Inpatient, tier: 3, items: "A10000", before: "d.inpatient=800", personal: "1000",
			fund: "7820", pers: "1000", cash: "1180", deductible: "800", coPay: "1380", delta: "d.inpatient=800 f.total=7820"},
		{name: "pharmacy shares the outpatient deductible", visit: Pharmacy, tier: 1, items: "A200", before: "d.outpatient=900", personal: "0",
			fund: "50", cash: "150", deductible: "100", coPay: "50", delta: "d.outpatient=100 f.outpatient=50 f.total=50"},
		// 86.94 * 10% = 8.694 -> 8.69; (86.94 - 8.69) * 50% = 39.125 -> 39.12 half-even (half-up says 39.13).
		{name: "rounding half-even", visit: Pharmacy, tier: 1, items: "B86.94", before: "d.outpatient=1000", personal: "0",
			fund: "39.12", cash: "47.82", classB: "8.69", coPay: "39.13", delta: "f.outpatient=39.12 f.total=39.12"},
		// 0.05 * 10% = 0.005 -> 0.00 half-even; 0.05 * 50% = 0.025 -> 0.02.
		{name: "rounding of a fen", visit: Pharmacy, tier: 1, items: "B0.05", before: "d.outpatient=1000", personal: "0",
			fund: "0.02", cash: "0.03", coPay: "0.03", delta: "f.outpatient=0.02 f.total=0.02"},
	})
}

// Shanghai 2026 (sample): the personal account pays first for outpatients and pharmacies, the
// fund first for inpatients; class B self-pay 20%; yearly deductibles of 1500 for outpatients
// (with pharmacies) and for inpatients; outpatient 75/70/65%, pharmacy 50%, inpatient 90/87/85%;
// one total cap of 600000.
func TestScenariosShanghai2026(t *testing.T) {
	runScenarios(t, policy(t, "shanghai", 2026), []scenario{
		{name: "below the deductible, personal account empty", visit: Outpatient, tier: 3, items: "A800", personal: "0",
			cash: "800", deductible: "800", delta: "d.outpatient=800"},
		{name: "personal account first pays it all, meeting no deductible", visit: Outpatient, tier: 3, items: "A300", personal: "1000",
			pers: "300", first: "300"},
		{name: "personal account first, class B first, then crossing the deductible", visit: Outpatient, tier: 3, items: "A2000 B500",
			before: "d.outpatient=1200", personal: "600",
			fund: "1040", pers: "600", cash: "860", first: "600", deductible: "300", coPay: "560",
			delta: "d.outpatient=300 f.total=1040"},
		{name: "personal account first leaves some class B", visit: Outpatient, tier: 1, items: "B500", before: "d.outpatient=1500", personal: "100",
			fund: "240", pers: "100", cash: "160", first: "100", classB: "80", coPay: "80", delta: "f.total=240"},
		{name: "inpatient crossing the yearly deductible, fund first", visit: Inpatient, tier: 2, items: "A3000", before: "d.inpatient=1000", personal: "300",
			fund: "2175", pers: "300", cash: "525", deductible: "500", coPay: "325", delta: "d.inpatient=500 f.total=2175"},
		{name: "at the cap", visit: Inpatient, tier: 1, items: "A50000", before: "d.inpatient=1500 f.total=599000", personal: "2000",
			fund: "1000", pers: "2000", cash: "47000", coPay: "5000", overCap: "44000", delta: "f.total=1000"},
		{name: "cap reached", visit: Outpatient, tier: 1, items: "A100", before: "d.outpatient=1500 f.total=600000", personal: "0",
			cash: "100", coPay: "25", overCap: "75"},
		{name: "items outside the catalogue", visit: Outpatient, tier: 3, items: "C200 A100", personal: "1000",
			pers: "100", cash: "200", first: "100"},
		{name: "personal account empty at a pharmacy", visit: Pharmacy, tier: 1, items: "B100", before: "d.outpatient=1500", personal: "0",
			fund: "40", cash: "60", classB: "20", coPay: "40", delta: "f.total=40"},
	})
}

// The year boundary: a business day is a date in Shanghai, so 23:59 on New Year's Eve there is
// the old year and one minute later the new one, whatever the UTC date; and each year has its own
// policy, so the same basket splits differently across the boundary.
func TestYearBoundary(t *testing.T) {
	eve := time.Date(2025, 12, 31, 23, 59, 59, 0, cards.Shanghai)
	if got := DayOf(eve); got != (events.Date{Year: 2025, Month: 12, Day: 31}) {
		t.Errorf("DayOf(%s) = %s", eve, got)
	}
	if got := DayOf(eve.Add(time.Second).UTC()); got != (events.Date{Year: 2026, Month: 1, Day: 1}) {
		t.Errorf("DayOf(%s) = %s, want 2026-01-01 (it is 16:00 on the 31st in UTC)", eve.Add(time.Second).UTC(), got)
	}

	basket := Basket{VisitKind: Outpatient, Items: items(t, "A1500")}
	// Jiaxing 2025 lets the personal account pay first with a 1200 deductible; 2026 pays the fund
	// first with a 1000 one. The cardholder's 2025 accumulators do not carry into 2026.
	old, err := policy(t, "jiaxing", 2025).Split(basket, 3, accs(t, "d.outpatient=1200"), yuan(t, "100"))
	if err != nil {
		t.Fatal(err)
	}
	fresh, err := policy(t, "jiaxing", 2026).Split(basket, 3, Accumulators{}, yuan(t, "100"))
	if err != nil {
		t.Fatal(err)
	}
	// 2025: account first 100, eligible 1400 above a met deductible: 55% = 770 to the fund.
	if old.Fund != yuan(t, "770") || old.PersonalAccountFirst != yuan(t, "100") || old.Cash != yuan(t, "630") {
		t.Errorf("2025 split fund %d first %d cash %d", old.Fund, old.PersonalAccountFirst, old.Cash)
	}
	// 2026: a new deductible of 1000, then 60% of 500 = 300 to the fund; the account pays 100.
	if fresh.Fund != yuan(t, "300") || fresh.Deductible != yuan(t, "1000") || fresh.Personal != yuan(t, "100") || fresh.Cash != yuan(t, "1100") {
		t.Errorf("2026 split fund %d deductible %d personal %d cash %d", fresh.Fund, fresh.Deductible, fresh.Personal, fresh.Cash)
	}
}

// Undoing a settlement takes away exactly what it added, whatever came after it.
func TestReversalRestoresAccumulators(t *testing.T) {
	p := policy(t, "jiaxing", 2026)
	acc := Accumulators{}.Clone()
	var deltas []Accumulators
	for _, b := range []string{"A600", "A900 B300", "A4000", "A7000"} {
		s, err := p.Split(Basket{VisitKind: Outpatient, Items: items(t, b)}, 2, acc, 0)
		if err != nil {
			t.Fatal(err)
		}
		deltas = append(deltas, s.Delta)
		acc = acc.Plus(s.Delta)
	}
	if acc.Fund["outpatient"] != p.Caps["outpatient"] {
		t.Fatalf("the baskets should reach the outpatient cap: %+v", acc)
	}
	// Reverse the second: its deductible and fund parts come off, the others stay.
	after, err := acc.Minus(deltas[1])
	if err != nil {
		t.Fatal(err)
	}
	want := deltas[0].Plus(deltas[2]).Plus(deltas[3])
	if !maps.Equal(after.Deductible, want.Deductible) || !maps.Equal(after.Fund, want.Fund) {
		t.Errorf("after the reversal %+v, want %+v", after, want)
	}
	// Undoing something never added is refused, never clamped.
	if _, err := (Accumulators{}).Minus(deltas[0]); err == nil {
		t.Error("taking away from empty accumulators succeeded")
	}
}

func TestBasketValidation(t *testing.T) {
	p := policy(t, "jiaxing", 2026)
	many := make([]Item, 2*MaxItems+1)
	for i := range many {
		many[i] = Item{Class: ClassA, Amount: 1}
	}
	for _, c := range []struct {
		name   string
		basket Basket
		tier   Tier
		want   string
	}{
		{"no items", Basket{VisitKind: Outpatient}, 1, "no items"},
		{"unknown visit kind", Basket{VisitKind: "dental", Items: []Item{{Class: ClassA, Amount: 1}}}, 1, "visit kind"},
		{"unknown class", Basket{VisitKind: Outpatient, Items: []Item{{Class: "D", Amount: 1}}}, 1, "class"},
		{"zero amount", Basket{VisitKind: Outpatient, Items: []Item{{Class: ClassA}}}, 1, "positive"},
		{"negative amount", Basket{VisitKind: Outpatient, Items: []Item{{Class: ClassA, Amount: -5}}}, 1, "positive"},
		{"item over the bound", Basket{VisitKind: Outpatient, Items: []Item{{Class: ClassA, Amount: MaxAmount + 1}}}, 1, "over"},
		{"total over the bound", Basket{VisitKind: Outpatient, Items: []Item{{Class: ClassA, Amount: MaxAmount}, {Class: ClassC, Amount: 1}}}, 1, "total over"},
		{"too many items", Basket{VisitKind: Outpatient, Items: many}, 1, "at most 1000"},
		{"code with a space", Basket{VisitKind: Outpatient, Items: []Item{{Code: "X 1", Class: ClassA, Amount: 1}}}, 1, "printable"},
		{"tier 0", Basket{VisitKind: Outpatient, Items: []Item{{Class: ClassA, Amount: 1}}}, 0, "tier"},
		{"tier 4", Basket{VisitKind: Outpatient, Items: []Item{{Class: ClassA, Amount: 1}}}, 4, "tier"},
	} {
		_, err := p.Split(c.basket, c.tier, Accumulators{}, 0)
		if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: got %v, want an ErrInvalid mentioning %q", c.name, err, c.want)
		}
	}
}

func TestInstitutionKinds(t *testing.T) {
	for _, c := range []struct {
		kind  InstitutionKind
		visit VisitKind
		ok    bool
	}{
		{Hospital, Outpatient, true}, {Hospital, Inpatient, true}, {Hospital, Pharmacy, false},
		{PharmacyOutlet, Pharmacy, true}, {PharmacyOutlet, Outpatient, false}, {PharmacyOutlet, Inpatient, false},
	} {
		if got := c.kind.Allows(c.visit); got != c.ok {
			t.Errorf("%s allows %s: %v, want %v", c.kind, c.visit, got, c.ok)
		}
	}
	bad := []Institution{
		{Kind: "clinic", Tier: 1, City: "jiaxing"},
		{Kind: Hospital, Tier: 0, City: "jiaxing"},
		{Kind: Hospital, Tier: 2},
	}
	for _, in := range bad {
		if err := in.Validate(); err == nil {
			t.Errorf("%+v: valid", in)
		}
	}
}
