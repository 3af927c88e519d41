package settlement_test

import (
	"testing"
	"time"

	"github.com/joinincard/engine/cards"
	"github.com/joinincard/engine/clearing"
	"github.com/joinincard/engine/ledger"
	"github.com/joinincard/engine/settlement"
	"github.com/joinincard/engine/settlement/calendar"
)

func date(y int, m time.Month, d int) settlement.Date {
	return settlement.Date{Year: y, Month: m, Day: d}
}

func cycles(t *testing.T) settlement.Cycles {
	t.Helper()
	cal, err := calendar.Load()
	if err != nil {
		t.Fatal(err)
	}
	return settlement.Cycles{CutoffHour: settlement.DefaultCutoffHour, Calendar: cal}
}

// A transfer stamped at the cut-off belongs to the day; a microsecond later, to the next.
func TestCycleOfAroundTheCutoff(t *testing.T) {
	c := cycles(t)
	cut := time.Date(2026, 3, 2, 23, 0, 0, 0, cards.Shanghai)
	for _, tc := range []struct {
		at   time.Time
		want settlement.Date
	}{
		{cut.Add(-time.Microsecond), date(2026, 3, 2)},
		{cut, date(2026, 3, 2)},
		{cut.Add(time.Microsecond), date(2026, 3, 3)},
		{time.Date(2026, 3, 2, 0, 0, 0, 0, cards.Shanghai), date(2026, 3, 2)},
		{time.Date(2026, 3, 2, 15, 30, 0, 0, time.UTC), date(2026, 3, 3)}, // 23:30 in Shanghai
		{time.Date(2026, 12, 31, 23, 0, 1, 0, cards.Shanghai), date(2027, 1, 1)},
	} {
		if got := c.CycleOf(tc.at); got != tc.want {
			t.Errorf("CycleOf(%s) = %s, want %s", tc.at, got, tc.want)
		}
	}
	if !c.Start(date(2026, 3, 3)).Equal(cut) || !c.Cutoff(date(2026, 3, 2)).Equal(cut) {
		t.Errorf("cycle bounds: start %s, cutoff %s", c.Start(date(2026, 3, 3)), c.Cutoff(date(2026, 3, 2)))
	}
}

// Value dates are the next business day by the mainland calendar: the cycles of the National Day
// holiday share one value date, a Saturday working day is one, and a value date in a year the
// calendar does not have is refused, naming the year.
func TestValueDates(t *testing.T) {
	c := cycles(t)
	for _, tc := range []struct{ cycle, value settlement.Date }{
		{date(2026, 9, 30), date(2026, 10, 8)},
		{date(2026, 10, 1), date(2026, 10, 8)},
		{date(2026, 10, 4), date(2026, 10, 8)},
		{date(2026, 10, 7), date(2026, 10, 8)},
		{date(2026, 10, 9), date(2026, 10, 10)}, // Saturday, a working day
		{date(2026, 2, 13), date(2026, 2, 14)},  // Saturday, a working day
		{date(2026, 3, 6), date(2026, 3, 9)},    // Friday to Monday
	} {
		got, err := c.ValueDate(tc.cycle)
		if err != nil || got != tc.value {
			t.Errorf("value date of %s: %s, %v; want %s", tc.cycle, got, err, tc.value)
		}
	}
	if _, err := c.ValueDate(date(2026, 12, 31)); err == nil || !contains(err.Error(), "2027") {
		t.Errorf("value date past the calendar: %v", err)
	}
}

// The first cycle the calendar cannot give a value date for is the last day of its last year:
// that cycle's money would move in a year it does not know.
func TestFirstRefusedCycle(t *testing.T) {
	c := cycles(t)
	for _, tc := range []struct {
		from   settlement.Date
		within int
		want   settlement.Date
		ok     bool
	}{
		{date(2026, 12, 7), 60, date(2026, 12, 31), true},
		{date(2026, 12, 31), 1, date(2026, 12, 31), true},
		{date(2026, 12, 30), 1, settlement.Date{}, false},
		{date(2026, 1, 1), 300, settlement.Date{}, false},
		{date(2026, 1, 1), 365, date(2026, 12, 31), true},
		{date(2027, 3, 1), 10, date(2027, 3, 1), true},
		{date(2026, 12, 7), 0, settlement.Date{}, false},
	} {
		got, ok := c.FirstRefusedCycle(tc.from, tc.within)
		if got != tc.want || ok != tc.ok {
			t.Errorf("from %s within %d: %s, %v; want %s, %v", tc.from, tc.within, got, ok, tc.want, tc.ok)
		}
	}
}

func contains(s, sub string) bool {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return true
		}
	}
	return false
}

var (
	card     = ledger.ID{1}
	merchant = ledger.ID{2}
	bankAcct = ledger.ID{3}
	fund     = ledger.ID{4}
)

// Items are the credits less the debits of what settlement counts, from the bank's point of
// view; loads, contributions and settlement's own postings are left out.
func TestItemize(t *testing.T) {
	d := date(2026, 3, 2)
	mv := func(code ledger.Code, debit bool, amount int64) settlement.Movement {
		return settlement.Movement{Code: code, Debit: debit, Amount: amount, Count: 1}
	}
	for _, tc := range []struct {
		name   string
		acc    settlement.Account
		moves  []settlement.Movement
		ok     bool
		amount int64
		kind   settlement.ItemKind
		bd     settlement.Breakdown
	}{
		{"a cardholder's spend, loads left out", settlement.Account{ID: card, Role: settlement.RoleCardholder, Bank: "ICBC", Counter: bankAcct},
			[]settlement.Movement{mv(clearing.CodeFundsLoaded, false, 100000), mv(clearing.CodeTransitFare, true, 700),
				mv(clearing.CodePurchase, true, 5000), mv(clearing.CodeRefund, false, 1000), mv(clearing.CodeMedicalCashPart, true, 300)},
			true, -5000, settlement.KindCardholderSpend, settlement.Breakdown{Transit: -700, Purchases: -4000, Medical: -300}},
		{"a merchant's earnings net of fees and refunds", settlement.Account{ID: merchant, Role: settlement.RoleMerchant, Bank: "ABC", Counter: merchant},
			[]settlement.Movement{mv(clearing.CodePurchase, false, 5000), mv(clearing.CodeMerchantFee, true, 30), mv(clearing.CodeRefund, true, 1000),
				mv(clearing.CodeSettlement, true, 99999)},
			true, 3970, settlement.KindMerchantEarnings, settlement.Breakdown{Purchases: 4000, Fees: -30}},
		{"fee adjustments are fees, charged and given back", settlement.Account{ID: merchant, Role: settlement.RoleMerchant, Bank: "ABC", Counter: merchant},
			[]settlement.Movement{mv(clearing.CodePurchase, false, 5000), mv(clearing.CodeMerchantFee, true, 30),
				mv(clearing.CodeMerchantFeeAdjustment, true, 12), mv(clearing.CodeMerchantFeeAdjustment, false, 5)},
			true, 4963, settlement.KindMerchantEarnings, settlement.Breakdown{Purchases: 5000, Fees: -37}},
		{"a fund's share, contributions left out", settlement.Account{ID: fund, Role: settlement.RoleInsuranceFund, Bank: "BOC", Counter: fund},
			[]settlement.Movement{mv(clearing.CodeMedicalContribution, true, 50000), mv(clearing.CodeMedicalFundPart, true, 2820),
				mv(clearing.CodeMedicalCancel, false, 100)},
			true, -2720, settlement.KindMedicalFundShare, settlement.Breakdown{Medical: -2720}},
		{"only loads: no item", settlement.Account{ID: card, Role: settlement.RoleCardholder, Bank: "ICBC", Counter: bankAcct},
			[]settlement.Movement{mv(clearing.CodeFundsLoaded, false, 100000)}, false, 0, "", settlement.Breakdown{}},
		{"spend and refund cancel out: no item", settlement.Account{ID: card, Role: settlement.RoleCardholder, Bank: "ICBC", Counter: bankAcct},
			[]settlement.Movement{mv(clearing.CodePurchase, true, 500), mv(clearing.CodeRefund, false, 500)}, false, 0, "", settlement.Breakdown{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			it, ok, err := settlement.Itemize(d, tc.acc, tc.moves)
			if err != nil || ok != tc.ok {
				t.Fatalf("ok %v, %v", ok, err)
			}
			if !ok {
				return
			}
			if it.Amount != tc.amount || it.Kind != tc.kind || it.Breakdown != tc.bd || it.Bank != tc.acc.Bank {
				t.Fatalf("item %+v", it)
			}
			if it.ID != settlement.ItemID(d, tc.acc.ID, tc.kind, ledger.ID{}) {
				t.Fatalf("item id %s is not derived from cycle, account and kind", it.ID)
			}
			p, err := settlement.Posting(it)
			if err != nil {
				t.Fatal(err)
			}
			pos := settlement.PositionAccount(tc.acc.Bank)
			wantDr, wantCr := tc.acc.Counter, pos
			if tc.amount < 0 {
				wantDr, wantCr = pos, tc.acc.Counter
			}
			if p.ID != it.ID || p.DebitAccountID != wantDr || p.CreditAccountID != wantCr || p.Amount != abs(tc.amount) || p.Code != clearing.CodeSettlement {
				t.Fatalf("posting %+v", p)
			}
		})
	}
	if _, _, err := settlement.Itemize(d, settlement.Account{ID: card, Role: "bank"}, nil); err == nil {
		t.Fatal("an account of no settled role was itemized")
	}
	if _, _, err := settlement.Itemize(d, settlement.Account{ID: card, Role: settlement.RoleMerchant},
		[]settlement.Movement{{Code: 21, Amount: -5, Count: 1}}); err == nil {
		t.Fatal("a negative movement was taken")
	}
}

func abs(v int64) int64 {
	if v < 0 {
		return -v
	}
	return v
}

// An item offered again keeps its account and amount, names the item it offers again, and has an
// id of its own, different for each offer.
func TestReoffer(t *testing.T) {
	d := date(2026, 3, 2)
	it, _, err := settlement.Itemize(d, settlement.Account{ID: merchant, Role: settlement.RoleMerchant, Bank: "ABC", Counter: merchant},
		[]settlement.Movement{{Code: clearing.CodePurchase, Amount: 500, Count: 2}})
	if err != nil {
		t.Fatal(err)
	}
	again := settlement.Reoffer(date(2026, 3, 3), it, "BOC")
	if again.ID == it.ID || again.Reoffers != it.ID || again.Amount != it.Amount || again.Bank != "BOC" || again.Kind != settlement.KindReoffered {
		t.Fatalf("reoffer %+v of %+v", again, it)
	}
	if third := settlement.Reoffer(date(2026, 3, 4), again, "BOC"); third.ID == again.ID {
		t.Fatal("the second offer again has the first's id")
	}
}

// A cycle holds its own day's activity at every cut-off hour: a cut-off at noon or later closes
// the day that evening, one before noon (0 is midnight) on the morning after, so that cycle D
// never holds day D-1's afternoon. A transfer stamped at a cut-off belongs to the cycle it
// closes; every instant is in exactly one cycle, and each cycle lasts a day.
func TestEveryCutoffHourHoldsItsOwnDay(t *testing.T) {
	cal, err := calendar.Load()
	if err != nil {
		t.Fatal(err)
	}
	d := date(2026, 3, 3)
	for hour := range 24 {
		c := settlement.Cycles{CutoffHour: hour, Calendar: cal}
		if err := c.Validate(); err != nil {
			t.Fatalf("hour %d: %v", hour, err)
		}
		day := time.Date(2026, 3, 3, 0, 0, 0, 0, cards.Shanghai)
		cut := day.Add(time.Duration(hour) * time.Hour)
		if hour < 12 {
			cut = cut.AddDate(0, 0, 1)
		}
		if got := c.Cutoff(d); !got.Equal(cut) {
			t.Errorf("hour %d: cycle %s ends at %s, want %s", hour, d, got, cut)
		}
		if got := c.Start(d); !got.Equal(cut.AddDate(0, 0, -1)) {
			t.Errorf("hour %d: cycle %s starts after %s, want %s", hour, d, got, cut.AddDate(0, 0, -1))
		}
		for _, tc := range []struct {
			at   time.Time
			want settlement.Date
		}{
			{day.Add(12 * time.Hour), d}, // the day's noon
			{day.Add(18 * time.Hour), d}, // its evening peak, before any cut-off from 19:00
			{cut, d},
			{cut.Add(time.Microsecond), date(2026, 3, 4)},
			{cut.AddDate(0, 0, -1), date(2026, 3, 2)},
			{cut.AddDate(0, 0, -1).Add(time.Microsecond), d},
		} {
			if hour <= 18 && tc.at.Equal(day.Add(18*time.Hour)) && hour >= 12 {
				continue // the evening after a cut-off at or before 18:00 is the next day's
			}
			if got := c.CycleOf(tc.at); got != tc.want {
				t.Errorf("hour %d: CycleOf(%s) = %s, want %s", hour, tc.at, got, tc.want)
			}
		}
	}
	for _, bad := range []int{-1, 24, 25} {
		if err := (settlement.Cycles{CutoffHour: bad, Calendar: cal}).Validate(); err == nil {
			t.Errorf("hour %d accepted", bad)
		}
	}
}
