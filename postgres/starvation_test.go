package postgres_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/joinincard/engine/internal/pgtest"
	"github.com/joinincard/engine/ledger"
	"github.com/joinincard/engine/postgres"
)

// A long batch sharing a busy account with quick writers commits: the consumer's thousands of
// cleared purchases at a merchant whose captures the purchase committer writes meanwhile. A
// batch retried after a conflict locks its accounts, and the quick writers, on the fast path
// with balances from the cache, must queue behind that lock rather than write new versions of
// the account under it at every attempt.
func TestALongBatchCommitsBesideQuickWriters(t *testing.T) {
	url := pgtest.NewDatabase(t)
	ctx := context.Background()
	st, err := postgres.Open(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	c := openChart(t, st)
	const payers = 8000 // thousands of rows written between reading the merchant and writing it
	specs := make([]postgres.AccountSpec, payers)
	batch := make([]ledger.Transfer, payers)
	for i := range specs {
		id := newID(t)
		specs[i] = postgres.AccountSpec{Account: ledger.Account{ID: id, Currency: "CNY", Kind: ledger.KindCardholderFunds}, Name: fmt.Sprintf("payer %d", i)}
		batch[i] = ledger.Transfer{ID: newID(t), DebitAccountID: id, CreditAccountID: c.merchant, Amount: 1, Code: 21}
	}
	if err := st.CreateAccounts(ctx, specs); err != nil {
		t.Fatal(err)
	}
	commit(t, st, nil, ledger.Transfer{ID: newID(t), DebitAccountID: c.bank, CreditAccountID: c.merchant, Amount: 1, Code: 1}) // cached

	var (
		wg     sync.WaitGroup
		quick  atomic.Int64
		stop   = make(chan struct{})
		failed atomic.Value
	)
	for range 2 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				if _, err := st.CommitBatch(ctx, []ledger.Transfer{{ID: newID(t), DebitAccountID: c.bank, CreditAccountID: c.merchant, Amount: 1, Code: 1}}, nil); err != nil {
					failed.Store(err)
					return
				}
				quick.Add(1)
			}
		})
	}
	err = st.InTx(ctx, nil, func(ctx context.Context, tx *postgres.Tx) error {
		_, err := tx.Apply(ctx, batch)
		return err
	})
	close(stop)
	wg.Wait()
	if err != nil {
		t.Fatalf("the long batch beside %d quick commits: %v", quick.Load(), err)
	}
	if err, ok := failed.Load().(error); ok {
		t.Fatalf("a quick writer: %v", err)
	}
	b, err := st.Balance(ctx, c.merchant)
	if err != nil {
		t.Fatal(err)
	}
	if want := payers + 1 + quick.Load(); b.CreditsPosted != want {
		t.Fatalf("merchant credited %d, want %d", b.CreditsPosted, want)
	}
}
