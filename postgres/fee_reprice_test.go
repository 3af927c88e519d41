package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/joinincard/engine/cards"
	"github.com/joinincard/engine/clearing"
	"github.com/joinincard/engine/events"
	"github.com/joinincard/engine/fees"
	"github.com/joinincard/engine/ledger"
	"github.com/joinincard/engine/postgres"
	"github.com/joinincard/engine/settlement"
	"github.com/joinincard/engine/tariffs"
)

// feeShop is a shop pricing by tariffs loaded into its store, with helpers to buy and to re-price.
type feeShop struct {
	*shop
	tr *postgres.Tariffs
}

func newFeeShop(t *testing.T, cardsN int) *feeShop {
	t.Helper()
	s := newShop(t, cardsN, fen1000)
	tr, err := s.st.LoadTariffs(context.Background(), builtIn(t))
	if err != nil {
		t.Fatal(err)
	}
	return &feeShop{shop: s, tr: tr}
}

// buy authorizes and captures amount at merchant m on card i and returns the authorization.
func (s *feeShop) buy(t testing.TB, m string, card int, amount string) ledger.ID {
	t.Helper()
	id, err := s.tryBuy(t, m, card, amount)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// tryBuy is buy for a goroutine of its own, which may not stop the test.
func (s *feeShop) tryBuy(t testing.TB, m string, card int, amount string) (ledger.ID, error) {
	res, err := s.do(s.req(postgres.OpAuthorize, m, newKey(t), ledger.ID{}, s.city.Cards[card], amount))
	if err != nil || res.Authorization == nil || !res.Authorization.Approved {
		return ledger.ID{}, fmt.Errorf("authorize %s at %s: %+v %v", amount, m, res.Authorization, err)
	}
	id := res.Authorization.ID
	if _, err := s.do(s.req(postgres.OpCapture, m, newKey(t), id, "", amount)); err != nil {
		return ledger.ID{}, fmt.Errorf("capture %s at %s: %w", amount, m, err)
	}
	return id, nil
}

func (s *feeShop) refund(t testing.TB, m string, id ledger.ID, amount string) fees.Fee {
	t.Helper()
	res, err := s.do(s.req(postgres.OpRefund, m, newKey(t), id, "", amount))
	if err != nil {
		t.Fatalf("refund %s at %s: %v", amount, m, err)
	}
	return res.Refund.FeeReturned
}

// plan is domestic-standard with its general retail merchant discount at rate.
func plan(t *testing.T, rate string) []byte {
	return edit(t, builtIn(t).FeePlans, "domestic-standard.json", `"rate": "0.0035", "cap": "13.00"`, `"rate": "`+rate+`", "cap": "13.00"`)
}

func (s *feeShop) upload(t *testing.T, body []byte, from string, reprice bool) (tariffs.Version, error) {
	t.Helper()
	vs, _, err := s.tr.Upload(context.Background(), tariffs.Upload{Kind: tariffs.FeePlans, Body: body, From: date(from), Reprice: reprice, By: "Wang Li"})
	if err != nil {
		return tariffs.Version{}, err
	}
	return vs[0], nil
}

// reprice works the open re-pricings to their end, limit purchases a step.
func (s *feeShop) reprice(t testing.TB, limit int) []postgres.FeeRepriceReport {
	t.Helper()
	var out []postgres.FeeRepriceReport
	for range 10_000 {
		rep, err := s.st.RepriceFees(context.Background(), limit)
		if err != nil {
			t.Fatal(err)
		}
		if rep.Job == 0 {
			return out
		}
		out = append(out, rep)
	}
	t.Fatal("the re-pricing does not end")
	return nil
}

// paid is what merchant m has paid net on purchase id, by its records: the capture's fee, less
// what refunds returned, plus the adjustments; with the fee its plan's version in force on the
// purchase's date owes on it now.
func (s *feeShop) paid(t testing.TB, m string, id ledger.ID) (paid, owed fees.Fee, rec postgres.AuthorizationRecord) {
	t.Helper()
	rec, err := s.p.Authorization(context.Background(), m, id)
	if err != nil {
		t.Fatal(err)
	}
	paid = rec.Close.Fee
	for _, r := range rec.RefundList {
		paid.MerchantDiscount -= r.FeeReturned.MerchantDiscount
		paid.Network -= r.FeeReturned.Network
	}
	for _, a := range rec.FeeAdjustments {
		paid.MerchantDiscount += a.Fee.MerchantDiscount
		paid.Network += a.Fee.Network
	}
	y, mo, d := rec.CreatedAt.In(cards.Shanghai).Date()
	p, ok := s.tr.FeePlans().PlanOn(s.merchants[m].FeePlan, events.Date{Year: y, Month: mo, Day: d})
	if !ok {
		t.Fatalf("no plan for %s", m)
	}
	owed, err = p.Owed(rec.MCC, rec.Close.Amount, rec.Refunded)
	if err != nil {
		t.Fatal(err)
	}
	return paid, owed, rec
}

func (s *feeShop) balance(t testing.TB, id ledger.ID) int64 {
	t.Helper()
	b, err := s.st.Balance(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return b.Net()
}

// A fee plan version uploaded to take effect two days back re-prices the purchases since by
// adjustments, exact to the fen; a second re-prices from what was last charged; a refund after
// returns by the version that now prices the purchase; the first day's purchases keep their fee.
func TestFeePlanRepricedByAdjustments(t *testing.T) {
	ctx := context.Background()
	s := newFeeShop(t, 2)
	shop1 := clearing.PartyAccount(clearing.PartyMerchant, "shop-1")
	income := clearing.FeeIncomeAccount

	// Tuesday 3 March: before the new version's first day.
	tuesday := s.buy(t, "shop-1", 0, "100.00")
	s.advance(24 * time.Hour)
	// Wednesday 4 March: 100.00; 250.00 refunded 50.00 by the old version; a pharmacy's 80.00.
	a := s.buy(t, "shop-1", 0, "100.00")
	b := s.buy(t, "shop-1", 1, "250.00")
	if back := s.refund(t, "shop-1", b, "50.00"); back.MerchantDiscount != 18 || back.Network != 0 {
		t.Fatalf("refund by the old version returned %+v", back)
	}
	pharmacy := s.buy(t, "pharmacy-1", 1, "80.00")
	s.advance(24 * time.Hour) // Thursday 5 March
	income0, shop0 := s.balance(t, income), s.balance(t, shop1)

	// Without reprice=true, refused naming the field; too far back, refused with the bound.
	if _, err := s.upload(t, plan(t, "0.0050"), "2026-03-04", false); !errors.Is(err, tariffs.ErrInvalid) || !strings.Contains(err.Error(), "reprice=true") {
		t.Fatalf("an upload in the past without reprice: %v", err)
	}
	if _, err := s.upload(t, plan(t, "0.0050"), "2026-02-01", true); !errors.Is(err, tariffs.ErrInvalid) || !strings.Contains(err.Error(), "more than 31 days before today") {
		t.Fatalf("an upload too far back: %v", err)
	}
	v1, err := s.upload(t, plan(t, "0.0050"), "2026-03-04", true)
	if err != nil || !v1.Repriced {
		t.Fatalf("re-priced upload: %+v %v", v1, err)
	}
	reps := s.reprice(t, 0)
	if len(reps) != 1 || reps[0].Job != v1.Seq || reps[0].Purchases != 3 || reps[0].Adjusted != 2 || !reps[0].Finished {
		t.Fatalf("re-pricing %+v", reps)
	}
	// a: 0.35 → 0.50, +0.15. b: 250.00 refunded 50.00 paid 0.88 − 0.18 = 0.70 of discount; 0.50%
	// of the 200.00 kept is 1.00: +0.30. The network fee (retained, same rate) stays. The
	// pharmacy's medical category is zero in both.
	if got := reps[0].Charged; got != 45 {
		t.Fatalf("charged %d fen, want 45", got)
	}
	if got := s.balance(t, income) - income0; got != 45 {
		t.Fatalf("fee income moved %d fen, want 45", got)
	}
	if got := s.balance(t, shop1) - shop0; got != -45 {
		t.Fatalf("the shop's clearing moved %d fen, want -45", got)
	}
	for _, c := range []struct {
		id       ledger.ID
		m        string
		adjusted int
	}{{tuesday, "shop-1", 0}, {a, "shop-1", 1}, {b, "shop-1", 1}, {pharmacy, "pharmacy-1", 0}} {
		paid, owed, rec := s.paid(t, c.m, c.id)
		if paid != owed || len(rec.FeeAdjustments) != c.adjusted {
			t.Fatalf("purchase %s: paid %+v, owed %+v, %d adjustments", c.id, paid, owed, len(rec.FeeAdjustments))
		}
	}
	if _, _, rec := s.paid(t, "shop-1", b); rec.FeeAdjustments[0].Fee != (fees.Fee{MerchantDiscount: 30}) || rec.FeeAdjustments[0].PlanSeq != v1.Seq {
		t.Fatalf("b's adjustment %+v", rec.FeeAdjustments)
	}

	// Again: nothing open, nothing moves. The same upload again adds no job.
	if reps := s.reprice(t, 0); len(reps) != 0 {
		t.Fatalf("a second pass re-priced %+v", reps)
	}
	if _, replayed, err := s.tr.Upload(ctx, tariffs.Upload{Kind: tariffs.FeePlans, Body: plan(t, "0.0050"), From: date("2026-03-04"), Reprice: true, By: "Wang Li"}); err != nil || !replayed {
		t.Fatalf("the same upload again: %v %v", replayed, err)
	}
	if reps := s.reprice(t, 0); len(reps) != 0 || s.balance(t, income)-income0 != 45 {
		t.Fatalf("the replayed upload re-priced %+v", reps)
	}

	// A second version over the same days, 0.40%: adjusted from what was last charged.
	v2, err := s.upload(t, plan(t, "0.0040"), "2026-03-04", true)
	if err != nil {
		t.Fatal(err)
	}
	reps = s.reprice(t, 0)
	// a: 0.50 → 0.40, −0.10; b: 1.00 → 0.80 on 200.00, −0.20.
	if len(reps) != 1 || reps[0].Job != v2.Seq || reps[0].Adjusted != 2 || reps[0].Charged != -30 {
		t.Fatalf("second re-pricing %+v", reps)
	}
	if got := s.balance(t, income) - income0; got != 15 {
		t.Fatalf("fee income moved %d fen in all, want 15", got)
	}
	// A refund now returns by the version that prices the purchase after its adjustments:
	// 100.00 of the 200.00 left, 0.80 − 0.40.
	if back := s.refund(t, "shop-1", b, "100.00"); back.MerchantDiscount != 40 || back.Network != 0 {
		t.Fatalf("refund after re-pricing returned %+v", back)
	}
	for _, id := range []ledger.ID{a, b} {
		if paid, owed, rec := s.paid(t, "shop-1", id); paid != owed || len(rec.FeeAdjustments) != 2 {
			t.Fatalf("purchase %s: paid %+v, owed %+v, %+v", id, paid, owed, rec.FeeAdjustments)
		}
	}

	// The merchant's statement shows each adjustment as a transfer of its own, the originals
	// untouched.
	lines, err := s.st.Statement(ctx, shop1, time.Unix(0, 0), s.now().Add(time.Hour), nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	var charged, back, fee int
	for _, l := range lines {
		switch {
		case l.Code == clearing.CodeMerchantFeeAdjustment && l.DebitAccountID == shop1:
			charged++
		case l.Code == clearing.CodeMerchantFeeAdjustment && l.CreditAccountID == shop1:
			back++
		case l.Code == clearing.CodeMerchantFee && l.DebitAccountID == shop1:
			fee++
		}
	}
	if charged != 2 || back != 2 || fee != 3 {
		t.Fatalf("statement: %d adjustments charged, %d given back, %d capture fees", charged, back, fee)
	}
}

// A re-pricing stopped anywhere (its context cancelled at random points, as a crash would stop
// it) goes on where its last step committed: in the end every purchase is adjusted once, exact.
func TestFeeRepricingSurvivesStops(t *testing.T) {
	s := newFeeShop(t, 4)
	var ids []ledger.ID
	for i := range 40 {
		m := []string{"shop-1", "hotel-1"}[i%2]
		ids = append(ids, s.buy(t, m, i%4, fmt.Sprintf("%d.%02d", 3+i, i*7%100)))
		if i%5 == 0 {
			s.refund(t, m, ids[i], "1.00")
		}
	}
	income0 := s.balance(t, clearing.FeeIncomeAccount)
	s.advance(24 * time.Hour)
	v, err := s.upload(t, plan(t, "0.0125"), "2026-03-03", true)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(20, 21))
	stopped := 0
	for round := 0; ; round++ {
		if round > 1000 {
			t.Fatal("the re-pricing does not end")
		}
		// Two steps in three are stopped at a random point; the third runs to its end, so that
		// the re-pricing ends however slow the machine.
		ctx, cancel := context.WithTimeout(context.Background(), time.Duration(rng.IntN(8000))*time.Microsecond)
		if round%3 == 2 {
			ctx, cancel = context.WithCancel(context.Background())
		}
		rep, err := s.st.RepriceFees(ctx, 3)
		cancel()
		if err != nil {
			if !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, context.Canceled) {
				t.Fatal(err)
			}
			stopped++
			continue
		}
		if rep.Job == 0 {
			break
		}
	}
	if stopped == 0 {
		t.Fatal("no step was stopped: the test proves nothing")
	}
	var want int64
	for i, id := range ids {
		m := []string{"shop-1", "hotel-1"}[i%2]
		paid, owed, rec := s.paid(t, m, id)
		if paid != owed || len(rec.FeeAdjustments) != 1 || rec.FeeAdjustments[0].Job != v.Seq {
			t.Fatalf("purchase %d: paid %+v, owed %+v, adjustments %+v", i, paid, owed, rec.FeeAdjustments)
		}
		want += rec.FeeAdjustments[0].Fee.Total()
	}
	if got := s.balance(t, clearing.FeeIncomeAccount) - income0; got != want || want <= 0 {
		t.Fatalf("fee income moved %d fen, the adjustments say %d", got, want)
	}
	t.Logf("%d steps stopped before they committed", stopped)
}

// Purchases that commit while the upload is accepted and re-priced, from writers that do not
// stop: each is priced by the old version and re-priced, or by the new one, and ends having paid
// the new version's fee exactly, though the re-pricing ran once, at once, while they wrote.
func TestFeeRepricingRacesPurchases(t *testing.T) {
	s := newFeeShop(t, 4)
	s.advance(24 * time.Hour) // Wednesday 4 March; the version re-prices from today
	var (
		mu    sync.Mutex
		ids   []ledger.ID
		stop  atomic.Bool
		wg    sync.WaitGroup
		count atomic.Int64
	)
	for w := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; !stop.Load(); i++ {
				id, err := s.tryBuy(t, "shop-1", w*2+i%2, fmt.Sprintf("%d.%02d", 1+i%9, (i*13+w)%100))
				if err != nil {
					t.Error(err)
					stop.Store(true)
					return
				}
				count.Add(1)
				mu.Lock()
				ids = append(ids, id)
				mu.Unlock()
			}
		}()
	}
	for count.Load() < 10 && !stop.Load() {
		time.Sleep(time.Millisecond)
	}
	v, err := s.upload(t, plan(t, "0.0090"), "2026-03-04", true)
	if err != nil {
		t.Fatal(err)
	}
	// Re-priced at once, while the writers go on, and never again: a purchase the re-pricing
	// did not see must have been priced by the new version.
	reps := s.reprice(t, 0)
	if len(reps) == 0 || reps[0].Job != v.Seq {
		t.Fatalf("re-pricing %+v", reps)
	}
	before := count.Load()
	for count.Load() < before+10 && !stop.Load() {
		time.Sleep(time.Millisecond)
	}
	stop.Store(true)
	wg.Wait()
	adjusted, fresh := 0, 0
	for _, id := range ids {
		paid, owed, rec := s.paid(t, "shop-1", id)
		if paid != owed {
			t.Fatalf("purchase %s: paid %+v, owed %+v (captured fee %+v, adjustments %+v)", id, paid, owed, rec.Close.Fee, rec.FeeAdjustments)
		}
		if len(rec.FeeAdjustments) > 0 {
			adjusted++
		} else {
			fresh++
		}
	}
	if adjusted == 0 || fresh == 0 {
		t.Fatalf("%d purchases adjusted, %d priced by the new version: the race was not run", adjusted, fresh)
	}
	t.Logf("%d purchases: %d priced by the old version and adjusted, %d by the new", len(ids), adjusted, fresh)
}

// A capture decided by the old version whose transaction is still open when the upload comes:
// the upload waits for it to commit, so that the re-pricing that follows finds it. Were the
// upload to commit first and the re-pricing to end before the capture commits, the capture's
// old fee would stand.
func TestFeeRepricingWaitsForCapturesInFlight(t *testing.T) {
	s := newFeeShop(t, 1)
	res, err := s.do(s.req(postgres.OpAuthorize, "shop-1", newKey(t), ledger.ID{}, s.city.Cards[0], "400.00"))
	if err != nil || !res.Authorization.Approved {
		t.Fatalf("authorize: %+v %v", res, err)
	}
	id := res.Authorization.ID
	var armed atomic.Bool
	armed.Store(true)
	inFlight, release := make(chan struct{}), make(chan struct{})
	postgres.SetBeforeCommit(s.p, func(reqs []postgres.PurchaseRequest) {
		if reqs[0].Op == postgres.OpCapture && armed.CompareAndSwap(true, false) {
			close(inFlight)
			<-release
		}
	})
	captured := make(chan error, 1)
	go func() {
		_, err := s.do(s.req(postgres.OpCapture, "shop-1", newKey(t), id, "", "400.00"))
		captured <- err
	}()
	<-inFlight
	uploaded := make(chan error, 1)
	go func() {
		_, err := s.upload(t, plan(t, "0.0090"), "2026-03-03", true)
		uploaded <- err
	}()
	select {
	case err := <-uploaded:
		// The upload did not wait: re-price now, before the capture commits, as a re-pricing
		// running beside the purchases could.
		if err != nil {
			t.Fatal(err)
		}
		s.reprice(t, 0)
		close(release)
		uploaded <- nil
	case <-time.After(300 * time.Millisecond):
		close(release)
	}
	if err := <-captured; err != nil {
		t.Fatal(err)
	}
	if err := <-uploaded; err != nil {
		t.Fatal(err)
	}
	s.reprice(t, 0)
	// 400.00 at 0.35% is 1.40; at 0.90%, 3.60.
	paid, owed, rec := s.paid(t, "shop-1", id)
	if paid != owed || owed.MerchantDiscount != 360 {
		t.Fatalf("paid %+v, owed %+v (captured with %+v, adjustments %+v)", paid, owed, rec.Close.Fee, rec.FeeAdjustments)
	}
}

// A purchase in a settled cycle re-priced the next day: the closed cycle's positions stay as they
// were, and the adjustment is in the next cycle's, in the merchant's item and its bank's fees.
func TestFeeAdjustmentsSettleInTheNextCycle(t *testing.T) {
	ctx := context.Background()
	s := newFeeShop(t, 1)
	s.buy(t, "shop-1", 0, "400.00") // 1.40 and 0.26 at the old version
	tuesday := settlement.Date{Year: 2026, Month: 3, Day: 3}
	s.clock.Store(time.Date(2026, 3, 3, 23, 30, 0, 0, cards.Shanghai).UnixMicro())
	set := newSettlement(t, s.st)
	if _, err := set.Close(ctx, tuesday); err != nil {
		t.Fatal(err)
	}
	closed, err := set.Positions(ctx, tuesday)
	if err != nil {
		t.Fatal(err)
	}
	before := closed.Bank("ABC-HZ")
	if before.Fees != 166 {
		t.Fatalf("Tuesday's fees at ABC-HZ %d, want 166", before.Fees)
	}
	s.clock.Store(time.Date(2026, 3, 4, 10, 0, 0, 0, cards.Shanghai).UnixMicro())
	if _, err := s.upload(t, plan(t, "0.0090"), "2026-03-03", true); err != nil {
		t.Fatal(err)
	}
	if reps := s.reprice(t, 0); len(reps) != 1 || reps[0].Charged != 220 {
		t.Fatalf("re-pricing %+v", reps) // 400.00 at 0.90% is 3.60: 2.20 more
	}
	wednesday := settlement.Date{Year: 2026, Month: 3, Day: 4}
	s.clock.Store(time.Date(2026, 3, 4, 23, 30, 0, 0, cards.Shanghai).UnixMicro())
	if _, err := set.Close(ctx, wednesday); err != nil {
		t.Fatal(err)
	}
	again, err := set.Positions(ctx, tuesday)
	if err != nil {
		t.Fatal(err)
	}
	if again.Bank("ABC-HZ") != before {
		t.Fatalf("the closed cycle changed: %+v, was %+v", again.Bank("ABC-HZ"), before)
	}
	next, err := set.Positions(ctx, wednesday)
	if err != nil {
		t.Fatal(err)
	}
	if p := next.Bank("ABC-HZ"); p.Fees != 220 || p.Earned != -220 || p.Items != 1 {
		t.Fatalf("Wednesday at ABC-HZ: %+v", p)
	}
}

// Another process uploads the version: this one's next capture finds it in the transaction that
// prices it, refreshes, and prices by it, without waiting for the periodic refresh.
func TestCaptureFindsAVersionAnotherProcessUploaded(t *testing.T) {
	ctx := context.Background()
	s := newFeeShop(t, 1)
	res, err := s.do(s.req(postgres.OpAuthorize, "shop-1", newKey(t), ledger.ID{}, s.city.Cards[0], "400.00"))
	if err != nil || !res.Authorization.Approved {
		t.Fatalf("authorize: %+v %v", res, err)
	}
	other := twin(t, s.st)
	tr, err := other.LoadTariffs(ctx, builtIn(t))
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := tr.Upload(ctx, tariffs.Upload{Kind: tariffs.FeePlans, Body: plan(t, "0.0090"), From: date("2026-03-03"), Reprice: true, By: "Wang Li"}); err != nil {
		t.Fatal(err)
	}
	if n := len(s.tr.FeePlans().Versions("domestic-standard")); n != 1 {
		t.Fatalf("this process knew of the version before pricing: %d versions", n)
	}
	c, err := s.do(s.req(postgres.OpCapture, "shop-1", newKey(t), res.Authorization.ID, "", "400.00"))
	if err != nil {
		t.Fatal(err)
	}
	if c.Close.Fee.MerchantDiscount != 360 {
		t.Fatalf("captured with %+v, want the new version's 3.60", c.Close.Fee)
	}
	if reps := s.reprice(t, 0); len(reps) != 1 || reps[0].Purchases != 1 || reps[0].Adjusted != 0 {
		t.Fatalf("re-pricing %+v", reps)
	}
}

// The same from Kafka: a purchase captured by its clearing record is re-priced, and a refund that
// arrives after returns by the version that prices it now.
func TestFeeRepricingOfClearingCaptures(t *testing.T) {
	s := newFeeShop(t, 1)
	res, err := s.do(s.req(postgres.OpAuthorize, "shop-1", newKey(t), ledger.ID{}, s.city.Cards[0], "400.00"))
	if err != nil || !res.Authorization.Approved {
		t.Fatalf("authorize: %+v %v", res, err)
	}
	id := res.Authorization.ID
	capture := s.event(0, &events.PurchaseCleared{MerchantID: "shop-1", Amount: events.Money{Minor: 40000, Currency: "CNY"}, MCC: "5311",
		AuthorizationID: uuid.UUID(id)})
	if d := s.ingestDecision(capture); len(d.Processed) != 1 || d.Processed[0].Status != clearing.Applied {
		t.Fatalf("clearing capture: %+v %+v", d.Processed, d.DeadLetters)
	}
	s.advance(24 * time.Hour)
	if _, err := s.upload(t, plan(t, "0.0090"), "2026-03-03", true); err != nil {
		t.Fatal(err)
	}
	if reps := s.reprice(t, 0); len(reps) != 1 || reps[0].Charged != 220 {
		t.Fatalf("re-pricing %+v", reps) // 1.40 → 3.60
	}
	// 100.00 of 400.00 back: 0.90% of 400.00 less 0.90% of 300.00, 0.90.
	refund := s.event(0, &events.PurchaseRefunded{MerchantID: "shop-1", OriginalEventID: capture.ID, Amount: events.Money{Minor: 10000, Currency: "CNY"}})
	if d := s.ingestDecision(refund); len(d.Processed) != 1 || d.Processed[0].Status != clearing.Applied {
		t.Fatalf("clearing refund: %+v %+v", d.Processed, d.DeadLetters)
	}
	paid, owed, rec := s.paid(t, "shop-1", id)
	if rec.RefundList[0].FeeReturned.MerchantDiscount != 90 || paid != owed || owed.MerchantDiscount != 270 {
		t.Fatalf("refund returned %+v; paid %+v, owed %+v", rec.RefundList[0].FeeReturned, paid, owed)
	}
}
