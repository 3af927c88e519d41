package postgres_test

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
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
	"github.com/joinincard/engine/transit"
)

// monday is the first travel day of the tests: 2026-03-02 is a Monday.
var monday = transit.DayOf(2026, time.March, 2)

func sh(s string) time.Time {
	t, err := time.ParseInLocation("2006-01-02 15:04", s, cards.Shanghai)
	if err != nil {
		panic(err)
	}
	return t
}

// transitWorld is a store with the shipped fare tables, registered operators and funded cards.
type transitWorld struct {
	url   string
	st    *postgres.Store
	ts    *transit.Tables
	clock *settableClock
	city  *loadtest.City
	cards []string
	seq   int64
}

func newTransitWorld(t *testing.T, ncards int, funds int64) *transitWorld {
	t.Helper()
	ctx := context.Background()
	u := pgtest.NewDatabase(t)
	w := &transitWorld{url: u, st: pgtest.Open(t, u), clock: &settableClock{now: sh("2026-03-01 09:00")}}
	w.st.Now = w.clock.Now
	ts, err := transit.Shipped()
	if err != nil {
		t.Fatal(err)
	}
	w.ts = ts
	// The cards are issued the day before the first taps of the tests.
	w.city = loadtest.NewCity(42, ncards, 1, sh("2026-02-28 08:00"))
	registerParties(t, w.st, w.city)
	evs := w.city.Registrations()
	if funds > 0 {
		evs = append(evs, w.city.Funding(funds, funds)...)
	}
	for start := 0; start < len(evs); start += 4096 {
		msgs := messages(t, "setup", int64(start), evs[start:min(start+4096, len(evs))]...)
		if _, err := w.st.Ingest(ctx, nil, msgs); err != nil {
			t.Fatal(err)
		}
	}
	w.cards = w.city.Cards
	for _, op := range ts.Operators() {
		if _, err := w.st.CreateTransitOperator(ctx, op.ID, op.Name, keyHash(op.ID)); err != nil {
			t.Fatal(err)
		}
	}
	return w
}

func keyHash(op string) [32]byte { return sha256.Sum256([]byte("key of " + op)) }

// tap is a tap to upload: "OP CARDINDEX 2026-03-02 08:00 in 0101", with optional "dev=" and
// "seq="; the sequence defaults to the world's next.
func (w *transitWorld) raw(t *testing.T, line string) (string, transit.RawTap) {
	t.Helper()
	f := strings.Fields(line)
	if len(f) < 6 {
		t.Fatalf("tap %q", line)
	}
	i, err := strconv.Atoi(f[1])
	if err != nil {
		t.Fatalf("tap %q: %v", line, err)
	}
	w.seq++
	r := transit.RawTap{DeviceID: "dev-" + f[0], DeviceSeq: strconv.FormatInt(w.seq, 10), CardToken: w.cards[i],
		TappedAt: sh(f[2] + " " + f[3]).Format(time.RFC3339), Direction: f[4], StationID: f[5], Mode: "metro"}
	if f[0] == "HZBUS" {
		r.Mode = "bus"
	}
	for _, kv := range f[6:] {
		k, v, _ := strings.Cut(kv, "=")
		switch k {
		case "dev":
			r.DeviceID = v
		case "seq":
			r.DeviceSeq = v
		case "card":
			r.CardToken = v
		default:
			t.Fatalf("tap %q: %q", line, kv)
		}
	}
	return f[0], r
}

// upload submits the taps as batches, one per operator, and returns the answers by operator.
func (w *transitWorld) upload(t *testing.T, batchID, taps string) map[string]postgres.TapBatchResult {
	t.Helper()
	byOp := map[string]*postgres.TapBatch{}
	var order []string
	for _, line := range strings.Split(strings.TrimSpace(taps), "\n") {
		if strings.TrimSpace(line) == "" {
			continue
		}
		op, r := w.raw(t, line)
		b, ok := byOp[op]
		if !ok {
			b = &postgres.TapBatch{Operator: op, BatchID: batchID, RequestHash: sha256.Sum256([]byte(batchID + taps))}
			byOp[op] = b
			order = append(order, op)
		}
		b.Taps = append(b.Taps, w.ts.ParseTap(op, &r))
		b.Refs = append(b.Refs, postgres.TapRef{DeviceID: r.DeviceID, DeviceSeq: r.DeviceSeq})
	}
	out := map[string]postgres.TapBatchResult{}
	for _, op := range order {
		res, replayed, err := w.st.SubmitTapBatch(context.Background(), w.ts, *byOp[op])
		if err != nil {
			t.Fatal(err)
		}
		if replayed {
			t.Fatalf("batch %s of %s: replayed on first submission", batchID, op)
		}
		out[op] = res
	}
	return out
}

func (w *transitWorld) close(t *testing.T, at time.Time) postgres.TransitCloseReport {
	t.Helper()
	ctx := context.Background()
	w.clock.Set(at)
	var rep postgres.TransitCloseReport
	for {
		n, r, err := w.st.RepriceTransitDays(ctx, w.ts, at)
		if err != nil {
			t.Fatal(err)
		}
		rep.Add(r)
		if n == 0 {
			break
		}
	}
	r, err := w.st.CloseTransitDays(ctx, w.ts, at)
	if err != nil {
		t.Fatal(err)
	}
	rep.Add(r)
	return rep
}

func (w *transitWorld) funds(t *testing.T, card int) int64 {
	t.Helper()
	return balance(t, w.st, cards.AccountID("funds", w.cards[card])).Net()
}

func (w *transitWorld) operator(t *testing.T, op string) int64 {
	t.Helper()
	return balance(t, w.st, clearing.PartyAccount(clearing.PartyOperator, op)).Net()
}

func results(r postgres.TapBatchResult) string {
	var parts []string
	for _, a := range r.Answers {
		s := string(a.Result)
		if a.Reason != "" {
			s += ":" + string(a.Reason)
		}
		parts = append(parts, s)
	}
	return strings.Join(parts, " ")
}

func TestTransitOperatorsAndBatches(t *testing.T) {
	ctx := context.Background()
	w := newTransitWorld(t, 2, 10000)
	if _, err := w.st.CreateTransitOperator(ctx, "HZMETRO", "Hangzhou Metro", keyHash("again")); !errors.Is(err, postgres.ErrOperatorExists) {
		t.Fatalf("registering an operator again: %v", err)
	}
	if op, err := w.st.TransitOperatorByKey(ctx, keyHash("HZBUS")); err != nil || op != "HZBUS" {
		t.Fatalf("operator by key: %q %v", op, err)
	}
	if _, err := w.st.TransitOperatorByKey(ctx, keyHash("again")); !errors.Is(err, postgres.ErrNotFound) {
		t.Fatalf("the refused operator's key: %v", err)
	}

	w.clock.Set(sh("2026-03-02 12:00"))
	res := w.upload(t, "b1", `
		HZMETRO 0 2026-03-02 08:00 in 0101 seq=1
		HZMETRO 0 2026-03-02 08:30 out 0105 seq=2
		HZMETRO 0 2026-03-02 08:31 out 0105 seq=2
		HZMETRO 1 2026-03-02 09:00 in 0101 card=tok_nobody
		HZMETRO 1 2026-03-02 09:00 in 9999
		HZMETRO 1 2026-03-02 13:00 in 0101
		HZMETRO 1 2026-03-02 09:00 sideways 0101`)["HZMETRO"]
	if got := results(res); got != "accepted accepted duplicate rejected:unknown_card rejected:unknown_station rejected:time_in_future rejected:malformed" {
		t.Fatalf("answers: %s", got)
	}
	if res.Accepted != 2 || res.Duplicates != 1 || res.Rejected != 4 {
		t.Fatalf("counts %+v", res)
	}

	// The same batch again: the same answer, nothing new; under its id another body conflicts.
	again, err := w.st.TapBatch(ctx, "HZMETRO", "b1")
	if err != nil || results(again) != results(res) || !again.ReceivedAt.Equal(res.ReceivedAt) {
		t.Fatalf("read back: %v %s", err, results(again))
	}
	b := postgres.TapBatch{Operator: "HZMETRO", BatchID: "b1", RequestHash: sha256.Sum256([]byte("b1" + `
		HZMETRO 0 2026-03-02 08:00 in 0101 seq=1
		HZMETRO 0 2026-03-02 08:30 out 0105 seq=2
		HZMETRO 0 2026-03-02 08:31 out 0105 seq=2
		HZMETRO 1 2026-03-02 09:00 in 0101 card=tok_nobody
		HZMETRO 1 2026-03-02 09:00 in 9999
		HZMETRO 1 2026-03-02 13:00 in 0101
		HZMETRO 1 2026-03-02 09:00 sideways 0101`))}
	w.clock.Set(sh("2026-03-02 12:05"))
	replay, replayed, err := w.st.SubmitTapBatch(ctx, w.ts, b)
	if err != nil || !replayed || results(replay) != results(res) || !replay.ReceivedAt.Equal(res.ReceivedAt) {
		t.Fatalf("replay: %v %v %s", err, replayed, results(replay))
	}
	b.RequestHash[0] ^= 1
	if _, _, err := w.st.SubmitTapBatch(ctx, w.ts, b); !errors.Is(err, postgres.ErrBatchConflict) {
		t.Fatalf("another body under the batch id: %v", err)
	}
	if _, err := w.st.TapBatch(ctx, "HZBUS", "b1"); !errors.Is(err, postgres.ErrNotFound) {
		t.Fatalf("another operator's batch: %v", err)
	}
	// The duplicate is a duplicate in a later batch too, whatever the card says.
	res = w.upload(t, "b2", `HZMETRO 1 2026-03-02 10:00 in 0101 seq=1`)["HZMETRO"]
	if got := results(res); got != "duplicate" {
		t.Fatalf("a tap seen in an earlier batch: %s", got)
	}
}

// A tap is one tap whichever way it came: the consumer's inbox and an uploaded batch dedup
// against each other, both ways.
func TestTransitKafkaAndBatchesAreOneStream(t *testing.T) {
	ctx := context.Background()
	w := newTransitWorld(t, 2, 10000)
	w.clock.Set(sh("2026-03-02 12:00"))
	tapEvent := func(card int, dev string, seq uint64, at string, dir events.Direction, station string) events.Event {
		e := w.city.Tap(w.cards[card], dir, seq)
		d := e.Data.(*events.TransitTap)
		d.OperatorID, d.DeviceID, d.StationID, d.Line = "HZMETRO", dev, station, "1"
		d.TappedAt = sh(at).UTC()
		e.OccurredAt = d.TappedAt.Add(time.Minute)
		return e
	}
	first := tapEvent(0, "gate-a", 1, "2026-03-02 08:00", events.DirectionIn, "0101")
	second := tapEvent(0, "gate-b", 7, "2026-03-02 08:20", events.DirectionOut, "0103")
	unknown := tapEvent(1, "gate-c", 1, "2026-03-02 08:20", events.DirectionIn, "9999")
	if _, err := w.st.Ingest(ctx, nil, messages(t, "card-events/0", 0, first, second, unknown)); err != nil {
		t.Fatal(err)
	}
	// The batch repeats the second tap (gate-b 7) before the inbox is drained, and holds the
	// first tap of gate-d, which the inbox then repeats.
	res := w.upload(t, "b1", `
		HZMETRO 0 2026-03-02 08:20 out 0103 dev=gate-b seq=7
		HZMETRO 1 2026-03-02 09:00 in 0105 dev=gate-d seq=1`)["HZMETRO"]
	if got := results(res); got != "accepted accepted" {
		t.Fatalf("batch: %s", got)
	}
	late := tapEvent(1, "gate-d", 1, "2026-03-02 09:00", events.DirectionIn, "0105")
	if _, err := w.st.Ingest(ctx, nil, messages(t, "card-events/0", 3, late)); err != nil {
		t.Fatal(err)
	}
	n, err := w.st.DrainTransitTaps(ctx, w.ts)
	if err != nil || n != 4 {
		t.Fatalf("drained %d: %v", n, err)
	}
	if n, err := w.st.DrainTransitTaps(ctx, w.ts); err != nil || n != 0 {
		t.Fatalf("drained again %d: %v", n, err)
	}
	got, err := w.st.TransitEventResults(ctx, []uuid.UUID{first.ID, second.ID, unknown.ID, late.ID})
	if err != nil {
		t.Fatal(err)
	}
	for id, want := range map[uuid.UUID]string{first.ID: "accepted", second.ID: "duplicate", unknown.ID: "rejected:unknown_station", late.ID: "duplicate"} {
		o := got[id]
		s := string(o.Result)
		if o.Reason != "" {
			s += ":" + string(o.Reason)
		}
		if s != want {
			t.Errorf("event %s: %s, want %s", id, s, want)
		}
	}
	// Priced as one journey of card 0, 0101 to 0103, and a tap in of card 1 that never left.
	w.close(t, sh("2026-03-03 10:00"))
	if got := w.funds(t, 0); got != 10000-200 {
		t.Errorf("card 0 funds %d", got)
	}
	if got := w.funds(t, 1); got != 10000-1000 {
		t.Errorf("card 1 funds %d", got)
	}
}

// With the fare tables at hand, the consumer decides taps in its own transaction: the inbox stays
// empty, and a batch that repeats a tap from Kafka finds it taken, as Kafka finds the batch's.
func TestTransitKafkaTapsDecidedByTheConsumer(t *testing.T) {
	ctx := context.Background()
	w := newTransitWorld(t, 2, 10000)
	w.st.TransitFares = func() *transit.Tables { return w.ts }
	w.clock.Set(sh("2026-03-02 12:00"))
	tapEvent := func(card int, dev string, seq uint64, at string, dir events.Direction, station string) events.Event {
		e := w.city.Tap(w.cards[card], dir, seq)
		d := e.Data.(*events.TransitTap)
		d.OperatorID, d.DeviceID, d.StationID, d.Line = "HZMETRO", dev, station, "1"
		d.TappedAt = sh(at).UTC()
		e.OccurredAt = d.TappedAt.Add(time.Minute)
		return e
	}
	first := tapEvent(0, "gate-a", 1, "2026-03-02 08:00", events.DirectionIn, "0101")
	second := tapEvent(0, "gate-b", 7, "2026-03-02 08:20", events.DirectionOut, "0103")
	unknown := tapEvent(1, "gate-c", 1, "2026-03-02 08:20", events.DirectionIn, "9999")
	// The same tap twice in one batch of messages (another event id): the first is accepted.
	again := tapEvent(0, "gate-b", 7, "2026-03-02 08:20", events.DirectionOut, "0103")
	if _, err := w.st.Ingest(ctx, nil, messages(t, "card-events/0", 0, first, second, unknown, again)); err != nil {
		t.Fatal(err)
	}
	res := w.upload(t, "b1", `
		HZMETRO 0 2026-03-02 08:20 out 0103 dev=gate-b seq=7
		HZMETRO 1 2026-03-02 09:00 in 0105 dev=gate-d seq=1`)["HZMETRO"]
	if got := results(res); got != "duplicate accepted" {
		t.Fatalf("batch: %s", got)
	}
	late := tapEvent(1, "gate-d", 1, "2026-03-02 09:00", events.DirectionIn, "0105")
	// Delivered twice: the second delivery is the consumer's duplicate, answered once.
	for range 2 {
		if _, err := w.st.Ingest(ctx, nil, messages(t, "card-events/0", 4, late)); err != nil {
			t.Fatal(err)
		}
	}
	if n, err := w.st.DrainTransitTaps(ctx, w.ts); err != nil || n != 0 {
		t.Fatalf("the inbox held %d: %v", n, err)
	}
	got, err := w.st.TransitEventResults(ctx, []uuid.UUID{first.ID, second.ID, unknown.ID, again.ID, late.ID})
	if err != nil {
		t.Fatal(err)
	}
	for id, want := range map[uuid.UUID]string{first.ID: "accepted", second.ID: "accepted", unknown.ID: "rejected:unknown_station",
		again.ID: "duplicate", late.ID: "duplicate"} {
		o := got[id]
		s := string(o.Result)
		if o.Reason != "" {
			s += ":" + string(o.Reason)
		}
		if s != want {
			t.Errorf("event %s: %s, want %s", id, s, want)
		}
	}
	w.close(t, sh("2026-03-03 10:00"))
	if got := w.funds(t, 0); got != 10000-200 {
		t.Errorf("card 0 funds %d", got)
	}
	if got := w.funds(t, 1); got != 10000-1000 {
		t.Errorf("card 1 funds %d", got)
	}
}

func TestTransitDayClose(t *testing.T) {
	ctx := context.Background()
	w := newTransitWorld(t, 3, 10000)
	w.clock.Set(sh("2026-03-03 05:00"))
	w.upload(t, "monday", `
		HZBUS 0 2026-03-02 07:30 single K155-12
		HZMETRO 0 2026-03-02 08:00 in 0116
		HZMETRO 0 2026-03-02 08:25 out 0101
		HZMETRO 1 2026-03-02 08:00 in 0101
		HZMETRO 1 2026-03-02 08:10 out 0101
		HZMETRO 1 2026-03-02 18:00 in 0101
		SHMETRO 2 2026-03-02 09:00 in 0101
		SHMETRO 2 2026-03-02 09:40 out 0113
		HZMETRO 2 2026-03-03 03:50 in 0101
		HZMETRO 2 2026-03-03 04:20 out 0105`)

	// Not yet: Hangzhou's Monday closes on Tuesday at 09:00, Shanghai's at 10:00.
	if rep := w.close(t, sh("2026-03-03 08:59")); rep.DaysClosed != 0 || rep.Transfers != 0 {
		t.Fatalf("closed early: %+v", rep)
	}
	rep := w.close(t, sh("2026-03-03 09:30"))
	if rep.DaysClosed != 1 || rep.Transfers != 4 {
		t.Fatalf("Hangzhou's close: %+v", rep)
	}
	// Card 0: bus 2.00, then the metro 5.00 less the 1.00 transfer discount; card 1: a free
	// same-station exit, then a tap in never closed: the maximum fare; card 2: Monday's late
	// Hangzhou journey at 03:50, 3.00.
	for i, want := range []int64{10000 - 200 - 400, 10000 - 1000, 10000 - 300} {
		if got := w.funds(t, i); got != want {
			t.Errorf("card %d funds %d, want %d", i, got, want)
		}
	}
	rep = w.close(t, sh("2026-03-03 10:00"))
	if rep.DaysClosed != 1 || rep.Transfers != 1 || rep.Charged != 400 {
		t.Fatalf("Shanghai's close: %+v", rep)
	}
	// A close that runs again, or a crashed close finished, changes nothing.
	if rep := w.close(t, sh("2026-03-03 10:05")); rep.Transfers != 0 || rep.DaysClosed != 0 {
		t.Fatalf("again: %+v", rep)
	}
	if got, want := w.operator(t, "HZMETRO"), int64(400+1000+300); got != want {
		t.Errorf("HZMETRO clearing %d, want %d", got, want)
	}
	if got := w.operator(t, "HZBUS"); got != 200 {
		t.Errorf("HZBUS clearing %d", got)
	}
	if got := w.operator(t, "SHMETRO"); got != 400 {
		t.Errorf("SHMETRO clearing %d", got)
	}

	card, days, err := w.st.TransitTrips(ctx, w.ts, w.cards[0], monday, monday)
	if err != nil || card != w.cards[0] || len(days) != 2 {
		t.Fatalf("trips: %v %d days", err, len(days))
	}
	metro := days[1]
	if metro.Operator != "HZMETRO" || metro.Priced != 400 || metro.Paid != 400 || len(metro.Journeys) != 1 || len(metro.Postings) != 1 {
		t.Fatalf("metro day %+v", metro)
	}
	if j := metro.Journeys[0]; j.Kind != transit.KindComplete || j.Fare != 500 || j.Discount != 100 || j.Charged != 400 {
		t.Fatalf("journey %+v", j)
	}
	if p := metro.Postings[0]; p.Code != clearing.CodeTransitFare || p.Amount != 400 || p.Revision != 0 {
		t.Fatalf("posting %+v", p)
	}
	tr, err := w.st.Transfer(ctx, metro.Postings[0].TransferID)
	if err != nil || tr.DebitAccountID != cards.AccountID("funds", w.cards[0]) || tr.CreditAccountID != clearing.PartyAccount(clearing.PartyOperator, "HZMETRO") {
		t.Fatalf("the posting's transfer: %+v %v", tr, err)
	}
	if _, _, err := w.st.TransitTrips(ctx, w.ts, "tok_nobody", monday, monday); !errors.Is(err, postgres.ErrNotFound) {
		t.Fatalf("trips of nobody: %v", err)
	}
	if _, _, err := w.st.TransitTrips(ctx, w.ts, w.cards[0], monday, monday+31); err == nil {
		t.Fatal("32 days of trips")
	}
}

// A tap arriving after its day closed re-prices the day and posts the difference as an
// adjustment, both ways; a re-priced day carries into the week's later closed days.
func TestTransitLateTaps(t *testing.T) {
	ctx := context.Background()
	w := newTransitWorld(t, 1, 20000)
	w.clock.Set(sh("2026-03-03 23:00"))
	w.upload(t, "days", `
		HZMETRO 0 2026-03-02 08:00 in 0101
		HZMETRO 0 2026-03-02 18:00 in 0122
		HZMETRO 0 2026-03-02 18:50 out 0101
		HZMETRO 0 2026-03-03 07:00 in 0101
		HZMETRO 0 2026-03-03 07:50 out 0122`)
	w.close(t, sh("2026-03-04 10:00"))
	// Monday: the maximum fare and 7.00; Tuesday 7.00.
	if got := w.funds(t, 0); got != 20000-1700-700 {
		t.Fatalf("funds after the close: %d", got)
	}

	// The gate at Xiasha West uploads Monday morning's exit on Wednesday: Monday is 7 + 7.
	w.clock.Set(sh("2026-03-04 11:00"))
	res := w.upload(t, "late", `HZMETRO 0 2026-03-02 08:50 out 0122 dev=gate-xiasha`)["HZMETRO"]
	if results(res) != "accepted" {
		t.Fatalf("late tap: %s", results(res))
	}
	rep := w.close(t, sh("2026-03-04 11:05"))
	if rep.Transfers != 1 || rep.Charged != -300 {
		t.Fatalf("re-pricing: %+v", rep)
	}
	_, days, err := w.st.TransitTrips(ctx, w.ts, w.cards[0], monday, monday)
	if err != nil || len(days) != 1 {
		t.Fatal(err)
	}
	d := days[0]
	if d.Priced != 1400 || d.Paid != 1400 || len(d.Postings) != 2 {
		t.Fatalf("monday %+v", d)
	}
	if p := d.Postings[1]; p.Code != clearing.CodeTransitAdjustment || p.Amount != -300 || p.Revision != 1 {
		t.Fatalf("adjustment %+v", p)
	}
	tr, err := w.st.Transfer(ctx, d.Postings[1].TransferID)
	if err != nil || tr.CreditAccountID != cards.AccountID("funds", w.cards[0]) || tr.Amount != 300 {
		t.Fatalf("the refund runs from the operator to the card: %+v %v", tr, err)
	}
	// The original charge is untouched: a new entry, never an edit.
	if tr0, err := w.st.Transfer(ctx, d.Postings[0].TransferID); err != nil || tr0.Amount != 1700 {
		t.Fatalf("the original charge: %+v %v", tr0, err)
	}

	// A late bus ride on Monday evening: Monday reaches the cap (14 + 2 > 15), and charges 1 more.
	w.upload(t, "late2", `HZBUS 0 2026-03-02 21:00 single K155-01`)
	rep = w.close(t, sh("2026-03-04 11:10"))
	if rep.Transfers != 1 || rep.Charged != 100 {
		t.Fatalf("late bus: %+v", rep)
	}
	if got, want := w.funds(t, 0), int64(20000-1400-100-700); got != want {
		t.Fatalf("funds %d, want %d", got, want)
	}
	if got := w.operator(t, "HZMETRO") + w.operator(t, "HZBUS"); got != 1400+100+700 {
		t.Fatalf("operators hold %d", got)
	}
}

// A charge the card cannot pay puts it on the deny list; its taps after that are refused; funds
// arriving pay the charge and clear the card.
func TestTransitUnpaidFaresAndDenyList(t *testing.T) {
	ctx := context.Background()
	w := newTransitWorld(t, 2, 500)
	w.clock.Set(sh("2026-03-02 23:00"))
	w.upload(t, "monday", `
		HZMETRO 0 2026-03-02 08:00 in 0101
		HZMETRO 0 2026-03-02 08:40 out 0122
		HZMETRO 1 2026-03-02 08:00 in 0101
		HZMETRO 1 2026-03-02 08:20 out 0103`)
	rep := w.close(t, sh("2026-03-03 09:30"))
	if rep.Unpaid != 1 || rep.Transfers != 1 {
		t.Fatalf("close: %+v", rep)
	}
	if got := w.funds(t, 0); got != 500 {
		t.Fatalf("an unpaid charge moved money: %d", got)
	}
	list, err := w.st.DenyList(ctx, "", 0)
	if err != nil || len(list) != 1 || list[0].Card != w.cards[0] || list[0].Owed != 700 || !list[0].Since.Equal(sh("2026-03-03 09:30")) {
		t.Fatalf("deny list %+v %v", list, err)
	}
	if e, denied, err := w.st.CardDenyStatus(ctx, w.cards[0]); err != nil || !denied || e.Owed != 700 {
		t.Fatalf("card 0 status %+v %v %v", e, denied, err)
	}
	if _, denied, err := w.st.CardDenyStatus(ctx, w.cards[1]); err != nil || denied {
		t.Fatalf("card 1 denied %v %v", denied, err)
	}
	if _, _, err := w.st.CardDenyStatus(ctx, "tok_nobody"); !errors.Is(err, postgres.ErrNotFound) {
		t.Fatalf("unknown card: %v", err)
	}

	// Card 0's taps after it went on the list are refused; a tap from before it is not.
	w.clock.Set(sh("2026-03-03 12:00"))
	res := w.upload(t, "tuesday", `
		HZMETRO 0 2026-03-03 11:00 in 0101
		HZMETRO 0 2026-03-03 08:00 in 0101`)["HZMETRO"]
	if got := results(res); got != "rejected:card_denied accepted" {
		t.Fatalf("denied card's taps: %s", got)
	}
	// Retrying without funds changes nothing.
	if n, rep, err := w.st.RetryOwedFares(ctx, w.ts, sh("2026-03-03 12:00")); err != nil || n != 1 || rep.Unpaid != 1 || rep.Transfers != 0 {
		t.Fatalf("retry without funds: %d %+v %v", n, rep, err)
	}
	// The bank mirrors funds onto the card; the retry pays and clears it.
	if _, err := w.st.Ingest(ctx, nil, messages(t, "card-events/0", 0, w.city.Funding(1000, 1000)[0])); err != nil {
		t.Fatal(err)
	}
	if n, rep, err := w.st.RetryOwedFares(ctx, w.ts, sh("2026-03-03 13:00")); err != nil || n != 1 || rep.Transfers != 1 || rep.Charged != 700 {
		t.Fatalf("retry with funds: %d %+v %v", n, rep, err)
	}
	if got := w.funds(t, 0); got != 1500-700 {
		t.Fatalf("funds %d", got)
	}
	if list, err := w.st.DenyList(ctx, "", 0); err != nil || len(list) != 0 {
		t.Fatalf("deny list after paying %+v %v", list, err)
	}
	_, days, err := w.st.TransitTrips(ctx, w.ts, w.cards[0], monday, monday)
	if err != nil || len(days) != 1 || days[0].Owed != 0 || days[0].Paid != 700 || days[0].Postings[0].Code != clearing.CodeTransitFare {
		t.Fatalf("monday after paying %+v %v", days, err)
	}
	w.clock.Set(sh("2026-03-03 13:00"))
	res = w.upload(t, "tuesday-2", `HZMETRO 0 2026-03-03 12:30 out 0101`)["HZMETRO"]
	if got := results(res); got != "accepted" {
		t.Fatalf("a paid-up card's tap: %s", got)
	}
}

// Random tap streams, uploaded in random batches or sent through Kafka, in random order, with
// repeats and taps arriving after their day closed, days closing as time passes, and some cards
// without funds until the end: in the end every card's days are priced as their taps price them
// all at once, no day exceeds its cap, each operator's clearing account holds what its cards
// paid, and the ledger verifies (pgtest, when the test ends).
func TestTransitRandomStreams(t *testing.T) { testTransitRandomStreams(t, false) }

// The same streams with the consumer deciding taps in its own transactions, as serve runs it.
func TestTransitRandomStreamsDecidedByTheConsumer(t *testing.T) { testTransitRandomStreams(t, true) }

func testTransitRandomStreams(t *testing.T, direct bool) {
	ctx := context.Background()
	const (
		ncards = 12
		broke  = 3 // cards 0..broke-1 have no funds until the end
	)
	w := newTransitWorld(t, ncards, 0)
	if direct {
		w.st.TransitFares = func() *transit.Tables { return w.ts }
	}
	funding := w.city.Funding(30000, 30000)
	if _, err := w.st.Ingest(ctx, nil, messages(t, "funding", 0, funding[broke:]...)); err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(11, 13))
	hz, _ := w.ts.Group("city/hangzhou")
	shg, _ := w.ts.Group("operator/SHMETRO")
	week := []transit.Day{monday, monday + 1, monday + 2, monday + 3, monday + 4, monday + 5, monday + 6}

	type upload struct {
		op  string
		raw transit.RawTap
		at  time.Time // when the tap happened
	}
	var all []upload
	seq := 0
	for c := 0; c < ncards; c++ {
		for range 5 + rng.IntN(15) {
			g := hz
			if rng.IntN(4) == 0 {
				g = shg
			}
			opID := g.Operators[rng.IntN(len(g.Operators))]
			op, _ := w.ts.Operator(opID)
			stations := stationsOf(op)
			d := week[rng.IntN(len(week))]
			at := g.DayStart(d).Add(time.Duration(rng.IntN(20*60)) * time.Minute)
			mk := func(at time.Time, dir string) upload {
				seq++
				mode := "metro"
				if op.Mode == events.ModeBus {
					mode = "bus"
				}
				return upload{op: opID, at: at, raw: transit.RawTap{DeviceID: fmt.Sprintf("d%d", rng.IntN(3)), DeviceSeq: strconv.Itoa(seq),
					CardToken: w.cards[c], TappedAt: at.Format(time.RFC3339), StationID: stations[rng.IntN(len(stations))], Direction: dir, Mode: mode}}
			}
			if op.Pricing == transit.PricingFlat {
				all = append(all, mk(at, "single"))
				continue
			}
			all = append(all, mk(at, "in"))
			if rng.IntN(6) != 0 {
				all = append(all, mk(at.Add(time.Duration(5+rng.IntN(70))*time.Minute), "out"))
			}
		}
	}
	// Arrival: mostly the hour after the tap, a fifth days later; some twice.
	arrival := func(u upload) time.Time {
		a := u.at.Add(time.Hour)
		if rng.IntN(5) == 0 {
			a = a.Add(time.Duration(1+rng.IntN(4)) * 24 * time.Hour)
		}
		return a
	}
	type timed struct {
		u  upload
		at time.Time
	}
	var stream []timed
	for _, u := range all {
		stream = append(stream, timed{u, arrival(u)})
		if rng.IntN(10) == 0 {
			stream = append(stream, timed{u, arrival(u)})
		}
	}
	slices.SortStableFunc(stream, func(a, b timed) int { return a.at.Compare(b.at) })

	batch, offset := 0, int64(0)
	flush := func(pending []timed, now time.Time) {
		w.clock.Set(now)
		byOp := map[string]*postgres.TapBatch{}
		var kafka []events.Event
		for _, p := range pending {
			r := p.u.raw
			if rng.IntN(3) == 0 {
				seq, _ := strconv.ParseUint(r.DeviceSeq, 10, 64)
				card := slices.Index(w.cards, r.CardToken)
				e := w.city.Tap(w.cards[card], events.Direction(r.Direction), seq)
				d := e.Data.(*events.TransitTap)
				d.OperatorID, d.DeviceID, d.StationID, d.Line, d.Mode = p.u.op, r.DeviceID, r.StationID, "", events.Mode(r.Mode)
				d.TappedAt, e.OccurredAt = p.u.at.UTC(), now.UTC()
				kafka = append(kafka, e)
				continue
			}
			b := byOp[p.u.op]
			if b == nil {
				batch++
				b = &postgres.TapBatch{Operator: p.u.op, BatchID: fmt.Sprintf("b%d", batch), RequestHash: sha256.Sum256([]byte(strconv.Itoa(batch)))}
				byOp[p.u.op] = b
			}
			b.Taps = append(b.Taps, w.ts.ParseTap(p.u.op, &r))
			b.Refs = append(b.Refs, postgres.TapRef{DeviceID: r.DeviceID, DeviceSeq: r.DeviceSeq})
		}
		if len(kafka) > 0 {
			d, err := w.st.Ingest(ctx, nil, messages(t, "card-events/0", offset, kafka...))
			if err != nil {
				t.Fatal(err)
			}
			offset += int64(len(kafka))
			if len(d.Taps) != len(kafka) {
				t.Fatalf("the consumer recorded %d of %d taps", len(d.Taps), len(kafka))
			}
		}
		for _, b := range byOp {
			res, _, err := w.st.SubmitTapBatch(ctx, w.ts, *b)
			if err != nil {
				t.Fatal(err)
			}
			for _, a := range res.Answers {
				if a.Result == transit.Rejected && a.Reason != transit.ReasonDenied {
					t.Fatalf("a generated tap refused: %+v", a)
				}
			}
		}
		for {
			n, err := w.st.DrainTransitTaps(ctx, w.ts)
			if err != nil {
				t.Fatal(err)
			}
			if n == 0 {
				break
			}
		}
	}
	// Time moves in steps of six hours: each step uploads what arrived and closes what is due.
	now := sh("2026-03-02 04:00")
	end := sh("2026-03-14 12:00")
	i := 0
	for ; now.Before(end); now = now.Add(6 * time.Hour) {
		var pending []timed
		for i < len(stream) && stream[i].at.Before(now) {
			pending = append(pending, stream[i])
			i++
		}
		if len(pending) > 0 {
			rng.Shuffle(len(pending), func(a, b int) { pending[a], pending[b] = pending[b], pending[a] })
			flush(pending, now)
		}
		w.close(t, now)
	}
	if i != len(stream) {
		t.Fatalf("%d taps never uploaded", len(stream)-i)
	}
	list, err := w.st.DenyList(ctx, "", 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != broke {
		t.Fatalf("deny list has %d cards, want the %d without funds", len(list), broke)
	}
	// The cards without funds tapped after they went on the deny list, and were refused then:
	// the final pricing leaves those taps out.
	denied := map[string]time.Time{}
	for _, e := range list {
		denied[e.Card] = e.Since
	}
	if _, err := w.st.Ingest(ctx, nil, messages(t, "funding", int64(broke), funding[:broke]...)); err != nil {
		t.Fatal(err)
	}
	if n, rep, err := w.st.RetryOwedFares(ctx, w.ts, end); err != nil || n == 0 || rep.Unpaid != 0 {
		t.Fatalf("paying what is owed: %d %+v %v", n, rep, err)
	}
	if list, err := w.st.DenyList(ctx, "", 0); err != nil || len(list) != 0 {
		t.Fatalf("deny list after paying: %+v %v", list, err)
	}

	// Every card-day as all its accepted taps price it.
	want := map[string]int64{} // operator → its cards' charges over the week
	paidByOp := map[string]int64{}
	adjustments := 0
	for c := 0; c < ncards; c++ {
		_, days, err := w.st.TransitTrips(ctx, w.ts, w.cards[c], monday, monday+6)
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]int64{}
		for _, d := range days {
			got[d.Operator+"/"+d.Day.String()] = d.Priced
			if d.Owed != 0 || d.Paid != d.Priced {
				t.Errorf("card %d %s %s: priced %d paid %d owed %d", c, d.Operator, d.Day, d.Priced, d.Paid, d.Owed)
			}
			paidByOp[d.Operator] += d.Paid
			var charged, credit int64
			for _, j := range d.Journeys {
				charged += j.Charged
				credit += j.CapCredit
			}
			if charged != d.Priced || credit != d.CapCredit {
				t.Errorf("card %d %s %s: journeys charge %d and credit %d, the day %d and %d", c, d.Operator, d.Day, charged, credit, d.Priced, d.CapCredit)
			}
			for _, p := range d.Postings {
				if p.Code == clearing.CodeTransitAdjustment {
					adjustments++
				}
			}
		}
		for _, g := range []*transit.Group{hz, shg} {
			var taps []transit.Tap
			seen := map[transit.Key]bool{}
			for _, u := range all {
				r := u.raw
				cand := w.ts.ParseTap(u.op, &r)
				if r.CardToken != w.cards[c] || !slices.Contains(g.Operators, u.op) || seen[cand.Tap.Key()] {
					continue
				}
				seen[cand.Tap.Key()] = true
				if since, ok := denied[r.CardToken]; ok && !cand.Tap.At.Before(since) && tapRefused(t, w, cand.Tap) {
					continue
				}
				taps = append(taps, cand.Tap)
			}
			priced, err := w.ts.PriceDays(g, taps, week, transit.Prior{}, nil, end)
			if err != nil {
				t.Fatal(err)
			}
			var weekCounted int64
			for _, dp := range priced {
				weekCounted += dp.CapCounted
				if daily := g.RulesOn(dp.Day).DailyCap; daily != transit.NoCap && dp.CapCounted > daily {
					t.Errorf("card %d %s: %d over the daily cap", c, dp.Day, dp.CapCounted)
				}
				for op, od := range dp.ByOperator {
					k := op + "/" + dp.Day.String()
					if got[k] != od.Charged {
						t.Errorf("card %d %s: stored %d, the taps price %d", c, k, got[k], od.Charged)
					}
					delete(got, k)
					want[op] += od.Charged
				}
			}
			if weekly := g.RulesOn(week[0]).WeeklyCap; weekly != transit.NoCap && weekCounted > weekly {
				t.Errorf("card %d %s: week %d over the weekly cap", c, g.Key, weekCounted)
			}
		}
		for k, v := range got {
			if v != 0 {
				t.Errorf("card %d %s: stored %d for a day the taps do not price", c, k, v)
			}
		}
	}
	for _, op := range w.ts.Operators() {
		if bal := w.operator(t, op.ID); bal != want[op.ID] || bal != paidByOp[op.ID] {
			t.Errorf("%s: clearing account %d, its cards' charges %d, days paid %d", op.ID, bal, want[op.ID], paidByOp[op.ID])
		}
		t.Logf("%s: %s CNY from its cards", op.ID, ledger.FormatAmount(want[op.ID], "CNY"))
	}
	if adjustments == 0 {
		t.Error("no late tap adjusted a closed day: the stream does not test re-pricing")
	}
	t.Logf("%d taps, %d uploads, %d adjustments", len(all), len(stream), adjustments)
}

// tapRefused reports whether the store kept tap out of transit_taps (it was refused).
func tapRefused(t *testing.T, w *transitWorld, tap transit.Tap) bool {
	t.Helper()
	var n int
	err := w.st.Pool().QueryRow(context.Background(), `SELECT count(*) FROM transit_taps WHERE operator_id = $1 AND device_id = $2 AND device_seq = $3`,
		tap.Operator, tap.Device, tap.Seq).Scan(&n)
	if err != nil {
		t.Fatal(err)
	}
	return n == 0
}

func stationsOf(op *transit.Operator) []string {
	var out []string
	for _, id := range []string{"0101", "0103", "0105", "0110", "0111", "0113", "0116", "0122", "0201", "0210", "0216", "0128", "0221",
		"K155-01", "K155-07", "B1-03", "K7-02"} {
		if op.HasStation(id, "") {
			out = append(out, id)
		}
	}
	return out
}

// A late tap in can end up claiming a tap out on the next travel day: the journey is the day
// the tap in started, and the next day, which had charged the exit the maximum fare as a journey
// without an entry, is re-priced too and pays it back.
func TestTransitLateEntryReclaimsAnExitChargedTheNextDay(t *testing.T) {
	ctx := context.Background()
	w := newTransitWorld(t, 1, 20000)
	// Shanghai's travel day starts at 05:00: the exit at 05:20 is Tuesday's, and with no entry
	// known it costs the maximum fare when Tuesday closes.
	w.clock.Set(sh("2026-03-03 05:25"))
	if res := w.upload(t, "exit", `SHMETRO 0 2026-03-03 05:20 out 0113 dev=gate-out`)["SHMETRO"]; results(res) != "accepted" {
		t.Fatalf("exit: %s", results(res))
	}
	w.close(t, sh("2026-03-04 11:00"))
	if got := w.funds(t, 0); got != 20000-1000 {
		t.Fatalf("funds after Tuesday closed: %d, want the maximum fare paid", got)
	}
	// The reader at the entry uploads Monday's 04:50 tap in on Wednesday: one journey of Monday,
	// 4.00, and nothing on Tuesday.
	w.clock.Set(sh("2026-03-04 11:30"))
	if res := w.upload(t, "late", `SHMETRO 0 2026-03-03 04:50 in 0101 dev=gate-in`)["SHMETRO"]; results(res) != "accepted" {
		t.Fatalf("late entry: %s", results(res))
	}
	rep := w.close(t, sh("2026-03-04 11:35"))
	if got := w.funds(t, 0); got != 20000-400 {
		t.Errorf("funds after the re-pricing: %d, want %d (one journey of 4.00); re-pricing %+v", got, 20000-400, rep)
	}
	_, days, err := w.st.TransitTrips(ctx, w.ts, w.cards[0], monday, monday+1)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range days {
		want := map[transit.Day]int64{monday: 400, monday + 1: 0}[d.Day]
		if d.Priced != want || d.Paid != want {
			t.Errorf("%s: priced %d, paid %d, want %d", d.Day, d.Priced, d.Paid, want)
		}
	}
	if got := w.operator(t, "SHMETRO"); got != 400 {
		t.Errorf("SHMETRO clearing %d, want 400", got)
	}
}
