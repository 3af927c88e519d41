package postgres_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/joinincard/engine/internal/pgtest"
	"github.com/joinincard/engine/ledger"
	"github.com/joinincard/engine/postgres"
)

// benchAccounts is the number of cardholder and merchant accounts the durable benchmarks spread
// transfers over: a city's active cards in one batch window.
const benchAccounts = 10000

// BenchmarkCommitBatch measures durable transfers/s through PostgreSQL, batch by batch, with every
// transfer between two random accounts (uniform) or crediting one account (hot: a transit
// operator credited by every tap in its city).
func BenchmarkCommitBatch(b *testing.B) {
	for _, shape := range []string{"uniform", "hot"} {
		for _, size := range []int{1, 100, 1000, 10000} {
			b.Run(fmt.Sprintf("%s/batch=%d", shape, size), func(b *testing.B) {
				benchCommit(b, shape == "hot", size)
			})
		}
	}
}

func benchCommit(b *testing.B, hot bool, size int) {
	st := pgtest.NewStore(b)
	ctx := context.Background()
	debits := make([]ledger.ID, benchAccounts)
	credits := make([]ledger.ID, benchAccounts)
	var specs []postgres.AccountSpec
	for i := range debits {
		debits[i], credits[i] = newID(b), newID(b)
		specs = append(specs,
			postgres.AccountSpec{Account: ledger.Account{ID: debits[i], Currency: "CNY", Kind: ledger.KindCardholderFunds}, Name: "card"},
			postgres.AccountSpec{Account: ledger.Account{ID: credits[i], Currency: "CNY", Kind: ledger.KindMerchantClearing}, Name: "merchant"})
	}
	if err := st.CreateAccounts(ctx, specs); err != nil {
		b.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	batches := make([][]ledger.Transfer, b.N)
	for n := range batches {
		batch := make([]ledger.Transfer, size)
		for i := range batch {
			credit := credits[0]
			if !hot {
				credit = credits[rng.IntN(benchAccounts)]
			}
			batch[i] = ledger.Transfer{ID: newID(b), DebitAccountID: debits[rng.IntN(benchAccounts)], CreditAccountID: credit, Amount: 1 + rng.Int64N(1000), Code: 10}
		}
		batches[n] = batch
	}
	b.ResetTimer()
	for n := 0; n < b.N; n++ {
		res, err := st.CommitBatch(ctx, batches[n], nil)
		if err != nil {
			b.Fatal(err)
		}
		if len(res.Created) != size {
			b.Fatalf("created %d of %d", len(res.Created), size)
		}
	}
	b.ReportMetric(float64(b.N*size)/b.Elapsed().Seconds(), "transfers/s")
}
