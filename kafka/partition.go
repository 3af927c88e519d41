package kafka

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	kafkago "github.com/segmentio/kafka-go"
)

const (
	// DefaultSessionTimeout is how long the coordinator waits for a member's heartbeat before it
	// gives the member's partitions to the others: the failover time after a consumer process
	// dies without leaving. Six seconds is the smallest session Apache Kafka accepts by default
	// (group.min.session.timeout.ms), and the embedded broker is configured to the same range.
	DefaultSessionTimeout = 6 * time.Second
	// DefaultHeartbeatInterval is how often a member heartbeats. A member learns of a rebalance
	// only from a heartbeat's answer, so this is also how long a surviving member takes to notice
	// that partitions are moving. Kafka asks for at most a third of the session timeout.
	DefaultHeartbeatInterval = 1 * time.Second
	// DefaultRebalanceTimeout is how long the coordinator waits for every member to rejoin during
	// a rebalance. A member rejoins once its work functions returned, that is once the batch in
	// flight is committed to the database; ten seconds covers a full batch on a busy database.
	DefaultRebalanceTimeout = 10 * time.Second

	// groupJoinBackoff is the pause before a member tries to join again after a failed attempt
	// (coordinator unreachable, say): short enough for a quick failover, long enough not to spin.
	groupJoinBackoff = 1 * time.Second
	// groupTimeout bounds one request to the group coordinator (join aside, which may wait for the
	// rebalance). Five seconds is kafka-go's default and well above a healthy coordinator's answer.
	groupTimeout = 5 * time.Second
	// groupPartitionWatchInterval is how often a member checks whether the topic gained
	// partitions, so that new partitions are consumed without a restart.
	groupPartitionWatchInterval = 5 * time.Second
	// maxGroupFailures bounds consecutive failures to get a generation. With groupJoinBackoff
	// between them, thirty failures are half a minute of an unreachable coordinator: RunGroup then
	// returns the error, and the process supervisor restarts the consumer visibly instead of it
	// retrying in silence.
	maxGroupFailures = 30

	// MaxFetchBatch bounds FetchBatch's max. A batch feeds one database transaction, and the
	// ledger applies at most ledger.MaxBatchTransfers (16384) transfers per transaction.
	MaxFetchBatch = 16384
	// readerQueueCapacity is how many messages a PartitionReader fetches ahead of FetchBatch.
	// Half of MaxFetchBatch keeps the next batch arriving while the previous one is applied, and
	// bounds a reader's memory to that many messages.
	readerQueueCapacity = MaxFetchBatch / 2
	// fetchBatchPrealloc is the room FetchBatch allocates for a batch up front: a caught-up
	// reader's batches are small, and a batch the size of max (kilobytes per message slot) would
	// cost more to clear than to grow once a burst needs it.
	fetchBatchPrealloc = 256
	// readerMinBytes: the broker answers a fetch as soon as it has one byte, so a lone tap is
	// delivered at once rather than after readerMaxWait.
	readerMinBytes = 1
	// readerMaxBytes bounds one fetch response: 4 MiB, room for four maximum-size (1 MiB) produce
	// batches, enough to fill a large FetchBatch in a few round trips.
	readerMaxBytes = 4 << 20
	// readerMaxWait is how long the broker holds a fetch on a partition with nothing new, and
	// kafka-go also makes it the deadline for the response to start arriving: a broker that needs
	// longer to assemble a full response (readerMaxBytes) on a busy machine times the fetch out,
	// and the same fetch timed out again and again never delivers. A second leaves room for that,
	// keeps an idle reader to one request a second per partition, and adds at most a second to a
	// rebalance, since Close waits for the fetch in flight.
	readerMaxWait = time.Second
	// readerBatchTimeout bounds reading one message of a fetched response off the connection:
	// kafka-go's default, far above the time to read a megabyte from a live broker.
	readerBatchTimeout = 10 * time.Second
	// readerMaxAttempts is how many times the reader tries to connect before FetchBatch reports
	// the failure (the reader keeps trying after that).
	readerMaxAttempts = 3
	// readerBackoffMin and readerBackoffMax bound the reader's pause between attempts to reach
	// the partition's leader.
	readerBackoffMin = 100 * time.Millisecond
	readerBackoffMax = 1 * time.Second
)

// Claim is a partition this process owns for the current generation of its consumer group.
type Claim struct {
	Topic     string
	Partition int

	gen *kafkago.Generation // nil for a claim not handed out by RunGroup
}

// String returns topic/partition.
func (c Claim) String() string { return fmt.Sprintf("%s/%d", c.Topic, c.Partition) }

// CommitAdvisory records offset (the next offset to read: the last message applied plus one) as
// the group's committed offset of the claim's partition, for tools that show consumer lag. The
// engine never reads it back: its database holds the cursor that counts, so skipping this call,
// or its failure, changes nothing but a dashboard. A commit after the generation ended fails
// (the partition may belong to another member by then); log it, never retry it. Commit once per
// applied batch at most: a commit per message costs a round trip each and divides throughput
// by about eighty. The call waits at most groupTimeout.
func (c Claim) CommitAdvisory(offset int64) error {
	if c.gen == nil {
		return fmt.Errorf("commit advisory offset of %s: claim was not handed out by RunGroup", c)
	}
	err := c.gen.CommitOffsets(map[string]map[int]int64{c.Topic: {c.Partition: offset}})
	if err != nil {
		return fmt.Errorf("commit advisory offset %d of %s: %w", offset, c, err)
	}
	return nil
}

// GroupConfig configures a member of a consumer group.
//
// The timeouts are sent to the broker, which refuses a session timeout outside its configured
// range (group.min.session.timeout.ms .. group.max.session.timeout.ms, 6 s .. 30 min by default
// on Apache Kafka and on the embedded broker): a value must suit both the embedded broker and
// the cluster the engine moves to. Zero values take the defaults above.
type GroupConfig struct {
	Brokers []string
	GroupID string
	Topic   string
	// SessionTimeout: DefaultSessionTimeout if zero.
	SessionTimeout time.Duration
	// HeartbeatInterval: DefaultHeartbeatInterval if zero; at most a third of SessionTimeout.
	HeartbeatInterval time.Duration
	// RebalanceTimeout: DefaultRebalanceTimeout if zero.
	RebalanceTimeout time.Duration
	// Logger receives group membership changes (debug) and failures (warn); nil discards them.
	Logger *slog.Logger
	// Rejoin, if not nil, asks the member to leave the group and join it again as a new member:
	// each value received ends the member's generation, stops its work, sends LeaveGroup and
	// joins afresh. Leaving makes the coordinator rebalance at once, and a rebalance drops every
	// member that does not rejoin within its rebalance timeout: a member that is gone but still
	// holds partitions (one that heartbeats while its work hangs, or one the coordinator failed
	// to expire) loses them to the members that are alive. The sender bounds how often it asks:
	// each rejoin pauses this member's partitions for a rebalance.
	Rejoin <-chan struct{}
}

func (cfg GroupConfig) withDefaults() (GroupConfig, error) {
	if len(cfg.Brokers) == 0 {
		return cfg, errors.New("group config: no broker addresses")
	}
	if cfg.GroupID == "" || cfg.Topic == "" {
		return cfg, errors.New("group config: group id and topic are required")
	}
	if cfg.SessionTimeout == 0 {
		cfg.SessionTimeout = DefaultSessionTimeout
	}
	if cfg.HeartbeatInterval == 0 {
		cfg.HeartbeatInterval = DefaultHeartbeatInterval
	}
	if cfg.RebalanceTimeout == 0 {
		cfg.RebalanceTimeout = DefaultRebalanceTimeout
	}
	if cfg.HeartbeatInterval <= 0 || cfg.HeartbeatInterval*3 > cfg.SessionTimeout {
		return cfg, fmt.Errorf("group config: heartbeat interval %v must be positive and at most a third of the session timeout %v",
			cfg.HeartbeatInterval, cfg.SessionTimeout)
	}
	if cfg.RebalanceTimeout <= 0 {
		return cfg, fmt.Errorf("group config: rebalance timeout %v must be positive", cfg.RebalanceTimeout)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return cfg, nil
}

// RunGroup joins the consumer group cfg.GroupID on cfg.Topic and, for each generation of the
// group, runs work once per partition assigned to this member, each in its own goroutine.
//
// work owns its partition until its ctx is cancelled: when the group rebalances, or when the ctx
// given to RunGroup ends (RunGroup then leaves the group first, so that the others take over
// the partitions at once instead of after a session timeout). work should then return promptly:
// the group cannot finish rebalancing until every member's work has returned. Returning nil
// before ctx is cancelled gives up the generation, and the member rejoins.
//
// work reads its partition from the offset its database holds (NewPartitionReader), never from
// the group's committed offset. A member whose work outlives the rebalance timeout, or that lost
// the coordinator for longer than the session timeout, is dropped from the group while its work
// may still be running, and the partition's new owner may start meanwhile: the database cursor,
// advanced only from the position a batch read, makes the slower of the two fail its commit.
//
// Each value received from cfg.Rejoin makes the member leave the group and join it again as a
// new member (see GroupConfig.Rejoin); its works are stopped and started as in a rebalance.
//
// RunGroup returns nil once ctx is done, the error of the first work that failed (any error
// other than its ctx being cancelled ends the run, for every partition), or the error that
// kept it from joining the group maxGroupFailures times in a row.
func RunGroup(ctx context.Context, cfg GroupConfig, work func(ctx context.Context, c Claim) error) error {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return err
	}
	log := cfg.Logger.With("group", cfg.GroupID, "topic", cfg.Topic)
	for {
		rejoin, err := runMembership(ctx, cfg, log, work)
		if err != nil || !rejoin || ctx.Err() != nil {
			return err
		}
		log.Info("rejoining the consumer group as a new member")
	}
}

// runMembership joins the group as a new member and runs its generations until ctx is done, a
// work fails, joining fails maxGroupFailures times in a row, or cfg.Rejoin asks for a new
// membership (rejoin is then true). The member has left the group when it returns.
func runMembership(ctx context.Context, cfg GroupConfig, log *slog.Logger,
	work func(ctx context.Context, c Claim) error) (rejoin bool, err error) {
	group, err := kafkago.NewConsumerGroup(kafkago.ConsumerGroupConfig{
		ID:      cfg.GroupID,
		Brokers: cfg.Brokers,
		Dialer:  &kafkago.Dialer{Timeout: dialTimeout, ClientID: clientID, DualStack: true},
		Topics:  []string{cfg.Topic},
		// Range gives each member a contiguous run of partitions; every member offers the same
		// single strategy, so members of one engine version always agree.
		GroupBalancers:         []kafkago.GroupBalancer{kafkago.RangeGroupBalancer{}},
		HeartbeatInterval:      cfg.HeartbeatInterval,
		SessionTimeout:         cfg.SessionTimeout,
		RebalanceTimeout:       cfg.RebalanceTimeout,
		JoinGroupBackoff:       groupJoinBackoff,
		Timeout:                groupTimeout,
		WatchPartitionChanges:  true,
		PartitionWatchInterval: groupPartitionWatchInterval,
		// -1 ms leaves the retention of advisory offsets to the broker's configuration.
		RetentionTime: -time.Millisecond,
		// Only advisory: work starts from the database's cursor, whatever this says.
		StartOffset: kafkago.FirstOffset,
		Logger: kafkago.LoggerFunc(func(format string, args ...any) {
			log.Debug(fmt.Sprintf(format, args...))
		}),
		ErrorLogger: kafkago.LoggerFunc(func(format string, args ...any) {
			log.Warn(fmt.Sprintf(format, args...))
		}),
	})
	if err != nil {
		return false, fmt.Errorf("consumer group %s: %w", cfg.GroupID, err)
	}

	// Leaving the group (Close) ends the current generation, which cancels every work. Close
	// waits for the works, so it runs on its own goroutine; the deferred wait makes sure the
	// member has left before runMembership returns.
	closed := make(chan struct{})
	var closeOnce sync.Once
	leave := func() {
		closeOnce.Do(func() {
			go func() {
				defer close(closed)
				// ConsumerGroup.Close always returns nil.
				_ = group.Close()
			}()
		})
	}
	stop := context.AfterFunc(ctx, leave)
	// A rejoin asked for is a leave that the loop below reads as the end of this membership.
	var asked atomic.Bool
	over := make(chan struct{})
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		select {
		case <-cfg.Rejoin:
			asked.Store(true)
			leave()
		case <-over:
		}
	}()
	defer func() {
		close(over)
		<-watched
		stop()
		leave()
		<-closed
	}()

	failures := 0
	for {
		gen, err := group.Next(ctx)
		switch {
		case ctx.Err() != nil:
			return false, nil
		case errors.Is(err, kafkago.ErrGroupClosed):
			return asked.Load(), nil
		case err != nil:
			failures++
			if failures >= maxGroupFailures {
				return false, fmt.Errorf("consumer group %s: %d attempts to join failed, the last: %w", cfg.GroupID, failures, err)
			}
			log.Warn("joining consumer group failed", "attempt", failures, "err", err)
			continue
		}
		failures = 0
		if err := runGeneration(ctx, gen, cfg.Topic, log, work, leave); err != nil {
			return false, fmt.Errorf("consumer group %s: %w", cfg.GroupID, err)
		}
		if ctx.Err() != nil {
			return false, nil
		}
	}
}

// runGeneration runs work on each partition the generation assigns and waits for all of them.
// It returns the first error of a work that failed for another reason than its ctx ending.
func runGeneration(ctx context.Context, gen *kafkago.Generation, topic string, log *slog.Logger,
	work func(ctx context.Context, c Claim) error, leave func()) error {
	parts := make([]int, 0, len(gen.Assignments[topic]))
	for _, a := range gen.Assignments[topic] {
		parts = append(parts, a.ID)
	}
	slices.Sort(parts)
	log.Info("partitions assigned", "generation", gen.ID, "member", gen.MemberID, "partitions", parts)

	var wg sync.WaitGroup
	var mu sync.Mutex
	var firstErr error
	for _, p := range parts {
		c := Claim{Topic: topic, Partition: p, gen: gen}
		wg.Add(1)
		// The generation's context ends when the generation does; work gets a context that
		// carries ctx's values and ends with the generation. RunGroup ends the generation when
		// ctx is done by leaving the group, so that the end of this work cannot be mistaken for
		// a wish to rejoin.
		gen.Start(func(genCtx context.Context) {
			defer wg.Done()
			wctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
			defer cancel()
			stop := context.AfterFunc(genCtx, cancel)
			defer stop()

			err := work(wctx, c)
			if err == nil || (wctx.Err() != nil && errors.Is(err, context.Canceled)) {
				return
			}
			mu.Lock()
			if firstErr == nil {
				firstErr = fmt.Errorf("partition %s: %w", c, err)
			}
			mu.Unlock()
			// Leave the group rather than let the generation's end make this member rejoin.
			leave()
		})
	}
	wg.Wait()
	return firstErr
}

// PartitionReader reads one partition from a given offset, outside any consumer group.
type PartitionReader struct {
	claim  Claim
	reader *kafkago.Reader
	// pending is an error the reader reported after FetchBatch had messages to return; the next
	// FetchBatch returns it. kafka-go reports an error once, so dropping it could leave the next
	// FetchBatch waiting for a reader that has stopped.
	pending error
	// batch is the array the last FetchBatch returned, which the next one fills again: a
	// caught-up reader returns hundreds of batches a second, and a new array each time
	// (160 bytes a message slot) is garbage the process's collector must chase.
	batch []kafkago.Message
}

// NewPartitionReader returns a reader of partition c starting at offset: the first offset to
// read, normally the cursor the database holds for the partition (kafka.FirstOffset and
// kafka.LastOffset also work). Close it when done.
func NewPartitionReader(brokers []string, c Claim, offset int64) *PartitionReader {
	r := kafkago.NewReader(kafkago.ReaderConfig{
		Brokers:   brokers,
		Topic:     c.Topic,
		Partition: c.Partition,
		// No GroupID: the reader neither joins a group nor commits; RunGroup does the former and
		// the database the latter.
		Dialer:           &kafkago.Dialer{Timeout: dialTimeout, ClientID: clientID, DualStack: true},
		QueueCapacity:    readerQueueCapacity,
		MinBytes:         readerMinBytes,
		MaxBytes:         readerMaxBytes,
		MaxWait:          readerMaxWait,
		ReadBatchTimeout: readerBatchTimeout,
		// Lag comes from HighWatermarks and the database's cursors; the reader's own lag polling
		// would cost a request per partition per interval.
		ReadLagInterval: -1,
		ReadBackoffMin:  readerBackoffMin,
		ReadBackoffMax:  readerBackoffMax,
		MaxAttempts:     readerMaxAttempts,
		// Only messages of committed transactions; the engine's producers are not transactional,
		// so today this hides nothing, and it keeps aborted writes out if one ever is.
		IsolationLevel: kafkago.ReadCommitted,
		// A cursor past the end of the log means the broker lost messages the engine applied (an
		// in-memory broker restarted, say). Report it rather than wait, as kafka-go would by
		// default, until new messages reach the cursor and are silently skipped up to it.
		OffsetOutOfRangeError: true,
	})
	pr := &PartitionReader{claim: c, reader: r}
	// SetOffset fails only on a closed reader or one in a group; this one is neither, but keep
	// the error for the first FetchBatch rather than drop it.
	if err := r.SetOffset(offset); err != nil {
		pr.pending = fmt.Errorf("read %s from offset %d: %w", c, offset, err)
	}
	return pr
}

// ErrReleased is FetchBatch's answer when its hold was released before a message arrived: the
// caller can hand a batch on, and has none.
var ErrReleased = errors.New("hold released before a message arrived")

// FetchBatch returns the next messages of the partition, in offset order: at least one and at
// most max. It waits until a message arrives or ctx is done, then collects more:
//
//   - While hold is open (not nil and not closed), it takes every message that arrives, up to
//     max: the caller cannot hand a batch on yet (its previous batch is still being applied),
//     and what arrives meanwhile joins this batch rather than wait for the next.
//   - Once hold is released (nil, or closed), it returns as soon as the batch ends where the
//     partition ended when its last message was fetched: a caught-up reader hands its events
//     on at once rather than wait for more that may not come. A reader behind the log keeps
//     collecting until it has max or wait has passed since the first message arrived.
//
// If hold is closed before any message arrives, FetchBatch returns ErrReleased. It returns ctx's
// error only when it has no message to return; a batch is never cut short by an error, which the
// next call returns instead.
//
// The slice returned is valid until the next FetchBatch, which reuses its array: a caller that
// keeps messages past that copies them (the messages' keys and values are not reused).
func (r *PartitionReader) FetchBatch(ctx context.Context, max int, wait time.Duration, hold <-chan struct{}) ([]kafkago.Message, error) {
	batch, err := r.fetchBatch(ctx, max, wait, hold)
	if cap(batch) > 0 {
		r.batch = batch
	}
	return batch, err
}

func (r *PartitionReader) fetchBatch(ctx context.Context, max int, wait time.Duration, hold <-chan struct{}) ([]kafkago.Message, error) {
	if max < 1 || max > MaxFetchBatch {
		return nil, fmt.Errorf("fetch batch from %s: max %d outside 1..%d", r.claim, max, MaxFetchBatch)
	}
	if wait <= 0 {
		return nil, fmt.Errorf("fetch batch from %s: wait %v must be positive", r.claim, wait)
	}
	if err := r.pending; err != nil {
		r.pending = nil
		return nil, err
	}
	if hold != nil {
		select {
		case <-hold:
			return nil, ErrReleased
		default:
		}
	}
	// hctx ends with ctx or when hold is released.
	hctx := ctx
	if hold != nil {
		var cancel context.CancelFunc
		hctx, cancel = context.WithCancel(ctx)
		defer cancel()
		go func() {
			select {
			case <-hold:
				cancel()
			case <-hctx.Done():
			}
		}()
	}
	first, err := r.reader.FetchMessage(hctx)
	if err != nil {
		if hold != nil && ctx.Err() == nil && hctx.Err() != nil {
			return nil, ErrReleased
		}
		return nil, fmt.Errorf("fetch batch from %s: %w", r.claim, err)
	}
	deadline := time.Now().Add(wait)
	batch := r.batch[:0]
	if cap(batch) == 0 {
		batch = make([]kafkago.Message, 0, min(max, fetchBatchPrealloc))
	}
	batch = append(batch, first)
	// While held: everything that arrives.
	for hold != nil && len(batch) < max {
		m, err := r.reader.FetchMessage(hctx)
		if err != nil {
			if hctx.Err() == nil {
				r.pending = fmt.Errorf("fetch batch from %s: %w", r.claim, err)
				return batch, nil
			}
			if ctx.Err() != nil {
				return batch, nil
			}
			break // released
		}
		batch = append(batch, m)
	}
	// Released: what the broker already holds, up to max or until wait has passed.
	if len(batch) == max || r.reader.Lag() <= 0 || !time.Now().Before(deadline) {
		return batch, nil
	}
	wctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	for len(batch) < max && r.reader.Lag() > 0 {
		m, err := r.reader.FetchMessage(wctx)
		if err != nil {
			if wctx.Err() == nil {
				r.pending = fmt.Errorf("fetch batch from %s: %w", r.claim, err)
			}
			break
		}
		batch = append(batch, m)
	}
	return batch, nil
}

// Close stops the reader and closes its connection. It waits for the fetch in flight, which the
// broker answers within readerMaxWait.
func (r *PartitionReader) Close() error {
	if err := r.reader.Close(); err != nil {
		return fmt.Errorf("close reader of %s: %w", r.claim, err)
	}
	return nil
}
