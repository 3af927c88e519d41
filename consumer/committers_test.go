package consumer_test

import (
	"context"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/joinincard/engine/clearing"
	"github.com/joinincard/engine/consumer"
	"github.com/joinincard/engine/internal/pgtest"
	"github.com/joinincard/engine/postgres"
)

// overlapWait is how long the first transaction waits for a second one to begin beside it: long
// enough for the other committer to gather a batch from its partitions, short enough that a
// consumer with one committer fails the test in seconds, not minutes.
const overlapWait = 3 * time.Second

// watchedStore is the store as the consumer sees it, noting which partitions each transaction
// carries, how many run at once, and how many attempts each took.
type watchedStore struct {
	*postgres.Store
	mu         sync.Mutex
	inflight   int
	most       int
	overlapped chan struct{} // closed once two transactions ran at once
	mixed      []string      // transactions whose partitions belong to different committers
	retried    int           // transactions that took more than one attempt
}

func (w *watchedStore) IngestTimed(ctx context.Context, cursors []postgres.Cursor, msgs []clearing.Message) (*clearing.Decision, postgres.IngestTiming, error) {
	w.mu.Lock()
	w.inflight++
	if w.inflight > w.most {
		w.most = w.inflight
		if w.most == 2 {
			close(w.overlapped)
		}
	}
	parity := -1
	for _, c := range cursors {
		p, err := strconv.Atoi(c.Name[strings.LastIndexByte(c.Name, '/')+1:])
		if err != nil || (parity >= 0 && p%2 != parity) {
			w.mixed = append(w.mixed, c.Name)
		}
		parity = p % 2
	}
	first := w.most < 2
	w.mu.Unlock()
	if first {
		// Hold the first transactions until another one runs beside them, or give up.
		select {
		case <-w.overlapped:
		case <-time.After(overlapWait):
		}
	}
	d, timing, err := w.Store.IngestTimed(ctx, cursors, msgs)
	w.mu.Lock()
	w.inflight--
	if timing.Attempts > 1 {
		w.retried++
	}
	w.mu.Unlock()
	return d, timing, err
}

// Two committers in one engine apply their own partitions' batches at the same time: each
// transaction carries only one committer's partitions, two run at once, and although every
// purchase credits one of a few merchants, which every partition pays, no transaction has to be
// tried again, since each committer writes its own shards of those accounts. Every event lands
// once.
func TestCommittersApplyTheirOwnPartitionsAtOnce(t *testing.T) {
	st := pgtest.NewStore(t)
	brokers := startBroker(t)
	city, evs := cityEvents(t, st, 11, 400, 3, 12000, 500)
	produce(t, brokers, keyed(evs...)...)

	w := &watchedStore{Store: st, overlapped: make(chan struct{})}
	consumeAll(t, st, brokers, consumer.Config{Brokers: brokers, Topic: topic, GroupID: "committers", Log: slog.New(slog.DiscardHandler),
		Committers: 2}, w)

	w.mu.Lock()
	defer w.mu.Unlock()
	if w.most != 2 {
		t.Errorf("at most %d transactions ran at once, want 2 (one per committer)", w.most)
	}
	if len(w.mixed) > 0 {
		t.Errorf("transactions carried partitions of both committers: %v", w.mixed)
	}
	if w.retried > 0 {
		t.Errorf("%d transactions were tried again: the committers contended", w.retried)
	}
	checkLandedOnce(t, st, city, evs)
}
