package http

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/joinincard/engine/cards"
	"github.com/joinincard/engine/clearing"
	"github.com/joinincard/engine/events"
	"github.com/joinincard/engine/ledger"
	"github.com/joinincard/engine/postgres"
)

const (
	testAdminToken = "s3cret-admin-token"
	// The clear numbers of the test card. Every one of them must stay out of responses, logs and
	// what the store is given.
	testPAN      = "6228480402564899"
	testPassport = "E12345678"
	testSSN      = "330100199001011234"
	testPermit   = "WP20250001234"
	testBankAcct = "6222021234567890123"
	otherPAN     = "6228481111222233"
)

// t0 is the tests' clock: a Sunday morning in Shanghai in the card's first years.
var t0 = time.Date(2026, time.March, 1, 10, 0, 0, 0, cards.Shanghai)

func testTokenizer(t testing.TB) *events.Tokenizer {
	t.Helper()
	tok, err := events.NewTokenizer([]byte("http-tests-tokenizer-key-0123456789abcdef"))
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// clock is a settable clock.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// pinger is a fake dependency for /readyz.
type pinger func(ctx context.Context) error

func (p pinger) Ping(ctx context.Context) error { return p(ctx) }

func pingOK(context.Context) error { return nil }

// syncBuffer is a bytes.Buffer safe for the concurrent writes of a logger.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// env is a server on a fake store, with its clock and its log.
type env struct {
	srv   *Server
	store *fakeStore
	clock *clock
	log   *syncBuffer
	h     http.Handler
	// features holds each feature's test state (its fake store, say), by the feature's name.
	features map[string]any
}

// featureEnvs put the API's features into every test server, so that TestOpenAPI sees all their
// routes: each feature's test file appends its own from an init function. They run before opts.
var featureEnvs []func(t testing.TB, e *env, cfg *Config)

type envOption func(*Config)

func newEnv(t testing.TB, opts ...envOption) *env {
	t.Helper()
	c := &clock{now: t0}
	e := &env{clock: c, store: newFakeStore(c.Now), log: &syncBuffer{}}
	cfg := Config{
		Store: e.store, Broker: pinger(pingOK), Tokenizer: testTokenizer(t), AdminToken: testAdminToken,
		Metrics: prometheus.NewRegistry(),
		Log:     slog.New(slog.NewJSONHandler(e.log, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Now:     c.Now,
	}
	e.features = map[string]any{}
	for _, f := range featureEnvs {
		f(t, e, &cfg)
	}
	for _, o := range opts {
		o(&cfg)
	}
	e.srv = NewServer(cfg)
	e.h = e.srv.Handler()
	return e
}

// request is one request to send.
type request struct {
	method, path, body string
	key                string // Idempotency-Key; "" sends none
	auth               string // Authorization; "" sends the admin bearer token, "-" none
	header             map[string]string
	remote             string // the client's address, host:port; httptest's own when empty
}

func (e *env) do(t testing.TB, rq request) *httptest.ResponseRecorder {
	t.Helper()
	var body io.Reader = http.NoBody
	if rq.body != "" {
		body = strings.NewReader(rq.body)
	}
	r := httptest.NewRequest(rq.method, rq.path, body)
	switch rq.auth {
	case "":
		r.Header.Set("Authorization", "Bearer "+testAdminToken)
	case "-":
	default:
		r.Header.Set("Authorization", rq.auth)
	}
	if rq.key != "" {
		r.Header.Set("Idempotency-Key", rq.key)
	}
	if rq.body != "" {
		r.Header.Set("Content-Type", "application/json")
	}
	for k, v := range rq.header {
		r.Header.Set(k, v)
	}
	if rq.remote != "" {
		r.RemoteAddr = rq.remote
	}
	w := httptest.NewRecorder()
	e.h.ServeHTTP(w, r)
	return w
}

// keyAt returns a UUIDv7 whose time is at: an Idempotency-Key minted then.
func keyAt(t testing.TB, at time.Time) string {
	t.Helper()
	var id uuid.UUID
	if _, err := rand.Read(id[:]); err != nil {
		t.Fatal(err)
	}
	var ms [8]byte
	binary.BigEndian.PutUint64(ms[:], uint64(at.UnixMilli()))
	copy(id[:6], ms[2:])
	id[6] = id[6]&0x0f | 0x70
	id[8] = id[8]&0x3f | 0x80
	return id.String()
}

// registration is a card registration body; change edits its fields before encoding.
func registration(change func(m map[string]string)) string {
	m := map[string]string{
		"card_number":            testPAN,
		"passport_number":        testPassport,
		"social_security_number": testSSN,
		"work_permit_number":     testPermit,
		"bank_account_number":    testBankAcct,
		"holder_name":            "Anna Schmidt",
		"nationality":            "DEU",
		"permit_valid_until":     "2027-06-30",
		"insurance_city":         "jiaxing",
		"issuer_bank":            "ICBC-JX",
	}
	if change != nil {
		change(m)
	}
	b, err := json.Marshal(m)
	if err != nil {
		panic(err)
	}
	return string(b)
}

// decodeJSON decodes a response body into v, failing t if it does not decode.
func decodeJSON(t testing.TB, w *httptest.ResponseRecorder, v any) {
	t.Helper()
	if err := json.Unmarshal(w.Body.Bytes(), v); err != nil {
		t.Fatalf("response %d is not JSON (%v): %s", w.Code, err, w.Body.String())
	}
}

// errorOf checks that w is an error response in the one shape every error has and returns it.
func errorOf(t testing.TB, w *httptest.ResponseRecorder) errorDetail {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(w.Body.Bytes()))
	dec.DisallowUnknownFields()
	var body errorBody
	if err := dec.Decode(&body); err != nil {
		t.Fatalf("error response %d is not {\"error\":{code,message}} (%v): %s", w.Code, err, w.Body.String())
	}
	if body.Error.Code == "" || body.Error.Message == "" {
		t.Fatalf("error response %d without code or message: %s", w.Code, w.Body.String())
	}
	if m := body.Error.Message; strings.ToLower(m[:1]) != m[:1] {
		t.Errorf("error message %q does not start in lower case", m)
	}
	if got := w.Header().Get("Content-Type"); got != "application/json" {
		t.Errorf("error response Content-Type = %q", got)
	}
	return body.Error
}

func cardOf(t testing.TB, w *httptest.ResponseRecorder) cardView {
	t.Helper()
	var v cardView
	decodeStrictly(t, w, &v)
	return v
}

// decodeStrictly decodes a response into v, refusing any field v does not have.
func decodeStrictly(t testing.TB, w *httptest.ResponseRecorder, v any) {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(w.Body.Bytes()))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		t.Fatalf("response %d does not decode into %T (%v): %s", w.Code, v, err, w.Body.String())
	}
}

// fakeStore is the Store in memory. Its Ingest decides with the clearing package, as the real
// store does, so duplicates, conflicts and rejections are the real ones.
type fakeStore struct {
	mu        sync.Mutex
	now       func() time.Time
	cards     map[string]*cards.Card // by every token
	processed map[uuid.UUID]clearing.Processed
	parties   map[ledger.ID]postgres.Party
	// partyBanks holds each party's settlement bank, by its account.
	partyBanks map[ledger.ID]string
	balances   map[ledger.ID]postgres.AccountBalance
	// ingested keeps every message given to Ingest.
	ingested []clearing.Message
	// errs makes a method fail: "Ingest", "Card", "Balance", "RegisterParty", "SetPartyBank",
	// "RegisterPartyBank", "Ping".
	errs map[string]error
}

func newFakeStore(now func() time.Time) *fakeStore {
	f := &fakeStore{
		now: now, cards: map[string]*cards.Card{}, processed: map[uuid.UUID]clearing.Processed{},
		parties: map[ledger.ID]postgres.Party{}, partyBanks: map[ledger.ID]string{}, balances: map[ledger.ID]postgres.AccountBalance{},
		errs: map[string]error{},
	}
	// The test cards' issuer bank and insurance funds: a card registers only with both known.
	for _, p := range []postgres.Party{
		{Kind: clearing.PartyBank, ID: "ICBC-JX", Name: "ICBC Jiaxing"},
		{Kind: clearing.PartyInsuranceFund, ID: "jiaxing", Name: "Jiaxing fund"},
		{Kind: clearing.PartyInsuranceFund, ID: "hangzhou", Name: "Hangzhou fund"},
	} {
		p.Account = clearing.PartyAccount(p.Kind, p.ID)
		f.openParty(p)
	}
	return f
}

// openParty registers p and opens its account, as the store does in one transaction.
func (f *fakeStore) openParty(p postgres.Party) {
	f.parties[p.Account] = p
	if _, ok := f.balances[p.Account]; ok {
		return
	}
	kind, err := p.Kind.AccountKind()
	if err != nil {
		panic(err)
	}
	f.balances[p.Account] = postgres.AccountBalance{Account: ledger.Account{ID: p.Account, Currency: "CNY", Kind: kind}, Name: p.Name, Version: 1}
}

func (f *fakeStore) fail(method string, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.errs[method] = err
}

func (f *fakeStore) Ingest(_ context.Context, cursors []postgres.Cursor, msgs []clearing.Message) (*clearing.Decision, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.ingested = append(f.ingested, msgs...)
	if err := f.errs["Ingest"]; err != nil {
		return nil, err
	}
	if len(cursors) != 0 {
		return nil, errors.New("fake store: the HTTP edge has no cursors")
	}
	v := &clearing.View{Cards: map[string]*cards.Card{}, Parties: map[ledger.ID]bool{}, Processed: map[uuid.UUID]clearing.Processed{}}
	copies := map[*cards.Card]*cards.Card{}
	for tok, c := range f.cards {
		if copies[c] == nil {
			cc := *c
			copies[c] = &cc
		}
		v.Cards[tok] = copies[c]
	}
	for id, p := range f.processed {
		v.Processed[id] = p
	}
	for id := range f.parties {
		v.Parties[id] = true
	}
	d := clearing.Decide(msgs, v, f.now())
	if len(d.Transfers) != 0 {
		return nil, errors.New("fake store: card events plan no transfers")
	}
	if err := d.Settle(nil, func(string, int64) []byte { return nil }); err != nil {
		return nil, err
	}
	for _, p := range d.Processed {
		f.processed[p.EventID] = p
	}
	for _, c := range d.NewCards {
		for _, a := range c.Accounts() {
			f.balances[a.ID] = postgres.AccountBalance{Account: a, Name: a.Kind.String() + " of card " + c.CardNumberMasked, Version: 1}
		}
	}
	for _, c := range d.Cards {
		cc := *c
		for _, tok := range cc.Tokens() {
			f.cards[tok] = &cc
		}
	}
	return d, nil
}

func (f *fakeStore) Card(_ context.Context, token string) (*cards.Card, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.errs["Card"]; err != nil {
		return nil, err
	}
	c, ok := f.cards[token]
	if !ok {
		return nil, fmt.Errorf("card: %w", postgres.ErrNotFound)
	}
	cc := *c
	return &cc, nil
}

func (f *fakeStore) Balance(_ context.Context, id ledger.ID) (postgres.AccountBalance, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.errs["Balance"]; err != nil {
		return postgres.AccountBalance{}, err
	}
	b, ok := f.balances[id]
	if !ok {
		return b, fmt.Errorf("account %s: %w", id, postgres.ErrNotFound)
	}
	return b, nil
}

// setBalance sets an account's four totals.
func (f *fakeStore) setBalance(id ledger.ID, bal ledger.Balance) {
	f.mu.Lock()
	defer f.mu.Unlock()
	b := f.balances[id]
	b.Balance = bal
	f.balances[id] = b
}

func (f *fakeStore) RegisterParty(_ context.Context, kind clearing.PartyKind, id, name string) (postgres.Party, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.errs["RegisterParty"]; err != nil {
		return postgres.Party{}, err
	}
	if _, err := kind.AccountKind(); err != nil {
		return postgres.Party{}, err
	}
	p := postgres.Party{Kind: kind, ID: id, Name: name, Account: clearing.PartyAccount(kind, id)}
	if prior, ok := f.parties[p.Account]; ok && prior.Name != name {
		return postgres.Party{}, fmt.Errorf("%s %q is registered as %q: %w", kind, id, prior.Name, postgres.ErrAccountConflict)
	}
	f.openParty(p)
	return p, nil
}

func (f *fakeStore) SetPartyBank(_ context.Context, kind clearing.PartyKind, id, bank string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.errs["SetPartyBank"]; err != nil {
		return err
	}
	if kind == clearing.PartyBank {
		return errors.New("a bank settles for itself")
	}
	account := clearing.PartyAccount(kind, id)
	_, party := f.parties[account]
	_, known := f.parties[clearing.PartyAccount(clearing.PartyBank, bank)]
	if !party || !known {
		return fmt.Errorf("%s %q or bank %q: %w", kind, id, bank, postgres.ErrNotFound)
	}
	f.partyBanks[account] = bank
	return nil
}

func (f *fakeStore) RegisterPartyBank(_ context.Context, kind clearing.PartyKind, id, bank string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.errs["RegisterPartyBank"]; err != nil {
		return err
	}
	if kind == clearing.PartyBank {
		return errors.New("a bank settles for itself")
	}
	account := clearing.PartyAccount(kind, id)
	_, party := f.parties[account]
	_, known := f.parties[clearing.PartyAccount(clearing.PartyBank, bank)]
	if !party || !known {
		return fmt.Errorf("%s %q or bank %q: %w", kind, id, bank, postgres.ErrNotFound)
	}
	if current, ok := f.partyBanks[account]; ok && current != bank {
		return &postgres.PartyBankConflictError{Kind: kind, ID: id, Current: current}
	}
	f.partyBanks[account] = bank
	return nil
}

// partyBank returns the settlement bank of a party.
func (f *fakeStore) partyBank(kind clearing.PartyKind, id string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.partyBanks[clearing.PartyAccount(kind, id)]
}

func (f *fakeStore) Ping(context.Context) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.errs["Ping"]
}

var _ Store = (*fakeStore)(nil)

// runUntilCleanup runs run (a committer's loop) in the background until the test ends, and waits
// for it to return then.
func runUntilCleanup(t testing.TB, run func(context.Context)) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
}
