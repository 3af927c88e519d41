package http

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/joinincard/engine/ledger"
)

// statusCase is one way to make an operation answer one status.
type statusCase struct {
	name   string
	route  string // the operation, as in statuses
	status int
	code   string // the error code; "" for a success
	// message, when set, must be part of the error message.
	message string
	// reason, when set, is the error's reason.
	reason string
	opts   []envOption
	run    func(t *testing.T, e *env) *httptest.ResponseRecorder
}

// featureStatusCases are the features' cases, each feature's test file appending its own from an
// init function, as it adds its operations to statuses.
var featureStatusCases []statusCase

// send returns a run that sends rq.
func send(rq request) func(t *testing.T, e *env) *httptest.ResponseRecorder {
	return func(t *testing.T, e *env) *httptest.ResponseRecorder { return e.do(t, rq) }
}

// registered registers the test card (with a physical token) and parties, then runs next.
func registered(next func(t *testing.T, e *env) *httptest.ResponseRecorder) func(t *testing.T, e *env) *httptest.ResponseRecorder {
	return func(t *testing.T, e *env) *httptest.ResponseRecorder {
		t.Helper()
		w := e.do(t, request{method: "POST", path: "/v1/cards", key: keyAt(t, t0), body: registration(withPhysical)})
		if w.Code != http.StatusCreated {
			t.Fatalf("registering the test card: %d %s", w.Code, w.Body.String())
		}
		return next(t, e)
	}
}

func withPhysical(m map[string]string) { m["physical_token"] = physicalToken }

// physicalToken is the test card's physical card token.
var physicalToken = "tok_" + strings.Repeat("A", 42) + "E"

func cardToken(t testing.TB) string { return testTokenizer(t).Token(testPAN) }

func failing(method string, err error) envOption {
	return func(c *Config) { c.Store.(*fakeStore).fail(method, err) }
}

// busy is the error of a store whose writers kept colliding past its retries.
var busy = fmt.Errorf("batch transaction: %w", &pgconn.PgError{Code: "40001", Message: "could not serialize access"})

var errBroken = errors.New("connection reset by peer")

func noAdmin(c *Config) { c.AdminToken = "" }

func TestStatusCodes(t *testing.T) {
	tooLarge := `{"holder_name":"` + strings.Repeat("a", maxRequestBytes) + `"}`
	statusBody := func(status, reason string) string {
		return fmt.Sprintf(`{"status":%q,"reason":%q}`, status, reason)
	}
	var cases []statusCase
	add := func(c ...statusCase) { cases = append(cases, c...) }

	add(
		statusCase{name: "alive", route: "GET /healthz", status: 200, run: send(request{method: "GET", path: "/healthz", auth: "-"})},
		statusCase{name: "ready", route: "GET /readyz", status: 200, run: send(request{method: "GET", path: "/readyz", auth: "-"})},
		statusCase{name: "store down", route: "GET /readyz", status: 503, code: EUNAVAILABLE, message: "not ready: store",
			opts: []envOption{failing("Ping", errBroken)}, run: send(request{method: "GET", path: "/readyz", auth: "-"})},
		statusCase{name: "broker down", route: "GET /readyz", status: 503, code: EUNAVAILABLE, message: "not ready: broker",
			opts: []envOption{func(c *Config) { c.Broker = pinger(func(context.Context) error { return errBroken }) }},
			run:  send(request{method: "GET", path: "/readyz", auth: "-"})},
		statusCase{name: "both down", route: "GET /readyz", status: 503, code: EUNAVAILABLE, message: "not ready: store, broker",
			opts: []envOption{failing("Ping", errBroken), func(c *Config) { c.Broker = pinger(func(context.Context) error { return errBroken }) }},
			run:  send(request{method: "GET", path: "/readyz", auth: "-"})},
		statusCase{name: "scrape", route: "GET /metrics", status: 200, run: send(request{method: "GET", path: "/metrics", auth: "-"})},
		statusCase{name: "too many scrapes", route: "GET /metrics", status: 503, run: tooManyScrapes},
	)

	party := `{"kind":"bank","id":"ICBC-JX","name":"ICBC Jiaxing"}`
	add(
		statusCase{name: "party", route: "POST /v1/parties", status: 201, run: send(request{method: "POST", path: "/v1/parties", body: party})},
		statusCase{name: "party again", route: "POST /v1/parties", status: 201, run: func(t *testing.T, e *env) *httptest.ResponseRecorder {
			e.do(t, request{method: "POST", path: "/v1/parties", body: party})
			return e.do(t, request{method: "POST", path: "/v1/parties", body: party})
		}},
		statusCase{name: "insurance fund with a space", route: "POST /v1/parties", status: 201,
			run: send(request{method: "POST", path: "/v1/parties", body: `{"kind":"insurance_fund","id":"San Francisco","name":"SF fund"}`})},
		statusCase{name: "party renamed", route: "POST /v1/parties", status: 409, code: ECONFLICT, reason: "name_differs", message: "registered under another name",
			run: func(t *testing.T, e *env) *httptest.ResponseRecorder {
				e.do(t, request{method: "POST", path: "/v1/parties", body: party})
				return e.do(t, request{method: "POST", path: "/v1/parties", body: `{"kind":"bank","id":"ICBC-JX","name":"Other"}`})
			}},
		statusCase{name: "unknown kind", route: "POST /v1/parties", status: 400, code: EINVALID, message: "kind: must be one of",
			run: send(request{method: "POST", path: "/v1/parties", body: `{"kind":"shop","id":"x","name":"y"}`})},
		statusCase{name: "no id", route: "POST /v1/parties", status: 400, code: EINVALID, message: "id: missing",
			run: send(request{method: "POST", path: "/v1/parties", body: `{"kind":"bank","name":"y"}`})},
		statusCase{name: "bank id with a space", route: "POST /v1/parties", status: 400, code: EINVALID, message: "id: must be printable ascii",
			run: send(request{method: "POST", path: "/v1/parties", body: `{"kind":"bank","id":"ICBC JX","name":"y"}`})},
		statusCase{name: "no name", route: "POST /v1/parties", status: 400, code: EINVALID, message: "name: missing",
			run: send(request{method: "POST", path: "/v1/parties", body: `{"kind":"bank","id":"x"}`})},
		statusCase{name: "name with a newline", route: "POST /v1/parties", status: 400, code: EINVALID, message: "name: must not contain control",
			run: send(request{method: "POST", path: "/v1/parties", body: `{"kind":"bank","id":"x","name":"a\nb"}`})},
		statusCase{name: "party unknown field", route: "POST /v1/parties", status: 400, code: EINVALID, message: `unknown field "city"`,
			run: send(request{method: "POST", path: "/v1/parties", body: `{"kind":"bank","id":"x","name":"y","city":"z"}`})},
		statusCase{name: "party without auth", route: "POST /v1/parties", status: 401, code: EUNAUTHORIZED,
			run: send(request{method: "POST", path: "/v1/parties", body: party, auth: "-"})},
		statusCase{name: "party basic auth", route: "POST /v1/parties", status: 401, code: EUNAUTHORIZED,
			run: send(request{method: "POST", path: "/v1/parties", body: party, auth: "Basic YWRtaW46YWRtaW4="})},
		statusCase{name: "party wrong token", route: "POST /v1/parties", status: 403, code: EFORBIDDEN,
			run: send(request{method: "POST", path: "/v1/parties", body: party, auth: "Bearer " + testAdminToken + "x"})},
		statusCase{name: "party too large", route: "POST /v1/parties", status: 413, code: ETOOLARGE,
			run: send(request{method: "POST", path: "/v1/parties", body: tooLarge})},
		statusCase{name: "party store broken", route: "POST /v1/parties", status: 500, code: EINTERNAL, message: "internal error",
			opts: []envOption{failing("RegisterParty", errBroken)}, run: send(request{method: "POST", path: "/v1/parties", body: party})},
		statusCase{name: "party store busy", route: "POST /v1/parties", status: 503, code: EUNAVAILABLE, message: "busy",
			opts: []envOption{failing("RegisterParty", busy)}, run: send(request{method: "POST", path: "/v1/parties", body: party})},
		statusCase{name: "party no admin token", route: "POST /v1/parties", status: 503, code: EUNAVAILABLE, message: "admin token not configured",
			opts: []envOption{noAdmin}, run: send(request{method: "POST", path: "/v1/parties", body: party})},
	)

	merchantParty := `{"kind":"merchant","id":"kiosk-9","name":"West Lake kiosk","settlement_bank":"ICBC-JX"}`
	add(
		statusCase{name: "party with a settlement bank", route: "POST /v1/parties", status: 201,
			run: send(request{method: "POST", path: "/v1/parties", body: merchantParty})},
		statusCase{name: "bank with a settlement bank", route: "POST /v1/parties", status: 400, code: EINVALID, message: "settlement_bank: a bank settles for itself",
			run: send(request{method: "POST", path: "/v1/parties", body: `{"kind":"bank","id":"ABC-JX","name":"ABC","settlement_bank":"ICBC-JX"}`})},
		statusCase{name: "settlement bank not registered", route: "POST /v1/parties", status: 400, code: EINVALID,
			message: `settlement_bank: bank "ABC-JX" is not registered`,
			run:     send(request{method: "POST", path: "/v1/parties", body: `{"kind":"merchant","id":"kiosk-9","name":"k","settlement_bank":"ABC-JX"}`})},
		statusCase{name: "settlement bank with a space", route: "POST /v1/parties", status: 400, code: EINVALID, message: "settlement_bank: must be printable ascii",
			run: send(request{method: "POST", path: "/v1/parties", body: `{"kind":"merchant","id":"kiosk-9","name":"k","settlement_bank":"ICBC JX"}`})},
		statusCase{name: "settlement bank store broken", route: "POST /v1/parties", status: 500, code: EINTERNAL, message: "internal error",
			opts: []envOption{failing("RegisterPartyBank", errBroken)}, run: send(request{method: "POST", path: "/v1/parties", body: merchantParty})},
		statusCase{name: "settlement bank lookup broken", route: "POST /v1/parties", status: 500, code: EINTERNAL, message: "internal error",
			opts: []envOption{failing("Balance", errBroken)}, run: send(request{method: "POST", path: "/v1/parties", body: merchantParty})},
	)

	setBank := func(kind, id, body string) request {
		return request{method: "PUT", path: "/v1/parties/" + kind + "/" + id + "/settlement-bank", body: body}
	}
	withKiosk := func(next func(t *testing.T, e *env) *httptest.ResponseRecorder) func(t *testing.T, e *env) *httptest.ResponseRecorder {
		return func(t *testing.T, e *env) *httptest.ResponseRecorder {
			t.Helper()
			if w := e.do(t, request{method: "POST", path: "/v1/parties", body: `{"kind":"merchant","id":"kiosk-9","name":"West Lake kiosk"}`}); w.Code != http.StatusCreated {
				t.Fatalf("registering kiosk-9: %d %s", w.Code, w.Body.String())
			}
			return next(t, e)
		}
	}
	add(
		statusCase{name: "set", route: "PUT /v1/parties/{kind}/{id}/settlement-bank", status: 200,
			run: withKiosk(send(setBank("merchant", "kiosk-9", `{"bank":"ICBC-JX"}`)))},
		statusCase{name: "set for a fund with a space", route: "PUT /v1/parties/{kind}/{id}/settlement-bank", status: 404, code: ENOTFOUND,
			message: `insurance_fund "San Francisco" is not registered`,
			run:     send(setBank("insurance_fund", "San%20Francisco", `{"bank":"ICBC-JX"}`))},
		statusCase{name: "set for a bank", route: "PUT /v1/parties/{kind}/{id}/settlement-bank", status: 400, code: EINVALID, message: "kind: a bank settles for itself",
			run: send(setBank("bank", "ICBC-JX", `{"bank":"ICBC-JX"}`))},
		statusCase{name: "set for an unknown kind", route: "PUT /v1/parties/{kind}/{id}/settlement-bank", status: 400, code: EINVALID, message: "kind: must be one of",
			run: send(setBank("shop", "kiosk-9", `{"bank":"ICBC-JX"}`))},
		statusCase{name: "set with an id with a space", route: "PUT /v1/parties/{kind}/{id}/settlement-bank", status: 400, code: EINVALID, message: "id: must be printable ascii",
			run: send(setBank("merchant", "kiosk%209", `{"bank":"ICBC-JX"}`))},
		statusCase{name: "set without a bank", route: "PUT /v1/parties/{kind}/{id}/settlement-bank", status: 400, code: EINVALID, message: "bank: missing required field",
			run: withKiosk(send(setBank("merchant", "kiosk-9", `{}`)))},
		statusCase{name: "set to a bank not registered", route: "PUT /v1/parties/{kind}/{id}/settlement-bank", status: 400, code: EINVALID,
			message: `bank: bank "ABC-JX" is not registered`, run: withKiosk(send(setBank("merchant", "kiosk-9", `{"bank":"ABC-JX"}`)))},
		statusCase{name: "set with an unknown field", route: "PUT /v1/parties/{kind}/{id}/settlement-bank", status: 400, code: EINVALID, message: `unknown field "settlement_bank"`,
			run: withKiosk(send(setBank("merchant", "kiosk-9", `{"settlement_bank":"ICBC-JX"}`)))},
		statusCase{name: "set for a party not registered", route: "PUT /v1/parties/{kind}/{id}/settlement-bank", status: 404, code: ENOTFOUND,
			message: `merchant "kiosk-9" is not registered`, run: send(setBank("merchant", "kiosk-9", `{"bank":"ICBC-JX"}`))},
		statusCase{name: "set without auth", route: "PUT /v1/parties/{kind}/{id}/settlement-bank", status: 401, code: EUNAUTHORIZED,
			run: send(request{method: "PUT", path: "/v1/parties/merchant/kiosk-9/settlement-bank", body: `{"bank":"ICBC-JX"}`, auth: "-"})},
		statusCase{name: "set wrong token", route: "PUT /v1/parties/{kind}/{id}/settlement-bank", status: 403, code: EFORBIDDEN,
			run: send(request{method: "PUT", path: "/v1/parties/merchant/kiosk-9/settlement-bank", body: `{"bank":"ICBC-JX"}`, auth: "Bearer x"})},
		statusCase{name: "set too large", route: "PUT /v1/parties/{kind}/{id}/settlement-bank", status: 413, code: ETOOLARGE,
			run: send(setBank("merchant", "kiosk-9", tooLarge))},
		statusCase{name: "set store broken", route: "PUT /v1/parties/{kind}/{id}/settlement-bank", status: 500, code: EINTERNAL, message: "internal error",
			opts: []envOption{failing("SetPartyBank", errBroken)}, run: withKiosk(send(setBank("merchant", "kiosk-9", `{"bank":"ICBC-JX"}`)))},
		statusCase{name: "set store busy", route: "PUT /v1/parties/{kind}/{id}/settlement-bank", status: 503, code: EUNAVAILABLE, message: "busy",
			opts: []envOption{failing("SetPartyBank", busy)}, run: withKiosk(send(setBank("merchant", "kiosk-9", `{"bank":"ICBC-JX"}`)))},
		statusCase{name: "set no admin token", route: "PUT /v1/parties/{kind}/{id}/settlement-bank", status: 503, code: EUNAVAILABLE,
			opts: []envOption{noAdmin}, run: send(setBank("merchant", "kiosk-9", `{"bank":"ICBC-JX"}`))},
	)

	reg := func(key string, change func(map[string]string)) request {
		return request{method: "POST", path: "/v1/cards", key: key, body: registration(change)}
	}
	k := func(t *testing.T) string { return keyAt(t, t0) }
	add(
		statusCase{name: "register", route: "POST /v1/cards", status: 201, run: func(t *testing.T, e *env) *httptest.ResponseRecorder {
			return e.do(t, reg(k(t), nil))
		}},
		statusCase{name: "register replay", route: "POST /v1/cards", status: 200, run: func(t *testing.T, e *env) *httptest.ResponseRecorder {
			key := k(t)
			e.do(t, reg(key, nil))
			return e.do(t, reg(key, nil))
		}},
		statusCase{name: "card registered twice", route: "POST /v1/cards", status: 409, code: ECONFLICT, message: "card already registered",
			run: func(t *testing.T, e *env) *httptest.ResponseRecorder {
				e.do(t, reg(k(t), nil))
				return e.do(t, reg(k(t), nil))
			}},
		statusCase{name: "physical token of another card", route: "POST /v1/cards", status: 409, code: ECONFLICT, message: "token already names another card",
			run: registered(func(t *testing.T, e *env) *httptest.ResponseRecorder {
				return e.do(t, reg(k(t), func(m map[string]string) { m["card_number"] = otherPAN; withPhysical(m) }))
			})},
		statusCase{name: "replay of a refused registration", route: "POST /v1/cards", status: 409, code: ECONFLICT, message: "refused registration",
			run: registered(func(t *testing.T, e *env) *httptest.ResponseRecorder {
				key := k(t)
				other := func(m map[string]string) { m["card_number"] = otherPAN; withPhysical(m) }
				e.do(t, reg(key, other))
				return e.do(t, reg(key, other))
			})},
		statusCase{name: "key reused", route: "POST /v1/cards", status: 409, code: ECONFLICT, message: "idempotency key reused with a different body",
			run: func(t *testing.T, e *env) *httptest.ResponseRecorder {
				key := k(t)
				e.do(t, reg(key, nil))
				return e.do(t, reg(key, func(m map[string]string) { m["holder_name"] = "Anna Schmidt-Weber" }))
			}},
		statusCase{name: "no key", route: "POST /v1/cards", status: 400, code: EINVALID, message: "missing idempotency-key",
			run: send(reg("", nil))},
		statusCase{name: "key not a uuid", route: "POST /v1/cards", status: 400, code: EINVALID, message: "idempotency-key: not a uuid",
			run: send(reg("abc", nil))},
		statusCase{name: "key without hyphens", route: "POST /v1/cards", status: 400, code: EINVALID, message: "idempotency-key: not a uuid",
			run: func(t *testing.T, e *env) *httptest.ResponseRecorder {
				return e.do(t, reg(strings.ReplaceAll(k(t), "-", ""), nil))
			}},
		statusCase{name: "key a uuidv4", route: "POST /v1/cards", status: 400, code: EINVALID, message: "want a uuidv7",
			run: send(reg("0195a3c2-5e00-4a41-8b3e-2f7d9c1e4a11", nil))},
		statusCase{name: "key from the future", route: "POST /v1/cards", status: 400, code: EINVALID, message: "in the future",
			run: func(t *testing.T, e *env) *httptest.ResponseRecorder {
				return e.do(t, reg(keyAt(t, t0.Add(maxKeyAhead+time.Second)), nil))
			}},
		statusCase{name: "key from before any card", route: "POST /v1/cards", status: 400, code: EINVALID, message: "idempotency-key: ",
			run: func(t *testing.T, e *env) *httptest.ResponseRecorder {
				return e.do(t, reg(keyAt(t, time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)), nil))
			}},
		statusCase{name: "two keys", route: "POST /v1/cards", status: 400, code: EINVALID, message: "more than one",
			run: func(t *testing.T, e *env) *httptest.ResponseRecorder {
				r := httptest.NewRequest("POST", "/v1/cards", strings.NewReader(registration(nil)))
				r.Header.Set("Authorization", "Bearer "+testAdminToken)
				r.Header.Add("Idempotency-Key", k(t))
				r.Header.Add("Idempotency-Key", k(t))
				w := httptest.NewRecorder()
				e.h.ServeHTTP(w, r)
				return w
			}},
		statusCase{name: "card number too short", route: "POST /v1/cards", status: 400, code: EINVALID, message: "card_number: card number must be 13 to 19 digits",
			run: func(t *testing.T, e *env) *httptest.ResponseRecorder {
				return e.do(t, reg(k(t), func(m map[string]string) { m["card_number"] = "622848" }))
			}},
		statusCase{name: "card number fails luhn", route: "POST /v1/cards", status: 400, code: EINVALID, message: "card_number: fails the luhn",
			run: func(t *testing.T, e *env) *httptest.ResponseRecorder {
				return e.do(t, reg(k(t), func(m map[string]string) { m["card_number"] = "6228480402564898" }))
			}},
		statusCase{name: "passport with punctuation", route: "POST /v1/cards", status: 400, code: EINVALID, message: "passport_number: number must be 6 to 34",
			run: func(t *testing.T, e *env) *httptest.ResponseRecorder {
				return e.do(t, reg(k(t), func(m map[string]string) { m["passport_number"] = "E1234/5678" }))
			}},
		statusCase{name: "no bank account", route: "POST /v1/cards", status: 400, code: EINVALID, message: "bank_account_number: missing required field",
			run: func(t *testing.T, e *env) *httptest.ResponseRecorder {
				return e.do(t, reg(k(t), func(m map[string]string) { delete(m, "bank_account_number") }))
			}},
		statusCase{name: "nationality alpha-2", route: "POST /v1/cards", status: 400, code: EINVALID, message: "nationality: ",
			run: func(t *testing.T, e *env) *httptest.ResponseRecorder {
				return e.do(t, reg(k(t), func(m map[string]string) { m["nationality"] = "DE" }))
			}},
		statusCase{name: "permit date", route: "POST /v1/cards", status: 400, code: EINVALID, message: "permit_valid_until: ",
			run: func(t *testing.T, e *env) *httptest.ResponseRecorder {
				return e.do(t, reg(k(t), func(m map[string]string) { m["permit_valid_until"] = "2027-02-30" }))
			}},
		statusCase{name: "permit valid for ever", route: "POST /v1/cards", status: 400, code: EINVALID,
			message: "permit_valid_until: 9999-12-31 is more than 5 years after occurred_at",
			run: func(t *testing.T, e *env) *httptest.ResponseRecorder {
				return e.do(t, reg(k(t), func(m map[string]string) { m["permit_valid_until"] = "9999-12-31" }))
			}},
		statusCase{name: "holder name with trailing space", route: "POST /v1/cards", status: 400, code: EINVALID, message: "holder_name: must not start or end with a space",
			run: func(t *testing.T, e *env) *httptest.ResponseRecorder {
				return e.do(t, reg(k(t), func(m map[string]string) { m["holder_name"] = "Anna " }))
			}},
		statusCase{name: "physical token not a token", route: "POST /v1/cards", status: 400, code: EINVALID, message: "physical_token: not a token",
			run: func(t *testing.T, e *env) *httptest.ResponseRecorder {
				return e.do(t, reg(k(t), func(m map[string]string) { m["physical_token"] = "6228480402564899" }))
			}},
		statusCase{name: "issuer bank with a space", route: "POST /v1/cards", status: 400, code: EINVALID, message: "issuer_bank: ",
			run: func(t *testing.T, e *env) *httptest.ResponseRecorder {
				return e.do(t, reg(k(t), func(m map[string]string) { m["issuer_bank"] = "ICBC JX" }))
			}},
		statusCase{name: "register unknown field", route: "POST /v1/cards", status: 400, code: EINVALID, message: `unknown field "cvv"`,
			run: func(t *testing.T, e *env) *httptest.ResponseRecorder {
				return e.do(t, reg(k(t), func(m map[string]string) { m["cvv"] = "123" }))
			}},
		statusCase{name: "register without auth", route: "POST /v1/cards", status: 401, code: EUNAUTHORIZED,
			run: func(t *testing.T, e *env) *httptest.ResponseRecorder {
				rq := reg(k(t), nil)
				rq.auth = "-"
				return e.do(t, rq)
			}},
		statusCase{name: "register wrong token", route: "POST /v1/cards", status: 403, code: EFORBIDDEN,
			run: func(t *testing.T, e *env) *httptest.ResponseRecorder {
				rq := reg(k(t), nil)
				rq.auth = "Bearer nope"
				return e.do(t, rq)
			}},
		statusCase{name: "register too large", route: "POST /v1/cards", status: 413, code: ETOOLARGE,
			run: func(t *testing.T, e *env) *httptest.ResponseRecorder {
				return e.do(t, request{method: "POST", path: "/v1/cards", key: k(t), body: tooLarge})
			}},
		statusCase{name: "register store broken", route: "POST /v1/cards", status: 500, code: EINTERNAL, message: "internal error",
			opts: []envOption{failing("Ingest", errBroken)}, run: func(t *testing.T, e *env) *httptest.ResponseRecorder {
				return e.do(t, reg(k(t), nil))
			}},
		statusCase{name: "register balance broken", route: "POST /v1/cards", status: 500, code: EINTERNAL, message: "internal error",
			opts: []envOption{failing("Balance", errBroken)}, run: func(t *testing.T, e *env) *httptest.ResponseRecorder {
				return e.do(t, reg(k(t), nil))
			}},
		statusCase{name: "register store busy", route: "POST /v1/cards", status: 503, code: EUNAVAILABLE, message: "busy",
			opts: []envOption{failing("Ingest", busy)}, run: func(t *testing.T, e *env) *httptest.ResponseRecorder {
				return e.do(t, reg(k(t), nil))
			}},
		statusCase{name: "register no admin token", route: "POST /v1/cards", status: 503, code: EUNAVAILABLE, message: "admin token not configured",
			opts: []envOption{noAdmin}, run: func(t *testing.T, e *env) *httptest.ResponseRecorder {
				return e.do(t, reg(k(t), nil))
			}},
	)

	get := func(token string) request { return request{method: "GET", path: "/v1/cards/" + token} }
	add(
		statusCase{name: "get", route: "GET /v1/cards/{token}", status: 200, run: registered(func(t *testing.T, e *env) *httptest.ResponseRecorder {
			return e.do(t, get(cardToken(t)))
		})},
		statusCase{name: "get by physical token", route: "GET /v1/cards/{token}", status: 200, run: registered(func(t *testing.T, e *env) *httptest.ResponseRecorder {
			return e.do(t, get(physicalToken))
		})},
		statusCase{name: "get unknown", route: "GET /v1/cards/{token}", status: 404, code: ENOTFOUND, message: "card not found",
			run: send(get("tok_nothing"))},
		statusCase{name: "get by card number", route: "GET /v1/cards/{token}", status: 400, code: EINVALID, message: "token: looks like a card number in clear",
			run: registered(func(t *testing.T, e *env) *httptest.ResponseRecorder { return e.do(t, get(testPAN)) })},
		statusCase{name: "get overlong token", route: "GET /v1/cards/{token}", status: 400, code: EINVALID, message: "token: is 65 bytes, more than 64",
			run: send(get(strings.Repeat("t", 65)))},
		statusCase{name: "get token with a nul byte", route: "GET /v1/cards/{token}", status: 400, code: EINVALID, message: "token: must be printable",
			run: send(get("%00"))},
		statusCase{name: "get without auth", route: "GET /v1/cards/{token}", status: 401, code: EUNAUTHORIZED,
			run: send(request{method: "GET", path: "/v1/cards/tok_x", auth: "-"})},
		statusCase{name: "get empty bearer", route: "GET /v1/cards/{token}", status: 401, code: EUNAUTHORIZED,
			run: send(request{method: "GET", path: "/v1/cards/tok_x", auth: "Bearer "})},
		statusCase{name: "get wrong token", route: "GET /v1/cards/{token}", status: 403, code: EFORBIDDEN,
			run: send(request{method: "GET", path: "/v1/cards/tok_x", auth: "Bearer " + strings.ToUpper(testAdminToken)})},
		statusCase{name: "get store broken", route: "GET /v1/cards/{token}", status: 500, code: EINTERNAL, message: "internal error",
			opts: []envOption{failing("Card", errBroken)}, run: send(get("tok_x"))},
		statusCase{name: "get no admin token", route: "GET /v1/cards/{token}", status: 503, code: EUNAVAILABLE,
			opts: []envOption{noAdmin}, run: send(get("tok_x"))},
	)

	status := func(token, key, body string) request {
		return request{method: "POST", path: "/v1/cards/" + token + "/status", key: key, body: body}
	}
	add(
		statusCase{name: "block", route: "POST /v1/cards/{token}/status", status: 200, run: registered(func(t *testing.T, e *env) *httptest.ResponseRecorder {
			return e.do(t, status(cardToken(t), k(t), statusBody("blocked", "reported stolen")))
		})},
		statusCase{name: "block replay", route: "POST /v1/cards/{token}/status", status: 200, run: registered(func(t *testing.T, e *env) *httptest.ResponseRecorder {
			key := k(t)
			e.do(t, status(cardToken(t), key, statusBody("blocked", "reported stolen")))
			return e.do(t, status(physicalToken, key, statusBody("blocked", "reported stolen")))
		})},
		statusCase{name: "reopen closed", route: "POST /v1/cards/{token}/status", status: 409, code: ECONFLICT, message: "a closed card cannot be reopened",
			run: registered(func(t *testing.T, e *env) *httptest.ResponseRecorder {
				e.do(t, status(cardToken(t), k(t), statusBody("closed", "left china")))
				return e.do(t, status(cardToken(t), k(t), statusBody("active", "came back")))
			})},
		statusCase{name: "status key reused", route: "POST /v1/cards/{token}/status", status: 409, code: ECONFLICT, message: "idempotency key reused with a different body",
			run: registered(func(t *testing.T, e *env) *httptest.ResponseRecorder {
				key := k(t)
				e.do(t, status(cardToken(t), key, statusBody("blocked", "reported stolen")))
				return e.do(t, status(cardToken(t), key, statusBody("blocked", "reported lost")))
			})},
		statusCase{name: "status with a registration's key", route: "POST /v1/cards/{token}/status", status: 409, code: ECONFLICT, message: "idempotency key reused",
			run: func(t *testing.T, e *env) *httptest.ResponseRecorder {
				key := k(t)
				e.do(t, reg(key, nil))
				return e.do(t, status(cardToken(t), key, statusBody("blocked", "reported stolen")))
			}},
		statusCase{name: "status unknown card", route: "POST /v1/cards/{token}/status", status: 404, code: ENOTFOUND,
			run: func(t *testing.T, e *env) *httptest.ResponseRecorder {
				return e.do(t, status("tok_nothing", k(t), statusBody("blocked", "x")))
			}},
		statusCase{name: "status unknown value", route: "POST /v1/cards/{token}/status", status: 400, code: EINVALID, message: "status: ",
			run: registered(func(t *testing.T, e *env) *httptest.ResponseRecorder {
				return e.do(t, status(cardToken(t), k(t), statusBody("frozen", "x")))
			})},
		statusCase{name: "status without reason", route: "POST /v1/cards/{token}/status", status: 400, code: EINVALID, message: "reason: missing required field",
			run: registered(func(t *testing.T, e *env) *httptest.ResponseRecorder {
				return e.do(t, status(cardToken(t), k(t), `{"status":"blocked"}`))
			})},
		statusCase{name: "status without key", route: "POST /v1/cards/{token}/status", status: 400, code: EINVALID, message: "missing idempotency-key",
			run: send(status("tok_x", "", statusBody("blocked", "x")))},
		statusCase{name: "status without auth", route: "POST /v1/cards/{token}/status", status: 401, code: EUNAUTHORIZED,
			run: func(t *testing.T, e *env) *httptest.ResponseRecorder {
				rq := status("tok_x", k(t), statusBody("blocked", "x"))
				rq.auth = "-"
				return e.do(t, rq)
			}},
		statusCase{name: "status wrong token", route: "POST /v1/cards/{token}/status", status: 403, code: EFORBIDDEN,
			run: func(t *testing.T, e *env) *httptest.ResponseRecorder {
				rq := status("tok_x", k(t), statusBody("blocked", "x"))
				rq.auth = "bearer wrong"
				return e.do(t, rq)
			}},
		statusCase{name: "status too large", route: "POST /v1/cards/{token}/status", status: 413, code: ETOOLARGE,
			run: func(t *testing.T, e *env) *httptest.ResponseRecorder {
				return e.do(t, status("tok_x", k(t), tooLarge))
			}},
		statusCase{name: "status store broken", route: "POST /v1/cards/{token}/status", status: 500, code: EINTERNAL,
			opts: []envOption{failing("Card", errBroken)},
			run: func(t *testing.T, e *env) *httptest.ResponseRecorder {
				return e.do(t, status("tok_x", k(t), statusBody("blocked", "x")))
			}},
		statusCase{name: "status no admin token", route: "POST /v1/cards/{token}/status", status: 503, code: EUNAVAILABLE,
			opts: []envOption{noAdmin},
			run: func(t *testing.T, e *env) *httptest.ResponseRecorder {
				return e.do(t, status("tok_x", k(t), statusBody("blocked", "x")))
			}},
	)

	add(featureStatusCases...)

	// Every admin route answers 429 to a client that sent a wrong admin token too often: its
	// first 403 case (a wrong token, or another party's key, which is one), repeated past the
	// free failures, and once more.
	admin := adminRoutes(t)
	throttled := map[string]bool{}
	for _, c := range slices.Clone(cases) {
		if !admin[c.route] || c.status != http.StatusForbidden || throttled[c.route] {
			continue
		}
		throttled[c.route] = true
		add(statusCase{name: c.name + " too often", route: c.route, status: http.StatusTooManyRequests, code: ETOOMANY,
			message: "wrong admin token from this client", opts: c.opts,
			run: func(t *testing.T, e *env) *httptest.ResponseRecorder {
				for range loginFreeFailures + 1 {
					if w := c.run(t, e); w.Code != http.StatusForbidden {
						t.Fatalf("a wrong token: %d %s", w.Code, w.Body.String())
					}
				}
				return c.run(t, e)
			}})
	}

	seen := map[string]map[int]bool{}
	for _, c := range cases {
		t.Run(strings.ReplaceAll(c.route+" "+c.name, "/", "_"), func(t *testing.T) {
			if !slices.Contains(routeStatuses(c.route, admin), c.status) {
				t.Fatalf("case expects %d, which the statuses table does not list for %s", c.status, c.route)
			}
			e := newEnv(t, c.opts...)
			w := c.run(t, e)
			if w.Code != c.status {
				t.Fatalf("status %d, want %d: %s", w.Code, c.status, w.Body.String())
			}
			if seen[c.route] == nil {
				seen[c.route] = map[int]bool{}
			}
			seen[c.route][c.status] = true
			if c.route == "GET /metrics" {
				return
			}
			if c.code == "" {
				if w.Code >= 400 {
					t.Fatalf("an error without a code in the case")
				}
				return
			}
			got := errorOf(t, w)
			t.Logf("%d %s: %s", w.Code, got.Code, got.Message)
			if got.Code != c.code {
				t.Errorf("code %q, want %q (%s)", got.Code, c.code, got.Message)
			}
			if !strings.Contains(got.Message, c.message) {
				t.Errorf("message %q, want it to contain %q", got.Message, c.message)
			}
			if c.reason != "" && got.Reason != c.reason {
				t.Errorf("reason %q, want %q", got.Reason, c.reason)
			}
			if c.code == EINTERNAL && got.Message != "internal error" {
				t.Errorf("an internal error says %q, want only \"internal error\"", got.Message)
			}
			if c.code == EINTERNAL && !strings.Contains(e.log.String(), errBroken.Error()) {
				t.Errorf("the internal error's detail is not in the log:\n%s", e.log.String())
			}
			if c.code == EUNAUTHORIZED && w.Header().Get("WWW-Authenticate") == "" {
				t.Error("401 without WWW-Authenticate")
			}
			if c.code == EUNAVAILABLE && w.Header().Get("Retry-After") == "" {
				t.Error("503 without Retry-After")
			}
		})
	}
	for route := range statuses {
		for _, st := range routeStatuses(route, admin) {
			if !seen[route][st] {
				t.Errorf("%s: no case makes it answer %d, which the statuses table lists", route, st)
			}
		}
	}
}

// adminRoutes lists the operations that require the admin token.
func adminRoutes(t *testing.T) map[string]bool {
	out := map[string]bool{}
	for _, rt := range newEnv(t).srv.Routes() {
		if rt.Admin {
			out[rt.Method+" "+openAPIPath(rt.Pattern)] = true
		}
	}
	return out
}

// routeStatuses is what an operation answers: its statuses, and 429 for an admin route, which
// throttles a client sending wrong admin tokens.
func routeStatuses(route string, admin map[string]bool) []int {
	if admin[route] {
		return append(slices.Clone(statuses[route]), http.StatusTooManyRequests)
	}
	return statuses[route]
}

// tooManyScrapes holds metricsMaxInFlight scrapes in a gatherer and sends one more.
func tooManyScrapes(t *testing.T, e *env) *httptest.ResponseRecorder {
	started := make(chan struct{}, metricsMaxInFlight)
	release := make(chan struct{})
	cfg := Config{Store: e.store, Broker: pinger(pingOK), Tokenizer: testTokenizer(t), Now: e.clock.Now,
		Metrics: gatherFunc(func() ([]*dto.MetricFamily, error) {
			started <- struct{}{}
			<-release
			return nil, nil
		})}
	h := NewServer(cfg).Handler()
	var wg sync.WaitGroup
	for range metricsMaxInFlight {
		wg.Go(func() {
			h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/metrics", nil))
		})
	}
	for range metricsMaxInFlight {
		<-started
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest("GET", "/metrics", nil))
	close(release)
	wg.Wait()
	return w
}

type gatherFunc func() ([]*dto.MetricFamily, error)

func (f gatherFunc) Gather() ([]*dto.MetricFamily, error) { return f() }

func TestMetricsServesTheGatherer(t *testing.T) {
	reg := prometheus.NewRegistry()
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: "joinin_test_total", Help: "A test counter."})
	reg.MustRegister(c)
	c.Add(3)
	e := newEnv(t, func(cfg *Config) { cfg.Metrics = reg })
	w := e.do(t, request{method: "GET", path: "/metrics", auth: "-"})
	if w.Code != 200 || !strings.Contains(w.Body.String(), "joinin_test_total 3") {
		t.Fatalf("metrics %d:\n%s", w.Code, w.Body.String())
	}
}

func TestReadyTimesOut(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for the readiness timeout")
	}
	e := newEnv(t, func(c *Config) {
		c.Broker = pinger(func(ctx context.Context) error {
			time.Sleep(readyTimeout + time.Second) // a ping that ignores its context
			return nil
		})
	})
	start := time.Now()
	w := e.do(t, request{method: "GET", path: "/readyz", auth: "-"})
	if w.Code != 503 || !strings.Contains(errorOf(t, w).Message, "not ready: broker") {
		t.Fatalf("readyz %d: %s", w.Code, w.Body.String())
	}
	if took := time.Since(start); took > readyTimeout+500*time.Millisecond {
		t.Errorf("readyz took %s, more than its %s timeout", took, readyTimeout)
	}
}

func TestReadyBody(t *testing.T) {
	e := newEnv(t)
	w := e.do(t, request{method: "GET", path: "/readyz", auth: "-"})
	if got, want := strings.TrimSpace(w.Body.String()), `{"status":"ready","checks":{"broker":"ok","store":"ok"}}`; got != want {
		t.Errorf("readyz body %s, want %s", got, want)
	}
	w = e.do(t, request{method: "GET", path: "/healthz", auth: "-"})
	if got, want := strings.TrimSpace(w.Body.String()), `{"status":"ok"}`; got != want {
		t.Errorf("healthz body %s, want %s", got, want)
	}
}

func TestUnknownPathAndMethod(t *testing.T) {
	e := newEnv(t)
	for _, c := range []struct {
		method, path string
		status       int
		allow        string
	}{
		{"GET", "/nothing", 404, ""},
		{"GET", "/v1/cards/tok_x/status/more", 404, ""},
		{"DELETE", "/v1/cards/tok_x", 405, "GET, HEAD"},
		{"GET", "/v1/cards", 405, "POST"},
		{"POST", "/healthz", 405, "GET, HEAD"},
	} {
		w := e.do(t, request{method: c.method, path: c.path})
		if w.Code != c.status {
			t.Errorf("%s %s: %d, want %d", c.method, c.path, w.Code, c.status)
			continue
		}
		errorOf(t, w)
		if got := w.Header().Get("Allow"); got != c.allow {
			t.Errorf("%s %s: Allow %q, want %q", c.method, c.path, got, c.allow)
		}
	}
}

func TestPanicIsAnInternalError(t *testing.T) {
	e := newEnv(t)
	h := e.srv.observe(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { panic("boom") }))
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest("GET", "/x", nil))
	if w.Code != 500 || errorOf(t, w).Message != "internal error" {
		t.Fatalf("panic answered %d %s", w.Code, w.Body.String())
	}
	if !strings.Contains(e.log.String(), "boom") {
		t.Errorf("the panic is not in the log:\n%s", e.log.String())
	}
}

func TestNewServerRefusesMissingParts(t *testing.T) {
	good := Config{Store: newFakeStore(time.Now), Broker: pinger(pingOK), Tokenizer: testTokenizer(t)}
	for name, change := range map[string]func(*Config){
		"store":     func(c *Config) { c.Store = nil },
		"broker":    func(c *Config) { c.Broker = nil },
		"tokenizer": func(c *Config) { c.Tokenizer = nil },
	} {
		cfg := good
		change(&cfg)
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("NewServer without a %s did not panic", name)
				}
			}()
			NewServer(cfg)
		}()
	}
	NewServer(good) // the rest is optional
}

func TestDecimalAmount(t *testing.T) {
	for _, c := range []struct {
		minor int64
		cur   ledger.Currency
		want  string
	}{
		{0, "CNY", "0.00"},
		{5, "CNY", "0.05"},
		{123456, "CNY", "1234.56"},
		{-123456789, "CNY", "-1234567.89"},
		{1234567, "JPY", "1234567"},
	} {
		if got := decimalAmount(c.minor, c.cur); got != c.want {
			t.Errorf("decimalAmount(%d, %s) = %q, want %q", c.minor, c.cur, got, c.want)
		}
	}
}
