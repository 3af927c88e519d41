package postgres

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"

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
	// transferStageWorkers run the commits: two in flight at most (see Run), and a third, so that
	// a commit never waits for a worker still returning from the one before.
	transferStageWorkers = 3
	// transferLinger bounds how long a commit waits for the requests of clients answered by the
	// commit before, while another commit is in flight (see fill): a client's next request takes
	// its answer's write, the client's turn and the request's read and parse, a few hundred
	// microseconds on a loaded two-core machine. A client that does not come back delays the
	// commit this much at most; a commit spared saves the database and the committer several
	// hundred microseconds of CPU (its round trip, statements and WAL flush).
	transferLinger = 500 * time.Microsecond
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
// committer (Run), which merges the requests that have queued into one ledger batch, up to
// ledger.MaxBatchTransfers, and commits it in one transaction: every answer is durable when it
// goes out, and concurrent requests share a commit. Clients crediting one hot account therefore
// cost it one balance version per commit, written by one writer, instead of colliding on it.
// Commits are pipelined two deep: the next is applied while the one before commits, on its
// balances, and commits after it (or is applied again if it did not commit). A commit that shares
// no balance with the one before (other accounts, or a receiving account it writes in a shard of
// its own) commits beside it, without waiting.
//
// A request's transfers stay contiguous and in order, so its linked chains are its own. A request
// whose last transfer is linked leaves its chain open: it goes last in its commit, where the
// ledger refuses the open chain (linked_event_chain_open) as it would in a batch of its own,
// and no other request's transfers follow it.
type Transfers struct {
	store *Store
	// kinds remembers the kinds of the accounts requests named (checkAccounts).
	kinds transferKinds
	queue chan *transferCall
	// queued counts the transfers of the requests queued and not yet taken into a commit.
	queued  atomic.Int64
	stopped chan struct{}
	// OnCommit, if set, is called after each commit with the number of requests and transfers it
	// carried and how long it took, retries included, one call at a time. Set it before Run.
	OnCommit   func(requests, transfers int, took time.Duration)
	onCommitMu sync.Mutex
	// fault, set by tests, runs in each attempt's transaction with its batch, before it is
	// applied and after (applied): an error fails the attempt as a value the database refused,
	// or a conflict, would.
	fault func(batch []ledger.Transfer, applied bool) error
	// gate is the settlement gate the last commit read (gateKnown once one did): a first
	// attempt takes it for the gate, read in the round trip of its writes and checked there
	// (Tx.gateGuess), as the gate moves once a settlement cycle.
	gate      atomic.Int64
	gateKnown atomic.Bool
	// linger is transferLinger; tests set it.
	linger time.Duration
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
	return &Transfers{store: st, queue: make(chan *transferCall, maxQueuedTransferRequests), stopped: make(chan struct{}),
		linger: transferLinger}
}

// Do queues batch for the committer and waits for its answer: one ledger result per transfer, in
// order, and the time of the commit that decided them (every transfer created is stamped with
// it). A batch of more than ledger.MaxBatchTransfers fails with ErrBatchTooLarge, an empty one
// with ErrNoTransfers; ErrTransfersBusy and ErrTransfersStopped say to retry later. A batch naming
// an account of a card or a party, itself or through the transfer a ref names, is refused whole
// with a *ForeignAccountError before it is queued. A ctx that
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
	if err := tr.checkAccounts(ctx, batch); err != nil {
		return nil, time.Time{}, err
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
// ErrTransfersStopped. Commits under way when ctx ends are finished first, within their own
// bound. Call it once.
//
// Commits are pipelined two deep: while one commits, the next is applied on the balances the
// first wrote (speculative, see stage), and commits only after it. So the round trips of one
// commit overlap the next one's, and a hot account still gets one balance version per commit,
// each built on the one before.
func (tr *Transfers) Run(ctx context.Context) {
	// carry is a request taken from the queue that did not fit the commit before: it starts the next.
	// away counts the requests answered whose clients have not sent their next one yet, as far
	// as the committer can tell: each request taken counts as one of them come back.
	var (
		carry *transferCall
		prev  *stage
		away  int
	)
	// The commits run on workers that live as long as Run, rather than on a goroutine each: a
	// fresh goroutine grows its stack anew through the database driver's calls at every commit.
	stages := make(chan *stage)
	var workers sync.WaitGroup
	for range transferStageWorkers {
		workers.Go(func() {
			for st := range stages {
				tr.runStage(ctx, st)
			}
		})
	}
	defer func() {
		if prev != nil {
			<-prev.done
		}
		close(stages)
		workers.Wait()
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
	for {
		if ctx.Err() != nil {
			return
		}
		var calls []*transferCall
		if carry != nil {
			calls, carry = []*transferCall{carry}, nil
		} else {
			select {
			case <-ctx.Done():
				return
			case c := <-tr.queue:
				calls = []*transferCall{c}
				away = max(away-1, 0)
			}
		}
		calls, carry, away = tr.fill(ctx, calls, prev, away)
		n := 0
		for _, c := range calls {
			n += len(c.batch)
		}
		tr.queued.Add(-int64(n))
		pred := prev
		if pred != nil {
			select {
			case <-pred.done:
				pred = nil // committed: its balances are in the cache
			default:
			}
		}
		st := &stage{calls: calls, n: n, pred: pred, prepared: make(chan struct{}),
			first: firstOutcome{known: make(chan struct{})}, done: make(chan struct{})}
		stages <- st
		// The next commit builds on this one's balances once it has them, and on nothing older
		// than its own predecessor: two commits in flight at most.
		<-st.prepared
		if prev != nil {
			<-prev.done
			away += len(prev.calls)
		}
		prev = st
	}
}

// fill adds to calls, the first request of a commit, the requests queued behind it, up to
// ledger.MaxBatchTransfers transfers, and returns them with the request that did not fit (nil if
// none). away counts the requests answered whose clients have not sent their next one yet; fill
// returns what is left of it. While inFlight, the commit before, is still committing, the queue
// running dry does not end the commit at once: it waits for those clients, for tr.linger at
// most, after which they are not counted on any more. So the clients' requests keep gathering
// into a few commits rather than spreading over many small ones, each paying a commit's round
// trip, statements and WAL flush; the commit in flight has the database meanwhile, and the wait
// ends as soon as it is done.
func (tr *Transfers) fill(ctx context.Context, calls []*transferCall, inFlight *stage, away int) ([]*transferCall, *transferCall, int) {
	n := len(calls[0].batch)
	var linger *time.Timer
	defer func() {
		if linger != nil {
			linger.Stop()
		}
	}()
	for !openChain(calls[len(calls)-1].batch) {
		var c *transferCall
		select {
		case c = <-tr.queue:
		default:
			if inFlight == nil || away == 0 {
				return calls, nil, away
			}
			if linger == nil {
				linger = time.NewTimer(tr.linger)
			}
			select {
			case c = <-tr.queue:
			case <-linger.C:
				return calls, nil, 0
			case <-inFlight.done:
				return calls, nil, away
			case <-ctx.Done():
				return calls, nil, away
			}
		}
		away = max(away-1, 0)
		if n+len(c.batch) > ledger.MaxBatchTransfers {
			return calls, c, away
		}
		calls = append(calls, c)
		n += len(c.batch)
	}
	return calls, nil, away
}

// stage is one commit of the pipeline: its requests, and what the commit after it waits for.
type stage struct {
	calls []*transferCall
	n     int
	// pred is the commit before, still in flight when this one started; nil if it was done.
	pred *stage
	// prepared is closed once the first attempt has applied its batch, with written holding the
	// balances it wrote, or has failed, with written nil.
	prepared chan struct{}
	written  map[balanceKey]cachedAccount
	// first is the first attempt's outcome.
	first firstOutcome
	// done is closed once every request of the stage is answered and its balances are cached.
	done     chan struct{}
	prepOnce sync.Once
}

func (st *stage) prepare(written map[balanceKey]cachedAccount) {
	st.prepOnce.Do(func() {
		st.written = written
		close(st.prepared)
	})
}

// resolveFirst records the first attempt's outcome, once.
func (st *stage) resolveFirst(committed bool) {
	st.prepare(nil)
	st.first.resolve(committed)
}

// wait waits until st is done, or ctx ends.
func (st *stage) wait(ctx context.Context) error {
	select {
	case <-st.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// runStage commits st's requests and answers them.
func (tr *Transfers) runStage(ctx context.Context, st *stage) {
	// The commit outlives a cancelled ctx, within its own bound: its callers are waiting, and
	// its result decides what they answer.
	start := time.Now()
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), transferCommitTimeout)
	answers := tr.commitApart(cctx, st)
	cancel()
	took := time.Since(start)
	st.resolveFirst(false) // a no-op unless the first attempt never ran
	// Counted before its callers are answered: a caller holding its answer sees its commit counted.
	if tr.OnCommit != nil {
		tr.onCommitMu.Lock()
		tr.OnCommit(len(st.calls), st.n, took)
		tr.onCommitMu.Unlock()
	}
	for i, c := range st.calls {
		c.done <- answers[i]
	}
	close(st.done)
}

// openChain reports whether batch ends in a linked transfer: a chain the ledger refuses as open
// at the end of its batch, which must not run into another request's transfers.
func openChain(batch []ledger.Transfer) bool {
	return len(batch) > 0 && batch[len(batch)-1].Flags&ledger.Linked != 0
}

// commitApart commits st's requests and answers each of them, apart from the one at fault when
// the transaction fails (commitApart). The halves run once st's predecessor is done.
func (tr *Transfers) commitApart(ctx context.Context, st *stage) []transferAnswer {
	var waitPred func(context.Context) error
	if st.pred != nil {
		waitPred = st.pred.wait
	}
	return commitApart(ctx, st.calls,
		func(ctx context.Context, c []*transferCall) ([]transferAnswer, error) { return tr.commit(ctx, c, st) },
		func(ctx context.Context, c []*transferCall) ([]transferAnswer, error) { return tr.commit(ctx, c, nil) },
		waitPred, func(err error) transferAnswer { return transferAnswer{err: err} })
}

// errPredecessorFailed fails a speculative attempt whose predecessor's first attempt did not
// commit: the balances it built on were never written. It is decided again, as a conflict is.
var errPredecessorFailed = conflictError{errors.New("the commit before did not commit: decided again")}

// firstOutcome is the outcome of a pipelined commit's first attempt, which a commit built on it
// waits for before its own COMMIT.
type firstOutcome struct {
	known chan struct{} // closed once the outcome is known
	ok    bool          // the first attempt committed
	once  sync.Once
}

// resolve records the outcome, once.
func (o *firstOutcome) resolve(committed bool) {
	o.once.Do(func() {
		o.ok = committed
		close(o.known)
	})
}

// ready reports whether the outcome is known.
func (o *firstOutcome) ready() bool {
	select {
	case <-o.known:
		return true
	default:
		return false
	}
}

// await waits for the outcome: nil if the first attempt committed, errPredecessorFailed if not,
// ctx's error if ctx ends first.
func (o *firstOutcome) await(ctx context.Context) error {
	select {
	case <-o.known:
	case <-ctx.Done():
		return ctx.Err()
	}
	if !o.ok {
		return errPredecessorFailed
	}
	return nil
}

// commit applies the requests' transfers as one ledger batch in one transaction. With a stage
// whose predecessor is in flight, the first attempt is speculative: it builds on the balances the
// predecessor wrote and commits only if the predecessor's first attempt committed; any other
// attempt waits for the predecessor to be done and reads what it committed.
func (tr *Transfers) commit(ctx context.Context, calls []*transferCall, st *stage) ([]transferAnswer, error) {
	n := 0
	for _, c := range calls {
		n += len(c.batch)
	}
	batch := make([]ledger.Transfer, 0, n)
	for _, c := range calls {
		batch = append(batch, c.batch...)
	}
	var (
		res  BatchResult
		last int
		gate int64
	)
	// The BEGIN goes with the first statements: on cached balances, the writes.
	err := tr.store.inTx(ctx, nil, true, func(ctx context.Context, tx *Tx) error {
		last = tx.attempt
		var pred *stage
		if st != nil {
			pred = st.pred
		}
		if tx.attempt > 1 && st != nil {
			st.resolveFirst(false)
		}
		if pred != nil {
			<-pred.prepared // closed before this stage started: the pipeline waits for it
			if tx.attempt == 1 && pred.written != nil {
				tx.overlay, tx.speculative = pred.written, true
			} else if err := pred.wait(ctx); err != nil {
				return err
			}
		}
		if tr.fault != nil {
			if err := tr.fault(batch, false); err != nil {
				return err
			}
		}
		if tx.attempt == 1 && tr.gateKnown.Load() {
			tx.gateGuess, tx.gateGuessed = tr.gate.Load(), true
		}
		// A small batch's writes wait for the COMMIT, to go with it in one round trip.
		tx.deferWrites = true
		var err error
		res, err = tx.Apply(ctx, batch)
		if err != nil {
			return err
		}
		gate = tx.gate // read, or guessed and checked, once Apply has written
		if st != nil && tx.attempt == 1 {
			st.prepare(tx.written)
		}
		if tr.fault != nil {
			if err := tr.fault(batch, true); err != nil {
				return err
			}
		}
		// An attempt that leaned on none of its predecessor's balances commits without waiting
		// for it: it wrote none of the balance rows the predecessor wrote or read, and a stale
		// balance or a reused id still collides on a key, as between any two writers. One that
		// leaned on a predecessor still committing sends its writes first, so that they are
		// written while it waits, and its COMMIT once the predecessor's is known.
		if tx.speculative && tx.leaned {
			if !pred.first.ready() {
				if err := tx.Flush(ctx, nil); err != nil {
					return err
				}
			}
			if err := pred.first.await(ctx); err != nil {
				return err
			}
		}
		return commitWithWrites(ctx, tx)
	})
	if st != nil {
		st.resolveFirst(err == nil && last == 1)
	}
	if err != nil {
		return nil, err
	}
	tr.gate.Store(gate)
	tr.gateKnown.Store(true)
	answers := make([]transferAnswer, len(calls))
	at := 0
	for i, c := range calls {
		answers[i] = transferAnswer{results: res.Results[at : at+len(c.batch) : at+len(c.batch)], ts: res.Timestamp}
		at += len(c.batch)
	}
	return answers, nil
}

// commitWithWrites sends the transaction's queued writes (Tx.deferWrites) with its COMMIT, in
// one round trip: the lazy transaction has then committed, and its Commit sends nothing. A
// transaction whose writes went out already (a batch too large to queue, or sent while it waited
// for its predecessor) is committed by its Commit, in a round trip of its own.
func commitWithWrites(ctx context.Context, tx *Tx) error {
	if tx.queued == nil {
		return nil
	}
	b := &pgx.Batch{}
	queueCommit(b)
	return tx.Flush(ctx, b)
}
