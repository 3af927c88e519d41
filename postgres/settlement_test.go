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
