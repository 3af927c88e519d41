package http

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/joinincard/engine/ledger"
	"github.com/joinincard/engine/postgres"
)

// fakeAccounts is one merchant account in memory, with two statement lines and a broken mode,
// and the accounts the admin opened.
type fakeAccounts struct {
	account postgres.AccountBalance
	lines   []ledger.Transfer
	broken  bool
	mu      sync.Mutex
	opened  map[ledger.ID]postgres.AccountSpec
}

var (
	testAccount     = ledger.ID(uuid.MustParse("018f2a3b-0000-7000-8000-00000000a001"))
	testCounterpart = ledger.ID(uuid.MustParse("018f2a3b-0000-7000-8000-00000000a002"))
)

func newFakeAccounts() *fakeAccounts {
	f := &fakeAccounts{opened: map[ledger.ID]postgres.AccountSpec{}, account: postgres.AccountBalance{
		Account: ledger.Account{ID: testAccount, Currency: "CNY", Kind: ledger.KindMerchantClearing,
			Balance: ledger.Balance{DebitsPosted: 150, CreditsPosted: 123456}},
		Name: "Jiaxing pharmacy", Version: 3, AsOf: t0,
	}}
	f.lines = []ledger.Transfer{
		{ID: ledger.ID(uuid.MustParse("018f2a3b-0000-7000-8000-00000000b001")), DebitAccountID: testCounterpart, CreditAccountID: testAccount,
			Amount: 123456, Code: 21, Timestamp: t0.Add(-time.Hour).UnixMicro()},
		{ID: ledger.ID(uuid.MustParse("018f2a3b-0000-7000-8000-00000000b002")), DebitAccountID: testAccount, CreditAccountID: testCounterpart,
			Amount: 150, Code: 30, Timestamp: t0.UnixMicro()},
	}
	return f
}

func (f *fakeAccounts) Balance(_ context.Context, id ledger.ID) (postgres.AccountBalance, error) {
	return f.BalanceAt(context.Background(), id, t0)
}

func (f *fakeAccounts) BalanceAt(_ context.Context, id ledger.ID, at time.Time) (postgres.AccountBalance, error) {
	if f.broken {
		return postgres.AccountBalance{}, errBroken
	}
	if id != testAccount || at.Before(t0.Add(-24*time.Hour)) {
		return postgres.AccountBalance{}, postgres.ErrNotFound
	}
	return f.account, nil
}

func (f *fakeAccounts) Statement(_ context.Context, id ledger.ID, from, to time.Time, after *postgres.StatementAfter, limit int) ([]ledger.Transfer, error) {
	var out []ledger.Transfer
	for _, l := range f.lines {
		at := time.UnixMicro(l.Timestamp)
		if after != nil && (l.Timestamp < after.Timestamp || l.Timestamp == after.Timestamp && bytes.Compare(l.ID[:], after.ID[:]) <= 0) {
			continue
		}
		if !at.Before(from) && at.Before(to) && len(out) < limit {
			out = append(out, l)
		}
	}
	return out, nil
}

func (f *fakeAccounts) OpenAccounts(_ context.Context, specs []postgres.AccountSpec) ([]bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.broken {
		return nil, errBroken
	}
	out := make([]bool, len(specs))
	for _, a := range specs {
		if prior, ok := f.opened[a.ID]; ok && prior != a {
			return nil, &postgres.AccountConflictError{ID: a.ID}
		}
	}
	for i, a := range specs {
		_, had := f.opened[a.ID]
		out[i] = !had
		f.opened[a.ID] = a
	}
	return out, nil
}

var _ AccountStore = (*fakeAccounts)(nil)

func init() {
	statuses["GET /v1/accounts/{id}"] = []int{200, 400, 401, 403, 404, 500, 503}
	statuses["GET /v1/accounts/{id}/statement"] = []int{200, 400, 401, 403, 404, 500, 503}
	responseTypes["GET /v1/accounts/{id}"] = accountView{}
	responseTypes["GET /v1/accounts/{id}/statement"] = statementView{}
	statuses["POST /v1/accounts"] = []int{200, 201, 400, 401, 403, 409, 413, 500, 503}
	requestTypes["POST /v1/accounts"] = openAccountsRequest{}
	responseTypes["POST /v1/accounts"] = openedAccountsView{}
	featureEnvs = append(featureEnvs, func(t testing.TB, e *env, cfg *Config) {
		f := newFakeAccounts()
		e.features["accounts"] = f
		cfg.Features = append(cfg.Features, NewAccounts(f))
	})
	featureStatusCases = append(featureStatusCases, accountStatusCases()...)
	featureStatusCases = append(featureStatusCases, openAccountStatusCases()...)
}

func brokenAccounts(t *testing.T, e *env) *httptest.ResponseRecorder {
	e.features["accounts"].(*fakeAccounts).broken = true
	return e.do(t, request{method: "GET", path: "/v1/accounts/" + testAccount.String()})
}

func accountStatusCases() []statusCase {
	one, stmt := "GET /v1/accounts/{id}", "GET /v1/accounts/{id}/statement"
	path := "/v1/accounts/" + testAccount.String()
	get := func(p string) func(t *testing.T, e *env) *httptest.ResponseRecorder {
		return send(request{method: "GET", path: p})
	}
	withAuth := func(p, auth string) func(t *testing.T, e *env) *httptest.ResponseRecorder {
		return send(request{method: "GET", path: p, auth: auth})
	}
	return []statusCase{
		{name: "balance", route: one, status: 200, run: get(path)},
		{name: "balance at an instant", route: one, status: 200, run: get(path + "?at=" + url.QueryEscape(t0.Format(time.RFC3339)))},
		{name: "balance of a bad id", route: one, status: 400, code: EINVALID, message: "id:", run: get("/v1/accounts/nope")},
		{name: "balance at a bad time", route: one, status: 400, code: EINVALID, message: "at:", run: get(path + "?at=yesterday")},
		// Times are read as an event's are: a decimal comma and -00:00 (a zone not known) are
		// refused, not guessed.
		{name: "balance at a time with a decimal comma", route: one, status: 400, code: EINVALID, message: "at:",
			run: get(path + "?at=" + url.QueryEscape("2026-03-03T10:00:00,5+08:00"))},
		{name: "balance at a time in an unknown zone", route: one, status: 400, code: EINVALID, message: "at:",
			run: get(path + "?at=" + url.QueryEscape("2026-03-03T10:00:00-00:00"))},
		{name: "balance without auth", route: one, status: 401, code: EUNAUTHORIZED, run: withAuth(path, "-")},
		{name: "balance with a wrong token", route: one, status: 403, code: EFORBIDDEN, run: withAuth(path, "Bearer wrong")},
		{name: "balance of an unknown account", route: one, status: 404, code: ENOTFOUND, run: get("/v1/accounts/" + testCounterpart.String())},
		{name: "balance before the account", route: one, status: 404, code: ENOTFOUND, run: get(path + "?at=2001-01-01T00:00:00Z")},
		{name: "balance store broken", route: one, status: 500, code: EINTERNAL, run: brokenAccounts},
		{name: "balance without admin token", route: one, status: 503, code: EUNAVAILABLE, opts: []envOption{noAdmin}, run: get(path)},

		{name: "statement", route: stmt, status: 200, run: get(path + "/statement")},
		{name: "statement with a bad range", route: stmt, status: 400, code: EINVALID, message: "from must be before to",
			run: get(path + "/statement?from=2025-01-02T00:00:00Z&to=2025-01-01T00:00:00Z")},
		{name: "statement with a bad limit", route: stmt, status: 400, code: EINVALID, message: "limit:", run: get(path + "/statement?limit=0")},
		{name: "statement from a time in an unknown zone", route: stmt, status: 400, code: EINVALID, message: "from:",
			run: get(path + "/statement?from=" + url.QueryEscape("2026-03-03T10:00:00-00:00"))},
		{name: "statement to a time with a decimal comma", route: stmt, status: 400, code: EINVALID, message: "to:",
			run: get(path + "/statement?to=" + url.QueryEscape("2026-03-03T10:00:00,5Z"))},
		{name: "statement without auth", route: stmt, status: 401, code: EUNAUTHORIZED, run: withAuth(path+"/statement", "-")},
		{name: "statement with a wrong token", route: stmt, status: 403, code: EFORBIDDEN, run: withAuth(path+"/statement", "Bearer wrong")},
		{name: "statement of an unknown account", route: stmt, status: 404, code: ENOTFOUND,
			run: get("/v1/accounts/" + testCounterpart.String() + "/statement")},
		{name: "statement store broken", route: stmt, status: 500, code: EINTERNAL, run: func(t *testing.T, e *env) *httptest.ResponseRecorder {
			e.features["accounts"].(*fakeAccounts).broken = true
			return e.do(t, request{method: "GET", path: path + "/statement"})
		}},
		{name: "statement without admin token", route: stmt, status: 503, code: EUNAVAILABLE, opts: []envOption{noAdmin}, run: get(path + "/statement")},
	}
}

// openAccountBody is a POST /v1/accounts body of one account, its fields as given.
func openAccountBody(fields string) string { return `{"accounts":[{` + fields + `}]}` }

const suspenseAccount = `"id":"018f2a3b-0000-7000-8000-00000000c001","name":"Adjustments","kind":"suspense","currency":"CNY"`

func openAccountStatusCases() []statusCase {
	const route = "POST /v1/accounts"
	post := func(body string) func(t *testing.T, e *env) *httptest.ResponseRecorder {
		return send(request{method: "POST", path: "/v1/accounts", body: body})
	}
	twice := func(first, second string) func(t *testing.T, e *env) *httptest.ResponseRecorder {
		return func(t *testing.T, e *env) *httptest.ResponseRecorder {
			if w := e.do(t, request{method: "POST", path: "/v1/accounts", body: first}); w.Code != 201 {
				t.Fatalf("first: %d %s", w.Code, w.Body.String())
			}
			return e.do(t, request{method: "POST", path: "/v1/accounts", body: second})
		}
	}
	one := openAccountBody(suspenseAccount)
	bad := func(name, fields, message string) statusCase {
		return statusCase{name: name, route: route, status: 400, code: EINVALID, message: message, run: post(openAccountBody(fields))}
	}
	return []statusCase{
		{name: "open", route: route, status: 201, run: post(one)},
		{name: "open again", route: route, status: 200, run: twice(one, one)},
		{name: "open with another definition", route: route, status: 409, code: ECONFLICT, message: "accounts[0].id: the account is open with another",
			run: twice(one, openAccountBody(suspenseAccount+`,"constraint":"debits_must_not_exceed_credits"`))},
		bad("open without a name", `"id":"018f2a3b-0000-7000-8000-00000000c001","kind":"suspense","currency":"CNY"`, "accounts[0].name: missing"),
		bad("open a card's kind", strings.Replace(suspenseAccount, "suspense", "cardholder_funds", 1), "accounts[0].kind: want one of"),
		bad("open in an unknown currency", strings.Replace(suspenseAccount, "CNY", "XAU", 1), "accounts[0].currency:"),
		bad("open with a limit of three decimals", suspenseAccount+`,"constraint":"debits_must_not_exceed_credits","limit":"1.001"`, "accounts[0].limit: has 3 decimal places"),
		bad("open with a limit and no constraint", suspenseAccount+`,"limit":"1.00"`, "accounts[0].limit: an account without a constraint"),
		bad("open with an unknown constraint", suspenseAccount+`,"constraint":"never"`, "accounts[0].constraint: want one of"),
		bad("open with a zero id", strings.Replace(suspenseAccount, "018f2a3b-0000-7000-8000-00000000c001", "00000000-0000-0000-0000-000000000000", 1), "accounts[0].id:"),
		bad("open with an unknown field", suspenseAccount+`,"owner":"x"`, `accounts[0]: unknown field "owner"`),
		{name: "open one twice", route: route, status: 400, code: EINVALID, message: "accounts[1].id: the id of accounts[0] again",
			run: post(`{"accounts":[{` + suspenseAccount + `},{` + suspenseAccount + `}]}`)},
		{name: "open none", route: route, status: 400, code: EINVALID, message: "accounts: must not be empty", run: post(`{"accounts":[]}`)},
		{name: "open without auth", route: route, status: 401, code: EUNAUTHORIZED, run: send(request{method: "POST", path: "/v1/accounts", body: one, auth: "-"})},
		{name: "open with a wrong token", route: route, status: 403, code: EFORBIDDEN,
			run: send(request{method: "POST", path: "/v1/accounts", body: one, auth: "Bearer wrong"})},
		{name: "open too many", route: route, status: 413, code: ETOOLARGE, message: "accounts: more than 10000",
			run: post(`{"accounts":[` + strings.Repeat(`{},`, maxOpenAccounts) + `{}]}`)},
		{name: "open a body too large", route: route, status: 413, code: ETOOLARGE,
			run: post(`{"accounts":[{"name":"` + strings.Repeat("a", maxOpenAccounts*maxAccountJSONBytes) + `"}]}`)},
		{name: "open store broken", route: route, status: 500, code: EINTERNAL, run: func(t *testing.T, e *env) *httptest.ResponseRecorder {
			e.features["accounts"].(*fakeAccounts).broken = true
			return e.do(t, request{method: "POST", path: "/v1/accounts", body: one})
		}},
		{name: "open without admin token", route: route, status: 503, code: EUNAVAILABLE, opts: []envOption{noAdmin}, run: post(one)},
	}
}

func TestAccountBalanceAndStatementAsFinanceReadsThem(t *testing.T) {
	e := newEnv(t)
	w := e.do(t, request{method: "GET", path: "/v1/accounts/" + testAccount.String()})
	var a accountView
	if err := json.Unmarshal(w.Body.Bytes(), &a); err != nil {
		t.Fatal(err)
	}
	if a.Net != "1233.06" || a.CreditsPosted != "1234.56" || a.DebitsPosted != "1.50" || a.Kind != "merchant_clearing" || a.Constraint != "none" {
		t.Errorf("account view %+v", a)
	}
	w = e.do(t, request{method: "GET", path: "/v1/accounts/" + testAccount.String() + "/statement?limit=1"})
	var s statementView
	if err := json.Unmarshal(w.Body.Bytes(), &s); err != nil {
		t.Fatal(err)
	}
	if len(s.Lines) != 1 || !s.More || s.Lines[0].Side != "credit" || s.Lines[0].Amount != "1234.56" ||
		s.Lines[0].Counterparty != testCounterpart.String() || s.Lines[0].Kind != "transfer" {
		t.Errorf("statement page %+v", s)
	}
	w = e.do(t, request{method: "GET", path: "/v1/accounts/" + testAccount.String() + "/statement"})
	s = statementView{}
	if err := json.Unmarshal(w.Body.Bytes(), &s); err != nil {
		t.Fatal(err)
	}
	if len(s.Lines) != 2 || s.More || s.Lines[1].Side != "debit" || s.Lines[1].Amount != "1.50" {
		t.Errorf("whole statement %+v", s)
	}
}
