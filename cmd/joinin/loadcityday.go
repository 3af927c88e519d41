package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	nethttp "net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	kafkago "github.com/segmentio/kafka-go"

	"github.com/joinincard/engine/clearing"
	"github.com/joinincard/engine/consumer"
	"github.com/joinincard/engine/events"
	joininhttp "github.com/joinincard/engine/http"
	"github.com/joinincard/engine/kafka"
	"github.com/joinincard/engine/ledger"
	"github.com/joinincard/engine/loadtest"
	"github.com/joinincard/engine/postgres"
	"github.com/joinincard/engine/tariffs"
	"github.com/joinincard/engine/transit"
)

const (
	// cityDayProgressEvery is how often the progress line is redrawn.
	cityDayProgressEvery = time.Second
	// cityDayProduceChunk is how many Kafka messages one produce call carries.
	cityDayProduceChunk = 5000
	// cityDayExpiryWait is how far past the day the clock moves for the holds left open to
	// expire: the longest hold of the day's merchants' categories is 7 days.
	cityDayExpiryWait = 8 * 24 * time.Hour
	// cityDayMaxRounds bounds the drain, re-pricing and expiry rounds: each works thousands of
	// rows, so a million taps or holds at most.
	cityDayMaxRounds = 1000
)

// cityDayReport is what a city day prints, as JSON.
type cityDayReport struct {
	Seed      uint64 `json:"seed"`
	Day       string `json:"day"`
	Cards     int    `json:"cards"`
	Merchants int    `json:"merchants"`
	// Events counts what the day sent by kind; EventsPerSecond is each kind's count over the
	// time its own sender took (the kinds run side by side).
	Events          map[string]int     `json:"events"`
	EventsPerSecond map[string]float64 `json:"events_per_second"`
	TapsPerSecond   float64            `json:"taps_per_second"`
	AuthP50Millis   float64            `json:"authorization_p50_ms"`
	AuthP99Millis   float64            `json:"authorization_p99_ms"`
	// DayCloseSeconds is closing the travel day: every card's day priced and charged.
	DayCloseSeconds float64 `json:"day_close_seconds"`
	RepriceSeconds  float64 `json:"late_reprice_seconds"`
	CardDays        int     `json:"card_days_charged"`
	CardDaysAdjust  int     `json:"card_days_adjusted"`
	// EngineRSSPeakMiB is the process's peak resident memory: the engine with the load
	// generator and its model beside it in one process.
	EngineRSSPeakMiB float64 `json:"engine_rss_peak_mib"`
	TotalSeconds     float64 `json:"total_seconds"`
	// Observed is what the engine answered to the duplicates and the malformed traffic.
	Observed map[string]int `json:"observed"`
	// Lost counts transfers the model expects and the ledger lacks, AppliedTwice transfers the
	// ledger holds beyond the model's (both by kind), Mismatched accounts whose balance differs
	// from the model's; Unexpected answers the plan did not foresee (a decline, an error).
	Lost            int      `json:"lost"`
	AppliedTwice    int      `json:"applied_twice"`
	Mismatched      int      `json:"mismatched"`
	Unexpected      int      `json:"unexpected"`
	Problems        []string `json:"problems,omitempty"`
	AccountsChecked int      `json:"accounts_checked"`
	// Transfers are the ledger's transfers by kind (code, and phase of two-phase ones), as the
	// model expects them and as the ledger holds them.
	Transfers map[string][2]int `json:"transfers_expected_actual"`
	Verified  bool              `json:"verified"`
}

// cityDayProblemsShown bounds the problems the report lists; the counts count them all.
const cityDayProblemsShown = 20

func (r *cityDayReport) problem(format string, args ...any) {
	if len(r.Problems) < cityDayProblemsShown {
		r.Problems = append(r.Problems, fmt.Sprintf(format, args...))
	}
}

func runLoadCityDay(ctx context.Context, args []string, stdout io.Writer) error {
	fs, c := newFlagSet("loadtest-cityday", "run a city day through every door (Kafka, the purchase, transit and medical APIs over HTTP) in a database of its own; compare the ledger with a model of the day; print the figures as JSON")
	ef := addEngineFlags(fs)
	seed := fs.Uint64("seed", 20260615, "seed of the day: the same seed plans the same day")
	day := fs.String("day", "2026-06-15", "the travel day, YYYY-MM-DD in Asia/Shanghai")
	nCards := fs.Int("cards", 20_000, "cardholders")
	nMerchants := fs.Int("merchants", 200, "merchants taking authorizations and clearing purchases")
	nPurchases := fs.Int("purchases", 50_000, "cleared purchases over Kafka (a tenth refunded in part)")
	nAuths := fs.Int("authorizations", 20_000, "authorizations over HTTP, each captured, voided or left to expire")
	nBills := fs.Int("medical-bills", 5_000, "medical settlements over HTTP")
	clients := fs.Int("clients", 8, "concurrent HTTP clients of the authorizations")
	progress := fs.Bool("progress", true, "draw a progress line on stderr")
	keep := fs.Bool("keep", false, "keep the database the run creates")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("loadtest-cityday takes no arguments, got %q", fs.Args())
	}
	log, err := c.logger()
	if err != nil {
		return err
	}
	date, err := time.ParseInLocation(time.DateOnly, *day, loadtest.Shanghai)
	if err != nil {
		return fmt.Errorf("--day: %w", err)
	}
	if *nCards < 10 || *nMerchants < 1 || *clients < 1 || *nPurchases < 0 || *nAuths < 0 || *nBills < 0 {
		return errors.New("--cards at least 10, --merchants and --clients at least 1, the counts not negative")
	}
	began := time.Now()

	if err := ef.check(); err != nil {
		return err
	}
	st, _, closeStore, err := openLoadStore(ctx, c.databaseURL, "cityday", *keep, log)
	if err != nil {
		return err
	}
	defer closeStore()
	// The day's own clock: it runs with the real one from wherever the day sets it.
	clock := &demoClock{}
	clock.Set(date.Add(30 * time.Minute))
	st.Now = clock.Now
	tok, err := ef.tokenizer(slog.New(slog.DiscardHandler))
	if err != nil {
		return err
	}
	st.Tokenizer = tok
	tr, err := (&tariffFlags{}).load(ctx, st, slog.New(slog.DiscardHandler))
	if err != nil {
		return err
	}
	st.TransitFares = tr.Fares // as serve runs: taps from Kafka decided by the consumer
	files, err := tariffs.BuiltIn()
	if err != nil {
		return err
	}
	plan, err := loadtest.PlanDay(loadtest.DayConfig{Seed: *seed, Cards: *nCards, Merchants: *nMerchants, Purchases: *nPurchases,
		Authorizations: *nAuths, MedicalBills: *nBills, Day: date}, tr.Fares(), files.Fares, files.Catalogues)
	if err != nil {
		return err
	}
	ef.topic = fmt.Sprintf("%s-cityday-%x", ef.topic, *seed&0xffffff)
	brokers, stopBroker, err := ef.connect(ctx, log)
	if err != nil {
		return err
	}
	defer stopBroker()

	d := &cityDay{st: st, plan: plan, log: log, clients: *clients, brokers: brokers, topic: ef.topic, committers: ef.committers,
		rep: cityDayReport{Seed: *seed, Day: *day, Cards: *nCards, Merchants: *nMerchants, Events: map[string]int{},
			EventsPerSecond: map[string]float64{}, Observed: map[string]int{}, Transfers: map[string][2]int{}},
		splits: map[string]loadtest.MedicalSplit{}}
	if *progress {
		stopProgress := d.showProgress()
		defer stopProgress()
	}
	if err := d.run(ctx, tr, tok, clock, date); err != nil {
		return err
	}
	d.rep.TotalSeconds = time.Since(began).Seconds()
	d.rep.EngineRSSPeakMiB = peakRSSMiB()
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	if err := enc.Encode(d.rep); err != nil {
		return err
	}
	if r := d.rep; r.Lost+r.AppliedTwice+r.Mismatched+r.Unexpected > 0 || !r.Verified {
		return fmt.Errorf("the city day does not add up: lost %d, applied twice %d, mismatched %d, unexpected %d, verified %v",
			r.Lost, r.AppliedTwice, r.Mismatched, r.Unexpected, r.Verified)
	}
	return nil
}

// peakRSSMiB is this process's peak resident set (VmHWM), 0 where the system does not say.
func peakRSSMiB() float64 {
	raw, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for line := range strings.SplitSeq(string(raw), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, err := strconv.ParseFloat(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 64)
			if err == nil {
				return kb / 1024
			}
		}
	}
	return 0
}

// cityDay is a running city day.
type cityDay struct {
	st      *postgres.Store
	plan    *loadtest.Plan
	log     *slog.Logger
	clients int
	brokers []string
	topic   string
	// committers is how many transactions the consumer applies at once.
	committers int

	base, adminToken string
	http             *nethttp.Client
	merchantKeys     []string
	institutionKeys  []string
	operatorKeys     map[string]string

	phase                                  atomic.Value // string
	sentKafka, sentTaps, sentAuths, billed atomic.Int64

	mu          sync.Mutex
	rep         cityDayReport
	splits      map[string]loadtest.MedicalSplit
	authLatency []time.Duration
}

func (d *cityDay) showProgress() (stop func()) {
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		t := time.NewTicker(cityDayProgressEvery)
		defer t.Stop()
		start := time.Now()
		for {
			select {
			case <-done:
				fmt.Fprintln(os.Stderr)
				return
			case <-t.C:
			}
			phase, _ := d.phase.Load().(string)
			fmt.Fprintf(os.Stderr, "\rcityday %5.0fs %-28s kafka %d  taps %d  authorizations %d  medical %d   ",
				time.Since(start).Seconds(), phase, d.sentKafka.Load(), d.sentTaps.Load(), d.sentAuths.Load(), d.billed.Load())
		}
	}()
	return func() {
		close(done)
		<-finished
	}
}

func (d *cityDay) unexpected(format string, args ...any) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.rep.Unexpected++
	d.rep.problem(format, args...)
}

func (d *cityDay) observe(key string, n int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.rep.Observed[key] += n
}

func (d *cityDay) run(ctx context.Context, tr *postgres.Tariffs, tok *events.Tokenizer, clock *demoClock, date time.Time) error {
	p := d.plan
	d.phase.Store("registering parties")
	for _, b := range p.City.Banks {
		if _, err := d.st.RegisterParty(ctx, clearing.PartyBank, b, b+" settlement"); err != nil {
			return err
		}
	}
	for _, city := range p.City.Cities {
		if _, err := d.st.RegisterParty(ctx, clearing.PartyInsuranceFund, city, city+" medical insurance fund"); err != nil {
			return err
		}
	}
	for _, inst := range p.Institutions {
		if _, err := d.st.RegisterParty(ctx, clearing.PartyMerchant, inst.ID, inst.ID); err != nil {
			return err
		}
	}
	stopHTTP, err := d.startHTTP(ctx, tr, tok)
	if err != nil {
		return err
	}
	defer stopHTTP()
	if err := d.register(ctx); err != nil {
		return err
	}

	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	cons := consumer.New(consumer.Config{Brokers: d.brokers, Topic: d.topic, GroupID: "cityday", Log: d.log, Now: d.st.Now, Committers: d.committers,
		OnBatch: func(b consumer.Batch) {
			d.mu.Lock()
			defer d.mu.Unlock()
			d.rep.Observed["kafka_duplicates"] += b.Decision.Duplicates
			d.rep.Observed["kafka_dead_letters"] += len(b.Decision.DeadLetters)
		}}, d.st)
	consumed := make(chan error, 1)
	go func() { consumed <- cons.Run(cctx) }()
	waiter := &demo{st: d.st}

	// Before the day: the cards registered and funded, the personal accounts contributed to.
	d.phase.Store("cards registered and funded")
	setup := make([]kafkago.Message, len(p.Setup))
	for i, e := range p.Setup {
		setup[i] = kafkago.Message{Key: []byte(e.CardToken), Value: loadtest.Encode(e)}
	}
	start := time.Now()
	if _, err := d.produce(ctx, setup); err != nil {
		return err
	}
	if err := waiter.waitCaughtUp(ctx, d.brokers, d.topic, consumed, loadCatchUpTimeout); err != nil {
		return err
	}
	d.rep.Events["kafka_setup"] = len(setup)
	d.rep.EventsPerSecond["kafka_setup_applied"] = float64(len(setup)) / time.Since(start).Seconds()

	// The day: every door at once, late in the evening so that every tap of the day is past.
	d.phase.Store("the day")
	clock.Set(date.Add(23 * time.Hour))
	start = time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	wg.Go(func() {
		if err := d.kafkaDay(ctx); err != nil {
			errs <- err
			return
		}
		// The day's Kafka events over the time until the last was applied, while every other
		// door was busy too.
		err := waiter.waitCaughtUp(ctx, d.brokers, d.topic, consumed, loadCatchUpTimeout)
		d.mu.Lock()
		d.rep.EventsPerSecond["kafka_day_applied"] = float64(d.rep.Events["kafka_day"]) / time.Since(start).Seconds()
		d.mu.Unlock()
		errs <- err
	})
	wg.Go(func() { errs <- d.tapsDay(ctx, p.Batches, "taps_http") })
	wg.Go(func() { errs <- d.authorizations(ctx) })
	wg.Go(func() { errs <- d.medical(ctx) })
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			return err
		}
	}
	if err := waiter.waitCaughtUp(ctx, d.brokers, d.topic, consumed, loadCatchUpTimeout); err != nil {
		return err
	}
	cancel()
	if err := <-consumed; err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	tables := tr.Fares()
	d.phase.Store("taps from kafka drained")
	for range cityDayMaxRounds {
		n, err := d.st.DrainTransitTaps(ctx, tables)
		if err != nil {
			return err
		}
		if n == 0 {
			break
		}
	}

	// The travel day closes once every group's close delay has passed.
	d.phase.Store("the travel day closes")
	closeAt := clock.Now()
	for _, g := range tables.Groups() {
		if t := g.ClosesAt(p.Day).Add(time.Minute); t.After(closeAt) {
			closeAt = t
		}
	}
	clock.Set(closeAt)
	start = time.Now()
	closed, err := d.st.CloseTransitDays(ctx, tables, clock.Now())
	if err != nil {
		return err
	}
	d.rep.DayCloseSeconds = time.Since(start).Seconds()
	d.rep.CardDays = closed.Transfers

	// Offline readers upload the rest of the day's taps: the closed day is priced again.
	d.phase.Store("late taps re-priced")
	if err := d.tapsDay(ctx, p.LateBatches, "taps_late"); err != nil {
		return err
	}
	start = time.Now()
	for range cityDayMaxRounds {
		n, rep, err := d.st.RepriceTransitDays(ctx, tables, clock.Now())
		if err != nil {
			return err
		}
		d.rep.CardDaysAdjust += rep.Transfers
		if n == 0 {
			break
		}
	}
	d.rep.RepriceSeconds = time.Since(start).Seconds()

	// A week on: the holds nobody captured or voided expire.
	d.phase.Store("holds expire")
	clock.Set(date.Add(cityDayExpiryWait + 12*time.Hour))
	expired := 0
	for range cityDayMaxRounds {
		n, err := d.st.ExpireHolds(ctx, 0)
		if err != nil {
			return err
		}
		expired += n
		if n == 0 {
			break
		}
	}
	d.rep.Events["expiries"] = expired

	d.phase.Store("compared with the model")
	return d.compare(ctx, tables)
}

func (d *cityDay) startHTTP(ctx context.Context, tr *postgres.Tariffs, tok *events.Tokenizer) (stop func(), err error) {
	var secret [32]byte
	if _, err := rand.Read(secret[:]); err != nil {
		return nil, err
	}
	d.adminToken = hex.EncodeToString(secret[:])
	reg := prometheus.NewRegistry()
	purchaseAPI, stopPurchases, err := startPurchases(ctx, d.st, reg)
	if err != nil {
		return nil, err
	}
	features := []joininhttp.Feature{joininhttp.NewAccounts(d.st), purchaseAPI,
		joininhttp.NewMedical(postgres.NewMedicalTariffs(d.st, tr)), joininhttp.NewTransitLive(d.st, tr.Fares)}
	srv, err := startHTTP(ctx, httpConfig{addr: "127.0.0.1:0", store: d.st, brokers: d.brokers, topic: d.topic, tokenizer: tok,
		adminToken: d.adminToken, metrics: reg, log: d.log, features: features})
	if err != nil {
		stopPurchases()
		return nil, err
	}
	d.base = "http://" + srv.addr
	conns := d.clients + 8
	d.http = &nethttp.Client{Timeout: loadClientTimeout, Transport: &nethttp.Transport{
		MaxIdleConns: conns, MaxIdleConnsPerHost: conns, MaxConnsPerHost: conns, IdleConnTimeout: time.Minute,
		DisableCompression: true, ForceAttemptHTTP2: false,
	}}
	return func() {
		srv.stop()
		stopPurchases()
	}, nil
}

// call sends a request with the bearer key (the admin's when key is empty) and the
// Idempotency-Key idem (none when empty).
func (d *cityDay) call(ctx context.Context, method, path, key, idem string, body []byte) (int, []byte, error) {
	req, err := nethttp.NewRequestWithContext(ctx, method, d.base+path, bytes.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	if key == "" {
		key = d.adminToken
	}
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Content-Type", "application/json")
	if idem != "" {
		req.Header.Set("Idempotency-Key", idem)
	}
	resp, err := d.http.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	got, err := io.ReadAll(resp.Body)
	return resp.StatusCode, got, err
}

// register opens the day's merchants, medical institutions and transit operators over the
// admin API, keeping each one's key.
func (d *cityDay) register(ctx context.Context) error {
	p := d.plan
	keyOf := func(path string, body any) (string, error) {
		raw, err := json.Marshal(body)
		if err != nil {
			return "", err
		}
		status, got, err := d.call(ctx, "POST", path, "", "", raw)
		if err != nil {
			return "", err
		}
		var v struct {
			APIKey string `json:"api_key"`
		}
		if status != nethttp.StatusCreated || json.Unmarshal(got, &v) != nil || v.APIKey == "" {
			return "", fmt.Errorf("POST %s: %d %.300s", path, status, got)
		}
		return v.APIKey, nil
	}
	d.phase.Store("merchants registered")
	for _, m := range p.Merchants {
		k, err := keyOf("/v1/merchants", map[string]string{"id": m.ID, "name": "shop " + m.ID, "mcc": m.MCC, "city": m.City,
			"acquiring_bank": m.Bank, "fee_plan": loadtest.MerchantFeePlan})
		if err != nil {
			return err
		}
		d.merchantKeys = append(d.merchantKeys, k)
	}
	for _, inst := range p.Institutions {
		k, err := keyOf("/v1/medical/institutions", map[string]string{"merchant_id": inst.ID, "kind": inst.Kind,
			"tier": strconv.Itoa(inst.Tier), "city": inst.City})
		if err != nil {
			return err
		}
		d.institutionKeys = append(d.institutionKeys, k)
	}
	d.operatorKeys = map[string]string{}
	for _, op := range p.Operators {
		k, err := keyOf("/v1/transit/operators", map[string]string{"id": op, "name": op})
		if err != nil {
			return err
		}
		d.operatorKeys[op] = k
	}
	return nil
}

func (d *cityDay) produce(ctx context.Context, msgs []kafkago.Message) (time.Duration, error) {
	start := time.Now()
	pr := kafka.NewProducer(d.brokers, d.topic)
	for len(msgs) > 0 {
		n := min(cityDayProduceChunk, len(msgs))
		if err := pr.Produce(ctx, msgs[:n]...); err != nil {
			pr.Close()
			return 0, err
		}
		d.sentKafka.Add(int64(n))
		msgs = msgs[n:]
	}
	return time.Since(start), pr.Close()
}

// kafkaDay produces the day's purchases, refunds and taps, the duplicates after them and the
// malformed messages among them.
func (d *cityDay) kafkaDay(ctx context.Context) error {
	p := d.plan
	msgs := make([]kafkago.Message, 0, len(p.DayEvents)+len(p.KafkaDuplicates)+len(p.KafkaMalformed))
	taps := 0
	for i, e := range p.DayEvents {
		msgs = append(msgs, kafkago.Message{Key: []byte(e.CardToken), Value: loadtest.Encode(e)})
		if e.Type == events.TypeTransitTap {
			taps++
		}
		if i < len(p.KafkaMalformed) && i%7 == 0 {
			msgs = append(msgs, kafkago.Message{Key: []byte(e.CardToken), Value: p.KafkaMalformed[i]})
		}
	}
	for i := range p.KafkaMalformed {
		if !(i < len(p.DayEvents) && i%7 == 0) {
			msgs = append(msgs, kafkago.Message{Key: []byte("malformed"), Value: p.KafkaMalformed[i]})
		}
	}
	for _, i := range p.KafkaDuplicates {
		e := p.DayEvents[i]
		msgs = append(msgs, kafkago.Message{Key: []byte(e.CardToken), Value: loadtest.Encode(e)})
	}
	took, err := d.produce(ctx, msgs)
	if err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.rep.Events["kafka_day"] = len(msgs)
	d.rep.Events["taps_kafka"] = taps
	d.rep.Events["kafka_duplicates_sent"] = len(p.KafkaDuplicates)
	d.rep.Events["kafka_malformed_sent"] = len(p.KafkaMalformed)
	d.rep.EventsPerSecond["kafka_produce"] = float64(len(msgs)) / took.Seconds()
	return nil
}

type tapJSON struct {
	DeviceID  string `json:"device_id"`
	DeviceSeq uint64 `json:"device_seq"`
	CardToken string `json:"card_token"`
	TappedAt  string `json:"tapped_at"`
	StationID string `json:"station_id"`
	Line      string `json:"line,omitempty"`
	Direction string `json:"direction"`
	Mode      string `json:"mode"`
}

// tapsDay uploads batches, each operator's in order, the operators side by side.
func (d *cityDay) tapsDay(ctx context.Context, batches []loadtest.TapBatch, kind string) error {
	byOp := map[string][]loadtest.TapBatch{}
	for _, b := range batches {
		byOp[b.Operator] = append(byOp[b.Operator], b)
	}
	start := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, len(byOp))
	total := atomic.Int64{}
	for op, bs := range byOp {
		wg.Go(func() {
			for _, b := range bs {
				n, err := d.upload(ctx, op, b)
				if err != nil {
					errs <- err
					return
				}
				total.Add(int64(n))
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		return err
	}
	took := time.Since(start)
	d.mu.Lock()
	defer d.mu.Unlock()
	d.rep.Events[kind] = int(total.Load())
	d.rep.EventsPerSecond[kind] = float64(total.Load()) / took.Seconds()
	if kind == "taps_http" {
		d.rep.TapsPerSecond = d.rep.EventsPerSecond[kind]
	}
	return nil
}

func (d *cityDay) upload(ctx context.Context, op string, b loadtest.TapBatch) (int, error) {
	parts := make([]string, 0, len(b.Taps)+len(b.Malformed))
	for _, t := range b.Taps {
		raw, err := json.Marshal(tapJSON{DeviceID: t.Device, DeviceSeq: t.Seq, CardToken: t.Card,
			TappedAt: t.At.UTC().Format(time.RFC3339Nano), StationID: t.Station, Line: t.Line, Direction: string(t.Direction), Mode: string(t.Mode)})
		if err != nil {
			return 0, err
		}
		parts = append(parts, string(raw))
	}
	parts = append(parts, b.Malformed...)
	body := []byte(`{"taps":[` + strings.Join(parts, ",") + `]}`)
	var counts struct {
		Counts struct {
			Taps, Accepted, Duplicates, Rejected int
		} `json:"counts"`
		Taps []struct {
			Index          int
			Result, Reason string
			Detail         string
		} `json:"taps"`
	}
	status, got, err := d.call(ctx, "POST", "/v1/transit/batches", d.operatorKeys[op], b.ID, body)
	if err != nil {
		return 0, fmt.Errorf("batch %s: %w", b.ID, err)
	}
	if status != nethttp.StatusCreated || json.Unmarshal(got, &counts) != nil {
		d.unexpected("batch %s: %d %.200s", b.ID, status, got)
		return len(parts), nil
	}
	d.sentTaps.Add(int64(len(parts)))
	c := counts.Counts
	d.observe("tap_duplicates", c.Duplicates)
	d.observe("tap_rejected", c.Rejected)
	if c.Rejected != len(b.Malformed) || c.Accepted+c.Duplicates != len(b.Taps) {
		first := ""
		for _, t := range counts.Taps {
			if t.Result == "rejected" && t.Index < len(b.Taps) {
				first = fmt.Sprintf("; tap %d %s: %s", t.Index, t.Reason, t.Detail)
				break
			}
		}
		d.unexpected("batch %s: %d taps, %d malformed: answered %+v%s", b.ID, len(b.Taps), len(b.Malformed), c, first)
	}
	if b.Resend {
		again, got2, err := d.call(ctx, "POST", "/v1/transit/batches", d.operatorKeys[op], b.ID, body)
		if err != nil {
			return 0, fmt.Errorf("batch %s again: %w", b.ID, err)
		}
		d.observe("tap_batches_resent", 1)
		if again != nethttp.StatusOK || !bytes.Equal(got, got2) {
			d.unexpected("batch %s sent again: %d, the answer differs %v", b.ID, again, !bytes.Equal(got, got2))
		}
	}
	return len(parts), nil
}

// authorizations drives the authorizations over HTTP from concurrent clients: each authorized
// (some twice with their key, a few broken), then captured, voided or left alone.
func (d *cityDay) authorizations(ctx context.Context) error {
	p := d.plan
	start := time.Now()
	var wg sync.WaitGroup
	var ops atomic.Int64
	for c := range d.clients {
		wg.Go(func() {
			var lat []time.Duration
			defer func() {
				d.mu.Lock()
				d.authLatency = append(d.authLatency, lat...)
				d.mu.Unlock()
			}()
			if c == 0 {
				for i := range p.AuthMalformed {
					a := p.Auths[i]
					key := a.Key
					key[15] ^= 0xff // a key of its own
					body := fmt.Sprintf(`{"card_token":%q,"amount":"1.234","currency":"CNY"}`, a.Card)
					status, got, err := d.call(ctx, "POST", "/v1/authorizations", d.merchantKeys[a.Merchant], key.String(), []byte(body))
					// An amount of three decimals is declined, invalid_amount, and holds nothing.
					if err != nil || status != nethttp.StatusCreated || !bytes.Contains(got, []byte(`"decline_reason":"invalid_amount"`)) {
						d.unexpected("malformed authorization: %d %v %.200s", status, err, got)
					}
					d.observe("authorizations_declined_invalid", 1)
				}
			}
			for i := c; i < len(p.Auths); i += d.clients {
				if ctx.Err() != nil {
					return
				}
				a := &p.Auths[i]
				key := d.merchantKeys[a.Merchant]
				body := fmt.Sprintf(`{"card_token":%q,"amount":%q,"currency":"CNY"}`, a.Card, ledger.FormatDecimal(a.Amount, "CNY"))
				sent := time.Now()
				status, got, err := d.call(ctx, "POST", "/v1/authorizations", key, a.Key.String(), []byte(body))
				lat = append(lat, time.Since(sent))
				ops.Add(1)
				var v struct {
					ID       string `json:"id"`
					Decision string `json:"decision"`
				}
				if err != nil || status != nethttp.StatusCreated || json.Unmarshal(got, &v) != nil || v.Decision != "approved" {
					d.unexpected("authorization %d: %d %v %.200s", i, status, err, got)
					continue
				}
				d.sentAuths.Add(1)
				if a.Replay {
					status2, got2, err := d.call(ctx, "POST", "/v1/authorizations", key, a.Key.String(), []byte(body))
					ops.Add(1)
					var v2 struct {
						ID string `json:"id"`
					}
					if err != nil || status2 >= 300 || json.Unmarshal(got2, &v2) != nil || v2.ID != v.ID {
						d.unexpected("authorization %d replayed: %d %v %.200s", i, status2, err, got2)
					}
					d.observe("authorization_replays", 1)
				}
				var path, closeBody string
				switch a.Outcome {
				case loadtest.AuthCaptureFull:
					path, closeBody = "/capture", `{}`
				case loadtest.AuthCapturePartial:
					path, closeBody = "/capture", fmt.Sprintf(`{"amount":%q}`, ledger.FormatDecimal(a.Captured(), "CNY"))
				case loadtest.AuthVoid:
					path, closeBody = "/void", `{}`
				default:
					continue
				}
				status, got, err = d.call(ctx, "POST", "/v1/authorizations/"+v.ID+path, key, a.CloseKey.String(), []byte(closeBody))
				ops.Add(1)
				if err != nil || status != nethttp.StatusCreated {
					d.unexpected("authorization %d %s: %d %v %.200s", i, path, status, err, got)
				}
			}
		})
	}
	wg.Wait()
	took := time.Since(start)
	d.mu.Lock()
	defer d.mu.Unlock()
	d.rep.Events["authorizations"] = len(p.Auths)
	d.rep.Events["authorization_requests"] = int(ops.Load())
	d.rep.EventsPerSecond["authorization_requests"] = float64(ops.Load()) / took.Seconds()
	for _, a := range p.Auths {
		switch a.Outcome {
		case loadtest.AuthCaptureFull, loadtest.AuthCapturePartial:
			d.rep.Events["captures"]++
		case loadtest.AuthVoid:
			d.rep.Events["voids"]++
		}
	}
	slices.Sort(d.authLatency)
	if n := len(d.authLatency); n > 0 {
		ms := func(x time.Duration) float64 { return float64(x.Microseconds()) / 1000 }
		d.rep.AuthP50Millis, d.rep.AuthP99Millis = ms(d.authLatency[n/2]), ms(d.authLatency[min(n-1, n*99/100)])
	}
	return nil
}

type billItemJSON struct {
	Code      string `json:"code"`
	Quantity  int64  `json:"quantity"`
	UnitPrice string `json:"unit_price"`
}

// medicalClients is how many institutions' systems send bills at once.
const medicalClients = 2

// medical settles the day's bills at the institutions, some sent twice and a few broken.
func (d *cityDay) medical(ctx context.Context) error {
	p := d.plan
	start := time.Now()
	var wg sync.WaitGroup
	for c := range medicalClients {
		wg.Go(func() {
			if c == 0 {
				for i := range p.BillMalformed {
					b := p.Bills[i]
					body := fmt.Sprintf(`{"settlement_id":"%s-X","card_token":%q,"visit_kind":%q,"items":[{"code":"X","quantity":0,"unit_price":"1.00"}]}`,
						b.ID, b.Card, b.VisitKind)
					status, got, err := d.call(ctx, "POST", "/v1/medical/settlements", d.institutionKeys[b.Institution], "", []byte(body))
					if err != nil || status != nethttp.StatusBadRequest {
						d.unexpected("malformed bill: %d %v %.200s", status, err, got)
					}
					d.observe("medical_refused_400", 1)
				}
			}
			for i := c; i < len(p.Bills); i += medicalClients {
				if ctx.Err() != nil {
					return
				}
				b := &p.Bills[i]
				items := make([]billItemJSON, len(b.Lines))
				for k, l := range b.Lines {
					items[k] = billItemJSON{Code: l.Code, Quantity: l.Quantity, UnitPrice: ledger.FormatDecimal(l.UnitPrice, "CNY")}
				}
				body, err := json.Marshal(map[string]any{"settlement_id": b.ID, "card_token": b.Card, "visit_kind": b.VisitKind, "items": items})
				if err != nil {
					d.unexpected("bill %s: %v", b.ID, err)
					continue
				}
				key := d.institutionKeys[b.Institution]
				status, got, err := d.call(ctx, "POST", "/v1/medical/settlements", key, "", body)
				split, perr := parseSplit(got)
				if err != nil || status != nethttp.StatusCreated || perr != nil {
					d.unexpected("bill %s: %d %v %v %.300s", b.ID, status, err, perr, got)
					continue
				}
				d.billed.Add(1)
				d.mu.Lock()
				d.splits[b.ID] = split
				d.mu.Unlock()
				if b.Replay {
					status2, got2, err := d.call(ctx, "POST", "/v1/medical/settlements", key, "", body)
					if err != nil || status2 != nethttp.StatusOK || !bytes.Equal(got, got2) {
						d.unexpected("bill %s sent again: %d %v", b.ID, status2, err)
					}
					d.observe("medical_replays", 1)
				}
			}
		})
	}
	wg.Wait()
	took := time.Since(start)
	d.mu.Lock()
	defer d.mu.Unlock()
	d.rep.Events["medical_settlements"] = len(p.Bills)
	d.rep.EventsPerSecond["medical_settlements"] = float64(len(p.Bills)) / took.Seconds()
	return nil
}

func parseSplit(receipt []byte) (loadtest.MedicalSplit, error) {
	var v struct {
		Split struct {
			Fund            string `json:"fund"`
			PersonalAccount string `json:"personal_account"`
			Cash            string `json:"cash"`
		} `json:"split"`
	}
	var s loadtest.MedicalSplit
	if err := json.Unmarshal(receipt, &v); err != nil {
		return s, err
	}
	var err error
	for _, f := range []struct {
		in  string
		out *int64
	}{{v.Split.Fund, &s.Fund}, {v.Split.PersonalAccount, &s.Personal}, {v.Split.Cash, &s.Cash}} {
		if *f.out, err = ledger.ParseAmount(f.in, "CNY"); err != nil {
			return s, fmt.Errorf("split: %w", err)
		}
	}
	return s, nil
}

// compareWorkers is how many connections read the balances the model expects at once.
const compareWorkers = 4

// compare checks the ledger against the model: the transfers by kind, every account the day
// moved, then the whole ledger's own invariants.
func (d *cityDay) compare(ctx context.Context, tables *transit.Tables) error {
	x, err := d.plan.Model(tables, d.splits)
	if err != nil {
		return err
	}
	r := &d.rep
	r.Events["taps_planned"] = 0
	for _, j := range d.plan.Journeys {
		if j.Single {
			r.Events["taps_planned"]++
		} else {
			r.Events["taps_planned"] += 2
		}
	}
	r.Events["journeys"] = len(d.plan.Journeys)
	actual := map[loadtest.TransferKind]int{}
	rows, err := d.st.Pool().Query(ctx, `SELECT code, flags, count(*) FROM transfers GROUP BY code, flags`)
	if err != nil {
		return fmt.Errorf("count transfers: %w", err)
	}
	for rows.Next() {
		var code, flags int32
		var n int
		if err := rows.Scan(&code, &flags, &n); err != nil {
			rows.Close()
			return fmt.Errorf("count transfers: %w", err)
		}
		actual[loadtest.KindOf(ledger.Code(code), ledger.TransferFlags(flags))] += n
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("count transfers: %w", err)
	}
	kinds := map[loadtest.TransferKind]bool{}
	for k := range x.Transfers {
		kinds[k] = true
	}
	for k := range actual {
		kinds[k] = true
	}
	for k := range kinds {
		want, got := x.Transfers[k], actual[k]
		r.Transfers[string(k)] = [2]int{want, got}
		switch {
		case got < want:
			r.Lost += want - got
			r.problem("transfers of kind %s: %d expected, %d in the ledger", k, want, got)
		case got > want:
			r.AppliedTwice += got - want
			r.problem("transfers of kind %s: %d expected, %d in the ledger", k, want, got)
		}
	}

	keys := make([]string, 0, len(x.Balances))
	for k := range x.Balances {
		keys = append(keys, k)
	}
	// Every card's accounts, even those the model expects back at zero.
	for _, card := range d.plan.City.Cards {
		if _, ok := x.Balances[card]; !ok {
			keys = append(keys, card)
		}
	}
	slices.Sort(keys)
	r.AccountsChecked = len(keys)
	var wg sync.WaitGroup
	var failed atomic.Value
	for w := range compareWorkers {
		wg.Go(func() {
			for i := w; i < len(keys); i += compareWorkers {
				k := keys[i]
				b, err := d.st.Balance(ctx, loadtest.AccountOf(k))
				var net int64
				switch {
				case errors.Is(err, postgres.ErrNotFound):
				case err != nil:
					failed.Store(err)
					return
				default:
					net = b.Net()
					if b.DebitsPending != 0 || b.CreditsPending != 0 {
						d.mu.Lock()
						r.problem("account %s still holds %d/%d pending", k, b.DebitsPending, b.CreditsPending)
						d.mu.Unlock()
					}
				}
				if want := x.Balances[k]; net != want {
					d.mu.Lock()
					r.Mismatched++
					r.problem("account %s: the model expects %s, the ledger holds %s", k,
						ledger.FormatAmount(want, "CNY"), ledger.FormatAmount(net, "CNY"))
					d.mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	if err, ok := failed.Load().(error); ok {
		return err
	}
	r.Observed["card_days_expected"], r.Observed["card_days_adjusted_expected"] = x.CardDays, x.Adjusted
	v, err := d.st.Verify(ctx)
	if err != nil {
		return err
	}
	r.Verified = v.OK()
	for _, pr := range v.Problems {
		r.problem("verify: %s", pr)
	}
	return nil
}
