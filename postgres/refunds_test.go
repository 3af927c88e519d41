package postgres_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/google/uuid"

	"github.com/joinincard/engine/cards"
	"github.com/joinincard/engine/clearing"
	"github.com/joinincard/engine/events"
	"github.com/joinincard/engine/postgres"
	"github.com/joinincard/engine/purchases"
)

// statuses lists what became of each event of a decision, with the reason of a refusal.
func statusesOf(d *clearing.Decision) string {
	var out []string
	for _, p := range d.Processed {
		s := string(p.Status)
		if p.Status == clearing.Rejected {
			s += "(" + p.Reason + ")"
		}
		out = append(out, s)
	}
	return strings.Join(out, " ")
}

// plainPurchase is a purchase.cleared naming no authorization, of card i at the city's first
// merchant.
func (s *shop) plainPurchase(i int, amount int64) events.Event {
	return s.event(i, &events.PurchaseCleared{MerchantID: s.city.Merchants[0], Amount: events.Money{Minor: amount, Currency: "CNY"}, MCC: "5411"})
}

func (s *shop) refundOf(purchase events.Event, amount int64) events.Event {
	i := 0
	for i < len(s.city.Cards) && s.city.Cards[i] != purchase.CardToken {
		i++
	}
	return s.event(i, &events.PurchaseRefunded{MerchantID: purchase.Data.(*events.PurchaseCleared).MerchantID,
		OriginalEventID: purchase.ID, Amount: events.Money{Minor: amount, Currency: "CNY"}})
}

func (s *shop) merchantNet() int64 {
	s.t.Helper()
	b, err := s.st.Balance(context.Background(), clearing.PartyAccount(clearing.PartyMerchant, s.city.Merchants[0]))
	if err != nil {
		s.t.Fatal(err)
	}
	return b.Net()
}

// A purchase cleared without an authorization takes refunds item by item from Kafka, in one
// batch or many, until they add up to the purchase; one more is refused with its reason, and a
// refund delivered again is applied once.
func TestClearedPurchaseTakesRepeatedPartialRefundsFromKafka(t *testing.T) {
	s := newShop(t, 2, fen1000)
	buy := s.plainPurchase(0, 10000)
	s.ingest(buy)
	first := s.refundOf(buy, 3000)
	if got := statusesOf(s.ingestDecision(first)); got != "applied" {
		t.Fatalf("first refund: %s", got)
	}
	if got := statusesOf(s.ingestDecision(s.refundOf(buy, 2000), s.refundOf(buy, 4000))); got != "applied applied" {
		t.Fatalf("two more refunds in one batch: %s", got)
	}
	over := s.refundOf(buy, 1001)
	d := s.ingestDecision(over, s.refundOf(buy, 1000), s.refundOf(buy, 1))
	if got := statusesOf(d); got != "rejected(refund of 10.01 CNY exceeds the 10.00 CNY purchased and not yet refunded) applied "+
		"rejected(refund of 0.01 CNY exceeds the 0.00 CNY purchased and not yet refunded)" {
		t.Fatalf("refunds past the purchase: %s", got)
	}
	if len(d.DeadLetters) != 2 || d.DeadLetters[0].EventID != over.ID || !strings.Contains(d.DeadLetters[0].Reason, "exceeds") {
		t.Fatalf("dead letters %+v", d.DeadLetters)
	}
	// The first refund again: a duplicate, nothing moves.
	if d := s.ingestDecision(first); d.Duplicates != 1 || len(d.Processed) != 0 {
		t.Fatalf("redelivered refund: %+v", d)
	}
	if _, posted := s.funds(0); posted != fen1000 {
		t.Errorf("card after its purchase and refunds: %s, want %s", cny(posted), cny(fen1000))
	}
	if got := s.merchantNet(); got != 0 {
		t.Errorf("merchant after the refunds: %s", cny(got))
	}

	// A purchase and its refunds in one batch; a purchase the card may not be charged (over what
	// a terminal may charge offline, and over the card's funds) and a refund of it.
	again := s.plainPurchase(0, 5000)
	tooDear := s.plainPurchase(1, 2*fen1000)
	d = s.ingestDecision(again, s.refundOf(again, 500), tooDear, s.refundOf(again, 600), s.refundOf(tooDear, 100),
		s.refundOf(again, 3901))
	// A reason is redacted as a whole, and the purchase's id (a UUIDv7, its first digits the
	// time) may hold a run of digits that reads as a card number.
	if got := statusesOf(d); got != "applied applied rejected(offline purchase of 2000.00 CNY is over the 1000.00 CNY a terminal may approve offline) applied rejected("+
		events.RedactText("original purchase "+tooDear.ID.String()+" was not applied")+") rejected(refund of 39.01 CNY exceeds the 39.00 CNY purchased and not yet refunded)" {
		t.Fatalf("a purchase and its refunds in one batch: %s", got)
	}
	if _, posted := s.funds(0); posted != fen1000-5000+1100 {
		t.Errorf("card 0: %s", cny(posted))
	}
	if _, posted := s.funds(1); posted != fen1000 {
		t.Errorf("card 1, whose purchase was refused, got a refund: %s", cny(posted))
	}

	// Another merchant, another card's purchase, and a purchase that is not one.
	wrongMerchant := s.refundOf(again, 100)
	wrongMerchant.Data.(*events.PurchaseRefunded).MerchantID = "shop-1"
	wrongCard := s.refundOf(again, 100)
	wrongCard.CardToken = s.city.Cards[1]
	load := s.city.Funding(100, 100)[0]
	s.ingest(load)
	notAPurchase := s.refundOf(again, 100)
	notAPurchase.Data.(*events.PurchaseRefunded).OriginalEventID = load.ID
	d = s.ingestDecision(wrongMerchant, wrongCard, notAPurchase)
	for i, want := range []string{"another merchant", "another card", "not a purchase"} {
		if p := d.Processed[i]; p.Status != clearing.Rejected || !strings.Contains(p.Reason, want) {
			t.Errorf("refund %d: %s %q, want rejected with %q", i, p.Status, p.Reason, want)
		}
	}
}

// Refunds of one purchase committed by concurrent consumers never add up to more than the
// purchase.
func TestConcurrentClearedRefundsNeverExceedThePurchase(t *testing.T) {
	const (
		writers = 8
		each    = 3000
	)
	s := newShop(t, 1, fen1000)
	buy := s.plainPurchase(0, 10000)
	s.ingest(buy)
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		applied int
	)
	for i := range writers {
		r := s.refundOf(buy, each)
		wg.Go(func() {
			msgs := messages(t, fmt.Sprintf("card-events/%d", i+1), 0, r)
			d, err := s.st.Ingest(context.Background(), nil, msgs)
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			defer mu.Unlock()
			if d.Processed[0].Status == clearing.Applied {
				applied++
			}
		})
	}
	wg.Wait()
	if applied != 10000/each {
		t.Errorf("%d refunds of %s applied, want %d", applied, cny(each), 10000/each)
	}
	if _, posted := s.funds(0); posted != fen1000-10000+int64(applied)*each {
		t.Errorf("card: %s after %d refunds", cny(posted), applied)
	}
}

// A purchase captured through the authorization API, whose clearing record came after, is
// refunded from Kafka and over HTTP at once: every refund is judged against the others, none
// passes what was captured, and the merchant's fee comes back in proportion either way.
func TestRefundsOfAnAPIPurchaseFromKafkaAndHTTPAtOnce(t *testing.T) {
	const (
		each = 2000
		n    = 10 // per door: 20 refunds of 20.00 against 300.00 captured
	)
	s := newShop(t, 1, fen1000)
	A, C := postgres.OpAuthorize, postgres.OpCapture
	auths := s.run(t, 0, []pstep{
		{op: A, merchant: "shop-1", auth: "a", amount: "300.00", want: "approved", available: skip, posted: skip},
		{op: C, merchant: "shop-1", auth: "a", amount: "300.00", want: "ok", available: skip, posted: skip},
	})
	record := s.event(0, &events.PurchaseCleared{MerchantID: "shop-1", Amount: events.Money{Minor: 30000, Currency: "CNY"},
		MCC: "5311", AuthorizationID: uuid.UUID(auths["a"])})
	if got := statusesOf(s.ingestDecision(record)); got != "accepted" {
		t.Fatalf("the clearing record of the api's capture: %s", got)
	}
	var (
		wg               sync.WaitGroup
		mu               sync.Mutex
		viaKafka, viaAPI int
	)
	for i := range n {
		r := s.event(0, &events.PurchaseRefunded{MerchantID: "shop-1", OriginalEventID: record.ID, Amount: events.Money{Minor: each, Currency: "CNY"}})
		wg.Go(func() {
			d, err := s.st.Ingest(context.Background(), nil, messages(t, fmt.Sprintf("card-events/%d", i+1), 0, r))
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			defer mu.Unlock()
			switch p := d.Processed[0]; {
			case p.Status == clearing.Applied:
				viaKafka++
			case !strings.Contains(p.Reason, "exceeds"):
				t.Errorf("kafka refund refused for %q", p.Reason)
			}
		})
		wg.Go(func() {
			_, err := s.do(s.req(postgres.OpRefund, "shop-1", newKey(t), auths["a"], "", purchases.FormatAmount(each)))
			mu.Lock()
			defer mu.Unlock()
			if err == nil {
				viaAPI++
			} else if !strings.Contains(err.Error(), "exceeds") {
				t.Errorf("api refund: %v", err)
			}
		})
	}
	wg.Wait()
	if viaKafka+viaAPI != 30000/each || viaKafka == 0 {
		t.Errorf("%d refunds from kafka and %d over http, want %d in all, some from kafka", viaKafka, viaAPI, 30000/each)
	}
	rec, err := s.p.Authorization(context.Background(), "shop-1", auths["a"])
	if err != nil {
		t.Fatal(err)
	}
	if rec.Refunded != 30000 || len(rec.RefundList) != 30000/each {
		t.Errorf("refunded %s in %d refunds", cny(rec.Refunded), len(rec.RefundList))
	}
	var feeBack int64
	for _, r := range rec.RefundList {
		feeBack += r.FeeReturned.Total()
	}
	if feeBack == 0 || feeBack > rec.Close.Fee.Total() {
		t.Errorf("fees returned %s of %s charged", cny(feeBack), cny(rec.Close.Fee.Total()))
	}
	if _, posted := s.funds(0); posted != fen1000 {
		t.Errorf("card after everything came back: %s", cny(posted))
	}
	if b, err := s.st.Balance(context.Background(), cards.AccountID("funds", s.city.Cards[0])); err != nil || b.DebitsPending != 0 {
		t.Errorf("card holds %+v %v", b, err)
	}
}

// Verify finds refunds of a cleared purchase that add up to more than the purchase.
func TestVerifyFindsRefundsPastTheirPurchase(t *testing.T) {
	s := newShop(t, 1, fen1000)
	buy := s.plainPurchase(0, 10000)
	refund := s.refundOf(buy, 6000)
	s.ingest(buy)
	s.ingest(refund)
	ctx := context.Background()
	pool := s.st.Pool()
	// A second refund row claiming what was never moved, as a broken writer would leave it.
	if _, err := pool.Exec(ctx, `INSERT INTO cleared_refunds (original_event_id, seq, event_id, amount, refunded_total, transfer_id, created_at)
		SELECT original_event_id, 2, $2, 6000, 12000, transfer_id, created_at FROM cleared_refunds WHERE original_event_id = $1`,
		buy.ID, newKey(t)); err != nil {
		t.Fatal(err)
	}
	rep, err := s.st.Verify(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Problems) != 1 || !strings.Contains(rep.Problems[0], "refunds of a cleared purchase exceed it") ||
		!strings.Contains(rep.Problems[0], buy.ID.String()) {
		t.Fatalf("problems %q", rep.Problems)
	}
	// Put the table back as the ledger is, for the verification at the end of the test.
	for _, q := range []string{`ALTER TABLE cleared_refunds DISABLE TRIGGER cleared_refunds_immutable`,
		`DELETE FROM cleared_refunds WHERE seq = 2`, `ALTER TABLE cleared_refunds ENABLE TRIGGER cleared_refunds_immutable`} {
		if _, err := pool.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
}
