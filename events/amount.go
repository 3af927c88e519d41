package events

import (
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/joinincard/engine/ledger"
)

// maxAmountDigits: 10^19 minor units pass int64's 9.2*10^18, so an amount with more integer
// digits overflows whatever its currency, and is refused before its digits are read.
const maxAmountDigits = 19

// parseAmount reads s, the text of a JSON string in major units ("12.34"), as a positive number of
// minor units of c, whose minor units the caller has checked. It returns the reason it refuses s,
// or "". The grammar is checked first, for exact reasons; the digits then give the value exactly.
func parseAmount(s string, c ledger.Currency) (int64, string) {
	places, _ := c.MinorUnits()
	var ok bool
	if strings.ContainsAny(s, "eE") {
		return 0, fmt.Sprintf("%s uses an exponent, write plain decimal digits", quote(s))
	}
	digits := s
	if s != "" && (s[0] == '-' || s[0] == '+') {
		digits = s[1:]
	}
	whole, frac, hasPoint := strings.Cut(digits, ".")
	if !allDigits(whole) || hasPoint && !allDigits(frac) {
		return 0, fmt.Sprintf(`%s is not a decimal amount, want digits with an optional fraction such as "12.34"`, quote(s))
	}
	switch {
	case s[0] == '-':
		return 0, fmt.Sprintf("%s is negative, amounts must be positive", quote(s))
	case s[0] == '+':
		return 0, fmt.Sprintf("%s has a sign, write the digits alone", quote(s))
	case len(whole) > 1 && whole[0] == '0':
		return 0, fmt.Sprintf("%s has a leading zero", quote(s))
	case len(frac) > int(places):
		return 0, fmt.Sprintf("%d decimal %s, %s has %d", len(frac), plural(len(frac), "place", "places"), c, places)
	case len(whole) > maxAmountDigits:
		return 0, fmt.Sprintf("%s overflows int64 minor units of %s", quote(s), c)
	}
	// The grammar holds: the minor units are the digits of whole and frac, frac padded with
	// zeros to the currency's places, read exactly as an integer.
	var minor int64
	for _, part := range [...]string{whole, frac} {
		for i := 0; i < len(part); i++ {
			if minor, ok = appendDigit(minor, part[i]-'0'); !ok {
				return 0, fmt.Sprintf("%s overflows int64 minor units of %s", quote(s), c)
			}
		}
	}
	for range int(places) - len(frac) {
		if minor, ok = appendDigit(minor, 0); !ok {
			return 0, fmt.Sprintf("%s overflows int64 minor units of %s", quote(s), c)
		}
	}
	if minor == 0 {
		return 0, fmt.Sprintf("%s is zero, amounts must be positive", quote(s))
	}
	if minor > ledger.MaxAmount {
		return 0, fmt.Sprintf("%s is over the largest amount the engine takes, %s %s", quote(s), ledger.FormatDecimal(ledger.MaxAmount, c), c)
	}
	return minor, ""
}

// appendDigit is v*10+d, or false when that passes int64.
func appendDigit(v int64, d byte) (int64, bool) {
	if v > (math.MaxInt64-int64(d))/10 {
		return 0, false
	}
	return v*10 + int64(d), true
}

// formatAmount writes minor units of c in major units with exactly the currency's decimals:
// 1234 CNY is "12.34", 1234 JPY is "1234". An unknown currency is written with no decimals (the
// validating decode that follows refuses it).
func formatAmount(b []byte, minor int64, c ledger.Currency) []byte {
	places, _ := c.MinorUnits()
	var abs uint64
	if minor < 0 {
		b = append(b, '-')
		abs = uint64(-(minor + 1)) + 1
	} else {
		abs = uint64(minor)
	}
	var buf [24]byte
	digits := strconv.AppendUint(buf[:0], abs, 10)
	for len(digits) <= int(places) {
		digits = append([]byte{'0'}, digits...)
	}
	cut := len(digits) - int(places)
	b = append(b, digits[:cut]...)
	if places > 0 {
		b = append(b, '.')
		b = append(b, digits[cut:]...)
	}
	return b
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

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
