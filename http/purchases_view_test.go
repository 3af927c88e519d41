package http

import (
	"encoding/json"
	"testing"
)

// An authorization's answer without increments, close, refunds or fees, what every authorization
// request is answered, is spelled by hand (jsonAppender) byte for byte as encoding/json spells it;
// any other, or one with a string encoding/json escapes, is left to encoding/json.
func TestAuthorizationViewSpelledAsEncodingJSON(t *testing.T) {
	approved := authorizationView{ID: "0193a5f2-7c1e-7d4e-9a1b-2c3d4e5f6a7b", MerchantID: "pharmacy-1", CardToken: "tok_3f9a",
		Decision: "approved", Status: "authorized", Currency: "CNY", Amount: "12.34", Held: "12.34", Captured: "0.00",
		Refunded: "0.00", ExpiresAt: "2026-12-15T00:00:00.123456Z", CreatedAt: "2026-12-08T00:00:00.123456Z"}
	declined := approved
	declined.Decision, declined.Status, declined.Held, declined.ExpiresAt = "declined", "declined", "0.00", ""
	declined.DeclineReason, declined.DeclineDetail = "limit_exceeded", "the day's total would pass 600.00"
	noCard := declined
	noCard.CardToken = ""
	odd := declined
	odd.DeclineDetail = `a "quoted" <tag> & é`
	withClose := approved
	withClose.Close = &purchaseCloseView{}
	withIncrements := approved
	withIncrements.Increments = []purchaseIncrementView{{}}
	cases := []struct {
		name string
		v    authorizationView
		hand bool
	}{
		{"approved", approved, true},
		{"declined", declined, true},
		{"without a card token", noCard, true},
		{"with characters encoding/json escapes", odd, false},
		{"with a close", withClose, false},
		{"with increments", withIncrements, false},
	}
	for _, c := range cases {
		a, ok := any(c.v).(jsonAppender)
		if !ok {
			t.Fatalf("%s: an authorization's answer is not spelled by hand", c.name)
		}
		got, hand := a.appendJSON(nil)
		if hand != c.hand {
			t.Errorf("%s: spelled by hand %v, want %v", c.name, hand, c.hand)
		}
		if !hand {
			if len(got) != 0 {
				t.Errorf("%s: left to encoding/json with %q appended", c.name, got)
			}
			continue
		}
		want, err := json.Marshal(reflectedAuthorizationView(c.v))
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != string(want) {
			t.Errorf("%s:\n got %s\nwant %s", c.name, got, want)
		}
	}
}

// BenchmarkAuthorizationAnswer spells an approved authorization's answer as writeJSON does now
// (by hand) and as it did before (encoding/json).
func BenchmarkAuthorizationAnswer(b *testing.B) {
	v := authorizationView{ID: "0193a5f2-7c1e-7d4e-9a1b-2c3d4e5f6a7b", MerchantID: "pharmacy-1", CardToken: "tok_3f9a1c2e7b5d4e6f8a9b0c1d2e3f4a5b",
		Decision: "approved", Status: "authorized", Currency: "CNY", Amount: "12.34", Held: "12.34", Captured: "0.00",
		Refunded: "0.00", ExpiresAt: "2026-12-15T00:00:00.123456Z", CreatedAt: "2026-12-08T00:00:00.123456Z"}
	b.Run("by hand", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, ok := v.appendJSON(nil); !ok {
				b.Fatal("not spelled by hand")
			}
		}
	})
	b.Run("encoding/json", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := json.Marshal(reflectedAuthorizationView(v)); err != nil {
				b.Fatal(err)
			}
		}
	})
}
