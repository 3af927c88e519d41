package events

import (
	"strconv"
	"strings"
)

// One rule says what may be a personal number wherever a client's value could be repeated: an
// error message, a refusal's reason, a dead letter's reason, a log line. A client may put a card,
// passport, social security, resident id or work permit number in any free-text field (a city, a
// bank, a merchant id), and a message that quotes the value would then keep it in clear.

// Withheld stands in a message for a quoted value that may be a personal number.
const Withheld = "(value withheld: it may be a personal number)"

// Passports, whatever their country, are letters and digits: 9 digits (United States), a letter
// and 8 digits or two letters and 7 (China), letters among digits (Germany). A word of at least
// minPassportChars letters and digits mixing both, with at least minPassportDigits digits, may be
// one. Identifiers of the engine's own kind (ICBC-JX, m-000123, A10000) have fewer digits or no
// letters.
const (
	minPassportChars  = 7
	maxPassportChars  = 20
	minPassportDigits = 5
)

// MayBePersonalNumber reports whether s may hold a personal number, so that a message must not
// repeat it:
//   - a card number (13 to 19 digits passing the Luhn check, in one run or printed in groups);
//   - a run of more than 7 digits: a passport of 8 or 9 digits, a social security or resident id
//     number (17 digits and a check character), a foreign permanent resident id (old: 3 letters
//     and 12 digits; new: 18 characters as a resident id), a work permit or bank account number;
//   - a word of letters and digits that has the shape of a passport number.
//
// A UUID in its canonical form (an event's id) is none: its hex groups mix letters and digits
// and may hold long runs of digits by chance, and the longest, 12 hex digits, holds no number
// that identifies a person in full. A value laid out as one (a malformed event id) is judged by
// its runs of digits only.
func MayBePersonalNumber(s string) bool {
	if isUUID(s) {
		return false
	}
	if containsCardNumber(s) || ContainsCardNumber(s) {
		return true
	}
	uuidLaidOut := laidOutAsUUID(s)
	for i := 0; i < len(s); {
		if !isAlnum(s[i]) {
			i++
			continue
		}
		j, letters, digits, run, longest := i, 0, 0, 0, 0
		for ; j < len(s) && isAlnum(s[j]); j++ {
			if isDigit(s[j]) {
				digits++
				run++
				longest = max(longest, run)
			} else {
				letters++
				run = 0
			}
		}
		if longest > maxEchoedDigits {
			return true
		}
		if n := j - i; !uuidLaidOut && letters > 0 && digits >= minPassportDigits && n >= minPassportChars && n <= maxPassportChars {
			return true
		}
		i = j
	}
	return false
}

func isAlnum(c byte) bool { return isDigit(c) || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' }

// isUUID reports whether s is a UUID in its canonical form, 8-4-4-4-12 hex digits.
func isUUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case i == 8 || i == 13 || i == 18 || i == 23:
			if c != '-' {
				return false
			}
		case isDigit(c) || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F':
		default:
			return false
		}
	}
	return true
}

// withholdQuoted replaces in s every double-quoted Go string literal (as %q writes a value) whose
// value may be a personal number with Withheld, trying a literal at every quote. It returns s itself when nothing was replaced.
func withholdQuoted(s string) string {
	if !strings.Contains(s, `"`) {
		return s
	}
	var b strings.Builder
	last := 0
	for i := 0; i < len(s); {
		if s[i] != '"' {
			i++
			continue
		}
		lit, err := strconv.QuotedPrefix(s[i:])
		if err != nil {
			i++
			continue
		}
		if v, err := strconv.Unquote(lit); err == nil && MayBePersonalNumber(v) {
			b.WriteString(s[last:i])
			b.WriteString(Withheld)
			last = i + len(lit)
			i = last
			continue
		}
		// The next quote is tried too, not only the one after this literal: a value written
		// without quoting that holds a quote would otherwise shift the pairs.
		i++
	}
	if last == 0 {
		return s
	}
	b.WriteString(s[last:])
	return b.String()
}

// laidOutAsUUID reports whether s, braces aside, is five groups of 8, 4, 4, 4 and 12 letters and
// digits separated by hyphens.
func laidOutAsUUID(s string) bool {
	if len(s) == 38 && s[0] == '{' && s[37] == '}' {
		s = s[1:37]
	}
	if len(s) != 36 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if i == 8 || i == 13 || i == 18 || i == 23 {
			if s[i] != '-' {
				return false
			}
		} else if !isAlnum(s[i]) {
			return false
		}
	}
	return true
}

// RedactWords is RedactText for a text that may repeat a client's value without quotes, such as a
// log line: it also replaces every word that may be a personal number (MayBePersonalNumber) with
// Withheld. A word is a run of letters, digits, hyphens and underscores; a UUID in its canonical
// form (alone or ending a word, as in a consumer's member id) and a token (tok_ and 43 base64url
// characters) are kept, as they identify the engine's own records and hold no personal number. It returns s itself when nothing was replaced.
func RedactWords(s string) string {
	if !mayHoldNumber(s) {
		return s
	}
	s = RedactText(s)
	var b strings.Builder
	last := 0
	for i := 0; i < len(s); {
		if !isWordByte(s[i]) {
			i++
			continue
		}
		if uuidAt(s, i) {
			i += 36
			continue
		}
		// A UUID joined to a word by a hyphen or an underscore (a consumer's member id) is a
		// word of its own.
		j := i + 1
		for j < len(s) && isWordByte(s[j]) && !((s[j-1] == '-' || s[j-1] == '_') && uuidAt(s, j)) {
			j++
		}
		end := j
		if j < len(s) && isWordByte(s[j]) {
			end = j - 1 // the word before a UUID, without the hyphen joining them
		}
		if w := s[i:end]; checkToken(w) != "" && MayBePersonalNumber(w) {
			b.WriteString(s[last:i])
			b.WriteString(Withheld)
			last = end
		}
		i = j
	}
	if last == 0 {
		return s
	}
	b.WriteString(s[last:])
	return b.String()
}

func isWordByte(c byte) bool { return isAlnum(c) || c == '-' || c == '_' }

// uuidAt reports whether a canonical UUID starts at s[k] and ends a word there.
func uuidAt(s string, k int) bool {
	return k+36 <= len(s) && isUUID(s[k:k+36]) && (k+36 == len(s) || !isAlnum(s[k+36]))
}

// mayHoldNumber is a quick look at s for RedactWords: false when no word of letters and digits has
// minPassportDigits digits and no run of digits, spaces or hyphens between them, has the
// minCardDigits of a card number, as in most texts, which then need no closer look.
func mayHoldNumber(s string) bool {
	word, run := 0, 0 // digits in the current word, and in the current run of digits
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case isDigit(c):
			word++
			run++
		case isAlnum(c):
			run = 0
		case (c == ' ' || c == '-') && i+1 < len(s) && isDigit(s[i+1]) && i > 0 && isDigit(s[i-1]):
			word = 0 // a separator between digits ends a word, not a run
		default:
			word, run = 0, 0
		}
		if word >= minPassportDigits || run >= minCardDigits {
			return true
		}
	}
	return false
}
