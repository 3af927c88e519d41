package kafka

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	kafkago "github.com/segmentio/kafka-go"
)

// startPersistent starts a broker keeping its logs in dir, on addr.
func startPersistent(t *testing.T, addr, dir string) *Embedded {
	t.Helper()
	b, err := StartEmbedded(EmbeddedConfig{Addr: addr, DataDir: dir, Partitions: 2})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	return b
}

// checkMessages reads every partition of topic and checks that card 1's events 0..n-1 are all
// there, once each, in order.
func checkMessages(t *testing.T, ctx context.Context, brokers []string, topic string, n int) {
	t.Helper()
	marks, err := HighWatermarks(ctx, brokers, topic)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for part, mark := range marks {
		for _, m := range readAll(t, ctx, brokers, Claim{Topic: topic, Partition: part}, mark) {
			got = append(got, string(m.Value))
		}
	}
	want := make([]string, n)
	for i := range want {
		want[i] = fmt.Sprint(i)
	}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("after restart the topic holds %d messages %.80q..., want %d", len(got), strings.Join(got, ","), n)
	}
}

func produceSeq(t *testing.T, ctx context.Context, p *Producer, from, to int) {
	t.Helper()
	msgs := make([]kafkago.Message, 0, to-from)
	for i := from; i < to; i++ {
		msgs = append(msgs, event(1, i))
	}
	if err := p.Produce(ctx, msgs...); err != nil {
		t.Fatal(err)
	}
}

func TestPersistentBrokerRestartsOnTheSamePort(t *testing.T) {
	const topic = "card-events"
	ctx := testContext(t)
	dir := t.TempDir()
	b := startPersistent(t, "127.0.0.1:0", dir)
	addr := b.Addrs()[0]
	createTopic(t, ctx, b.Addrs(), topic, 2)
	p := NewProducer([]string{addr}, topic)
	defer p.Close()
	produceSeq(t, ctx, p, 0, 500)

	b.Close()
	b = startPersistent(t, addr, dir)
	if got := b.Addrs()[0]; got != addr {
		t.Fatalf("restarted broker listens on %s, want %s", got, addr)
	}
	// The producer's pooled connection died with the first broker: its first write fails with a
	// reset connection, and Produce's retry must absorb that.
	produceSeq(t, ctx, p, 500, 501)
	createTopic(t, ctx, b.Addrs(), topic, 2)
	checkMessages(t, ctx, b.Addrs(), topic, 501)
}

// TestProduceRetriesWhileTheBrokerRestarts produces while the broker is down for longer than
// kafka-go's own retries last: Produce's bounded retry must carry the write over the restart.
func TestProduceRetriesWhileTheBrokerRestarts(t *testing.T) {
	const topic = "card-events"
	ctx := testContext(t)
	dir := t.TempDir()
	b := startPersistent(t, "127.0.0.1:0", dir)
	addr := b.Addrs()[0]
	createTopic(t, ctx, b.Addrs(), topic, 2)
	p := NewProducer([]string{addr}, topic)
	defer p.Close()
	produceSeq(t, ctx, p, 0, 10)

	b.Close()
	restarted := make(chan *Embedded, 1)
	go func() {
		time.Sleep(400 * time.Millisecond)
		b, err := StartEmbedded(EmbeddedConfig{Addr: addr, DataDir: dir, Partitions: 2})
		if err != nil {
			t.Error(err)
		}
		restarted <- b
	}()
	produceSeq(t, ctx, p, 10, 11)
	b = <-restarted
	if b == nil {
		t.FailNow()
	}
	t.Cleanup(b.Close)
	checkMessages(t, ctx, b.Addrs(), topic, 11)
}

// TestPersistentBrokerSurvivesKill runs a broker in a child process, produces to it, kills the
// process with SIGKILL (no shutdown, no final save) and restarts the broker on the same port and
// directory: every acknowledged message must still be there.
func TestPersistentBrokerSurvivesKill(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a child process")
	}
	const topic = "card-events"
	ctx := testContext(t)
	dir := t.TempDir()
	addr := freeLoopbackAddr(t)

	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "JOININ_TEST_BROKER_ADDR="+addr, "JOININ_TEST_BROKER_DIR="+dir)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := bufio.NewScanner(out)
	for lines.Scan() && !strings.HasPrefix(lines.Text(), "broker listening on") {
	}

	createTopic(t, ctx, []string{addr}, topic, 2)
	p := NewProducer([]string{addr}, topic)
	defer p.Close()
	for i := 0; i < 1000; i += 100 {
		produceSeq(t, ctx, p, i, i+100)
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	// Wait reports the kill; any other outcome would mean the child ended by itself.
	if err := cmd.Wait(); err == nil || !strings.Contains(err.Error(), "killed") {
		t.Fatalf("broker process ended with %v, want killed", err)
	}

	b := startPersistent(t, addr, dir)
	produceSeq(t, ctx, p, 1000, 1001)
	checkMessages(t, ctx, b.Addrs(), topic, 1001)
}

func TestMain(m *testing.M) {
	if addr, dir := os.Getenv("JOININ_TEST_BROKER_ADDR"), os.Getenv("JOININ_TEST_BROKER_DIR"); addr != "" && dir != "" {
		os.Exit(runBrokerProcess(addr, dir))
	}
	os.Exit(m.Run())
}

// runBrokerProcess is the child process of TestPersistentBrokerSurvivesKill: it runs a
// persistent broker until it is killed.
func runBrokerProcess(addr, dir string) int {
	b, err := StartEmbedded(EmbeddedConfig{Addr: addr, DataDir: dir, Partitions: 2})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer b.Close()
	fmt.Printf("broker listening on %s\n", b.Addrs()[0])
	time.Sleep(testTimeout)
	return 0
}

// freeLoopbackAddr returns a loopback address with a port nothing listens on.
func freeLoopbackAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}
