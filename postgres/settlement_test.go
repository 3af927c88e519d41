package postgres_test

import (
	"context"
	"testing"
	"time"

	"github.com/joinincard/engine/cards"
	"github.com/joinincard/engine/clearing"
	"github.com/joinincard/engine/events"
	"github.com/joinincard/engine/ledger"
	"github.com/joinincard/engine/postgres"
	"github.com/joinincard/engine/settlement"
	"github.com/joinincard/engine/settlement/calendar"
)

func newSettlement(t *testing.T, st *postgres.Store) *postgres.Settlement {
	t.Helper()
	cal, err := calendar.Load()
	if err != nil {
		t.Fatal(err)
	}
	s, err := postgres.NewSettlement(st, settlement.Cycles{CutoffHour: settlement.DefaultCutoffHour, Calendar: cal})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

type cycleSums struct {
	banks map[string]int64
	held  int64
}

func sumItems(t *testing.T, st *postgres.Store, d settlement.Date) cycleSums {
	t.Helper()
	rows, err := st.Pool().Query(context.Background(), `SELECT bank_id, sum(amount)::BIGINT FROM settlement_items WHERE cycle_date = $1 GROUP BY bank_id`,
		settlement.DateTime(d))
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	s := cycleSums{banks: map[string]int64{}}
	for rows.Next() {
		var (
			bank string
			sum  int64
		)
		if err := rows.Scan(&bank, &sum); err != nil {
			t.Fatal(err)
		}
		if bank == "" {
			s.held = sum
		} else {
			s.banks[bank] = sum
		}
	}
	return s
}

func TestSettlementSmoke(t *testing.T) {
	ctx := context.Background()
	s := newShop(t, 4, fen1000)
	A, C := postgres.OpAuthorize, postgres.OpCapture
	s.run(t, 0, []pstep{
		{op: A, merchant: "shop-1", auth: "a", amount: "300.00", want: "approved", available: skip, posted: skip},
		{op: C, merchant: "shop-1", auth: "a", amount: "280.00", want: "ok", available: skip, posted: skip},
	})
	s.run(t, 1, []pstep{
		{op: A, merchant: "pharmacy-1", auth: "a", amount: "50.00", want: "approved", available: skip, posted: skip},
		{op: C, merchant: "pharmacy-1", auth: "a", amount: "50.00", want: "ok", available: skip, posted: skip},
	})
	s.ingest(s.event(2, &events.PurchaseCleared{MerchantID: s.city.Merchants[0], MCC: "5411", Amount: events.Money{Minor: 1234, Currency: "CNY"}}))
	day := settlement.Date{Year: 2026, Month: 3, Day: 3}
	s.clock.Store(time.Date(2026, 3, 3, 23, 30, 0, 0, cards.Shanghai).UnixMicro())
	set := newSettlement(t, s.st)
	c, err := set.Close(ctx, day)
	if err != nil {
		t.Fatal(err)
	}
	if c.Status != postgres.CycleClosed || c.ValueDate != (settlement.Date{Year: 2026, Month: 3, Day: 4}) {
		t.Fatalf("cycle %+v", c)
	}
	sums := sumItems(t, s.st, day)
	total := sums.held + c.FeeIncome
	for _, v := range sums.banks {
		total += v
	}
	if total != 0 || c.FeeIncome == 0 || sums.held != 1234 {
		t.Fatalf("positions %+v held %d fees %d: sum %d", sums.banks, sums.held, c.FeeIncome, total)
	}
	// Settled merchants' clearing accounts hold nothing; the one without a bank keeps its money.
	for _, m := range []string{"shop-1", "pharmacy-1"} {
		if b := balance(t, s.st, clearing.PartyAccount(clearing.PartyMerchant, m)); b.Net() != 0 {
			t.Errorf("%s holds %d after settlement", m, b.Net())
		}
	}
	if b := balance(t, s.st, clearing.PartyAccount(clearing.PartyMerchant, s.city.Merchants[0])); b.Net() != 1234 {
		t.Errorf("held merchant holds %d", b.Net())
	}
	// Closing again changes nothing.
	again, err := set.Close(ctx, day)
	if err != nil || again.Status != postgres.CycleClosed {
		t.Fatalf("close again: %+v %v", again, err)
	}
	if got := sumItems(t, s.st, day); len(got.banks) != len(sums.banks) {
		t.Fatalf("close again changed items: %+v", got)
	}
	var _ = ledger.Created
}

// Every transfer belongs to exactly one cycle, including one that commits while its cycle is
// closing: a batch stamped before the cut-off that has not committed holds the close back until
// it does, and lands in the cycle; a batch that starts once the cycle's end is fixed is stamped
// after it, and lands in the next.
func TestTransfersCommittingWhileACycleClosesBelongToOneCycle(t *testing.T) {
	ctx := context.Background()
	s := newShop(t, 2, fen1000)
	writer := s.st
	if err := writer.SetPartyBank(ctx, clearing.PartyMerchant, "none", "none"); err == nil {
		t.Fatal("a party bank was set for parties that do not exist")
	}
	day := settlement.Date{Year: 2026, Month: 3, Day: 3}
	cut := time.Date(2026, 3, 3, 23, 0, 0, 0, cards.Shanghai)
	s.clock.Store(cut.Add(-100 * time.Millisecond).UnixMicro())
	closer := twin(t, writer)
	closerNow := cut.Add(time.Second) // a close a second after the cut-off; clocks agree within it
	closer.Now = func() time.Time { return closerNow }
	set := newSettlement(t, closer)
	card := cards.AccountID("funds", s.city.Cards[0])
	shop := clearing.PartyAccount(clearing.PartyMerchant, "shop-1")
	buy := func(amount int64) ledger.Transfer {
		return ledger.Transfer{ID: newID(t), DebitAccountID: card, CreditAccountID: shop, Amount: amount, Code: clearing.CodePurchase}
	}

	applied, release := make(chan struct{}), make(chan struct{})
	var lateTS time.Time
	done := make(chan error, 1)
	go func() {
		done <- writer.InTx(ctx, nil, func(ctx context.Context, tx *postgres.Tx) error {
			res, err := tx.Apply(ctx, []ledger.Transfer{buy(100)})
			if err != nil {
				return err
			}
			lateTS = res.Timestamp
			close(applied)
			<-release
			return nil
		})
	}()
	select {
	case <-applied:
	case err := <-done:
		t.Fatalf("the batch ended before it was held: %v", err)
	}
	closed := make(chan error, 1)
	go func() {
		_, err := set.Close(ctx, day)
		closed <- err
	}()
	select {
	case err := <-closed:
		t.Fatalf("the cycle closed while a batch stamped within it had not committed: %v", err)
	case <-time.After(300 * time.Millisecond):
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if err := <-closed; err != nil {
		t.Fatal(err)
	}
	if !lateTS.Before(cut) {
		t.Fatalf("the batch was stamped %s, after the cut-off", lateTS)
	}
	// In the cycle: the card's item is its spend, the 100 included.
	spent := func(d settlement.Date) int64 {
		var v int64
		if err := writer.Pool().QueryRow(ctx, `SELECT coalesce(sum(amount), 0)::BIGINT FROM settlement_items
			WHERE cycle_date = $1 AND account_id = $2`, settlement.DateTime(d), [16]byte(card)).Scan(&v); err != nil {
			t.Fatal(err)
		}
		return v
	}
	if got := spent(day); got != -100 {
		t.Fatalf("card's item in %s: %d, want -100", day, got)
	}
	// A batch once the end is fixed is stamped after it, whatever its clock says, and belongs to
	// the next cycle.
	res := commit(t, writer, nil, buy(250))
	if !res.Timestamp.After(cut) {
		t.Fatalf("a batch after the close was stamped %s, within the closed cycle", res.Timestamp)
	}
	next := settlement.AddDays(day, 1)
	closerNow = cut.Add(24*time.Hour + time.Minute)
	if _, err := set.Close(ctx, next); err != nil {
		t.Fatal(err)
	}
	if got := spent(next); got != -250 {
		t.Fatalf("card's item in %s: %d, want -250", next, got)
	}
	if got := spent(day); got != -100 {
		t.Fatalf("card's item in %s changed to %d", day, got)
	}
}
