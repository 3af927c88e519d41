package http

import (
	"context"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/joinincard/engine/clearing"
	"github.com/joinincard/engine/internal/pgtest"
)

// TestAgainstPostgres runs the admin API on the real store, with the real clock: parties, a card
// registered, read, blocked, and its registration replayed, the same and with another body.
// pgtest verifies the ledger when the test ends.
func TestAgainstPostgres(t *testing.T) {
	store := pgtest.NewStore(t)
	log := &syncBuffer{}
	e := &env{log: log}
	e.srv = NewServer(Config{
		Store: store, Broker: pinger(pingOK), Tokenizer: testTokenizer(t), AdminToken: testAdminToken,
		Metrics: prometheus.NewRegistry(),
		Log:     slog.New(slog.NewJSONHandler(log, &slog.HandlerOptions{Level: slog.LevelDebug})),
		// Now is left out: the real clock, so a replay comes later than its first request.
	})
	e.h = e.srv.Handler()

	if w := e.do(t, request{method: "GET", path: "/readyz", auth: "-"}); w.Code != http.StatusOK {
		t.Fatalf("readyz: %d %s", w.Code, w.Body.String())
	}
	for _, body := range []string{
		`{"kind":"bank","id":"ICBC-JX","name":"ICBC Jiaxing branch"}`,
		`{"kind":"insurance_fund","id":"jiaxing","name":"Jiaxing medical insurance fund"}`,
	} {
		w := e.do(t, request{method: "POST", path: "/v1/parties", body: body})
		if w.Code != http.StatusCreated {
			t.Fatalf("register party %s: %d %s", body, w.Code, w.Body.String())
		}
		var p partyView
		decodeJSON(t, w, &p)
		if p.AccountID == "" {
			t.Errorf("party without an account: %s", w.Body.String())
		}
	}
	if w := e.do(t, request{method: "POST", path: "/v1/parties", body: `{"kind":"bank","id":"ICBC-JX","name":"Someone else"}`}); w.Code != http.StatusConflict {
		t.Errorf("renaming a party: %d %s", w.Code, w.Body.String())
	}

	key := keyAt(t, time.Now())
	first := e.do(t, request{method: "POST", path: "/v1/cards", key: key, body: registration(withPhysical)})
	if first.Code != http.StatusCreated {
		t.Fatalf("register card: %d %s", first.Code, first.Body.String())
	}
	card := cardOf(t, first)
	if card.Token != cardToken(t) || card.CardNumberMasked != "622848******4899" || card.Status != "active" ||
		card.FundsBalance != (balanceView{Currency: "CNY", Available: "0.00", Posted: "0.00"}) {
		t.Errorf("registered card %+v", card)
	}

	w := e.do(t, request{method: "GET", path: "/v1/cards/" + physicalToken})
	if w.Code != http.StatusOK || cardOf(t, w) != card {
		t.Fatalf("read back by the physical token: %d %s", w.Code, w.Body.String())
	}

	w = e.do(t, request{method: "POST", path: "/v1/cards/" + card.Token + "/status", key: keyAt(t, time.Now()),
		body: `{"status":"blocked","reason":"reported stolen"}`})
	if w.Code != http.StatusOK {
		t.Fatalf("block: %d %s", w.Code, w.Body.String())
	}
	if got := cardOf(t, w); got.Status != "blocked" || got.StatusReason != "reported stolen" {
		t.Errorf("blocked card %+v", got)
	}

	time.Sleep(5 * time.Millisecond) // the replay comes later, by a clock the event must not depend on
	w = e.do(t, request{method: "POST", path: "/v1/cards", key: key, body: registration(withPhysical)})
	if w.Code != http.StatusOK {
		t.Fatalf("replayed registration: %d %s", w.Code, w.Body.String())
	}
	replayed := cardOf(t, w)
	want := card
	want.Status, want.StatusReason = "blocked", "reported stolen"
	if replayed != want {
		t.Errorf("replayed registration answered\n%+v\nwant\n%+v", replayed, want)
	}

	w = e.do(t, request{method: "POST", path: "/v1/cards", key: key, body: registration(func(m map[string]string) {
		withPhysical(m)
		m["holder_name"] = "Anna Schmidt-Weber"
	})})
	if w.Code != http.StatusConflict || errorOf(t, w).Message != "idempotency key reused with a different body" {
		t.Fatalf("reused key: %d %s", w.Code, w.Body.String())
	}

	// Refusals of the real store: another registration of the card, and reopening a closed card.
	w = e.do(t, request{method: "POST", path: "/v1/cards", key: keyAt(t, time.Now()), body: registration(nil)})
	if w.Code != http.StatusConflict || errorOf(t, w).Message != "card already registered" {
		t.Errorf("second registration: %d %s", w.Code, w.Body.String())
	}
	status := "/v1/cards/" + card.Token + "/status"
	if w := e.do(t, request{method: "POST", path: status, key: keyAt(t, time.Now()), body: `{"status":"closed","reason":"left china"}`}); w.Code != http.StatusOK {
		t.Fatalf("close: %d %s", w.Code, w.Body.String())
	}
	if w := e.do(t, request{method: "POST", path: status, key: keyAt(t, time.Now()), body: `{"status":"active","reason":"back"}`}); w.Code != http.StatusConflict {
		t.Errorf("reopen: %d %s", w.Code, w.Body.String())
	}
	if w := e.do(t, request{method: "GET", path: "/v1/cards/tok_unknown"}); w.Code != http.StatusNotFound {
		t.Errorf("unknown card: %d %s", w.Code, w.Body.String())
	}

	for _, n := range []string{testPAN, testPassport, testSSN, testPermit, testBankAcct} {
		if strings.Contains(log.String(), n) {
			t.Errorf("the log contains a clear number")
		}
	}
}

// TestConcurrentRetriesAgainstPostgres sends one registration several times at once, as a client
// whose retries overtake each other would: the store decides it once, and every answer is the card.
func TestConcurrentRetriesAgainstPostgres(t *testing.T) {
	store := pgtest.NewStore(t)
	for _, p := range []struct {
		kind     clearing.PartyKind
		id, name string
	}{{clearing.PartyBank, "ICBC-JX", "ICBC Jiaxing"}, {clearing.PartyInsuranceFund, "jiaxing", "Jiaxing fund"}} {
		if _, err := store.RegisterParty(context.Background(), p.kind, p.id, p.name); err != nil {
			t.Fatal(err)
		}
	}
	e := &env{log: &syncBuffer{}}
	e.srv = NewServer(Config{Store: store, Broker: pinger(pingOK), Tokenizer: testTokenizer(t), AdminToken: testAdminToken,
		Log: slog.New(slog.NewJSONHandler(e.log, nil))})
	e.h = e.srv.Handler()

	// concurrentRetries: enough to collide on the event id, few enough for the store's retries.
	const concurrentRetries = 6
	key, body := keyAt(t, time.Now()), registration(nil)
	codes := make(chan int, concurrentRetries)
	var wg sync.WaitGroup
	for range concurrentRetries {
		wg.Go(func() {
			codes <- e.do(t, request{method: "POST", path: "/v1/cards", key: key, body: body}).Code
		})
	}
	wg.Wait()
	close(codes)
	count := map[int]int{}
	for c := range codes {
		count[c]++
	}
	if count[http.StatusCreated] != 1 || count[http.StatusOK] != concurrentRetries-1 {
		t.Errorf("answers %v, want one 201 and %d 200s\n%s", count, concurrentRetries-1, e.log.String())
	}
}
