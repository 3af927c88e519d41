package http

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
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
	"github.com/joinincard/engine/settlement/bankfile"
)

// TestSettlementAgainstPostgres settles a day through the API on the real store: banks and
// parties registered with their settlement banks, a card funded, purchases at two merchants of
// one acquirer and one cleared from Kafka at a kiosk without a settlement bank; the cycle closed
// (and again), its view; bank keys issued; the acquirer fetching its manifest and both files,
// verified against the manifest, then duplicate copies; another bank seeing only its own file;
// a PART acknowledgement rejecting one item, the same report again in XML and CSV, another
// report refused; the next cycle offering again the rejected item and the kiosk's, once the
// kiosk has a bank. pgtest verifies the ledger when the test ends.
func TestSettlementAgainstPostgres(t *testing.T) {
	store := pgtest.NewStore(t)
	c := &clock{now: time.Date(2026, time.March, 3, 10, 0, 0, 0, cards.Shanghai)}
	store.Now = c.Now
	p, err := postgres.NewPurchases(store)
	if err != nil {
		t.Fatal(err)
	}
	runUntilCleanup(t, p.Run)
	set, err := postgres.NewSettlement(store, testCycles(t))
	if err != nil {
		t.Fatal(err)
	}
	log := &syncBuffer{}
	e := &env{log: log, clock: c}
	e.srv = NewServer(Config{
		Store: store, Broker: pinger(pingOK), Tokenizer: testTokenizer(t), AdminToken: testAdminToken,
		Metrics: prometheus.NewRegistry(), Now: c.Now,
		Log:      slog.New(slog.NewJSONHandler(log, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Features: []Feature{NewPurchases(p), NewSettlement(set, store)},
	})
	e.h = e.srv.Handler()
	ctx := context.Background()
	must := func(rq request, want int) *bytes.Buffer {
		t.Helper()
		w := e.do(t, rq)
		if w.Code != want {
			t.Fatalf("%s %s: %d %s", rq.method, rq.path, w.Code, w.Body.String())
		}
		return w.Body
	}

	// The issuer ICBC-JX, the acquirer ABC-JX, BOC-JX holding the Jiaxing fund; the kiosk has no
	// settlement bank yet.
	for _, body := range []string{
		`{"kind":"bank","id":"ICBC-JX","name":"ICBC Jiaxing"}`,
		`{"kind":"bank","id":"ABC-JX","name":"ABC Jiaxing 农业银行"}`,
		`{"kind":"bank","id":"BOC-JX","name":"BOC Jiaxing"}`,
		`{"kind":"insurance_fund","id":"jiaxing","name":"Jiaxing medical fund","settlement_bank":"BOC-JX"}`,
		`{"kind":"merchant","id":"kiosk-9","name":"West Lake kiosk"}`,
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

	merchantKey := func(body string) string {
		var m merchantView
		if err := decodeBuffer(must(request{method: "POST", path: "/v1/merchants", body: body}, http.StatusCreated), &m); err != nil {
			t.Fatal(err)
		}
		return m.APIKey
	}
	shop := merchantKey(`{"id":"shop-1","name":"Department Store","mcc":"5311","city":"jiaxing","acquiring_bank":"ABC-JX","fee_plan":"domestic-standard"}`)
	grocer := merchantKey(`{"id":"grocer-1","name":"Corner Grocer","mcc":"5411","city":"jiaxing","acquiring_bank":"ABC-JX","fee_plan":"domestic-standard"}`)
	buy := func(key, amount string) {
		t.Helper()
		var a authorizationView
		if err := decodeBuffer(must(request{method: "POST", path: "/v1/authorizations", key: keyAt(t, c.Now()), auth: "Bearer " + key,
			body: `{"card_token":"` + card + `","amount":"` + amount + `","currency":"CNY"}`}, http.StatusCreated), &a); err != nil || a.Decision != "approved" {
			t.Fatalf("authorize %s: %+v %v", amount, a, err)
		}
		must(request{method: "POST", path: "/v1/authorizations/" + a.ID + "/capture", key: keyAt(t, c.Now()), auth: "Bearer " + key, body: `{}`},
			http.StatusCreated)
	}
	buy(shop, "300.00")
	buy(grocer, "40.00")
	ingest(events.TypePurchaseCleared, &events.PurchaseCleared{MerchantID: "kiosk-9", MCC: "5411", Amount: events.Money{Minor: 5_50, Currency: "CNY"}})

	// The cut-off has not passed: refused, saying when it ends.
	if w := e.do(t, closeCycle("2026-03-03")); w.Code != http.StatusConflict || !strings.Contains(errorOf(t, w).Message, "ends at 2026-03-03T23:00:00+08:00") {
		t.Fatalf("close before the cut-off: %d %s", w.Code, w.Body.String())
	}
	c.Advance(13*time.Hour + 10*time.Minute) // 23:10
	first := must(closeCycle("2026-03-03"), http.StatusOK).String()
	var v cycleView
	if err := decodeBuffer(bytes.NewBufferString(first), &v); err != nil {
		t.Fatal(err)
	}
	// 300.00 at 0.35% + 0.065% network is 1.05 + 0.20 = 1.25 of fees; 40.00: 0.14 + 0.03 = 0.17.
	if v.Status != "closed" || v.ValueDate != "2026-03-04" || v.FeeIncome != "1.42" || len(v.Positions) != 2 ||
		v.Positions[0] != (positionView{Bank: "ABC-JX", Items: 2, Spent: "0.00", SpentTransit: "0.00", SpentPurchases: "0.00", SpentMedical: "0.00",
			Earned: "338.58", Fees: "1.42", MedicalFundShare: "0.00", Reoffered: "0.00", Net: "338.58"}) ||
		v.Positions[1] != (positionView{Bank: "ICBC-JX", Items: 1, Spent: "345.50", SpentTransit: "0.00", SpentPurchases: "345.50", SpentMedical: "0.00",
			Earned: "0.00", Fees: "0.00", MedicalFundShare: "0.00", Reoffered: "0.00", Net: "-345.50"}) ||
		v.Held != (heldView{Items: 1, Earned: "5.50", Fees: "0.00", MedicalFundShare: "0.00", Net: "5.50"}) {
		t.Fatalf("the cycle:\n%s", first)
	}
	if len(v.Files) != 3 || v.Files[0].Bank != "ABC-JX" || v.Files[0].Entries != 2 || v.Files[0].Net != "338.58" || v.Files[0].Sequence != 1 ||
		v.Files[1].Bank != "BOC-JX" || v.Files[1].Entries != 0 || v.Files[2].Bank != "ICBC-JX" || v.Files[2].Acknowledgement.Status != "pending" {
		t.Fatalf("the files:\n%s", first)
	}
	c.Advance(time.Minute)
	if again := must(closeCycle("2026-03-03"), http.StatusOK).String(); again != first {
		t.Errorf("closed again:\n%s\nfirst\n%s", again, first)
	}

	bankKey := func(bank string) string {
		var k bankKeyView
		if err := decodeBuffer(must(request{method: "POST", path: "/v1/banks/" + bank + "/keys"}, http.StatusCreated), &k); err != nil {
			t.Fatal(err)
		}
		return k.APIKey
	}
	must(request{method: "POST", path: "/v1/banks/CCB-JX/keys"}, http.StatusNotFound)
	abc, icbc := bankKey("ABC-JX"), bankKey("ICBC-JX")

	// ABC-JX fetches its manifest and both files: the originals verify against the manifest.
	m, err := bankfile.ReadManifest(must(bankGet(abc, "/v1/bank/cycles/2026-03-03/manifest"), http.StatusOK))
	if err != nil || len(m.Files) != 2 {
		t.Fatalf("manifest %+v: %v", m, err)
	}
	var fileID string
	var items []bankfile.Item
	for _, f := range []struct {
		format string
		read   func(io.Reader) (*bankfile.File, error)
	}{{"xml", bankfile.ReadXML}, {"csv", bankfile.ReadCSV}} {
		path := "/v1/bank/cycles/2026-03-03/files/" + f.format
		w := e.do(t, bankGet(abc, path))
		if w.Code != http.StatusOK || w.Header().Get(copyHeader) != "original" {
			t.Fatalf("%s: %d %v", f.format, w.Code, w.Header())
		}
		_, params, _ := strings.Cut(w.Header().Get("Content-Disposition"), "filename=")
		if err := m.Verify(params, w.Body.Bytes()); err != nil {
			t.Errorf("%s against the manifest: %v", f.format, err)
		}
		file, err := f.read(bytes.NewReader(w.Body.Bytes()))
		if err != nil || file.Header.Copy || file.Header.BankID != "ABC-JX" || len(file.Items) != 2 {
			t.Fatalf("%s: %+v %v", f.format, file, err)
		}
		fileID, items = file.Header.MessageID, file.Items
		again := e.do(t, bankGet(abc, path))
		dup, err := f.read(bytes.NewReader(again.Body.Bytes()))
		if again.Header().Get(copyHeader) != "duplicate" || err != nil || !dup.Header.Copy || dup.Header.MessageID != fileID {
			t.Errorf("%s again: %v %+v %v", f.format, again.Header(), dup, err)
		}
		if m.Verify(params, again.Body.Bytes()) == nil {
			t.Errorf("%s: the duplicate copy has the original's checksum", f.format)
		}
	}

	// ICBC-JX sees its own file only, and cannot acknowledge ABC-JX's; a merchant's key is no
	// bank's; a bank registered after the close has no file of it.
	own, err := bankfile.ReadXML(must(bankGet(icbc, "/v1/bank/cycles/2026-03-03/files/xml"), http.StatusOK))
	if err != nil || own.Header.BankID != "ICBC-JX" || own.Header.MessageID == fileID {
		t.Fatalf("ICBC-JX's file: %+v %v", own, err)
	}
	var grocerItem bankfile.Item
	for _, it := range items {
		if it.Party == "grocer-1" {
			grocerItem = it
		}
	}
	part := &bankfile.Ack{MessageID: "ACK-ABC-0001", CreatedAt: c.Now(), FileMessageID: fileID, BankID: "ABC-JX", Status: bankfile.StatusPartial,
		Items: []bankfile.ItemStatus{{ItemID: grocerItem.ID, ReasonCode: "AC04", Reason: "account closed 账户已销户"}}}
	must(postAck(icbc, "2026-03-03", ackBody(t, part, false), false), http.StatusForbidden)
	posing := *part
	posing.BankID = "ICBC-JX"
	must(postAck(icbc, "2026-03-03", ackBody(t, &posing, false), false), http.StatusBadRequest)
	must(bankGet(shop, "/v1/bank/cycles/2026-03-03/manifest"), http.StatusForbidden)
	must(bankGet(testAdminToken, "/v1/bank/cycles/2026-03-03/manifest"), http.StatusForbidden)
	must(request{method: "POST", path: "/v1/parties", body: `{"kind":"bank","id":"CCB-JX","name":"CCB Jiaxing"}`}, http.StatusCreated)
	must(bankGet(bankKey("CCB-JX"), "/v1/bank/cycles/2026-03-03/manifest"), http.StatusNotFound)

	// A writer whose clock is behind the ledger's history (the close stamped its postings at
	// 23:10) is not a fault of the request: 503, naming the reason, and nothing recorded.
	c.Advance(-2 * time.Hour)
	if w := e.do(t, postAck(abc, "2026-03-03", ackBody(t, part, false), false)); w.Code != http.StatusServiceUnavailable {
		t.Errorf("a report to a writer whose clock is behind: %d %s", w.Code, w.Body.String())
	} else if got := errorOf(t, w); got.Code != EUNAVAILABLE || got.Reason != "clock_behind" || w.Header().Get("Retry-After") == "" {
		t.Errorf("a report to a writer whose clock is behind: %+v", got)
	}
	c.Advance(2 * time.Hour)

	// ABC-JX rejects the grocer's item: its money goes back to the grocer's clearing account.
	c.Advance(9 * time.Hour)
	var res ackResultView
	if err := decodeBuffer(must(postAck(abc, "2026-03-03", ackBody(t, part, false), false), http.StatusCreated), &res); err != nil {
		t.Fatal(err)
	}
	want := ackResultView{Bank: "ABC-JX", Cycle: "2026-03-03", FileMessageID: fileID, MessageID: "ACK-ABC-0001", Status: "partial",
		Items: 2, Rejected: 1, Returned: decimalAmount(grocerItem.Amount, "CNY")}
	if res != want || grocerItem.Amount != 39_83 {
		t.Fatalf("acknowledgement %+v, want %+v", res, want)
	}
	grocerAccount := clearing.PartyAccount(clearing.PartyMerchant, "grocer-1")
	if b, err := store.Balance(ctx, grocerAccount); err != nil || b.Net() != 39_83 {
		t.Fatalf("the grocer after the return: %d %v", b.Net(), err)
	}
	for _, csv := range []bool{false, true} {
		var again ackResultView
		if err := decodeBuffer(must(postAck(abc, "2026-03-03", ackBody(t, part, csv), csv), http.StatusOK), &again); err != nil || again != want {
			t.Errorf("the same report again (csv %v): %+v %v", csv, again, err)
		}
	}
	// The same verdicts under a new report id, as a bank's system sending them again makes them.
	resent := *part
	resent.MessageID, resent.CreatedAt = "ACK-ABC-0002", c.Now().Add(time.Hour)
	var again ackResultView
	wantResent := want
	wantResent.MessageID = resent.MessageID
	if err := decodeBuffer(must(postAck(abc, "2026-03-03", ackBody(t, &resent, true), true), http.StatusOK), &again); err != nil ||
		again != wantResent {
		t.Errorf("the same verdicts under a new report id: %+v %v", again, err)
	}
	accp := *part
	accp.Status, accp.Items = bankfile.StatusAccepted, nil
	if w := e.do(t, postAck(abc, "2026-03-03", ackBody(t, &accp, false), false)); w.Code != http.StatusConflict {
		t.Errorf("another verdict: %d %s", w.Code, w.Body.String())
	} else if got := errorOf(t, w); got.Reason != "verdict_differs" || !strings.Contains(got.Message, "item "+grocerItem.ID+" was rejected (AC04)") {
		t.Errorf("another verdict: %+v", got)
	}
	if err := decodeBuffer(must(request{method: "GET", path: "/v1/settlement/cycles/2026-03-03"}, http.StatusOK), &v); err != nil {
		t.Fatal(err)
	}
	if a := v.Files[0].Acknowledgement; a.Status != "partial" || a.Rejected != 1 || a.ReceivedAt != shanghaiTime(c.Now()) {
		t.Errorf("the cycle's acknowledgement %+v", a)
	}

	// The kiosk gets its bank; the next cycle offers ABC-JX the rejected item and the held one.
	must(request{method: "PUT", path: "/v1/parties/merchant/kiosk-9/settlement-bank", body: `{"bank":"ABC-JX"}`}, http.StatusOK)
	c.Advance(15 * time.Hour) // 2026-03-04 23:11
	if err := decodeBuffer(must(closeCycle("2026-03-04"), http.StatusOK), &v); err != nil {
		t.Fatal(err)
	}
	if len(v.Positions) != 1 || v.Positions[0].Bank != "ABC-JX" || v.Positions[0].Items != 2 || v.Positions[0].Reoffered != "45.33" ||
		v.Held.Items != 0 || v.Files[0].Sequence != 2 {
		t.Errorf("the next cycle: %+v", v)
	}
	for _, account := range []ledger.ID{grocerAccount, clearing.PartyAccount(clearing.PartyMerchant, "kiosk-9")} {
		if b, err := store.Balance(ctx, account); err != nil || b.Net() != 0 {
			t.Errorf("account %s after the next cycle: %d %v", account, b.Net(), err)
		}
	}
	var list cycleListView
	if err := decodeBuffer(must(request{method: "GET", path: "/v1/settlement/cycles"}, http.StatusOK), &list); err != nil ||
		len(list.Cycles) != 2 || list.Cycles[0].Date != "2026-03-04" {
		t.Errorf("cycles %+v %v", list, err)
	}
	for _, leak := range []string{abc, icbc, shop, grocer, testPAN} {
		if strings.Contains(log.String(), leak) {
			t.Error("the log holds an api key or a card number")
		}
	}
}

// decodeBuffer decodes a response body strictly into v.
func decodeBuffer(b *bytes.Buffer, v any) error {
	dec := json.NewDecoder(b)
	dec.DisallowUnknownFields()
	return dec.Decode(v)
}

// TestBankKeysRevokedAgainstPostgres: a bank whose key leaked has every key of its own revoked
// at once, and from then on none of them reads or acknowledges anything; another bank's keys keep
// working, and the bank works again with a key issued after.
func TestBankKeysRevokedAgainstPostgres(t *testing.T) {
	store := pgtest.NewStore(t)
	c := &clock{now: time.Date(2026, time.March, 3, 10, 0, 0, 0, cards.Shanghai)}
	store.Now = c.Now
	set, err := postgres.NewSettlement(store, testCycles(t))
	if err != nil {
		t.Fatal(err)
	}
	e := &env{log: &syncBuffer{}, clock: c}
	e.srv = NewServer(Config{
		Store: store, Broker: pinger(pingOK), Tokenizer: testTokenizer(t), AdminToken: testAdminToken,
		Metrics: prometheus.NewRegistry(), Now: c.Now, Log: slog.New(slog.NewJSONHandler(e.log, nil)),
		Features: []Feature{NewSettlement(set, store)},
	})
	e.h = e.srv.Handler()
	must := func(rq request, want int) *bytes.Buffer {
		t.Helper()
		w := e.do(t, rq)
		if w.Code != want {
			t.Fatalf("%s %s: %d %s", rq.method, rq.path, w.Code, w.Body.String())
		}
		return w.Body
	}
	for _, body := range []string{`{"kind":"bank","id":"ICBC-JX","name":"ICBC Jiaxing"}`, `{"kind":"bank","id":"ABC-JX","name":"ABC Jiaxing"}`} {
		must(request{method: "POST", path: "/v1/parties", body: body}, http.StatusCreated)
	}
	bankKey := func(bank string) string {
		var k bankKeyView
		if err := decodeBuffer(must(request{method: "POST", path: "/v1/banks/" + bank + "/keys"}, http.StatusCreated), &k); err != nil {
			t.Fatal(err)
		}
		return k.APIKey
	}
	leaked, spare, other := bankKey("ICBC-JX"), bankKey("ICBC-JX"), bankKey("ABC-JX")
	manifest := "/v1/bank/cycles/2026-03-02/manifest"
	// A key that works is answered that the bank has no file of the cycle; a revoked one is refused.
	must(bankGet(leaked, manifest), http.StatusNotFound)

	var v bankKeysRevokedView
	if err := decodeBuffer(must(request{method: "DELETE", path: "/v1/banks/ICBC-JX/keys"}, http.StatusOK), &v); err != nil {
		t.Fatal(err)
	}
	if v.Bank != "ICBC-JX" || v.Revoked != 2 {
		t.Fatalf("revoked: %+v", v)
	}
	for _, key := range []string{leaked, spare} {
		must(bankGet(key, manifest), http.StatusForbidden)
		must(asBank(key, request{method: "POST", path: "/v1/bank/cycles/2026-03-02/acknowledgement", body: "x",
			header: map[string]string{"Content-Type": "text/csv"}}), http.StatusForbidden)
	}
	must(bankGet(other, manifest), http.StatusNotFound)
	must(bankGet(bankKey("ICBC-JX"), manifest), http.StatusNotFound)
	// Again, only the new key goes; a bank not registered is not found.
	if err := decodeBuffer(must(request{method: "DELETE", path: "/v1/banks/ICBC-JX/keys"}, http.StatusOK), &v); err != nil || v.Revoked != 1 {
		t.Fatalf("revoked again: %+v %v", v, err)
	}
	must(request{method: "DELETE", path: "/v1/banks/CCB-JX/keys"}, http.StatusNotFound)
}
