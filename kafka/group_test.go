package kafka

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"sync"
	"testing"
	"time"

	kafkago "github.com/segmentio/kafka-go"
)

// describeGroup returns the group's state and its members' ids.
func describeGroup(ctx context.Context, brokers []string, topic, group string) (string, []string, error) {
	client, done := newClient(brokers, topic)
	defer done()
	res, err := client.DescribeGroups(ctx, &kafkago.DescribeGroupsRequest{GroupIDs: []string{group}})
	if err != nil {
		return "", nil, err
	}
	for _, g := range res.Groups {
		if g.GroupID != group {
			continue
		}
		if g.Error != nil {
			return "", nil, g.Error
		}
		ids := make([]string, len(g.Members))
		for i, m := range g.Members {
			ids[i] = m.MemberID
		}
		return g.GroupState, ids, nil
	}
	return "", nil, errors.New("group not described")
}

// killableDialer opens connections that kill closes, as the kernel closes a killed process's
// sockets; after kill it refuses to dial, as a dead process would.
type killableDialer struct {
	mu     sync.Mutex
	conns  []net.Conn
	killed bool
}

func (d *killableDialer) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.killed {
		return nil, errors.New("process killed")
	}
	c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
	if err == nil {
		d.conns = append(d.conns, c)
	}
	return c, err
}

func (d *killableDialer) kill() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.killed = true
	for _, c := range d.conns {
		c.Close()
	}
}

// A member killed while it waits in JoinGroup must not keep partitions: the coordinator gives
// the generation's partitions to every member that joined, the dead one included, and only the
// session timeout takes them back. The embedded broker once armed that timeout only when its
// answer to the JoinGroup reached the member, so about one dead member in two kept its
// partitions and nothing consumed them. Several groups go through the scene at once, so that
// the old broker fails the test nearly always.
func TestMemberKilledWhileJoiningLosesItsPartitions(t *testing.T) {
	const (
		topic      = "card-events"
		partitions = 4
		groups     = 4
	)
	ctx := testContext(t)
	b := startBroker(t, partitions)
	createTopic(t, ctx, b.Addrs(), topic, partitions)
	errs := make(chan error, groups)
	for i := range groups {
		go func() {
			errs <- killMemberWhileJoining(ctx, t, b.Addrs(), topic, partitions, fmt.Sprintf("clearing-%d", i))
		}()
	}
	for range groups {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
}

// killMemberWhileJoining sets the scene in group: a live member holds every partition, a second
// member joins and is killed while the coordinator holds its JoinGroup, and the live member
// rejoins as the leader, handing the dead member its share. It returns an error unless the dead
// member is then removed and the live member holds every partition again, in time.
func killMemberWhileJoining(ctx context.Context, t *testing.T, brokers []string, topic string, partitions int, group string) error {
	const (
		// The live member heartbeats every three seconds, so it notices the second member's join
		// (and rejoins, which completes the rebalance) well after that member was killed.
		liveHeartbeat = 3 * time.Second
		liveSession   = 3 * liveHeartbeat
	)
	h := &holdings{t: t, by: map[int]string{}}
	liveCtx, cancelLive := context.WithCancel(ctx)
	defer cancelLive()
	liveDone := make(chan error, 1)
	go func() {
		cfg := GroupConfig{Brokers: brokers, GroupID: group, Topic: topic,
			SessionTimeout: liveSession, HeartbeatInterval: liveHeartbeat}
		liveDone <- RunGroup(liveCtx, cfg, func(ctx context.Context, c Claim) error {
			h.take("live", c.Partition)
			defer h.release("live", c.Partition)
			<-ctx.Done()
			return ctx.Err()
		})
	}()
	holdsAll := func() bool { return h.snapshot()["live"] == partitions }
	for !holdsAll() {
		if ctx.Err() != nil {
			return fmt.Errorf("%s: the live member never held every partition", group)
		}
		time.Sleep(5 * time.Millisecond)
	}
	_, before, err := describeGroup(ctx, brokers, topic, group)
	if err != nil || len(before) != 1 {
		return fmt.Errorf("%s before the second member: %v, %v", group, before, err)
	}

	// The second member joins with the engine's settings; the coordinator holds its JoinGroup
	// until the live member rejoins.
	dialer := &killableDialer{}
	doomed, err := kafkago.NewConsumerGroup(kafkago.ConsumerGroupConfig{
		ID: group, Brokers: brokers, Topics: []string{topic},
		Dialer:                 &kafkago.Dialer{Timeout: dialTimeout, ClientID: clientID, DialFunc: dialer.dial},
		GroupBalancers:         []kafkago.GroupBalancer{kafkago.RangeGroupBalancer{}},
		HeartbeatInterval:      DefaultHeartbeatInterval,
		SessionTimeout:         DefaultSessionTimeout,
		RebalanceTimeout:       DefaultRebalanceTimeout,
		JoinGroupBackoff:       groupJoinBackoff,
		Timeout:                groupTimeout,
		PartitionWatchInterval: groupPartitionWatchInterval,
		StartOffset:            kafkago.FirstOffset,
	})
	if err != nil {
		return err
	}
	defer doomed.Close()
	var deadID string
	for deadID == "" {
		if ctx.Err() != nil {
			return fmt.Errorf("%s: the second member never joined", group)
		}
		_, ids, err := describeGroup(ctx, brokers, topic, group)
		if err != nil {
			return err
		}
		for _, id := range ids {
			if !slices.Contains(before, id) {
				deadID = id
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	dialer.kill()
	if !holdsAll() {
		return fmt.Errorf("%s: the live member rejoined before the second member was killed (%v): the scene was not set", group, h.snapshot())
	}

	// For a moment the group is stable with a member that is gone; its session timeout must then
	// take it out, and the live member every partition.
	var sawDeadHolding bool
	deadline := time.Now().Add(2*liveSession + DefaultSessionTimeout + DefaultRebalanceTimeout)
	for {
		state, ids, err := describeGroup(ctx, brokers, topic, group)
		if err != nil {
			return err
		}
		if state == "Stable" && slices.Contains(ids, deadID) {
			sawDeadHolding = true
		}
		if holdsAll() && len(ids) == 1 && sawDeadHolding {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: %s with members %v, the live member holds %v: the dead member's partitions were never given back (seen holding them: %v)",
				group, state, ids, h.snapshot(), sawDeadHolding)
		}
		time.Sleep(50 * time.Millisecond)
	}
	cancelLive()
	if err := <-liveDone; err != nil {
		return fmt.Errorf("%s: RunGroup = %v, want nil after its ctx ended", group, err)
	}
	return nil
}

// A member whose work hangs keeps heartbeating, so the coordinator never expires it and its
// partitions stay with it. Asking another member to rejoin makes the group rebalance, which the
// hung member cannot finish: the coordinator drops it, and the live member gets every partition.
func TestRejoinTakesPartitionsFromAMemberWhoseWorkHangs(t *testing.T) {
	const (
		topic      = "card-events"
		partitions = 4
		group      = "clearing"
	)
	ctx := testContext(t)
	b := startBroker(t, partitions)
	createTopic(t, ctx, b.Addrs(), topic, partitions)
	cfg := GroupConfig{Brokers: b.Addrs(), GroupID: group, Topic: topic}

	h := &holdings{t: t, by: map[int]string{}}
	rejoin := make(chan struct{}, 1)
	liveCtx, cancelLive := context.WithCancel(ctx)
	defer cancelLive()
	liveDone := make(chan error, 1)
	go func() {
		cfg := cfg
		cfg.Rejoin = rejoin
		liveDone <- RunGroup(liveCtx, cfg, func(ctx context.Context, c Claim) error {
			h.take("live", c.Partition)
			defer h.release("live", c.Partition)
			<-ctx.Done()
			return ctx.Err()
		})
	}()
	h.waitFor(t, "the live member holds every partition", 20*time.Second, func(n map[string]int) bool {
		return n["live"] == partitions
	})

	// The hung member's work never returns, whatever its ctx says, until the test ends.
	release := make(chan struct{})
	var hungMu sync.Mutex
	hung := map[int]bool{}
	hungCtx, cancelHung := context.WithCancel(ctx)
	hungDone := make(chan error, 1)
	go func() {
		hungDone <- RunGroup(hungCtx, cfg, func(ctx context.Context, c Claim) error {
			hungMu.Lock()
			hung[c.Partition] = true
			hungMu.Unlock()
			<-release
			return nil
		})
	}()
	defer func() {
		close(release)
		cancelHung()
		if err := <-hungDone; err != nil {
			t.Errorf("hung RunGroup = %v", err)
		}
	}()
	h.waitFor(t, "the members share the partitions", 20*time.Second, func(n map[string]int) bool {
		hungMu.Lock()
		defer hungMu.Unlock()
		return n["live"] == partitions/2 && len(hung) == partitions/2
	})

	rejoin <- struct{}{}
	took := h.waitFor(t, "the live member holds every partition again", DefaultSessionTimeout+DefaultRebalanceTimeout+5*time.Second,
		func(n map[string]int) bool { return n["live"] == partitions })
	t.Logf("the hung member's partitions moved %v after the rejoin", took)
	_, ids, err := describeGroup(ctx, b.Addrs(), topic, group)
	if err != nil || len(ids) != 1 {
		t.Errorf("group members after the rejoin: %v, %v; want the live member alone", ids, err)
	}
	cancelLive()
	if err := <-liveDone; err != nil {
		t.Errorf("RunGroup = %v, want nil after its ctx ended", err)
	}
}
