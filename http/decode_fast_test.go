package http

import (
	"testing"
)

// An authorization's body, the hot path's, is read with a few allocations: the request's strings
// and the decoder's own, not a token and a boxed value per member as a walk of json.Decoder's
// tokens makes, nor the struct's field names read again by reflection for every request.
func TestDecodeAuthorizationBodyAllocations(t *testing.T) {
	body := []byte(`{"card_token":"tok_3f9a1c2e7b5d4e6f8a9b0c1d2e3f4a5b","amount":"12.34","currency":"CNY","merchant_id":"pharmacy-1"}`)
	allocs := testing.AllocsPerRun(200, func() {
		var req authorizeRequest
		if err := decodeBytes(body, &req); err != nil {
			t.Fatal(err)
		}
	})
	if allocs > 20 {
		t.Errorf("decoding an authorization's body allocates %.0f times, want at most 20", allocs)
	}
}

// The one-pass check of a flat object of strings (flatStrings) takes a body only where the full
// check (checkObject) takes it too, and takes the bodies clients usually send: whatever it leaves
// goes through the full check, which words the refusal.
func TestFlatStringsAgreesWithCheckObject(t *testing.T) {
	fields := jsonFields(&authorizeRequest{})
	cases := []struct {
		body string
		fast bool // taken by the one-pass check
	}{
		{`{"card_token":"c","amount":"1.00","currency":"CNY"}`, true},
		{` { "card_token" : "c" ,	"amount":"1.00"
			,"currency":"CNY","merchant_id":"m" } ` + "\r\n", true},
		{`{}`, true},
		{`{ }`, true},
		{`{"card_token":"caf\u00e9 \"x\" \\ \/ \b\f\n\r\t"}`, true},
		{`{"card_token":"ok\ud83d\ude00"}`, true},
		{`{"card_token":"中文"}`, true},
		{`{"card_token":"c","card_token":"d"}`, false},
		{`{"Card_Token":"c"}`, false},
		{`{"card_number":"c"}`, false},
		{`{"card_t\u006fken":"c"}`, false},
		{`{"amount":1}`, false},
		{`{"amount":null}`, false},
		{`{"amount":["1"]}`, false},
		{`{"amount":{"x":"1"}}`, false},
		{`{"amount":"1"} x`, false},
		{`{"amount":"1"}{}`, false},
		{`{"amount":"1",}`, false},
		{`{,"amount":"1"}`, false},
		{`{"amount" "1"}`, false},
		{`{"amount":"1"`, false},
		{`{"amount":"1`, false},
		{`{"amount`, false},
		{`{"amount":"a` + "\x01" + `b"}`, false},
		{`{"amount":"a\x"}`, false},
		{`{"amount":"a\u12"}`, false},
		{`{"amount":"a\u12g4"}`, false},
		{`{"amount":"a\`, false},
		{`["amount"]`, false},
		{`"amount"`, false},
		{``, false},
		{`   `, false},
		{`{"amount":"1"}` + "\v", false},
	}
	for _, c := range cases {
		fast := flatStrings([]byte(c.body), fields)
		if fast != c.fast {
			t.Errorf("%q: one-pass check %v, want %v", c.body, fast, c.fast)
		}
		if fast {
			if err := checkObject([]byte(c.body), fields); err != nil {
				t.Errorf("%q: taken by the one-pass check, refused by the full one: %v", c.body, err)
			}
			var req authorizeRequest
			if err := decodeBytes([]byte(c.body), &req); err != nil {
				t.Errorf("%q: taken by the one-pass check, not decoded: %v", c.body, err)
			}
		}
	}
}
