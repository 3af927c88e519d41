package postgres_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/joinincard/engine/clearing"
	"github.com/joinincard/engine/events"
	"github.com/joinincard/engine/postgres"
	"github.com/joinincard/engine/transit"
)

// cardEvent is a registry event about card i, happening at the world's clock.
func (w *transitWorld) cardEvent(i int, data events.Data) events.Event {
	return events.Event{ID: uuid.Must(uuid.NewV7()), Type: data.Type(), OccurredAt: w.clock.Now().UTC().Truncate(time.Millisecond),
		CardToken: w.cards[i], Data: data}
}

// kafkaTap is a transit.tap event of card i at Hangzhou Metro line 1.
func (w *transitWorld) kafkaTap(i int, dev string, seq uint64, at string, dir events.Direction, station string) events.Event {
	e := w.city.Tap(w.cards[i], dir, seq)
	d := e.Data.(*events.TransitTap)
	d.OperatorID, d.DeviceID, d.StationID, d.Line = "HZMETRO", dev, station, "1"
	d.TappedAt = sh(at).UTC()
	e.OccurredAt = d.TappedAt.Add(time.Minute)
	return e
}

func (w *transitWorld) ingest(t *testing.T, evs ...events.Event) *clearing.Decision {
	t.Helper()
	d, err := w.st.Ingest(context.Background(), nil, messages(t, "card-events/0", w.seq*1000, evs...))
	w.seq++
	if err != nil {
		t.Fatal(err)
	}
	for _, dl := range d.DeadLetters {
		t.Fatalf("event %s refused: %s", dl.EventID, dl.Reason)
	}
	return d
}

// Cards lost, stolen, blocked otherwise, closed, and with an expired permit tap through both
// doors: each door refuses each tap made after the card stopped, with the same reason, and
// accepts those made before; the journey under way when the card was blocked ends at its real
// fare; nothing is charged for a refused tap, nor for a tap accepted before the block was
// recorded but made after it; and the deny list carries every such card with its reason.
func TestTransitRefusesCardsThatMayNotTravel(t *testing.T) {
	ctx := context.Background()
	const (
		active = iota
		lost
		stolen
		fraud
		closed
		expired
		ncards
	)
	w := newTransitWorld(t, ncards, 10000)
	// The permit's last valid day was Sunday: from Monday the card may not travel.
	w.clock.Set(sh("2026-03-01 09:00"))
	w.ingest(t, w.cardEvent(expired, &events.CardPermitRenewed{PermitValidUntil: events.Date{Year: 2026, Month: time.March, Day: 1}}))

	// Monday before the blocks: every card's morning journey, card lost's journey that will be
	// under way when it is blocked, and card fraud's tap stamped by a fast reader after the block
	// to come.
	w.clock.Set(sh("2026-03-02 08:55"))
	var morning []string
	for i := range ncards {
		if i != lost {
			morning = append(morning, fmt.Sprintf("HZMETRO %d 2026-03-02 08:00 in 0101 dev=gate-a", i), fmt.Sprintf("HZMETRO %d 2026-03-02 08:20 out 0103 dev=gate-a", i))
		}
	}
	morning = append(morning, fmt.Sprintf("HZMETRO %d 2026-03-02 08:50 in 0101 dev=gate-a", lost), fmt.Sprintf("HZMETRO %d 2026-03-02 09:04 in 0101 dev=gate-a", fraud))
	res := w.upload(t, "morning", strings.Join(morning, "\n"))["HZMETRO"]
	want := "accepted accepted accepted accepted accepted accepted accepted accepted rejected:permit_expired rejected:permit_expired accepted accepted"
	if got := results(res); got != want {
		t.Fatalf("morning: %s\nwant %s", got, want)
	}

	// 09:00: the registry blocks and closes cards.
	w.clock.Set(sh("2026-03-02 09:00"))
	w.ingest(t,
		w.cardEvent(lost, &events.CardStatusChanged{Status: events.StatusBlocked, Reason: "reported lost by the cardholder"}),
		w.cardEvent(stolen, &events.CardStatusChanged{Status: events.StatusBlocked, Reason: "reported stolen"}),
		w.cardEvent(fraud, &events.CardStatusChanged{Status: events.StatusBlocked, Reason: "suspected fraud"}),
		w.cardEvent(closed, &events.CardStatusChanged{Status: events.StatusClosed, Reason: "left the country"}))

	// Later the same morning the same journeys come through Kafka and as a batch; card lost's
	// exit from the journey it entered at 08:50 comes through Kafka.
	w.clock.Set(sh("2026-03-02 12:00"))
	var (
		kafka []events.Event
		batch []string
	)
	for i := range ncards {
		kafka = append(kafka, w.kafkaTap(i, "gate-k", uint64(2*i+1), "2026-03-02 10:00", events.DirectionIn, "0101"),
			w.kafkaTap(i, "gate-k", uint64(2*i+2), "2026-03-02 10:30", events.DirectionOut, "0103"))
		batch = append(batch, fmt.Sprintf("HZMETRO %d 2026-03-02 11:00 in 0101 dev=gate-b", i), fmt.Sprintf("HZMETRO %d 2026-03-02 11:20 out 0103 dev=gate-b", i))
	}
	exit := w.kafkaTap(lost, "gate-k", 100, "2026-03-02 09:10", events.DirectionOut, "0103")
	// An offline reader's journey of card stolen from before its block, uploaded after it.
	offline := []events.Event{w.kafkaTap(stolen, "gate-o", 1, "2026-03-02 08:30", events.DirectionIn, "0101"),
		w.kafkaTap(stolen, "gate-o", 2, "2026-03-02 08:45", events.DirectionOut, "0103")}
	kafka = append(kafka, exit, offline[0], offline[1])
	w.ingest(t, kafka...)
	if _, err := w.st.DrainTransitTaps(ctx, w.ts); err != nil {
		t.Fatal(err)
	}
	ids := make([]uuid.UUID, len(kafka))
	for i, e := range kafka {
		ids[i] = e.ID
	}
	viaKafka, err := w.st.TransitEventResults(ctx, ids)
	if err != nil {
		t.Fatal(err)
	}
	viaBatch := w.upload(t, "late morning", strings.Join(batch, "\n"))["HZMETRO"].Answers
	wantReason := []transit.Reason{"", transit.ReasonCardBlocked, transit.ReasonCardBlocked, transit.ReasonCardBlocked,
		transit.ReasonCardClosed, transit.ReasonPermitExpired}
	wantDetail := []string{"", "blocked (lost)", "blocked (stolen)", "blocked (blocked)", "closed since", "permit expired"}
	for i := range ncards {
		for leg := range 2 {
			k, b := viaKafka[kafka[2*i+leg].ID], viaBatch[2*i+leg]
			if k.Reason != wantReason[i] || b.Reason != wantReason[i] || !strings.Contains(k.Detail, wantDetail[i]) ||
				!strings.Contains(b.Detail, wantDetail[i]) || (wantReason[i] == "") != (k.Result == transit.Accepted && b.Result == transit.Accepted) {
				t.Errorf("card %d tap %d: kafka %+v, batch %+v, want %q", i, leg, k, b, wantReason[i])
			}
		}
	}
	for _, e := range append(offline, exit) {
		if o := viaKafka[e.ID]; o.Result != transit.Accepted {
			t.Errorf("tap of %s before the block, or the exit of a journey under way at it: %+v", e.Data.(*events.TransitTap).TappedAt, o)
		}
	}

	// The deny list: every card that may not travel, with its reason, in token order, by pages.
	wantList := map[string]transit.DenyReason{w.cards[lost]: "lost", w.cards[stolen]: "stolen", w.cards[fraud]: "blocked",
		w.cards[closed]: "closed", w.cards[expired]: "permit_expired"}
	var got []postgres.DenyEntry
	for after := ""; ; {
		page, err := w.st.DenyList(ctx, after, 2)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, page...)
		if len(page) < 2 {
			break
		}
		after = page[len(page)-1].Card
	}
	if len(got) != len(wantList) || !slices.IsSortedFunc(got, func(a, b postgres.DenyEntry) int { return strings.Compare(a.Card, b.Card) }) {
		t.Fatalf("deny list %+v", got)
	}
	for _, e := range got {
		since := sh("2026-03-02 09:00")
		if e.Card == w.cards[expired] {
			since = sh("2026-03-02 00:00")
		}
		if e.Reason != wantList[e.Card] || !e.Since.Equal(since) || e.Owed != 0 || !slices.Contains(e.Tokens, e.Card) {
			t.Errorf("deny entry %+v, want %s since %s", e, wantList[e.Card], since)
		}
	}
	if e, denied, err := w.st.CardDenyStatus(ctx, w.cards[stolen]); err != nil || !denied || e.Reason != "stolen" {
		t.Errorf("stolen card's status %+v %v %v", e, denied, err)
	}
	if _, denied, err := w.st.CardDenyStatus(ctx, w.cards[active]); err != nil || denied {
		t.Errorf("active card denied %v %v", denied, err)
	}

	// Monday closes. 0101 to 0103 is 2.00; a journey starting within 90 minutes of the previous
	// one's end is 1.00 off: card active's at 11:00, card stolen's offline one at 08:30. Every
	// other card pays its one journey before it stopped (card lost's ended after its block), and
	// card expired nothing.
	w.close(t, sh("2026-03-03 10:00"))
	for i, paid := range []int64{500, 200, 300, 200, 200, 0} {
		if got := w.funds(t, i); got != 10000-paid {
			t.Errorf("card %d paid %s, want %s", i, cny(10000-got), cny(paid))
		}
	}
	_, days, err := w.st.TransitTrips(ctx, w.ts, w.cards[fraud], monday, monday)
	if err != nil || len(days) != 1 || len(days[0].Journeys) != 1 || days[0].Journeys[0].Kind != transit.KindComplete {
		t.Errorf("card fraud's monday: %+v %v", days, err)
	}
}

// Every status a card takes is kept with the instant the engine recorded it, in order, even when
// two batches record changes of one card on one clock reading.
func TestCardStatusChangesAreKeptInOrder(t *testing.T) {
	ctx := context.Background()
	w := newTransitWorld(t, 1, 0)
	w.clock.Set(sh("2026-03-02 09:00"))
	w.ingest(t, w.cardEvent(0, &events.CardStatusChanged{Status: events.StatusBlocked, Reason: "lost"}),
		w.cardEvent(0, &events.CardStatusChanged{Status: events.StatusBlocked, Reason: "stolen after all"}))
	w.ingest(t, w.cardEvent(0, &events.CardStatusChanged{Status: events.StatusActive, Reason: "found"}))
	w.clock.Set(sh("2026-03-02 10:00"))
	w.ingest(t, w.cardEvent(0, &events.CardStatusChanged{Status: events.StatusClosed, Reason: "left"}))
	rows, err := w.st.Pool().Query(ctx, `SELECT changed_at, declared_status, status_reason FROM card_status_changes
		WHERE card_token = $1 ORDER BY changed_at`, w.cards[0])
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var got []string
	for rows.Next() {
		var (
			at             time.Time
			status, reason string
		)
		if err := rows.Scan(&at, &status, &reason); err != nil {
			t.Fatal(err)
		}
		got = append(got, fmt.Sprintf("%s %s %s", at.In(time.UTC).Format("15:04:05.000000"), status, reason))
	}
	// One batch records the card's final status; the next, on the same clock reading, a
	// microsecond later.
	want := []string{"01:00:00.000000 blocked stolen after all", "01:00:00.000001 active found", "02:00:00.000000 closed left"}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("changes:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// A tap dated before its card was issued (the registration's occurred_at) is of no card, through
// both doors: it is refused unknown_card, and the card pays nothing for it; the taps after its
// issue are accepted and paid.
func TestTransitRefusesTapsBeforeTheCardWasIssued(t *testing.T) {
	ctx := context.Background()
	w := newTransitWorld(t, 1, 10000) // issued on 2026-02-28 at 08:00
	w.clock.Set(sh("2026-03-02 12:00"))
	kafka := []events.Event{
		w.kafkaTap(0, "gate-k", 1, "2026-02-27 10:00", events.DirectionIn, "0101"),
		w.kafkaTap(0, "gate-k", 2, "2026-02-27 10:20", events.DirectionOut, "0103"),
		w.kafkaTap(0, "gate-k", 3, "2026-03-02 10:00", events.DirectionIn, "0101"),
		w.kafkaTap(0, "gate-k", 4, "2026-03-02 10:20", events.DirectionOut, "0103"),
	}
	w.ingest(t, kafka...)
	if _, err := w.st.DrainTransitTaps(ctx, w.ts); err != nil {
		t.Fatal(err)
	}
	ids := make([]uuid.UUID, len(kafka))
	for i, e := range kafka {
		ids[i] = e.ID
	}
	viaKafka, err := w.st.TransitEventResults(ctx, ids)
	if err != nil {
		t.Fatal(err)
	}
	viaBatch := w.upload(t, "late upload", strings.Join([]string{
		"HZMETRO 0 2026-02-27 11:00 in 0101 dev=gate-b", "HZMETRO 0 2026-02-27 11:20 out 0103 dev=gate-b",
		"HZMETRO 0 2026-03-02 11:00 in 0101 dev=gate-b", "HZMETRO 0 2026-03-02 11:20 out 0103 dev=gate-b",
	}, "\n"))["HZMETRO"].Answers
	for i := range 4 {
		k, b := viaKafka[kafka[i].ID], viaBatch[i]
		if i < 2 {
			if k.Reason != transit.ReasonUnknownCard || b.Reason != transit.ReasonUnknownCard || !strings.Contains(k.Detail, "issued") {
				t.Errorf("tap %d before the card was issued: kafka %+v, batch %+v", i, k, b)
			}
		} else if k.Result != transit.Accepted || b.Result != transit.Accepted {
			t.Errorf("tap %d after the card was issued: kafka %+v, batch %+v", i, k, b)
		}
	}
	// Two journeys on Monday: 2.00, and 1.00 off the second within 90 minutes.
	w.close(t, sh("2026-03-03 10:00"))
	if got := w.funds(t, 0); got != 10000-300 {
		t.Errorf("card paid %s, want 3.00 for the journeys after it was issued", cny(10000-got))
	}
}
