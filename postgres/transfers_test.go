package postgres_test

import (
	"context"
	"errors"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/joinincard/engine/internal/pgtest"
	"github.com/joinincard/engine/ledger"
	"github.com/joinincard/engine/postgres"
)

// transferDesk is the transfers committer on a store of its own, with a bank that funds, sources
// funded from it and one hot account every test credits.
// wantHotCredited checks that the desk's hot account has been credited want, posted.
func (d *transferDesk) wantHotCredited(t *testing.T, want int64) {
	t.Helper()
	bal, err := d.st.Balance(context.Background(), d.hot)
	if err != nil {
		t.Fatal(err)
	}
	if bal.CreditsPosted != want {
		t.Errorf("hot account credited %d, want %d", bal.CreditsPosted, want)
	}
}

type transferDesk struct {
	st      *postgres.Store
	tr      *postgres.Transfers
	bank    ledger.ID
	hot     ledger.ID
	sources []ledger.ID
	commits atomic.Int64
	// sizes holds the requests of each commit, in order.
	mu    sync.Mutex
	sizes []int
}

func newTransferDesk(t *testing.T, sources int, fault func(batch []ledger.Transfer, applied bool) error) *transferDesk {
	t.Helper()
	d := &transferDesk{st: pgtest.NewStore(t), bank: newID(t), hot: newID(t)}
	specs := []postgres.AccountSpec{
		{Account: ledger.Account{ID: d.bank, Currency: "CNY", Kind: ledger.KindBankSettlement}, Name: "bank"},
		{Account: ledger.Account{ID: d.hot, Currency: "CNY", Kind: ledger.KindSuspense}, Name: "hot"},
	}
	var funding []ledger.Transfer
	for range sources {
		id := newID(t)
		d.sources = append(d.sources, id)
		specs = append(specs, postgres.AccountSpec{Account: ledger.Account{ID: id, Currency: "CNY", Kind: ledger.KindSuspense,
			Flags: ledger.DebitsMustNotExceedCredits}, Name: "source"})
		funding = append(funding, ledger.Transfer{ID: newID(t), DebitAccountID: d.bank, CreditAccountID: id, Amount: 1_000_000_00})
	}
	ctx := context.Background()
	if err := d.st.CreateAccounts(ctx, specs); err != nil {
		t.Fatal(err)
	}
	if len(funding) > 0 {
		commit(t, d.st, nil, funding...)
	}
	d.tr = postgres.NewTransfers(d.st)
	if fault != nil {
		postgres.SetTransfersFault(d.tr, fault)
	}
	d.tr.OnCommit = func(requests, _ int, _ time.Duration) {
		d.commits.Add(1)
		d.mu.Lock()
		d.sizes = append(d.sizes, requests)
		d.mu.Unlock()
	}
	runCtx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		d.tr.Run(runCtx)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	return d
}

func (d *transferDesk) to(t *testing.T, from, to ledger.ID, amount int64) ledger.Transfer {
	return ledger.Transfer{ID: newID(t), DebitAccountID: from, CreditAccountID: to, Amount: amount, Currency: "CNY"}
}

// waitQueued waits until n transfers wait in the committer's queue.
func (d *transferDesk) waitQueued(t *testing.T, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for postgres.QueuedTransfers(d.tr) < n {
		if time.Now().After(deadline) {
			t.Fatalf("%d transfers queued, want %d", postgres.QueuedTransfers(d.tr), n)
		}
		time.Sleep(time.Millisecond)
	}
}

// gate holds the committer in its next commit until release is called, so that requests queue
// behind it and the commit after takes them together.
type gate struct {
	held    chan struct{}
	release chan struct{}
	once    sync.Once
}

func newGate() *gate { return &gate{held: make(chan struct{}), release: make(chan struct{})} }

// hold blocks the first call until release, and lets every later one through.
func (g *gate) hold() {
	first := false
	g.once.Do(func() { first = true })
	if first {
		close(g.held)
		<-g.release
	}
}

// Sixteen clients credit one hot account at once: every transfer is created, no request fails,
// the committer merges them, and the hot account gets one balance version per commit rather than
// one per request.
func TestTransfersOnOneHotAccountCostOneVersionPerCommit(t *testing.T) {
	const clients, perClient = 16, 60
	d := newTransferDesk(t, clients, nil)
	ctx := context.Background()
	var (
		wg     sync.WaitGroup
		failed atomic.Int64
		wrong  atomic.Int64
	)
	for c := range clients {
		wg.Go(func() {
			for range perClient {
				res, _, err := d.tr.Do(ctx, []ledger.Transfer{d.to(t, d.sources[c], d.hot, 100)})
				if err != nil {
					failed.Add(1)
					t.Error(err)
					return
				}
				if len(res) != 1 || res[0] != ledger.Created {
					wrong.Add(1)
				}
			}
		})
	}
	wg.Wait()
	if failed.Load() != 0 || wrong.Load() != 0 {
		t.Fatalf("%d requests failed, %d transfers not created", failed.Load(), wrong.Load())
	}
	b, err := d.st.Balance(ctx, d.hot)
	if err != nil {
		t.Fatal(err)
	}
	commits := d.commits.Load()
	if b.CreditsPosted != clients*perClient*100 {
		t.Errorf("hot account credited %d, want %d", b.CreditsPosted, clients*perClient*100)
	}
	// Version 1 is the opening; every commit credited the hot account once.
	if b.Version != 1+commits {
		t.Errorf("hot account at version %d after %d commits, want one version per commit", b.Version, commits)
	}
	if commits >= clients*perClient {
		t.Errorf("%d requests took %d commits: none were merged", clients*perClient, commits)
	}
	t.Logf("%d requests in %d commits", clients*perClient, commits)
}

// A request whose last transfer is linked leaves its chain open: the ledger refuses the chain
// (linked_event_chain_open), the transfers before it are applied, and the request queued after it
// is applied as it is, never taken into that chain.
func TestTransfersOpenChainStaysInItsRequest(t *testing.T) {
	g := newGate()
	d := newTransferDesk(t, 2, func(_ []ledger.Transfer, applied bool) error {
		if !applied {
			g.hold()
		}
		return nil
	})
	ctx := context.Background()
	first := make(chan error, 1)
	go func() {
		_, _, err := d.tr.Do(ctx, []ledger.Transfer{d.to(t, d.sources[0], d.hot, 1)})
		first <- err
	}()
	<-g.held
	open := []ledger.Transfer{d.to(t, d.sources[0], d.hot, 100), d.to(t, d.sources[0], d.hot, 200), d.to(t, d.sources[0], d.hot, 300)}
	open[1].Flags, open[2].Flags = ledger.Linked, ledger.Linked
	next := []ledger.Transfer{d.to(t, d.sources[1], d.hot, 400)}
	type answer struct {
		res []ledger.Result
		err error
	}
	openDone, nextDone := make(chan answer, 1), make(chan answer, 1)
	go func() {
		res, _, err := d.tr.Do(ctx, open)
		openDone <- answer{res, err}
	}()
	d.waitQueued(t, 3)
	go func() {
		res, _, err := d.tr.Do(ctx, next)
		nextDone <- answer{res, err}
	}()
	d.waitQueued(t, 4)
	close(g.release)
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	a := <-openDone
	if a.err != nil {
		t.Fatal(a.err)
	}
	wantResults(t, a.res, ledger.Created, ledger.LinkedEventFailed, ledger.LinkedEventChainOpen)
	b := <-nextDone
	if b.err != nil {
		t.Fatal(b.err)
	}
	wantResults(t, b.res, ledger.Created)
	d.wantHotCredited(t, 1+100+400)
}

// errPoisoned stands for a value the database refuses.
var errPoisoned = errors.New("the database refused a value")

// One request the database refuses shares a commit with others: it fails alone, and every other
// request is answered as if it had not been there.
func TestOneTransferRequestsFaultFailsItAlone(t *testing.T) {
	const good, bad = 24, 3
	g := newGate()
	var poisoned sync.Map
	d := newTransferDesk(t, good, func(batch []ledger.Transfer, applied bool) error {
		if applied {
			return nil
		}
		g.hold()
		for i := range batch {
			if _, ok := poisoned.Load(batch[i].ID); ok {
				return errPoisoned
			}
		}
		return nil
	})
	ctx := context.Background()
	go func() { _, _, _ = d.tr.Do(ctx, []ledger.Transfer{d.to(t, d.sources[0], d.hot, 1)}) }()
	<-g.held
	var (
		wg             sync.WaitGroup
		goodOK, badErr atomic.Int64
	)
	for i := range good + bad {
		wg.Go(func() {
			tr := d.to(t, d.sources[i%good], d.hot, 100)
			if i >= good {
				poisoned.Store(tr.ID, true)
			}
			res, _, err := d.tr.Do(ctx, []ledger.Transfer{tr, d.to(t, d.sources[i%good], d.bank, 5)})
			switch {
			case i >= good && errors.Is(err, errPoisoned):
				badErr.Add(1)
			case i < good && err == nil && slices.Equal(res, []ledger.Result{ledger.Created, ledger.Created}):
				goodOK.Add(1)
			default:
				t.Errorf("request %d: %v %v", i, res, err)
			}
		})
	}
	d.waitQueued(t, 2*(good+bad))
	close(g.release)
	wg.Wait()
	if goodOK.Load() != good || badErr.Load() != bad {
		t.Fatalf("%d of %d good requests applied, %d of %d bad ones failed", goodOK.Load(), good, badErr.Load(), bad)
	}
	d.wantHotCredited(t, 1+int64(good)*100)
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(d.sizes) < 2 || d.sizes[1] != good+bad {
		t.Errorf("commits of %v requests: the queued requests were not taken together", d.sizes)
	}
}

// A batch sent again answers exists for each transfer and moves nothing; the same id with another
// amount is refused as such, and a transfer stated in another currency than its accounts' is
// refused currency_mismatch. Two requests with one id in one commit: the first creates it.
func TestTransfersAreIdempotentByID(t *testing.T) {
	g := newGate()
	d := newTransferDesk(t, 1, func(_ []ledger.Transfer, applied bool) error {
		if !applied {
			g.hold()
		}
		return nil
	})
	ctx := context.Background()
	src := d.sources[0]
	batch := []ledger.Transfer{d.to(t, src, d.hot, 100), d.to(t, src, d.hot, 200)}
	batch[0].Flags = ledger.Linked
	firstDone := make(chan error, 1)
	go func() {
		res, _, err := d.tr.Do(ctx, batch)
		if err == nil && !slices.Equal(res, []ledger.Result{ledger.Created, ledger.Created}) {
			err = errors.New("first batch not created")
		}
		firstDone <- err
	}()
	<-g.held
	// The same transfer in two requests of one commit: created once.
	twice := d.to(t, src, d.hot, 7)
	answers := make(chan []ledger.Result, 2)
	for range 2 {
		go func() {
			res, _, err := d.tr.Do(ctx, []ledger.Transfer{twice})
			if err != nil {
				t.Error(err)
			}
			answers <- res
		}()
	}
	d.waitQueued(t, 2)
	close(g.release)
	if err := <-firstDone; err != nil {
		t.Fatal(err)
	}
	got := []ledger.Result{(<-answers)[0], (<-answers)[0]}
	slices.Sort(got)
	wantResults(t, got, ledger.Created, ledger.Exists)

	res, ts, err := d.tr.Do(ctx, batch)
	if err != nil {
		t.Fatal(err)
	}
	wantResults(t, res, ledger.Exists, ledger.Exists)
	if ts.IsZero() {
		t.Error("no commit time")
	}
	other := slices.Clone(batch[1:])
	other[0].Amount = 201
	res, _, err = d.tr.Do(ctx, other)
	if err != nil {
		t.Fatal(err)
	}
	wantResults(t, res, ledger.ExistsWithDifferentAmount)
	usd := d.to(t, src, d.hot, 100)
	usd.Currency = "USD"
	replayUSD := batch[1]
	replayUSD.Currency = "USD"
	res, _, err = d.tr.Do(ctx, []ledger.Transfer{usd, replayUSD})
	if err != nil {
		t.Fatal(err)
	}
	wantResults(t, res, ledger.CurrencyMismatch, ledger.CurrencyMismatch)
	d.wantHotCredited(t, 307)
}

// The queue is bounded in transfers: past it a request is turned away busy, and after the
// committer stops every request waiting and every new one is refused stopped, nothing applied.
func TestTransfersBusyAndStopped(t *testing.T) {
	st := pgtest.NewStore(t)
	tr := postgres.NewTransfers(st)
	ctx, cancel := context.WithCancel(context.Background())
	full := make([]ledger.Transfer, ledger.MaxBatchTransfers)
	for i := range full {
		full[i] = ledger.Transfer{ID: newID(t), DebitAccountID: newID(t), CreditAccountID: newID(t), Amount: 1}
	}
	waiting := postgres.MaxQueuedTransfers / ledger.MaxBatchTransfers
	errs := make(chan error, waiting)
	for range waiting {
		go func() {
			_, _, err := tr.Do(ctx, full)
			errs <- err
		}()
	}
	deadline := time.Now().Add(10 * time.Second)
	for postgres.QueuedTransfers(tr) < postgres.MaxQueuedTransfers && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if _, _, err := tr.Do(ctx, full[:1]); !errors.Is(err, postgres.ErrTransfersBusy) {
		t.Fatalf("past the queue's bound: %v, want ErrTransfersBusy", err)
	}
	if _, _, err := tr.Do(ctx, append(full, full[0])); !errors.Is(err, postgres.ErrBatchTooLarge) {
		t.Errorf("a batch past the ledger's bound: %v, want ErrBatchTooLarge", err)
	}
	if _, _, err := tr.Do(ctx, nil); !errors.Is(err, postgres.ErrNoTransfers) {
		t.Errorf("no transfers: %v, want ErrNoTransfers", err)
	}
	cancel()
	tr.Run(ctx) // returns at once, refusing what waits
	for range waiting {
		if err := <-errs; !errors.Is(err, postgres.ErrTransfersStopped) && !errors.Is(err, context.Canceled) {
			t.Errorf("a request waiting when the committer stopped: %v", err)
		}
	}
	if _, _, err := tr.Do(context.Background(), full[:1]); !errors.Is(err, postgres.ErrTransfersStopped) {
		t.Errorf("after stop: %v, want ErrTransfersStopped", err)
	}
	var n int
	if err := st.Pool().QueryRow(context.Background(), `SELECT count(*) FROM transfers`).Scan(&n); err != nil || n != 0 {
		t.Errorf("%d transfers written (%v), want none", n, err)
	}
}

// An account opened again with its definition is reported as found, not opened; with another
// definition, or twice in one call with two, the conflict names it and nothing is opened.
func TestOpenAccountsSaysWhichItOpened(t *testing.T) {
	st := pgtest.NewStore(t)
	ctx := context.Background()
	a := postgres.AccountSpec{Account: ledger.Account{ID: newID(t), Currency: "CNY", Kind: ledger.KindSuspense}, Name: "a"}
	b := postgres.AccountSpec{Account: ledger.Account{ID: newID(t), Currency: "USD", Kind: ledger.KindBankSettlement}, Name: "b"}
	opened, err := st.OpenAccounts(ctx, []postgres.AccountSpec{a})
	if err != nil || !slices.Equal(opened, []bool{true}) {
		t.Fatalf("open a: %v %v", opened, err)
	}
	opened, err = st.OpenAccounts(ctx, []postgres.AccountSpec{a, b})
	if err != nil || !slices.Equal(opened, []bool{false, true}) {
		t.Fatalf("open a again and b: %v %v", opened, err)
	}
	c := postgres.AccountSpec{Account: ledger.Account{ID: newID(t), Currency: "CNY", Kind: ledger.KindSuspense}, Name: "c"}
	renamed := a
	renamed.Name = "renamed"
	_, err = st.OpenAccounts(ctx, []postgres.AccountSpec{c, renamed})
	var conflict *postgres.AccountConflictError
	if !errors.As(err, &conflict) || conflict.ID != a.ID || !errors.Is(err, postgres.ErrAccountConflict) {
		t.Fatalf("a renamed: %v, want a conflict naming it", err)
	}
	twice := c
	twice.Limit, twice.Flags = 100, ledger.DebitsMustNotExceedCredits
	if _, err = st.OpenAccounts(ctx, []postgres.AccountSpec{c, twice}); !errors.As(err, &conflict) || conflict.ID != c.ID {
		t.Fatalf("c twice with two definitions: %v", err)
	}
	if _, err := st.Balance(ctx, c.ID); !errors.Is(err, postgres.ErrNotFound) {
		t.Errorf("c was opened by a call that failed: %v", err)
	}
}

// A commit is applied on the balances of the one before while that one commits. When the one
// before does not commit its first attempt after all (a conflict at the last moment), the commit
// built on it commits nothing of what it built: it is applied again on what the one before
// finally wrote. The hot account's history has no gap, its balance counts every transfer once,
// and the ledger verifies (pgtest, when the test ends).
func TestTransfersBuiltOnACommitThatFailedAreAppliedAgain(t *testing.T) {
	first := newID(t)
	var (
		mu           sync.Mutex
		firstTries   int
		secondTries  int
		firstApplied = make(chan struct{})
		secondBuilt  = make(chan struct{})
	)
	d := newTransferDesk(t, 2, func(batch []ledger.Transfer, applied bool) error {
		mu.Lock()
		defer mu.Unlock()
		if !applied {
			return nil
		}
		if batch[0].ID == first {
			firstTries++
			if firstTries == 1 {
				// Hold the first commit, applied, until the second is built on it; then fail it.
				mu.Unlock()
				close(firstApplied)
				select {
				case <-secondBuilt:
				case <-time.After(10 * time.Second):
					t.Error("the second commit was not built on the first while it was in flight")
				}
				mu.Lock()
				return postgres.Retryable(errors.New("a conflict at the last moment"))
			}
			return nil
		}
		secondTries++
		if secondTries == 1 {
			close(secondBuilt)
		}
		return nil
	})
	ctx := context.Background()
	one := d.to(t, d.sources[0], d.hot, 100)
	one.ID = first
	done := make(chan []ledger.Result, 2)
	go func() {
		res, _, err := d.tr.Do(ctx, []ledger.Transfer{one})
		if err != nil {
			t.Error(err)
		}
		done <- res
	}()
	<-firstApplied
	// From the same source: the second commit builds on the balance the first wrote.
	go func() {
		res, _, err := d.tr.Do(ctx, []ledger.Transfer{d.to(t, d.sources[0], d.hot, 200)})
		if err != nil {
			t.Error(err)
		}
		done <- res
	}()
	for range 2 {
		if res := <-done; !slices.Equal(res, []ledger.Result{ledger.Created}) {
			t.Fatalf("results %v", res)
		}
	}
	mu.Lock()
	if firstTries != 2 || secondTries < 2 {
		t.Errorf("first commit tried %d times, second %d: want the second applied again after the first failed", firstTries, secondTries)
	}
	mu.Unlock()
	bal, err := d.st.Balance(ctx, d.hot)
	if err != nil {
		t.Fatal(err)
	}
	if bal.CreditsPosted != 300 || bal.Version != 1+d.commits.Load() {
		t.Errorf("hot account credited %d at version %d after %d commits, want 300 at one version per commit", bal.CreditsPosted, bal.Version, d.commits.Load())
	}
}

// A commit that shares no balance with the one before it (other accounts, or a receiving account
// each writes in a shard of its own) does not wait for that one to commit: it commits, and is
// answered, while the one before is still held open.
func TestTransfersIndependentOfTheCommitBeforeDoNotWaitForIt(t *testing.T) {
	first := newID(t)
	hold := newGate()
	d := newTransferDesk(t, 2, func(batch []ledger.Transfer, applied bool) error {
		if applied && batch[0].ID == first {
			hold.hold()
		}
		return nil
	})
	ctx := context.Background()
	one := d.to(t, d.sources[0], d.hot, 100)
	one.ID = first
	done := make(chan []ledger.Result, 1)
	go func() {
		res, _, err := d.tr.Do(ctx, []ledger.Transfer{one})
		if err != nil {
			t.Error(err)
		}
		done <- res
	}()
	<-hold.held
	second := make(chan []ledger.Result, 1)
	go func() {
		res, _, err := d.tr.Do(ctx, []ledger.Transfer{d.to(t, d.sources[1], d.hot, 200)})
		if err != nil {
			t.Error(err)
		}
		second <- res
	}()
	select {
	case res := <-second:
		if !slices.Equal(res, []ledger.Result{ledger.Created}) {
			t.Errorf("second results %v", res)
		}
	case <-time.After(5 * time.Second):
		t.Error("the second commit waited for the first, which it shares no balance with")
	}
	close(hold.release)
	if res := <-done; !slices.Equal(res, []ledger.Result{ledger.Created}) {
		t.Fatalf("first results %v", res)
	}
	if t.Failed() {
		<-second
	}
	d.wantHotCredited(t, 300)
}

// The committer stamps a commit after the settlement gate without reading it first, taking the
// one its last commit read; a settlement cycle closed since is found in the commit's own round
// trip, and the commit is decided again after the new gate, never stamped inside the closed cycle.
func TestTransfersAfterASettlementCycleClosedAreStampedAfterIt(t *testing.T) {
	d := newTransferDesk(t, 1, nil)
	ctx := context.Background()
	if res, _, err := d.tr.Do(ctx, []ledger.Transfer{d.to(t, d.sources[0], d.hot, 100)}); err != nil || !slices.Equal(res, []ledger.Result{ledger.Created}) {
		t.Fatalf("first: %v %v", res, err)
	}
	closed := time.Now().Add(time.Second).UTC().Truncate(time.Microsecond)
	if _, err := d.st.Pool().Exec(ctx, `UPDATE settlement_gate SET closed_through = $1 WHERE id = 1`, closed); err != nil {
		t.Fatal(err)
	}
	res, at, err := d.tr.Do(ctx, []ledger.Transfer{d.to(t, d.sources[0], d.hot, 200)})
	if err != nil || !slices.Equal(res, []ledger.Result{ledger.Created}) {
		t.Fatalf("second: %v %v", res, err)
	}
	if !at.After(closed) {
		t.Errorf("second commit stamped %s, not after the cycle closed through %s", at, closed)
	}
}
