package fees

import (
	"bufio"
	"os"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/shopspring/decimal"

	"github.com/joinincard/engine/events"
	"github.com/joinincard/engine/ledger"
)

func loadCatalog(t *testing.T) *Catalog {
	t.Helper()
	c, err := Load()
	if err != nil {
		t.Fatalf("the embedded plans do not load: %v", err)
	}
	return c
}

// goldenRows reads a golden file's rows: whitespace-separated fields, # comments and blank lines
// skipped.
func goldenRows(t *testing.T, name string) [][]string {
	t.Helper()
	f, err := os.Open("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var rows [][]string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		rows = append(rows, strings.Fields(line))
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if len(rows) == 0 {
		t.Fatalf("testdata/%s has no rows", name)
	}
	return rows
}

// fen reads a golden amount written in CNY.
func fen(t *testing.T, s string) int64 {
	t.Helper()
	v, err := parseFen(s)
	if err != nil {
		t.Fatalf("golden amount %q: %v", s, err)
	}
	return v
}

func cny(v int64) string { return ledger.FormatAmount(v, "CNY") }

func TestFeeGolden(t *testing.T) {
	c := loadCatalog(t)
	for _, row := range goldenRows(t, "fees.golden") {
		if len(row) != 6 {
			t.Fatalf("row %q: want 6 fields", row)
		}
		p, ok := c.Plan(row[0])
		if !ok {
			t.Fatalf("row %q: no plan %q", row, row[0])
		}
		got, err := p.Fee(row[1], fen(t, row[2]))
		if err != nil {
			t.Fatalf("row %q: %v", row, err)
		}
		want := Fee{MerchantDiscount: fen(t, row[3]), Network: fen(t, row[4])}
		if got != want || got.Total() != fen(t, row[5]) {
			t.Errorf("%s mcc %s on %s: mdr %s network %s total %s, want %s %s %s", row[0], row[1], row[2],
				cny(got.MerchantDiscount), cny(got.Network), cny(got.Total()), row[3], row[4], row[5])
		}
	}
}

func TestRefundGolden(t *testing.T) {
	c := loadCatalog(t)
	for _, row := range goldenRows(t, "refunds.golden") {
		if len(row) < 4 {
			t.Fatalf("row %q: want plan, mcc, captured and refunds", row)
		}
		p, ok := c.Plan(row[0])
		if !ok {
			t.Fatalf("row %q: no plan %q", row, row[0])
		}
		mcc, captured := row[1], fen(t, row[2])
		charged, err := p.Fee(mcc, captured)
		if err != nil {
			t.Fatal(err)
		}
		net, returned := captured, Fee{}
		for _, r := range row[3:] {
			parts := strings.Split(r, ":")
			if len(parts) != 3 {
				t.Fatalf("row %q: refund %q is not amount:mdr:network", row, r)
			}
			amount := fen(t, parts[0])
			got, err := p.RefundReturn(mcc, net, amount)
			if err != nil {
				t.Fatalf("row %q: refund %s: %v", row, parts[0], err)
			}
			if want := (Fee{MerchantDiscount: fen(t, parts[1]), Network: fen(t, parts[2])}); got != want {
				t.Errorf("%s mcc %s captured %s, refund %s of %s remaining: returned %s %s, want %s %s",
					row[0], mcc, row[2], parts[0], cny(net), cny(got.MerchantDiscount), cny(got.Network), parts[1], parts[2])
			}
			net -= amount
			returned.MerchantDiscount += got.MerchantDiscount
			returned.Network += got.Network
		}
		// Whatever the steps, the merchant has paid the fee of what it kept.
		kept, err := p.Fee(mcc, net)
		if err != nil {
			t.Fatal(err)
		}
		if p.RefundMDR == RefundProportional && charged.MerchantDiscount-returned.MerchantDiscount != kept.MerchantDiscount {
			t.Errorf("row %q: the merchant discount paid in the end is not the fee of the %s kept", row, cny(net))
		}
		if p.RefundNet == RefundRetained && returned.Network != 0 {
			t.Errorf("row %q: a retained network fee was returned", row)
		}
	}
}

func TestForeignGolden(t *testing.T) {
	c := loadCatalog(t)
	for _, row := range goldenRows(t, "foreign.golden") {
		if len(row) != 4 {
			t.Fatalf("row %q: want 4 fields", row)
		}
		got, err := c.Foreign.Cost(fen(t, row[0]))
		if err != nil {
			t.Fatal(err)
		}
		want := ForeignCost{Surcharge: fen(t, row[1]), FXMargin: fen(t, row[2])}
		if got != want || got.Total() != fen(t, row[3]) {
			t.Errorf("%s: surcharge %s fx %s total %s, want %s %s %s", row[0],
				cny(got.Surcharge), cny(got.FXMargin), cny(got.Total()), row[1], row[2], row[3])
		}
	}
}

// TestRefundsNeverReturnMoreThanCharged refunds every purchase of a range in every split into two,
// and checks that the returns never pass the fee charged and a full refund returns all of it.
func TestRefundsNeverReturnMoreThanCharged(t *testing.T) {
	c := loadCatalog(t)
	for _, id := range c.PlanIDs() {
		p, _ := c.Plan(id)
		for _, mcc := range []string{"5411", "5999", "7991", "4111"} {
			for captured := int64(1); captured <= 3000; captured += 37 {
				charged, _ := p.Fee(mcc, captured)
				for first := int64(1); first < captured; first += 13 {
					a, err := p.RefundReturn(mcc, captured, first)
					if err != nil {
						t.Fatal(err)
					}
					b, err := p.RefundReturn(mcc, captured-first, captured-first)
					if err != nil {
						t.Fatal(err)
					}
					if a.MerchantDiscount < 0 || a.Network < 0 || b.MerchantDiscount < 0 || b.Network < 0 {
						t.Fatalf("%s %s: a refund took a fee: %+v %+v", id, mcc, a, b)
					}
					total := a.Total() + b.Total()
					if p.RefundNet == RefundProportional && total != charged.Total() ||
						p.RefundNet == RefundRetained && total != charged.MerchantDiscount {
						t.Fatalf("%s %s: captured %d refunded in %d and %d returned %d of a fee of %+v", id, mcc, captured, first, captured-first, total, charged)
					}
				}
			}
		}
	}
}

func TestRefundReturnRefusesMoreThanRemains(t *testing.T) {
	p, _ := loadCatalog(t).Plan("domestic-standard")
	for _, c := range []struct{ net, refund int64 }{{100, 101}, {100, 0}, {100, -1}, {-1, 1}} {
		if _, err := p.RefundReturn("5411", c.net, c.refund); err == nil {
			t.Errorf("refund of %d against %d remaining was accepted", c.refund, c.net)
		}
	}
	if _, err := p.Fee("5411", -1); err == nil {
		t.Error("a negative amount was priced")
	}
	if _, err := p.Fee("5411", maxAmountFen+1); err == nil {
		t.Error("an amount past the bound was priced")
	}
}

func TestEmbeddedPlans(t *testing.T) {
	c := loadCatalog(t)
	if got := strings.Join(c.PlanIDs(), ","); got != "domestic-small-merchant,domestic-standard" {
		t.Errorf("plans %s", got)
	}
	p, _ := c.Plan("domestic-standard")
	if got := p.Category("5999").Name; got != "general retail" {
		t.Errorf("an unnamed mcc prices as %q", got)
	}
	if got := p.Category("8062").Name; got != "medical" {
		t.Errorf("hospitals price as %q", got)
	}
	if !c.Foreign.SurchargeRate.Equal(decimal.RequireFromString("0.03")) || c.Foreign.SurchargeOver != 20000 {
		t.Errorf("foreign card %+v", c.Foreign)
	}
}

func TestParsePlanRefusesBadPlans(t *testing.T) {
	const good = `{"id":"p","currency":"CNY","categories":[
		{"name":"all","default":true,"merchant_discount":{"rate":"0.0035","cap":"13.00"},"network":{"rate":"0"}},
		{"name":"transit","mccs":["4111"],"merchant_discount":{"rate":"0"},"network":{"rate":"0"}}],
		"refund":{"merchant_discount":"proportional","network":"retained"}}`
	if _, err := ParsePlan([]byte(good)); err != nil {
		t.Fatalf("the good plan: %v", err)
	}
	for _, c := range []struct{ name, from, to, want string }{
		{"unknown field", `"id":"p"`, `"id":"p","owner":"x"`, "unknown field"},
		{"no id", `"id":"p"`, `"id":""`, "id: missing"},
		{"another currency", `"CNY"`, `"USD"`, "plans price CNY"},
		{"rate as a percentage", `"0.0035"`, `"0.35"`, "outside 0 to 0.10"},
		{"negative rate", `"0.0035"`, `"-0.0035"`, "outside 0 to 0.10"},
		{"rate not a number", `"0.0035"`, `"0.35%"`, "not a decimal"},
		{"cap below the fen", `"13.00"`, `"13.005"`, "whole fen"},
		{"mcc of three digits", `"4111"`, `"411"`, "not four digits"},
		{"mcc twice", `"mccs":["4111"]`, `"mccs":["4111","4111"]`, "already in"},
		{"two defaults", `"name":"transit","mccs":["4111"]`, `"name":"transit","default":true`, "second default"},
		{"no default", `"default":true`, `"mccs":["5411"]`, "no default"},
		{"no rate", `,"network":{"rate":"0"}}]`, `}]`, "network: missing"},
		{"unknown refund policy", `"retained"`, `"half"`, "refund.network"},
		{"trailing data", `"retained"}}`, `"retained"}} {}`, "data after"},
		{"id with a slash", `"id":"p"`, `"id":"p/q"`, "id: want lowercase letters, digits and dashes"},
		{"a description of refunds", `"id":"p"`, `"id":"p","description":"Refunds return everything."`, "description: leave refunds out"},
	} {
		t.Run(c.name, func(t *testing.T) {
			bad := strings.Replace(good, c.from, c.to, 1)
			if bad == good {
				t.Fatalf("the case changes nothing")
			}
			_, err := ParsePlan([]byte(bad))
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %v, want it to contain %q", err, c.want)
			}
		})
	}
}

func TestLoadFSRefusesAMisnamedPlan(t *testing.T) {
	plan, err := data.ReadFile("data/plans/domestic-standard.json")
	if err != nil {
		t.Fatal(err)
	}
	foreign, err := data.ReadFile("data/foreign_card.json")
	if err != nil {
		t.Fatal(err)
	}
	fsys := fstest.MapFS{
		"data/plans/other.json":  {Data: plan},
		"data/foreign_card.json": {Data: foreign},
	}
	if _, err := LoadFS(fsys); err == nil || !strings.Contains(err.Error(), "want the file's name") {
		t.Errorf("a plan under another file's name: %v", err)
	}
	delete(fsys, "data/plans/other.json")
	if _, err := LoadFS(fsys); err == nil {
		t.Error("no plans at all loaded")
	}
}

// The plan's words say what the engine does: a description may not describe refunds, and the
// refund rule in words is the one RefundReturn applies. With domestic-standard's 0.35% capped at
// 13.00, a refund of 1,000.00 off a capture of 5,000.00 returns no merchant discount (the fee on
// 4,000.00 is capped too), not 0.35% of 1,000.00; in the end the merchant pays the fee of what it
// kept.
func TestRefundRuleSaysWhatRefundReturnDoes(t *testing.T) {
	c := loadCatalog(t)
	std, _ := c.Plan("domestic-standard")
	if got := std.RefundRule(); !strings.Contains(got, "the merchant discount comes back as the difference between the merchant discount on what remained") ||
		!strings.Contains(got, "the network fee is kept") {
		t.Fatalf("domestic-standard's rule: %s", got)
	}
	small, _ := c.Plan("domestic-small-merchant")
	if got := small.RefundRule(); !strings.HasPrefix(got, "A refund returns the fees as the difference") {
		t.Fatalf("domestic-small-merchant's rule: %s", got)
	}
	for _, p := range c.All() {
		if strings.Contains(strings.ToLower(p.Description), "refund") {
			t.Errorf("%s describes refunds in its own words: %s", p.ID, p.Description)
		}
	}
	got, err := std.RefundReturn("5999", 500000, 100000)
	if err != nil || got.MerchantDiscount != 0 || got.Network != 0 {
		t.Fatalf("a refund of 1,000.00 off 5,000.00: %+v %v", got, err)
	}
	got, err = std.RefundReturn("5999", 400000, 300000)
	if err != nil || got.MerchantDiscount != 1300-350 {
		t.Fatalf("a refund of 3,000.00 off 4,000.00: %+v %v, want the capped 13.00 less 0.35%% of 1,000.00", got, err)
	}
	retained := *std
	retained.RefundMDR = RefundRetained
	if got := retained.RefundRule(); got != "A refund returns no fee." {
		t.Fatalf("a plan that keeps both: %s", got)
	}
}

// A plan's versions: each purchase is priced by the version in force on its date.
func TestPlanVersionsByDate(t *testing.T) {
	files, foreign, err := ShippedFiles(nil)
	if err != nil {
		t.Fatal(err)
	}
	files["domestic-standard@2026-07-01.json"] = []byte(strings.Replace(string(files["domestic-standard.json"]),
		`{"rate": "0.0035", "cap": "13.00"},
      "network"`, `{"rate": "0.0030", "cap": "13.00"},
      "network"`, 1))
	plans, err := ParseFiles(files)
	if err != nil {
		t.Fatal(err)
	}
	fc, err := ParseForeignCard(foreign)
	if err != nil {
		t.Fatal(err)
	}
	c, err := NewCatalog(fc, plans...)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		day  events.Date
		want int64
	}{
		{events.Date{Year: 2026, Month: 6, Day: 30}, 35},
		{events.Date{Year: 2026, Month: 7, Day: 1}, 30},
		{events.Date{Year: 2027, Month: 1, Day: 1}, 30},
	} {
		p, ok := c.PlanOn("domestic-standard", tc.day)
		if !ok {
			t.Fatalf("%s: no plan", tc.day)
		}
		fee, err := p.Fee("5999", 10000)
		if err != nil || fee.MerchantDiscount != tc.want {
			t.Errorf("%s: merchant discount %d %v, want %d", tc.day, fee.MerchantDiscount, err, tc.want)
		}
	}
	if newest, _ := c.Plan("domestic-standard"); newest.From != (events.Date{Year: 2026, Month: 7, Day: 1}) {
		t.Errorf("the newest version is from %s", newest.From)
	}
	dup := *plans[1]
	if _, err := NewCatalog(fc, append(plans, &dup)...); err == nil || !strings.Contains(err.Error(), "two versions") {
		t.Errorf("two versions from one date: %v", err)
	}
	files["domestic-standard@2026-7-1.json"] = files["domestic-standard.json"]
	if _, err := ParseFiles(files); err == nil || !strings.Contains(err.Error(), "after the @") {
		t.Errorf("a file dated badly: %v", err)
	}
}
