package http

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/joinincard/engine/fees"
	"github.com/joinincard/engine/ledger"
	"github.com/joinincard/engine/medical"
	"github.com/joinincard/engine/postgres"
	"github.com/joinincard/engine/purchases"
)

func init() {
	for op, st := range map[string][]int{
		"POST /v1/merchants":                      {201, 400, 401, 403, 409, 413, 500, 503},
		"POST /v1/merchants/{id}/key":             {201, 400, 401, 403, 404, 413, 500, 503},
		"POST /v1/cards/{token}/limits":           {200, 400, 401, 403, 404, 413, 500, 503},
		"GET /v1/cards/{token}/savings":           {200, 400, 401, 403, 404, 500, 503},
		"POST /v1/authorizations":                 {201, 400, 401, 403, 409, 413, 500, 503},
		"GET /v1/authorizations":                  {200, 400, 401, 403, 500},
		"GET /v1/authorizations/{id}":             {200, 400, 401, 403, 404, 500},
		"POST /v1/authorizations/{id}/increments": {201, 400, 401, 403, 404, 409, 413, 500, 503},
		"POST /v1/authorizations/{id}/capture":    {201, 400, 401, 403, 404, 409, 413, 500, 503},
		"POST /v1/authorizations/{id}/void":       {201, 400, 401, 403, 404, 409, 413, 500, 503},
		"POST /v1/authorizations/{id}/refunds":    {201, 400, 401, 403, 404, 409, 413, 500, 503},
	} {
		statuses[op] = st
	}
	for op, typ := range map[string]any{
		"POST /v1/merchants":                      merchantRequest{},
		"POST /v1/cards/{token}/limits":           cardLimitsRequest{},
		"POST /v1/authorizations":                 authorizeRequest{},
		"POST /v1/authorizations/{id}/increments": purchaseAmountRequest{},
		"POST /v1/authorizations/{id}/capture":    purchaseCaptureRequest{},
		"POST /v1/authorizations/{id}/refunds":    purchaseAmountRequest{},
	} {
		requestTypes[op] = typ
	}
	for op, typ := range map[string]any{
		"POST /v1/merchants":                      merchantView{},
		"POST /v1/merchants/{id}/key":             merchantView{},
		"POST /v1/cards/{token}/limits":           cardLimitsView{},
		"GET /v1/cards/{token}/savings":           cardSavingsView{},
		"POST /v1/authorizations":                 authorizationView{},
		"GET /v1/authorizations":                  authorizationListView{},
		"GET /v1/authorizations/{id}":             authorizationView{},
		"POST /v1/authorizations/{id}/increments": purchaseIncrementView{},
		"POST /v1/authorizations/{id}/capture":    purchaseCloseView{},
		"POST /v1/authorizations/{id}/void":       purchaseCloseView{},
		"POST /v1/authorizations/{id}/refunds":    purchaseRefundView{},
	} {
		responseTypes[op] = typ
	}
	for _, op := range []string{"POST /v1/authorizations", "POST /v1/authorizations/{id}/increments",
		"POST /v1/authorizations/{id}/capture", "POST /v1/authorizations/{id}/void", "POST /v1/authorizations/{id}/refunds"} {
		idempotent[op] = true
	}
	featureEnvs = append(featureEnvs, func(t testing.TB, e *env, cfg *Config) {
		f := newFakePurchases(t)
		e.features["purchases"] = f
		cfg.Features = append(cfg.Features, NewPurchases(f))
	})
	featureStatusCases = append(featureStatusCases, purchaseStatusCases()...)
}

// fakePurchases is the purchase service in memory: merchants and their keys, and a Do that
// approves what has a valid amount and remembers keys, enough for the edge's own behaviour.
type fakePurchases struct {
	mu        sync.Mutex
	cat       *fees.Catalog
	merchants map[[32]byte]purchases.Merchant
	auths     map[ledger.ID]*postgres.AuthorizationRecord
	requests  map[string]postgres.PurchaseRequest
	results   map[string]postgres.PurchaseResult
	cards     map[string]bool
	// errs makes a method fail: "RegisterMerchant", "RotateMerchantKey", "MerchantByKey",
	// "SetCardLimits", "Do", "Authorization", "Authorizations", "Savings".
	errs map[string]error
	// got keeps the requests Do was given.
	got []postgres.PurchaseRequest
}

func newFakePurchases(t testing.TB) *fakePurchases {
	cat, err := fees.Load()
	if err != nil {
		t.Fatal(err)
	}
	return &fakePurchases{cat: cat, merchants: map[[32]byte]purchases.Merchant{}, auths: map[ledger.ID]*postgres.AuthorizationRecord{},
		requests: map[string]postgres.PurchaseRequest{}, results: map[string]postgres.PurchaseResult{},
		cards: map[string]bool{"tok_card": true}, errs: map[string]error{}}
}

func (f *fakePurchases) fail(method string, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.errs[method] = err
}

// add registers a merchant directly and returns its key.
func (f *fakePurchases) add(m purchases.Merchant) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	key := merchantKeyPrefix + base64.RawURLEncoding.EncodeToString([]byte(fmt.Sprintf("%-32s", m.ID)))
	f.merchants[sha256.Sum256([]byte(key))] = m
	return key
}

func (f *fakePurchases) FeeCatalog() *fees.Catalog { return f.cat }

func (f *fakePurchases) RegisterMerchant(_ context.Context, m purchases.Merchant, keyHash [32]byte) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.errs["RegisterMerchant"]; err != nil {
		return err
	}
	if m.AcquiringBank != "ICBC-JX" {
		return fmt.Errorf("bank %q: %w", m.AcquiringBank, postgres.ErrUnknownBank)
	}
	for _, prior := range f.merchants {
		if prior.ID == m.ID {
			return fmt.Errorf("merchant %q: %w", m.ID, postgres.ErrMerchantExists)
		}
	}
	f.merchants[keyHash] = m
	return nil
}

func (f *fakePurchases) RotateMerchantKey(_ context.Context, id string, keyHash [32]byte) (purchases.Merchant, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.errs["RotateMerchantKey"]; err != nil {
		return purchases.Merchant{}, err
	}
	for h, m := range f.merchants {
		if m.ID == id {
			delete(f.merchants, h)
			f.merchants[keyHash] = m
			return m, nil
		}
	}
	return purchases.Merchant{}, fmt.Errorf("merchant %q: %w", id, postgres.ErrNotFound)
}

func (f *fakePurchases) MerchantByKey(_ context.Context, keyHash [32]byte) (purchases.Merchant, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.errs["MerchantByKey"]; err != nil {
		return purchases.Merchant{}, err
	}
	m, ok := f.merchants[keyHash]
	if !ok {
		return m, fmt.Errorf("merchant key: %w", postgres.ErrNotFound)
	}
	return m, nil
}

func (f *fakePurchases) SetCardLimits(_ context.Context, token string, l purchases.Limits) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.errs["SetCardLimits"]; err != nil {
		return "", err
	}
	if !f.cards[token] {
		return "", fmt.Errorf("card: %w", postgres.ErrNotFound)
	}
	return token, nil
}

func (f *fakePurchases) Do(_ context.Context, req postgres.PurchaseRequest) (postgres.PurchaseResult, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.got = append(f.got, req)
	if err := f.errs["Do"]; err != nil {
		return postgres.PurchaseResult{}, err
	}
	k := req.Merchant.ID + "/" + req.Key.String()
	if prior, ok := f.requests[k]; ok {
		if prior.Hash != req.Hash || prior.Op != req.Op {
			return postgres.PurchaseResult{}, postgres.ErrIdempotencyKeyReused
		}
		res := f.results[k]
		res.Replayed = true
		return res, nil
	}
	now := t0.UTC()
	var res postgres.PurchaseResult
	if req.Op == postgres.OpAuthorize {
		id := fakeID(k)
		a := purchases.Authorization{ID: id, MerchantID: req.Merchant.ID, MCC: req.Merchant.MCC, Amount: req.Amount, CreatedAt: now}
		a.Decision = purchases.Decide(purchases.Check{MCC: a.MCC, Card: nil, Amount: req.Amount, AmountErr: req.AmountErr, Now: now})
		if req.AmountErr == nil && req.CardToken == "tok_card" {
			a.CardToken = req.CardToken // as the store, which keeps a card's own token, never what was sent for none
			a.Decision, a.ExpiresAt = purchases.Decision{Approved: true}, now.Add(purchases.DefaultHoldTimeout)
			a.Approve()
		}
		f.auths[id] = &postgres.AuthorizationRecord{Authorization: a}
		res.Authorization = &a
	} else {
		rec, ok := f.auths[req.AuthorizationID]
		if !ok || rec.MerchantID != req.Merchant.ID {
			return res, &purchases.Refusal{Code: purchases.RefusedNotFound, Message: "authorization not found"}
		}
		if req.AmountErr != nil && req.Op != postgres.OpIncrement {
			return res, &purchases.Refusal{Code: purchases.RefusedInvalid, Message: req.AmountErr.Error()}
		}
		id := fakeID(k + "/result")
		switch req.Op {
		case postgres.OpIncrement:
			res.Increment = &purchases.Increment{ID: id, AuthorizationID: rec.ID, Amount: req.Amount, Decision: purchases.Decision{Approved: true}, CreatedAt: now}
		case postgres.OpCapture, postgres.OpVoid:
			if rec.Close != nil {
				return res, &purchases.Refusal{Code: purchases.RefusedConflict, Message: "the authorization is already captured"}
			}
			amount := req.Amount
			if req.Full {
				amount = rec.Held()
			}
			c := purchases.Close{ID: id, AuthorizationID: rec.ID, Kind: purchases.Captured, Amount: amount, CreatedAt: now}
			if req.Op == postgres.OpVoid {
				c.Kind, c.Released = purchases.Voided, rec.Held()
			}
			rec.ApplyClose(c)
			res.Close = &c
		case postgres.OpRefund:
			r := purchases.Refund{ID: id, AuthorizationID: rec.ID, Seq: 1, Amount: req.Amount, RefundedTotal: req.Amount, CreatedAt: now}
			res.Refund = &r
		}
	}
	f.requests[k], f.results[k] = req, res
	return res, nil
}

// fakeID derives an id from s, in the layout of a UUIDv7.
func fakeID(s string) ledger.ID {
	h := sha256.Sum256([]byte(s))
	var id ledger.ID
	copy(id[:], h[:16])
	id[6] = id[6]&0x0f | 0x70
	id[8] = id[8]&0x3f | 0x80
	return id
}

func (f *fakePurchases) Authorization(_ context.Context, merchantID string, id ledger.ID) (postgres.AuthorizationRecord, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.errs["Authorization"]; err != nil {
		return postgres.AuthorizationRecord{}, err
	}
	rec, ok := f.auths[id]
	if !ok || rec.MerchantID != merchantID {
		return postgres.AuthorizationRecord{}, fmt.Errorf("authorization: %w", postgres.ErrNotFound)
	}
	return *rec, nil
}

func (f *fakePurchases) Authorizations(_ context.Context, merchantID string, _ ledger.ID, limit int) ([]postgres.AuthorizationRecord, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.errs["Authorizations"]; err != nil {
		return nil, err
	}
	var out []postgres.AuthorizationRecord
	for _, rec := range f.auths {
		if rec.MerchantID == merchantID && len(out) < limit {
			out = append(out, *rec)
		}
	}
	return out, nil
}

func (f *fakePurchases) Savings(_ context.Context, token string) (postgres.CardSavings, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.errs["Savings"]; err != nil {
		return postgres.CardSavings{}, err
	}
	if !f.cards[token] {
		return postgres.CardSavings{}, fmt.Errorf("card: %w", postgres.ErrNotFound)
	}
	return postgres.CardSavings{CardToken: token, Purchases: 2, Paid: 45000, Foreign: fees.ForeignCost{Surcharge: 750, FXMargin: 675}}, nil
}

var _ PurchaseService = (*fakePurchases)(nil)

func purchasesOf(e *env) *fakePurchases { return e.features["purchases"].(*fakePurchases) }

var (
	testPharmacy = purchases.Merchant{ID: "pharmacy-1", Name: "Jiaxing Pharmacy", MCC: "5912", City: "jiaxing",
		AcquiringBank: "ICBC-JX", FeePlan: "domestic-standard"}
	testGrocer = purchases.Merchant{ID: "grocer-1", Name: "Corner Grocer", MCC: "5411", City: "jiaxing",
		AcquiringBank: "ICBC-JX", FeePlan: "domestic-small-merchant"}
)

// merchantRun returns a run that registers the pharmacy, then sends what rq makes of its key.
func merchantRun(rq func(t *testing.T, e *env, key string) request) func(t *testing.T, e *env) *httptest.ResponseRecorder {
	return func(t *testing.T, e *env) *httptest.ResponseRecorder {
		key := purchasesOf(e).add(testPharmacy)
		return e.do(t, rq(t, e, key))
	}
}

// authorized registers the pharmacy, approves an authorization of 100.00 and returns its id
// and the pharmacy's key.
func authorized(t *testing.T, e *env) (id, key string) {
	t.Helper()
	key = purchasesOf(e).add(testPharmacy)
	w := e.do(t, request{method: "POST", path: "/v1/authorizations", key: keyAt(t, t0), auth: "Bearer " + key,
		body: `{"card_token":"tok_card","amount":"100.00","currency":"CNY"}`})
	if w.Code != http.StatusCreated {
		t.Fatalf("authorize: %d %s", w.Code, w.Body.String())
	}
	var v authorizationView
	decodeJSON(t, w, &v)
	return v.ID, key
}

// onAuthorization returns a run that authorizes, then sends a request about the authorization.
func onAuthorization(method, suffix, body string, before func(e *env)) func(t *testing.T, e *env) *httptest.ResponseRecorder {
	return func(t *testing.T, e *env) *httptest.ResponseRecorder {
		id, key := authorized(t, e)
		if before != nil {
			before(e)
		}
		rq := request{method: method, path: "/v1/authorizations/" + id + suffix, auth: "Bearer " + key, body: body}
		if method == "POST" {
			rq.key = keyAt(t, t0)
		}
		return e.do(t, rq)
	}
}

func purchaseStatusCases() []statusCase {
	var cases []statusCase
	add := func(c ...statusCase) { cases = append(cases, c...) }
	tooLarge := `{"amount":"` + strings.Repeat("1", maxRequestBytes) + `"}`
	merchantBody := func(change func(m map[string]string)) string {
		m := map[string]string{"id": "pharmacy-2", "name": "Hangzhou Pharmacy", "mcc": "5912", "city": "hangzhou",
			"acquiring_bank": "ICBC-JX", "fee_plan": "domestic-standard"}
		if change != nil {
			change(m)
		}
		var b strings.Builder
		b.WriteString("{")
		first := true
		for _, k := range []string{"id", "name", "mcc", "city", "acquiring_bank", "fee_plan"} {
			v, ok := m[k]
			if !ok {
				continue
			}
			if !first {
				b.WriteString(",")
			}
			first = false
			fmt.Fprintf(&b, "%q:%q", k, v)
		}
		b.WriteString("}")
		return b.String()
	}
	failing := func(method string, err error) func(e *env) {
		return func(e *env) { purchasesOf(e).fail(method, err) }
	}
	withFailure := func(method string, err error, run func(t *testing.T, e *env) *httptest.ResponseRecorder) func(t *testing.T, e *env) *httptest.ResponseRecorder {
		return func(t *testing.T, e *env) *httptest.ResponseRecorder {
			failing(method, err)(e)
			return run(t, e)
		}
	}
	reg := func(body string) request { return request{method: "POST", path: "/v1/merchants", body: body} }

	route := "POST /v1/merchants"
	add(
		statusCase{name: "register", route: route, status: 201, run: send(reg(merchantBody(nil)))},
		statusCase{name: "missing field", route: route, status: 400, code: EINVALID, message: "mcc: missing",
			run: send(reg(merchantBody(func(m map[string]string) { delete(m, "mcc") })))},
		statusCase{name: "mcc of letters", route: route, status: 400, code: EINVALID, message: "mcc: must be four digits",
			run: send(reg(merchantBody(func(m map[string]string) { m["mcc"] = "59AB" })))},
		statusCase{name: "unknown fee plan", route: route, status: 400, code: EINVALID, message: "fee_plan: must be one of",
			run: send(reg(merchantBody(func(m map[string]string) { m["fee_plan"] = "free" })))},
		statusCase{name: "unknown bank", route: route, status: 400, code: EINVALID, message: "acquiring_bank: bank",
			run: send(reg(merchantBody(func(m map[string]string) { m["acquiring_bank"] = "NOBANK" })))},
		statusCase{name: "id with a space", route: route, status: 400, code: EINVALID, message: "id: must be printable ascii",
			run: send(reg(merchantBody(func(m map[string]string) { m["id"] = "pharmacy 2" })))},
		statusCase{name: "registered twice", route: route, status: 409, code: ECONFLICT, message: "already registered",
			run: func(t *testing.T, e *env) *httptest.ResponseRecorder {
				e.do(t, reg(merchantBody(nil)))
				return e.do(t, reg(merchantBody(nil)))
			}},
		statusCase{name: "no auth", route: route, status: 401, code: EUNAUTHORIZED,
			run: send(request{method: "POST", path: "/v1/merchants", body: merchantBody(nil), auth: "-"})},
		statusCase{name: "a merchant key is not the admin's", route: route, status: 403, code: EFORBIDDEN,
			run: merchantRun(func(t *testing.T, e *env, key string) request {
				return request{method: "POST", path: "/v1/merchants", body: merchantBody(nil), auth: "Bearer " + key}
			})},
		statusCase{name: "too large", route: route, status: 413, code: ETOOLARGE, run: send(reg(tooLarge))},
		statusCase{name: "contradicts its medical designation", route: route, status: 409, code: ECONFLICT, message: "city_mismatch: merchant",
			run: withFailure("RegisterMerchant", medical.Refuse(medical.ReasonCityMismatch, "merchant %q is designated in jiaxing", "pharmacy-1"),
				send(reg(merchantBody(nil))))},
		statusCase{name: "store broken", route: route, status: 500, code: EINTERNAL,
			run: withFailure("RegisterMerchant", errBroken, send(reg(merchantBody(nil))))},
		statusCase{name: "store busy", route: route, status: 503, code: EUNAVAILABLE,
			run: withFailure("RegisterMerchant", busy, send(reg(merchantBody(nil))))},
	)

	route = "POST /v1/merchants/{id}/key"
	rotate := request{method: "POST", path: "/v1/merchants/pharmacy-1/key"}
	add(
		statusCase{name: "rotate", route: route, status: 201, run: merchantRun(func(*testing.T, *env, string) request { return rotate })},
		statusCase{name: "no auth", route: route, status: 401, code: EUNAUTHORIZED,
			run: send(request{method: "POST", path: "/v1/merchants/pharmacy-1/key", auth: "-"})},
		statusCase{name: "wrong token", route: route, status: 403, code: EFORBIDDEN,
			run: send(request{method: "POST", path: "/v1/merchants/pharmacy-1/key", auth: "Bearer nope"})},
		statusCase{name: "unknown merchant", route: route, status: 404, code: ENOTFOUND, run: send(rotate)},
		statusCase{name: "not an id", route: route, status: 400, code: EINVALID, message: "id: must be printable ascii",
			run: send(request{method: "POST", path: "/v1/merchants/pharmacy%001/key"})},
		statusCase{name: "store broken", route: route, status: 500, code: EINTERNAL, run: withFailure("RotateMerchantKey", errBroken, send(rotate))},
		statusCase{name: "store busy", route: route, status: 503, code: EUNAVAILABLE, run: withFailure("RotateMerchantKey", busy, send(rotate))},
	)

	route = "POST /v1/cards/{token}/limits"
	limits := func(body string) request {
		return request{method: "POST", path: "/v1/cards/tok_card/limits", body: body}
	}
	goodLimits := `{"per_transaction":"500.00","per_day":"2000.00"}`
	add(
		statusCase{name: "set", route: route, status: 200, run: send(limits(goodLimits))},
		statusCase{name: "day below transaction", route: route, status: 400, code: EINVALID, message: "daily limit must be at least",
			run: send(limits(`{"per_transaction":"500.00","per_day":"100.00"}`))},
		statusCase{name: "not an amount", route: route, status: 400, code: EINVALID, message: "per_day: amount",
			run: send(limits(`{"per_transaction":"500.00","per_day":"lots"}`))},
		statusCase{name: "no auth", route: route, status: 401, code: EUNAUTHORIZED,
			run: send(request{method: "POST", path: "/v1/cards/tok_card/limits", body: goodLimits, auth: "-"})},
		statusCase{name: "wrong token", route: route, status: 403, code: EFORBIDDEN,
			run: send(request{method: "POST", path: "/v1/cards/tok_card/limits", body: goodLimits, auth: "Bearer nope"})},
		statusCase{name: "unknown card", route: route, status: 404, code: ENOTFOUND,
			run: send(request{method: "POST", path: "/v1/cards/tok_nobody/limits", body: goodLimits})},
		statusCase{name: "too large", route: route, status: 413, code: ETOOLARGE, run: send(limits(tooLarge))},
		statusCase{name: "store broken", route: route, status: 500, code: EINTERNAL, run: withFailure("SetCardLimits", errBroken, send(limits(goodLimits)))},
		statusCase{name: "no admin token", route: route, status: 503, code: EUNAVAILABLE, opts: []envOption{noAdmin}, run: send(limits(goodLimits))},
	)

	route = "GET /v1/cards/{token}/savings"
	savings := request{method: "GET", path: "/v1/cards/tok_card/savings"}
	add(
		statusCase{name: "savings", route: route, status: 200, run: send(savings)},
		statusCase{name: "no auth", route: route, status: 401, code: EUNAUTHORIZED, run: send(request{method: "GET", path: "/v1/cards/tok_card/savings", auth: "-"})},
		statusCase{name: "wrong token", route: route, status: 403, code: EFORBIDDEN, run: send(request{method: "GET", path: "/v1/cards/tok_card/savings", auth: "Bearer x"})},
		statusCase{name: "unknown card", route: route, status: 404, code: ENOTFOUND, run: send(request{method: "GET", path: "/v1/cards/tok_nobody/savings"})},
		statusCase{name: "card number", route: route, status: 400, code: EINVALID, message: "token: looks like a card number in clear",
			run: send(request{method: "GET", path: "/v1/cards/" + testPAN + "/savings"})},
		statusCase{name: "store broken", route: route, status: 500, code: EINTERNAL, run: withFailure("Savings", errBroken, send(savings))},
		statusCase{name: "no admin token", route: route, status: 503, code: EUNAVAILABLE, opts: []envOption{noAdmin}, run: send(savings)},
	)

	route = "POST /v1/authorizations"
	authz := func(body string) func(t *testing.T, e *env, key string) request {
		return func(t *testing.T, e *env, key string) request {
			return request{method: "POST", path: "/v1/authorizations", key: keyAt(t, t0), auth: "Bearer " + key, body: body}
		}
	}
	goodAuth := `{"card_token":"tok_card","amount":"100.00","currency":"CNY"}`
	add(
		statusCase{name: "approved", route: route, status: 201, run: merchantRun(authz(goodAuth))},
		statusCase{name: "declined is 201 too", route: route, status: 201,
			run: merchantRun(authz(`{"card_token":"tok_card","amount":"1.234","currency":"CNY"}`))},
		statusCase{name: "no key", route: route, status: 400, code: EINVALID, message: "missing idempotency-key",
			run: merchantRun(func(t *testing.T, e *env, key string) request {
				return request{method: "POST", path: "/v1/authorizations", auth: "Bearer " + key, body: goodAuth}
			})},
		statusCase{name: "another currency", route: route, status: 400, code: EINVALID, message: "currency: must be CNY",
			run: merchantRun(authz(`{"card_token":"tok_card","amount":"100.00","currency":"USD"}`))},
		statusCase{name: "no card token", route: route, status: 400, code: EINVALID, message: "card_token: missing",
			run: merchantRun(authz(`{"amount":"100.00","currency":"CNY"}`))},
		statusCase{name: "amount as a number", route: route, status: 400, code: EINVALID, message: "amount: must be a string",
			run: merchantRun(authz(`{"card_token":"tok_card","amount":100,"currency":"CNY"}`))},
		statusCase{name: "no api key", route: route, status: 401, code: EUNAUTHORIZED,
			run: send(request{method: "POST", path: "/v1/authorizations", body: goodAuth, auth: "-"})},
		statusCase{name: "the admin token is no merchant key", route: route, status: 403, code: EFORBIDDEN, message: "invalid merchant api key",
			run: send(request{method: "POST", path: "/v1/authorizations", body: goodAuth})},
		statusCase{name: "a key of the right shape nobody has", route: route, status: 403, code: EFORBIDDEN,
			run: send(request{method: "POST", path: "/v1/authorizations", body: goodAuth,
				auth: "Bearer " + merchantKeyPrefix + strings.Repeat("A", merchantKeyLen-len(merchantKeyPrefix))})},
		statusCase{name: "another merchant's id", route: route, status: 403, code: EFORBIDDEN, message: "another merchant's",
			run: merchantRun(authz(`{"card_token":"tok_card","amount":"100.00","currency":"CNY","merchant_id":"grocer-1"}`))},
		statusCase{name: "key reused with another body", route: route, status: 409, code: ECONFLICT, message: "idempotency key reused",
			run: merchantRun(func(t *testing.T, e *env, key string) request {
				k := keyAt(t, t0)
				e.do(t, request{method: "POST", path: "/v1/authorizations", key: k, auth: "Bearer " + key, body: goodAuth})
				return request{method: "POST", path: "/v1/authorizations", key: k, auth: "Bearer " + key,
					body: `{"card_token":"tok_card","amount":"100.01","currency":"CNY"}`}
			})},
		statusCase{name: "too large", route: route, status: 413, code: ETOOLARGE, run: merchantRun(authz(tooLarge))},
		statusCase{name: "store broken", route: route, status: 500, code: EINTERNAL,
			run: withFailure("Do", errBroken, merchantRun(authz(goodAuth)))},
		statusCase{name: "key lookup broken", route: route, status: 500, code: EINTERNAL,
			run: withFailure("MerchantByKey", errBroken, merchantRun(authz(goodAuth)))},
		statusCase{name: "queue full", route: route, status: 503, code: EUNAVAILABLE, message: "busy",
			run: withFailure("Do", postgres.ErrPurchasesBusy, merchantRun(authz(goodAuth)))},
		statusCase{name: "store conflict past its retries", route: route, status: 503, code: EUNAVAILABLE,
			run: withFailure("Do", busy, merchantRun(authz(goodAuth)))},
	)

	route = "GET /v1/authorizations"
	list := func(query string) func(t *testing.T, e *env, key string) request {
		return func(t *testing.T, e *env, key string) request {
			return request{method: "GET", path: "/v1/authorizations" + query, auth: "Bearer " + key}
		}
	}
	add(
		statusCase{name: "list", route: route, status: 200, run: merchantRun(list("?limit=10"))},
		statusCase{name: "bad limit", route: route, status: 400, code: EINVALID, message: "limit:", run: merchantRun(list("?limit=0"))},
		statusCase{name: "bad before", route: route, status: 400, code: EINVALID, message: "before:", run: merchantRun(list("?before=x"))},
		statusCase{name: "no api key", route: route, status: 401, code: EUNAUTHORIZED, run: send(request{method: "GET", path: "/v1/authorizations", auth: "-"})},
		statusCase{name: "wrong key", route: route, status: 403, code: EFORBIDDEN, run: send(request{method: "GET", path: "/v1/authorizations", auth: "Bearer x"})},
		statusCase{name: "store broken", route: route, status: 500, code: EINTERNAL, run: withFailure("Authorizations", errBroken, merchantRun(list("")))},
	)

	route = "GET /v1/authorizations/{id}"
	add(
		statusCase{name: "get", route: route, status: 200, run: onAuthorization("GET", "", "", nil)},
		statusCase{name: "no api key", route: route, status: 401, code: EUNAUTHORIZED,
			run: send(request{method: "GET", path: "/v1/authorizations/00000000-0000-7000-8000-000000000000", auth: "-"})},
		statusCase{name: "wrong key", route: route, status: 403, code: EFORBIDDEN,
			run: send(request{method: "GET", path: "/v1/authorizations/00000000-0000-7000-8000-000000000000", auth: "Bearer x"})},
		statusCase{name: "another merchant's", route: route, status: 404, code: ENOTFOUND,
			run: func(t *testing.T, e *env) *httptest.ResponseRecorder {
				id, _ := authorized(t, e)
				other := purchasesOf(e).add(testGrocer)
				return e.do(t, request{method: "GET", path: "/v1/authorizations/" + id, auth: "Bearer " + other})
			}},
		statusCase{name: "not an id", route: route, status: 400, code: EINVALID, message: "id: must be an authorization id",
			run: merchantRun(func(t *testing.T, e *env, key string) request {
				return request{method: "GET", path: "/v1/authorizations/nope", auth: "Bearer " + key}
			})},
		statusCase{name: "store broken", route: route, status: 500, code: EINTERNAL,
			run: onAuthorization("GET", "", "", failing("Authorization", errBroken))},
	)

	// A void has no body to give, and reads what it is given as strictly as the others.
	for _, op := range []struct{ suffix, body string }{{"/increments", `{"amount":"20.00"}`}, {"/capture", `{"amount":"80.00"}`},
		{"/void", ""}, {"/refunds", `{"amount":"20.00"}`}} {
		route := "POST /v1/authorizations/{id}" + op.suffix
		add(
			statusCase{name: "ok", route: route, status: 201, run: onAuthorization("POST", op.suffix, op.body, nil)},
			statusCase{name: "no key", route: route, status: 400, code: EINVALID, message: "missing idempotency-key",
				run: func(t *testing.T, e *env) *httptest.ResponseRecorder {
					id, key := authorized(t, e)
					return e.do(t, request{method: "POST", path: "/v1/authorizations/" + id + op.suffix, auth: "Bearer " + key, body: op.body})
				}},
			statusCase{name: "no api key", route: route, status: 401, code: EUNAUTHORIZED,
				run: send(request{method: "POST", path: "/v1/authorizations/00000000-0000-7000-8000-000000000000" + op.suffix, body: op.body, auth: "-"})},
			statusCase{name: "wrong key", route: route, status: 403, code: EFORBIDDEN,
				run: send(request{method: "POST", path: "/v1/authorizations/00000000-0000-7000-8000-000000000000" + op.suffix, body: op.body, auth: "Bearer x"})},
			statusCase{name: "another merchant's", route: route, status: 404, code: ENOTFOUND,
				run: func(t *testing.T, e *env) *httptest.ResponseRecorder {
					id, _ := authorized(t, e)
					other := purchasesOf(e).add(testGrocer)
					return e.do(t, request{method: "POST", path: "/v1/authorizations/" + id + op.suffix, key: keyAt(t, t0), auth: "Bearer " + other, body: op.body})
				}},
			statusCase{name: "store broken", route: route, status: 500, code: EINTERNAL,
				run: onAuthorization("POST", op.suffix, op.body, failing("Do", errBroken))},
			statusCase{name: "shutting down", route: route, status: 503, code: EUNAVAILABLE,
				run: onAuthorization("POST", op.suffix, op.body, failing("Do", postgres.ErrPurchasesStopped))},
			statusCase{name: "refused by the state", route: route, status: 409, code: ECONFLICT, message: "already captured",
				run: onAuthorization("POST", op.suffix, op.body, failing("Do", &purchases.Refusal{Code: purchases.RefusedConflict, Message: "the authorization is already captured"}))},
		)
		add(
			statusCase{name: "too large", route: route, status: 413, code: ETOOLARGE, run: onAuthorization("POST", op.suffix, tooLarge, nil)},
			statusCase{name: "unknown field", route: route, status: 400, code: EINVALID, message: `unknown field "amont"`,
				run: onAuthorization("POST", op.suffix, `{"amont":"1.00"}`, nil)},
			statusCase{name: "not json", route: route, status: 400, code: EINVALID, message: "not valid json",
				run: onAuthorization("POST", op.suffix, `{,}`, nil)},
			statusCase{name: "not an id", route: route, status: 400, code: EINVALID, message: "id: must be an authorization id",
				run: merchantRun(func(t *testing.T, e *env, key string) request {
					return request{method: "POST", path: "/v1/authorizations/nope" + op.suffix, key: keyAt(t, t0), auth: "Bearer " + key, body: op.body}
				})},
		)
	}
	add(statusCase{name: "refund amount not an amount", route: "POST /v1/authorizations/{id}/refunds", status: 400, code: EINVALID,
		message: "amount is not a decimal amount", run: onAuthorization("POST", "/refunds", `{"amount":"lots"}`, nil)})
	add(statusCase{name: "amount not an amount", route: "POST /v1/authorizations/{id}/capture", status: 400, code: EINVALID,
		message: "amount has 3 decimal places", run: onAuthorization("POST", "/capture", `{"amount":"1.005"}`, nil)})
	return cases
}

// TestAuthorizeReplaysTheSameAnswer sends an authorization, its retry, and a retry with the
// amount written differently: one request reaches the engine's records, every answer is the same.
func TestAuthorizeReplaysTheSameAnswer(t *testing.T) {
	e := newEnv(t)
	key := purchasesOf(e).add(testPharmacy)
	k := keyAt(t, t0)
	send := func(amount string) *httptest.ResponseRecorder {
		return e.do(t, request{method: "POST", path: "/v1/authorizations", key: k, auth: "Bearer " + key,
			body: `{"card_token":"tok_card","amount":"` + amount + `","currency":"CNY"}`})
	}
	first, again, respelled := send("100.00"), send("100.00"), send("100")
	for _, w := range []*httptest.ResponseRecorder{first, again, respelled} {
		if w.Code != http.StatusCreated || w.Body.String() != first.Body.String() {
			t.Fatalf("answer %d %s, the first was %s", w.Code, w.Body.String(), first.Body.String())
		}
	}
	if first.Header().Get("Idempotent-Replayed") != "" || again.Header().Get("Idempotent-Replayed") != "true" {
		t.Errorf("Idempotent-Replayed: first %q, retry %q", first.Header().Get("Idempotent-Replayed"), again.Header().Get("Idempotent-Replayed"))
	}
	var v authorizationView
	decodeJSON(t, first, &v)
	if v.Decision != "approved" || v.Status != "authorized" || v.Held != "100.00" || v.ExpiresAt == "" {
		t.Errorf("decision %+v", v)
	}
}

// TestPurchaseRequestsHashMeaningNotSpelling checks the requests the edge gives the engine: a
// card token is hashed as its token, amounts by their value, and a card number in the token's
// place is refused before it reaches the engine, the hash or the log.
func TestPurchaseRequestsHashMeaningNotSpelling(t *testing.T) {
	e := newEnv(t)
	f := purchasesOf(e)
	key := f.add(testPharmacy)
	const stranger = "tok_stranger"
	for _, body := range []string{
		`{"card_token":"` + stranger + `","amount":"12.30","currency":"CNY"}`,
		`{"card_token":"` + stranger + `","amount":"12.3","currency":"CNY"}`,
	} {
		w := e.do(t, request{method: "POST", path: "/v1/authorizations", key: keyAt(t, t0), auth: "Bearer " + key, body: body})
		if w.Code != http.StatusCreated {
			t.Fatalf("%d %s", w.Code, w.Body.String())
		}
		var v authorizationView
		decodeJSON(t, w, &v)
		if v.Decision != "declined" || v.DeclineReason != "unknown_card" {
			t.Errorf("a token of no card: %s", w.Body.String())
		}
	}
	if len(f.got) != 2 || f.got[0].Hash != f.got[1].Hash {
		t.Errorf("the same request spelled twice hashed differently")
	}
	if f.got[0].Amount != 1230 {
		t.Errorf("amount %d", f.got[0].Amount)
	}
	want := purchaseRequestHash(postgres.OpAuthorize, ledger.ID{}, testTokenizer(t).Token(stranger), "1230", "CNY")
	if f.got[0].Hash != want {
		t.Errorf("the hash is not of the card token's token")
	}

	w := e.do(t, request{method: "POST", path: "/v1/authorizations", key: keyAt(t, t0), auth: "Bearer " + key,
		body: `{"card_token":"` + testPAN + `","amount":"12.30","currency":"CNY"}`})
	if w.Code != http.StatusBadRequest || errorOf(t, w).Message != "card_token: looks like a card number in clear, send the card's token" {
		t.Errorf("a card number as a token: %d %s", w.Code, w.Body.String())
	}
	if len(f.got) != 2 {
		t.Errorf("a card number as a token reached the engine")
	}
	if strings.Contains(e.log.String(), testPAN) || strings.Contains(w.Body.String(), testPAN) {
		t.Errorf("the log or the answer contains the card number")
	}
}

// TestFullCaptureTakesWhatIsHeld captures without an amount: everything held.
func TestFullCaptureTakesWhatIsHeld(t *testing.T) {
	e := newEnv(t)
	id, key := authorized(t, e)
	w := e.do(t, request{method: "POST", path: "/v1/authorizations/" + id + "/capture", key: keyAt(t, t0), auth: "Bearer " + key, body: `{}`})
	if w.Code != http.StatusCreated {
		t.Fatalf("%d %s", w.Code, w.Body.String())
	}
	var v purchaseCloseView
	decodeJSON(t, w, &v)
	if v.Amount != "100.00" || v.Kind != "captured" {
		t.Errorf("full capture %+v", v)
	}
	got := purchasesOf(e).got
	if last := got[len(got)-1]; !last.Full || last.Hash != purchaseRequestHash(postgres.OpCapture, last.AuthorizationID, "full") {
		t.Errorf("a full capture is not asked and hashed as full")
	}
}

func TestMerchantKeyIsShownOnceAndRotates(t *testing.T) {
	e := newEnv(t)
	w := e.do(t, request{method: "POST", path: "/v1/merchants",
		body: `{"id":"pharmacy-1","name":"Jiaxing Pharmacy","mcc":"5912","city":"jiaxing","acquiring_bank":"ICBC-JX","fee_plan":"domestic-standard"}`})
	if w.Code != http.StatusCreated {
		t.Fatalf("%d %s", w.Code, w.Body.String())
	}
	var m merchantView
	decodeJSON(t, w, &m)
	if !strings.HasPrefix(m.APIKey, merchantKeyPrefix) || len(m.APIKey) != merchantKeyLen {
		t.Fatalf("api key %q", m.APIKey)
	}
	use := func(key string) int {
		return e.do(t, request{method: "GET", path: "/v1/authorizations", auth: "Bearer " + key}).Code
	}
	if c := use(m.APIKey); c != http.StatusOK {
		t.Fatalf("the new key: %d", c)
	}
	w = e.do(t, request{method: "POST", path: "/v1/merchants/pharmacy-1/key"})
	var rotated merchantView
	decodeJSON(t, w, &rotated)
	if rotated.APIKey == m.APIKey {
		t.Fatal("rotation kept the key")
	}
	if c := use(m.APIKey); c != http.StatusForbidden {
		t.Errorf("the old key after rotation: %d", c)
	}
	if c := use(rotated.APIKey); c != http.StatusOK {
		t.Errorf("the rotated key: %d", c)
	}
	if strings.Contains(e.log.String(), m.APIKey) || strings.Contains(e.log.String(), rotated.APIKey) {
		t.Error("the log contains an api key")
	}
}

// TestAuthorizationFieldsAreCheckedBeforeQueueing: a request the database could not take (a NUL
// in the card token, a control character in the amount, a malformed merchant id) is answered 400
// naming the field and never reaches the committer, where it would share a transaction with
// other merchants' requests.
func TestAuthorizationFieldsAreCheckedBeforeQueueing(t *testing.T) {
	e := newEnv(t)
	f := purchasesOf(e)
	key := f.add(testPharmacy)
	for _, c := range []struct{ body, message string }{
		{`{"card_token":"tok\u0000x","amount":"10.00","currency":"CNY"}`, "card_token: must be printable ASCII without spaces"},
		{`{"card_token":"tok x","amount":"10.00","currency":"CNY"}`, "card_token: must be printable ASCII without spaces"},
		{`{"card_token":"` + strings.Repeat("t", 65) + `","amount":"10.00","currency":"CNY"}`, "card_token: is 65 bytes, more than 64"},
		{`{"card_token":"tok_card","amount":"10\u0000","currency":"CNY"}`, "amount: must be printable ascii without spaces"},
		{`{"card_token":"tok_card","amount":"10.00","currency":"CNY","merchant_id":"ph\u0000"}`, "merchant_id: must be printable ascii without spaces"},
	} {
		w := e.do(t, request{method: "POST", path: "/v1/authorizations", key: keyAt(t, t0), auth: "Bearer " + key, body: c.body})
		if w.Code != http.StatusBadRequest || errorOf(t, w).Message != c.message {
			t.Errorf("%s: %d %s, want 400 %q", c.body, w.Code, w.Body.String(), c.message)
		}
	}
	if len(f.got) != 0 {
		t.Errorf("%d refused requests reached the committer", len(f.got))
	}
}
