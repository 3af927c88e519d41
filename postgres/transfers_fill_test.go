package postgres

import (
	"context"
	"testing"
	"time"

	"github.com/joinincard/engine/ledger"
)

// fillResult is what one call of fill returned.
type fillResult struct {
	calls []*transferCall
	carry *transferCall
	away  int
}

func startFill(tr *Transfers, inFlight *stage, away int) chan fillResult {
	got := make(chan fillResult, 1)
	go func() {
		calls, carry, left := tr.fill(context.Background(), []*transferCall{oneTransferCall()}, inFlight, away)
		got <- fillResult{calls, carry, left}
	}()
	return got
}

func oneTransferCall() *transferCall {
	return &transferCall{batch: make([]ledger.Transfer, 1), done: make(chan transferAnswer, 1)}
}

// notYet fails if fill returned within a while.
func notYet(t *testing.T, got chan fillResult) {
	t.Helper()
	select {
	case r := <-got:
		t.Fatalf("fill returned %d requests, still waiting for clients", len(r.calls))
	case <-time.After(20 * time.Millisecond):
	}
}

func waitFill(t *testing.T, got chan fillResult) fillResult {
	t.Helper()
	select {
	case r := <-got:
		return r
	case <-time.After(10 * time.Second):
		t.Fatal("fill did not return")
		return fillResult{}
	}
}

// While a commit is in flight, the next one waits for the clients the commit before answered,
// rather than going with the one request queued: their requests join it as they come.
func TestTransfersCommitWaitsForAnsweredClientsWhileOneIsInFlight(t *testing.T) {
	tr := &Transfers{queue: make(chan *transferCall, 8), linger: time.Hour}
	inFlight := &stage{done: make(chan struct{})}
	got := startFill(tr, inFlight, 2)
	notYet(t, got)
	tr.queue <- oneTransferCall()
	notYet(t, got)
	tr.queue <- oneTransferCall()
	if r := waitFill(t, got); len(r.calls) != 3 || r.carry != nil || r.away != 0 {
		t.Fatalf("%d requests, carry %v, %d away; want 3, none, 0", len(r.calls), r.carry, r.away)
	}
}

// The wait ends as soon as the commit in flight is done, and after the linger at most: clients
// that did not come back by then are not waited for again.
func TestTransfersCommitWaitsNoLongerThanItsCommitInFlightOrTheLinger(t *testing.T) {
	tr := &Transfers{queue: make(chan *transferCall, 8), linger: time.Hour}
	inFlight := &stage{done: make(chan struct{})}
	got := startFill(tr, inFlight, 3)
	tr.queue <- oneTransferCall()
	notYet(t, got)
	close(inFlight.done)
	if r := waitFill(t, got); len(r.calls) != 2 || r.away != 2 {
		t.Fatalf("commit in flight done: %d requests, %d away; want 2, 2", len(r.calls), r.away)
	}

	tr.linger = time.Millisecond
	start := time.Now()
	r := waitFill(t, startFill(tr, &stage{done: make(chan struct{})}, 5))
	if len(r.calls) != 1 || r.away != 0 {
		t.Fatalf("linger over: %d requests, %d away; want 1, 0", len(r.calls), r.away)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("linger of 1ms took %s", took)
	}

	// Nothing in flight: the commit goes at once, whoever is away.
	if r := waitFill(t, startFill(tr, nil, 5)); len(r.calls) != 1 || r.away != 5 {
		t.Fatalf("nothing in flight: %d requests, %d away; want 1, 5", len(r.calls), r.away)
	}
}
