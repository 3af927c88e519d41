package postgres_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/joinincard/engine/clearing"
	"github.com/joinincard/engine/events"
	"github.com/joinincard/engine/internal/pgtest"
	"github.com/joinincard/engine/ledger"
	"github.com/joinincard/engine/loadtest"
	"github.com/joinincard/engine/postgres"
)

func messages(t *testing.T, source string, from int64, evs ...events.Event) []clearing.Message {
	t.Helper()
	msgs := make([]clearing.Message, len(evs))
	for i, e := range evs {
		raw := loadtest.Encode(e)
		dec, err := events.Decode(raw)
		msgs[i] = clearing.Message{Source: source, Offset: from + int64(i), Raw: raw, Event: dec, DecodeErr: err}
	}
	return msgs
}

func registerParties(t *testing.T, st *postgres.Store, city *loadtest.City) {
	t.Helper()
	for _, p := range city.Parties() {
		if _, err := st.RegisterParty(context.Background(), p.Kind, p.ID, p.Name); err != nil {
			t.Fatal(err)
		}
	}
}

func TestIngestDecidesEveryMessageOnce(t *testing.T) {
	st := pgtest.NewStore(t)
	pgtest.ClockFrom(st, time.Date(2024, 12, 3, 9, 0, 0, 0, time.UTC)) // the day after the city's events
	ctx := context.Background()
	city := loadtest.NewCity(1, 3, 2, time.Date(2024, 12, 2, 9, 0, 0, 0, time.UTC))
	registerParties(t, st, city)
	regs := city.Registrations()
	funds := city.Funding(50000, 50000)
	buys := city.Purchases(4, 5000)
	refund := city.Refund(buys[0], buys[0].Data.(*events.PurchaseCleared).Amount.Minor/2)
	contribution := city.Contribution(city.Cards[1], 12000)
	tap := city.Tap(city.Cards[2], events.DirectionIn, 7)

	// An unknown merchant, a card nobody registered, a conflict and a malformed message.
	stranger := city.Purchases(1, 100)[0]
	stranger.Data.(*events.PurchaseCleared).MerchantID = "m-unknown"
	ghost := city.Purchases(1, 100)[0]
	ghost.CardToken = "card-nobody"
	conflict := buys[1]
	conflict.Data = &events.PurchaseCleared{MerchantID: city.Merchants[0], Amount: events.Money{Minor: 1, Currency: "CNY"}, MCC: "5411"}

	var evs []events.Event
	evs = append(evs, regs...)
	evs = append(evs, funds...)
	evs = append(evs, buys...)
	evs = append(evs, refund, contribution, tap, stranger, ghost)
	msgs := messages(t, "card-events/0", 0, evs...)
	msgs = append(msgs, messages(t, "card-events/0", int64(len(msgs)), buys[2], conflict)...)
	msgs = append(msgs, clearing.Message{Source: "card-events/0", Offset: int64(len(msgs)), Raw: []byte(`{"schema":`),
		DecodeErr: func() error { _, err := events.Decode([]byte(`{"schema":`)); return err }()})

	d, err := st.Ingest(ctx, []postgres.Cursor{{Name: "card-events/0", From: 0, To: int64(len(msgs))}}, msgs)
	if err != nil {
		t.Fatal(err)
	}
	counts := map[clearing.Status]int{}
	for _, p := range d.Processed {
		counts[p.Status]++
	}
	want := map[clearing.Status]int{
		clearing.Applied:  len(funds) + len(buys) + 2, // + refund + contribution
		clearing.Accepted: len(regs) + 1,              // + tap
		clearing.Rejected: 2,                          // unknown merchant, unknown card
	}
	for s, n := range want {
		if counts[s] != n {
			t.Errorf("%s: %d events, want %d (%+v)", s, counts[s], n, counts)
		}
	}
	if d.Duplicates != 1 {
		t.Errorf("duplicates: %d, want 1", d.Duplicates)
	}
	reasons := []string{}
	for _, dl := range d.DeadLetters {
		reasons = append(reasons, dl.Reason)
	}
	joined := strings.Join(reasons, "\n")
	for _, want := range []string{"merchant \"m-unknown\" is not registered", "unknown card", "conflict: event id used before", "malformed:"} {
		if !strings.Contains(joined, want) {
			t.Errorf("no dead letter says %q:\n%s", want, joined)
		}
	}
	if len(d.DeadLetters) != 4 {
		t.Errorf("%d dead letters, want 4:\n%s", len(d.DeadLetters), joined)
	}

	expected := city.Expected(append(append(append(append([]events.Event{}, funds...), buys...), refund), contribution))
	for key, net := range expected {
		b, err := st.Balance(ctx, loadtest.AccountOf(key))
		if err != nil {
			t.Fatalf("%s: %v", key, err)
		}
		if b.Net() != net {
			t.Errorf("%s: net %s, want %s", key, ledger.FormatAmount(b.Net(), "CNY"), ledger.FormatAmount(net, "CNY"))
		}
	}

	// The whole batch again, at the next offsets: every event is a duplicate and nothing moves.
	again, err := st.Ingest(ctx, []postgres.Cursor{{Name: "card-events/0", From: int64(len(msgs)), To: 2 * int64(len(msgs))}},
		messages(t, "card-events/0", int64(len(msgs)), evs...))
	if err != nil {
		t.Fatal(err)
	}
	if again.Duplicates != len(evs) || len(again.Processed) != 0 || len(again.Transfers) != 0 {
		t.Fatalf("redelivery: %d duplicates of %d, %d processed, %d transfers", again.Duplicates, len(evs), len(again.Processed), len(again.Transfers))
	}
	dls, err := st.UnrelayedDeadLetters(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(dls) != 4 {
		t.Fatalf("%d dead letters waiting for relay, want 4", len(dls))
	}
	if err := st.MarkRelayed(ctx, dls); err != nil {
		t.Fatal(err)
	}
	if dls, err = st.UnrelayedDeadLetters(ctx); err != nil || len(dls) != 0 {
		t.Fatalf("after relay: %d, %v", len(dls), err)
	}
	card, err := st.Card(ctx, city.Cards[0])
	if err != nil {
		t.Fatal(err)
	}
	if card.IssuerBank != city.Banks[0] || !strings.HasPrefix(card.PassportToken, "tok_") || strings.Contains(card.PassportMasked, "1000") {
		t.Fatalf("registered card: %+v", card)
	}
}

func TestIngestCardLifecycle(t *testing.T) {
	st := pgtest.NewStore(t)
	ctx := context.Background()
	city := loadtest.NewCity(2, 1, 1, time.Date(2024, 12, 2, 9, 0, 0, 0, time.UTC))
	registerParties(t, st, city)
	reg := city.Registrations()
	card := city.Cards[0]
	block := events.Event{ID: newUUID(t), Type: events.TypeCardStatusChanged, OccurredAt: time.Date(2024, 12, 2, 10, 0, 0, 0, time.UTC),
		CardToken: card, Data: &events.CardStatusChanged{Status: events.StatusClosed, Reason: "left China"}}
	reopen := events.Event{ID: newUUID(t), Type: events.TypeCardStatusChanged, OccurredAt: time.Date(2024, 12, 2, 11, 0, 0, 0, time.UTC),
		CardToken: card, Data: &events.CardStatusChanged{Status: events.StatusActive, Reason: "back"}}
	load := city.Funding(100, 100)[0]
	d, err := st.Ingest(ctx, nil, messages(t, "http", 0, append(reg, block, reopen, load)...))
	if err != nil {
		t.Fatal(err)
	}
	got := []string{}
	for _, p := range d.Processed {
		got = append(got, string(p.Status)+" "+p.Reason)
	}
	want := []string{"accepted ", "accepted ", "rejected a closed card cannot be reopened", "rejected card is closed"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("decisions:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	c, err := st.Card(ctx, card)
	if err != nil {
		t.Fatal(err)
	}
	if c.Declared != events.StatusClosed || c.StatusReason != "left China" {
		t.Fatalf("card after closing: %s %q", c.Declared, c.StatusReason)
	}
}

// A card's immutable elements are cached across batches; its status never is: a card closed in
// one batch refuses funds in the next, even though earlier batches cached it.
func TestCachedCardsStillReadTheirStatus(t *testing.T) {
	st := pgtest.NewStore(t)
	pgtest.ClockFrom(st, time.Date(2024, 12, 3, 9, 0, 0, 0, time.UTC)) // the day after the city's events
	ctx := context.Background()
	city := loadtest.NewCity(6, 1, 1, time.Date(2024, 12, 2, 9, 0, 0, 0, time.UTC))
	registerParties(t, st, city)
	card := city.Cards[0]
	batches := [][]events.Event{
		append(city.Registrations(), city.Funding(5000, 5000)...),
		city.Purchases(1, 100), // reads the card, which the cache now holds
		{{ID: newUUID(t), Type: events.TypeCardStatusChanged, OccurredAt: time.Date(2024, 12, 2, 10, 0, 0, 0, time.UTC),
			CardToken: card, Data: &events.CardStatusChanged{Status: events.StatusClosed, Reason: "left China"}}},
		append(city.Funding(100, 100), city.Purchases(1, 100)...),
	}
	var last *clearing.Decision
	for i, b := range batches {
		d, err := st.Ingest(ctx, nil, messages(t, "test", int64(100*i), b...))
		if err != nil {
			t.Fatal(err)
		}
		last = d
	}
	got := []string{}
	for _, p := range last.Processed {
		got = append(got, string(p.Type)+" "+string(p.Status)+" "+p.Reason)
	}
	want := "funds.loaded rejected card is closed|purchase.cleared applied "
	if strings.Join(got, "|") != want {
		t.Fatalf("after closing: %q, want %q", strings.Join(got, "|"), want)
	}
}

// TestDeadLettersAreStoredRedacted: a message with a card number as card_token and a passport
// number as passport_token is stored without either, with the reason saying what was taken out
// and the HMAC-SHA256 of its original bytes under the token key, as the relay reads it back.
func TestDeadLettersAreStoredRedacted(t *testing.T) {
	const pan, passport = "6228480402564899", "E12345678"
	st := pgtest.NewStore(t)
	tk, err := events.NewTokenizer([]byte("postgres-tests-tokenizer-key-0123456789"))
	if err != nil {
		t.Fatal(err)
	}
	st.Tokenizer = tk
	ctx := context.Background()
	city := loadtest.NewCity(1, 1, 1, time.Date(2024, 12, 2, 9, 0, 0, 0, time.UTC))
	reg := city.Registrations()[0]
	msg := strings.Replace(string(loadtest.Encode(reg)), `"card_token":"`+reg.CardToken+`"`, `"card_token":"`+pan+`"`, 1)
	raw := []byte(strings.Replace(msg, reg.Data.(*events.CardRegistered).PassportToken, passport, 1))
	_, decodeErr := events.DecodeMessage([]byte(pan), raw)
	if decodeErr == nil {
		t.Fatal("the decoder took a card number in clear")
	}
	if _, err := st.Ingest(ctx, nil, []clearing.Message{{Source: "card-events/0", Offset: 3, Raw: raw, DecodeErr: decodeErr}}); err != nil {
		t.Fatal(err)
	}

	var (
		payload, mac []byte
		reason       string
	)
	if err := st.Pool().QueryRow(ctx, `SELECT payload, payload_hmac, reason FROM dead_letters WHERE source = 'card-events/0' AND source_offset = 3`).
		Scan(&payload, &mac, &reason); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{pan, passport} {
		if strings.Contains(string(payload), n) || strings.Contains(reason, n) {
			t.Errorf("dead_letters keeps %s in clear: %s (%s)", n, payload, reason)
		}
	}
	if !strings.HasSuffix(reason, "[redacted: card_token, data.passport_token]") {
		t.Errorf("reason %q does not say what was redacted", reason)
	}
	if want := tk.Fingerprint(raw); string(mac) != string(want) {
		t.Errorf("payload_hmac %x, want the token key's HMAC of the original bytes %x", mac, want)
	}
	dls, err := st.UnrelayedDeadLetters(ctx)
	if err != nil || len(dls) != 1 || string(dls[0].Raw) != string(payload) || string(dls[0].Fingerprint) != string(mac) || dls[0].Reason != reason {
		t.Fatalf("waiting for the relay: %v %+v", err, dls)
	}
}

// An empty message and a tombstone (a message with no value) are dead letters like any other
// malformed message: their payload is stored empty, and the events after them in the batch apply.
func TestIngestDeadLettersEmptyMessagesAndTombstones(t *testing.T) {
	st := pgtest.NewStore(t)
	pgtest.ClockFrom(st, time.Date(2024, 12, 3, 9, 0, 0, 0, time.UTC))
	ctx := context.Background()
	city := loadtest.NewCity(1, 1, 1, time.Date(2024, 12, 2, 9, 0, 0, 0, time.UTC))
	registerParties(t, st, city)
	var evs []events.Event
	evs = append(evs, city.Registrations()...)
	evs = append(evs, city.Funding(50000, 50000)...)
	valid := messages(t, "card-events/0", 2, evs...)
	msgs := []clearing.Message{}
	for i, raw := range [][]byte{nil, {}} {
		_, err := events.DecodeMessage(nil, raw)
		if err == nil {
			t.Fatalf("the decoder took %q", raw)
		}
		msgs = append(msgs, clearing.Message{Source: "card-events/0", Offset: int64(i), Raw: raw, DecodeErr: err})
	}
	msgs = append(msgs, valid...)
	to := valid[len(valid)-1].Offset + 1
	d, err := st.Ingest(ctx, []postgres.Cursor{{Name: "card-events/0", From: 0, To: to}}, msgs)
	if err != nil {
		t.Fatalf("a batch with an empty message and a tombstone: %v", err)
	}
	if len(d.DeadLetters) != 2 {
		t.Errorf("%d dead letters, want the empty message and the tombstone: %+v", len(d.DeadLetters), d.DeadLetters)
	}
	var n int
	if err := st.Pool().QueryRow(ctx, `SELECT count(*) FROM dead_letters WHERE source = 'card-events/0' AND payload = ''::BYTEA AND kind = 'malformed'`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 2 {
		t.Errorf("%d empty malformed dead letters stored, want 2", n)
	}
	applied := 0
	for _, p := range d.Processed {
		if p.Status == clearing.Applied {
			applied++
		}
	}
	if applied != len(city.Funding(50000, 50000)) {
		t.Errorf("%d events applied after the empty messages, want every funding", applied)
	}
	if pos, err := st.Cursor(ctx, "card-events/0"); err != nil || pos != to {
		t.Errorf("cursor %d (%v), want %d", pos, err, to)
	}
}

// A registration whose physical and digital tokens are the same names the card by that token
// once: it is registered, and the events after it in the batch apply, where inserting the token
// twice failed the batch on every attempt and stopped the consumer.
func TestIngestRegistrationWithEqualDeviceTokens(t *testing.T) {
	st := pgtest.NewStore(t)
	pgtest.ClockFrom(st, time.Date(2024, 12, 3, 9, 0, 0, 0, time.UTC))
	ctx := context.Background()
	city := loadtest.NewCity(1, 1, 1, time.Date(2024, 12, 2, 9, 0, 0, 0, time.UTC))
	registerParties(t, st, city)
	reg := city.Registrations()[0]
	data := reg.Data.(*events.CardRegistered)
	const device = "tok_LPpxqdCrn2I94xqoc5EsBHGNAfKOto-zvzJW_9f6Olo" // the token of docs/events.md's example
	data.PhysicalToken, data.DigitalToken = device, device
	msgs := messages(t, "card-events/0", 0, append([]events.Event{reg}, city.Funding(50000, 50000)...)...)
	d, err := st.Ingest(ctx, []postgres.Cursor{{Name: "card-events/0", From: 0, To: int64(len(msgs))}}, msgs)
	if err != nil {
		t.Fatalf("a registration with equal physical and digital tokens: %v", err)
	}
	if len(d.Processed) != 2 || d.Processed[0].Status != clearing.Accepted || d.Processed[1].Status != clearing.Applied {
		t.Fatalf("decisions %+v", d.Processed)
	}
	c, err := st.Card(ctx, device)
	if err != nil || c.Token != reg.CardToken {
		t.Fatalf("card by its device token: %+v %v", c, err)
	}
}
