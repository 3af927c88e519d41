package postgres_test

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/joinincard/engine/cards"
	"github.com/joinincard/engine/clearing"
	"github.com/joinincard/engine/events"
	"github.com/joinincard/engine/internal/pgtest"
	"github.com/joinincard/engine/ledger"
	"github.com/joinincard/engine/loadtest"
	"github.com/joinincard/engine/postgres"
	"github.com/joinincard/engine/purchases"
)

// purchaseT0 is the purchase tests' clock at start: a weekday morning in Shanghai.
var purchaseT0 = time.Date(2026, time.March, 3, 10, 0, 0, 0, cards.Shanghai)

// shop is a world for purchase tests: a store on a settable clock with registered, funded cards,
// merchants of several categories, and the purchase engine's committer running.
type shop struct {
	t     testing.TB
	st    *postgres.Store
	p     *postgres.Purchases
	city  *loadtest.City
	clock atomic.Int64 // Unix microseconds
	// merchants by label: pharmacy (5912), grocer (5411, the small-merchant plan), hotel (7011),
	// casino (7995)
	merchants map[string]purchases.Merchant
	commits   atomic.Int64 // transactions the committer made
	commitMu  sync.Mutex
	// commitTimes are the committer's transactions' durations, in order.
	commitTimes []time.Duration
	ingested    int64 // offsets given to ingested events
}

// newShop registers n cards, each funded with fund fen.
func newShop(t testing.TB, n int, fund int64) *shop {
	t.Helper()
	return newShopOn(t, pgtest.NewStore(t), n, fund)
}

// newShopOn is newShop on a store of the caller's.
func newShopOn(t testing.TB, st *postgres.Store, n int, fund int64) *shop {
	t.Helper()
	ctx := context.Background()
	s := &shop{t: t, st: st, merchants: map[string]purchases.Merchant{}}
	s.clock.Store(purchaseT0.UnixMicro())
	s.st.Now = func() time.Time { return time.UnixMicro(s.clock.Load()).UTC() }
	s.city = loadtest.NewCity(7, n, 1, purchaseT0.Add(-time.Hour))
	for _, p := range s.city.Parties() {
		if _, err := s.st.RegisterParty(ctx, p.Kind, p.ID, p.Name); err != nil {
			t.Fatal(err)
		}
	}
	s.ingest(append(s.city.Registrations(), s.city.Funding(fund, fund)...)...)

	p, err := postgres.NewPurchases(s.st)
	if err != nil {
		t.Fatal(err)
	}
	p.OnCommit = func(_ int, took time.Duration) {
		s.commits.Add(1)
		s.commitMu.Lock()
		s.commitTimes = append(s.commitTimes, took)
		s.commitMu.Unlock()
	}
	s.p = p
	for _, m := range []purchases.Merchant{
		{ID: "pharmacy-1", Name: "Jiaxing Pharmacy", MCC: "5912", City: "jiaxing", AcquiringBank: "ICBC-JX", FeePlan: "domestic-standard"},
		{ID: "grocer-1", Name: "Corner Grocer", MCC: "5411", City: "jiaxing", AcquiringBank: "ICBC-JX", FeePlan: "domestic-small-merchant"},
		{ID: "shop-1", Name: "Department Store", MCC: "5311", City: "hangzhou", AcquiringBank: "ABC-HZ", FeePlan: "domestic-standard"},
		{ID: "hotel-1", Name: "West Lake Hotel", MCC: "7011", City: "hangzhou", AcquiringBank: "ABC-HZ", FeePlan: "domestic-standard"},
		{ID: "casino-1", Name: "Lucky Games", MCC: "7995", City: "shanghai", AcquiringBank: "BOC-SH", FeePlan: "domestic-standard"},
	} {
		if err := p.RegisterMerchant(ctx, m, sha256.Sum256([]byte("key-"+m.ID))); err != nil {
			t.Fatal(err)
		}
		s.merchants[m.ID] = m
	}
	runCtx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		p.Run(runCtx)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	return s
}

func (s *shop) now() time.Time { return time.UnixMicro(s.clock.Load()).UTC() }

func (s *shop) advance(d time.Duration) { s.clock.Add(d.Microseconds()) }

// ingest applies card events as the consumer would.
func (s *shop) ingest(evs ...events.Event) {
	s.t.Helper()
	d := s.ingestDecision(evs...)
	for _, dl := range d.DeadLetters {
		s.t.Fatalf("event %s refused: %s", dl.EventID, dl.Reason)
	}
}

// ingestDecision applies card events as the consumer would and returns the decision.
func (s *shop) ingestDecision(evs ...events.Event) *clearing.Decision {
	s.t.Helper()
	msgs := make([]clearing.Message, len(evs))
	for i, e := range evs {
		raw := loadtest.Encode(e)
		dec, err := events.Decode(raw)
		if err != nil {
			s.t.Fatalf("event %d does not decode: %v", i, err)
		}
		msgs[i] = clearing.Message{Source: "card-events/0", Offset: s.ingested, Raw: raw, Event: dec}
		s.ingested++
	}
	d, err := s.st.Ingest(context.Background(), nil, msgs)
	if err != nil {
		s.t.Fatal(err)
	}
	return d
}

// funds returns a card's available and posted funds.
func (s *shop) funds(card int) (available, posted int64) {
	s.t.Helper()
	b, err := s.st.Balance(context.Background(), cards.AccountID("funds", s.city.Cards[card]))
	if err != nil {
		s.t.Fatal(err)
	}
	return b.Available(), b.Net()
}

func newKey(t testing.TB) uuid.UUID {
	t.Helper()
	k, err := uuid.NewV7()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// req builds a request of merchant m; the hash is the request's fields, as the HTTP edge's is.
func (s *shop) req(op postgres.Operation, m string, key uuid.UUID, auth ledger.ID, card, amount string) postgres.PurchaseRequest {
	r := postgres.PurchaseRequest{Op: op, Merchant: s.merchants[m], Key: key, AuthorizationID: auth, CardToken: card}
	canonical := amount
	if amount != "" {
		r.Amount, r.AmountErr = purchases.ParseAmount(amount)
		if r.AmountErr == nil {
			canonical = fmt.Sprint(r.Amount) // "200" and "200.00" are one request
		}
	}
	r.Hash = sha256.Sum256(fmt.Appendf(nil, "%s\x00%s\x00%s\x00%s", op, auth, card, canonical))
	return r
}

func (s *shop) do(r postgres.PurchaseRequest) (postgres.PurchaseResult, error) {
	return s.p.Do(context.Background(), r)
}

// event is a card event about card i, happening now on the shop's clock.
func (s *shop) event(i int, data events.Data) events.Event {
	return events.Event{ID: newKey(s.t), Type: data.Type(), OccurredAt: s.now().Truncate(time.Millisecond),
		CardToken: s.city.Cards[i], Data: data}
}

const fen1000 = 100000 // each card's funds in the lifecycle tests: 1,000.00 CNY

// pstep is one request of a lifecycle scenario, with what must come of it.
type pstep struct {
	op       postgres.Operation
	merchant string // "" is pharmacy-1
	auth     string // authorize: the label it gets; the others: the label they act on
	amount   string
	full     bool   // a capture of everything held
	key      string // a label: steps with the same label send the same idempotency key
	card     string // authorize: "" is the scenario's card, or another token
	before   func(s *shop, card int)
	// want is "approved", "declined <reason>", "ok", "refused <code>" or "key reused".
	want     string
	replayed bool
	// available and posted are the card's funds after the step; -1 skips the check.
	available, posted int64
}

func (s *shop) run(t *testing.T, card int, steps []pstep) map[string]ledger.ID {
	t.Helper()
	auths := map[string]ledger.ID{}
	keys := map[string]uuid.UUID{}
	results := map[string]postgres.PurchaseResult{}
	for n, st := range steps {
		if st.before != nil {
			st.before(s, card)
		}
		m := st.merchant
		if m == "" {
			m = "pharmacy-1"
		}
		key, ok := keys[st.key]
		if !ok || st.key == "" {
			key = newKey(t)
			keys[st.key] = key
		}
		token := st.card
		if token == "" {
			token = s.city.Cards[card]
		}
		var req postgres.PurchaseRequest
		if st.op == postgres.OpAuthorize {
			req = s.req(st.op, m, key, ledger.ID{}, token, st.amount)
		} else {
			req = s.req(st.op, m, key, auths[st.auth], "", st.amount)
			req.Full = st.full
		}
		res, err := s.do(req)
		what := fmt.Sprintf("step %d (%s %s %s)", n+1, st.op, st.auth, st.amount)
		got := ""
		var rf *purchases.Refusal
		switch {
		case errors.As(err, &rf):
			got = "refused " + string(rf.Code)
		case errors.Is(err, postgres.ErrIdempotencyKeyReused):
			got = "key reused"
		case err != nil:
			t.Fatalf("%s: %v", what, err)
		case res.Authorization != nil && res.Authorization.Approved:
			got = "approved"
			auths[st.auth] = res.Authorization.ID
		case res.Authorization != nil:
			got = "declined " + string(res.Authorization.Reason)
		case res.Increment != nil && res.Increment.Approved:
			got = "approved"
		case res.Increment != nil:
			got = "declined " + string(res.Increment.Reason)
		default:
			got = "ok"
		}
		if got != st.want {
			t.Fatalf("%s: %s, want %s (%+v)", what, got, st.want, res)
		}
		if err == nil && res.Replayed != st.replayed {
			t.Errorf("%s: replayed %v, want %v", what, res.Replayed, st.replayed)
		}
		if err == nil && st.replayed {
			// A replay answers exactly what the first request with the key answered.
			if first := results[st.key]; fmt.Sprint(deref(first)) != fmt.Sprint(deref(res)) {
				t.Errorf("%s: replay answered\n%+v\nthe first answer was\n%+v", what, deref(res), deref(first))
			}
		} else if err == nil {
			results[st.key] = res
		}
		if st.available >= 0 || st.posted >= 0 {
			av, posted := s.funds(card)
			if st.available >= 0 && av != st.available || st.posted >= 0 && posted != st.posted {
				t.Fatalf("%s: funds available %s posted %s, want %s %s", what, cny(av), cny(posted), cny(st.available), cny(st.posted))
			}
		}
	}
	return auths
}

// deref is a result's content, for comparing answers.
func deref(r postgres.PurchaseResult) any {
	switch {
	case r.Authorization != nil:
		a := *r.Authorization
		return []any{a.ID, a.MerchantID, a.CardToken, a.Amount, a.Decision, a.CreatedAt.UnixMicro(), a.ExpiresAt.UnixMicro()}
	case r.Increment != nil:
		i := *r.Increment
		return []any{i.ID, i.Amount, i.Decision, i.CreatedAt.UnixMicro()}
	case r.Close != nil:
		c := *r.Close
		return []any{c.ID, c.Kind, c.Amount, c.Released, c.Fee, c.Foreign, c.CreatedAt.UnixMicro()}
	case r.Refund != nil:
		f := *r.Refund
		return []any{f.ID, f.Seq, f.Amount, f.RefundedTotal, f.FeeReturned, f.ForeignNet, f.CreatedAt.UnixMicro()}
	}
	return nil
}

func cny(v int64) string { return ledger.FormatAmount(v, "CNY") }

const skip = -1

func TestPurchaseLifecycle(t *testing.T) {
	A, C, V, I, R := postgres.OpAuthorize, postgres.OpCapture, postgres.OpVoid, postgres.OpIncrement, postgres.OpRefund
	scenarios := []struct {
		name  string
		steps []pstep
	}{
		{"approve and capture in full", []pstep{
			{op: A, auth: "a", amount: "120.00", want: "approved", available: 88000, posted: fen1000},
			{op: C, auth: "a", amount: "120.00", want: "ok", available: 88000, posted: 88000},
			{op: C, auth: "a", amount: "1.00", want: "refused conflict", available: 88000, posted: 88000},
		}},
		{"capture partly, the rest released", []pstep{
			{op: A, auth: "a", amount: "300", want: "approved", available: 70000, posted: fen1000},
			{op: C, auth: "a", amount: "250.50", want: "ok", available: 74950, posted: 74950},
		}},
		{"capture more than held", []pstep{
			{op: A, auth: "a", amount: "300.00", want: "approved", available: 70000, posted: fen1000},
			{op: C, auth: "a", amount: "300.01", want: "refused conflict", available: 70000, posted: fen1000},
			{op: C, auth: "a", amount: "0.00", want: "refused invalid", available: 70000, posted: fen1000},
		}},
		{"void releases everything, once", []pstep{
			{op: A, auth: "a", amount: "300.00", want: "approved", available: 70000, posted: fen1000},
			{op: V, auth: "a", want: "ok", available: fen1000, posted: fen1000},
			{op: V, auth: "a", want: "refused conflict", available: fen1000, posted: fen1000},
			{op: C, auth: "a", amount: "10.00", want: "refused conflict", available: fen1000, posted: fen1000},
			{op: R, auth: "a", amount: "10.00", want: "refused conflict", available: fen1000, posted: fen1000},
		}},
		{"expired by the sweep", []pstep{
			{op: A, auth: "a", amount: "300.00", want: "approved", available: 70000, posted: fen1000},
			{op: C, auth: "a", amount: "300.00", want: "refused conflict", available: fen1000, posted: fen1000,
				before: func(s *shop, _ int) { s.advance(purchases.DefaultHoldTimeout + 2*time.Minute); s.sweep() }},
			{op: V, auth: "a", want: "refused conflict", available: fen1000, posted: fen1000},
			{op: A, auth: "b", amount: "300.00", want: "approved", available: 70000, posted: fen1000},
		}},
		{"refunds partial and repeated, never more than captured", []pstep{
			{op: A, auth: "a", amount: "500.00", want: "approved", available: 50000, posted: fen1000},
			{op: R, auth: "a", amount: "1.00", want: "refused conflict", available: 50000, posted: fen1000},
			{op: C, auth: "a", amount: "400.00", want: "ok", available: 60000, posted: 60000},
			{op: R, auth: "a", amount: "100.00", want: "ok", available: 70000, posted: 70000},
			{op: R, auth: "a", amount: "150.00", want: "ok", available: 85000, posted: 85000},
			{op: R, auth: "a", amount: "150.01", want: "refused conflict", available: 85000, posted: 85000},
			{op: R, auth: "a", amount: "150.00", want: "ok", available: fen1000, posted: fen1000},
			{op: R, auth: "a", amount: "0.01", want: "refused conflict", available: fen1000, posted: fen1000},
			{op: R, auth: "a", amount: "-5", want: "refused invalid", available: fen1000, posted: fen1000},
		}},
		{"idempotent retries", []pstep{
			{op: A, auth: "a", key: "k1", amount: "200.00", want: "approved", available: 80000, posted: fen1000},
			{op: A, auth: "a", key: "k1", amount: "200.00", want: "approved", replayed: true, available: 80000, posted: fen1000},
			{op: A, auth: "a", key: "k1", amount: "200", want: "approved", replayed: true, available: 80000, posted: fen1000},
			{op: A, auth: "x", key: "k1", amount: "250.00", want: "key reused", available: 80000, posted: fen1000},
			{op: C, auth: "a", key: "k2", amount: "150.00", want: "ok", available: 85000, posted: 85000},
			{op: C, auth: "a", key: "k2", amount: "150.00", want: "ok", replayed: true, available: 85000, posted: 85000},
			{op: C, auth: "a", key: "k2", amount: "100.00", want: "key reused", available: 85000, posted: 85000},
			{op: R, auth: "a", key: "k3", amount: "50.00", want: "ok", available: 90000, posted: 90000},
			{op: R, auth: "a", key: "k3", amount: "50.00", want: "ok", replayed: true, available: 90000, posted: 90000},
			{op: R, auth: "a", key: "k4", amount: "50.00", want: "ok", available: 95000, posted: 95000},
			{op: V, auth: "a", key: "k2", want: "key reused", available: 95000, posted: 95000},
		}},
		{"a decline is answered the same after the card changes", []pstep{
			{op: A, auth: "a", key: "k1", amount: "2000.00", want: "declined insufficient_funds", available: fen1000, posted: fen1000},
			{op: A, auth: "a", key: "k1", amount: "2000.00", want: "declined insufficient_funds", replayed: true, available: skip, posted: skip,
				before: func(s *shop, card int) {
					s.ingest(s.event(card, &events.FundsLoaded{Amount: events.Money{Minor: fen1000 * 2, Currency: "CNY"}, BankReference: "FT1"}))
				}},
			{op: A, auth: "a", key: "k2", amount: "2000.00", want: "approved", available: fen1000, posted: fen1000 * 3},
		}},
		{"incremental authorization, captured together", []pstep{
			{op: A, merchant: "hotel-1", auth: "a", amount: "500.00", want: "approved", available: 50000, posted: fen1000},
			{op: I, merchant: "hotel-1", auth: "a", amount: "300.00", want: "approved", available: 20000, posted: fen1000},
			{op: I, merchant: "hotel-1", auth: "a", amount: "300.00", want: "declined insufficient_funds", available: 20000, posted: fen1000},
			{op: I, merchant: "hotel-1", auth: "a", amount: "0", want: "declined invalid_amount", available: 20000, posted: fen1000},
			{op: C, merchant: "hotel-1", auth: "a", amount: "800.01", want: "refused conflict", available: 20000, posted: fen1000},
			{op: C, merchant: "hotel-1", auth: "a", amount: "700.00", want: "ok", available: 30000, posted: 30000},
			{op: I, merchant: "hotel-1", auth: "a", amount: "1.00", want: "refused conflict", available: 30000, posted: 30000},
		}},
		{"a full capture takes the increments too", []pstep{
			{op: A, merchant: "hotel-1", auth: "a", amount: "100.00", want: "approved", available: 90000, posted: fen1000},
			{op: I, merchant: "hotel-1", auth: "a", amount: "50.00", want: "approved", available: 85000, posted: fen1000},
			{op: C, merchant: "hotel-1", auth: "a", full: true, want: "ok", available: 85000, posted: 85000},
		}},
		{"an increment voided with its authorization", []pstep{
			{op: A, merchant: "hotel-1", auth: "a", amount: "100.00", want: "approved", available: 90000, posted: fen1000},
			{op: I, merchant: "hotel-1", auth: "a", amount: "50.00", want: "approved", available: 85000, posted: fen1000},
			{op: V, merchant: "hotel-1", auth: "a", want: "ok", available: fen1000, posted: fen1000},
		}},
		{"increments only where the category allows", []pstep{
			{op: A, auth: "a", amount: "100.00", want: "approved", available: 90000, posted: fen1000},
			{op: I, auth: "a", amount: "50.00", want: "refused conflict", available: 90000, posted: fen1000},
		}},
		{"a merchant acts only on its own authorizations", []pstep{
			{op: A, auth: "a", amount: "100.00", want: "approved", available: 90000, posted: fen1000},
			{op: C, merchant: "grocer-1", auth: "a", amount: "100.00", want: "refused not_found", available: 90000, posted: fen1000},
			{op: V, merchant: "grocer-1", auth: "a", want: "refused not_found", available: 90000, posted: fen1000},
			{op: R, merchant: "grocer-1", auth: "nothing", amount: "1.00", want: "refused not_found", available: 90000, posted: fen1000},
		}},
	}
	s := newShop(t, len(scenarios), fen1000)
	for i, sc := range scenarios {
		t.Run(sc.name, func(t *testing.T) { s.run(t, i, sc.steps) })
	}
}

// sweep runs the expiry sweep until it has nothing left, as serve does every ten seconds.
func (s *shop) sweep() {
	s.t.Helper()
	for {
		n, err := s.st.ExpireHolds(context.Background(), 0)
		if err != nil {
			s.t.Fatal(err)
		}
		if n == 0 {
			return
		}
	}
}

func TestAuthorizationDeclines(t *testing.T) {
	A := postgres.OpAuthorize
	setLimits := func(perTx, perDay int64) func(s *shop, card int) {
		return func(s *shop, card int) {
			if _, err := s.p.SetCardLimits(context.Background(), s.city.Cards[card], purchases.Limits{PerTransaction: perTx, PerDay: perDay}); err != nil {
				s.t.Fatal(err)
			}
		}
	}
	status := func(st events.CardStatus) func(s *shop, card int) {
		return func(s *shop, card int) {
			s.ingest(s.event(card, &events.CardStatusChanged{Status: st, Reason: "test"}))
		}
	}
	cases := []struct {
		name  string
		steps []pstep
	}{
		{"insufficient funds", []pstep{
			{op: A, amount: "1000.01", want: "declined insufficient_funds", available: fen1000, posted: fen1000},
			{op: A, amount: "1000.00", want: "approved", available: 0, posted: fen1000},
			{op: A, amount: "0.01", want: "declined insufficient_funds", available: 0, posted: fen1000},
		}},
		{"card blocked", []pstep{
			{op: A, amount: "10.00", want: "declined card_blocked", available: fen1000, posted: fen1000, before: status(events.StatusBlocked)},
			{op: A, amount: "10.00", want: "approved", available: 99000, posted: fen1000, before: status(events.StatusActive)},
		}},
		{"card closed", []pstep{
			{op: A, amount: "10.00", want: "declined card_closed", available: fen1000, posted: fen1000, before: status(events.StatusClosed)},
		}},
		{"permit expired", []pstep{
			{op: A, amount: "10.00", want: "declined permit_expired", available: fen1000, posted: fen1000, before: func(s *shop, card int) {
				s.ingest(s.event(card, &events.CardPermitRenewed{PermitValidUntil: events.Date{Year: 2026, Month: time.March, Day: 2}}))
			}},
		}},
		{"per-transaction limit", []pstep{
			{op: A, amount: "100.01", want: "declined limit_exceeded", available: fen1000, posted: fen1000, before: setLimits(10000, 50000)},
			{op: A, amount: "100.00", want: "approved", available: 90000, posted: fen1000},
		}},
		{"daily limit, counting only what was approved", []pstep{
			{op: A, amount: "300.00", want: "approved", available: 70000, posted: fen1000, before: setLimits(30000, 60000)},
			{op: A, amount: "300.00", want: "approved", available: 40000, posted: fen1000},
			{op: A, amount: "0.01", want: "declined limit_exceeded", available: 40000, posted: fen1000},
			// a new day in Shanghai: the limit starts again, and the ledger has the last word
			{op: A, amount: "300.00", want: "approved", available: 10000, posted: fen1000,
				before: func(s *shop, _ int) { s.advance(14 * time.Hour) }},
			{op: A, amount: "250.00", want: "declined insufficient_funds", available: 10000, posted: fen1000},
			// had the decline counted, 300 + 250 + 100 would pass the 600 of the day
			{op: A, amount: "100.00", want: "approved", available: 0, posted: fen1000},
		}},
		// A void is the merchant's reversal of the authorization, and the part of a capture below
		// what was held is reversed with it: the card's issuer takes neither as spent, and the
		// cardholder may spend it again the same day.
		{"daily limit, without what the merchant released", []pstep{
			{op: A, auth: "a", amount: "300.00", want: "approved", available: 70000, posted: fen1000, before: setLimits(30000, 60000)},
			{op: A, auth: "b", amount: "300.00", want: "approved", available: 40000, posted: fen1000},
			{op: A, amount: "0.01", want: "declined limit_exceeded", available: 40000, posted: fen1000},
			{op: postgres.OpVoid, auth: "a", want: "ok", available: 70000, posted: fen1000},
			{op: A, auth: "c", amount: "300.00", want: "approved", available: 40000, posted: fen1000},
			{op: A, amount: "0.01", want: "declined limit_exceeded", available: 40000, posted: fen1000},
			{op: postgres.OpCapture, auth: "b", amount: "100.00", want: "ok", available: 60000, posted: fen1000 - 10000},
			{op: A, amount: "200.00", want: "approved", available: 40000, posted: fen1000 - 10000},
			{op: A, amount: "0.01", want: "declined limit_exceeded", available: 40000, posted: fen1000 - 10000},
		}},
		{"unknown card", []pstep{
			{op: A, card: "card-nobody", amount: "10.00", want: "declined unknown_card", available: fen1000, posted: fen1000},
			{op: A, card: "6228480402564899", amount: "10.00", want: "declined unknown_card", available: fen1000, posted: fen1000},
		}},
		{"invalid amounts", []pstep{
			{op: A, amount: "0.00", want: "declined invalid_amount", available: fen1000, posted: fen1000},
			{op: A, amount: "-1.00", want: "declined invalid_amount", available: fen1000, posted: fen1000},
			{op: A, amount: "1.234", want: "declined invalid_amount", available: fen1000, posted: fen1000},
			{op: A, amount: "1e3", want: "declined invalid_amount", available: fen1000, posted: fen1000},
			{op: A, amount: "10000000.01", want: "declined invalid_amount", available: fen1000, posted: fen1000},
			{op: A, amount: "99999999999999999999999", want: "declined invalid_amount", available: fen1000, posted: fen1000},
		}},
		{"merchant not allowed", []pstep{
			{op: A, merchant: "casino-1", amount: "10.00", want: "declined merchant_not_allowed", available: fen1000, posted: fen1000},
		}},
	}
	s := newShop(t, len(cases), fen1000)
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) { s.run(t, i, c.steps) })
	}
	// A decline never keeps what the request named in place of a card token.
	recs, err := s.p.Authorizations(context.Background(), "pharmacy-1", ledger.ID{}, postgres.MaxAuthorizationsPage)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range recs {
		if r.Reason == purchases.UnknownCard && r.CardToken != "" {
			t.Errorf("a decline for an unknown card kept the token %q", r.CardToken)
		}
	}
}

// TestFeesAndSavingsInTheLedger captures, refunds and checks where the fees went: from the
// merchant's clearing account to fee income in the capture's linked group, partly back with a
// refund, and what the card saved against a foreign card.
func TestFeesAndSavingsInTheLedger(t *testing.T) {
	s := newShop(t, 1, fen1000)
	ctx := context.Background()
	A, C, R := postgres.OpAuthorize, postgres.OpCapture, postgres.OpRefund
	auths := s.run(t, 0, []pstep{
		{op: A, merchant: "shop-1", auth: "a", amount: "300.00", want: "approved", available: skip, posted: skip},
		{op: C, merchant: "shop-1", auth: "a", amount: "250.00", want: "ok", available: skip, posted: skip},
		{op: R, merchant: "shop-1", auth: "a", amount: "50.00", want: "ok", available: 80000, posted: 80000},
		{op: A, merchant: "pharmacy-1", auth: "b", amount: "100.00", want: "approved", available: skip, posted: skip},
		{op: C, merchant: "pharmacy-1", auth: "b", amount: "100.00", want: "ok", available: 70000, posted: 70000},
	})
	// domestic-standard, general retail: 250.00 pays 0.88 (0.875 half-even) and 0.16 (0.1625);
	// refunding 50.00 leaves 200.00, whose discount is 0.70: 0.18 goes back, the network fee stays.
	// The pharmacy pays nothing.
	balance := func(id ledger.ID) int64 {
		b, err := s.st.Balance(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		return b.Net()
	}
	if got, want := balance(clearing.FeeIncomeAccount), int64(88+16-18); got != want {
		t.Errorf("fee income %s, want %s", cny(got), cny(want))
	}
	if got, want := balance(clearing.PartyAccount(clearing.PartyMerchant, "shop-1")), int64(25000-104-5000+18); got != want {
		t.Errorf("shop's clearing %s, want %s", cny(got), cny(want))
	}
	if got, want := balance(clearing.PartyAccount(clearing.PartyMerchant, "pharmacy-1")), int64(10000); got != want {
		t.Errorf("pharmacy's clearing %s, want %s", cny(got), cny(want))
	}
	rec, err := s.p.Authorization(ctx, "shop-1", auths["a"])
	if err != nil {
		t.Fatal(err)
	}
	if rec.Close.Fee.MerchantDiscount != 88 || rec.Close.Fee.Network != 16 || len(rec.RefundList) != 1 ||
		rec.RefundList[0].FeeReturned.MerchantDiscount != 18 || rec.RefundList[0].FeeReturned.Network != 0 {
		t.Errorf("fees recorded %+v %+v", rec.Close.Fee, rec.RefundList)
	}
	// What a foreign card would have cost: 1.5% of each net purchase, 200.00 and 100.00, and no
	// surcharge (neither is over 200.00): 3.00 + 1.50.
	sv, err := s.p.Savings(ctx, s.city.Cards[0])
	if err != nil {
		t.Fatal(err)
	}
	if sv.Purchases != 2 || sv.Paid != 30000 || sv.Foreign.Surcharge != 0 || sv.Foreign.FXMargin != 450 {
		t.Errorf("savings %+v", sv)
	}
	if _, err := s.p.Authorization(ctx, "pharmacy-1", auths["a"]); !errors.Is(err, postgres.ErrNotFound) {
		t.Errorf("another merchant's authorization: %v", err)
	}
}

// TestClearingCapturesLikeTheAPI captures one authorization through the API and another, on an
// identical card, through a purchase.cleared naming it: the ledger and the records come out the
// same. Then the clearing record of the API's capture is accepted without moving money, one with
// another amount is refused, and refunds of the clearing capture arrive on Kafka too.
func TestClearingCapturesLikeTheAPI(t *testing.T) {
	s := newShop(t, 2, fen1000)
	ctx := context.Background()
	A, C := postgres.OpAuthorize, postgres.OpCapture
	api := s.run(t, 0, []pstep{
		{op: A, merchant: "shop-1", auth: "a", amount: "300.00", want: "approved", available: skip, posted: skip},
		{op: C, merchant: "shop-1", auth: "a", amount: "280.00", want: "ok", available: skip, posted: skip},
	})
	viaKafka := s.run(t, 1, []pstep{
		{op: A, merchant: "shop-1", auth: "a", amount: "300.00", want: "approved", available: skip, posted: skip},
	})
	cleared := func(card int, auth ledger.ID, amount int64) events.Event {
		return s.event(card, &events.PurchaseCleared{MerchantID: "shop-1", Amount: events.Money{Minor: amount, Currency: "CNY"},
			MCC: "5311", AuthorizationID: uuid.UUID(auth)})
	}
	capture := cleared(1, viaKafka["a"], 28000)
	d := s.ingestDecision(capture)
	if len(d.Processed) != 1 || d.Processed[0].Status != clearing.Applied {
		t.Fatalf("clearing capture: %+v %+v", d.Processed, d.DeadLetters)
	}
	for i := 0; i < 2; i++ {
		av, posted := s.funds(i)
		if av != fen1000-28000 || posted != fen1000-28000 {
			t.Errorf("card %d: available %s posted %s", i, cny(av), cny(posted))
		}
	}
	a, err := s.p.Authorization(ctx, "shop-1", api["a"])
	if err != nil {
		t.Fatal(err)
	}
	k, err := s.p.Authorization(ctx, "shop-1", viaKafka["a"])
	if err != nil {
		t.Fatal(err)
	}
	if k.Status(s.now()) != purchases.StatusCaptured || a.Close.Amount != k.Close.Amount || a.Close.Released != k.Close.Released ||
		a.Close.Fee != k.Close.Fee || a.Close.Foreign != k.Close.Foreign {
		t.Errorf("captured through the api %+v, through clearing %+v", *a.Close, *k.Close)
	}

	// The API's capture cleared again: accepted, nothing moves; with another amount: refused.
	d = s.ingestDecision(cleared(0, api["a"], 28000), cleared(0, api["a"], 29000))
	if len(d.Processed) != 2 || d.Processed[0].Status != clearing.Accepted || d.Processed[1].Status != clearing.Rejected {
		t.Errorf("clearing records of an api capture: %+v", d.Processed)
	}
	if av, posted := s.funds(0); av != fen1000-28000 || posted != fen1000-28000 {
		t.Errorf("card 0 after its capture cleared again: available %s posted %s", cny(av), cny(posted))
	}

	// Refunds of the clearing capture: partial, repeated, never more than captured.
	refund := func(amount int64) events.Event {
		return s.event(1, &events.PurchaseRefunded{MerchantID: "shop-1", OriginalEventID: capture.ID, Amount: events.Money{Minor: amount, Currency: "CNY"}})
	}
	d = s.ingestDecision(refund(8000), refund(15000), refund(5001), refund(5000))
	var got []clearing.Status
	for _, p := range d.Processed {
		got = append(got, p.Status)
	}
	if fmt.Sprint(got) != fmt.Sprint([]clearing.Status{clearing.Applied, clearing.Applied, clearing.Rejected, clearing.Applied}) {
		t.Errorf("refunds from clearing: %v %+v", got, d.DeadLetters)
	}
	if av, posted := s.funds(1); av != fen1000 || posted != fen1000 {
		t.Errorf("card 1 after its refunds: available %s posted %s", cny(av), cny(posted))
	}
	k, err = s.p.Authorization(ctx, "shop-1", viaKafka["a"])
	if err != nil {
		t.Fatal(err)
	}
	if k.Refunded != 28000 || len(k.RefundList) != 3 || k.RefundList[2].FeeReturned.MerchantDiscount == 0 {
		t.Errorf("refunded %d in %+v", k.Refunded, k.RefundList)
	}
	// An authorization nobody made, and one of another card.
	d = s.ingestDecision(cleared(1, ledger.ID(newKey(t)), 100), cleared(0, viaKafka["a"], 100))
	for _, p := range d.Processed {
		if p.Status != clearing.Rejected {
			t.Errorf("a clearing record of a foreign authorization: %+v", p)
		}
	}
}

// TestConcurrentAuthorizationsOneCard sends 64 authorizations at once against one card that can
// pay only some of them: the card is never overspent, and every answer agrees with the final
// balance. They share commits rather than taking one each.
func TestConcurrentAuthorizationsOneCard(t *testing.T) {
	const (
		requests = 64
		funds    = 100000 // 1,000.00 CNY
	)
	s := newShop(t, 1, funds)
	amounts := make([]int64, requests)
	for i := range amounts {
		amounts[i] = 1000 + int64(i*137%9000) // 10.00 to 99.99: 64 of them ask for about 3,500.00
	}
	type answer struct {
		amount int64
		a      *purchases.Authorization
		err    error
	}
	answers := make([]answer, requests)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range requests {
		wg.Go(func() {
			<-start
			req := s.req(postgres.OpAuthorize, "pharmacy-1", newKey(t), ledger.ID{}, s.city.Cards[0], purchases.FormatAmount(amounts[i]))
			res, err := s.do(req)
			answers[i] = answer{amount: amounts[i], a: res.Authorization, err: err}
		})
	}
	before := s.commits.Load()
	close(start)
	wg.Wait()
	commits := s.commits.Load() - before

	available, _ := s.funds(0)
	var approved int64
	nApproved := 0
	for i, an := range answers {
		if an.err != nil {
			t.Fatalf("request %d: %v", i, an.err)
		}
		if an.a.Approved {
			approved += an.amount
			nApproved++
		}
	}
	if available < 0 || approved > funds {
		t.Fatalf("overspent: approved %s of %s, available %s", cny(approved), cny(funds), cny(available))
	}
	if funds-approved != available {
		t.Errorf("approved %s but the card has %s of %s available", cny(approved), cny(available), cny(funds))
	}
	for _, an := range answers {
		// The card's available funds only fell during the run: a decline for funds was right if
		// the amount is more than what is left even now.
		if !an.a.Approved && (an.a.Reason != purchases.InsufficientFunds || an.amount <= available) {
			t.Errorf("declined %s for %s with %s still available", cny(an.amount), an.a.Reason, cny(available))
		}
	}
	if nApproved == 0 || nApproved == requests {
		t.Errorf("%d of %d approved: the test should leave the card short", nApproved, requests)
	}
	if commits >= requests {
		t.Errorf("%d requests took %d commits: they were not batched", requests, commits)
	}
	t.Logf("%d approved for %s, %s left, in %d commits", nApproved, cny(approved), cny(available), commits)
}

// TestPipelinedCommitsSendCommitWithWrites: a commit built on the one in flight waits for that
// commit's outcome before it sends its writes, and sends its COMMIT with them, in one round trip:
// no transaction of a stream of concurrent authorizations spends a round trip on its COMMIT
// alone, and every authorization is approved and held once.
func TestPipelinedCommitsSendCommitWithWrites(t *testing.T) {
	const (
		clients = 16
		cardsN  = 64
		// enough is how many attempts that built on a commit in flight the run waits for: each
		// is one that, sending its writes first, would have sent its COMMIT alone.
		enough = 20
		// bound is how long the run may take to see them: seconds of authorizations, each commit
		// a few milliseconds.
		bound = 20 * time.Second
	)
	s := newShop(t, cardsN, 1_000_000)
	stop := time.Now().Add(bound)
	var (
		wg       sync.WaitGroup
		approved atomic.Int64
		failed   atomic.Value
	)
	for c := range clients {
		wg.Go(func() {
			for i := 0; time.Now().Before(stop); i++ {
				if awaited, _ := postgres.PurchaseStats(s.p); awaited >= enough {
					return
				}
				card := s.city.Cards[(c+i*clients)%cardsN]
				res, err := s.do(s.req(postgres.OpAuthorize, "grocer-1", newKey(t), ledger.ID{}, card, "1.00"))
				if err != nil {
					failed.Store(err)
					return
				}
				if !res.Authorization.Approved {
					failed.Store(fmt.Errorf("declined: %s", res.Authorization.Reason))
					return
				}
				approved.Add(1)
			}
		})
	}
	wg.Wait()
	if err, _ := failed.Load().(error); err != nil {
		t.Fatal(err)
	}
	awaited, apart := postgres.PurchaseStats(s.p)
	if awaited < enough {
		t.Fatalf("only %d attempts built on a commit in flight in %s: the pipeline was not exercised", awaited, bound)
	}
	if apart != 0 {
		t.Errorf("%d transactions sent their COMMIT alone (%d attempts built on a commit in flight)", apart, awaited)
	}
	var held int64
	if err := s.st.Pool().QueryRow(context.Background(), `SELECT count(*) FROM open_holds`).Scan(&held); err != nil {
		t.Fatal(err)
	}
	if held != approved.Load() {
		t.Errorf("%d holds open for %d approved authorizations", held, approved.Load())
	}
	t.Logf("%d authorizations, %d attempts waited for the commit in flight, %d commits", approved.Load(), awaited, s.commits.Load())
}

// TestPurchasesStopped: a request after the committer stopped is refused, and applies nothing.
func TestPurchasesStopped(t *testing.T) {
	st := pgtest.NewStore(t)
	p, err := postgres.NewPurchases(st)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		p.Run(ctx)
	}()
	cancel()
	<-done
	_, err = p.Do(context.Background(), postgres.PurchaseRequest{Op: postgres.OpAuthorize, Key: newKey(t)})
	if !errors.Is(err, postgres.ErrPurchasesStopped) {
		t.Errorf("after stop: %v", err)
	}
}

// One merchant's request that the database refuses (a card token with a NUL byte, had the edge
// let it through) shares a commit with other merchants' requests: it fails alone, and every
// other request is answered as if it had not been there.
func TestOneRequestsFaultFailsItAlone(t *testing.T) {
	s := newShop(t, 180, fen1000)
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		approved int
		failed   []error
		badErrs  int
	)
	for i := range 180 {
		wg.Add(2)
		go func() {
			defer wg.Done()
			res, err := s.do(s.req(postgres.OpAuthorize, "shop-1", newKey(t), ledger.ID{}, s.city.Cards[i], "10.00"))
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				failed = append(failed, err)
				return
			}
			if res.Authorization.Approved {
				approved++
			}
		}()
		go func() {
			defer wg.Done()
			_, err := s.do(s.req(postgres.OpAuthorize, "grocer-1", newKey(t), ledger.ID{}, "tok\x00x", "10.00"))
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				badErrs++
			}
		}()
	}
	wg.Wait()
	if len(failed) != 0 || approved != 180 {
		first := error(nil)
		if len(failed) > 0 {
			first = failed[0]
		}
		t.Fatalf("%d of 180 good requests approved; %d failed, the first: %v", approved, len(failed), first)
	}
	if badErrs != 180 {
		t.Fatalf("%d of 180 bad requests failed", badErrs)
	}
}

// Holds expire by one clock: an authorization expires exactly when its hold in the ledger does,
// so the sweep, a capture's plan and the ledger never disagree about it.
func TestAuthorizationExpiresWithItsHold(t *testing.T) {
	s := newShop(t, 1, fen1000)
	res, err := s.do(s.req(postgres.OpAuthorize, "hotel-1", newKey(t), ledger.ID{}, s.city.Cards[0], "100.00"))
	if err != nil || !res.Authorization.Approved {
		t.Fatalf("authorize: %+v, %v", res.Authorization, err)
	}
	a := res.Authorization
	hold, err := s.st.Transfer(context.Background(), a.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got := time.UnixMicro(hold.ExpiresAt()).UTC(); !got.Equal(a.ExpiresAt) {
		t.Fatalf("hold expires at %s, authorization at %s", got, a.ExpiresAt)
	}
	stored, err := s.p.Authorization(context.Background(), "hotel-1", a.ID)
	if err != nil || !stored.ExpiresAt.Equal(a.ExpiresAt) {
		t.Fatalf("stored authorization expires at %s, answered %s: %v", stored.ExpiresAt, a.ExpiresAt, err)
	}
}

// Commits are pipelined: a batch is decided while the one before it commits. A card named by
// another of its tokens in the batch after is judged on the approval of the batch before, even
// while that one is still committing: its daily limit holds.
func TestPipelinedCommitsKeepACardsDailyLimit(t *testing.T) {
	const perDay = 1000 // 10.00 CNY: one authorization of 10.00
	s := newShop(t, 1, 1_000_000)
	ctx := context.Background()
	card := s.city.Cards[0]
	alias := "alias-" + card
	if _, err := s.st.Pool().Exec(ctx, `INSERT INTO card_tokens (token, card_token) VALUES ($1, $2)`, alias, card); err != nil {
		t.Fatal(err)
	}
	if _, err := s.st.Pool().Exec(ctx, `INSERT INTO card_limits (card_token, per_transaction, per_day, updated_at) VALUES ($1, $2, $3, now())`,
		card, perDay, perDay); err != nil {
		t.Fatal(err)
	}
	// The first commit waits, decided and written, until the second request has been decided
	// on top of it.
	inFlight, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	postgres.SetBeforeCommit(s.p, func(reqs []postgres.PurchaseRequest) {
		if len(reqs) == 1 && reqs[0].CardToken == card {
			once.Do(func() {
				close(inFlight)
				select {
				case <-release:
				case <-time.After(10 * time.Second):
				}
			})
		}
	})
	type answer struct {
		res postgres.PurchaseResult
		err error
	}
	first, second := make(chan answer, 1), make(chan answer, 1)
	go func() {
		res, err := s.do(s.req(postgres.OpAuthorize, "grocer-1", newKey(t), ledger.ID{}, card, "10.00"))
		first <- answer{res, err}
	}()
	<-inFlight
	go func() {
		res, err := s.do(s.req(postgres.OpAuthorize, "grocer-1", newKey(t), ledger.ID{}, alias, "10.00"))
		second <- answer{res, err}
	}()
	time.Sleep(300 * time.Millisecond)
	close(release)
	a, b := <-first, <-second
	if a.err != nil || b.err != nil {
		t.Fatalf("first: %v, second: %v", a.err, b.err)
	}
	if !a.res.Authorization.Approved || b.res.Authorization.Approved || b.res.Authorization.Reason != purchases.LimitExceeded {
		t.Errorf("first approved %v; second approved %v, %s: the day allows one", a.res.Authorization.Approved,
			b.res.Authorization.Approved, b.res.Authorization.Reason)
	}
	if available, _ := s.funds(0); available != 1_000_000-perDay {
		t.Errorf("the card has %s available, want %s", cny(available), cny(1_000_000-perDay))
	}
}

// TestRacingClosesOfOneAuthorization: captures and voids of one authorization sent at once, by
// different keys, close it once: exactly one of them succeeds, every other is refused as a
// conflict, and the card's funds show that one close only. One capture sent many times at once
// with one key is applied once, and every copy answers what it did.
func TestRacingClosesOfOneAuthorization(t *testing.T) {
	const racers = 8
	s := newShop(t, 1, fen1000)
	card := s.city.Cards[0]
	for round := range 9 {
		res, err := s.do(s.req(postgres.OpAuthorize, "pharmacy-1", newKey(t), ledger.ID{}, card, "100.00"))
		if err != nil || !res.Authorization.Approved {
			t.Fatalf("round %d: authorize: %v %+v", round, err, res.Authorization)
		}
		auth := res.Authorization.ID
		availBefore, postedBefore := s.funds(0)

		type answer struct {
			op  postgres.Operation
			res postgres.PurchaseResult
			err error
		}
		answers := make([]answer, 2*racers)
		replayKey := newKey(t)
		start := make(chan struct{})
		var wg sync.WaitGroup
		for i := range answers {
			wg.Go(func() {
				<-start
				var req postgres.PurchaseRequest
				switch {
				case round%3 == 2 || round%3 == 1 && i < racers:
					// One capture sent many times with one key: alone, or against eight voids.
					req = s.req(postgres.OpCapture, "pharmacy-1", replayKey, auth, "", "60.00")
				case i < racers:
					req = s.req(postgres.OpCapture, "pharmacy-1", newKey(t), auth, "", "60.00")
				default:
					req = s.req(postgres.OpVoid, "pharmacy-1", newKey(t), auth, "", "")
				}
				res, err := s.do(req)
				answers[i] = answer{op: req.Op, res: res, err: err}
			})
		}
		close(start)
		wg.Wait()

		var captured, voided, conflicts, replays int
		var closeID ledger.ID
		for i, a := range answers {
			var rf *purchases.Refusal
			switch {
			case errors.As(a.err, &rf) && rf.Code == purchases.RefusedConflict:
				conflicts++
			case a.err != nil:
				t.Fatalf("round %d request %d (%s): %v", round, i, a.op, a.err)
			case a.res.Replayed:
				replays++
				if a.res.Close == nil || a.res.Close.ID != closeID && closeID != (ledger.ID{}) {
					t.Errorf("round %d: replay %d answers %+v, not the capture it repeats", round, i, a.res.Close)
				}
			case a.op == postgres.OpCapture:
				captured++
				closeID = a.res.Close.ID
			default:
				voided++
			}
		}
		avail, posted := s.funds(0)
		switch {
		case captured+voided != 1:
			t.Fatalf("round %d: %d captures and %d voids succeeded, want one close", round, captured, voided)
		case captured == 1:
			if avail != availBefore+4000 || posted != postedBefore-6000 {
				t.Errorf("round %d: captured 60.00 of 100.00: available %s posted %s, was %s %s",
					round, cny(avail), cny(posted), cny(availBefore), cny(postedBefore))
			}
		default:
			if avail != availBefore+10000 || posted != postedBefore {
				t.Errorf("round %d: voided 100.00: available %s posted %s, was %s %s",
					round, cny(avail), cny(posted), cny(availBefore), cny(postedBefore))
			}
		}
		t.Logf("round %d: %d captured, %d voided, %d conflicts, %d replays", round, captured, voided, conflicts, replays)
		// Every request is answered: one close, and the others conflicts or replays of a capture
		// that won (a replay of a refused capture is refused again).
		if got := captured + voided + conflicts + replays; got != len(answers) {
			t.Errorf("round %d: %d answers of %d requests", round, got, len(answers))
		}
		copies := map[int]int{0: 1, 1: racers, 2: 2 * racers}[round%3]
		if captured == 1 && replays != copies-1 || voided == 1 && replays != 0 {
			t.Errorf("round %d: %d captured, %d voided, %d replays of a capture sent %d times", round, captured, voided, replays, copies)
		}
		if round%3 == 2 && captured != 1 {
			t.Errorf("round %d: the one capture sent %d times was not applied", round, copies)
		}
	}
}

// secondEngine is another purchase engine on s's database, with a store of its own, as a second
// `joinin serve` process has: its committer runs until the test ends.
func (s *shop) secondEngine(t *testing.T) *postgres.Purchases {
	t.Helper()
	var url string
	if err := s.st.Pool().QueryRow(context.Background(), `SELECT current_database()`).Scan(&url); err != nil {
		t.Fatal(err)
	}
	u, err := pgtest.URLFor(url)
	if err != nil {
		t.Fatal(err)
	}
	st := pgtest.Open(t, u)
	st.Now = s.st.Now
	p, err := postgres.NewPurchases(st)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		p.Run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	return p
}

// A capture, a void or a refund sent with one idempotency key to two engines at once is one
// request, whichever engine commits it first: the other answers it as a replay of what the first
// did, never as a refusal because the authorization it reads was closed by that very request.
// The second engine reads the key (not used yet) and then the first engine commits the request
// before the second decides.
func TestOneKeyOnTwoEnginesIsOneRequest(t *testing.T) {
	s := newShop(t, 1, fen1000)
	card := s.city.Cards[0]
	other := s.secondEngine(t)
	for _, op := range []postgres.Operation{postgres.OpCapture, postgres.OpVoid, postgres.OpRefund} {
		res, err := s.do(s.req(postgres.OpAuthorize, "pharmacy-1", newKey(t), ledger.ID{}, card, "100.00"))
		if err != nil || !res.Authorization.Approved {
			t.Fatalf("%s: authorize: %v %+v", op, err, res.Authorization)
		}
		auth := res.Authorization.ID
		amount := ""
		if op == postgres.OpRefund {
			if _, err := s.do(s.req(postgres.OpCapture, "pharmacy-1", newKey(t), auth, "", "100.00")); err != nil {
				t.Fatalf("capture before the refund: %v", err)
			}
			amount = "100.00"
		}
		if op == postgres.OpCapture {
			amount = "60.00"
		}
		req := s.req(op, "pharmacy-1", newKey(t), auth, "", amount)
		var (
			once  sync.Once
			first postgres.PurchaseResult
			ferr  error
		)
		postgres.SetAfterLoad(other, func(context.Context, pgx.Tx) {
			once.Do(func() { first, ferr = s.do(req) })
		})
		second, err := other.Do(context.Background(), req)
		postgres.SetAfterLoad(other, nil)
		if ferr != nil || first.Replayed {
			t.Fatalf("%s through the first engine: %v, replayed %v", op, ferr, first.Replayed)
		}
		if err != nil || !second.Replayed {
			t.Fatalf("%s with the same key through the second engine: %v, replayed %v; want a replay of the first", op, err, second.Replayed)
		}
		if fmt.Sprint(deref(first)) != fmt.Sprint(deref(second)) {
			t.Errorf("%s: the first engine answered %+v, the second %+v", op, deref(first), deref(second))
		}
	}
}

// Two engines authorizing on one card keep its daily limit between them: an authorization the
// other engine approves after this one read the card's day, and before this one decides, counts.
// The second engine reads the card's limits and day, then the first approves on the card, then
// the second decides.
func TestTwoEnginesKeepACardsDailyLimit(t *testing.T) {
	const perDay = 15000 // 150.00 CNY: one authorization of 100.00, not two
	s := newShop(t, 1, fen1000)
	ctx := context.Background()
	card := s.city.Cards[0]
	if _, err := s.p.SetCardLimits(ctx, card, purchases.Limits{PerTransaction: perDay, PerDay: perDay}); err != nil {
		t.Fatal(err)
	}
	other := s.secondEngine(t)
	var (
		once  sync.Once
		first postgres.PurchaseResult
		ferr  error
	)
	postgres.SetAfterLoad(other, func(context.Context, pgx.Tx) {
		once.Do(func() {
			first, ferr = s.do(s.req(postgres.OpAuthorize, "grocer-1", newKey(t), ledger.ID{}, card, "100.00"))
		})
	})
	second, err := other.Do(ctx, s.req(postgres.OpAuthorize, "grocer-1", newKey(t), ledger.ID{}, card, "100.00"))
	if ferr != nil || err != nil {
		t.Fatalf("first engine: %v, second: %v", ferr, err)
	}
	if !first.Authorization.Approved || second.Authorization.Approved || second.Authorization.Reason != purchases.LimitExceeded {
		t.Errorf("first engine approved %v; second approved %v, %s: the day allows one", first.Authorization.Approved,
			second.Authorization.Approved, second.Authorization.Reason)
	}
	if available, _ := s.funds(0); available != fen1000-10000 {
		t.Errorf("the card has %s available, want %s", cny(available), cny(fen1000-10000))
	}
}

// TestRacingRefundsNeverExceedTheCapture: sixteen refunds of 10.00 sent at once against a
// capture of 100.00 refund exactly 100.00: ten are applied, six refused, and the merchant never
// pays back more than it took.
func TestRacingRefundsNeverExceedTheCapture(t *testing.T) {
	const racers = 16
	s := newShop(t, 1, fen1000)
	res, err := s.do(s.req(postgres.OpAuthorize, "pharmacy-1", newKey(t), ledger.ID{}, s.city.Cards[0], "100.00"))
	if err != nil || !res.Authorization.Approved {
		t.Fatalf("authorize: %v %+v", err, res.Authorization)
	}
	auth := res.Authorization.ID
	if _, err := s.do(s.req(postgres.OpCapture, "pharmacy-1", newKey(t), auth, "", "100.00")); err != nil {
		t.Fatalf("capture: %v", err)
	}
	_, postedBefore := s.funds(0)
	errs := make([]error, racers)
	refunds := make([]*purchases.Refund, racers)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range racers {
		wg.Go(func() {
			<-start
			res, err := s.do(s.req(postgres.OpRefund, "pharmacy-1", newKey(t), auth, "", "10.00"))
			errs[i], refunds[i] = err, res.Refund
		})
	}
	close(start)
	wg.Wait()
	applied, refused := 0, map[purchases.RefusalCode]int{}
	var total int64
	for i, err := range errs {
		var rf *purchases.Refusal
		switch {
		case errors.As(err, &rf):
			refused[rf.Code]++
		case err != nil:
			t.Fatalf("refund %d: %v", i, err)
		default:
			applied++
			total = max(total, refunds[i].RefundedTotal)
		}
	}
	_, posted := s.funds(0)
	if applied != 10 || total != 10000 || posted != postedBefore+10000 {
		t.Errorf("%d refunds applied (refused %v), refunded total %s, the card got back %s; want 10, 100.00, 100.00",
			applied, refused, cny(total), cny(posted-postedBefore))
	}
	t.Logf("%d applied, refused %v", applied, refused)
}

// A purchase commit that reads idempotency keys or authorizations asks PostgreSQL for plans made
// for its own keys (customPlans) for its lookups: they stay index probes on tables that grew after
// a plan was cached (TestLookupPlannedWhileSmallProbesOnceGrown shows the plan it would keep
// otherwise). The usual commit of authorizations reads its cards through a plan made once, with
// scans ruled out (pinnedPlans, TestCardsByTokenPlanPinned). Its last round trip keeps the plans
// PostgreSQL made once (insertPlans) when it only inserts, as an authorization's does, and plans
// for its keys when it also deletes, as a capture's does.
func TestPurchaseCommitsPlanForTheirOwnKeys(t *testing.T) {
	s := newShop(t, 1, fen1000)
	if pg, err := s.st.IsPostgreSQL(context.Background()); err != nil || !pg {
		t.Skipf("PostgreSQL's plan cache: %v", err)
	}
	var mu sync.Mutex
	var lookups, writes []string
	mode := func(ctx context.Context, tx pgx.Tx, into *[]string) {
		var m string
		if err := tx.QueryRow(ctx, `SELECT current_setting('plan_cache_mode') || ' ' || current_setting('enable_seqscan')`).Scan(&m); err != nil {
			t.Error(err)
		}
		mu.Lock()
		*into = append(*into, m)
		mu.Unlock()
	}
	postgres.SetAfterLoad(s.p, func(ctx context.Context, tx pgx.Tx) { mode(ctx, tx, &lookups) })
	postgres.SetBeforeCommitTx(s.p, func(ctx context.Context, tx pgx.Tx, _ []postgres.PurchaseRequest) { mode(ctx, tx, &writes) })
	res, err := s.do(s.req(postgres.OpAuthorize, "pharmacy-1", newKey(t), ledger.ID{}, s.city.Cards[0], "10.00"))
	if err != nil || !res.Authorization.Approved {
		t.Fatalf("authorize: %v %+v", err, res.Authorization)
	}
	if _, err := s.do(s.req(postgres.OpCapture, "pharmacy-1", newKey(t), res.Authorization.ID, "", "10.00")); err != nil {
		t.Fatalf("capture: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	// One attempt of each commit at least: the capture's may start on the authorization's commit
	// still in flight and be decided again once it is done, in an attempt that reads for its keys
	// as well.
	if len(lookups) < 2 || len(writes) < 2 {
		t.Fatalf("%d lookups and %d writes seen, want one of each per commit at least, 2 commits", len(lookups), len(writes))
	}
	if lookups[0] != "force_generic_plan off" {
		t.Errorf("the authorization looked up with plan_cache_mode and enable_seqscan %q, want force_generic_plan off", lookups[0])
	}
	if last := lookups[len(lookups)-1]; last != "force_custom_plan on" {
		t.Errorf("the capture looked up with plan_cache_mode and enable_seqscan %q, want force_custom_plan on", last)
	}
	if m, _, _ := strings.Cut(writes[0], " "); m != "force_generic_plan" {
		t.Errorf("the authorization, inserts only, wrote with plan_cache_mode %q, want force_generic_plan", m)
	}
	if m, _, _ := strings.Cut(writes[len(writes)-1], " "); m != "force_custom_plan" {
		t.Errorf("the capture, which deletes the hold it closes, wrote with plan_cache_mode %q, want force_custom_plan", m)
	}
}

// Commits of authorizations, one after another, plan their cards lookup once per connection,
// not once per commit: PostgreSQL counts the plans it made for each prepared statement.
func TestAuthorizationCommitsPlanTheirCardsLookupOnce(t *testing.T) {
	s := newShop(t, 1, fen1000)
	if pg, err := s.st.IsPostgreSQL(context.Background()); err != nil || !pg {
		t.Skipf("PostgreSQL's plan cache: %v", err)
	}
	var mu sync.Mutex
	var custom, generic int64
	postgres.SetAfterLoad(s.p, func(ctx context.Context, tx pgx.Tx) {
		var c, g int64
		if err := tx.QueryRow(ctx, `SELECT coalesce(sum(custom_plans), 0), coalesce(sum(generic_plans), 0) FROM pg_prepared_statements
			WHERE statement = $1`, postgres.CardsByTokenLookup).Scan(&c, &g); err != nil {
			t.Error(err)
		}
		mu.Lock()
		custom, generic = max(custom, c), max(generic, g)
		mu.Unlock()
	})
	const commits = 8
	for i := range commits {
		res, err := s.do(s.req(postgres.OpAuthorize, "pharmacy-1", newKey(t), ledger.ID{}, s.city.Cards[i%len(s.city.Cards)], "1.00"))
		if err != nil || !res.Authorization.Approved {
			t.Fatalf("authorize %d: %v %+v", i, err, res.Authorization)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	// An attempt decided again (after a commit in flight it built on) reads its keys, and plans
	// for them: a few may, under load.
	if generic <= custom {
		t.Errorf("%d commits made %d plans for their own tokens and reused %d times a plan made once, want the plan reused mostly",
			commits, custom, generic)
	}
}

// Each hold counts on its own day: an increment on the day after its authorization counts on
// that day, and a void or the part of a capture below what was held gives each hold it releases
// back to the day of that hold, the latest holds first, as a capture posts the earliest first.
func TestDailyLimitReleasesEachHoldOnItsOwnDay(t *testing.T) {
	A, I := postgres.OpAuthorize, postgres.OpIncrement
	setLimits := func(s *shop, card int) {
		if _, err := s.p.SetCardLimits(context.Background(), s.city.Cards[card], purchases.Limits{PerTransaction: 60000, PerDay: 60000}); err != nil {
			s.t.Fatal(err)
		}
	}
	nextDay := func(s *shop, _ int) { s.advance(24 * time.Hour) }
	cases := []struct {
		name  string
		steps []pstep
	}{
		{"a void", []pstep{
			{op: A, merchant: "hotel-1", auth: "a", amount: "300.00", want: "approved", available: 170000, posted: 200000, before: setLimits},
			{op: I, merchant: "hotel-1", auth: "a", amount: "200.00", want: "approved", available: 150000, posted: 200000, before: nextDay},
			{op: postgres.OpVoid, merchant: "hotel-1", auth: "a", want: "ok", available: 200000, posted: 200000},
			{op: A, auth: "b", amount: "600.00", want: "approved", available: 140000, posted: 200000},
			{op: A, amount: "0.01", want: "declined limit_exceeded", available: 140000, posted: 200000},
		}},
		{"a partial capture", []pstep{
			{op: A, merchant: "hotel-1", auth: "a", amount: "300.00", want: "approved", available: 170000, posted: 200000, before: setLimits},
			{op: I, merchant: "hotel-1", auth: "a", amount: "200.00", want: "approved", available: 150000, posted: 200000, before: nextDay},
			// 400.00 posts the 300.00 of the first day and 100.00 of the increment: 100.00 of the
			// second day's 200.00 is released
			{op: postgres.OpCapture, merchant: "hotel-1", auth: "a", amount: "400.00", want: "ok", available: 160000, posted: 160000},
			{op: A, auth: "b", amount: "500.00", want: "approved", available: 110000, posted: 160000},
			{op: A, amount: "0.01", want: "declined limit_exceeded", available: 110000, posted: 160000},
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := newShop(t, 1, 2*fen1000)
			s.run(t, 0, c.steps)
		})
	}
}
