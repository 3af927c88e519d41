package postgres_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/joinincard/engine/cards"
	"github.com/joinincard/engine/clearing"
	"github.com/joinincard/engine/events"
	"github.com/joinincard/engine/internal/pgtest"
	"github.com/joinincard/engine/ledger"
	"github.com/joinincard/engine/loadtest"
	"github.com/joinincard/engine/postgres"
	"github.com/joinincard/engine/settlement"
	"github.com/joinincard/engine/settlement/calendar"
)

// edgeWorld is two banks, a merchant banking with the second, and two cards of the first, on a
// settable clock.
type edgeWorld struct {
	st     *postgres.Store
	clock  *settableClock
	city   *loadtest.City
	set    *postgres.Settlement
	offset int64
}

func newEdgeWorld(t *testing.T, start time.Time) *edgeWorld {
	t.Helper()
	ctx := context.Background()
	w := &edgeWorld{st: pgtest.NewStore(t), clock: &settableClock{now: start}}
	w.st.Now = w.clock.Now
	w.city = loadtest.NewCity(5, 2, 1, start)
	w.city.Banks = []string{"ISS", "ACQ"}
	for _, p := range w.city.Parties() {
		if _, err := w.st.RegisterParty(ctx, p.Kind, p.ID, p.Name); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.st.SetPartyBank(ctx, clearing.PartyMerchant, w.city.Merchants[0], "ACQ"); err != nil {
		t.Fatal(err)
	}
	w.city.Banks = []string{"ISS"} // both cards issued by ISS
	w.ingest(t, append(w.city.Registrations(), w.city.Funding(100_000_00, 100_000_00)...)...)
	w.set = newSettlement(t, w.st)
	return w
}

func (w *edgeWorld) ingest(t *testing.T, evs ...events.Event) {
	t.Helper()
	d, err := w.st.Ingest(context.Background(), nil, messages(t, "card-events/0", w.offset, evs...))
	if err != nil {
		t.Fatal(err)
	}
	w.offset += int64(len(evs))
	for _, dl := range d.DeadLetters {
		t.Fatalf("refused: %s", dl.Reason)
	}
}

// buy has card i buy amount fen at the merchant, now.
func (w *edgeWorld) buy(t *testing.T, i int, amount int64) {
	t.Helper()
	w.ingest(t, events.Event{ID: uuid.Must(uuid.NewV7()), Type: events.TypePurchaseCleared, OccurredAt: w.clock.Now().Truncate(time.Millisecond),
		CardToken: w.city.Cards[i], Data: &events.PurchaseCleared{MerchantID: w.city.Merchants[0], MCC: "5411",
			Amount: events.Money{Minor: amount, Currency: "CNY"}}})
}

func (w *edgeWorld) spent(t *testing.T, d settlement.Date, card int) int64 {
	t.Helper()
	var v int64
	if err := w.st.Pool().QueryRow(context.Background(), `SELECT coalesce(sum(amount), 0)::BIGINT FROM settlement_items
		WHERE cycle_date = $1 AND account_id = $2`, settlement.DateTime(d), [16]byte(cards.AccountID("funds", w.city.Cards[card]))).Scan(&v); err != nil {
		t.Fatal(err)
	}
	return -v
}

// A transfer stamped a microsecond before the cut-off belongs to the day; one a microsecond after,
// to the next.
func TestSettlementCutoffEdges(t *testing.T) {
	ctx := context.Background()
	day := settlement.Date{Year: 2026, Month: 3, Day: 3}
	cut := time.Date(2026, 3, 3, 23, 0, 0, 0, cards.Shanghai)
	w := newEdgeWorld(t, cut.Add(-time.Hour))
	w.clock.Set(cut.Add(-time.Microsecond))
	w.buy(t, 0, 101)
	w.clock.Set(cut)
	w.buy(t, 1, 202)
	w.clock.Set(cut.Add(time.Microsecond))
	w.buy(t, 0, 303)
	var stamps []time.Time
	rows, err := w.st.Pool().Query(ctx, `SELECT ts FROM transfers WHERE code = $1 ORDER BY ts`, int32(clearing.CodePurchase))
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var ts time.Time
		if err := rows.Scan(&ts); err != nil {
			t.Fatal(err)
		}
		stamps = append(stamps, ts)
	}
	rows.Close()
	if len(stamps) != 3 || !stamps[0].Equal(cut.Add(-time.Microsecond)) || !stamps[1].Equal(cut) || !stamps[2].Equal(cut.Add(time.Microsecond)) {
		t.Fatalf("purchases stamped %v", stamps)
	}
	w.clock.Set(cut.Add(time.Minute))
	if _, err := w.set.Close(ctx, day); err != nil {
		t.Fatal(err)
	}
	if a, b := w.spent(t, day, 0), w.spent(t, day, 1); a != 101 || b != 202 {
		t.Fatalf("cycle %s: card 0 spent %d, card 1 %d; want 101 and 202", day, a, b)
	}
	next := settlement.AddDays(day, 1)
	w.clock.Set(cut.Add(24*time.Hour + time.Minute))
	if _, err := w.set.Close(ctx, next); err != nil {
		t.Fatal(err)
	}
	if a := w.spent(t, next, 0); a != 303 {
		t.Fatalf("cycle %s: card 0 spent %d, want 303", next, a)
	}
	// A cycle whose cut-off has not come is not closed; closed ones close again to nothing new.
	if _, err := w.set.Close(ctx, settlement.AddDays(next, 1)); !errorsIsNotOver(err) {
		t.Fatalf("closing a cycle before its cut-off: %v", err)
	}
}

func errorsIsNotOver(err error) bool {
	return err != nil && (err == postgres.ErrCycleNotOver || containsErr(err, postgres.ErrCycleNotOver))
}

func containsErr(err, target error) bool {
	for e := err; e != nil; {
		if e == target {
			return true
		}
		u, ok := e.(interface{ Unwrap() error })
		if !ok {
			return false
		}
		e = u.Unwrap()
	}
	return false
}

// The National Day holiday: the cycles of Sep 30 and of Oct 1 to 7 share the value date Oct 8;
// closed in one run, in order, each bank's files are numbered without a gap.
func TestSettlementHolidayRunSharesOneValueDate(t *testing.T) {
	ctx := context.Background()
	w := newEdgeWorld(t, time.Date(2026, 9, 29, 12, 0, 0, 0, cards.Shanghai))
	for d := 29; d <= 38; d++ { // Sep 29 to Oct 8
		w.clock.Set(time.Date(2026, 9, d, 12, 0, 0, 0, cards.Shanghai))
		w.buy(t, d%2, int64(1000+d))
	}
	last := settlement.Date{Year: 2026, Month: 10, Day: 8}
	w.clock.Set(time.Date(2026, 10, 8, 23, 30, 0, 0, cards.Shanghai))
	if _, err := w.set.Close(ctx, last); err != nil {
		t.Fatal(err)
	}
	cycles, err := w.set.ListCycles(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(cycles) != 10 {
		t.Fatalf("%d cycles closed, want Sep 29 to Oct 8", len(cycles))
	}
	for i, c := range cycles {
		d := c.Date
		want := settlement.Date{Year: 2026, Month: 10, Day: 8}
		switch {
		case d == (settlement.Date{Year: 2026, Month: 9, Day: 29}):
			want = settlement.Date{Year: 2026, Month: 9, Day: 30}
		case d == last:
			want = settlement.Date{Year: 2026, Month: 10, Day: 9}
		}
		if c.ValueDate != want || c.Status != postgres.CycleClosed {
			t.Errorf("cycle %s: value date %s, %s; want %s", d, c.ValueDate, c.Status, want)
		}
		for _, bank := range []string{"ISS", "ACQ"} {
			f, err := w.set.File(ctx, bank, d)
			if err != nil {
				t.Fatal(err)
			}
			if seq := int64(len(cycles) - i); f.Header.Sequence != seq || f.Header.ValueDate != c.ValueDate {
				t.Errorf("%s's file of %s: sequence %d, value date %s; want %d", bank, d, f.Header.Sequence, f.Header.ValueDate, seq)
			}
		}
		day := d.Day
		if d.Month == 10 {
			day += 30
		}
		if got := w.spent(t, d, day%2); got != int64(1000+day) {
			t.Errorf("cycle %s: %d spent, want %d", d, got, 1000+day)
		}
	}
	// A cycle whose value date is beyond the calendar is refused, naming the year.
	w.clock.Set(time.Date(2027, 1, 1, 12, 0, 0, 0, cards.Shanghai))
	_, err = w.set.Close(ctx, settlement.Date{Year: 2026, Month: 12, Day: 31})
	if err == nil || !containsText(err.Error(), "2027") {
		t.Fatalf("a value date past the calendar: %v", err)
	}
	var _ = ledger.Created
}

func containsText(s, sub string) bool {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return true
		}
	}
	return false
}

// The cut-off hour changed between two closes (23:00, then 18:00): the next cycle runs from the
// last cut-off to the new one, and the one after from the new cut-off, so that nothing is left
// out or settled twice. Before, every later close was refused, cycles in order, for good.
func TestSettlementCutoffHourChanged(t *testing.T) {
	ctx := context.Background()
	day := settlement.Date{Year: 2026, Month: 3, Day: 3}
	cut := time.Date(2026, 3, 3, 23, 0, 0, 0, cards.Shanghai)
	w := newEdgeWorld(t, cut.Add(-time.Hour))
	w.buy(t, 0, 101)
	w.clock.Set(cut.Add(time.Minute))
	if _, err := w.set.Close(ctx, day); err != nil {
		t.Fatal(err)
	}
	cal, err := calendar.Load()
	if err != nil {
		t.Fatal(err)
	}
	at18, err := postgres.NewSettlement(w.st, settlement.Cycles{CutoffHour: 18, Calendar: cal})
	if err != nil {
		t.Fatal(err)
	}
	w.clock.Set(cut.Add(2 * time.Minute)) // 23:02 on the 3rd: the 4th's cycle, under either hour
	w.buy(t, 0, 202)
	w.clock.Set(time.Date(2026, 3, 4, 17, 59, 0, 0, cards.Shanghai))
	w.buy(t, 1, 303)
	w.clock.Set(time.Date(2026, 3, 4, 18, 1, 0, 0, cards.Shanghai)) // after the new cut-off: the 5th's
	w.buy(t, 0, 404)
	next := settlement.AddDays(day, 1)
	c, err := at18.Close(ctx, next)
	if err != nil {
		t.Fatalf("close %s after the cut-off hour changed: %v", next, err)
	}
	if !c.StartsAfter.Equal(cut) || !c.EndsAt.Equal(time.Date(2026, 3, 4, 18, 0, 0, 0, cards.Shanghai)) {
		t.Errorf("cycle %s runs from %s to %s, want from the 3rd's 23:00 to the 4th's 18:00", next, c.StartsAfter, c.EndsAt)
	}
	if a, b := w.spent(t, next, 0), w.spent(t, next, 1); a != 202 || b != 303 {
		t.Errorf("cycle %s: card 0 spent %d, card 1 %d; want 202 and 303", next, a, b)
	}
	after := settlement.AddDays(next, 1)
	w.clock.Set(time.Date(2026, 3, 5, 18, 1, 0, 0, cards.Shanghai))
	if _, err := at18.Close(ctx, after); err != nil {
		t.Fatal(err)
	}
	if a := w.spent(t, after, 0); a != 404 {
		t.Errorf("cycle %s: card 0 spent %d, want 404", after, a)
	}
}

// A registration naming a settlement bank records it for a party that has none, changes nothing
// for a party that has it, and leaves a party settled by another bank as it is. Two registrations
// of one party naming different banks at once: one bank is recorded, the other registration is
// refused with the bank recorded.
func TestRegisteringAPartyBankNeverMovesAPartyToAnotherBank(t *testing.T) {
	ctx := context.Background()
	w := newEdgeWorld(t, time.Date(2026, 3, 3, 10, 0, 0, 0, cards.Shanghai))
	merchant := "kiosk-9"
	if _, err := w.st.RegisterParty(ctx, clearing.PartyMerchant, merchant, "West Lake kiosk"); err != nil {
		t.Fatal(err)
	}
	banks := []string{"ISS", "ACQ"}
	errs := make(chan error, len(banks))
	for _, b := range banks {
		go func() { errs <- w.st.RegisterPartyBank(ctx, clearing.PartyMerchant, merchant, b) }()
	}
	var refused *postgres.PartyBankConflictError
	for range banks {
		err := <-errs
		switch {
		case errors.As(err, &refused):
		case err != nil:
			t.Fatal(err)
		}
	}
	if refused == nil {
		t.Fatal("both registrations were answered as if each bank were the merchant's")
	}
	var current string
	if err := w.st.Pool().QueryRow(ctx, `SELECT bank_id FROM party_banks WHERE account_id = $1`,
		[16]byte(clearing.PartyAccount(clearing.PartyMerchant, merchant))).Scan(&current); err != nil {
		t.Fatal(err)
	}
	if refused.Current != current {
		t.Errorf("refused naming bank %q, the merchant is settled by %q", refused.Current, current)
	}
	if err := w.st.RegisterPartyBank(ctx, clearing.PartyMerchant, merchant, current); err != nil {
		t.Errorf("the same bank again: %v", err)
	}
	if err := w.st.RegisterPartyBank(ctx, clearing.PartyMerchant, w.city.Merchants[0], "ISS"); !errors.As(err, &refused) || refused.Current != "ACQ" {
		t.Errorf("a merchant settled by ACQ registered with ISS: %v", err)
	}
	if err := w.st.RegisterPartyBank(ctx, clearing.PartyMerchant, "nobody", "ISS"); !errors.Is(err, postgres.ErrNotFound) {
		t.Errorf("a merchant not registered: %v", err)
	}
}

// Every change of a party's settlement bank is kept, from which bank to which and when, in a
// history no one can edit: the first bank set, each change, never the same bank set again.
func TestPartyBankChangesAreKept(t *testing.T) {
	ctx := context.Background()
	start := time.Date(2026, 3, 3, 10, 0, 0, 0, cards.Shanghai)
	w := newEdgeWorld(t, start)
	merchant := w.city.Merchants[0] // set to ACQ by the world
	w.clock.Set(start.Add(time.Hour))
	if err := w.st.SetPartyBank(ctx, clearing.PartyMerchant, merchant, "ISS"); err != nil {
		t.Fatal(err)
	}
	if err := w.st.SetPartyBank(ctx, clearing.PartyMerchant, merchant, "ISS"); err != nil {
		t.Fatal(err)
	}
	rows, err := w.st.Pool().Query(ctx, `SELECT from_bank, to_bank, changed_at FROM party_bank_changes WHERE account_id = $1
		ORDER BY changed_at`, [16]byte(clearing.PartyAccount(clearing.PartyMerchant, merchant)))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for rows.Next() {
		var from, to string
		var at time.Time
		if err := rows.Scan(&from, &to, &at); err != nil {
			t.Fatal(err)
		}
		got = append(got, from+">"+to+"@"+at.In(cards.Shanghai).Format("15:04"))
	}
	rows.Close()
	if want := []string{">ACQ@10:00", "ACQ>ISS@11:00"}; !slices.Equal(got, want) {
		t.Errorf("changes kept %q, want %q", got, want)
	}
	if _, err := w.st.Pool().Exec(ctx, `DELETE FROM party_bank_changes`); err == nil {
		t.Error("the history of bank changes was deleted")
	}
}
