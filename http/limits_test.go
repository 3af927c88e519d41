package http

import (
	"net/http"
	"strings"
	"testing"
)

// A card's daily limit goes up to purchases.MaxDailyLimit, ten payments at the bound, as
// documented: one above a single payment's bound is taken, one above the daily bound is refused
// saying so.
func TestDailyLimitAboveOnePaymentsBound(t *testing.T) {
	e := newEnv(t)
	for _, c := range []struct {
		perDay, want string
		status       int
	}{
		{"50000000.00", `"per_day":"50000000.00"`, http.StatusOK},
		{"100000000.00", `"per_day":"100000000.00"`, http.StatusOK},
		{"100000000.01", "daily limit must be at most 100,000,000.00 CNY", http.StatusBadRequest},
		{"99999999999999999999999", "per_day: amount is over the bound", http.StatusBadRequest},
		{"5e7", "per_day: amount is not a decimal amount", http.StatusBadRequest},
	} {
		w := e.do(t, request{method: "POST", path: "/v1/cards/tok_card/limits", body: `{"per_transaction":"500.00","per_day":"` + c.perDay + `"}`})
		if w.Code != c.status || !strings.Contains(w.Body.String(), c.want) {
			t.Errorf("per_day %s: %d %s, want %d with %s", c.perDay, w.Code, w.Body.String(), c.status, c.want)
		}
	}
}
