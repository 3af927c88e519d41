package bankfile

import (
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/joinincard/engine/events"
	"github.com/joinincard/engine/ledger"
)

// maxCountDigits: counts and sequence numbers are written without leading zeros; 18 digits stay
// inside int64.
const maxCountDigits = 18

// timeLayout writes times as RFC 3339 in the zone the caller gave, with the fraction of a
// second only when there is one: one spelling per instant and zone.
const timeLayout = time.RFC3339Nano

// formatAmount writes fen in yuan with two decimals: "1234.56". Files only hold amounts that are
// not negative; error messages may quote a negative net ("-12.00").
func formatAmount(fen int64) string { return ledger.FormatDecimal(fen, CurrencyCNY) }

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

// netParts splits a signed net into the unsigned amount and direction files write. Zero is CRDT.
func netParts(net int64) (int64, Direction) {
	if net < 0 {
		return -net, Debit
	}
	return net, Credit
}

// netFrom joins what netParts split, refusing a zero written as DBIT (it has one spelling).
func netFrom(abs int64, d Direction) (int64, error) {
	if d == Debit {
		if abs == 0 {
			return 0, errors.New("a zero net is written CRDT")
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
		return time.Time{}, errors.New(`not an RFC 3339 time such as "2026-10-08T18:30:00+08:00" (UTC written Z, no trailing zeros in the fraction)`)
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
		return events.Date{}, errors.New(`not a date such as "2026-10-08"`)
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
