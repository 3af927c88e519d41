package http

import (
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/google/uuid"

	"github.com/joinincard/engine/internal/pgtest"
	"github.com/joinincard/engine/ledger"
	"github.com/joinincard/engine/postgres"
)

// TestTransfersAgainstPostgres opens accounts and moves money between them through the API on
// the real store and the real committer: funding, a linked chain, a hold posted in part, a
// reversal, refusals by the ledger, replays, and sixteen clients crediting one account at once.
// pgtest verifies the ledger when the test ends.
func TestTransfersAgainstPostgres(t *testing.T) {
	e, _ := newLedgerEnv(t)

	bank, a, b, usd := uuid.Must(uuid.NewV7()), uuid.Must(uuid.NewV7()), uuid.Must(uuid.NewV7()), uuid.Must(uuid.NewV7())
	accounts := fmt.Sprintf(`{"accounts":[
		{"id":%q,"name":"Funding bank","kind":"bank_settlement","currency":"CNY"},
		{"id":%q,"name":"Customer A","kind":"suspense","currency":"CNY","constraint":"debits_must_not_exceed_credits"},
		{"id":%q,"name":"Customer B","kind":"suspense","currency":"CNY","constraint":"debits_must_not_exceed_credits","limit":"5"},
		{"id":%q,"name":"Dollar suspense","kind":"suspense","currency":"USD"}]}`, bank, a, b, usd)
	w := e.do(t, request{method: "POST", path: "/v1/accounts", body: accounts})
	var opened openedAccountsView
	decodeStrictly(t, w, &opened)
	if w.Code != http.StatusCreated || len(opened.Accounts) != 4 || !opened.Accounts[0].Created || opened.Accounts[2].Limit != "5.00" ||
		opened.Accounts[2].Constraint != "debits_must_not_exceed_credits" {
		t.Fatalf("open: %d %s", w.Code, w.Body.String())
	}
	w = e.do(t, request{method: "POST", path: "/v1/accounts", body: accounts})
	opened = openedAccountsView{}
	decodeStrictly(t, w, &opened)
	if w.Code != http.StatusOK || opened.Accounts[3].Created {
		t.Fatalf("open again: %d %s", w.Code, w.Body.String())
	}
	if w := e.do(t, request{method: "POST", path: "/v1/accounts", body: strings.Replace(accounts, "Customer B", "Customer C", 1)}); w.Code != http.StatusConflict ||
		!strings.Contains(w.Body.String(), "accounts[2].id") {
		t.Fatalf("open with another name: %d %s", w.Code, w.Body.String())
	}

	id := func() string { return uuid.Must(uuid.NewV7()).String() }
	move := func(tid string, from, to uuid.UUID, amount, more string) string {
		s := fmt.Sprintf(`{"id":%q,"debit_account_id":%q,"credit_account_id":%q,"amount":%q,"currency":"CNY","code":1`, tid, from, to, amount)
		if more != "" {
			s += "," + more
		}
		return s + "}"
	}
	check := func(body string, want ...string) transfersView {
		t.Helper()
		v := transfersOf(t, e, body)
		if got := strings.Join(resultsOf(v), " "); got != strings.Join(want, " ") {
			t.Fatalf("results %s, want %s", got, strings.Join(want, " "))
		}
		return v
	}
	check(transfersBody(move(id(), bank, a, "100", "")), "created")
	hold, fee, funding := id(), id(), move(id(), bank, a, "1.00", "")
	check(transfersBody(
		move(id(), a, b, "30.00", `"flags":["linked"]`),
		move(fee, b, bank, "0.50", ""),
		move(hold, a, b, "20", `"flags":["pending"],"timeout_seconds":3600`),
		move(id(), a, b, "50.01", ""), // 50.00 left after the chain and the hold
		move(id(), a, usd, "1.00", ""),
		funding,
	), "created", "created", "created", "insufficient_funds", "currency_mismatch", "created")
	post := fmt.Sprintf(`{"id":%q,"ref_id":%q,"amount":"15.00","currency":"CNY","flags":["post_pending"]}`, id(), hold)
	reversal := fmt.Sprintf(`{"id":%q,"ref_id":%q,"amount":"0.50","currency":"CNY","flags":["reversal"]}`, id(), fee)
	check(transfersBody(post, reversal), "created", "created")
	check(transfersBody(post, reversal, funding), "exists", "exists", "exists")
	check(transfersBody(strings.Replace(post, `"15.00"`, `"16.00"`, 1)), "exists_with_different_amount")

	balance := func(id uuid.UUID) accountView {
		w := e.do(t, request{method: "GET", path: "/v1/accounts/" + id.String()})
		var v accountView
		decodeStrictly(t, w, &v)
		return v
	}
	// A: 101.00 in, 30.00 and 15.00 out, the rest of the hold released.
	if v := balance(a); v.CreditsPosted != "101.00" || v.DebitsPosted != "45.00" || v.DebitsPending != "0.00" || v.Available != "56.00" {
		t.Errorf("customer A: %+v", v)
	}
	if v := balance(b); v.CreditsPosted != "45.50" || v.DebitsPosted != "0.50" || v.Net != "45.00" {
		t.Errorf("customer B: %+v", v)
	}

	// Sixteen clients credit B at once: every transfer is created.
	const clients, each = 16, 20
	var wg sync.WaitGroup
	for range clients {
		wg.Go(func() {
			for range each {
				w := e.do(t, postTransfers(transfersBody(move(id(), bank, b, "1.00", ""))))
				if w.Code != http.StatusOK || !strings.Contains(w.Body.String(), `"result":"created"`) {
					t.Errorf("concurrent transfer: %d %s", w.Code, w.Body.String())
					return
				}
			}
		})
	}
	wg.Wait()
	if v := balance(b); v.CreditsPosted != ledger.FormatDecimal(4550+clients*each*100, "CNY") {
		t.Errorf("customer B after the clients: %+v", v)
	}
	if strings.Contains(e.log.String(), "internal error") {
		t.Errorf("an internal error was logged:\n%s", e.log.String())
	}
}

// newLedgerEnv serves the accounts and transfers APIs on the real store, with the transfers
// committer running until the test ends.
func newLedgerEnv(t *testing.T) (*env, *postgres.Store) {
	t.Helper()
	store := pgtest.NewStore(t)
	tr := postgres.NewTransfers(store)
	runUntilCleanup(t, tr.Run)
	log := &syncBuffer{}
	e := &env{log: log}
	e.srv = NewServer(Config{Store: store, Broker: pinger(pingOK), Tokenizer: testTokenizer(t), AdminToken: testAdminToken,
		Log: slog.New(slog.NewJSONHandler(log, &slog.HandlerOptions{Level: slog.LevelDebug})), Features: []Feature{NewAccounts(store), NewTransfers(tr)}})
	e.h = e.srv.Handler()
	return e, store
}
