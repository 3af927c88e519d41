package consumer_test

import (
	"context"
	"log/slog"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/joinincard/engine/consumer"
	"github.com/joinincard/engine/events"
	"github.com/joinincard/engine/internal/pgtest"
	"github.com/joinincard/engine/loadtest"
	"github.com/joinincard/engine/postgres"
)

const (
	// faultCards and faultPurchases size a database fault test's city: enough batches that the
	// faults land in many of them, small enough for a few seconds' run.
	faultCards     = 1000
	faultPurchases = 24000
	// faultRounds is how many faults a test injects, one per slice of the events.
	faultRounds = 8
)

// faultCity registers a city's parties in st and returns its events: registrations, funding,
// purchases and refunds of some of them.
func faultCity(t *testing.T, st *postgres.Store, seed uint64) (*loadtest.City, []events.Event) {
	t.Helper()
	city := loadtest.NewCity(seed, faultCards, 20, cityStart)
	registerParties(t, st, city)
	var evs []events.Event
	evs = append(append(evs, city.Registrations()...), city.Funding(100000, 500000)...)
	buys := city.Purchases(faultPurchases, 2000)
	evs = append(evs, buys...)
	for i := 0; i < 200; i++ {
		b := buys[i*11]
		evs = append(evs, city.Refund(b, min(1+int64(i%40), b.Data.(*events.PurchaseCleared).Amount.Minor)))
	}
	return city, evs
}

// consumeThroughFaults runs a consumer on st over evs while fault injects one fault at a time,
// faultRounds times at random moments, and then checks that every event was applied exactly
// once, every balance is what the events say, and the ledger verifies. The consumer must carry
// on by itself: it is never restarted.
func consumeThroughFaults(t *testing.T, st, check *postgres.Store, city *loadtest.City, evs []events.Event, fault func(round int)) (logged string) {
	t.Helper()
	logs := &syncBuilder{}
	ctx := context.Background()
	brokers := startBroker(t)
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan error, 1)
	cons := consumer.New(consumer.Config{Brokers: brokers, Topic: topic, GroupID: "faults",
		Log: slog.New(slog.NewTextHandler(testWriter{t, logs}, &slog.HandlerOptions{Level: slog.LevelWarn}))}, st)
	go func() { done <- cons.Run(cctx) }()

	// Produced in slices, one fault at a random moment of each: while its batches are under
	// way, or on the idle pool once they are in. Each slice is consumed before the next, so
	// every fault is recovered from on its own, within the bounded retries.
	msgs := keyed(evs...)
	rng := rand.New(rand.NewPCG(21, 22))
	for round := 1; len(msgs) > 0; round++ {
		n := min((len(evs)+faultRounds-1)/faultRounds, len(msgs))
		produce(t, brokers, msgs[:n]...)
		msgs = msgs[n:]
		time.Sleep(time.Duration(rng.IntN(120)) * time.Millisecond)
		fault(round)
		waitCaughtUp(t, check, brokers)
		select {
		case err := <-done:
			t.Fatalf("the consumer stopped at a database fault: %v", err)
		default:
		}
	}
	waitCaughtUp(t, check, brokers)
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}

	var processed, transfers, rejected int64
	if err := check.Pool().QueryRow(ctx, `SELECT (SELECT count(*) FROM processed_events), (SELECT count(*) FROM transfers),
		(SELECT count(*) FROM processed_events WHERE status = 'rejected')`).Scan(&processed, &transfers, &rejected); err != nil {
		t.Fatal(err)
	}
	if processed != int64(len(evs)) || rejected != 0 {
		t.Fatalf("%d events processed (%d rejected), %d produced", processed, rejected, len(evs))
	}
	if money := int64(len(evs) - faultCards); transfers != money { // all but the registrations move money
		t.Fatalf("%d transfers for %d money events", transfers, money)
	}
	checkBalances(t, check, city.Expected(evs))
	rep, err := check.Verify(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !rep.OK() {
		t.Fatalf("ledger failed verification:\n%s", rep.String())
	}
	return logs.String()
}

// The database drops every connection of the engine at random moments while events flow, as an
// administrator's pg_terminate_backend or a restarted server does: transactions fail midway, at
// any statement.
func TestDroppedDatabaseConnectionsApplyEveryEventOnce(t *testing.T) {
	url := pgtest.NewDatabase(t)
	ctx := context.Background()
	// The engine's connections carry a name of their own, so that the faults spare the test's.
	st, check := pgtest.Open(t, url+"&application_name=faulted-engine"), pgtest.Open(t, url)
	city, evs := faultCity(t, check, 9)
	consumeThroughFaults(t, st, check, city, evs, func(round int) {
		var killed int
		if err := check.Pool().QueryRow(ctx, `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
			WHERE datname = current_database() AND application_name = 'faulted-engine'`).Scan(&killed); err != nil {
			t.Fatal(err)
		}
		t.Logf("fault %d: %d connections terminated", round, killed)
	})
}

// The answer to COMMIT is lost: the server commits a batch, its cursors with it, and the engine
// sees its connection cut instead of the answer, not knowing whether the batch landed. Doing it
// again must neither apply the batch twice nor skip it.
func TestLostCommitAnswersApplyEveryEventOnce(t *testing.T) {
	url := pgtest.NewDatabase(t)
	proxy := pgtest.StartProxy(t, url)
	st, check := proxy.Open(t, url), pgtest.Open(t, url)
	city, evs := faultCity(t, check, 10)
	logged := consumeThroughFaults(t, st, check, city, evs, func(int) { proxy.LoseCommits(1) })
	if proxy.Lost() == 0 {
		t.Fatal("no COMMIT answer was lost: the test tested nothing")
	}
	found := strings.Count(logged, "batch found committed")
	t.Logf("%d COMMIT answers lost, %d batches found committed when tried again", proxy.Lost(), found)
	if found == 0 {
		t.Error("no batch was found committed after its COMMIT's answer was lost")
	}
	// Nobody else consumes: a partition that stops for another consumer's sake waits for a
	// rebalance that nothing asks for.
	if strings.Contains(logged, "taken over") {
		t.Errorf("the consumer took its own lost COMMIT for another consumer's work:\n%s", logged)
	}
}

// testWriter sends a logger's lines to the test's log, and keeps them.
type testWriter struct {
	t    *testing.T
	kept *syncBuilder
}

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(string(p))
	return w.kept.Write(p)
}
