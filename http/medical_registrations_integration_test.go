package http

import (
	"context"
	"encoding/csv"
	"log/slog"
	"net/http"
	"strings"
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

// TestMedicalElsewhereAgainstPostgres settles a Jiaxing card's stay at a Shanghai hospital through
// the API on the real store, by the sample catalogues and policies: the hospital designated in
// "上海", the treatment city registered by its Chinese and English names, the bill classified by
// Shanghai's catalogue and split by Jiaxing's policy, the receipt and the fund's reports naming
// both cities.
func TestMedicalElsewhereAgainstPostgres(t *testing.T) {
	store := pgtest.NewStore(t)
	c := &clock{now: time.Now().Truncate(time.Second)}
	store.Now = c.Now
	policies, err := medical.SamplePolicies()
	if err != nil {
		t.Fatal(err)
	}
	log := &syncBuffer{}
	e := &env{log: log, clock: c}
	e.srv = NewServer(Config{
		Store: store, Broker: pinger(pingOK), Tokenizer: testTokenizer(t), AdminToken: testAdminToken,
		Metrics: prometheus.NewRegistry(), Now: c.Now,
		Log:      slog.New(slog.NewJSONHandler(log, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Features: []Feature{NewMedical(postgres.NewMedical(store, policies))},
	})
	e.h = e.srv.Handler()
	for _, body := range []string{
		`{"kind":"bank","id":"ICBC-JX","name":"ICBC Jiaxing"}`,
		`{"kind":"insurance_fund","id":"jiaxing","name":"Jiaxing medical insurance fund"}`,
		`{"kind":"merchant","id":"sh-ruijin","name":"Ruijin Hospital 瑞金医院"}`,
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
	id, err := uuid.NewV7()
	if err != nil {
		t.Fatal(err)
	}
	raw, err := events.Encode(events.Event{ID: id, Type: events.TypeFundsLoaded, OccurredAt: c.Now().UTC().Truncate(time.Millisecond), CardToken: card.Token,
		Data: &events.FundsLoaded{Amount: events.Money{Minor: 5_000_00, Currency: "CNY"}, BankReference: "FT1"}})
	if err != nil {
		t.Fatal(err)
	}
	ev, err := events.Decode(raw)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := store.Ingest(context.Background(), nil, []clearing.Message{{Source: "card-events/0", Offset: 1, Raw: raw, Event: ev}}); err != nil {
		t.Fatal(err)
	}

	w = e.do(t, request{method: "POST", path: "/v1/medical/institutions", body: `{"merchant_id":"sh-ruijin","kind":"hospital","tier":"3","city":"上海"}`})
	var inst institutionView
	decodeStrictly(t, w, &inst)
	if w.Code != http.StatusCreated || inst.City != "shanghai" {
		t.Fatalf("institution: %d %+v", w.Code, inst)
	}

	today := medical.DayOf(c.Now()).String()
	regPath := "/v1/medical/cards/" + card.Token + "/registrations"
	for i, city := range []string{"上海", "Shanghai", "shanghai"} {
		w = e.do(t, request{method: "POST", path: regPath, body: `{"treatment_city":"` + city + `","valid_from":"` + today + `","registered_by":"ICBC Jiaxing"}`})
		want := http.StatusOK
		if i == 0 {
			want = http.StatusCreated
		}
		var reg registrationView
		decodeStrictly(t, w, &reg)
		if w.Code != want || reg.TreatmentCity != "shanghai" || reg.ValidFrom != today || reg.ValidUntil != "" {
			t.Fatalf("registration as %q: %d %+v", city, w.Code, reg)
		}
	}
	var regs registrationListView
	decodeStrictly(t, e.do(t, request{method: "GET", path: regPath}), &regs)
	if len(regs.Registrations) != 1 || regs.Registrations[0].RegisteredBy != "ICBC Jiaxing" {
		t.Fatalf("registrations: %+v", regs)
	}

	// The stay: Shanghai's catalogue takes 200.00 over its ceilings to cash; Jiaxing's policy,
	// registered, pays 85% of 2994.50 above its 800.00 deductible at tier 3: 2545.32 (half-even).
	stay := `{"settlement_id":"RJ-1","card_token":"` + card.Token + `","visit_kind":"inpatient","items":[
		{"code":"001103000010000","quantity":5,"unit_price":"120.00"},
		{"code":"001102000010000","quantity":5,"unit_price":"20.00"},
		{"code":"003107010010000","quantity":1,"unit_price":"2800.00"},
		{"code":"C0203041800000200932","quantity":1,"unit_price":"850.00"},
		{"code":"C1401010010100102600","quantity":10,"unit_price":"0.45"}]}`
	w = e.do(t, medRequest("POST", "/v1/medical/settlements", stay, inst.APIKey))
	if w.Code != http.StatusCreated {
		t.Fatalf("settle: %d %s", w.Code, w.Body.String())
	}
	var rc medicalReceiptView
	decodeStrictly(t, w, &rc)
	sp := rc.Split
	if sp.Total != "4354.50" || sp.Fund != "2545.32" || sp.Cash != "1809.18" || sp.InsuredCity != "jiaxing" || sp.TreatingCity != "shanghai" ||
		sp.Registered == nil || !*sp.Registered || rc.Fund != "jiaxing" || rc.TreatingCity != "shanghai" || rc.Catalogue != "shanghai from 2025-01-01" {
		t.Fatalf("receipt %+v", rc)
	}
	if l := rc.Items[0]; l.NameZH != "床位费（三人间）" || l.Quantity != 5 || l.UnitPrice != "120.00" || l.PriceCeiling != "90.00" ||
		l.Covered != "450.00" || l.Cash != "150.00" || l.CashReason != medical.CashOverCeiling || l.Class != "A" {
		t.Fatalf("the bed's line %+v", l)
	}

	var rec medicalReconciliationView
	decodeStrictly(t, e.do(t, request{method: "GET", path: "/v1/medical/reconciliation?fund=%E5%98%89%E5%85%B4&day=" + today}), &rec)
	if rec.Fund != "jiaxing" || rec.InsuredCity != "jiaxing" || len(rec.Institutions) != 1 || rec.Institutions[0].TreatingCity != "shanghai" ||
		rec.Total.Fund != "2545.32" {
		t.Fatalf("reconciliation %+v", rec)
	}
	w = e.do(t, request{method: "GET", path: "/v1/medical/reconciliation/detail?fund=jiaxing&day=" + today})
	rows, err := csv.NewReader(strings.NewReader(w.Body.String())).ReadAll()
	if err != nil || len(rows) != 2 || strings.Join(rows[1][len(rows[1])-3:], ",") != "jiaxing,shanghai,yes" {
		t.Fatalf("detail: %v\n%s", err, w.Body.String())
	}
}
