package main

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/joinincard/engine/consumer"
	"github.com/joinincard/engine/events"
	joininhttp "github.com/joinincard/engine/http"
	"github.com/joinincard/engine/kafka"
	"github.com/joinincard/engine/postgres"
)

const (
	defaultTopic    = "card-events"
	defaultDLQTopic = "card-events-dlq"
	defaultGroup    = "joinin-engine"
	// topicStartTimeout bounds creating the topics at start.
	topicStartTimeout = 30 * time.Second
	// expirySweepInterval is how often holds past their timeout are released: an expired hold
	// stops counting against a cardholder's funds within ten seconds.
	expirySweepInterval = 10 * time.Second
	// clockSyncInterval is how often the store measures the database's clock again: often enough
	// that a step of this machine's clock is corrected within half a minute, rarely enough to
	// cost nothing.
	clockSyncInterval = 30 * time.Second
	// clockOffsetWarning: an offset past it means this machine's time service is not working;
	// the engine keeps the database's time regardless, but the machine's logs and other
	// programs do not.
	clockOffsetWarning = time.Second
	// devTokenKey keys the tokenizer when no key is configured: fine for a demo on one machine,
	// never for real numbers, which is why serve warns about it.
	// defaultMemoryLimitMiB is the Go runtime's soft memory limit in serve: the engine's caches
	// hold about 400 MiB at their bounds (postgres's accountCacheBytes and cardCacheBytes), and
	// the collector keeps the heap, batches in flight included, under this, so that the process
	// stays under 1 GiB resident with the runtime's own and the binary's pages.
	defaultMemoryLimitMiB = 800
	// maxMemoryLimitMiB: the runtime takes its limit in bytes, an int64.
	maxMemoryLimitMiB = math.MaxInt64 >> 20
	// engineGCPercent is the collector's GOGC in the engine when a memory limit bounds its heap:
	// what a request allocates is garbage once it is answered, and at the runtime's default of
	// 100 the collector took 9% of the engine's CPU under 16 clients of authorizations; at 300,
	// 15-20 microseconds less of the engine's CPU an authorization. The memory limit, not GOGC,
	// keeps the process under its bound: the collector runs as often as it needs to below it.
	engineGCPercent = 300
	devTokenKey     = "6a6f696e696e2d646576656c6f706d656e742d6b65792d6e6f742d666f722d70726f64"
)

// engineFlags are the flags of the commands that run the engine's pipeline.
type engineFlags struct {
	brokers      string
	embeddedAddr string
	embeddedData string
	partitions   int
	topic        string
	dlqTopic     string
	group        string
	tokenKey     string
	committers   int
}

func addEngineFlags(fs interface {
	StringVar(*string, string, string, string)
	IntVar(*int, string, int, string)
}) *engineFlags {
	f := &engineFlags{}
	fs.StringVar(&f.brokers, "kafka-brokers", envOr("JOININ_KAFKA_BROKERS", ""),
		"comma-separated Kafka brokers; empty runs an embedded broker in this process (env JOININ_KAFKA_BROKERS)")
	fs.StringVar(&f.embeddedAddr, "embedded-kafka-addr", envOr("JOININ_EMBEDDED_KAFKA_ADDR", "127.0.0.1:0"),
		"loopback address of the embedded broker; port 0 picks a free one (env JOININ_EMBEDDED_KAFKA_ADDR)")
	fs.StringVar(&f.embeddedData, "embedded-kafka-data", envOr("JOININ_EMBEDDED_KAFKA_DATA", ""),
		"directory for the embedded broker's logs, kept across restarts; empty keeps them in memory, lost when the engine stops (env JOININ_EMBEDDED_KAFKA_DATA)")
	fs.IntVar(&f.partitions, "partitions", kafka.DefaultEmbeddedPartitions,
		"partitions of the topics the engine creates when they do not exist")
	fs.StringVar(&f.topic, "topic", envOr("JOININ_TOPIC", defaultTopic), "card events topic (env JOININ_TOPIC)")
	fs.StringVar(&f.dlqTopic, "dlq-topic", envOr("JOININ_DLQ_TOPIC", defaultDLQTopic), "dead-letter topic (env JOININ_DLQ_TOPIC)")
	fs.StringVar(&f.group, "group", envOr("JOININ_GROUP", defaultGroup), "consumer group (env JOININ_GROUP)")
	fs.StringVar(&f.tokenKey, "token-key", envOr("JOININ_TOKEN_KEY", ""),
		"hex key (32 bytes or more) for tokenizing personal numbers (env JOININ_TOKEN_KEY)")
	fs.IntVar(&f.committers, "committers", consumer.DefaultCommitters,
		fmt.Sprintf("card-event transactions applied at once, each for its own share of the partitions (1 to %d)", consumer.MaxCommitters))
	return f
}

// maxPartitions bounds --partitions: the topics the engine creates take at most this many (the
// embedded broker fewer, and says so).
const maxPartitions = 10000

// check refuses values the engine cannot run with, before anything is opened or created.
func (f *engineFlags) check() error {
	if f.committers < 1 || f.committers > consumer.MaxCommitters {
		return fmt.Errorf("--committers %d: must be 1 to %d", f.committers, consumer.MaxCommitters)
	}
	if f.partitions < 1 || f.partitions > maxPartitions {
		return fmt.Errorf("--partitions %d: must be 1 to %d", f.partitions, maxPartitions)
	}
	// The embedded broker's log directory must take its files: found now, not after the database
	// was created and migrated.
	if f.brokers == "" && f.embeddedData != "" {
		if err := writableDir("--embedded-kafka-data", f.embeddedData); err != nil {
			return err
		}
	}
	if f.tokenKey != "" {
		raw, err := hex.DecodeString(f.tokenKey)
		if err != nil {
			return fmt.Errorf("--token-key: not hex: %w", err)
		}
		if _, err := events.NewTokenizer(raw); err != nil {
			return fmt.Errorf("--token-key: %w", err)
		}
	}
	return nil
}

// refusal is how serve's refusal to consume from a broker that forgot the database's offsets
// begins.
const refusal = "refusing to consume"

// refuseForgetfulBroker refuses to start when the embedded broker would keep its log in memory (it
// starts empty, its offsets at 0) while the database holds cursors of the topic from a broker
// before it: the events produced to the new broker at offsets below those cursors would be taken
// for events already applied and never be applied. Nothing is consumed or changed; the operator
// keeps the broker's log, points serve at the broker it consumed from, or names another topic.
func refuseForgetfulBroker(ctx context.Context, st *postgres.Store, f *engineFlags) error {
	if f.brokers != "" || f.embeddedData != "" {
		return nil
	}
	names := make([]string, f.partitions)
	for i := range names {
		names[i] = fmt.Sprintf("%s/%d", f.topic, i)
	}
	cursors, err := st.Cursors(ctx, names)
	if err != nil {
		return err
	}
	for _, name := range names {
		if c, ok := cursors[name]; ok && c.Position > 0 {
			return fmt.Errorf("%s %s: this database applied its events up to offset %d from an earlier broker, and the "+
				"embedded broker keeps no log (it would start empty, and the events produced to it at lower offsets "+
				"would never be applied): keep the broker's log with --embedded-kafka-data DIR, use --kafka-brokers, "+
				"or consume another --topic", refusal, name, c.Position)
		}
	}
	return nil
}

// brokers returns the brokers to use, starting the embedded one if none is configured. stop
// closes what was started.
func (f *engineFlags) connect(ctx context.Context, log *slog.Logger) (brokers []string, stop func(), err error) {
	stop = func() {}
	if err := f.check(); err != nil {
		return nil, stop, err
	}
	if f.brokers != "" {
		brokers = strings.Split(f.brokers, ",")
	} else {
		b, err := kafka.StartEmbedded(kafka.EmbeddedConfig{Addr: f.embeddedAddr, DataDir: f.embeddedData, Partitions: f.partitions, Logger: log})
		if err != nil {
			return nil, stop, err
		}
		brokers, stop = b.Addrs(), b.Close
		log.Info("embedded kafka broker started", "addrs", brokers)
	}
	tctx, cancel := context.WithTimeout(ctx, topicStartTimeout)
	defer cancel()
	err = kafka.EnsureTopics(tctx, brokers, []kafka.TopicSpec{
		{Name: f.topic, Partitions: f.partitions, ReplicationFactor: 1},
		{Name: f.dlqTopic, Partitions: f.partitions, ReplicationFactor: 1},
	})
	if err != nil {
		stop()
		return nil, func() {}, err
	}
	return brokers, stop, nil
}

func (f *engineFlags) tokenizer(log *slog.Logger) (*events.Tokenizer, error) {
	key := f.tokenKey
	if key == "" {
		log.Warn("no --token-key configured: using the development key; never register real cards with it")
		key = devTokenKey
	}
	raw, err := hex.DecodeString(key)
	if err != nil {
		return nil, fmt.Errorf("--token-key: not hex: %w", err)
	}
	return events.NewTokenizer(raw)
}

func runServe(ctx context.Context, args []string, stdout io.Writer) error {
	fs, c := newFlagSet("serve", "consume card events from Kafka into the ledger and serve HTTP")
	c.create = true
	ef := addEngineFlags(fs)
	tf := addTariffFlags(fs)
	transitInterval := fs.Duration("transit-interval", defaultTransitInterval,
		"how often transit clearing decides the taps from Kafka, re-prices late taps and closes the travel days that are due")
	sf := addSettleFlags(fs)
	rf := addReconcileFlags(fs)
	secureDefault, secureErr := boolEnv("JOININ_SECURE_COOKIE", false)
	secureCookie := fs.Bool("secure-cookie", secureDefault,
		"mark the finance page's session cookie Secure on every answer: set it when a TLS proxy sits in front (env JOININ_SECURE_COOKIE=true)")
	graceDefault, graceErr := durationEnv("JOININ_SETTLE_GRACE", defaultSettleGrace)
	grace := fs.Duration("settle-grace", graceDefault,
		"how long after a cycle's cut-off serve closes it; 0 never closes cycles on its own (env JOININ_SETTLE_GRACE)")
	verifyDefault, verifyErr := durationEnv("JOININ_VERIFY_INTERVAL", defaultVerifyInterval)
	verifyEvery := fs.Duration("verify-interval", verifyDefault,
		"how often serve checkpoints the closed days and checks what came after, as joinin verify does; 0 never (env JOININ_VERIFY_INTERVAL)")
	httpAddr := fs.String("http-addr", envOr("JOININ_HTTP_ADDR", "127.0.0.1:8080"), "HTTP listen address (env JOININ_HTTP_ADDR)")
	adminToken := fs.String("admin-token", envOr("JOININ_ADMIN_TOKEN", ""),
		"bearer token of the registry endpoints; empty disables them (env JOININ_ADMIN_TOKEN)")
	memLimit := fs.Int("memory-limit-mib", defaultMemoryLimitMiB,
		"the Go runtime's soft memory limit, MiB; 0 leaves the runtime's own (GOMEMLIMIT, when set, wins over this)")
	heapProfile := fs.String("heap-profile", "", "write a heap profile to this file when the engine stops")
	check := func() error {
		if err := ef.check(); err != nil {
			return err
		}
		if err := sf.check(); err != nil {
			return err
		}
		if err := tf.check(); err != nil {
			return err
		}
		if err := rf.check(); err != nil {
			return err
		}
		if _, err := net.ResolveTCPAddr("tcp", *httpAddr); err != nil {
			return fmt.Errorf("--http-addr %s: %w", *httpAddr, err)
		}
		// The profile is written when the engine stops: a directory that is not there is
		// found at start, not after hours of running.
		if *heapProfile != "" {
			if fi, err := os.Stat(filepath.Dir(*heapProfile)); err != nil {
				return fmt.Errorf("--heap-profile %s: %w", *heapProfile, err)
			} else if !fi.IsDir() {
				return fmt.Errorf("--heap-profile %s: %s is not a directory", *heapProfile, filepath.Dir(*heapProfile))
			}
		}
		if secureErr != nil {
			return secureErr
		}
		// A limit the runtime cannot take (negative, or past int64 bytes) would be dropped
		// without a word: refused, as every other flag out of its range is.
		if *memLimit < 0 || int64(*memLimit) > maxMemoryLimitMiB {
			return fmt.Errorf("--memory-limit-mib %d: must be 0 to %d", *memLimit, int64(maxMemoryLimitMiB))
		}
		if graceErr != nil {
			return graceErr
		}
		if *grace < 0 {
			return errors.New("--settle-grace: must not be negative")
		}
		if verifyErr != nil {
			return verifyErr
		}
		if *verifyEvery < 0 {
			return errors.New("--verify-interval: must not be negative")
		}
		if *transitInterval <= 0 {
			return errors.New("--transit-interval: must be positive")
		}
		return nil
	}
	log, st, err := c.start(ctx, fs, args, check)
	if err != nil {
		return err
	}
	defer st.Close()
	engineMemory(*memLimit)
	if *heapProfile != "" {
		// Deferred after the store's Close: it runs first, with the engine's caches still held.
		defer func() {
			if err := writeHeapProfile(*heapProfile); err != nil {
				log.Warn("heap profile", "err", err)
			}
		}()
	}
	// Fare tables, fee plans and medical policies: the files, and the versions uploaded since.
	tariffs, err := tf.load(ctx, st, log)
	if err != nil {
		return err
	}
	// The consumer decides transit taps in its own transactions, by the fare tables in force.
	st.TransitFares = tariffs.Fares
	tok, err := ef.tokenizer(log)
	if err != nil {
		return err
	}
	st.Tokenizer = tok // keys the hash kept of a redacted dead letter
	if err := refuseForgetfulBroker(ctx, st, ef); err != nil {
		return err
	}
	brokers, stopBroker, err := ef.connect(ctx, log)
	if err != nil {
		return err
	}
	defer stopBroker()

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	metrics := consumer.NewMetrics(reg)
	sm := newServeMetrics(reg)

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	dlq := kafka.NewProducer(brokers, ef.dlqTopic)
	defer func() {
		if err := dlq.Close(); err != nil {
			log.Warn("close dead-letter producer", "err", err)
		}
	}()
	relay := &consumer.Relay{Store: st, Producer: dlq, Tokenizer: tok, Log: log, Metrics: metrics}
	// The relay and the sweep end with ctx; serve waits for them before it closes what they use.
	var background sync.WaitGroup
	defer background.Wait()
	defer cancel()
	background.Go(func() { relay.Run(ctx) })
	background.Go(func() { sweepExpiredHolds(ctx, st, log, sm.holdsExpired) })
	background.Go(func() { syncClock(ctx, st, log) })
	background.Go(func() { refreshTariffs(ctx, st, tariffs, log) })
	set, err := sf.settlement(st)
	if err != nil {
		return err
	}
	if *grace > 0 {
		background.Go(func() { autoSettle(ctx, set, st.Now, *grace, log, sm) })
	}
	background.Go(func() { watchCalendar(ctx, set.Cycles(), st.Now, calendarCheckInterval, log, sm) })
	background.Go(func() { watchMedicalPolicies(ctx, tariffs.MedicalPolicies, st.Now, policyCheckInterval, log, sm) })
	if *verifyEvery > 0 {
		background.Go(func() { verifyLedger(ctx, st, min(verifyFirstDelay, *verifyEvery), *verifyEvery, log, sm) })
	}
	background.Go(func() { watchBuffers(ctx, st, bufferCheckInterval, log, sm) })
	registerClockMetrics(reg, st)
	registerStoreMetrics(reg, st)

	// Finance staff's view: balances at any instant and statements.
	features := []joininhttp.Feature{joininhttp.NewAccounts(st)}
	purchaseAPI, stopPurchases, err := startPurchases(ctx, st, reg)
	if err != nil {
		return err
	}
	defer stopPurchases() // after the HTTP server has drained: deferred calls run last first
	features = append(features, purchaseAPI)
	features = append(features, joininhttp.NewMedical(postgres.NewMedicalTariffs(st, tariffs)))
	transitAPI, stopTransit := startTransit(ctx, st, tariffs, *transitInterval, log)
	defer stopTransit() // after the HTTP server has drained, as purchases
	// Tariffs as data: the admin uploads versions of fare tables, fee plans and medical policies.
	features = append(features, transitAPI, joininhttp.NewTariffs(tariffs))
	// The ledger's own transfers, for the admin: finance adjustments, bank funding.
	_, transfersAPI, stopTransfers, err := startTransfers(ctx, st, reg)
	if err != nil {
		return err
	}
	defer stopTransfers() // after the HTTP server has drained, as purchases
	features = append(features, transfersAPI)
	// Settlement: the admin closes and reads cycles; banks fetch their files and acknowledge them.
	features = append(features, joininhttp.NewSettlement(set, st))
	// Reconciliation: the admin imports banks' statements; finance staff read the finance page.
	rec, err := rf.reconciler(st)
	if err != nil {
		return err
	}
	finance := joininhttp.NewFinance(joininhttp.NewPostgresFinance(st, set, rec))
	finance.SecureCookie = *secureCookie
	features = append(features, joininhttp.NewReconciliation(rec), finance)

	srv, err := startHTTP(ctx, httpConfig{addr: *httpAddr, store: st, brokers: brokers, topic: ef.topic, tokenizer: tok,
		adminToken: *adminToken, metrics: reg, log: log, features: features, onRequest: sm.observeRequest})
	if err != nil {
		return err
	}
	defer srv.stop()
	fmt.Fprintf(stdout, "serving HTTP on %s, consuming %s from %s\n", srv.addr, ef.topic, strings.Join(brokers, ","))

	cons := consumer.New(consumer.Config{Brokers: brokers, Topic: ef.topic, GroupID: ef.group, Log: log, Metrics: metrics, Now: st.Now,
		Committers: ef.committers}, st)
	err = cons.Run(ctx)
	if err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	log.Info("engine stopped")
	return nil
}

// sweepExpiredHolds releases holds past their timeout until ctx is done.
func sweepExpiredHolds(ctx context.Context, st *postgres.Store, log *slog.Logger, expired prometheus.Counter) {
	t := time.NewTicker(expirySweepInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		for {
			n, err := st.ExpireHolds(ctx, 0)
			if err != nil {
				if ctx.Err() == nil {
					log.Warn("expire holds", "err", err)
				}
				break
			}
			if n > 0 {
				log.Info("holds expired", "count", n)
				expired.Add(float64(n))
			}
			if n == 0 {
				break
			}
		}
	}
}

// syncClock keeps the store's clock on the database's: clocks drift by milliseconds an hour, and
// a step of the process's clock (NTP correcting it) is picked up within clockSyncInterval.
func syncClock(ctx context.Context, st *postgres.Store, log *slog.Logger) {
	t := time.NewTicker(clockSyncInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		offset, err := st.SyncClock(ctx)
		switch {
		case err != nil:
			if ctx.Err() == nil {
				log.Warn("read the database's clock", "err", err)
			}
		case offset > clockOffsetWarning || offset < -clockOffsetWarning:
			log.Warn("this machine's clock is off the database's; the engine keeps the database's time",
				"offset", offset.Round(time.Millisecond))
		}
	}
}

// registerClockMetrics exports how far this process's clock is from the database's, and how far
// batch times led the clock they were written by.
func registerClockMetrics(reg prometheus.Registerer, st *postgres.Store) {
	reg.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "joinin_clock_offset_seconds",
			Help: "This process's clock minus the database server's, at the last synchronization."},
			func() float64 { return st.ClockStats().Offset.Seconds() }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "joinin_batch_time_lead_seconds",
			Help: "How far the last batch's time led the clock that wrote it (its accounts' history was ahead)."},
			func() float64 { return st.ClockStats().LastLead.Seconds() }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "joinin_batch_time_lead_max_seconds",
			Help: "The largest lead of a batch's time over the clock that wrote it, since start."},
			func() float64 { return st.ClockStats().MaxLead.Seconds() }),
	)
}

// registerStoreMetrics exports the store's write transactions and their retries, every writer of
// this process together: the consumer's batches, authorizations, the expiry sweep, transit,
// medical, settlement.
func registerStoreMetrics(reg prometheus.Registerer, st *postgres.Store) {
	reg.MustRegister(
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "joinin_store_transactions_total",
			Help: "Write transactions run by this process's store, whatever their outcome."},
			func() float64 { return float64(st.TxStats().Transactions) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "joinin_store_transaction_retries_total",
			Help: "Write transactions run again whole after a conflict with a concurrent writer."},
			func() float64 { return float64(st.TxStats().Retries) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "joinin_store_transaction_retries_exhausted_total",
			Help: "Write transactions that still conflicted after the store's bounded retries, and failed."},
			func() float64 { return float64(st.TxStats().Exhausted) }),
	)
}

// engineMemory sets the Go runtime's soft memory limit to limitMiB, and with it the collector's
// engineGCPercent, unless GOMEMLIMIT or GOGC say otherwise; limitMiB 0 leaves both to the runtime.
func engineMemory(limitMiB int) {
	if limitMiB <= 0 {
		return
	}
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(int64(limitMiB) << 20)
	}
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(engineGCPercent)
	}
}
