package events_test

import (
	"errors"
	"strconv"
	"strings"
	"testing"

	"github.com/joinincard/engine/events"
)

// personalNumbers are one of each kind of personal number a client may put in the wrong field.
var personalNumbers = map[string]string{
	"card number":                           testLuhnPAN,
	"card number as printed":                "6228 4804 0256 4899",
	"passport (letter and 8 digits)":        "E98765432X",
	"passport (two letters and 7 digits)":   "EA1234567",
	"passport (letters among digits)":       "C01X00T47",
	"passport (9 digits)":                   "123456789",
	"resident id or social security number": "11010519491231002X",
	"foreign permanent resident id (old)":   "USA310078110101",
	"foreign permanent resident id (new)":   "933100198001011237",
	"work permit number":                    "WP20250001234",
}

// TestRedactTextWithholdsPersonalNumbers: a message quoting a client's value never repeats one
// that may be a personal number, of any kind, and keeps the rest of the message.
func TestRedactTextWithholdsPersonalNumbers(t *testing.T) {
	for kind, n := range personalNumbers {
		for _, v := range []string{n, strings.ToLower(n), "x" + n} {
			msg := "rejected: insurance fund of " + strconv.Quote(v) + " is not registered"
			got := events.RedactText(msg)
			if strings.Contains(got, v) || strings.Contains(strings.ToUpper(got), strings.ToUpper(n)) {
				t.Errorf("%s: RedactText(%q) = %q, repeats the number", kind, msg, got)
			}
			if !strings.HasPrefix(got, "rejected: insurance fund of ") || !strings.HasSuffix(got, " is not registered") {
				t.Errorf("%s: RedactText(%q) = %q, lost the message", kind, msg, got)
			}
			if !events.MayBePersonalNumber(v) {
				t.Errorf("%s: MayBePersonalNumber(%q) = false", kind, v)
			}
		}
	}
	// What the engine's own names look like stays readable.
	for _, v := range []string{"jiaxing", "ICBC-JX", "San Francisco", "m-000123", "A10000", "310000",
		"EMP-JX-000451", "0190a4b2-3637-7c6c-8000-0000000000a1", "2026-03-01T08:30:00+08:00", "500.00", "MCC5411"} {
		msg := "merchant " + strconv.Quote(v) + " is not registered"
		if got := events.RedactText(msg); got != msg {
			t.Errorf("RedactText(%q) = %q, want it unchanged", msg, got)
		}
	}
}

// TestRedactWordsWithholdsUnquotedPersonalNumbers: a text repeating a value without quotes keeps
// no personal number, and keeps the engine's own identifiers readable.
func TestRedactWordsWithholdsUnquotedPersonalNumbers(t *testing.T) {
	for kind, n := range personalNumbers {
		msg := "break resolved by " + n + ": paid (" + strings.ToLower(n) + ")"
		got := events.RedactWords(msg)
		if strings.Contains(strings.ToUpper(got), strings.ToUpper(n)) || !strings.HasPrefix(got, "break resolved by ") {
			t.Errorf("%s: RedactWords(%q) = %q", kind, msg, got)
		}
	}
	// A word joined to a UUID by a hyphen is judged apart from it.
	const id = "0190a4b2-3637-7c6c-8000-0000000000a1"
	if got, want := events.RedactWords("member E98765432X-"+id), "member "+events.Withheld+"-"+id; got != want {
		t.Errorf("RedactWords = %q, want %q", got, want)
	}
	for _, msg := range []string{"event 0190a4b2-3637-7c6c-8000-0000000000a1 at card-events/3 offset 1234567",
		"card tok_yYnRBz0JBztLP2iZQyXtYlvBhoGq6cj1w9AGH4oDTzA at 2026-03-01T08:30:00+08:00",
		"merchant m-000123 of ICBC-JX, EMP-JX-000451, 500.00 CNY",
		"member joinin-engine-0190a4b2-3637-7c6c-8000-0000000000a1 joined, 0190a4b2-3637-7c6c-8000-0000000000a1_x"} {
		if got := events.RedactWords(msg); got != msg {
			t.Errorf("RedactWords(%q) = %q, want it unchanged", msg, got)
		}
	}
}

// TestFreeTextRefusesPersonalNumbers: a holder's name or a status change's reason holding what
// may be a personal number is refused, as a card number there is, and the refusal does not repeat
// it: the engine stores these texts and shows them, and would otherwise keep the number in clear.
func TestFreeTextRefusesPersonalNumbers(t *testing.T) {
	for kind, n := range personalNumbers {
		for _, e := range []edit{
			{register, `"Stephen Fox"`, `"Stephen Fox ` + n + `"`},
			{status, `"reported lost by the cardholder"`, `"reported lost with passport ` + n + `"`},
		} {
			_, err := events.Decode(e.apply(t))
			var de *events.DecodeError
			if !errors.As(err, &de) || (de.Field != "data.holder_name" && de.Field != "data.reason") {
				t.Errorf("%s in %s: Decode = %v, want a refusal of the field", kind, e.typ, err)
				continue
			}
			if strings.Contains(err.Error(), n) {
				t.Errorf("%s in %s: %q repeats the number", kind, e.typ, err)
			}
		}
	}
	// A name or a reason without one is kept.
	for _, e := range []edit{{register, `"Stephen Fox"`, `"Stephen Fox-2"`}, {status, `"reported lost by the cardholder"`, `"lost at station 0107 on line 1, 2025-03-01"`}} {
		if _, err := events.Decode(e.apply(t)); err != nil {
			t.Errorf("%s: %v", e.new, err)
		}
	}
}

// TestRedactWordsQuickLookMissesNothing: texts that RedactWords returns at a glance (no word with
// 5 digits, no run of 13) are those in which nothing would be withheld.
func TestRedactWordsQuickLookMissesNothing(t *testing.T) {
	for _, s := range []string{"6228 4804 0256 4899", "6228-4804-0256-4899", "A1B2C3D4E5", "x E9876543", "a 12345678 b"} {
		if got := events.RedactWords(s); got == s {
			t.Errorf("RedactWords(%q) kept it", s)
		}
	}
	for n := range 100000 {
		s := strconv.Itoa(n*7919) + " " + strconv.Itoa(n) + "-" + strconv.Itoa(n*31) + "x" + strconv.Itoa(n%97)
		if got := events.RedactWords(s); got == s && (events.MayBePersonalNumber(s) || events.RedactText(s) != s) {
			t.Fatalf("RedactWords(%q) kept it", s)
		}
	}
}

// TestUnknownKeysArePersonalNumbersWithheld: a key that may be a personal number is not repeated
// in the refusal, even written as the schema writes its own keys (lowercase letters and digits).
func TestUnknownKeysArePersonalNumbersWithheld(t *testing.T) {
	for _, k := range []string{"e98765432x", "110105194912310021", "wp20250001234", "123456789", "6228480402564899"} {
		for _, at := range []string{`"data":{`, `{`} {
			msg := strings.Replace(base[funds], at, at+`"`+k+`":1,`, 1)
			_, err := events.Decode([]byte(msg))
			if err == nil || strings.Contains(err.Error(), k) || !strings.Contains(err.Error(), "unknown field") {
				t.Errorf("key %s: %v", k, err)
			}
		}
	}
	// The schema's own keys, and an unknown one of their kind, are named.
	if _, err := events.Decode([]byte(strings.Replace(base[funds], `"data":{`, `"data":{"amount2":1,`, 1))); err == nil || err.Error() != "data.amount2: unknown field" {
		t.Errorf("unknown key: %v", err)
	}
}
