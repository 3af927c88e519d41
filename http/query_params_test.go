package http

import (
	"net/http"
	"strings"
	"testing"
)

// TestListsRefuseParametersTheyDoNotTake sends each reading endpoint that takes query parameters
// one it does not take (a misspelled filter, which must not answer with more than was asked) and
// one of its own twice: both are answered 400 naming the parameter, on the real store.
func TestListsRefuseParametersTheyDoNotTake(t *testing.T) {
	w := newHostileWorld(t)
	const account = "/v1/accounts/0195a3c2-5e00-7a41-8b3e-2f7d9c1e4a11"
	for _, c := range []struct {
		path, auth, want string
	}{
		{"/v1/authorizations?status=bogus", "merchant", `unknown query parameter "status", want limit, before`},
		{"/v1/authorizations?limit=2&limit=3", "merchant", "limit: give it once"},
		{account + "?at=2026-03-01T00:00:00Z&currency=CNY", "", `unknown query parameter "currency", want at`},
		{account + "/statement?form=2026-03-01", "", `unknown query parameter "form", want from, to, limit, after`},
		{account + "/statement?to=2026-03-01T00:00:00Z&to=2026-03-02T00:00:00Z", "", "to: give it once"},
		{"/v1/transit/deny-list?limt=5", "operator", `unknown query parameter "limt", want limit, after`},
		{"/v1/transit/cards/tok_card/trips?day=2026-03-01", "", `unknown query parameter "day", want from, to`},
		{"/v1/transit/cards/tok_card/trips?6222021234567890003=1", "", "unknown query parameter, want from, to"},
	} {
		rq := request{method: "GET", path: c.path}
		switch c.auth {
		case "merchant":
			rq.auth = "Bearer " + w.merchantKey
		case "operator":
			rq.auth = "Bearer " + w.operatorKey
		}
		r := w.do(t, rq)
		if r.Code != http.StatusBadRequest {
			t.Errorf("GET %s: %d %s, want 400", c.path, r.Code, r.Body.String())
			continue
		}
		if got := errorOf(t, r).Message; !strings.Contains(got, c.want) {
			t.Errorf("GET %s: %q, want %q", c.path, got, c.want)
		}
	}
}
