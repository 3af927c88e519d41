package postgres_test

import (
	"context"
	"fmt"
	"math"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/joinincard/engine/internal/pgtest"
	"github.com/joinincard/engine/ledger"
	"github.com/joinincard/engine/postgres"
)

// Two processes' consumers credit one operator account at once, each from its own partition and
// its own cardholders: they write different shards of the operator's balance and never collide,
// while each card stays whole in its home shard. Every read sums the shards: the balance now and
// at an instant, the statement, the trial balance; a hold on the operator placed by one process
// and posted by the other stays in the home shard; the ledger verifies (pgtest, at the end).
func TestReceiveOnlyAccountIsShardedByWriter(t *testing.T) {
	url := pgtest.NewDatabase(t)
	ctx := context.Background()
	open := func() *postgres.Store {
		st, err := postgres.Open(ctx, url)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(st.Close)
		return st
	}
	a, b := open(), open()
	c := openChart(t, a)
	commit(t, a, nil, ledger.Transfer{ID: newID(t), DebitAccountID: c.bank, CreditAccountID: c.card2, Amount: 100000, Code: 1})
	const batches, fare = 40, 100
	var wg sync.WaitGroup
	errs := make(chan error, 2)
	for i, w := range []struct {
		st   *postgres.Store
		card ledger.ID
	}{{a, c.card}, {b, c.card2}} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := range batches {
				cur := &postgres.Cursor{Name: fmt.Sprintf("card-events/%d", i), From: int64(n), To: int64(n + 1)}
				res, err := w.st.CommitBatch(ctx, []ledger.Transfer{
					{ID: newID(t), DebitAccountID: w.card, CreditAccountID: c.operator, Amount: fare, Code: 10},
				}, cur)
				if err == nil && res.Results[0] != ledger.Created {
					err = fmt.Errorf("fare refused: %s", res.Results[0])
				}
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	for name, st := range map[string]*postgres.Store{"a": a, "b": b} {
		if s := st.TxStats(); s.Retries != 0 {
			t.Errorf("store %s retried %d times crediting the shared operator from its own partition", name, s.Retries)
		}
	}
	var shards, cardShards int
	if err := a.Pool().QueryRow(ctx, `SELECT (SELECT count(DISTINCT shard) FROM account_balances WHERE account_id = $1),
		(SELECT count(DISTINCT shard) FROM account_balances WHERE account_id = ANY($2))`,
		[16]byte(c.operator), [][16]byte{c.card, c.card2}).Scan(&shards, &cardShards); err != nil {
		t.Fatal(err)
	}
	if shards < 3 || cardShards != 1 {
		t.Fatalf("operator in %d shards (want its home and one per writer), cards in %d (want the home shard only)", shards, cardShards)
	}

	op, err := b.Balance(ctx, c.operator)
	if err != nil {
		t.Fatal(err)
	}
	if op.Balance != (ledger.Balance{CreditsPosted: 2 * batches * fare}) || op.Version != 1+2*batches {
		t.Fatalf("operator %+v at version %d, want %d credited over %d versions", op.Balance, op.Version, 2*batches*fare, 1+2*batches)
	}
	at, err := a.BalanceAt(ctx, c.operator, op.AsOf)
	if err != nil || at.Balance != op.Balance {
		t.Fatalf("operator at %s: %+v, %v; now %+v", op.AsOf, at.Balance, err, op.Balance)
	}
	lines, err := a.Statement(ctx, c.operator, time.Time{}, op.AsOf.Add(time.Second), nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[ledger.ID]bool{}
	for i, l := range lines {
		if seen[l.ID] || i > 0 && l.Timestamp < lines[i-1].Timestamp {
			t.Fatalf("statement line %d (%s) repeated or out of order", i, l.ID)
		}
		seen[l.ID] = true
	}
	if len(lines) != 2*batches {
		t.Fatalf("statement of %d lines, want %d", len(lines), 2*batches)
	}
	tb, err := a.TrialBalance(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range tb {
		if k.Kind == ledger.KindOperatorClearing && (k.Accounts != 1 || k.CreditsPosted != 2*batches*fare) {
			t.Fatalf("trial balance: %+v", k)
		}
	}

	// A hold on the operator placed by one process and posted by the other.
	hold := newID(t)
	commit(t, a, &postgres.Cursor{Name: "card-events/0", From: batches, To: batches + 1},
		ledger.Transfer{ID: hold, DebitAccountID: c.card, CreditAccountID: c.operator, Amount: 500, Code: 10, Flags: ledger.Pending})
	res := commit(t, b, &postgres.Cursor{Name: "card-events/1", From: batches, To: batches + 1},
		ledger.Transfer{ID: newID(t), Ref: hold, Amount: 300, Code: 10, Flags: ledger.PostPending},
		ledger.Transfer{ID: newID(t), DebitAccountID: c.card2, CreditAccountID: c.operator, Amount: fare, Code: 10})
	wantResults(t, res.Results, ledger.Created, ledger.Created)
	if got := balance(t, a, c.operator); got != (ledger.Balance{CreditsPosted: (2*batches+1)*fare + 300}) {
		t.Fatalf("operator after the hold posted: %+v", got)
	}
	if got := balance(t, b, c.card); got != (ledger.Balance{DebitsPosted: batches*fare + 300, CreditsPosted: 100000}) {
		t.Fatalf("card after the hold posted: %+v", got)
	}
}

// Verify finds a balance shard where none may be (an account with a limit outside its home
// shard) and a shard's history with a gap.
func TestVerifyFindsBrokenShards(t *testing.T) {
	st := pgtest.NewStore(t)
	c := openChart(t, st)
	ctx := context.Background()
	pool := st.Pool()
	for _, row := range []struct {
		account        ledger.ID
		shard, version int
	}{{c.card, 7, 1}, {c.operator, 9, 2}} {
		if _, err := pool.Exec(ctx, `INSERT INTO account_balances (account_id, shard, version, ts, debits_pending, debits_posted,
			credits_pending, credits_posted, transfer_ids) VALUES ($1, $2, $3, now(), 0, 0, 0, 0, '{}')`,
			[16]byte(row.account), row.shard, row.version); err != nil {
			t.Fatal(err)
		}
	}
	rep, err := st.Verify(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Problems) != 2 || !strings.Contains(rep.Problems[0], "balance history has gaps: account "+c.operator.String()+" shard 9") ||
		!strings.Contains(rep.Problems[1], "balance sharded where it must not be: account "+c.card.String()+" shard 7") {
		t.Fatalf("problems %q", rep.Problems)
	}
	// The incremental check finds both as well.
	inc, err := st.VerifyIncremental(ctx)
	if err != nil {
		t.Fatal(err)
	}
	found := strings.Join(inc.Problems, "\n")
	if !strings.Contains(found, "balance history has gaps: account "+c.operator.String()+" shard 9") ||
		!strings.Contains(found, "balance sharded where it must not be: account "+c.card.String()+" shard 7") {
		t.Fatalf("incremental problems %q", inc.Problems)
	}
	// Put the table back as the ledger is, for the verification at the end of the test.
	for _, q := range []string{`ALTER TABLE account_balances DISABLE TRIGGER account_balances_immutable`,
		`DELETE FROM account_balances WHERE shard IN (7, 9)`, `ALTER TABLE account_balances ENABLE TRIGGER account_balances_immutable`} {
		if _, err := pool.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
}

// The shards of an account that may be sharded are summed on read, so each is capped at its
// share of int64: writers on different shards can never credit the account past what its
// balance can hold. One shard takes exactly its ceiling and refuses a fen more, a transfer of
// half of int64 is refused on any shard, and fifteen shards filled to their ceilings still read
// as one balance.
func TestShardsOfAnAccountCannotSumPastInt64(t *testing.T) {
	ctx := context.Background()
	st := pgtest.NewStore(t)
	const ceiling = math.MaxInt64 / 32 // postgres.shardCeiling
	merchant := newID(t)
	sources := make([]ledger.ID, 16)
	specs := []postgres.AccountSpec{{Account: ledger.Account{ID: merchant, Currency: "CNY", Kind: ledger.KindMerchantClearing}, Name: "pharmacy"}}
	for i := range sources {
		sources[i] = newID(t)
		specs = append(specs, postgres.AccountSpec{Account: ledger.Account{ID: sources[i], Currency: "CNY", Kind: ledger.KindSuspense},
			Name: fmt.Sprintf("adjustments %d", i)})
	}
	if err := st.CreateAccounts(ctx, specs); err != nil {
		t.Fatal(err)
	}
	next := map[int]int64{}
	credit := func(partition int, from ledger.ID, amount int64) ledger.Result {
		t.Helper()
		cur := &postgres.Cursor{Name: fmt.Sprintf("card-events/%d", partition), From: next[partition], To: next[partition] + 1}
		next[partition]++
		res := commit(t, st, cur, ledger.Transfer{ID: newID(t), DebitAccountID: from, CreditAccountID: merchant, Amount: amount, Currency: "CNY", Code: 1})
		return res.Results[0]
	}
	// Half of int64 from two partitions was taken by both shards before, and the balance could
	// not be read.
	for p := range 2 {
		if r := credit(p, sources[15], math.MaxInt64/2+1); r != ledger.OverflowsDebitsPosted { // the source's shard is capped too
			t.Fatalf("half of int64 on partition %d: %s, want overflows_debits_posted", p, r)
		}
	}
	for p := range 15 {
		if r := credit(p, sources[p], ceiling); r != ledger.Created {
			t.Fatalf("a shard's ceiling on partition %d: %s", p, r)
		}
	}
	if r := credit(0, sources[15], 1); r != ledger.OverflowsCreditsPosted {
		t.Fatalf("a fen past a full shard: %s, want overflows_credits_posted", r)
	}
	// A source's shard has given its ceiling: its debits are full on that shard too.
	if r := credit(3, sources[3], 1); r != ledger.OverflowsDebitsPosted {
		t.Fatalf("a fen from a full debit shard: %s, want overflows_debits_posted", r)
	}
	b, err := st.Balance(ctx, merchant)
	if err != nil {
		t.Fatalf("balance of fifteen full shards: %v", err)
	}
	if b.CreditsPosted != 15*ceiling || b.DebitsPosted != 0 {
		t.Fatalf("balance %+v, want credits posted %d", b, int64(15*ceiling))
	}
	var shards int
	if err := st.Pool().QueryRow(ctx, `SELECT count(DISTINCT shard) FROM account_balances WHERE account_id = $1 AND shard > 0`, [16]byte(merchant)).Scan(&shards); err != nil {
		t.Fatal(err)
	}
	if shards != 15 {
		t.Fatalf("merchant written in %d shards besides its home, want one per partition", shards)
	}
}
