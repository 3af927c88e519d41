package medical

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/joinincard/engine/events"
)

func catalogues(t testing.TB) *Catalogues {
	t.Helper()
	cs, err := SampleCatalogues()
	if err != nil {
		t.Fatal(err)
	}
	return cs
}

func catalogueOf(t testing.TB, city string, d events.Date) *Catalogue {
	t.Helper()
	c, ok := catalogues(t).On(city, d)
	if !ok {
		t.Fatalf("no sample catalogue of %s on %s", city, d)
	}
	return c
}

// bill reads "CODE*QTY@PRICE ..." as bill lines: a code, a quantity and a unit price in yuan.
func bill(t testing.TB, s string) []BillLine {
	t.Helper()
	var out []BillLine
	for _, f := range strings.Fields(s) {
		code, rest, ok1 := strings.Cut(f, "*")
		qty, price, ok2 := strings.Cut(rest, "@")
		n, err := strconv.ParseInt(qty, 10, 64)
		if !ok1 || !ok2 || err != nil {
			t.Fatalf("bad bill line %q", f)
		}
		out = append(out, BillLine{Code: code, Quantity: n, UnitPrice: yuan(t, price)})
	}
	return out
}

var march2 = events.Date{Year: 2026, Month: 3, Day: 2}

// Each class of the catalogue, and its ceiling, exact to the fen: what a line covers, what it
// leaves to cash and why.
func TestClassifyEveryClassAndCeiling(t *testing.T) {
	sh := catalogueOf(t, "上海", march2)
	for _, tc := range []struct {
		name, line      string
		class           Class
		covered, cash   string
		reason, selfPay string // selfPay "" for none
	}{
		{"class A", "XB01ACA056A012010100712*30@0.35", ClassA, "10.50", "0.00", "", ""},
		{"class B with its share", "XC10AAA067A001010103356*28@1.15", ClassB, "32.20", "0.00", "", "0.1"},
		{"class C", "ZA01BAL0219010102473*2@14.80", ClassC, "0.00", "29.60", CashClassC, ""},
		{"unknown code", "XN05CFZ099A001010109999*1@45.00", "", "0.00", "45.00", CashUnknownCode, ""},
		{"A at its ceiling", "001101000010000*1@30.00", ClassA, "30.00", "0.00", "", ""},
		{"A a fen over its ceiling", "001101000010000*1@30.01", ClassA, "30.00", "0.01", CashOverCeiling, ""},
		{"A over its ceiling, by the day", "001103000010000*5@120.00", ClassA, "450.00", "150.00", CashOverCeiling, ""},
		{"B over its ceiling", "002103010010000*1@680.00", ClassB, "600.00", "80.00", CashOverCeiling, "0.2"},
		{"B under its ceiling", "C0203041800000200932*2@799.99", ClassB, "1599.98", "0.00", "", "0.1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := sh.Classify(Outpatient, bill(t, tc.line))
			if err != nil {
				t.Fatal(err)
			}
			l := c.Lines[0]
			if l.Class != tc.class || FormatAmount(l.Covered) != tc.covered || FormatAmount(l.Cash) != tc.cash || l.CashReason != tc.reason {
				t.Fatalf("line %+v: want class %q, covered %s, cash %s for %q", l, tc.class, tc.covered, tc.cash, tc.reason)
			}
			if l.Covered+l.Cash != l.Amount || l.Amount != l.Quantity*l.UnitPrice {
				t.Fatalf("line %+v does not add up", l)
			}
			if (l.SelfPay == nil) != (tc.selfPay == "") || l.SelfPay != nil && l.SelfPay.String() != tc.selfPay {
				t.Fatalf("self-pay share %v, want %q", l.SelfPay, tc.selfPay)
			}
			if tc.reason != "" && !strings.Contains(l.Note, "cash") {
				t.Fatalf("note %q does not say the cash part", l.Note)
			}
			var items, cash int64
			for _, it := range c.Basket.Items {
				items += it.Amount
				if it.Class == ClassC {
					cash += it.Amount
				}
			}
			if items != l.Amount || cash != l.Cash {
				t.Fatalf("basket %+v: want %d in all, %d as class C", c.Basket.Items, l.Amount, l.Cash)
			}
		})
	}
}

// The same code is classified by each treating city's own catalogue: Lianhua Qingwen capsules are
// class C in Shanghai's sample and class B in Jiaxing's.
func TestClassifyByTreatingCity(t *testing.T) {
	line := bill(t, "ZA01BAL0219010102473*2@14.80")
	sh, _ := catalogueOf(t, "Shanghai", march2).Classify(Pharmacy, line)
	jx, _ := catalogueOf(t, "嘉兴", march2).Classify(Pharmacy, line)
	if sh.Lines[0].Class != ClassC || jx.Lines[0].Class != ClassB || jx.Lines[0].Covered != 2960 {
		t.Fatalf("shanghai %+v, jiaxing %+v", sh.Lines[0], jx.Lines[0])
	}
	if _, ok := catalogues(t).On("shanghai", events.Date{Year: 2024, Month: 12, Day: 31}); ok {
		t.Fatal("a catalogue in force before its first day")
	}
}

// A malformed bill is refused with the line named; nothing is classified.
func TestClassifyRefusesMalformedBills(t *testing.T) {
	sh := catalogueOf(t, "shanghai", march2)
	many := make([]BillLine, MaxItems+1)
	for i := range many {
		many[i] = BillLine{Code: "X", Quantity: 1, UnitPrice: 1}
	}
	for _, tc := range []struct {
		name  string
		lines []BillLine
		want  string
	}{
		{"no lines", nil, "no items"},
		{"too many", many, "at most 500"},
		{"no code", []BillLine{{Quantity: 1, UnitPrice: 1}}, "item 0: code"},
		{"zero quantity", []BillLine{{Code: "X", UnitPrice: 1}}, "item 0: quantity"},
		{"quantity over the bound", []BillLine{{Code: "X", Quantity: MaxQuantity + 1, UnitPrice: 1}}, "quantity"},
		{"zero price", []BillLine{{Code: "X", Quantity: 1}}, "unit price"},
		{"line over the bound", []BillLine{{Code: "X", Quantity: 3, UnitPrice: MaxAmount / 2}}, "quantity times unit price"},
		{"total over the bound", []BillLine{{Code: "X", Quantity: 1, UnitPrice: MaxAmount}, {Code: "Y", Quantity: 1, UnitPrice: 1}}, "total"},
	} {
		_, err := sh.Classify(Outpatient, tc.lines)
		if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v, want an ErrInvalid mentioning %q", tc.name, err, tc.want)
		}
	}
}

// A catalogue file that does not check is refused with the field named.
func TestParseCatalogueNamesTheField(t *testing.T) {
	files, err := SampleCatalogueFiles()
	if err != nil {
		t.Fatal(err)
	}
	good := string(files["shanghai@2025-01-01.json"])
	for _, tc := range []struct{ old, new, want string }{
		{`"currency": "CNY"`, `"currency": "USD"`, "currency"},
		{`"class": "A"}`, `"class": "D"}`, "items[0].class"},
		{`"kind": "drug"`, `"kind": "device"`, "items[0].kind"},
		{`"self_pay_ratio": "0.10"`, `"self_pay_ratio": "1.10"`, "items[3].self_pay_ratio"},
		{`"unit": "粒", "class": "A"`, `"unit": "粒", "class": "A", "self_pay_ratio": "0.1"`, "items[0].self_pay_ratio: only a class B"},
		{`"price_ceiling": "30.00"`, `"price_ceiling": "30.001"`, "items[8].price_ceiling"},
		{`"price_ceiling": "30.00"`, `"price_ceiling": "0"`, "items[8].price_ceiling: must be positive"},
		{`"class": "C"}`, `"class": "C", "price_ceiling": "1.00"}`, "items[6].price_ceiling"},
		{`"code": "XA10BAE056A001010101234"`, `"code": "XJ01CAA040E001010100245"`, "items[1].code: \"XJ01CAA040E001010100245\" is in the catalogue twice"},
		{`"code": "XA10BAE056A001010101234"`, `"code": "XA10 BAE"`, "items[1].code: must be printable"},
		{`"name_zh": "阿莫西林胶囊", `, ``, "items[0].name_zh"},
		{`"currency": "CNY"`, `"currency": "CNY", "effective": "2026-01-01"`, "unknown field"},
	} {
		body := strings.Replace(good, tc.old, tc.new, 1)
		if body == good {
			t.Fatalf("edit %q found nothing", tc.old)
		}
		_, err := ParseCatalogue([]byte(body))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v, want an error naming %q", tc.new, err, tc.want)
		}
	}
	if _, err := ParseCatalogueFiles(map[string][]byte{"jiaxing.json": files["shanghai@2025-01-01.json"]}); err == nil ||
		!strings.Contains(err.Error(), "name the file shanghai.json") {
		t.Fatalf("a file named after another city: %v", err)
	}
}

// elsewhereScenario is a bill treated in another city than the insured one: the treating city's
// catalogue classifies it, the insured city's policy splits it. The figures are worked out by
// hand in the comments of each case.
type elsewhereScenario struct {
	name              string
	insured, treating string
	registered        bool
	visit             VisitKind
	tier              Tier
	bill              string // see bill
	before            string // see accs
	personal          string
	// want, in yuan: the three parts, then out of catalogue, personal first, class B self-pay,
	// deductible, co-payment, over cap.
	fund, pers, cash                      string
	ooc, first, selfPay, ded, co, overCap string
}

// A bill at a Shanghai tier 3 hospital for a card insured in Jiaxing:
//
//	consultation 1 × 35.00, ceiling 30.00: A 30.00, cash 5.00
//	MRI 1 × 680.00, ceiling 600.00: B 600.00 at 20% self-pay, cash 80.00
//	atorvastatin 28 × 1.15 = 32.20: B at 10% self-pay
//	Lianhua Qingwen 2 × 14.80 = 29.60: class C in Shanghai, cash
//	aspirin 30 × 0.35 = 10.50: A
//	an unknown code 1 × 45.00: cash
//
// total 832.30; cash whatever the policy 159.60; class B self-pay 120.00 + 3.22 = 123.22;
// eligible 40.50 + 632.20 - 123.22 = 549.48; Jiaxing's yearly deductible 1000.00 with 700.00 met
// takes 300.00; 249.48 above it.
const shanghaiOutpatient = "001101000010000*1@35.00 002103010010000*1@680.00 XC10AAA067A001010103356*28@1.15 " +
	"ZA01BAL0219010102473*2@14.80 XB01ACA056A012010100712*30@0.35 XN05CFZ099A001010109999*1@45.00"

// An inpatient stay at a Shanghai tier 3 hospital:
//
//	bed 5 × 120.00, ceiling 90.00: A 450.00, cash 150.00
//	consultation 5 × 20.00: A 100.00
//	coronary angiography 1 × 2800.00: B at 10%
//	stent 1 × 850.00, ceiling 800.00: B 800.00 at 10%, cash 50.00
//	syringes 10 × 0.45: A 4.50
//
// total 4354.50; cash 200.00; self-pay 10% of 3600.00 = 360.00; eligible 3794.50; Jiaxing's
// per-visit deductible at tier 3 800.00; 2994.50 above it.
const shanghaiInpatient = "001103000010000*5@120.00 001102000010000*5@20.00 003107010010000*1@2800.00 " +
	"C0203041800000200932*1@850.00 C1401010010100102600*10@0.45"

// Drugs at a Jiaxing pharmacy:
//
//	Lianhua Qingwen 2 × 14.80 = 29.60: class B in Jiaxing at 10%
//	clopidogrel 14 × 2.10 = 29.40: class B, no share in Jiaxing's catalogue: the policy's 20%
//	insulin glargine 2 × 78.00, ceiling 70.00: B 140.00 at 10%, cash 16.00
//	multivitamins 60 × 0.50 = 30.00: class C
//	metformin 60 × 0.25 = 15.00: A
//
// total 260.00; cash 46.00; Shanghai's pharmacy rule has the personal account pay first: 50.00 of
// it, class B first (29.60, then 20.40 of the clopidogrel); self-pay 20% of 9.00 = 1.80 and 10%
// of 140.00 = 14.00, 15.80 in all; eligible 15.00 + 149.00 - 15.80 = 148.20; Shanghai's yearly
// deductible is met.
const jiaxingPharmacy = "ZA01BAL0219010102473*2@14.80 XB01ACL075A001010101188*14@2.10 XA10AEG032B002010105678*2@78.00 " +
	"XA11AAF001A001010100017*60@0.50 XA10BAE056A001010101234*60@0.25"

var elsewhereScenarios = []elsewhereScenario{
	// 60% of 249.48 = 149.688, 149.69; co-payment 99.79; the personal account's 100.00 pays toward
	// the cardholder's 523.01.
	{name: "jiaxing card, shanghai tier 3 outpatient, registered", insured: "jiaxing", treating: "shanghai", registered: true,
		visit: Outpatient, tier: 3, bill: shanghaiOutpatient, before: "d.outpatient=700", personal: "100.00",
		fund: "149.69", pers: "100.00", cash: "582.61", ooc: "159.60", first: "0.00", selfPay: "123.22", ded: "300.00", co: "99.79", overCap: "0.00"},
	// not registered: Jiaxing's ratio less 10 points, 50% of 249.48 = 124.74.
	{name: "jiaxing card, shanghai tier 3 outpatient, not registered", insured: "jiaxing", treating: "shanghai",
		visit: Outpatient, tier: 3, bill: shanghaiOutpatient, before: "d.outpatient=700", personal: "100.00",
		fund: "124.74", pers: "100.00", cash: "607.56", ooc: "159.60", first: "0.00", selfPay: "123.22", ded: "300.00", co: "124.74", overCap: "0.00"},
	// 85% of 2994.50 = 2545.325, half-even 2545.32.
	{name: "jiaxing card, shanghai tier 3 inpatient, registered", insured: "嘉兴", treating: "上海", registered: true,
		visit: Inpatient, tier: 3, bill: shanghaiInpatient, personal: "0",
		fund: "2545.32", pers: "0.00", cash: "1809.18", ooc: "200.00", first: "0.00", selfPay: "360.00", ded: "800.00", co: "449.18", overCap: "0.00"},
	// 75% of 2994.50 = 2245.875, half-even 2245.88.
	{name: "jiaxing card, shanghai tier 3 inpatient, not registered", insured: "Jiaxing", treating: "Shanghai",
		visit: Inpatient, tier: 3, bill: shanghaiInpatient, personal: "0",
		fund: "2245.88", pers: "0.00", cash: "2108.62", ooc: "200.00", first: "0.00", selfPay: "360.00", ded: "800.00", co: "748.62", overCap: "0.00"},
	// the fund's cap: 399900.00 of 400000.00 paid before leaves 100.00 of the 2545.32.
	{name: "jiaxing card, shanghai inpatient, at the cap", insured: "jiaxing", treating: "shanghai", registered: true,
		visit: Inpatient, tier: 3, bill: shanghaiInpatient, before: "f.total=399900", personal: "0",
		fund: "100.00", pers: "0.00", cash: "4254.50", ooc: "200.00", first: "0.00", selfPay: "360.00", ded: "800.00", co: "449.18", overCap: "2445.32"},
	// 50% of 148.20 = 74.10.
	{name: "shanghai card, jiaxing pharmacy, registered", insured: "shanghai", treating: "jiaxing", registered: true,
		visit: Pharmacy, tier: 1, bill: jiaxingPharmacy, before: "d.outpatient=1500", personal: "50.00",
		fund: "74.10", pers: "50.00", cash: "135.90", ooc: "46.00", first: "50.00", selfPay: "15.80", ded: "0.00", co: "74.10", overCap: "0.00"},
	// not registered: Shanghai's ratio less 20 points, 30% of 148.20 = 44.46.
	{name: "shanghai card, jiaxing pharmacy, not registered", insured: "shanghai", treating: "jiaxing",
		visit: Pharmacy, tier: 1, bill: jiaxingPharmacy, before: "d.outpatient=1500", personal: "50.00",
		fund: "44.46", pers: "50.00", cash: "165.54", ooc: "46.00", first: "50.00", selfPay: "15.80", ded: "0.00", co: "103.74", overCap: "0.00"},
}

func TestSplitTreatedElsewhere(t *testing.T) {
	ps := samples(t)
	for _, sc := range elsewhereScenarios {
		t.Run(sc.name, func(t *testing.T) {
			p, ok := ps.On(sc.insured, march2)
			if !ok {
				t.Fatalf("no policy of %s", sc.insured)
			}
			c, err := catalogueOf(t, sc.treating, march2).Classify(sc.visit, bill(t, sc.bill))
			if err != nil {
				t.Fatal(err)
			}
			c.Basket.Elsewhere = &Elsewhere{City: c.Catalogue.City, Registered: sc.registered}
			s, err := p.Split(c.Basket, sc.tier, accs(t, sc.before), yuan(t, sc.personal))
			if err != nil {
				t.Fatal(err)
			}
			got := []int64{s.Fund, s.Personal, s.Cash, s.OutOfCatalogue, s.PersonalAccountFirst, s.ClassBSelfPay, s.Deductible, s.CoPayment, s.OverCap}
			want := []string{sc.fund, sc.pers, sc.cash, sc.ooc, sc.first, sc.selfPay, sc.ded, sc.co, sc.overCap}
			for i := range got {
				if FormatAmount(got[i]) != want[i] {
					t.Fatalf("part %d: got %s, want %s\nsplit %+v", i, FormatAmount(got[i]), want[i], s)
				}
			}
			if s.InsuredCity == c.Catalogue.City || s.Elsewhere == nil || s.Elsewhere.City != c.Catalogue.City {
				t.Fatalf("cities: insured %s, elsewhere %+v", s.InsuredCity, s.Elsewhere)
			}
			var ratioNote string
			for _, r := range s.Rules {
				if r.Step == StepFundRatio {
					ratioNote = r.Note
				}
			}
			if !strings.Contains(ratioNote, "treated in "+c.Catalogue.City) {
				t.Fatalf("the fund ratio's note %q does not name the treating city", ratioNote)
			}
		})
	}
}

// The policy's rule for other cities: a cut never takes the ratio below zero, and a policy may
// require the registration.
func TestOtherCityRule(t *testing.T) {
	files, err := SampleFiles()
	if err != nil {
		t.Fatal(err)
	}
	body := strings.Replace(string(files["jiaxing-2026.json"]), `"unregistered_ratio_cut": "0.10"}`,
		`"unregistered_ratio_cut": "1", "require_registration": true}`, 1)
	p, err := ParsePolicy([]byte(body))
	if err != nil {
		t.Fatal(err)
	}
	if !p.OtherCity.RequireRegistration {
		t.Fatal("require_registration not read")
	}
	if _, err := p.Where("jiaxing", "上海", false); !strings.Contains(fmt.Sprint(err), "not_registered") {
		t.Fatalf("an unregistered visit under a policy that requires it: %v", err)
	}
	if e, err := p.Where("jiaxing", "Shanghai", true); err != nil || e == nil || e.City != "shanghai" || !e.Registered {
		t.Fatalf("a registered visit: %+v %v", e, err)
	}
	if e, err := p.Where("嘉兴", "Jiaxing", false); err != nil || e != nil {
		t.Fatalf("a visit at home: %+v %v", e, err)
	}
	b := Basket{VisitKind: Inpatient, Items: []Item{{Class: ClassA, Amount: 100000}}, Elsewhere: &Elsewhere{City: "shanghai"}}
	s, err := p.Split(b, 3, Accumulators{}, 0)
	if err != nil {
		t.Fatal(err)
	}
	if s.Fund != 0 || s.CoPayment != 100000-80000 {
		t.Fatalf("a cut past the ratio: %+v", s)
	}
	bad := strings.Replace(string(files["jiaxing-2026.json"]), `"unregistered_ratio_cut": "0.10"`, `"unregistered_ratio_cut": "-0.1"`, 1)
	if _, err := ParsePolicy([]byte(bad)); err == nil || !strings.Contains(err.Error(), "other_city: unregistered_ratio_cut") {
		t.Fatalf("a negative cut: %v", err)
	}
}

// Random bills over each sample catalogue's codes and unknown ones, at prices around the
// ceilings: every line's covered and cash parts sum to its amount, the basket holds exactly the
// bill, the split's cash pays at least every line's cash part, and the parts sum to the bill.
func TestClassifyProperties(t *testing.T) {
	rng := rand.New(rand.NewPCG(15, 2026))
	ps := samples(t)
	for _, city := range []string{"jiaxing", "shanghai"} {
		c := catalogueOf(t, city, march2)
		p, _ := ps.On(city, march2)
		codes := append(slices.Clone(c.codes), "XN05CFZ099A001010109999", "999999999999999")
		for range 2000 {
			var lines []BillLine
			var total, cashFloor int64
			for range 1 + rng.IntN(20) {
				l := BillLine{Code: codes[rng.IntN(len(codes))], Quantity: 1 + rng.Int64N(30), UnitPrice: 1 + rng.Int64N(200_000)}
				if it, ok := c.Item(l.Code); ok && it.Ceiling > 0 && rng.IntN(2) == 0 {
					l.UnitPrice = it.Ceiling - 1 + rng.Int64N(3) // a fen under, at, a fen over
				}
				lines = append(lines, l)
				total += l.Quantity * l.UnitPrice
			}
			cl, err := c.Classify(Outpatient, lines)
			if err != nil {
				t.Fatal(err)
			}
			var items int64
			for _, it := range cl.Basket.Items {
				items += it.Amount
			}
			for _, l := range cl.Lines {
				if l.Covered+l.Cash != l.Amount || l.Covered < 0 || l.Cash < 0 || (l.Cash > 0) != (l.CashReason != "") {
					t.Fatalf("line %+v", l)
				}
				cashFloor += l.Cash
			}
			if items != total {
				t.Fatalf("basket of %d for a bill of %d", items, total)
			}
			cl.Basket.Elsewhere = &Elsewhere{City: "other", Registered: rng.IntN(2) == 0}
			s, err := p.Split(cl.Basket, Tier(1+rng.IntN(3)), Accumulators{}, rng.Int64N(100_000))
			if err != nil {
				t.Fatal(err)
			}
			if s.Total != total || s.Cash < cashFloor || s.OutOfCatalogue != cashFloor {
				t.Fatalf("split %+v of a bill of %d with %d in cash whatever the policy", s, total, cashFloor)
			}
		}
	}
}

// BenchmarkClassify classifies a twenty-line bill by Shanghai's sample catalogue: lines listed,
// over their ceilings, of class C and unknown.
func BenchmarkClassify(b *testing.B) {
	c := catalogueOf(b, "shanghai", march2)
	lines := bill(b, strings.Repeat(shanghaiOutpatient+" ", 3)+shanghaiInpatient)
	for b.Loop() {
		if _, err := c.Classify(Outpatient, lines); err != nil {
			b.Fatal(err)
		}
	}
}
