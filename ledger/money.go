package ledger

import (
	"strconv"
	"strings"
)

// FormatAmount writes minor units in the currency's major unit with its decimals, grouped by
// thousands: FormatAmount(123456, "CNY") is "1,234.56". It is for people; files and APIs carry
// their own formats.
func FormatAmount(minor int64, c Currency) string { return formatMinor(minor, c, true) }

// FormatDecimal writes minor units as a plain decimal in the currency's major unit, without
// grouping: FormatDecimal(-150, "CNY") is "-1.50". It is the form of amounts in APIs and files.
func FormatDecimal(minor int64, c Currency) string { return formatMinor(minor, c, false) }

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
