package events

import (
	"errors"
	"fmt"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/google/uuid"
)

const (
	// maxCardTokenBytes bounds the Kafka key: a "tok_" token is 47 bytes.
	maxCardTokenBytes = 64
	// maxIDBytes bounds identifiers (merchant, operator, device, station, line, employer, issuer
	// bank, bank reference): index keys, never prose.
	maxIDBytes = 64
	// maxTextBytes bounds prose (a holder's name, a status change's reason, a city), in UTF-8
	// bytes: 256 holds 85 CJK characters or a long transliterated name.
	maxTextBytes = 256
	// maxFractionDigits: a time.Time holds nanoseconds.
	maxFractionDigits = 9
)

// Times outside [minEventTime, maxEventTime) are refused. Integration of work permits with social
// security cards began on 1 December 2024, so an earlier time is a device whose clock was reset to
// its epoch (1970, 2000); the upper end is the last instant a four-digit year can write in UTC.
var (
	minEventTime = time.Date(2024, time.January, 1, 0, 0, 0, 0, time.UTC)
	maxEventTime = time.Date(10000, time.January, 1, 0, 0, 0, 0, time.UTC)
)

const (
	// maxTapAhead: a tap may be stamped this much after its event's occurred_at, for device clocks
	// that run fast. A device writing local time as UTC is 8 hours ahead and is refused.
	maxTapAhead = time.Hour
	// maxTapDelay: an offline upload may carry a tap this long before occurred_at. Older taps
	// belong to settlement cycles already closed and reconciled; they are handled by hand from the
	// dead-letter topic.
	maxTapDelay = 30 * 24 * time.Hour
	// MaxPermitYears: the longest a foreigner's work permit, and the residence permit for work
	// that goes with it, is issued for (Exit and Entry Administration Law, article 30: 90 days to
	// five years). A permit's last valid day is at most this many years after the event that
	// registers or renews it, counted from the event's date in civilZone.
	MaxPermitYears = 5
)

// civilZone is the card's civil time zone, Asia/Shanghai (UTC+8, no daylight saving since 1991),
// in which a permit's validity is counted.
var civilZone = time.FixedZone("CST", 8*60*60)

// parseUUID reads the 8-4-4-4-12 hex form, in either case. The other forms uuid.Parse accepts
// (braces, urn:uuid:, no hyphens) are refused, and so is the nil UUID.
func parseUUID(s string) (uuid.UUID, string) {
	bad := len(s) != 36
	for i := 0; !bad && i < len(s); i++ {
		switch c := s[i]; i {
		case 8, 13, 18, 23:
			bad = c != '-'
		default:
			bad = !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F')
		}
	}
	if bad {
		return uuid.UUID{}, fmt.Sprintf("%s is not a UUID, want 8-4-4-4-12 hex digits", quote(s))
	}
	id, err := uuid.Parse(s)
	if err != nil {
		return uuid.UUID{}, fmt.Sprintf("%s is not a UUID: %v", quote(s), err)
	}
	if id == uuid.Nil {
		return uuid.UUID{}, "is the nil UUID"
	}
	return id, ""
}

// parseTime reads an RFC 3339 time with a zone offset (Z or ±hh:mm, upper-case T and Z, at most
// nanoseconds) and returns it in UTC, refusing a time outside [minEventTime, maxEventTime).
func parseTime(s string) (time.Time, string) {
	t, why := parseInstant(s)
	if why != "" {
		return t, why
	}
	if t.Before(minEventTime) {
		return time.Time{}, fmt.Sprintf("%s is before %s, when no card existed: a clock reset to its epoch", quote(s), minEventTime.Format(time.RFC3339))
	}
	if !t.Before(maxEventTime) {
		return time.Time{}, fmt.Sprintf("%s is after the year 9999 in UTC", quote(s))
	}
	return t, ""
}

// ParseInstant reads a time as an event's times are read (RFC 3339 with a zone offset: Z or
// ±hh:mm, upper-case T and Z, a decimal point and at most nanoseconds, not -00:00) and returns it
// in UTC, or why it is not one. Unlike an event's time, it may lie in any year: a door that takes
// times outside events judges their age itself.
func ParseInstant(s string) (time.Time, error) {
	t, why := parseInstant(s)
	if why != "" {
		return time.Time{}, errors.New(why)
	}
	return t, nil
}

// parseInstant is ParseInstant, with the reason as a string.
func parseInstant(s string) (time.Time, string) {
	const example = `, want RFC 3339 such as "2025-03-01T08:30:00+08:00"`
	n, ok := dateShape(s, 0)
	ok = ok && len(s) >= 19 && s[10] == 'T' && digitsAt(s, 11, 2) && s[13] == ':' &&
		digitsAt(s, 14, 2) && s[16] == ':' && digitsAt(s, 17, 2)
	if !ok || n != 10 {
		return time.Time{}, fmt.Sprintf("%s is not a time%s", quote(s), example)
	}
	i := 19
	if i < len(s) && s[i] == '.' {
		j := i + 1
		for j < len(s) && '0' <= s[j] && s[j] <= '9' {
			j++
		}
		if j == i+1 || j-i-1 > maxFractionDigits {
			return time.Time{}, fmt.Sprintf("%s: fraction of a second must be 1 to %d digits", quote(s), maxFractionDigits)
		}
		i = j
	}
	zone := s[i:]
	switch {
	case zone == "":
		return time.Time{}, fmt.Sprintf("%s has no zone offset%s", quote(s), example)
	case zone == "Z":
	case len(zone) == 6 && (zone[0] == '+' || zone[0] == '-') && digitsAt(zone, 1, 2) && zone[3] == ':' && digitsAt(zone, 4, 2):
		if zone == "-00:00" {
			return time.Time{}, fmt.Sprintf("%s: offset -00:00 means the local offset is unknown, write the offset or Z", quote(s))
		}
		if zone[1:3] > "23" || zone[4:6] > "59" {
			return time.Time{}, fmt.Sprintf("%s has an invalid zone offset", quote(s))
		}
	default:
		return time.Time{}, fmt.Sprintf("%s has an invalid zone offset%s", quote(s), example)
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, fmt.Sprintf("%s is not a valid time%s", quote(s), example)
	}
	return t.UTC(), ""
}

// parseDate reads YYYY-MM-DD, a valid day of a year from 0001.
func parseDate(s string) (Date, string) {
	n, ok := dateShape(s, 0)
	if !ok || n != len(s) {
		return Date{}, fmt.Sprintf(`%s is not a date, want YYYY-MM-DD such as "2027-06-30"`, quote(s))
	}
	t, err := time.Parse(time.DateOnly, s)
	if err != nil || t.Year() < 1 {
		return Date{}, fmt.Sprintf("%s is not a valid date", quote(s))
	}
	return Date{Year: t.Year(), Month: t.Month(), Day: t.Day()}, ""
}

// parsePeriod reads YYYY-MM, a month of a year from 0001.
func parsePeriod(s string) (Period, string) {
	if len(s) != 7 || !digitsAt(s, 0, 4) || s[4] != '-' || !digitsAt(s, 5, 2) {
		return Period{}, fmt.Sprintf(`%s is not a month, want YYYY-MM such as "2025-03"`, quote(s))
	}
	t, err := time.Parse("2006-01", s)
	if err != nil || t.Year() < 1 {
		return Period{}, fmt.Sprintf("%s is not a valid month", quote(s))
	}
	return Period{Year: t.Year(), Month: t.Month()}, ""
}

// dateShape reports whether s[at:] starts with DDDD-DD-DD, and where that ends.
func dateShape(s string, at int) (int, bool) {
	ok := len(s) >= at+10 && digitsAt(s, at, 4) && s[at+4] == '-' && digitsAt(s, at+5, 2) &&
		s[at+7] == '-' && digitsAt(s, at+8, 2)
	return at + 10, ok
}

func digitsAt(s string, at, n int) bool {
	return at+n <= len(s) && allDigits(s[at:at+n])
}

// checkID returns why s is not an identifier, or "": 1 to max bytes of printable ASCII without
// spaces. It never repeats s.
func checkID(s string, max int) string {
	if len(s) > max {
		return fmt.Sprintf("is %d bytes, more than %d", len(s), max)
	}
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] >= 0x7f {
			return "must be printable ASCII without spaces"
		}
	}
	return ""
}

// CheckText returns why s is not prose a data file may hold, or "": valid UTF-8 of at most max
// bytes without control characters. It never repeats s.
func CheckText(s string, max int) string {
	if len(s) > max {
		return fmt.Sprintf("is %d bytes, more than %d", len(s), max)
	}
	if !utf8.ValidString(s) {
		return "must be valid utf-8"
	}
	for _, r := range s {
		if unicode.IsControl(r) {
			return "must not contain control characters"
		}
	}
	return ""
}

// checkText returns why s is not acceptable prose, or "": at most maxTextBytes of UTF-8 with no
// control characters, no leading or trailing space, and nothing that may be a card number in
// clear. It never repeats s.
func checkText(s string) string {
	if len(s) > maxTextBytes {
		return fmt.Sprintf("is %d bytes, more than %d", len(s), maxTextBytes)
	}
	for _, r := range s {
		if unicode.IsControl(r) {
			return "must not contain control characters"
		}
	}
	first, _ := utf8.DecodeRuneInString(s)
	last, _ := utf8.DecodeLastRuneInString(s)
	if unicode.IsSpace(first) || unicode.IsSpace(last) {
		return "must not start or end with a space"
	}
	if ContainsCardNumber(s) {
		return "looks like a card number in clear: write the card's masked form"
	}
	return ""
}
