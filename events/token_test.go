package events_test

import (
	"strings"
	"testing"

	"github.com/joinincard/engine/events"
)

func TestTokenizer(t *testing.T) {
	if _, err := events.NewTokenizer(make([]byte, 31)); err == nil {
		t.Error("NewTokenizer accepted a 31-byte key")
	}
	key := []byte("0123456789abcdef0123456789abcdef")
	a, err := events.NewTokenizer(key)
	if err != nil {
		t.Fatal(err)
	}
	key[0] = 'x' // the tokenizer keeps its own copy
	b, err := events.NewTokenizer([]byte("0123456789abcdef0123456789abcdef"))
	if err != nil {
		t.Fatal(err)
	}
	other, err := events.NewTokenizer([]byte("another key, another key, another"))
	if err != nil {
		t.Fatal(err)
	}
	tok := a.Token("E12345678")
	if len(tok) != 47 || !strings.HasPrefix(tok, "tok_") {
		t.Errorf("Token = %q, want tok_ and 43 characters", tok)
	}
	for _, same := range []string{"e12345678", "E1234 5678", "E-1234-5678"} {
		if got := a.Token(same); got != tok {
			t.Errorf("Token(%q) = %s, Token(E12345678) = %s: normalization differs", same, got, tok)
		}
	}
	if b.Token("E12345678") != tok {
		t.Error("two tokenizers with one key disagree (or the key was not copied)")
	}
	if other.Token("E12345678") == tok {
		t.Error("two keys give one token")
	}
	if a.Token("E12345679") == tok {
		t.Error("two numbers give one token")
	}
}

func TestMasks(t *testing.T) {
	for _, tc := range []struct {
		pan, want string
	}{
		{"6228481234561234", "622848******1234"},
		{"6228 4812 3456 1234", "622848******1234"},
		{"6228481234567", "622848***4567"},
		{"6228481234567890123", "622848*********0123"},
		{"622848123456", ""},         // 12 digits
		{"62284812345678901234", ""}, // 20 digits
		{"62284812345612a4", ""},
	} {
		got, err := events.MaskCardNumber(tc.pan)
		if got != tc.want || (err == nil) != (tc.want != "") {
			t.Errorf("MaskCardNumber(%q) = %q, %v; want %q", tc.pan, got, err, tc.want)
		}
	}
	for _, tc := range []struct {
		number, want string
	}{
		{"E12345678", "*****5678"},
		{"e1234567x", "*****567X"},
		{"123456", "**3456"},
		{"12345", ""},
		{strings.Repeat("1", 34), strings.Repeat("*", 30) + "1111"},
		{strings.Repeat("1", 35), ""},
		{"E1234567_", ""},
	} {
		got, err := events.MaskTail(tc.number)
		if got != tc.want || (err == nil) != (tc.want != "") {
			t.Errorf("MaskTail(%q) = %q, %v; want %q", tc.number, got, err, tc.want)
		}
	}
}

// TestProducerPath: what a producer makes with Tokenizer and the masks is what Decode accepts.
func TestProducerPath(t *testing.T) {
	tk, err := events.NewTokenizer([]byte("producer-side key of at least 32 bytes"))
	if err != nil {
		t.Fatal(err)
	}
	e := mustDecode(t, base[register])
	r := e.Data.(*events.CardRegistered)
	mask := func(f func(string) (string, error), n string) string {
		m, err := f(n)
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	r.PhysicalToken = tk.Token("6212 3456 7890 1234 5")
	r.DigitalToken = ""
	r.PassportToken, r.PassportMasked = tk.Token("X9876543"), mask(events.MaskTail, "X9876543")
	r.SocialSecurityToken, r.SocialSecurityMasked = tk.Token("ZJ-000-111-222"), mask(events.MaskTail, "ZJ-000-111-222")
	r.WorkPermitToken, r.WorkPermitMasked = tk.Token("wp 2025 999"), mask(events.MaskTail, "wp 2025 999")
	r.BankAccountToken, r.BankAccountMasked = tk.Token("DE89370400440532013000"), mask(events.MaskTail, "DE89370400440532013000")
	r.CardNumberMasked = mask(events.MaskCardNumber, "6212 3456 7890 1234 5")
	e.CardToken = r.PhysicalToken
	b, err := events.Encode(e)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := events.DecodeMessage([]byte(e.CardToken), b); err != nil {
		t.Fatal(err)
	}
	if _, err := events.DecodeMessage([]byte(tokCard), b); err == nil || err.Error() != "card_token: is not the message key: producers key each event by its card_token" {
		t.Errorf("DecodeMessage with another key: %v", err)
	}
}

// Clear numbers a broken producer might send. testLuhnPAN passes the Luhn check.
const (
	testLuhnPAN   = "6228480402564899"
	testPassport  = "E12345678"
	testLuhnFails = "6228480402564898"
)

func TestCheckCardToken(t *testing.T) {
	for _, tc := range []struct {
		token, want string // want is the error, "" for a token
	}{
		{tokCard, ""},
		{"card-0001", ""},
		{"HZ:card/42", ""},
		{strings.Repeat("x", 64), ""},
		{testLuhnFails, ""}, // 16 digits failing the Luhn check: a token, as far as anyone can tell
		{"", "must not be empty"},
		{strings.Repeat("x", 65), "is 65 bytes, more than 64"},
		{"tok\x00x", "must be printable ASCII without spaces"},
		{"tok\xffx", "must be printable ASCII without spaces"},
		{"tok x", "must be printable ASCII without spaces"},
		{"tok\tx", "must be printable ASCII without spaces"},
		{"tok\u00e9", "must be printable ASCII without spaces"},
		{testLuhnPAN, "looks like a card number in clear, send the card's token"},
		{"6228-4804-0256-4899", "looks like a card number in clear, send the card's token"},
		{"4222222222222", "looks like a card number in clear, send the card's token"},
	} {
		err := events.CheckCardToken(tc.token)
		got := ""
		if err != nil {
			got = err.Error()
			if tc.token != "" && strings.Contains(got, tc.token) {
				t.Errorf("CheckCardToken(%q) repeats the value: %v", tc.token, err)
			}
		}
		if got != tc.want {
			t.Errorf("CheckCardToken(%q) = %q, want %q", tc.token, got, tc.want)
		}
	}
}

func TestContainsCardNumberFindsAClearNumberInText(t *testing.T) {
	const pan = "6228480402564890018" // 19 digits, passes Luhn
	for _, tc := range []struct {
		s    string
		want bool
	}{
		{pan, true},
		{"6228481234561236", true},                // 16 digits, passes Luhn
		{"4111111111111111", true},                // 16 digits, passes Luhn
		{"card 4111111111111111 refund", true},    // inside text
		{"王先生4111111111111111", true},             // after CJK characters
		{"4111 1111 1111 1111", true},             // printed in groups of four
		{"4111-1111-1111-1111", true},             // or with hyphens
		{"3782 822463 10005", true},               // a 15-digit card printed 4-6-5
		{"4111111111111112", false},               // fails Luhn
		{"622848******1234", false},               // masked
		{"411111111111", false},                   // 12 digits
		{"41111111111111111111", false},           // 20 digits: no card number as a whole
		{"2026-10-08 000000000000017", false},     // a date then 15 digits that fail Luhn
		{"M-000123", false},                       // a party id
		{"4111  1111 1111 1111", false},           // two spaces end a group
		{"0571-8888-8888", false},                 // 12 digits in groups
		{"2026-10-08-4111-1111-1111-1111", true},  // a group of 2 digits ends a chain, the next starts
		{"1234 4111 1111 1111 1111", true},        // any consecutive groups count
		{"ref 2026-10-08 4111111111111111", true}, // but a run of its own still counts
		{"", false},
	} {
		if got := events.ContainsCardNumber(tc.s); got != tc.want {
			t.Errorf("ContainsCardNumber(%q) = %v, want %v", tc.s, got, tc.want)
		}
	}
}
