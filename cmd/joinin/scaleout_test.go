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

func freeTCPAddr(t *testing.T) string {
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
func startJoinin(t *testing.T, name string, args ...string) *engineProc {
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
func (p *engineProc) kill(t *testing.T) {
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
func (p *engineProc) counts(t *testing.T) batchCounts {
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

// Two and then three `joinin serve` processes share one consumer group on one `joinin broker`
// and one database, every purchase crediting one merchant. No engine fails, every conflict retry
// is counted on /metrics (reported per batch), and when one engine is killed with SIGKILL while
// events flow the others take its partitions: every event applied exactly once, every balance as
// the events say, the ledger verified.
func TestEnginesShareAGroupAndSurviveAKill(t *testing.T) {
	if testing.Short() {
		t.Skip("three engine processes and a broker take half a minute; make test runs it")
	}
	ctx := context.Background()
	url := pgtest.NewDatabase(t)
	st, err := postgres.Open(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	city := loadtest.NewCity(21, scaleCards, 1, time.Now().Add(-time.Hour))
	for _, p := range city.Parties() {
		if _, err := st.RegisterParty(ctx, p.Kind, p.ID, p.Name); err != nil {
			t.Fatal(err)
		}
	}

	brokerAddr := freeTCPAddr(t)
	startJoinin(t, "broker", "broker", "--addr", brokerAddr, "--partitions", strconv.Itoa(scalePartitions), "--log-level", "warn")
	brokers := []string{brokerAddr}
	producer := kafka.NewProducer(brokers, scaleTopic)
	defer producer.Close()
	var all []events.Event
	send := func(evs []events.Event) {
		t.Helper()
		msgs := make([]kafkago.Message, len(evs))
		for i, e := range evs {
			msgs[i] = kafkago.Message{Key: []byte(e.CardToken), Value: loadtest.Encode(e)}
		}
		for len(msgs) > 0 {
			n := min(1000, len(msgs))
			if err := producer.Produce(ctx, msgs[:n]...); err != nil {
				t.Fatal(err)
			}
			msgs = msgs[n:]
		}
		all = append(all, evs...)
	}
	caughtUp := func(engines []*engineProc) {
		t.Helper()
		deadline := time.Now().Add(scaleWait)
		for {
			for _, e := range engines {
				if e.exited() {
					t.Fatalf("%s ended by itself:\n%s", e.name, e.errs.String())
				}
			}
			marks, err := kafka.HighWatermarks(ctx, brokers, scaleTopic)
			if err == nil {
				behind := int64(0)
				for p, hw := range marks {
					pos, err := st.Cursor(ctx, fmt.Sprintf("%s/%d", scaleTopic, p))
					if err != nil {
						t.Fatal(err)
					}
					behind += hw - pos
				}
				if behind == 0 {
					return
				}
				if time.Now().After(deadline) {
					t.Fatalf("engines still %d events behind after %s", behind, scaleWait)
				}
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	start := func(name string) *engineProc {
		addr := freeTCPAddr(t)
		p := startJoinin(t, name, "serve", "--database-url", url, "--kafka-brokers", brokerAddr, "--group", scaleGroup,
			"--partitions", strconv.Itoa(scalePartitions), "--http-addr", addr, "--settle-grace", "0", "--log-level", "warn")
		p.http = addr
		return p
	}
	// working waits until every engine has committed a batch since before: each holds partitions.
	// A trickle of one-fen loads keeps events coming meanwhile.
	var trickle []events.Event
	working := func(engines []*engineProc, before map[*engineProc]batchCounts) {
		t.Helper()
		deadline := time.Now().Add(scaleWait)
		for {
			idle := 0
			for _, e := range engines {
				if e.counts(t).batches <= before[e].batches {
					idle++
				}
			}
			if idle == 0 {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%d engines committed nothing in %s", idle, scaleWait)
			}
			if len(trickle) < 60 {
				trickle = city.Funding(1, 1)
			}
			send(trickle[:60])
			trickle = trickle[60:]
			time.Sleep(100 * time.Millisecond)
		}
	}
	snapshot := func(engines []*engineProc) map[*engineProc]batchCounts {
		out := map[*engineProc]batchCounts{}
		for _, e := range engines {
			out[e] = e.counts(t)
		}
		return out
	}
	var report []string
	// phase sends scalePhase purchases at the one merchant to the engines and reports, per
	// engine, the batches they committed and the retries those took.
	phase := func(label string, engines []*engineProc, during func()) {
		t.Helper()
		before := snapshot(engines)
		began := time.Now()
		buys := city.Purchases(scalePhase, 500)
		send(buys[:len(buys)/2])
		if during != nil {
			during()
		}
		send(buys[len(buys)/2:])
		live := engines[:0:0]
		for _, e := range engines {
			if !e.killed {
				live = append(live, e)
			}
		}
		caughtUp(live)
		took := time.Since(began)
		var sum batchCounts
		parts := []string{}
		for _, e := range live {
			d := e.counts(t).minus(before[e])
			sum.batches += d.batches
			sum.retries += d.retries
			sum.exhausted += d.exhausted
			if d.retries > d.storeRetries {
				t.Errorf("%s: %.0f batch retries, but the store counted %.0f", e.name, d.retries, d.storeRetries)
			}
			parts = append(parts, fmt.Sprintf("%s %.0f batches %.0f retries (store: %.0f transactions, %.0f retries)",
				e.name, d.batches, d.retries, d.storeTx, d.storeRetries))
		}
		line := fmt.Sprintf("%s: %d purchases in %s (%.0f events/s); %.3f retries per batch; %s", label, len(buys),
			took.Round(time.Millisecond), float64(len(buys))/took.Seconds(), sum.retries/max(sum.batches, 1), strings.Join(parts, "; "))
		report = append(report, line)
		t.Log(line)
		if sum.exhausted > 0 {
			t.Errorf("%s: %.0f transactions ran out of retries", label, sum.exhausted)
		}
	}

	// The cards first, with their funds.
	send(city.Registrations())
	send(city.Funding(100000, 200000))
	a, b := start("engine-1"), start("engine-2")
	two := []*engineProc{a, b}
	working(two, map[*engineProc]batchCounts{})
	caughtUp(two)
	phase("two engines", two, nil)

	c := start("engine-3")
	three := []*engineProc{a, b, c}
	working(three, snapshot(three))
	caughtUp(three)
	phase("three engines", three, nil)

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
	for _, e := range []*engineProc{b, c} {
		if e.exited() {
			t.Fatalf("%s ended by itself:\n%s", e.name, e.errs.String())
		}
	}

	// Every event exactly once: one decision each, one transfer per event that moves money, no
	// refusal; every balance as the events alone say; the ledger verifies.
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
	for key, net := range city.Expected(all) {
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
	t.Logf("%d events, %d transfers, verified\n%s", len(all), transfers, strings.Join(report, "\n"))
}
