package kafka

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"syscall"
	"time"

	kafkago "github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/compress"
)

const (
	// maxProduceAttempts bounds how often Produce sends the same messages. A broker that
	// restarted on the same port resets the first request on each pooled connection; a leader
	// that moved answers NOT_LEADER until metadata is refreshed. Five attempts, with up to 1.5 s of
	// backoff between the first and the last, cover both; a broker down for longer is an outage the caller must see.
	maxProduceAttempts = 5
	// produceBackoffMin is the first pause between attempts, doubled on each further attempt up
	// to produceBackoffMax: a reset connection is redialed at once, a leader election takes a
	// few hundred milliseconds, and a caller waiting on an HTTP request cannot wait much longer.
	produceBackoffMin = 100 * time.Millisecond
	produceBackoffMax = 1 * time.Second

	// writerBatchTimeout is how long kafka-go holds a partition's batch that is not full before
	// sending it. Its default (one second) would add a second to every synchronous Produce of a
	// few events; a few milliseconds still lets concurrent Produce calls share a request.
	writerBatchTimeout = 2 * time.Millisecond
	// writerBatchSize is the most messages kafka-go puts in one partition's batch; a full batch
	// is sent without waiting for writerBatchTimeout. A thousand small card events are well under
	// writerBatchBytes, and one request per thousand events amortizes the broker's round trip.
	// kafka-go allocates room for this many messages (160 bytes each) for every batch it starts,
	// however few it then holds: a producer of small steady calls takes a smaller bound
	// (NewProducerSized).
	writerBatchSize = 1000
	// writerBatchBytes is the most bytes in one partition's batch: Kafka's default
	// message.max.bytes (1 MiB), the largest batch a broker with default settings accepts.
	writerBatchBytes = 1 << 20
	// writerMaxAttempts is how often kafka-go itself sends one batch before failing it. Its
	// retries keep a partition's order (the next batch waits), unlike a retry by Produce, so it
	// handles the common short failures; Produce retries what is left.
	writerMaxAttempts = 3
	// writerBackoffMin and writerBackoffMax bound kafka-go's pause between those attempts.
	writerBackoffMin = 20 * time.Millisecond
	writerBackoffMax = 500 * time.Millisecond
	// writerTimeout bounds sending one produce request and, separately, waiting for its answer.
	// With every in-sync replica acknowledging, a healthy cluster answers within milliseconds;
	// ten seconds tolerates a slow fsync without leaving a request hanging.
	writerTimeout = 10 * time.Second
)

// Producer writes card events to one topic. Each message must have a key (the card token): all
// events of a card go to one partition, in the order they were produced. A Producer is safe for
// concurrent use; Close it when done.
type Producer struct {
	topic     string
	writer    *kafkago.Writer
	transport *kafkago.Transport
}

// NewProducer returns a producer for topic. It connects lazily, on the first Produce. The topic
// must exist (EnsureTopics): producing never creates one.
func NewProducer(brokers []string, topic string) *Producer {
	return NewProducerSized(brokers, topic, writerBatchSize)
}

// NewProducerSized is NewProducer with batchMessages, between 1 and writerBatchSize, as the most
// messages of one partition's request. kafka-go allocates room for batchMessages messages for
// each partition's request, however few it holds: a producer that sends a steady stream of small
// calls (tens of events a partition every few milliseconds) makes that much garbage per call
// with the default of a thousand, megabytes a second that the process's garbage collector must
// then chase while the engine works. It sets batchMessages near what one call holds per
// partition; a call that holds more goes out in several requests.
func NewProducerSized(brokers []string, topic string, batchMessages int) *Producer {
	batchMessages = min(max(batchMessages, 1), writerBatchSize)
	transport := newTransport(topic)
	return &Producer{
		topic:     topic,
		transport: transport,
		writer: &kafkago.Writer{
			Addr:  kafkago.TCP(brokers...),
			Topic: topic,
			// Hash sends every message with the same key to the same partition, so one card's
			// events keep their order. kafka-go's Hash is FNV-1a, not the Java client's murmur2:
			// every producer of a topic must use this Producer (or kafka.Murmur2Balancer
			// everywhere) for a card to stay on one partition.
			Balancer: &kafkago.Hash{},
			// RequireAll: a message is acknowledged only once every in-sync replica has it, so an
			// acknowledged event survives the loss of the leader. kafka-go defaults to
			// RequireNone, which acknowledges before the broker has even read the message.
			RequiredAcks: kafkago.RequireAll,
			BatchTimeout: writerBatchTimeout,
			BatchSize:    batchMessages,
			BatchBytes:   writerBatchBytes,
			MaxAttempts:  writerMaxAttempts,
			// WriteBackoffMin and WriteBackoffMax: kafka-go's pause between its own attempts.
			WriteBackoffMin: writerBackoffMin,
			WriteBackoffMax: writerBackoffMax,
			WriteTimeout:    writerTimeout,
			ReadTimeout:     writerTimeout,
			// Async false: Produce returns only when the broker acknowledged, or with the error
			// that says it did not. An asynchronous writer drops errors.
			Async: false,
			// Topics are created by EnsureTopics with a chosen partition count; a misspelt topic
			// fails instead of appearing with the broker's default count.
			AllowAutoTopicCreation: false,
			// No compression: card events are small and unique, compression would save little,
			// and it costs CPU on the producer and on every consumer.
			Compression: compress.None,
			Transport:   transport,
		},
	}
}

// Produce writes msgs and returns once the broker acknowledged all of them. Transient failures
// (a reset connection, a moved leader, a timeout) are retried, at most maxProduceAttempts times
// in all; only the messages that failed are sent again.
//
// Delivery is at least once: a message whose acknowledgement was lost is written twice, which
// the engine absorbs because every event carries a unique id. A message is also written after
// later messages of its partition if its first attempt failed and theirs did not; consumers
// order a card's events by their own timestamps, not only by offset. If ctx ends first, Produce
// returns ctx's error, and messages already handed to the connection may still be written.
func (p *Producer) Produce(ctx context.Context, msgs ...kafkago.Message) error {
	for i := range msgs {
		if len(msgs[i].Key) == 0 {
			return fmt.Errorf("produce to %s: message %d has no key, so it would not stay with its card's events", p.topic, i)
		}
	}
	pending := msgs
	for attempt := 1; ; attempt++ {
		err := p.writer.WriteMessages(ctx, pending...)
		if err == nil {
			return nil
		}
		if ctx.Err() != nil || attempt == maxProduceAttempts || !transient(err) {
			return fmt.Errorf("produce %d messages to %s (attempt %d): %w", len(pending), p.topic, attempt, err)
		}
		var werrs kafkago.WriteErrors
		if errors.As(err, &werrs) && len(werrs) == len(pending) {
			pending = failedMessages(pending, werrs)
		}
		if err := sleep(ctx, backoff(attempt, produceBackoffMin, produceBackoffMax)); err != nil {
			return fmt.Errorf("produce %d messages to %s: %w", len(pending), p.topic, err)
		}
	}
}

// Close sends what is buffered, waits for it, and releases the producer's connections.
func (p *Producer) Close() error {
	err := p.writer.Close()
	p.transport.CloseIdleConnections()
	if err != nil {
		return fmt.Errorf("close producer for %s: %w", p.topic, err)
	}
	return nil
}

// failedMessages returns the messages whose write failed.
func failedMessages(msgs []kafkago.Message, werrs kafkago.WriteErrors) []kafkago.Message {
	failed := make([]kafkago.Message, 0, werrs.Count())
	for i, err := range werrs {
		if err != nil {
			failed = append(failed, msgs[i])
		}
	}
	return failed
}

// transient reports whether err may go away if the request is sent again: a connection that
// broke, a timeout, or a Kafka error code that Kafka itself calls retriable.
func transient(err error) bool {
	var werrs kafkago.WriteErrors
	if errors.As(err, &werrs) {
		for _, e := range werrs {
			if e != nil && !transient(e) {
				return false
			}
		}
		return true
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	var kerr kafkago.Error
	if errors.As(err, &kerr) {
		return kerr.Temporary()
	}
	if errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.ECONNREFUSED) ||
		errors.Is(err, syscall.EPIPE) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return true
	}
	var nerr net.Error
	return errors.As(err, &nerr) && nerr.Timeout()
}

// backoff returns the pause before attempt+1: lo doubled per attempt, capped at hi, with jitter
// (half to all of it) so that producers failed by the same outage do not retry in lockstep.
func backoff(attempt int, lo, hi time.Duration) time.Duration {
	d := lo
	for i := 1; i < attempt && d < hi; i++ {
		d *= 2
	}
	d = min(d, hi)
	return d/2 + rand.N(d/2+1)
}

// sleep pauses for d or until ctx is done, whichever comes first.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
