package consumer_test

import (
	"context"
	"crypto/sha256"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	kafkago "github.com/segmentio/kafka-go"
	"golang.org/x/sync/errgroup"

	"github.com/joinincard/engine/clearing"
	"github.com/joinincard/engine/consumer"
	"github.com/joinincard/engine/events"
	"github.com/joinincard/engine/internal/pgtest"
	"github.com/joinincard/engine/ledger"
	"github.com/joinincard/engine/loadtest"
	"github.com/joinincard/engine/postgres"
	"github.com/joinincard/engine/purchases"
)

// One fetch of 4,096 hotel captures, each posting an authorization and its 3 increments plus a
// fee, plans 20,480 transfers: more than one ledger batch takes. With a malformed event among
// them, the consumer still drains: the batch is committed in parts, every capture lands once, and
// the bad event is a dead letter.
func TestConsumerDrainsCapturesThatPlanMoreThanABatch(t *testing.T) {
	const (
		stays      = 4096
		increments = 3
	)
	ctx := context.Background()
	st := pgtest.NewStore(t)
	brokers := startBroker(t)
	start := time.Date(2026, 3, 2, 14, 0, 0, 0, time.UTC)
	st.Now = func() time.Time { return start }
	city := loadtest.NewCity(21, stays, 1, start.Add(-time.Hour))
	registerParties(t, st, city)
	setup := append(city.Registrations(), city.Funding(1_000_00, 1_000_00)...)
	for from := 0; from < len(setup); from += 4096 {
		part := setup[from:min(from+4096, len(setup))]
		msgs := make([]clearing.Message, len(part))
		for i, e := range part {
			raw := loadtest.Encode(e)
			dec, err := events.Decode(raw)
			if err != nil {
				t.Fatal(err)
			}
			msgs[i] = clearing.Message{Source: "setup/0", Offset: int64(from + i), Raw: raw, Event: dec}
		}
		if _, err := st.Ingest(ctx, nil, msgs); err != nil {
			t.Fatal(err)
		}
	}

	p, err := postgres.NewPurchases(st)
	if err != nil {
		t.Fatal(err)
	}
	hotel := purchases.Merchant{ID: "hotel-1", Name: "West Lake Hotel", MCC: "7011", City: "hangzhou", AcquiringBank: "ABC-HZ", FeePlan: "domestic-standard"}
	if err := p.RegisterMerchant(ctx, hotel, sha256.Sum256([]byte("hotel key"))); err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	var committer sync.WaitGroup
	committer.Add(1)
	go func() { defer committer.Done(); p.Run(runCtx) }()
	defer func() { stop(); committer.Wait() }()

	do := func(r postgres.PurchaseRequest) (postgres.PurchaseResult, error) {
		r.Merchant, r.Hash = hotel, sha256.Sum256(r.Key[:])
		return p.Do(ctx, r)
	}
	auths := make([]ledger.ID, stays)
	var g errgroup.Group
	g.SetLimit(64)
	for i := range stays {
		g.Go(func() error {
			res, err := do(postgres.PurchaseRequest{Op: postgres.OpAuthorize, Key: uuid.New(), CardToken: city.Cards[i], Amount: 300_00})
			if err != nil {
				return err
			}
			if !res.Authorization.Approved {
				return fmt.Errorf("stay %d declined: %+v", i, res.Authorization.Decision)
			}
			auths[i] = res.Authorization.ID
			for range increments {
				res, err := do(postgres.PurchaseRequest{Op: postgres.OpIncrement, Key: uuid.New(), AuthorizationID: auths[i], Amount: 100_00})
				if err != nil {
					return err
				}
				if !res.Increment.Approved {
					return fmt.Errorf("stay %d: increment declined: %+v", i, res.Increment.Decision)
				}
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		t.Fatal(err)
	}

	// The captures, keyed by card, and one malformed event among them.
	var msgs []kafkago.Message
	for i := range stays {
		e := events.Event{ID: uuid.Must(uuid.NewV7()), Type: events.TypePurchaseCleared, OccurredAt: start, CardToken: city.Cards[i],
			Data: &events.PurchaseCleared{MerchantID: hotel.ID, MCC: hotel.MCC, Amount: events.Money{Minor: 600_00, Currency: "CNY"},
				AuthorizationID: uuid.UUID(auths[i])}}
		msgs = append(msgs, keyed(e)...)
		if i == stays/2 {
			bad := e
			bad.ID = uuid.Must(uuid.NewV7())
			raw := strings.Replace(string(loadtest.Encode(bad)), `"card_token":"`+e.CardToken, `"card_token":"tok\u0000x`, 1)
			msgs = append(msgs, kafkago.Message{Key: []byte("tok\x00x"), Value: []byte(raw)})
		}
	}
	// All in one partition, so that one fetch holds them all.
	produceTo(t, brokers, 0, msgs...)

	var (
		mu          sync.Mutex
		deadLetters []clearing.DeadLetter
		largest     int
	)
	consumeAll(t, st, brokers, consumer.Config{Brokers: brokers, Topic: topic, GroupID: "captures", Log: slog.New(slog.DiscardHandler),
		OnBatch: func(b consumer.Batch) {
			mu.Lock()
			defer mu.Unlock()
			deadLetters = append(deadLetters, b.Decision.DeadLetters...)
			largest = max(largest, b.Events)
		}}, st)
	if largest >= stays {
		t.Errorf("a batch of %d events was committed whole; it plans more transfers than a ledger batch takes", largest)
	}
	if len(deadLetters) != 1 || deadLetters[0].Offset < 0 {
		t.Fatalf("dead letters %+v, want the one malformed event", deadLetters)
	}
	var captured int
	if err := st.Pool().QueryRow(ctx, `SELECT count(*) FROM processed_events WHERE type = 'purchase.cleared' AND status = 'applied'`).Scan(&captured); err != nil {
		t.Fatal(err)
	}
	if captured != stays {
		t.Fatalf("%d captures applied, want %d", captured, stays)
	}
	for _, i := range []int{0, stays / 2, stays - 1} {
		a, err := p.Authorization(ctx, hotel.ID, auths[i])
		if err != nil {
			t.Fatal(err)
		}
		if a.Close == nil || a.Close.Amount != 600_00 {
			t.Errorf("stay %d: close %+v", i, a.Close)
		}
		b, err := st.Balance(ctx, loadtest.AccountOf(city.Cards[i]))
		if err != nil {
			t.Fatal(err)
		}
		if b.Net() != 400_00 || b.Available() != 400_00 {
			t.Errorf("stay %d: card holds %d, %d available; want 40000", i, b.Net(), b.Available())
		}
	}
}

// produceTo writes msgs to one partition of the topic, whatever their keys.
func produceTo(t *testing.T, brokers []string, partition int, msgs ...kafkago.Message) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn, err := kafkago.DialLeader(ctx, "tcp", brokers[0], topic, partition)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	const chunk = 1000
	for len(msgs) > 0 {
		n := min(chunk, len(msgs))
		if _, err := conn.WriteMessages(msgs[:n]...); err != nil {
			t.Fatal(err)
		}
		msgs = msgs[n:]
	}
}
