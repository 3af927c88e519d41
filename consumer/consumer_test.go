package consumer_test

import (
	"context"
	"encoding/hex"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	kafkago "github.com/segmentio/kafka-go"

	"github.com/joinincard/engine/consumer"
	"github.com/joinincard/engine/events"
	"github.com/joinincard/engine/internal/pgtest"
	"github.com/joinincard/engine/kafka"
	"github.com/joinincard/engine/ledger"
	"github.com/joinincard/engine/loadtest"
	"github.com/joinincard/engine/postgres"
)

const (
	topic      = "card-events"
	dlqTopic   = "card-events-dlq"
	partitions = 4
	// caughtUpTimeout bounds waiting for the consumer to apply everything produced.
	caughtUpTimeout = 3 * time.Minute
)

// cityStart is when the tests' cities start: a couple of hours before the run, by the clock of the
// engines that consume their events, so that every offline purchase is presented within its
// window (clearing.MaxOfflinePurchaseAge), whether a store in this process or a child engine
// decides it.
var cityStart = time.Now().UTC().Truncate(time.Hour).Add(-2 * time.Hour)

func TestMain(m *testing.M) {
	switch os.Getenv(roleEnv) {
	case "consumer":
		os.Exit(runConsumerChild())
	case "broker":
		os.Exit(runBrokerChild())
	}
	pgtest.Main(m, "consumer")
}

func startBroker(t *testing.T) []string {
	t.Helper()
	b, err := kafka.StartEmbedded(kafka.EmbeddedConfig{Addr: "127.0.0.1:0", Partitions: partitions})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := kafka.EnsureTopics(ctx, b.Addrs(), []kafka.TopicSpec{
		{Name: topic, Partitions: partitions, ReplicationFactor: 1},
		{Name: dlqTopic, Partitions: 1, ReplicationFactor: 1},
	}); err != nil {
		t.Fatal(err)
	}
	return b.Addrs()
}

func produce(t *testing.T, brokers []string, msgs ...kafkago.Message) {
	t.Helper()
	p := kafka.NewProducer(brokers, topic)
	defer p.Close()
	const chunk = 2000
	for len(msgs) > 0 {
		n := min(chunk, len(msgs))
		if err := p.Produce(context.Background(), msgs[:n]...); err != nil {
			t.Fatal(err)
		}
		msgs = msgs[n:]
	}
}

func keyed(evs ...events.Event) []kafkago.Message {
	out := make([]kafkago.Message, len(evs))
	for i, e := range evs {
		out[i] = kafkago.Message{Key: []byte(e.CardToken), Value: loadtest.Encode(e)}
	}
	return out
}

func registerParties(t *testing.T, st *postgres.Store, city *loadtest.City) {
	t.Helper()
	for _, p := range city.Parties() {
		if _, err := st.RegisterParty(context.Background(), p.Kind, p.ID, p.Name); err != nil {
			t.Fatal(err)
		}
	}
}

// waitCaughtUp waits until every partition's database cursor has reached the broker's end.
func waitCaughtUp(t *testing.T, st *postgres.Store, brokers []string) {
	t.Helper()
	ctx := context.Background()
	deadline := time.Now().Add(caughtUpTimeout)
	for {
		marks, err := kafka.HighWatermarks(ctx, brokers, topic)
		if err == nil {
			behind := int64(0)
			for p, hw := range marks {
				pos, err := st.Cursor(ctx, fmt.Sprintf("%s/%d", topic, p))
				if err != nil {
					t.Fatal(err)
				}
				behind += hw - pos
			}
			if behind == 0 {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("consumer still %d events behind after %s", behind, caughtUpTimeout)
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// consumeAll runs a consumer of cfg on store until the database's cursors reach the end of every
// partition of the topic, then stops it; it fails the test if the consumer does not stop cleanly.
func consumeAll(t *testing.T, st *postgres.Store, brokers []string, cfg consumer.Config, store consumer.Ingester) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cons := consumer.New(cfg, store)
	done := make(chan error, 1)
	go func() { done <- cons.Run(ctx) }()
	waitCaughtUp(t, st, brokers)
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func checkBalances(t *testing.T, st *postgres.Store, want map[string]int64) {
	t.Helper()
	for key, net := range want {
		b, err := st.Balance(context.Background(), loadtest.AccountOf(key))
		if err != nil {
			t.Fatalf("%s: %v", key, err)
		}
		if b.Net() != net {
			t.Errorf("%s: net %s, want %s", key, ledger.FormatAmount(b.Net(), "CNY"), ledger.FormatAmount(net, "CNY"))
		}
	}
}

// cityEvents registers a city's parties and returns its events: every card registered and funded
// with 1,000.00 to 2,000.00 CNY, then purchases of up to maxAmount fen each.
func cityEvents(t *testing.T, st *postgres.Store, seed uint64, cards, merchants, purchases int, maxAmount int64) (*loadtest.City, []events.Event) {
	t.Helper()
	city := loadtest.NewCity(seed, cards, merchants, cityStart)
	registerParties(t, st, city)
	var evs []events.Event
	evs = append(append(evs, city.Registrations()...), city.Funding(100000, 200000)...)
	return city, append(evs, city.Purchases(purchases, maxAmount)...)
}

// checkLandedOnce checks that every one of evs was processed once and that the balances are
// theirs.
func checkLandedOnce(t *testing.T, st *postgres.Store, city *loadtest.City, evs []events.Event) {
	t.Helper()
	var processed int
	if err := st.Pool().QueryRow(context.Background(), `SELECT count(*) FROM processed_events`).Scan(&processed); err != nil {
		t.Fatal(err)
	}
	if processed != len(evs) {
		t.Fatalf("%d events processed, %d produced", processed, len(evs))
	}
	checkBalances(t, st, city.Expected(evs))
}

// A stream with malformed, duplicate and conflicting events mixed in: every valid event lands
// once, and the rest reach the dead-letter topic with their reasons.
func TestMixedStreamLandsValidEventsAndDeadLettersTheRest(t *testing.T) {
	st := pgtest.NewStore(t)
	brokers := startBroker(t)
	city := loadtest.NewCity(3, 40, 5, cityStart)
	registerParties(t, st, city)

	regs, funds := city.Registrations(), city.Funding(20000, 80000)
	buys := city.Purchases(300, 3000)
	refunds := []events.Event{city.Refund(buys[0], 1), city.Refund(buys[1], buys[1].Data.(*events.PurchaseCleared).Amount.Minor)}
	var valid []events.Event
	valid = append(append(append(append(valid, regs...), funds...), buys...), refunds...)

	msgs := keyed(valid...)
	conflict := buys[2]
	conflict.Data = &events.PurchaseCleared{MerchantID: city.Merchants[0], Amount: events.Money{Minor: 7, Currency: "CNY"}, MCC: "5411"}
	bad := []kafkago.Message{
		{Key: []byte(city.Cards[0]), Value: []byte(`{"schema":"joinin.card-event.v1","event_id":"not-a-uuid"}`)},
		{Key: []byte(city.Cards[1]), Value: []byte(`not json at all`)},
		{Key: []byte(city.Cards[2]), Value: []byte(strings.Replace(string(loadtest.Encode(buys[3])), `"amount":"`, `"amount":"-`, 1))},
	}
	bad = append(bad, keyed(conflict)...)
	// A valid event keyed by another card's token could sit out of its card's order: refused.
	misKeyed := city.Purchases(1, 10)[0]
	otherCard := city.Cards[0]
	if otherCard == misKeyed.CardToken {
		otherCard = city.Cards[1]
	}
	bad = append(bad, kafkago.Message{Key: []byte(otherCard), Value: loadtest.Encode(misKeyed)})
	dups := keyed(buys[10], buys[20], funds[5])
	msgs = append(append(msgs, bad...), dups...)
	produce(t, brokers, msgs...)

	var (
		mu          sync.Mutex
		duplicates  int
		deadLetters []string
	)
	consumeAll(t, st, brokers, consumer.Config{Brokers: brokers, Topic: topic, GroupID: "test", Log: slog.New(slog.DiscardHandler),
		OnBatch: func(b consumer.Batch) {
			mu.Lock()
			defer mu.Unlock()
			duplicates += b.Decision.Duplicates
			for _, dl := range b.Decision.DeadLetters {
				deadLetters = append(deadLetters, dl.Reason)
			}
		}}, st)

	if duplicates != len(dups) {
		t.Errorf("%d duplicates counted, want %d", duplicates, len(dups))
	}
	if len(deadLetters) != len(bad) {
		t.Errorf("%d dead letters, want %d:\n%s", len(deadLetters), len(bad), strings.Join(deadLetters, "\n"))
	}
	var applied int
	if err := st.Pool().QueryRow(context.Background(), `SELECT count(*) FROM processed_events WHERE status <> 'rejected'`).Scan(&applied); err != nil {
		t.Fatal(err)
	}
	if applied != len(valid) {
		t.Errorf("%d events applied or accepted, want %d", applied, len(valid))
	}
	checkBalances(t, st, city.Expected(valid))

	// The relay moves the dead letters to their topic, with the original bytes and the reason.
	dlq := kafka.NewProducer(brokers, dlqTopic)
	defer dlq.Close()
	relay := &consumer.Relay{Store: st, Producer: dlq, Log: slog.New(slog.DiscardHandler)}
	n, err := relay.RelayOnce(context.Background())
	if err != nil || n != len(bad) {
		t.Fatalf("relayed %d, %v; want %d", n, err, len(bad))
	}
	r := kafka.NewPartitionReader(brokers, kafka.Claim{Topic: dlqTopic, Partition: 0}, 0)
	defer r.Close()
	rctx, rcancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer rcancel()
	got := map[string]bool{}
	for len(got) < len(bad) {
		ms, err := r.FetchBatch(rctx, 100, 50*time.Millisecond, nil)
		if err != nil {
			t.Fatalf("read dead-letter topic: %v (have %d)", err, len(got))
		}
		for _, m := range ms {
			var kind, reason string
			for _, h := range m.Headers {
				switch h.Key {
				case "joinin-kind":
					kind = string(h.Value)
				case "joinin-reason":
					reason = string(h.Value)
				}
			}
			if reason == "" || len(m.Value) == 0 {
				t.Errorf("dead letter without reason or bytes: %+v", m)
			}
			got[kind+": "+string(m.Value)] = true
		}
	}
	for _, b := range append(bad[:3:3], bad[4]) {
		if !got["malformed: "+string(b.Value)] {
			t.Errorf("malformed message %q not in the dead-letter topic", b.Value)
		}
	}
	if !strings.Contains(strings.Join(deadLetters, "\n"), "card_token: is not the message key") {
		t.Errorf("the mis-keyed event's dead letter does not say why:\n%s", strings.Join(deadLetters, "\n"))
	}
}

// Two engines share the partitions and one leaves mid-stream: each partition's work resumes from
// the database's cursor in whichever engine gets it, and every event lands once.
func TestRebalanceResumesFromTheDatabase(t *testing.T) {
	st := pgtest.NewStore(t)
	brokers := startBroker(t)
	city, evs := cityEvents(t, st, 5, 300, 10, 20000, 500)
	msgs := keyed(evs...)

	run := func(ctx context.Context) chan error {
		done := make(chan error, 1)
		cons := consumer.New(consumer.Config{Brokers: brokers, Topic: topic, GroupID: "rebalance", Log: slog.New(slog.DiscardHandler)}, st)
		go func() { done <- cons.Run(ctx) }()
		return done
	}
	ctxA, cancelA := context.WithCancel(context.Background())
	defer cancelA()
	doneA := run(ctxA)
	produce(t, brokers, msgs[:len(msgs)/2]...)
	ctxB, cancelB := context.WithCancel(context.Background())
	doneB := run(ctxB)
	produce(t, brokers, msgs[len(msgs)/2:]...)
	time.Sleep(500 * time.Millisecond)
	cancelB()
	if err := <-doneB; err != nil {
		t.Fatal(err)
	}
	waitCaughtUp(t, st, brokers)
	cancelA()
	if err := <-doneA; err != nil {
		t.Fatal(err)
	}
	checkLandedOnce(t, st, city, evs)
}

// TestDeadLetterTopicGetsNoPersonalNumber: a producer keys a message by a clear card number, puts
// it in card_token and a passport number in passport_token. Neither reaches the dead-letter
// topic: not in the value, the key or the headers, which carry the HMAC of the original bytes
// instead. A dead letter stored in clear by an older engine is redacted on its way out too.
func TestDeadLetterTopicGetsNoPersonalNumber(t *testing.T) {
	const pan, passport = "6228480402564899", "E12345678"
	st := pgtest.NewStore(t)
	tk, err := events.NewTokenizer([]byte("consumer-tests-tokenizer-key-0123456789"))
	if err != nil {
		t.Fatal(err)
	}
	st.Tokenizer = tk
	brokers := startBroker(t)
	city := loadtest.NewCity(1, 1, 1, cityStart)
	registerParties(t, st, city)
	reg := city.Registrations()[0]
	msg := strings.Replace(string(loadtest.Encode(reg)), `"card_token":"`+reg.CardToken+`"`, `"card_token":"`+pan+`"`, 1)
	raw := []byte(strings.Replace(msg, reg.Data.(*events.CardRegistered).PassportToken, passport, 1))
	produce(t, brokers, kafkago.Message{Key: []byte(pan), Value: raw})

	consumeAll(t, st, brokers, consumer.Config{Brokers: brokers, Topic: topic, GroupID: "redact", Log: slog.New(slog.DiscardHandler)}, st)
	// As an engine before redaction stored it.
	legacy := []byte(`{"card_token":"` + pan + `"}`)
	if _, err := st.Pool().Exec(context.Background(), `INSERT INTO dead_letters (source, source_offset, kind, reason, payload, created_at)
		VALUES ('card-events/9', 1, 'malformed', 'malformed: card_token: looks like a card number in clear', $1, now())`, legacy); err != nil {
		t.Fatal(err)
	}

	dlq := kafka.NewProducer(brokers, dlqTopic)
	defer dlq.Close()
	relay := &consumer.Relay{Store: st, Producer: dlq, Tokenizer: tk, Log: slog.New(slog.DiscardHandler)}
	if n, err := relay.RelayOnce(context.Background()); err != nil || n != 2 {
		t.Fatalf("relayed %d, %v; want 2", n, err)
	}
	r := kafka.NewPartitionReader(brokers, kafka.Claim{Topic: dlqTopic, Partition: 0}, 0)
	defer r.Close()
	rctx, rcancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer rcancel()
	var got []kafkago.Message
	for len(got) < 2 {
		ms, err := r.FetchBatch(rctx, 10, 50*time.Millisecond, nil)
		if err != nil {
			t.Fatalf("read dead-letter topic: %v (have %d)", err, len(got))
		}
		got = append(got, ms...)
	}
	macs := map[string]bool{}
	for _, m := range got {
		all := string(m.Key) + "\n" + string(m.Value)
		for _, h := range m.Headers {
			all += "\n" + h.Key + ": " + string(h.Value)
			if h.Key == "joinin-payload-hmac" {
				macs[string(h.Value)] = true
			}
		}
		for _, n := range []string{pan, passport} {
			if strings.Contains(all, n) {
				t.Errorf("the dead-letter topic got %s in clear:\n%s", n, all)
			}
		}
		if !strings.Contains(all, "joinin-reason: ") || !strings.Contains(all, "[redacted: card_token") {
			t.Errorf("the reason does not say what was redacted:\n%s", all)
		}
	}
	for _, original := range [][]byte{raw, legacy} {
		if !macs[hex.EncodeToString(tk.Fingerprint(original))] {
			t.Errorf("no joinin-payload-hmac header with the HMAC of %s; have %v", original, macs)
		}
	}
}
