package http

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
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

// browserCandidates are where a Chromium or Chrome is looked for: Debian's chromium first.
var browserCandidates = []string{"/usr/bin/chromium", "chromium", "chromium-browser", "google-chrome", "google-chrome-stable"}

// findBrowser returns a Chromium to drive, or "" when the machine has none.
func findBrowser() string {
	for _, c := range browserCandidates {
		if p, err := exec.LookPath(c); err == nil {
			return p
		}
	}
	return ""
}

// browserOutput is where the browser test leaves screenshots of what it saw when it failed
// (git-ignored).
const browserOutput = "testdata/browser-output"

// browserTimeout bounds the browser's whole run: starting Chromium takes a second or two, each
// page a few hundred milliseconds.
const browserTimeout = 60 * time.Second

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

// TestFinancePageInABrowser settles a day with breaks on the real PostgreSQL, serves the finance
// page, and has Chromium do what a person does: open the page (and be sent to the login), log in
// with the admin token and a Chinese name, see the open breaks and the week's chart, follow the
// amount mismatch to its page, resolve it with a note, and see it resolved with the note and the
// name, and the open breaks one fewer; then accept the suggestion, resolve the other break with
// an adjustment through the ledger, and read the cycle's report and the trial balance. A failed
// step leaves a screenshot in testdata/browser-output.
func TestFinancePageInABrowser(t *testing.T) {
	browser := findBrowser()
	if browser == "" {
		t.Skip("no Chromium or Chrome on this machine (apt-get install chromium): the finance page is not tried in a real browser")
	}
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
	defer srv.Close()

	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(browser), chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun,
		chromedp.Flag("disable-quic", true), chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true), chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()), chromedp.WindowSize(1280, 1000),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancelAlloc()
	ctx, cancelBrowser := chromedp.NewContext(actx)
	defer cancelBrowser()
	ctx, cancel := context.WithTimeout(ctx, browserTimeout)
	defer cancel()

	// fail stops the test at a step, leaving a screenshot of the page as it stood.
	fail := func(step string, err error) {
		t.Helper()
		sctx, scancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer scancel()
		if shot, serr := chromedp.Run(sctx, chromedp.FullScreenshot(100)); serr == nil {
			if merr := os.MkdirAll(browserOutput, 0o755); merr == nil {
				name := filepath.Join(browserOutput, t.Name()+"-"+strings.ReplaceAll(step, " ", "-")+".png")
				if werr := os.WriteFile(name, shot, 0o644); werr == nil {
					t.Logf("screenshot of the failed step: %s", name)
				}
			}
		}
		t.Fatalf("%s: %v", step, err)
	}
	do := func(step string, actions ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(ctx, actions...); err != nil {
			fail(step, err)
		}
	}
	read := func(what string, a chromedp.Action[string]) string {
		t.Helper()
		s, err := chromedp.Run(ctx, a)
		if err != nil {
			fail("read "+what, err)
		}
		return strings.TrimSpace(s)
	}
	text := func(sel string) string {
		t.Helper()
		return read(sel, chromedp.Text(chromedp.CSS(sel)))
	}
	css := func(sel string) chromedp.CSS { return chromedp.CSS(sel) }

	const who = "王芳 Wang Fang"
	do("open the page and be sent to the login", chromedp.Navigate(srv.URL+"/finance/"), chromedp.WaitVisible(css("#token")))
	if got := read("the address", chromedp.Location()); got != srv.URL+"/finance/login" {
		t.Fatalf("without a session the page sent the browser to %s", got)
	}
	do("log in",
		chromedp.SendKeys(css("#name"), who),
		chromedp.SendKeys(css("#token"), testAdminToken),
		chromedp.Click(css("#login")),
		chromedp.WaitVisible(css("#open-breaks")))
	if got := text("#who"); got != who {
		t.Errorf("logged in as %q", got)
	}
	if got := text("#open-breaks"); got != "2" {
		fail("count the open breaks", fmt.Errorf("%q, want 2", got))
	}
	chart := read("the chart", chromedp.OuterHTML(css("#settled-chart")))
	for _, want := range []string{"中国工商银行嘉兴分行 ICBC Jiaxing, cycle 2026-03-03: -345.50 CNY",
		"中国农业银行嘉兴分行 ABC Jiaxing, cycle 2026-03-03: 345.50 CNY", "net settled, CNY"} {
		if !strings.Contains(chart, want) {
			t.Errorf("the chart lacks %q", want)
		}
	}

	do("follow the amount mismatch to its page",
		chromedp.Click(css(`a[href="/finance/breaks"]`)),
		chromedp.WaitVisible(css("#breaks")),
		chromedp.Click(chromedp.Search(`//table[@id="breaks"]//a[text()="amount mismatch"]`)),
		chromedp.WaitVisible(css("#resolve")))
	if got := text("#break-expected"); !strings.HasPrefix(got, "-345.50") {
		t.Errorf("expected %q", got)
	}
	if got := text("#break-actual"); !strings.HasPrefix(got, "-345.00") {
		t.Errorf("booked %q", got)
	}
	breakURL := read("the break's address", chromedp.Location())

	const note = "银行少付五角手续费 the bank took a 0.50 fee; agreed with ICBC"
	do("resolve it with a note",
		chromedp.SendKeys(css("#note"), note),
		chromedp.Click(css("#resolve-note")),
		chromedp.WaitVisible(css("#resolution")))
	if got := text("#break-status"); got != "resolved" {
		t.Errorf("status %q", got)
	}
	if got := text("#resolution-note"); got != note {
		t.Errorf("note %q", got)
	}
	if got := text("#resolution-by"); got != who {
		t.Errorf("resolved by %q", got)
	}
	if got := text("#resolution-at"); got != "2026-03-05 10:10:00" {
		t.Errorf("resolved at %q", got)
	}
	do("see the open breaks one fewer",
		chromedp.Click(css(`a[href="/finance/"]`)),
		chromedp.WaitVisible(css("#open-breaks")))
	if got := text("#open-breaks"); got != "1" {
		fail("count the open breaks again", fmt.Errorf("%q after resolving one, want 1", got))
	}

	do("accept the suggestion",
		chromedp.Click(css(`a[href="/finance/suggestions"]`)),
		chromedp.WaitVisible(css("#suggestions")),
		chromedp.Click(css(`#suggestions button[value="accept"]`)),
		chromedp.WaitVisible(css("#no-suggestions")))

	do("resolve the other break with an adjustment",
		chromedp.Click(css(`a[href="/finance/breaks"]`)),
		chromedp.WaitVisible(css("#breaks")),
		chromedp.Click(chromedp.Search(`//table[@id="breaks"]//a[text()="missing in ledger"]`)),
		chromedp.WaitVisible(css("#resolve")),
		chromedp.SendKeys(css("#note"), "未知来款 12.34 held in suspense until ABC explains it"),
		chromedp.Click(css("#resolve-adjustment")),
		chromedp.WaitVisible(css("#resolution")))
	if got := text("#resolution-kind"); got != "adjustment" {
		t.Errorf("resolved by %q, want an adjustment", got)
	}
	do("see no open break", chromedp.Click(css(`a[href="/finance/breaks"]`)), chromedp.WaitVisible(css("#no-breaks")))

	do("read the cycle's report", chromedp.Click(css(`a[href="/finance/"]`)), chromedp.WaitVisible(css("#cycles")),
		chromedp.Click(css(`#cycles a[href="/finance/cycles/2026-03-03"]`)), chromedp.WaitVisible(css("#report")))
	report := read("the report", chromedp.OuterHTML(css("#report")))
	// Bank, opening, settled, matched, items matched, closing, items, control sum, breaks, open:
	// ABC-JX's two items matched (one by its reference, one by the suggestion accepted); ICBC-JX's
	// one not, its break resolved.
	for _, want := range []string{`<span class="mono">ABC-JX</span> 中国农业银行嘉兴分行 ABC Jiaxing</td><td class="num">0.00</td><td class="num">345.50</td>` +
		`<td class="num">345.50</td><td class="num">2 of 2</td><td class="num">345.50</td><td class="num">2</td><td class="num">345.50</td><td class="num">0</td><td class="num">0</td>`,
		`<span class="mono">ICBC-JX</span> 中国工商银行嘉兴分行 ICBC Jiaxing</td><td class="num">0.00</td><td class="num">-345.50</td>` +
			`<td class="num">0.00</td><td class="num">0 of 1</td><td class="num">-345.50</td><td class="num">1</td><td class="num">345.50</td><td class="num">1</td><td class="num">0</td>`} {
		if !strings.Contains(strings.ReplaceAll(report, "\n", ""), want) {
			t.Errorf("the report lacks %q:\n%s", want, report)
		}
	}
	do("read the trial balance", chromedp.Click(css(`a[href="/finance/trial-balance"]`)), chromedp.WaitVisible(css("#trial")))
	if got := text("#trial tfoot"); !strings.Contains(got, "debits equal credits") {
		t.Errorf("the trial balance's totals: %q", got)
	}

	// What the browser did is in the store, in the person's name.
	id, err := uuid.Parse(breakURL[strings.LastIndex(breakURL, "/")+1:])
	if err != nil {
		t.Fatal(err)
	}
	b, err := rec.Break(context.Background(), ledger.ID(id))
	if err != nil || b.Resolution == nil || b.Resolution.By != who || b.Resolution.Note != note || b.Kind != reconcile.AmountMismatch {
		t.Fatalf("the break in the store: %+v %v", b, err)
	}
	if sugg, err := rec.Suggestions(context.Background(), ""); err != nil || len(sugg) != 0 {
		t.Fatalf("suggestions after accepting: %+v %v", sugg, err)
	}
	if strings.Contains(log.String(), `"level":"ERROR"`) {
		t.Errorf("errors were logged:\n%s", log.String())
	}
}
