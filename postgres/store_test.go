package postgres_test

import (
	"context"
	"errors"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/joinincard/engine/internal/pgtest"
	"github.com/joinincard/engine/ledger"
	"github.com/joinincard/engine/postgres"
)

func TestMain(m *testing.M) {
	if os.Getenv(writerEnv) != "" {
		os.Exit(runWriter(os.Getenv(writerEnv)))
	}
	pgtest.Main(m, "postgres")
}

func newID(t testing.TB) ledger.ID {
	t.Helper()
	u, err := uuid.NewV7()
	if err != nil {
		t.Fatal(err)
	}
	return ledger.ID(u)
}

// chart opens a cardholder with funds, a transit operator, a merchant and a bank, and funds the
// cardholder with 1,000.00 CNY from the bank.
type chart struct {
	card, card2, operator, merchant, bank ledger.ID
}

func openChart(t *testing.T, st *postgres.Store) chart {
	t.Helper()
	c := chart{card: newID(t), card2: newID(t), operator: newID(t), merchant: newID(t), bank: newID(t)}
	specs := []postgres.AccountSpec{
		{Account: ledger.Account{ID: c.card, Currency: "CNY", Kind: ledger.KindCardholderFunds, Flags: ledger.DebitsMustNotExceedCredits}, Name: "card 1"},
		{Account: ledger.Account{ID: c.card2, Currency: "CNY", Kind: ledger.KindCardholderFunds, Flags: ledger.DebitsMustNotExceedCredits, Limit: 5000}, Name: "card 2"},
		{Account: ledger.Account{ID: c.operator, Currency: "CNY", Kind: ledger.KindOperatorClearing}, Name: "metro"},
		{Account: ledger.Account{ID: c.merchant, Currency: "CNY", Kind: ledger.KindMerchantClearing}, Name: "pharmacy"},
		{Account: ledger.Account{ID: c.bank, Currency: "CNY", Kind: ledger.KindBankSettlement}, Name: "bank"},
	}
	ctx := context.Background()
	if err := st.CreateAccounts(ctx, specs); err != nil {
		t.Fatal(err)
	}
	// Opening the same accounts again changes nothing; a different definition is refused.
	if err := st.CreateAccounts(ctx, specs); err != nil {
		t.Fatalf("reopen: %v", err)
	}
	changed := specs[0]
	changed.Limit = 1
	if err := st.CreateAccounts(ctx, []postgres.AccountSpec{changed}); !errors.Is(err, postgres.ErrAccountConflict) {
		t.Fatalf("reopen with a different limit: got %v, want ErrAccountConflict", err)
	}
	commit(t, st, nil, ledger.Transfer{ID: newID(t), DebitAccountID: c.bank, CreditAccountID: c.card, Amount: 100000, Code: 1})
	return c
}

func commit(t *testing.T, st *postgres.Store, cur *postgres.Cursor, batch ...ledger.Transfer) postgres.BatchResult {
	t.Helper()
	res, err := st.CommitBatch(context.Background(), batch, cur)
	if err != nil {
		t.Fatalf("commit: %v", err)
	}
	return res
}

func wantResults(t *testing.T, got []ledger.Result, want ...ledger.Result) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("got %d results %v, want %v", len(got), got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("transfer %d: got %s, want %s", i, got[i], want[i])
		}
	}
}

func balance(t *testing.T, st *postgres.Store, id ledger.ID) ledger.Balance {
	t.Helper()
	b, err := st.Balance(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return b.Balance
}

func TestCommitBatchResultsAndBalances(t *testing.T) {
	st := pgtest.NewStore(t)
	c := openChart(t, st)
	fare, overdraft, tooMuch, unknown := newID(t), newID(t), newID(t), newID(t)
	res := commit(t, st, nil,
		ledger.Transfer{ID: fare, DebitAccountID: c.card, CreditAccountID: c.operator, Amount: 300, Code: 10},
		ledger.Transfer{ID: overdraft, DebitAccountID: c.card2, CreditAccountID: c.merchant, Amount: 4000, Code: 20},
		ledger.Transfer{ID: tooMuch, DebitAccountID: c.card2, CreditAccountID: c.merchant, Amount: 1001, Code: 20},
		ledger.Transfer{ID: unknown, DebitAccountID: newID(t), CreditAccountID: c.merchant, Amount: 1, Code: 20},
		ledger.Transfer{ID: fare, DebitAccountID: c.card, CreditAccountID: c.operator, Amount: 300, Code: 10},
	)
	wantResults(t, res.Results, ledger.Created, ledger.Created, ledger.InsufficientFunds, ledger.DebitAccountNotFound, ledger.Exists)
	if got := balance(t, st, c.card); got != (ledger.Balance{DebitsPosted: 300, CreditsPosted: 100000}) {
		t.Errorf("card: %+v", got)
	}
	if got := balance(t, st, c.card2); got != (ledger.Balance{DebitsPosted: 4000}) {
		t.Errorf("card 2 within its overdraft: %+v", got)
	}
	if got := balance(t, st, c.operator); got.CreditsPosted != 300 {
		t.Errorf("operator: %+v", got)
	}

	// The same batch again is answered from what was written and changes nothing.
	again := commit(t, st, nil,
		ledger.Transfer{ID: fare, DebitAccountID: c.card, CreditAccountID: c.operator, Amount: 300, Code: 10},
		ledger.Transfer{ID: fare, DebitAccountID: c.card, CreditAccountID: c.operator, Amount: 301, Code: 10},
		ledger.Transfer{ID: overdraft, DebitAccountID: c.card2, CreditAccountID: c.merchant, Amount: 4000, Code: 20},
	)
	wantResults(t, again.Results, ledger.Exists, ledger.ExistsWithDifferentAmount, ledger.Exists)
	if len(again.Touched) != 0 {
		t.Errorf("a replay touched %d accounts", len(again.Touched))
	}
	b, err := st.Balance(context.Background(), c.operator)
	if err != nil {
		t.Fatal(err)
	}
	if b.Version != 2 {
		t.Errorf("operator balance version %d after one change, want 2", b.Version)
	}
	got, err := st.Transfer(context.Background(), fare)
	if err != nil {
		t.Fatal(err)
	}
	if got.Amount != 300 || got.DebitAccountID != c.card || got.Code != 10 || got.Timestamp != res.Timestamp.UnixMicro() {
		t.Errorf("stored transfer %+v", got)
	}
}

func TestLinkedGroupIsAllOrNothing(t *testing.T) {
	st := pgtest.NewStore(t)
	c := openChart(t, st)
	// A purchase with its fee: the second leg fails, so neither is written.
	res := commit(t, st, nil,
		ledger.Transfer{ID: newID(t), DebitAccountID: c.card, CreditAccountID: c.merchant, Amount: 5000, Code: 20, Flags: ledger.Linked},
		ledger.Transfer{ID: newID(t), DebitAccountID: c.merchant, CreditAccountID: c.card, Amount: 5000, Code: 21, Flags: ledger.Linked},
		ledger.Transfer{ID: newID(t), DebitAccountID: c.card, CreditAccountID: c.merchant, Amount: 999999, Code: 20},
	)
	wantResults(t, res.Results, ledger.LinkedEventFailed, ledger.LinkedEventFailed, ledger.InsufficientFunds)
	if len(res.Created) != 0 || len(res.Touched) != 0 {
		t.Fatalf("failed group wrote %d transfers, %d balances", len(res.Created), len(res.Touched))
	}
	if got := balance(t, st, c.merchant); got != (ledger.Balance{}) {
		t.Errorf("merchant: %+v", got)
	}
}

func TestHoldsPostVoidAndExpire(t *testing.T) {
	st := pgtest.NewStore(t)
	c := openChart(t, st)
	ctx := context.Background()
	clock := time.Now()
	st.Now = func() time.Time { return clock }

	hold1, hold2, hold3 := newID(t), newID(t), newID(t)
	res := commit(t, st, nil,
		ledger.Transfer{ID: hold1, DebitAccountID: c.card, CreditAccountID: c.merchant, Amount: 20000, Code: 30, Flags: ledger.Pending, TimeoutSeconds: 3600},
		ledger.Transfer{ID: hold2, DebitAccountID: c.card, CreditAccountID: c.merchant, Amount: 30000, Code: 30, Flags: ledger.Pending, TimeoutSeconds: 3600},
		ledger.Transfer{ID: hold3, DebitAccountID: c.card, CreditAccountID: c.merchant, Amount: 40000, Code: 30, Flags: ledger.Pending, TimeoutSeconds: 60},
		ledger.Transfer{ID: newID(t), DebitAccountID: c.card, CreditAccountID: c.merchant, Amount: 10001, Code: 30, Flags: ledger.Pending},
	)
	wantResults(t, res.Results, ledger.Created, ledger.Created, ledger.Created, ledger.InsufficientFunds)

	post, void := newID(t), newID(t)
	res = commit(t, st, nil,
		ledger.Transfer{ID: post, Ref: hold1, Amount: 15000, Code: 31, Flags: ledger.PostPending},
		ledger.Transfer{ID: void, Ref: hold2, Code: 32, Flags: ledger.VoidPending},
		ledger.Transfer{ID: newID(t), Ref: hold2, Code: 31, Amount: 1, Flags: ledger.PostPending},
	)
	wantResults(t, res.Results, ledger.Created, ledger.Created, ledger.PendingAlreadyResolved)
	if got := balance(t, st, c.card); got != (ledger.Balance{DebitsPending: 40000, DebitsPosted: 15000, CreditsPosted: 100000}) {
		t.Fatalf("card after post and void: %+v", got)
	}

	// Nothing has expired yet.
	if n, err := st.ExpireHolds(ctx, 100); err != nil || n != 0 {
		t.Fatalf("early sweep: %d, %v", n, err)
	}
	clock = clock.Add(61 * time.Second)
	res = commit(t, st, nil, ledger.Transfer{ID: newID(t), Ref: hold3, Amount: 1, Code: 31, Flags: ledger.PostPending})
	wantResults(t, res.Results, ledger.PendingExpired)
	if n, err := st.ExpireHolds(ctx, 100); err != nil || n != 1 {
		t.Fatalf("sweep: %d, %v", n, err)
	}
	if n, err := st.ExpireHolds(ctx, 100); err != nil || n != 0 {
		t.Fatalf("second sweep expired %d again, %v", n, err)
	}
	if got := balance(t, st, c.card); got != (ledger.Balance{DebitsPosted: 15000, CreditsPosted: 100000}) {
		t.Fatalf("card after expiry: %+v", got)
	}
	// The post is a transfer of its own, reversible once.
	res = commit(t, st, nil,
		ledger.Transfer{ID: newID(t), Ref: post, Amount: 15000, Code: 33, Flags: ledger.Reversal},
		ledger.Transfer{ID: newID(t), Ref: post, Amount: 1, Code: 33, Flags: ledger.Reversal},
	)
	wantResults(t, res.Results, ledger.Created, ledger.ReversalAlreadyDone)
	if got := balance(t, st, c.merchant); got.Net() != 0 || got.DebitsPending != 0 || got.CreditsPending != 0 {
		t.Fatalf("merchant after reversal: %+v", got)
	}
}

func TestCursorAdvancesWithItsBatchOnly(t *testing.T) {
	st := pgtest.NewStore(t)
	c := openChart(t, st)
	ctx := context.Background()
	const name = "card-events/0"
	commit(t, st, &postgres.Cursor{Name: name, From: 0, To: 10},
		ledger.Transfer{ID: newID(t), DebitAccountID: c.card, CreditAccountID: c.operator, Amount: 200, Code: 10})
	stale := newID(t)
	_, err := st.CommitBatch(ctx, []ledger.Transfer{{ID: stale, DebitAccountID: c.card, CreditAccountID: c.operator, Amount: 200, Code: 10}},
		&postgres.Cursor{Name: name, From: 0, To: 10})
	if !errors.Is(err, postgres.ErrCursorMoved) {
		t.Fatalf("stale writer: got %v, want ErrCursorMoved", err)
	}
	if _, err := st.Transfer(ctx, stale); !errors.Is(err, postgres.ErrNotFound) {
		t.Fatalf("the stale batch's transfer was written: %v", err)
	}
	commit(t, st, &postgres.Cursor{Name: name, From: 10, To: 25})
	if pos, err := st.Cursor(ctx, name); err != nil || pos != 25 {
		t.Fatalf("cursor at %d, %v; want 25", pos, err)
	}
	if got := balance(t, st, c.operator); got.CreditsPosted != 200 {
		t.Fatalf("operator: %+v", got)
	}
}

func TestCursorsReportPositionAndLastMove(t *testing.T) {
	st := pgtest.NewStore(t)
	c := openChart(t, st)
	ctx := context.Background()
	// The store's clock may run ahead of the ledger's history, never behind it.
	first := time.Now().UTC().Add(time.Hour).Truncate(time.Microsecond)
	moved := first
	st.Now = func() time.Time { return moved }
	commit(t, st, &postgres.Cursor{Name: "card-events/0", From: 0, To: 10},
		ledger.Transfer{ID: newID(t), DebitAccountID: c.card, CreditAccountID: c.operator, Amount: 200, Code: 10})
	moved = moved.Add(time.Minute)
	commit(t, st, &postgres.Cursor{Name: "card-events/1", From: 0, To: 3})
	commit(t, st, &postgres.Cursor{Name: "card-events/1", From: 3, To: 7})

	got, err := st.Cursors(ctx, []string{"card-events/0", "card-events/1", "card-events/2"})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]postgres.CursorState{
		"card-events/0": {Position: 10, UpdatedAt: first},
		"card-events/1": {Position: 7, UpdatedAt: first.Add(time.Minute)},
	}
	if len(got) != len(want) {
		t.Fatalf("cursors %v, want %v", got, want)
	}
	for name, w := range want {
		if g := got[name]; g.Position != w.Position || !g.UpdatedAt.Equal(w.UpdatedAt) {
			t.Errorf("%s: %+v, want %+v", name, g, w)
		}
	}
}

func TestPointInTimeBalanceAndStatement(t *testing.T) {
	st := pgtest.NewStore(t)
	c := openChart(t, st)
	ctx := context.Background()
	var stamps []time.Time
	for i := 1; i <= 3; i++ {
		res := commit(t, st, nil, ledger.Transfer{ID: newID(t), DebitAccountID: c.card, CreditAccountID: c.operator, Amount: int64(100 * i), Code: 10})
		stamps = append(stamps, res.Timestamp)
	}
	for i, at := range stamps {
		b, err := st.BalanceAt(ctx, c.operator, at)
		if err != nil {
			t.Fatal(err)
		}
		want := int64(0)
		for j := 0; j <= i; j++ {
			want += int64(100 * (j + 1))
		}
		if b.CreditsPosted != want {
			t.Errorf("at batch %d: credits %d, want %d", i, b.CreditsPosted, want)
		}
		if b, err := st.BalanceAt(ctx, c.operator, at.Add(-time.Microsecond)); err != nil || b.CreditsPosted != want-int64(100*(i+1)) {
			t.Errorf("just before batch %d: %+v, %v", i, b.Balance, err)
		}
	}
	if _, err := st.BalanceAt(ctx, c.operator, stamps[0].Add(-time.Hour)); !errors.Is(err, postgres.ErrNotFound) {
		t.Errorf("before opening: got %v, want ErrNotFound", err)
	}
	lines, err := st.Statement(ctx, c.card, stamps[0], stamps[2].Add(time.Microsecond), nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(lines) != 3 || lines[0].Amount != 100 || lines[2].Amount != 300 {
		t.Fatalf("statement: %+v", lines)
	}
	if lines, err = st.Statement(ctx, c.card, stamps[1], stamps[2], nil, 0); err != nil || len(lines) != 1 || lines[0].Amount != 200 {
		t.Fatalf("statement of the middle batch: %+v, %v", lines, err)
	}
}

func TestHistoryIsImmutable(t *testing.T) {
	st := pgtest.NewStore(t)
	c := openChart(t, st)
	ctx := context.Background()
	for _, sql := range []string{
		`UPDATE transfers SET amount = amount + 1`,
		`DELETE FROM transfers`,
		`UPDATE account_balances SET credits_posted = 0`,
		`DELETE FROM account_balances WHERE account_id = '` + c.card.String() + `'`,
	} {
		if _, err := st.Pool().Exec(ctx, sql); err == nil {
			t.Errorf("%s: allowed", sql)
		}
	}
}

func TestRejectsOversizedBatch(t *testing.T) {
	st := pgtest.NewStore(t)
	c := openChart(t, st)
	batch := make([]ledger.Transfer, ledger.MaxBatchTransfers+1)
	for i := range batch {
		batch[i] = ledger.Transfer{ID: newID(t), DebitAccountID: c.bank, CreditAccountID: c.merchant, Amount: 1, Code: 1}
	}
	if _, err := st.CommitBatch(context.Background(), batch, nil); err == nil {
		t.Fatal("an oversized batch was accepted")
	}
	if got := balance(t, st, c.merchant); got != (ledger.Balance{}) {
		t.Fatalf("merchant: %+v", got)
	}
}

// Concurrent writers racing for one hot account and a shared cardholder: every batch the store
// acknowledged is in the database, and the balances are exactly the sum of acknowledged transfers.
func TestConcurrentWritersLoseNothing(t *testing.T) {
	st := pgtest.NewStore(t)
	c := openChart(t, st)
	const (
		writers = 8
		batches = 15
		perTx   = 20
	)
	var (
		mu    sync.Mutex
		acked []ledger.ID
		wg    sync.WaitGroup
		errs  = make(chan error, writers)
	)
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for b := 0; b < batches; b++ {
				batch := make([]ledger.Transfer, perTx)
				for i := range batch {
					batch[i] = ledger.Transfer{ID: newID(t), DebitAccountID: c.bank, CreditAccountID: c.operator, Amount: 1, Code: 10}
					if i%2 == 0 {
						batch[i].CreditAccountID = c.merchant
					}
				}
				res, err := st.CommitBatch(context.Background(), batch, nil)
				if err != nil {
					errs <- err
					return
				}
				mu.Lock()
				for i, r := range res.Results {
					if r != ledger.Created {
						errs <- errors.New("transfer not created: " + r.String())
						mu.Unlock()
						return
					}
					acked = append(acked, batch[i].ID)
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	var n int
	if err := st.Pool().QueryRow(context.Background(), `SELECT count(*) FROM transfers WHERE id = ANY($1)`, uuids(acked)).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != writers*batches*perTx {
		t.Fatalf("%d of %d acknowledged transfers are in the database", n, writers*batches*perTx)
	}
	op, me := balance(t, st, c.operator), balance(t, st, c.merchant)
	if op.CreditsPosted+me.CreditsPosted != int64(writers*batches*perTx) {
		t.Fatalf("operator %d + merchant %d != %d acknowledged", op.CreditsPosted, me.CreditsPosted, writers*batches*perTx)
	}
}

func uuids(ids []ledger.ID) []uuid.UUID {
	out := make([]uuid.UUID, len(ids))
	for i, id := range ids {
		out[i] = uuid.UUID(id)
	}
	return out
}

// Two engines writing the same accounts: each one's cached balances go stale when the other
// commits, and its next batch must notice and build on the other's balance, not its own memory.
func TestTwoStoresNeverBuildOnStaleBalances(t *testing.T) {
	url := pgtest.NewDatabase(t)
	ctx := context.Background()
	a, err := postgres.Open(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := postgres.Open(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	c := openChart(t, a)
	for round := 0; round < 10; round++ {
		for _, st := range []*postgres.Store{a, b} {
			res, err := st.CommitBatch(ctx, []ledger.Transfer{
				{ID: newID(t), DebitAccountID: c.card, CreditAccountID: c.operator, Amount: 100, Code: 10},
			}, nil)
			if err != nil {
				t.Fatal(err)
			}
			wantResults(t, res.Results, ledger.Created)
		}
	}
	// The card had 1,000.00 CNY: 20 fares of 1.00 leave 980.00, and a fare of 980.01 is refused
	// by whichever store is asked, however stale its memory.
	for _, st := range []*postgres.Store{a, b} {
		res, err := st.CommitBatch(ctx, []ledger.Transfer{
			{ID: newID(t), DebitAccountID: c.card, CreditAccountID: c.operator, Amount: 98001, Code: 10},
		}, nil)
		if err != nil {
			t.Fatal(err)
		}
		wantResults(t, res.Results, ledger.InsufficientFunds)
	}
	if got := balance(t, a, c.card); got != (ledger.Balance{DebitsPosted: 2000, CreditsPosted: 100000}) {
		t.Fatalf("card: %+v", got)
	}
	ab, err := a.Balance(ctx, c.operator)
	if err != nil {
		t.Fatal(err)
	}
	if ab.Version != 21 {
		t.Fatalf("operator at balance version %d after 20 batches, want 21", ab.Version)
	}
	// From the second round on, each store's first attempt builds on the balances it wrote
	// itself, collides with the other's newer version and runs again: every such retry counts.
	for name, st := range map[string]*postgres.Store{"a": a, "b": b} {
		if s := st.TxStats(); s.Retries < 9 || s.Retries > s.Transactions || s.Exhausted != 0 {
			t.Errorf("store %s: %+v, want at least 9 retries and none exhausted", name, s)
		}
	}
}

func newUUID(t testing.TB) uuid.UUID {
	t.Helper()
	return uuid.UUID(newID(t))
}

// A batch that resolves holds, replayed whole, answers exists for each transfer: a replayed post
// must not be mistaken for a second post of the same hold.
func TestReplayedResolutionsAnswerExists(t *testing.T) {
	st := pgtest.NewStore(t)
	c := openChart(t, st)
	h1, h2 := newID(t), newID(t)
	commit(t, st, nil,
		ledger.Transfer{ID: h1, DebitAccountID: c.card, CreditAccountID: c.merchant, Amount: 500, Code: 20, Flags: ledger.Pending},
		ledger.Transfer{ID: h2, DebitAccountID: c.card, CreditAccountID: c.merchant, Amount: 700, Code: 20, Flags: ledger.Pending})
	batch := []ledger.Transfer{
		{ID: newID(t), Ref: h1, Amount: 400, Code: 21, Flags: ledger.PostPending | ledger.Linked},
		{ID: newID(t), DebitAccountID: c.merchant, CreditAccountID: c.bank, Amount: 2, Code: 30},
		{ID: newID(t), Ref: h2, Code: 22, Flags: ledger.VoidPending},
	}
	wantResults(t, commit(t, st, nil, batch...).Results, ledger.Created, ledger.Created, ledger.Created)
	wantResults(t, commit(t, st, nil, batch...).Results, ledger.Exists, ledger.Exists, ledger.Exists)
	if got := balance(t, st, c.card); got != (ledger.Balance{DebitsPosted: 400, CreditsPosted: 100000}) {
		t.Fatalf("card: %+v", got)
	}
}

// A hold with a timeout placed and resolved in one batch never enters the expiry sweep's queue of
// open holds: were it queued, the sweep would find it at its timeout, be refused (the hold is
// resolved) and leave it queued for good, ahead of every hold after it, and verification would
// find the queue holding a hold that is not open. Small batches (INSERT) and large ones (COPY)
// write the queue alike.
func TestHoldResolvedInItsOwnBatchIsNotQueued(t *testing.T) {
	st := pgtest.NewStore(t)
	c := openChart(t, st)
	ctx := context.Background()
	for _, n := range []int{1, 40} { // 2 and 80 transfers: either side of the INSERT bound
		var batch []ledger.Transfer
		for range n {
			hold := newID(t)
			batch = append(batch,
				ledger.Transfer{ID: hold, DebitAccountID: c.card, CreditAccountID: c.merchant, Amount: 10, Code: 20, Flags: ledger.Pending, TimeoutSeconds: 60},
				ledger.Transfer{ID: newID(t), Ref: hold, Amount: 7, Code: 21, Flags: ledger.PostPending})
		}
		for i, r := range commit(t, st, nil, batch...).Results {
			if r != ledger.Created {
				t.Fatalf("%d holds: transfer %d: %s", n, i, r)
			}
		}
	}
	var queued int
	if err := st.Pool().QueryRow(ctx, `SELECT count(*) FROM open_holds`).Scan(&queued); err != nil {
		t.Fatal(err)
	}
	if queued != 0 {
		t.Fatalf("%d resolved holds queued for expiry, want none", queued)
	}
}

// A hold placed and voided in one batch leaves both accounts' balances where they were, and is
// still on both their statements, as the void is: each account gets a balance version listing
// them, and verification finds every transfer on its accounts' statements.
func TestHoldPlacedAndVoidedInOneBatchIsOnTheStatements(t *testing.T) {
	st := pgtest.NewStore(t)
	c := openChart(t, st)
	ctx := context.Background()
	hold, void := newID(t), newID(t)
	res := commit(t, st, nil,
		ledger.Transfer{ID: hold, DebitAccountID: c.card, CreditAccountID: c.merchant, Amount: 500, Code: 20, Flags: ledger.Pending},
		ledger.Transfer{ID: void, Ref: hold, Code: 22, Flags: ledger.VoidPending})
	wantResults(t, res.Results, ledger.Created, ledger.Created)
	for _, acc := range []ledger.ID{c.card, c.merchant} {
		lines, err := st.Statement(ctx, acc, res.Timestamp, res.Timestamp.Add(time.Microsecond), nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		var got []ledger.ID
		for _, l := range lines {
			got = append(got, l.ID)
		}
		if !slices.Contains(got, hold) || !slices.Contains(got, void) || len(got) != 2 {
			t.Errorf("statement of %s at the batch lists %v, want the hold %s and the void %s", acc, got, hold, void)
		}
	}
	if got := balance(t, st, c.card); got != (ledger.Balance{CreditsPosted: 100000}) {
		t.Errorf("card: %+v", got)
	}
}

// A resolved hold left in the queue of open holds (by a batch that placed and resolved it, before
// such batches kept it out) leaves the queue at the sweep that finds it resolved, so that it is
// not submitted at every sweep, ahead of the holds that do expire.
func TestSweepDropsResolvedHoldsFromTheQueue(t *testing.T) {
	st := pgtest.NewStore(t)
	c := openChart(t, st)
	ctx := context.Background()
	now := time.Now()
	st.Now = func() time.Time { return now }
	stale, open := newID(t), newID(t)
	commit(t, st, nil,
		ledger.Transfer{ID: stale, DebitAccountID: c.card, CreditAccountID: c.merchant, Amount: 10, Code: 20, Flags: ledger.Pending, TimeoutSeconds: 60},
		ledger.Transfer{ID: open, DebitAccountID: c.card, CreditAccountID: c.merchant, Amount: 20, Code: 20, Flags: ledger.Pending, TimeoutSeconds: 120})
	commit(t, st, nil, ledger.Transfer{ID: newID(t), Ref: stale, Code: 22, Flags: ledger.VoidPending})
	if _, err := st.Pool().Exec(ctx, `INSERT INTO open_holds (transfer_id, expires_at) VALUES ($1, $2)`,
		uuid.UUID(stale), now.Add(60*time.Second)); err != nil {
		t.Fatal(err)
	}
	st.Now = func() time.Time { return now.Add(121 * time.Second) }
	if n, err := st.ExpireHolds(ctx, 0); err != nil || n != 1 {
		t.Fatalf("sweep: %d, %v; want the open hold expired", n, err)
	}
	var queued int
	if err := st.Pool().QueryRow(ctx, `SELECT count(*) FROM open_holds`).Scan(&queued); err != nil {
		t.Fatal(err)
	}
	if queued != 0 {
		t.Fatalf("%d holds still queued after the sweep, want none", queued)
	}
}

// A sweeper whose clock ran ahead does not make later holds unexpirable: the sweep works from the
// queue of open holds, not from a horizon in time.
func TestExpiryToleratesASweeperAhead(t *testing.T) {
	st := pgtest.NewStore(t)
	c := openChart(t, st)
	ctx := context.Background()
	now := time.Now()
	st.Now = func() time.Time { return now.Add(20 * time.Minute) }
	if n, err := st.ExpireHolds(ctx, 0); err != nil || n != 0 {
		t.Fatalf("sweep ahead: %d, %v", n, err)
	}
	st.Now = func() time.Time { return now }
	hold := newID(t)
	commit(t, st, nil, ledger.Transfer{ID: hold, DebitAccountID: c.card, CreditAccountID: c.merchant, Amount: 700, Code: 20,
		Flags: ledger.Pending, TimeoutSeconds: 60})
	st.Now = func() time.Time { return now.Add(61 * time.Second) }
	if n, err := st.ExpireHolds(ctx, 0); err != nil || n != 1 {
		t.Fatalf("sweep after the timeout: %d, %v", n, err)
	}
	if got := balance(t, st, c.card); got.DebitsPending != 0 {
		t.Fatalf("card still holds %d", got.DebitsPending)
	}
}

// settableClock is a store clock that tests move by hand.
type settableClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *settableClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *settableClock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = t
}

// A store whose cache shows less money than the account holds, because another store loaded
// funds since, must not commit a refusal decided on that cache: the refusal is confirmed on the
// database's balance first, and the debit goes through.
func TestStaleCacheNeverCommitsARefusal(t *testing.T) {
	url := pgtest.NewDatabase(t)
	ctx := context.Background()
	a, err := postgres.Open(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := postgres.Open(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	c := openChart(t, a) // a caches the card at 1,000.00
	spent := int64(0)
	for round := 0; round < 3; round++ {
		// b loads 500.00 that a has not seen.
		commit(t, b, nil, ledger.Transfer{ID: newID(t), DebitAccountID: c.bank, CreditAccountID: c.card, Amount: 50000, Code: 1})
		available := 100000 + int64(round+1)*50000 - spent
		// a debits more than its cache shows, less than the card holds.
		amount := available - 10000
		res := commit(t, a, nil, ledger.Transfer{ID: newID(t), DebitAccountID: c.card, CreditAccountID: c.merchant, Amount: amount, Code: 20})
		wantResults(t, res.Results, ledger.Created)
		spent += amount
		// And a debit past what the card holds is still refused, on the fresh balance.
		res = commit(t, a, nil, ledger.Transfer{ID: newID(t), DebitAccountID: c.card, CreditAccountID: c.merchant, Amount: 10001, Code: 20})
		wantResults(t, res.Results, ledger.InsufficientFunds)
	}
	if got := balance(t, a, c.card); got.CreditsPosted-got.DebitsPosted != 10000 {
		t.Fatalf("card holds %d, want 10000: %+v", got.CreditsPosted-got.DebitsPosted, got)
	}
}

// Every store keeps the database's time: its default clock is the database server's as this
// process measured it. A writer that keeps time of its own, ahead of the others, cannot carry
// its clock through the hot accounts to every later batch: a batch whose history leads the
// writer's clock by more than the bound is refused, nothing written, and the lead is measured.
func TestBatchTimeIsBoundedAndMeasured(t *testing.T) {
	url := pgtest.NewDatabase(t)
	ctx := context.Background()
	a, err := postgres.Open(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := postgres.Open(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()

	var db time.Time
	if err := a.Pool().QueryRow(ctx, `SELECT clock_timestamp()`).Scan(&db); err != nil {
		t.Fatal(err)
	}
	if d := a.Now().Sub(db); d < -time.Second || d > time.Second {
		t.Fatalf("the store's clock is %s from the database's", d)
	}
	if _, err := a.SyncClock(ctx); err != nil {
		t.Fatal(err)
	}

	c := openChart(t, a)
	fare := func(st *postgres.Store) (postgres.BatchResult, error) {
		return st.CommitBatch(ctx, []ledger.Transfer{{ID: newID(t), DebitAccountID: c.card, CreditAccountID: c.operator, Amount: 100, Code: 10}}, nil)
	}
	if _, err := fare(b); err != nil {
		t.Fatal(err)
	}
	if s := b.ClockStats(); s.LastLead > time.Second {
		t.Fatalf("a batch on the shared clock led it by %s", s.LastLead)
	}

	// a keeps a clock of its own, an hour ahead, and writes the operator's account with it.
	ahead := time.Now().Add(time.Hour)
	a.Now = func() time.Time { return ahead }
	if _, err := fare(a); err != nil {
		t.Fatal(err)
	}
	before := balance(t, b, c.operator)
	_, err = fare(b)
	if !errors.Is(err, postgres.ErrClockBehind) {
		t.Fatalf("a batch an hour behind the history: %v, want ErrClockBehind", err)
	}
	if got := balance(t, b, c.operator); got != before {
		t.Fatalf("the refused batch moved the operator: %+v, was %+v", got, before)
	}
	if s := b.ClockStats(); s.LastLead < 59*time.Minute || s.MaxLead < s.LastLead {
		t.Fatalf("lead not measured: %+v", s)
	}
}

// A hold placed by one store and posted by another whose cache knew the card from before the
// hold: the posting's first attempt, built on the cached balance, would leave a negative pending
// amount, which the balance row's CHECK refuses before its key could collide. That refusal is a
// stale guess like a key collision, and the batch runs again on the database's balances: the
// post is created, never failed.
func TestHoldPostedByAStoreThatCachedTheCardBefore(t *testing.T) {
	url := pgtest.NewDatabase(t)
	ctx := context.Background()
	a, err := postgres.Open(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := postgres.Open(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	c := openChart(t, a)
	// b caches the card with no hold on it.
	res, err := b.CommitBatch(ctx, []ledger.Transfer{{ID: newID(t), DebitAccountID: c.card, CreditAccountID: c.operator, Amount: 100, Code: 10}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	wantResults(t, res.Results, ledger.Created)
	// a places a hold of 5.00.
	hold := newID(t)
	res, err = a.CommitBatch(ctx, []ledger.Transfer{{ID: hold, DebitAccountID: c.card, CreditAccountID: c.merchant, Amount: 500, Code: 20,
		Flags: ledger.Pending}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	wantResults(t, res.Results, ledger.Created)
	// b posts 3.00 of it.
	res, err = b.CommitBatch(ctx, []ledger.Transfer{{ID: newID(t), Ref: hold, Amount: 300, Code: 21, Flags: ledger.PostPending}}, nil)
	if err != nil {
		t.Fatalf("post by the store that cached the card before the hold: %v", err)
	}
	wantResults(t, res.Results, ledger.Created)
	if got := balance(t, a, c.card); got != (ledger.Balance{DebitsPosted: 400, CreditsPosted: 100000}) {
		t.Fatalf("card: %+v", got)
	}
}

// An engine's pool has room for its committers, sweeps and reads when the database URL does not
// size it, and keeps the size a URL gives.
func TestPoolSizeDefaultsToTheEnginesWriters(t *testing.T) {
	u := pgtest.NewDatabase(t)
	for _, c := range []struct {
		url  string
		want int32
	}{
		{u, 12},
		{u + "&pool_max_conns=3", 3},
		{u + "&pool_max_conns=40", 40},
	} {
		st := pgtest.Open(t, c.url)
		if got := st.Pool().Config().MaxConns; got != c.want {
			t.Errorf("%s: pool of %d connections, want %d", c.url, got, c.want)
		}
	}
}

// The store's connections compress the full page images they write to the WAL, on a
// PostgreSQL whose configuration leaves them uncompressed, when its role may set it (the tests
// run as a superuser); a connection whose options set it themselves keeps their choice.
func TestConnectionsCompressWAL(t *testing.T) {
	url := pgtest.NewDatabase(t)
	ctx := context.Background()
	for _, c := range []struct {
		options, want string
	}{
		{"", "lz4"},
		{"&options=-c%20wal_compression%3Doff", "off"},
		{"&options=-c%20wal_compression%3Dpglz", "pglz"},
	} {
		st, err := postgres.Open(ctx, url+c.options)
		if err != nil {
			t.Fatal(err)
		}
		var source, session string
		if err := st.Pool().QueryRow(ctx, `SELECT source, setting FROM pg_settings WHERE name = 'wal_compression'`).Scan(&source, &session); err != nil {
			t.Fatal(err)
		}
		st.Close()
		if c.options == "" && source != "session" && source != "default" {
			continue // the server's configuration chose: nothing to check here
		}
		if session != c.want {
			t.Errorf("options %q: wal_compression %q, want %q", c.options, session, c.want)
		}
	}
}

// The store reads PostgreSQL's shared buffers and the balance history's key as the server sees
// them, and the key grows with the balance versions written.
func TestBufferFitReadsTheServersSizes(t *testing.T) {
	st := pgtest.NewStore(t)
	ctx := context.Background()
	fit, err := st.BufferFit(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var buffers, key int64
	if err := st.Pool().QueryRow(ctx, `SELECT setting::BIGINT * 8192 FROM pg_settings WHERE name = 'shared_buffers'`).Scan(&buffers); err != nil {
		t.Fatal(err)
	}
	if !fit.Known || fit.SharedBuffers != buffers {
		t.Fatalf("fit %+v, want known with shared buffers %d", fit, buffers)
	}
	c := openChart(t, st)
	for i := range 300 {
		commit(t, st, nil, ledger.Transfer{ID: newID(t), DebitAccountID: c.bank, CreditAccountID: c.card, Amount: int64(i + 1), Code: 1})
	}
	if err := st.Pool().QueryRow(ctx, `SELECT pg_relation_size('account_balances_pkey')`).Scan(&key); err != nil {
		t.Fatal(err)
	}
	after, err := st.BufferFit(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if after.BalanceKey != key || after.BalanceKey <= fit.BalanceKey {
		t.Fatalf("balance key %d bytes after 300 batches (the table says %d), %d before: want it read and grown", after.BalanceKey, key, fit.BalanceKey)
	}
	if after.Short() != (key > buffers) {
		t.Fatalf("short %v with key %d and buffers %d", after.Short(), key, buffers)
	}
}

// A statement's period may be given to the nanosecond, finer than the ledger's microseconds: a
// transfer stamped before from is not on it, and one stamped before to is.
func TestStatementBoundsFinerThanTheLedgersTime(t *testing.T) {
	st := pgtest.NewStore(t)
	c := openChart(t, st)
	ctx := context.Background()
	at := commit(t, st, nil, ledger.Transfer{ID: newID(t), DebitAccountID: c.card, CreditAccountID: c.operator, Amount: 100, Code: 10}).Timestamp
	half := at.Add(500 * time.Nanosecond)
	count := func(from, to time.Time) int {
		t.Helper()
		lines, err := st.Statement(ctx, c.card, from, to, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, l := range lines {
			if l.Amount == 100 && l.Code == 10 {
				n++
			}
		}
		return n
	}
	if n := count(half, half.Add(time.Hour)); n != 0 {
		t.Errorf("from half a microsecond after the transfer: on the statement %d times, want not", n)
	}
	if n := count(at.Add(-time.Hour), half); n != 1 {
		t.Errorf("to half a microsecond after the transfer: on the statement %d times, want once", n)
	}
	if n := count(at, at.Add(time.Nanosecond)); n != 1 {
		t.Errorf("from its instant to a nanosecond after: on the statement %d times, want once", n)
	}
	if n := count(at.Add(-time.Nanosecond), at); n != 0 {
		t.Errorf("up to its instant: on the statement %d times, want not", n)
	}
}
