package events

import (
	"strconv"
	"unicode/utf8"
)

// DecodeError says why a message is refused. Field is the JSON path of the offending field
// ("data.amount"), or "" when the message as a whole is at fault (too large, not JSON, trailing
// data). Reason never quotes a personal value: token, masked, name and identifier fields are
// described, not echoed, because refused messages end up in logs and on the dead-letter topic.
type DecodeError struct {
	Field  string
	Reason string
}

func (e *DecodeError) Error() string {
	if e.Field == "" {
		return e.Reason
	}
	return e.Field + ": " + e.Reason
}

// maxQuotedBytes bounds how much of a refused value an error message repeats: enough to recognize
// an amount or a time, not enough to carry a payload into the logs.
const maxQuotedBytes = 40

// maxEchoedDigits is the longest run of digits an error message repeats (MayBePersonalNumber). A passport number has 8
// or 9 digits, a social security, bank account or card number more: a value with a longer run may
// be a personal number put in the wrong field, and is described instead of repeated. Times (at
// most 9 fractional digits) and amounts of the schema's own examples stay readable.
const maxEchoedDigits = 7

// withheld stands in an error message for a value that may be a personal number.
const withheld = "the value (withheld: it may be a personal number)"

// quote returns s as a Go string literal, cut to maxQuotedBytes, or says it is withheld when it
// may hold a personal number.
func quote(s string) string {
	if MayBePersonalNumber(s) {
		return withheld
	}
	if len(s) <= maxQuotedBytes {
		return strconv.Quote(s)
	}
	cut := maxQuotedBytes
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return strconv.Quote(s[:cut]) + "..."
}

// fieldName is a JSON key as it appears in an error's Field: plain when it is a lowercase
// identifier like every field of the schema, quoted (and cut) otherwise, and withheld when it may
// be a personal number, however written.
func fieldName(key string) string {
	if key == "" || len(key) > maxQuotedBytes {
		return quote(key)
	}
	digits := 0
	for i := 0; i < len(key); i++ {
		c := key[i]
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '_') {
			return quote(key)
		}
		if '0' <= c && c <= '9' {
			digits++
		}
	}
	// The schema's keys have no digits: the closer look is for a key with enough of them to be
	// a personal number, never for an event's own fields.
	if digits >= minPassportDigits && MayBePersonalNumber(key) {
		return quote(key)
	}
	return key
}
