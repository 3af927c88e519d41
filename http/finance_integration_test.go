package http

import (
	"bytes"
	"context"
	"encoding/csv"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/joinincard/engine/cards"
	"github.com/joinincard/engine/clearing"
	"github.com/joinincard/engine/events"
	"github.com/joinincard/engine/internal/pgtest"
	"github.com/joinincard/engine/ledger"
	"github.com/joinincard/engine/postgres"
	"github.com/joinincard/engine/reconcile"
	"github.com/joinincard/engine/settlement"
)

// settledDayWithBreaks settles a day on the real store and reconciles the banks' statements of it:
// a card of ICBC-JX spends 300.00 and 45.50 at two merchants of ABC-JX; the cycle closes. ICBC-JX
// books its item at 345.00 (an amount mismatch); ABC-JX books the first merchant's item (a match),
// the second's without a reference (a suggestion) and 12.34 that names nothing (missing in the
// ledger). Two breaks are open.
func settledDayWithBreaks(t *testing.T, store *postgres.Store, c *clock, e *env) (*postgres.Settlement, *postgres.Reconciler) {
	t.Helper()
	ctx := context.Background()
	for _, p := range []struct {
		kind     clearing.PartyKind
		id, name string
	}{
		{clearing.PartyBank, "ICBC-JX", "中国工商银行嘉兴分行 ICBC Jiaxing"},
		{clearing.PartyBank, "ABC-JX", "中国农业银行嘉兴分行 ABC Jiaxing"},
		{clearing.PartyInsuranceFund, "jiaxing", "嘉兴市医疗保障基金"},
		{clearing.PartyMerchant, "shop-1", "嘉兴百货 Department Store"},
		{clearing.PartyMerchant, "kiosk-9", "西湖便利店 West Lake kiosk"},
	} {
		if _, err := store.RegisterParty(ctx, p.kind, p.id, p.name); err != nil {
			t.Fatal(err)
		}
		if p.kind == clearing.PartyMerchant {
			if err := store.SetPartyBank(ctx, p.kind, p.id, "ABC-JX"); err != nil {
				t.Fatal(err)
			}
		}
	}
	if w := e.do(t, request{method: "POST", path: "/v1/cards", key: keyAt(t, c.Now()), body: registration(nil)}); w.Code != http.StatusCreated {
		t.Fatalf("register the card: %d %s", w.Code, w.Body.String())
	}
	card := cardToken(t)
	var offset int64
	ingest := func(typ events.Type, data events.Data) {
		t.Helper()
		raw, err := events.Encode(events.Event{ID: uuid.Must(uuid.NewV7()), Type: typ, OccurredAt: c.Now().UTC().Truncate(time.Millisecond),
			CardToken: card, Data: data})
		if err != nil {
			t.Fatal(err)
		}
		ev, err := events.Decode(raw)
		if err != nil {
			t.Fatal(err)
		}
		offset++
		d, err := store.Ingest(ctx, nil, []clearing.Message{{Source: "card-events/0", Offset: offset, Raw: raw, Event: ev}})
		if err != nil || len(d.Processed) != 1 || d.Processed[0].Status != clearing.Applied {
			t.Fatalf("%s: %v %+v", typ, err, d)
		}
	}
	ingest(events.TypeFundsLoaded, &events.FundsLoaded{Amount: events.Money{Minor: 1000_00, Currency: "CNY"}, BankReference: "FT-1"})
	ingest(events.TypePurchaseCleared, &events.PurchaseCleared{MerchantID: "shop-1", MCC: "5311", Amount: events.Money{Minor: 300_00, Currency: "CNY"}})
	ingest(events.TypePurchaseCleared, &events.PurchaseCleared{MerchantID: "kiosk-9", MCC: "5411", Amount: events.Money{Minor: 45_50, Currency: "CNY"}})

	set, err := postgres.NewSettlement(store, testCycles(t))
	if err != nil {
		t.Fatal(err)
	}
	day := settlement.Date{Year: 2026, Month: time.March, Day: 3}
	c.Advance(13*time.Hour + 10*time.Minute) // 23:10, past the cut-off
	if _, err := set.Close(ctx, day); err != nil {
		t.Fatal(err)
	}
	item := func(bank string, amount int64) [16]byte {
		t.Helper()
		var id [16]byte
		if err := store.Pool().QueryRow(ctx, `SELECT item_id FROM settlement_items WHERE cycle_date = $1 AND bank_id = $2 AND amount = $3`,
			settlement.DateTime(day), bank, amount).Scan(&id); err != nil {
			t.Fatalf("item of %s for %d: %v", bank, amount, err)
		}
		return id
	}
	card0, shop := item("ICBC-JX", -345_50), item("ABC-JX", 300_00)
	item("ABC-JX", 45_50) // the kiosk's: the statement books it without a reference

	// The banks' statements of the value date, as an importer would have stored them.
	valueDate := settlement.DateTime(settlement.Date{Year: 2026, Month: time.March, Day: 4})
	for _, s := range []struct {
		bank, id  string
		net, sum  int64
		n         int
		entries   string
		arguments []any
	}{
		{"ICBC-JX", "ICBC-STMT-1", -345_00, 345_00, 1,
			`($1, $2, 1, 'E-1', 'ref-1', $4::UUID, NULL, -34500, $3, $3, '银联清算 card settlement')`, []any{card0}},
		{"ABC-JX", "ABC-STMT-1", 357_84, 357_84, 3,
			`($1, $2, 1, 'E-1', 'ref-1', $4::UUID, NULL, 30000, $3, $3, '商户结算 shop-1'),
			 ($1, $2, 2, 'E-2', '', NULL, NULL, 4550, $3, $3, '无参考 no reference'),
			 ($1, $2, 3, 'E-3', '', NULL, NULL, 1234, $3, $3, '未知来款 unknown credit')`, []any{shop}},
	} {
		if _, err := store.Pool().Exec(ctx, `INSERT INTO bank_statements (bank_id, statement_id, sequence, created_at, from_date, to_date,
				opening, closing, entries, control_sum, net, content_hash, imported_at)
			VALUES ($1, $2, 1, $3, $4, $4, 0, $5, $6, $7, $5, 'browser test', $3)`,
			s.bank, s.id, c.Now().UTC(), valueDate, s.net, s.n, s.sum); err != nil {
			t.Fatal(err)
		}
		if _, err := store.Pool().Exec(ctx, `INSERT INTO statement_entries (bank_id, statement_id, line, entry_ref, ref, item_id, file_id,
				amount, booking_date, value_date, info) VALUES `+s.entries, append([]any{s.bank, s.id, valueDate}, s.arguments...)...); err != nil {
			t.Fatal(err)
		}
		// Open for the bank's next reconciliation, as an import leaves them.
		if _, err := store.Pool().Exec(ctx, `INSERT INTO recon_open_entries (bank_id, statement_id, line)
			SELECT bank_id, statement_id, line FROM statement_entries WHERE bank_id = $1 AND statement_id = $2`, s.bank, s.id); err != nil {
			t.Fatal(err)
		}
	}
	rules, err := reconcile.DefaultRules()
	if err != nil {
		t.Fatal(err)
	}
	rec := postgres.NewReconciler(store, rules)
	c.Advance(35 * time.Hour) // 2026-03-05 10:10: the breaks are a day old
	if _, err := rec.ReconcileAll(ctx); err != nil {
		t.Fatal(err)
	}
	open, err := rec.Breaks(ctx, postgres.BreakFilter{Open: true})
	if err != nil || len(open) != 2 {
		t.Fatalf("open breaks %+v: %v", open, err)
	}
	if sugg, err := rec.Suggestions(ctx, ""); err != nil || len(sugg) != 1 {
		t.Fatalf("suggestions %+v: %v", sugg, err)
	}
	return set, rec
}

// financeOnPostgres serves the finance page over a settled day with breaks, on the real store.
func financeOnPostgres(t *testing.T) (*httptest.Server, *postgres.Reconciler, *syncBuffer) {
	t.Helper()
	store := pgtest.NewStore(t)
	c := &clock{now: time.Date(2026, time.March, 3, 10, 0, 0, 0, cards.Shanghai)}
	store.Now = c.Now
	log := &syncBuffer{}
	newServer := func(features ...Feature) *Server {
		return NewServer(Config{Store: store, Broker: pinger(pingOK), Tokenizer: testTokenizer(t), AdminToken: testAdminToken,
			Metrics: prometheus.NewRegistry(), Now: c.Now, Log: slog.New(slog.NewJSONHandler(log, &slog.HandlerOptions{Level: slog.LevelInfo})),
			Features: features})
	}
	registry := &env{log: log, clock: c, srv: newServer()} // registers the card
	registry.h = registry.srv.Handler()
	set, rec := settledDayWithBreaks(t, store, c, registry)
	srv := httptest.NewServer(newServer(NewFinance(NewPostgresFinance(store, set, rec))).Handler())
	t.Cleanup(srv.Close)
	return srv, rec, log
}

// TestFinanceExportsAgainstPostgres logs in with a plain HTTP client and downloads the cycle's
// report and the trial balance from the real store: a row per bank with its Chinese name, its
// positions and its breaks; the trial balance's debits equal to its credits.
func TestFinanceExportsAgainstPostgres(t *testing.T) {
	srv, _, _ := financeOnPostgres(t)
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	client := &http.Client{Jar: jar, Timeout: 10 * time.Second}
	resp, err := client.PostForm(srv.URL+"/finance/login", url.Values{"name": {"李娜"}, "token": {testAdminToken}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Request.URL.Path != "/finance/" {
		t.Fatalf("login: %d at %s", resp.StatusCode, resp.Request.URL)
	}
	download := func(path string) [][]string {
		t.Helper()
		resp, err := client.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil || resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/csv; charset=utf-8" {
			t.Fatalf("%s: %d %v %s", path, resp.StatusCode, err, body)
		}
		rows, err := csv.NewReader(bytes.NewReader(bytes.TrimPrefix(body, []byte(utf8BOM)))).ReadAll()
		if err != nil {
			t.Fatal(err)
		}
		return rows
	}
	rows := download("/finance/cycles/2026-03-03/report.csv")
	col := func(name string) int { return slices.Index(rows[0], name) }
	if len(rows) != 3 || rows[1][col("bank")] != "ABC-JX" || rows[1][col("bank_name")] != "中国农业银行嘉兴分行 ABC Jiaxing" ||
		rows[1][col("settled")] != "345.50" || rows[1][col("closing")] != "345.50" || rows[1][col("matched_items")] != "1" ||
		rows[2][col("bank")] != "ICBC-JX" || rows[2][col("settled")] != "-345.50" || rows[2][col("open_breaks")] != "1" ||
		rows[2][col("amount_mismatch 0-1")] != "1" {
		t.Errorf("the report:\n%q", rows)
	}
	rows = download("/finance/trial-balance.csv?at=2026-03-05T10:00")
	var debits, credits int64
	for _, r := range rows[1:] {
		if r[0] != "2026-03-05T10:00:00+08:00" || r[1] != "CNY" {
			t.Errorf("row %q", r)
		}
		d, err1 := ledgerAmount(r[5])
		c, err2 := ledgerAmount(r[7])
		if err1 != nil || err2 != nil {
			t.Fatalf("row %q: %v %v", r, err1, err2)
		}
		debits, credits = debits+d, credits+c
	}
	if len(rows) < 4 || debits != credits || debits == 0 {
		t.Errorf("trial balance: debits %d, credits %d:\n%q", debits, credits, rows)
	}
}

func ledgerAmount(s string) (int64, error) { return ledger.ParseDecimal(s, "CNY") }

// TestFinanceSessionsAcrossEngines: two engines on one database serve one finance team. A person
// logged in through one is logged in through the other (no sticky routing needed), a form signed
// on one page is accepted by the other engine, and a logout through either ends the session on
// both.
func TestFinanceSessionsAcrossEngines(t *testing.T) {
	u := pgtest.NewDatabase(t)
	rules, err := reconcile.DefaultRules()
	if err != nil {
		t.Fatal(err)
	}
	engine := func() *httptest.Server {
		store := pgtest.Open(t, u)
		set, err := postgres.NewSettlement(store, testCycles(t))
		if err != nil {
			t.Fatal(err)
		}
		srv := httptest.NewServer(NewServer(Config{Store: store, Broker: pinger(pingOK), Tokenizer: testTokenizer(t), AdminToken: testAdminToken,
			Metrics: prometheus.NewRegistry(), Log: slog.New(slog.NewJSONHandler(io.Discard, nil)),
			Features: []Feature{NewFinance(NewPostgresFinance(store, set, postgres.NewReconciler(store, rules)))}}).Handler())
		t.Cleanup(srv.Close)
		return srv
	}
	one, two := engine(), engine()
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	client := &http.Client{Jar: jar, Timeout: 10 * time.Second}
	// One cookie jar for both engines, as a browser behind one address has: the test servers
	// differ by port only, and cookies do not depend on the port.
	get := func(srv *httptest.Server, path string) (*http.Response, string) {
		t.Helper()
		resp, err := client.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return resp, string(body)
	}
	resp, err := client.PostForm(one.URL+"/finance/login", url.Values{"name": {"李娜"}, "token": {testAdminToken}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Request.URL.Path != "/finance/" {
		t.Fatalf("login through the first engine: %d at %s", resp.StatusCode, resp.Request.URL)
	}
	resp, body := get(two, "/finance/trial-balance")
	if resp.StatusCode != http.StatusOK || resp.Request.URL.Path != "/finance/trial-balance" || !strings.Contains(body, "李娜") {
		t.Fatalf("the second engine's page: %d at %s", resp.StatusCode, resp.Request.URL)
	}
	m := regexp.MustCompile(`name="csrf" value="([^"]+)"`).FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("no form token on the second engine's page")
	}
	pageURL, err := url.Parse(two.URL + "/finance/")
	if err != nil {
		t.Fatal(err)
	}
	cookies := jar.Cookies(pageURL)
	if len(cookies) != 1 {
		t.Fatalf("cookies %v, want the session's", cookies)
	}
	// The logout form the second engine's page carries, sent to the first.
	req, err := http.NewRequest(http.MethodPost, one.URL+"/finance/logout", strings.NewReader(url.Values{"csrf": {m[1]}}.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", one.URL)
	resp, err = client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Request.URL.Path != "/finance/login" {
		t.Fatalf("logout through the first engine with the second's form: %d at %s", resp.StatusCode, resp.Request.URL)
	}
	// The browser forgot the cookie; a copy of it opens nothing on either engine.
	for _, srv := range []*httptest.Server{one, two} {
		req, err := http.NewRequest(http.MethodGet, srv.URL+"/finance/", nil)
		if err != nil {
			t.Fatal(err)
		}
		req.AddCookie(cookies[0])
		resp, err := (&http.Client{Timeout: 10 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		}}).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/finance/login" {
			t.Fatalf("the logged-out cookie at %s: %d to %q", srv.URL, resp.StatusCode, resp.Header.Get("Location"))
		}
	}
}
