package http

import (
	"context"
	"crypto/sha256"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/joinincard/engine/cards"
	"github.com/joinincard/engine/clearing"
	"github.com/joinincard/engine/events"
	"github.com/joinincard/engine/internal/pgtest"
	"github.com/joinincard/engine/ledger"
	"github.com/joinincard/engine/loadtest"
	"github.com/joinincard/engine/postgres"
	"github.com/joinincard/engine/transit"
)

// The operator keys of the fake: the right shape, registered for HZMETRO and HZBUS.
var (
	hzMetroKey = transitKeyPrefix + strings.Repeat("M", transitKeyLen-len(transitKeyPrefix))
	hzBusKey   = transitKeyPrefix + strings.Repeat("B", transitKeyLen-len(transitKeyPrefix))
)

func testTransitTables(t testing.TB) *transit.Tables {
	t.Helper()
	ts, err := transit.Shipped()
	if err != nil {
		t.Fatal(err)
	}
	return ts
}

func init() {
	for route, st := range map[string][]int{
		"POST /v1/transit/operators":               {201, 400, 401, 403, 409, 413, 500, 503},
		"POST /v1/transit/batches":                 {200, 201, 400, 401, 403, 409, 413, 500, 503},
		"GET /v1/transit/batches/{id}":             {200, 400, 401, 403, 404, 500, 503},
		"GET /v1/transit/deny-list":                {200, 400, 401, 403, 500, 503},
		"GET /v1/transit/deny-list/{token}":        {200, 400, 401, 403, 404, 500, 503},
		"GET /v1/transit/cards/{token}/trips":      {200, 400, 401, 403, 404, 500, 503},
		"PUT /v1/transit/cards/{token}/concession": {200, 400, 401, 403, 404, 413, 500, 503},
	} {
		statuses[route] = st
	}
	requestTypes["POST /v1/transit/operators"] = transitOperatorRequest{}
	requestTypes["POST /v1/transit/batches"] = transitBatchRequest{}
	responseTypes["POST /v1/transit/operators"] = transitOperatorView{}
	responseTypes["POST /v1/transit/batches"] = transitBatchView{}
	responseTypes["GET /v1/transit/batches/{id}"] = transitBatchView{}
	responseTypes["GET /v1/transit/deny-list"] = denyListView{}
	responseTypes["GET /v1/transit/deny-list/{token}"] = denyStatusView{}
	responseTypes["GET /v1/transit/cards/{token}/trips"] = tripsView{}
	requestTypes["PUT /v1/transit/cards/{token}/concession"] = concessionRequest{}
	responseTypes["PUT /v1/transit/cards/{token}/concession"] = concessionView{}
	idempotent["POST /v1/transit/batches"] = true

	featureEnvs = append(featureEnvs, func(t testing.TB, e *env, cfg *Config) {
		f := newFakeTransit(testTransitTables(t), e.clock.Now)
		e.features["transit"] = f
		cfg.Features = append(cfg.Features, NewTransit(f, f.tables))
	})
	featureStatusCases = append(featureStatusCases, transitStatusCases()...)
}

// fakeTransit is the transit store in memory: it decides taps with the transit package, as the
// real store does, against a card, a denied card and the taps it saw.
type fakeTransit struct {
	mu        sync.Mutex
	tables    *transit.Tables
	now       func() time.Time
	operators map[string]bool
	keys      map[[32]byte]string
	batches   map[[2]string]fakeBatch
	seen      map[transit.Key]bool
	errs      map[string]error
}

type fakeBatch struct {
	hash [32]byte
	res  postgres.TapBatchResult
}

// The fake's cards: tok_card (also by tok_phys) and tok_owing, on the deny list.
var (
	fakeCards  = map[string]string{"tok_card": "tok_card", "tok_phys": "tok_card", "tok_owing": "tok_owing"}
	owingSince = t0.Add(-24 * time.Hour)
)

func newFakeTransit(ts *transit.Tables, now func() time.Time) *fakeTransit {
	return &fakeTransit{tables: ts, now: now,
		operators: map[string]bool{"HZMETRO": true, "HZBUS": true},
		keys:      map[[32]byte]string{sha256.Sum256([]byte(hzMetroKey)): "HZMETRO", sha256.Sum256([]byte(hzBusKey)): "HZBUS"},
		batches:   map[[2]string]fakeBatch{}, seen: map[transit.Key]bool{}, errs: map[string]error{}}
}

// transitFailing makes a method of the test server's fake transit store fail.
func transitFailing(method string, err error) envOption {
	return func(c *Config) {
		for _, f := range c.Features {
			if tr, ok := f.(*Transit); ok {
				fake := tr.svc.(*fakeTransit)
				fake.mu.Lock()
				fake.errs[method] = err
				fake.mu.Unlock()
			}
		}
	}
}

func (f *fakeTransit) CreateTransitOperator(_ context.Context, id, name string, keyHash [32]byte) (postgres.TransitOperator, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.errs["CreateTransitOperator"]; err != nil {
		return postgres.TransitOperator{}, err
	}
	if f.operators[id] {
		return postgres.TransitOperator{}, fmt.Errorf("operator %q: %w", id, postgres.ErrOperatorExists)
	}
	f.operators[id] = true
	f.keys[keyHash] = id
	return postgres.TransitOperator{ID: id, Name: name, Account: clearing.PartyAccount(clearing.PartyOperator, id), CreatedAt: f.now()}, nil
}

func (f *fakeTransit) TransitOperatorByKey(_ context.Context, keyHash [32]byte) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.errs["TransitOperatorByKey"]; err != nil {
		return "", err
	}
	id, ok := f.keys[keyHash]
	if !ok {
		return "", fmt.Errorf("operator key: %w", postgres.ErrNotFound)
	}
	return id, nil
}

func (f *fakeTransit) SubmitTapBatch(_ context.Context, ts *transit.Tables, b postgres.TapBatch) (postgres.TapBatchResult, bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.errs["SubmitTapBatch"]; err != nil {
		return postgres.TapBatchResult{}, false, err
	}
	if prior, ok := f.batches[[2]string{b.Operator, b.BatchID}]; ok {
		if prior.hash != b.RequestHash {
			return postgres.TapBatchResult{}, false, postgres.ErrBatchConflict
		}
		return prior.res, true, nil
	}
	v := &transit.View{Cards: fakeCards, DeniedSince: map[string]time.Time{"tok_owing": owingSince}, Seen: f.seen, Operators: f.operators}
	out := ts.Decide(b.Taps, v, f.now())
	res := postgres.TapBatchResult{Operator: b.Operator, BatchID: b.BatchID, ReceivedAt: f.now().UTC()}
	for i, o := range out {
		res.Answers = append(res.Answers, postgres.TapAnswer{TapRef: b.Refs[i], Result: o.Result, Reason: o.Reason, Detail: o.Detail})
		switch o.Result {
		case transit.Accepted:
			res.Accepted++
		case transit.Duplicate:
			res.Duplicates++
		default:
			res.Rejected++
		}
	}
	f.batches[[2]string{b.Operator, b.BatchID}] = fakeBatch{hash: b.RequestHash, res: res}
	return res, false, nil
}

func (f *fakeTransit) TapBatch(_ context.Context, operator, batchID string) (postgres.TapBatchResult, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.errs["TapBatch"]; err != nil {
		return postgres.TapBatchResult{}, err
	}
	b, ok := f.batches[[2]string{operator, batchID}]
	if !ok {
		return postgres.TapBatchResult{}, fmt.Errorf("batch: %w", postgres.ErrNotFound)
	}
	return b.res, nil
}

func (f *fakeTransit) DenyList(_ context.Context, after string, limit int) ([]postgres.DenyEntry, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.errs["DenyList"]; err != nil {
		return nil, err
	}
	if after >= "tok_owing" {
		return nil, nil
	}
	return []postgres.DenyEntry{{Card: "tok_owing", Tokens: []string{"tok_owing"}, Reason: transit.DenyFaresOwed, Owed: 1000,
		Since: owingSince}}[:min(limit, 1)], nil
}

func (f *fakeTransit) CardDenyStatus(_ context.Context, token string) (postgres.DenyEntry, bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.errs["CardDenyStatus"]; err != nil {
		return postgres.DenyEntry{}, false, err
	}
	card, ok := fakeCards[token]
	if !ok {
		return postgres.DenyEntry{}, false, fmt.Errorf("card: %w", postgres.ErrNotFound)
	}
	if card == "tok_owing" {
		return postgres.DenyEntry{Card: card, Tokens: []string{card}, Reason: transit.DenyFaresOwed, Owed: 1000, Since: owingSince}, true, nil
	}
	return postgres.DenyEntry{Card: card, Tokens: []string{"tok_card", "tok_phys"}}, false, nil
}

func (f *fakeTransit) TransitTrips(_ context.Context, _ *transit.Tables, token string, from, to transit.Day) (string, []postgres.TripDay, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.errs["TransitTrips"]; err != nil {
		return "", nil, err
	}
	card, ok := fakeCards[token]
	if !ok {
		return "", nil, fmt.Errorf("card: %w", postgres.ErrNotFound)
	}
	at := time.Date(2026, time.February, 27, 8, 0, 0, 0, cards.Shanghai)
	return card, []postgres.TripDay{{Day: to, Operator: "HZMETRO", Priced: 300, Paid: 300,
		Journeys: []transit.Journey{{Operator: "HZMETRO", Kind: transit.KindComplete, Start: at, End: at.Add(20 * time.Minute),
			From: "0101", To: "0105", Fare: 300, Charged: 300}},
		Postings: []postgres.TripPosting{{TransferID: ledger.ID{1}, Amount: 300, Code: clearing.CodeTransitFare, PostedAt: at.Add(25 * time.Hour)}}}}, nil
}

func (f *fakeTransit) SetCardConcession(_ context.Context, token, class, by string) (postgres.CardConcession, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.errs["SetCardConcession"]; err != nil {
		return postgres.CardConcession{}, err
	}
	card, ok := fakeCards[token]
	if !ok {
		return postgres.CardConcession{}, fmt.Errorf("card: %w", postgres.ErrNotFound)
	}
	return postgres.CardConcession{Card: card, Class: class, History: []postgres.ConcessionChange{{At: f.now(), Class: class, By: by}}}, nil
}

var _ TransitService = (*fakeTransit)(nil)

// tapJSON is one tap of HZMETRO in a JSON batch, a minute before the tests' clock.
func tapJSON(seq int, card string) string {
	return fmt.Sprintf(`{"device_id":"GATE-0107-03","device_seq":%d,"card_token":%q,"tapped_at":%q,"station_id":"0107","line":"1","direction":"in","mode":"metro"}`,
		seq, card, t0.Add(-time.Minute).Format(time.RFC3339))
}

func batchBody(taps ...string) string { return `{"taps":[` + strings.Join(taps, ",") + `]}` }

func batchRequest(key, batchID, body string) request {
	return request{method: "POST", path: "/v1/transit/batches", body: body, auth: "Bearer " + key, header: map[string]string{"Idempotency-Key": batchID}}
}

func csvRequest(key, batchID, body string) request {
	rq := batchRequest(key, batchID, body)
	rq.header["Content-Type"] = "text/csv"
	return rq
}

func transitStatusCases() []statusCase {
	var cases []statusCase
	add := func(c ...statusCase) { cases = append(cases, c...) }
	op := func(body string) request { return request{method: "POST", path: "/v1/transit/operators", body: body} }
	add(
		statusCase{name: "create", route: "POST /v1/transit/operators", status: 201, run: send(op(`{"id":"SHMETRO","name":"Shanghai Metro"}`))},
		statusCase{name: "create twice", route: "POST /v1/transit/operators", status: 409, code: ECONFLICT, message: "registered already",
			run: send(op(`{"id":"HZMETRO","name":"Hangzhou Metro"}`))},
		statusCase{name: "create without a fare table", route: "POST /v1/transit/operators", status: 400, code: EINVALID, message: "no fare table",
			run: send(op(`{"id":"XXMETRO","name":"Nowhere Metro"}`))},
		statusCase{name: "create without id", route: "POST /v1/transit/operators", status: 400, code: EINVALID, message: "id: missing",
			run: send(op(`{"name":"Nowhere Metro"}`))},
		statusCase{name: "create with a spaced id", route: "POST /v1/transit/operators", status: 400, code: EINVALID, message: "id: must be printable",
			run: send(op(`{"id":"SH METRO","name":"Shanghai Metro"}`))},
		statusCase{name: "create with an unknown field", route: "POST /v1/transit/operators", status: 400, code: EINVALID, message: `unknown field "key"`,
			run: send(op(`{"id":"SHMETRO","name":"Shanghai Metro","key":"mine"}`))},
		statusCase{name: "create without auth", route: "POST /v1/transit/operators", status: 401, code: EUNAUTHORIZED,
			run: func(t *testing.T, e *env) *httptest.ResponseRecorder {
				rq := op(`{"id":"SHMETRO","name":"Shanghai Metro"}`)
				rq.auth = "-"
				return e.do(t, rq)
			}},
		statusCase{name: "create with an operator key", route: "POST /v1/transit/operators", status: 403, code: EFORBIDDEN,
			run: func(t *testing.T, e *env) *httptest.ResponseRecorder {
				rq := op(`{"id":"SHMETRO","name":"Shanghai Metro"}`)
				rq.auth = "Bearer " + hzMetroKey
				return e.do(t, rq)
			}},
		statusCase{name: "create too large", route: "POST /v1/transit/operators", status: 413, code: ETOOLARGE,
			run: send(op(`{"id":"SHMETRO","name":"` + strings.Repeat("a", maxRequestBytes) + `"}`))},
		statusCase{name: "create store broken", route: "POST /v1/transit/operators", status: 500, code: EINTERNAL,
			opts: []envOption{transitFailing("CreateTransitOperator", errBroken)}, run: send(op(`{"id":"SHMETRO","name":"Shanghai Metro"}`))},
		statusCase{name: "create store busy", route: "POST /v1/transit/operators", status: 503, code: EUNAVAILABLE,
			opts: []envOption{transitFailing("CreateTransitOperator", busy)}, run: send(op(`{"id":"SHMETRO","name":"Shanghai Metro"}`))},
	)

	ok := batchBody(tapJSON(1, "tok_phys"), tapJSON(2, "tok_nobody"))
	add(
		statusCase{name: "batch", route: "POST /v1/transit/batches", status: 201, run: send(batchRequest(hzMetroKey, "b-1", ok))},
		statusCase{name: "batch csv", route: "POST /v1/transit/batches", status: 201, run: send(csvRequest(hzMetroKey, "b-1",
			"device_id,device_seq,card_token,tapped_at,station_id,direction,mode\nGATE-1,1,tok_card,"+t0.Format(time.RFC3339)+",0107,in,metro\n"))},
		statusCase{name: "batch replay", route: "POST /v1/transit/batches", status: 200, run: func(t *testing.T, e *env) *httptest.ResponseRecorder {
			e.do(t, batchRequest(hzMetroKey, "b-1", ok))
			return e.do(t, batchRequest(hzMetroKey, "b-1", ok))
		}},
		statusCase{name: "batch id reused", route: "POST /v1/transit/batches", status: 409, code: ECONFLICT, message: "different body",
			run: func(t *testing.T, e *env) *httptest.ResponseRecorder {
				e.do(t, batchRequest(hzMetroKey, "b-1", ok))
				return e.do(t, batchRequest(hzMetroKey, "b-1", batchBody(tapJSON(1, "tok_card"))))
			}},
		statusCase{name: "batch without id", route: "POST /v1/transit/batches", status: 400, code: EINVALID, message: "missing idempotency-key",
			run: send(batchRequest(hzMetroKey, "", ok))},
		statusCase{name: "batch with a spaced id", route: "POST /v1/transit/batches", status: 400, code: EINVALID, message: "idempotency-key",
			run: send(batchRequest(hzMetroKey, "b 1", ok))},
		statusCase{name: "batch as xml", route: "POST /v1/transit/batches", status: 400, code: EINVALID, message: "content-type",
			run: func(t *testing.T, e *env) *httptest.ResponseRecorder {
				rq := batchRequest(hzMetroKey, "b-1", ok)
				rq.header["Content-Type"] = "application/xml"
				return e.do(t, rq)
			}},
		statusCase{name: "batch not json", route: "POST /v1/transit/batches", status: 400, code: EINVALID, message: "not valid json",
			run: send(batchRequest(hzMetroKey, "b-1", `{"taps":[{"device_id":`))},
		statusCase{name: "batch of nothing", route: "POST /v1/transit/batches", status: 400, code: EINVALID, message: "no taps",
			run: send(batchRequest(hzMetroKey, "b-1", `{"taps":[]}`))},
		statusCase{name: "batch with another field", route: "POST /v1/transit/batches", status: 400, code: EINVALID, message: `unknown field "operator_id"`,
			run: send(batchRequest(hzMetroKey, "b-1", `{"operator_id":"SHMETRO","taps":[]}`))},
		statusCase{name: "batch csv without a column", route: "POST /v1/transit/batches", status: 400, code: EINVALID, message: `no "mode" column`,
			run: send(csvRequest(hzMetroKey, "b-1", "device_id,device_seq,card_token,tapped_at,station_id,direction\n"))},
		statusCase{name: "batch without key", route: "POST /v1/transit/batches", status: 401, code: EUNAUTHORIZED,
			run: send(batchRequest("", "b-1", ok))},
		statusCase{name: "batch with the admin token", route: "POST /v1/transit/batches", status: 403, code: EFORBIDDEN, message: "invalid operator api key",
			run: send(batchRequest(testAdminToken, "b-1", ok))},
		statusCase{name: "batch with an unknown key", route: "POST /v1/transit/batches", status: 403, code: EFORBIDDEN,
			run: send(batchRequest(transitKeyPrefix+strings.Repeat("X", transitKeyLen-len(transitKeyPrefix)), "b-1", ok))},
		statusCase{name: "batch too large", route: "POST /v1/transit/batches", status: 413, code: ETOOLARGE,
			run: send(batchRequest(hzMetroKey, "b-1", `{"taps":["`+strings.Repeat("a", maxBatchBytes)+`"]}`))},
		statusCase{name: "batch of too many taps", route: "POST /v1/transit/batches", status: 413, code: ETOOLARGE, message: "more than 10000 taps",
			run: func(t *testing.T, e *env) *httptest.ResponseRecorder {
				taps := make([]string, postgres.MaxTransitBatchTaps+1)
				for i := range taps {
					taps[i] = "{}"
				}
				return e.do(t, batchRequest(hzMetroKey, "b-1", batchBody(taps...)))
			}},
		statusCase{name: "batch store broken", route: "POST /v1/transit/batches", status: 500, code: EINTERNAL,
			opts: []envOption{transitFailing("SubmitTapBatch", errBroken)}, run: send(batchRequest(hzMetroKey, "b-1", ok))},
		statusCase{name: "batch key lookup broken", route: "POST /v1/transit/batches", status: 500, code: EINTERNAL,
			opts: []envOption{transitFailing("TransitOperatorByKey", errBroken)}, run: send(batchRequest(hzMetroKey, "b-1", ok))},
		statusCase{name: "batch store busy", route: "POST /v1/transit/batches", status: 503, code: EUNAVAILABLE,
			opts: []envOption{transitFailing("SubmitTapBatch", busy)}, run: send(batchRequest(hzMetroKey, "b-1", ok))},
	)

	get := func(key, id string) request {
		return request{method: "GET", path: "/v1/transit/batches/" + id, auth: "Bearer " + key}
	}
	add(
		statusCase{name: "get batch", route: "GET /v1/transit/batches/{id}", status: 200, run: func(t *testing.T, e *env) *httptest.ResponseRecorder {
			e.do(t, batchRequest(hzMetroKey, "b-1", ok))
			return e.do(t, get(hzMetroKey, "b-1"))
		}},
		statusCase{name: "get another operator's batch", route: "GET /v1/transit/batches/{id}", status: 404, code: ENOTFOUND,
			run: func(t *testing.T, e *env) *httptest.ResponseRecorder {
				e.do(t, batchRequest(hzMetroKey, "b-1", ok))
				return e.do(t, get(hzBusKey, "b-1"))
			}},
		statusCase{name: "get not an id", route: "GET /v1/transit/batches/{id}", status: 400, code: EINVALID, message: "id: must be printable ascii",
			run: send(get(hzMetroKey, "b%001"))},
		statusCase{name: "get without key", route: "GET /v1/transit/batches/{id}", status: 401, code: EUNAUTHORIZED,
			run: send(request{method: "GET", path: "/v1/transit/batches/b-1", auth: "-"})},
		statusCase{name: "get with a wrong key", route: "GET /v1/transit/batches/{id}", status: 403, code: EFORBIDDEN,
			run: send(get("tk_short", "b-1"))},
		statusCase{name: "get store broken", route: "GET /v1/transit/batches/{id}", status: 500, code: EINTERNAL,
			opts: []envOption{transitFailing("TapBatch", errBroken)}, run: send(get(hzMetroKey, "b-1"))},
		statusCase{name: "get store busy", route: "GET /v1/transit/batches/{id}", status: 503, code: EUNAVAILABLE,
			opts: []envOption{transitFailing("TransitOperatorByKey", busy)}, run: send(get(hzMetroKey, "b-1"))},
	)

	deny := func(key, query string) request {
		return request{method: "GET", path: "/v1/transit/deny-list" + query, auth: "Bearer " + key}
	}
	add(
		statusCase{name: "deny list", route: "GET /v1/transit/deny-list", status: 200, run: send(deny(hzBusKey, "?limit=1"))},
		statusCase{name: "deny list limit", route: "GET /v1/transit/deny-list", status: 400, code: EINVALID, message: "limit",
			run: send(deny(hzBusKey, "?limit=0"))},
		statusCase{name: "deny list without key", route: "GET /v1/transit/deny-list", status: 401, code: EUNAUTHORIZED,
			run: send(request{method: "GET", path: "/v1/transit/deny-list", auth: "-"})},
		statusCase{name: "deny list with the admin token", route: "GET /v1/transit/deny-list", status: 403, code: EFORBIDDEN,
			run: send(deny(testAdminToken, ""))},
		statusCase{name: "deny list broken", route: "GET /v1/transit/deny-list", status: 500, code: EINTERNAL,
			opts: []envOption{transitFailing("DenyList", errBroken)}, run: send(deny(hzBusKey, ""))},
		statusCase{name: "deny list busy", route: "GET /v1/transit/deny-list", status: 503, code: EUNAVAILABLE,
			opts: []envOption{transitFailing("DenyList", busy)}, run: send(deny(hzBusKey, ""))},
	)
	status := func(key, token string) request {
		return request{method: "GET", path: "/v1/transit/deny-list/" + token, auth: "Bearer " + key}
	}
	add(
		statusCase{name: "deny status", route: "GET /v1/transit/deny-list/{token}", status: 200, run: send(status(hzBusKey, "tok_owing"))},
		statusCase{name: "deny status unknown card", route: "GET /v1/transit/deny-list/{token}", status: 404, code: ENOTFOUND,
			run: send(status(hzBusKey, "tok_nobody"))},
		statusCase{name: "deny status not a token", route: "GET /v1/transit/deny-list/{token}", status: 400, code: EINVALID, message: "token: must be printable",
			run: send(status(hzBusKey, "tok%00x"))},
		statusCase{name: "deny list after not a token", route: "GET /v1/transit/deny-list", status: 400, code: EINVALID, message: "after: must be printable",
			run: send(deny(hzBusKey, "?after=tok%FF"))},
		statusCase{name: "deny status without key", route: "GET /v1/transit/deny-list/{token}", status: 401, code: EUNAUTHORIZED,
			run: send(request{method: "GET", path: "/v1/transit/deny-list/tok_card", auth: "-"})},
		statusCase{name: "deny status wrong key", route: "GET /v1/transit/deny-list/{token}", status: 403, code: EFORBIDDEN,
			run: send(status("Bearer-ish", "tok_card"))},
		statusCase{name: "deny status broken", route: "GET /v1/transit/deny-list/{token}", status: 500, code: EINTERNAL,
			opts: []envOption{transitFailing("CardDenyStatus", errBroken)}, run: send(status(hzBusKey, "tok_card"))},
		statusCase{name: "deny status busy", route: "GET /v1/transit/deny-list/{token}", status: 503, code: EUNAVAILABLE,
			opts: []envOption{transitFailing("CardDenyStatus", busy)}, run: send(status(hzBusKey, "tok_card"))},
	)
	trips := func(token, query string) request {
		return request{method: "GET", path: "/v1/transit/cards/" + token + "/trips" + query}
	}
	add(
		statusCase{name: "trips", route: "GET /v1/transit/cards/{token}/trips", status: 200, run: send(trips("tok_phys", "?from=2026-02-20&to=2026-02-28"))},
		statusCase{name: "trips of a month and more", route: "GET /v1/transit/cards/{token}/trips", status: 400, code: EINVALID, message: "at most 31 days",
			run: send(trips("tok_card", "?from=2026-01-01&to=2026-02-28"))},
		statusCase{name: "trips from a bad date", route: "GET /v1/transit/cards/{token}/trips", status: 400, code: EINVALID, message: "from:",
			run: send(trips("tok_card", "?from=yesterday"))},
		statusCase{name: "trips of nobody", route: "GET /v1/transit/cards/{token}/trips", status: 404, code: ENOTFOUND,
			run: send(trips("tok_nobody", ""))},
		statusCase{name: "trips without auth", route: "GET /v1/transit/cards/{token}/trips", status: 401, code: EUNAUTHORIZED,
			run: send(request{method: "GET", path: "/v1/transit/cards/tok_card/trips", auth: "-"})},
		statusCase{name: "trips with an operator key", route: "GET /v1/transit/cards/{token}/trips", status: 403, code: EFORBIDDEN,
			run: send(request{method: "GET", path: "/v1/transit/cards/tok_card/trips", auth: "Bearer " + hzMetroKey})},
		statusCase{name: "trips broken", route: "GET /v1/transit/cards/{token}/trips", status: 500, code: EINTERNAL,
			opts: []envOption{transitFailing("TransitTrips", errBroken)}, run: send(trips("tok_card", ""))},
		statusCase{name: "trips no admin token", route: "GET /v1/transit/cards/{token}/trips", status: 503, code: EUNAVAILABLE,
			opts: []envOption{noAdmin}, run: send(trips("tok_card", ""))},
	)
	concession := func(token, body string) request {
		return request{method: "PUT", path: "/v1/transit/cards/" + token + "/concession", body: body}
	}
	const senior = `{"class":"senior","set_by":"Wang Li"}`
	add(
		statusCase{name: "concession", route: "PUT /v1/transit/cards/{token}/concession", status: 200, run: send(concession("tok_phys", senior))},
		statusCase{name: "concession taken away", route: "PUT /v1/transit/cards/{token}/concession", status: 200,
			run: send(concession("tok_card", `{"class":"","set_by":"Wang Li"}`))},
		statusCase{name: "concession of nobody", route: "PUT /v1/transit/cards/{token}/concession", status: 404, code: ENOTFOUND,
			run: send(concession("tok_nobody", senior))},
		statusCase{name: "concession class in capitals", route: "PUT /v1/transit/cards/{token}/concession", status: 400, code: EINVALID,
			message: "class: want lowercase letters", run: send(concession("tok_card", `{"class":"Senior","set_by":"Wang Li"}`))},
		statusCase{name: "concession by nobody", route: "PUT /v1/transit/cards/{token}/concession", status: 400, code: EINVALID,
			message: "set_by: missing", run: send(concession("tok_card", `{"class":"senior"}`))},
		statusCase{name: "concession not a token", route: "PUT /v1/transit/cards/{token}/concession", status: 400, code: EINVALID,
			message: "token:", run: send(concession("tok%00", senior))},
		statusCase{name: "concession without auth", route: "PUT /v1/transit/cards/{token}/concession", status: 401, code: EUNAUTHORIZED,
			run: send(request{method: "PUT", path: "/v1/transit/cards/tok_card/concession", body: senior, auth: "-"})},
		statusCase{name: "concession with an operator key", route: "PUT /v1/transit/cards/{token}/concession", status: 403, code: EFORBIDDEN,
			run: send(request{method: "PUT", path: "/v1/transit/cards/tok_card/concession", body: senior, auth: "Bearer " + hzMetroKey})},
		statusCase{name: "concession too large", route: "PUT /v1/transit/cards/{token}/concession", status: 413, code: ETOOLARGE,
			run: send(concession("tok_card", `{"class":"senior","set_by":"`+strings.Repeat("a", maxRequestBytes)+`"}`))},
		statusCase{name: "concession broken", route: "PUT /v1/transit/cards/{token}/concession", status: 500, code: EINTERNAL,
			opts: []envOption{transitFailing("SetCardConcession", errBroken)}, run: send(concession("tok_card", senior))},
		statusCase{name: "concession busy", route: "PUT /v1/transit/cards/{token}/concession", status: 503, code: EUNAVAILABLE,
			opts: []envOption{transitFailing("SetCardConcession", busy)}, run: send(concession("tok_card", senior))},
	)
	return cases
}

// batchOf decodes a batch answer strictly.
func batchOf(t testing.TB, w *httptest.ResponseRecorder) transitBatchView {
	t.Helper()
	var v transitBatchView
	decodeStrictly(t, w, &v)
	return v
}

func answers(v transitBatchView) string {
	var parts []string
	for _, a := range v.Taps {
		s := a.Result
		if a.Reason != "" {
			s += ":" + a.Reason
		}
		parts = append(parts, s)
	}
	return strings.Join(parts, " ")
}

// Every malformed tap is answered as such, with why; the others in the batch are decided.
func TestTransitBatchMalformedTaps(t *testing.T) {
	e := newEnv(t)
	good := tapJSON(1, "tok_card")
	taps := []struct{ json, detail string }{
		{good, ""},
		{`"a tap"`, "must be a json object"},
		{`{"device_id":"G","device_seq":"2","card_token":"tok_card","tapped_at":"2026-03-01T09:59:00+08:00","station_id":"0107","direction":"in","mode":"metro"}`, "device_seq: must be a json integer"},
		{`{"device_id":"G","device_seq":-3,"card_token":"tok_card","tapped_at":"2026-03-01T09:59:00+08:00","station_id":"0107","direction":"in","mode":"metro"}`, "device_seq: want an integer"},
		{`{"device_id":"G","device_seq":4.5,"card_token":"tok_card","tapped_at":"2026-03-01T09:59:00+08:00","station_id":"0107","direction":"in","mode":"metro"}`, "device_seq: want an integer"},
		{`{"device_id":"G","device_seq":5,"card_token":"tok_card","tapped_at":"2026-03-01T09:59:00+08:00","station_id":"0107","direction":"in"}`, "mode: missing required field"},
		{`{"device_id":"G","device_seq":6,"card_token":"tok_card","tapped_at":"2026-03-01T09:59:00+08:00","station_id":"0107","direction":"in","mode":"metro","pan":"6228480402564899"}`, `unknown field "pan"`},
		{`{"device_id":"G","device_seq":7,"device_seq":8,"card_token":"tok_card","tapped_at":"2026-03-01T09:59:00+08:00","station_id":"0107","direction":"in","mode":"metro"}`, "device_seq: duplicate field"},
		{`{"device_id":"G","device_seq":9,"card_token":null,"tapped_at":"2026-03-01T09:59:00+08:00","station_id":"0107","direction":"in","mode":"metro"}`, "card_token: must not be null"},
		{`{"device_id":"G","device_seq":10,"card_token":"tok_card","tapped_at":"2026-03-01T09:59:00+08:00","station_id":["0107"],"direction":"in","mode":"metro"}`, "station_id: must not be an object or array"},
		{`{"device_id":"G","device_seq":11,"card_token":"tok_card","tapped_at":"2026-03-01 09:59","station_id":"0107","direction":"in","mode":"metro"}`, `tapped_at: "2026-03-01 09:59" is not a time, want RFC 3339`},
		{`{"device_id":"G","device_seq":12,"card_token":"tok_card","tapped_at":"2026-03-01T09:59:00+08:00","station_id":"0107","direction":"in","mode":"metro","line":"1"}`, ""},
	}
	var bodies []string
	for _, tp := range taps {
		bodies = append(bodies, tp.json)
	}
	w := e.do(t, batchRequest(hzMetroKey, "b-1", batchBody(bodies...)))
	if w.Code != http.StatusCreated {
		t.Fatalf("%d %s", w.Code, w.Body.String())
	}
	v := batchOf(t, w)
	if v.Counts.Taps != len(taps) || v.Counts.Accepted != 2 || v.Counts.Rejected != len(taps)-2 || v.OperatorID != "HZMETRO" || v.BatchID != "b-1" {
		t.Fatalf("counts %+v", v)
	}
	for i, tp := range taps {
		a := v.Taps[i]
		if tp.detail == "" {
			if a.Result != "accepted" {
				t.Errorf("tap %d: %+v", i, a)
			}
			continue
		}
		if a.Result != "rejected" || a.Reason != "malformed" || !strings.Contains(a.Detail, tp.detail) {
			t.Errorf("tap %d: %+v, want malformed %q", i, a, tp.detail)
		}
	}
	if strings.Contains(w.Body.String(), "6228480402564899") {
		t.Error("the answer repeats a card number sent in an unknown field")
	}
}

func TestTransitBatchCSV(t *testing.T) {
	e := newEnv(t)
	at := t0.Add(-time.Minute).Format(time.RFC3339)
	body := "mode,direction,station_id,tapped_at,card_token,device_seq,device_id,line\n" +
		"metro,in," + "0107," + at + ",tok_phys,1,GATE-1,1\n" +
		"metro,in," + "0107," + at + ",tok_phys,1,GATE-1,1\n" + // the same device and sequence
		"metro,in,0107\n" + // a short row
		"metro,out,0110," + at + ",tok_owing,2,GATE-1,1\n" + // on the deny list
		"metro,out,0110," + at + ",tok_nobody,3,GATE-1,1\n" +
		"\"metro\",out,0999," + at + ",tok_card,4,GATE-1,\n"
	w := e.do(t, csvRequest(hzMetroKey, "csv-1", body))
	if w.Code != http.StatusCreated {
		t.Fatalf("%d %s", w.Code, w.Body.String())
	}
	v := batchOf(t, w)
	if got := answers(v); got != "accepted duplicate rejected:malformed rejected:card_denied rejected:unknown_card rejected:unknown_station" {
		t.Fatalf("answers %s", got)
	}
	if v.Taps[0].DeviceID != "GATE-1" || v.Taps[0].DeviceSeq != "1" || v.Taps[5].Index != 5 {
		t.Fatalf("answers name their taps: %+v", v.Taps)
	}
	// A spreadsheet's byte order mark before the header is not part of its first column's name.
	bom := "\ufeffdevice_id,device_seq,card_token,tapped_at,station_id,direction,mode\nGATE-1,5,tok_phys," + at + ",0107,in,metro\n"
	if w := e.do(t, csvRequest(hzMetroKey, "csv-bom", bom)); w.Code != http.StatusCreated || answers(batchOf(t, w)) != "accepted" {
		t.Errorf("a batch after a byte order mark: %d %s", w.Code, w.Body.String())
	}
	for _, c := range []struct{ body, message string }{
		{"", "csv: no header"},
		{"device_id,device_seq,card_token,tapped_at,station_id,direction,mode,colour\n", `unknown column "colour"`},
		{"device_id,device_seq,card_token,tapped_at,station_id,direction,mode," + testPAN + "\n", `unknown column 8`},
		{"device_id,device_id,device_seq,card_token,tapped_at,station_id,direction,mode\n", `column "device_id" twice`},
		{"device_id,device_seq,card_token,tapped_at,station_id,direction,mode\n", "csv: no taps"},
		{"device_id,device_seq,card_token,tapped_at,station_id,direction,mode\nG,1,\"tok,2,x,y,z,w\n", "csv: line"},
	} {
		w := e.do(t, csvRequest(hzMetroKey, "csv-2", c.body))
		if w.Code != http.StatusBadRequest || !strings.Contains(errorOf(t, w).Message, c.message) {
			t.Errorf("%q: %d %s, want 400 %q", c.body, w.Code, w.Body.String(), c.message)
		}
	}
}

// The transit API on the real store: an operator registered with its key, batches in JSON and
// CSV, replays, a day closed and charged, the trip history and the deny list. pgtest verifies the
// ledger when the test ends.
func TestTransitAgainstPostgres(t *testing.T) {
	ctx := context.Background()
	store := pgtest.NewStore(t)
	ts := testTransitTables(t)
	c := &clock{now: time.Date(2026, time.March, 2, 20, 0, 0, 0, cards.Shanghai)}
	store.Now = c.Now
	log := &syncBuffer{}
	e := &env{log: log, clock: c}
	e.srv = NewServer(Config{
		Store: store, Broker: pinger(pingOK), Tokenizer: testTokenizer(t), AdminToken: testAdminToken,
		Metrics: prometheus.NewRegistry(), Now: c.Now, Features: []Feature{NewTransit(store, ts)},
		Log: slog.New(slog.NewJSONHandler(log, &slog.HandlerOptions{Level: slog.LevelDebug})),
	})
	e.h = e.srv.Handler()

	// Two cards, one funded, the other with 1.00 CNY.
	city := loadtest.NewCity(5, 2, 1, time.Date(2026, time.March, 1, 8, 0, 0, 0, cards.Shanghai))
	for _, p := range city.Parties() {
		if _, err := store.RegisterParty(ctx, p.Kind, p.ID, p.Name); err != nil {
			t.Fatal(err)
		}
	}
	funding := city.Funding(100, 100)
	funding[0].Data.(*events.FundsLoaded).Amount.Minor = 10000
	var msgs []clearing.Message
	for i, ev := range append(city.Registrations(), funding...) {
		raw := loadtest.Encode(ev)
		dec, err := events.Decode(raw)
		if err != nil {
			t.Fatal(err)
		}
		msgs = append(msgs, clearing.Message{Source: "setup", Offset: int64(i), Raw: raw, Event: dec})
	}
	if _, err := store.Ingest(ctx, nil, msgs); err != nil {
		t.Fatal(err)
	}
	rich, poor := city.Cards[0], city.Cards[1]

	keys := map[string]string{}
	for _, id := range []string{"HZMETRO", "HZBUS"} {
		w := e.do(t, request{method: "POST", path: "/v1/transit/operators", body: fmt.Sprintf(`{"id":%q,"name":"%s operator"}`, id, id)})
		if w.Code != http.StatusCreated {
			t.Fatalf("create %s: %d %s", id, w.Code, w.Body.String())
		}
		var v transitOperatorView
		decodeJSON(t, w, &v)
		if v.City != "hangzhou" || v.AccountID != clearing.PartyAccount(clearing.PartyOperator, id).String() || len(v.APIKey) != transitKeyLen {
			t.Fatalf("operator %+v", v)
		}
		keys[id] = v.APIKey
	}
	if w := e.do(t, request{method: "POST", path: "/v1/transit/operators", body: `{"id":"HZBUS","name":"HZBUS operator"}`}); w.Code != http.StatusConflict {
		t.Fatalf("again: %d %s", w.Code, w.Body.String())
	}

	at := func(s string) string {
		tm, err := time.ParseInLocation("2006-01-02 15:04", s, cards.Shanghai)
		if err != nil {
			t.Fatal(err)
		}
		return tm.Format(time.RFC3339)
	}
	metro := fmt.Sprintf(`{"taps":[
		{"device_id":"G-0116","device_seq":1,"card_token":%q,"tapped_at":%q,"station_id":"0116","direction":"in","mode":"metro"},
		{"device_id":"G-0101","device_seq":1,"card_token":%q,"tapped_at":%q,"station_id":"0101","direction":"out","mode":"metro"},
		{"device_id":"G-0101","device_seq":2,"card_token":%q,"tapped_at":%q,"station_id":"0101","direction":"in","mode":"metro"},
		{"device_id":"G-0122","device_seq":1,"card_token":%q,"tapped_at":%q,"station_id":"0122","direction":"out","mode":"metro"}]}`,
		rich, at("2026-03-02 08:40"), rich, at("2026-03-02 09:05"), poor, at("2026-03-02 10:00"), poor, at("2026-03-02 10:50"))
	w := e.do(t, batchRequest(keys["HZMETRO"], "2026-03-02-gates", metro))
	if w.Code != http.StatusCreated || answers(batchOf(t, w)) != "accepted accepted accepted accepted" {
		t.Fatalf("metro batch: %d %s", w.Code, w.Body.String())
	}
	first := w.Body.String()
	c.Advance(time.Minute)
	if w := e.do(t, batchRequest(keys["HZMETRO"], "2026-03-02-gates", metro)); w.Code != http.StatusOK || w.Body.String() != first {
		t.Fatalf("replay: %d %s", w.Code, w.Body.String())
	}
	bus := "device_id,device_seq,card_token,tapped_at,station_id,line,direction,mode\n" +
		"BUS-K155-2,90211," + rich + "," + at("2026-03-02 08:00") + ",K155-12,K155,single,bus\n" +
		"BUS-K155-2,90211," + rich + "," + at("2026-03-02 08:00") + ",K155-12,K155,single,bus\n"
	w = e.do(t, csvRequest(keys["HZBUS"], "bus-1", bus))
	if w.Code != http.StatusCreated || answers(batchOf(t, w)) != "accepted duplicate" {
		t.Fatalf("bus batch: %d %s", w.Code, w.Body.String())
	}
	if w := e.do(t, request{method: "GET", path: "/v1/transit/batches/2026-03-02-gates", auth: "Bearer " + keys["HZMETRO"]}); w.Code != http.StatusOK || w.Body.String() != first {
		t.Fatalf("get: %d %s", w.Code, w.Body.String())
	}
	if w := e.do(t, request{method: "GET", path: "/v1/transit/batches/2026-03-02-gates", auth: "Bearer " + keys["HZBUS"]}); w.Code != http.StatusNotFound {
		t.Fatalf("another operator's batch: %d %s", w.Code, w.Body.String())
	}

	// Tuesday 09:30 Hangzhou's Monday closes: the rich card pays the bus 2.00 and the metro
	// 5.00 - 1.00; the poor card cannot pay its 7.00 and goes on the deny list.
	c.now = time.Date(2026, time.March, 3, 9, 30, 0, 0, cards.Shanghai)
	if _, err := store.CloseTransitDays(ctx, ts, c.Now()); err != nil {
		t.Fatal(err)
	}
	w = e.do(t, request{method: "GET", path: "/v1/transit/cards/" + rich + "/trips?from=2026-03-02&to=2026-03-02"})
	if w.Code != http.StatusOK {
		t.Fatalf("trips: %d %s", w.Code, w.Body.String())
	}
	var trips tripsView
	decodeJSON(t, w, &trips)
	if len(trips.Days) != 2 || trips.Days[1].OperatorID != "HZMETRO" || trips.Days[1].Paid != "4.00" {
		t.Fatalf("trips %s", w.Body.String())
	}
	if j := trips.Days[1].Journeys[0]; j.Fare != "5.00" || j.Discount != "1.00" || j.Charged != "4.00" || j.FromStation != "0116" || j.ToStation != "0101" {
		t.Fatalf("journey %+v", j)
	}
	if p := trips.Days[1].Postings; len(p) != 1 || p[0].Code != "transit_fare" || p[0].Amount != "4.00" {
		t.Fatalf("postings %+v", p)
	}
	w = e.do(t, request{method: "GET", path: "/v1/transit/deny-list", auth: "Bearer " + keys["HZBUS"]})
	var list denyListView
	decodeJSON(t, w, &list)
	if w.Code != http.StatusOK || len(list.Cards) != 1 || list.Cards[0].CardToken != poor || list.Cards[0].Owed != "7.00" ||
		list.Cards[0].Reason != "fares_owed" {
		t.Fatalf("deny list: %d %s", w.Code, w.Body.String())
	}
	w = e.do(t, request{method: "GET", path: "/v1/transit/deny-list/" + rich, auth: "Bearer " + keys["HZBUS"]})
	var st denyStatusView
	decodeJSON(t, w, &st)
	if w.Code != http.StatusOK || st.Denied || st.Owed != "0.00" {
		t.Fatalf("rich card's status: %d %s", w.Code, w.Body.String())
	}
	// The poor card taps again: refused at the gate's upload.
	c.Advance(time.Hour)
	late := fmt.Sprintf(`{"taps":[{"device_id":"G-0101","device_seq":3,"card_token":%q,"tapped_at":%q,"station_id":"0101","direction":"in","mode":"metro"}]}`,
		poor, c.Now().Add(-time.Minute).Format(time.RFC3339))
	w = e.do(t, batchRequest(keys["HZMETRO"], "2026-03-03-gates", late))
	if w.Code != http.StatusCreated || answers(batchOf(t, w)) != "rejected:card_denied" {
		t.Fatalf("denied card: %d %s", w.Code, w.Body.String())
	}

	// The rich card is reported stolen: the deny list carries it with its reason, and its next
	// tap is refused for it, while its tap from before the report, uploaded now, is accepted.
	blockedAt := c.Now()
	w = e.do(t, request{method: "POST", path: "/v1/cards/" + rich + "/status", key: keyAt(t, blockedAt),
		body: `{"status":"blocked","reason":"reported stolen at the station"}`})
	if w.Code != http.StatusOK {
		t.Fatalf("block: %d %s", w.Code, w.Body.String())
	}
	c.Advance(time.Minute)
	w = e.do(t, request{method: "GET", path: "/v1/transit/deny-list?limit=1", auth: "Bearer " + keys["HZBUS"]})
	list = denyListView{}
	decodeJSON(t, w, &list)
	if w.Code != http.StatusOK || len(list.Cards) != 1 || list.NextAfter != list.Cards[0].CardToken {
		t.Fatalf("deny list's first page: %d %s", w.Code, w.Body.String())
	}
	w = e.do(t, request{method: "GET", path: "/v1/transit/deny-list?limit=1&after=" + list.NextAfter, auth: "Bearer " + keys["HZBUS"]})
	var next denyListView
	decodeJSON(t, w, &next)
	if w.Code != http.StatusOK || len(next.Cards) != 1 {
		t.Fatalf("deny list's second page: %d %s", w.Code, w.Body.String())
	}
	reasons := map[string]string{}
	for _, d := range append(list.Cards, next.Cards...) {
		reasons[d.CardToken] = d.Reason + " " + d.Owed + " " + d.Since
	}
	if want := "stolen 0.00 " + blockedAt.UTC().Format(time.RFC3339Nano); reasons[rich] != want || !strings.HasPrefix(reasons[poor], "fares_owed 7.00") {
		t.Fatalf("deny list %v, want the rich card %q", reasons, want)
	}
	w = e.do(t, request{method: "GET", path: "/v1/transit/deny-list/" + rich, auth: "Bearer " + keys["HZBUS"]})
	st = denyStatusView{}
	decodeJSON(t, w, &st)
	if w.Code != http.StatusOK || !st.Denied || st.Reason != "stolen" {
		t.Fatalf("stolen card's status: %d %s", w.Code, w.Body.String())
	}
	taps := fmt.Sprintf(`{"taps":[
		{"device_id":"G-0101","device_seq":4,"card_token":%q,"tapped_at":%q,"station_id":"0101","direction":"in","mode":"metro"},
		{"device_id":"G-0101","device_seq":5,"card_token":%q,"tapped_at":%q,"station_id":"0101","direction":"in","mode":"metro"}]}`,
		rich, blockedAt.Add(30*time.Second).Format(time.RFC3339), rich, blockedAt.Add(-time.Minute).Format(time.RFC3339))
	w = e.do(t, batchRequest(keys["HZMETRO"], "2026-03-03-gates-2", taps))
	if w.Code != http.StatusCreated || answers(batchOf(t, w)) != "rejected:card_blocked accepted" {
		t.Fatalf("stolen card's taps: %d %s", w.Code, w.Body.String())
	}
}

// The JSON batch parser takes exactly {"taps": [...]}.
func TestParseJSONBatch(t *testing.T) {
	for body, want := range map[string]string{
		`[]`:                          "must be a json object",
		`{}`:                          "taps: missing required field",
		`{"taps":{}}`:                 "taps: must be an array",
		`{"taps":[{}],"taps":[{}]}`:   "taps: duplicate field",
		`{"taps":[{}]} {}`:            "data after the json object",
		`{"taps":[{}]`:                "not valid json",
		`{"Taps":[{}]}`:               `unknown field "Taps"`,
		`{"taps":[{"a":1}, 7, null]}`: "",
	} {
		taps, err := parseJSONBatch([]byte(body))
		if want == "" {
			if err != nil || len(taps) != 3 || taps[0].malformed == "" || taps[1].malformed == "" || taps[2].malformed == "" {
				t.Errorf("%s: %v %+v", body, err, taps)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want %q", body, err, want)
		}
	}
}
