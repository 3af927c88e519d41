package http

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/joinincard/engine/clearing"
	"github.com/joinincard/engine/events"
	"github.com/joinincard/engine/internal/pgtest"
	"github.com/joinincard/engine/medical"
	"github.com/joinincard/engine/postgres"
)

// TestMedicalRefundsAndStaysAgainstPostgres refunds a bill in two parts and settles an inpatient
// stay through the API on the real store: the parts to the fen, the replay, the refusal past the
// bill, the accumulators back to nothing, the day's reconciliation, and the stay's true-up on its
// final receipt. pgtest verifies the ledger when the test ends.
func TestMedicalRefundsAndStaysAgainstPostgres(t *testing.T) {
	store := pgtest.NewStore(t)
	c := &clock{now: time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)}
	store.Now = c.Now
	policies, err := medical.SamplePolicies()
	if err != nil {
		t.Fatal(err)
	}
	cats := fakeCatalogues(t)
	e := &env{log: &syncBuffer{}, clock: c}
	e.srv = NewServer(Config{
		Store: store, Broker: pinger(pingOK), Tokenizer: testTokenizer(t), AdminToken: testAdminToken,
		Metrics: prometheus.NewRegistry(), Now: c.Now, Log: slog.New(slog.NewJSONHandler(e.log, nil)),
		Features: []Feature{NewMedical(postgres.NewMedical(store, policies).WithCatalogues(func() *medical.Catalogues { return cats }))},
	})
	e.h = e.srv.Handler()
	ctx := context.Background()
	for _, body := range []string{
		`{"kind":"bank","id":"ICBC-JX","name":"ICBC Jiaxing"}`,
		`{"kind":"insurance_fund","id":"jiaxing","name":"Jiaxing medical insurance fund"}`,
		`{"kind":"merchant","id":"jx-first-hospital","name":"Jiaxing First Hospital"}`,
	} {
		if w := e.do(t, request{method: "POST", path: "/v1/parties", body: body}); w.Code != http.StatusCreated {
			t.Fatalf("party %s: %d %s", body, w.Code, w.Body.String())
		}
	}
	w := e.do(t, request{method: "POST", path: "/v1/cards", key: keyAt(t, c.Now()), body: registration(nil)})
	if w.Code != http.StatusCreated {
		t.Fatalf("card: %d %s", w.Code, w.Body.String())
	}
	card := cardOf(t, w)
	var msgs []clearing.Message
	for i, data := range []events.Data{
		&events.FundsLoaded{Amount: events.Money{Minor: 5_000_00, Currency: "CNY"}, BankReference: "FT1"},
		&events.MedicalContribution{EmployerID: "acme-jx", Amount: events.Money{Minor: 600_00, Currency: "CNY"},
			Period: events.Period{Year: 2026, Month: 3}},
	} {
		typ := events.TypeFundsLoaded
		if i == 1 {
			typ = events.TypeMedicalContribution
		}
		raw, err := events.Encode(events.Event{ID: uuid.Must(uuid.NewV7()), Type: typ, OccurredAt: c.Now(), CardToken: card.Token, Data: data})
		if err != nil {
			t.Fatal(err)
		}
		ev, err := events.Decode(raw)
		if err != nil {
			t.Fatal(err)
		}
		msgs = append(msgs, clearing.Message{Source: "card-events/0", Offset: int64(i), Raw: raw, Event: ev})
	}
	if _, err := store.Ingest(ctx, nil, msgs); err != nil {
		t.Fatal(err)
	}
	w = e.do(t, request{method: "POST", path: "/v1/medical/institutions", body: `{"merchant_id":"jx-first-hospital","kind":"hospital","tier":"3","city":"jiaxing"}`})
	var inst institutionView
	decodeStrictly(t, w, &inst)
	key := inst.APIKey

	// A1500 at tier 3: fund 300, personal 600, cash 600. A refund of 500 gives back a third of each.
	if w := e.do(t, medRequest("POST", "/v1/medical/settlements", medBasket("HIS-1", card.Token, "outpatient", "A:1500.00"), key)); w.Code != http.StatusCreated {
		t.Fatalf("settle: %d %s", w.Code, w.Body.String())
	}
	refund := func(id, amount string) *httptest.ResponseRecorder {
		return e.do(t, medRequest("POST", "/v1/medical/settlements/HIS-1/refunds", fmt.Sprintf(`{"refund_id":%q,"amount":%q,"reason":"test not done"}`, id, amount), key))
	}
	first := refund("R-1", "500.00")
	var rr medicalRefundReceiptView
	decodeStrictly(t, first, &rr)
	if first.Code != http.StatusCreated || rr.Refund.Parts != (medicalPartsView{Fund: "100.00", PersonalAccount: "200.00", Cash: "200.00"}) ||
		rr.Settlement.Status != "partially_refunded" || rr.Refund.PersonalAccountBalanceAfter != "200.00" || rr.Refund.FundsAvailableAfter != "4600.00" {
		t.Fatalf("refund: %d %s", first.Code, first.Body.String())
	}
	if again := refund("R-1", "500.00"); again.Code != http.StatusOK || again.Body.String() != first.Body.String() {
		t.Errorf("replay: %d %s", again.Code, again.Body.String())
	}
	if w := refund("R-2", "1000.01"); w.Code != http.StatusConflict {
		t.Errorf("past the bill: %d %s", w.Code, w.Body.String())
	}
	w = refund("R-2", "1000.00")
	decodeStrictly(t, w, &rr)
	if w.Code != http.StatusCreated || rr.Settlement.Status != "refunded" || rr.Settlement.Refunded != "1500.00" || len(rr.Settlement.Refunds) != 2 ||
		rr.Refund.PersonalAccountBalanceAfter != "600.00" || rr.Refund.FundsAvailableAfter != "5000.00" {
		t.Fatalf("the rest: %d %s", w.Code, w.Body.String())
	}
	var year medicalCardView
	decodeStrictly(t, e.do(t, request{method: "GET", path: "/v1/medical/cards/" + card.Token + "?year=2026"}), &year)
	for _, l := range append(year.Deductibles, year.FundCaps...) {
		if l.Used != "0.00" {
			t.Errorf("after the full refund %s used %s", l.Name, l.Used)
		}
	}
	var rec medicalReconciliationView
	decodeStrictly(t, e.do(t, request{method: "GET", path: "/v1/medical/reconciliation?fund=jiaxing&day=2026-03-02"}), &rec)
	if want := (medicalTotalsView{Settlements: 1, Refunds: 2, Total: "0.00", Fund: "0.00", PersonalAccount: "0.00", Cash: "0.00"}); rec.Total != want {
		t.Errorf("reconciliation %+v", rec.Total)
	}

	// A stay of two bills of A1000: each meets the 800 per-admission deductible; the stay once.
	stay := func(ref, bill string) *httptest.ResponseRecorder {
		return e.do(t, medRequest("POST", "/v1/medical/settlements", fmt.Sprintf(
			`{"settlement_id":%q,"card_token":%q,"visit_kind":"inpatient","items":[{"code":"A","quantity":1,"unit_price":"1000.00"}],"stay_id":"ADM-1","stay_bill":%q}`,
			ref, card.Token, bill), key))
	}
	if w := stay("IP-1", "interim"); w.Code != http.StatusCreated {
		t.Fatalf("interim: %d %s", w.Code, w.Body.String())
	}
	w = stay("IP-2", "final")
	var rc medicalReceiptView
	decodeStrictly(t, w, &rc)
	if w.Code != http.StatusCreated || rc.TrueUp == nil || rc.Stay == nil || rc.Stay.Bill != "final" {
		t.Fatalf("final: %d %s", w.Code, w.Body.String())
	}
	u := rc.TrueUp
	if u.Adjustment != (medicalPartsView{Fund: "680.00", PersonalAccount: "0.00", Cash: "-680.00"}) || u.Whole.Fund != "1020.00" ||
		u.Billed.Fund != "340.00" || u.Transfers.Fund == "" || u.Transfers.Cash == "" || u.Transfers.PersonalAccount != "" {
		t.Errorf("true-up %+v", *u)
	}
	if w := stay("IP-3", "interim"); w.Code != http.StatusConflict {
		t.Errorf("a bill after the final one: %d %s", w.Code, w.Body.String())
	}
	// The whole stay refunded through its final bill: every part back, the year as before it.
	w = e.do(t, medRequest("POST", "/v1/medical/settlements/IP-2/refunds", `{"refund_id":"R-1","amount":"2000.00","reason":"wrong card"}`, key))
	decodeStrictly(t, w, &rr)
	if w.Code != http.StatusCreated || rr.Settlement.Status != "refunded" ||
		rr.Refund.Parts != (medicalPartsView{Fund: "1020.00", PersonalAccount: "600.00", Cash: "380.00"}) ||
		rr.Refund.PersonalAccountBalanceAfter != "600.00" || rr.Refund.FundsAvailableAfter != "5000.00" {
		t.Errorf("refund of the stay: %d %s", w.Code, w.Body.String())
	}
}
