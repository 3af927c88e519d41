package http

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/joinincard/engine/internal/pgtest"
	"github.com/joinincard/engine/medical"
	"github.com/joinincard/engine/postgres"
	"github.com/joinincard/engine/reconcile"
	"github.com/joinincard/engine/tariffs"
	"github.com/joinincard/engine/transit"
)

// hostileWorld is every feature of the API on the real store, with a merchant, a transit
// operator and a medical institution registered, and their keys.
type hostileWorld struct {
	*env
	merchantKey, operatorKey, institutionKey, bankKey string
	// financeCookie and financeCSRF are a session of the finance page and its form token.
	financeCookie, financeCSRF string
}

func newHostileWorld(t *testing.T) *hostileWorld {
	t.Helper()
	store := pgtest.NewStore(t)
	p, err := postgres.NewPurchases(store)
	if err != nil {
		t.Fatal(err)
	}
	runUntilCleanup(t, p.Run)
	policies, err := medical.SamplePolicies()
	if err != nil {
		t.Fatal(err)
	}
	set, err := postgres.NewSettlement(store, testCycles(t))
	if err != nil {
		t.Fatal(err)
	}
	rules, err := reconcile.DefaultRules()
	if err != nil {
		t.Fatal(err)
	}
	files, err := tariffs.BuiltIn()
	if err != nil {
		t.Fatal(err)
	}
	tr, err := store.LoadTariffs(context.Background(), files)
	if err != nil {
		t.Fatal(err)
	}
	xfers := postgres.NewTransfers(store)
	runUntilCleanup(t, xfers.Run)
	log := &syncBuffer{}
	e := &env{log: log}
	e.srv = NewServer(Config{Store: store, Broker: pinger(pingOK), Tokenizer: testTokenizer(t), AdminToken: testAdminToken,
		Metrics: prometheus.NewRegistry(), Log: slog.New(slog.NewJSONHandler(log, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Features: []Feature{NewPurchases(p), NewTransitLive(store, tr.Fares), NewTariffs(tr), NewMedical(postgres.NewMedical(store, policies)),
			NewAccounts(store), NewSettlement(set, store), NewFinance(NewPostgresFinance(store, set, postgres.NewReconciler(store, rules))),
			NewReconciliation(postgres.NewReconciler(store, rules)), NewTransfers(xfers)}})
	e.h = e.srv.Handler()
	w := &hostileWorld{env: e}
	for _, body := range []string{
		`{"kind":"bank","id":"ICBC-JX","name":"ICBC Jiaxing"}`,
		`{"kind":"insurance_fund","id":"jiaxing","name":"Jiaxing fund"}`,
		`{"kind":"merchant","id":"jx-first-hospital","name":"Jiaxing First Hospital"}`,
	} {
		if r := e.do(t, request{method: "POST", path: "/v1/parties", body: body}); r.Code != http.StatusCreated {
			t.Fatalf("party %s: %d %s", body, r.Code, r.Body.String())
		}
	}
	keyOf := func(rq request, field string) string {
		t.Helper()
		r := e.do(t, rq)
		var v map[string]any
		decodeJSON(t, r, &v)
		key, _ := v[field].(string)
		if r.Code != http.StatusCreated || key == "" {
			t.Fatalf("%s %s: %d %s", rq.method, rq.path, r.Code, r.Body.String())
		}
		return key
	}
	w.merchantKey = keyOf(request{method: "POST", path: "/v1/merchants", body: `{"id":"pharmacy-1","name":"Pharmacy","mcc":"5912",` +
		`"city":"jiaxing","acquiring_bank":"ICBC-JX","fee_plan":"domestic-standard"}`}, "api_key")
	w.operatorKey = keyOf(request{method: "POST", path: "/v1/transit/operators", body: `{"id":"HZMETRO","name":"Hangzhou Metro"}`}, "api_key")
	w.institutionKey = keyOf(request{method: "POST", path: "/v1/medical/institutions",
		body: `{"merchant_id":"jx-first-hospital","kind":"hospital","tier":"3","city":"jiaxing"}`}, "api_key")
	w.bankKey = keyOf(request{method: "POST", path: "/v1/banks/ICBC-JX/keys"}, "api_key")
	fin := loginAs(t, e, "Hostile Tester")
	w.financeCookie, w.financeCSRF = fin.cookie.Name+"="+fin.cookie.Value, fin.csrf
	return w
}

// authOf is the Authorization a case sends: its party's key, or "" for the admin's token.
func (w *hostileWorld) authOf(c hostileCase) string {
	switch c.auth {
	case "merchant":
		return "Bearer " + w.merchantKey
	case "operator":
		return "Bearer " + w.operatorKey
	case "institution":
		return "Bearer " + w.institutionKey
	case "bank":
		return "Bearer " + w.bankKey
	}
	return ""
}

// hostileCase is a request with one hostile value in one place: "{X}" in its path or body stands
// for it. field is what the answer must name.
type hostileCase struct {
	route, field       string
	method, path, body string
	auth               string // "admin", "merchant", "operator", "institution", "bank"
	key                string // the Idempotency-Key, "" for none, "new" for a fresh UUIDv7
	csv                bool
	// contentType, when set, is the body's Content-Type, and the body is not JSON: the hostile
	// value goes into it as the raw bytes it is in a path or a header.
	contentType string
	// page is a request to a finance page with the session of the world's login; its body, if
	// any, is a form, where the hostile value is percent-encoded as in a URL and {CSRF} stands
	// for the session's form token. A page answers an HTML page that shows the error.
	page bool
}

// TestHostileBytesAreRefusedByName sends a NUL byte and invalid UTF-8 in every free-text field,
// path segment, query parameter and key header of the API, and of the finance page's addresses
// and forms, on the real store: every one is answered 400 naming the field, never 500, and the
// value is never repeated. PostgreSQL refuses
// both in text, so any that got through to a query would fail its transaction (and, in the
// purchase committer, every other merchant's request in it).
func TestHostileBytesAreRefusedByName(t *testing.T) {
	w := newHostileWorld(t)
	const authID = "/v1/authorizations/0195a3c2-5e00-7a41-8b3e-2f7d9c1e4a11"
	basket := func(card, visit, code, unitPrice string) string {
		return `{"card_token":"` + card + `","visit_kind":"` + visit + `","items":[{"code":"` + code + `","quantity":1,"unit_price":"` + unitPrice + `"}]}`
	}
	settle := func(ref, card, visit, code, unitPrice string) string {
		return `{"settlement_id":"` + ref + `",` + strings.TrimPrefix(basket(card, visit, code, unitPrice), "{")
	}
	registration := func(field string) string {
		return registration(func(m map[string]string) { m[field] = "a{X}b" })
	}
	fareFile := shippedFile(t, tariffs.Fares, "SHMETRO.json")
	tap := `{"taps":[{"device_id":"G-1","device_seq":1,"card_token":"tok_card","tapped_at":"2026-03-02T08:00:00+08:00",` +
		`"station_id":"0116","direction":"in","mode":"metro"}]}`
	cases := []hostileCase{
		{route: "POST /v1/parties", field: "kind", method: "POST", path: "/v1/parties", body: `{"kind":"a{X}","id":"x","name":"y"}`},
		{route: "POST /v1/parties", field: "id", method: "POST", path: "/v1/parties", body: `{"kind":"bank","id":"a{X}","name":"y"}`},
		{route: "POST /v1/parties", field: "id", method: "POST", path: "/v1/parties", body: `{"kind":"insurance_fund","id":"a{X}","name":"y"}`},
		{route: "POST /v1/parties", field: "name", method: "POST", path: "/v1/parties", body: `{"kind":"bank","id":"x","name":"a{X}"}`},
		{route: "POST /v1/parties", field: "settlement_bank", method: "POST", path: "/v1/parties",
			body: `{"kind":"merchant","id":"x","name":"y","settlement_bank":"ICBC{X}"}`},
		{route: "PUT /v1/parties/{kind}/{id}/settlement-bank", field: "kind", method: "PUT", path: "/v1/parties/merch{X}ant/x/settlement-bank",
			body: `{"bank":"ICBC-JX"}`},
		{route: "PUT /v1/parties/{kind}/{id}/settlement-bank", field: "id", method: "PUT", path: "/v1/parties/merchant/x{X}/settlement-bank",
			body: `{"bank":"ICBC-JX"}`},
		{route: "PUT /v1/parties/{kind}/{id}/settlement-bank", field: "id", method: "PUT", path: "/v1/parties/insurance_fund/jia{X}xing/settlement-bank",
			body: `{"bank":"ICBC-JX"}`},
		{route: "PUT /v1/parties/{kind}/{id}/settlement-bank", field: "bank", method: "PUT", path: "/v1/parties/merchant/jx-first-hospital/settlement-bank",
			body: `{"bank":"IC{X}BC"}`},
		{route: "GET /v1/cards/{token}", field: "token", method: "GET", path: "/v1/cards/tok{X}"},
		{route: "POST /v1/cards/{token}/status", field: "token", method: "POST", path: "/v1/cards/tok{X}/status", key: "new",
			body: `{"status":"blocked","reason":"lost"}`},
		{route: "POST /v1/cards/{token}/status", field: "status", method: "POST", path: "/v1/cards/tok_card/status", key: "new",
			body: `{"status":"bl{X}ocked","reason":"lost"}`},
		{route: "POST /v1/cards/{token}/status", field: "reason", method: "POST", path: "/v1/cards/tok_card/status", key: "new",
			body: `{"status":"blocked","reason":"lo{X}st"}`},
		{route: "POST /v1/cards/{token}/status", field: "idempotency-key", method: "POST", path: "/v1/cards/tok_card/status",
			key: "0195a3c2-5e00-7a41-8b3e-{X}", body: `{"status":"blocked","reason":"lost"}`},
		{route: "GET /v1/accounts/{id}", field: "id", method: "GET", path: "/v1/accounts/{X}"},
		{route: "GET /v1/accounts/{id}", field: "at", method: "GET", path: "/v1/accounts/0195a3c2-5e00-7a41-8b3e-2f7d9c1e4a11?at=2026{X}"},
		{route: "GET /v1/accounts/{id}/statement", field: "id", method: "GET", path: "/v1/accounts/{X}/statement"},
		{route: "GET /v1/accounts/{id}/statement", field: "from", method: "GET", path: "/v1/accounts/0195a3c2-5e00-7a41-8b3e-2f7d9c1e4a11/statement?from={X}"},
		{route: "GET /v1/accounts/{id}/statement", field: "to", method: "GET", path: "/v1/accounts/0195a3c2-5e00-7a41-8b3e-2f7d9c1e4a11/statement?to={X}"},
		{route: "GET /v1/accounts/{id}/statement", field: "limit", method: "GET", path: "/v1/accounts/0195a3c2-5e00-7a41-8b3e-2f7d9c1e4a11/statement?limit=1{X}"},

		{route: "POST /v1/merchants", field: "id", method: "POST", path: "/v1/merchants",
			body: `{"id":"a{X}","name":"n","mcc":"5912","city":"c","acquiring_bank":"ICBC-JX","fee_plan":"domestic-standard"}`},
		{route: "POST /v1/merchants", field: "name", method: "POST", path: "/v1/merchants",
			body: `{"id":"m-2","name":"a{X}","mcc":"5912","city":"c","acquiring_bank":"ICBC-JX","fee_plan":"domestic-standard"}`},
		{route: "POST /v1/merchants", field: "mcc", method: "POST", path: "/v1/merchants",
			body: `{"id":"m-2","name":"n","mcc":"59{X}","city":"c","acquiring_bank":"ICBC-JX","fee_plan":"domestic-standard"}`},
		{route: "POST /v1/merchants", field: "city", method: "POST", path: "/v1/merchants",
			body: `{"id":"m-2","name":"n","mcc":"5912","city":"a{X}","acquiring_bank":"ICBC-JX","fee_plan":"domestic-standard"}`},
		{route: "POST /v1/merchants", field: "acquiring_bank", method: "POST", path: "/v1/merchants",
			body: `{"id":"m-2","name":"n","mcc":"5912","city":"c","acquiring_bank":"a{X}","fee_plan":"domestic-standard"}`},
		{route: "POST /v1/merchants", field: "fee_plan", method: "POST", path: "/v1/merchants",
			body: `{"id":"m-2","name":"n","mcc":"5912","city":"c","acquiring_bank":"ICBC-JX","fee_plan":"a{X}"}`},
		{route: "POST /v1/merchants/{id}/key", field: "id", method: "POST", path: "/v1/merchants/pharmacy{X}/key"},
		{route: "POST /v1/cards/{token}/limits", field: "token", method: "POST", path: "/v1/cards/tok{X}/limits",
			body: `{"per_transaction":"50.00","per_day":"500.00"}`},
		{route: "POST /v1/cards/{token}/limits", field: "per_day", method: "POST", path: "/v1/cards/tok_card/limits",
			body: `{"per_transaction":"50.00","per_day":"5{X}"}`},
		{route: "GET /v1/cards/{token}/savings", field: "token", method: "GET", path: "/v1/cards/tok{X}/savings"},
		{route: "POST /v1/authorizations", field: "card_token", method: "POST", path: "/v1/authorizations", auth: "merchant", key: "new",
			body: `{"card_token":"tok{X}x","amount":"10.00","currency":"CNY"}`},
		{route: "POST /v1/authorizations", field: "amount", method: "POST", path: "/v1/authorizations", auth: "merchant", key: "new",
			body: `{"card_token":"tok_card","amount":"10{X}","currency":"CNY"}`},
		{route: "POST /v1/authorizations", field: "currency", method: "POST", path: "/v1/authorizations", auth: "merchant", key: "new",
			body: `{"card_token":"tok_card","amount":"10.00","currency":"CN{X}"}`},
		{route: "POST /v1/authorizations", field: "merchant_id", method: "POST", path: "/v1/authorizations", auth: "merchant", key: "new",
			body: `{"card_token":"tok_card","amount":"10.00","currency":"CNY","merchant_id":"ph{X}"}`},
		{route: "POST /v1/authorizations", field: "idempotency-key", method: "POST", path: "/v1/authorizations", auth: "merchant",
			key: "{X}", body: `{"card_token":"tok_card","amount":"10.00","currency":"CNY"}`},
		{route: "GET /v1/authorizations", field: "before", method: "GET", path: "/v1/authorizations?before={X}", auth: "merchant"},
		{route: "GET /v1/authorizations", field: "limit", method: "GET", path: "/v1/authorizations?limit={X}", auth: "merchant"},
		{route: "GET /v1/authorizations/{id}", field: "id", method: "GET", path: "/v1/authorizations/{X}", auth: "merchant"},
		{route: "POST /v1/authorizations/{id}/increments", field: "id", method: "POST", path: "/v1/authorizations/{X}/increments",
			auth: "merchant", key: "new", body: `{"amount":"1.00"}`},
		{route: "POST /v1/authorizations/{id}/increments", field: "amount", method: "POST", path: authID + "/increments",
			auth: "merchant", key: "new", body: `{"amount":"1{X}"}`},
		{route: "POST /v1/authorizations/{id}/capture", field: "id", method: "POST", path: "/v1/authorizations/{X}/capture",
			auth: "merchant", key: "new", body: `{}`},
		{route: "POST /v1/authorizations/{id}/capture", field: "amount", method: "POST", path: authID + "/capture",
			auth: "merchant", key: "new", body: `{"amount":"1{X}"}`},
		{route: "POST /v1/authorizations/{id}/void", field: "id", method: "POST", path: "/v1/authorizations/{X}/void",
			auth: "merchant", key: "new"},
		{route: "POST /v1/authorizations/{id}/void", field: "unknown field", method: "POST", path: authID + "/void",
			auth: "merchant", key: "new", body: `{"reason":"a{X}"}`},
		{route: "POST /v1/authorizations/{id}/refunds", field: "id", method: "POST", path: "/v1/authorizations/{X}/refunds",
			auth: "merchant", key: "new", body: `{"amount":"1.00"}`},
		{route: "POST /v1/authorizations/{id}/refunds", field: "amount", method: "POST", path: authID + "/refunds",
			auth: "merchant", key: "new", body: `{"amount":"1{X}"}`},

		{route: "POST /v1/transit/operators", field: "id", method: "POST", path: "/v1/transit/operators", body: `{"id":"HZ{X}","name":"n"}`},
		{route: "POST /v1/transit/operators", field: "name", method: "POST", path: "/v1/transit/operators", body: `{"id":"HZBUS","name":"a{X}"}`},
		{route: "POST /v1/transit/batches", field: "idempotency-key", method: "POST", path: "/v1/transit/batches", auth: "operator",
			key: "b{X}", body: tap},
		{route: "POST /v1/transit/batches", field: "unknown field", method: "POST", path: "/v1/transit/batches", auth: "operator",
			key: "b-1", body: `{"ta{X}ps":[]}`},
		{route: "POST /v1/transit/batches", field: "csv", method: "POST", path: "/v1/transit/batches", auth: "operator", key: "b-2", csv: true,
			body: "device_id,device_seq,card_token,tapped_at,station_id,direction,mode,c{X}\n"},
		{route: "GET /v1/transit/batches/{id}", field: "id", method: "GET", path: "/v1/transit/batches/b{X}", auth: "operator"},
		{route: "GET /v1/transit/deny-list", field: "after", method: "GET", path: "/v1/transit/deny-list?after=tok{X}", auth: "operator"},
		{route: "GET /v1/transit/deny-list", field: "limit", method: "GET", path: "/v1/transit/deny-list?limit={X}", auth: "operator"},
		{route: "GET /v1/transit/deny-list/{token}", field: "token", method: "GET", path: "/v1/transit/deny-list/tok{X}", auth: "operator"},
		{route: "GET /v1/transit/cards/{token}/trips", field: "token", method: "GET", path: "/v1/transit/cards/tok{X}/trips"},
		{route: "PUT /v1/transit/cards/{token}/concession", field: "token", method: "PUT", path: "/v1/transit/cards/tok{X}/concession",
			body: `{"class":"senior","set_by":"Wang Li"}`},
		{route: "PUT /v1/transit/cards/{token}/concession", field: "class", method: "PUT", path: "/v1/transit/cards/tok_card/concession",
			body: `{"class":"sen{X}ior","set_by":"Wang Li"}`},
		{route: "PUT /v1/transit/cards/{token}/concession", field: "set_by", method: "PUT", path: "/v1/transit/cards/tok_card/concession",
			body: `{"class":"senior","set_by":"Wang{X} Li"}`},
		{route: "POST /v1/tariffs/{kind}", field: "kind", method: "POST", path: "/v1/tariffs/fa{X}res?effective_from=2026-03-01&uploaded_by=x",
			body: fareFile},
		{route: "POST /v1/tariffs/{kind}", field: "effective_from", method: "POST", path: "/v1/tariffs/fares?effective_from=2026{X}&uploaded_by=x",
			body: fareFile},
		{route: "POST /v1/tariffs/{kind}", field: "uploaded_by", method: "POST", path: "/v1/tariffs/fares?effective_from=2026-03-01&uploaded_by=W{X}",
			body: fareFile},
		{route: "POST /v1/tariffs/{kind}", field: "reprice", method: "POST",
			path: "/v1/tariffs/fares?effective_from=2026-03-01&uploaded_by=x&reprice=t{X}", body: fareFile},
		{route: "POST /v1/tariffs/{kind}", field: "name", method: "POST", path: "/v1/tariffs/fares?effective_from=2026-03-01&uploaded_by=x",
			body: strings.Replace(fareFile, `"name": "Shanghai Metro"`, `"name": "Shanghai{X} Metro"`, 1)},
		{route: "POST /v1/tariffs/{kind}", field: "lines[0].stations[2].name", method: "POST",
			path: "/v1/tariffs/fares?effective_from=2026-03-01&uploaded_by=x", body: strings.Replace(fareFile, `"Lianhua Road"`, `"Lianhua{X} Road"`, 1)},
		{route: "POST /v1/tariffs/{kind}", field: "description", method: "POST", path: "/v1/tariffs/fee-plans?effective_from=2026-03-01&uploaded_by=x",
			body: shippedFile(t, tariffs.FeePlans, "domestic-standard.json", `"description": "The`, `"description": "{X}The`)},
		{route: "POST /v1/tariffs/{kind}", field: "name", method: "POST", path: "/v1/tariffs/medical-policies?effective_from=2026-03-01&uploaded_by=x",
			body: shippedFile(t, tariffs.MedicalPolicies, "shanghai-2026.json", `"name": "Shanghai`, `"name": "{X}Shanghai`)},
		{route: "GET /v1/tariffs/{kind}", field: "kind", method: "GET", path: "/v1/tariffs/fee{X}plans"},
		{route: "GET /v1/tariffs/{kind}", field: "id", method: "GET", path: "/v1/tariffs/fares?id=SH{X}"},
		{route: "GET /v1/transit/cards/{token}/trips", field: "from", method: "GET", path: "/v1/transit/cards/tok_card/trips?from={X}"},
		{route: "GET /v1/transit/cards/{token}/trips", field: "to", method: "GET", path: "/v1/transit/cards/tok_card/trips?to={X}"},

		{route: "POST /v1/medical/institutions", field: "merchant_id", method: "POST", path: "/v1/medical/institutions",
			body: `{"merchant_id":"a{X}","kind":"hospital","tier":"3","city":"jiaxing"}`},
		{route: "POST /v1/medical/institutions", field: "kind", method: "POST", path: "/v1/medical/institutions",
			body: `{"merchant_id":"jx-first-hospital","kind":"a{X}","tier":"3","city":"jiaxing"}`},
		{route: "POST /v1/medical/institutions", field: "tier", method: "POST", path: "/v1/medical/institutions",
			body: `{"merchant_id":"jx-first-hospital","kind":"hospital","tier":"{X}","city":"jiaxing"}`},
		{route: "POST /v1/medical/institutions", field: "city", method: "POST", path: "/v1/medical/institutions",
			body: `{"merchant_id":"jx-first-hospital","kind":"hospital","tier":"3","city":"a{X}"}`},
		{route: "POST /v1/medical/institutions/{merchant_id}/keys", field: "merchant_id", method: "POST", path: "/v1/medical/institutions/jx{X}/keys"},
		{route: "POST /v1/medical/quotes", field: "card_token", method: "POST", path: "/v1/medical/quotes", auth: "institution",
			body: basket("tok{X}", "outpatient", "X1", "1.00")},
		{route: "POST /v1/medical/quotes", field: "visit_kind", method: "POST", path: "/v1/medical/quotes", auth: "institution",
			body: basket("tok_card", "out{X}", "X1", "1.00")},
		{route: "POST /v1/medical/quotes", field: "items[0].code", method: "POST", path: "/v1/medical/quotes", auth: "institution",
			body: basket("tok_card", "outpatient", "X{X}", "1.00")},
		{route: "POST /v1/medical/quotes", field: "items[0].unit_price", method: "POST", path: "/v1/medical/quotes", auth: "institution",
			body: basket("tok_card", "outpatient", "X1", "1{X}")},
		{route: "POST /v1/medical/settlements", field: "settlement_id", method: "POST", path: "/v1/medical/settlements", auth: "institution",
			body: settle("S{X}", "tok_card", "outpatient", "X1", "1.00")},
		{route: "POST /v1/medical/settlements", field: "card_token", method: "POST", path: "/v1/medical/settlements", auth: "institution",
			body: settle("S-1", "tok{X}", "outpatient", "X1", "1.00")},
		{route: "POST /v1/medical/settlements", field: "items[0].unit_price", method: "POST", path: "/v1/medical/settlements", auth: "institution",
			body: settle("S-1", "tok_card", "outpatient", "X1", "{X}")},
		{route: "POST /v1/medical/settlements", field: "stay_id", method: "POST", path: "/v1/medical/settlements", auth: "institution",
			body: strings.TrimSuffix(settle("S-1", "tok_card", "inpatient", "X1", "1.00"), "}") + `,"stay_id":"ADM{X}1","stay_bill":"interim"}`},
		{route: "GET /v1/medical/settlements/{settlement_id}", field: "settlement_id", method: "GET", path: "/v1/medical/settlements/S{X}", auth: "institution"},
		{route: "POST /v1/medical/settlements/{settlement_id}/cancel", field: "settlement_id", method: "POST",
			path: "/v1/medical/settlements/S{X}/cancel", auth: "institution", body: `{"reason":"twice"}`},
		{route: "POST /v1/medical/settlements/{settlement_id}/cancel", field: "reason", method: "POST",
			path: "/v1/medical/settlements/S-1/cancel", auth: "institution", body: `{"reason":"tw{X}ice"}`},
		{route: "POST /v1/medical/settlements/{settlement_id}/reversal", field: "settlement_id", method: "POST",
			path: "/v1/medical/settlements/S{X}/reversal", auth: "institution", body: `{"reason":"twice"}`},
		{route: "POST /v1/medical/settlements/{settlement_id}/reversal", field: "reason", method: "POST",
			path: "/v1/medical/settlements/S-1/reversal", auth: "institution", body: `{"reason":"tw{X}ice"}`},
		{route: "POST /v1/medical/settlements/{settlement_id}/refunds", field: "settlement_id", method: "POST",
			path: "/v1/medical/settlements/S{X}/refunds", auth: "institution", body: `{"refund_id":"R-1","amount":"1.00","reason":"twice"}`},
		{route: "POST /v1/medical/settlements/{settlement_id}/refunds", field: "refund_id", method: "POST",
			path: "/v1/medical/settlements/S-1/refunds", auth: "institution", body: `{"refund_id":"R{X}1","amount":"1.00","reason":"twice"}`},
		{route: "POST /v1/medical/settlements/{settlement_id}/refunds", field: "reason", method: "POST",
			path: "/v1/medical/settlements/S-1/refunds", auth: "institution", body: `{"refund_id":"R-1","amount":"1.00","reason":"tw{X}ice"}`},
		{route: "POST /v1/medical/settlements/{settlement_id}/refunds", field: "amount", method: "POST",
			path: "/v1/medical/settlements/S-1/refunds", auth: "institution", body: `{"refund_id":"R-1","amount":"1{X}.00","reason":"twice"}`},
		{route: "GET /v1/medical/reconciliation", field: "fund", method: "GET", path: "/v1/medical/reconciliation?fund=jx{X}&day=2026-03-01"},
		{route: "GET /v1/medical/reconciliation", field: "day", method: "GET", path: "/v1/medical/reconciliation?fund=jiaxing&day={X}"},
		{route: "GET /v1/medical/reconciliation", field: "unknown query parameter", method: "GET",
			path: "/v1/medical/reconciliation?fund=jiaxing&day=2026-03-01&x{X}=1"},
		{route: "GET /v1/medical/reconciliation/detail", field: "fund", method: "GET", path: "/v1/medical/reconciliation/detail?fund=jx{X}&day=2026-03-01"},
		{route: "GET /v1/medical/reconciliation/detail", field: "day", method: "GET", path: "/v1/medical/reconciliation/detail?fund=jiaxing&day={X}"},
		{route: "GET /v1/medical/cards/{token}", field: "token", method: "GET", path: "/v1/medical/cards/tok{X}"},
		{route: "GET /v1/medical/cards/{token}", field: "year", method: "GET", path: "/v1/medical/cards/tok_card?year={X}"},
		{route: "GET /v1/medical/cards/{token}", field: "unknown query parameter", method: "GET", path: "/v1/medical/cards/tok_card?y{X}=1"},
		{route: "POST /v1/medical/cards/{token}/registrations", field: "token", method: "POST", path: "/v1/medical/cards/tok{X}/registrations",
			body: `{"treatment_city":"上海","valid_from":"2026-03-01","registered_by":"Wang Li"}`},
		{route: "POST /v1/medical/cards/{token}/registrations", field: "treatment_city", method: "POST", path: "/v1/medical/cards/tok_card/registrations",
			body: `{"treatment_city":"上{X}海","valid_from":"2026-03-01","registered_by":"Wang Li"}`},
		{route: "POST /v1/medical/cards/{token}/registrations", field: "valid_from", method: "POST", path: "/v1/medical/cards/tok_card/registrations",
			body: `{"treatment_city":"上海","valid_from":"2026{X}","registered_by":"Wang Li"}`},
		{route: "POST /v1/medical/cards/{token}/registrations", field: "registered_by", method: "POST", path: "/v1/medical/cards/tok_card/registrations",
			body: `{"treatment_city":"上海","valid_from":"2026-03-01","registered_by":"Wang{X} Li"}`},
		{route: "GET /v1/medical/cards/{token}/registrations", field: "token", method: "GET", path: "/v1/medical/cards/tok{X}/registrations"},
		{route: "POST /v1/bank/cards/{token}/medical-registrations", field: "token", method: "POST", auth: "bank",
			path: "/v1/bank/cards/tok{X}/medical-registrations", body: `{"treatment_city":"上海","valid_from":"2026-03-01"}`},
		{route: "POST /v1/bank/cards/{token}/medical-registrations", field: "treatment_city", method: "POST", auth: "bank",
			path: "/v1/bank/cards/tok_card/medical-registrations", body: `{"treatment_city":"上{X}海","valid_from":"2026-03-01"}`},

		{route: "POST /v1/settlement/cycles/{date}/close", field: "date", method: "POST", path: "/v1/settlement/cycles/2026-03-0{X}/close"},
		{route: "GET /v1/settlement/cycles", field: "limit", method: "GET", path: "/v1/settlement/cycles?limit=1{X}"},
		{route: "GET /v1/settlement/cycles", field: "unknown query parameter", method: "GET", path: "/v1/settlement/cycles?l{X}=1"},
		{route: "GET /v1/settlement/cycles/{date}", field: "date", method: "GET", path: "/v1/settlement/cycles/{X}"},
		{route: "POST /v1/banks/{bank}/keys", field: "bank", method: "POST", path: "/v1/banks/ICBC{X}/keys"},
		{route: "DELETE /v1/banks/{bank}/keys", field: "bank", method: "DELETE", path: "/v1/banks/ICBC{X}/keys"},
		{route: "GET /v1/bank/cycles/{date}/manifest", field: "date", method: "GET", path: "/v1/bank/cycles/2026{X}/manifest", auth: "bank"},
		{route: "GET /v1/bank/cycles/{date}/files/{format}", field: "date", method: "GET", path: "/v1/bank/cycles/{X}/files/xml", auth: "bank"},
		{route: "GET /v1/bank/cycles/{date}/files/{format}", field: "format", method: "GET", path: "/v1/bank/cycles/2026-03-03/files/x{X}", auth: "bank"},
		{route: "POST /v1/bank/cycles/{date}/acknowledgement", field: "date", method: "POST", path: "/v1/bank/cycles/{X}/acknowledgement", auth: "bank",
			contentType: "application/xml", body: hostileAckXML},
		{route: "POST /v1/bank/cycles/{date}/acknowledgement", field: "line 5", method: "POST", path: "/v1/bank/cycles/2026-03-03/acknowledgement",
			auth: "bank", contentType: "application/xml", body: strings.Replace(hostileAckXML, "<MsgId>ACK-1", "<MsgId>ACK{X}-1", 1)},
		{route: "POST /v1/bank/cycles/{date}/acknowledgement", field: "bank_id", method: "POST", path: "/v1/bank/cycles/2026-03-03/acknowledgement",
			auth: "bank", contentType: "text/csv", body: strings.Replace(hostileAckCSV, ",ICBC-JX,", ",ICBC{X}-JX,", 1)},
	}
	account := `{"accounts":[{"id":"018f2a3b-0000-7000-8000-00000000c001","name":"n","kind":"suspense","currency":"CNY",` +
		`"constraint":"debits_must_not_exceed_credits","limit":"1.00"}]}`
	transfer := `{"transfers":[{"id":"018f2a3b-0000-7000-8000-00000000f001","debit_account_id":"018f2a3b-0000-7000-8000-00000000c001",` +
		`"credit_account_id":"018f2a3b-0000-7000-8000-00000000c002","amount":"1.00","currency":"CNY","ref_id":"018f2a3b-0000-7000-8000-00000000f000",` +
		`"user_data":"018f2a3b-0000-7000-8000-00000000f0aa","flags":["linked"]}]}`
	for _, f := range []string{"id", "name", "kind", "currency", "constraint", "limit"} {
		cases = append(cases, hostileCase{route: "POST /v1/accounts", field: "accounts[0]." + f, method: "POST", path: "/v1/accounts",
			body: strings.Replace(account, `"`+f+`":"`, `"`+f+`":"{X}`, 1)})
	}
	for _, f := range []string{"id", "debit_account_id", "credit_account_id", "amount", "currency", "ref_id", "user_data"} {
		cases = append(cases, hostileCase{route: "POST /v1/transfers", field: "transfers[0]." + f, method: "POST", path: "/v1/transfers",
			body: strings.Replace(transfer, `"`+f+`":"`, `"`+f+`":"{X}`, 1)})
	}
	cases = append(cases, hostileCase{route: "POST /v1/transfers", field: "transfers[0].flags", method: "POST", path: "/v1/transfers",
		body: strings.Replace(transfer, `"linked"`, `"li{X}nked"`, 1)})
	stmtXML := statementBody(t, testStatement("ICBC-JX", "STMT-HOSTILE-1", 1), false)
	stmtCSV := statementBody(t, testStatement("ICBC-JX", "STMT-HOSTILE-1", 1), true)
	const reconBreak = "/v1/reconciliation/breaks/0195a3c2-5e00-7a41-8b3e-2f7d9c1e4a11"
	cases = append(cases, []hostileCase{
		{route: "POST /v1/reconciliation/statements", field: "line 9", method: "POST", path: "/v1/reconciliation/statements",
			contentType: "application/xml", body: strings.Replace(stmtXML, "<Id>STMT-HOSTILE-1", "<Id>STMT{X}-HOSTILE-1", 1)},
		{route: "POST /v1/reconciliation/statements", field: "line 4: entry 2: additional_info", method: "POST", path: "/v1/reconciliation/statements",
			contentType: "text/csv", body: strings.Replace(stmtCSV, "未知来款", "未知{X}来款", 1)},
		{route: "POST /v1/reconciliation/statements", field: "bank_id", method: "POST", path: "/v1/reconciliation/statements",
			contentType: "text/csv", body: strings.Replace(stmtCSV, ",ICBC-JX,", ",ICBC{X}-JX,", 1)},
		{route: "GET /v1/reconciliation/breaks", field: "bank", method: "GET", path: "/v1/reconciliation/breaks?bank=IC{X}BC"},
		{route: "GET /v1/reconciliation/breaks", field: "open", method: "GET", path: "/v1/reconciliation/breaks?open=tr{X}ue"},
		{route: "GET /v1/reconciliation/breaks", field: "cycle", method: "GET", path: "/v1/reconciliation/breaks?cycle=2026-03-0{X}"},
		{route: "GET /v1/reconciliation/breaks", field: "limit", method: "GET", path: "/v1/reconciliation/breaks?limit=1{X}"},
		{route: "GET /v1/reconciliation/breaks", field: "unknown query parameter", method: "GET", path: "/v1/reconciliation/breaks?b{X}=1"},
		{route: "GET /v1/reconciliation/breaks/{id}", field: "id", method: "GET", path: "/v1/reconciliation/breaks/{X}"},
		{route: "POST /v1/reconciliation/breaks/{id}/resolution", field: "id", method: "POST", path: "/v1/reconciliation/breaks/x{X}/resolution",
			body: `{"kind":"note","note":"n","by":"b"}`},
		{route: "POST /v1/reconciliation/breaks/{id}/resolution", field: "kind", method: "POST", path: reconBreak + "/resolution",
			body: `{"kind":"no{X}te","note":"n","by":"b"}`},
		{route: "POST /v1/reconciliation/breaks/{id}/resolution", field: "note", method: "POST", path: reconBreak + "/resolution",
			body: `{"kind":"note","note":"a{X}b","by":"b"}`},
		{route: "POST /v1/reconciliation/breaks/{id}/resolution", field: "by", method: "POST", path: reconBreak + "/resolution",
			body: `{"kind":"note","note":"n","by":"L{X}i"}`},
	}...)
	const breakPath, suggestionPath = "/finance/breaks/0195a3c2-5e00-7a41-8b3e-2f7d9c1e4a11", "/finance/suggestions/0195a3c2-5e00-7a41-8b3e-2f7d9c1e4a11"
	cases = append(cases, []hostileCase{
		{route: "GET /finance/login", field: "unknown query parameter", path: "/finance/login?n{X}=1"},
		{route: "POST /finance/login", field: "name", method: "POST", path: "/finance/login", body: "name=An{X}na&token=t"},
		{route: "POST /finance/login", field: "token", method: "POST", path: "/finance/login", body: "name=Anna&token=t{X}"},
		{route: "POST /finance/logout", field: "csrf", method: "POST", path: "/finance/logout", body: "csrf={X}"},
		{route: "GET /finance/{$}", field: "unknown query parameter", path: "/finance/?a{X}=1"},
		{route: "GET /finance/cycles/{date}", field: "date", path: "/finance/cycles/2026-03-0{X}"},
		{route: "GET /finance/cycles/{date}/report.csv", field: "date", path: "/finance/cycles/{X}/report.csv"},
		{route: "GET /finance/breaks", field: "bank", path: "/finance/breaks?bank=IC{X}BC"},
		{route: "GET /finance/breaks", field: "status", path: "/finance/breaks?status=op{X}en"},
		{route: "GET /finance/breaks/{id}", field: "id", path: "/finance/breaks/{X}"},
		{route: "POST /finance/breaks/{id}/resolve", field: "id", method: "POST", path: "/finance/breaks/{X}/resolve",
			body: "action=note&note=x&csrf={CSRF}"},
		{route: "POST /finance/breaks/{id}/resolve", field: "note", method: "POST", path: breakPath + "/resolve",
			body: "action=note&note=a{X}b&csrf={CSRF}"},
		{route: "POST /finance/breaks/{id}/resolve", field: "action", method: "POST", path: breakPath + "/resolve",
			body: "action=no{X}te&note=x&csrf={CSRF}"},
		{route: "GET /finance/suggestions", field: "bank", path: "/finance/suggestions?bank={X}"},
		{route: "POST /finance/suggestions/{id}", field: "id", method: "POST", path: "/finance/suggestions/{X}", body: "decision=accept&csrf={CSRF}"},
		{route: "POST /finance/suggestions/{id}", field: "decision", method: "POST", path: suggestionPath, body: "decision=acc{X}ept&csrf={CSRF}"},
		{route: "GET /finance/trial-balance", field: "at", path: "/finance/trial-balance?at=2026-03-04T10:00{X}"},
		{route: "GET /finance/trial-balance.csv", field: "at", path: "/finance/trial-balance.csv?at={X}"},
	}...)
	for i := range cases {
		if strings.HasPrefix(cases[i].route, "GET /finance") || strings.HasPrefix(cases[i].route, "POST /finance") {
			cases[i].page = true
			if cases[i].method == "" {
				cases[i].method = "GET"
			}
		}
	}
	for _, field := range []string{"card_number", "passport_number", "social_security_number", "work_permit_number",
		"bank_account_number", "holder_name", "nationality", "permit_valid_until", "insurance_city", "issuer_bank",
		"physical_token", "digital_token"} {
		cases = append(cases, hostileCase{route: "POST /v1/cards", field: field, method: "POST", path: "/v1/cards", key: "new",
			body: registration(field)})
	}

	covered := map[string]bool{}
	for _, c := range cases {
		covered[c.route] = true
	}
	for _, rt := range append(w.srv.Routes(), w.srv.Pages()...) {
		name := rt.Method + " " + rt.Pattern
		if !covered[name] && rt.Pattern != "/healthz" && rt.Pattern != "/readyz" && rt.Pattern != "/metrics" {
			t.Errorf("%s: no hostile case", name)
		}
	}

	// In a path, a query or a header a NUL byte and an invalid byte arrive as they are; in a JSON
	// body a NUL is an escape, and an invalid byte makes the whole body invalid. A lone UTF-16
	// surrogate is an escape only JSON has (encoding/json would read it as U+FFFD): anywhere else
	// it can only be sent as bytes that are not UTF-8, which the invalid byte stands for.
	type hostile struct {
		name, inURL, inHeader, inBody string
		jsonOnly                      bool
	}
	for _, h := range []hostile{{name: "nul", inURL: "%00", inHeader: "\x00", inBody: `\u0000`},
		{name: "invalid utf-8", inURL: "%FF", inHeader: "\xff", inBody: "\xff"},
		{name: "lone high surrogate", inBody: `\ud800`, jsonOnly: true},
		{name: "lone low surrogate", inBody: `\udc00x`, jsonOnly: true},
		{name: "reversed surrogates", inBody: `\ude00\ud83d`, jsonOnly: true}} {
		for _, c := range cases {
			if h.jsonOnly && (c.page || c.contentType != "" || c.csv || !strings.Contains(c.body, "{X}")) {
				continue
			}
			t.Run(h.name+" "+c.route+" "+c.field, func(t *testing.T) {
				field := c.field
				rq := request{method: c.method, path: strings.ReplaceAll(c.path, "{X}", h.inURL),
					body: strings.ReplaceAll(c.body, "{X}", h.inBody)}
				if c.page {
					rq.auth = "-"
					rq.header = map[string]string{"Cookie": w.financeCookie}
					if c.body != "" {
						rq.body = strings.NewReplacer("{X}", h.inURL, "{CSRF}", w.financeCSRF).Replace(c.body)
						rq.header["Content-Type"] = "application/x-www-form-urlencoded"
					}
					r := w.do(t, rq)
					if r.Code != http.StatusBadRequest || r.Header().Get("Content-Type") != "text/html; charset=utf-8" {
						t.Fatalf("%s %q: %d %q %s, want a 400 page", rq.method, rq.path, r.Code, r.Header().Get("Content-Type"), r.Body.String())
					}
					got := pageError(r)
					if !strings.Contains(strings.ToLower(got), field) {
						t.Errorf("%q does not name %s", got, field)
					}
					if strings.ContainsAny(r.Body.String(), "\x00\ufffd") || !utf8.Valid(r.Body.Bytes()) {
						t.Errorf("the page repeats the hostile value: %q", got)
					}
					return
				}
				if c.contentType != "" {
					rq.body = strings.ReplaceAll(c.body, "{X}", h.inHeader)
					rq.header = map[string]string{"Content-Type": c.contentType}
				} else if strings.Contains(c.body, "{X}") && h.inBody == "\xff" {
					field = "not valid utf-8" // the body as a whole
				}
				switch c.key {
				case "":
				case "new":
					rq.key = keyAt(t, time.Now())
				default:
					rq.key = strings.ReplaceAll(c.key, "{X}", h.inHeader)
				}
				rq.auth = w.authOf(c)
				if c.contentType != "" {
					// set above
				} else if c.csv {
					rq.header = map[string]string{"Content-Type": "text/csv"}
				} else if c.auth == "operator" && c.method == "POST" {
					rq.header = map[string]string{"Content-Type": "application/json"}
				}
				r := w.do(t, rq)
				if r.Code != http.StatusBadRequest {
					t.Fatalf("%s %q: %d %s, want 400", rq.method, rq.path, r.Code, r.Body.String())
				}
				got := errorOf(t, r)
				if !strings.Contains(strings.ToLower(got.Message), field) {
					t.Errorf("%q does not name %s", got.Message, field)
				}
				if strings.ContainsAny(got.Message, "\x00\ufffd") || !utf8.ValidString(got.Message) {
					t.Errorf("%q repeats the hostile value", got.Message)
				}
			})
		}
	}
	// A JSON body sent as another type is refused by its Content-Type before it is read: every
	// route that reads a JSON body, with a body it would otherwise take as far as its fields.
	typed := map[string]bool{}
	for _, c := range cases {
		if c.page || c.contentType != "" || c.csv || !strings.Contains(c.body, "{X}") || typed[c.route] {
			continue
		}
		typed[c.route] = true
		for _, ct := range []string{"text/plain", "application/x-www-form-urlencoded", "application/json; charset=latin-1", "json"} {
			rq := request{method: c.method, path: strings.ReplaceAll(c.path, "{X}", ""), body: strings.ReplaceAll(c.body, "{X}", ""),
				header: map[string]string{"Content-Type": ct}}
			if c.key != "" {
				rq.key = keyAt(t, time.Now())
			}
			rq.auth = w.authOf(c)
			r := w.do(t, rq)
			if r.Code != http.StatusBadRequest || !strings.HasPrefix(errorOf(t, r).Message, "content-type:") {
				t.Errorf("%s as %q: %d %s, want 400 naming the content-type", c.route, ct, r.Code, r.Body.String())
			}
		}
	}
	if len(typed) < 25 {
		t.Errorf("the content type was tried on %d routes", len(typed))
	}
	// A tap is answered on its own, so that one broken record does not hold up a reader's
	// upload: a hostile value in any field of a tap rejects that tap as malformed, naming the field.
	for i, field := range []string{"device_id", "card_token", "tapped_at", "station_id", "line", "direction", "mode"} {
		for j, h := range []string{`\u0000`, `\udcff`} {
			b := strings.Replace(tap, `"`+field+`":"`, `"`+field+`":"`+h, 1)
			if field == "line" {
				b = strings.Replace(tap, `"station_id"`, `"line":"`+h+`1","station_id"`, 1)
			}
			r := w.do(t, request{method: "POST", path: "/v1/transit/batches", key: fmt.Sprintf("hostile-%d-%d", i, j), body: b,
				auth: "Bearer " + w.operatorKey})
			var v transitBatchView
			decodeJSON(t, r, &v)
			if r.Code != http.StatusCreated || len(v.Taps) != 1 || v.Taps[0].Reason != string(transit.ReasonMalformed) ||
				!strings.HasPrefix(v.Taps[0].Detail, field+":") {
				t.Errorf("a tap with %s in %s: %d %s", h, field, r.Code, r.Body.String())
			}
		}
	}
	if strings.Contains(w.log.String(), "internal error") {
		t.Errorf("an internal error was logged:\n%s", w.log.String())
	}
	for _, tok := range []string{w.merchantKey, w.operatorKey, w.institutionKey, w.bankKey} {
		if strings.Contains(w.log.String(), tok) {
			t.Error("the log contains an api key")
		}
	}
}

// A bank's acknowledgement, in XML and in CSV, for the hostile cases: well-formed, of a file no
// cycle has.
const (
	hostileAckXML = `<?xml version="1.0" encoding="UTF-8"?>
<Document xmlns="urn:iso:std:iso:20022:tech:xsd:pain.002.001.10">
  <CstmrPmtStsRpt>
    <GrpHdr>
      <MsgId>ACK-1</MsgId>
      <CreDtTm>2026-03-04T08:00:00+08:00</CreDtTm>
      <InitgPty>
        <Id>
          <OrgId>
            <Othr>
              <Id>ICBC-JX</Id>
            </Othr>
          </OrgId>
        </Id>
      </InitgPty>
    </GrpHdr>
    <OrgnlGrpInfAndSts>
      <OrgnlMsgId>JIC-20260303-00000000-000001</OrgnlMsgId>
      <OrgnlMsgNmId>camt.054.001.08</OrgnlMsgNmId>
      <GrpSts>ACCP</GrpSts>
    </OrgnlGrpInfAndSts>
  </CstmrPmtStsRpt>
</Document>
`
	hostileAckCSV = "record,item_id,status,reason_code,reason\n" +
		"H,ACK-1,2026-03-04T08:00:00+08:00,JIC-20260303-00000000-000001,ICBC-JX,ACCP,,\n" +
		"T,0\n"
)
