package http

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/joinincard/engine/clearing"
	"github.com/joinincard/engine/internal/pgtest"
	"github.com/joinincard/engine/postgres"
)

// TestTransfersLeaveCardsAndPartiesToTheirFlows: the admin's transfers API moves money between
// the accounts it opens, never on a card's or a party's, whose money the engine's own records
// account for. A capture reversed through the ledger would leave the purchase refundable in full
// (the card paid back twice), a hold voided through it an authorization still open. Each such
// request is refused whole with 409 naming the transfer and its field, and nothing of it applies.
func TestTransfersLeaveCardsAndPartiesToTheirFlows(t *testing.T) {
	store := pgtest.NewStore(t)
	tr := postgres.NewTransfers(store)
	p, err := postgres.NewPurchases(store)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{}, 2)
	go func() { tr.Run(ctx); done <- struct{}{} }()
	go func() { p.Run(ctx); done <- struct{}{} }()
	t.Cleanup(func() {
		cancel()
		<-done
		<-done
	})
	for _, p := range []struct {
		kind     clearing.PartyKind
		id, name string
	}{{clearing.PartyBank, "ICBC-JX", "ICBC Jiaxing"}, {clearing.PartyInsuranceFund, "jiaxing", "Jiaxing fund"}} {
		if _, err := store.RegisterParty(ctx, p.kind, p.id, p.name); err != nil {
			t.Fatal(err)
		}
	}
	w := &purchaseWorld{env: &env{log: &syncBuffer{}}, store: store}
	w.srv = NewServer(Config{Store: store, Broker: pinger(pingOK), Tokenizer: testTokenizer(t), AdminToken: testAdminToken,
		Log: slog.New(slog.NewJSONHandler(w.log, nil)), Features: []Feature{NewPurchases(p), NewAccounts(store), NewTransfers(tr)}})
	w.h = w.srv.Handler()

	if r := w.do(t, request{method: "POST", path: "/v1/cards", key: keyAt(t, time.Now()), body: registration(nil)}); r.Code != http.StatusCreated {
		t.Fatalf("register card: %d %s", r.Code, r.Body.String())
	}
	card := cardToken(t)
	w.fund(t, card, 100000)
	funds := cardOf(t, w.do(t, request{method: "GET", path: "/v1/cards/" + card})).FundsAccountID
	shop := w.merchant(t, `{"id":"shop-1","name":"Department Store","mcc":"5311","city":"jiaxing","acquiring_bank":"ICBC-JX","fee_plan":"domestic-standard"}`)
	authorize := func(amount string) string {
		r := w.do(t, request{method: "POST", path: "/v1/authorizations", key: keyAt(t, time.Now()), auth: "Bearer " + shop,
			body: `{"card_token":"` + card + `","amount":"` + amount + `","currency":"CNY"}`})
		var a authorizationView
		decodeJSON(t, r, &a)
		if r.Code != http.StatusCreated || a.Decision != "approved" {
			t.Fatalf("authorize: %d %s", r.Code, r.Body.String())
		}
		return a.ID
	}
	op := func(id, path, body string, want int) {
		t.Helper()
		r := w.do(t, request{method: "POST", path: "/v1/authorizations/" + id + path, key: keyAt(t, time.Now()), auth: "Bearer " + shop, body: body})
		if r.Code != want {
			t.Fatalf("%s %s: %d %s", path, body, r.Code, r.Body.String())
		}
	}
	captured, open := authorize("100.00"), authorize("30.00")
	op(captured, "/capture", `{"amount":"60.00"}`, http.StatusCreated)
	var capture string
	var stmt statementView
	decodeJSON(t, w.do(t, request{method: "GET", path: "/v1/accounts/" + funds + "/statement"}), &stmt)
	for _, l := range stmt.Lines {
		if l.Kind == "capture" {
			capture = l.TransferID
		}
	}
	if capture == "" {
		t.Fatalf("no capture on the card's statement: %+v", stmt)
	}

	bank, suspense := uuid.Must(uuid.NewV7()), uuid.Must(uuid.NewV7())
	if r := w.do(t, request{method: "POST", path: "/v1/accounts", body: fmt.Sprintf(`{"accounts":[
		{"id":%q,"name":"Funding bank","kind":"bank_settlement","currency":"CNY"},
		{"id":%q,"name":"Suspense","kind":"suspense","currency":"CNY"}]}`, bank, suspense)}); r.Code != http.StatusCreated {
		t.Fatalf("open: %d %s", r.Code, r.Body.String())
	}
	id := func() string { return uuid.Must(uuid.NewV7()).String() }
	funding := fmt.Sprintf(`{"id":%q,"debit_account_id":%q,"credit_account_id":%q,"amount":"500.00","currency":"CNY"}`, id(), bank, suspense)
	balances := func() string {
		var card, susp accountView
		decodeJSON(t, w.do(t, request{method: "GET", path: "/v1/accounts/" + funds}), &card)
		decodeJSON(t, w.do(t, request{method: "GET", path: "/v1/accounts/" + suspense.String()}), &susp)
		return card.Available + " " + card.DebitsPending + " " + susp.Net
	}
	before := balances()
	for _, c := range []struct {
		name, body, field string
	}{
		{"a capture reversed", transfersBody(funding,
			fmt.Sprintf(`{"id":%q,"ref_id":%q,"amount":"60.00","currency":"CNY","flags":["reversal"]}`, id(), capture)), "transfers[1].ref_id"},
		{"an authorization's hold voided", transfersBody(
			fmt.Sprintf(`{"id":%q,"ref_id":%q,"currency":"CNY","flags":["void_pending"]}`, id(), open)), "transfers[0].ref_id"},
		{"an authorization's hold posted", transfersBody(
			fmt.Sprintf(`{"id":%q,"ref_id":%q,"amount":"30.00","currency":"CNY","flags":["post_pending"]}`, id(), open)), "transfers[0].ref_id"},
		// A transfer of the request under the id of the one a ref names does not stand for it:
		// that id is the card's hold or capture, and the ref acts on that.
		{"an authorization's hold voided behind a transfer under its id", transfersBody(
			fmt.Sprintf(`{"id":%q,"debit_account_id":%q,"credit_account_id":%q,"amount":"30.00","currency":"CNY","flags":["pending"]}`, open, bank, suspense),
			fmt.Sprintf(`{"id":%q,"ref_id":%q,"currency":"CNY","flags":["void_pending"]}`, id(), open)), "transfers[1].ref_id"},
		{"a capture reversed behind a transfer under its id", transfersBody(
			fmt.Sprintf(`{"id":%q,"debit_account_id":%q,"credit_account_id":%q,"amount":"60.00","currency":"CNY"}`, capture, bank, suspense),
			fmt.Sprintf(`{"id":%q,"ref_id":%q,"amount":"60.00","currency":"CNY","flags":["reversal"]}`, id(), capture)), "transfers[1].ref_id"},
		{"a card credited", transfersBody(funding,
			fmt.Sprintf(`{"id":%q,"debit_account_id":%q,"credit_account_id":%q,"amount":"1.00","currency":"CNY"}`, id(), suspense, funds)), "transfers[1].credit_account_id"},
		{"a card debited", transfersBody(
			fmt.Sprintf(`{"id":%q,"debit_account_id":%q,"credit_account_id":%q,"amount":"1.00","currency":"CNY"}`, id(), funds, suspense)), "transfers[0].debit_account_id"},
	} {
		r := w.do(t, postTransfers(c.body))
		if r.Code != http.StatusConflict || !strings.Contains(r.Body.String(), c.field) {
			t.Errorf("%s: %d %s, want 409 naming %s", c.name, r.Code, r.Body.String(), c.field)
		}
	}
	if after := balances(); after != before {
		t.Errorf("refused requests changed balances: %s, before %s", after, before)
	}

	// The purchase is refunded as captured, once; the open authorization is still the merchant's.
	op(captured, "/refunds", `{"amount":"60.00"}`, http.StatusCreated)
	op(captured, "/refunds", `{"amount":"0.01"}`, http.StatusConflict)
	op(open, "/capture", `{}`, http.StatusCreated)
	if got := cardOf(t, w.do(t, request{method: "GET", path: "/v1/cards/" + card})).FundsBalance; got.Available != "970.00" {
		t.Errorf("card's funds after the refund and the capture: %+v, want 970.00", got)
	}
	// Money still moves between the admin's own accounts, and to a bank.
	if got := resultsOf(transfersOf(t, w.env, transfersBody(funding))); strings.Join(got, " ") != "created" {
		t.Errorf("funding: %v", got)
	}
}
