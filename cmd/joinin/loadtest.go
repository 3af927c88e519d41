package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	kafkago "github.com/segmentio/kafka-go"

	"github.com/joinincard/engine/consumer"
	"github.com/joinincard/engine/events"
	"github.com/joinincard/engine/kafka"
	"github.com/joinincard/engine/ledger"
	"github.com/joinincard/engine/loadtest"
	"github.com/joinincard/engine/postgres"
)

// loadCatchUpTimeout bounds waiting for the consumer to apply a load run's events.
const loadCatchUpTimeout = 30 * time.Minute

// loadReport is what a load run prints, as JSON.
type loadReport struct {
	Events          int     `json:"events"`
	Cards           int     `json:"cards"`
	Merchants       int     `json:"merchants"`
	Partitions      int     `json:"partitions"`
	ProduceSeconds  float64 `json:"produce_seconds"`
	ConsumeSeconds  float64 `json:"consume_seconds"`
	EventsPerSecond float64 `json:"events_per_second"`
	Batches         int     `json:"batches"`
	BatchEventsMean float64 `json:"batch_events_mean"`
	// Shares of the committer's time: decoding is done by the partition fetchers in parallel,
	// so its share is of the summed time, not of the wall clock.
	DecodeSeconds  float64 `json:"decode_seconds"`
	IngestSeconds  float64 `json:"ingest_seconds"`
	CommitSeconds  float64 `json:"commit_seconds"`
	DecodeShare    float64 `json:"decode_share"`
	IngestShare    float64 `json:"ingest_share"`
	CommitShare    float64 `json:"commit_share"`
	BatchP50Millis float64 `json:"batch_p50_ms"`
	BatchP99Millis float64 `json:"batch_p99_ms"`
	// PrefilledEvents were consumed before the measured run, so that its tables are not empty.
	PrefilledEvents int `json:"prefilled_events"`
	// WALBytesPerEvent is the write-ahead log the run wrote per event (PostgreSQL only; 0 where
	// the database does not say).
	WALBytesPerEvent float64 `json:"wal_bytes_per_event"`
	// BufferBlocksPerEvent is how many 8 KiB blocks the database took from outside its shared
	// buffers per event (read from the files or added to them; PostgreSQL's blks_read), and
	// SharedBuffersMiB and BalanceIndexMiB what decides it on full tables: the buffers, and the
	// balance history's key, which a batch touches at its cards' places all over. Once that
	// index outgrows the buffers, each card's new balance version reads its leaf from outside
	// them (PostgreSQL only; 0 where the database does not say).
	BufferBlocksPerEvent float64 `json:"buffer_blocks_per_event"`
	SharedBuffersMiB     float64 `json:"shared_buffers_mib"`
	BalanceIndexMiB      float64 `json:"balance_index_mib"`
	// CeilingRowsPerSecond is PostgreSQL's own limit for the rows the engine must write: a COPY of
	// one transfer row per event into the transfers schema, encoded before the clock starts, in
	// the engine's batches. RatioToCeiling is the run's events/s over it.
	CeilingRowsPerSecond float64 `json:"ceiling_rows_per_second"`
	RatioToCeiling       float64 `json:"ratio_to_ceiling"`
	// Latency: events produced at half the measured rate (or --latency-rate), from their producer
	// to their commit.
	LatencyRate      float64 `json:"latency_events_per_second"`
	LatencyEvents    int     `json:"latency_events"`
	LatencyP50Millis float64 `json:"latency_p50_ms"`
	LatencyP99Millis float64 `json:"latency_p99_ms"`
	Verified         bool    `json:"verified"`
	// ProcessPeakRSSMiB is this process's peak resident memory (VmHWM): the load generator and
	// the embedded broker, which holds every produced record, and the engine too unless it ran
	// in a process of its own (--engine-process).
	ProcessPeakRSSMiB float64 `json:"process_peak_rss_mib"`
	// EnginePeakRSSMiB is the peak resident memory of the engine alone: `joinin serve` consuming
	// the run in a process of its own (--engine-process); 0 when the engine shared this process.
	EnginePeakRSSMiB float64 `json:"engine_peak_rss_mib"`
}

func runLoadtest(ctx context.Context, args []string, stdout io.Writer) error {
	fs, c := newFlagSet("loadtest", "produce a city's card events into Kafka, consume them into the ledger in a database of its own, print the figures as JSON")
	ef := addEngineFlags(fs)
	total := fs.Int("events", 1_000_000, "events to produce: registrations and funding of every card, then purchases")
	nCards := fs.Int("cards", 100_000, "cardholders")
	nMerchants := fs.Int("merchants", 500, "merchants")
	verify := fs.Bool("verify", true, "verify the whole ledger afterwards")
	prefill := fs.Int("prefill-events", 0, "events of another city consumed first, unmeasured: the run then measures tables that are not empty")
	ceiling := fs.Bool("ceiling", true, "measure PostgreSQL's COPY ceiling for the run's events and report the ratio")
	latencySeconds := fs.Duration("latency", 20*time.Second,
		"after the run, produce at half its rate for this long and report each event's time from producer to commit; 0 skips it")
	latencyRate := fs.Float64("latency-rate", 0,
		"events/s of the latency phase instead of half the run's rate, so that runs on a machine whose load varies compare at one rate; 0 is half the run's rate")
	latencyTrace := fs.String("latency-trace", "", "write one line per committed transaction of the latency phase to this file: when, events, oldest and newest event's age, ingest, commit, attempts")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the consuming phase to this file")
	engineProcess := fs.Bool("engine-process", false,
		"consume with joinin serve in a process of its own, so that the engine's peak RSS is measured apart from the generator's and the broker's (no batch figures, no latency phase)")
	heapProfile := fs.String("heap-profile", "", "write a heap profile of the engine after the run to this file")
	keep := fs.Bool("keep", false, "keep the database the run creates")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("loadtest takes no arguments, got %q", fs.Args())
	}
	// The counts are checked before the run's database is created: the generator cannot pick
	// among no cards or no merchants, and a negative rate or duration would run without end.
	switch {
	case *nCards < 1:
		return fmt.Errorf("--cards %d: must be at least 1", *nCards)
	case *nMerchants < 1:
		return fmt.Errorf("--merchants %d: must be at least 1", *nMerchants)
	case *total < 2**nCards+1:
		return fmt.Errorf("--events %d leaves no purchases for %d cards (each needs a registration and a funding)", *total, *nCards)
	case *prefill < 0:
		return fmt.Errorf("--prefill-events %d: must not be negative", *prefill)
	case *latencyRate < 0:
		return fmt.Errorf("--latency-rate %g: must not be negative", *latencyRate)
	case *latencySeconds < 0:
		return fmt.Errorf("--latency %s: must not be negative", *latencySeconds)
	}
	if err := ef.check(); err != nil {
		return err
	}
	log, err := c.logger()
	if err != nil {
		return err
	}
	// A database of its own on the server DATABASE_URL names, dropped after the run: the run's
	// city does not mix with the ledger there, nor does that ledger's clock (a demo plays its days
	// ahead) hold up the run's batches.
	st, url, closeStore, err := openLoadStore(ctx, c.databaseURL, "load", *keep, log)
	if err != nil {
		return err
	}
	defer closeStore()
	c.databaseURL = url // the engine process, when there is one, consumes into it
	seed := uint64(time.Now().UnixNano())
	ef.topic = fmt.Sprintf("%s-load-%x", ef.topic, seed&0xffffff)
	brokers, stopBroker, err := ef.connect(ctx, log)
	if err != nil {
		return err
	}
	defer stopBroker()

	if *prefill > 0 {
		if err := prefillEvents(ctx, st, brokers, ef, *prefill, seed); err != nil {
			return err
		}
		if err := settleTables(ctx, st); err != nil {
			return err
		}
	}
	city := loadtest.NewCity(seed, *nCards, *nMerchants, time.Now().UTC())
	for _, p := range city.Parties() {
		if _, err := st.RegisterParty(ctx, p.Kind, p.ID, p.Name); err != nil {
			return err
		}
	}
	log.Info("generating events", "events", *total)
	var evs []events.Event
	evs = append(append(evs, city.Registrations()...), city.Funding(1_000_000, 5_000_000)...)
	evs = append(evs, city.Purchases(*total-len(evs), 3000)...)
	msgs := make([]kafkago.Message, len(evs))
	for i, e := range evs {
		msgs[i] = kafkago.Message{Key: []byte(e.CardToken), Value: loadtest.Encode(e)}
	}
	evs = nil
	nMsgs := len(msgs)

	log.Info("producing", "events", len(msgs), "topic", ef.topic)
	start := time.Now()
	p := kafka.NewProducer(brokers, ef.topic)
	const chunk = 5000 // messages per produce call
	for rest := msgs; len(rest) > 0; {
		n := min(chunk, len(rest))
		if err := p.Produce(ctx, rest[:n]...); err != nil {
			return err
		}
		rest = rest[n:]
	}
	if err := p.Close(); err != nil {
		return err
	}
	produced := time.Since(start)
	msgs = nil // the broker has them: the generator's copy goes

	if *engineProcess {
		return loadInChild(ctx, stdout, log, c.databaseURL, brokers, ef, *heapProfile, st,
			loadReport{Events: nMsgs, Cards: *nCards, Merchants: *nMerchants, Partitions: ef.partitions,
				ProduceSeconds: produced.Seconds(), PrefilledEvents: *prefill}, *verify)
	}

	var (
		mu      sync.Mutex
		rep     = loadReport{Events: nMsgs, Cards: *nCards, Merchants: *nMerchants, Partitions: ef.partitions}
		batches []float64
		first   time.Time
		// latencies are the producer-to-commit times of the latency phase's events, once
		// measuring is set.
		measuring bool
		latencies []float64
		trace     []batchTrace
	)
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	cons := consumer.New(consumer.Config{Brokers: brokers, Topic: ef.topic, GroupID: ef.group + "-load", Log: log, Committers: ef.committers,
		OnBatch: func(b consumer.Batch) {
			mu.Lock()
			defer mu.Unlock()
			if first.IsZero() {
				first = time.Now().Add(-b.Timing.Ingest - b.Timing.Commit)
			}
			if measuring {
				now := time.Now()
				for _, t := range b.Produced {
					latencies = append(latencies, float64(now.Sub(t).Microseconds())/1000)
				}
				if *latencyTrace != "" && len(b.Produced) > 0 {
					trace = append(trace, batchTrace{at: now, events: b.Events, oldest: now.Sub(slices.MinFunc(b.Produced, time.Time.Compare)),
						newest: now.Sub(slices.MaxFunc(b.Produced, time.Time.Compare)), timing: b.Timing, decode: b.DecodeTime})
				}
				return
			}
			rep.Batches++
			rep.DecodeSeconds += b.DecodeTime.Seconds()
			rep.IngestSeconds += b.Timing.Ingest.Seconds()
			rep.CommitSeconds += b.Timing.Commit.Seconds()
			batches = append(batches, float64((b.Timing.Ingest+b.Timing.Commit).Microseconds())/1000)
		}}, st)
	consumed := make(chan error, 1)
	log.Info("consuming")
	stopProfile, err := startCPUProfile(*cpuProfile)
	if err != nil {
		return err
	}
	defer stopProfile()
	blocksBefore, blocksErr := bufferBlocks(ctx, st)
	walBefore, walErr := walPosition(ctx, st)
	go func() { consumed <- cons.Run(cctx) }()
	d := &demo{st: st}
	if err := d.waitCaughtUp(ctx, brokers, ef.topic, consumed, loadCatchUpTimeout); err != nil {
		return err
	}
	done := time.Now()
	walAfter, walErr2 := walPosition(ctx, st)
	blocksAfter, blocksErr2 := bufferBlocks(ctx, st)
	mu.Lock()
	rate := float64(nMsgs) / done.Sub(first).Seconds() / 2
	if *latencyRate > 0 {
		rate = *latencyRate
	}
	measuring = true
	mu.Unlock()
	if *latencySeconds > 0 {
		n := int(rate * latencySeconds.Seconds())
		if err := produceAtRate(ctx, brokers, ef.topic, ef.partitions, city.Purchases(n, 3000), rate); err != nil {
			return err
		}
		if err := d.waitCaughtUp(ctx, brokers, ef.topic, consumed, loadCatchUpTimeout); err != nil {
			return err
		}
	}
	if *heapProfile != "" {
		if err := writeHeapProfile(*heapProfile); err != nil {
			return err
		}
	}
	cancel()
	if err := <-consumed; err != nil {
		return err
	}
	mu.Lock()
	defer mu.Unlock()
	if len(latencies) > 0 {
		slices.Sort(latencies)
		rep.LatencyRate, rep.LatencyEvents = rate, len(latencies)
		rep.LatencyP50Millis, rep.LatencyP99Millis = latencies[len(latencies)/2], latencies[min(len(latencies)-1, len(latencies)*99/100)]
	}
	if *latencyTrace != "" {
		if err := writeLatencyTrace(*latencyTrace, trace); err != nil {
			return err
		}
	}
	rep.PrefilledEvents = *prefill
	if walErr == nil && walErr2 == nil {
		var bytes int64
		if err := st.Pool().QueryRow(ctx, `SELECT pg_wal_lsn_diff($1::pg_lsn, $2::pg_lsn)::BIGINT`, walAfter, walBefore).Scan(&bytes); err == nil {
			rep.WALBytesPerEvent = float64(bytes) / float64(rep.Events)
		}
	}
	if blocksErr == nil && blocksErr2 == nil {
		rep.BufferBlocksPerEvent = float64(blocksAfter-blocksBefore) / float64(rep.Events)
		if fit, err := st.BufferFit(ctx); err == nil && fit.Known {
			rep.SharedBuffersMiB, rep.BalanceIndexMiB = float64(fit.SharedBuffers)/(1<<20), float64(fit.BalanceKey)/(1<<20)
		}
	}
	rep.ProduceSeconds = produced.Seconds()
	rep.ConsumeSeconds = done.Sub(first).Seconds()
	rep.EventsPerSecond = float64(rep.Events) / rep.ConsumeSeconds
	rep.BatchEventsMean = float64(rep.Events) / float64(max(rep.Batches, 1))
	if sum := rep.DecodeSeconds + rep.IngestSeconds + rep.CommitSeconds; sum > 0 {
		rep.DecodeShare, rep.IngestShare, rep.CommitShare = rep.DecodeSeconds/sum, rep.IngestSeconds/sum, rep.CommitSeconds/sum
	}
	slices.Sort(batches)
	if n := len(batches); n > 0 {
		rep.BatchP50Millis, rep.BatchP99Millis = batches[n/2], batches[min(n-1, n*99/100)]
	}
	if *ceiling {
		c, err := st.CopyCeiling(ctx, rep.Events, ledger.MaxBatchTransfers)
		if err != nil {
			return err
		}
		rep.CeilingRowsPerSecond, rep.RatioToCeiling = c, rep.EventsPerSecond/c
	}
	if *verify {
		vr, err := st.Verify(ctx)
		if err != nil {
			return err
		}
		if !vr.OK() {
			return fmt.Errorf("ledger failed verification:\n%s", vr.String())
		}
		rep.Verified = true
	}
	rep.ProcessPeakRSSMiB = peakRSSMiB()
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(rep)
}

// walPosition is the database's current write-ahead log position (PostgreSQL's pg_current_wal_lsn),
// as text.
func walPosition(ctx context.Context, st *postgres.Store) (string, error) {
	var lsn string
	err := st.Pool().QueryRow(ctx, `SELECT pg_current_wal_lsn()::TEXT`).Scan(&lsn)
	return lsn, err
}

// statsSettle is how long PostgreSQL's backends may hold their counts before reporting them: a
// backend that goes idle reports within a second.
const statsSettle = 1200 * time.Millisecond

// bufferBlocks is how many blocks the database has taken from outside its shared buffers so
// far (pg_stat_database's blks_read), read once the backends have reported theirs.
func bufferBlocks(ctx context.Context, st *postgres.Store) (int64, error) {
	select {
	case <-time.After(statsSettle):
	case <-ctx.Done():
		return 0, ctx.Err()
	}
	var n int64
	err := st.Pool().QueryRow(ctx, `SELECT blks_read FROM pg_stat_database WHERE datname = current_database()`).Scan(&n)
	return n, err
}

// prefillCity is the earlier traffic of a pre-filled run: a city of its own (n/50 cards, the
// measured city's 500 merchants) whose n events all happened before now. Started as far back as
// its n events can reach, its day ends before the measured run begins, as a year of service
// would; its event and transfer ids are UUIDv7s of their events' times, so the measured run's
// ids sort after them, as new traffic's do.
func prefillCity(seed uint64, n int, now time.Time) (*loadtest.City, []events.Event) {
	cards := max(n/50, 1)
	steps := max(n, 2*cards) + 1 // a registration and a funding per card, then the purchases
	city := loadtest.NewCity(seed^0x5eed, cards, 500, now.UTC().Add(-time.Duration(steps)*loadtest.MaxEventStep))
	evs := append(city.Registrations(), city.Funding(1_000_000, 5_000_000)...)
	return city, append(evs, city.Purchases(max(n-len(evs), 0), 3000)...)
}

// prefillEvents produces n events of a city of its own to a topic of its own and consumes them, so
// that the measured run finds its tables holding earlier traffic.
func prefillEvents(ctx context.Context, st *postgres.Store, brokers []string, ef *engineFlags, n int, seed uint64) error {
	city, evs := prefillCity(seed, n, time.Now())
	// Its banks, funds and merchants are named as the measured city's: registering them again
	// changes nothing.
	for _, p := range city.Parties() {
		if _, err := st.RegisterParty(ctx, p.Kind, p.ID, p.Name); err != nil {
			return err
		}
	}
	topic := ef.topic + "-prefill"
	if err := kafka.EnsureTopics(ctx, brokers, []kafka.TopicSpec{{Name: topic, Partitions: ef.partitions, ReplicationFactor: 1}}); err != nil {
		return err
	}
	p := kafka.NewProducer(brokers, topic)
	const chunk = 5000
	msgs := make([]kafkago.Message, 0, chunk)
	for i, e := range evs {
		msgs = append(msgs, kafkago.Message{Key: []byte(e.CardToken), Value: loadtest.Encode(e)})
		if len(msgs) == chunk || i == len(evs)-1 {
			if err := p.Produce(ctx, msgs...); err != nil {
				p.Close()
				return err
			}
			msgs = msgs[:0]
		}
	}
	if err := p.Close(); err != nil {
		return err
	}
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	cons := consumer.New(consumer.Config{Brokers: brokers, Topic: topic, GroupID: ef.group + "-prefill", Committers: ef.committers}, st)
	consumed := make(chan error, 1)
	go func() { consumed <- cons.Run(cctx) }()
	if err := (&demo{st: st}).waitCaughtUp(ctx, brokers, topic, consumed, loadCatchUpTimeout); err != nil {
		return err
	}
	cancel()
	return <-consumed
}

// latencyTick is how often the latency phase produces: small steps, so that events arrive as a
// steady stream rather than bursts a batch wide.
const latencyTick = 10 * time.Millisecond

// latencyShareSlack is how many times its even share of a tick's events one partition's
// request of the latency phase takes before the rest go in another request: the cards of a
// tick spread over the partitions by hash, unevenly.
const latencyShareSlack = 2

// produceAtRate produces evs at rate events per second, a little every latencyTick. The events
// are encoded before the first is produced, as the measured run's are: the generator's encoding
// does not compete with the engine for the CPU while latencies are measured.
func produceAtRate(ctx context.Context, brokers []string, topic string, partitions int, evs []events.Event, rate float64) error {
	msgs := make([]kafkago.Message, len(evs))
	for i, e := range evs {
		msgs[i] = kafkago.Message{Key: []byte(e.CardToken), Value: loadtest.Encode(e)}
	}
	per := max(int(rate*latencyTick.Seconds()), 1)
	// A partition's share of a tick fits one request, with room for the cards that happen to
	// crowd one partition, and no request takes room for many more: the generator shares the
	// engine's process and its garbage collector.
	p := kafka.NewProducerSized(brokers, topic, latencyShareSlack*per/max(partitions, 1)+latencyShareSlack)
	defer p.Close()
	t := time.NewTicker(latencyTick)
	defer t.Stop()
	for len(msgs) > 0 {
		n := min(per, len(msgs))
		now := time.Now()
		for i := range msgs[:n] {
			msgs[i].Time = now
		}
		if err := p.Produce(ctx, msgs[:n]...); err != nil {
			return err
		}
		msgs = msgs[n:]
		select {
		case <-t.C:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// batchTrace is one committed transaction of the latency phase.
type batchTrace struct {
	at             time.Time
	events         int
	oldest, newest time.Duration // the age of the batch's oldest and newest event at its commit
	timing         postgres.IngestTiming
	decode         time.Duration
}

// writeLatencyTrace writes the latency phase's transactions to path, one line each, with the
// garbage collector's pauses of the run among them, so that a slow transaction can be told
// apart from events that waited.
func writeLatencyTrace(path string, trace []batchTrace) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	var gc debug.GCStats
	gc.PauseQuantiles = nil
	debug.ReadGCStats(&gc)
	type line struct {
		at   time.Time
		text string
	}
	var lines []line
	for _, b := range trace {
		lines = append(lines, line{b.at, fmt.Sprintf("batch events=%d oldest_ms=%.1f newest_ms=%.1f ingest_ms=%.1f commit_ms=%.1f attempts=%d decode_ms=%.1f",
			b.events, ms(b.oldest), ms(b.newest), ms(b.timing.Ingest), ms(b.timing.Commit), b.timing.Attempts, ms(b.decode))})
	}
	if len(trace) > 0 {
		for i, end := range gc.PauseEnd {
			if end.Before(trace[0].at.Add(-time.Second)) {
				continue
			}
			lines = append(lines, line{end, fmt.Sprintf("gc pause_ms=%.2f", ms(gc.Pause[i]))})
		}
	}
	slices.SortFunc(lines, func(a, b line) int { return a.at.Compare(b.at) })
	for _, l := range lines {
		fmt.Fprintf(f, "%s %s\n", l.at.Format("15:04:05.000"), l.text)
	}
	return f.Close()
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// writeHeapProfile writes this process's heap profile, after a collection, to path.
func writeHeapProfile(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	runtime.GC()
	if err := pprof.Lookup("heap").WriteTo(f, 0); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// loadChildStop bounds waiting for the engine's process to stop after its run.
const loadChildStop = time.Minute

// loadInChild consumes the produced run with `joinin serve` in a process of its own and reports
// its peak RSS beside this process's: the engine's memory apart from the generator's and the
// broker's.
func loadInChild(ctx context.Context, stdout io.Writer, log *slog.Logger, databaseURL string, brokers []string, ef *engineFlags,
	heapProfile string, st *postgres.Store, rep loadReport, verify bool) error {
	self, err := os.Executable()
	if err != nil {
		return err
	}
	args := []string{"serve", "--database-url", databaseURL, "--kafka-brokers", strings.Join(brokers, ","),
		"--topic", ef.topic, "--dlq-topic", ef.topic + "-dlq", "--group", ef.group + "-load", "--http-addr", "127.0.0.1:0",
		// The run verifies the ledger itself once it is consumed, outside the measurement.
		"--settle-grace", "0", "--verify-interval", "0", "--log-level", "warn", "--committers", strconv.Itoa(ef.committers)}
	if heapProfile != "" {
		args = append(args, "--heap-profile", heapProfile)
	}
	cmd := exec.Command(self, args...)
	cmd.Stdout, cmd.Stderr = io.Discard, os.Stderr
	log.Info("consuming in a process of its own")
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("engine process: %w", err)
	}
	// The child's own high-water mark, read from /proc while it runs.
	peak := make(chan int64, 1)
	go func() { peak <- watchPeakRSS(cmd.Process.Pid) }()
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	d := &demo{st: st}
	if err := d.waitCaughtUp(ctx, brokers, ef.topic, exited, loadCatchUpTimeout); err != nil {
		cmd.Process.Kill()
		return err
	}
	rep.ConsumeSeconds = time.Since(start).Seconds() // from the engine's start: its own start-up counts
	rep.EventsPerSecond = float64(rep.Events) / rep.ConsumeSeconds
	if err := cmd.Process.Signal(os.Interrupt); err != nil {
		return fmt.Errorf("stop engine process: %w", err)
	}
	select {
	case err := <-exited:
		if err != nil {
			return fmt.Errorf("engine process: %w", err)
		}
	case <-time.After(loadChildStop):
		cmd.Process.Kill()
		return fmt.Errorf("engine process did not stop within %s", loadChildStop)
	}
	rep.EnginePeakRSSMiB = float64(<-peak) / 1024
	if verify {
		vr, err := st.Verify(ctx)
		if err != nil {
			return err
		}
		if !vr.OK() {
			return fmt.Errorf("ledger failed verification:\n%s", vr.String())
		}
		rep.Verified = true
	}
	rep.ProcessPeakRSSMiB = peakRSSMiB()
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(rep)
}

// startCPUProfile writes a CPU profile to path until the returned stop is called; an empty path
// profiles nothing. Stop may be called more than once.
func startCPUProfile(path string) (stop func(), err error) {
	if path == "" {
		return func() {}, nil
	}
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("cpu profile: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("cpu profile: %w", err)
	}
	return sync.OnceFunc(func() {
		pprof.StopCPUProfile()
		f.Close()
	}), nil
}
