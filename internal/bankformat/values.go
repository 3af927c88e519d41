// Package bankformat holds what the bank file formats share: the engine's settlement files and
// acknowledgements (settlement/bankfile) and the bank statements it imports (reconcile/statement)
// spell amounts, directions, times, dates, counts and identifiers alike, report refusals alike
// and read and write XML and CSV alike. Each format package keeps its records, its field names
// and its sentinel errors; it passes in what its messages say differently.
package bankformat

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

const (
	// MinYear, MaxYear: dates and times are written with four-digit years.
	MinYear, MaxYear = 1, 9999
	// maxZoneOffset: RFC 3339 writes zone offsets as hh:mm, up to 23:59.
	maxZoneOffset = 24 * 60 * 60
	// maxCountDigits: counts and sequence numbers are written without leading zeros; 18 digits
	// stay inside int64.
	maxCountDigits = 18
)

// timeLayout writes times as RFC 3339 in the zone the caller gave, with the fraction of a
// second only when there is one: one spelling per instant and zone.
const timeLayout = time.RFC3339Nano

// CurrencyCNY is the only currency of the bank files for now.
const CurrencyCNY ledger.Currency = "CNY"

// FormatAmount writes fen in yuan with two decimals: "1234.56". Files only hold amounts that are
// not negative; error messages may quote a negative one ("-12.00").
func FormatAmount(fen int64) string { return ledger.FormatDecimal(fen, CurrencyCNY) }

// ParseAmount reads an unsigned amount with exactly two decimals, as FormatAmount writes it.
func ParseAmount(s string) (int64, error) {
	if s != "" && (s[0] == '-' || s[0] == '+') {
		return 0, errors.New("amounts are unsigned, the direction is its own field")
	}
	fen, err := ledger.ParseDecimal(s, CurrencyCNY)
	if err != nil {
		return 0, fmt.Errorf("not an amount such as \"1234.56\": %w", err)
	}
	return fen, nil
}

// Credit and Debit spell a direction as ISO 20022 writes it; each format package gives them its
// own type and meaning.
const (
	Credit = "CRDT"
	Debit  = "DBIT"
)

// ParseDirection reads CRDT or DBIT as the format package's direction type D.
func ParseDirection[D ~string](s string) (D, error) {
	switch s {
	case Credit, Debit:
		return D(s), nil
	}
	return "", errors.New("want CRDT or DBIT")
}

// SignedParts splits a signed amount (a balance, a net) into the unsigned amount and direction
// the formats write. Zero is CRDT. The amount must not be math.MinInt64.
func SignedParts[D ~string](v int64) (int64, D) {
	if v < 0 {
		return -v, Debit
	}
	return v, Credit
}

// SignedFrom joins what SignedParts split, refusing a zero written as DBIT (it has one spelling)
// with the message zeroDebit.
func SignedFrom[D ~string](abs int64, d D, zeroDebit string) (int64, error) {
	if d == Debit {
		if abs == 0 {
			return 0, errors.New(zeroDebit)
		}
		return -abs, nil
	}
	return abs, nil
}

// FormatTime writes t as RFC 3339 in its own zone.
func FormatTime(t time.Time) string { return t.Format(timeLayout) }

// ParseTime reads a time as FormatTime writes it, and only so; example is a time quoted in the
// refusal.
func ParseTime(s, example string) (time.Time, error) {
	t, err := time.Parse(timeLayout, s)
	if err != nil || t.Format(timeLayout) != s {
		return time.Time{}, fmt.Errorf(`not an RFC 3339 time such as "%s" (UTC written Z, no trailing zeros in the fraction)`, example)
	}
	if err := CheckTime(t); err != nil {
		return time.Time{}, err
	}
	return t, nil
}

// ParseDate reads YYYY-MM-DD; example is a date quoted in the refusal.
func ParseDate(s, example string) (events.Date, error) {
	t, err := time.Parse(time.DateOnly, s)
	if err != nil || t.Format(time.DateOnly) != s || t.Year() < MinYear {
		return events.Date{}, fmt.Errorf(`not a date such as "%s"`, example)
	}
	return events.Date{Year: t.Year(), Month: t.Month(), Day: t.Day()}, nil
}

// FormatCount writes a count or sequence number in decimal.
func FormatCount(n int64) string { return strconv.FormatInt(n, 10) }

// ParseCount reads a non-negative count written in decimal without a sign or leading zeros.
func ParseCount(s string) (int64, error) {
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

// CheckID refuses what is not 1 to max bytes of printable ASCII without spaces: identifiers made
// by machines (the bank's and the engine's), which may read like numbers of any kind.
func CheckID(s string, max int) error {
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

// CheckText refuses what is not at most maxRunes characters of UTF-8 that XML can carry, with no
// control characters and no leading or trailing space, or may hold a card number in clear (the
// refusal is then cardNumber, the format package's sentinel). An empty text is allowed.
func CheckText(s string, maxRunes int, cardNumber error) error {
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
		return cardNumber
	}
	return nil
}

// xmlChar reports whether XML 1.0 can carry r (its Char production, less the controls refused
// before).
func xmlChar(r rune) bool {
	return r >= 0x20 && r <= 0xD7FF || r >= 0xE000 && r <= 0xFFFD || r >= 0x10000 && r <= 0x10FFFF
}

// CheckDate refuses a date that is not a real day with a four-digit year.
func CheckDate(d events.Date) error {
	if d.Year < MinYear || d.Year > MaxYear {
		return fmt.Errorf("year must be %d to %d", MinYear, MaxYear)
	}
	t := Civil(d)
	if t.Month() != d.Month || t.Day() != d.Day {
		return errors.New("is not a valid date")
	}
	return nil
}

// CheckTime refuses a time that RFC 3339 cannot write exactly: a zero time, a year outside
// 1 to 9999, or a zone offset that is not whole minutes.
func CheckTime(t time.Time) error {
	if t.IsZero() {
		return errors.New("is missing")
	}
	if t.Year() < MinYear || t.Year() > MaxYear {
		return fmt.Errorf("year must be %d to %d", MinYear, MaxYear)
	}
	if _, offset := t.Zone(); offset%60 != 0 || offset <= -maxZoneOffset || offset >= maxZoneOffset {
		return errors.New("zone offset must be whole minutes, less than 24 hours")
	}
	return nil
}

// Civil is midnight UTC of d, for comparing dates.
func Civil(d events.Date) time.Time {
	return time.Date(d.Year, d.Month, d.Day, 0, 0, 0, 0, time.UTC)
}
