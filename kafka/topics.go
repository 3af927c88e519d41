package kafka

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"time"

	kafkago "github.com/segmentio/kafka-go"
)

const (
	// clientID names the engine in the brokers' logs and quotas.
	clientID = "joinin"

	// adminTimeout bounds one administrative call (creating topics, reading metadata or offsets)
	// when the caller's context sets no deadline. A broker answers these in milliseconds; ten
	// seconds covers a controller that is busy electing leaders without hanging a startup or a
	// metrics scrape forever.
	adminTimeout = 10 * time.Second

	// dialTimeout bounds opening one TCP connection to a broker. A broker on the same network
	// accepts within milliseconds; five seconds, kafka-go's own default, rides out a SYN lost
	// once, and a dead broker is reported well within adminTimeout.
	dialTimeout = 5 * time.Second

	// maxTopicPartitions bounds TopicSpec.Partitions. Each partition is a unit of consumer
	// parallelism with a cursor in the database; ten thousand is far beyond what the engine
	// consumes and catches a count typed with too many zeros before a broker allocates it.
	maxTopicPartitions = 10000

	// transportIdleTimeout closes a pooled connection nobody used for this long. Thirty seconds
	// (kafka-go's default) keeps a producer's connections warm between bursts of events.
	transportIdleTimeout = 30 * time.Second
	// transportMetadataTTL is how stale a client's cached partition leaders may get. Six seconds
	// (kafka-go's default) finds a moved leader quickly without a metadata request per write.
	transportMetadataTTL = 6 * time.Second

	// maxReplicationFactor bounds TopicSpec.ReplicationFactor: Kafka clusters replicate three
	// ways, occasionally five; more than seven copies is a typo.
	maxReplicationFactor = 7
)

// TopicSpec is a topic the engine needs.
type TopicSpec struct {
	Name string
	// Partitions is the number of partitions. Card events are spread over partitions by a hash
	// of the card token, so changing it later moves cards to other partitions: choose it once.
	Partitions int
	// ReplicationFactor is how many brokers hold each partition: 1 for the embedded broker, 3 on
	// a cluster. It is never defaulted, so a pilot setting cannot reach a cluster unnoticed.
	ReplicationFactor int
}

func (s TopicSpec) validate() error {
	switch {
	case s.Name == "":
		return errors.New("topic spec has no name")
	case s.Partitions < 1 || s.Partitions > maxTopicPartitions:
		return fmt.Errorf("topic %s: partitions %d outside 1..%d", s.Name, s.Partitions, maxTopicPartitions)
	case s.ReplicationFactor < 1 || s.ReplicationFactor > maxReplicationFactor:
		return fmt.Errorf("topic %s: replication factor %d outside 1..%d", s.Name, s.ReplicationFactor, maxReplicationFactor)
	}
	return nil
}

// EnsureTopics creates the topics that do not exist yet, through the cluster's controller. A
// topic that already exists is left alone, but it must have the partition count its spec asks
// for: cards are assigned to partitions by hash modulo that count, and the engine keeps one
// cursor per partition, so a silent mismatch would move cards between cursors.
func EnsureTopics(ctx context.Context, brokers []string, specs []TopicSpec) error {
	if len(specs) == 0 {
		return nil
	}
	configs := make([]kafkago.TopicConfig, len(specs))
	for i, s := range specs {
		if err := s.validate(); err != nil {
			return err
		}
		configs[i] = kafkago.TopicConfig{
			Topic:             s.Name,
			NumPartitions:     s.Partitions,
			ReplicationFactor: s.ReplicationFactor,
		}
	}
	ctx, cancel := withAdminTimeout(ctx)
	defer cancel()

	err := withConn(ctx, brokers, func(conn *kafkago.Conn) error {
		controller, err := conn.Controller()
		if err != nil {
			return fmt.Errorf("find controller: %w", err)
		}
		addr := net.JoinHostPort(controller.Host, strconv.Itoa(controller.Port))
		return withConn(ctx, []string{addr}, func(conn *kafkago.Conn) error {
			// CreateTopics ignores TOPIC_ALREADY_EXISTS: that is what makes this idempotent.
			if err := conn.CreateTopics(configs...); err != nil {
				return fmt.Errorf("create topics on controller %s: %w", addr, err)
			}
			return nil
		})
	})
	if err != nil {
		return err
	}

	for _, s := range specs {
		parts, err := Partitions(ctx, brokers, s.Name)
		if err != nil {
			return err
		}
		if len(parts) != s.Partitions {
			return fmt.Errorf("topic %s has %d partitions, the spec asks for %d", s.Name, len(parts), s.Partitions)
		}
	}
	return nil
}

// Partitions returns the partition ids of a topic in ascending order. It never creates the topic,
// even on a cluster that auto-creates topics named in metadata requests.
func Partitions(ctx context.Context, brokers []string, topic string) ([]int, error) {
	ctx, cancel := withAdminTimeout(ctx)
	defer cancel()
	client, done := newClient(brokers, topic)
	defer done()

	res, err := client.Metadata(ctx, &kafkago.MetadataRequest{Topics: []string{topic}})
	if err != nil {
		return nil, fmt.Errorf("read partitions of %s: %w", topic, err)
	}
	for _, t := range res.Topics {
		if t.Name != topic {
			continue
		}
		if t.Error != nil {
			return nil, fmt.Errorf("read partitions of %s: %w", topic, t.Error)
		}
		ids := make([]int, len(t.Partitions))
		for i, p := range t.Partitions {
			ids[i] = p.ID
		}
		slices.Sort(ids)
		return ids, nil
	}
	return nil, fmt.Errorf("read partitions of %s: %w", topic, kafkago.UnknownTopicOrPartition)
}

// HighWatermarks returns, per partition of a topic, the offset the next produced message will
// get: a consumer whose cursor is c on partition p lags by HighWatermarks[p] - c messages.
func HighWatermarks(ctx context.Context, brokers []string, topic string) (map[int]int64, error) {
	ctx, cancel := withAdminTimeout(ctx)
	defer cancel()
	parts, err := Partitions(ctx, brokers, topic)
	if err != nil {
		return nil, err
	}
	client, done := newClient(brokers, topic)
	defer done()

	reqs := make([]kafkago.OffsetRequest, len(parts))
	for i, p := range parts {
		reqs[i] = kafkago.LastOffsetOf(p)
	}
	res, err := client.ListOffsets(ctx, &kafkago.ListOffsetsRequest{
		Topics: map[string][]kafkago.OffsetRequest{topic: reqs},
		// The high watermark counts every message, committed to a transaction or not; the engine's
		// producers are not transactional, so the two are the same.
		IsolationLevel: kafkago.ReadUncommitted,
	})
	if err != nil {
		return nil, fmt.Errorf("read high watermarks of %s: %w", topic, err)
	}
	marks := make(map[int]int64, len(parts))
	for _, p := range res.Topics[topic] {
		if p.Error != nil {
			return nil, fmt.Errorf("read high watermark of %s/%d: %w", topic, p.Partition, p.Error)
		}
		marks[p.Partition] = p.LastOffset
	}
	if len(marks) != len(parts) {
		return nil, fmt.Errorf("read high watermarks of %s: %d of %d partitions answered", topic, len(marks), len(parts))
	}
	return marks, nil
}

// withAdminTimeout bounds ctx by adminTimeout unless it already has a deadline.
func withAdminTimeout(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, adminTimeout)
}

// newTransport returns a connection pool for one client, restricted to the topics it uses so
// that metadata requests stay small on a cluster with many topics. The caller closes it with
// CloseIdleConnections.
func newTransport(topics ...string) *kafkago.Transport {
	return &kafkago.Transport{
		DialTimeout:    dialTimeout,
		IdleTimeout:    transportIdleTimeout,
		MetadataTTL:    transportMetadataTTL,
		MetadataTopics: topics,
		ClientID:       clientID,
	}
}

// newClient returns a kafka-go client for one call and the function that releases its
// connections.
func newClient(brokers []string, topic string) (*kafkago.Client, func()) {
	t := newTransport(topic)
	return &kafkago.Client{Addr: kafkago.TCP(brokers...), Transport: t}, t.CloseIdleConnections
}

// withConn opens a connection to the first broker of brokers that answers, runs fn on it and
// closes it. The connection's deadline follows ctx, and cancelling ctx interrupts fn.
func withConn(ctx context.Context, brokers []string, fn func(*kafkago.Conn) error) error {
	if len(brokers) == 0 {
		return errors.New("no broker addresses")
	}
	dialer := &kafkago.Dialer{Timeout: dialTimeout, ClientID: clientID, DualStack: true}
	var conn *kafkago.Conn
	var errs []error
	for _, addr := range brokers {
		c, err := dialer.DialContext(ctx, "tcp", addr)
		if err == nil {
			conn = c
			break
		}
		errs = append(errs, fmt.Errorf("dial %s: %w", addr, err))
	}
	if conn == nil {
		return errors.Join(errs...)
	}
	defer conn.Close()

	deadline, _ := ctx.Deadline()
	if err := conn.SetDeadline(deadline); err != nil {
		return fmt.Errorf("set deadline: %w", err)
	}
	// A deadline in the past makes the blocked read or write return at once. Its error is moot:
	// it fails only on a connection that is already closed, and then nothing is blocked on it.
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	if err := fn(conn); err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("%w: %w", ctx.Err(), err)
		}
		return err
	}
	return nil
}
