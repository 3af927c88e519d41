package postgres

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync/atomic"
	"time"

	"github.com/joinincard/engine/ledger"
)

const (
	// maxQueuedTransferRequests bounds the requests waiting for the transfer committer. Sixteen
	// clients sending one transfer each keep at most sixteen waiting; 4,096 ride out a stall of
	// the database of a second at thousands of requests a second before requests are turned away
	// (ErrTransfersBusy, a 503) instead of piling up in memory.
	maxQueuedTransferRequests = 4096
	// maxQueuedTransfers bounds the transfers waiting, whatever their requests: four commits'
	// worth (65,536 transfers, about 10 MiB), so that clients sending full batches cannot make
	// the queue hold gigabytes. It is at least one full batch, so a request of a full batch is
	// always taken by an empty queue.
	maxQueuedTransfers = 4 * ledger.MaxBatchTransfers
	// transferCommitTimeout bounds one commit, retries included. A commit of a full batch takes
	// tens of milliseconds; one still running after ten seconds has a database that does not
	// answer, and its callers get an error rather than wait for ever.
	transferCommitTimeout = 10 * time.Second
)

var (
	// ErrTransfersBusy is returned when the committer's queue is full: retry shortly.
	ErrTransfersBusy = errors.New("too many transfers waiting")
	// ErrTransfersStopped is returned for requests made after the committer stopped, or left in
	// its queue when it stopped: nothing of them was applied.
	ErrTransfersStopped = errors.New("transfer committer stopped")
	// ErrNoTransfers is returned for a request without transfers.
	ErrNoTransfers = errors.New("no transfers to apply")
)

// Transfers applies clients' batches of transfers (the admin's transfers API) through one
// committer goroutine (Run), which merges the requests that have queued into one ledger batch, up
// to ledger.MaxBatchTransfers, and commits it in one transaction: every answer is durable when it
// goes out, and concurrent requests share a commit. Clients crediting one hot account therefore
// cost it one balance version per commit, written by one writer, instead of colliding on it.
//
// A request's transfers stay contiguous and in order, so its linked chains are its own. A request
// whose last transfer is linked leaves its chain open: it goes last in its commit, where the
// ledger refuses the open chain (linked_event_chain_open) as it would in a batch of its own,
// and no other request's transfers follow it.
type Transfers struct {
	store *Store
	queue chan *transferCall
	// queued counts the transfers of the requests queued and not yet taken into a commit.
	queued  atomic.Int64
	stopped chan struct{}
	// OnCommit, if set, is called by the committer after each transaction with the number of
	// requests and transfers it carried and how long it took, retries included. Set it before Run.
	OnCommit func(requests, transfers int, took time.Duration)
	// beforeApply, set by tests, runs in each commit's transaction with its batch: an error fails
	// the attempt as a value the database refused would.
	beforeApply func(batch []ledger.Transfer) error
}

type transferCall struct {
	batch []ledger.Transfer
	done  chan transferAnswer // buffered: the committer never waits for a caller
}

type transferAnswer struct {
	results []ledger.Result
	ts      time.Time
	err     error
}

// NewTransfers returns the transfers committer on st. Call Run to start it.
func NewTransfers(st *Store) *Transfers {
	return &Transfers{store: st, queue: make(chan *transferCall, maxQueuedTransferRequests), stopped: make(chan struct{})}
}

// Do queues batch for the committer and waits for its answer: one ledger result per transfer, in
// order, and the time of the commit that decided them (every transfer created is stamped with
// it). A batch of more than ledger.MaxBatchTransfers fails with ErrBatchTooLarge, an empty one
// with ErrNoTransfers; ErrTransfersBusy and ErrTransfersStopped say to retry later. A ctx that
// ends first returns its error, and the batch may still be applied: send it again to learn, as
// transfer ids make that safe.
func (tr *Transfers) Do(ctx context.Context, batch []ledger.Transfer) ([]ledger.Result, time.Time, error) {
	switch {
	case len(batch) == 0:
		return nil, time.Time{}, ErrNoTransfers
	case len(batch) > ledger.MaxBatchTransfers:
		return nil, time.Time{}, fmt.Errorf("batch of %d transfers exceeds the bound of %d: %w", len(batch), ledger.MaxBatchTransfers, ErrBatchTooLarge)
	}
	select {
	case <-tr.stopped:
		return nil, time.Time{}, ErrTransfersStopped
	default:
	}
	n := int64(len(batch))
	if tr.queued.Add(n) > maxQueuedTransfers {
		tr.queued.Add(-n)
		return nil, time.Time{}, ErrTransfersBusy
	}
	// The committer keeps its own copy: a caller whose ctx ends may reuse its slice.
	c := &transferCall{batch: slices.Clone(batch), done: make(chan transferAnswer, 1)}
	select {
	case tr.queue <- c:
	default:
		tr.queued.Add(-n)
		return nil, time.Time{}, ErrTransfersBusy
	}
	select {
	case a := <-c.done:
		return a.results, a.ts, a.err
	case <-ctx.Done():
		return nil, time.Time{}, ctx.Err()
	case <-tr.stopped:
		// The committer answers every request it committed before it stops: an answer that is
		// not there now never comes, and the request was not applied.
		select {
		case a := <-c.done:
			return a.results, a.ts, a.err
		default:
			return nil, time.Time{}, ErrTransfersStopped
		}
	}
}

// Run commits queued requests until ctx is done, then refuses what is left with
// ErrTransfersStopped. A commit under way when ctx ends is finished first, within its own bound.
// Call it once.
func (tr *Transfers) Run(ctx context.Context) {
	// carry is a request taken from the queue that did not fit the commit before: it starts the next.
	var carry *transferCall
	defer func() {
		close(tr.stopped)
		if carry != nil {
			carry.done <- transferAnswer{err: ErrTransfersStopped}
		}
		for {
			select {
			case c := <-tr.queue:
				c.done <- transferAnswer{err: ErrTransfersStopped}
			default:
				return
			}
		}
	}()
	calls := make([]*transferCall, 0, 64)
	for {
		calls = calls[:0]
		if ctx.Err() != nil {
			return
		}
		if carry != nil {
			calls, carry = append(calls, carry), nil
		} else {
			select {
			case <-ctx.Done():
				return
			case c := <-tr.queue:
				calls = append(calls, c)
			}
		}
		n := len(calls[0].batch)
	fill:
		for !openChain(calls[len(calls)-1].batch) {
			select {
			case c := <-tr.queue:
				if n+len(c.batch) > ledger.MaxBatchTransfers {
					carry = c
					break fill
				}
				calls = append(calls, c)
				n += len(c.batch)
			default:
				break fill
			}
		}
		tr.queued.Add(-int64(n))
		// The commit outlives a cancelled ctx, within its own bound: its callers are waiting,
		// and its result decides what they answer.
		start := time.Now()
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), transferCommitTimeout)
		answers := tr.commitApart(cctx, calls)
		cancel()
		took := time.Since(start)
		for i, c := range calls {
			c.done <- answers[i]
		}
		if tr.OnCommit != nil {
			tr.OnCommit(len(calls), n, took)
		}
	}
}

// openChain reports whether batch ends in a linked transfer: a chain the ledger refuses as open
// at the end of its batch, which must not run into another request's transfers.
func openChain(batch []ledger.Transfer) bool {
	return len(batch) > 0 && batch[len(batch)-1].Flags&ledger.Linked != 0
}

// commitApart commits calls and answers each of them. When the transaction fails, its requests
// are committed again in halves, down to the one at fault: a request the database refuses fails
// alone, never the others that shared its commit. A fault that is no request's (the database
// unreachable) fails them all, within ctx's deadline.
func (tr *Transfers) commitApart(ctx context.Context, calls []*transferCall) []transferAnswer {
	answers, err := tr.commit(ctx, calls)
	if err == nil {
		return answers
	}
	if len(calls) == 1 || ctx.Err() != nil {
		answers = make([]transferAnswer, len(calls))
		for i := range answers {
			answers[i].err = err
		}
		return answers
	}
	mid := len(calls) / 2
	return append(tr.commitApart(ctx, calls[:mid]), tr.commitApart(ctx, calls[mid:])...)
}

// commit applies the requests' transfers as one ledger batch in one transaction.
func (tr *Transfers) commit(ctx context.Context, calls []*transferCall) ([]transferAnswer, error) {
	n := 0
	for _, c := range calls {
		n += len(c.batch)
	}
	batch := make([]ledger.Transfer, 0, n)
	for _, c := range calls {
		batch = append(batch, c.batch...)
	}
	var res BatchResult
	err := tr.store.InTx(ctx, nil, func(ctx context.Context, tx *Tx) error {
		if tr.beforeApply != nil {
			if err := tr.beforeApply(batch); err != nil {
				return err
			}
		}
		var err error
		res, err = tx.Apply(ctx, batch)
		return err
	})
	if err != nil {
		return nil, err
	}
	answers := make([]transferAnswer, len(calls))
	at := 0
	for i, c := range calls {
		answers[i] = transferAnswer{results: res.Results[at : at+len(c.batch) : at+len(c.batch)], ts: res.Timestamp}
		at += len(c.batch)
	}
	return answers, nil
}
