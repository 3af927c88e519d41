package events

import (
	"slices"
	"strconv"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// Refused messages are kept (the dead letters) and relayed to the dead-letter topic, where people
// read them. A producer that broke the personal-data rules put a clear number into one of them:
// Redact takes out what may be one before it is stored or relayed, and the engine keeps a keyed
// hash of the original bytes in its place (Tokenizer.Fingerprint).

// Redacted replaces what was taken out of a message: a JSON string, so that a message that was
// JSON stays JSON.
const Redacted = "[redacted]"

// What Redact names besides fields: it never says what it took out, only where.
const (
	redactedCardNumber     = "a card number"
	redactedPersonalNumber = "a personal number"
	redactedFieldName      = "a field name"
)

// tokenFields are the fields that must hold a token: any other value in them is taken out.
var tokenFields = []string{"data.physical_token", "data.digital_token", "data.passport_token",
	"data.social_security_token", "data.work_permit_token", "data.bank_account_token"}

// maskedTailFields must hold a number masked to its last 4 characters.
var maskedTailFields = []string{"data.passport_masked", "data.social_security_masked", "data.work_permit_masked",
	"data.bank_account_masked"}

// Redaction is a message with what may be a personal number taken out.
type Redaction struct {
	// Bytes are the message to keep: the original bytes themselves when nothing was taken out.
	Bytes []byte
	// Fields says what was taken out: fields by their path ("card_token", "data.passport_token"),
	// "a card number" for one found elsewhere, "a field name" for a key. Never a value.
	Fields []string
}

// Redact takes out of a message what may be a personal number:
//   - the value of a field that must hold a token (card_token, data.*_token) but does not hold
//     one, and of a masked field that shows more than its rule allows;
//   - every other string, value or key, at any depth, that may hold a personal number
//     (MayBePersonalNumber: a card, passport, social security, resident id or work permit
//     number), escapes decoded;
//   - every word of letters and digits outside strings (a JSON number, bytes that are not JSON)
//     that may be one;
//   - every run of 13 to 19 digits (spaces or hyphens between them allowed) that passes the Luhn
//     check, anywhere in the bytes, and every run of more than 19 digits, in which such a card
//     number may hide.
//
// A string or a word outside strings taken out becomes "[redacted]", a run of digits outside
// strings the same text unquoted: what is left says which event it was and the shape of what it held (its fields, the
// tokens and ids that are what their field requires). It reads the message as JSON as far as it
// can and as bytes beyond that, so malformed messages are redacted too. Redact is pure, and its
// own output has nothing more to take out. It runs on refused messages only: it is no cost to
// the events applied.
func Redact(raw []byte) Redaction {
	var (
		out    []byte // nil until something is taken out
		fields []string
		path   []string // the keys of the objects the scanner is in
		key    string   // the last key read, waiting for its value
		last   = 0      // raw[last:] is not yet copied to out
	)
	note := func(f string) {
		if !slices.Contains(fields, f) {
			fields = append(fields, f)
		}
	}
	replace := func(from, to int, with string) {
		if out == nil {
			out = make([]byte, 0, len(raw))
		}
		out = append(out, raw[last:from]...)
		out = append(out, with...)
		last = to
	}
	for i := 0; i < len(raw); {
		switch c := raw[i]; c {
		case '"':
			end, closed := stringEnd(raw, i)
			value := unescape(raw[i+1 : end])
			next := end
			if closed {
				next++
			}
			if isKey(raw, next) {
				if value != Redacted && (containsCardNumber(value) || MayBePersonalNumber(value)) {
					replace(i, next, `"`+Redacted+`"`)
					note(redactedFieldName)
					value = Redacted
				}
				key = value
				i = next
				continue
			}
			field := fieldPath(path, key)
			key = ""
			if why := mustRedact(field, value); why != "" {
				replace(i, next, `"`+Redacted+`"`)
				note(why)
			}
			i = next
		case '{':
			path = append(path, key)
			key = ""
			i++
		case '}':
			if len(path) > 0 {
				path = path[:len(path)-1]
			}
			key = ""
			i++
		case '[':
			// An array's strings are no field's value (their key is ""): they are checked for
			// card numbers only. The array's key goes on the path of the objects in it.
			path = append(path, key)
			key = ""
			i++
		case ']':
			if len(path) > 0 {
				path = path[:len(path)-1]
			}
			key = ""
			i++
		default:
			if c != ' ' && c != '\t' && c != '\n' && c != '\r' && c != ':' {
				key = "" // a number, true, false, null or anything else: the key had its value
			}
			if !isAlnum(c) {
				i++
				continue
			}
			// A word outside strings: a number, a literal, or bytes that are not JSON.
			end := i + 1
			for end < len(raw) && isAlnum(raw[end]) {
				end++
			}
			// A card number is left to the digit runs below.
			if word := string(raw[i:end]); !containsCardNumber(word) && MayBePersonalNumber(word) {
				replace(i, end, `"`+Redacted+`"`)
				note(redactedPersonalNumber)
			}
			i = end
		}
	}
	b := raw
	if out != nil {
		b = append(out, raw[last:]...)
	}
	// Digits outside strings (a JSON number, bytes that are not JSON) are not seen above.
	if r, found := redactDigitRuns(b); found {
		b = r
		note(redactedCardNumber)
	}
	return Redaction{Bytes: b, Fields: fields}
}

// fieldPath names the value of key in the objects of path: "card_token", "data.passport_token";
// "" for a value with no key (an array's element, a string where no value belongs).
func fieldPath(path []string, key string) string {
	if key == "" {
		return ""
	}
	var b strings.Builder
	for _, p := range path {
		if p != "" { // the outermost object, or an object in an array
			b.WriteString(p)
			b.WriteByte('.')
		}
	}
	b.WriteString(key)
	return b.String()
}

// mustRedact says what to call a string value taken out of field, or "" to keep it. field is its
// path, or "" for a string that is no field's value.
func mustRedact(field, value string) string {
	if value == Redacted {
		return ""
	}
	switch {
	// A field holding what its rule requires (a token, a masked number) is kept whole.
	case field == "card_token":
		if CheckCardToken(value) != nil {
			return field
		}
		return ""
	case slices.Contains(tokenFields, field):
		if checkToken(value) != "" {
			return field
		}
		return ""
	case slices.Contains(maskedTailFields, field):
		if checkMaskedTail(value) != "" {
			return field
		}
		return ""
	case field == "data.card_number_masked":
		if checkMaskedCard(value) != "" {
			return field
		}
		return ""
	}
	switch {
	case field != "" && (containsCardNumber(value) || MayBePersonalNumber(value)):
		return field
	case containsCardNumber(value):
		return redactedCardNumber
	case MayBePersonalNumber(value):
		return redactedPersonalNumber
	}
	return ""
}

// RedactText replaces in s every quoted value that may be a personal number (MayBePersonalNumber)
// with Withheld, and every other run of digits that may be a card number (as Redact finds them)
// with "[redacted]": for texts that describe a message or a request, such as a dead letter's
// reason, a refusal or an error message.
func RedactText(s string) string {
	s = withholdQuoted(s)
	if r, found := redactDigitRuns([]byte(s)); found {
		return string(r)
	}
	return s
}

// stringEnd returns the index of the quote closing the string literal that opens at b[open], and
// whether there is one (an unterminated literal runs to the end of b).
func stringEnd(b []byte, open int) (int, bool) {
	for j := open + 1; j < len(b); j++ {
		switch b[j] {
		case '\\':
			j++
		case '"':
			return j, true
		}
	}
	return len(b), false
}

// isKey reports whether the literal that ended before b[at] is an object's key: a colon follows.
func isKey(b []byte, at int) bool {
	for ; at < len(b); at++ {
		switch b[at] {
		case ' ', '\t', '\n', '\r':
		case ':':
			return true
		default:
			return false
		}
	}
	return false
}

// unescape decodes a JSON string literal's content leniently: an invalid escape is kept as it is,
// so that a malformed message is read as far as it can be.
func unescape(b []byte) string {
	if !slices.Contains(b, '\\') {
		return string(b)
	}
	var s strings.Builder
	for i := 0; i < len(b); i++ {
		if b[i] != '\\' || i+1 == len(b) {
			s.WriteByte(b[i])
			continue
		}
		i++
		switch b[i] {
		case 'b':
			s.WriteByte('\b')
		case 'f':
			s.WriteByte('\f')
		case 'n':
			s.WriteByte('\n')
		case 'r':
			s.WriteByte('\r')
		case 't':
			s.WriteByte('\t')
		case 'u':
			r, n := unicodeEscape(b[i+1:])
			if n == 0 {
				s.WriteString(`\u`)
				continue
			}
			s.WriteRune(r)
			i += n
		default: // '"', '\\', '/', or an invalid escape kept as its character
			s.WriteByte(b[i])
		}
	}
	return s.String()
}

// unicodeEscape reads the hex digits after a \u (and a second \uXXXX completing a surrogate pair)
// and returns the rune and how many bytes it read, 0 for none.
func unicodeEscape(b []byte) (rune, int) {
	hex4 := func(b []byte) (rune, bool) {
		if len(b) < 4 {
			return 0, false
		}
		v, err := strconv.ParseUint(string(b[:4]), 16, 32)
		return rune(v), err == nil
	}
	r, ok := hex4(b)
	if !ok {
		return 0, 0
	}
	if utf16.IsSurrogate(r) && len(b) >= 10 && b[4] == '\\' && b[5] == 'u' {
		if r2, ok := hex4(b[6:]); ok {
			if pair := utf16.DecodeRune(r, r2); pair != utf8.RuneError {
				return pair, 10
			}
		}
	}
	return r, 4
}

// A digit run is a maximal sequence of ASCII digits in which a single space or hyphen may stand
// between two digits, as people group card numbers: "6228 4802 0256 4899".
const (
	// maxRunWindow: a run longer than the longest card number may hide one anywhere in it, glued
	// to other digits.
	maxRunWindow = maxCardDigits
	minRunWindow = minCardDigits
)

// containsCardNumber reports whether s has a digit run that may be a card number.
func containsCardNumber(s string) bool {
	_, found := redactDigitRuns([]byte(s))
	return found
}

// redactDigitRuns replaces each digit run of b that may be a card number with "[redacted]":
// 13 to 19 digits passing the Luhn check, as a whole or as a part between separators, and any
// run of more than 19 digits. It returns b itself when nothing was replaced.
func redactDigitRuns(b []byte) ([]byte, bool) {
	var out []byte
	last := 0
	for i := 0; i < len(b); {
		if !isDigit(b[i]) {
			i++
			continue
		}
		end := runEnd(b, i)
		if mayBeCardNumber(b[i:end]) {
			if out == nil {
				out = make([]byte, 0, len(b))
			}
			out = append(out, b[last:i]...)
			out = append(out, Redacted...)
			last = end
		}
		i = end
	}
	if out == nil {
		return b, false
	}
	return append(out, b[last:]...), true
}

// runEnd returns where the digit run starting at b[start] ends.
func runEnd(b []byte, start int) int {
	j := start
	for j < len(b) {
		switch {
		case isDigit(b[j]):
			j++
		case (b[j] == ' ' || b[j] == '-') && j+1 < len(b) && isDigit(b[j+1]):
			j += 2
		default:
			return j
		}
	}
	return j
}

// mayBeCardNumber reports whether a digit run may be or hide a card number.
func mayBeCardNumber(run []byte) bool {
	digits := make([]byte, 0, len(run))
	var parts [][]byte // the runs of digits between separators, by their position in digits
	partStart := 0
	for i, c := range run {
		if isDigit(c) {
			digits = append(digits, c)
		}
		if !isDigit(c) || i == len(run)-1 {
			parts = append(parts, digits[partStart:])
			partStart = len(digits)
		}
	}
	if len(digits) < minRunWindow {
		return false
	}
	for _, p := range parts {
		if len(p) >= minRunWindow && len(p) <= maxRunWindow && luhn(string(p)) {
			return true
		}
	}
	// A longer run has a window of 13 to 19 digits passing the check with a probability close to
	// one (35 windows in 20 digits): it is taken out whole.
	return len(digits) > maxRunWindow || luhn(string(digits))
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }
