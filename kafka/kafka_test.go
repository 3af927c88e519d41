package kafka

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	kafkago "github.com/segmentio/kafka-go"
)

// testTimeout bounds every test's context: a test that needs longer is hung.
const testTimeout = 45 * time.Second

func testContext(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	t.Cleanup(cancel)
	return ctx
}

// startBroker starts an in-memory broker on a free loopback port, closed when the test ends.
func startBroker(t testing.TB, partitions int) *Embedded {
	t.Helper()
	b, err := StartEmbedded(EmbeddedConfig{Addr: "127.0.0.1:0", Partitions: partitions})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	return b
}

func createTopic(t testing.TB, ctx context.Context, brokers []string, name string, partitions int) {
	t.Helper()
	err := EnsureTopics(ctx, brokers, []TopicSpec{{Name: name, Partitions: partitions, ReplicationFactor: 1}})
	if err != nil {
		t.Fatal(err)
	}
}

// event is a test message: card key and that card's sequence number.
func event(card, seq int) kafkago.Message {
	return kafkago.Message{
		Key:   []byte(fmt.Sprintf("card-%04d", card)),
		Value: []byte(strconv.Itoa(seq)),
	}
}

// readAll reads partition c from offset 0 until it has count messages.
func readAll(t testing.TB, ctx context.Context, brokers []string, c Claim, count int64) []kafkago.Message {
	t.Helper()
	r := NewPartitionReader(brokers, c, 0)
	defer func() {
		if err := r.Close(); err != nil {
			t.Error(err)
		}
	}()
	var msgs []kafkago.Message
	for int64(len(msgs)) < count {
		batch, err := r.FetchBatch(ctx, 1000, 20*time.Millisecond, nil)
		if err != nil {
			t.Fatalf("%s after %d of %d messages: %v", c, len(msgs), count, err)
		}
		msgs = append(msgs, batch...)
	}
	return msgs
}

func TestStartEmbeddedRefusesNonLoopback(t *testing.T) {
	for _, addr := range []string{"0.0.0.0:0", ":9092", "192.0.2.1:9092", "example.com:9092"} {
		_, err := StartEmbedded(EmbeddedConfig{Addr: addr})
		if !errors.Is(err, errNotLoopback) {
			t.Errorf("StartEmbedded(%q) = %v, want errNotLoopback", addr, err)
		}
	}
	if _, err := StartEmbedded(EmbeddedConfig{Addr: "127.0.0.1"}); err == nil {
		t.Error("StartEmbedded without a port succeeded")
	}
}

func TestEnsureTopicsIsIdempotent(t *testing.T) {
	ctx := testContext(t)
	b := startBroker(t, 3)
	specs := []TopicSpec{
		{Name: "card-events", Partitions: 8, ReplicationFactor: 1},
		{Name: "card-events-dlq", Partitions: 2, ReplicationFactor: 1},
	}
	for range 3 {
		if err := EnsureTopics(ctx, b.Addrs(), specs); err != nil {
			t.Fatal(err)
		}
	}
	parts, err := Partitions(ctx, b.Addrs(), "card-events")
	if err != nil {
		t.Fatal(err)
	}
	if want := []int{0, 1, 2, 3, 4, 5, 6, 7}; fmt.Sprint(parts) != fmt.Sprint(want) {
		t.Errorf("partitions = %v, want %v", parts, want)
	}
	marks, err := HighWatermarks(ctx, b.Addrs(), "card-events-dlq")
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(marks) != "map[0:0 1:0]" {
		t.Errorf("high watermarks = %v, want zero on both partitions", marks)
	}

	// An existing topic with another partition count is reported, not silently accepted.
	err = EnsureTopics(ctx, b.Addrs(), []TopicSpec{{Name: "card-events", Partitions: 4, ReplicationFactor: 1}})
	if err == nil || !strings.Contains(err.Error(), "has 8 partitions") {
		t.Errorf("EnsureTopics with another partition count = %v", err)
	}
	for _, bad := range []TopicSpec{{Name: "x", Partitions: 0, ReplicationFactor: 1}, {Name: "x", Partitions: 1}, {Partitions: 1, ReplicationFactor: 1}} {
		if err := EnsureTopics(ctx, b.Addrs(), []TopicSpec{bad}); err == nil {
			t.Errorf("EnsureTopics(%+v) succeeded", bad)
		}
	}
	// Reading metadata never creates a topic.
	if _, err := Partitions(ctx, b.Addrs(), "no-such-topic"); !errors.Is(err, kafkago.UnknownTopicOrPartition) {
		t.Errorf("Partitions of a missing topic = %v, want UnknownTopicOrPartition", err)
	}
}

func TestProduceKeepsEachCardsOrderPerPartition(t *testing.T) {
	const (
		topic      = "card-events"
		partitions = 8
		cards      = 100
		perCard    = 100 // 10,000 messages
		chunk      = 500
	)
	ctx := testContext(t)
	b := startBroker(t, partitions)
	createTopic(t, ctx, b.Addrs(), topic, partitions)
	p := NewProducer(b.Addrs(), topic)

	// Cards interleave within every Produce call, as taps from many cards do.
	msgs := make([]kafkago.Message, 0, cards*perCard)
	for seq := range perCard {
		for card := range cards {
			msgs = append(msgs, event(card, seq))
		}
	}
	for i := 0; i < len(msgs); i += chunk {
		if err := p.Produce(ctx, msgs[i:i+chunk]...); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}

	marks, err := HighWatermarks(ctx, b.Addrs(), topic)
	if err != nil {
		t.Fatal(err)
	}
	var total int64
	cardPartition := map[string]int{}
	nextSeq := map[string]int{}
	for part := range partitions {
		total += marks[part]
		got := readAll(t, ctx, b.Addrs(), Claim{Topic: topic, Partition: part}, marks[part])
		for i, m := range got {
			if m.Offset != int64(i) || m.Partition != part {
				t.Fatalf("partition %d message %d is at %d/%d", part, i, m.Partition, m.Offset)
			}
			key := string(m.Key)
			if prev, ok := cardPartition[key]; ok && prev != part {
				t.Fatalf("%s is on partitions %d and %d", key, prev, part)
			}
			cardPartition[key] = part
			seq, err := strconv.Atoi(string(m.Value))
			if err != nil {
				t.Fatal(err)
			}
			if seq != nextSeq[key] {
				t.Fatalf("%s: sequence %d after %d", key, seq, nextSeq[key]-1)
			}
			nextSeq[key]++
		}
	}
	if total != cards*perCard || len(nextSeq) != cards {
		t.Fatalf("read %d messages of %d cards, want %d of %d", total, len(nextSeq), cards*perCard, cards)
	}
	for key, n := range nextSeq {
		if n != perCard {
			t.Errorf("%s: %d messages, want %d", key, n, perCard)
		}
	}
	used := map[int]bool{}
	for _, part := range cardPartition {
		used[part] = true
	}
	if len(used) != partitions {
		t.Errorf("cards hashed to %d of %d partitions", len(used), partitions)
	}
}

func TestProduceRefusesMessagesWithoutKey(t *testing.T) {
	ctx := testContext(t)
	b := startBroker(t, 1)
	p := NewProducer(b.Addrs(), "card-events")
	defer p.Close()
	err := p.Produce(ctx, event(1, 0), kafkago.Message{Value: []byte("x")})
	if err == nil || !strings.Contains(err.Error(), "message 1 has no key") {
		t.Errorf("Produce without key = %v", err)
	}
}

func TestFetchBatchHonoursMaxAndWait(t *testing.T) {
	const topic = "one-partition"
	ctx := testContext(t)
	b := startBroker(t, 1)
	createTopic(t, ctx, b.Addrs(), topic, 1)
	p := NewProducer(b.Addrs(), topic)
	defer p.Close()
	c := Claim{Topic: topic, Partition: 0}

	msgs := make([]kafkago.Message, 25)
	for i := range msgs {
		msgs[i] = event(1, i)
	}
	if err := p.Produce(ctx, msgs...); err != nil {
		t.Fatal(err)
	}
	r := NewPartitionReader(b.Addrs(), c, 0)
	defer r.Close()

	// wait is long enough that a full batch, even the first one with the reader connecting under
	// a loaded machine, returns well before it.
	const wait = 1 * time.Second
	for _, want := range []int{10, 10} {
		start := time.Now()
		got, err := r.FetchBatch(ctx, 10, wait, nil)
		if err != nil {
			t.Fatal(err)
		}
		// A full batch returns without waiting out wait.
		if len(got) != want || time.Since(start) >= wait {
			t.Fatalf("FetchBatch(10) = %d messages after %v, want %d before %v", len(got), time.Since(start), want, wait)
		}
	}
	start := time.Now()
	got, err := r.FetchBatch(ctx, 10, wait, nil)
	if err != nil {
		t.Fatal(err)
	}
	// A partial batch that ends where the log ends returns at once: nothing more is coming.
	if elapsed := time.Since(start); len(got) != 5 || elapsed >= wait {
		t.Fatalf("FetchBatch(10) = %d messages after %v, want 5 before %v", len(got), elapsed, wait)
	}
	if got[0].Offset != 20 || got[4].Offset != 24 {
		t.Fatalf("last batch holds offsets %d..%d, want 20..24", got[0].Offset, got[4].Offset)
	}

	// With nothing to read, FetchBatch blocks until a message arrives...
	go func() {
		time.Sleep(200 * time.Millisecond)
		if err := p.Produce(ctx, event(1, 25)); err != nil {
			t.Error(err)
		}
	}()
	start = time.Now()
	got, err = r.FetchBatch(ctx, 10, 50*time.Millisecond, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].Offset != 25 || time.Since(start) < 200*time.Millisecond {
		t.Fatalf("blocking FetchBatch = %d messages after %v", len(got), time.Since(start))
	}
	// ...or until ctx is done, and then reports ctx's error.
	short, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	if got, err := r.FetchBatch(short, 10, wait, nil); !errors.Is(err, context.DeadlineExceeded) || len(got) != 0 {
		t.Fatalf("FetchBatch on an empty partition = %d messages, %v", len(got), err)
	}
	// A held batch takes what arrives until the hold is released, then returns at once.
	hold := make(chan struct{})
	type fetched struct {
		msgs []kafkago.Message
		err  error
	}
	held := make(chan fetched, 1)
	go func() {
		msgs, err := r.FetchBatch(ctx, 10, wait, hold)
		held <- fetched{msgs, err}
	}()
	for i := 26; i < 29; i++ {
		if err := p.Produce(ctx, event(1, i)); err != nil {
			t.Fatal(err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	select {
	case f := <-held:
		t.Fatalf("held FetchBatch returned %d messages, %v before its hold was released", len(f.msgs), f.err)
	default:
	}
	close(hold)
	f := <-held
	if f.err != nil || len(f.msgs) != 3 || f.msgs[0].Offset != 26 || f.msgs[2].Offset != 28 {
		t.Fatalf("held FetchBatch = %d messages, %v; want offsets 26..28", len(f.msgs), f.err)
	}
	// A hold released before any message arrives ends the wait.
	hold = make(chan struct{})
	time.AfterFunc(50*time.Millisecond, func() { close(hold) })
	if got, err := r.FetchBatch(ctx, 10, wait, hold); !errors.Is(err, ErrReleased) || len(got) != 0 {
		t.Fatalf("FetchBatch released before a message = %d messages, %v; want ErrReleased", len(got), err)
	}
	// Out-of-range arguments are refused.
	if _, err := r.FetchBatch(ctx, 0, wait, nil); err == nil {
		t.Error("FetchBatch(max 0) succeeded")
	}
	if _, err := r.FetchBatch(ctx, MaxFetchBatch+1, wait, nil); err == nil {
		t.Error("FetchBatch(max too large) succeeded")
	}
}

func TestPartitionReaderReportsCursorPastTheLog(t *testing.T) {
	const topic = "short-log"
	ctx := testContext(t)
	b := startBroker(t, 1)
	createTopic(t, ctx, b.Addrs(), topic, 1)
	// The database says 100 messages were applied; the broker has none (it lost them).
	r := NewPartitionReader(b.Addrs(), Claim{Topic: topic}, 100)
	defer r.Close()
	_, err := r.FetchBatch(ctx, 10, 10*time.Millisecond, nil)
	if !errors.Is(err, kafkago.OffsetOutOfRange) {
		t.Fatalf("FetchBatch past the log = %v, want OffsetOutOfRange", err)
	}
}

// holdings records which member runs work on which partition, and fails the test if two
// members ever hold one partition at the same time.
type holdings struct {
	t  *testing.T
	mu sync.Mutex
	by map[int]string // partition -> member
}

func (h *holdings) take(member string, p int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if other, ok := h.by[p]; ok {
		h.t.Errorf("partition %d taken by %s while %s holds it", p, member, other)
	}
	h.by[p] = member
}

func (h *holdings) release(member string, p int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.by[p] == member {
		delete(h.by, p)
	}
}

// snapshot returns member -> number of partitions held.
func (h *holdings) snapshot() map[string]int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := map[string]int{}
	for _, m := range h.by {
		n[m]++
	}
	return n
}

func (h *holdings) waitFor(t *testing.T, what string, within time.Duration, ok func(map[string]int) bool) time.Duration {
	t.Helper()
	start := time.Now()
	for time.Since(start) < within {
		if ok(h.snapshot()) {
			return time.Since(start)
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("%s: not within %v; holdings %v", what, within, h.snapshot())
	return 0
}

func TestRunGroupSharesPartitionsAndFailsOver(t *testing.T) {
	const (
		topic      = "card-events"
		partitions = 4
	)
	ctx := testContext(t)
	b := startBroker(t, partitions)
	createTopic(t, ctx, b.Addrs(), topic, partitions)
	h := &holdings{t: t, by: map[int]string{}}
	cfg := GroupConfig{Brokers: b.Addrs(), GroupID: "clearing", Topic: topic}

	run := func(ctx context.Context, member string) chan error {
		done := make(chan error, 1)
		go func() {
			done <- RunGroup(ctx, cfg, func(ctx context.Context, c Claim) error {
				h.take(member, c.Partition)
				defer h.release(member, c.Partition)
				if c.Topic != topic {
					return fmt.Errorf("claim on topic %q", c.Topic)
				}
				if err := c.CommitAdvisory(int64(100 + c.Partition)); err != nil {
					// Advisory: a commit racing a rebalance may fail, and that is fine.
					t.Logf("%s: %v", member, err)
				}
				<-ctx.Done()
				return ctx.Err()
			})
		}()
		return done
	}
	ctxA, cancelA := context.WithCancel(ctx)
	defer cancelA()
	ctxB, cancelB := context.WithCancel(ctx)
	defer cancelB()
	doneA := run(ctxA, "a")
	doneB := run(ctxB, "b")

	h.waitFor(t, "both members hold two partitions", 20*time.Second, func(n map[string]int) bool {
		return n["a"] == 2 && n["b"] == 2
	})
	cancelA()
	took := h.waitFor(t, "b holds every partition", DefaultSessionTimeout, func(n map[string]int) bool {
		return n["b"] == partitions
	})
	t.Logf("failover took %v", took)
	// b committed its advisory offsets when it took the partitions; the group shows them.
	client, done := newClient(b.Addrs(), topic)
	defer done()
	res, err := client.OffsetFetch(ctx, &kafkago.OffsetFetchRequest{GroupID: "clearing", Topics: map[string][]int{topic: {0, 1, 2, 3}}})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range res.Topics[topic] {
		if p.CommittedOffset != int64(100+p.Partition) {
			t.Errorf("advisory offset of partition %d = %d, want %d", p.Partition, p.CommittedOffset, 100+p.Partition)
		}
	}
	if err := <-doneA; err != nil {
		t.Errorf("RunGroup a = %v, want nil after its ctx ended", err)
	}
	cancelB()
	if err := <-doneB; err != nil {
		t.Errorf("RunGroup b = %v, want nil after its ctx ended", err)
	}
	if n := h.snapshot(); len(n) != 0 {
		t.Errorf("partitions still held after both members stopped: %v", n)
	}
}

func TestRunGroupEndsOnWorkError(t *testing.T) {
	const topic = "card-events"
	ctx := testContext(t)
	b := startBroker(t, 2)
	createTopic(t, ctx, b.Addrs(), topic, 2)
	errBroken := errors.New("database is broken")
	cfg := GroupConfig{Brokers: b.Addrs(), GroupID: "clearing", Topic: topic}
	err := RunGroup(ctx, cfg, func(ctx context.Context, c Claim) error {
		if c.Partition == 1 {
			return errBroken
		}
		<-ctx.Done()
		return ctx.Err()
	})
	if !errors.Is(err, errBroken) || !strings.Contains(err.Error(), "card-events/1") {
		t.Fatalf("RunGroup = %v, want the work's error naming its partition", err)
	}
	if err := (Claim{Topic: topic}).CommitAdvisory(1); err == nil {
		t.Error("CommitAdvisory on a claim outside RunGroup succeeded")
	}
}

func TestGroupConfigIsChecked(t *testing.T) {
	ctx := testContext(t)
	noop := func(context.Context, Claim) error { return nil }
	for _, cfg := range []GroupConfig{
		{GroupID: "g", Topic: "t"},
		{Brokers: []string{"127.0.0.1:1"}, Topic: "t"},
		{Brokers: []string{"127.0.0.1:1"}, GroupID: "g", Topic: "t", HeartbeatInterval: 3 * time.Second},
	} {
		if err := RunGroup(ctx, cfg, noop); err == nil {
			t.Errorf("RunGroup(%+v) succeeded", cfg)
		}
	}
}

// A producer sized to small calls still delivers a call larger than its requests, in order, and
// a reader fills the array of its previous batch again instead of allocating one per batch.
func TestSizedProducerAndReusedFetchBatch(t *testing.T) {
	const topic = "one-partition"
	ctx := testContext(t)
	b := startBroker(t, 1)
	createTopic(t, ctx, b.Addrs(), topic, 1)
	p := NewProducerSized(b.Addrs(), topic, 3)
	defer p.Close()
	msgs := make([]kafkago.Message, 20)
	for i := range msgs {
		msgs[i] = event(1, i)
	}
	if err := p.Produce(ctx, msgs...); err != nil {
		t.Fatal(err)
	}
	r := NewPartitionReader(b.Addrs(), Claim{Topic: topic, Partition: 0}, 0)
	defer r.Close()
	first, err := r.FetchBatch(ctx, 10, time.Second, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(first) != 10 {
		t.Fatalf("first batch holds %d messages, want 10", len(first))
	}
	at := &first[0]
	for i, m := range first {
		if string(m.Value) != strconv.Itoa(i) {
			t.Fatalf("message %d holds %q, want %d", i, m.Value, i)
		}
	}
	second, err := r.FetchBatch(ctx, 10, time.Second, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(second) != 10 || string(second[0].Value) != "10" || string(second[9].Value) != "19" {
		t.Fatalf("second batch holds %d messages from %q", len(second), second[0].Value)
	}
	if &second[0] != at {
		t.Error("second batch is a new array, want the first batch's filled again")
	}
}
