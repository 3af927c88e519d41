package consumer_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/joinincard/engine/clearing"
	"github.com/joinincard/engine/consumer"
	"github.com/joinincard/engine/kafka"
	"github.com/joinincard/engine/loadtest"
	"github.com/joinincard/engine/postgres"
)

// splitStore is an Ingester that takes at most maxEvents events per transaction (more "plan too
// many transfers") and refuses every transaction holding a poison event as PostgreSQL refuses a
// NUL byte, and otherwise records what it applied, fencing cursors as the real store does.
type splitStore struct {
	maxEvents int
	poison    map[uuid.UUID]bool

	mu           sync.Mutex
	cursors      map[string]int64
	applied      map[uuid.UUID]int
	deadLettered map[uuid.UUID]int
	transactions int
}

var _ consumer.Ingester = (*splitStore)(nil)

func newSplitStore(maxEvents int, poison ...uuid.UUID) *splitStore {
	s := &splitStore{maxEvents: maxEvents, poison: map[uuid.UUID]bool{}, cursors: map[string]int64{},
		applied: map[uuid.UUID]int{}, deadLettered: map[uuid.UUID]int{}}
	for _, id := range poison {
		s.poison[id] = true
	}
	return s
}

func (s *splitStore) advance(cursors []postgres.Cursor) error {
	for _, c := range cursors {
		if s.cursors[c.Name] != c.From {
			return fmt.Errorf("cursor %s at %d, batch from %d: %w", c.Name, s.cursors[c.Name], c.From, postgres.ErrCursorMoved)
		}
	}
	for _, c := range cursors {
		s.cursors[c.Name] = c.To
	}
	return nil
}

func (s *splitStore) IngestTimed(_ context.Context, cursors []postgres.Cursor, msgs []clearing.Message) (*clearing.Decision, postgres.IngestTiming, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(msgs) > s.maxEvents {
		return nil, postgres.IngestTiming{}, fmt.Errorf("ingest: %w", postgres.ErrBatchTooLarge)
	}
	for _, m := range msgs {
		if s.poison[m.Event.ID] {
			return nil, postgres.IngestTiming{}, fmt.Errorf("load cards: %w",
				&pgconn.PgError{Code: "22021", Message: `invalid byte sequence for encoding "UTF8": 0x00`})
		}
	}
	// Two fetchers' batches of one partition never overlap; the fence would say if they did.
	saved := map[string]int64{}
	for k, v := range s.cursors {
		saved[k] = v
	}
	if err := s.advance(cursors); err != nil {
		s.cursors = saved
		return nil, postgres.IngestTiming{}, err
	}
	s.transactions++
	d := &clearing.Decision{}
	for _, m := range msgs {
		s.applied[m.Event.ID]++
		d.Processed = append(d.Processed, clearing.Processed{EventID: m.Event.ID, Type: m.Event.Type, Status: clearing.Applied})
	}
	return d, postgres.IngestTiming{Attempts: 1}, nil
}

func (s *splitStore) IngestPoison(_ context.Context, cur postgres.Cursor, msg clearing.Message, cause error) (*clearing.Decision, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.advance([]postgres.Cursor{cur}); err != nil {
		return nil, err
	}
	s.deadLettered[msg.Event.ID]++
	return clearing.Poison(msg, "cannot be applied: "+cause.Error(), nil), nil
}

func (s *splitStore) Cursor(_ context.Context, name string) (int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cursors[name], nil
}

// Cursors reports positions only: the fake keeps no commit times.
func (s *splitStore) Cursors(_ context.Context, names []string) (map[string]postgres.CursorState, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]postgres.CursorState{}
	for _, name := range names {
		if pos, ok := s.cursors[name]; ok {
			out[name] = postgres.CursorState{Position: pos}
		}
	}
	return out, nil
}

// drain runs a consumer of group on st until fake's cursors reach the broker's end, and stops it:
// it must neither stop by itself nor fail to stop.
func drain(t *testing.T, brokers []string, group string, st consumer.Ingester, fake *splitStore) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cons := consumer.New(consumer.Config{Brokers: brokers, Topic: topic, GroupID: group, Log: slog.New(slog.DiscardHandler)}, st)
	done := make(chan error, 1)
	go func() { done <- cons.Run(ctx) }()
	deadline := time.Now().Add(caughtUpTimeout)
	for !fake.caughtUp(t, brokers) {
		select {
		case err := <-done:
			t.Fatalf("the consumer stopped: %v", err)
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatal("the consumer did not drain")
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func (s *splitStore) caughtUp(t *testing.T, brokers []string) bool {
	t.Helper()
	marks, err := kafka.HighWatermarks(context.Background(), brokers, topic)
	if err != nil {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for p, hw := range marks {
		if s.cursors[kafka.Claim{Topic: topic, Partition: p}.String()] != hw {
			return false
		}
	}
	return true
}

// A batch too large for one transaction is committed in halves, and an event that can never be
// applied becomes a dead letter alone: every other event, of its partition and of the others
// merged with it, is applied exactly once, and the consumer keeps going.
func TestConsumerSplitsBatchesAndDeadLettersPoisonEvents(t *testing.T) {
	brokers := startBroker(t)
	city := loadtest.NewCity(11, 50, 5, time.Date(2026, 3, 2, 8, 0, 0, 0, time.UTC))
	city.Funding(10_000_000, 10_000_000) // what the cards can spend; the fake store keeps no balances
	evs := city.Purchases(3000, 100)
	poison := []uuid.UUID{evs[17].ID, evs[1500].ID, evs[2999].ID}
	st := newSplitStore(300, poison...)
	produce(t, brokers, keyed(evs...)...)

	drain(t, brokers, "split", st, st)
	st.mu.Lock()
	defer st.mu.Unlock()
	isPoison := map[uuid.UUID]bool{}
	for _, id := range poison {
		isPoison[id] = true
		if st.deadLettered[id] != 1 || st.applied[id] != 0 {
			t.Errorf("poison event %s: dead-lettered %d times, applied %d", id, st.deadLettered[id], st.applied[id])
		}
	}
	for _, e := range evs {
		if !isPoison[e.ID] && (st.applied[e.ID] != 1 || st.deadLettered[e.ID] != 0) {
			t.Fatalf("event %s: applied %d times, dead-lettered %d", e.ID, st.applied[e.ID], st.deadLettered[e.ID])
		}
	}
	if len(st.deadLettered) != len(poison) {
		t.Errorf("%d events dead-lettered, want %d", len(st.deadLettered), len(poison))
	}
}

// When events keep failing alone, the fault is the engine's, not theirs: after a bounded number
// the consumer stops with an error instead of dead-lettering a stream of good events.
func TestConsumerStopsWhenEveryEventFailsAlone(t *testing.T) {
	brokers := startBroker(t)
	city := loadtest.NewCity(12, 20, 5, time.Date(2026, 3, 2, 8, 0, 0, 0, time.UTC))
	city.Funding(10_000_000, 10_000_000)
	evs := city.Purchases(400, 100)
	ids := make([]uuid.UUID, len(evs))
	for i, e := range evs {
		ids[i] = e.ID
	}
	st := newSplitStore(1000, ids...)
	produce(t, brokers, keyed(evs...)...)
	cons := consumer.New(consumer.Config{Brokers: brokers, Topic: topic, GroupID: "all-poison", Log: slog.New(slog.DiscardHandler)}, st)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	err := cons.Run(ctx)
	var pgErr *pgconn.PgError
	if err == nil || !errors.As(err, &pgErr) || ctx.Err() != nil {
		t.Fatalf("consumer ended with %v, want the database's refusal", err)
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	if n := len(st.deadLettered); n == 0 || n > 64*partitions {
		t.Errorf("%d events dead-lettered before stopping", n)
	}
}

// downStore is an Ingester whose database is unreachable: every transaction fails.
type downStore struct {
	*splitStore
	calls chan struct{}
}

func (s *downStore) IngestTimed(context.Context, []postgres.Cursor, []clearing.Message) (*clearing.Decision, postgres.IngestTiming, error) {
	select {
	case s.calls <- struct{}{}:
	default:
	}
	return nil, postgres.IngestTiming{}, errors.New("batch transaction: dial tcp: connection refused")
}

// Stopping the engine while a batch waits to be tried again is a clean stop: the batch is not in,
// its cursors did not move, the next start reads it again, and Run says nil.
func TestConsumerStopsCleanlyWhileABatchWaitsToBeRetried(t *testing.T) {
	brokers := startBroker(t)
	city := loadtest.NewCity(13, 20, 5, time.Date(2026, 3, 2, 8, 0, 0, 0, time.UTC))
	city.Funding(10_000_000, 10_000_000)
	produce(t, brokers, keyed(city.Purchases(100, 100)...)...)
	st := &downStore{splitStore: newSplitStore(1000), calls: make(chan struct{}, 1)}
	cons := consumer.New(consumer.Config{Brokers: brokers, Topic: topic, GroupID: "down", Log: slog.New(slog.DiscardHandler)}, st)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- cons.Run(ctx) }()
	select {
	case <-st.calls:
	case err := <-done:
		t.Fatalf("the consumer stopped before its first transaction: %v", err)
	case <-time.After(time.Minute):
		t.Fatal("no transaction was tried")
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("stopped while a batch waited to be retried: %v, want a clean stop", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the consumer did not stop")
	}
	for name, pos := range st.cursors {
		if pos != 0 {
			t.Errorf("cursor %s moved to %d though nothing was applied", name, pos)
		}
	}
}

// faultyPoisonStore is a splitStore whose dead letters meet the database's faults: the first
// try of each fails with nothing written (the database unreachable), the second is written but
// its answer is lost (the connection cut after COMMIT).
type faultyPoisonStore struct {
	*splitStore
	tries map[uuid.UUID]int
}

func (s *faultyPoisonStore) IngestPoison(ctx context.Context, cur postgres.Cursor, msg clearing.Message, cause error) (*clearing.Decision, error) {
	s.mu.Lock()
	s.tries[msg.Event.ID]++
	try := s.tries[msg.Event.ID]
	s.mu.Unlock()
	switch try {
	case 1:
		return nil, errors.New("dead letter: dial tcp: connection refused")
	case 2:
		if _, err := s.splitStore.IngestPoison(ctx, cur, msg, cause); err != nil {
			return nil, err
		}
		return nil, errors.New("dead letter: commit: conn closed")
	}
	return s.splitStore.IngestPoison(ctx, cur, msg, cause)
}

// Dead-lettering an event is tried again when the database fails, and a dead letter whose
// COMMIT landed though its answer was lost is found committed: each poison event is
// dead-lettered once, every other event is applied once, and the consumer keeps going.
func TestConsumerDeadLettersThroughDatabaseFaults(t *testing.T) {
	brokers := startBroker(t)
	city := loadtest.NewCity(14, 50, 5, time.Date(2026, 3, 2, 8, 0, 0, 0, time.UTC))
	city.Funding(10_000_000, 10_000_000)
	evs := city.Purchases(1000, 100)
	poison := []uuid.UUID{evs[3].ID, evs[500].ID}
	st := &faultyPoisonStore{splitStore: newSplitStore(10_000, poison...), tries: map[uuid.UUID]int{}}
	produce(t, brokers, keyed(evs...)...)
	drain(t, brokers, "faulty-poison", st, st.splitStore)
	st.mu.Lock()
	defer st.mu.Unlock()
	for _, id := range poison {
		if st.deadLettered[id] != 1 || st.applied[id] != 0 || st.tries[id] != 3 { // refused, landed unanswered, found landed
			t.Errorf("poison event %s: dead-lettered %d times in %d tries, applied %d", id, st.deadLettered[id], st.tries[id], st.applied[id])
		}
	}
	for _, e := range evs {
		if e.ID != poison[0] && e.ID != poison[1] && st.applied[e.ID] != 1 {
			t.Fatalf("event %s applied %d times", e.ID, st.applied[e.ID])
		}
	}
}
