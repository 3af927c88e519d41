package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	kafkago "github.com/segmentio/kafka-go"

	"github.com/joinincard/engine/events"
	"github.com/joinincard/engine/internal/pgtest"
	"github.com/joinincard/engine/kafka"
	"github.com/joinincard/engine/ledger"
	"github.com/joinincard/engine/loadtest"
	"github.com/joinincard/engine/postgres"
)

const (
	// scaleTopic and scalePartitions: six partitions share evenly between two and three engines.
	scaleTopic      = "card-events"
	scalePartitions = 6
	scaleGroup      = "scale-out"
	// scaleCards hold the funds every purchase draws on; scalePhase purchases flow per phase, each
	// to the one merchant, so that every batch of every engine credits the same account.
	scaleCards = 1500
	scalePhase = 12000
	// scaleWait bounds each wait of the test: an engine's start, a group's rebalance after a kill
	// (a session timeout of 6 s and a rebalance), catching up.
	scaleWait = 40 * time.Second
	// maxSteadyRetriesPerBatch bounds the conflict retries per batch of engines that share the
	// group without a rebalance or a kill.
	maxSteadyRetriesPerBatch = 0.05
)

// engineProc is a `joinin serve` process of the scale-out test, with its HTTP address.
type engineProc struct {
	name string
	cmd  *exec.Cmd
	http string
	errs *lockedBuffer
	done chan struct{}
	// killed is set once the test killed the process.
	killed bool
}

func freeTCPAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// startJoinin starts this test binary as `joinin args...`, killed when the test ends, and returns
// it once its first line of output (what it listens on) is out.
func startJoinin(t testing.TB, name string, args ...string) *engineProc {
	t.Helper()
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), asJoininEnv+"=1")
	p := &engineProc{name: name, cmd: cmd, errs: &lockedBuffer{}, done: make(chan struct{})}
	cmd.Stderr = p.errs
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := make(chan string, 1)
	go func() {
		r := bufio.NewReader(out)
		line, _ := r.ReadString('\n')
		lines <- line
		_, _ = io.Copy(io.Discard, r)
		_ = cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() { p.kill(t) })
	select {
	case line := <-lines:
		if !strings.Contains(line, "listening") && !strings.Contains(line, "serving") {
			t.Fatalf("%s did not start: %q\n%s", name, line, p.errs.String())
		}
	case <-time.After(scaleWait):
		t.Fatalf("%s did not start in %s:\n%s", name, scaleWait, p.errs.String())
	}
	return p
}

// kill ends the process with SIGKILL, at once, whatever it is doing.
func (p *engineProc) kill(t testing.TB) {
	select {
	case <-p.done:
		return
	default:
	}
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Errorf("kill %s: %v", p.name, err)
	}
	<-p.done
	p.killed = true
}

// exited reports whether the process ended, and why, before the test killed it.
func (p *engineProc) exited() bool {
	select {
	case <-p.done:
		ws, ok := p.cmd.ProcessState.Sys().(syscall.WaitStatus)
		return !ok || !ws.Signaled()
	default:
		return false
	}
}

// batchCounts are an engine's committed batches and the conflict retries they took.
type batchCounts struct{ batches, retries, storeTx, storeRetries, exhausted float64 }

func (b batchCounts) minus(o batchCounts) batchCounts {
	return batchCounts{b.batches - o.batches, b.retries - o.retries, b.storeTx - o.storeTx,
		b.storeRetries - o.storeRetries, b.exhausted - o.exhausted}
}

// counts reads the engine's /metrics.
func (p *engineProc) counts(t testing.TB) batchCounts {
	t.Helper()
	resp, err := http.Get("http://" + p.http + "/metrics")
	if err != nil {
		t.Fatalf("%s /metrics: %v\n%s", p.name, err, p.errs.String())
	}
	defer resp.Body.Close()
	var c batchCounts
	fields := map[string]*float64{
		"joinin_batch_events_count":                        &c.batches,
		"joinin_batch_conflict_retries_total":              &c.retries,
		"joinin_store_transactions_total":                  &c.storeTx,
		"joinin_store_transaction_retries_total":           &c.storeRetries,
		"joinin_store_transaction_retries_exhausted_total": &c.exhausted,
	}
	seen := 0
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		name, value, ok := strings.Cut(sc.Text(), " ")
		if f := fields[name]; ok && f != nil {
			v, err := strconv.ParseFloat(value, 64)
			if err != nil {
				t.Fatalf("%s: %q: %v", p.name, sc.Text(), err)
			}
			*f = v
			seen++
		}
	}
	if seen != len(fields) {
		t.Fatalf("%s /metrics lacks some of %v", p.name, fields)
	}
	return c
}

// cluster is a `joinin broker` process, `joinin serve` processes sharing one consumer group on
// it, and their database, with a city whose every purchase goes to its one merchant.
type cluster struct {
	t        testing.TB
	ctx      context.Context
	url      string
	st       *postgres.Store
	city     *loadtest.City
	broker   string
	producer *kafka.Producer
	all      []events.Event
	trickle  []events.Event
	started  int
	// wait bounds catching up after a phase.
	wait time.Duration
}

func newCluster(t testing.TB, cards int) *cluster {
	ctx := context.Background()
	url := pgtest.NewDatabase(t)
	st, err := postgres.Open(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.Close)
	c := &cluster{t: t, ctx: ctx, url: url, st: st, city: loadtest.NewCity(21, cards, 1, time.Now().Add(-time.Hour)), wait: scaleWait}
	for _, p := range c.city.Parties() {
		if _, err := st.RegisterParty(ctx, p.Kind, p.ID, p.Name); err != nil {
			t.Fatal(err)
		}
	}
	c.broker = freeTCPAddr(t)
	startJoinin(t, "broker", "broker", "--addr", c.broker, "--partitions", strconv.Itoa(scalePartitions), "--log-level", "warn")
	c.producer = kafka.NewProducer([]string{c.broker}, scaleTopic)
	t.Cleanup(func() { _ = c.producer.Close() })
	// The cards first, with their funds.
	c.send(c.city.Registrations())
	c.send(c.city.Funding(100000, 200000))
	return c
}

// send produces evs, each keyed by its card.
func (c *cluster) send(evs []events.Event) {
	c.t.Helper()
	msgs := make([]kafkago.Message, len(evs))
	for i, e := range evs {
		msgs[i] = kafkago.Message{Key: []byte(e.CardToken), Value: loadtest.Encode(e)}
	}
	for len(msgs) > 0 {
		n := min(1000, len(msgs))
		if err := c.producer.Produce(c.ctx, msgs[:n]...); err != nil {
			c.t.Fatal(err)
		}
		msgs = msgs[n:]
	}
	c.all = append(c.all, evs...)
}

// start starts one more engine.
func (c *cluster) start() *engineProc {
	c.started++
	addr := freeTCPAddr(c.t)
	p := startJoinin(c.t, fmt.Sprintf("engine-%d", c.started), "serve", "--database-url", c.url, "--kafka-brokers", c.broker,
		"--group", scaleGroup, "--partitions", strconv.Itoa(scalePartitions), "--http-addr", addr, "--settle-grace", "0",
		"--log-level", "warn")
	p.http = addr
	return p
}

// caughtUp waits until every partition's cursor is at the broker's end.
func (c *cluster) caughtUp(engines []*engineProc) {
	c.t.Helper()
	deadline := time.Now().Add(c.wait)
	for {
		for _, e := range engines {
			if e.exited() {
				c.t.Fatalf("%s ended by itself:\n%s", e.name, e.errs.String())
			}
		}
		marks, err := kafka.HighWatermarks(c.ctx, []string{c.broker}, scaleTopic)
		if err == nil {
			behind := int64(0)
			for p, hw := range marks {
				pos, err := c.st.Cursor(c.ctx, fmt.Sprintf("%s/%d", scaleTopic, p))
				if err != nil {
					c.t.Fatal(err)
				}
				behind += hw - pos
			}
			if behind == 0 {
				return
			}
			if time.Now().After(deadline) {
				c.t.Fatalf("engines still %d events behind after %s", behind, c.wait)
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// working waits until every engine has committed a batch since before: each holds partitions.
// A trickle of one-fen loads keeps events coming meanwhile.
func (c *cluster) working(engines []*engineProc, before map[*engineProc]batchCounts) {
	c.t.Helper()
	deadline := time.Now().Add(scaleWait)
	for {
		idle := 0
		for _, e := range engines {
			if e.counts(c.t).batches <= before[e].batches {
				idle++
			}
		}
		if idle == 0 {
			return
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("%d engines committed nothing in %s", idle, scaleWait)
		}
		if len(c.trickle) < 60 {
			c.trickle = c.city.Funding(1, 1)
		}
		c.send(c.trickle[:60])
		c.trickle = c.trickle[60:]
		time.Sleep(100 * time.Millisecond)
	}
}

func (c *cluster) snapshot(engines []*engineProc) map[*engineProc]batchCounts {
	out := map[*engineProc]batchCounts{}
	for _, e := range engines {
		out[e] = e.counts(c.t)
	}
	return out
}

// phaseResult is what one phase of purchases cost the engines.
type phaseResult struct {
	batchCounts
	events   int
	took     time.Duration
	perStore string
}

func (r phaseResult) eventsPerSecond() float64 { return float64(r.events) / r.took.Seconds() }
func (r phaseResult) retriesPerBatch() float64 { return r.retries / max(r.batches, 1) }

// phase sends n purchases at the one merchant to the engines (during runs halfway) and sums, over
// the engines still alive at the end, the batches they committed and the retries those took.
func (c *cluster) phase(n int, engines []*engineProc, during func()) phaseResult {
	c.t.Helper()
	before := c.snapshot(engines)
	began := time.Now()
	buys := c.city.Purchases(n, 500)
	c.send(buys[:len(buys)/2])
	if during != nil {
		during()
	}
	c.send(buys[len(buys)/2:])
	live := engines[:0:0]
	for _, e := range engines {
		if !e.killed {
			live = append(live, e)
		}
	}
	c.caughtUp(live)
	r := phaseResult{events: len(buys), took: time.Since(began)}
	var parts []string
	for _, e := range live {
		d := e.counts(c.t).minus(before[e])
		r.batches += d.batches
		r.retries += d.retries
		r.exhausted += d.exhausted
		if d.retries > d.storeRetries {
			c.t.Errorf("%s: %.0f batch retries, but the store counted %.0f", e.name, d.retries, d.storeRetries)
		}
		parts = append(parts, fmt.Sprintf("%s %.0f batches %.0f retries (store: %.0f transactions, %.0f retries)",
			e.name, d.batches, d.retries, d.storeTx, d.storeRetries))
	}
	r.perStore = strings.Join(parts, "; ")
	if r.exhausted > 0 {
		c.t.Errorf("%.0f transactions ran out of retries", r.exhausted)
	}
	return r
}

// Two and then three `joinin serve` processes share one consumer group on one `joinin broker`
// and one database, every purchase crediting one merchant. No engine fails, every conflict retry
// is counted on /metrics (reported per batch), and when one engine is killed with SIGKILL while
// events flow the others take its partitions: every event applied exactly once, every balance as
// the events say, the ledger verified.
func TestEnginesShareAGroupAndSurviveAKill(t *testing.T) {
	if testing.Short() {
		t.Skip("three engine processes and a broker take half a minute; make test runs it")
	}
	c := newCluster(t, scaleCards)
	var report []string
	phase := func(label string, engines []*engineProc, during func()) phaseResult {
		t.Helper()
		r := c.phase(scalePhase, engines, during)
		line := fmt.Sprintf("%s: %d purchases in %s (%.0f events/s); %.3f retries per batch; %s", label, r.events,
			r.took.Round(time.Millisecond), r.eventsPerSecond(), r.retriesPerBatch(), r.perStore)
		report = append(report, line)
		t.Log(line)
		return r
	}

	a, b := c.start(), c.start()
	two := []*engineProc{a, b}
	c.working(two, map[*engineProc]batchCounts{})
	c.caughtUp(two)
	steady := phase("two engines", two, nil)

	e3 := c.start()
	three := []*engineProc{a, b, e3}
	c.working(three, c.snapshot(three))
	c.caughtUp(three)
	d := phase("three engines", three, nil)
	steady.batches += d.batches
	steady.retries += d.retries
	// The engines write their own shards of the merchant's balance and their own cardholders: a
	// retry is rare. The goal is under 0.01 per batch; the bound here leaves a loaded test machine
	// room (before sharding, two and three engines took 0.3 to 0.75).
	if per := steady.retriesPerBatch(); per > maxSteadyRetriesPerBatch {
		t.Errorf("%.3f retries per batch with two and three engines, more than %.2f", per, maxSteadyRetriesPerBatch)
	}

	// One engine is killed mid-flow; the other two take its partitions after the session timeout.
	phase("engine-1 killed", three, func() {
		deadline := time.Now().Add(scaleWait)
		before := a.counts(t)
		for a.counts(t).batches == before.batches && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond)
		}
		a.kill(t)
		t.Logf("engine-1 killed after %.0f batches", before.batches)
	})
	for _, e := range []*engineProc{b, e3} {
		if e.exited() {
			t.Fatalf("%s ended by itself:\n%s", e.name, e.errs.String())
		}
	}

	// Every event exactly once: one decision each, one transfer per event that moves money, no
	// refusal; every balance as the events alone say; the ledger verifies.
	ctx, st, all := c.ctx, c.st, c.all
	var processed, transfers, refused int64
	if err := st.Pool().QueryRow(ctx, `SELECT (SELECT count(*) FROM processed_events), (SELECT count(*) FROM transfers),
		(SELECT count(*) FROM processed_events WHERE status <> 'applied' AND status <> 'accepted')`).
		Scan(&processed, &transfers, &refused); err != nil {
		t.Fatal(err)
	}
	if processed != int64(len(all)) || refused != 0 {
		t.Fatalf("%d events processed (%d not applied), %d produced", processed, refused, len(all))
	}
	if money := int64(len(all) - scaleCards); transfers != money {
		t.Fatalf("%d transfers for %d events that move money", transfers, money)
	}
	for key, net := range c.city.Expected(all) {
		bal, err := st.Balance(ctx, loadtest.AccountOf(key))
		if err != nil {
			t.Fatalf("%s: %v", key, err)
		}
		if bal.Net() != net {
			t.Errorf("%s: net %s, want %s", key, ledger.FormatAmount(bal.Net(), "CNY"), ledger.FormatAmount(net, "CNY"))
		}
	}
	rep, err := st.Verify(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !rep.OK() {
		t.Fatalf("the ledger fails verification:\n%s", rep.String())
	}
	// The same ledger from its checkpoints, two days on: the day the engines wrote is checkpointed,
	// the merchant's balance with a row per shard its writers moved, and the incremental check
	// agrees with the full one.
	later, err := postgres.Open(ctx, c.url)
	if err != nil {
		t.Fatal(err)
	}
	defer later.Close()
	later.Now = func() time.Time { return time.Now().Add(48 * time.Hour) }
	inc, err := later.VerifyIncremental(ctx)
	if err != nil {
		t.Fatal(err)
	}
	full, err := later.VerifyFull(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !inc.OK() || !full.OK() || len(inc.Checkpointed) == 0 || full.Checkpoints != len(inc.Checkpointed) ||
		inc.Accounts != full.Accounts || inc.Transfers != full.Transfers || fmt.Sprint(inc.Currencies) != fmt.Sprint(full.Currencies) {
		t.Fatalf("incremental and full verification disagree:\nincremental:\n%s\nfull:\n%s", inc.String(), full.String())
	}
	var sharded int
	if err := st.Pool().QueryRow(ctx, `SELECT count(DISTINCT shard) FROM verify_checkpoint_balances WHERE shard <> 0`).Scan(&sharded); err != nil {
		t.Fatal(err)
	}
	if sharded < 2 {
		t.Fatalf("the checkpoints hold %d shards besides the home, want one per engine's partitions at least", sharded)
	}
	t.Logf("%d events, %d transfers, verified in full and from %d checkpoints\n%s", len(all), transfers, len(inc.Checkpointed), strings.Join(report, "\n"))
}

const (
	// benchEvents is how many purchases each engine count's run sends to the one merchant:
	// enough batches (over a hundred) that retries per batch can be told from zero.
	benchEvents = 1000000
	// benchWait bounds a run's catching up: a million events at the slowest rate measured.
	benchWait = 5 * time.Minute
)

// One, two and three `joinin serve` processes on one group, broker and database, every purchase
// crediting one merchant: events/s end to end (from the first purchase produced to the last
// applied) and the conflict retries per batch, read from the engines' /metrics.
func BenchmarkEnginesOnOneMerchant(b *testing.B) {
	for _, n := range []int{1, 2, 3} {
		b.Run(fmt.Sprintf("engines=%d", n), func(b *testing.B) {
			for range b.N {
				c := newCluster(b, 20000)
				c.wait = benchWait
				var engines []*engineProc
				for range n {
					engines = append(engines, c.start())
				}
				c.working(engines, map[*engineProc]batchCounts{})
				c.caughtUp(engines)
				r := c.phase(benchEvents, engines, nil)
				b.ReportMetric(r.eventsPerSecond(), "events/s")
				b.ReportMetric(r.retriesPerBatch(), "retries/batch")
				b.ReportMetric(r.batches, "batches")
				b.Logf("%d engines: %s", n, r.perStore)
				for _, e := range engines {
					e.kill(b)
				}
			}
		})
	}
}
