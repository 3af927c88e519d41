package http

import (
	"encoding/json"
	"strings"
	"testing"
)

// personalNumbers are one of each kind of personal number a client may put in a free-text field.
var personalNumbers = map[string]string{
	"card number":                           "6228480402564899",
	"passport (letter and 8 digits)":        "E98765432X",
	"passport (two letters and 7 digits)":   "EA1234567",
	"passport (letters among digits)":       "C01X00T47",
	"resident id or social security number": "11010519491231002X",
	"foreign permanent resident id (old)":   "USA310078110101",
	"foreign permanent resident id (new)":   "933100198001011237",
	"work permit number":                    "WP20250001234",
}

// TestRefusalsWithholdPersonalNumbers sends each kind of personal number in each free-text field
// whose refusal names the value, and looks for it in the answer and in the log.
func TestRefusalsWithholdPersonalNumbers(t *testing.T) {
	for kind, n := range personalNumbers {
		e := newEnv(t)
		quoted, _ := json.Marshal(n)
		for _, rq := range []request{
			{method: "POST", path: "/v1/cards", key: keyAt(t, e.clock.Now()), body: registration(func(m map[string]string) { m["insurance_city"] = n })},
			{method: "POST", path: "/v1/cards", key: keyAt(t, e.clock.Now()), body: registration(func(m map[string]string) { m["issuer_bank"] = n })},
			{method: "POST", path: "/v1/parties", body: `{"kind":"merchant","id":"kiosk-9","name":"k","settlement_bank":` + string(quoted) + `}`},
			{method: "PUT", path: "/v1/parties/insurance_fund/" + n + "/settlement-bank", body: `{"bank":"ICBC-JX"}`},
		} {
			e.clock.Advance(1e9)
			w := e.do(t, rq)
			if w.Code < 400 {
				t.Errorf("%s: %s %s: %d, want a refusal", kind, rq.method, rq.path, w.Code)
			}
			if body := strings.ToUpper(w.Body.String()); strings.Contains(body, n) {
				t.Errorf("%s: %s %s answers %s", kind, rq.method, rq.path, w.Body.String())
			}
		}
		if log := strings.ToUpper(e.log.String()); strings.Contains(log, n) {
			t.Errorf("%s: the log holds the number:\n%s", kind, e.log.String())
		}
	}
}

// TestCardTextsRefusePersonalNumbers: a holder's name or a status change's reason holding a
// personal number of any kind is refused, without repeating it, and nothing reaches the store:
// the engine keeps these texts as they are, in the cards table and its status history.
func TestCardTextsRefusePersonalNumbers(t *testing.T) {
	for kind, n := range personalNumbers {
		e := newEnv(t)
		if w := e.do(t, request{method: "POST", path: "/v1/cards", key: keyAt(t, e.clock.Now()), body: registration(nil)}); w.Code >= 300 {
			t.Fatalf("register: %d %s", w.Code, w.Body.String())
		}
		before := len(e.store.ingested)
		for _, rq := range []request{
			{method: "POST", path: "/v1/cards", body: registration(func(m map[string]string) {
				m["card_number"], m["holder_name"] = otherPAN, "Anna Schmidt "+n
			})},
			{method: "POST", path: "/v1/cards/" + cardToken(t) + "/status", body: `{"status":"blocked","reason":"lost with passport ` + n + `"}`},
		} {
			e.clock.Advance(1e9)
			rq.key = keyAt(t, e.clock.Now())
			w := e.do(t, rq)
			if w.Code != 400 || strings.Contains(w.Body.String(), n) {
				t.Errorf("%s: %s %s: %d %s, want a refusal that does not repeat it", kind, rq.method, rq.path, w.Code, w.Body.String())
			}
		}
		if len(e.store.ingested) != before {
			t.Errorf("%s: %d messages reached the store", kind, len(e.store.ingested)-before)
		}
		for _, c := range e.store.cards {
			if strings.Contains(c.HolderName+c.StatusReason, n) {
				t.Errorf("%s: stored card %+v", kind, c)
			}
		}
	}
}

// TestTypedTextsRefusePersonalNumbers: what a person types that the engine keeps and shows as it
// is (a break's note and who resolved it, the name a finance login records, a party's name) is
// refused when it may hold a personal number of any kind, as a card number there is, and the
// refusal does not repeat it.
func TestTypedTextsRefusePersonalNumbers(t *testing.T) {
	for kind, n := range personalNumbers {
		for _, q := range []resolveBreakRequest{
			{Kind: "note", By: "Anna", Note: "the cardholder (passport " + n + ") paid twice"},
			{Kind: "adjustment", By: "Anna " + n, Note: "paid twice"},
		} {
			if _, err := q.check(); err == nil || strings.Contains(err.Error(), n) {
				t.Errorf("%s: resolving with %+v: %v, want a refusal that does not repeat it", kind, q, err)
			}
		}
		e := newEnv(t)
		w := e.do(t, request{method: "POST", path: "/finance/login", auth: "-", body: "name=Anna+" + n + "&token=" + testAdminToken,
			header: map[string]string{"Content-Type": "application/x-www-form-urlencoded"}})
		if w.Code != 400 || strings.Contains(w.Body.String(), n) {
			t.Errorf("%s: finance login: %d %s", kind, w.Code, w.Body.String())
		}
		w = e.do(t, request{method: "POST", path: "/v1/parties", body: `{"kind":"merchant","id":"kiosk-9","name":"Kiosk of ` + n + `"}`})
		if w.Code != 400 || strings.Contains(w.Body.String(), n) {
			t.Errorf("%s: party name: %d %s", kind, w.Code, w.Body.String())
		}
		if strings.Contains(e.log.String(), n) {
			t.Errorf("%s: the log holds the number:\n%s", kind, e.log.String())
		}
	}
	// A name or a note without one is kept.
	if _, err := (resolveBreakRequest{Kind: "note", By: "李娜", Note: "paid on 2025-03-01, ref ICBC-0301-0123"}).check(); err != nil {
		t.Error(err)
	}
}
