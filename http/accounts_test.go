package http

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"net/url"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/joinincard/engine/ledger"
	"github.com/joinincard/engine/postgres"
)

// fakeAccounts is one merchant account in memory, with two statement lines and a broken mode.
type fakeAccounts struct {
	account postgres.AccountBalance
	lines   []ledger.Transfer
	broken  bool
}

var (
	testAccount     = ledger.ID(uuid.MustParse("018f2a3b-0000-7000-8000-00000000a001"))
	testCounterpart = ledger.ID(uuid.MustParse("018f2a3b-0000-7000-8000-00000000a002"))
)

func newFakeAccounts() *fakeAccounts {
	f := &fakeAccounts{account: postgres.AccountBalance{
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

func (f *fakeAccounts) Statement(_ context.Context, id ledger.ID, from, to time.Time, limit int) ([]ledger.Transfer, error) {
	var out []ledger.Transfer
	for _, l := range f.lines {
		at := time.UnixMicro(l.Timestamp)
		if !at.Before(from) && at.Before(to) && len(out) < limit {
			out = append(out, l)
		}
	}
	return out, nil
}

var _ AccountStore = (*fakeAccounts)(nil)

func init() {
	statuses["GET /v1/accounts/{id}"] = []int{200, 400, 401, 403, 404, 500, 503}
	statuses["GET /v1/accounts/{id}/statement"] = []int{200, 400, 401, 403, 404, 500, 503}
	responseTypes["GET /v1/accounts/{id}"] = accountView{}
	responseTypes["GET /v1/accounts/{id}/statement"] = statementView{}
	featureEnvs = append(featureEnvs, func(t testing.TB, e *env, cfg *Config) {
		f := newFakeAccounts()
		e.features["accounts"] = f
		cfg.Features = append(cfg.Features, NewAccounts(f))
	})
	featureStatusCases = append(featureStatusCases, accountStatusCases()...)
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
