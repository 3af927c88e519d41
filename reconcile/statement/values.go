package statement

import (
	"errors"
	"fmt"
	"strconv"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/joinincard/engine/events"
	"github.com/joinincard/engine/ledger"
)

// maxCountDigits: counts and sequence numbers are written without leading zeros; 18 digits stay
// inside int64.
const maxCountDigits = 18

// timeLayout writes times as RFC 3339 in the zone the caller gave, with the fraction of a
// second only when there is one: one spelling per instant and zone.
const timeLayout = time.RFC3339Nano

// formatAmount writes unsigned fen in yuan with two decimals: "1234.56".
func formatAmount(fen int64) string { return ledger.FormatDecimal(fen, CurrencyCNY) }

// formatSigned writes a signed amount for an error message: "-12.00".
func formatSigned(fen int64) string { return ledger.FormatDecimal(fen, CurrencyCNY) }

// parseAmount reads an unsigned amount with exactly two decimals, as formatAmount writes it.
func parseAmount(s string) (int64, error) {
	if s != "" && (s[0] == '-' || s[0] == '+') {
		return 0, errors.New("amounts are unsigned, the direction is its own field")
	}
	fen, err := ledger.ParseDecimal(s, CurrencyCNY)
	if err != nil {
		return 0, fmt.Errorf("not an amount such as \"1234.56\": %w", err)
	}
	return fen, nil
}

// signedParts splits a signed amount (a balance, a net) into the unsigned amount and direction
// the formats write. Zero is CRDT. The amount must not be math.MinInt64 (checkBalance).
func signedParts(v int64) (int64, Direction) {
	if v < 0 {
		return -v, Debit
	}
	return v, Credit
}

// signedFrom joins what signedParts split, refusing a zero written as DBIT (it has one spelling).
func signedFrom(abs int64, d Direction) (int64, error) {
	if d == Debit {
		if abs == 0 {
			return 0, errors.New("zero is written CRDT")
		}
		return -abs, nil
	}
	return abs, nil
}

func formatTime(t time.Time) string { return t.Format(timeLayout) }

// parseTime reads a time as formatTime writes it, and only so.
func parseTime(s string) (time.Time, error) {
	t, err := time.Parse(timeLayout, s)
	if err != nil || t.Format(timeLayout) != s {
		return time.Time{}, errors.New(`not an RFC 3339 time such as "2026-10-10T02:00:00+08:00" (UTC written Z, no trailing zeros in the fraction)`)
	}
	if err := checkTime(t); err != nil {
		return time.Time{}, err
	}
	return t, nil
}

// parseDate reads YYYY-MM-DD.
func parseDate(s string) (events.Date, error) {
	t, err := time.Parse(time.DateOnly, s)
	if err != nil || t.Format(time.DateOnly) != s || t.Year() < minYear {
		return events.Date{}, errors.New(`not a date such as "2026-10-09"`)
	}
	return events.Date{Year: t.Year(), Month: t.Month(), Day: t.Day()}, nil
}

func formatCount(n int64) string { return strconv.FormatInt(n, 10) }

// parseCount reads a non-negative count written in decimal without a sign or leading zeros.
func parseCount(s string) (int64, error) {
	if s == "" || len(s) > maxCountDigits {
		return 0, fmt.Errorf("want 1 to %d digits", maxCountDigits)
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, errors.New("want decimal digits")
		}
	}
	if len(s) > 1 && s[0] == '0' {
		return 0, errors.New("has a leading zero")
	}
	return strconv.ParseInt(s, 10, 64)
}

// checkID refuses what is not 1 to max bytes of printable ASCII without spaces: identifiers made
// by machines (the bank's and the engine's), which may read like numbers of any kind.
func checkID(s string, max int) error {
	if s == "" {
		return errors.New("is empty")
	}
	if len(s) > max {
		return fmt.Errorf("is %d bytes, more than %d", len(s), max)
	}
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] >= 0x7f {
			return errors.New("must be printable ASCII without spaces")
		}
	}
	return nil
}

// checkText refuses what is not at most maxRunes characters of UTF-8 that XML can carry, with no
// control characters and no leading or trailing space, or may hold a card number in clear. An
// empty text is allowed: an optional field left out.
func checkText(s string, maxRunes int) error {
	if s == "" {
		return nil
	}
	if !utf8.ValidString(s) {
		return errors.New("is not UTF-8")
	}
	n := 0
	for _, r := range s {
		n++
		if unicode.IsControl(r) || !xmlChar(r) {
			return errors.New("must not contain control or non-characters")
		}
	}
	if n > maxRunes {
		return fmt.Errorf("is %d characters, more than %d", n, maxRunes)
	}
	first, _ := utf8.DecodeRuneInString(s)
	last, _ := utf8.DecodeLastRuneInString(s)
	if unicode.IsSpace(first) || unicode.IsSpace(last) {
		return errors.New("must not start or end with a space")
	}
	if events.ContainsCardNumber(s) {
		return ErrCardNumber
	}
	return nil
}

// xmlChar reports whether XML 1.0 can carry r (its Char production, less the controls refused
// before).
func xmlChar(r rune) bool {
	return r >= 0x20 && r <= 0xD7FF || r >= 0xE000 && r <= 0xFFFD || r >= 0x10000 && r <= 0x10FFFF
}

func checkDate(d events.Date) error {
	if d.Year < minYear || d.Year > maxYear {
		return fmt.Errorf("year must be %d to %d", minYear, maxYear)
	}
	t := civil(d)
	if t.Month() != d.Month || t.Day() != d.Day {
		return errors.New("is not a valid date")
	}
	return nil
}

// checkTime refuses a time that RFC 3339 cannot write exactly: a zero time, a year outside
// 1 to 9999, or a zone offset that is not whole minutes.
func checkTime(t time.Time) error {
	if t.IsZero() {
		return errors.New("is missing")
	}
	if t.Year() < minYear || t.Year() > maxYear {
		return fmt.Errorf("year must be %d to %d", minYear, maxYear)
	}
	if _, offset := t.Zone(); offset%60 != 0 || offset <= -maxZoneOffset || offset >= maxZoneOffset {
		return errors.New("zone offset must be whole minutes, less than 24 hours")
	}
	return nil
}

func civil(d events.Date) time.Time {
	return time.Date(d.Year, d.Month, d.Day, 0, 0, 0, 0, time.UTC)
}
