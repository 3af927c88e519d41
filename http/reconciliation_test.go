package http

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/joinincard/engine/events"
	"github.com/joinincard/engine/ledger"
	"github.com/joinincard/engine/loadtest"
	"github.com/joinincard/engine/postgres"
	"github.com/joinincard/engine/reconcile"
	"github.com/joinincard/engine/reconcile/statement"
	"github.com/joinincard/engine/settlement"
	"github.com/joinincard/engine/settlement/bankfile"
)

// testStatementMaxBytes is the statement bound of the tests' servers: the real one, 1 GiB, is
// too much to send in a test.
const testStatementMaxBytes = 64 << 10

func init() {
	for route, st := range map[string][]int{
		"POST /v1/reconciliation/statements":             {200, 201, 400, 401, 403, 409, 413, 500, 503},
		"GET /v1/reconciliation/breaks":                  {200, 400, 401, 403, 500, 503},
		"GET /v1/reconciliation/breaks/{id}":             {200, 400, 401, 403, 404, 500, 503},
		"POST /v1/reconciliation/breaks/{id}/resolution": {201, 400, 401, 403, 404, 409, 413, 500, 503},
	} {
		statuses[route] = st
	}
	requestTypes["POST /v1/reconciliation/breaks/{id}/resolution"] = resolveBreakRequest{}
	responseTypes["POST /v1/reconciliation/statements"] = statementImportView{}
	responseTypes["GET /v1/reconciliation/breaks"] = reconBreakListView{}
	responseTypes["GET /v1/reconciliation/breaks/{id}"] = reconBreakDetailView{}
	responseTypes["POST /v1/reconciliation/breaks/{id}/resolution"] = reconBreakDetailView{}
	rawRequestBodies["POST /v1/reconciliation/statements"] = []string{"application/xml", "text/csv"}

	featureEnvs = append(featureEnvs, func(t testing.TB, e *env, cfg *Config) {
		f := newFakeReconciliation(e.clock.Now)
		e.features["reconciliation"] = f
		rc := NewReconciliation(f)
		rc.MaxStatementBytes = testStatementMaxBytes
		cfg.Features = append(cfg.Features, rc)
	})
	featureStatusCases = append(featureStatusCases, reconciliationStatusCases()...)
}

// The fake's breaks: an amount mismatch of ICBC-JX with its entry, a statement gap of ABC-JX
// (nothing to adjust), a timing break of ABC-JX resolved before.
var (
	reconMismatch = ledger.ID{0x01, 0x95, 0xa3, 0xc2, 0x5e, 0x00, 0x7a, 0x41, 0x8b, 0x3e, 0x2f, 0x7d, 0x9c, 0x1e, 0x5a, 0x01}
	reconGap      = ledger.ID{0x01, 0x95, 0xa3, 0xc2, 0x5e, 0x00, 0x7a, 0x41, 0x8b, 0x3e, 0x2f, 0x7d, 0x9c, 0x1e, 0x5a, 0x02}
	reconDone     = ledger.ID{0x01, 0x95, 0xa3, 0xc2, 0x5e, 0x00, 0x7a, 0x41, 0x8b, 0x3e, 0x2f, 0x7d, 0x9c, 0x1e, 0x5a, 0x03}
	reconItem     = ledger.ID{0x01, 0x95, 0xa3, 0xc2, 0x5e, 0x00, 0x7a, 0x41, 0x8b, 0x3e, 0x2f, 0x7d, 0x9c, 0x1e, 0x5c, 0x01}
	reconUnknown  = "0195a3c2-5e00-7a41-8b3e-2f7d9c1e5aff"
	// The fake's statements are booked on the fake's value date.
	reconValueDay = settlement.Date{Year: 2026, Month: time.March, Day: 2}
)

// fakeReconciliation is the reconciler in memory. Import reads the statement through, as the
// store does, and keeps it only when the reader ends without an error; the same statement again
// is a replay, its id or sequence with other content a conflict. Reconcile decides the entries
// not decided yet: one with an end-to-end reference matches, one without is a break missing in
// the ledger. errs makes a method fail.
type fakeReconciliation struct {
	mu    sync.Mutex
	now   func() time.Time
	banks []string
	// statements holds each statement's content hash by bank and id, and seqs its id by bank
	// and sequence.
	statements map[string]string
	seqs       map[string]string
	pending    map[string][]postgres.BreakEntry // entries not reconciled yet, by bank
	breaks     []postgres.Break
	filters    []postgres.BreakFilter // every filter Breaks was given
	// onEntry, when set, is called as Import reads each entry.
	onEntry func(n int)
	errs    map[string]error
}

func newFakeReconciliation(now func() time.Time) *fakeReconciliation {
	f := &fakeReconciliation{now: now, banks: []string{"ABC-JX", "ICBC-JX"}, statements: map[string]string{}, seqs: map[string]string{},
		pending: map[string][]postgres.BreakEntry{}, errs: map[string]error{}}
	detected := time.Date(2026, time.March, 2, 20, 0, 0, 0, time.UTC)
	cycle := fakeDay
	f.breaks = []postgres.Break{
		{ID: reconMismatch, Bank: "ICBC-JX", Kind: reconcile.AmountMismatch, Cycle: &cycle, Item: reconItem, File: "JIC-20260228-00000000-000001",
			Expected: i64(-150_00), Actual: i64(-150_01), ExpectedDate: &reconValueDay, ActualDate: &reconValueDay, AsOf: reconValueDay,
			Detail: "-150.01 booked, -150.00 expected", DetectedAt: detected, Age: 0, Bucket: reconcile.Age0to1,
			Entries: []postgres.BreakEntry{{Statement: "STMT-ICBC-JX-000001", Line: 1, EntryRef: "B000001000001",
				Ref: settlement.FileItemID(reconItem), Amount: -150_01, BookingDate: reconValueDay, ValueDate: reconValueDay,
				Info: "工商银行 清算 settlement"}}},
		{ID: reconGap, Bank: "ABC-JX", Kind: reconcile.StatementGap, AsOf: settlement.AddDays(reconValueDay, -9),
			Detail: "statement 3 of the bank's sequence is missing", DetectedAt: detected, Age: 9, Bucket: reconcile.Age8to30},
		{ID: reconDone, Bank: "ABC-JX", Kind: reconcile.Timing, Cycle: &cycle, AsOf: settlement.AddDays(reconValueDay, -3),
			Expected: i64(10_00), Actual: i64(10_00), Detail: "value date late", DetectedAt: detected, Age: 3, Bucket: reconcile.Age2to7,
			Resolution: &postgres.Resolution{Kind: "adjustment", Note: "银行确认 confirmed by phone", By: "李娜", At: detected.Add(time.Hour),
				TransferID: ledger.ID{0xad, 0x01}}},
	}
	return f
}

func reconFake(e *env) *fakeReconciliation { return e.features["reconciliation"].(*fakeReconciliation) }

func (f *fakeReconciliation) fail(method string, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.errs[method] = err
}

func (f *fakeReconciliation) Import(_ context.Context, rd *statement.Reader) (postgres.Imported, bool, error) {
	h := rd.Header()
	res := postgres.Imported{Bank: h.BankID, Statement: h.StatementID, Sequence: h.Sequence}
	f.mu.Lock()
	err, onEntry := f.errs["Import"], f.onEntry
	known := slices.Contains(f.banks, h.BankID)
	f.mu.Unlock()
	if err != nil {
		return res, false, err
	}
	if !known {
		return res, false, fmt.Errorf("statement of %q: %w", h.BankID, postgres.ErrUnknownBank)
	}
	sum := sha256.New()
	var entries []postgres.BreakEntry
	for {
		e, err := rd.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			// As the store returns it: through its transaction's wrapping.
			return res, false, fmt.Errorf("batch transaction: %w", err)
		}
		fmt.Fprintf(sum, "%d %s %s %s %s %s %s\n", e.Amount, e.Direction, e.BookingDate, e.ValueDate, e.EntryRef, e.EndToEndRef, e.AdditionalInfo)
		entries = append(entries, postgres.BreakEntry{Statement: h.StatementID, Line: int64(len(entries) + 1), EntryRef: e.EntryRef,
			Ref: e.EndToEndRef, Amount: e.Signed(), BookingDate: e.BookingDate, ValueDate: e.ValueDate, Info: e.AdditionalInfo})
		if onEntry != nil {
			onEntry(len(entries))
		}
	}
	h = rd.Header()
	fmt.Fprintf(sum, "%s %s %d %d %d %d %d", h.BankID, h.StatementID, h.Sequence, h.OpeningBalance, h.ClosingBalance, h.Sum, h.Net)
	hash := fmt.Sprintf("%x", sum.Sum(nil))
	res.Entries = int64(len(entries))
	f.mu.Lock()
	defer f.mu.Unlock()
	key, seq := h.BankID+" "+h.StatementID, fmt.Sprintf("%s %d", h.BankID, h.Sequence)
	if prior, ok := f.statements[key]; ok {
		if prior != hash {
			return res, false, fmt.Errorf("statement %s: %w", h.StatementID, postgres.ErrStatementConflict)
		}
		return res, true, nil
	}
	if id, ok := f.seqs[seq]; ok && id != h.StatementID {
		return res, false, fmt.Errorf("sequence %d: %w", h.Sequence, postgres.ErrStatementConflict)
	}
	f.statements[key], f.seqs[seq] = hash, h.StatementID
	f.pending[h.BankID] = append(f.pending[h.BankID], entries...)
	return res, false, nil
}

func (f *fakeReconciliation) Reconcile(_ context.Context, bank string) (postgres.ReconcileReport, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	rep := postgres.ReconcileReport{Bank: bank, Breaks: map[reconcile.BreakKind]int64{}}
	if err := f.errs["Reconcile"]; err != nil {
		return rep, err
	}
	for _, e := range f.pending[bank] {
		rep.Entries++
		if e.Ref != "" {
			rep.Matched++
			continue
		}
		h := sha256.Sum256([]byte(bank + " " + e.Statement + " " + fmt.Sprint(e.Line)))
		actual, booked := e.Amount, e.ValueDate
		f.breaks = append(f.breaks, postgres.Break{ID: ledger.ID(h[:16]), Bank: bank, Kind: reconcile.MissingInLedger, Actual: &actual,
			ActualDate: &booked, AsOf: e.BookingDate, Detail: "names nothing the engine settled", DetectedAt: f.now(),
			Bucket: reconcile.Age0to1, Entries: []postgres.BreakEntry{e}})
		rep.Breaks[reconcile.MissingInLedger]++
	}
	delete(f.pending, bank)
	return rep, nil
}

func (f *fakeReconciliation) Breaks(_ context.Context, flt postgres.BreakFilter) ([]postgres.Break, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.filters = append(f.filters, flt)
	if err := f.errs["Breaks"]; err != nil {
		return nil, err
	}
	var out []postgres.Break
	for _, b := range f.breaks {
		if (flt.Bank == "" || b.Bank == flt.Bank) && (!flt.Open || b.Resolution == nil) && (flt.Cycle == nil || b.Cycle != nil && *b.Cycle == *flt.Cycle) {
			b.Entries = nil // the store's listing reads no entries
			out = append(out, b)
		}
	}
	return out[:min(len(out), flt.Limit)], nil
}

func (f *fakeReconciliation) Break(_ context.Context, id ledger.ID) (postgres.Break, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.errs["Break"]; err != nil {
		return postgres.Break{}, err
	}
	for _, b := range f.breaks {
		if b.ID == id {
			return b, nil
		}
	}
	return postgres.Break{}, fmt.Errorf("break %s: %w", id, postgres.ErrNotFound)
}

// resolve resolves by the store's rules: once; an adjustment only of a break with an amount.
func (f *fakeReconciliation) resolve(id ledger.ID, kind, by, note string) (postgres.Break, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.errs["Resolve"]; err != nil {
		return postgres.Break{}, err
	}
	for i, b := range f.breaks {
		if b.ID != id {
			continue
		}
		if b.Resolution != nil {
			return postgres.Break{}, postgres.ErrBreakResolved
		}
		res := &postgres.Resolution{Kind: kind, Note: note, By: by, At: f.now()}
		if kind == "adjustment" {
			if b.Expected == nil && b.Actual == nil {
				return postgres.Break{}, postgres.ErrNotAdjustable
			}
			res.TransferID = ledger.ID{0xad, id[15]}
		}
		f.breaks[i].Resolution = res
		return f.breaks[i], nil
	}
	return postgres.Break{}, fmt.Errorf("break %s: %w", id, postgres.ErrNotFound)
}

func (f *fakeReconciliation) ResolveWithNote(_ context.Context, id ledger.ID, by, note string) (postgres.Break, error) {
	return f.resolve(id, "note", by, note)
}

func (f *fakeReconciliation) ResolveWithAdjustment(_ context.Context, id ledger.ID, by, note string) (postgres.Break, error) {
	return f.resolve(id, "adjustment", by, note)
}

var _ ReconciliationService = (*fakeReconciliation)(nil)

// --- statements to send -------------------------------------------------------------------------

// testStatement is a statement of bank booked on the fake's value date: a debit of 150.01 naming
// an item, and a credit of 12.34 naming nothing.
func testStatement(bank, id string, seq int64) *statement.Statement {
	s := &statement.Statement{Header: statement.Header{StatementID: id, CreatedAt: t0, BankID: bank, Sequence: seq,
		From: reconValueDay, To: reconValueDay, Currency: statement.CurrencyCNY, OpeningBalance: 1_000_00},
		Entries: []statement.Entry{
			{Amount: 150_01, Direction: statement.Debit, BookingDate: reconValueDay, ValueDate: reconValueDay, EntryRef: "E-1",
				EndToEndRef: settlement.FileItemID(reconItem), AdditionalInfo: "工商银行 清算 settlement"},
			{Amount: 12_34, Direction: statement.Credit, BookingDate: reconValueDay, ValueDate: reconValueDay, EntryRef: "E-2",
				AdditionalInfo: "未知来款 unknown credit"},
		}}
	loadtest.Retotal(s)
	return s
}

// statementBody writes s as XML, or as CSV with csv.
func statementBody(t testing.TB, s *statement.Statement, csv bool) string {
	t.Helper()
	var b bytes.Buffer
	write := statement.WriteXML
	if csv {
		write = statement.WriteCSV
	}
	if err := write(&b, s.Header, slices.Values(s.Entries)); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

func postStatement(body string, csv bool) request {
	ct := "application/xml"
	if csv {
		ct = "text/csv"
	}
	return request{method: "POST", path: "/v1/reconciliation/statements", body: body, header: map[string]string{"Content-Type": ct}}
}

func breakPath(id ledger.ID) string { return "/v1/reconciliation/breaks/" + id.String() }

func resolution(id ledger.ID, body string) request {
	return request{method: "POST", path: breakPath(id) + "/resolution", body: body}
}

func reconFailing(method string, err error, next func(t *testing.T, e *env) *httptest.ResponseRecorder) func(t *testing.T, e *env) *httptest.ResponseRecorder {
	return func(t *testing.T, e *env) *httptest.ResponseRecorder {
		reconFake(e).fail(method, err)
		return next(t, e)
	}
}

func reconciliationStatusCases() []statusCase {
	var cs []statusCase
	add := func(route string, c ...statusCase) {
		for _, x := range c {
			x.route = route
			cs = append(cs, x)
		}
	}
	stmt := func(change func(s *statement.Statement), csv bool) func(t *testing.T, e *env) *httptest.ResponseRecorder {
		return func(t *testing.T, e *env) *httptest.ResponseRecorder {
			s := testStatement("ICBC-JX", "STMT-ICBC-JX-000001", 1)
			if change != nil {
				change(s)
			}
			return e.do(t, postStatement(statementBody(t, s, csv), csv))
		}
	}
	twice := func(first, second func(t *testing.T, e *env) *httptest.ResponseRecorder) func(t *testing.T, e *env) *httptest.ResponseRecorder {
		return func(t *testing.T, e *env) *httptest.ResponseRecorder {
			if w := first(t, e); w.Code != http.StatusCreated {
				t.Fatalf("first statement: %d %s", w.Code, w.Body.String())
			}
			return second(t, e)
		}
	}
	xml := func(t *testing.T, e *env) *httptest.ResponseRecorder { return stmt(nil, false)(t, e) }
	// edited sends the statement with old replaced by new in its bytes, once.
	edited := func(csv bool, old, new string) func(t *testing.T, e *env) *httptest.ResponseRecorder {
		return func(t *testing.T, e *env) *httptest.ResponseRecorder {
			body := statementBody(t, testStatement("ICBC-JX", "STMT-ICBC-JX-000001", 1), csv)
			if strings.Count(body, old) != 1 {
				t.Fatalf("%q is not once in the statement:\n%s", old, body)
			}
			return e.do(t, postStatement(strings.Replace(body, old, new, 1), csv))
		}
	}
	cut := func(t *testing.T, e *env) *httptest.ResponseRecorder {
		body := statementBody(t, testStatement("ICBC-JX", "STMT-ICBC-JX-000001", 1), false)
		return e.do(t, postStatement(body[:len(body)/2], false))
	}
	const statements = "/v1/reconciliation/statements"
	add("POST /v1/reconciliation/statements",
		statusCase{name: "xml", status: 201, run: xml},
		statusCase{name: "csv", status: 201, run: stmt(nil, true)},
		statusCase{name: "the same statement again", status: 200, run: twice(xml, xml)},
		statusCase{name: "the same statement again as csv", status: 200, run: twice(xml, stmt(nil, true))},
		statusCase{name: "its id with other content", status: 409, code: ECONFLICT,
			message: "statement STMT-ICBC-JX-000001 of bank ICBC-JX, sequence 1: its id or its sequence was imported before with other content",
			run:     twice(xml, stmt(func(s *statement.Statement) { s.Entries[1].AdditionalInfo = "other" }, false))},
		statusCase{name: "its sequence under another id", status: 409, code: ECONFLICT, message: "sequence 1: its id or its sequence",
			run: twice(xml, stmt(func(s *statement.Statement) { s.Header.StatementID = "STMT-OTHER" }, false))},
		statusCase{name: "a bank not registered", status: 400, code: EINVALID, message: `statement: header: bank "CCB-JX" is not registered`,
			run: stmt(func(s *statement.Statement) { s.Header.BankID = "CCB-JX" }, false)},
		statusCase{name: "its period ends in the future", status: 400, code: EINVALID,
			message: "statement: header: statement STMT-ICBC-JX-000001 of bank ICBC-JX: its period ends 2062-03-02, after 2026-03-06, today in Asia/Shanghai plus 1 day",
			run: reconFailing("Import", fmt.Errorf("batch transaction: %w", &postgres.FutureStatementError{Bank: "ICBC-JX", Statement: "STMT-ICBC-JX-000001",
				To: settlement.Date{Year: 2062, Month: 3, Day: 2}, Latest: settlement.Date{Year: 2026, Month: 3, Day: 6}}), xml)},
		statusCase{name: "cut in half", status: 400, code: EINVALID, message: "statement: line ", run: cut},
		statusCase{name: "an entry changed after the totals", status: 400, code: EINVALID,
			message: "statement: line 50: header: Stmt/TxsSummry/TtlNtries/Sum: control sum disagrees: states 162.35, the entries sum to 162.36; line 52: header: ",
			run:     edited(false, ">12.34<", ">12.35<")},
		statusCase{name: "a csv entry changed after the totals", status: 400, code: EINVALID, message: "statement: line 5: trailer: ",
			run: edited(true, ",12.34,", ",12.35,")},
		statusCase{name: "a card number in an entry", status: 400, code: EINVALID, message: "looks like a card number in clear",
			run: func(t *testing.T, e *env) *httptest.ResponseRecorder {
				body := statementBody(t, testStatement("ICBC-JX", "S-1", 1), true)
				return e.do(t, postStatement(strings.Replace(body, "未知来款 unknown credit", "卡号 "+testPAN, 1), true))
			}},
		statusCase{name: "empty", status: 400, code: EINVALID, message: "statement: ", run: send(postStatement(" ", false))},
		statusCase{name: "json", status: 400, code: EINVALID, message: "content-type: want application/xml or text/csv",
			run: send(request{method: "POST", path: statements, body: `{"statement":"x"}`})},
		statusCase{name: "latin-1", status: 400, code: EINVALID, message: "content-type: charset must be utf-8",
			run: send(request{method: "POST", path: statements, body: "<x/>", header: map[string]string{"Content-Type": "text/csv; charset=iso-8859-1"}})},
		statusCase{name: "without auth", status: 401, code: EUNAUTHORIZED, run: send(request{method: "POST", path: statements, auth: "-"})},
		statusCase{name: "with a bank key", status: 403, code: EFORBIDDEN, run: func(t *testing.T, e *env) *httptest.ResponseRecorder {
			rq := postStatement(statementBody(t, testStatement("ICBC-JX", "S-1", 1), false), false)
			return e.do(t, asBank(icbcKey, rq))
		}},
		statusCase{name: "too large", status: 413, code: ETOOLARGE, message: fmt.Sprintf("larger than %d bytes", testStatementMaxBytes),
			run: func(t *testing.T, e *env) *httptest.ResponseRecorder {
				s := testStatement("ICBC-JX", "S-1", 1)
				for len(s.Entries) < 400 { // about 500 bytes each in XML
					s.Entries = append(s.Entries, s.Entries[1])
				}
				loadtest.Retotal(s)
				return e.do(t, postStatement(statementBody(t, s, false), false))
			}},
		statusCase{name: "import broken", status: 500, code: EINTERNAL, run: reconFailing("Import", errBroken, xml)},
		statusCase{name: "reconcile broken", status: 500, code: EINTERNAL, run: reconFailing("Reconcile", errBroken, xml)},
		statusCase{name: "import busy", status: 503, code: EUNAVAILABLE, message: "busy", run: reconFailing("Import", busy, xml)},
		statusCase{name: "import retried after reading", status: 503, code: EUNAVAILABLE, message: "kept nothing: send it again",
			run: reconFailing("Import", fmt.Errorf("batch transaction: %w", postgres.ErrStatementReadOnce), xml)},
		statusCase{name: "reconcile busy", status: 503, code: EUNAVAILABLE, message: "busy", run: reconFailing("Reconcile", busy, xml)},
		statusCase{name: "no admin token", status: 503, code: EUNAVAILABLE, opts: []envOption{noAdmin}, run: xml},
	)
	list := func(query string) request { return request{method: "GET", path: "/v1/reconciliation/breaks" + query} }
	add("GET /v1/reconciliation/breaks",
		statusCase{name: "every break", status: 200, run: send(list(""))},
		statusCase{name: "filtered", status: 200, run: send(list("?bank=ABC-JX&open=true&cycle=2026-02-28&limit=10"))},
		statusCase{name: "open of nothing", status: 200, run: send(list("?open=false&bank=BOC-JX"))},
		statusCase{name: "unknown parameter", status: 400, code: EINVALID, message: `unknown query parameter "status", want bank, open, cycle or limit`,
			run: send(list("?status=open"))},
		statusCase{name: "open neither true nor false", status: 400, code: EINVALID, message: "open: want true or false", run: send(list("?open=yes"))},
		statusCase{name: "cycle malformed", status: 400, code: EINVALID, message: "cycle: want a cycle date", run: send(list("?cycle=2026-2-28"))},
		statusCase{name: "limit zero", status: 400, code: EINVALID, message: "limit: want one number from 1 to 1000", run: send(list("?limit=0"))},
		statusCase{name: "limit over the bound", status: 400, code: EINVALID, message: "limit: ", run: send(list("?limit=1001"))},
		statusCase{name: "bank twice", status: 400, code: EINVALID, message: "bank: give it once", run: send(list("?bank=A&bank=B"))},
		statusCase{name: "bank empty", status: 400, code: EINVALID, message: "bank: missing", run: send(list("?bank="))},
		statusCase{name: "bank with a space", status: 400, code: EINVALID, message: "bank: must be printable ascii", run: send(list("?bank=ICBC%20JX"))},
		statusCase{name: "without auth", status: 401, code: EUNAUTHORIZED, run: send(request{method: "GET", path: "/v1/reconciliation/breaks", auth: "-"})},
		statusCase{name: "wrong token", status: 403, code: EFORBIDDEN, run: send(request{method: "GET", path: "/v1/reconciliation/breaks", auth: "Bearer x"})},
		statusCase{name: "store broken", status: 500, code: EINTERNAL, run: reconFailing("Breaks", errBroken, send(list("")))},
		statusCase{name: "store busy", status: 503, code: EUNAVAILABLE, run: reconFailing("Breaks", busy, send(list("")))},
	)
	get := request{method: "GET", path: breakPath(reconMismatch)}
	add("GET /v1/reconciliation/breaks/{id}",
		statusCase{name: "get", status: 200, run: send(get)},
		statusCase{name: "get resolved", status: 200, run: send(request{method: "GET", path: breakPath(reconDone)})},
		statusCase{name: "unknown", status: 404, code: ENOTFOUND, message: "no break " + reconUnknown,
			run: send(request{method: "GET", path: "/v1/reconciliation/breaks/" + reconUnknown})},
		statusCase{name: "not a uuid", status: 400, code: EINVALID, message: "id: want a break id (a UUID)",
			run: send(request{method: "GET", path: "/v1/reconciliation/breaks/12"})},
		statusCase{name: "without auth", status: 401, code: EUNAUTHORIZED, run: send(request{method: "GET", path: get.path, auth: "-"})},
		statusCase{name: "with a bank key", status: 403, code: EFORBIDDEN, run: send(asBank(abcKey, get))},
		statusCase{name: "store broken", status: 500, code: EINTERNAL, run: reconFailing("Break", errBroken, send(get))},
		statusCase{name: "store busy", status: 503, code: EUNAVAILABLE, run: reconFailing("Break", busy, send(get))},
	)
	note := `{"kind":"note","note":"the bank booked a fen more; refunded","by":"李娜"}`
	resolve := resolution(reconMismatch, note)
	add("POST /v1/reconciliation/breaks/{id}/resolution",
		statusCase{name: "note", status: 201, run: send(resolve)},
		statusCase{name: "adjustment", status: 201,
			run: send(resolution(reconMismatch, `{"kind":"adjustment","note":"booked as the bank did\n银行确认","by":"Li Na"}`))},
		statusCase{name: "resolved before", status: 409, code: ECONFLICT, message: "was resolved before", run: send(resolution(reconDone, note))},
		statusCase{name: "resolved twice", status: 409, code: ECONFLICT, message: "was resolved before", run: func(t *testing.T, e *env) *httptest.ResponseRecorder {
			if w := e.do(t, resolve); w.Code != http.StatusCreated {
				t.Fatalf("first: %d %s", w.Code, w.Body.String())
			}
			return e.do(t, resolve)
		}},
		statusCase{name: "nothing to adjust", status: 409, code: ECONFLICT, message: "has no amount difference to adjust: resolve it with a note",
			run: send(resolution(reconGap, `{"kind":"adjustment","note":"x","by":"Li Na"}`))},
		statusCase{name: "unknown", status: 404, code: ENOTFOUND, message: "no break " + reconUnknown,
			run: send(request{method: "POST", path: "/v1/reconciliation/breaks/" + reconUnknown + "/resolution", body: note})},
		statusCase{name: "not a uuid", status: 400, code: EINVALID, message: "id: want a break id",
			run: send(request{method: "POST", path: "/v1/reconciliation/breaks/x/resolution", body: note})},
		statusCase{name: "kind unknown", status: 400, code: EINVALID, message: "kind: want note or adjustment",
			run: send(resolution(reconMismatch, `{"kind":"write_off","note":"x","by":"Li Na"}`))},
		statusCase{name: "kind missing", status: 400, code: EINVALID, message: "kind: want note or adjustment",
			run: send(resolution(reconMismatch, `{"note":"x","by":"Li Na"}`))},
		statusCase{name: "by missing", status: 400, code: EINVALID, message: "by: missing", run: send(resolution(reconMismatch, `{"kind":"note","note":"x"}`))},
		statusCase{name: "by with a newline", status: 400, code: EINVALID, message: "by: must not contain control characters",
			run: send(resolution(reconMismatch, `{"kind":"note","note":"x","by":"Li\nNa"}`))},
		statusCase{name: "note missing", status: 400, code: EINVALID, message: "note: missing: say why",
			run: send(resolution(reconMismatch, `{"kind":"note","note":" \n ","by":"Li Na"}`))},
		statusCase{name: "note too long", status: 400, code: EINVALID, message: "note: more than 2000 bytes",
			run: send(resolution(reconMismatch, `{"kind":"note","note":"`+strings.Repeat("账", 667)+`","by":"Li Na"}`))},
		statusCase{name: "note with a control character", status: 400, code: EINVALID, message: "note: must not contain control characters",
			run: send(resolution(reconMismatch, `{"kind":"note","note":"a\u001bb","by":"Li Na"}`))},
		statusCase{name: "note with a card number", status: 400, code: EINVALID, message: "note: looks like a card number in clear",
			run: send(resolution(reconMismatch, `{"kind":"note","note":"card `+testPAN+` paid twice","by":"Li Na"}`))},
		statusCase{name: "unknown field", status: 400, code: EINVALID, message: `unknown field "amount"`,
			run: send(resolution(reconMismatch, `{"kind":"note","note":"x","by":"Li Na","amount":"0.01"}`))},
		statusCase{name: "without auth", status: 401, code: EUNAUTHORIZED,
			run: send(request{method: "POST", path: resolve.path, body: note, auth: "-"})},
		statusCase{name: "wrong token", status: 403, code: EFORBIDDEN,
			run: send(request{method: "POST", path: resolve.path, body: note, auth: "Bearer " + testAdminToken + "x"})},
		statusCase{name: "too large", status: 413, code: ETOOLARGE,
			run: send(resolution(reconMismatch, `{"kind":"note","note":"`+strings.Repeat("a", maxRequestBytes)+`","by":"x"}`))},
		statusCase{name: "store broken", status: 500, code: EINTERNAL, run: reconFailing("Resolve", errBroken, send(resolve))},
		statusCase{name: "store busy", status: 503, code: EUNAVAILABLE, run: reconFailing("Resolve", busy, send(resolve))},
		statusCase{name: "no admin token", status: 503, code: EUNAVAILABLE, opts: []envOption{noAdmin}, run: send(resolve)},
	)
	return cs
}

// --- behaviour --------------------------------------------------------------------------------------

// A statement posted in XML is imported and its bank reconciled: 201 with both; its entry that
// names nothing became a break, which the listing shows. The same statement in CSV is a replay:
// 200, reconciled again, nothing new.
func TestReconciliationImportsAStatementAndReconcilesItsBank(t *testing.T) {
	e := newEnv(t)
	s := testStatement("ICBC-JX", "STMT-ICBC-JX-000001", 1)
	w := e.do(t, postStatement(statementBody(t, s, false), false))
	if w.Code != http.StatusCreated {
		t.Fatalf("import: %d %s", w.Code, w.Body.String())
	}
	var v statementImportView
	decodeStrictly(t, w, &v)
	want := statementImportView{Bank: "ICBC-JX", StatementID: "STMT-ICBC-JX-000001", Sequence: 1, Entries: 2,
		Reconciliation: reconcileRunView{Bank: "ICBC-JX", Entries: 2, Matched: 1, Breaks: breakCountView{MissingInLedger: 1}}}
	if v != want {
		t.Errorf("import\n got %+v\nwant %+v", v, want)
	}
	var list reconBreakListView
	decodeStrictly(t, e.do(t, request{method: "GET", path: "/v1/reconciliation/breaks?bank=ICBC-JX&open=true"}), &list)
	if len(list.Breaks) != 2 || list.Breaks[1].Kind != "missing_in_ledger" || list.Breaks[1].Actual != "12.34" ||
		list.Breaks[1].Expected != "" || list.Breaks[1].ActualDate != "2026-03-02" {
		t.Errorf("the breaks after the import: %+v", list.Breaks)
	}

	w = e.do(t, postStatement(statementBody(t, s, true), true))
	var again statementImportView
	decodeStrictly(t, w, &again)
	want.Replayed, want.Reconciliation = true, reconcileRunView{Bank: "ICBC-JX"}
	if w.Code != http.StatusOK || again != want {
		t.Errorf("the same statement in CSV: %d\n got %+v\nwant %+v", w.Code, again, want)
	}
	if !strings.Contains(w.Body.String(), `"breaks":{"missing_at_bank":0,"missing_in_ledger":0,"amount_mismatch":0,"duplicate":0,"timing":0,"statement_gap":0}`) {
		t.Errorf("every kind of break is counted, none left out: %s", w.Body.String())
	}
}

// The statement streams from the request into the import: the importer reads its first entries
// while the client has not sent the rest.
func TestReconciliationStreamsTheStatementIntoTheImport(t *testing.T) {
	e := newEnv(t)
	s := testStatement("ICBC-JX", "STMT-ICBC-JX-000001", 1)
	for len(s.Entries) < 60 {
		s.Entries = append(s.Entries, s.Entries[1])
	}
	loadtest.Retotal(s)
	body := statementBody(t, s, true)
	lines := strings.SplitAfter(body, "\n")
	firstRead := make(chan struct{})
	var once sync.Once
	f := reconFake(e)
	f.mu.Lock()
	f.onEntry = func(int) { once.Do(func() { close(firstRead) }) }
	f.mu.Unlock()

	pr, pw := io.Pipe()
	go func() {
		// The column header, the header record and ten entries; the rest once the importer
		// has read an entry.
		for _, l := range lines[:12] {
			if _, err := io.WriteString(pw, l); err != nil {
				return
			}
		}
		select {
		case <-firstRead:
		case <-time.After(10 * time.Second):
			pw.CloseWithError(errors.New("the importer read no entry before the whole body was sent"))
			return
		}
		for _, l := range lines[12:] {
			if _, err := io.WriteString(pw, l); err != nil {
				return
			}
		}
		pw.Close()
	}()
	r := httptest.NewRequest("POST", "/v1/reconciliation/statements", pr)
	r.Header.Set("Authorization", "Bearer "+testAdminToken)
	r.Header.Set("Content-Type", "text/csv")
	w := httptest.NewRecorder()
	e.h.ServeHTTP(w, r)
	var v statementImportView
	decodeStrictly(t, w, &v)
	if w.Code != http.StatusCreated || v.Entries != 60 {
		t.Fatalf("streamed import: %d %s", w.Code, w.Body.String())
	}
}

// A statement may take longer than the server's own timeouts, which bound requests that take
// milliseconds: its request gets the statement's time, and a client sending slowly, within it,
// gets its answer.
func TestReconciliationStatementOutlastsTheServersTimeouts(t *testing.T) {
	e := newEnv(t)
	srv := httptest.NewUnstartedServer(e.h)
	srv.Config.ReadTimeout, srv.Config.WriteTimeout = 200*time.Millisecond, 200*time.Millisecond
	srv.Start()
	defer srv.Close()
	body := statementBody(t, testStatement("ICBC-JX", "STMT-ICBC-JX-000001", 1), true)
	pr, pw := io.Pipe()
	go func() {
		for _, l := range strings.SplitAfter(body, "\n") {
			time.Sleep(100 * time.Millisecond) // the whole body takes 600 ms, thrice the timeouts
			if _, err := io.WriteString(pw, l); err != nil {
				return
			}
		}
		pw.Close()
	}()
	rq, err := http.NewRequest("POST", srv.URL+"/v1/reconciliation/statements", pr)
	if err != nil {
		t.Fatal(err)
	}
	rq.Header.Set("Authorization", "Bearer "+testAdminToken)
	rq.Header.Set("Content-Type", "text/csv")
	resp, err := srv.Client().Do(rq)
	if err != nil {
		t.Fatalf("a statement sent slowly: %v", err)
	}
	defer resp.Body.Close()
	answer, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusCreated || !resp.Close {
		t.Fatalf("a statement sent slowly: %d %v %s; the connection closes after it: %v", resp.StatusCode, err, answer, resp.Close)
	}
	// Other requests keep the server's timeouts.
	conn, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	start := time.Now()
	if _, err := io.WriteString(conn, "POST /v1/reconciliation/breaks/"+reconMismatch.String()+"/resolution HTTP/1.1\r\nHost: x\r\n"+
		"Authorization: Bearer "+testAdminToken+"\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadAll(conn); err != nil || time.Since(start) > 5*time.Second {
		t.Errorf("a slow resolution was let through for %s: %v", time.Since(start), err)
	}
}

// A statement refused by the reader is refused whole, naming where, and nothing of it is
// kept: the whole statement imports afterwards as new.
func TestReconciliationRefusedStatementKeepsNothing(t *testing.T) {
	e := newEnv(t)
	s := testStatement("ABC-JX", "STMT-ABC-JX-000001", 1)
	body := statementBody(t, s, false)
	w := e.do(t, postStatement(body[:len(body)/2], false))
	if w.Code != http.StatusBadRequest || !strings.HasPrefix(errorOf(t, w).Message, "statement: line ") {
		t.Fatalf("half a statement: %d %s", w.Code, w.Body.String())
	}
	if w := e.do(t, postStatement(body, false)); w.Code != http.StatusCreated {
		t.Fatalf("the whole statement after half of it: %d %s", w.Code, w.Body.String())
	}
}

// The listing and the view of a break: every field as the API writes it, the amounts signed
// decimals, the resolution null while open; the filters reach the store as given.
func TestReconciliationBreakViews(t *testing.T) {
	e := newEnv(t)
	var list reconBreakListView
	decodeStrictly(t, e.do(t, request{method: "GET", path: "/v1/reconciliation/breaks"}), &list)
	if len(list.Breaks) != 3 {
		t.Fatalf("breaks %+v", list.Breaks)
	}
	want := reconBreakView{ID: reconMismatch.String(), Bank: "ICBC-JX", Kind: "amount_mismatch", Cycle: "2026-02-28",
		ItemID: settlement.FileItemID(reconItem), FileID: "JIC-20260228-00000000-000001", Expected: "-150.00", Actual: "-150.01",
		ExpectedDate: "2026-03-02", ActualDate: "2026-03-02", AsOf: "2026-03-02", AgeDays: 0, AgeBucket: "0-1",
		Detail: "-150.01 booked, -150.00 expected", DetectedAt: "2026-03-03T04:00:00+08:00"}
	if !reflect.DeepEqual(list.Breaks[0], want) {
		t.Errorf("the mismatch\n got %+v\nwant %+v", list.Breaks[0], want)
	}
	gap := list.Breaks[1]
	if gap.Kind != "statement_gap" || gap.Expected != "" || gap.Actual != "" || gap.Cycle != "" || gap.ItemID != "" || gap.AgeBucket != "8-30" {
		t.Errorf("the gap %+v", gap)
	}
	if r := list.Breaks[2].Resolution; r == nil || *r != (reconResolutionView{Kind: "adjustment", Note: "银行确认 confirmed by phone",
		TransferID: ledger.ID{0xad, 0x01}.String(), By: "李娜", At: "2026-03-03T05:00:00+08:00"}) {
		t.Errorf("the resolved break's resolution %+v", r)
	}
	raw := e.do(t, request{method: "GET", path: "/v1/reconciliation/breaks"}).Body.String()
	if !strings.Contains(raw, `"resolution":null`) || strings.Contains(raw, `"entries"`) {
		t.Errorf("an open break's resolution is null, and the listing has no entries: %s", raw)
	}

	w := e.do(t, request{method: "GET", path: breakPath(reconMismatch)})
	var d reconBreakDetailView
	decodeStrictly(t, w, &d)
	wantEntry := reconEntryView{StatementID: "STMT-ICBC-JX-000001", Line: 1, EntryRef: "B000001000001", Ref: settlement.FileItemID(reconItem),
		Amount: "-150.01", BookingDate: "2026-03-02", ValueDate: "2026-03-02", Info: "工商银行 清算 settlement"}
	if !reflect.DeepEqual(d.reconBreakView, want) || len(d.Entries) != 1 || d.Entries[0] != wantEntry {
		t.Errorf("the break\n got %+v\nwant %+v with %+v", d, want, wantEntry)
	}
	decodeStrictly(t, e.do(t, request{method: "GET", path: breakPath(reconGap)}), &d)
	if d.Entries == nil || len(d.Entries) != 0 {
		t.Errorf("a break without entries lists none: %+v", d.Entries)
	}

	f := reconFake(e)
	f.mu.Lock()
	f.filters = nil
	f.mu.Unlock()
	decodeStrictly(t, e.do(t, request{method: "GET", path: "/v1/reconciliation/breaks?bank=ABC-JX&open=true&cycle=2026-02-28&limit=7"}), &list)
	decodeStrictly(t, e.do(t, request{method: "GET", path: "/v1/reconciliation/breaks?open=false"}), &list)
	cycle := fakeDay
	f.mu.Lock()
	got := f.filters
	f.mu.Unlock()
	if wantF := []postgres.BreakFilter{{Bank: "ABC-JX", Open: true, Cycle: &cycle, Limit: 7}, {Limit: breaksPageMax}}; !reflect.DeepEqual(got, wantF) {
		t.Errorf("filters %+v, want %+v", got, wantF)
	}
	if len(list.Breaks) != 3 {
		t.Errorf("open=false lists every break: %+v", list.Breaks)
	}
}

// A break resolved with a note in the name given: 201 with the break, its resolution carrying the
// note without the spaces around it; the store saw the same; again 409. An adjustment names its
// transfer.
func TestReconciliationResolvesABreakInTheNameGiven(t *testing.T) {
	e := newEnv(t)
	w := e.do(t, resolution(reconMismatch, `{"kind":"note","note":"  退款已处理\nrefunded by the bank  ","by":"李娜"}`))
	if w.Code != http.StatusCreated {
		t.Fatalf("resolve: %d %s", w.Code, w.Body.String())
	}
	var d reconBreakDetailView
	decodeStrictly(t, w, &d)
	if r := d.Resolution; r == nil || *r != (reconResolutionView{Kind: "note", Note: "退款已处理\nrefunded by the bank", By: "李娜",
		At: shanghaiTime(t0)}) || len(d.Entries) != 1 {
		t.Errorf("resolved %+v", d)
	}
	b, err := reconFake(e).Break(context.Background(), reconMismatch)
	if err != nil || b.Resolution == nil || b.Resolution.Note != "退款已处理\nrefunded by the bank" || b.Resolution.By != "李娜" {
		t.Errorf("the store's break %+v %v", b.Resolution, err)
	}
	if w := e.do(t, resolution(reconMismatch, `{"kind":"adjustment","note":"x","by":"李娜"}`)); w.Code != http.StatusConflict {
		t.Errorf("resolved again: %d %s", w.Code, w.Body.String())
	}
	missing := e.do(t, postStatement(statementBody(t, testStatement("ABC-JX", "S-1", 1), false), false))
	if missing.Code != http.StatusCreated {
		t.Fatalf("import: %d %s", missing.Code, missing.Body.String())
	}
	var list reconBreakListView
	decodeStrictly(t, e.do(t, request{method: "GET", path: "/v1/reconciliation/breaks?bank=ABC-JX&open=true"}), &list)
	var id string
	for _, b := range list.Breaks {
		if b.Kind == "missing_in_ledger" {
			id = b.ID
		}
	}
	w = e.do(t, request{method: "POST", path: "/v1/reconciliation/breaks/" + id + "/resolution", body: `{"kind":"adjustment","note":"posted","by":"Li Na"}`})
	decodeStrictly(t, w, &d)
	if w.Code != http.StatusCreated || d.Resolution == nil || d.Resolution.Kind != "adjustment" || d.Resolution.TransferID == "" {
		t.Errorf("adjusted: %d %+v", w.Code, d.Resolution)
	}
}

// The counts of a reconciliation name every kind of break, in the order reports show them, so
// that a kind added to reconcile shows up here or fails this test.
func TestBreakCountViewNamesEveryKind(t *testing.T) {
	b, err := json.Marshal(breakCountView{})
	if err != nil {
		t.Fatal(err)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	var names []string
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if s, ok := tok.(string); ok {
			names = append(names, s)
		}
	}
	var kinds []string
	for _, k := range reconcile.BreakKinds() {
		kinds = append(kinds, string(k))
	}
	if !slices.Equal(names, kinds) {
		t.Errorf("breakCountView names %q, reconcile's kinds are %q", names, kinds)
	}
	rep := postgres.ReconcileReport{Bank: "X", Breaks: map[reconcile.BreakKind]int64{}}
	for i, k := range reconcile.BreakKinds() {
		rep.Breaks[k] = int64(i + 1)
	}
	v, err := reconcileRun(rep)
	if err != nil || v.Breaks != (breakCountView{1, 2, 3, 4, 5, 6}) {
		t.Errorf("counts %+v %v", v.Breaks, err)
	}
	rep.Breaks["write_off"] = 1
	if _, err := reconcileRun(rep); err == nil {
		t.Error("a kind the api does not know was counted silently")
	}
}

// A statement's refusal names where it is and never repeats a value: a message that holds what
// may be a card number or a byte that is not printable is cut to its line, record and entry;
// several refusals are joined on one line.
func TestStatementErrorNeverRepeatsAValue(t *testing.T) {
	refused := errors.New("unexpected element")
	for _, c := range []struct {
		name string
		err  error
		want string
	}{
		{"plain", &statement.FieldError{Record: "entry", Line: 7, Entry: 5, Field: "additional_info", Err: statement.ErrCardNumber},
			"statement: line 7: entry 5: additional_info: looks like a card number in clear"},
		{"a card number in an element's name", fmt.Errorf("batch transaction: %w",
			&statement.FieldError{Record: "entry", Line: 12, Entry: 3, Field: "Stmt/Ntry/" + testPAN, Err: refused}),
			"statement: line 12: entry 3: refused"},
		{"a control byte", &statement.FieldError{Record: "header", Line: 4, Field: "Stmt/\x1b[2J", Err: refused},
			"statement: line 4: header: refused"},
		{"invalid utf-8", &statement.FieldError{Record: "file", Field: "Stmt/\xff", Err: refused}, "statement: file: refused"},
		{"joined", errors.Join(
			&statement.FieldError{Record: "header", Line: 36, Field: "Sum", Err: statement.ErrControlSum},
			&statement.FieldError{Record: "header", Line: 38, Field: "Net", Err: statement.ErrNetTotal}),
			"statement: line 36: header: Sum: control sum disagrees; line 38: header: Net: net total disagrees"},
		{"a sentinel alone", fmt.Errorf("read: %w", statement.ErrTooLarge), "statement: larger than the bound"},
		{"anything else", errors.New("reset " + testPAN), "statement: cannot read request body"},
	} {
		t.Run(c.name, func(t *testing.T) {
			var e *Error
			if !errors.As(statementError(c.err), &e) || e.Code != EINVALID || e.Message != c.want {
				t.Errorf("%v: %+v, want %q", c.err, e, c.want)
			}
		})
	}
}

// The statement's bound and its reason: an entry of XML as banks book settlement items (an item
// id as its reference, no additional information) is about 520 bytes, so that 1 GiB takes two
// million of them, more than twice the largest settlement file (bankfile.MaxItems).
func TestStatementBoundHoldsTheLargestFiles(t *testing.T) {
	d := events.Date{Year: 2026, Month: time.March, Day: 4}
	header := statement.Header{StatementID: "STMT-ICBC-JX-000001", CreatedAt: t0, BankID: "ICBC-JX", Sequence: 1,
		From: d, To: d, Currency: statement.CurrencyCNY}
	s := &statement.Statement{Header: header}
	const n = 1000
	for i := range n {
		s.Entries = append(s.Entries, statement.Entry{Amount: 1234_56, Direction: statement.Credit, BookingDate: d, ValueDate: d,
			EntryRef: fmt.Sprintf("B%06d%06d", 1, i), EndToEndRef: settlement.FileItemID(ledger.ID{1, byte(i >> 8), byte(i)})})
	}
	loadtest.Retotal(s)
	perEntry := (len(statementBody(t, s, false)) - len(statementBody(t, &statement.Statement{Header: header}, false))) / n
	t.Logf("an entry of XML as banks book settlement items: %d bytes; %d bytes hold %d of them", perEntry, maxStatementBodyBytes,
		maxStatementBodyBytes/perEntry)
	if perEntry < 400 || perEntry > 600 || maxStatementBodyBytes/perEntry < 2*bankfile.MaxItems {
		t.Errorf("an entry is %d bytes of XML: maxStatementBodyBytes's reason is out of date", perEntry)
	}
}
