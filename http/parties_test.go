package http

import (
	"net/http"
	"strings"
	"testing"

	"github.com/joinincard/engine/clearing"
)

// A party registered with a settlement bank has it recorded, and the bank can be changed later;
// the answers say which bank settles the party.
func TestPartySettlementBankIsSetAndChanged(t *testing.T) {
	e := newEnv(t)
	if w := e.do(t, request{method: "POST", path: "/v1/parties", body: `{"kind":"bank","id":"ABC-JX","name":"ABC Jiaxing"}`}); w.Code != http.StatusCreated {
		t.Fatalf("bank: %d %s", w.Code, w.Body.String())
	}
	w := e.do(t, request{method: "POST", path: "/v1/parties",
		body: `{"kind":"operator","id":"HZMETRO","name":"Hangzhou Metro","settlement_bank":"ICBC-JX"}`})
	if w.Code != http.StatusCreated {
		t.Fatalf("operator: %d %s", w.Code, w.Body.String())
	}
	var p partyView
	decodeStrictly(t, w, &p)
	if p.SettlementBank != "ICBC-JX" || p.AccountID != clearing.PartyAccount(clearing.PartyOperator, "HZMETRO").String() {
		t.Errorf("operator registered as %+v", p)
	}
	if got := e.store.partyBank(clearing.PartyOperator, "HZMETRO"); got != "ICBC-JX" {
		t.Errorf("the store has the operator settled by %q", got)
	}

	w = e.do(t, request{method: "PUT", path: "/v1/parties/operator/HZMETRO/settlement-bank", body: `{"bank":"ABC-JX"}`})
	if w.Code != http.StatusOK {
		t.Fatalf("change: %d %s", w.Code, w.Body.String())
	}
	var v partyBankView
	decodeStrictly(t, w, &v)
	if v != (partyBankView{Kind: "operator", ID: "HZMETRO", AccountID: p.AccountID, SettlementBank: "ABC-JX"}) {
		t.Errorf("changed: %+v", v)
	}
	if got := e.store.partyBank(clearing.PartyOperator, "HZMETRO"); got != "ABC-JX" {
		t.Errorf("the store has the operator settled by %q after the change", got)
	}

	// Registered again without a settlement bank: the bank it has stays.
	if w := e.do(t, request{method: "POST", path: "/v1/parties", body: `{"kind":"operator","id":"HZMETRO","name":"Hangzhou Metro"}`}); w.Code != http.StatusCreated {
		t.Fatalf("again: %d %s", w.Code, w.Body.String())
	}
	if got := e.store.partyBank(clearing.PartyOperator, "HZMETRO"); got != "ABC-JX" {
		t.Errorf("registering again changed the settlement bank to %q", got)
	}
}

// A registration naming a settlement bank that is not registered is refused whole: the party is
// not registered either.
func TestPartyWithAnUnknownSettlementBankIsNotRegistered(t *testing.T) {
	e := newEnv(t)
	w := e.do(t, request{method: "POST", path: "/v1/parties",
		body: `{"kind":"merchant","id":"kiosk-9","name":"West Lake kiosk","settlement_bank":"NOBANK"}`})
	if w.Code != http.StatusBadRequest {
		t.Fatalf("%d %s", w.Code, w.Body.String())
	}
	e.store.mu.Lock()
	_, registered := e.store.parties[clearing.PartyAccount(clearing.PartyMerchant, "kiosk-9")]
	e.store.mu.Unlock()
	if registered || e.store.partyBank(clearing.PartyMerchant, "kiosk-9") != "" {
		t.Error("the refused registration registered the party")
	}
}

// An insurance fund is registered, and its settlement bank set, under its city's canonical id,
// whichever of the city's names the request uses.
func TestInsuranceFundIsRegisteredUnderItsCanonicalCity(t *testing.T) {
	e := newEnv(t)
	w := e.do(t, request{method: "POST", path: "/v1/parties", body: `{"kind":"insurance_fund","id":"嘉兴","name":"Jiaxing fund"}`})
	if w.Code != http.StatusCreated {
		t.Fatalf("fund: %d %s", w.Code, w.Body.String())
	}
	var p partyView
	decodeStrictly(t, w, &p)
	if p.ID != "jiaxing" || p.AccountID != clearing.PartyAccount(clearing.PartyInsuranceFund, "jiaxing").String() {
		t.Fatalf("registered as %+v", p)
	}
	w = e.do(t, request{method: "PUT", path: "/v1/parties/insurance_fund/Jiaxing/settlement-bank", body: `{"bank":"ICBC-JX"}`})
	var b partyBankView
	decodeStrictly(t, w, &b)
	if w.Code != http.StatusOK || b.ID != "jiaxing" || e.store.partyBank(clearing.PartyInsuranceFund, "jiaxing") != "ICBC-JX" {
		t.Fatalf("settlement bank: %d %s", w.Code, w.Body.String())
	}
}

// Registering a party again is answered as the first registration when it says the same, and
// refused with 409, naming the reason, when it names another settlement bank than the one that
// settles the party: money the party is owed never moves to another bank's file because a
// registration was sent again. The bank is changed only deliberately, with PUT .../settlement-bank.
func TestPartyRegisteredAgainWithAnotherSettlementBankIsRefused(t *testing.T) {
	e := newEnv(t)
	if w := e.do(t, request{method: "POST", path: "/v1/parties", body: `{"kind":"bank","id":"ABC-JX","name":"ABC Jiaxing"}`}); w.Code != http.StatusCreated {
		t.Fatalf("bank: %d %s", w.Code, w.Body.String())
	}
	first := `{"kind":"operator","id":"HZMETRO","name":"Hangzhou Metro","settlement_bank":"ICBC-JX"}`
	if w := e.do(t, request{method: "POST", path: "/v1/parties", body: first}); w.Code != http.StatusCreated {
		t.Fatalf("operator: %d %s", w.Code, w.Body.String())
	}
	w := e.do(t, request{method: "POST", path: "/v1/parties", body: first})
	if w.Code != http.StatusCreated {
		t.Fatalf("the same registration again: %d %s", w.Code, w.Body.String())
	}
	var p partyView
	decodeStrictly(t, w, &p)
	if p.SettlementBank != "ICBC-JX" {
		t.Errorf("the same registration again answered %+v", p)
	}

	w = e.do(t, request{method: "POST", path: "/v1/parties",
		body: `{"kind":"operator","id":"HZMETRO","name":"Hangzhou Metro","settlement_bank":"ABC-JX"}`})
	if w.Code != http.StatusConflict {
		t.Fatalf("another settlement bank: %d %s, want 409", w.Code, w.Body.String())
	}
	if got := errorOf(t, w); got.Code != ECONFLICT || got.Reason != "settlement_bank_differs" ||
		!strings.Contains(got.Message, `settled by bank "ICBC-JX"`) || !strings.Contains(got.Message, "/settlement-bank") {
		t.Errorf("another settlement bank: %+v", got)
	}
	if got := e.store.partyBank(clearing.PartyOperator, "HZMETRO"); got != "ICBC-JX" {
		t.Errorf("the refused registration moved the operator to %q", got)
	}

	// A party registered without a bank is given one by a registration that names it: the same
	// request sent again after a failure between the party and its bank completes it.
	if w := e.do(t, request{method: "POST", path: "/v1/parties", body: `{"kind":"merchant","id":"kiosk-9","name":"kiosk"}`}); w.Code != http.StatusCreated {
		t.Fatalf("merchant: %d %s", w.Code, w.Body.String())
	}
	if w := e.do(t, request{method: "POST", path: "/v1/parties",
		body: `{"kind":"merchant","id":"kiosk-9","name":"kiosk","settlement_bank":"ABC-JX"}`}); w.Code != http.StatusCreated {
		t.Fatalf("merchant with a bank: %d %s", w.Code, w.Body.String())
	}
	if got := e.store.partyBank(clearing.PartyMerchant, "kiosk-9"); got != "ABC-JX" {
		t.Errorf("the merchant is settled by %q", got)
	}
}
