package http

import (
	"strings"
)

// The operations that take no body (a key issued or revoked, a cycle closed) refuse one that says
// something, as a void does: a client that sends {"force": true} or a file by mistake learns that
// it was not read, rather than seeing its request done as if it had been. No body, or {}, is
// taken. A body over the bound is 413.
func init() {
	bodyless := map[string]string{
		"POST /v1/merchants/{id}/key":                      "/v1/merchants/pharmacy-1/key",
		"POST /v1/medical/institutions/{merchant_id}/keys": "/v1/medical/institutions/M9/keys",
		"POST /v1/settlement/cycles/{date}/close":          "/v1/settlement/cycles/" + fakeDayPath + "/close",
		"POST /v1/banks/{bank}/keys":                       "/v1/banks/BOC-JX/keys",
		"DELETE /v1/banks/{bank}/keys":                     "/v1/banks/ICBC-JX/keys",
	}
	for route, path := range bodyless {
		method, _, _ := strings.Cut(route, " ")
		featureStatusCases = append(featureStatusCases,
			statusCase{name: "a body it does not read", route: route, status: 400, code: EINVALID, message: `unknown field "force"`,
				run: send(request{method: method, path: path, body: `{"force":true}`})},
			statusCase{name: "a body over the bound", route: route, status: 413, code: ETOOLARGE,
				run: send(request{method: method, path: path, body: `{"x":"` + strings.Repeat("a", maxRequestBytes) + `"}`})},
		)
	}
}
