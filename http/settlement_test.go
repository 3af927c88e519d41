package http

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"iter"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/joinincard/engine/ledger"
	"github.com/joinincard/engine/postgres"
	"github.com/joinincard/engine/settlement"
	"github.com/joinincard/engine/settlement/bankfile"
	"github.com/joinincard/engine/settlement/calendar"
)

// The bank keys of the fake: the right shape, issued to ICBC-JX and ABC-JX.
var (
	icbcKey = bankKeyPrefix + strings.Repeat("I", bankKeyLen-len(bankKeyPrefix))
	abcKey  = bankKeyPrefix + strings.Repeat("A", bankKeyLen-len(bankKeyPrefix))
)

// The fake's cycle with items: 2026-02-28, over by the tests' clock (t0, 2026-03-01 10:00).
var (
	fakeDay     = settlement.Date{Year: 2026, Month: time.February, Day: 28}
	fakeDayPath = "2026-02-28"
)

func init() {
	for route, st := range map[string][]int{
		"POST /v1/settlement/cycles/{date}/close":     {200, 400, 401, 403, 409, 413, 500, 503},
		"GET /v1/settlement/cycles":                   {200, 400, 401, 403, 500, 503},
		"GET /v1/settlement/cycles/{date}":            {200, 400, 401, 403, 404, 500, 503},
		"POST /v1/banks/{bank}/keys":                  {201, 400, 401, 403, 404, 413, 500, 503},
		"DELETE /v1/banks/{bank}/keys":                {200, 400, 401, 403, 404, 413, 500, 503},
		"GET /v1/bank/cycles/{date}/manifest":         {200, 400, 401, 403, 404, 500, 503},
		"GET /v1/bank/cycles/{date}/files/{format}":   {200, 400, 401, 403, 404, 500, 503},
		"POST /v1/bank/cycles/{date}/acknowledgement": {200, 201, 400, 401, 403, 404, 409, 413, 500, 503},
	} {
		statuses[route] = st
	}
	responseTypes["POST /v1/settlement/cycles/{date}/close"] = cycleView{}
	responseTypes["GET /v1/settlement/cycles"] = cycleListView{}
	responseTypes["GET /v1/settlement/cycles/{date}"] = cycleView{}
	responseTypes["POST /v1/banks/{bank}/keys"] = bankKeyView{}
	responseTypes["DELETE /v1/banks/{bank}/keys"] = bankKeysRevokedView{}
	responseTypes["POST /v1/bank/cycles/{date}/acknowledgement"] = ackResultView{}
	rawRequestBodies["POST /v1/bank/cycles/{date}/acknowledgement"] = []string{"application/xml", "text/csv"}

	featureEnvs = append(featureEnvs, func(t testing.TB, e *env, cfg *Config) {
		f := newFakeSettlement(t, e.clock.Now)
		e.features["settlement"] = f
		cfg.Features = append(cfg.Features, NewSettlement(f, f))
	})
	featureStatusCases = append(featureStatusCases, settlementStatusCases()...)
}

func testCycles(t testing.TB) settlement.Cycles {
	t.Helper()
	cal, err := calendar.Load()
	if err != nil {
		t.Fatal(err)
	}
	return settlement.Cycles{CutoffHour: settlement.DefaultCutoffHour, Calendar: cal}
}

// fakeSettlement is the settlement engine and the bank keys in memory. It closes cycles in order
// over the items it was given, numbers each registered bank's file, writes files with bankfile
// as the store does, and takes acknowledgements by the store's rules; errs makes a method fail.
type fakeSettlement struct {
	mu      sync.Mutex
	now     func() time.Time
	cycles  settlement.Cycles
	banks   []string          // registered, in id order
	names   map[string]string // bank id -> name
	items   map[settlement.Date][]settlement.Item
	closed  map[settlement.Date]postgres.Cycle
	files   map[fileKey]*fakeFile
	fetched map[string]bool // bank, date and format fetched
	keys    map[[32]byte]string
	errs    map[string]error
}

type fileKey struct {
	bank string
	day  settlement.Date
}

type fakeFile struct {
	rec   postgres.FileRecord
	items []settlement.Item
	ack   *fakeAck
}

type fakeAck struct {
	hash     [32]byte
	status   bankfile.Status
	received time.Time
	rejected []settlement.Item
}

// Accounts of the fake's items: two cards of ICBC-JX, two merchants of ABC-JX, an operator with
// no settlement bank.
var (
	fakeCardA, fakeCardB         = ledger.ID{0xa1}, ledger.ID{0xa2}
	fakeShop, fakeGrocer         = ledger.ID{0xb1}, ledger.ID{0xb2}
	fakeOperator, fakeIssuerAcct = ledger.ID{0xc1}, ledger.ID{0xd1}
)

func newFakeSettlement(t testing.TB, now func() time.Time) *fakeSettlement {
	t.Helper()
	f := &fakeSettlement{now: now, cycles: testCycles(t), banks: []string{"ABC-JX", "BOC-JX", "ICBC-JX"},
		names: map[string]string{"ABC-JX": "ABC Jiaxing", "BOC-JX": "BOC Jiaxing", "ICBC-JX": "ICBC Jiaxing"},
		items: map[settlement.Date][]settlement.Item{}, closed: map[settlement.Date]postgres.Cycle{}, files: map[fileKey]*fakeFile{},
		fetched: map[string]bool{}, errs: map[string]error{},
		keys: map[[32]byte]string{sha256.Sum256([]byte(icbcKey)): "ICBC-JX", sha256.Sum256([]byte(abcKey)): "ABC-JX"}}
	item := func(account, counter ledger.ID, bank string, kind settlement.ItemKind, party string, bd settlement.Breakdown, entries int64) settlement.Item {
		return settlement.Item{ID: settlement.ItemID(fakeDay, account, kind, ledger.ID{}), Cycle: fakeDay, Bank: bank, Account: account,
			Counter: counter, Kind: kind, Party: party, Amount: bd.Total(), Breakdown: bd, Entries: entries}
	}
	// The day: card A spent 150.00 at the shop and 2.00 on the bus, card B 10.00 at the grocer;
	// the shop paid 0.50 of fees; the bus operator has no settlement bank.
	f.items[fakeDay] = []settlement.Item{
		item(fakeCardA, fakeIssuerAcct, "ICBC-JX", settlement.KindCardholderSpend, "622848******4899",
			settlement.Breakdown{Transit: -2_00, Purchases: -150_00}, 2),
		item(fakeCardB, fakeIssuerAcct, "ICBC-JX", settlement.KindCardholderSpend, "622848******2233", settlement.Breakdown{Purchases: -10_00}, 1),
		item(fakeShop, fakeShop, "ABC-JX", settlement.KindMerchantEarnings, "shop-1", settlement.Breakdown{Purchases: 150_00, Fees: -50}, 2),
		item(fakeGrocer, fakeGrocer, "ABC-JX", settlement.KindMerchantEarnings, "grocer-1", settlement.Breakdown{Purchases: 10_00}, 1),
		item(fakeOperator, fakeOperator, "", settlement.KindOperatorEarnings, "HZBUS", settlement.Breakdown{Transit: 2_00}, 1),
	}
	return f
}

func setFake(e *env) *fakeSettlement { return e.features["settlement"].(*fakeSettlement) }

func (f *fakeSettlement) fail(method string, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.errs[method] = err
}

func (f *fakeSettlement) Cycles() settlement.Cycles { return f.cycles }

func (f *fakeSettlement) Close(_ context.Context, d settlement.Date) (postgres.Cycle, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.errs["Close"]; err != nil {
		return postgres.Cycle{}, err
	}
	if f.now().Before(f.cycles.Cutoff(d)) {
		return postgres.Cycle{}, fmt.Errorf("cycle %s: %w", d, postgres.ErrCycleNotOver)
	}
	if c, ok := f.closed[d]; ok {
		return c, nil
	}
	next := d
	if len(f.closed) > 0 {
		last := slices.MaxFunc(slices.Collect(mapKeys(f.closed)), compareDates)
		if settlement.Before(d, last) {
			return postgres.Cycle{}, fmt.Errorf("cycle %s: %w", d, postgres.ErrNotFound)
		}
		next = settlement.AddDays(last, 1)
	}
	for ; !settlement.Before(d, next); next = settlement.AddDays(next, 1) {
		if err := f.closeOne(next); err != nil {
			return postgres.Cycle{}, err
		}
	}
	return f.closed[d], nil
}

func mapKeys[K comparable, V any](m map[K]V) iter.Seq[K] {
	return func(yield func(K) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

func compareDates(a, b settlement.Date) int {
	switch {
	case settlement.Before(a, b):
		return -1
	case settlement.Before(b, a):
		return 1
	}
	return 0
}

func (f *fakeSettlement) closeOne(d settlement.Date) error {
	value, err := f.cycles.ValueDate(d)
	if err != nil {
		return err
	}
	now := f.now().UTC()
	c := postgres.Cycle{Date: d, StartsAfter: f.cycles.Start(d).UTC(), EndsAt: f.cycles.Cutoff(d).UTC(), ValueDate: value,
		Status: postgres.CycleClosed, ItemsWritten: true, PostingsWritten: true, ClosingAt: now, ClosedAt: &now}
	for _, it := range f.items[d] {
		c.FeeIncome -= it.Breakdown.Fees
	}
	for _, bank := range f.banks {
		var (
			items []settlement.Item
			t     settlement.FileTotals
			seq   int64 = 1
		)
		for k := range f.files {
			if k.bank == bank {
				seq++
			}
		}
		for _, it := range f.items[d] {
			if it.Bank == bank {
				items = append(items, it)
				t.Entries++
				t.ControlSum += max(it.Amount, -it.Amount)
				t.Net += it.Amount
			}
		}
		slices.SortFunc(items, func(a, b settlement.Item) int { return bytes.Compare(a.ID[:], b.ID[:]) })
		ff := &fakeFile{items: items, rec: postgres.FileRecord{Header: settlement.FileHeader(bank, f.names[bank], d, value, seq, now, t)}}
		for _, fm := range []bankfile.Format{bankfile.FormatXML, bankfile.FormatCSV} {
			var buf bytes.Buffer
			if err := ff.write(&buf, ff.rec.Header, fm); err != nil {
				return err
			}
			e := bankfile.NewManifestEntry(settlement.FileName(ff.rec.Header, fm), fm, ff.rec.Header, buf.Bytes())
			if fm == bankfile.FormatXML {
				ff.rec.XML = e
			} else {
				ff.rec.CSV = e
			}
		}
		f.files[fileKey{bank, d}] = ff
	}
	f.closed[d] = c
	return nil
}

func (ff *fakeFile) write(w io.Writer, h bankfile.Header, fm bankfile.Format) error {
	items := func(yield func(bankfile.Item) bool) {
		for _, it := range ff.items {
			fi, err := settlement.FileItem(it)
			if err != nil {
				panic(err)
			}
			if !yield(fi) {
				return
			}
		}
	}
	if fm == bankfile.FormatCSV {
		return bankfile.WriteCSV(w, h, items)
	}
	return bankfile.WriteXML(w, h, items)
}

func (f *fakeSettlement) Cycle(_ context.Context, d settlement.Date) (postgres.Cycle, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.errs["Cycle"]; err != nil {
		return postgres.Cycle{}, err
	}
	c, ok := f.closed[d]
	if !ok {
		return c, fmt.Errorf("cycle %s: %w", d, postgres.ErrNotFound)
	}
	return c, nil
}

func (f *fakeSettlement) ListCycles(_ context.Context, limit int) ([]postgres.Cycle, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.errs["ListCycles"]; err != nil {
		return nil, err
	}
	days := slices.SortedFunc(mapKeys(f.closed), func(a, b settlement.Date) int { return compareDates(b, a) })
	var out []postgres.Cycle
	for _, d := range days[:min(limit, len(days))] {
		out = append(out, f.closed[d])
	}
	return out, nil
}

func (f *fakeSettlement) Positions(_ context.Context, d settlement.Date) (*settlement.Positions, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.errs["Positions"]; err != nil {
		return nil, err
	}
	p := &settlement.Positions{}
	for _, it := range f.items[d] {
		if err := p.Add(it); err != nil {
			return nil, err
		}
	}
	return p, nil
}

func (f *fakeSettlement) Files(_ context.Context, d settlement.Date) ([]postgres.FileRecord, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.errs["Files"]; err != nil {
		return nil, err
	}
	var out []postgres.FileRecord
	for _, b := range f.banks {
		if ff, ok := f.files[fileKey{b, d}]; ok {
			out = append(out, ff.rec)
		}
	}
	return out, nil
}

func (f *fakeSettlement) FileAcks(_ context.Context, d settlement.Date) (map[string]postgres.FileAck, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.errs["FileAcks"]; err != nil {
		return nil, err
	}
	out := map[string]postgres.FileAck{}
	for k, ff := range f.files {
		if k.day == d && ff.ack != nil {
			out[k.bank] = postgres.FileAck{Status: ackStatusWord(ff.ack.status), ReceivedAt: ff.ack.received, Rejected: int64(len(ff.ack.rejected))}
		}
	}
	return out, nil
}

func (f *fakeSettlement) file(bank string, d settlement.Date) (*fakeFile, error) {
	ff, ok := f.files[fileKey{bank, d}]
	if !ok {
		return nil, fmt.Errorf("file of %s for cycle %s: %w", bank, d, postgres.ErrNotFound)
	}
	return ff, nil
}

func (f *fakeSettlement) File(_ context.Context, bank string, d settlement.Date) (postgres.FileRecord, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.errs["File"]; err != nil {
		return postgres.FileRecord{}, err
	}
	ff, err := f.file(bank, d)
	if err != nil {
		return postgres.FileRecord{}, err
	}
	return ff.rec, nil
}

func (f *fakeSettlement) Manifest(_ context.Context, bank string, d settlement.Date) (bankfile.Manifest, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.errs["Manifest"]; err != nil {
		return bankfile.Manifest{}, err
	}
	ff, err := f.file(bank, d)
	if err != nil {
		return bankfile.Manifest{}, err
	}
	return bankfile.Manifest{Files: []bankfile.ManifestEntry{ff.rec.XML, ff.rec.CSV}}, nil
}

func (f *fakeSettlement) WriteFile(_ context.Context, w io.Writer, bank string, d settlement.Date, fm bankfile.Format, fetch bool) (postgres.FileRecord, bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.errs["WriteFile"]; err != nil {
		return postgres.FileRecord{}, false, err
	}
	ff, err := f.file(bank, d)
	if err != nil {
		return postgres.FileRecord{}, false, err
	}
	dup := false
	if fetch {
		key := bank + " " + d.String() + " " + string(fm)
		dup = f.fetched[key]
		f.fetched[key] = true
	}
	h := ff.rec.Header
	h.Copy = dup
	return ff.rec, dup, ff.write(w, h, fm)
}

func (f *fakeSettlement) Acknowledge(_ context.Context, bank string, ack *bankfile.Ack) (postgres.AckResult, bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	res := postgres.AckResult{Bank: bank, Status: ack.Status}
	if err := f.errs["Acknowledge"]; err != nil {
		return res, false, err
	}
	if ack.BankID != bank {
		return res, false, fmt.Errorf("%w: the report is from bank %q", postgres.ErrAckInvalid, ack.BankID)
	}
	var ff *fakeFile
	for k, x := range f.files {
		if k.bank == bank && x.rec.Header.MessageID == ack.FileMessageID {
			ff, res.Cycle = x, k.day
		}
	}
	if ff == nil {
		return res, false, fmt.Errorf("%w: no file of this bank has the message id", postgres.ErrAckInvalid)
	}
	var canonical bytes.Buffer
	if err := bankfile.WriteAckCSV(&canonical, ack); err != nil {
		return res, false, fmt.Errorf("%w: %w", postgres.ErrAckInvalid, err)
	}
	hash := sha256.Sum256(canonical.Bytes())
	if ff.ack != nil {
		// The same verdicts under another report id or listing are the same report, as the
		// store has it (reasons aside: the fake keeps none).
		accepts := ack.Accepts()
		same := ff.ack.hash == hash || ff.ack.status == ack.Status
		for _, it := range ff.items {
			wasRejected := slices.ContainsFunc(ff.ack.rejected, func(r settlement.Item) bool { return r.ID == it.ID })
			if wasRejected == accepts(settlement.FileItemID(it.ID)) {
				same = false
			}
		}
		if !same {
			return res, false, postgres.ErrAckConflict
		}
		res.Status, res.Items, res.Rejected = ff.ack.status, int64(len(ff.items)), int64(len(ff.ack.rejected))
		for _, it := range ff.ack.rejected {
			res.Returned += max(it.Amount, -it.Amount)
		}
		return res, true, nil
	}
	known := map[string]bool{}
	for _, it := range ff.items {
		known[settlement.FileItemID(it.ID)] = true
	}
	for _, s := range ack.Items {
		if !known[s.ItemID] {
			// Wrapped as the store's transaction wraps it.
			return res, false, fmt.Errorf("batch transaction: %w", fmt.Errorf("%w: it names items that are not in the file", postgres.ErrAckInvalid))
		}
	}
	a := &fakeAck{hash: hash, status: ack.Status, received: f.now()}
	accepts := ack.Accepts()
	for _, it := range ff.items {
		if !accepts(settlement.FileItemID(it.ID)) {
			a.rejected = append(a.rejected, it)
			res.Returned += max(it.Amount, -it.Amount)
		}
	}
	ff.ack = a
	res.Items, res.Rejected = int64(len(ff.items)), int64(len(a.rejected))
	return res, false, nil
}

func (f *fakeSettlement) CreateBankKey(_ context.Context, bank string, keyHash [32]byte) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.errs["CreateBankKey"]; err != nil {
		return err
	}
	if !slices.Contains(f.banks, bank) {
		return fmt.Errorf("bank %q: %w", bank, postgres.ErrNotFound)
	}
	f.keys[keyHash] = bank
	return nil
}

func (f *fakeSettlement) BankByKey(_ context.Context, keyHash [32]byte) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.errs["BankByKey"]; err != nil {
		return "", err
	}
	b, ok := f.keys[keyHash]
	if !ok {
		return "", fmt.Errorf("bank key: %w", postgres.ErrNotFound)
	}
	return b, nil
}

func (f *fakeSettlement) RevokeBankKeys(_ context.Context, bank string) (int64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.errs["RevokeBankKeys"]; err != nil {
		return 0, err
	}
	if !slices.Contains(f.banks, bank) {
		return 0, fmt.Errorf("bank %q: %w", bank, postgres.ErrNotFound)
	}
	var n int64
	for k, b := range f.keys {
		if b == bank {
			delete(f.keys, k)
			n++
		}
	}
	return n, nil
}

var (
	_ SettlementService = (*fakeSettlement)(nil)
	_ BankKeys          = (*fakeSettlement)(nil)
)

// --- requests -------------------------------------------------------------------------------------

// withBody is rq with body.
func withBody(rq request, body string) request {
	rq.body = body
	return rq
}

func closeCycle(day string) request {
	return request{method: "POST", path: "/v1/settlement/cycles/" + day + "/close"}
}

func asBank(key string, rq request) request {
	rq.auth = "Bearer " + key
	return rq
}

func bankGet(key, path string) request { return asBank(key, request{method: "GET", path: path}) }

// ackBody writes ack as XML, or as CSV with csv.
func ackBody(t testing.TB, ack *bankfile.Ack, csv bool) string {
	t.Helper()
	var b bytes.Buffer
	write := bankfile.WriteAckXML
	if csv {
		write = bankfile.WriteAckCSV
	}
	if err := write(&b, ack); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

func postAck(key, day, body string, csv bool) request {
	ct := "application/xml"
	if csv {
		ct = "text/csv"
	}
	return asBank(key, request{method: "POST", path: "/v1/bank/cycles/" + day + "/acknowledgement", body: body,
		header: map[string]string{"Content-Type": ct}})
}

// fakeAckOf is ABC-JX's report on its file of the fake's day: PART rejecting the grocer's item,
// or with status ACCP, accepting everything.
func fakeAckOf(t testing.TB, e *env, status bankfile.Status) *bankfile.Ack {
	t.Helper()
	rec, err := setFake(e).File(context.Background(), "ABC-JX", fakeDay)
	if err != nil {
		t.Fatal(err)
	}
	a := &bankfile.Ack{MessageID: "ACK-ABC-1", CreatedAt: t0.Add(time.Hour), FileMessageID: rec.Header.MessageID, BankID: "ABC-JX", Status: status}
	if status == bankfile.StatusPartial {
		a.Items = []bankfile.ItemStatus{{ItemID: settlement.FileItemID(settlement.ItemID(fakeDay, fakeGrocer, settlement.KindMerchantEarnings, ledger.ID{})),
			ReasonCode: "AC04", Reason: "account closed"}}
	}
	return a
}

// closed closes the fake's day, then runs next.
func closed(next func(t *testing.T, e *env) *httptest.ResponseRecorder) func(t *testing.T, e *env) *httptest.ResponseRecorder {
	return func(t *testing.T, e *env) *httptest.ResponseRecorder {
		t.Helper()
		if w := e.do(t, closeCycle(fakeDayPath)); w.Code != http.StatusOK {
			t.Fatalf("closing %s: %d %s", fakeDayPath, w.Code, w.Body.String())
		}
		return next(t, e)
	}
}

func setFailing(method string, err error, next func(t *testing.T, e *env) *httptest.ResponseRecorder) func(t *testing.T, e *env) *httptest.ResponseRecorder {
	return func(t *testing.T, e *env) *httptest.ResponseRecorder {
		setFake(e).fail(method, err)
		return next(t, e)
	}
}

func settlementStatusCases() []statusCase {
	var cs []statusCase
	add := func(route string, c ...statusCase) {
		for _, x := range c {
			x.route = route
			cs = append(cs, x)
		}
	}
	add("POST /v1/settlement/cycles/{date}/close",
		statusCase{name: "close", status: 200, run: send(closeCycle(fakeDayPath))},
		statusCase{name: "close twice", status: 200, run: closed(send(closeCycle(fakeDayPath)))},
		statusCase{name: "close with an empty object", status: 200, run: send(withBody(closeCycle(fakeDayPath), `{}`))},
		statusCase{name: "close with a body saying something", status: 400, code: EINVALID, message: `unknown field "force"`,
			run: send(withBody(closeCycle(fakeDayPath), `{"force":true}`))},
		statusCase{name: "close a malformed date", status: 400, code: EINVALID, message: "date: want a cycle date yyyy-mm-dd",
			run: send(closeCycle("2026-2-28"))},
		statusCase{name: "close a day that is no date", status: 400, code: EINVALID, message: "date: ",
			run: send(closeCycle("2026-02-30"))},
		statusCase{name: "close before the cut-off", status: 409, code: ECONFLICT, reason: "cycle_not_over",
			message: "cycle 2026-03-01 is not over: it ends at 2026-03-01T23:00:00+08:00", run: send(closeCycle("2026-03-01"))},
		statusCase{name: "close past the calendar", status: 409, code: ECONFLICT, reason: "calendar_year_missing", message: "the settlement calendar has no year 2025",
			run: send(closeCycle("2025-12-30"))},
		statusCase{name: "close before the first cycle", status: 409, code: ECONFLICT, reason: "before_first_cycle", message: "before the first cycle closed",
			run: closed(send(closeCycle("2026-02-27")))},
		statusCase{name: "close on an engine whose clock is behind the ledger", status: 503, code: EUNAVAILABLE, reason: "clock_behind",
			message: "stamped ahead of this engine's clock",
			run:     setFailing("Close", fmt.Errorf("batch transaction: %w", postgres.ErrClockBehind), send(closeCycle(fakeDayPath)))},
		statusCase{name: "close raced", status: 409, code: ECONFLICT, reason: "close_raced", message: "another close ran at the same time",
			run: setFailing("Close", fmt.Errorf("cycle 2026-02-28: %w", postgres.ErrCycleOrder), send(closeCycle(fakeDayPath)))},
		statusCase{name: "close with a posting the ledger refuses", status: 409, code: ECONFLICT, reason: "posting_refused",
			message: "cycle 2026-02-28 cannot close: the ledger refused the settlement posting to bank ICBC-JX's position (overflows_credits_posted)",
			run: setFailing("Close", &postgres.PostingRefusedError{Cycle: settlement.Date{Year: 2026, Month: 2, Day: 28}, Bank: "ICBC-JX",
				Result: ledger.OverflowsCreditsPosted}, send(closeCycle(fakeDayPath)))},
		statusCase{name: "close without auth", status: 401, code: EUNAUTHORIZED, run: send(request{method: "POST", path: "/v1/settlement/cycles/2026-02-28/close", auth: "-"})},
		statusCase{name: "close with a bank key", status: 403, code: EFORBIDDEN, run: send(asBank(abcKey, closeCycle(fakeDayPath)))},
		statusCase{name: "close store broken", status: 500, code: EINTERNAL, message: "internal error",
			run: setFailing("Close", errBroken, send(closeCycle(fakeDayPath)))},
		statusCase{name: "close view broken", status: 500, code: EINTERNAL, message: "internal error",
			run: setFailing("Files", errBroken, send(closeCycle(fakeDayPath)))},
		statusCase{name: "close store busy", status: 503, code: EUNAVAILABLE, message: "busy",
			run: setFailing("Close", busy, send(closeCycle(fakeDayPath)))},
		statusCase{name: "close no admin token", status: 503, code: EUNAVAILABLE, opts: []envOption{noAdmin}, run: send(closeCycle(fakeDayPath))},
	)
	list := request{method: "GET", path: "/v1/settlement/cycles"}
	add("GET /v1/settlement/cycles",
		statusCase{name: "list", status: 200, run: closed(send(list))},
		statusCase{name: "list none", status: 200, run: send(list)},
		statusCase{name: "list limited", status: 200, run: closed(send(request{method: "GET", path: "/v1/settlement/cycles?limit=1"}))},
		statusCase{name: "list limit zero", status: 400, code: EINVALID, message: "limit: want one number from 1 to 400",
			run: send(request{method: "GET", path: "/v1/settlement/cycles?limit=0"})},
		statusCase{name: "list limit twice", status: 400, code: EINVALID, message: "limit: ",
			run: send(request{method: "GET", path: "/v1/settlement/cycles?limit=1&limit=2"})},
		statusCase{name: "list unknown parameter", status: 400, code: EINVALID, message: `unknown query parameter "after"`,
			run: send(request{method: "GET", path: "/v1/settlement/cycles?after=2026-02-01"})},
		statusCase{name: "list without auth", status: 401, code: EUNAUTHORIZED, run: send(request{method: "GET", path: "/v1/settlement/cycles", auth: "-"})},
		statusCase{name: "list wrong token", status: 403, code: EFORBIDDEN, run: send(request{method: "GET", path: "/v1/settlement/cycles", auth: "Bearer x"})},
		statusCase{name: "list store broken", status: 500, code: EINTERNAL, run: setFailing("ListCycles", errBroken, send(list))},
		statusCase{name: "list store busy", status: 503, code: EUNAVAILABLE, run: setFailing("ListCycles", busy, send(list))},
	)
	get := request{method: "GET", path: "/v1/settlement/cycles/" + fakeDayPath}
	add("GET /v1/settlement/cycles/{date}",
		statusCase{name: "get", status: 200, run: closed(send(get))},
		statusCase{name: "get never closed", status: 404, code: ENOTFOUND, message: "cycle 2026-02-28 was never closed", run: send(get)},
		statusCase{name: "get malformed date", status: 400, code: EINVALID, message: "date: ",
			run: send(request{method: "GET", path: "/v1/settlement/cycles/yesterday"})},
		statusCase{name: "get without auth", status: 401, code: EUNAUTHORIZED, run: send(request{method: "GET", path: get.path, auth: "-"})},
		statusCase{name: "get with a bank key", status: 403, code: EFORBIDDEN, run: send(asBank(icbcKey, get))},
		statusCase{name: "get store broken", status: 500, code: EINTERNAL, run: setFailing("Cycle", errBroken, send(get))},
		statusCase{name: "get positions broken", status: 500, code: EINTERNAL, run: closed(setFailing("Positions", errBroken, send(get)))},
		statusCase{name: "get acknowledgements broken", status: 500, code: EINTERNAL, run: closed(setFailing("FileAcks", errBroken, send(get)))},
		statusCase{name: "get store busy", status: 503, code: EUNAVAILABLE, run: setFailing("Cycle", busy, send(get))},
	)
	issue := func(bank string) request { return request{method: "POST", path: "/v1/banks/" + bank + "/keys"} }
	add("POST /v1/banks/{bank}/keys",
		statusCase{name: "issue", status: 201, run: send(issue("BOC-JX"))},
		statusCase{name: "issue with a body saying something", status: 400, code: EINVALID, message: `unknown field "expires"`,
			run: send(withBody(issue("BOC-JX"), `{"expires":"2027-01-01"}`))},
		statusCase{name: "issue for a bank not registered", status: 404, code: ENOTFOUND, message: `bank "CCB-JX" is not registered`,
			run: send(issue("CCB-JX"))},
		statusCase{name: "issue for a bank id with a space", status: 400, code: EINVALID, message: "bank: must be printable ascii",
			run: send(issue("CCB%20JX"))},
		statusCase{name: "issue without auth", status: 401, code: EUNAUTHORIZED, run: send(request{method: "POST", path: "/v1/banks/BOC-JX/keys", auth: "-"})},
		statusCase{name: "issue with the bank's own key", status: 403, code: EFORBIDDEN, run: send(asBank(abcKey, issue("ABC-JX")))},
		statusCase{name: "issue store broken", status: 500, code: EINTERNAL, run: setFailing("CreateBankKey", errBroken, send(issue("BOC-JX")))},
		statusCase{name: "issue store busy", status: 503, code: EUNAVAILABLE, run: setFailing("CreateBankKey", busy, send(issue("BOC-JX")))},
		statusCase{name: "issue no admin token", status: 503, code: EUNAVAILABLE, opts: []envOption{noAdmin}, run: send(issue("BOC-JX"))},
	)
	revoke := func(bank string) request { return request{method: "DELETE", path: "/v1/banks/" + bank + "/keys"} }
	add("DELETE /v1/banks/{bank}/keys",
		statusCase{name: "revoke", status: 200, run: send(revoke("ICBC-JX"))},
		statusCase{name: "revoke with a body saying something", status: 400, code: EINVALID, message: `unknown field "key"`,
			run: send(withBody(revoke("ICBC-JX"), `{"key":"bk_x"}`))},
		statusCase{name: "revoke for a bank not registered", status: 404, code: ENOTFOUND, message: `bank "CCB-JX" is not registered`,
			run: send(revoke("CCB-JX"))},
		statusCase{name: "revoke for a bank id with a space", status: 400, code: EINVALID, message: "bank: must be printable ascii",
			run: send(revoke("CCB%20JX"))},
		statusCase{name: "revoke with a query", status: 400, code: EINVALID, message: "unknown query parameter",
			run: send(request{method: "DELETE", path: "/v1/banks/ICBC-JX/keys?all=true"})},
		statusCase{name: "revoke without auth", status: 401, code: EUNAUTHORIZED, run: send(request{method: "DELETE", path: "/v1/banks/ICBC-JX/keys", auth: "-"})},
		statusCase{name: "revoke with the bank's own key", status: 403, code: EFORBIDDEN, run: send(asBank(icbcKey, revoke("ICBC-JX")))},
		statusCase{name: "revoke store broken", status: 500, code: EINTERNAL, run: setFailing("RevokeBankKeys", errBroken, send(revoke("ICBC-JX")))},
		statusCase{name: "revoke store busy", status: 503, code: EUNAVAILABLE, run: setFailing("RevokeBankKeys", busy, send(revoke("ICBC-JX")))},
	)
	manifest := "/v1/bank/cycles/" + fakeDayPath + "/manifest"
	bankAuth := func(route, path string, run func(rq request) func(t *testing.T, e *env) *httptest.ResponseRecorder, rq request) {
		rq.path = path
		add(route,
			statusCase{name: "without a key", status: 401, code: EUNAUTHORIZED, message: "missing bank api key", run: run(rq)},
			statusCase{name: "with the admin token", status: 403, code: EFORBIDDEN, message: "invalid bank api key", run: run(asBank(testAdminToken, rq))},
			statusCase{name: "with a merchant's key", status: 403, code: EFORBIDDEN, message: "invalid bank api key",
				run: run(asBank(merchantKeyPrefix+strings.Repeat("M", merchantKeyLen-len(merchantKeyPrefix)), rq))},
			statusCase{name: "with an operator's key", status: 403, code: EFORBIDDEN, message: "invalid bank api key", run: run(asBank(hzMetroKey, rq))},
			statusCase{name: "with an unknown bank key", status: 403, code: EFORBIDDEN, message: "invalid bank api key",
				run: run(asBank(bankKeyPrefix+strings.Repeat("Z", bankKeyLen-len(bankKeyPrefix)), rq))},
			statusCase{name: "key lookup busy", status: 503, code: EUNAVAILABLE, run: func(t *testing.T, e *env) *httptest.ResponseRecorder {
				setFake(e).fail("BankByKey", busy)
				return run(asBank(abcKey, rq))(t, e)
			}},
		)
	}
	sendIt := func(rq request) func(t *testing.T, e *env) *httptest.ResponseRecorder {
		if rq.auth == "" {
			rq.auth = "-"
		}
		return send(rq)
	}
	bankAuth("GET /v1/bank/cycles/{date}/manifest", manifest, sendIt, request{method: "GET"})
	add("GET /v1/bank/cycles/{date}/manifest",
		statusCase{name: "manifest", status: 200, run: closed(send(bankGet(abcKey, manifest)))},
		statusCase{name: "manifest of a cycle not closed", status: 404, code: ENOTFOUND, message: "no settlement file of bank ABC-JX for cycle 2026-02-28",
			run: send(bankGet(abcKey, manifest))},
		statusCase{name: "manifest malformed date", status: 400, code: EINVALID, message: "date: ",
			run: send(bankGet(abcKey, "/v1/bank/cycles/28.02.2026/manifest"))},
		statusCase{name: "manifest store broken", status: 500, code: EINTERNAL, run: setFailing("Manifest", errBroken, send(bankGet(abcKey, manifest)))},
	)
	xml := "/v1/bank/cycles/" + fakeDayPath + "/files/xml"
	bankAuth("GET /v1/bank/cycles/{date}/files/{format}", xml, sendIt, request{method: "GET"})
	add("GET /v1/bank/cycles/{date}/files/{format}",
		statusCase{name: "xml", status: 200, run: closed(send(bankGet(abcKey, xml)))},
		statusCase{name: "csv", status: 200, run: closed(send(bankGet(icbcKey, "/v1/bank/cycles/2026-02-28/files/csv")))},
		statusCase{name: "file of a cycle not closed", status: 404, code: ENOTFOUND, message: "no settlement file", run: send(bankGet(abcKey, xml))},
		statusCase{name: "file in another format", status: 400, code: EINVALID, message: "format: want xml or csv",
			run: closed(send(bankGet(abcKey, "/v1/bank/cycles/2026-02-28/files/pdf")))},
		statusCase{name: "file malformed date", status: 400, code: EINVALID, message: "date: ",
			run: send(bankGet(abcKey, "/v1/bank/cycles/20260228/files/xml"))},
		statusCase{name: "file store broken", status: 500, code: EINTERNAL, run: closed(setFailing("WriteFile", errBroken, send(bankGet(abcKey, xml))))},
	)
	ackPath := "/v1/bank/cycles/" + fakeDayPath + "/acknowledgement"
	ackRun := func(rq request) func(t *testing.T, e *env) *httptest.ResponseRecorder {
		return closed(func(t *testing.T, e *env) *httptest.ResponseRecorder {
			r := postAck("", fakeDayPath, ackBody(t, fakeAckOf(t, e, bankfile.StatusPartial), false), false)
			r.auth = rq.auth
			if r.auth == "" {
				r.auth = "-"
			}
			return e.do(t, r)
		})
	}
	bankAuth("POST /v1/bank/cycles/{date}/acknowledgement", ackPath, ackRun, request{method: "POST"})
	ack := func(status bankfile.Status, csv bool, change func(a *bankfile.Ack)) func(t *testing.T, e *env) *httptest.ResponseRecorder {
		return func(t *testing.T, e *env) *httptest.ResponseRecorder {
			a := fakeAckOf(t, e, status)
			if change != nil {
				change(a)
			}
			return e.do(t, postAck(abcKey, fakeDayPath, ackBody(t, a, csv), csv))
		}
	}
	twice := func(first, second func(t *testing.T, e *env) *httptest.ResponseRecorder) func(t *testing.T, e *env) *httptest.ResponseRecorder {
		return func(t *testing.T, e *env) *httptest.ResponseRecorder {
			if w := first(t, e); w.Code != http.StatusCreated {
				t.Fatalf("first report: %d %s", w.Code, w.Body.String())
			}
			return second(t, e)
		}
	}
	part, partCSV, accp := ack(bankfile.StatusPartial, false, nil), ack(bankfile.StatusPartial, true, nil), ack(bankfile.StatusAccepted, false, nil)
	add("POST /v1/bank/cycles/{date}/acknowledgement",
		statusCase{name: "part", status: 201, run: closed(part)},
		statusCase{name: "accp as csv", status: 201, run: closed(ack(bankfile.StatusAccepted, true, nil))},
		statusCase{name: "the same report again", status: 200, run: closed(twice(part, part))},
		statusCase{name: "the same report again as csv", status: 200, run: closed(twice(part, partCSV))},
		statusCase{name: "the same verdicts under a new report id", status: 200,
			run: closed(twice(part, ack(bankfile.StatusPartial, true, func(a *bankfile.Ack) { a.MessageID, a.CreatedAt = "ACK-AGAIN", a.CreatedAt.Add(time.Hour) })))},
		statusCase{name: "another verdict", status: 409, code: ECONFLICT, reason: "verdict_differs", message: "was acknowledged before with other verdicts",
			run: closed(twice(part, accp))},
		statusCase{name: "report of another bank", status: 403, code: EFORBIDDEN, message: "another bank's",
			run: closed(ack(bankfile.StatusAccepted, false, func(a *bankfile.Ack) { a.BankID = "ICBC-JX" }))},
		statusCase{name: "report of a file of another cycle", status: 400, code: EINVALID, message: "not that of the bank's file of cycle 2026-02-28",
			run: closed(ack(bankfile.StatusAccepted, false, func(a *bankfile.Ack) { a.FileMessageID = "JIC-20260227-00000000-000001" }))},
		statusCase{name: "report naming an item not in the file", status: 400, code: EINVALID, message: "acknowledgement: it names items that are not in the file",
			run: closed(ack(bankfile.StatusPartial, false, func(a *bankfile.Ack) { a.Items[0].ItemID = strings.Repeat("0", 32) }))},
		statusCase{name: "report of a cycle not closed", status: 404, code: ENOTFOUND, message: "no settlement file",
			run: func(t *testing.T, e *env) *httptest.ResponseRecorder {
				a := &bankfile.Ack{MessageID: "ACK-1", CreatedAt: t0, FileMessageID: "JIC-20260228-00000000-000001", BankID: "ABC-JX", Status: bankfile.StatusAccepted}
				return e.do(t, postAck(abcKey, fakeDayPath, ackBody(t, a, false), false))
			}},
		statusCase{name: "report not well-formed", status: 400, code: EINVALID, message: "acknowledgement: line 1: ",
			run: send(postAck(abcKey, fakeDayPath, `<?xml version="1.0"?><Document`, false))},
		statusCase{name: "report in another namespace", status: 400, code: EINVALID, message: "acknowledgement: ",
			run: send(postAck(abcKey, fakeDayPath, `<?xml version="1.0"?><Document xmlns="urn:x"></Document>`, false))},
		statusCase{name: "csv report with a short row", status: 400, code: EINVALID, message: "acknowledgement: line 2: ack: has 2 fields, want 8",
			run: send(postAck(abcKey, fakeDayPath, "record,item_id,status,reason_code,reason\nH,x\n", true))},
		statusCase{name: "report as json", status: 400, code: EINVALID, message: "content-type: want application/xml or text/csv",
			run: send(asBank(abcKey, request{method: "POST", path: ackPath, body: `{"status":"ACCP"}`}))},
		statusCase{name: "report in latin-1", status: 400, code: EINVALID, message: "content-type: charset must be utf-8",
			run: send(asBank(abcKey, request{method: "POST", path: ackPath, body: "<x/>",
				header: map[string]string{"Content-Type": "application/xml; charset=iso-8859-1"}}))},
		statusCase{name: "report malformed date", status: 400, code: EINVALID, message: "date: ",
			run: send(postAck(abcKey, "2026-02-28T00:00", "<x/>", false))},
		statusCase{name: "report too large", status: 413, code: ETOOLARGE, message: fmt.Sprintf("larger than %d bytes", maxAckBodyBytes),
			run: send(postAck(abcKey, fakeDayPath, `<?xml version="1.0" encoding="UTF-8"?>`+"\n"+strings.Repeat(" ", maxAckBodyBytes), false))},
		statusCase{name: "report store broken", status: 500, code: EINTERNAL, run: closed(setFailing("Acknowledge", errBroken, part))},
		statusCase{name: "report file lookup broken", status: 500, code: EINTERNAL, run: closed(func(t *testing.T, e *env) *httptest.ResponseRecorder {
			body := ackBody(t, fakeAckOf(t, e, bankfile.StatusPartial), false)
			setFake(e).fail("File", errBroken)
			return e.do(t, postAck(abcKey, fakeDayPath, body, false))
		})},
		statusCase{name: "report store busy", status: 503, code: EUNAVAILABLE, run: closed(setFailing("Acknowledge", busy, part))},
	)
	return cs
}

// --- behaviour --------------------------------------------------------------------------------------

// The cycle view: every bank's position with its parts, what is held for want of a settlement
// bank, every registered bank's file (one without items too) with its checksums, awaiting its
// acknowledgement; the list shows the cycle; closing again answers the same.
func TestSettlementCycleView(t *testing.T) {
	e := newEnv(t)
	w := e.do(t, closeCycle(fakeDayPath))
	if w.Code != http.StatusOK {
		t.Fatalf("close: %d %s", w.Code, w.Body.String())
	}
	var v cycleView
	decodeStrictly(t, w, &v)
	closedAt := shanghaiTime(t0)
	want := cycleView{Date: "2026-02-28", StartsAfter: "2026-02-27T23:00:00+08:00", EndsAt: "2026-02-28T23:00:00+08:00",
		ValueDate: "2026-03-02", Status: "closed", FeeIncome: "0.50", ClosingAt: closedAt, ClosedAt: closedAt,
		Positions: []positionView{
			{Bank: "ABC-JX", Items: 2, Spent: "0.00", SpentTransit: "0.00", SpentPurchases: "0.00", SpentMedical: "0.00",
				Earned: "159.50", Fees: "0.50", MedicalFundShare: "0.00", Reoffered: "0.00", Net: "159.50"},
			{Bank: "ICBC-JX", Items: 2, Spent: "162.00", SpentTransit: "2.00", SpentPurchases: "160.00", SpentMedical: "0.00",
				Earned: "0.00", Fees: "0.00", MedicalFundShare: "0.00", Reoffered: "0.00", Net: "-162.00"},
		},
		Held: heldView{Items: 1, Earned: "2.00", Fees: "0.00", MedicalFundShare: "0.00", Net: "2.00"},
	}
	files := v.Files
	v.Files = nil
	if !equalJSON(t, v, want) {
		t.Errorf("cycle view\n got %+v\nwant %+v", v, want)
	}
	if len(files) != 3 || files[0].Bank != "ABC-JX" || files[1].Bank != "BOC-JX" || files[2].Bank != "ICBC-JX" {
		t.Fatalf("files %+v", files)
	}
	abc, boc := files[0], files[1]
	if abc.Sequence != 1 || abc.Entries != 2 || abc.ControlSum != "159.50" || abc.Net != "159.50" ||
		abc.Acknowledgement != (fileAckView{Status: "pending"}) || abc.XML.Name != abc.MessageID+".xml" || abc.CSV.Name != abc.MessageID+".csv" {
		t.Errorf("ABC-JX's file %+v", abc)
	}
	if boc.Entries != 0 || boc.ControlSum != "0.00" || boc.Net != "0.00" {
		t.Errorf("BOC-JX's file, without items: %+v", boc)
	}
	rec, err := setFake(e).File(context.Background(), "ABC-JX", fakeDay)
	if err != nil {
		t.Fatal(err)
	}
	if abc.XML.SHA256 != fmt.Sprintf("%x", rec.XML.SHA256) || abc.XML.Size != rec.XML.Size || abc.CSV.SHA256 != fmt.Sprintf("%x", rec.CSV.SHA256) {
		t.Errorf("ABC-JX's checksums %+v, the record's %+v", abc, rec)
	}

	e.clock.Advance(time.Hour)
	again := e.do(t, closeCycle(fakeDayPath))
	if again.Code != http.StatusOK || again.Body.String() != w.Body.String() {
		t.Errorf("closed again: %d\n%s\nfirst\n%s", again.Code, again.Body.String(), w.Body.String())
	}
	if got := e.do(t, request{method: "GET", path: "/v1/settlement/cycles/" + fakeDayPath}); got.Body.String() != w.Body.String() {
		t.Errorf("read back:\n%s\nclosed\n%s", got.Body.String(), w.Body.String())
	}

	// The next day closes too: the list is newest first.
	e.clock.Advance(24 * time.Hour)
	if w := e.do(t, closeCycle("2026-03-01")); w.Code != http.StatusOK {
		t.Fatalf("close the next day: %d %s", w.Code, w.Body.String())
	}
	var list cycleListView
	decodeStrictly(t, e.do(t, request{method: "GET", path: "/v1/settlement/cycles"}), &list)
	if len(list.Cycles) != 2 || list.Cycles[0].Date != "2026-03-01" || list.Cycles[1].Date != "2026-02-28" ||
		list.Cycles[1].FeeIncome != "0.50" || list.Cycles[1].ValueDate != "2026-03-02" || list.Cycles[1].Status != "closed" {
		t.Errorf("list %+v", list)
	}
	decodeStrictly(t, e.do(t, request{method: "GET", path: "/v1/settlement/cycles?limit=1"}), &list)
	if len(list.Cycles) != 1 || list.Cycles[0].Date != "2026-03-01" {
		t.Errorf("list of one %+v", list)
	}
}

// equalJSON reports whether a and b encode alike.
func equalJSON(t *testing.T, a, b any) bool {
	t.Helper()
	x, err := json.Marshal(a)
	if err != nil {
		t.Fatal(err)
	}
	y, err := json.Marshal(b)
	if err != nil {
		t.Fatal(err)
	}
	return bytes.Equal(x, y)
}

// A bank fetches its manifest and its files: the first GET of each format is the original, which
// the manifest's checksums verify; later ones are duplicate copies, marked in the file and the
// header. A HEAD fetches nothing. Another bank fetching gets its own file, never this one.
func TestSettlementBankFetchesItsFiles(t *testing.T) {
	e := newEnv(t)
	if w := e.do(t, closeCycle(fakeDayPath)); w.Code != http.StatusOK {
		t.Fatalf("close: %d %s", w.Code, w.Body.String())
	}
	w := e.do(t, bankGet(abcKey, "/v1/bank/cycles/2026-02-28/manifest"))
	if w.Code != http.StatusOK || w.Header().Get("Content-Type") != "text/plain; charset=utf-8" || w.Header().Get("Cache-Control") != "no-store" {
		t.Fatalf("manifest: %d %v %s", w.Code, w.Header(), w.Body.String())
	}
	m, err := bankfile.ReadManifest(bytes.NewReader(w.Body.Bytes()))
	if err != nil || len(m.Files) != 2 {
		t.Fatalf("manifest %+v: %v", m, err)
	}
	for _, f := range []struct {
		format, contentType string
		read                func(io.Reader) (*bankfile.File, error)
	}{{"xml", "application/xml", bankfile.ReadXML}, {"csv", "text/csv; charset=utf-8", bankfile.ReadCSV}} {
		path := "/v1/bank/cycles/2026-02-28/files/" + f.format
		if w := e.do(t, asBank(abcKey, request{method: "HEAD", path: path})); w.Code != http.StatusOK || w.Body.Len() != 0 || w.Header().Get(copyHeader) != "" {
			t.Errorf("HEAD %s: %d %v", f.format, w.Code, w.Header())
		}
		first := e.do(t, bankGet(abcKey, path))
		if first.Code != http.StatusOK || first.Header().Get(copyHeader) != "original" || first.Header().Get("Content-Type") != f.contentType {
			t.Fatalf("%s: %d %v %s", f.format, first.Code, first.Header(), first.Body.String())
		}
		name := m.Files[0].Name
		if m.Files[1].Format == bankfile.Format(f.format) {
			name = m.Files[1].Name
		}
		if got := first.Header().Get("Content-Disposition"); got != `attachment; filename=`+name {
			t.Errorf("%s: Content-Disposition %q, want the name %s", f.format, got, name)
		}
		if err := m.Verify(name, first.Body.Bytes()); err != nil {
			t.Errorf("%s against the manifest: %v", f.format, err)
		}
		file, err := f.read(bytes.NewReader(first.Body.Bytes()))
		if err != nil || file.Header.Copy || file.Header.BankID != "ABC-JX" || len(file.Items) != 2 {
			t.Fatalf("%s read back: %+v %v", f.format, file, err)
		}
		again := e.do(t, bankGet(abcKey, path))
		if again.Code != http.StatusOK || again.Header().Get(copyHeader) != "duplicate" {
			t.Fatalf("%s again: %d %v", f.format, again.Code, again.Header())
		}
		dup, err := f.read(bytes.NewReader(again.Body.Bytes()))
		if err != nil || !dup.Header.Copy || dup.Header.Sequence != file.Header.Sequence || dup.Header.MessageID != file.Header.MessageID {
			t.Fatalf("%s copy: %+v %v", f.format, dup, err)
		}

		// ICBC-JX, fetching, gets its own file.
		other := e.do(t, bankGet(icbcKey, path))
		own, err := f.read(bytes.NewReader(other.Body.Bytes()))
		if err != nil || own.Header.BankID != "ICBC-JX" || own.Header.MessageID == file.Header.MessageID {
			t.Fatalf("ICBC-JX's %s: %d %+v %v", f.format, other.Code, own, err)
		}
	}
}

// A bank's acknowledgement: 201 with what it did, the same report 200 (in XML or CSV), another
// 409; the cycle view shows it.
func TestSettlementAcknowledgement(t *testing.T) {
	e := newEnv(t)
	if w := e.do(t, closeCycle(fakeDayPath)); w.Code != http.StatusOK {
		t.Fatalf("close: %d %s", w.Code, w.Body.String())
	}
	part := fakeAckOf(t, e, bankfile.StatusPartial)
	w := e.do(t, postAck(abcKey, fakeDayPath, ackBody(t, part, false), false))
	if w.Code != http.StatusCreated {
		t.Fatalf("ack: %d %s", w.Code, w.Body.String())
	}
	var res ackResultView
	decodeStrictly(t, w, &res)
	want := ackResultView{Bank: "ABC-JX", Cycle: "2026-02-28", FileMessageID: part.FileMessageID, MessageID: "ACK-ABC-1", Status: "partial",
		Items: 2, Rejected: 1, Returned: "10.00"}
	if res != want {
		t.Errorf("ack %+v, want %+v", res, want)
	}
	w = e.do(t, postAck(abcKey, fakeDayPath, ackBody(t, part, true), true))
	var again ackResultView
	decodeStrictly(t, w, &again)
	if w.Code != http.StatusOK || again != want {
		t.Errorf("the same report in CSV: %d %+v", w.Code, again)
	}
	if w := e.do(t, postAck(abcKey, fakeDayPath, ackBody(t, fakeAckOf(t, e, bankfile.StatusAccepted), false), false)); w.Code != http.StatusConflict {
		t.Errorf("another report: %d %s", w.Code, w.Body.String())
	}
	var v cycleView
	decodeStrictly(t, e.do(t, request{method: "GET", path: "/v1/settlement/cycles/" + fakeDayPath}), &v)
	if a := v.Files[0].Acknowledgement; v.Files[0].Bank != "ABC-JX" || a != (fileAckView{Status: "partial", ReceivedAt: shanghaiTime(t0), Rejected: 1}) {
		t.Errorf("the cycle view's acknowledgement %+v", v.Files)
	}
	if a := v.Files[2].Acknowledgement; a.Status != "pending" {
		t.Errorf("ICBC-JX's file, not acknowledged: %+v", a)
	}
}

// A bank key is shown once, works at once for its bank's files, and is stored only as a hash.
func TestSettlementBankKeyIssued(t *testing.T) {
	e := newEnv(t)
	w := e.do(t, request{method: "POST", path: "/v1/banks/BOC-JX/keys"})
	var k bankKeyView
	decodeStrictly(t, w, &k)
	if w.Code != http.StatusCreated || k.Bank != "BOC-JX" || len(k.APIKey) != bankKeyLen || !strings.HasPrefix(k.APIKey, bankKeyPrefix) {
		t.Fatalf("key: %d %+v", w.Code, k)
	}
	other := e.do(t, request{method: "POST", path: "/v1/banks/BOC-JX/keys"})
	var k2 bankKeyView
	decodeStrictly(t, other, &k2)
	if k2.APIKey == k.APIKey {
		t.Error("two keys issued alike")
	}
	if w := e.do(t, closeCycle(fakeDayPath)); w.Code != http.StatusOK {
		t.Fatalf("close: %d", w.Code)
	}
	for _, key := range []string{k.APIKey, k2.APIKey} {
		w := e.do(t, bankGet(key, "/v1/bank/cycles/2026-02-28/files/csv"))
		f, err := bankfile.ReadCSV(bytes.NewReader(w.Body.Bytes()))
		if w.Code != http.StatusOK || err != nil || f.Header.BankID != "BOC-JX" {
			t.Errorf("BOC-JX's file with its key: %d %v", w.Code, err)
		}
	}
	f := setFake(e)
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.keys[sha256.Sum256([]byte(k.APIKey))] != "BOC-JX" {
		t.Error("the store was not given the key's hash")
	}
	if strings.Contains(e.log.String(), k.APIKey) {
		t.Error("the log holds the key")
	}
}
