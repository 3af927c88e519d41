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

// TestEndpointsWithoutParametersRefuseOne sends every API endpoint whose document lists no query
// parameter one (a filter such as ?month= on a card's savings, or ?dry_run=true on a cycle's
// close): it is refused with 400 naming it, never ignored, since an ignored parameter answers
// with more than was asked, or does what the client asked not to. The probes of load balancers
// and Prometheus are left as they are.
func TestEndpointsWithoutParametersRefuseOne(t *testing.T) {
	doc := loadOpenAPI(t)
	e := newEnv(t)
	probes := map[string]bool{"/healthz": true, "/readyz": true, "/metrics": true}
	for _, rt := range e.srv.Routes() {
		path := openAPIPath(rt.Pattern)
		if probes[path] {
			continue
		}
		op := doc.Paths[path][strings.ToLower(rt.Method)]
		takes := false
		for _, p := range op.Parameters {
			if resolveParam(t, doc, p).In == "query" {
				takes = true
			}
		}
		if takes {
			continue // it names what it takes: TestListsRefuseParametersTheyDoNotTake
		}
		target := strings.NewReplacer("{", "", "}", "", "...", "").Replace(path) + "?dry_run=true"
		r := e.do(t, request{method: rt.Method, path: target, body: "{}"})
		if r.Code != http.StatusBadRequest || !strings.Contains(errorOf(t, r).Message, `unknown query parameter "dry_run", want none`) {
			t.Errorf("%s %s: %d %s, want 400 naming dry_run", rt.Method, target, r.Code, r.Body.String())
		}
	}
}
