package ledger

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// MaxAmount bounds one amount that enters the engine from outside (a transfer over the API, the
// amount of a card event), in minor units of any currency: 1,000,000,000,000.00 CNY, above any
// single movement a card programme makes, a bank's funding of its settlement position included.
// Within it the totals the engine builds from such amounts (a bank's settlement position, a
// merchant's cycle) stay within int64 for as long as a city can run: reaching 2^63 fen would take
// 92,233 transfers of the bound into one account.
const MaxAmount int64 = 100_000_000_000_000

// FormatAmount writes minor units in the currency's major unit with its decimals, grouped by
// thousands: FormatAmount(123456, "CNY") is "1,234.56". It is for people; files and APIs carry
// their own formats.
func FormatAmount(minor int64, c Currency) string { return formatMinor(minor, c, true) }

// FormatDecimal writes minor units as a plain decimal in the currency's major unit, without
// grouping: FormatDecimal(-150, "CNY") is "-1.50". It is the form of amounts in APIs and files.
func FormatDecimal(minor int64, c Currency) string { return formatMinor(minor, c, false) }

// ParseDecimal reads what FormatDecimal writes, and only that: an optional '-', the whole units
// without leading zeros and, for a currency with decimals, a point and exactly its decimals.
// "1234.56", "-0.05" and "0.00" are CNY amounts; "12", "1.2", "1.234", "1e3", "+1.00", "01.00",
// "-0.00" and values outside int64 are refused. Files whose amounts must read back to the bytes
// they were written as use it; callers that forbid a sign refuse '-' themselves. The errors never
// repeat s.
func ParseDecimal(s string, c Currency) (int64, error) {
	places, ok := c.MinorUnits()
	if !ok {
		return 0, fmt.Errorf("unknown currency %q", string(c))
	}
	if s == "" {
		return 0, errors.New("empty amount")
	}
	digits := s
	neg := s[0] == '-'
	if neg {
		digits = s[1:]
	}
	whole, frac, hasPoint := strings.Cut(digits, ".")
	if !decimalDigits(whole) || hasPoint && frac != "" && !decimalDigits(frac) {
		return 0, errors.New("not a decimal amount, want digits with an optional '-' and a '.'")
	}
	switch {
	case places == 0 && hasPoint:
		return 0, fmt.Errorf("%s has no decimals, want whole units only", c)
	case places > 0 && (!hasPoint || len(frac) != int(places)):
		return 0, fmt.Errorf("want exactly %d decimals for %s", places, c)
	case len(whole) > 1 && whole[0] == '0':
		return 0, errors.New("has a leading zero")
	}
	// At most 20 digits fit a uint64's 1.8*10^19 without wrapping; int64 is checked after.
	if len(whole)+len(frac) > 20 {
		return 0, fmt.Errorf("overflows int64 minor units of %s", c)
	}
	abs, err := strconv.ParseUint(whole+frac, 10, 64)
	switch {
	case err != nil:
		return 0, fmt.Errorf("overflows int64 minor units of %s", c)
	case neg && abs == 0:
		return 0, errors.New("is a negative zero, write zero without a sign")
	case neg && abs > 1<<63, !neg && abs > 1<<63-1:
		return 0, fmt.Errorf("overflows int64 minor units of %s", c)
	case neg:
		return int64(-abs), nil // abs == 1<<63 wraps to MinInt64, as wanted
	}
	return int64(abs), nil
}

// ParseAmount reads an amount a client wrote in the currency's major unit: whole units without
// leading zeros and, for a currency with decimals, an optional point and at most its decimals.
// "12", "12.3" and "12.34" are CNY amounts of 1200, 1230 and 1234 fen, and "0" is zero; a sign,
// an exponent, "1.", ".5", "01", too many decimals and values past int64 are refused. Whether zero
// is an amount is the caller's rule. The errors never repeat s.
func ParseAmount(s string, c Currency) (int64, error) {
	places, ok := c.MinorUnits()
	if !ok {
		return 0, fmt.Errorf("unknown currency %q", string(c))
	}
	whole, frac, hasPoint := strings.Cut(s, ".")
	switch {
	case s == "":
		return 0, errors.New("empty amount")
	case s[0] == '-':
		return 0, errors.New("is negative, amounts must not be")
	case !decimalDigits(whole) || hasPoint && !decimalDigits(frac):
		return 0, errors.New(`not a decimal amount, want digits with an optional fraction such as "12.34"`)
	case len(frac) > int(places):
		return 0, fmt.Errorf("has %d decimal places, %s has %d", len(frac), c, places)
	case len(whole) > 1 && whole[0] == '0':
		return 0, errors.New("has a leading zero")
	}
	frac += strings.Repeat("0", int(places)-len(frac))
	digits := strings.TrimLeft(whole+frac, "0")
	// More than 19 significant digits is past int64's 9.2*10^18 however they read.
	if len(digits) > 19 {
		return 0, fmt.Errorf("overflows int64 minor units of %s", c)
	}
	if digits == "" {
		return 0, nil
	}
	v, err := strconv.ParseInt(digits, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("overflows int64 minor units of %s", c)
	}
	return v, nil
}

func decimalDigits(s string) bool {
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

func formatMinor(minor int64, c Currency, group bool) string {
	places, ok := c.MinorUnits()
	if !ok {
		places = 0
	}
	neg := minor < 0
	digits := strconv.FormatUint(absUint(minor), 10)
	if pad := int(places) + 1 - len(digits); pad > 0 {
		digits = strings.Repeat("0", pad) + digits
	}
	whole, frac := digits[:len(digits)-int(places)], digits[len(digits)-int(places):]
	var b strings.Builder
	if neg {
		b.WriteByte('-')
	}
	for i, d := range whole {
		if group && i > 0 && (len(whole)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(d)
	}
	if places > 0 {
		b.WriteByte('.')
		b.WriteString(frac)
	}
	return b.String()
}

func absUint(v int64) uint64 {
	if v < 0 {
		return uint64(-(v + 1)) + 1
	}
	return uint64(v)
}
