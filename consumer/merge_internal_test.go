package consumer

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/joinincard/engine/clearing"
	"github.com/joinincard/engine/postgres"
)

func TestMergeBudgetGrowsWithTheLastTransaction(t *testing.T) {
	for _, c := range []struct{ took, want time.Duration }{
		{0, mergeWait},
		{4 * time.Millisecond, mergeWait},
		{16 * time.Millisecond, 8 * time.Millisecond},
		{30 * time.Millisecond, 15 * time.Millisecond},
		{time.Second, maxMergeWait},
	} {
		if got := mergeBudget(c.took); got != c.want {
			t.Errorf("mergeBudget(%v) = %v, want %v", c.took, got, c.want)
		}
	}
}

// timedStore is an Ingester whose transactions take as long as it is told, and which records
// the partitions each one committed.
type timedStore struct {
	took time.Duration

	mu  sync.Mutex
	txs [][]string
}

func (s *timedStore) IngestTimed(_ context.Context, cursors []postgres.Cursor, msgs []clearing.Message) (*clearing.Decision, postgres.IngestTiming, error) {
	time.Sleep(s.took)
	s.mu.Lock()
	defer s.mu.Unlock()
	var names []string
	for _, c := range cursors {
		names = append(names, c.Name)
	}
	s.txs = append(s.txs, names)
	return &clearing.Decision{}, postgres.IngestTiming{Attempts: 1}, nil
}

func (s *timedStore) IngestPoison(context.Context, postgres.Cursor, clearing.Message, error) (*clearing.Decision, error) {
	return nil, errors.New("no poison in this test")
}

func (s *timedStore) Cursor(context.Context, string) (int64, error) { return 0, nil }

func (s *timedStore) Cursors(context.Context, []string) (map[string]postgres.CursorState, error) {
	return nil, nil
}

// After a long transaction, a partition it committed that hands in its next batch later than
// mergeWait (its fetcher slowed by a busy machine) still shares the next transaction with the
// one that was quick, instead of waiting a whole transaction for the one after.
func TestCommitterWaitsLongerForLatePartitionsAfterALongTransaction(t *testing.T) {
	const (
		long = 200 * time.Millisecond // the budget is then maxMergeWait
		late = 3 * mergeWait          // past mergeWait, well within maxMergeWait
	)
	st := &timedStore{took: long}
	c := New(Config{}, st)
	ctx, cancel := context.WithCancel(context.Background())
	committed := make(chan error, 1)
	go func() { committed <- c.commitLoop(ctx) }()
	defer func() {
		cancel()
		if err := <-committed; err != nil {
			t.Error(err)
		}
	}()

	at := map[string]int64{}
	req := func(name string) *request {
		r := &request{cursor: postgres.Cursor{Name: name, From: at[name], To: at[name] + 1},
			msgs: make([]clearing.Message, 1), done: make(chan error, 1), ended: make(chan struct{})}
		at[name]++
		return r
	}
	wait := func(rs ...*request) {
		t.Helper()
		for _, r := range rs {
			if err := <-r.done; err != nil {
				t.Fatal(err)
			}
		}
	}
	// Both partitions in one transaction: handed in while another one commits.
	x := req("p/2")
	c.queue <- x
	a, b := req("p/0"), req("p/1")
	go func() { c.queue <- a }()
	go func() { c.queue <- b }()
	wait(x, a, b)
	// Then the next batches: one at once, one late.
	a, b = req("p/0"), req("p/1")
	c.queue <- a
	time.Sleep(late)
	c.queue <- b
	wait(a, b)

	st.mu.Lock()
	defer st.mu.Unlock()
	if len(st.txs) != 3 || len(st.txs[1]) != 2 || len(st.txs[2]) != 2 {
		t.Fatalf("transactions %v, want one of p/2, then two of p/0 and p/1", st.txs)
	}
}
