package kafka

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	kafkago "github.com/segmentio/kafka-go"
	"golang.org/x/sync/errgroup"
)

// BenchmarkProduceConsume produces a million small card events to an embedded broker through one
// Producer shared by several goroutines, then consumes them with one PartitionReader per
// partition, and reports both rates; once with the broker in memory, once with a DataDir (every
// batch fsynced):
//
//	go test -run XXX -bench . ./kafka
func BenchmarkProduceConsume(b *testing.B) {
	b.Run("memory", func(b *testing.B) { benchmarkProduceConsume(b, false) })
	b.Run("disk", func(b *testing.B) { benchmarkProduceConsume(b, true) })
}

func benchmarkProduceConsume(b *testing.B, persistent bool) {
	const (
		topic      = "card-events"
		messages   = 1_000_000
		partitions = 8
		cards      = 100_000
		// producers call Produce concurrently, each for its own cards so each card's order holds.
		producers = 8
		// chunk is the messages per Produce call: an HTTP batch of taps, or a consumer's output.
		chunk     = 10_000
		fetchMax  = 4096
		fetchWait = 5 * time.Millisecond
	)
	msgs := make([]kafkago.Message, messages)
	for i := range msgs {
		card := i % cards
		msgs[i] = kafkago.Message{
			Key:   fmt.Appendf(nil, "card-%06d", card),
			Value: fmt.Appendf(nil, `{"card":%d,"seq":%d,"fen":250}`, card, i/cards),
		}
	}
	// Each producer owns the cards congruent to its index, keeping their events in order.
	var shares [producers][]kafkago.Message
	for i, m := range msgs {
		shares[(i%cards)%producers] = append(shares[(i%cards)%producers], m)
	}

	var produceTime, consumeTime time.Duration
	for range b.N {
		b.StopTimer()
		ctx := context.Background()
		cfg := EmbeddedConfig{Addr: "127.0.0.1:0", Partitions: partitions}
		if persistent {
			cfg.DataDir = b.TempDir()
		}
		broker, err := StartEmbedded(cfg)
		if err != nil {
			b.Fatal(err)
		}
		brokers := broker.Addrs()
		if err := EnsureTopics(ctx, brokers, []TopicSpec{{Name: topic, Partitions: partitions, ReplicationFactor: 1}}); err != nil {
			b.Fatal(err)
		}
		p := NewProducer(brokers, topic)
		b.StartTimer()

		start := time.Now()
		g, gctx := errgroup.WithContext(ctx)
		for _, share := range shares {
			g.Go(func() error {
				for i := 0; i < len(share); i += chunk {
					if err := p.Produce(gctx, share[i:min(i+chunk, len(share))]...); err != nil {
						return err
					}
				}
				return nil
			})
		}
		if err := g.Wait(); err != nil {
			b.Fatal(err)
		}
		produceTime += time.Since(start)

		b.StopTimer()
		if err := p.Close(); err != nil {
			b.Fatal(err)
		}
		marks, err := HighWatermarks(ctx, brokers, topic)
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()

		start = time.Now()
		var mu sync.Mutex
		read := 0
		g, gctx = errgroup.WithContext(ctx)
		for part, mark := range marks {
			g.Go(func() error {
				r := NewPartitionReader(brokers, Claim{Topic: topic, Partition: part}, 0)
				var n int64
				for n < mark {
					batch, err := r.FetchBatch(gctx, fetchMax, fetchWait, nil)
					if err != nil {
						return err
					}
					n += int64(len(batch))
				}
				mu.Lock()
				read += int(n)
				mu.Unlock()
				return r.Close()
			})
		}
		if err := g.Wait(); err != nil {
			b.Fatal(err)
		}
		consumeTime += time.Since(start)

		b.StopTimer()
		broker.Close()
		if read != messages {
			b.Fatalf("consumed %d messages, produced %d", read, messages)
		}
		b.StartTimer()
	}
	b.ReportMetric(float64(messages*b.N)/produceTime.Seconds(), "produced/s")
	b.ReportMetric(float64(messages*b.N)/consumeTime.Seconds(), "consumed/s")
}
