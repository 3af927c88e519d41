package postgres_test

import (
	"context"
	"errors"
	"testing"

	"github.com/google/uuid"

	"github.com/joinincard/engine/clearing"
	"github.com/joinincard/engine/events"
	"github.com/joinincard/engine/postgres"
	"github.com/joinincard/engine/transit"
)

// kafkaTapRows counts what taps from Kafka wrote: accepted taps, decisions, answers and dead
// letters of the source.
type kafkaTapRows struct{ taps, processed, answers, deadLetters int }

func countKafkaTapRows(t *testing.T, st *postgres.Store, source string) kafkaTapRows {
	t.Helper()
	var n kafkaTapRows
	err := st.Pool().QueryRow(context.Background(), `SELECT
		(SELECT count(*) FROM transit_taps WHERE source = 'kafka'),
		(SELECT count(*) FROM processed_events WHERE source = $1),
		(SELECT count(*) FROM transit_event_results),
		(SELECT count(*) FROM dead_letters WHERE source = $1)`, source).Scan(&n.taps, &n.processed, &n.answers, &n.deadLetters)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// Taps decided by the consumer write two rows each when accepted (the tap and the event's
// decision) and an answer only when not; the batch is all or nothing with its cursor. A crash
// before the commit leaves nothing, the batch again is decided once, a replay behind the cursor is
// refused, a message sent twice is a duplicate, an event id with other content is a conflict, and
// malformed events and taps of unknown cards are dead letters. A card named by two of its tokens
// in one batch has its status history read once, in order.
func TestKafkaTapsRecordedOnceEach(t *testing.T) {
	ctx := context.Background()
	w := newTransitWorld(t, 3, 10000)
	w.st.TransitFares = func() *transit.Tables { return w.ts }
	// Card 2 is blocked from 09:00 to 10:00.
	w.clock.Set(sh("2026-03-02 09:00"))
	w.ingest(t, w.cardEvent(2, &events.CardStatusChanged{Status: events.StatusBlocked, Reason: "reported lost by the cardholder"}))
	w.clock.Set(sh("2026-03-02 10:00"))
	w.ingest(t, w.cardEvent(2, &events.CardStatusChanged{Status: events.StatusActive, Reason: "found"}))
	// Card 2's physical card, as its registration would name it.
	const physicalToken = "phys-00000000000000000002"
	if _, err := w.st.Pool().Exec(ctx, `INSERT INTO card_tokens (token, card_token) VALUES ($1, $2)`, physicalToken, w.cards[2]); err != nil {
		t.Fatal(err)
	}

	w.clock.Set(sh("2026-03-02 12:00"))
	in0 := w.kafkaTap(0, "gate-k", 1, "2026-03-02 08:00", events.DirectionIn, "0101")
	out0 := w.kafkaTap(0, "gate-k", 2, "2026-03-02 08:20", events.DirectionOut, "0103")
	blocked := w.kafkaTap(2, "gate-k", 3, "2026-03-02 09:30", events.DirectionIn, "0101")
	physical := w.kafkaTap(2, "gate-k", 4, "2026-03-02 10:30", events.DirectionIn, "0101")
	physical.CardToken = physicalToken
	badStation := w.kafkaTap(1, "gate-k", 5, "2026-03-02 08:00", events.DirectionIn, "9999")
	unknownCard := w.kafkaTap(1, "gate-k", 6, "2026-03-02 08:00", events.DirectionIn, "0101")
	unknownCard.CardToken = "card-00000000000000000000"
	const source = "card-events/1"
	msgs := messages(t, source, 0, in0, out0, blocked, physical, badStation, unknownCard)
	raw := []byte(`{"id": "not an event"`)
	_, decodeErr := events.Decode(raw)
	msgs = append(msgs, clearing.Message{Source: source, Offset: 6, Raw: raw, DecodeErr: decodeErr})
	cur := []postgres.Cursor{{Name: source, From: 0, To: 7}}

	// The process dies before the commit: nothing of the batch stays.
	killed := errors.New("killed before the commit")
	err := w.st.InTx(ctx, cur, func(ctx context.Context, tx *postgres.Tx) error {
		if _, err := tx.Ingest(ctx, msgs); err != nil {
			return err
		}
		return killed
	})
	if !errors.Is(err, killed) {
		t.Fatalf("the killed batch: %v", err)
	}
	if got := countKafkaTapRows(t, w.st, source); got != (kafkaTapRows{}) {
		t.Fatalf("a batch that did not commit left %+v", got)
	}

	// The batch again from its cursor: three taps accepted, the blocked card's and the unknown
	// station's answered, the unknown card and the malformed message dead letters.
	if _, err := w.st.Ingest(ctx, cur, msgs); err != nil {
		t.Fatal(err)
	}
	want := kafkaTapRows{taps: 3, processed: 6, answers: 2, deadLetters: 2}
	if got := countKafkaTapRows(t, w.st, source); got != want {
		t.Fatalf("rows %+v, want %+v", got, want)
	}
	ids := []uuid.UUID{in0.ID, out0.ID, blocked.ID, physical.ID, badStation.ID, unknownCard.ID}
	answers, err := w.st.TransitEventResults(ctx, ids)
	if err != nil {
		t.Fatal(err)
	}
	for id, want := range map[uuid.UUID]string{in0.ID: "accepted", out0.ID: "accepted", blocked.ID: "rejected:card_blocked",
		physical.ID: "accepted", badStation.ID: "rejected:unknown_station"} {
		o := answers[id]
		got := string(o.Result)
		if o.Reason != "" {
			got += ":" + string(o.Reason)
		}
		if got != want {
			t.Errorf("event %s: %q, want %q", id, got, want)
		}
	}
	if _, ok := answers[unknownCard.ID]; ok || len(answers) != 5 {
		t.Errorf("answers %+v", answers)
	}

	// A process that missed the commit sends the batch again: the cursor refuses it whole.
	if _, err := w.st.Ingest(ctx, cur, msgs); !errors.Is(err, postgres.ErrCursorMoved) {
		t.Fatalf("a replay behind the cursor: %v", err)
	}
	// The producer sent four of the events again, at later offsets: duplicates, nothing written.
	d, err := w.st.Ingest(ctx, []postgres.Cursor{{Name: source, From: 7, To: 11}}, messages(t, source, 7, in0, out0, blocked, badStation))
	if err != nil {
		t.Fatal(err)
	}
	if d.Duplicates != 4 || len(d.DeadLetters) != 0 {
		t.Fatalf("sent again: %d duplicates, dead letters %+v", d.Duplicates, d.DeadLetters)
	}
	if got := countKafkaTapRows(t, w.st, source); got != want {
		t.Fatalf("rows after duplicates %+v, want %+v", got, want)
	}
	// An event id again with another tap: a conflict, never a tap.
	conflict := w.kafkaTap(0, "gate-k", 7, "2026-03-02 08:40", events.DirectionIn, "0105")
	conflict.ID = in0.ID
	d, err = w.st.Ingest(ctx, []postgres.Cursor{{Name: source, From: 11, To: 12}}, messages(t, source, 11, conflict))
	if err != nil {
		t.Fatal(err)
	}
	if len(d.DeadLetters) != 1 || d.DeadLetters[0].Kind != clearing.Conflict {
		t.Fatalf("conflict: %+v", d.DeadLetters)
	}
	want.deadLetters++
	if got := countKafkaTapRows(t, w.st, source); got != want {
		t.Fatalf("rows after the conflict %+v, want %+v", got, want)
	}

	// The same tap again under another event id (the reader sent it twice): the tap's key is
	// taken, and the event is answered as a duplicate, whether or not the transaction looked
	// the taps up before writing them.
	for i, offset := range []int64{12, 13} {
		repeat := w.kafkaTap(0, "gate-k", 1, "2026-03-02 08:00", events.DirectionIn, "0101")
		d, err = w.st.Ingest(ctx, []postgres.Cursor{{Name: source, From: offset, To: offset + 1}}, messages(t, source, offset, repeat))
		if err != nil {
			t.Fatal(err)
		}
		answers, err := w.st.TransitEventResults(ctx, []uuid.UUID{repeat.ID})
		if err != nil || answers[repeat.ID].Result != transit.Duplicate || len(d.DeadLetters) != 0 {
			t.Fatalf("repeat %d: %+v %v, dead letters %+v", i, answers, err, d.DeadLetters)
		}
		want.processed++
		want.answers++
		if got := countKafkaTapRows(t, w.st, source); got != want {
			t.Fatalf("rows after repeat %d: %+v, want %+v", i, got, want)
		}
	}

	// Monday closes: card 0's journey 0101 to 0103 is 2.00; card 2's tap in after its block,
	// by its physical card, never left: the maximum fare.
	w.close(t, sh("2026-03-03 10:00"))
	for i, paid := range []int64{200, 0, 1000} {
		if got := w.funds(t, i); got != 10000-paid {
			t.Errorf("card %d paid %d, want %d", i, 10000-got, paid)
		}
	}
}
