package http

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/joinincard/engine/cards"
	"github.com/joinincard/engine/clearing"
	"github.com/joinincard/engine/events"
	"github.com/joinincard/engine/internal/pgtest"
	"github.com/joinincard/engine/postgres"
	"github.com/joinincard/engine/tariffs"
)

// purchaseWorld is the purchase API on the real store, with the real engine committing.
type purchaseWorld struct {
	*env
	store *postgres.Store
}

func newPurchaseWorld(t testing.TB) *purchaseWorld {
	t.Helper()
	store := pgtest.NewStore(t)
	p, err := postgres.NewPurchases(store)
	if err != nil {
		t.Fatal(err)
	}
	runUntilCleanup(t, p.Run)
	log := &syncBuffer{}
	e := &env{log: log}
	e.srv = NewServer(Config{Store: store, Broker: pinger(pingOK), Tokenizer: testTokenizer(t), AdminToken: testAdminToken,
		Log: slog.New(slog.NewJSONHandler(log, &slog.HandlerOptions{Level: slog.LevelDebug})), Features: []Feature{NewPurchases(p)}})
	e.h = e.srv.Handler()
	w := &purchaseWorld{env: e, store: store}
	for _, p := range []struct {
		kind     clearing.PartyKind
		id, name string
	}{{clearing.PartyBank, "ICBC-JX", "ICBC Jiaxing"}, {clearing.PartyInsuranceFund, "jiaxing", "Jiaxing fund"}} {
		if _, err := store.RegisterParty(context.Background(), p.kind, p.id, p.name); err != nil {
			t.Fatal(err)
		}
	}
	return w
}

// fund mirrors amount fen onto the card, as the issuer bank's funds.loaded event does.
func (w *purchaseWorld) fund(t *testing.T, token string, amount int64) {
	t.Helper()
	id, err := uuid.NewV7()
	if err != nil {
		t.Fatal(err)
	}
	raw, err := events.Encode(events.Event{ID: id, Type: events.TypeFundsLoaded, OccurredAt: time.Now().UTC().Truncate(time.Millisecond),
		CardToken: token, Data: &events.FundsLoaded{Amount: events.Money{Minor: amount, Currency: "CNY"}, BankReference: "FT-test"}})
	if err != nil {
		t.Fatal(err)
	}
	e, err := events.Decode(raw)
	if err != nil {
		t.Fatal(err)
	}
	d, err := w.store.Ingest(context.Background(), nil, []clearing.Message{{Source: "test", Offset: time.Now().UnixNano(), Raw: raw, Event: e}})
	if err != nil || len(d.Processed) != 1 || d.Processed[0].Status != clearing.Applied {
		t.Fatalf("funding: %v %+v", err, d)
	}
}

func (w *purchaseWorld) merchant(t testing.TB, body string) string {
	t.Helper()
	r := w.do(t, request{method: "POST", path: "/v1/merchants", body: body})
	if r.Code != http.StatusCreated {
		t.Fatalf("register merchant: %d %s", r.Code, r.Body.String())
	}
	var m merchantView
	decodeJSON(t, r, &m)
	return m.APIKey
}

func TestPurchasesAgainstPostgres(t *testing.T) {
	w := newPurchaseWorld(t)
	if r := w.do(t, request{method: "POST", path: "/v1/cards", key: keyAt(t, time.Now()), body: registration(withPhysical)}); r.Code != http.StatusCreated {
		t.Fatalf("register card: %d %s", r.Code, r.Body.String())
	}
	card := cardToken(t)
	w.fund(t, card, 100000)
	pharmacy := w.merchant(t, `{"id":"pharmacy-1","name":"Jiaxing Pharmacy","mcc":"5912","city":"jiaxing","acquiring_bank":"ICBC-JX","fee_plan":"domestic-standard"}`)
	shop := w.merchant(t, `{"id":"shop-1","name":"Department Store","mcc":"5311","city":"jiaxing","acquiring_bank":"ICBC-JX","fee_plan":"domestic-standard"}`)

	authorize := func(key, apiKey, body string) (int, authorizationView, string) {
		r := w.do(t, request{method: "POST", path: "/v1/authorizations", key: key, auth: "Bearer " + apiKey, body: body})
		var v authorizationView
		if r.Code == http.StatusCreated {
			decodeJSON(t, r, &v)
		}
		return r.Code, v, r.Body.String()
	}
	// Approved through the physical card's token; the hold is on the card at once.
	k1 := keyAt(t, time.Now())
	body := `{"card_token":"` + physicalToken + `","amount":"120.00","currency":"CNY"}`
	code, a, first := authorize(k1, pharmacy, body)
	if code != http.StatusCreated || a.Decision != "approved" || a.Held != "120.00" || a.CardToken != card {
		t.Fatalf("authorize: %d %s", code, first)
	}
	if got := cardOf(t, w.do(t, request{method: "GET", path: "/v1/cards/" + card})).FundsBalance; got.Available != "880.00" {
		t.Errorf("available after the hold %s", got.Available)
	}
	time.Sleep(2 * time.Millisecond)
	if code, _, again := authorize(k1, pharmacy, body); code != http.StatusCreated || again != first {
		t.Errorf("retry answered %d %s, first %s", code, again, first)
	}
	if code, _, msg := authorize(k1, pharmacy, strings.Replace(body, "120.00", "121.00", 1)); code != http.StatusConflict {
		t.Errorf("key reused with another body: %d %s", code, msg)
	}

	op := func(apiKey, path, body string, want int) string {
		t.Helper()
		r := w.do(t, request{method: "POST", path: "/v1/authorizations/" + a.ID + path, key: keyAt(t, time.Now()), auth: "Bearer " + apiKey, body: body})
		if r.Code != want {
			t.Fatalf("%s %s: %d %s", path, body, r.Code, r.Body.String())
		}
		return r.Body.String()
	}
	op(shop, "/capture", `{"amount":"100.00"}`, http.StatusNotFound) // another merchant's
	op(pharmacy, "/capture", `{"amount":"100.00"}`, http.StatusCreated)
	op(pharmacy, "/capture", `{"amount":"1.00"}`, http.StatusConflict)
	op(pharmacy, "/refunds", `{"amount":"30.00"}`, http.StatusCreated)
	op(pharmacy, "/refunds", `{"amount":"30.00"}`, http.StatusCreated)
	if msg := op(pharmacy, "/refunds", `{"amount":"40.01"}`, http.StatusConflict); !strings.Contains(msg, "exceeds the 40.00 CNY captured and not yet refunded") {
		t.Errorf("over-refund: %s", msg)
	}
	r := w.do(t, request{method: "GET", path: "/v1/authorizations/" + a.ID, auth: "Bearer " + pharmacy})
	var got authorizationView
	decodeJSON(t, r, &got)
	if got.Status != "captured" || got.Held != "0.00" || got.Captured != "100.00" || got.Refunded != "60.00" || len(got.Refunds) != 2 ||
		got.Close == nil || got.Close.Released != "20.00" || got.Close.Fee.Total != "0.00" {
		t.Errorf("the authorization now: %s", r.Body.String())
	}
	if r := w.do(t, request{method: "GET", path: "/v1/authorizations/" + a.ID, auth: "Bearer " + shop}); r.Code != http.StatusNotFound {
		t.Errorf("another merchant reads it: %d", r.Code)
	}

	// A purchase at the shop pays the general retail fee; what the card saved adds up.
	code, b, msg := authorize(keyAt(t, time.Now()), shop, `{"card_token":"`+card+`","amount":"300.00","currency":"CNY"}`)
	if code != http.StatusCreated || b.Decision != "approved" {
		t.Fatalf("shop authorize: %d %s", code, msg)
	}
	r = w.do(t, request{method: "POST", path: "/v1/authorizations/" + b.ID + "/capture", key: keyAt(t, time.Now()), auth: "Bearer " + shop, body: `{}`})
	var c purchaseCloseView
	decodeJSON(t, r, &c)
	// 300.00 at 0.35% is 1.05, the network 0.195 is 0.20; a foreign card: 3% of 300.00 and 1.5%.
	if c.Amount != "300.00" || c.Fee != (merchantFeeView{MerchantDiscount: "1.05", Network: "0.20", Total: "1.25"}) ||
		c.ForeignCardCost != (foreignCardCostView{Surcharge: "9.00", FXMargin: "4.50", Total: "13.50"}) {
		t.Errorf("full capture at the shop: %s", r.Body.String())
	}
	r = w.do(t, request{method: "GET", path: "/v1/cards/" + physicalToken + "/savings"})
	var sv cardSavingsView
	decodeJSON(t, r, &sv)
	// 40.00 net at the pharmacy (0.60 of margin) and 300.00 at the shop (13.50).
	if sv.Purchases != 2 || sv.Paid != "340.00" || sv.Saved != "14.10" || sv.CardFees != "0.00" {
		t.Errorf("savings: %s", r.Body.String())
	}

	// Limits and status from the registry.
	if r := w.do(t, request{method: "POST", path: "/v1/cards/" + card + "/limits", body: `{"per_transaction":"50.00","per_day":"500.00"}`}); r.Code != http.StatusOK {
		t.Fatalf("limits: %d %s", r.Code, r.Body.String())
	}
	if _, v, _ := authorize(keyAt(t, time.Now()), pharmacy, `{"card_token":"`+card+`","amount":"50.01","currency":"CNY"}`); v.DeclineReason != "limit_exceeded" {
		t.Errorf("over the per-transaction limit: %+v", v)
	}
	if r := w.do(t, request{method: "POST", path: "/v1/cards/" + card + "/status", key: keyAt(t, time.Now()), body: `{"status":"blocked","reason":"lost"}`}); r.Code != http.StatusOK {
		t.Fatalf("block: %d %s", r.Code, r.Body.String())
	}
	if _, v, _ := authorize(keyAt(t, time.Now()), pharmacy, `{"card_token":"`+card+`","amount":"10.00","currency":"CNY"}`); v.DeclineReason != "card_blocked" {
		t.Errorf("blocked card: %+v", v)
	}
	if code, _, raw := authorize(keyAt(t, time.Now()), pharmacy, `{"card_token":"`+testPAN+`","amount":"10.00","currency":"CNY"}`); code != http.StatusBadRequest || strings.Contains(raw, testPAN) {
		t.Errorf("a card number as the token: %d %s", code, raw)
	}
	if _, v, _ := authorize(keyAt(t, time.Now()), pharmacy, `{"card_token":"tok_nobody","amount":"10.00","currency":"CNY"}`); v.DeclineReason != "unknown_card" {
		t.Errorf("a token of no card: %+v", v)
	}

	r = w.do(t, request{method: "GET", path: "/v1/authorizations?limit=2", auth: "Bearer " + pharmacy})
	var list authorizationListView
	decodeJSON(t, r, &list)
	if len(list.Authorizations) != 2 || list.NextBefore == "" {
		t.Fatalf("first page: %s", r.Body.String())
	}
	r = w.do(t, request{method: "GET", path: "/v1/authorizations?before=" + list.NextBefore, auth: "Bearer " + pharmacy})
	var rest authorizationListView
	decodeJSON(t, r, &rest)
	if len(rest.Authorizations) != 2 || rest.Authorizations[len(rest.Authorizations)-1].ID != a.ID {
		t.Errorf("second page: %s", r.Body.String())
	}
	for _, leak := range []string{testPAN, pharmacy, shop} {
		if strings.Contains(w.log.String(), leak) {
			t.Errorf("the log contains a card number or an api key")
		}
	}
}

// A fee plan version uploaded over HTTP to take effect on a purchase's date re-prices it once the
// admin asks to (reprice=true): refused without, naming the field; accepted with, and the
// merchant then reads the adjustment and what it paid in the end on the authorization.
func TestFeePlanRepricedOverHTTP(t *testing.T) {
	ctx := context.Background()
	w := newPurchaseWorld(t)
	files, err := tariffs.BuiltIn()
	if err != nil {
		t.Fatal(err)
	}
	tr, err := w.store.LoadTariffs(ctx, files)
	if err != nil {
		t.Fatal(err)
	}
	admin := &env{log: &syncBuffer{}}
	admin.srv = NewServer(Config{Store: w.store, Broker: pinger(pingOK), Tokenizer: testTokenizer(t), AdminToken: testAdminToken,
		Log: slog.New(slog.NewJSONHandler(admin.log, nil)), Features: []Feature{NewTariffs(tr)}})
	admin.h = admin.srv.Handler()
	if r := w.do(t, request{method: "POST", path: "/v1/cards", key: keyAt(t, time.Now()), body: registration(withPhysical)}); r.Code != http.StatusCreated {
		t.Fatalf("register card: %d %s", r.Code, r.Body.String())
	}
	card := cardToken(t)
	w.fund(t, card, 100000)
	shop := w.merchant(t, `{"id":"shop-1","name":"Department Store","mcc":"5311","city":"jiaxing","acquiring_bank":"ICBC-JX","fee_plan":"domestic-standard"}`)
	r := w.do(t, request{method: "POST", path: "/v1/authorizations", key: keyAt(t, time.Now()), auth: "Bearer " + shop,
		body: `{"card_token":"` + card + `","amount":"300.00","currency":"CNY"}`})
	var a authorizationView
	decodeJSON(t, r, &a)
	if r := w.do(t, request{method: "POST", path: "/v1/authorizations/" + a.ID + "/capture", key: keyAt(t, time.Now()), auth: "Bearer " + shop,
		body: `{}`}); r.Code != http.StatusCreated {
		t.Fatalf("capture: %d %s", r.Code, r.Body.String())
	}
	created, err := time.Parse(time.RFC3339Nano, a.CreatedAt)
	if err != nil {
		t.Fatal(err)
	}
	day := created.In(cards.Shanghai).Format(time.DateOnly) // the purchase's date: today, or yesterday past midnight
	body := strings.Replace(string(files.FeePlans["domestic-standard.json"]), `"rate": "0.0035"`, `"rate": "0.0050"`, 1)
	up := func(query string) *httptest.ResponseRecorder {
		return admin.do(t, tariffUpload("fee-plans", "?effective_from="+day+"&uploaded_by=Wang%20Li"+query, body))
	}
	if r := up(""); r.Code != http.StatusBadRequest || !strings.Contains(errorOf(t, r).Message, "ask to re-price (reprice=true)") {
		t.Fatalf("without reprice: %d %s", r.Code, r.Body.String())
	}
	r = up("&reprice=true")
	var l tariffListView
	decodeJSON(t, r, &l)
	if r.Code != http.StatusCreated || len(l.Versions) != 1 || !l.Versions[0].Repriced || l.Versions[0].EffectiveFrom != day {
		t.Fatalf("with reprice: %d %s", r.Code, r.Body.String())
	}
	for {
		rep, err := w.store.RepriceFees(ctx, 0)
		if err != nil {
			t.Fatal(err)
		}
		if rep.Job == 0 {
			break
		}
	}
	r = w.do(t, request{method: "GET", path: "/v1/authorizations/" + a.ID, auth: "Bearer " + shop})
	var got authorizationView
	decodeJSON(t, r, &got)
	// 300.00 at 0.35% paid 1.05; at 0.50%, 1.50: 0.45 more. The network fee is unchanged.
	if len(got.FeeAdjustments) != 1 || got.FeeAdjustments[0].MerchantDiscount != "0.45" || got.FeeAdjustments[0].Network != "0.00" ||
		got.FeeAdjustments[0].Total != "0.45" || got.FeeAdjustments[0].Version != l.Versions[0].Seq || got.FeeAdjustments[0].TransferID == "" ||
		got.FeePaid == nil || *got.FeePaid != (merchantFeeView{MerchantDiscount: "1.50", Network: "0.20", Total: "1.70"}) ||
		got.Close.Fee.Total != "1.25" {
		t.Fatalf("the authorization after re-pricing: %s", r.Body.String())
	}
	// The admin reads how far the re-pricing went: here, to its end.
	r = admin.do(t, request{method: "GET", path: "/v1/tariffs/fee-plans?id=domestic-standard"})
	decodeJSON(t, r, &l)
	last := l.Versions[len(l.Versions)-1]
	if rp := last.Repricing; rp == nil || rp.Purchases != 1 || rp.Adjusted != 1 || rp.Charged != "0.45" || rp.FinishedAt == "" {
		t.Fatalf("the version's re-pricing: %s", r.Body.String())
	}
}

// A party settled by one bank, registered as a merchant of another acquiring bank, is refused
// with 409 settlement_bank_differs and keeps its bank; as a merchant of its own bank, it is
// registered.
func TestMerchantOfAnotherBankThanItsPartysAgainstPostgres(t *testing.T) {
	w := newPurchaseWorld(t)
	for _, body := range []string{`{"kind":"bank","id":"BOC-JX","name":"BOC Jiaxing"}`,
		`{"kind":"merchant","id":"shop-9","name":"Corner Shop","settlement_bank":"BOC-JX"}`} {
		if r := w.do(t, request{method: "POST", path: "/v1/parties", body: body}); r.Code != http.StatusCreated {
			t.Fatalf("register party: %d %s", r.Code, r.Body.String())
		}
	}
	r := w.do(t, request{method: "POST", path: "/v1/merchants",
		body: `{"id":"shop-9","name":"Corner Shop","mcc":"5311","city":"jiaxing","acquiring_bank":"ICBC-JX","fee_plan":"domestic-standard"}`})
	if r.Code != http.StatusConflict || !strings.Contains(r.Body.String(), `"reason":"settlement_bank_differs"`) ||
		!strings.Contains(r.Body.String(), "BOC-JX") {
		t.Errorf("a merchant of ICBC-JX over a party of BOC-JX: %d %s", r.Code, r.Body.String())
	}
	var bank string
	if err := w.store.Pool().QueryRow(context.Background(), `SELECT b.bank_id FROM party_banks b JOIN parties p ON p.account_id = b.account_id
		WHERE p.kind = 'merchant' AND p.party_id = 'shop-9'`).Scan(&bank); err != nil || bank != "BOC-JX" {
		t.Errorf("after the refusal the party is settled by %q, %v; want BOC-JX", bank, err)
	}
	w.merchant(t, `{"id":"shop-9","name":"Corner Shop","mcc":"5311","city":"jiaxing","acquiring_bank":"BOC-JX","fee_plan":"domestic-standard"}`)
}
