package fees

import (
	"fmt"
	"math/big"
	"math/rand/v2"
	"testing"
)

// testPlan builds a plan of two categories: groceries (5411) at mdr with mdrCap (empty: no cap)
// and network at netRate capped at 3.25, medical (5912) at nothing, with the refund policies given.
func testPlan(t *testing.T, mdr, mdrCap, netRate string, refundMDR, refundNet RefundPolicy) *Plan {
	t.Helper()
	capField := ""
	if mdrCap != "" {
		capField = fmt.Sprintf(`, "cap": %q`, mdrCap)
	}
	body := fmt.Sprintf(`{"id": "test-plan", "description": "a plan for tests", "currency": "CNY", "categories": [
		{"name": "general", "default": true, "merchant_discount": {"rate": %[1]q%[2]s}, "network": {"rate": %[3]q, "cap": "3.25"}},
		{"name": "groceries", "mccs": ["5411"], "merchant_discount": {"rate": %[1]q%[2]s}, "network": {"rate": %[3]q, "cap": "3.25"}},
		{"name": "medical", "mccs": ["5912"], "merchant_discount": {"rate": "0"}, "network": {"rate": "0"}}],
		"refund": {"merchant_discount": %[4]q, "network": %[5]q}}`, mdr, capField, netRate, refundMDR, refundNet)
	p, err := ParsePlan([]byte(body))
	if err != nil {
		t.Fatalf("test plan: %v", err)
	}
	return p
}

// The difference a re-pricing charges, for every kind of fee a plan has: a rate with and without
// a cap, a zero-rated category, the default category, both refund policies; at the cap's edge and
// on exact halves of a fen, which round half-even.
func TestAdjustmentByFeeKind(t *testing.T) {
	prop, ret := RefundProportional, RefundRetained
	for _, tc := range []struct {
		name               string
		plan               *Plan
		mcc                string
		captured, refunded int64
		charged            Fee
		want               Fee
	}{
		// 0.5% of 1.00 is 0.005: half-even to 0.00; of 3.00, 0.015 to 0.02; of 5.00, 0.025 to 0.02.
		{"half a fen rounds to even 0", testPlan(t, "0.005", "", "0", prop, ret), "5411", 100, 0, Fee{}, Fee{}},
		{"half a fen rounds up to even 2", testPlan(t, "0.005", "", "0", prop, ret), "5411", 300, 0, Fee{}, Fee{MerchantDiscount: 2}},
		{"half a fen rounds down to even 2", testPlan(t, "0.005", "", "0", prop, ret), "5411", 500, 0, Fee{MerchantDiscount: 3}, Fee{MerchantDiscount: -1}},
		// The cap: 0.5% capped at 10.00 reaches it at 2000.00 exactly; one fen below is 9.99995,
		// which rounds to 10.00 too; one fen above is capped.
		{"at the cap", testPlan(t, "0.005", "10.00", "0", prop, ret), "5411", 200000, 0, Fee{MerchantDiscount: 700}, Fee{MerchantDiscount: 300}},
		{"a fen below the cap", testPlan(t, "0.005", "10.00", "0", prop, ret), "5411", 199999, 0, Fee{MerchantDiscount: 1000}, Fee{}},
		{"past the cap", testPlan(t, "0.005", "10.00", "0", prop, ret), "5411", 900000, 0, Fee{MerchantDiscount: 1300}, Fee{MerchantDiscount: -300}},
		{"no cap", testPlan(t, "0.005", "", "0", prop, ret), "5411", 900000, 0, Fee{MerchantDiscount: 1300}, Fee{MerchantDiscount: 3200}},
		// The network fee, capped at 3.25: 0.065% of 250.00 is 0.1625, 0.16.
		{"network fee", testPlan(t, "0", "", "0.00065", prop, ret), "5411", 25000, 0, Fee{}, Fee{Network: 16}},
		{"network fee at its cap", testPlan(t, "0", "", "0.00065", prop, ret), "5411", 10_000_000, 0, Fee{Network: 100}, Fee{Network: 225}},
		{"the default category", testPlan(t, "0.01", "", "0", prop, ret), "5999", 10000, 0, Fee{MerchantDiscount: 35}, Fee{MerchantDiscount: 65}},
		{"a zero-rated category gives back what was charged", testPlan(t, "0.01", "", "0.001", prop, ret), "5912", 10000, 0,
			Fee{MerchantDiscount: 35, Network: 7}, Fee{MerchantDiscount: -35, Network: -7}},
		// Refunded 100.00 of 300.00: a proportional discount is owed on 200.00 (2.00), a retained
		// network fee on 300.00 (0.30).
		{"proportional and retained after a refund", testPlan(t, "0.01", "", "0.001", prop, ret), "5411", 30000, 10000,
			Fee{MerchantDiscount: 140, Network: 21}, Fee{MerchantDiscount: 60, Network: 9}},
		{"retained discount, proportional network", testPlan(t, "0.01", "", "0.001", ret, prop), "5411", 30000, 10000,
			Fee{MerchantDiscount: 210, Network: 14}, Fee{MerchantDiscount: 90, Network: 6}},
		{"refunded in full", testPlan(t, "0.01", "", "0.001", prop, prop), "5411", 30000, 30000, Fee{MerchantDiscount: 5, Network: -2},
			Fee{MerchantDiscount: -5, Network: 2}},
		{"nothing to adjust", testPlan(t, "0.01", "", "0.001", prop, ret), "5411", 30000, 0, Fee{MerchantDiscount: 300, Network: 30}, Fee{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.plan.Adjustment(tc.mcc, tc.captured, tc.refunded, tc.charged)
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Fatalf("adjustment %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestAdjustmentRefusesImpossiblePurchases(t *testing.T) {
	p := testPlan(t, "0.01", "", "0.001", RefundProportional, RefundRetained)
	for _, c := range []struct{ captured, refunded int64 }{{100, 101}, {100, -1}, {-1, 0}, {maxAmountFen + 1, 0}} {
		if _, err := p.Adjustment("5411", c.captured, c.refunded, Fee{}); err == nil {
			t.Errorf("captured %d refunded %d was adjusted", c.captured, c.refunded)
		}
	}
}

// refFee is the reference model of a capped rate: amount×rate in exact rationals, rounded
// half-even to the fen by hand, then capped.
func refFee(amount int64, rate string, capFen int64) int64 {
	r, _ := new(big.Rat).SetString(rate)
	x := new(big.Rat).Mul(new(big.Rat).SetInt64(amount), r) // in fen
	fl := new(big.Int).Quo(x.Num(), x.Denom())              // floor: x is not negative
	frac := new(big.Rat).Sub(x, new(big.Rat).SetInt(fl))
	switch frac.Cmp(big.NewRat(1, 2)) {
	case 1:
		fl.Add(fl, big.NewInt(1))
	case 0:
		if fl.Bit(0) == 1 {
			fl.Add(fl, big.NewInt(1))
		}
	}
	v := fl.Int64()
	if capFen >= 0 && v > capFen {
		return capFen
	}
	return v
}

// Against the reference model: a purchase charged by one plan version, refunded in parts by
// whichever version priced it at the time, adjusted to another version (once or twice, with
// refunds between), ends having paid exactly the new version's fee on what the merchant kept,
// and adjusting it again changes nothing.
func TestAdjustmentAgainstReference(t *testing.T) {
	rng := rand.New(rand.NewPCG(13, 20))
	rates := []string{"0", "0.0035", "0.005", "0.0125", "0.00065"}
	caps := []string{"", "1.00", "13.00"}
	pols := []RefundPolicy{RefundProportional, RefundRetained}
	pick := func() *Plan {
		return testPlan(t, rates[rng.IntN(len(rates))], caps[rng.IntN(len(caps))], rates[rng.IntN(len(rates))],
			pols[rng.IntN(2)], pols[rng.IntN(2)])
	}
	for range 3000 {
		old, next := pick(), pick()
		mcc := []string{"5411", "5999", "5912"}[rng.IntN(3)]
		captured := 1 + rng.Int64N(500_000)
		charged, err := old.Fee(mcc, captured)
		if err != nil {
			t.Fatal(err)
		}
		// The reference: the capture's fee is the rate of the category, rounded half-even.
		c := old.Category(mcc)
		if want := refFee(captured, c.MerchantDiscount.Rate.String(), c.MerchantDiscount.Cap); charged.MerchantDiscount != want {
			t.Fatalf("%d at %s cap %d: %d, reference %d", captured, c.MerchantDiscount.Rate, c.MerchantDiscount.Cap, charged.MerchantDiscount, want)
		}
		refunded := int64(0)
		refund := func(p *Plan) {
			if refunded == captured {
				return
			}
			r := 1 + rng.Int64N(captured-refunded)
			back, err := p.RefundReturn(mcc, captured-refunded, r)
			if err != nil {
				t.Fatal(err)
			}
			charged.MerchantDiscount -= back.MerchantDiscount
			charged.Network -= back.Network
			refunded += r
		}
		adjust := func(p *Plan) {
			adj, err := p.Adjustment(mcc, captured, refunded, charged)
			if err != nil {
				t.Fatal(err)
			}
			charged.MerchantDiscount += adj.MerchantDiscount
			charged.Network += adj.Network
		}
		if rng.IntN(2) == 0 {
			refund(old)
		}
		adjust(next)
		if rng.IntN(2) == 0 {
			refund(next) // a refund after the re-pricing returns by the new version
		}
		owed, err := next.Owed(mcc, captured, refunded)
		if err != nil {
			t.Fatal(err)
		}
		if charged != owed {
			t.Fatalf("captured %d refunded %d: charged %+v, the new version owes %+v", captured, refunded, charged, owed)
		}
		again, err := next.Adjustment(mcc, captured, refunded, charged)
		if err != nil || again != (Fee{}) {
			t.Fatalf("adjusting again: %+v %v", again, err)
		}
	}
}
