package postgres_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/joinincard/engine/cards"

	"github.com/joinincard/engine/clearing"
	"github.com/joinincard/engine/events"
)

// A purchase cleared without an authorization names its own category; at a merchant registered
// in a category the card does not pay (a casino), a record calling it a grocer is refused and the
// card pays nothing. At a merchant registered in a category the card pays, it is applied.
func TestOfflinePurchaseAtAMerchantRegisteredInARefusedCategory(t *testing.T) {
	s := newShop(t, 1, fen1000)
	offline := func(merchant string) events.Event {
		return s.event(0, &events.PurchaseCleared{MerchantID: merchant, Amount: events.Money{Minor: 10000, Currency: "CNY"}, MCC: "5411"})
	}
	d := s.ingestDecision(offline("casino-1"), offline("grocer-1"))
	if len(d.Processed) != 2 || d.Processed[0].Status != clearing.Rejected || d.Processed[1].Status != clearing.Applied {
		t.Fatalf("decisions %+v", d.Processed)
	}
	if !strings.Contains(d.Processed[0].Reason, "registered in category 7995") {
		t.Fatalf("reason %q", d.Processed[0].Reason)
	}
	if av, posted := s.funds(0); av != fen1000-10000 || posted != fen1000-10000 {
		t.Fatalf("card 0: available %s posted %s, want only the grocer's 100.00 paid", cny(av), cny(posted))
	}
}

// An offline purchase (cleared without an authorization) is owed by the card when the card could
// pay at the moment of the purchase, whatever became of it since: a terminal that could not go
// online took it in good faith. A purchase made after the card was closed or blocked, or after its
// holder's permit had expired, is one no online terminal would have accepted: it is refused, and
// the card pays nothing. Each is judged by the status the engine had recorded at the purchase's
// time, the card read from the engine's cache or from the database alike.
func TestOfflinePurchaseJudgedByTheCardsStatusWhenItWasMade(t *testing.T) {
	s := newShop(t, 3, fen1000)
	const amount = 10000
	at := func(card int, when time.Time) events.Event {
		e := s.plainPurchase(card, amount)
		e.OccurredAt = when.Truncate(time.Millisecond)
		return e
	}
	before := s.now()
	s.advance(time.Minute)
	// The cards are read once (so that the cache knows them), then card 0 is closed and card 1
	// blocked; card 2's permit ran out long ago for the next batch's clock.
	s.ingest(s.plainPurchase(0, 1), s.plainPurchase(1, 1), s.plainPurchase(2, 1))
	s.advance(time.Minute)
	s.ingest(s.event(0, &events.CardStatusChanged{Status: events.StatusClosed, Reason: "left China"}),
		s.event(1, &events.CardStatusChanged{Status: events.StatusBlocked, Reason: "reported stolen"}))
	s.advance(time.Minute)
	after := s.now()

	d := s.ingestDecision(at(0, before), at(0, after), at(1, before), at(1, after))
	want := "applied rejected(card was closed when the purchase was made) " +
		"applied rejected(card was blocked when the purchase was made)"
	if got := statusesOf(d); got != want {
		t.Fatalf("decisions\n got %s\nwant %s", got, want)
	}
	for card := range 2 {
		if av, posted := s.funds(card); av != fen1000-1-amount || posted != fen1000-1-amount {
			t.Fatalf("card %d: available %s posted %s, want only the purchase made before the change paid", card, cny(av), cny(posted))
		}
	}

	// A permit that expired: the purchase made on its last valid day is owed, the one after not.
	y, m, day := s.now().In(cards.Shanghai).Date()
	s.ingest(s.event(2, &events.CardPermitRenewed{PermitValidUntil: events.Date{Year: y, Month: m, Day: day}}))
	lastDay := time.Date(y, m, day, 12, 0, 0, 0, cards.Shanghai)
	s.clock.Store(lastDay.AddDate(0, 0, 3).UnixMicro())
	d = s.ingestDecision(at(2, lastDay), at(2, lastDay.AddDate(0, 0, 1)))
	if got, want := statusesOf(d), "applied rejected(cardholder's work permit had expired when the purchase was made)"; got != want {
		t.Fatalf("permit: decisions\n got %s\nwant %s", got, want)
	}
}

// An employer's contribution to a closed card's personal medical account is refused, however the
// batch came to know the card: read for the batch, or remembered from an earlier one.
func TestMedicalContributionToAClosedCardIsRefused(t *testing.T) {
	s := newShop(t, 1, fen1000)
	contribution := func() events.Event {
		return s.event(0, &events.MedicalContribution{EmployerID: "EMP-1", Amount: events.Money{Minor: 35000, Currency: "CNY"},
			Period: events.Period{Year: 2026, Month: time.March}})
	}
	s.ingest(contribution())
	s.advance(time.Minute)
	s.ingest(s.event(0, &events.CardStatusChanged{Status: events.StatusClosed, Reason: "left China"}))
	s.advance(time.Minute)
	d := s.ingestDecision(contribution())
	if got, want := statusesOf(d), "rejected(card is closed)"; got != want {
		t.Fatalf("decisions: got %s, want %s", got, want)
	}
}

// An offline purchase is judged by the status another engine process recorded, although this
// process took the card from its cache (which keeps no status): card 0 closed, card 1 blocked and
// unblocked by the other process, after this one cached both. Each purchase made after the change
// gets what the status then says.
func TestOfflinePurchaseSeesTheStatusAnotherEngineRecorded(t *testing.T) {
	s := newShop(t, 2, fen1000)
	const amount = 10000
	s.ingest(s.plainPurchase(0, 1), s.plainPurchase(1, 1)) // both cards now in this process's cache
	other := twin(t, s.st)
	for i, e := range []events.Event{
		s.event(0, &events.CardStatusChanged{Status: events.StatusClosed, Reason: "left China"}),
		s.event(1, &events.CardStatusChanged{Status: events.StatusBlocked, Reason: "reported stolen"}),
	} {
		s.advance(time.Minute)
		e.OccurredAt = s.now().Truncate(time.Millisecond)
		if _, err := other.Ingest(context.Background(), nil, messages(t, "twin/0", int64(i), e)); err != nil {
			t.Fatal(err)
		}
	}
	s.advance(time.Minute)
	blockedAt := s.now()
	s.advance(time.Minute)
	unblock := s.event(1, &events.CardStatusChanged{Status: events.StatusActive, Reason: "found again"})
	if _, err := other.Ingest(context.Background(), nil, messages(t, "twin/0", 2, unblock)); err != nil {
		t.Fatal(err)
	}
	s.advance(time.Minute)

	blockedPurchase := s.plainPurchase(1, amount)
	blockedPurchase.OccurredAt = blockedAt.Truncate(time.Millisecond)
	d := s.ingestDecision(s.plainPurchase(0, amount), blockedPurchase, s.plainPurchase(1, amount))
	want := "rejected(card was closed when the purchase was made) rejected(card was blocked when the purchase was made) applied"
	if got := statusesOf(d); got != want {
		t.Fatalf("decisions\n got %s\nwant %s", got, want)
	}
	if av, posted := s.funds(0); av != fen1000-1 || posted != fen1000-1 {
		t.Fatalf("card 0: available %s posted %s, want nothing paid after the close", cny(av), cny(posted))
	}
	if av, posted := s.funds(1); av != fen1000-1-amount || posted != fen1000-1-amount {
		t.Fatalf("card 1: available %s posted %s, want only the purchase after the unblock paid", cny(av), cny(posted))
	}
}

// An offline purchase dated before its card was issued (the registration's occurred_at) by more
// than a terminal's clock may be behind is refused, the card read from the engine's cache or from
// the database alike: the issue time is kept with the card.
func TestOfflinePurchaseBeforeTheCardWasIssued(t *testing.T) {
	s := newShop(t, 1, fen1000)
	const amount = 10000
	issued := purchaseT0.Add(-time.Hour) // the city registers its cards from then
	at := func(when time.Time) events.Event {
		e := s.plainPurchase(0, amount)
		e.OccurredAt = when.Truncate(time.Millisecond)
		return e
	}
	for round := 0; round < 2; round++ { // the card read from the database, then from the cache
		d := s.ingestDecision(at(issued.Add(-clearing.MaxOfflinePurchaseBeforeIssue-time.Minute)), at(issued.Add(-time.Hour)))
		if len(d.Processed) != 2 || d.Processed[0].Status != clearing.Rejected || d.Processed[1].Status != clearing.Applied {
			t.Fatalf("round %d: decisions %+v", round, d.Processed)
		}
		if want := "offline purchase is dated more than 24 hours before its card was issued"; d.Processed[0].Reason != want {
			t.Fatalf("round %d: reason %q, want %q", round, d.Processed[0].Reason, want)
		}
	}
	if av, posted := s.funds(0); av != fen1000-2*amount || posted != fen1000-2*amount {
		t.Fatalf("card 0: available %s posted %s, want the two purchases made after the card was issued", cny(av), cny(posted))
	}
}
