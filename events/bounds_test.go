package events_test

import (
	"bytes"
	"fmt"
	"strings"
	"testing"

	"github.com/joinincard/engine/events"
)

// TestLargestEventFitsTheBound: a card.registered with every field at its bound is far below
// maxEventBytes, which leaves producers room for indentation.
func TestLargestEventFitsTheBound(t *testing.T) {
	e := mustDecode(t, base[register])
	e.CardToken = strings.Repeat("c", 64)
	r := e.Data.(*events.CardRegistered)
	// 256 bytes that each take two in JSON: the longest canonical text.
	name := "x" + strings.Repeat(`"`, 254) + "x"
	r.HolderName, r.InsuranceCity = name, name
	r.IssuerBank = strings.Repeat("B", 64)
	r.PassportMasked = strings.Repeat("*", 30) + "1234"
	r.SocialSecurityMasked, r.WorkPermitMasked, r.BankAccountMasked = r.PassportMasked, r.PassportMasked, r.PassportMasked
	r.CardNumberMasked = "622848*********1234"
	b, err := events.Encode(e)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("the largest card.registered is %d bytes", len(b))
	if len(b) > 3<<10 {
		t.Errorf("the largest event is %d bytes; maxEventBytes' comment says 2.1 KB", len(b))
	}
	if 8*len(b) > events.MaxEventBytes {
		t.Errorf("the largest event is %d bytes, too close to the %d-byte bound", len(b), events.MaxEventBytes)
	}

	// The same event with every character of every string and field name written as a \u escape.
	escaped := escapeAll(b)
	t.Logf("escaped throughout, it is %d bytes", len(escaped))
	again, err := events.Decode(escaped)
	if err != nil {
		t.Fatalf("the escaped event: %v", err)
	}
	if again.Hash != mustDecode(t, string(b)).Hash {
		t.Error("escaping every character changed the Hash")
	}
	if 4*len(escaped) > events.MaxEventBytes {
		t.Errorf("escaped, the largest event is %d bytes, too close to the %d-byte bound", len(escaped), events.MaxEventBytes)
	}
}

// escapeAll rewrites every character inside the JSON strings of canonical as a \u escape.
func escapeAll(canonical []byte) []byte {
	var out bytes.Buffer
	in, escaped := false, false
	for _, r := range string(canonical) {
		switch {
		case !in:
			out.WriteRune(r)
			in = r == '"'
		case escaped: // the character after a backslash in the canonical form
			escaped = false
			switch r {
			case 'n':
				r = '\n'
			case 't':
				r = '\t'
			case 'r':
				r = '\r'
			}
			fmt.Fprintf(&out, `\u%04x`, r)
		case r == '\\':
			escaped = true
		case r == '"':
			out.WriteRune(r)
			in = false
		default:
			fmt.Fprintf(&out, `\u%04x`, r)
		}
	}
	return out.Bytes()
}

func TestMessageSizeBound(t *testing.T) {
	msg := []byte(base[funds])
	pad := bytes.Repeat([]byte(" "), events.MaxEventBytes-len(msg))
	if _, err := events.Decode(append(append([]byte(nil), msg...), pad...)); err != nil {
		t.Errorf("a message of exactly %d bytes: %v", events.MaxEventBytes, err)
	}
	_, err := events.Decode(append(append(append([]byte(nil), msg...), pad...), ' '))
	want := fmt.Sprintf("message is %d bytes, more than the %d-byte limit", events.MaxEventBytes+1, events.MaxEventBytes)
	if err == nil || err.Error() != want {
		t.Errorf("a message one byte over: %v, want %s", err, want)
	}
	for _, tc := range []struct{ msg, want string }{
		{"", "empty message"},
		{" \n", "empty message"},
		{"null", "message must be a JSON object, not null"},
		{`"event"`, "message must be a JSON object, not a string"},
		{"[" + base[funds] + "]", "message must be a JSON object, not an array"},
		{"{}", "schema: missing required field"},
	} {
		if _, err := events.Decode([]byte(tc.msg)); err == nil || err.Error() != tc.want {
			t.Errorf("Decode(%q): %v, want %s", tc.msg, err, tc.want)
		}
	}
	// More fields than any object of the schema may have.
	var many strings.Builder
	many.WriteString(`{"schema":"joinin.card-event.v1"`)
	for i := range 64 {
		fmt.Fprintf(&many, `,"f%d":0`, i)
	}
	many.WriteString("}")
	if _, err := events.Decode([]byte(many.String())); err == nil || err.Error() != "more than 64 fields" {
		t.Errorf("65 fields: %v", err)
	}
}
