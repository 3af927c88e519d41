package http

import (
	"net/http"
	"strings"
	"testing"
	"time"
)

// A bank whose id or name its settlement file cannot carry, or a party whose id or name may be a
// card number in clear, is refused when it registers, by every door that registers one, naming
// the field: registered, the bank would fail its file, and the cycle's close with it, at every
// try, and the number would be logged and filed. Nor is a card number in clear taken in prose
// that is stored and answered (a card's status reason). No answer repeats the number.
func TestPartiesSettlementFilesCannotNameAreRefused(t *testing.T) {
	w := newHostileWorld(t)
	longID := "m-" + strings.Repeat("y", 33) // 35 bytes: events take it, a file's Max34Text does not
	longName := strings.Repeat("杭", 141)     // 423 bytes, 141 characters: Max140Text
	spacedPAN := "6228 4804 0256 4899"       // testPAN as printed on the card
	for _, c := range []struct {
		name, path, body, auth, field string
	}{
		{"bank numbered like a card", "/v1/parties", `{"kind":"bank","id":"` + testPAN + `","name":"Bank"}`, "", "id"},
		{"bank id too long", "/v1/parties", `{"kind":"bank","id":"` + longID + `","name":"Bank"}`, "", "id"},
		{"bank name too long", "/v1/parties", `{"kind":"bank","id":"BANK-9","name":"` + longName + `"}`, "", "name"},
		{"merchant numbered like a card", "/v1/parties", `{"kind":"merchant","id":"` + testPAN + `","name":"Shop"}`, "", "id"},
		{"operator named with a card number", "/v1/parties", `{"kind":"operator","id":"BUS-9","name":"Bus ` + spacedPAN + `"}`, "", "name"},
		{"fund of a city named with a card number", "/v1/parties", `{"kind":"insurance_fund","id":"City ` + testPAN + `","name":"Fund"}`, "", "id"},
		{"merchant api: numbered like a card", "/v1/merchants", `{"id":"` + spacedPAN + `","name":"Shop","mcc":"5912","city":"jiaxing",` +
			`"acquiring_bank":"ICBC-JX","fee_plan":"domestic-standard"}`, "", "id"},
		{"merchant api: card number in the name", "/v1/merchants", `{"id":"shop-10","name":"Shop ` + testPAN + `","mcc":"5912",` +
			`"city":"jiaxing","acquiring_bank":"ICBC-JX","fee_plan":"domestic-standard"}`, "", "name"},
		{"operator api: card number in the name", "/v1/transit/operators", `{"id":"HZBUS","name":"Bus ` + testPAN + `"}`, "", "name"},
	} {
		r := w.do(t, request{method: "POST", path: c.path, body: c.body, auth: c.auth})
		if r.Code != http.StatusBadRequest {
			t.Errorf("%s: %d %s, want 400", c.name, r.Code, r.Body.String())
			continue
		}
		if msg := errorOf(t, r).Message; !strings.HasPrefix(msg, c.field+": ") {
			t.Errorf("%s: %q does not name %s", c.name, msg, c.field)
		}
		if strings.Contains(r.Body.String(), testPAN) || strings.Contains(r.Body.String(), spacedPAN) {
			t.Errorf("%s: the answer repeats the card number: %s", c.name, r.Body.String())
		}
	}
	// Items stand in for an id or a name a file cannot carry: such a merchant registers.
	if r := w.do(t, request{method: "POST", path: "/v1/merchants", body: `{"id":"` + longID + `","name":"` + strings.Repeat("N", 200) + `","mcc":"5912",` +
		`"city":"jiaxing","acquiring_bank":"ICBC-JX","fee_plan":"domestic-standard"}`}); r.Code != http.StatusCreated {
		t.Errorf("merchant with a long id and name: %d %s", r.Code, r.Body.String())
	}
	// A city's Chinese name is its canonical id, which a file carries.
	if r := w.do(t, request{method: "POST", path: "/v1/parties", body: `{"kind":"insurance_fund","id":"嘉兴","name":"Jiaxing fund"}`}); r.Code != http.StatusCreated {
		t.Errorf("fund by the city's Chinese name: %d %s", r.Code, r.Body.String())
	}

	if r := w.do(t, request{method: "POST", path: "/v1/cards", key: keyAt(t, time.Now()), body: registration(nil)}); r.Code != http.StatusCreated {
		t.Fatalf("card: %d %s", r.Code, r.Body.String())
	}
	r := w.do(t, request{method: "POST", path: "/v1/cards/" + cardToken(t) + "/status", key: keyAt(t, time.Now()),
		body: `{"status":"blocked","reason":"card ` + spacedPAN + ` lost"}`})
	if r.Code != http.StatusBadRequest || !strings.HasPrefix(errorOf(t, r).Message, "reason: ") || strings.Contains(r.Body.String(), spacedPAN) {
		t.Errorf("status with a card number in its reason: %d %s, want 400 naming reason", r.Code, r.Body.String())
	}
	if r := w.do(t, request{method: "GET", path: "/v1/cards/" + cardToken(t)}); strings.Contains(r.Body.String(), spacedPAN) {
		t.Errorf("the card answers the number in clear: %s", r.Body.String())
	}
}
