// Package consumer is the engine's main loop: card events arrive on Kafka, are decoded per
// partition, and are applied to the ledger in batches, each batch committed in one database
// transaction with its partition's offset. The database, not the broker, holds the offsets that
// count, so a crash at any point neither loses nor repeats an event.
//
// One fetcher per assigned partition reads and decodes (in parallel across partitions);
// committers (Config.Committers) apply the batches, each committer one transaction at a time for
// its own share of the partitions, merging the batches waiting for it. A partition's batches
// always go to one committer, in order. The committers never contend for the hot accounts every
// partition pays (a transit operator's, a merchant's): each transaction writes the balance shard
// of its first partition, and no two committers share a partition. A slow database slows
// fetchers down instead of letting memory grow: each fetcher has at most one batch in flight.
package consumer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	kafkago "github.com/segmentio/kafka-go"

	"github.com/joinincard/engine/clearing"
	"github.com/joinincard/engine/events"
	"github.com/joinincard/engine/kafka"
	"github.com/joinincard/engine/ledger"
	"github.com/joinincard/engine/postgres"
)

const (
	// maxBatchEvents bounds what a fetcher hands the committer at once: a quarter of the ledger's
	// batch bound, so that the committer can merge four partitions' batches into one transaction.
	maxBatchEvents = 4096
	// maxMergedEvents bounds one transaction's events: most events plan one transfer, and the
	// ledger takes ledger.MaxBatchTransfers (16384) per batch. Events that plan several (a capture
	// posts one hold per increment, plus its fee) can make a merged batch too large for one ledger
	// batch; the store refuses it before writing anything (postgres.ErrBatchTooLarge), and it is
	// committed by partition and in halves instead.
	maxMergedEvents = 16384
	// maxPoisonEvents bounds the events of one merged batch that become dead letters because they
	// fail alone. One or two are a producer's bad events; more than this many means the engine or
	// its database, not the events, is at fault: the consumer stops rather than dead-letter a
	// stream of good events.
	maxPoisonEvents = 64
	// maxBatchWait is how long a fetcher that is behind its partition's log waits to fill a batch
	// after its first event, when the committer is ready for it: long enough to batch a burst,
	// short enough to keep the committer fed. A fetcher that has caught up with the log hands its
	// events on at once, and one whose previous batch is being applied keeps collecting until
	// that batch is committed (kafka.PartitionReader.FetchBatch).
	maxBatchWait = 20 * time.Millisecond
	// maxBatchFailures bounds how often the committer tries one batch after infrastructure errors
	// (the database unreachable) before the consumer stops and its supervisor restarts it.
	maxBatchFailures = 5
	// batchRetryPause is the pause before retrying a failed batch; it doubles each time.
	batchRetryPause = 200 * time.Millisecond
	// maxFetchFailures bounds consecutive failed fetches of one partition (a broker restarting,
	// a leader moving) before the consumer stops and its supervisor restarts it; with
	// fetchRetryPause between them that is ten seconds of a broker that does not answer.
	maxFetchFailures = 10
	fetchRetryPause  = time.Second
	// idlePoll is how long a fetcher waits for events before it checks that its reader is not
	// stuck: a stuck reader is noticed within seconds, an idle partition costs one metadata
	// request per poll.
	idlePoll = 5 * time.Second
	// maxIdlePoll bounds how far the idle poll grows after reconnects that brought nothing. A
	// new reader on a machine starved of CPU can need longer than idlePoll for its first fetch
	// (connect, metadata, fetch); closing it after every idlePoll would then never let one
	// deliver. Each reconnect doubles the poll up to this, and a batch resets it.
	maxIdlePoll = 40 * time.Second
	// finishTimeout is how long one transaction of an in-flight batch may take to commit after
	// shutdown is asked.
	finishTimeout = 10 * time.Second
	// mergeWait bounds how long the committer waits, after a transaction, for the partitions it
	// committed to hand in their next batches: a caught-up fetcher does so as soon as it has
	// decoded what arrived during the transaction, a millisecond or two; one that is behind its
	// log may collect for up to maxBatchWait, and is not waited for that long.
	mergeWait = 5 * time.Millisecond
	// advisoryInterval bounds how often a busy partition commits its advisory offset to the
	// consumer group: a round trip to the group's coordinator that a dashboard reads every few
	// seconds at most. An idle partition commits its last position within idlePoll.
	advisoryInterval = time.Second
	// DefaultCommitters is how many committers apply batches at once when the configuration
	// does not say: two, one per core of the machine the engine is sized for. A committer's
	// transaction alternates between deciding in the engine and waiting for the database; with
	// two, one decides while the other's statements run, so both the engine's core and the
	// database's are kept busy. Each takes its own partitions, whose cards and cursors no other
	// committer touches, and writes its own balance shards of the accounts every partition pays,
	// so two committers contend no more than two engines of one group do.
	DefaultCommitters = 2
	// MaxCommitters bounds the committers of one process: each holds a database connection for
	// its transaction, and past the consumer shards (15) two committers would share a shard of
	// every hot account and take turns on it.
	MaxCommitters = 15
)

// Ingester is the store the consumer applies batches to and reads the partitions' cursors from.
type Ingester interface {
	IngestTimed(ctx context.Context, cursors []postgres.Cursor, msgs []clearing.Message) (*clearing.Decision, postgres.IngestTiming, error)
	IngestPoison(ctx context.Context, cur postgres.Cursor, msg clearing.Message, cause error) (*clearing.Decision, error)
	Cursor(ctx context.Context, name string) (int64, error)
	Cursors(ctx context.Context, names []string) (map[string]postgres.CursorState, error)
}

var _ Ingester = (*postgres.Store)(nil)

// Config configures a consumer.
type Config struct {
	Brokers []string
	Topic   string
	GroupID string
	Log     *slog.Logger
	Metrics *Metrics
	// OnBatch, if set, is called after each committed transaction (tests and the load run watch it).
	OnBatch func(Batch)
	// Now is the clock the cursors' times were written by (the store's, which keeps the
	// database's time), so that how long ago a cursor moved is measured on one clock. Nil is
	// time.Now.
	Now func() time.Time
	// Committers is how many transactions apply batches at once, each for its own share of the
	// partitions; 0 is DefaultCommitters.
	Committers int
}

// Batch is what one committed transaction did.
type Batch struct {
	Events     int
	Decision   *clearing.Decision
	Timing     postgres.IngestTiming
	DecodeTime time.Duration
	// Produced holds when each event of the batch was produced, so that a watcher can tell how
	// long events took from their producer to their commit.
	Produced []time.Time
}

// Consumer applies card events from Kafka to the ledger.
type Consumer struct {
	cfg   Config
	store Ingester
	// queues holds one queue per committer; a partition's batches go to queues[partition %
	// len(queues)].
	queues []chan *request
}

type request struct {
	claim  kafka.Claim
	cursor postgres.Cursor
	msgs   []clearing.Message
	decode time.Duration
	done   chan error    // receives the batch's outcome once
	ended  chan struct{} // closed once done has the outcome
	// pass says the partition has nothing to hand in after its last batch was committed: the
	// committer need not wait for it. It carries no events and no outcome.
	pass bool
}

// finish gives r its outcome.
func (r *request) finish(err error) {
	r.done <- err
	close(r.ended)
}

// New returns a consumer of cfg.Topic that applies to store.
func New(cfg Config, store Ingester) *Consumer {
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Committers <= 0 {
		cfg.Committers = DefaultCommitters
	}
	cfg.Committers = min(cfg.Committers, MaxCommitters)
	c := &Consumer{cfg: cfg, store: store, queues: make([]chan *request, cfg.Committers)}
	for i := range c.queues {
		c.queues[i] = make(chan *request)
	}
	return c
}

// queueOf is the queue of the committer that applies partition's batches.
func (c *Consumer) queueOf(partition int) chan *request {
	return c.queues[partition%len(c.queues)]
}

// Run consumes until ctx is done (nil: a clean shutdown) or a fault outlasts its retries.
func (c *Consumer) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// A committer that fails stops the others and the fetchers: the supervisor restarts the
	// whole consumer, which resumes every partition from its database cursor.
	committed := make(chan error, len(c.queues))
	for _, q := range c.queues {
		go func() {
			err := c.commitLoop(ctx, q)
			if err != nil {
				cancel()
			}
			committed <- err
		}()
	}
	// The watchdog asks the group membership to rejoin when partitions stop moving.
	rejoin := make(chan struct{}, 1)
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		c.watch(ctx, rejoin)
	}()
	err := kafka.RunGroup(ctx, kafka.GroupConfig{Brokers: c.cfg.Brokers, GroupID: c.cfg.GroupID, Topic: c.cfg.Topic,
		Logger: c.cfg.Log, Rejoin: rejoin}, c.fetch)
	cancel()
	<-watched
	for range c.queues {
		if cerr := <-committed; err == nil && cerr != nil {
			err = cerr
		}
	}
	return err
}

// fetch is one partition's fetcher: it resumes from the database's cursor, not the broker's
// committed offset, and stops when the generation ends or another writer owns the partition.
func (c *Consumer) fetch(ctx context.Context, claim kafka.Claim) error {
	name := claim.String()
	queue := c.queueOf(claim.Partition)
	pos, err := c.claimCursor(ctx, name)
	if err != nil {
		return fmt.Errorf("read cursor of %s: %w", name, err)
	}
	c.cfg.Log.Info("partition claimed", "partition", name, "offset", pos)
	r := kafka.NewPartitionReader(c.cfg.Brokers, claim, pos)
	defer func() {
		if err := r.Close(); err != nil {
			c.cfg.Log.Warn("close partition reader", "partition", name, "err", err)
		}
	}()
	// While one batch is in flight, the next is fetched and decoded: the committer never waits
	// for a partition that has events. next is where the batch being prepared starts.
	var (
		inflight *request
		next     = pos
		failures int
		// idle is how long an idle fetch waits before the reader is checked: idlePoll, doubled
		// by each reconnect that has not delivered yet.
		idle = idlePoll
	)
	// settle waits for the batch in flight. stop says the partition's work is over.
	settle := func() (stop bool, err error) {
		// Wait for the outcome even if ctx ends meanwhile: the committer finishes what it took.
		err = <-inflight.done
		switch {
		case errors.Is(err, postgres.ErrCursorMoved):
			c.cfg.Log.Warn("partition taken over by another consumer", "partition", name)
			return true, nil
		case err != nil && ctx.Err() != nil:
			return true, nil
		case err != nil:
			return true, err
		}
		pos, inflight = inflight.cursor.To, nil
		return false, nil
	}
	// advise commits pos as the group's advisory offset, for tools that show lag (the database's
	// cursor is the one that counts): at most once per advisoryInterval unless force, and after
	// the next batch is on its way, never before.
	var (
		advised   time.Time
		advisedAt = pos
	)
	advise := func(force bool) {
		if pos == advisedAt || (!force && time.Since(advised) < advisoryInterval) {
			return
		}
		advised, advisedAt = time.Now(), pos
		if err := claim.CommitAdvisory(pos); err != nil {
			c.cfg.Log.Debug("advisory offset commit", "partition", name, "err", err)
		}
	}
	for {
		// While a batch is in flight, what arrives joins the next one until the in-flight batch
		// is committed; then the next goes to the committer at once if the partition is caught
		// up.
		var hold <-chan struct{}
		if inflight != nil {
			hold = inflight.ended
		}
		fctx, cancel := context.WithTimeout(ctx, idle)
		raw, err := r.FetchBatch(fctx, maxBatchEvents, maxBatchWait, hold)
		cancel()
		if err != nil {
			if inflight != nil && (ctx.Err() != nil || fctx.Err() != nil || errors.Is(err, kafka.ErrReleased)) {
				// Nothing new while a batch was in flight, or shutting down: see it through.
				if stop, err := settle(); stop || err != nil {
					return err
				}
				// The committer may be waiting for this partition's next batch: there is none.
				select {
				case queue <- &request{cursor: postgres.Cursor{Name: name}, pass: true}:
				default:
				}
				advise(false)
				continue
			}
			if ctx.Err() != nil {
				return nil
			}
			if fctx.Err() != nil {
				advise(true)
				// Idle for a while. If the broker holds events past this partition's position,
				// the reader is stuck (a connection it lost without saying so): start a new one.
				marks, merr := kafka.HighWatermarks(ctx, c.cfg.Brokers, claim.Topic)
				if merr == nil && marks[claim.Partition] > next {
					c.cfg.Log.Warn("partition reader idle with events waiting, reconnecting", "partition", name,
						"offset", next, "end", marks[claim.Partition])
					if err := r.Close(); err != nil {
						c.cfg.Log.Debug("close partition reader", "partition", name, "err", err)
					}
					r = kafka.NewPartitionReader(c.cfg.Brokers, claim, next)
					idle = min(2*idle, maxIdlePoll)
				}
				continue
			}
			if errors.Is(err, kafkago.OffsetOutOfRange) {
				// The database applied events the broker no longer has, or this is not the
				// broker it consumed from: refuse rather than skip or re-read anything.
				return fmt.Errorf("fetch %s at the database's offset %d: %w (the broker lost events or is not the one this database consumed from)", name, next, err)
			}
			if failures++; failures > maxFetchFailures {
				return fmt.Errorf("fetch %s: %w", name, err)
			}
			c.cfg.Log.Warn("fetch failed, retrying", "partition", name, "attempt", failures, "err", err)
			if err := r.Close(); err != nil {
				c.cfg.Log.Debug("close partition reader", "partition", name, "err", err)
			}
			select {
			case <-time.After(fetchRetryPause):
			case <-ctx.Done():
				return nil
			}
			r = kafka.NewPartitionReader(c.cfg.Brokers, claim, next)
			continue
		}
		failures, idle = 0, idlePoll
		start := time.Now()
		req := &request{claim: claim, msgs: decodeAll(name, raw), done: make(chan error, 1), ended: make(chan struct{})}
		req.decode = time.Since(start)
		req.cursor = postgres.Cursor{Name: name, From: next, To: raw[len(raw)-1].Offset + 1}
		if inflight != nil {
			if stop, err := settle(); stop || err != nil {
				return err
			}
		}
		select {
		case queue <- req:
		case <-ctx.Done():
			return nil
		}
		advise(false)
		inflight, next = req, req.cursor.To
	}
}

// claimCursor reads a claimed partition's cursor, tried again as a failed batch is when the
// database does not answer (a restart, a failover): maxBatchFailures attempts at most, with
// batchRetryPause doubling between them.
func (c *Consumer) claimCursor(ctx context.Context, name string) (int64, error) {
	pause := batchRetryPause
	for attempt := 1; ; attempt++ {
		pos, err := c.store.Cursor(ctx, name)
		if err == nil || ctx.Err() != nil || attempt >= maxBatchFailures {
			return pos, err
		}
		c.cfg.Log.Warn("read cursor failed, retrying", "partition", name, "attempt", attempt, "err", err)
		select {
		case <-time.After(pause):
		case <-ctx.Done():
			return 0, ctx.Err()
		}
		pause *= 2
	}
}

func decodeAll(source string, raw []kafkago.Message) []clearing.Message {
	msgs := make([]clearing.Message, len(raw))
	for i, m := range raw {
		// The key must be the event's card token: a message keyed otherwise may sit in another
		// partition than the card's other events, out of their order.
		e, err := events.DecodeMessage(m.Key, m.Value)
		msgs[i] = clearing.Message{Source: source, Offset: m.Offset, Raw: m.Value, Event: e, DecodeErr: err, Produced: m.Time}
	}
	return msgs
}

// commitLoop is one committer: it takes the batches waiting in its queue, merges them up to
// maxMergedEvents, and commits them in one transaction.
//
// The partitions whose batches a transaction committed hand in their next batch right after it
// (what arrived meanwhile), or say they have none: the next transaction waits for them, up to
// mergeWait, so that they share it instead of the first to arrive going alone and the others
// waiting a whole transaction for the next.
func (c *Consumer) commitLoop(ctx context.Context, queue chan *request) error {
	var (
		carry *request // a batch too large to merge with the previous ones goes first next time
		// awaited holds the partitions whose batches the last transaction committed.
		awaited = map[string]bool{}
		timer   = time.NewTimer(mergeWait)
	)
	defer timer.Stop()
	for {
		var (
			reqs []*request
			n    int
		)
		if carry != nil {
			reqs, n, carry = []*request{carry}, len(carry.msgs), nil
		}
		timer.Reset(mergeWait)
	gather:
		for n < maxMergedEvents {
			var r *request
			switch {
			case len(reqs) == 0:
				select {
				case r = <-queue:
				case <-ctx.Done():
					return nil
				}
			case len(awaited) > 0:
				select {
				case r = <-queue:
				case <-timer.C:
					clear(awaited)
					continue
				case <-ctx.Done():
					// Shutting down: commit what was taken, its fetchers wait for it.
					break gather
				}
			default:
				select {
				case r = <-queue:
				default:
					break gather
				}
			}
			delete(awaited, r.cursor.Name)
			switch {
			case r.pass:
			case n+len(r.msgs) > maxMergedEvents:
				carry = r
				break gather
			default:
				reqs, n = append(reqs, r), n+len(r.msgs)
			}
		}
		if len(reqs) == 0 {
			continue
		}
		clear(awaited)
		for _, r := range reqs {
			awaited[r.cursor.Name] = true
		}
		if err := c.commitOne(ctx, reqs); err != nil {
			if carry != nil {
				carry.finish(err)
			}
			if ctx.Err() != nil && errors.Is(err, context.Canceled) {
				// Shut down while a batch waited to be tried again: it is not in, its cursors
				// did not move, and the next start reads it again. A clean stop.
				return nil
			}
			return err
		}
	}
}

// commitOne commits reqs together, or apart when that fails for one of them, and gives each its
// outcome. It returns an error only for a fault that must stop the consumer.
//
// A merged batch that fails because one partition's cursor moved, or because of what one of its
// events holds, is committed again request by request, so that one partition's trouble never
// stops the others. A request that fails because of what its events hold (it plans more transfers
// than one ledger batch takes, or an event holds what the database refuses) is split in halves,
// each committed with the cursor up to where it ends, down to the one event at fault, which becomes
// a dead letter with its reason.
func (c *Consumer) commitOne(ctx context.Context, reqs []*request) error {
	poison := 0
	if len(reqs) > 1 {
		err := c.commitWithRetry(ctx, cursorsOf(reqs), msgsOf(reqs), decodeOf(reqs))
		if err == nil || !(errors.Is(err, postgres.ErrCursorMoved) || postgres.IsPoison(err)) {
			for _, r := range reqs {
				r.finish(err)
			}
			return err
		}
	}
	var fatal error
	for _, r := range reqs {
		err := c.commitRange(ctx, r.cursor, r.msgs, r.decode, &poison)
		r.finish(err)
		if err != nil && !errors.Is(err, postgres.ErrCursorMoved) && fatal == nil {
			fatal = err
		}
	}
	return fatal
}

// commitRange commits msgs, a run of one partition's events, with cur: whole, or in halves when
// they hold an event that can never be applied or plan too many transfers for one batch.
func (c *Consumer) commitRange(ctx context.Context, cur postgres.Cursor, msgs []clearing.Message, decode time.Duration, poison *int) error {
	err := c.commitWithRetry(ctx, []postgres.Cursor{cur}, msgs, decode)
	if err == nil || !postgres.IsPoison(err) {
		return err
	}
	if ctx.Err() != nil {
		// Shutting down: what is committed stays, the rest is fetched again from the cursor.
		return ctx.Err()
	}
	if len(msgs) == 1 {
		if *poison++; *poison > maxPoisonEvents {
			return fmt.Errorf("more than %d events of one batch fail alone, the last at %s offset %d: %w",
				maxPoisonEvents, cur.Name, msgs[0].Offset, err)
		}
		return c.deadLetter(ctx, cur, msgs[0], err)
	}
	// The first half ends where the second begins: its cursor stops at the second's first offset.
	mid := len(msgs) / 2
	split := msgs[mid].Offset
	c.cfg.Log.Warn("batch cannot be applied whole, splitting it", "partition", cur.Name, "events", len(msgs),
		"from", cur.From, "to", cur.To, "err", err)
	if c.cfg.Metrics != nil {
		c.cfg.Metrics.Splits.Inc()
	}
	if err := c.commitRange(ctx, postgres.Cursor{Name: cur.Name, From: cur.From, To: split}, msgs[:mid], decode/2, poison); err != nil {
		return err
	}
	return c.commitRange(ctx, postgres.Cursor{Name: cur.Name, From: split, To: cur.To}, msgs[mid:], decode-decode/2, poison)
}

// deadLetter records an event that can never be applied as a dead letter, with its cursor.
func (c *Consumer) deadLetter(ctx context.Context, cur postgres.Cursor, msg clearing.Message, cause error) error {
	var d *clearing.Decision
	pause := batchRetryPause
	for failures := 1; ; failures++ {
		tctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), finishTimeout)
		var err error
		d, err = c.store.IngestPoison(tctx, cur, msg, cause)
		cancel()
		if err == nil {
			break
		}
		if errors.Is(err, postgres.ErrCursorMoved) {
			if landed, lerr := c.landed(ctx, []postgres.Cursor{cur}); lerr == nil && landed {
				c.cfg.Log.Warn("dead letter found committed by an attempt whose answer was lost", "partition", cur.Name, "offset", msg.Offset)
				return nil
			}
			return err
		}
		if failures >= maxBatchFailures || ctx.Err() != nil {
			return err
		}
		if c.cfg.Metrics != nil {
			c.cfg.Metrics.Retries.Inc()
		}
		c.cfg.Log.Warn("dead letter failed, retrying", "partition", cur.Name, "offset", msg.Offset, "attempt", failures, "err", err)
		select {
		case <-time.After(pause):
		case <-ctx.Done():
			return ctx.Err()
		}
		pause *= 2
	}
	level := slog.LevelWarn
	if errors.Is(cause, ledger.ErrInvariant) {
		level = slog.LevelError // the engine's fault, not the event's: a person must look
	}
	c.cfg.Log.Log(ctx, level, "event can never be applied, dead-lettered", "partition", cur.Name, "offset", msg.Offset, "err", cause)
	if c.cfg.Metrics != nil {
		c.cfg.Metrics.Poison.Inc()
	}
	c.observe(Batch{Events: 1, Decision: d})
	return nil
}

func cursorsOf(reqs []*request) []postgres.Cursor {
	out := make([]postgres.Cursor, len(reqs))
	for i, r := range reqs {
		out[i] = r.cursor
	}
	return out
}

func msgsOf(reqs []*request) []clearing.Message {
	n := 0
	for _, r := range reqs {
		n += len(r.msgs)
	}
	out := make([]clearing.Message, 0, n)
	for _, r := range reqs {
		out = append(out, r.msgs...)
	}
	return out
}

func decodeOf(reqs []*request) time.Duration {
	var d time.Duration
	for _, r := range reqs {
		d += r.decode
	}
	return d
}

// commitWithRetry commits msgs with cursors in one transaction, retrying infrastructure faults a
// bounded number of times. A moved cursor and a batch that can never be applied whole are not
// retried: the caller decides. Each attempt is finished even if ctx ends meanwhile (shutdown),
// within finishTimeout.
func (c *Consumer) commitWithRetry(ctx context.Context, cursors []postgres.Cursor, msgs []clearing.Message, decode time.Duration) error {
	pause := batchRetryPause
	for failures := 1; ; failures++ {
		tctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), finishTimeout)
		d, timing, err := c.store.IngestTimed(tctx, cursors, msgs)
		cancel()
		if c.cfg.Metrics != nil && timing.Attempts > 1 {
			c.cfg.Metrics.ConflictRetries.Add(float64(timing.Attempts - 1))
		}
		if err == nil {
			b := Batch{Events: len(msgs), Decision: d, Timing: timing, DecodeTime: decode}
			if c.cfg.OnBatch != nil {
				b.Produced = make([]time.Time, len(msgs))
				for i := range msgs {
					b.Produced[i] = msgs[i].Produced
				}
			}
			c.observe(b)
			return nil
		}
		if errors.Is(err, postgres.ErrCursorMoved) {
			if landed, lerr := c.landed(ctx, cursors); lerr == nil && landed {
				// An earlier attempt committed and its answer was lost on the way (a cut
				// connection, a failover): the batch is in, exactly once, and the partitions go on.
				if c.cfg.Metrics != nil {
					c.cfg.Metrics.Retries.Inc()
				}
				c.cfg.Log.Warn("batch found committed by an attempt whose answer was lost", "events", len(msgs))
				return nil
			}
			return err
		}
		if ctx.Err() != nil {
			// Stopping while the batch failed: it is not in, or, if its COMMIT landed and only
			// the answer was lost, its cursors moved with it. Either way the next start reads
			// from the database's cursors, and this is a stop like any other.
			return ctx.Err()
		}
		if postgres.IsPoison(err) || failures >= maxBatchFailures {
			return err
		}
		if c.cfg.Metrics != nil {
			c.cfg.Metrics.Retries.Inc()
		}
		c.cfg.Log.Warn("batch failed, retrying", "events", len(msgs), "attempt", failures, "err", err)
		select {
		case <-time.After(pause):
		case <-ctx.Done():
			return ctx.Err()
		}
		pause *= 2
	}
}

// landed reports whether every cursor of a batch stands where the batch ends. A cursor moves
// only with the events before it, in one transaction, so the batch's events are applied, once:
// by an attempt of this batch whose COMMIT's answer was lost, or by another writer of the
// partition that read them too.
func (c *Consumer) landed(ctx context.Context, cursors []postgres.Cursor) (bool, error) {
	names := make([]string, len(cursors))
	for i, cur := range cursors {
		names[i] = cur.Name
	}
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), finishTimeout)
	defer cancel()
	at, err := c.store.Cursors(rctx, names)
	if err != nil {
		return false, err
	}
	for _, cur := range cursors {
		if st, ok := at[cur.Name]; !ok || st.Position != cur.To {
			return false, nil
		}
	}
	return true, nil
}

func (c *Consumer) observe(b Batch) {
	if m := c.cfg.Metrics; m != nil {
		m.BatchEvents.Observe(float64(b.Events))
		m.Seconds.WithLabelValues("decode").Observe(b.DecodeTime.Seconds())
		m.Seconds.WithLabelValues("ingest").Observe(b.Timing.Ingest.Seconds())
		m.Seconds.WithLabelValues("commit").Observe(b.Timing.Commit.Seconds())
		d := b.Decision
		for _, p := range d.Processed {
			m.Events.WithLabelValues(string(p.Type), string(p.Status)).Inc()
		}
		if d.Duplicates > 0 {
			m.Events.WithLabelValues("any", "duplicate").Add(float64(d.Duplicates))
		}
		for _, dl := range d.DeadLetters {
			switch dl.Kind {
			case clearing.Malformed:
				m.Events.WithLabelValues("unknown", "malformed").Inc()
			case clearing.Conflict:
				m.Events.WithLabelValues("any", "conflict").Inc()
			}
		}
	}
	if c.cfg.OnBatch != nil {
		c.cfg.OnBatch(b)
	}
}
