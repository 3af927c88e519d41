package events_test

import (
	"strings"
	"testing"

	"github.com/shopspring/decimal"

	"github.com/joinincard/engine/events"
	"github.com/joinincard/engine/ledger"
)

// FuzzParseAmountAgreesWithDecimal holds the amount parser to shopspring/decimal as its reference
// model: every amount it takes is decimal's value in minor units exactly, and it takes every
// amount of plain digits decimal reads within the engine's bound (ledger.MaxAmount) and the
// currency's places.
func FuzzParseAmountAgreesWithDecimal(f *testing.F) {
	for _, s := range []string{"12.34", "0.01", "1", "0", "0.00", "92233720368547758.07", "92233720368547758.08",
		"9223372036854775807", "9223372036854775808", "100000000000000000000",
		"1000000000000.00", "1000000000000.01", "100000000000000", "100000000000001", "1.5", "01.00", "1.234", ".5", "5.", "-1.00", "1e3"} {
		f.Add(s, true)
		f.Add(s, false)
	}
	f.Fuzz(func(t *testing.T, s string, cny bool) {
		c := ledger.Currency("JPY")
		if cny {
			c = "CNY"
		}
		places, _ := c.MinorUnits()
		got, why := events.ParseAmount(s, c)
		plain := s != "" && strings.Trim(s, "0123456789.") == "" && strings.Count(s, ".") <= 1
		whole, frac, _ := strings.Cut(s, ".")
		valid := plain && whole != "" && (len(whole) == 1 || whole[0] != '0') && len(frac) <= int(places) &&
			(!strings.Contains(s, ".") || frac != "")
		if !valid {
			if why == "" {
				t.Fatalf("%q (%s) taken as %d, want refused", s, c, got)
			}
			return
		}
		d, err := decimal.NewFromString(s)
		if err != nil {
			t.Fatalf("%q: decimal refuses it: %v", s, err)
		}
		want := d.Shift(places).BigInt()
		switch {
		case !want.IsInt64():
			if why == "" {
				t.Fatalf("%q (%s) taken as %d, want an overflow", s, c, got)
			}
		case want.Sign() == 0:
			if why == "" {
				t.Fatalf("%q (%s) taken as zero", s, c)
			}
		case want.Int64() > ledger.MaxAmount:
			if why == "" {
				t.Fatalf("%q (%s) taken as %d, over the bound %d", s, c, got, ledger.MaxAmount)
			}
		case why != "":
			t.Fatalf("%q (%s) refused (%s), want %s", s, c, why, want)
		case got != want.Int64():
			t.Fatalf("%q (%s) is %d, want %s", s, c, got, want)
		}
	})
}

// TestAmountBoundIsTaken checks both sides of the engine's bound on one amount in a card event:
// the bound itself is taken, a fen more is refused.
func TestAmountBoundIsTaken(t *testing.T) {
	funds := events.TypeFundsLoaded
	for _, tc := range []struct {
		amount string
		want   int64
	}{{"1000000000000.00", ledger.MaxAmount}, {"1000000000000", ledger.MaxAmount}, {"1000000000000.01", 0}} {
		msg := strings.Replace(base[funds], `"500.00"`, `"`+tc.amount+`"`, 1)
		e, err := events.Decode([]byte(msg))
		switch {
		case tc.want == 0 && err == nil:
			t.Errorf("%s taken", tc.amount)
		case tc.want != 0 && err != nil:
			t.Errorf("%s refused: %v", tc.amount, err)
		case tc.want != 0 && e.Data.(*events.FundsLoaded).Amount.Minor != tc.want:
			t.Errorf("%s is %d fen, want %d", tc.amount, e.Data.(*events.FundsLoaded).Amount.Minor, tc.want)
		}
	}
}
