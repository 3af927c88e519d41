package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	mrand "math/rand/v2"
	nethttp "net/http"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	kafkago "github.com/segmentio/kafka-go"

	"github.com/joinincard/engine/consumer"
	"github.com/joinincard/engine/events"
	joininhttp "github.com/joinincard/engine/http"
	"github.com/joinincard/engine/kafka"
	"github.com/joinincard/engine/loadtest"
	"github.com/joinincard/engine/postgres"
	"github.com/joinincard/engine/transit"
)

const (
	// loadTapsOperator is the operator of the taps run: Hangzhou's metro, priced by distance, so
	// that every tap is one of a journey's two.
	loadTapsOperator = "HZMETRO"
	// loadTapsJourneyGap separates a card's journeys of a day.
	loadTapsJourneyGap = 2 * time.Hour
)

// loadTapsStations are stations of Hangzhou's metro in the shipped fare table.
var loadTapsStations = []string{"0101", "0103", "0105", "0106", "0108", "0110", "0111", "0113", "0116", "0118", "0122",
	"0201", "0203", "0205", "0207", "0210", "0213", "0216", "0401", "0403", "0405"}

// tapsReport is what a taps run prints, as JSON: the same day's worth of taps through each door.
type tapsReport struct {
	Cards       int `json:"cards"`
	TapsPerDoor int `json:"taps_per_door"`
	// HTTP: batches of postgres.MaxTransitBatchTaps uploaded by HTTPClients clients, from the
	// first request to the last answer (the bodies encoded before).
	HTTPClients       int     `json:"http_clients"`
	HTTPSeconds       float64 `json:"http_seconds"`
	HTTPTapsPerSecond float64 `json:"http_taps_per_second"`
	// Kafka: transit.tap events, produced before (ProduceSeconds), then consumed from the
	// consumer's start until every tap is decided: caught up, and the inbox drained when the
	// taps go through it (KafkaIntake "inbox").
	KafkaIntake        string  `json:"kafka_intake"`
	KafkaProduceSecs   float64 `json:"kafka_produce_seconds"`
	KafkaConsumeSecs   float64 `json:"kafka_consume_seconds"`
	KafkaDrainSecs     float64 `json:"kafka_drain_seconds"`
	KafkaSeconds       float64 `json:"kafka_seconds"`
	KafkaTapsPerSecond float64 `json:"kafka_taps_per_second"`
	// KafkaToHTTP is the Kafka door's taps/s over the HTTP door's.
	KafkaToHTTP float64 `json:"kafka_to_http"`
	// Accepted counts the taps each door accepted: all of them, or the run fails.
	HTTPAccepted  int `json:"http_accepted"`
	KafkaAccepted int `json:"kafka_accepted"`
}

func runLoadTaps(ctx context.Context, args []string, stdout io.Writer) error {
	fs, c := newFlagSet("loadtest-taps", "upload a day of metro taps in batches over HTTP and send another as transit.tap events over Kafka, in a database of its own; print each door's taps/s as JSON")
	ef := addEngineFlags(fs)
	nCards := fs.Int("cards", 100_000, "cardholders, each tapping in and out of the metro --journeys times on each door's day")
	journeys := fs.Int("journeys", 5, "journeys of each card on each door's day")
	clients := fs.Int("http-clients", 1, "concurrent HTTP clients uploading the batches")
	intake := fs.String("kafka-intake", "consumer",
		"consumer: taps decided in the consumer's transactions, as serve runs; inbox: the consumer writes them to the inbox, drained after")
	seed := fs.Uint64("seed", 20260615, "seed of the taps")
	keep := fs.Bool("keep", false, "keep the database the run creates")
	cpuProfile := fs.String("cpuprofile", "",
		"write CPU profiles of the measured phases to this file's name with .http and .kafka appended (server and consumer in this process)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("loadtest-taps takes no arguments, got %q", fs.Args())
	}
	if *nCards < 1 || *journeys < 1 || *clients < 1 {
		return errors.New("--cards, --journeys and --http-clients at least 1")
	}
	if *intake != "consumer" && *intake != "inbox" {
		return fmt.Errorf("--kafka-intake: %q is neither consumer nor inbox", *intake)
	}
	log, err := c.logger()
	if err != nil {
		return err
	}
	if err := ef.check(); err != nil {
		return err
	}
	st, _, closeStore, err := openLoadStore(ctx, c.databaseURL, "taps", *keep, log)
	if err != nil {
		return err
	}
	defer closeStore()
	quiet := slog.New(slog.DiscardHandler)
	tok, err := ef.tokenizer(quiet)
	if err != nil {
		return err
	}
	st.Tokenizer = tok
	tr, err := (&tariffFlags{}).load(ctx, st, quiet)
	if err != nil {
		return err
	}
	if *intake == "consumer" {
		st.TransitFares = tr.Fares
	}
	op, ok := tr.Fares().Operator(loadTapsOperator)
	if !ok {
		return fmt.Errorf("no fare table of %s", loadTapsOperator)
	}
	// Two travel days: the first's taps come over HTTP, the second's over Kafka; both are
	// decided late on the second, before either closes.
	g := op.Group()
	httpDay := transit.DayOf(2026, time.June, 15)
	kafkaDay := httpDay + 1
	clock := &demoClock{}
	clock.Set(g.DayStart(httpDay).Add(-time.Hour))
	st.Now = clock.Now

	city := loadtest.NewCity(*seed, *nCards, 1, clock.Now())
	for _, p := range city.Parties() {
		if _, err := st.RegisterParty(ctx, p.Kind, p.ID, p.Name); err != nil {
			return err
		}
	}
	ef.topic = fmt.Sprintf("%s-taps-%x", ef.topic, *seed&0xffffff)
	brokers, stopBroker, err := ef.connect(ctx, log)
	if err != nil {
		return err
	}
	defer stopBroker()
	consume := func() (stop func() error, consumed chan error) {
		cctx, cancel := context.WithCancel(ctx)
		cons := consumer.New(consumer.Config{Brokers: brokers, Topic: ef.topic, GroupID: ef.group + "-taps", Log: log, Now: st.Now, Committers: ef.committers}, st)
		consumed = make(chan error, 1)
		go func() { consumed <- cons.Run(cctx) }()
		return func() error {
			cancel()
			if err := <-consumed; err != nil && !errors.Is(err, context.Canceled) {
				return err
			}
			return nil
		}, consumed
	}
	waiter := &demo{st: st}

	// The cards, registered and funded through Kafka before anything is measured.
	log.Info("registering cards", "cards", *nCards)
	var setup []kafkago.Message
	for _, e := range append(city.Registrations(), city.Funding(1_000_000, 5_000_000)...) {
		setup = append(setup, kafkago.Message{Key: []byte(e.CardToken), Value: loadtest.Encode(e)})
	}
	if err := produceAll(ctx, brokers, ef.topic, setup); err != nil {
		return err
	}
	setup = nil
	stop, consumed := consume()
	if err := waiter.waitCaughtUp(ctx, brokers, ef.topic, consumed, loadCatchUpTimeout); err != nil {
		return err
	}
	if err := stop(); err != nil {
		return err
	}
	// An operator key as the API issues them: "tk_" and 32 random bytes.
	var secret [32]byte
	if _, err := rand.Read(secret[:]); err != nil {
		return err
	}
	key := "tk_" + base64.RawURLEncoding.EncodeToString(secret[:])
	if _, err := st.CreateTransitOperator(ctx, op.ID, op.Name, sha256.Sum256([]byte(key))); err != nil {
		return err
	}
	clock.Set(g.DayStart(kafkaDay).Add(22 * time.Hour))
	rep := tapsReport{Cards: *nCards, HTTPClients: *clients, KafkaIntake: *intake}
	rng := mrand.New(mrand.NewPCG(*seed, 1))

	// HTTP: every batch's body encoded first.
	httpTaps := loadTapsDay(rng, op, city.Cards, httpDay, *journeys, "gate-h")
	rep.TapsPerDoor = len(httpTaps)
	var bodies [][]byte
	for start := 0; start < len(httpTaps); start += postgres.MaxTransitBatchTaps {
		parts := make([]string, 0, postgres.MaxTransitBatchTaps)
		for _, t := range httpTaps[start:min(start+postgres.MaxTransitBatchTaps, len(httpTaps))] {
			raw, err := json.Marshal(tapJSON{DeviceID: t.DeviceID, DeviceSeq: t.DeviceSeq, CardToken: t.card,
				TappedAt: t.TappedAt.Format(time.RFC3339Nano), StationID: t.StationID, Direction: string(t.Direction), Mode: string(t.Mode)})
			if err != nil {
				return err
			}
			parts = append(parts, string(raw))
		}
		bodies = append(bodies, []byte(`{"taps":[`+strings.Join(parts, ",")+`]}`))
	}
	httpTaps = nil
	reg := prometheus.NewRegistry()
	srv, err := startHTTP(ctx, httpConfig{addr: "127.0.0.1:0", store: st, brokers: brokers, topic: ef.topic, tokenizer: tok,
		metrics: reg, log: quiet, features: []joininhttp.Feature{joininhttp.NewTransitLive(st, tr.Fares)}})
	if err != nil {
		return err
	}
	defer srv.stop()
	client := &nethttp.Client{Timeout: loadClientTimeout, Transport: &nethttp.Transport{MaxIdleConnsPerHost: *clients,
		DisableCompression: true}}
	log.Info("uploading taps over HTTP", "taps", rep.TapsPerDoor, "batches", len(bodies))
	stopProfile, err := startCPUProfile(profilePath(*cpuProfile, "http"))
	if err != nil {
		return err
	}
	start := time.Now()
	accepted, err := uploadTapBatches(ctx, client, "http://"+srv.addr, key, bodies, *clients)
	stopProfile()
	if err != nil {
		return err
	}
	rep.HTTPSeconds = time.Since(start).Seconds()
	rep.HTTPAccepted = accepted
	bodies = nil

	// Kafka: every event encoded and produced first.
	kafkaTaps := loadTapsDay(rng, op, city.Cards, kafkaDay, *journeys, "gate-k")
	msgs := make([]kafkago.Message, len(kafkaTaps))
	for i := range kafkaTaps {
		t := &kafkaTaps[i]
		var id uuid.UUID
		for j := range id {
			id[j] = byte(rng.Uint32())
		}
		e := events.Event{ID: id, Type: events.TypeTransitTap, OccurredAt: t.TappedAt, CardToken: t.card, Data: &t.TransitTap}
		msgs[i] = kafkago.Message{Key: []byte(t.card), Value: loadtest.Encode(e)}
	}
	kafkaTaps = nil
	log.Info("producing taps to Kafka", "taps", len(msgs))
	start = time.Now()
	if err := produceAll(ctx, brokers, ef.topic, msgs); err != nil {
		return err
	}
	rep.KafkaProduceSecs = time.Since(start).Seconds()
	nKafka := len(msgs)
	msgs = nil
	log.Info("consuming taps", "intake", *intake)
	stopProfile, err = startCPUProfile(profilePath(*cpuProfile, "kafka"))
	if err != nil {
		return err
	}
	defer stopProfile()
	start = time.Now()
	stop, consumed = consume()
	if err := waiter.waitCaughtUp(ctx, brokers, ef.topic, consumed, loadCatchUpTimeout); err != nil {
		return err
	}
	rep.KafkaConsumeSecs = time.Since(start).Seconds()
	if err := stop(); err != nil {
		return err
	}
	drainStart := time.Now()
	for {
		n, err := st.DrainTransitTaps(ctx, tr.Fares())
		if err != nil {
			return err
		}
		if n == 0 {
			break
		}
	}
	rep.KafkaDrainSecs = time.Since(drainStart).Seconds()
	rep.KafkaSeconds = time.Since(start).Seconds()
	stopProfile()
	if err := st.Pool().QueryRow(ctx, `SELECT count(*) FROM transit_taps WHERE source = 'kafka'`).Scan(&rep.KafkaAccepted); err != nil {
		return err
	}
	rep.HTTPTapsPerSecond = float64(rep.TapsPerDoor) / rep.HTTPSeconds
	rep.KafkaTapsPerSecond = float64(nKafka) / rep.KafkaSeconds
	rep.KafkaToHTTP = rep.KafkaTapsPerSecond / rep.HTTPTapsPerSecond
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	if err := enc.Encode(rep); err != nil {
		return err
	}
	if rep.HTTPAccepted != rep.TapsPerDoor || rep.KafkaAccepted != nKafka {
		return fmt.Errorf("taps refused: HTTP accepted %d of %d, Kafka %d of %d", rep.HTTPAccepted, rep.TapsPerDoor, rep.KafkaAccepted, nKafka)
	}
	return nil
}

// profilePath is the file of one door's profile: none when base is empty.
func profilePath(base, door string) string {
	if base == "" {
		return ""
	}
	return base + "." + door
}

// loadTap is a generated tap with its card.
type loadTap struct {
	events.TransitTap
	card string
}

// loadTapsDay draws each card's day at the operator: journeys between random stations, two hours
// apart, the cards' first taps spread over the morning. Each device numbers its taps.
func loadTapsDay(rng *mrand.Rand, op *transit.Operator, cards []string, day transit.Day, journeys int, device string) []loadTap {
	out := make([]loadTap, 0, len(cards)*journeys*2)
	seqs := map[string]uint64{}
	for c, card := range cards {
		at := op.Group().DayStart(day).Add(time.Duration(c%600) * time.Minute)
		for range journeys {
			exit := at.Add(time.Duration(10+rng.IntN(50)) * time.Minute)
			for _, leg := range []struct {
				dir events.Direction
				at  time.Time
			}{{events.DirectionIn, at}, {events.DirectionOut, exit}} {
				station := loadTapsStations[rng.IntN(len(loadTapsStations))]
				dev := device + "-" + station
				seqs[dev]++
				out = append(out, loadTap{card: card, TransitTap: events.TransitTap{OperatorID: op.ID, DeviceID: dev, DeviceSeq: seqs[dev],
					TappedAt: leg.at.UTC(), StationID: station, Direction: leg.dir, Mode: events.ModeMetro}})
			}
			at = at.Add(loadTapsJourneyGap)
		}
	}
	return out
}

// produceAll produces msgs in chunks.
func produceAll(ctx context.Context, brokers []string, topic string, msgs []kafkago.Message) error {
	const chunk = 5000 // messages per produce call
	p := kafka.NewProducer(brokers, topic)
	for len(msgs) > 0 {
		n := min(chunk, len(msgs))
		if err := p.Produce(ctx, msgs[:n]...); err != nil {
			p.Close()
			return err
		}
		msgs = msgs[n:]
	}
	return p.Close()
}

// uploadTapBatches posts the batches from clients side by side and returns the taps accepted.
func uploadTapBatches(ctx context.Context, client *nethttp.Client, base, key string, bodies [][]byte, clients int) (int, error) {
	var (
		mu       sync.Mutex
		accepted int
		firstErr error
		wg       sync.WaitGroup
	)
	next := make(chan int)
	for range clients {
		wg.Go(func() {
			for i := range next {
				n, err := uploadTapBatch(ctx, client, base, key, fmt.Sprintf("load-%d", i), bodies[i])
				mu.Lock()
				accepted += n
				if err != nil && firstErr == nil {
					firstErr = err
				}
				mu.Unlock()
			}
		})
	}
	for i := range bodies {
		next <- i
	}
	close(next)
	wg.Wait()
	return accepted, firstErr
}

func uploadTapBatch(ctx context.Context, client *nethttp.Client, base, key, id string, body []byte) (int, error) {
	req, err := nethttp.NewRequestWithContext(ctx, "POST", base+"/v1/transit/batches", bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Idempotency-Key", id)
	resp, err := client.Do(req)
	if err != nil {
		return 0, fmt.Errorf("batch %s: %w", id, err)
	}
	defer resp.Body.Close()
	got, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, fmt.Errorf("batch %s: %w", id, err)
	}
	var answer struct {
		Counts struct{ Accepted int } `json:"counts"`
	}
	if resp.StatusCode != nethttp.StatusCreated || json.Unmarshal(got, &answer) != nil {
		return 0, fmt.Errorf("batch %s: %d %.300s", id, resp.StatusCode, got)
	}
	return answer.Counts.Accepted, nil
}
