package postgres_test

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/joinincard/engine/cards"
	"github.com/joinincard/engine/clearing"
	"github.com/joinincard/engine/events"
	"github.com/joinincard/engine/internal/pgtest"
	"github.com/joinincard/engine/ledger"
	"github.com/joinincard/engine/loadtest"
	"github.com/joinincard/engine/medical"
	"github.com/joinincard/engine/postgres"
)

// medWorld is a city with its cards registered (card 0 insured in Jiaxing, card 1 in Hangzhou,
// which has no policy, card 2 in Shanghai), a hospital and a pharmacy registered as institutions,
// on its own database whose ledger pgtest verifies when the test ends.
type medWorld struct {
	st       *postgres.Store
	med      *postgres.Medical
	clock    *settableClock
	city     *loadtest.City
	hospital medical.Institution // tier 3, Jiaxing
	pharmacy medical.Institution // tier 1, Jiaxing
	offset   int64
}

func newMedWorld(t *testing.T, at time.Time) *medWorld {
	t.Helper()
	ctx := context.Background()
	w := &medWorld{st: pgtest.NewStore(t), clock: &settableClock{now: at}}
	w.st.Now = w.clock.Now
	policies, err := medical.SamplePolicies()
	if err != nil {
		t.Fatal(err)
	}
	w.med = postgres.NewMedical(w.st, policies).WithCatalogues(classCatalogues(t))
	w.city = loadtest.NewCity(61, 3, 2, at.Add(-time.Hour))
	registerParties(t, w.st, w.city)
	w.ingest(t, w.city.Registrations()...)
	w.hospital = w.register(t, medical.Institution{ID: w.city.Merchants[0], Kind: medical.Hospital, Tier: 3, City: "jiaxing"}, "hospital-key")
	w.pharmacy = w.register(t, medical.Institution{ID: w.city.Merchants[1], Kind: medical.PharmacyOutlet, Tier: 1, City: "jiaxing"}, "pharmacy-key")
	if _, err := w.st.Card(ctx, w.city.Cards[0]); err != nil {
		t.Fatalf("card 0 not registered: %v", err)
	}
	return w
}

func (w *medWorld) register(t *testing.T, in medical.Institution, key string) medical.Institution {
	t.Helper()
	got, created, err := w.med.RegisterInstitution(context.Background(), in, sha256.Sum256([]byte(key)))
	if err != nil || !created {
		t.Fatalf("register %s: created %v, %v", in.ID, created, err)
	}
	return got
}

// ingest applies events as the Kafka consumer would, one batch, and fails on any rejection.
func (w *medWorld) ingest(t *testing.T, evs ...events.Event) {
	t.Helper()
	msgs := messages(t, "medical-test/0", w.offset, evs...)
	w.offset += int64(len(msgs))
	d, err := w.st.Ingest(context.Background(), nil, msgs)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range d.Processed {
		if p.Status == clearing.Rejected {
			t.Fatalf("event %s rejected: %s", p.Type, p.Reason)
		}
	}
}

func (w *medWorld) fund(t *testing.T, card int, fen int64) {
	t.Helper()
	e := w.city.Funding(fen, fen)[card]
	w.ingest(t, e)
}

func (w *medWorld) contribute(t *testing.T, card int, fen int64) events.Event {
	t.Helper()
	e := w.city.Contribution(w.city.Cards[card], fen)
	w.ingest(t, e)
	return e
}

func (w *medWorld) net(t *testing.T, id ledger.ID) int64 {
	t.Helper()
	b, err := w.st.Balance(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return b.Net()
}

func (w *medWorld) card(t *testing.T, i int) *cards.Card {
	t.Helper()
	c, err := w.st.Card(context.Background(), w.city.Cards[i])
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// classCatalogues are catalogues of Jiaxing and Shanghai with one item of each class, coded by
// its class ("A", "B", "C"), class B without a share of its own: a bill of them splits as the
// policy splits a basket of those classes.
func classCatalogues(t testing.TB) func() *medical.Catalogues {
	t.Helper()
	var list []*medical.Catalogue
	for _, city := range []string{"jiaxing", "shanghai"} {
		c, err := medical.ParseCatalogue([]byte(`{"city": "` + city + `", "name": "one item of each class", "currency": "CNY", "items": [
			{"code": "A", "kind": "drug", "name_zh": "甲", "name_en": "class A", "class": "A"},
			{"code": "B", "kind": "service", "name_zh": "乙", "name_en": "class B", "class": "B"},
			{"code": "C", "kind": "consumable", "name_zh": "丙", "name_en": "class C", "class": "C"}]}`))
		if err != nil {
			t.Fatal(err)
		}
		list = append(list, c)
	}
	cs, err := medical.NewCatalogues(list...)
	if err != nil {
		t.Fatal(err)
	}
	return func() *medical.Catalogues { return cs }
}

// basket reads "A300", "B86.94", "C50" as bill lines of one unit of the classCatalogues item of
// that class, at that price in yuan.
func basket(t testing.TB, visit medical.VisitKind, spec ...string) medical.Bill {
	t.Helper()
	b := medical.Bill{VisitKind: visit}
	for _, s := range spec {
		fen, err := medical.ParseAmount(s[1:])
		if err != nil {
			t.Fatal(err)
		}
		b.Lines = append(b.Lines, medical.BillLine{Code: s[:1], Quantity: 1, UnitPrice: fen})
	}
	return b
}

func wantRefusal(t *testing.T, err error, reason medical.Reason) {
	t.Helper()
	var r *medical.Refusal
	if !errors.As(err, &r) || r.Reason != reason {
		t.Fatalf("got %v, want a refusal %s", err, reason)
	}
}

// snapshot is what a refused request must leave unchanged.
type snapshot struct {
	balances map[ledger.ID]int64
	acc      medical.Accumulators
}

func (w *medWorld) snapshot(t *testing.T, card int, ids ...ledger.ID) snapshot {
	t.Helper()
	s := snapshot{balances: map[ledger.ID]int64{}}
	for _, id := range ids {
		s.balances[id] = w.net(t, id)
	}
	y, err := w.med.CardYear(context.Background(), w.city.Cards[card], medical.DayOf(w.clock.Now()).Year)
	if err != nil {
		t.Fatal(err)
	}
	s.acc = y.Accumulators
	return s
}

func sameSnapshot(a, b snapshot) bool {
	return maps.Equal(a.balances, b.balances) && maps.Equal(a.acc.Deductible, b.acc.Deductible) && maps.Equal(a.acc.Fund, b.acc.Fund)
}

// TestMedicalFlow walks one Jiaxing cardholder through contributions, a quote, a settlement and
// its replay, refusals that must change nothing, a cancellation the same day, a reversal the next,
// and the fund's reconciliation of both days.
func TestMedicalFlow(t *testing.T) {
	day1 := time.Date(2026, 3, 2, 10, 0, 0, 0, cards.Shanghai)
	w := newMedWorld(t, day1)
	ctx := context.Background()
	card := w.card(t, 0)
	fundAcct := clearing.PartyAccount(clearing.PartyInsuranceFund, "jiaxing")
	all := []ledger.ID{card.MedicalAccount, card.FundsAccount, fundAcct, w.hospital.Account, w.pharmacy.Account}

	// Two monthly contributions credit the personal account from the fund; a redelivered one
	// is applied once.
	first := w.contribute(t, 0, 250_00)
	w.contribute(t, 0, 250_00)
	w.ingest(t, first)
	if got := w.net(t, card.MedicalAccount); got != 500_00 {
		t.Fatalf("personal account %d after two contributions, want 50000", got)
	}
	w.fund(t, 0, 2_000_00)

	// 1500 at a tier 3 hospital, nothing met yet: deductible 1000, 60% of 500 = 300 to the fund,
	// the cardholder's 1200 paid 500 by the personal account and 700 in cash.
	b := basket(t, medical.Outpatient, "A1200", "B300")
	before := w.snapshot(t, 0, all...)
	q, err := w.med.Quote(ctx, w.hospital, card.Token, b)
	if err != nil {
		t.Fatal(err)
	}
	// B300: 30 self-pay; eligible 1470: deductible 1000; 60% of 470 = 282 to the fund.
	if q.Split.Fund != 282_00 || q.Split.Personal != 500_00 || q.Split.Cash != 718_00 {
		t.Fatalf("quote %+v", q.Split)
	}
	if !sameSnapshot(before, w.snapshot(t, 0, all...)) {
		t.Fatal("a quote changed balances or accumulators")
	}

	s, replayed, err := w.med.Settle(ctx, w.hospital, "HIS-0001", card.Token, b)
	if err != nil || replayed {
		t.Fatalf("settle: replayed %v, %v", replayed, err)
	}
	if s.Split.Fund != q.Split.Fund || s.Split.Personal != q.Split.Personal || s.Split.Cash != q.Split.Cash {
		t.Errorf("settled %+v, quoted %+v", s.Split, q.Split)
	}
	if s.PersonalBalanceAfter != 0 || s.FundsAvailableAfter != 2_000_00-718_00 || s.Day != medical.DayOf(day1) || s.PolicyID != "jiaxing-2026" {
		t.Errorf("receipt %+v", s)
	}
	if w.net(t, w.hospital.Account) != 1500_00 || w.net(t, fundAcct) != before.balances[fundAcct]-282_00 ||
		w.net(t, card.FundsAccount) != 2_000_00-718_00 || w.net(t, card.MedicalAccount) != 0 {
		t.Errorf("ledger after the settlement: hospital %d, fund %d, funds %d, personal %d", w.net(t, w.hospital.Account),
			w.net(t, fundAcct), w.net(t, card.FundsAccount), w.net(t, card.MedicalAccount))
	}
	for _, id := range []ledger.ID{s.FundTransfer, s.PersonalTransfer, s.CashTransfer} {
		tr, err := w.st.Transfer(ctx, id)
		if err != nil || tr.CreditAccountID != w.hospital.Account || tr.UserData != ledger.ID(s.ID) {
			t.Errorf("leg %s: %+v, %v", id, tr, err)
		}
	}
	year, err := w.med.CardYear(ctx, card.Token, 2026)
	if err != nil || year.Accumulators.Deductible["outpatient"] != 1000_00 || year.Accumulators.Fund["outpatient"] != 282_00 || year.Accumulators.Fund["total"] != 282_00 {
		t.Fatalf("accumulators %+v, %v", year.Accumulators, err)
	}

	// The same settlement id and request again: the same receipt, nothing applied twice.
	again, replayed, err := w.med.Settle(ctx, w.hospital, "HIS-0001", card.Token, b)
	if err != nil || !replayed || again.ID != s.ID || again.Split.Cash != s.Split.Cash || !again.SettledAt.Equal(s.SettledAt) {
		t.Fatalf("replay: replayed %v, %+v, %v", replayed, again, err)
	}
	// The same id with another request is refused; so is another institution's view of it.
	settled := w.snapshot(t, 0, all...)
	_, _, err = w.med.Settle(ctx, w.hospital, "HIS-0001", card.Token, basket(t, medical.Outpatient, "A1200", "B301"))
	wantRefusal(t, err, medical.ReasonSettlementIDReused)
	_, err = w.med.Settlement(ctx, w.pharmacy, "HIS-0001")
	wantRefusal(t, err, medical.ReasonUnknownSettlement)

	// Refusals that change nothing: a cash part the funds cannot pay, a visit kind the
	// institution does not settle, a card insured where no policy exists, an unknown card.
	big := basket(t, medical.Outpatient, "C5000")
	_, _, err = w.med.Settle(ctx, w.hospital, "HIS-0002", card.Token, big)
	wantRefusal(t, err, medical.ReasonInsufficientFunds)
	_, _, err = w.med.Settle(ctx, w.pharmacy, "PH-1", card.Token, b)
	wantRefusal(t, err, medical.ReasonVisitKindNotAllowed)
	_, _, err = w.med.Settle(ctx, w.hospital, "HIS-0003", w.city.Cards[1], b)
	wantRefusal(t, err, medical.ReasonNoPolicy)
	_, _, err = w.med.Settle(ctx, w.hospital, "HIS-0003", "card-nobody", b)
	wantRefusal(t, err, medical.ReasonUnknownCard)
	if !sameSnapshot(settled, w.snapshot(t, 0, all...)) {
		t.Fatal("a refused settlement changed balances or accumulators")
	}
	// The insufficient one was not recorded: once the card has funds, the same id settles.
	w.fund(t, 0, 5_000_00)
	cashOnly, _, err := w.med.Settle(ctx, w.hospital, "HIS-0002", card.Token, big)
	if err != nil || cashOnly.Split.Cash != 5000_00 || !cashOnly.FundTransfer.IsZero() || !cashOnly.PersonalTransfer.IsZero() {
		t.Fatalf("cash-only settlement after funding: %+v, %v", cashOnly, err)
	}

	// Cancel HIS-0001 the same day: every part back, the accumulators as before it.
	withBoth := w.snapshot(t, 0, all...)
	c, replayed, err := w.med.End(ctx, w.hospital, "HIS-0001", medical.Cancelled, "wrong patient")
	if err != nil || replayed || c.Status() != "cancelled" || c.End.Day != medical.DayOf(day1) {
		t.Fatalf("cancel: %+v, %v", c, err)
	}
	if got := w.net(t, card.MedicalAccount); got != 500_00 || c.End.PersonalBalanceAfter != 500_00 {
		t.Errorf("personal account %d after the cancellation (receipt %d), want 50000", got, c.End.PersonalBalanceAfter)
	}
	if got := w.net(t, fundAcct); got != withBoth.balances[fundAcct]+282_00 {
		t.Errorf("fund %d after the cancellation", got)
	}
	year, _ = w.med.CardYear(ctx, card.Token, 2026)
	if year.Accumulators.Deductible["outpatient"] != 0 || year.Accumulators.Fund["total"] != 0 {
		t.Errorf("accumulators after the cancellation %+v", year.Accumulators)
	}
	if _, replayed, err := w.med.End(ctx, w.hospital, "HIS-0001", medical.Cancelled, "again"); err != nil || !replayed {
		t.Errorf("cancel again: replayed %v, %v", replayed, err)
	}
	_, _, err = w.med.End(ctx, w.hospital, "HIS-0001", medical.Reversed, "too")
	wantRefusal(t, err, medical.ReasonAlreadyCancelled)
	_, _, err = w.med.End(ctx, w.hospital, "HIS-0002", medical.Reversed, "same day")
	wantRefusal(t, err, medical.ReasonDayOpen)

	// A third settlement at the pharmacy, then the next day: cancelling is too late, reversing
	// gives the parts back and restores the accumulators.
	ph, _, err := w.med.Settle(ctx, w.pharmacy, "PH-0001", card.Token, basket(t, medical.Pharmacy, "A1200"))
	if err != nil {
		t.Fatal(err)
	}
	day2 := day1.Add(24 * time.Hour)
	w.clock.Set(day2)
	_, _, err = w.med.End(ctx, w.pharmacy, "PH-0001", medical.Cancelled, "late")
	wantRefusal(t, err, medical.ReasonDayClosed)
	yearBefore, _ := w.med.CardYear(ctx, card.Token, 2026)
	r, _, err := w.med.End(ctx, w.pharmacy, "PH-0001", medical.Reversed, "returned unopened")
	if err != nil || r.Status() != "reversed" || r.End.Day != medical.DayOf(day2) {
		t.Fatalf("reverse: %+v, %v", r, err)
	}
	yearAfter, _ := w.med.CardYear(ctx, card.Token, 2026)
	restored, err := yearBefore.Accumulators.Minus(ph.Split.Delta)
	if err != nil || !maps.Equal(restored.Deductible, yearAfter.Accumulators.Deductible) || !maps.Equal(restored.Fund, yearAfter.Accumulators.Fund) {
		t.Errorf("accumulators after the reversal %+v, want %+v", yearAfter.Accumulators, restored)
	}
	if w.net(t, w.pharmacy.Account) != 0 {
		t.Errorf("pharmacy clearing %d after the reversal, want 0", w.net(t, w.pharmacy.Account))
	}

	// Day 1 counts HIS-0002 and PH-0001 (reversed later, but settled that day), not the
	// cancelled HIS-0001; day 2 counts the reversal, negatively.
	t1, err := w.med.Reconciliation(ctx, "jiaxing", medical.DayOf(day1))
	if err != nil {
		t.Fatal(err)
	}
	if !t1.Closed || t1.All.Settlements != 2 || t1.All.Cancelled != 1 || t1.All.Reversals != 0 ||
		t1.All.Total != 5000_00+1200_00 || t1.All.Fund != ph.Split.Fund || t1.All.Cash != 5000_00+ph.Split.Cash {
		t.Errorf("day 1 totals %+v", t1)
	}
	if len(t1.Institutions) != 2 || t1.Institutions[0].Institution != w.hospital.ID || t1.Institutions[0].Cancelled != 1 {
		t.Errorf("day 1 by institution %+v", t1.Institutions)
	}
	t2, err := w.med.Reconciliation(ctx, "jiaxing", medical.DayOf(day2))
	if err != nil {
		t.Fatal(err)
	}
	if t2.Closed || t2.All.Reversals != 1 || t2.All.Settlements != 0 || t2.All.Total != -1200_00 || t2.All.Fund != -ph.Split.Fund {
		t.Errorf("day 2 totals %+v", t2)
	}
	for _, d := range []medical.DayTotals{t1, t2} {
		checkDetail(t, w.med, d)
	}
	_, err = w.med.Reconciliation(ctx, "atlantis", medical.DayOf(day1))
	wantRefusal(t, err, medical.ReasonUnknownFund)
}

// checkDetail checks that a day's detail lines sum to its totals.
func checkDetail(t *testing.T, med *postgres.Medical, d medical.DayTotals) {
	t.Helper()
	var sum medical.Totals
	err := med.Detail(context.Background(), d.Fund, d.Day, func(l medical.DetailLine) error {
		if l.Fund+l.Personal+l.Cash != l.Total {
			t.Errorf("detail line %+v does not add up", l)
		}
		line := medical.Totals{Total: l.Total, Fund: l.Fund, Personal: l.Personal, Cash: l.Cash}
		switch l.Kind {
		case medical.LineReversal:
			line.Reversals = 1
		case medical.LineRefund:
			line.Refunds = 1
		case medical.LineStayAdjustment:
			line.TrueUps = 1
		default:
			line.Settlements = 1
		}
		sum.Add(line)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sum.Cancelled = d.All.Cancelled
	if sum != d.All {
		t.Errorf("%s %s: detail sums to %+v, totals say %+v", d.Fund, d.Day, sum, d.All)
	}
}

// TestMedicalYearBoundary settles either side of midnight on New Year's Eve in Shanghai: each
// under its own year's policy and accumulators, and a reversal in the new year of a settlement of
// the old restores the old year's accumulators.
func TestMedicalYearBoundary(t *testing.T) {
	eve := time.Date(2025, 12, 31, 23, 50, 0, 0, cards.Shanghai)
	w := newMedWorld(t, eve)
	ctx := context.Background()
	card := w.card(t, 0)
	w.fund(t, 0, 10_000_00)
	w.contribute(t, 0, 100_00)

	// 2025: the personal account pays first (100), then the 1200 deductible takes the rest.
	old, _, err := w.med.Settle(ctx, w.hospital, "Y-2025", card.Token, basket(t, medical.Outpatient, "A1000"))
	if err != nil {
		t.Fatal(err)
	}
	if old.PolicyID != "jiaxing-2025" || old.Split.PersonalAccountFirst != 100_00 || old.Split.Deductible != 900_00 || old.PolicyYear != 2025 {
		t.Fatalf("2025 settlement %+v", old)
	}
	w.clock.Set(eve.Add(20 * time.Minute)) // 00:10 on 1 January 2026 in Shanghai, still 31 December in UTC
	fresh, _, err := w.med.Settle(ctx, w.hospital, "Y-2026", card.Token, basket(t, medical.Outpatient, "A1000"))
	if err != nil {
		t.Fatal(err)
	}
	// 2026 starts afresh: the 1000 deductible of 2026 takes all of it, none of 2025's counts.
	if fresh.PolicyID != "jiaxing-2026" || fresh.Split.Deductible != 1000_00 || fresh.Split.Fund != 0 || fresh.Day.Year != 2026 {
		t.Fatalf("2026 settlement %+v", fresh)
	}
	if _, _, err := w.med.End(ctx, w.hospital, "Y-2025", medical.Reversed, "billing error"); err != nil {
		t.Fatal(err)
	}
	y25, _ := w.med.CardYear(ctx, card.Token, 2025)
	y26, _ := w.med.CardYear(ctx, card.Token, 2026)
	if y25.Accumulators.Deductible["outpatient"] != 0 || y26.Accumulators.Deductible["outpatient"] != 1000_00 {
		t.Errorf("after reversing the 2025 settlement: 2025 %+v, 2026 %+v", y25.Accumulators, y26.Accumulators)
	}
	// The reversal counts on 1 January; the settlement stays in 31 December's totals.
	d31, _ := w.med.Reconciliation(ctx, "jiaxing", medical.DayOf(eve))
	d1, _ := w.med.Reconciliation(ctx, "jiaxing", medical.DayOf(w.clock.Now()))
	if d31.All.Settlements != 1 || d31.All.Total != 1000_00 || d1.All.Settlements != 1 || d1.All.Reversals != 1 || d1.All.Total != 0 {
		t.Errorf("31 December %+v, 1 January %+v", d31.All, d1.All)
	}
}

// TestMedicalCapAndRandomBaskets settles random baskets for three cardholders at both
// institutions, cancelling and reversing some, over several days, and checks what must hold
// whatever the baskets: the parts sum to the total, the fund never pays past a cap, the
// accumulators equal the sum of what the standing settlements added, every day's detail sums to
// its totals, and (when the test ends) the ledger verifies.
func TestMedicalCapAndRandomBaskets(t *testing.T) {
	start := time.Date(2026, 5, 4, 9, 0, 0, 0, cards.Shanghai)
	w := newMedWorld(t, start)
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(4, 6))
	holders := []int{0, 2} // Jiaxing and Shanghai; card 1's city has no policy
	for _, h := range holders {
		w.fund(t, h, 60_000_00)
		w.contribute(t, h, 3_000_00)
	}
	// A tier 1 hospital in Shanghai too: any designated hospital treats either cardholder, under
	// the cardholder's own city's policy.
	if _, err := w.st.RegisterParty(ctx, clearing.PartyMerchant, "sh-community-1", "Shanghai community health centre"); err != nil {
		t.Fatal(err)
	}
	hospitals := []medical.Institution{w.hospital,
		w.register(t, medical.Institution{ID: "sh-community-1", Kind: medical.Hospital, Tier: 1, City: "shanghai"}, "sh-key")}
	type standing struct {
		in medical.Institution
		s  medical.Settlement
	}
	var live []standing
	days := map[events.Date]bool{}
	// randomSettlements: enough to pass the Jiaxing outpatient cap of 8000 several times over.
	const randomSettlements = 36
	for i := range randomSettlements {
		if i%12 == 11 {
			w.clock.Set(w.clock.Now().Add(24 * time.Hour))
		}
		days[medical.DayOf(w.clock.Now())] = true
		h := holders[rng.IntN(len(holders))]
		in, visit := hospitals[rng.IntN(len(hospitals))], []medical.VisitKind{medical.Outpatient, medical.Inpatient}[rng.IntN(2)]
		if rng.IntN(3) == 0 {
			in, visit = w.pharmacy, medical.Pharmacy
		}
		var spec []string
		for range 1 + rng.IntN(4) {
			spec = append(spec, fmt.Sprintf("%s%d.%02d", []string{"A", "B", "C"}[rng.IntN(3)], 1+rng.IntN(2500), rng.IntN(100)))
		}
		s, _, err := w.med.Settle(ctx, in, fmt.Sprintf("R-%03d", i), w.city.Cards[h], basket(t, visit, spec...))
		if err != nil {
			var r *medical.Refusal
			if errors.As(err, &r) && r.Reason == medical.ReasonInsufficientFunds {
				continue
			}
			t.Fatal(err)
		}
		if s.Split.Fund+s.Split.Personal+s.Split.Cash != s.Split.Total || s.Split.Fund < 0 || s.Split.Personal < 0 || s.Split.Cash < 0 {
			t.Fatalf("settlement %s parts %+v", s.Ref, s.Split)
		}
		live = append(live, standing{in, s})
		if k := rng.IntN(6); k == 0 && len(live) > 0 {
			j := rng.IntN(len(live))
			kind := medical.Reversed
			if live[j].s.Day == medical.DayOf(w.clock.Now()) {
				kind = medical.Cancelled
			}
			if _, _, err := w.med.End(ctx, live[j].in, live[j].s.Ref, kind, "random"); err != nil {
				t.Fatal(err)
			}
			live = append(live[:j], live[j+1:]...)
		}
	}
	policies, _ := medical.SamplePolicies()
	for _, h := range holders {
		c := w.card(t, h)
		want := medical.Accumulators{}.Clone()
		for _, l := range live {
			if l.s.CardToken == c.Token {
				want = want.Plus(l.s.Split.Delta)
			}
		}
		got, err := w.med.CardYear(ctx, c.Token, 2026)
		if err != nil {
			t.Fatal(err)
		}
		for k, v := range want.Fund {
			if got.Accumulators.Fund[k] != v {
				t.Errorf("card %d cap %s: accumulated %d, standing settlements add to %d", h, k, got.Accumulators.Fund[k], v)
			}
			p, _ := policies.For(c.InsuranceCity, 2026)
			if v > p.Caps[k] {
				t.Errorf("card %d: the fund paid %d against cap %s of %d", h, v, k, p.Caps[k])
			}
		}
		for k, v := range want.Deductible {
			if got.Accumulators.Deductible[k] != v {
				t.Errorf("card %d deductible %s: accumulated %d, standing settlements add to %d", h, k, got.Accumulators.Deductible[k], v)
			}
		}
	}
	for _, fund := range []string{"jiaxing", "shanghai"} {
		for d := range days {
			tot, err := w.med.Reconciliation(ctx, fund, d)
			if err != nil {
				t.Fatal(err)
			}
			checkDetail(t, w.med, tot)
		}
	}
}

// TestMedicalConcurrentSettlements races settlements of one card, and retries of one settlement,
// from several goroutines: each card's settlements queue on its lock, so the accumulators and the
// personal account end exactly as the settlements that were made say; a settlement id settles once.
func TestMedicalConcurrentSettlements(t *testing.T) {
	w := newMedWorld(t, time.Date(2026, 6, 1, 11, 0, 0, 0, cards.Shanghai))
	ctx := context.Background()
	card := w.card(t, 0)
	// Funds for about six of the eight baskets' cash parts: some racers must be refused.
	w.fund(t, 0, 2_000_00)
	w.contribute(t, 0, 700_00)

	// racers: enough to collide on the card, its fund and the hospital's account every time.
	const racers = 8
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		settled []medical.Settlement
		refused int
	)
	for i := range racers {
		wg.Go(func() {
			s, _, err := w.med.Settle(ctx, w.hospital, fmt.Sprintf("C-%d", i), card.Token, basket(t, medical.Outpatient, "A400", "C200"))
			mu.Lock()
			defer mu.Unlock()
			var r *medical.Refusal
			switch {
			case err == nil:
				settled = append(settled, s)
			case errors.As(err, &r) && r.Reason == medical.ReasonInsufficientFunds:
				refused++
			default:
				t.Errorf("racer %d: %v", i, err)
			}
		})
	}
	for range racers {
		wg.Go(func() {
			if _, _, err := w.med.Settle(ctx, w.hospital, "SAME", card.Token, basket(t, medical.Outpatient, "A10")); err != nil {
				t.Errorf("retry racer: %v", err)
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	same, err := w.med.Settlement(ctx, w.hospital, "SAME")
	if err != nil {
		t.Fatal(err)
	}
	settled = append(settled, same)
	var personal, cash, deductible int64
	for _, s := range settled {
		personal += s.Split.Personal
		cash += s.Split.Cash
		deductible += s.Split.Deductible
	}
	if got := w.net(t, card.MedicalAccount); got != 700_00-personal {
		t.Errorf("personal account %d, settlements took %d of 70000", got, personal)
	}
	if got := w.net(t, card.FundsAccount); got != 2_000_00-cash || got < 0 {
		t.Errorf("funds %d, settlements took %d of 200000", got, cash)
	}
	if refused == 0 {
		t.Error("no racer was refused: the funds should run out")
	}
	year, _ := w.med.CardYear(ctx, card.Token, 2026)
	if year.Accumulators.Deductible["outpatient"] != deductible || deductible > 1000_00 {
		t.Errorf("deductible accumulated %d, settlements met %d", year.Accumulators.Deductible["outpatient"], deductible)
	}
	t.Logf("%d settled, %d refused for insufficient funds", len(settled)-1, refused)
}

func TestMedicalInstitutions(t *testing.T) {
	w := newMedWorld(t, time.Date(2026, 3, 2, 10, 0, 0, 0, cards.Shanghai))
	ctx := context.Background()
	key := sha256.Sum256([]byte("hospital-key"))
	got, err := w.med.InstitutionByKey(ctx, key)
	if err != nil || got != w.hospital {
		t.Fatalf("by key: %+v, %v", got, err)
	}
	if _, err := w.med.InstitutionByKey(ctx, sha256.Sum256([]byte("guess"))); !errors.Is(err, postgres.ErrNotFound) {
		t.Errorf("an unknown key: %v", err)
	}
	// Again with the same attributes: no change, the old key still works.
	again, created, err := w.med.RegisterInstitution(ctx, medical.Institution{ID: w.hospital.ID, Kind: medical.Hospital, Tier: 3, City: "jiaxing"}, sha256.Sum256([]byte("other")))
	if err != nil || created || again != w.hospital {
		t.Errorf("register again: %+v, created %v, %v", again, created, err)
	}
	if _, err := w.med.InstitutionByKey(ctx, key); err != nil {
		t.Errorf("the key after registering again: %v", err)
	}
	_, _, err = w.med.RegisterInstitution(ctx, medical.Institution{ID: w.hospital.ID, Kind: medical.Hospital, Tier: 2, City: "jiaxing"}, sha256.Sum256([]byte("x")))
	wantRefusal(t, err, medical.ReasonInstitutionConflict)
	_, _, err = w.med.RegisterInstitution(ctx, medical.Institution{ID: "m-nobody", Kind: medical.Hospital, Tier: 2, City: "jiaxing"}, sha256.Sum256([]byte("y")))
	wantRefusal(t, err, medical.ReasonUnknownMerchant)
	if _, _, err := w.med.RegisterInstitution(ctx, medical.Institution{ID: w.hospital.ID, Kind: "clinic", Tier: 2, City: "jiaxing"}, key); !errors.Is(err, medical.ErrInvalid) {
		t.Errorf("an unknown kind: %v", err)
	}

	// Rotation: the new key works at once, the old one no longer.
	rotated := sha256.Sum256([]byte("hospital-key-2"))
	if _, err := w.med.RotateInstitutionKey(ctx, w.hospital.ID, rotated); err != nil {
		t.Fatal(err)
	}
	if _, err := w.med.InstitutionByKey(ctx, key); !errors.Is(err, postgres.ErrNotFound) {
		t.Errorf("the old key after rotation: %v", err)
	}
	if got, err := w.med.InstitutionByKey(ctx, rotated); err != nil || got.ID != w.hospital.ID {
		t.Errorf("the new key: %+v, %v", got, err)
	}
	_, err = w.med.RotateInstitutionKey(ctx, "m-nobody", rotated)
	wantRefusal(t, err, medical.ReasonUnknownInstitution)

	// A blocked card settles nothing.
	card := w.city.Cards[0]
	e := events.Event{ID: [16]byte{0x01, 0x9c, 0, 0, 0, 0, 0x70, 1, 0x80, 1, 2, 3, 4, 5, 6, 7}, Type: events.TypeCardStatusChanged,
		OccurredAt: w.clock.Now().UTC().Truncate(time.Millisecond), CardToken: card,
		Data: &events.CardStatusChanged{Status: events.StatusBlocked, Reason: "reported lost"}}
	w.ingest(t, e)
	_, _, err = w.med.Settle(ctx, w.hospital, "B-1", card, basket(t, medical.Outpatient, "A10"))
	wantRefusal(t, err, medical.ReasonCardNotActive)
	_, err = w.med.Quote(ctx, w.hospital, card, basket(t, medical.Outpatient, "A10"))
	wantRefusal(t, err, medical.ReasonCardNotActive)
}

// TestMedicalConcurrentEnds races cancellations of one settlement: one cancels it, the others
// find it cancelled and answer the same receipt; the parts go back once.
func TestMedicalConcurrentEnds(t *testing.T) {
	w := newMedWorld(t, time.Date(2026, 6, 1, 11, 0, 0, 0, cards.Shanghai))
	ctx := context.Background()
	card := w.card(t, 0)
	w.fund(t, 0, 2_000_00)
	if _, _, err := w.med.Settle(ctx, w.hospital, "E-1", card.Token, basket(t, medical.Outpatient, "A400", "C200")); err != nil {
		t.Fatal(err)
	}
	// racers: enough that several wait on the card's lock while the first cancels.
	const racers = 6
	replays := make(chan bool, racers)
	var wg sync.WaitGroup
	for range racers {
		wg.Go(func() {
			s, replayed, err := w.med.End(ctx, w.hospital, "E-1", medical.Cancelled, "entered twice")
			if err != nil || s.Status() != "cancelled" {
				t.Errorf("cancel: %+v, %v", s, err)
			}
			replays <- replayed
		})
	}
	wg.Wait()
	close(replays)
	fresh := 0
	for r := range replays {
		if !r {
			fresh++
		}
	}
	if fresh != 1 {
		t.Errorf("%d racers cancelled, want 1", fresh)
	}
	if got := w.net(t, card.FundsAccount); got != 2_000_00 {
		t.Errorf("funds %d after the cancellation, want 200000", got)
	}
}

// BenchmarkMedicalSettle measures one settlement end to end on PostgreSQL: a transaction that
// locks the card, reads its accumulators and balances, applies three linked transfers and writes
// the record and the accumulators. Cards rotate so that settlements do not queue on one card's
// lock; they all share the fund's and the hospital's accounts, the hot accounts of the flow.
func BenchmarkMedicalSettle(b *testing.B) {
	w := newMedWorldB(b)
	ctx := context.Background()
	items := basket(b, medical.Outpatient, "A30", "B20", "C1")
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		if _, _, err := w.med.Settle(ctx, w.hospital, fmt.Sprintf("B-%d", i), w.city.Cards[2*(i%2)], items); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkMedicalSettleParallel settles from several goroutines, each for cards of its own: they
// never queue on a card's lock, and all collide on the fund's and the hospital's balance versions,
// which the store resolves by retrying (each retry locks the accounts, so racers queue).
func BenchmarkMedicalSettleParallel(b *testing.B) {
	w := newMedWorldB(b)
	ctx := context.Background()
	var insured []string
	for i, c := range w.city.Cards {
		if i%3 != 1 { // every third card is insured in Hangzhou, which has no policy
			insured = append(insured, c)
		}
	}
	items := basket(b, medical.Outpatient, "A30")
	var next atomic.Int64
	b.SetParallelism(2) // 2 x GOMAXPROCS goroutines
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		g := next.Add(1)
		for i := 0; pb.Next(); i++ {
			card := insured[int(g)%len(insured)]
			if _, _, err := w.med.Settle(ctx, w.hospital, fmt.Sprintf("P-%d-%d", g, i), card, items); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// newMedWorldB is newMedWorld for a benchmark: insured cards well funded.
func newMedWorldB(b *testing.B) *medWorld {
	b.Helper()
	w := &medWorld{st: pgtest.NewStore(b), clock: &settableClock{now: time.Date(2026, 7, 1, 9, 0, 0, 0, cards.Shanghai)}}
	w.st.Now = w.clock.Now
	policies, err := medical.SamplePolicies()
	if err != nil {
		b.Fatal(err)
	}
	w.med = postgres.NewMedical(w.st, policies).WithCatalogues(classCatalogues(b))
	w.city = loadtest.NewCity(62, 12, 1, w.clock.now.Add(-time.Hour))
	ctx := context.Background()
	for _, p := range w.city.Parties() {
		if _, err := w.st.RegisterParty(ctx, p.Kind, p.ID, p.Name); err != nil {
			b.Fatal(err)
		}
	}
	evs := append(w.city.Registrations(), w.city.Funding(100_000_000_00, 100_000_000_00)...)
	msgs := make([]clearing.Message, len(evs))
	for i, e := range evs {
		raw := loadtest.Encode(e)
		dec, err := events.Decode(raw)
		if err != nil {
			b.Fatal(err)
		}
		msgs[i] = clearing.Message{Source: "bench/0", Offset: int64(i), Raw: raw, Event: dec}
	}
	if _, err := w.st.Ingest(ctx, nil, msgs); err != nil {
		b.Fatal(err)
	}
	in, _, err := w.med.RegisterInstitution(ctx, medical.Institution{ID: w.city.Merchants[0], Kind: medical.Hospital, Tier: 2, City: "jiaxing"}, sha256.Sum256([]byte("k")))
	if err != nil {
		b.Fatal(err)
	}
	w.hospital = in
	return w
}

// Ten identical settlements with one settlement id, sent at once on a card whose funds pay the
// cash part exactly once: one settles, and every other is told of that settlement, never that
// it failed (a hospital told "failed" may collect the cash a second time). Three rounds, each
// with its own id, so that the race is run more than once.
func TestMedicalConcurrentRetriesGetTheReplay(t *testing.T) {
	w := newMedWorld(t, time.Date(2026, 6, 1, 11, 0, 0, 0, cards.Shanghai))
	ctx := context.Background()
	card := w.card(t, 0)
	b := basket(t, medical.Outpatient, "C300") // class C: all cash
	q, err := w.med.Quote(ctx, w.hospital, card.Token, b)
	if err != nil {
		t.Fatal(err)
	}
	const retries = 10
	for round := range 3 {
		w.fund(t, 0, q.Split.Cash) // exactly enough, once
		var (
			wg       sync.WaitGroup
			mu       sync.Mutex
			created  int
			replayed int
			ids      = map[uuid.UUID]bool{}
		)
		for i := range retries {
			wg.Go(func() {
				s, again, err := w.med.Settle(ctx, w.hospital, fmt.Sprintf("HIS-RETRY-%d", round), card.Token, b)
				mu.Lock()
				defer mu.Unlock()
				if err != nil {
					t.Errorf("round %d, request %d: %v", round, i, err)
					return
				}
				ids[s.ID] = true
				if again {
					replayed++
				} else {
					created++
				}
			})
		}
		wg.Wait()
		if created != 1 || replayed != retries-1 || len(ids) != 1 {
			t.Fatalf("round %d: %d created, %d replayed, %d settlements; want 1, %d, 1", round, created, replayed, len(ids), retries-1)
		}
		if got := w.net(t, card.FundsAccount); got != 0 {
			t.Fatalf("round %d: funds %d after the one settlement, want 0", round, got)
		}
	}
}
