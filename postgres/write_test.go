package postgres_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/joinincard/engine/internal/pgtest"
	"github.com/joinincard/engine/ledger"
	"github.com/joinincard/engine/postgres"
)

// A small batch is written with INSERTs and a large one with COPY: both write the same rows.
// Each size commits holds with a timeout and without, plain transfers with and without user data
// and a code, then posts, voids and reverses some of them; every transfer reads back as it was
// created, every balance and statement line is there, the open holds queue holds the holds with a
// timeout left open, and the ledger verifies (pgtest, when the test ends).
func TestSmallAndLargeBatchesWriteTheSameRows(t *testing.T) {
	st := pgtest.NewStore(t)
	ctx := context.Background()
	for _, n := range []int{3, 30, 200} { // 2n transfers a batch: INSERT twice, then COPY
		bank, card := newID(t), newID(t)
		if err := st.CreateAccounts(ctx, []postgres.AccountSpec{
			{Account: ledger.Account{ID: bank, Currency: "CNY", Kind: ledger.KindBankSettlement}, Name: "bank"},
			{Account: ledger.Account{ID: card, Currency: "CNY", Kind: ledger.KindSuspense, Flags: ledger.DebitsMustNotExceedCredits, Limit: 50}, Name: "card"},
		}); err != nil {
			t.Fatal(err)
		}
		var first []ledger.Transfer
		for i := range n {
			hold := ledger.Transfer{ID: newID(t), DebitAccountID: card, CreditAccountID: bank, Amount: int64(10 + i), Flags: ledger.Pending, Code: 20}
			if i%2 == 0 {
				hold.TimeoutSeconds = 3600
			}
			plain := ledger.Transfer{ID: newID(t), DebitAccountID: bank, CreditAccountID: card, Amount: int64(100 + i)}
			if i%3 == 0 {
				plain.UserData, plain.Code = newID(t), 1
			}
			first = append(first, plain, hold)
		}
		res := commit(t, st, nil, first...)
		if len(res.Created) != len(first) {
			t.Fatalf("%d transfers: %d created: %v", len(first), len(res.Created), res.Results)
		}
		var second []ledger.Transfer
		for i := range n {
			plain, hold := first[2*i], first[2*i+1]
			switch i % 3 {
			case 0:
				second = append(second, ledger.Transfer{ID: newID(t), Ref: hold.ID, Amount: hold.Amount - 1, Flags: ledger.PostPending})
			case 1:
				second = append(second, ledger.Transfer{ID: newID(t), Ref: hold.ID, Flags: ledger.VoidPending})
			}
			second = append(second, ledger.Transfer{ID: newID(t), Ref: plain.ID, Amount: 1, Flags: ledger.Reversal, UserData: newID(t)})
		}
		res2 := commit(t, st, nil, second...)
		if len(res2.Created) != len(second) {
			t.Fatalf("%d resolutions: %d created: %v", len(second), len(res2.Created), res2.Results)
		}
		for _, c := range append(slices.Clone(res.Created), res2.Created...) {
			got, err := st.Transfer(ctx, c.ID)
			if err != nil {
				t.Fatal(err)
			}
			c.Currency = ""
			if got != c {
				t.Fatalf("batch of %d: transfer reads back as %+v, was created as %+v", n, got, c)
			}
		}
		lines, err := st.Statement(ctx, card, time.Unix(0, 0), time.Now().Add(time.Hour), nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		if len(lines) != len(first)+len(second) {
			t.Errorf("batch of %d: card statement has %d lines, want %d", n, len(lines), len(first)+len(second))
		}
		var open int
		if err := st.Pool().QueryRow(ctx, `SELECT count(*) FROM open_holds o JOIN transfers t ON t.id = o.transfer_id
			WHERE t.debit_account_id = $1`, [16]byte(card)).Scan(&open); err != nil {
			t.Fatal(err)
		}
		want := 0 // holds with a timeout (even i) neither posted (i%3 == 0) nor voided (i%3 == 1)
		for i := 0; i < n; i += 2 {
			if i%3 == 2 {
				want++
			}
		}
		if open != want {
			t.Errorf("batch of %d: %d open holds queued, want %d", n, open, want)
		}
	}
}
