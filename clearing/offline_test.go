package clearing_test

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/joinincard/engine/cards"
	"github.com/joinincard/engine/clearing"
	"github.com/joinincard/engine/events"
	"github.com/joinincard/engine/ledger"
	"github.com/joinincard/engine/loadtest"
)

// An offline purchase is judged by the card's status at its time: by the statuses recorded before
// the batch for a purchase made before it, and by the card as the batch leaves it for one stamped
// after the batch's time (a terminal's clock ahead), so that a card closed by an earlier event of
// the batch pays nothing dated after it.
func TestOfflinePurchaseJudgedAtItsTime(t *testing.T) {
	city := loadtest.NewCity(1, 2, 1, day.Add(-48*time.Hour))
	v := world(city)
	d := clearing.Decide(decoded(t, append(city.Registrations(), city.Funding(100000, 100000)...)...), v, day.Add(-47*time.Hour))
	for _, c := range d.Cards {
		v.Cards[c.Token] = c
	}
	for _, p := range d.Processed {
		v.Processed[p.EventID] = p
	}
	purchase := func(card int, at time.Time) events.Event {
		return events.Event{ID: uuid.Must(uuid.NewV7()), Type: events.TypePurchaseCleared, OccurredAt: at,
			CardToken: city.Cards[card], Data: &events.PurchaseCleared{MerchantID: city.Merchants[0],
				Amount: events.Money{Minor: 100, Currency: "CNY"}, MCC: "5411"}}
	}
	// Card 0 was blocked an hour before the batch, as the engine recorded it.
	v.StatusHistories = map[string][]cards.StatusChange{
		city.Cards[0]: {{At: day.Add(-time.Hour), Declared: events.StatusBlocked, Reason: "reported stolen"}},
	}
	v.Cards[city.Cards[0]].Declared = events.StatusBlocked
	closing := events.Event{ID: uuid.Must(uuid.NewV7()), Type: events.TypeCardStatusChanged, OccurredAt: day,
		CardToken: city.Cards[1], Data: &events.CardStatusChanged{Status: events.StatusClosed, Reason: "left China"}}
	d = clearing.Decide(decoded(t,
		purchase(0, day.Add(-2*time.Hour)), purchase(0, day.Add(-30*time.Minute)),
		closing, purchase(1, day.Add(-time.Minute)), purchase(1, day.Add(time.Minute)),
	), v, day)
	checkOutcomes(t, d, []string{
		"purchase.cleared applied",
		"purchase.cleared rejected: card was blocked when the purchase was made",
		"card.status_changed accepted",
		"purchase.cleared applied",
		"purchase.cleared rejected: card was closed when the purchase was made",
	})
}

// An offline purchase is owed only within the presentment window and under the offline ceiling: a
// clearing record presented more than MaxOfflinePurchaseAge after the purchase, or for more than
// MaxOfflinePurchaseAmount, is one no network would let a terminal charge without asking the
// issuer. A purchase that completes an authorization is not bound by either: it was asked.
func TestOfflinePurchaseBoundedByAgeAndAmount(t *testing.T) {
	city := loadtest.NewCity(2, 1, 1, day.Add(-60*24*time.Hour))
	v := world(city)
	d := clearing.Decide(decoded(t, append(city.Registrations(), city.Funding(10_000_000, 10_000_000)...)...), v, day.Add(-59*24*time.Hour))
	for _, c := range d.Cards {
		v.Cards[c.Token] = c
	}
	for _, p := range d.Processed {
		v.Processed[p.EventID] = p
	}
	purchase := func(at time.Time, fen int64) events.Event {
		return events.Event{ID: uuid.Must(uuid.NewV7()), Type: events.TypePurchaseCleared, OccurredAt: at,
			CardToken: city.Cards[0], Data: &events.PurchaseCleared{MerchantID: city.Merchants[0],
				Amount: events.Money{Minor: fen, Currency: "CNY"}, MCC: "5411"}}
	}
	d = clearing.Decide(decoded(t,
		purchase(day.Add(-clearing.MaxOfflinePurchaseAge), 100),
		purchase(day.Add(-clearing.MaxOfflinePurchaseAge-time.Millisecond), 100),
		purchase(day.Add(-45*24*time.Hour), 100),
		purchase(day.Add(-time.Hour), clearing.MaxOfflinePurchaseAmount),
		purchase(day.Add(-time.Hour), clearing.MaxOfflinePurchaseAmount+1),
	), v, day)
	checkOutcomes(t, d, []string{
		"purchase.cleared applied",
		"purchase.cleared rejected: offline purchase presented more than 30 days after it was made: the presentment window is 30 days",
		"purchase.cleared rejected: offline purchase presented more than 45 days after it was made: the presentment window is 30 days",
		"purchase.cleared applied",
		"purchase.cleared rejected: offline purchase of 1000.01 CNY is over the 1000.00 CNY a terminal may approve offline",
	})
}

// The presentment window ends when the record was presented, its Kafka timestamp, not when the
// engine got to it: a record produced in time and consumed after an outage of the engine is owed.
// A timestamp after the engine's clock is not taken: the record was presented by now at the
// latest.
func TestOfflinePurchasePresentedWhenProduced(t *testing.T) {
	city := loadtest.NewCity(3, 1, 1, day.Add(-60*24*time.Hour))
	v := world(city)
	d := clearing.Decide(decoded(t, append(city.Registrations(), city.Funding(100_000, 100_000)...)...), v, day.Add(-59*24*time.Hour))
	for _, c := range d.Cards {
		v.Cards[c.Token] = c
	}
	for _, p := range d.Processed {
		v.Processed[p.EventID] = p
	}
	made := day.Add(-40 * 24 * time.Hour)
	purchase := func() events.Event {
		return events.Event{ID: uuid.Must(uuid.NewV7()), Type: events.TypePurchaseCleared, OccurredAt: made,
			CardToken: city.Cards[0], Data: &events.PurchaseCleared{MerchantID: city.Merchants[0],
				Amount: events.Money{Minor: 100, Currency: "CNY"}, MCC: "5411"}}
	}
	msgs := decoded(t, purchase(), purchase(), purchase())
	msgs[0].Produced = made.Add(2 * 24 * time.Hour)  // presented in time, consumed 38 days later
	msgs[1].Produced = made.Add(31 * 24 * time.Hour) // presented late
	msgs[2].Produced = day.Add(time.Hour)            // a timestamp ahead of the engine's clock
	d = clearing.Decide(msgs, v, day)
	checkOutcomes(t, d, []string{
		"purchase.cleared applied",
		"purchase.cleared rejected: offline purchase presented more than 31 days after it was made: the presentment window is 30 days",
		"purchase.cleared rejected: offline purchase presented more than 40 days after it was made: the presentment window is 30 days",
	})
}

// docs/events.md states the offline bounds the engine applies.
func TestOfflineBoundsDocumented(t *testing.T) {
	b, err := os.ReadFile("../docs/events.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		fmt.Sprintf("**the presentment window, %d days**", int(clearing.MaxOfflinePurchaseAge/(24*time.Hour))),
		fmt.Sprintf("**the offline ceiling, %s CNY**", ledger.FormatAmount(clearing.MaxOfflinePurchaseAmount, "CNY")),
		fmt.Sprintf("**no more than %d hours ahead**", int(clearing.MaxOfflinePurchaseLead/time.Hour)),
		fmt.Sprintf("dated more than %d hours (the clock error allowed ahead, `clearing.MaxOfflinePurchaseBeforeIssue`)", int(clearing.MaxOfflinePurchaseBeforeIssue/time.Hour)),
	} {
		if !strings.Contains(string(b), want) {
			t.Errorf("docs/events.md does not say %q", want)
		}
	}
}

// A record dated after it was presented comes from a terminal whose clock is wrong: within
// MaxOfflinePurchaseLead (a time zone written as UTC, a drifting clock) it is owed, judged by the
// card's status now; further ahead it is rejected, as a network refuses a transaction date in the
// future, so that no record escapes the presentment window by its date.
func TestOfflinePurchaseDatedAheadOfItsPresentment(t *testing.T) {
	city := loadtest.NewCity(4, 1, 1, day.Add(-2*24*time.Hour))
	v := world(city)
	d := clearing.Decide(decoded(t, append(city.Registrations(), city.Funding(100_000, 100_000)...)...), v, day.Add(-24*time.Hour))
	for _, c := range d.Cards {
		v.Cards[c.Token] = c
	}
	for _, p := range d.Processed {
		v.Processed[p.EventID] = p
	}
	purchase := func(at time.Time) events.Event {
		return events.Event{ID: uuid.Must(uuid.NewV7()), Type: events.TypePurchaseCleared, OccurredAt: at,
			CardToken: city.Cards[0], Data: &events.PurchaseCleared{MerchantID: city.Merchants[0],
				Amount: events.Money{Minor: 100, Currency: "CNY"}, MCC: "5411"}}
	}
	d = clearing.Decide(decoded(t,
		purchase(day.Add(8*time.Hour)),
		purchase(day.Add(clearing.MaxOfflinePurchaseLead)),
		purchase(day.Add(clearing.MaxOfflinePurchaseLead+time.Millisecond)),
		purchase(day.AddDate(1, 0, 0)),
	), v, day)
	checkOutcomes(t, d, []string{
		"purchase.cleared applied",
		"purchase.cleared applied",
		"purchase.cleared rejected: offline purchase is dated more than 24 hours after it was presented: the terminal's clock is wrong",
		"purchase.cleared rejected: offline purchase is dated more than 24 hours after it was presented: the terminal's clock is wrong",
	})
}

// No terminal read a card before it was issued: an offline purchase dated before the card's
// registration (its occurred_at, when the issuer issued it) by more than a terminal's clock may be
// wrong (MaxOfflinePurchaseLead) charges the card nothing, whether the registration is in the
// purchase's batch or an earlier one. Within that it is owed, as a record dated ahead is.
func TestOfflinePurchaseBeforeTheCardWasIssued(t *testing.T) {
	issued := day.Add(-2 * time.Hour)
	city := loadtest.NewCity(5, 2, 1, issued)
	v := world(city)
	regs := city.Registrations()
	purchase := func(card int, at time.Time) events.Event {
		return events.Event{ID: uuid.Must(uuid.NewV7()), Type: events.TypePurchaseCleared, OccurredAt: at,
			CardToken: city.Cards[card], Data: &events.PurchaseCleared{MerchantID: city.Merchants[0],
				Amount: events.Money{Minor: 100, Currency: "CNY"}, MCC: "5411"}}
	}
	// Card 0 is registered in the purchases' batch.
	d := clearing.Decide(decoded(t, append(append(regs[:1:1], city.Funding(100_000, 100_000)[0]),
		purchase(0, regs[0].OccurredAt.Add(-clearing.MaxOfflinePurchaseLead-time.Millisecond)),
		purchase(0, regs[0].OccurredAt.Add(-3*24*time.Hour)),
		purchase(0, regs[0].OccurredAt.Add(-clearing.MaxOfflinePurchaseLead)),
		purchase(0, regs[0].OccurredAt.Add(time.Minute)),
	)...), v, day)
	checkOutcomes(t, d, []string{
		"card.registered accepted",
		"funds.loaded applied",
		"purchase.cleared rejected: offline purchase is dated more than 24 hours before its card was issued",
		"purchase.cleared rejected: offline purchase is dated more than 24 hours before its card was issued",
		"purchase.cleared applied",
		"purchase.cleared applied",
	})
	// Card 1 was registered by an earlier batch.
	d = clearing.Decide(decoded(t, append(regs[1:2:2], city.Funding(100_000, 100_000)[1])...), v, day)
	for _, c := range d.Cards {
		v.Cards[c.Token] = c
	}
	for _, p := range d.Processed {
		v.Processed[p.EventID] = p
	}
	d = clearing.Decide(decoded(t,
		purchase(1, regs[1].OccurredAt.Add(-48*time.Hour)),
		purchase(1, regs[1].OccurredAt.Add(-time.Hour)),
	), v, day.Add(time.Hour))
	checkOutcomes(t, d, []string{
		"purchase.cleared rejected: offline purchase is dated more than 24 hours before its card was issued",
		"purchase.cleared applied",
	})
}

// A card was issued by the time the engine recorded its registration at the latest: a
// registration dated ahead of the engine's clock (an issuer's clock ahead) does not refuse the
// card's purchases made after it was recorded.
func TestOfflinePurchaseAfterARegistrationDatedAhead(t *testing.T) {
	city := loadtest.NewCity(6, 1, 1, day.Add(48*time.Hour))
	v := world(city)
	purchase := func(at time.Time) events.Event {
		return events.Event{ID: uuid.Must(uuid.NewV7()), Type: events.TypePurchaseCleared, OccurredAt: at,
			CardToken: city.Cards[0], Data: &events.PurchaseCleared{MerchantID: city.Merchants[0],
				Amount: events.Money{Minor: 100, Currency: "CNY"}, MCC: "5411"}}
	}
	d := clearing.Decide(decoded(t, append(city.Registrations(), city.Funding(100_000, 100_000)...)...), v, day)
	for _, c := range d.Cards {
		v.Cards[c.Token] = c
	}
	for _, p := range d.Processed {
		v.Processed[p.EventID] = p
	}
	d = clearing.Decide(decoded(t,
		purchase(day.Add(-time.Hour)),
		purchase(day.Add(time.Hour)),
		purchase(day.Add(-clearing.MaxOfflinePurchaseBeforeIssue-time.Minute)),
	), v, day.Add(2*time.Hour))
	checkOutcomes(t, d, []string{
		"purchase.cleared applied",
		"purchase.cleared applied",
		"purchase.cleared rejected: offline purchase is dated more than 24 hours before its card was issued",
	})
}
