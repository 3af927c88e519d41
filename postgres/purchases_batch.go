package postgres

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/joinincard/engine/cards"
	"github.com/joinincard/engine/events"
	"github.com/joinincard/engine/fees"
	"github.com/joinincard/engine/ledger"
	"github.com/joinincard/engine/purchases"
)

const (
	// maxQueuedRequests bounds the merchants' requests waiting for the committer. At 2,000
	// authorizations/s and a commit every few milliseconds a few dozen wait; 4,096 rides out a
	// two-second stall of the database before requests are turned away (ErrPurchasesBusy, a 503)
	// instead of piling up in memory.
	maxQueuedRequests = 4096
	// maxRequestsPerCommit bounds one commit. A request plans at most MaxIncrements+2 transfers,
	// so 256 of them stay far below ledger.MaxBatchTransfers, and a burst of thousands drains in
	// a dozen commits of a few milliseconds each.
	maxRequestsPerCommit = 256
	// commitTimeout bounds one commit, retries included. A commit of a full batch takes
	// milliseconds; one still running after ten seconds has a database that does not answer,
	// and its callers get an error rather than wait for ever.
	commitTimeout = 10 * time.Second
)

var (
	// ErrIdempotencyKeyReused is returned for a request whose idempotency key was used before
	// with a different request.
	ErrIdempotencyKeyReused = errors.New("idempotency key reused with a different request")
	// ErrPurchasesBusy is returned when the committer's queue is full: retry shortly.
	ErrPurchasesBusy = errors.New("too many purchase requests waiting")
	// ErrPurchasesStopped is returned for requests made after the committer stopped, or left in
	// its queue when it stopped: nothing of them was applied.
	ErrPurchasesStopped = errors.New("purchase committer stopped")
)

// Operation is what a merchant asks of the purchase engine.
type Operation string

const (
	OpAuthorize Operation = "authorize"
	OpIncrement Operation = "increment"
	OpCapture   Operation = "capture"
	OpVoid      Operation = "void"
	OpRefund    Operation = "refund"
)

// PurchaseRequest is one merchant request.
type PurchaseRequest struct {
	Op       Operation
	Merchant purchases.Merchant // the merchant whose key made the request
	Key      uuid.UUID          // the idempotency key, unique per merchant
	// Hash is the SHA-256 of the request's content: the same key with another hash is refused.
	Hash [32]byte
	// AuthorizationID names the authorization of an increment, capture, void or refund.
	AuthorizationID ledger.ID
	// CardToken is the card of an authorization: any of its tokens.
	CardToken string
	// Amount is the amount in fen; AmountErr says why the request's amount is not one, which
	// declines an authorization or increment and refuses a capture or refund.
	Amount    int64
	AmountErr error
	// Full captures everything the authorization holds when the capture is applied; Amount is
	// then ignored.
	Full bool
}

// PurchaseResult is what a request made: one of its fields, by the operation.
type PurchaseResult struct {
	// Replayed says the request repeats an earlier one with the same key and content: this is
	// that request's result, as it was made.
	Replayed      bool
	Authorization *purchases.Authorization // authorize: as decided
	Increment     *purchases.Increment     // increment
	Close         *purchases.Close         // capture, void
	Refund        *purchases.Refund        // refund
}

// Purchases is the purchase engine on the store: merchants, their requests and their records.
// Requests that move money (authorize, increment, capture, void, refund) queue for one committer
// goroutine (Run), which takes whatever has queued, up to maxRequestsPerCommit, decides it and
// commits it in one transaction: the holds are durable before any answer goes out, and a commit
// serves all the requests that arrived while the one before it was being written.
//
// Every decision reads what it needs in the transaction that writes it, and every write that
// could race another process's (a balance version, a hold's resolution, a refund's sequence
// number, an idempotency key) collides on a key and retries the transaction whole: limits, funds
// and refund totals hold across processes too.
type Purchases struct {
	store     *Store
	builtIn   *fees.Catalog // the plans built into the binary, until the store's tariffs are loaded
	merchants *merchantCache
	queue     chan *purchaseCall
	stopped   chan struct{}
	// OnCommit, if set, is called by the committer after each transaction with the number of
	// requests it carried and how long it took, retries included, one call at a time. Set it
	// before Run.
	OnCommit   func(requests int, took time.Duration)
	onCommitMu sync.Mutex
	// beforeCommit, if set (by tests), is called in each attempt's transaction once the batch
	// is decided and written, before it commits.
	beforeCommit func(ctx context.Context, tx pgx.Tx, reqs []PurchaseRequest)
	// afterLoad, if set (by tests), is called in each attempt's transaction once the batch's
	// lookups are read, before anything is decided.
	afterLoad func(ctx context.Context, tx pgx.Tx)
	stats     purchaseStats
}

// purchaseStats count how the committer's transactions went.
type purchaseStats struct {
	// awaited counts attempts that built on a commit still in flight and waited for its outcome
	// before sending their writes.
	awaited atomic.Int64
	// commitsApart counts transactions that committed with a COMMIT in a round trip of its own,
	// not in their writes'.
	commitsApart atomic.Int64
}

type purchaseCall struct {
	req  PurchaseRequest
	done chan purchaseAnswer // buffered: the committer never waits for a caller
}

type purchaseAnswer struct {
	res PurchaseResult
	err error
}

// NewPurchases returns the purchase engine on st, pricing with the fee plans built into the
// binary. Call Run to start its committer.
func NewPurchases(st *Store) (*Purchases, error) {
	cat, err := feeCatalog()
	if err != nil {
		return nil, fmt.Errorf("load fee plans: %w", err)
	}
	return &Purchases{
		store: st, builtIn: cat, merchants: &merchantCache{byKey: map[[32]byte]cachedMerchant{}},
		queue: make(chan *purchaseCall, maxQueuedRequests), stopped: make(chan struct{}),
	}, nil
}

// Run commits queued requests until ctx is done, then refuses what is left with
// ErrPurchasesStopped. Commits under way when ctx ends are finished first, within their own
// bound. Call it once.
//
// Commits are pipelined two deep, as the transfers committer's are: while one commits, the next
// is read and decided on the balances the first wrote (speculative, see purchaseStage), and its
// writes go with its COMMIT, in one round trip, once the first has committed. So the next batch's
// lookups overlap the commit before it, and the requests that queue meanwhile wait for one
// commit, not two. A batch that names a card, an
// authorization or an idempotency key of the commit in flight waits for it instead: what it
// reads of them must be what that commit wrote.
func (p *Purchases) Run(ctx context.Context) {
	var prev *purchaseStage
	defer func() {
		if prev != nil {
			<-prev.done
		}
		close(p.stopped)
		for {
			select {
			case c := <-p.queue:
				c.done <- purchaseAnswer{err: ErrPurchasesStopped}
			default:
				return
			}
		}
	}()
	for {
		if ctx.Err() != nil {
			return
		}
		batch := make([]*purchaseCall, 0, maxRequestsPerCommit)
		select {
		case <-ctx.Done():
			return
		case c := <-p.queue:
			batch = append(batch, c)
		}
	fill:
		for len(batch) < maxRequestsPerCommit {
			select {
			case c := <-p.queue:
				batch = append(batch, c)
			default:
				break fill
			}
		}
		pred := prev
		if pred != nil {
			select {
			case <-pred.done:
				pred = nil // committed: its balances are in the cache, its rows in the tables
			default:
				if pred.overlaps(batch) {
					<-pred.done
					pred = nil
				}
			}
		}
		st := &purchaseStage{calls: batch, pred: pred, prepared: make(chan struct{}),
			first: firstOutcome{known: make(chan struct{})}, done: make(chan struct{})}
		go p.runStage(ctx, st)
		// The next commit builds on this one's writes once it has decided them, and on nothing
		// older than its own predecessor: two commits in flight at most.
		<-st.prepared
		if prev != nil {
			<-prev.done
		}
		prev = st
	}
}

// purchaseStage is one commit of the pipeline: its requests, and what the commit after it waits for.
type purchaseStage struct {
	calls []*purchaseCall
	// pred is the commit before, still in flight when this one started; nil if it was done.
	pred *purchaseStage
	// prepared is closed once the first attempt has decided everything and sends its writes, with
	// written holding the balances it writes and cards the cards its requests read, or has failed,
	// with written nil.
	prepared chan struct{}
	written  map[balanceKey]cachedAccount
	cards    map[string]bool
	// first is the first attempt's outcome.
	first firstOutcome
	// done is closed once every request of the stage is answered and its balances are cached.
	done     chan struct{}
	prepOnce sync.Once
}

func (st *purchaseStage) prepare(written map[balanceKey]cachedAccount, cards map[string]bool) {
	st.prepOnce.Do(func() {
		st.written, st.cards = written, cards
		close(st.prepared)
	})
}

// resolveFirst records the first attempt's outcome, once.
func (st *purchaseStage) resolveFirst(committed bool) {
	st.prepare(nil, nil)
	st.first.resolve(committed)
}

// wait waits until st is done, or ctx ends.
func (st *purchaseStage) wait(ctx context.Context) error {
	select {
	case <-st.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// overlaps reports whether batch names anything st's requests name: a card token, an
// authorization or an idempotency key. Such a batch must read what st commits, not build on it.
func (st *purchaseStage) overlaps(batch []*purchaseCall) bool {
	names := make(map[string]bool, 2*len(st.calls))
	for _, c := range st.calls {
		for _, n := range c.req.names() {
			names[n] = true
		}
	}
	for _, c := range batch {
		for _, n := range c.req.names() {
			if names[n] {
				return true
			}
		}
	}
	return false
}

// names are what a request reads and writes that another request may too: its idempotency key,
// and its card token or its authorization.
func (r *PurchaseRequest) names() []string {
	key := "key/" + r.Merchant.ID + "/" + r.Key.String()
	if r.Op == OpAuthorize {
		return []string{key, "token/" + r.CardToken}
	}
	return []string{key, "authorization/" + r.AuthorizationID.String()}
}

// runStage commits st's requests and answers them.
func (p *Purchases) runStage(ctx context.Context, st *purchaseStage) {
	// The commit outlives a cancelled ctx, within its own bound: its callers are waiting, and
	// its result decides what they answer.
	start := time.Now()
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), commitTimeout)
	answers := p.commitApart(cctx, st)
	cancel()
	took := time.Since(start)
	st.resolveFirst(false) // a no-op unless the first attempt never ran
	if p.OnCommit != nil {
		p.onCommitMu.Lock()
		p.OnCommit(len(st.calls), took)
		p.onCommitMu.Unlock()
	}
	for i, c := range st.calls {
		c.done <- answers[i]
	}
	close(st.done)
}

// Do queues req for the committer and waits for its answer. The errors a caller acts on are
// *purchases.Refusal (the authorization's state or the amount refuses the request),
// ErrIdempotencyKeyReused, ErrPurchasesBusy and ErrPurchasesStopped; a ctx that ends first
// returns its error, and the request may still be applied: retry with the same key to learn.
func (p *Purchases) Do(ctx context.Context, req PurchaseRequest) (PurchaseResult, error) {
	c := &purchaseCall{req: req, done: make(chan purchaseAnswer, 1)}
	select {
	case <-p.stopped:
		return PurchaseResult{}, ErrPurchasesStopped
	default:
	}
	select {
	case p.queue <- c:
	default:
		return PurchaseResult{}, ErrPurchasesBusy
	}
	select {
	case a := <-c.done:
		return a.res, a.err
	case <-ctx.Done():
		return PurchaseResult{}, ctx.Err()
	case <-p.stopped:
		// The committer answers every request it committed before it stops: an answer that is
		// not there now never comes, and the request was not applied.
		select {
		case a := <-c.done:
			return a.res, a.err
		default:
			return PurchaseResult{}, ErrPurchasesStopped
		}
	}
}

// commitApart commits st's requests and answers each of them, apart from the one at fault when
// the transaction fails (commitApart). The halves run once st's predecessor is done.
func (p *Purchases) commitApart(ctx context.Context, st *purchaseStage) []purchaseAnswer {
	var waitPred func(context.Context) error
	if st.pred != nil {
		waitPred = st.pred.wait
	}
	return commitApart(ctx, st.calls,
		func(ctx context.Context, b []*purchaseCall) ([]purchaseAnswer, error) { return p.commit(ctx, b, st) },
		func(ctx context.Context, b []*purchaseCall) ([]purchaseAnswer, error) { return p.commit(ctx, b, nil) },
		waitPred, func(err error) purchaseAnswer { return purchaseAnswer{err: err} })
}

// errKeysUnread fails a first attempt that did not read its idempotency keys (execution.keysUnread)
// and has a request that writes no record of its key: it is decided again with the keys read.
var errKeysUnread = conflictError{errors.New("a request of a batch whose keys were not read writes no record of its key: decided again")}

// errPredecessorCards fails a speculative attempt whose requests turn out to name a card the
// commit in flight names too, by another of its tokens: its reads of that card (what it approved
// today) miss what the commit in flight writes. It is decided again once that commit is done.
var errPredecessorCards = conflictError{errors.New("a card of the commit in flight: decided again")}

// commit decides and writes a batch in one transaction, then reads the earlier results that
// replays repeat. With a stage whose predecessor is in flight, the first attempt is speculative:
// it builds on the balances the predecessor wrote and commits only if the predecessor's first
// attempt committed; any other attempt waits for the predecessor to be done and reads what it
// committed.
func (p *Purchases) commit(ctx context.Context, batch []*purchaseCall, st *purchaseStage) ([]purchaseAnswer, error) {
	reqs := make([]PurchaseRequest, len(batch))
	for i, c := range batch {
		reqs[i] = c.req
	}
	var (
		ex   *execution
		last int
	)
	// Its BEGIN goes with the batch that reads what the requests need.
	err := p.store.inTx(ctx, nil, true, func(ctx context.Context, tx *Tx) error {
		last = tx.attempt
		var pred *purchaseStage
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
		// The ledger's writes go with the purchase records, in one round trip.
		tx.deferWrites = true
		ex = &execution{p: p, tx: tx, reqs: reqs, now: p.store.Now().UTC().Truncate(time.Microsecond), fees: p.FeeCatalog()}
		if tx.speculative {
			ex.busyCards = pred.cards
		}
		// The COMMIT goes with the writes, in their round trip, unless a test looks in between
		// (beforeCommit). An attempt that built on the commit in flight waits for that commit's
		// outcome before it sends them (awaitPredecessor), rather than send its COMMIT in a round
		// trip of its own once it is known; any other attempt rests on nothing uncommitted.
		ex.mayCommit = func() bool { return p.beforeCommit == nil }
		if tx.speculative {
			ex.awaitPredecessor = func(ctx context.Context) error {
				if !pred.first.ready() {
					p.stats.awaited.Add(1)
				}
				return pred.first.await(ctx)
			}
		}
		if st != nil && tx.attempt == 1 {
			// The next commit starts once this one has decided, while its writes (and its
			// COMMIT with them) are on their way: it builds on the balances decided here.
			ex.decided = func() {
				cards := make(map[string]bool, len(ex.cards))
				for _, c := range ex.cards {
					cards[c.Token] = true
				}
				st.prepare(tx.written, cards)
			}
		}
		if err := ex.run(ctx); err != nil {
			return err
		}
		if p.beforeCommit != nil {
			p.beforeCommit(ctx, tx.Tx, reqs)
		}
		if tx.speculative && !ex.rows.commit {
			return pred.first.await(ctx)
		}
		return nil
	})
	if st != nil {
		st.resolveFirst(err == nil && last == 1)
	}
	if err != nil {
		return nil, err
	}
	if !ex.rows.commit {
		p.stats.commitsApart.Add(1)
	}
	for i := range ex.answers {
		if r := ex.replays[i]; r != nil {
			ex.answers[i].res, ex.answers[i].err = p.readResult(ctx, r.op, r.result)
			ex.answers[i].res.Replayed = true
		}
	}
	return ex.answers, nil
}

// replay is a request that repeats an earlier one: the operation and the id of what it made.
type replay struct {
	op     Operation
	result ledger.ID
}

// execution is one attempt at a batch's transaction.
type execution struct {
	p    *Purchases
	tx   *Tx
	reqs []PurchaseRequest
	now  time.Time
	fees *fees.Catalog // the fee plans in force when the transaction started

	answers []purchaseAnswer
	replays []*replay   // answered from an earlier transaction's request, after the commit
	dups    map[int]int // answered as an earlier request of the batch with the same key

	// busyCards are the cards (by their own token) of the commit in flight that a speculative
	// attempt follows: a batch that reads one of them is decided again once that commit is done.
	busyCards map[string]bool

	// decided, if set, is called once the batch is decided and the ledger's writes are queued,
	// before they are sent.
	decided func()
	// mayCommit, if set, reports whether the transaction may commit with its writes, in their
	// round trip (purchaseRows.commit): it has nothing to wait for once they are written.
	mayCommit func() bool
	// awaitPredecessor, if set, waits, before the writes are sent, for the first attempt of the
	// commit in flight that this speculative attempt built on, and fails it unless that committed.
	awaitPredecessor func(ctx context.Context) error

	// keysUnread says the first attempt of a batch of authorizations did not read its idempotency
	// keys: each request writes its key's record, and a key used before collides with its record
	// on the primary key, which runs the transaction again, reading them (errKeysUnread).
	keysUnread bool

	auths  map[ledger.ID]*AuthorizationRecord
	cards  map[string]*cards.Card // by every token the batch names
	limits map[string]purchases.Limits
	usage  map[string]int64 // approved today, by the card's own token
	// loadedUsage is usage as the batch's lookups read it, before the batch's own approvals.
	loadedUsage map[string]int64
	planned     map[int]*plannedRequest
	rows        purchaseRows
}

// plannedRequest is a request's plan waiting for the ledger's results.
type plannedRequest struct {
	auth   *purchases.Authorization
	inc    *purchases.Increment
	close  *purchases.Close
	refund *purchases.Refund
	first  int // its transfers in the round's batch
	n      int
}

func (ex *execution) run(ctx context.Context) error {
	n := len(ex.reqs)
	ex.answers, ex.replays, ex.dups = make([]purchaseAnswer, n), make([]*replay, n), map[int]int{}
	for _, r := range ex.reqs {
		if r.Op == OpCapture || r.Op == OpRefund {
			// Priced by the fee plans of every upload committed before, and none commits
			// before this transaction does.
			cat, err := ex.tx.feePlansHeld(ctx, ex.fees)
			if err != nil {
				return err
			}
			ex.fees = cat
			break
		}
	}
	ex.planned = map[int]*plannedRequest{}
	prior, err := ex.load(ctx)
	if err != nil {
		return err
	}
	if ex.p.afterLoad != nil {
		ex.p.afterLoad(ctx, ex.tx.Tx)
	}
	for _, c := range ex.cards {
		if ex.busyCards[c.Token] {
			return errPredecessorCards
		}
	}
	live := ex.dedupe(prior)
	for _, round := range ex.rounds(live) {
		if err := ex.runRound(ctx, round); err != nil {
			return err
		}
	}
	if ex.keysUnread && len(ex.rows.requests) != len(live) {
		// A request that writes no record of its key would not collide with an earlier one.
		return errKeysUnread
	}
	if err := ex.recheckRefusedKeys(ctx, live); err != nil {
		return err
	}
	for i, j := range ex.dups {
		ex.answers[i] = ex.answers[j]
		ex.answers[i].res.Replayed = ex.answers[j].err == nil
		ex.replays[i] = ex.replays[j]
	}
	if ex.decided != nil {
		ex.decided()
	}
	if ex.awaitPredecessor != nil {
		if err := ex.awaitPredecessor(ctx); err != nil {
			return err
		}
	}
	ex.rows.commit = ex.mayCommit != nil && ex.mayCommit()
	ex.rows.plansOnce = ex.p.store.postgreSQL
	ex.queueDayCheck()
	return ex.rows.write(ctx, ex.tx, ex.now)
}

// dayCheck fails on the server, and so fails the round trip of the batch's writes and its COMMIT
// with them, unless every card ($1) has at most the day's approvals ($2) the batch read, in the
// Shanghai day from $3 to $4: a release since (a void, a capture of less) only makes the batch's
// judgement stricter than it had to be. Its error names dayMovedText, which tells the committer why
// (errDayMoved). The CAST of the text fails alike on PostgreSQL and CockroachDB.
var dayCheck = `SELECT CAST(CASE WHEN bool_and(u.used <= k.used) IS NOT FALSE THEN '0' ELSE '` + dayMovedText + `' END AS INT)
	FROM unnest($1::TEXT[], $2::BIGINT[]) AS k(card_token, used)
	CROSS JOIN LATERAL (SELECT k.card_token AS card_token) c
	CROSS JOIN LATERAL (SELECT ` + dayApprovals("$3", "$4") + ` AS used) u`

// dayMovedText is what dayCheck fails with: a value no cast to INT takes.
const dayMovedText = "the approvals of the day moved on a card"

// errDayMoved fails an attempt that approved on a card whose day another process added to
// between the batch's read of it and its ledger's read of the card's balance: the batch is
// decided again on the day as it is.
var errDayMoved = conflictError{errors.New("a card's approvals of the day changed since they were read: decided again")}

// queueDayCheck queues, first in the round trip of the batch's writes, the check that the cards
// it approved on still have the day it read. On PostgreSQL each statement reads what was
// committed when it began: another process may approve on a card after this transaction read
// the card's day and before its ledger read the card's balance, and the ledger then builds on
// that approval's balance, with nothing to collide with, while the daily limit was judged
// without it. Every approval writes its card's balance, so one committed before the ledger's read
// is seen here, and one committed after collides with this batch's balance version.
func (ex *execution) queueDayCheck() {
	seen := map[string]bool{}
	var (
		tokens []string
		used   []int64
	)
	add := func(card string) {
		if !seen[card] {
			seen[card] = true
			tokens, used = append(tokens, card), append(used, ex.loadedUsage[card])
		}
	}
	for _, a := range ex.rows.authorizations {
		if a.Approved {
			add(a.CardToken)
		}
	}
	for _, inc := range ex.rows.increments {
		if inc.Approved {
			add(inc.cardToken)
		}
	}
	if len(tokens) == 0 {
		return
	}
	start, end := purchases.Day(ex.now)
	b := &pgx.Batch{}
	b.Queue(dayCheck, tokens, used, start.UTC(), end.UTC()).QueryRow(func(row pgx.Row) error {
		var ok int64
		if err := row.Scan(&ok); err != nil {
			var pgErr *pgconn.PgError
			if errors.As(err, &pgErr) && strings.Contains(pgErr.Message, dayMovedText) {
				return errDayMoved
			}
			return fmt.Errorf("check the cards' day: %w", err)
		}
		return nil
	})
	if ex.tx.queued != nil {
		b.QueuedQueries = append(b.QueuedQueries, ex.tx.queued.QueuedQueries...)
	}
	ex.tx.queued = b
}

// recheckRefusedKeys reads again the keys of the requests on an authorization that were refused
// for its state. Another engine may have committed the same request, with the same key, after
// this transaction read the keys and before it read the authorization that request closed or
// refunded: on PostgreSQL each statement reads what was committed when it began. The refusal
// would then answer the request with what it did itself. A key found now is answered as the
// replay it is (or as reused, with another request's content); the refusal stands otherwise. A
// refused request writes nothing, so nothing is undone.
func (ex *execution) recheckRefusedKeys(ctx context.Context, live []int) error {
	var (
		refused   []int
		merchants []string
		keys      []uuid.UUID
	)
	for _, i := range live {
		r := ex.reqs[i]
		var rf *purchases.Refusal
		if r.Op == OpAuthorize || !errors.As(ex.answers[i].err, &rf) || rf.Code != purchases.RefusedConflict {
			continue
		}
		refused = append(refused, i)
		merchants, keys = append(merchants, r.Merchant.ID), append(keys, r.Key)
	}
	if len(refused) == 0 {
		return nil
	}
	prior := map[requestKey]storedRequest{}
	rows, err := ex.tx.Query(ctx, idempotencyLookup, merchants, keys)
	if err != nil {
		return fmt.Errorf("read the keys of refused requests again: %w", err)
	}
	err = scanStoredRequests(prior)(rows)
	rows.Close()
	if err == nil {
		err = rows.Err()
	}
	if err != nil {
		return fmt.Errorf("read the keys of refused requests again: %w", err)
	}
	for _, i := range refused {
		r := ex.reqs[i]
		s, ok := prior[requestKey{r.Merchant.ID, r.Key}]
		switch {
		case !ok:
		case s.op != r.Op || s.hash != r.Hash:
			ex.answers[i].err = ErrIdempotencyKeyReused
		default:
			ex.answers[i].err = nil
			ex.replays[i] = &replay{op: s.op, result: s.result}
		}
	}
	return nil
}

// customPlans has PostgreSQL plan the rest of the transaction's statements for the values each
// execution is given, as CockroachDB always does. Left to itself, PostgreSQL settles on a
// generic plan for a prepared statement after five executions, costed on its tables' sizes at
// that moment, and keeps it for the life of the connection: a lookup by key first run while its
// table was small keeps scanning the whole table as it grows. An authorization run on a new
// database did 1,420 whole scans of purchase_requests (11.8 million rows read in ten seconds)
// against 794 index probes, and answered 824-1,244 requests/s from 16 clients instead of 2,160.
// Planning each execution costs tens of microseconds a statement. The consumer's statements,
// which carry thousands of keys each, keep the generic plan: its estimate of ten keys probes
// the index, and planning for thousands of keys costs milliseconds.
const customPlans = `SET LOCAL plan_cache_mode = force_custom_plan`

// insertPlans has PostgreSQL keep one plan per statement for the rest of the transaction: what
// a purchase commit sends last (its ledger rows, its purchase records, often its COMMIT) is
// INSERTs, and an INSERT of given rows scans nothing, so the plan made once serves any table
// size, where customPlans would plan each of them again in every commit. It is sent only before
// a round trip of INSERTs alone (insertsOnly): a capture's or a void's writes also delete the
// holds they close, by key, and keep plans made for their keys.
const insertPlans = `SET LOCAL plan_cache_mode = force_generic_plan`

// insertsOnly says every statement queued on bs inserts rows, or is the settlement gate's read
// of its one row by key, or the check of the cards' day (dayCheck), which probes by key.
func insertsOnly(bs ...*pgx.Batch) bool {
	for _, b := range bs {
		if b == nil {
			continue
		}
		for _, q := range b.QueuedQueries {
			if !strings.HasPrefix(q.SQL, "INSERT INTO ") && q.SQL != settlementGateRead && q.SQL != dayCheck && q.SQL != "COMMIT" {
				return false
			}
		}
	}
	return true
}

// idempotencyLookup reads the idempotency records of (merchant, key) pairs.
const idempotencyLookup = `SELECT r.merchant_id, r.idempotency_key, r.operation, r.request_hash, r.result_id
	FROM unnest($1::TEXT[], $2::UUID[]) AS k(merchant_id, idempotency_key)
	JOIN purchase_requests r ON r.merchant_id = k.merchant_id AND r.idempotency_key = k.idempotency_key`

// dayApprovals is what card c's approvals of a Shanghai day (from the parameter from to the
// parameter to) hold or took: each hold (an authorization's own, an increment's) on the day it was
// approved, less what the merchant released of it (all of it by a void; beyond a capture, which
// posts the holds in order, the latest holds first). The two card lookups share it.
//
// It reads the card's holds of the day by card and time, and the closes that released something
// (purchase_closes_released) by card from the day's start: only those are followed to the holds
// they released, so the reads do not grow with the day's approvals. A close is recorded after the
// holds it releases; the hour before the day's start is read too, for engines whose clocks
// disagree by less than that.
func dayApprovals(from, to string) string {
	return `(SELECT coalesce(sum(a.amount), 0) FROM purchase_authorizations a
			WHERE a.approved AND a.card_token = c.card_token AND a.created_at >= ` + from + ` AND a.created_at < ` + to + `)::BIGINT
		+ (SELECT coalesce(sum(i.amount), 0) FROM purchase_increments i
			WHERE i.approved AND i.card_token = c.card_token AND i.created_at >= ` + from + ` AND i.created_at < ` + to + `)::BIGINT
		- (SELECT coalesce(sum((SELECT coalesce(sum(greatest(0, least(a.amount, x.released - (SELECT coalesce(sum(j.amount), 0)
						FROM purchase_increments j WHERE j.authorization_id = a.authorization_id AND j.approved)))), 0)
					FROM purchase_authorizations a
					WHERE a.authorization_id = x.authorization_id AND a.approved AND a.created_at >= ` + from + ` AND a.created_at < ` + to + `)
				+ (SELECT coalesce(sum(greatest(0, least(i.amount, x.released - (SELECT coalesce(sum(j.amount), 0)
						FROM purchase_increments j WHERE j.authorization_id = i.authorization_id AND j.approved
							AND (j.created_at > i.created_at OR j.created_at = i.created_at AND j.increment_id > i.increment_id))))), 0)
					FROM purchase_increments i
					WHERE i.authorization_id = x.authorization_id AND i.approved AND i.created_at >= ` + from + ` AND i.created_at < ` + to + `)), 0)
			FROM purchase_closes x
			WHERE x.card_token = c.card_token AND x.released > 0 AND x.created_at >= ` + from + `::TIMESTAMPTZ - INTERVAL '1 hour')::BIGINT`
}

// authorizationCardsLookup reads the cards by every token a batch names ($1) or its
// authorizations hold ($2), with their limits and their approvals (authorizations and
// increments) in the Shanghai day of the batch ($3 to $4), through the indexes of approvals by
// card and time. Each hold (the authorization's own, an increment's) counts on the day it was
// approved. What the merchant released of a hold (all of it by a void; beyond a capture, which
// posts the holds in order, the latest holds first) is not spent and does not count on that
// hold's day, as an issuer takes a reversal back from the day's total; a hold left to expire
// still counts.
var authorizationCardsLookup = `WITH wanted AS (
		SELECT token, card_token FROM card_tokens WHERE token = ANY($1)
		UNION SELECT card_token, card_token FROM purchase_authorizations WHERE authorization_id = ANY($2))
	SELECT w.token, ` + purchaseCardColumns + `, l.per_transaction, l.per_day,
		` + dayApprovals("$3", "$4") + `
	FROM wanted w JOIN cards c ON c.card_token = w.card_token LEFT JOIN card_limits l ON l.card_token = c.card_token`

// authorizationCardsByToken is authorizationCardsLookup for a batch that names no authorization,
// the usual batch of authorizations: the same rows without the union and its aggregate. Its plan
// is made once per connection (pinnedPlans), not for each commit: planning it for each batch's
// tokens cost 0.10-0.12 ms of the database's CPU a commit, twenty times its execution, where
// reusing one plan costs 0.006 ms. A plan made once must probe whatever the tables' sizes when
// it was made, so the query leaves the planner no other choice (TestCardsByTokenPlanPinned):
// the tokens are read by their key; the card and its limits are subqueries of one table each,
// correlated with the token's row and kept apart (OFFSET 0), which the planner can only read
// through an index on the correlated key or by scanning, and scans are ruled out; and each
// approvals sum is a subquery correlated with the card, likewise.
var authorizationCardsByToken = `SELECT w.token, c.card_token, c.declared_status, c.status_reason, c.permit_valid_until,
		c.funds_account_id, l.per_transaction, l.per_day,
		` + dayApprovals("$2", "$3") + `
	FROM card_tokens w
	CROSS JOIN LATERAL (SELECT ` + purchaseCardColumns + ` FROM cards c WHERE c.card_token = w.card_token OFFSET 0) c
	LEFT JOIN LATERAL (SELECT l.per_transaction, l.per_day FROM card_limits l WHERE l.card_token = c.card_token OFFSET 0) l ON true
	WHERE w.token = ANY($1)`

// pinnedPlans has PostgreSQL keep one plan for the rest of the transaction's statements, made
// with sequential scans ruled out, for a lookup written so that, without scans, every plan the
// planner can make of it probes an index (authorizationCardsByToken). The plan is made at the
// lookup's first execution on a connection, and again whenever a table it reads is analyzed,
// always under these settings: only the purchase committer runs it, and always after them. A scan
// stays possible where a table has no index on the key, so a plan test checks that each is probed.
// The rest of the transaction is the commit's INSERTs, which scan nothing either way.
var pinnedPlans = [...]string{`SET LOCAL plan_cache_mode = force_generic_plan`, `SET LOCAL enable_seqscan = off`}

// storedRequest is an earlier request's idempotency record.
type storedRequest struct {
	op     Operation
	hash   [32]byte
	result ledger.ID
}

type requestKey struct {
	merchant string
	key      uuid.UUID
}

// load reads what the batch may need, in one round trip: the idempotency records of its keys,
// the authorizations its requests name, the cards they name or their authorizations hold, and
// those cards' limits and what each had approved in the day.
func (ex *execution) load(ctx context.Context) (map[requestKey]storedRequest, error) {
	var (
		authIDs   []ledger.ID
		tokens    []string
		merchants = make([]string, len(ex.reqs))
		keys      = make([]uuid.UUID, len(ex.reqs))
	)
	for i, r := range ex.reqs {
		merchants[i], keys[i] = r.Merchant.ID, r.Key
		if r.Op == OpAuthorize {
			if r.CardToken != "" {
				tokens = append(tokens, r.CardToken)
			}
		} else {
			authIDs = append(authIDs, r.AuthorizationID)
		}
	}
	authKeys := make([]uuid.UUID, len(authIDs))
	for i, id := range authIDs {
		authKeys[i] = uuid.UUID(id)
	}
	ex.cards, ex.limits, ex.usage = map[string]*cards.Card{}, map[string]purchases.Limits{}, map[string]int64{}
	prior := map[requestKey]storedRequest{}
	b := &pgx.Batch{}
	// The settlement gate the batch's holds are stamped after, in the same round trip: first, so
	// that its one plan (a probe of one key) is kept rather than made again in every commit.
	ex.tx.QueueSettlementGate(b)
	// A merchant's keys are new but for its retries: a batch of authorizations first runs without
	// reading them, and a key used before fails the attempt when its record is written.
	ex.keysUnread = ex.tx.attempt == 1 && len(authIDs) == 0
	// The usual batch, a first attempt at authorizations, reads nothing but its cards, through a
	// plan made once (pinnedPlans); any other plans its lookups for their keys (customPlans).
	pinned := ex.keysUnread
	ex.rows.pinned = pinned && ex.p.store.postgreSQL
	if ex.p.store.postgreSQL {
		if pinned {
			for _, q := range pinnedPlans {
				b.Queue(q)
			}
		} else {
			b.Queue(customPlans)
		}
	}
	// One probe of the primary key per request, whatever the table's size: the pairs are joined,
	// not two lists matched (merchant_id = ANY(...) AND idempotency_key = ANY(...) gets a plan that
	// scans the whole table once it is large).
	if !ex.keysUnread {
		b.Queue(idempotencyLookup, merchants, keys).Query(scanStoredRequests(prior))
	}
	auths := queueAuthorizations(b, authIDs)
	dayStart, dayEnd := purchases.Day(ex.now)
	var cardsLookup *pgx.QueuedQuery
	if len(authKeys) == 0 {
		cardsLookup = b.Queue(authorizationCardsByToken, tokens, dayStart.UTC(), dayEnd.UTC())
	} else {
		cardsLookup = b.Queue(authorizationCardsLookup, tokens, authKeys, dayStart.UTC(), dayEnd.UTC())
	}
	cardsLookup.Query(func(rows pgx.Rows) error {
		for rows.Next() {
			var (
				tok, declared string
				c             cards.Card
				validUntil    time.Time
				funds         [16]byte
				perTx, perDay *int64
				used          int64
			)
			if err := rows.Scan(&tok, &c.Token, &declared, &c.StatusReason, &validUntil, &funds, &perTx, &perDay, &used); err != nil {
				return fmt.Errorf("scan card: %w", err)
			}
			y, m, d := validUntil.Date()
			c.PermitValidUntil = events.Date{Year: y, Month: m, Day: d}
			c.Declared = events.CardStatus(declared)
			c.FundsAccount = ledger.ID(funds)
			ex.cards[tok] = &c
			if perTx != nil && perDay != nil {
				ex.limits[c.Token] = purchases.Limits{PerTransaction: *perTx, PerDay: *perDay}
			}
			ex.usage[c.Token] = used
		}
		return rows.Err()
	})
	if err := ex.tx.SendBatch(ctx, b).Close(); err != nil {
		return nil, fmt.Errorf("read the batch's keys, authorizations and cards: %w", err)
	}
	ex.auths = auths.result()
	ex.loadedUsage = maps.Clone(ex.usage)
	return prior, nil
}

// scanStoredRequests reads the rows of idempotencyLookup into prior.
func scanStoredRequests(prior map[requestKey]storedRequest) func(pgx.Rows) error {
	return func(rows pgx.Rows) error {
		for rows.Next() {
			var (
				k      requestKey
				op     string
				hash   []byte
				result [16]byte
				s      storedRequest
			)
			if err := rows.Scan(&k.merchant, &k.key, &op, &hash, &result); err != nil {
				return err
			}
			copy(s.hash[:], hash)
			s.op, s.result = Operation(op), ledger.ID(result)
			prior[k] = s
		}
		return rows.Err()
	}
}

// dedupe answers the requests whose idempotency key was used before, in an earlier transaction
// or earlier in this batch, and returns the indexes of the others.
func (ex *execution) dedupe(prior map[requestKey]storedRequest) []int {
	first := map[requestKey]int{}
	var live []int
	for i, r := range ex.reqs {
		k := requestKey{r.Merchant.ID, r.Key}
		if s, ok := prior[k]; ok {
			if s.op != r.Op || s.hash != r.Hash {
				ex.answers[i].err = ErrIdempotencyKeyReused
			} else {
				ex.replays[i] = &replay{op: s.op, result: s.result}
			}
			continue
		}
		if j, ok := first[k]; ok {
			if ex.reqs[j].Op != r.Op || ex.reqs[j].Hash != r.Hash {
				ex.answers[i].err = ErrIdempotencyKeyReused
			} else {
				ex.dups[i] = j // its answer is its first's, known after the rounds
			}
			continue
		}
		first[k] = i
		live = append(live, i)
	}
	return live
}

// rounds orders the live requests into rounds in which no two requests touch the same card or
// the same authorization. A round is applied before the next is planned, so that a request is
// judged against the ledger's answer to the one before it: a card's second authorization in a
// batch counts the first against the daily limit only if the ledger approved it. Requests on
// different cards, the usual batch, all go in the first round.
func (ex *execution) rounds(live []int) [][]int {
	last := map[string]int{}
	var rounds [][]int
	for _, i := range live {
		keys := ex.conflictKeys(ex.reqs[i])
		r := 0
		for _, k := range keys {
			if n, ok := last[k]; ok {
				r = max(r, n+1)
			}
		}
		for _, k := range keys {
			last[k] = r
		}
		for len(rounds) <= r {
			rounds = append(rounds, nil)
		}
		rounds[r] = append(rounds[r], i)
	}
	return rounds
}

func (ex *execution) conflictKeys(r PurchaseRequest) []string {
	if r.Op == OpAuthorize {
		if c, ok := ex.cards[r.CardToken]; ok {
			return []string{"card/" + c.Token}
		}
		return nil
	}
	keys := []string{"authorization/" + r.AuthorizationID.String()}
	if a, ok := ex.auths[r.AuthorizationID]; ok && a.CardToken != "" {
		keys = append(keys, "card/"+a.CardToken)
	}
	return keys
}

// runRound plans a round's requests, applies their transfers in one ledger batch, and records
// what the ledger decided.
func (ex *execution) runRound(ctx context.Context, round []int) error {
	var (
		batch []ledger.Transfer
		order []int
	)
	for _, i := range round {
		pl, ts, err := ex.plan(i)
		if err != nil {
			return err
		}
		if pl == nil {
			continue // refused: answered
		}
		pl.first, pl.n = len(batch), len(ts)
		batch = append(batch, ts...)
		ex.planned[i] = pl
		order = append(order, i)
	}
	var results []ledger.Result
	expires := map[ledger.ID]time.Time{}
	if len(batch) > 0 {
		res, err := ex.tx.Apply(ctx, batch)
		if err != nil {
			return err
		}
		results = res.Results
		for i := range res.Created {
			if e := res.Created[i].ExpiresAt(); e != 0 {
				expires[res.Created[i].ID] = time.UnixMicro(e).UTC()
			}
		}
	}
	for _, i := range order {
		pl := ex.planned[i]
		if a := pl.auth; a != nil && a.Approved {
			// One clock for expiry: the authorization expires when the ledger's hold does.
			if e, ok := expires[a.ID]; ok {
				a.ExpiresAt = e
			}
		}
		ex.finish(i, pl, groupResult(results[pl.first:pl.first+pl.n]))
	}
	return nil
}

// groupResult is a linked group's outcome: Created if every transfer was, else the result of
// the transfer that failed it.
func groupResult(rs []ledger.Result) ledger.Result {
	failed := ledger.Created
	for _, r := range rs {
		if r == ledger.Created {
			continue
		}
		if r != ledger.LinkedEventFailed {
			return r
		}
		failed = r
	}
	return failed
}

func refusal(code purchases.RefusalCode, format string, args ...any) *purchases.Refusal {
	return &purchases.Refusal{Code: code, Message: fmt.Sprintf(format, args...)}
}

// plan plans request i: its transfers, or nil and the request answered (a refusal). A request
// declined before the ledger (an unknown card, a limit) plans no transfers but is recorded.
func (ex *execution) plan(i int) (*plannedRequest, []ledger.Transfer, error) {
	r := ex.reqs[i]
	refuse := func(rf *purchases.Refusal) (*plannedRequest, []ledger.Transfer, error) {
		ex.answers[i].err = rf
		return nil, nil, nil
	}
	if r.Op == OpAuthorize {
		id, err := newTransferID()
		if err != nil {
			return nil, nil, err
		}
		card := ex.cards[r.CardToken]
		limits, used := purchases.DefaultLimits(), int64(0)
		if card != nil {
			if l, ok := ex.limits[card.Token]; ok {
				limits = l
			}
			used = ex.usage[card.Token]
		}
		amount := r.Amount
		if r.AmountErr != nil {
			amount = 0
		}
		d := purchases.Decide(purchases.Check{MCC: r.Merchant.MCC, Card: card, Amount: amount, AmountErr: r.AmountErr,
			Limits: limits, UsedToday: used, Now: ex.now})
		a, hold := purchases.PlanAuthorization(id, &r.Merchant, card, amount, d, ex.now)
		pl := &plannedRequest{auth: &a}
		if hold == nil {
			ex.finish(i, pl, ledger.Created)
			return nil, nil, nil
		}
		return pl, []ledger.Transfer{*hold}, nil
	}

	rec, ok := ex.auths[r.AuthorizationID]
	if !ok || rec.MerchantID != r.Merchant.ID {
		return refuse(refusal(purchases.RefusedNotFound, "authorization not found"))
	}
	if r.AmountErr != nil && r.Op != OpIncrement {
		return refuse(refusal(purchases.RefusedInvalid, "%v", r.AmountErr))
	}
	// The purchase is priced by the plan's version in force on its authorization's date, its
	// capture and every refund alike.
	plan, ok := ex.fees.PlanOn(r.Merchant.FeePlan, purchaseDate(&rec.Authorization))
	if !ok {
		// A fault of this merchant's registration, not of the batch: only its request fails.
		ex.answers[i].err = fmt.Errorf("merchant %s has fee plan %q, which the catalog does not have on %s", r.Merchant.ID,
			r.Merchant.FeePlan, purchaseDate(&rec.Authorization))
		return nil, nil, nil
	}
	id, err := newTransferID()
	if err != nil {
		return nil, nil, err
	}
	ids, err := freshIDs(len(rec.Holds) + 2)
	if err != nil {
		return nil, nil, err
	}
	switch r.Op {
	case OpIncrement:
		card := ex.cards[rec.CardToken]
		limits := purchases.DefaultLimits()
		if l, ok := ex.limits[rec.CardToken]; ok {
			limits = l
		}
		inc, hold, rf := purchases.PlanIncrement(&rec.Authorization, id, purchases.IncrementCheck{Card: card,
			Amount: r.Amount, AmountErr: r.AmountErr, Limits: limits, UsedToday: ex.usage[rec.CardToken], Now: ex.now})
		if rf != nil {
			return refuse(rf)
		}
		pl := &plannedRequest{inc: &inc}
		if hold == nil {
			ex.finish(i, pl, ledger.Created)
			return nil, nil, nil
		}
		return pl, []ledger.Transfer{*hold}, nil
	case OpCapture:
		amount := r.Amount
		if r.Full {
			amount = rec.Held()
		}
		c, ts, rf := purchases.PlanCapture(&rec.Authorization, id, amount, plan, ex.fees.Foreign, ids, ex.now)
		if rf != nil {
			return refuse(rf)
		}
		return &plannedRequest{close: &c}, ts, nil
	case OpVoid:
		c, ts, rf := purchases.PlanVoid(&rec.Authorization, id, ids, ex.now)
		if rf != nil {
			return refuse(rf)
		}
		return &plannedRequest{close: &c}, ts, nil
	case OpRefund:
		rd, ts, rf := purchases.PlanRefund(&rec.Authorization, id, r.Amount, plan, ex.fees.Foreign, ids, ex.now)
		if rf != nil {
			return refuse(rf)
		}
		return &plannedRequest{refund: &rd}, ts, nil
	}
	ex.answers[i].err = fmt.Errorf("unknown purchase operation %q", r.Op)
	return nil, nil, nil
}

// finish records request i with the ledger's result for its transfers (Created when it had
// none) and answers it.
func (ex *execution) finish(i int, pl *plannedRequest, result ledger.Result) {
	r := ex.reqs[i]
	answer := &ex.answers[i]
	request := func(result ledger.ID) {
		ex.rows.requests = append(ex.rows.requests, requestRow{merchantID: r.Merchant.ID, key: r.Key, op: r.Op, hash: r.Hash, result: result})
	}
	switch {
	case pl.auth != nil:
		a := pl.auth
		if a.Approved {
			if result != ledger.Created {
				d, err := purchases.FromLedger(result)
				if err != nil {
					answer.err = fmt.Errorf("authorization %s: %w", a.ID, err)
					return
				}
				a.Decline(d)
			} else {
				a.Approve()
				ex.usage[a.CardToken] += a.Amount
			}
		}
		ex.rows.authorizations = append(ex.rows.authorizations, *a)
		request(a.ID)
		answer.res.Authorization = a
	case pl.inc != nil:
		inc, rec := pl.inc, ex.auths[r.AuthorizationID]
		if inc.Approved {
			if result != ledger.Created {
				d, err := purchases.FromLedger(result)
				if err != nil {
					answer.err = fmt.Errorf("increment %s: %w", inc.ID, err)
					return
				}
				inc.Decision = d
			} else {
				ex.usage[rec.CardToken] += inc.Amount
			}
		}
		rec.ApplyIncrement(*inc)
		ex.rows.increments = append(ex.rows.increments, incrementRow{Increment: *inc, cardToken: rec.CardToken})
		request(inc.ID)
		answer.res.Increment = inc
	case pl.close != nil:
		rec := ex.auths[r.AuthorizationID]
		if result != ledger.Created {
			answer.err = closeRefusal(result)
			return
		}
		rec.ApplyClose(*pl.close)
		// What it released of the holds of the day, each hold on its own day, as the day's
		// approvals are read.
		start, end := purchases.Day(ex.now)
		ex.usage[rec.CardToken] -= rec.ReleasedWithin(pl.close.Released, start, end)
		ex.rows.closes = append(ex.rows.closes, closeRow{Close: *pl.close, merchantID: rec.MerchantID, cardToken: rec.CardToken})
		request(pl.close.ID)
		answer.res.Close = pl.close
	case pl.refund != nil:
		rec := ex.auths[r.AuthorizationID]
		if result != ledger.Created {
			answer.err = closeRefusal(result)
			return
		}
		rec.ApplyRefund(*pl.refund)
		ex.rows.refunds = append(ex.rows.refunds, refundRow{Refund: *pl.refund, merchantID: rec.MerchantID})
		request(pl.refund.ID)
		answer.res.Refund = pl.refund
	}
}

// closeRefusal turns the ledger's refusal of a capture, void or refund the domain had planned
// into the answer: a hold that expired or was resolved meanwhile is the authorization's state;
// anything else is a fault of the plan.
func closeRefusal(r ledger.Result) error {
	switch r {
	case ledger.PendingExpired:
		return refusal(purchases.RefusedConflict, "the authorization has expired")
	case ledger.PendingAlreadyResolved:
		return refusal(purchases.RefusedConflict, "the authorization's holds are already released")
	}
	return fmt.Errorf("the ledger refused a planned purchase operation: %s", r)
}

func newTransferID() (ledger.ID, error) {
	u, err := uuid.NewV7()
	if err != nil {
		return ledger.ID{}, fmt.Errorf("new transfer id: %w", err)
	}
	return ledger.ID(u), nil
}

// freshIDs returns a source of n new transfer ids. Past n it gives the zero id, which the ledger
// refuses (IDMustNotBeZero): a plan that asks for more than it said fails, and applies nothing.
func freshIDs(n int) (func() ledger.ID, error) {
	ids := make([]ledger.ID, n)
	for i := range ids {
		id, err := newTransferID()
		if err != nil {
			return nil, err
		}
		ids[i] = id
	}
	return func() ledger.ID {
		if len(ids) == 0 {
			return ledger.ID{}
		}
		id := ids[0]
		ids = ids[1:]
		return id
	}, nil
}

// readResult reads what an earlier request made, for a replay.
func (p *Purchases) readResult(ctx context.Context, op Operation, id ledger.ID) (PurchaseResult, error) {
	var res PurchaseResult
	switch op {
	case OpAuthorize:
		recs, err := loadAuthorizations(ctx, p.store.pool, []ledger.ID{id})
		if err != nil {
			return res, err
		}
		rec, ok := recs[id]
		if !ok {
			return res, fmt.Errorf("authorization %s of a stored request: %w", id, ErrNotFound)
		}
		res.Authorization = &rec.Authorization
		return res, nil
	case OpIncrement:
		inc, err := readOne(ctx, p, `SELECT `+incrementColumns+` FROM purchase_increments WHERE increment_id = $1`, id, scanIncrement)
		res.Increment = &inc
		return res, err
	case OpCapture, OpVoid:
		c, err := readOne(ctx, p, `SELECT `+closeColumns+` FROM purchase_closes WHERE close_id = $1`, id, scanClose)
		res.Close = &c
		return res, err
	case OpRefund:
		r, err := readOne(ctx, p, `SELECT `+refundColumns+` FROM purchase_refunds WHERE refund_id = $1`, id, scanRefund)
		res.Refund = &r
		return res, err
	}
	return res, fmt.Errorf("stored request of unknown operation %q", op)
}

func readOne[T any](ctx context.Context, p *Purchases, query string, id ledger.ID, scan func(pgx.Rows) (T, error)) (T, error) {
	var zero T
	rows, err := p.store.pool.Query(ctx, query, uuid.UUID(id))
	if err != nil {
		return zero, fmt.Errorf("read stored result: %w", err)
	}
	defer rows.Close()
	if !rows.Next() {
		if err := rows.Err(); err != nil {
			return zero, fmt.Errorf("read stored result: %w", err)
		}
		return zero, fmt.Errorf("stored result %s: %w", id, ErrNotFound)
	}
	return scan(rows)
}

// purchaseCardColumns are what an authorization reads of a card: its status, its permit and its
// funds account. Personal numbers are not read.
const purchaseCardColumns = `c.card_token, c.declared_status, c.status_reason, c.permit_valid_until, c.funds_account_id`
