package http

import (
	"context"
	"encoding/csv"
	"fmt"
	"log/slog"
	"net/http"
	"reflect"
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

// TestMedicalAgainstPostgres runs a cardholder's medical year through the API on the real store:
// the card registered over HTTP, funds and two monthly contributions through the consumer's path,
// an institution designated, a quote, a settlement with its replay, a cancellation, a settlement
// reversed the next day, the fund's reconciliation of both days and their CSV detail. pgtest
// verifies the ledger when the test ends.
func TestMedicalAgainstPostgres(t *testing.T) {
	store := pgtest.NewStore(t)
	c := &clock{now: time.Now().Truncate(time.Second)}
	store.Now = c.Now
	policies, err := medical.SamplePolicies()
	if err != nil {
		t.Fatal(err)
	}
	cats := fakeCatalogues(t)
	log := &syncBuffer{}
	e := &env{log: log, clock: c}
	e.srv = NewServer(Config{
		Store: store, Broker: pinger(pingOK), Tokenizer: testTokenizer(t), AdminToken: testAdminToken,
		Metrics: prometheus.NewRegistry(), Now: c.Now,
		Log:      slog.New(slog.NewJSONHandler(log, &slog.HandlerOptions{Level: slog.LevelDebug})),
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

	// The card's funds, and two monthly contributions to its personal account, as Kafka brings
	// them; the second contribution delivered twice is credited once.
	var offset int64
	ingest := func(data events.Data, typ events.Type) clearing.Message {
		t.Helper()
		id, err := uuid.NewV7()
		if err != nil {
			t.Fatal(err)
		}
		raw, err := events.Encode(events.Event{ID: id, Type: typ, OccurredAt: c.Now().UTC().Truncate(time.Millisecond), CardToken: card.Token, Data: data})
		if err != nil {
			t.Fatal(err)
		}
		ev, err := events.Decode(raw)
		if err != nil {
			t.Fatal(err)
		}
		offset++
		return clearing.Message{Source: "card-events/0", Offset: offset, Raw: raw, Event: ev}
	}
	month := events.Period{Year: c.Now().Year(), Month: c.Now().Month()}
	contribution := ingest(&events.MedicalContribution{EmployerID: "acme-jx", Amount: events.Money{Minor: 300_00, Currency: "CNY"}, Period: month}, events.TypeMedicalContribution)
	msgs := []clearing.Message{
		ingest(&events.FundsLoaded{Amount: events.Money{Minor: 5_000_00, Currency: "CNY"}, BankReference: "FT1"}, events.TypeFundsLoaded),
		ingest(&events.MedicalContribution{EmployerID: "acme-jx", Amount: events.Money{Minor: 300_00, Currency: "CNY"}, Period: month}, events.TypeMedicalContribution),
		contribution,
	}
	if _, err := store.Ingest(ctx, nil, msgs); err != nil {
		t.Fatal(err)
	}
	if d, err := store.Ingest(ctx, nil, []clearing.Message{contribution}); err != nil || d.Duplicates != 1 {
		t.Fatalf("redelivered contribution: %+v, %v", d, err)
	}

	w = e.do(t, request{method: "POST", path: "/v1/medical/institutions", body: `{"merchant_id":"jx-first-hospital","kind":"hospital","tier":"3","city":"jiaxing"}`})
	if w.Code != http.StatusCreated {
		t.Fatalf("institution: %d %s", w.Code, w.Body.String())
	}
	var inst institutionView
	decodeStrictly(t, w, &inst)
	key := inst.APIKey

	// Nothing met yet: 1500 of class A at tier 3 meets the 1000 deductible, the fund pays 60% of
	// 500, and the cardholder's 1200 is paid 600 by the personal account and 600 in cash.
	basket := medBasket("", card.Token, "outpatient", "A:1500.00")
	w = e.do(t, medRequest("POST", "/v1/medical/quotes", basket, key))
	var q medicalQuoteView
	decodeStrictly(t, w, &q)
	if w.Code != 200 || q.Split.Fund != "300.00" || q.Split.PersonalAccount != "600.00" || q.Split.Cash != "600.00" {
		t.Fatalf("quote %d %+v", w.Code, q)
	}

	first := e.do(t, medRequest("POST", "/v1/medical/settlements", medBasket("HIS-1", card.Token, "outpatient", "A:1500.00"), key))
	if first.Code != http.StatusCreated {
		t.Fatalf("settle: %d %s", first.Code, first.Body.String())
	}
	var rc medicalReceiptView
	decodeStrictly(t, first, &rc)
	if !reflect.DeepEqual(rc.Split, q.Split) {
		t.Errorf("settled %+v, quoted %+v", rc.Split, q.Split)
	}
	if rc.PersonalAccountBalanceAfter != "0.00" || rc.FundsAvailableAfter != "4400.00" || rc.Transfers.Fund == "" || rc.Transfers.Cash == "" {
		t.Errorf("receipt %+v", rc)
	}
	replay := e.do(t, medRequest("POST", "/v1/medical/settlements", medBasket("HIS-1", card.Token, "outpatient", "A:1500.00"), key))
	if replay.Code != http.StatusOK || replay.Body.String() != first.Body.String() {
		t.Errorf("replay: %d\n%s\nfirst\n%s", replay.Code, replay.Body.String(), first.Body.String())
	}
	if got := e.do(t, medRequest("GET", "/v1/medical/settlements/HIS-1", "", key)); got.Body.String() != first.Body.String() {
		t.Errorf("get: %s", got.Body.String())
	}
	if w := e.do(t, medRequest("POST", "/v1/medical/settlements", medBasket("HIS-2", card.Token, "outpatient", "C:9000.00"), key)); w.Code != http.StatusConflict ||
		!strings.HasPrefix(errorOf(t, w).Message, "insufficient_funds") {
		t.Errorf("a cash part the funds cannot pay: %d %s", w.Code, w.Body.String())
	}

	// A second settlement, cancelled the same day: it counts nowhere.
	if w := e.do(t, medRequest("POST", "/v1/medical/settlements", medBasket("HIS-2", card.Token, "outpatient", "A:200.00"), key)); w.Code != http.StatusCreated {
		t.Fatalf("settle HIS-2: %d %s", w.Code, w.Body.String())
	}
	w = e.do(t, medRequest("POST", "/v1/medical/settlements/HIS-2/cancel", `{"reason":"entered twice"}`, key))
	decodeStrictly(t, w, &rc)
	if w.Code != 200 || rc.Status != "cancelled" {
		t.Fatalf("cancel: %d %s", w.Code, w.Body.String())
	}

	// The next day HIS-1 is reversed: the personal account and the funds get their parts back,
	// and the year's accumulators are as before it.
	day1 := medical.DayOf(c.Now())
	c.Advance(24 * time.Hour)
	day2 := medical.DayOf(c.Now())
	if w := e.do(t, medRequest("POST", "/v1/medical/settlements/HIS-1/cancel", `{"reason":"late"}`, key)); w.Code != http.StatusConflict {
		t.Errorf("cancel the next day: %d %s", w.Code, w.Body.String())
	}
	w = e.do(t, medRequest("POST", "/v1/medical/settlements/HIS-1/reversal", `{"reason":"billing error"}`, key))
	decodeStrictly(t, w, &rc)
	if w.Code != 200 || rc.Status != "reversed" || rc.End.PersonalAccountBalanceAfter != "600.00" || rc.End.FundsAvailableAfter != "5000.00" {
		t.Fatalf("reverse: %d %s", w.Code, w.Body.String())
	}
	w = e.do(t, request{method: "GET", path: fmt.Sprintf("/v1/medical/cards/%s?year=%d", card.Token, day1.Year)})
	var year medicalCardView
	decodeStrictly(t, w, &year)
	for _, l := range append(year.Deductibles, year.FundCaps...) {
		if l.Used != "0.00" {
			t.Errorf("after the reversal %s used %s, want 0.00", l.Name, l.Used)
		}
	}

	// Day 1 holds HIS-1 (one settlement, one cancelled); day 2 its reversal.
	var r1, r2 medicalReconciliationView
	decodeStrictly(t, e.do(t, request{method: "GET", path: "/v1/medical/reconciliation?fund=jiaxing&day=" + day1.String()}), &r1)
	decodeStrictly(t, e.do(t, request{method: "GET", path: "/v1/medical/reconciliation?fund=jiaxing&day=" + day2.String()}), &r2)
	want1 := medicalTotalsView{Settlements: 1, Cancelled: 1, Total: "1500.00", Fund: "300.00", PersonalAccount: "600.00", Cash: "600.00"}
	want2 := medicalTotalsView{Reversals: 1, Total: "-1500.00", Fund: "-300.00", PersonalAccount: "-600.00", Cash: "-600.00"}
	if !r1.Closed || r1.Total != want1 || len(r1.Institutions) != 1 || r1.Institutions[0].Institution != "jx-first-hospital" {
		t.Errorf("day 1 %+v", r1)
	}
	if r2.Closed || r2.Total != want2 {
		t.Errorf("day 2 %+v", r2)
	}
	w = e.do(t, request{method: "GET", path: "/v1/medical/reconciliation/detail?fund=jiaxing&day=" + day2.String()})
	rows, err := csv.NewReader(strings.NewReader(w.Body.String())).ReadAll()
	if err != nil || len(rows) != 2 || rows[1][5] != "reversal" || rows[1][3] != "HIS-1" || rows[1][11] != "-1500.00" {
		t.Errorf("detail of day 2: %v\n%s", err, w.Body.String())
	}

	for _, s := range []string{card.Token, key} {
		if strings.Contains(log.String(), s) {
			t.Errorf("the log holds a card token or an api key")
		}
	}
}
