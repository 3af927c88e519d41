package http

import (
	"bytes"
	"context"
	"log/slog"
	"net/http"
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
	"github.com/joinincard/engine/loadtest"
	"github.com/joinincard/engine/postgres"
	"github.com/joinincard/engine/reconcile"
	"github.com/joinincard/engine/reconcile/statement"
	"github.com/joinincard/engine/settlement"
	"github.com/joinincard/engine/settlement/bankfile"
)

// TestReconciliationAgainstPostgres reconciles a settled day over the API on the real store: a
// card of ICBC-JX spends 300.00 and 45.50 at two merchants of ABC-JX and the cycle closes; each
// bank's statement is written from the file it fetched, as it would book it. ABC-JX's books one
// item a fen more: posted in XML, 201 with the amount mismatch counted; again, 200 replayed; its
// id with other content, 409. ICBC-JX's, cut in half, is refused naming a line and changes
// nothing; whole, in CSV (booking its item 1.00 more), it imports. The breaks are listed, read
// with their entries, ABC-JX's resolved with a note (201, then 409), ICBC-JX's with an
// adjustment that moves the bank's settlement position by the difference. pgtest verifies the
// ledger when the test ends.
func TestReconciliationAgainstPostgres(t *testing.T) {
	store := pgtest.NewStore(t)
	c := &clock{now: time.Date(2026, time.March, 3, 10, 0, 0, 0, cards.Shanghai)}
	store.Now = c.Now
	set, err := postgres.NewSettlement(store, testCycles(t))
	if err != nil {
		t.Fatal(err)
	}
	rules, err := reconcile.DefaultRules()
	if err != nil {
		t.Fatal(err)
	}
	log := &syncBuffer{}
	e := &env{log: log, clock: c}
	e.srv = NewServer(Config{
		Store: store, Broker: pinger(pingOK), Tokenizer: testTokenizer(t), AdminToken: testAdminToken,
		Metrics: prometheus.NewRegistry(), Now: c.Now,
		Log:      slog.New(slog.NewJSONHandler(log, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Features: []Feature{NewSettlement(set, store), NewReconciliation(postgres.NewReconciler(store, rules))},
	})
	e.h = e.srv.Handler()
	ctx := context.Background()
	must := func(rq request, want int) *bytes.Buffer {
		t.Helper()
		w := e.do(t, rq)
		if w.Code != want {
			t.Fatalf("%s %s: %d, want %d: %s", rq.method, rq.path, w.Code, want, w.Body.String())
		}
		return w.Body
	}

	// The day: parties, the card, what it spent; the cycle closes after the cut-off.
	for _, body := range []string{
		`{"kind":"bank","id":"ICBC-JX","name":"ICBC Jiaxing"}`,
		`{"kind":"bank","id":"ABC-JX","name":"ABC Jiaxing"}`,
		`{"kind":"insurance_fund","id":"jiaxing","name":"Jiaxing medical fund"}`,
		`{"kind":"merchant","id":"shop-1","name":"Department Store","settlement_bank":"ABC-JX"}`,
		`{"kind":"merchant","id":"kiosk-9","name":"West Lake kiosk","settlement_bank":"ABC-JX"}`,
	} {
		must(request{method: "POST", path: "/v1/parties", body: body}, http.StatusCreated)
	}
	must(request{method: "POST", path: "/v1/cards", key: keyAt(t, c.Now()), body: registration(nil)}, http.StatusCreated)
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
	c.Advance(13*time.Hour + 10*time.Minute) // 23:10, past the cut-off
	must(closeCycle("2026-03-03"), http.StatusOK)

	// Each bank fetches its file and books it; the statements arrive the morning after.
	fileOf := func(bank string) *bankfile.File {
		t.Helper()
		var k bankKeyView
		if err := decodeBuffer(must(request{method: "POST", path: "/v1/banks/" + bank + "/keys"}, http.StatusCreated), &k); err != nil {
			t.Fatal(err)
		}
		f, err := bankfile.ReadXML(must(bankGet(k.APIKey, "/v1/bank/cycles/2026-03-03/files/xml"), http.StatusOK))
		if err != nil {
			t.Fatal(err)
		}
		return f
	}
	abcFile, icbcFile := fileOf("ABC-JX"), fileOf("ICBC-JX")
	if len(abcFile.Items) != 2 || len(icbcFile.Items) != 1 {
		t.Fatalf("files of %d and %d items", len(abcFile.Items), len(icbcFile.Items))
	}
	c.Advance(11 * time.Hour) // 2026-03-04 10:10
	abc := loadtest.StatementFor(abcFile, 1, 0, c.Now())
	abc.Entries[0].Amount++ // a fen more than the item
	loadtest.Retotal(abc)
	mismatched := abcFile.Items[0]
	write := func(s *statement.Statement, csv bool) string {
		t.Helper()
		return statementBody(t, s, csv)
	}
	var imp statementImportView
	if err := decodeBuffer(must(postStatement(write(abc, false), false), http.StatusCreated), &imp); err != nil {
		t.Fatal(err)
	}
	want := statementImportView{Bank: "ABC-JX", StatementID: "STMT-ABC-JX-000001", Sequence: 1, Entries: 2,
		Reconciliation: reconcileRunView{Bank: "ABC-JX", Entries: 2, Matched: 1, Breaks: breakCountView{AmountMismatch: 1}}}
	if imp != want {
		t.Fatalf("ABC-JX's statement\n got %+v\nwant %+v", imp, want)
	}
	if err := decodeBuffer(must(postStatement(write(abc, false), false), http.StatusOK), &imp); err != nil {
		t.Fatal(err)
	}
	// Reconciled again: the entry of the mismatch, not matched, is decided again, but was
	// reconciled before, and its break, found again, is not recorded again.
	want.Replayed, want.Reconciliation = true, reconcileRunView{Bank: "ABC-JX"}
	if imp != want {
		t.Errorf("ABC-JX's statement again\n got %+v\nwant %+v", imp, want)
	}
	other := loadtest.StatementFor(abcFile, 1, 0, c.Now())
	other.Entries[1].AdditionalInfo = "商户结算 merchant settlement"
	if msg := errorOf(t, e.do(t, postStatement(write(other, false), false))); msg.Code != ECONFLICT ||
		!strings.Contains(msg.Message, "statement STMT-ABC-JX-000001 of bank ABC-JX, sequence 1") {
		t.Errorf("its id with other content: %+v", msg)
	}
	unknown := loadtest.StatementFor(icbcFile, 1, 0, c.Now())
	unknown.Header.BankID = "CCB-JX"
	if w := e.do(t, postStatement(write(unknown, false), false)); w.Code != http.StatusBadRequest ||
		errorOf(t, w).Message != `statement: header: bank "CCB-JX" is not registered` {
		t.Errorf("a bank not registered: %d %s", w.Code, w.Body.String())
	}

	// ICBC-JX's statement cut in half: refused naming a line, nothing kept.
	breaksBefore := must(request{method: "GET", path: "/v1/reconciliation/breaks"}, http.StatusOK).String()
	icbc := loadtest.StatementFor(icbcFile, 1, 0, c.Now())
	icbc.Entries[0].Amount += 1_00 // the bank debited 1.00 more
	loadtest.Retotal(icbc)
	whole := write(icbc, false)
	w := e.do(t, postStatement(whole[:len(whole)/2], false))
	if w.Code != http.StatusBadRequest || !strings.HasPrefix(errorOf(t, w).Message, "statement: line ") {
		t.Fatalf("half a statement: %d %s", w.Code, w.Body.String())
	}
	if after := must(request{method: "GET", path: "/v1/reconciliation/breaks"}, http.StatusOK).String(); after != breaksBefore {
		t.Errorf("half a statement changed the breaks:\n%s\nbefore\n%s", after, breaksBefore)
	}
	if err := decodeBuffer(must(postStatement(write(icbc, true), true), http.StatusCreated), &imp); err != nil {
		t.Fatal(err)
	}
	if imp.Replayed || imp.Entries != 1 || imp.Reconciliation.Breaks != (breakCountView{AmountMismatch: 1}) {
		t.Errorf("ICBC-JX's whole statement after half of it: %+v", imp)
	}

	// The breaks: ABC-JX's, open, as the API shows it, with its entry.
	var list reconBreakListView
	if err := decodeBuffer(must(request{method: "GET", path: "/v1/reconciliation/breaks?bank=ABC-JX&open=true&cycle=2026-03-03"}, http.StatusOK), &list); err != nil {
		t.Fatal(err)
	}
	if len(list.Breaks) != 1 {
		t.Fatalf("ABC-JX's open breaks: %+v", list.Breaks)
	}
	b := list.Breaks[0]
	booked := decimalAmount(mismatched.Amount+1, "CNY")
	wantBreak := reconBreakView{ID: b.ID, Bank: "ABC-JX", Kind: "amount_mismatch", Cycle: "2026-03-03", ItemID: mismatched.ID,
		FileID: abcFile.Header.MessageID, Expected: decimalAmount(mismatched.Amount, "CNY"), Actual: booked, ExpectedDate: "2026-03-04",
		ActualDate: "2026-03-04", AsOf: "2026-03-04", AgeDays: 0, AgeBucket: "0-1",
		Detail: ledgerText(mismatched.Amount+1) + " booked, " + ledgerText(mismatched.Amount) + " expected", DetectedAt: b.DetectedAt}
	if b != wantBreak || mismatched.Direction != bankfile.Credit || b.DetectedAt != shanghaiTime(c.Now()) {
		t.Errorf("ABC-JX's break\n got %+v\nwant %+v", b, wantBreak)
	}
	var all reconBreakListView
	if err := decodeBuffer(must(request{method: "GET", path: "/v1/reconciliation/breaks?limit=1"}, http.StatusOK), &all); err != nil || len(all.Breaks) != 1 {
		t.Errorf("a listing of one: %+v %v", all, err)
	}
	var d reconBreakDetailView
	if err := decodeBuffer(must(request{method: "GET", path: "/v1/reconciliation/breaks/" + b.ID}, http.StatusOK), &d); err != nil {
		t.Fatal(err)
	}
	wantEntry := reconEntryView{StatementID: "STMT-ABC-JX-000001", Line: 1, EntryRef: "B000001000001", Ref: mismatched.ID, Amount: booked,
		BookingDate: "2026-03-04", ValueDate: "2026-03-04", Info: ""}
	if d.reconBreakView != wantBreak || !slices.Equal(d.Entries, []reconEntryView{wantEntry}) {
		t.Errorf("the break read\n got %+v\nwant %+v with %+v", d, wantBreak, wantEntry)
	}
	must(request{method: "GET", path: "/v1/reconciliation/breaks/0195a3c2-5e00-7a41-8b3e-2f7d9c1e4a11"}, http.StatusNotFound)

	// Resolved with a note, once.
	c.Advance(time.Hour)
	if err := decodeBuffer(must(resolution(parseID(t, b.ID), `{"kind":"note","note":"银行多记一分，已退回 refunded","by":"李娜"}`),
		http.StatusCreated), &d); err != nil {
		t.Fatal(err)
	}
	if d.Resolution == nil || *d.Resolution != (reconResolutionView{Kind: "note", Note: "银行多记一分，已退回 refunded", By: "李娜", At: shanghaiTime(c.Now())}) ||
		len(d.Entries) != 1 {
		t.Errorf("resolved: %+v", d)
	}
	must(resolution(parseID(t, b.ID), `{"kind":"adjustment","note":"again","by":"李娜"}`), http.StatusConflict)
	if err := decodeBuffer(must(request{method: "GET", path: "/v1/reconciliation/breaks?bank=ABC-JX&open=true"}, http.StatusOK), &list); err != nil ||
		len(list.Breaks) != 0 {
		t.Errorf("ABC-JX's open breaks after the note: %+v %v", list, err)
	}

	// ICBC-JX's, resolved by an adjustment of its position by what it booked less what was settled.
	if err := decodeBuffer(must(request{method: "GET", path: "/v1/reconciliation/breaks?bank=ICBC-JX"}, http.StatusOK), &list); err != nil ||
		len(list.Breaks) != 1 || list.Breaks[0].Expected != "-345.50" || list.Breaks[0].Actual != "-346.50" {
		t.Fatalf("ICBC-JX's breaks: %+v %v", list, err)
	}
	position := settlement.PositionAccount("ICBC-JX")
	before, err := store.Balance(ctx, position)
	if err != nil {
		t.Fatal(err)
	}
	if err := decodeBuffer(must(resolution(parseID(t, list.Breaks[0].ID), `{"kind":"adjustment","note":"booked as the bank did","by":"Li Na"}`),
		http.StatusCreated), &d); err != nil {
		t.Fatal(err)
	}
	if d.Resolution == nil || d.Resolution.Kind != "adjustment" || d.Resolution.TransferID == "" {
		t.Fatalf("adjusted: %+v", d.Resolution)
	}
	after, err := store.Balance(ctx, position)
	if err != nil || after.Net()-before.Net() != -1_00 {
		t.Errorf("ICBC-JX's position moved by %d, want -1.00: %v", after.Net()-before.Net(), err)
	}
	for _, leak := range []string{testPAN, testPassport} {
		if strings.Contains(log.String(), leak) {
			t.Error("the log holds a personal number")
		}
	}
}

func ledgerText(fen int64) string { return fmtMoney(fen) }

func parseID(t testing.TB, s string) ledger.ID {
	t.Helper()
	u, err := uuid.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return ledger.ID(u)
}
