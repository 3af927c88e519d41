package consumer_test

import (
	"bufio"
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/joinincard/engine/consumer"
	"github.com/joinincard/engine/events"
	"github.com/joinincard/engine/internal/pgtest"
	"github.com/joinincard/engine/kafka"
	"github.com/joinincard/engine/loadtest"
	"github.com/joinincard/engine/postgres"
)

const (
	roleEnv    = "JOININ_TEST_ROLE"
	dbEnv      = "JOININ_TEST_DB"
	brokerEnv  = "JOININ_TEST_BROKER"
	dataDirEnv = "JOININ_TEST_BROKER_DIR"

	// crashGroup is the consumer group of the engine child processes.
	crashGroup = "crash"

	crashCards     = 2000
	crashPurchases = 96500
	crashKills     = 4
)

// runBrokerChild is a broker process persisting to a directory, as `joinin broker` runs.
func runBrokerChild() int {
	b, err := kafka.StartEmbedded(kafka.EmbeddedConfig{Addr: os.Getenv(brokerEnv), DataDir: os.Getenv(dataDirEnv), Partitions: partitions})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer b.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := kafka.EnsureTopics(ctx, b.Addrs(), []kafka.TopicSpec{{Name: topic, Partitions: partitions, ReplicationFactor: 1}}); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Println("ready")
	select {} // until killed
}

// runConsumerChild is an engine process consuming until it is killed.
func runConsumerChild() int {
	ctx := context.Background()
	st, err := postgres.Open(ctx, os.Getenv(dbEnv))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	cons := consumer.New(consumer.Config{Brokers: []string{os.Getenv(brokerEnv)}, Topic: topic, GroupID: crashGroup,
		Log: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))}, st)
	if err := cons.Run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

type child struct {
	cmd    *exec.Cmd
	stderr *syncBuilder
}

// syncBuilder is a child's stderr: written by the goroutine that copies the child's output, read
// by the test while the child runs.
type syncBuilder struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuilder) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuilder) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func startChild(t *testing.T, role string, env ...string) *child {
	t.Helper()
	c, err := spawnChild(role, env...)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// spawnChild starts this test binary in role; a broker child is listening when it returns.
func spawnChild(role string, env ...string) (*child, error) {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(append(os.Environ(), roleEnv+"="+role), env...)
	c := &child{cmd: cmd, stderr: &syncBuilder{}}
	cmd.Stderr = c.stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	if role == "broker" {
		line, err := bufio.NewReader(out).ReadString('\n')
		if err != nil || strings.TrimSpace(line) != "ready" {
			return nil, fmt.Errorf("broker did not start: %q %v: %s", line, err, c.stderr.String())
		}
	}
	return c, nil
}

func (c *child) kill(t *testing.T) {
	t.Helper()
	if err := c.sigkill(); err != nil {
		t.Fatal(err)
	}
}

// sigkill kills the child with SIGKILL and reports an error if it had ended by itself.
func (c *child) sigkill() error {
	if err := c.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		return err
	}
	err := c.cmd.Wait()
	if ws, ok := c.cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() {
		return fmt.Errorf("%s ended by itself (%v): %s", c.cmd.Env[len(c.cmd.Env)-1], err, c.stderr.String())
	}
	return nil
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func appliedOffsets(t *testing.T, st *postgres.Store) int64 {
	t.Helper()
	var sum int64
	for p := 0; p < partitions; p++ {
		pos, err := st.Cursor(context.Background(), fmt.Sprintf("%s/%d", topic, p))
		if err != nil {
			t.Fatal(err)
		}
		sum += pos
	}
	return sum
}

// The engine is killed with SIGKILL at random points while more than 100k events flow from a
// broker running as a process of its own (itself killed and restarted once); each time it is
// restarted. At the end every event was applied exactly once and every balance equals what the
// events say, computed without the engine.
func TestKilledEngineAppliesEveryEventOnce(t *testing.T) {
	url := pgtest.NewDatabase(t)
	ctx := context.Background()
	st, err := postgres.Open(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	city := loadtest.NewCity(4, crashCards, 25, cityStart)
	registerParties(t, st, city)
	var evs []events.Event
	evs = append(evs, city.Registrations()...)
	evs = append(evs, city.Funding(100000, 500000)...)
	buys := city.Purchases(crashPurchases, 2000)
	evs = append(evs, buys...)
	for i := 0; i < 500; i++ {
		b := buys[i*7]
		evs = append(evs, city.Refund(b, min(1+int64(i%50), b.Data.(*events.PurchaseCleared).Amount.Minor)))
	}
	if len(evs) < 100000 {
		t.Fatalf("only %d events generated", len(evs))
	}

	addr, dir := freeAddr(t), t.TempDir()
	brokerEnvs := []string{brokerEnv + "=" + addr, dataDirEnv + "=" + dir}
	broker := startChild(t, "broker", brokerEnvs...)
	defer func() { broker.kill(t) }()
	brokers := []string{addr}

	produced := make(chan error, 1)
	go func() {
		p := kafka.NewProducer(brokers, topic)
		defer p.Close()
		msgs := keyed(evs...)
		for len(msgs) > 0 {
			n := min(2000, len(msgs))
			if err := p.Produce(ctx, msgs[:n]...); err != nil {
				produced <- err
				return
			}
			msgs = msgs[n:]
		}
		produced <- nil
	}()

	consumerEnvs := []string{dbEnv + "=" + url, brokerEnv + "=" + addr}
	rng := rand.New(rand.NewPCG(11, 12))
	for kill := 0; kill < crashKills; kill++ {
		engine := startChild(t, "consumer", consumerEnvs...)
		before := appliedOffsets(t, st)
		deadline := time.Now().Add(2 * time.Minute)
		for appliedOffsets(t, st) == before {
			if time.Now().After(deadline) {
				t.Fatalf("engine applied nothing in two minutes: %s", engine.stderr.String())
			}
			time.Sleep(20 * time.Millisecond)
		}
		time.Sleep(time.Duration(rng.IntN(300)) * time.Millisecond)
		engine.kill(t)
		t.Logf("kill %d: %d offsets applied", kill+1, appliedOffsets(t, st))
	}
	if err := <-produced; err != nil {
		t.Fatal(err)
	}
	// The broker too dies and comes back from its data directory.
	broker.kill(t)
	broker = startChild(t, "broker", brokerEnvs...)

	engine := startChild(t, "consumer", consumerEnvs...)
	waitCaughtUp(t, st, brokers)
	engine.kill(t)

	var processed, transfers int64
	if err := st.Pool().QueryRow(ctx, `SELECT (SELECT count(*) FROM processed_events), (SELECT count(*) FROM transfers)`).
		Scan(&processed, &transfers); err != nil {
		t.Fatal(err)
	}
	if processed != int64(len(evs)) {
		t.Fatalf("%d events processed, %d produced", processed, len(evs))
	}
	money := int64(len(evs) - crashCards) // all but the registrations move money
	if transfers != money {
		t.Fatalf("%d transfers for %d money events", transfers, money)
	}
	var rejected int64
	if err := st.Pool().QueryRow(ctx, `SELECT count(*) FROM processed_events WHERE status = 'rejected'`).Scan(&rejected); err != nil {
		t.Fatal(err)
	}
	if rejected != 0 {
		t.Fatalf("%d events rejected", rejected)
	}
	checkBalances(t, st, city.Expected(evs))
}
