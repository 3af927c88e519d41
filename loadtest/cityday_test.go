package loadtest

import (
	"reflect"
	"testing"
	"time"

	"github.com/joinincard/engine/tariffs"
	"github.com/joinincard/engine/transit"
)

// The merchant fee of domestic-standard: each part rounded half-even to the fen, then capped.
func TestMerchantFee(t *testing.T) {
	for _, c := range []struct{ amount, want int64 }{
		{100_00, 35 + 6},         // 0.35 and 0.065 (6.5 fen, half-even to 6)
		{300_00, 105 + 20},       // 1.05 and 0.195 (19.5 fen, half-even to 20)
		{5_000_00, 13_00 + 3_25}, // 17.50 capped at 13.00, 3.25 at its cap
		{1, 0},
		{143, 1}, // 0.5005 fen of discount rounds to 1, the network fee to 0
	} {
		if got := MerchantFee(c.amount); got != c.want {
			t.Errorf("fee on %d fen: %d, want %d", c.amount, got, c.want)
		}
	}
}

func planFixture(t *testing.T, seed uint64) (*Plan, *transit.Tables) {
	t.Helper()
	files, err := tariffs.BuiltIn()
	if err != nil {
		t.Fatal(err)
	}
	tables, err := transit.Shipped()
	if err != nil {
		t.Fatal(err)
	}
	p, err := PlanDay(DayConfig{Seed: seed, Cards: 300, Merchants: 5, Purchases: 200, Authorizations: 100, MedicalBills: 50,
		Day: time.Date(2026, 6, 15, 0, 0, 0, 0, Shanghai)}, tables, files.Fares, files.Catalogues)
	if err != nil {
		t.Fatal(err)
	}
	return p, tables
}

// A seed plans one day: the same seed the same traffic, another seed other traffic.
func TestPlanDayIsDeterministic(t *testing.T) {
	a, _ := planFixture(t, 7)
	b, _ := planFixture(t, 7)
	c, _ := planFixture(t, 8)
	if !reflect.DeepEqual(a.Journeys, b.Journeys) || !reflect.DeepEqual(a.Auths, b.Auths) || !reflect.DeepEqual(a.Bills, b.Bills) ||
		!reflect.DeepEqual(a.Batches, b.Batches) || len(a.DayEvents) != len(b.DayEvents) {
		t.Fatal("one seed planned two days")
	}
	for i := range a.DayEvents {
		if string(Encode(a.DayEvents[i])) != string(Encode(b.DayEvents[i])) {
			t.Fatalf("day event %d differs", i)
		}
	}
	if reflect.DeepEqual(a.Journeys, c.Journeys) {
		t.Fatal("two seeds planned one day")
	}
}

// The model's fares, on a day written by hand: a Hangzhou commuter changing from a bus to the
// metro within the transfer window, riding on until the city's daily cap; a Shanghai rider
// past the daily cap.
func TestModelPricesByTheStatedRules(t *testing.T) {
	p, tables := planFixture(t, 7)
	at := func(h, m int) time.Time { return time.Date(2026, 6, 15, h, m, 0, 0, Shanghai) }
	hz, _ := tables.OperatorOn("HZMETRO", p.Day)
	sh, _ := tables.OperatorOn("SHMETRO", p.Day)
	long, _ := hz.Fare("0101", "0122", "")
	shLong, _ := sh.Fare("0101", "0128", "")
	p.Journeys = []Journey{
		{Card: "c1", Operator: "HZBUS", Line: "K155", From: "K155-01", To: "K155-01", In: at(8, 0), Out: at(8, 0), Single: true},
		{Card: "c1", Operator: "HZMETRO", Line: "1", From: "0101", To: "0122", In: at(8, 20), Out: at(9, 10)},  // within 90 minutes: 1.00 off
		{Card: "c1", Operator: "HZMETRO", Line: "1", From: "0122", To: "0101", In: at(18, 0), Out: at(18, 50)}, // no transfer
		{Card: "c1", Operator: "HZMETRO", Line: "1", From: "0101", To: "0122", In: at(21, 0), Out: at(21, 50), Late: true},
		{Card: "c2", Operator: "SHMETRO", Line: "1", From: "0101", To: "0128", In: at(8, 0), Out: at(9, 0)},
		{Card: "c2", Operator: "SHMETRO", Line: "1", From: "0128", To: "0101", In: at(12, 0), Out: at(13, 0)},
		{Card: "c2", Operator: "SHMETRO", Line: "1", From: "0101", To: "0128", In: at(18, 0), Out: at(19, 0)},
	}
	closed, final, err := p.fares(tables)
	if err != nil {
		t.Fatal(err)
	}
	hzDay := min(2_00+(long-1_00)+long, 15_00)
	if got := closed[cardOp{"c1", "HZBUS"}] + closed[cardOp{"c1", "HZMETRO"}]; got != hzDay {
		t.Errorf("Hangzhou day closed at %d, want %d (metro fare %d)", got, hzDay, long)
	}
	if got := final[cardOp{"c1", "HZBUS"}] + final[cardOp{"c1", "HZMETRO"}]; got != min(hzDay+long, 15_00) {
		t.Errorf("Hangzhou day with the late ride: %d, want %d", got, min(hzDay+long, 15_00))
	}
	if got := final[cardOp{"c2", "SHMETRO"}]; got != min(3*shLong, 18_00) {
		t.Errorf("Shanghai day: %d, want %d (fare %d, cap 18.00)", got, min(3*shLong, 18_00), shLong)
	}
}
