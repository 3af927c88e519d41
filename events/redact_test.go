package events_test

import (
	"bytes"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/joinincard/engine/events"
)

// TestRedactTakesOutPersonalNumbers: what Redact takes out of a message, and what it names.
func TestRedactTakesOutPersonalNumbers(t *testing.T) {
	reg := base[register]
	// A funds load whose bank reference has no shape of a personal number (TestRedactKeepsValidEvents).
	fundsMsg := strings.Replace(base[funds], "ICBC20250301000123", "ICBC-0301-0123", 1)
	for _, tc := range []struct {
		name, msg, want string
		fields          []string
	}{
		{"valid event", fundsMsg, fundsMsg, nil},
		{"valid registration", reg, reg, nil},
		{"card number as card_token",
			strings.Replace(fundsMsg, tokCard, testLuhnPAN, 1),
			strings.Replace(fundsMsg, `"`+tokCard+`"`, `"[redacted]"`, 1), []string{"card_token"}},
		{"grouped card number as card_token",
			strings.Replace(fundsMsg, tokCard, "6228 4804 0256 4899", 1),
			strings.Replace(fundsMsg, `"`+tokCard+`"`, `"[redacted]"`, 1), []string{"card_token"}},
		{"passport number as its token",
			strings.Replace(reg, tokPassport, testPassport, 1),
			strings.Replace(reg, `"`+tokPassport+`"`, `"[redacted]"`, 1), []string{"data.passport_token"}},
		{"passport number as its masked form",
			strings.Replace(reg, `"*****5678"`, `"`+testPassport+`"`, 1),
			strings.Replace(reg, `"*****5678"`, `"[redacted]"`, 1), []string{"data.passport_masked"}},
		{"card number as its masked form",
			strings.Replace(reg, `"622848******1234"`, `"6228481234561234"`, 1),
			strings.Replace(reg, `"622848******1234"`, `"[redacted]"`, 1), []string{"data.card_number_masked"}},
		{"card number escaped in a name",
			strings.Replace(reg, `"Stephen Fox"`, `"Stephen \u0036228480402564899"`, 1),
			strings.Replace(reg, `"Stephen Fox"`, `"[redacted]"`, 1), []string{"data.holder_name"}},
		{"card number as a JSON number",
			`{"card_token":"x","data":{"amount":` + testLuhnPAN + `}}`,
			`{"card_token":"x","data":{"amount":[redacted]}}`, []string{"a card number"}},
		{"card number as a key",
			`{"` + testLuhnPAN + `":1}`, `{"[redacted]":1}`, []string{"a field name"}},
		{"card number in an array",
			`{"data":{"tags":["a","` + testLuhnPAN + `"]}}`, `{"data":{"tags":["a","[redacted]"]}}`, []string{"a card number"}},
		{"card number glued to other digits",
			`{"note":"ref 99` + testLuhnPAN + `01"}`, `{"note":"[redacted]"}`, []string{"note"}},
		{"malformed message",
			`{"card_token":"` + testLuhnPAN + `", "data":{"passport_token":"` + testPassport + `" ,,,`,
			`{"card_token":"[redacted]", "data":{"passport_token":"[redacted]" ,,,`, []string{"card_token", "data.passport_token"}},
		{"unterminated string",
			`{"card_token":"` + testLuhnPAN, `{"card_token":"[redacted]"`, []string{"card_token"}},
		{"not json at all", "card " + testLuhnPAN + " declined", "card [redacted] declined", []string{"a card number"}},
		// Not a card number, but a run of more than 7 digits may be a passport, social security or
		// bank account number (MayBePersonalNumber).
		{"sixteen digits failing luhn", `{"note":"` + testLuhnFails + `"}`, `{"note":"[redacted]"}`, []string{"note"}},
		{"twenty digits", `{"device_seq":18446744073709551615}`, `{"device_seq":[redacted]}`, []string{"a card number"}},
		{"twelve digits", `{"note":"622848040256"}`, `{"note":"[redacted]"}`, []string{"note"}},
		{"seven digits", `{"note":"ref 6228480","n":6228480}`, `{"note":"ref 6228480","n":6228480}`, nil},
		{"passport in a name", strings.Replace(reg, `"Stephen Fox"`, `"Stephen Fox E98765432X"`, 1),
			strings.Replace(reg, `"Stephen Fox"`, `"[redacted]"`, 1), []string{"data.holder_name"}},
		{"permit in an unknown field at depth", `{"data":{"x":[{"y":{"z":"permit wp20250001234"}}]}}`,
			`{"data":{"x":[{"y":{"z":"[redacted]"}}]}}`, []string{"data.x.y.z"}},
		{"social security number in an array", `{"data":{"ids":["11010519491231002X"]}}`,
			`{"data":{"ids":["[redacted]"]}}`, []string{"a personal number"}},
		{"passport as a key", `{"data":{"EA1234567":{"x":1}}}`, `{"data":{"[redacted]":{"x":1}}}`, []string{"a field name"}},
		{"passport of 9 digits as a JSON number", `{"data":{"passport":123456789}}`,
			`{"data":{"passport":"[redacted]"}}`, []string{"a personal number"}},
		{"passport in bytes that are not json", "holder C01X00T47 at gate 3", `holder "[redacted]" at gate 3`,
			[]string{"a personal number"}},
		{"passport in an unterminated string", `{"data":{"note":"passport E98765432X`, `{"data":{"note":"[redacted]"`,
			[]string{"data.note"}},
		{"escaped permit", `{"note":"WP\u00320250001234"}`, `{"note":"[redacted]"}`, []string{"note"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := events.Redact([]byte(tc.msg))
			if string(r.Bytes) != tc.want {
				t.Errorf("Redact(%s)\n = %s\nwant %s", tc.msg, r.Bytes, tc.want)
			}
			if !slices.Equal(r.Fields, tc.fields) {
				t.Errorf("Redact(%s) names %q, want %q", tc.msg, r.Fields, tc.fields)
			}
		})
	}
}

// TestRedactKeepsValidEvents: valid events of every type keep their tokens, masked numbers, ids,
// times and amounts; only an identifier with the shape of a personal number (a bank reference or
// a merchant id of a letter and 12 digits) is taken out, and a valid event whose identifiers are
// readable has nothing to take out.
func TestRedactKeepsValidEvents(t *testing.T) {
	shaped := map[string]string{`"ICBC20250301000123"`: `"ICBC-0301-0123"`, `"M330100000123"`: `"m-000123"`}
	for typ, msg := range base {
		r := events.Redact([]byte(msg))
		for _, f := range r.Fields {
			if f != "data.bank_reference" && f != "data.merchant_id" {
				t.Errorf("%s: Redact took out %q", typ, f)
			}
		}
		readable := msg
		for old, new := range shaped {
			readable = strings.ReplaceAll(readable, old, new)
		}
		if r := events.Redact([]byte(readable)); len(r.Fields) != 0 || string(r.Bytes) != readable {
			t.Errorf("%s: Redact took out %q of %s", typ, r.Fields, readable)
		}
	}
}

func TestRedactText(t *testing.T) {
	for in, want := range map[string]string{
		"rejected: issuer bank \"" + testLuhnPAN + "\" is not registered": "rejected: issuer bank " + events.Withheld + " is not registered",
		"malformed: data.amount: 3 decimal places, CNY has 2":             "malformed: data.amount: 3 decimal places, CNY has 2",
		"conflict: event id used before (funds.loaded at t/0 offset 12)":  "conflict: event id used before (funds.loaded at t/0 offset 12)",
	} {
		if got := events.RedactText(in); got != want {
			t.Errorf("RedactText(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestFingerprint(t *testing.T) {
	a, err := events.NewTokenizer([]byte("0123456789abcdef0123456789abcdef"))
	if err != nil {
		t.Fatal(err)
	}
	b, err := events.NewTokenizer([]byte("another key, another key, another"))
	if err != nil {
		t.Fatal(err)
	}
	msg := []byte(base[funds])
	if got := a.Fingerprint(msg); len(got) != 32 || !bytes.Equal(got, a.Fingerprint(msg)) {
		t.Errorf("Fingerprint is %d bytes or differs between calls", len(got))
	}
	if bytes.Equal(a.Fingerprint(msg), b.Fingerprint(msg)) {
		t.Error("two keys give one fingerprint")
	}
	if bytes.Equal(a.Fingerprint(msg), a.Fingerprint(append(msg, ' '))) {
		t.Error("two messages give one fingerprint")
	}
}

// luhnRun finds runs of 13 to 19 digits, alone or grouped by single spaces or hyphens, bounded by
// anything else: the oracle of FuzzRedact, written apart from the code it checks.
var (
	luhnRun  = regexp.MustCompile(`[0-9](?:[ -]?[0-9])*`)
	digitRun = regexp.MustCompile(`[0-9]+`)
)

func passesLuhn(digits string) bool {
	sum := 0
	for i := 0; i < len(digits); i++ {
		d := int(digits[len(digits)-1-i] - '0')
		if i%2 == 1 {
			d *= 2
			if d > 9 {
				d -= 9
			}
		}
		sum += d
	}
	return sum%10 == 0
}

// cardNumberIn returns a card number found in b: a run of 13 to 19 digits passing the Luhn check,
// alone or grouped by spaces and hyphens, or any 13 to 19 consecutive digits of a longer run that
// pass it.
func cardNumberIn(b []byte) string {
	for _, m := range digitRun.FindAll(b, -1) {
		if len(m) >= 13 && len(m) <= 19 && passesLuhn(string(m)) {
			return string(m)
		}
	}
	for _, m := range luhnRun.FindAll(b, -1) {
		var d []byte
		for _, c := range m {
			if '0' <= c && c <= '9' {
				d = append(d, c)
			}
		}
		if len(d) >= 13 && len(d) <= 19 && passesLuhn(string(d)) {
			return string(m)
		}
		for n := 13; n <= 19 && len(d) > 19; n++ {
			for at := 0; at+n <= len(d); at++ {
				if passesLuhn(string(d[at : at+n])) {
					return string(m) // a card number glued to other digits
				}
			}
		}
	}
	return ""
}

// FuzzRedact: no card number survives Redact, in the bytes or escaped in a string; Redact has
// nothing more to take out of its own output; and a message with nothing to take out is kept as
// it is.
func FuzzRedact(f *testing.F) {
	for _, msg := range base {
		f.Add([]byte(msg))
		f.Add([]byte(strings.Replace(msg, tokCard, testLuhnPAN, 1)))
	}
	f.Add([]byte(`{"a":"\u0036228480402564899","b":6228-4804-0256-4899}`))
	f.Add([]byte(`{"` + testLuhnPAN + `":[1,"x` + testLuhnPAN + `"],"card_token":"E1234567"`))
	f.Add([]byte("99 " + testLuhnPAN + " 00 4111111111111111111111"))
	f.Fuzz(func(t *testing.T, msg []byte) {
		r := events.Redact(msg)
		if n := cardNumberIn(r.Bytes); n != "" {
			t.Fatalf("Redact(%q) kept %q: %q", msg, n, r.Bytes)
		}
		for _, m := range regexp.MustCompile(`"(?:[^"\\]|\\.)*"`).FindAll(r.Bytes, -1) {
			if s := events.Unescape(m[1 : len(m)-1]); cardNumberIn([]byte(s)) != "" {
				t.Fatalf("Redact(%q) kept an escaped card number in %q", msg, m)
			}
		}
		again := events.Redact(r.Bytes)
		if !bytes.Equal(again.Bytes, r.Bytes) || len(again.Fields) != 0 {
			t.Fatalf("Redact(Redact(%q)) took out %q more: %q", msg, again.Fields, again.Bytes)
		}
		if len(r.Fields) == 0 && !bytes.Equal(r.Bytes, msg) {
			t.Fatalf("Redact(%q) named nothing and changed the bytes: %q", msg, r.Bytes)
		}
		if len(r.Fields) != 0 && bytes.Equal(r.Bytes, msg) {
			t.Fatalf("Redact(%q) named %q and changed nothing", msg, r.Fields)
		}
	})
}
