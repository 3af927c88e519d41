package postgres

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/joinincard/engine/ledger"
)

// Cursor is a consumer's position, advanced in the same transaction as the batch it produced: a
// Kafka partition's next offset, say. The batch commits only if the stored position is still From
// (0 for a cursor never written), so a writer that lost its partition cannot commit over a newer
// one, and a consumer that crashed resumes exactly after its last committed batch.
type Cursor struct {
	Name     string
	From, To int64
}

// ErrCursorMoved is returned when a batch's cursor no longer holds the position the batch read
// from: another writer committed first. Nothing was written.
var ErrCursorMoved = errors.New("cursor moved: another writer committed first")

// BatchResult is what CommitBatch wrote.
type BatchResult struct {
	ledger.Outcome
	// Timestamp is the batch's time, stamped on every transfer it created.
	Timestamp time.Time
}

// CommitBatch applies batch to the ledger in one database transaction: prefetch the accounts,
// transfers and resolutions the batch names, apply it in memory, write the created transfers,
// their resolutions, one balance row per touched account and the cursor, commit. One Result per
// transfer comes back; a transfer that was not created changed nothing. cur may be nil.
//
// Concurrent writers are safe. Each touched account gets balance version n+1 after the batch read
// version n; a writer that raced another for an account collides on that key and the whole
// transaction is retried (bounded), reading the winner's balance.
func (s *Store) CommitBatch(ctx context.Context, batch []ledger.Transfer, cur *Cursor) (BatchResult, error) {
	var cursors []Cursor
	if cur != nil {
		cursors = []Cursor{*cur}
	}
	var res BatchResult
	err := s.InTx(ctx, cursors, func(ctx context.Context, tx *Tx) error {
		var err error
		res, err = tx.Apply(ctx, batch)
		return err
	})
	return res, err
}

// Tx is one attempt at a batch transaction. Adapters that keep their own tables in the ledger's
// database (consumed events, the card registry) read and write them through it, and apply
// transfers with Apply, so that everything a batch does commits or vanishes together.
type Tx struct {
	pgx.Tx
	store *Store
	// attempt counts the tries of this transaction from 1. The first trusts the account cache and
	// assumes the batch's transfer ids are new; later ones read everything, and lock the accounts,
	// so that writers that keep racing queue up instead.
	attempt int
	// shard is the balance shard this transaction writes for the accounts that may be sharded
	// (balanceShards), unless a batch changes their pending amounts.
	shard int16
	// uncached makes the first attempt read balances from the database rather than the cache:
	// its cursors were moved by another process since this one last committed them, so the
	// accounts their events touch were written elsewhere meanwhile and the cache is stale (and
	// has been cleared).
	uncached bool
	// written holds the newest balance this transaction wrote for each account's shard: later
	// batches in the transaction build on it, and the cache gets it once the transaction commits.
	written map[balanceKey]cachedAccount
	// gate is the end of the last settlement cycle closed (Unix microseconds), read under a
	// shared lock by the transaction's first batch and held until it commits: its transfers are
	// stamped after it. gated says it was read.
	gate  int64
	gated bool
	// gateGuess, if gateGuessed, is taken for the settlement gate by the first batch instead of
	// reading it first: a writer that reads nothing else before it writes (the transfers
	// committer, on cached balances) then pays no round trip for it. The gate is read under
	// its shared lock in the round trip of the batch's writes, before them, and a gate other
	// than the guess fails the attempt as a conflict, before anything commits. gateUnchecked
	// says the guess was taken and is not read yet.
	gateGuess                  int64
	gateGuessed, gateUnchecked bool
	// overlay holds the balances written by the transaction this one follows in a pipeline
	// (Transfers), not committed yet: a speculative attempt builds on them, after this
	// transaction's own and before the cache. It must then decide no refusal (balances read
	// from the database would miss the overlay's), and must not commit unless that transaction
	// does: its caller waits for it.
	overlay     map[balanceKey]cachedAccount
	speculative bool
	// leaned says a batch of this attempt named an account balance the overlay holds: what it
	// decided rests on the pipeline's predecessor, whether it took that balance (the fast path)
	// or read the older one from the database. An attempt that did not lean on the overlay
	// shares no balance with its predecessor and commits as any concurrent writer does.
	leaned bool
	// busy holds the accounts this transaction marked contended in the cache, over all its
	// attempts; InTx releases them when it is done.
	busy map[ledger.ID]struct{}
	// locking says the batch being applied locks the accounts it reads from the database.
	locking bool
	// guessed says a batch of this attempt was applied on balances not read from the database
	// under lock (the cache, or a predecessor's uncommitted writes).
	guessed bool
	// queued holds the writes of a small batch applied with deferWrites set, to go to the server
	// with the caller's own writes in one round trip (Flush). Anything that reads first flushes
	// them, and InTx flushes what is left before it commits.
	deferWrites bool
	queued      *pgx.Batch
}

// Flush sends the writes queued by Apply together with b's (nil: none), in one round trip.
func (t *Tx) Flush(ctx context.Context, b *pgx.Batch) error {
	q := t.queued
	t.queued = nil
	switch {
	case q == nil && b == nil:
		return nil
	case q == nil:
		q = b
	case b != nil:
		q.QueuedQueries = append(q.QueuedQueries, b.QueuedQueries...)
	}
	if q.Len() == 0 {
		return nil
	}
	if err := t.Tx.SendBatch(ctx, q).Close(); err != nil {
		return fmt.Errorf("write the batch: %w", err)
	}
	return nil
}

// settlementGateRead reads the end of the last settlement cycle closed, under a shared lock held
// until the transaction ends: a cycle cannot close under the transfers stamped after it.
const settlementGateRead = `SELECT closed_through FROM settlement_gate WHERE id = 1 FOR SHARE`

// QueueSettlementGate queues the read of the settlement gate on b, for a caller that reads other
// things before it applies a batch: the gate then costs no round trip of its own.
func (t *Tx) QueueSettlementGate(b *pgx.Batch) {
	if t.gated {
		return
	}
	b.Queue(settlementGateRead).QueryRow(func(row pgx.Row) error {
		var closed time.Time
		if err := row.Scan(&closed); err != nil {
			return fmt.Errorf("read the settlement gate: %w", err)
		}
		t.gate, t.gated = closed.UnixMicro(), true
		return nil
	})
}

// errGateMoved fails an attempt whose guess of the settlement gate was wrong: a settlement cycle
// closed since the guess, and the batch may be stamped inside it. It is decided again, reading
// the gate first.
var errGateMoved = conflictError{errors.New("the settlement gate moved since it was guessed: decided again")}

// settlementGateHeld reads the settlement gate under its shared lock, as settlementGateRead, and
// fails on the server unless it is where the transaction guessed it ($1): the statements queued
// after it in the round trip, the COMMIT among them, are then not run, and the lock it takes
// keeps the gate there until the transaction ends. Its error names gateMovedText, which tells
// the committer why (errGateMoved). The CAST of the text fails alike on PostgreSQL and
// CockroachDB.
const settlementGateHeld = `SELECT closed_through, CAST(CASE WHEN closed_through = $1 THEN '0' ELSE '` + gateMovedText + `' END AS INT)
	FROM settlement_gate WHERE id = 1 FOR SHARE`

// gateMovedText is what settlementGateHeld fails with: a value no cast to INT takes.
const gateMovedText = "the settlement gate moved"

// queueGateCheck queues on b the read of the settlement gate under its shared lock, which fails
// on the server, and with errGateMoved, unless it holds the gate the transaction guessed.
func (t *Tx) queueGateCheck(b *pgx.Batch) {
	t.gateUnchecked = false
	b.Queue(settlementGateHeld, time.UnixMicro(t.gate).UTC()).QueryRow(func(row pgx.Row) error {
		var (
			closed time.Time
			held   int64
		)
		if err := row.Scan(&closed, &held); err != nil {
			var pgErr *pgconn.PgError
			if errors.As(err, &pgErr) && strings.Contains(pgErr.Message, gateMovedText) {
				return errGateMoved
			}
			return fmt.Errorf("read the settlement gate: %w", err)
		}
		if closed.UnixMicro() != t.gate {
			return errGateMoved
		}
		return nil
	})
}

// errSpeculationRefused fails a speculative attempt whose batch refused a transfer: the
// refusal may rest on what the transaction it follows has not committed yet, so the batch is
// decided again, as a conflict is, once that transaction is done.
var errSpeculationRefused = conflictError{errors.New("a speculative batch refused a transfer: decided again")}

// InTx runs fn in one database transaction that also advances cursors, retried whole on
// conflicts (bounded). fn may run several times: it must have no effect outside the transaction.
// The cursors are advanced first, which serializes the writers of one partition before any other
// work; a cursor that moved fails the transaction with ErrCursorMoved.
func (s *Store) InTx(ctx context.Context, cursors []Cursor, fn func(context.Context, *Tx) error) error {
	return s.inTx(ctx, cursors, false, fn)
}

// inTx is InTx; lazy sends each attempt's BEGIN with its first batch of statements (lazyTx).
func (s *Store) inTx(ctx context.Context, cursors []Cursor, lazy bool, fn func(context.Context, *Tx) error) error {
	var (
		last  *Tx
		stale []balanceKey
		shard int16
		busy  = map[ledger.ID]struct{}{}
	)
	defer func() {
		if len(busy) > 0 {
			s.cache.release(slices.Collect(maps.Keys(busy)))
		}
	}()
	uncached := false
	if len(cursors) > 0 {
		shard = consumerShard(cursors)
		if uncached = !s.cursorsKnown(cursors); uncached {
			// A partition this process did not hold last (a rebalance gave it here, or back):
			// another process has written its cards since, and whatever this one cached of them
			// is stale. Which accounts those are is not known, so the cache starts over, as at
			// start.
			s.cache.clear()
		}
	} else {
		shard = s.leases.lease()
		defer s.leases.release(shard)
	}
	err := s.retryTx(ctx, "batch transaction", lazy, func(ctx context.Context, ptx pgx.Tx, attempt int) error {
		if last != nil {
			for k := range last.written {
				stale = append(stale, k)
			}
		}
		last = &Tx{Tx: ptx, store: s, attempt: attempt, shard: shard, uncached: uncached, written: map[balanceKey]cachedAccount{}, busy: busy}
		if err := advanceCursors(ctx, ptx, cursors, s.Now()); err != nil {
			return err
		}
		err := fn(ctx, last)
		if err == nil {
			err = last.Flush(ctx, nil)
		}
		if err != nil && last.guessed && pgCode(err) == pgCheckViolation {
			// A balance row the database refuses (a pending amount below zero) from balances
			// this process guessed (its cache, a predecessor's uncommitted writes) is a stale
			// guess, as a version key taken by another writer is: run again on the database's.
			// From the database's own balances, the same refusal is a fault and fails the batch.
			return conflictError{err}
		}
		return err
	})
	// Whatever a failed attempt read may be stale; what the last attempt wrote is the truth only
	// if it committed.
	s.cache.forget(stale)
	if last != nil {
		if err != nil {
			s.cache.forget(slices.Collect(maps.Keys(last.written)))
		} else {
			s.cache.put(maps.Values(last.written))
		}
	}
	if err == nil {
		s.noteCursors(cursors)
	}
	return err
}

// cursorsKnown reports whether every cursor starts where this process's last commit of it left
// it: nobody else has consumed its partition since, so the cache holds what its events touch.
func (s *Store) cursorsKnown(cursors []Cursor) bool {
	s.cursorsMu.Lock()
	defer s.cursorsMu.Unlock()
	for _, c := range cursors {
		if pos, ok := s.cursorsLeft[c.Name]; !ok || pos != c.From {
			return false
		}
	}
	return true
}

// noteCursors records where this process's commit left cursors.
func (s *Store) noteCursors(cursors []Cursor) {
	if len(cursors) == 0 {
		return
	}
	s.cursorsMu.Lock()
	defer s.cursorsMu.Unlock()
	if s.cursorsLeft == nil {
		s.cursorsLeft = make(map[string]int64)
	}
	for _, c := range cursors {
		s.cursorsLeft[c.Name] = c.To
	}
}

// Apply applies batch within the transaction: prefetch, apply in memory, write. It may be called
// more than once in one transaction; each call builds on what the previous ones wrote.
func (t *Tx) Apply(ctx context.Context, batch []ledger.Transfer) (BatchResult, error) {
	if len(batch) > ledger.MaxBatchTransfers {
		return BatchResult{}, fmt.Errorf("batch of %d transfers exceeds the bound of %d: %w", len(batch), ledger.MaxBatchTransfers, ErrBatchTooLarge)
	}
	if len(batch) == 0 {
		return BatchResult{Timestamp: t.store.Now().UTC()}, nil
	}
	// What an earlier batch of the transaction queued is written before this one reads.
	if err := t.Flush(ctx, nil); err != nil {
		return BatchResult{}, err
	}
	// A batch at an account a retrying writer holds locks as that writer does, and queues.
	t.locking = t.attempt > 1 || t.store.cache.contended(batch)
	fast := !t.locking
	t.guessed = t.guessed || fast || t.speculative
	p, out, ts, err := t.apply(ctx, batch, fast)
	if err != nil {
		return BatchResult{}, err
	}
	if t.speculative && slices.ContainsFunc(out.Results, func(r ledger.Result) bool { return r != ledger.Created }) {
		return BatchResult{}, errSpeculationRefused
	}
	if fast {
		// The fast path took every id for new and its balances from the cache. Whatever it
		// created is safe: a stale balance or a reused id collides on a key when written. What
		// it refused writes nothing and so collides with nothing, and must be confirmed: a
		// refusal that depends on a balance (the cache may show less money than another writer
		// has loaded since) or on an id (a replayed post finds its hold resolved by itself) is
		// decided again with everything read from the database.
		again := anyBalanceRefusal(out.Results)
		if !again {
			exists, err := anyExists(ctx, t.Tx, batch, out.Results)
			if err != nil {
				return BatchResult{}, err
			}
			again = exists
		}
		if again {
			if p, out, ts, err = t.apply(ctx, batch, false); err != nil {
				return BatchResult{}, err
			}
		}
	}
	var check *pgx.Batch
	if t.gateUnchecked {
		// The gate this batch was stamped after was guessed: it is read, under its lock, ahead
		// of the writes and in their round trip.
		check = &pgx.Batch{}
		t.queueGateCheck(check)
	}
	switch {
	case t.deferWrites && smallOutcome(&out):
		if check == nil {
			check = &pgx.Batch{}
		}
		t.queued = check
		queueOutcome(t.queued, &out, p.versions, p.shards, ts)
	case check != nil && smallOutcome(&out):
		queueOutcome(check, &out, p.versions, p.shards, ts)
		if err := t.Tx.SendBatch(ctx, check).Close(); err != nil {
			return BatchResult{}, fmt.Errorf("write transfers, resolutions and balances: %w", err)
		}
	default:
		if check != nil {
			if err := t.Tx.SendBatch(ctx, check).Close(); err != nil {
				return BatchResult{}, err
			}
		}
		if err := writeOutcome(ctx, t.Tx, &out, p.versions, p.shards, ts); err != nil {
			return BatchResult{}, err
		}
	}
	for _, a := range out.Touched {
		e := cachedAccount{account: *a, shard: p.shards[a.ID], version: p.versions[a.ID] + 1, ts: ts}
		t.written[e.key()] = e
	}
	return BatchResult{Outcome: out, Timestamp: time.UnixMicro(ts).UTC()}, nil
}

// advanceCursors moves each cursor from where its batch read to where it ends, all in one round
// trip: a transaction merging several partitions' batches pays for one, not one per partition.
// Each is moved first in its transaction, so that a second writer of the same partition queues on
// the cursor's row and then finds it moved, before it has written anything.
func advanceCursors(ctx context.Context, tx pgx.Tx, cursors []Cursor, now time.Time) error {
	if len(cursors) == 0 {
		return nil
	}
	for i := range cursors {
		if cursors[i].Name == "" {
			return fmt.Errorf("cursor has no name")
		}
	}
	q := &pgx.Batch{}
	for i := range cursors {
		q.Queue(advanceCursorSQL, cursors[i].To, now, cursors[i].Name, cursors[i].From)
	}
	res := tx.SendBatch(ctx, q)
	var missing []int // cursors no row matched: moved, or never written
	for i := range cursors {
		tag, err := res.Exec()
		if err != nil {
			res.Close()
			return fmt.Errorf("advance cursor %s: %w", cursors[i].Name, err)
		}
		if tag.RowsAffected() != 1 {
			missing = append(missing, i)
		}
	}
	if err := res.Close(); err != nil {
		return fmt.Errorf("advance cursors: %w", err)
	}
	for _, i := range missing {
		if err := createCursor(ctx, tx, &cursors[i], now); err != nil {
			return err
		}
	}
	return nil
}

// advanceCursorSQL moves a cursor that still holds the position its batch read.
const advanceCursorSQL = `UPDATE cursors SET position = $1, updated_at = $2 WHERE name = $3 AND position = $4`

// createCursor writes the cursor of a partition read from its start, which advanceCursors found
// no row of; if its row exists, another writer moved it.
func createCursor(ctx context.Context, tx pgx.Tx, cur *Cursor, now time.Time) error {
	if cur.From != 0 {
		return fmt.Errorf("cursor %s at %d: %w", cur.Name, cur.From, ErrCursorMoved)
	}
	tag, err := tx.Exec(ctx, `INSERT INTO cursors (name, position, updated_at) VALUES ($1, $2, $3)
		ON CONFLICT (name) DO NOTHING`, cur.Name, cur.To, now)
	if err != nil {
		return fmt.Errorf("create cursor %s: %w", cur.Name, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("cursor %s at 0: %w", cur.Name, ErrCursorMoved)
	}
	return nil
}

// Cursor returns the position stored under name, or 0 if none was ever written.
func (s *Store) Cursor(ctx context.Context, name string) (int64, error) {
	var pos int64
	err := s.pool.QueryRow(ctx, `SELECT position FROM cursors WHERE name = $1`, name).Scan(&pos)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("read cursor %s: %w", name, err)
	}
	return pos, nil
}

// CursorState is a cursor's position and when the last transaction that moved it was stamped,
// by the clock (Store.Now) of the process that committed it.
type CursorState struct {
	Position  int64
	UpdatedAt time.Time
}

// maxCursorsRead bounds one Cursors call: a topic's partitions, each with a cursor, and a topic
// has at most ten thousand (kafka's maxTopicPartitions).
const maxCursorsRead = 10000

// Cursors returns the state of the cursors named, by name; a cursor never written is absent.
func (s *Store) Cursors(ctx context.Context, names []string) (map[string]CursorState, error) {
	if len(names) > maxCursorsRead {
		return nil, fmt.Errorf("read cursors: %d names, at most %d", len(names), maxCursorsRead)
	}
	rows, err := s.pool.Query(ctx, `SELECT name, position, updated_at FROM cursors WHERE name = ANY($1)`, names)
	if err != nil {
		return nil, fmt.Errorf("read cursors: %w", err)
	}
	out := make(map[string]CursorState, len(names))
	var (
		name string
		cs   CursorState
	)
	_, err = pgx.ForEachRow(rows, []any{&name, &cs.Position, &cs.UpdatedAt}, func() error {
		out[name] = cs
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read cursors: %w", err)
	}
	return out, nil
}

// apply prefetches what batch needs and applies it in memory, writing nothing.
func (t *Tx) apply(ctx context.Context, batch []ledger.Transfer, fast bool) (*prefetched, ledger.Outcome, int64, error) {
	p, err := t.prefetch(ctx, batch, fast)
	if err != nil {
		return nil, ledger.Outcome{}, 0, err
	}
	// The batch's time is after every balance version it builds on, so each account's history
	// is ordered in time, and close to the writer's clock (bounded, measured); and after the last
	// settlement cycle closed, so it belongs to a cycle still open.
	gate, err := t.settlementGate(ctx)
	if err != nil {
		return nil, ledger.Outcome{}, 0, err
	}
	ts, err := t.store.batchTime(t.store.Now().UnixMicro(), max(p.latest, gate))
	if err != nil {
		return nil, ledger.Outcome{}, 0, err
	}
	out, err := p.state.Apply(batch, ts)
	if err != nil {
		return nil, ledger.Outcome{}, 0, fmt.Errorf("apply batch: %w", err)
	}
	return p, out, ts, nil
}

// anyBalanceRefusal reports whether any result is a refusal that depends on an account's
// balance: the answer a stale cached balance could get wrong.
func anyBalanceRefusal(results []ledger.Result) bool {
	for _, r := range results {
		if r.DependsOnBalance() {
			return true
		}
	}
	return false
}

// anyExists reports whether any transfer of batch that was not created has an id already in the
// ledger.
func anyExists(ctx context.Context, tx pgx.Tx, batch []ledger.Transfer, results []ledger.Result) (bool, error) {
	var refused [][16]byte
	for i, r := range results {
		if r != ledger.Created {
			refused = append(refused, batch[i].ID)
		}
	}
	if len(refused) == 0 {
		return false, nil
	}
	var n int
	if err := tx.QueryRow(ctx, `SELECT count(*) FROM transfers WHERE id = ANY($1)`, refused).Scan(&n); err != nil {
		return false, fmt.Errorf("look up refused transfers: %w", err)
	}
	return n > 0, nil
}

// prefetched is what a batch read before applying.
type prefetched struct {
	state *ledger.State
	// versions holds each prefetched account's current balance version, in its shard.
	versions map[ledger.ID]int64
	// shards holds the balance shard each prefetched account was read from, and is written to.
	shards map[ledger.ID]int16
	// latest is the newest balance timestamp among the prefetched accounts, Unix microseconds.
	latest int64
}

// prefetch reads everything the batch can touch: the transfers its refs name (holds to resolve,
// transfers to reverse) with their resolutions, the transfers that already have the batch's ids,
// and every account all these transfers name, with its balance.
//
// The fast path, for a first attempt, skips the id lookup and takes accounts from the cache:
// transfer ids are fresh UUIDs, so a batch that reuses one is rare, and it fails on the primary
// key at write time and runs again on the full path, where it gets its exists results.
func (t *Tx) prefetch(ctx context.Context, batch []ledger.Transfer, fast bool) (*prefetched, error) {
	state := ledger.NewState(2 * len(batch))
	var refs []uuid.UUID
	for i := range batch {
		if !batch[i].Ref.IsZero() {
			refs = append(refs, uuid.UUID(batch[i].Ref))
		}
	}
	lookup := refs
	if !fast {
		lookup = make([]uuid.UUID, 0, len(batch)+len(refs))
		for i := range batch {
			lookup = append(lookup, uuid.UUID(batch[i].ID))
		}
		lookup = append(lookup, refs...)
	}
	if len(lookup) > 0 {
		if err := readTransfers(ctx, t.Tx, state, lookup, refs); err != nil {
			return nil, err
		}
	}

	seen := make(map[ledger.ID]struct{}, 2*len(batch))
	ids := make([]ledger.ID, 0, 2*len(batch))
	add := func(id ledger.ID) {
		if id.IsZero() {
			return
		}
		if _, ok := seen[id]; !ok {
			seen[id] = struct{}{}
			ids = append(ids, id)
		}
	}
	for i := range batch {
		add(batch[i].DebitAccountID)
		add(batch[i].CreditAccountID)
	}
	// Accounts whose pending amounts the batch may change (it places holds on them, or resolves
	// or reverses transfers that name them) are read and written in their home shard, where their
	// holds are; the others in this transaction's shard, if they may be sharded at all.
	home := make(map[ledger.ID]bool)
	for i := range batch {
		if batch[i].Flags&pendingFlags != 0 || !batch[i].Ref.IsZero() {
			home[batch[i].DebitAccountID], home[batch[i].CreditAccountID] = true, true
		}
	}
	for _, tr := range state.Transfers {
		add(tr.DebitAccountID)
		add(tr.CreditAccountID)
		home[tr.DebitAccountID], home[tr.CreditAccountID] = true, true
	}
	p := &prefetched{state: state, versions: make(map[ledger.ID]int64, len(ids)), shards: make(map[ledger.ID]int16, len(ids))}
	found := func(e cachedAccount) {
		a := e.account
		if shardable(&a) {
			a.Ceiling = shardCeiling // every shard, the home one too: their sum must fit int64
		}
		state.Accounts[a.ID] = &a
		p.versions[a.ID] = e.version
		p.shards[a.ID] = e.shard
		p.latest = max(p.latest, e.ts)
	}
	// Balances this transaction wrote come first; they are newer than anything committed. An
	// account with a constraint is never sharded: it is found in its home shard whatever the
	// shard asked.
	inShard := func(m map[balanceKey]cachedAccount, k balanceKey) (cachedAccount, bool) {
		if e, ok := m[k]; ok {
			return e, true
		}
		if e, ok := m[balanceKey{k.id, homeShard}]; ok && !shardable(&e.account) {
			return e, true
		}
		return cachedAccount{}, false
	}
	missing := make([]balanceKey, 0, len(ids))
	for _, id := range ids {
		k := balanceKey{id, t.shard}
		if home[id] {
			k.shard = homeShard
		}
		if _, ok := inShard(t.overlay, k); ok {
			t.leaned = true
		}
		if e, ok := inShard(t.written, k); ok {
			found(e)
		} else if e, ok := inShard(t.overlay, k); ok && fast {
			found(e)
		} else {
			missing = append(missing, k)
		}
	}
	if fast && !t.uncached {
		missing = t.store.cache.get(missing, found)
	}
	if len(missing) == 0 {
		return p, nil
	}
	keys := make([]uuid.UUID, len(missing))
	shards := make([]int16, len(missing))
	for i, k := range missing {
		keys[i], shards[i] = uuid.UUID(k.id), k.shard
	}
	if t.locking {
		// In key order, so that two lockers wait for each other instead of deadlocking.
		locks := slices.Clone(keys)
		slices.SortFunc(locks, func(a, b uuid.UUID) int { return bytes.Compare(a[:], b[:]) })
		if _, err := t.Exec(ctx, `SELECT id FROM accounts WHERE id = ANY($1) ORDER BY id FOR UPDATE`, locks); err != nil {
			return nil, fmt.Errorf("lock accounts: %w", err)
		}
		if t.attempt > 1 {
			// Writers on the fast path take no lock: told that these accounts are contended,
			// they take the full path and queue behind this lock until this writer is done,
			// instead of writing new versions under it at every attempt (a long batch, a
			// consumer's thousands of events, would never commit beside a quick writer at one
			// of its accounts).
			var fresh []ledger.ID
			for _, k := range missing {
				if _, ok := t.busy[k.id]; !ok {
					t.busy[k.id] = struct{}{}
					fresh = append(fresh, k.id)
				}
			}
			t.store.cache.contend(fresh)
		}
	}
	if err := readAccounts(ctx, t.Tx, keys, shards, found); err != nil {
		return nil, err
	}
	return p, nil
}

// readTransfers reads the transfers with the given ids into state, and the resolutions of refs.
func readTransfers(ctx context.Context, tx pgx.Tx, state *ledger.State, ids, refs []uuid.UUID) error {
	q := &pgx.Batch{}
	q.Queue(transfersLookup, ids).
		Query(func(rows pgx.Rows) error {
			for rows.Next() {
				t, err := scanTransfer(rows)
				if err != nil {
					return err
				}
				state.Transfers[t.ID] = &t
			}
			return rows.Err()
		})
	if len(refs) > 0 {
		q.Queue(`SELECT target_id, kind FROM transfer_resolutions WHERE target_id = ANY($1)`, refs).
			Query(func(rows pgx.Rows) error {
				for rows.Next() {
					var (
						target uuid.UUID
						kind   string
					)
					if err := rows.Scan(&target, &kind); err != nil {
						return err
					}
					k, err := ledger.ParseResolutionKind(kind)
					if err != nil {
						return err
					}
					state.Resolutions[ledger.ID(target)] = k
				}
				return rows.Err()
			})
	}
	if err := tx.SendBatch(ctx, q).Close(); err != nil {
		return fmt.Errorf("prefetch transfers: %w", err)
	}
	return nil
}

// pendingFlags are the transfer flags that change pending amounts: a hold placed or resolved.
// A reversal (which names the transfer it reverses by Ref, as resolutions do) is kept with them.
const pendingFlags = ledger.Pending | ledger.PostPending | ledger.VoidPending | ledger.ExpirePending | ledger.Reversal

const accountColumns = `a.id, a.currency, a.kind, a.flags, a.balance_limit,
	s.shard, b.version, b.ts, b.debits_pending, b.debits_posted, b.credits_pending, b.credits_posted`

// readAccounts reads accounts with their current balances in the shards asked (the home shard
// for an account that is never sharded, and for every id when shards is nil), calling fn for
// each account found. A shard the account has never written is an empty balance at version 0.
func readAccounts(ctx context.Context, q pgx.Tx, ids []uuid.UUID, shards []int16, fn func(cachedAccount)) error {
	if shards == nil {
		shards = make([]int16, len(ids))
	}
	rows, err := q.Query(ctx, `SELECT `+accountColumns+`
		FROM unnest($1::UUID[], $2::INT[]) AS w(id, shard)
		JOIN accounts a ON a.id = w.id
		CROSS JOIN LATERAL (SELECT CASE WHEN a.flags = 0 THEN w.shard ELSE 0 END AS shard) s
		LEFT JOIN LATERAL (SELECT * FROM account_balances b WHERE b.account_id = a.id AND b.shard = s.shard
			ORDER BY b.version DESC LIMIT 1) b ON true`, ids, shards)
	if err != nil {
		return fmt.Errorf("prefetch accounts: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		e, err := scanAccount(rows)
		if err != nil {
			return fmt.Errorf("prefetch accounts: %w", err)
		}
		fn(e)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("prefetch accounts: %w", err)
	}
	return nil
}

func scanAccount(rows pgx.Rows) (cachedAccount, error) {
	var (
		a              ledger.Account
		id             uuid.UUID
		currency, kind string
		flags, shard   int32
		version        *int64
		ts             *time.Time
		dp, dpo        *int64
		cp, cpo        *int64
	)
	if err := rows.Scan(&id, &currency, &kind, &flags, &a.Limit, &shard, &version, &ts, &dp, &dpo, &cp, &cpo); err != nil {
		return cachedAccount{}, err
	}
	k, err := ledger.ParseKind(kind)
	if err != nil {
		return cachedAccount{}, err
	}
	a.ID, a.Currency, a.Kind, a.Flags = ledger.ID(id), ledger.Currency(currency), k, ledger.AccountFlags(flags)
	e := cachedAccount{shard: int16(shard)}
	if version != nil {
		e.version, e.ts = *version, ts.UnixMicro()
		a.DebitsPending, a.DebitsPosted, a.CreditsPending, a.CreditsPosted = *dp, *dpo, *cp, *cpo
	}
	e.account = a
	return e, nil
}

const transferColumns = `id, debit_account_id, credit_account_id, amount, ref_id, user_data,
	timeout_seconds, code, flags, ts`

// transfersLookup reads transfers by id: a probe of the primary key each.
const transfersLookup = `SELECT ` + transferColumns + ` FROM transfers WHERE id = ANY($1)`

func scanTransfer(rows pgx.Rows) (ledger.Transfer, error) {
	var (
		t                    ledger.Transfer
		id, debit, credit    uuid.UUID
		ref, userData        *uuid.UUID
		timeout, code, flags int64
		ts                   time.Time
	)
	if err := rows.Scan(&id, &debit, &credit, &t.Amount, &ref, &userData, &timeout, &code, &flags, &ts); err != nil {
		return t, fmt.Errorf("scan transfer: %w", err)
	}
	t.ID, t.DebitAccountID, t.CreditAccountID = ledger.ID(id), ledger.ID(debit), ledger.ID(credit)
	if ref != nil {
		t.Ref = ledger.ID(*ref)
	}
	if userData != nil {
		t.UserData = ledger.ID(*userData)
	}
	t.TimeoutSeconds, t.Code, t.Flags = uint32(timeout), ledger.Code(code), ledger.TransferFlags(flags)
	t.Timestamp = ts.UnixMicro()
	return t, nil
}

// writeOutcome writes a batch's transfers, resolutions and balance rows with COPY (with INSERT
// when the batch is small), each sorted by key so that two writers racing for the same keys wait
// for each other instead of deadlocking.
// Each balance row lists the batch's transfers that moved the account: its statement lines.
func writeOutcome(ctx context.Context, tx pgx.Tx, out *ledger.Outcome, versions map[ledger.ID]int64, shards map[ledger.ID]int16, ts int64) error {
	if smallOutcome(out) {
		return insertOutcome(ctx, tx, out, versions, shards, ts)
	}
	at := time.UnixMicro(ts).UTC()
	created := out.Created
	lines := make(map[ledger.ID][][16]byte, len(out.Touched))
	if len(created) > 0 {
		// ~180 bytes a row: three ids, eight numbers and times, two nullable ids.
		w := newCopyWriter(len(created), 180)
		for i := range created {
			t := &created[i]
			lines[t.DebitAccountID] = append(lines[t.DebitAccountID], t.ID)
			lines[t.CreditAccountID] = append(lines[t.CreditAccountID], t.ID)
			w.row(11)
			w.uuid(t.ID)
			w.uuid(t.DebitAccountID)
			w.uuid(t.CreditAccountID)
			w.int64(t.Amount)
			w.uuidOrNull(t.Ref)
			w.uuidOrNull(t.UserData)
			w.int64(int64(t.TimeoutSeconds))
			w.int32(int32(t.Code))
			w.int32(int32(t.Flags))
			w.timestamp(ts)
			if e := t.ExpiresAt(); e != 0 {
				w.timestamp(e)
			} else {
				w.null()
			}
		}
		if err := copyRows(ctx, tx, "transfers", []string{"id", "debit_account_id", "credit_account_id", "amount", "ref_id",
			"user_data", "timeout_seconds", "code", "flags", "ts", "expires_at"}, w); err != nil {
			return fmt.Errorf("write transfers: %w", err)
		}
	}
	if err := writeResolutions(ctx, tx, out, at); err != nil {
		return err
	}
	touched := out.Touched
	if len(touched) == 0 {
		return nil
	}

	slices.SortFunc(touched, func(a, b *ledger.Account) int { return compareID(a.ID, b.ID) })
	// ~120 bytes a row and 20 per statement line.
	w := newCopyWriter(len(touched), 120+20*len(created)*2/len(touched))
	for _, a := range touched {
		w.row(9)
		w.uuid(a.ID)
		w.int32(int32(shards[a.ID]))
		w.int64(versions[a.ID] + 1)
		w.timestamp(ts)
		w.int64(a.DebitsPending)
		w.int64(a.DebitsPosted)
		w.int64(a.CreditsPending)
		w.int64(a.CreditsPosted)
		w.uuids(lines[a.ID])
	}
	if err := copyRows(ctx, tx, "account_balances", []string{"account_id", "shard", "version", "ts", "debits_pending", "debits_posted",
		"credits_pending", "credits_posted", "transfer_ids"}, w); err != nil {
		return fmt.Errorf("write balances: %w", err)
	}
	return nil
}

// writeResolutions writes, in one round trip, the small parts of a batch: the resolutions of the
// holds it posted, voided or expired and of the transfers it reversed, and the expiry sweep's
// queue of open holds (holds with a timeout enter it, resolved holds leave it). Resolutions are
// sorted by key, so that two writers racing for one wait for each other instead of deadlocking.
func writeResolutions(ctx context.Context, tx pgx.Tx, out *ledger.Outcome, at time.Time) error {
	q := &pgx.Batch{}
	queueResolutions(q, out, at)
	if q.Len() == 0 {
		return nil
	}
	if err := tx.SendBatch(ctx, q).Close(); err != nil {
		return fmt.Errorf("write resolutions and open holds: %w", err)
	}
	return nil
}

// queueResolutions queues what writeResolutions writes into q.
func queueResolutions(q *pgx.Batch, out *ledger.Outcome, at time.Time) {
	// Holds resolved by this batch: one it placed too never enters the queue, as the DELETE,
	// queued first, would not find it.
	var resolved map[ledger.ID]struct{}
	if res := out.Resolutions; len(res) > 0 {
		slices.SortFunc(res, func(a, b ledger.Resolution) int { return compareID(a.Target, b.Target) })
		targets, by, kinds := make([][16]byte, len(res)), make([][16]byte, len(res)), make([]string, len(res))
		var closed [][16]byte
		resolved = make(map[ledger.ID]struct{}, len(res))
		for i, r := range res {
			targets[i], by[i], kinds[i] = r.Target, r.By, r.Kind.String()
			if r.Kind != ledger.ResolutionReversed {
				closed = append(closed, r.Target)
				resolved[r.Target] = struct{}{}
			}
		}
		q.Queue(`INSERT INTO transfer_resolutions (target_id, transfer_id, kind, ts)
			SELECT target_id, transfer_id, kind, $4 FROM unnest($1::UUID[], $2::UUID[], $3::TEXT[]) AS r(target_id, transfer_id, kind)`,
			targets, by, kinds, at)
		if len(closed) > 0 {
			q.Queue(`DELETE FROM open_holds WHERE transfer_id = ANY($1)`, closed)
		}
	}
	var opened [][16]byte
	var expires []time.Time
	for i := range out.Created {
		t := &out.Created[i]
		if _, done := resolved[t.ID]; done {
			continue
		}
		if e := t.ExpiresAt(); e != 0 {
			opened = append(opened, t.ID)
			expires = append(expires, time.UnixMicro(e).UTC())
		}
	}
	if len(opened) > 0 {
		q.Queue(`INSERT INTO open_holds (transfer_id, expires_at) SELECT * FROM unnest($1::UUID[], $2::TIMESTAMPTZ[])`, opened, expires)
	}
}

// maxInsertRows bounds the transfers of a batch written with INSERT rather than COPY. A COPY
// costs two round trips to the server and a goroutine whatever its size; INSERTs with their rows
// as parameters go with the batch's other writes in one round trip. For the small batches of
// interactive writers (the transfers API's concurrent requests, a purchase's hold) that is most of
// a commit; past 64 rows COPY's cheaper encoding wins. 64 rows of 11 parameters stay far under
// the protocol's 65,535, and each row count is one statement in pgx's cache of 512.
const maxInsertRows = 64

var (
	transferInsertColumns = []string{"id", "debit_account_id", "credit_account_id", "amount", "ref_id",
		"user_data", "timeout_seconds", "code", "flags", "ts", "expires_at"}
	balanceInsertColumns = []string{"account_id", "shard", "version", "ts", "debits_pending", "debits_posted",
		"credits_pending", "credits_posted", "transfer_ids"}
)

// smallOutcome says out is written with INSERTs rather than COPY.
func smallOutcome(out *ledger.Outcome) bool {
	return len(out.Created) <= maxInsertRows && len(out.Touched) <= 2*maxInsertRows
}

// insertOutcome is writeOutcome for a small batch: the same rows in the same order, written by
// INSERTs sent in one round trip with the resolutions and open holds.
func insertOutcome(ctx context.Context, tx pgx.Tx, out *ledger.Outcome, versions map[ledger.ID]int64, shards map[ledger.ID]int16, ts int64) error {
	q := &pgx.Batch{}
	queueOutcome(q, out, versions, shards, ts)
	if q.Len() == 0 {
		return nil
	}
	if err := tx.SendBatch(ctx, q).Close(); err != nil {
		return fmt.Errorf("write transfers, resolutions and balances: %w", err)
	}
	return nil
}

// queueOutcome queues insertOutcome's statements on q.
func queueOutcome(q *pgx.Batch, out *ledger.Outcome, versions map[ledger.ID]int64, shards map[ledger.ID]int16, ts int64) {
	at := time.UnixMicro(ts).UTC()
	created := out.Created
	lines := make(map[ledger.ID][][16]byte, len(out.Touched))
	if len(created) > 0 {
		args := make([]any, 0, len(created)*len(transferInsertColumns))
		for i := range created {
			t := &created[i]
			lines[t.DebitAccountID] = append(lines[t.DebitAccountID], t.ID)
			lines[t.CreditAccountID] = append(lines[t.CreditAccountID], t.ID)
			var expires *time.Time
			if e := t.ExpiresAt(); e != 0 {
				x := time.UnixMicro(e).UTC()
				expires = &x
			}
			args = append(args, [16]byte(t.ID), [16]byte(t.DebitAccountID), [16]byte(t.CreditAccountID), t.Amount, nullID(t.Ref),
				nullID(t.UserData), int64(t.TimeoutSeconds), int32(t.Code), int32(t.Flags), at, expires)
		}
		q.Queue(insertValues("transfers", transferInsertColumns, len(created)), args...)
	}
	queueResolutions(q, out, at)
	if touched := out.Touched; len(touched) > 0 {
		slices.SortFunc(touched, func(a, b *ledger.Account) int { return compareID(a.ID, b.ID) })
		args := make([]any, 0, len(touched)*len(balanceInsertColumns))
		for _, a := range touched {
			ids := lines[a.ID]
			if ids == nil {
				ids = [][16]byte{}
			}
			args = append(args, [16]byte(a.ID), int32(shards[a.ID]), versions[a.ID]+1, at, a.DebitsPending, a.DebitsPosted, a.CreditsPending, a.CreditsPosted, ids)
		}
		q.Queue(insertValues("account_balances", balanceInsertColumns, len(touched)), args...)
	}
}

// insertValues is an INSERT of rows rows into table's columns, its values numbered parameters.
// Each is spelled once and kept, by its column list (the package's own, one per table): two
// tables, at most maxInsertRows transfers and twice as many balance rows, a few hundred
// statements in all.
func insertValues(table string, columns []string, rows int) string {
	k := insertKey{table, &columns[0], rows}
	if q, ok := insertStatements.Load(k); ok {
		return q.(string)
	}
	q := spellInsertValues(table, columns, rows)
	insertStatements.Store(k, q)
	return q
}

type insertKey struct {
	table   string
	columns *string
	rows    int
}

// insertStatements holds the statements insertValues spelled, by table and rows.
var insertStatements sync.Map

func spellInsertValues(table string, columns []string, rows int) string {
	var b strings.Builder
	b.WriteString("INSERT INTO ")
	b.WriteString(table)
	b.WriteString(" (")
	b.WriteString(strings.Join(columns, ", "))
	b.WriteString(") VALUES ")
	n := 1
	for r := range rows {
		if r > 0 {
			b.WriteString(", ")
		}
		b.WriteByte('(')
		for c := range columns {
			if c > 0 {
				b.WriteString(", ")
			}
			b.WriteByte('$')
			b.WriteString(strconv.Itoa(n))
			n++
		}
		b.WriteByte(')')
	}
	return b.String()
}

func nullID(id ledger.ID) *[16]byte {
	if id.IsZero() {
		return nil
	}
	u := [16]byte(id)
	return &u
}

func compareID(a, b ledger.ID) int { return bytes.Compare(a[:], b[:]) }

// settlementGate reads, once per transaction, the end of the last settlement cycle closed, under a
// shared lock held until the transaction ends: a cycle closing meanwhile waits for this batch to
// commit, and a batch that reads it after a close stamps its transfers into the next cycle.
func (t *Tx) settlementGate(ctx context.Context) (int64, error) {
	if t.gated {
		return t.gate, nil
	}
	if t.gateGuessed {
		t.gate, t.gated, t.gateUnchecked = t.gateGuess, true, true
		return t.gate, nil
	}
	var closed time.Time
	if err := t.QueryRow(ctx, settlementGateRead).Scan(&closed); err != nil {
		return 0, fmt.Errorf("read the settlement gate: %w", err)
	}
	t.gate, t.gated = closed.UnixMicro(), true
	return t.gate, nil
}
