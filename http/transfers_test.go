package http

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/joinincard/engine/ledger"
	"github.com/joinincard/engine/postgres"
)

// fakeTransfers is the transfers committer on the ledger in memory: the real engine's results,
// on a CNY bank, a CNY card with 100.00 and a USD account; err makes Do fail.
type fakeTransfers struct {
	mu      sync.Mutex
	state   *ledger.State
	now     func() time.Time
	err     error
	batches [][]ledger.Transfer
}

var (
	fakeBank = ledger.ID(uuid.MustParse("018f2a3b-0000-7000-8000-00000000d001"))
	fakeCard = ledger.ID(uuid.MustParse("018f2a3b-0000-7000-8000-00000000d002"))
	fakeUSD  = ledger.ID(uuid.MustParse("018f2a3b-0000-7000-8000-00000000d003"))
)

func newFakeTransfers(now func() time.Time) *fakeTransfers {
	s := ledger.NewState(4)
	for _, a := range []ledger.Account{
		{ID: fakeBank, Currency: "CNY", Kind: ledger.KindBankSettlement},
		{ID: fakeCard, Currency: "CNY", Kind: ledger.KindSuspense, Flags: ledger.DebitsMustNotExceedCredits, Balance: ledger.Balance{CreditsPosted: 100_00}},
		{ID: fakeUSD, Currency: "USD", Kind: ledger.KindSuspense},
	} {
		s.Accounts[a.ID] = &a
	}
	return &fakeTransfers{state: s, now: now}
}

func (f *fakeTransfers) Do(_ context.Context, batch []ledger.Transfer) ([]ledger.Result, time.Time, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return nil, time.Time{}, f.err
	}
	f.batches = append(f.batches, batch)
	now := f.now()
	out, err := f.state.Apply(batch, now.UnixMicro())
	if err != nil {
		return nil, time.Time{}, err
	}
	return out.Results, now, nil
}

var _ TransferService = (*fakeTransfers)(nil)

func init() {
	statuses["POST /v1/transfers"] = []int{200, 400, 401, 403, 409, 413, 500, 503}
	requestTypes["POST /v1/transfers"] = transfersRequest{}
	responseTypes["POST /v1/transfers"] = transfersView{}
	featureEnvs = append(featureEnvs, func(t testing.TB, e *env, cfg *Config) {
		f := newFakeTransfers(e.clock.Now)
		e.features["transfers"] = f
		cfg.Features = append(cfg.Features, NewTransfers(f))
	})
	featureStatusCases = append(featureStatusCases, transferStatusCases()...)
}

// transferJSON is one transfer's JSON with fresh ids: from, to and amount, and more fields.
func transferJSON(from, to ledger.ID, amount string, more string) string {
	s := fmt.Sprintf(`{"id":%q,"debit_account_id":%q,"credit_account_id":%q,"amount":%q,"currency":"CNY"`,
		uuid.Must(uuid.NewV7()).String(), from.String(), to.String(), amount)
	if more != "" {
		s += "," + more
	}
	return s + "}"
}

func transfersBody(transfers ...string) string {
	return `{"transfers":[` + strings.Join(transfers, ",") + `]}`
}

func postTransfers(body string) request {
	return request{method: "POST", path: "/v1/transfers", body: body}
}

func transferStatusCases() []statusCase {
	const route = "POST /v1/transfers"
	post := func(body string) func(t *testing.T, e *env) *httptest.ResponseRecorder {
		return send(postTransfers(body))
	}
	one := transfersBody(transferJSON(fakeBank, fakeCard, "1.00", ""))
	bad := func(name, body, message string) statusCase {
		return statusCase{name: name, route: route, status: 400, code: EINVALID, message: message, run: post(body)}
	}
	failing := func(err error) func(t *testing.T, e *env) *httptest.ResponseRecorder {
		return func(t *testing.T, e *env) *httptest.ResponseRecorder {
			e.features["transfers"].(*fakeTransfers).err = err
			return e.do(t, postTransfers(one))
		}
	}
	return []statusCase{
		{name: "transfer", route: route, status: 200, run: post(one)},
		{name: "transfer refused", route: route, status: 200, run: post(transfersBody(transferJSON(fakeCard, fakeBank, "100.01", "")))},
		bad("transfer without transfers", `{"transfers":[]}`, "transfers: must not be empty"),
		bad("transfer not a list", `{"transfers":{}}`, "transfers: must be an array"),
		bad("transfer of another shape", `{"transfer":[]}`, `unknown field "transfer"`),
		bad("transfer with three decimals", transfersBody(transferJSON(fakeBank, fakeCard, "1.00", ""), transferJSON(fakeBank, fakeCard, "1.001", "")),
			"transfers[1].amount: has 3 decimal places"),
		bad("transfer negative", transfersBody(transferJSON(fakeBank, fakeCard, "-1.00", "")), "transfers[0].amount: is negative"),
		bad("transfer past int64", transfersBody(transferJSON(fakeBank, fakeCard, "92233720368547758.08", "")), "transfers[0].amount: overflows"),
		bad("transfer at int64's edge", transfersBody(transferJSON(fakeBank, fakeCard, "92233720368547758.07", "")),
			"transfers[0].amount: over the largest amount the engine takes, 1000000000000.00 CNY"),
		bad("transfer a fen over the bound", transfersBody(transferJSON(fakeBank, fakeCard, "1.00", ""), transferJSON(fakeBank, fakeCard, "1000000000000.01", "")),
			"transfers[1].amount: over the largest amount the engine takes"),
		bad("transfer without an amount", transfersBody(strings.Replace(transferJSON(fakeBank, fakeCard, "1.00", ""), `"amount":"1.00",`, "", 1)),
			"transfers[0].amount: missing"),
		bad("transfer as a number", transfersBody(strings.Replace(transferJSON(fakeBank, fakeCard, "1.00", ""), `"1.00"`, "1.00", 1)),
			"transfers[0].amount: must be a string"),
		bad("transfer without a currency", transfersBody(strings.Replace(transferJSON(fakeBank, fakeCard, "1.00", ""), `,"currency":"CNY"`, "", 1)),
			"transfers[0].currency: missing"),
		bad("transfer in an unknown currency", transfersBody(strings.Replace(transferJSON(fakeBank, fakeCard, "1.00", ""), `"CNY"`, `"XAU"`, 1)),
			"transfers[0].currency: not a currency"),
		bad("transfer with a bad id", transfersBody(strings.Replace(transferJSON(fakeBank, fakeCard, "1.00", ""), fakeCard.String(), "card-1", 1)),
			"transfers[0].credit_account_id: want a uuid"),
		bad("transfer without a debit account", transfersBody(`{"id":"018f2a3b-0000-7000-8000-00000000e001","credit_account_id":"`+
			fakeCard.String()+`","amount":"1.00","currency":"CNY"}`), "transfers[0].debit_account_id: missing"),
		bad("transfer with an unknown flag", transfersBody(transferJSON(fakeBank, fakeCard, "1.00", `"flags":["urgent"]`)), "transfers[0].flags: unknown flag"),
		bad("transfer expiring a hold", transfersBody(transferJSON(fakeBank, fakeCard, "1.00", `"flags":["expire_pending"]`)),
			"transfers[0].flags: expire_pending is the engine's"),
		bad("transfer with a flag twice", transfersBody(transferJSON(fakeBank, fakeCard, "1.00", `"flags":["linked","linked"]`)), "transfers[0].flags: a flag twice"),
		bad("transfer with a long timeout", transfersBody(transferJSON(fakeBank, fakeCard, "1.00", `"flags":["pending"],"timeout_seconds":4294967296`)),
			"transfers[0].timeout_seconds: want 0 to 4294967295"),
		bad("transfer with a negative code", transfersBody(transferJSON(fakeBank, fakeCard, "1.00", `"code":-1`)), "transfers[0].code: must be a json integer"),
		bad("transfer with a large code", transfersBody(transferJSON(fakeBank, fakeCard, "1.00", `"code":65536`)), "transfers[0].code: want 0 to 65535"),
		bad("transfer with a null", transfersBody(transferJSON(fakeBank, fakeCard, "1.00", `"ref_id":null`)), "transfers[0].ref_id: must not be null"),
		bad("transfer with a field twice", transfersBody(transferJSON(fakeBank, fakeCard, "1.00", `"code":1,"code":2`)), "transfers[0].code: duplicate field"),
		bad("transfer not an object", `{"transfers":["x"]}`, "transfers[0]: must be a json object"),
		bad("transfer with trailing data", one+"{}", "data after the json object"),
		{name: "transfer without auth", route: route, status: 401, code: EUNAUTHORIZED,
			run: send(request{method: "POST", path: "/v1/transfers", body: one, auth: "-"})},
		{name: "transfer with a wrong token", route: route, status: 403, code: EFORBIDDEN,
			run: send(request{method: "POST", path: "/v1/transfers", body: one, auth: "Bearer wrong"})},
		{name: "transfer too many", route: route, status: 413, code: ETOOLARGE, message: "transfers: more than 16384",
			run: post(`{"transfers":[` + strings.Repeat(`{},`, ledger.MaxBatchTransfers) + `{}]}`)},
		{name: "transfer a body too large", route: route, status: 413, code: ETOOLARGE,
			run: post(`{"transfers":[{"id":"` + strings.Repeat("a", maxTransfersBodyBytes) + `"}]}`)},
		{name: "transfer on a card's account", route: route, status: 409, code: ECONFLICT, message: "transfers[0].credit_account_id: a cardholder_funds account",
			run: failing(&postgres.ForeignAccountError{Index: 0, Field: "credit_account_id", Kind: ledger.KindCardholderFunds})},
		{name: "transfer store broken", route: route, status: 500, code: EINTERNAL, run: failing(errBroken)},
		{name: "transfer busy", route: route, status: 503, code: EUNAVAILABLE, message: "busy", run: failing(postgres.ErrTransfersBusy)},
		{name: "transfer stopped", route: route, status: 503, code: EUNAVAILABLE, message: "shutting down", run: failing(postgres.ErrTransfersStopped)},
		{name: "transfer conflicts outlasting retries", route: route, status: 503, code: EUNAVAILABLE, message: "busy", run: failing(busy)},
		{name: "transfer without admin token", route: route, status: 503, code: EUNAVAILABLE, opts: []envOption{noAdmin}, run: post(one)},
	}
}

// transfersOf posts body and decodes the 200 answer.
func transfersOf(t *testing.T, e *env, body string) transfersView {
	t.Helper()
	w := e.do(t, postTransfers(body))
	if w.Code != 200 {
		t.Fatalf("POST /v1/transfers: %d %s", w.Code, w.Body.String())
	}
	var v transfersView
	decodeStrictly(t, w, &v)
	return v
}

func resultsOf(v transfersView) []string {
	out := make([]string, len(v.Results))
	for i, r := range v.Results {
		out[i] = r.Result
	}
	return out
}

// A batch is read into the ledger's transfers field by field, flags by name, the amount in the
// currency's minor units; each transfer gets the ledger's own result, in order, by its id.
func TestTransfersAnswerTheLedgersResultPerTransfer(t *testing.T) {
	e := newEnv(t)
	f := e.features["transfers"].(*fakeTransfers)
	hold := `{"id":"018f2a3b-0000-7000-8000-00000000f001","debit_account_id":"` + fakeCard.String() + `","credit_account_id":"` +
		fakeBank.String() + `","amount":"30.5","currency":"CNY","flags":["pending"],"timeout_seconds":3600,"code":20,` +
		`"user_data":"018f2a3b-0000-7000-8000-00000000f0aa"}`
	v := transfersOf(t, e, transfersBody(
		hold,
		transferJSON(fakeCard, fakeBank, "70.00", ""), // 69.50 left after the hold
		transferJSON(fakeBank, fakeUSD, "1.00", ""),   // a USD account
		transferJSON(fakeBank, fakeCard, "1", `"flags":["linked"]`),
		transferJSON(fakeCard, fakeCard, "1", ""),                      // fails the chain
		transferJSON(fakeBank, fakeCard, "0.01", `"flags":["linked"]`), // an open chain at the end
	))
	want := []string{"created", "insufficient_funds", "currency_mismatch", "linked_event_failed", "accounts_same", "linked_event_chain_open"}
	if got := resultsOf(v); strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("results %v, want %v", got, want)
	}
	if v.Results[0].ID != "018f2a3b-0000-7000-8000-00000000f001" || v.Timestamp != t0.UTC().Format(time.RFC3339Nano) {
		t.Errorf("answer %+v", v)
	}
	got := f.batches[0][0]
	if got.Amount != 3050 || got.Flags != ledger.Pending || got.TimeoutSeconds != 3600 || got.Code != 20 || got.Currency != "CNY" ||
		got.UserData != ledger.ID(uuid.MustParse("018f2a3b-0000-7000-8000-00000000f0aa")) {
		t.Errorf("the hold reached the ledger as %+v", got)
	}
	// The hold posted in part, a void without an amount, a reversal: their accounts come from the
	// transfers they name.
	post := `{"id":"018f2a3b-0000-7000-8000-00000000f002","ref_id":"018f2a3b-0000-7000-8000-00000000f001","amount":"10.00","currency":"CNY","flags":["post_pending"]}`
	v = transfersOf(t, e, transfersBody(post,
		`{"id":"018f2a3b-0000-7000-8000-00000000f003","ref_id":"018f2a3b-0000-7000-8000-00000000f001","currency":"CNY","flags":["void_pending"]}`,
		`{"id":"018f2a3b-0000-7000-8000-00000000f005","ref_id":"018f2a3b-0000-7000-8000-00000000f002","amount":"4.00","currency":"USD","flags":["reversal"]}`,
		`{"id":"018f2a3b-0000-7000-8000-00000000f004","ref_id":"018f2a3b-0000-7000-8000-00000000f002","amount":"4.00","currency":"CNY","flags":["reversal"]}`,
	))
	want = []string{"created", "pending_already_resolved", "currency_mismatch", "created"}
	if got := resultsOf(v); strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("results %v, want %v", got, want)
	}
	// The same again: exists, and a changed amount is another transfer under the same id.
	v = transfersOf(t, e, transfersBody(post, strings.Replace(post, `"10.00"`, `"10.01"`, 1)))
	if got := resultsOf(v); strings.Join(got, " ") != "exists exists_with_different_amount" {
		t.Errorf("replay: %v", got)
	}
	if b := f.state.Accounts[fakeCard].Balance; b != (ledger.Balance{DebitsPosted: 10_00, CreditsPosted: 100_00 + 4_00}) {
		t.Errorf("card balance %+v", b)
	}
}

// The document lists every result the ledger answers, and nothing else.
func TestOpenAPIListsTheLedgersResults(t *testing.T) {
	b, err := os.ReadFile("../docs/openapi.json")
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Components struct {
			Schemas map[string]struct {
				Properties map[string]struct {
					Enum []string `json:"enum"`
				} `json:"properties"`
			} `json:"schemas"`
		} `json:"components"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, r := range ledger.Results() {
		want = append(want, r.String())
	}
	if got := doc.Components.Schemas["TransferResult"].Properties["result"].Enum; !slices.Equal(got, want) {
		t.Errorf("TransferResult.result lists %q, the ledger answers %q", got, want)
	}
}

// An answer goes out framed by its length, however many results it carries (net/http chunks a
// body over 2 KiB that a handler does not frame), spelled as encoding/json spells it.
func TestTransfersAnswerIsFramedByItsLength(t *testing.T) {
	e := newEnv(t)
	transfers := make([]string, 100)
	for i := range transfers {
		transfers[i] = transferJSON(fakeBank, fakeCard, "0.01", "")
	}
	w := e.do(t, postTransfers(transfersBody(transfers...)))
	if w.Code != 200 {
		t.Fatalf("POST /v1/transfers: %d %s", w.Code, w.Body.String())
	}
	if got, want := w.Header().Get("Content-Length"), fmt.Sprint(w.Body.Len()); got != want || w.Body.Len() < 4<<10 {
		t.Errorf("Content-Length %q for a body of %d bytes", got, w.Body.Len())
	}
	var v transfersView
	if err := json.Unmarshal(w.Body.Bytes(), &v); err != nil {
		t.Fatal(err)
	}
	want, err := json.Marshal(reflectedTransfersView(v))
	if err != nil {
		t.Fatal(err)
	}
	if got := w.Body.String(); got != string(want)+"\n" || len(v.Results) != 100 {
		t.Errorf("answer spelled %.200s, encoding/json spells %.200s", got, want)
	}
	// An error's answer too.
	w = e.do(t, postTransfers(`{"transfers":[]}`))
	if got, want := w.Header().Get("Content-Length"), fmt.Sprint(w.Body.Len()); w.Code != 400 || got != want {
		t.Errorf("error answer %d with Content-Length %q for %d bytes", w.Code, got, w.Body.Len())
	}
}
