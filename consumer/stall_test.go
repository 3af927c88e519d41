package consumer_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/joinincard/engine/consumer"
	"github.com/joinincard/engine/internal/pgtest"
	"github.com/joinincard/engine/kafka"
	"github.com/joinincard/engine/postgres"
)

// stallDrainTimeout bounds how long partitions held by a member that does not consume them may
// keep their events: the watchdog's stall limit (a session timeout plus a rebalance timeout),
// its measuring interval, the rebalance that drops the member (at most a rebalance timeout), and
// the time to apply what waited.
const stallDrainTimeout = 60 * time.Second

// lockedBuffer is a log destination the test reads while the consumer writes.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// behind returns how many events of topic the database's cursors have not reached.
func behind(st *postgres.Store, brokers []string, topic string) (int64, error) {
	ctx := context.Background()
	marks, err := kafka.HighWatermarks(ctx, brokers, topic)
	if err != nil {
		return 0, err
	}
	var n int64
	for p, hw := range marks {
		pos, err := st.Cursor(ctx, fmt.Sprintf("%s/%d", topic, p))
		if err != nil {
			return 0, err
		}
		n += hw - pos
	}
	return n, nil
}

// waitDrained waits until every partition of topic is applied, at most within.
func waitDrained(t *testing.T, st *postgres.Store, brokers []string, topic string, within time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	for {
		n, err := behind(st, brokers, topic)
		if err == nil && n == 0 {
			return time.Since(start)
		}
		if time.Since(start) > within {
			t.Fatalf("%s still %d events behind (%v) after %v", topic, n, err, within)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// A member of the group whose work hangs while it heartbeats keeps its partitions from the
// others, and the coordinator never expires it. The engine's watchdog sees those partitions'
// events waiting, warns, and rejoins the group; the rebalance drops the hung member, and the
// engine drains every partition, each event applied once.
func TestWatchdogTakesPartitionsFromAHungMember(t *testing.T) {
	st := pgtest.NewStore(t)
	brokers := startBroker(t)
	city, evs := cityEvents(t, st, 6, 200, 10, 4000, 500)
	msgs := keyed(evs...)
	half := len(city.Registrations()) + len(city.Funding(100000, 200000))
	produce(t, brokers, msgs[:half]...)

	const group = "stall"
	var logs lockedBuffer
	metrics := consumer.NewMetrics(prometheus.NewRegistry())
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cons := consumer.New(consumer.Config{Brokers: brokers, Topic: topic, GroupID: group,
		Log: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelWarn})), Metrics: metrics}, st)
	done := make(chan error, 1)
	go func() { done <- cons.Run(ctx) }()
	waitDrained(t, st, brokers, topic, 30*time.Second)

	// The hung member joins; its work never returns, whatever its ctx says, until the test ends.
	release := make(chan struct{})
	took := make(chan int, partitions)
	hungCtx, cancelHung := context.WithCancel(context.Background())
	hungDone := make(chan error, 1)
	go func() {
		hungDone <- kafka.RunGroup(hungCtx, kafka.GroupConfig{Brokers: brokers, GroupID: group, Topic: topic},
			func(ctx context.Context, c kafka.Claim) error {
				took <- c.Partition
				<-release
				return nil
			})
	}()
	defer func() {
		close(release)
		cancelHung()
		if err := <-hungDone; err != nil {
			t.Errorf("hung member: %v", err)
		}
	}()
	var hung []int
	for len(hung) < partitions/2 {
		select {
		case p := <-took:
			hung = append(hung, p)
		case <-time.After(30 * time.Second):
			t.Fatalf("the hung member took partitions %v only", hung)
		}
	}

	produce(t, brokers, msgs[half:]...)
	drained := waitDrained(t, st, brokers, topic, stallDrainTimeout)
	t.Logf("partitions %v of the hung member drained %v after their events arrived", hung, drained)

	var rejoins dto.Metric
	if err := metrics.ForcedRejoins.Write(&rejoins); err != nil {
		t.Fatal(err)
	}
	if rejoins.GetCounter().GetValue() < 1 {
		t.Errorf("forced rejoins counted %v, want at least 1", rejoins.GetCounter().GetValue())
	}
	for _, want := range []string{"has not committed for longer than the session timeout", "rejoining the consumer group"} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("no warning %q in the logs:\n%s", want, logs.String())
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	checkLandedOnce(t, st, city, evs)
}
