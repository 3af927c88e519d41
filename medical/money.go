package medical

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/shopspring/decimal"

	"github.com/joinincard/engine/ledger"
)

const (
	// MaxAmount bounds any one amount the package reads, and a basket's total: 100,000,000.00
	// CNY in fen. The largest hospital bills (months in intensive care) run to a few million yuan,
	// so no real bill comes near it, and sums of amounts so bounded stay far inside int64.
	MaxAmount int64 = 100_000_000_00
	// maxAmountDigits is the number of integer digits of MaxAmount in yuan: a longer amount is
	// refused before it is parsed.
	maxAmountDigits = 9
	// maxRatioPlaces bounds a policy ratio's decimals: policies state ratios in whole percent or
	// tenths of a percent, and four places (0.0001) leave room for either.
	maxRatioPlaces = 4
)

// ParseAmount reads a decimal amount in yuan with at most two decimals ("12.34", "12", "0.50")
// as fen. It refuses signs, exponents, leading zeros, more than two decimals and anything over
// MaxAmount. Zero is allowed: callers that need a positive amount check it. Its errors describe
// the amount and never repeat it: a client may have put a card number where an amount belongs,
// and the caller names the field.
func ParseAmount(s string) (int64, error) {
	whole, frac, hasPoint := strings.Cut(s, ".")
	switch {
	case s == "":
		return 0, fmt.Errorf("empty amount")
	case !allDigits(whole) || hasPoint && !allDigits(frac):
		return 0, fmt.Errorf(`not a decimal amount, want digits with an optional fraction such as "12.34"`)
	case len(whole) > 1 && whole[0] == '0':
		return 0, fmt.Errorf("has a leading zero")
	case len(frac) > 2:
		return 0, fmt.Errorf("has %d decimals, CNY has 2", len(frac))
	case len(whole) > maxAmountDigits:
		return 0, fmt.Errorf("over the bound of %s", FormatAmount(MaxAmount))
	}
	// Digits only, at most 9 + 2 of them: strconv is exact and cannot overflow.
	fen, err := strconv.ParseInt(whole+(frac + "00")[:2], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("not a decimal amount")
	}
	if fen > MaxAmount {
		return 0, fmt.Errorf("over the bound of %s", FormatAmount(MaxAmount))
	}
	return fen, nil
}

// FormatAmount writes fen as a plain decimal in yuan with two decimals: 123456 is "1234.56",
// -5 is "-0.05".
func FormatAmount(fen int64) string { return ledger.FormatDecimal(fen, "CNY") }

// parseRatio reads a policy ratio between 0 and 1 inclusive, written as a plain decimal with at
// most maxRatioPlaces decimals ("0.85", "1", "0").
func parseRatio(s string) (decimal.Decimal, error) {
	whole, frac, hasPoint := strings.Cut(s, ".")
	switch {
	case !allDigits(whole) || hasPoint && !allDigits(frac):
		return decimal.Decimal{}, fmt.Errorf(`ratio %q is not a plain decimal such as "0.85"`, s)
	case len(frac) > maxRatioPlaces:
		return decimal.Decimal{}, fmt.Errorf("ratio %q has more than %d decimals", s, maxRatioPlaces)
	}
	r, err := decimal.NewFromString(s)
	if err != nil {
		return decimal.Decimal{}, fmt.Errorf("ratio %q: %w", s, err)
	}
	if r.IsNegative() || r.GreaterThan(decimal.NewFromInt(1)) {
		return decimal.Decimal{}, fmt.Errorf("ratio %q is not between 0 and 1", s)
	}
	return r, nil
}

// mulRatio is fen times a ratio between 0 and 1, rounded half-even to the fen. It is the only
// place a split rounds (a refund's shares round in shareOf, the same way). fen is at most
// MaxAmount, so the product fits int64.
func mulRatio(fen int64, r decimal.Decimal) int64 {
	return decimal.New(fen, -2).Mul(r).RoundBank(2).Shift(2).IntPart()
}

// formatRatio writes a ratio as a percentage for people: 0.85 is "85%", 0.125 is "12.5%".
func formatRatio(r decimal.Decimal) string {
	return r.Shift(2).String() + "%"
}

func allDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}
