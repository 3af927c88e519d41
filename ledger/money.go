package ledger

import (
	"strconv"
	"strings"
)

// FormatAmount writes minor units in the currency's major unit with its decimals, grouped by
// thousands: FormatAmount(123456, "CNY") is "1,234.56". It is for people; files and APIs carry
// their own formats.
func FormatAmount(minor int64, c Currency) string {
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
		if i > 0 && (len(whole)-i)%3 == 0 {
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
