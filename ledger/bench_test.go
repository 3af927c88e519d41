package ledger_test

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/joinincard/engine/ledger"
)

// benchAccounts is how many accounts the benchmark batches spread over.
const benchAccounts = 10_000

// BenchmarkApply measures Apply on batches of plain transfers among benchAccounts accounts:
// uniform picks both accounts at random, hot credits every transfer to one account (a transit
// operator's clearing account, credited by every tap in its city).
//
// The batch is built once, outside the timer; between runs the transfers and resolutions the
// run created are cleared, also outside the timer, so that every run applies the same batch to a
// State of the same size and memory stays bounded. Balances keep growing, far from overflow.
func BenchmarkApply(b *testing.B) {
	for _, shape := range []string{"uniform", "hot"} {
		for _, size := range []int{1_000, 10_000} {
			b.Run(fmt.Sprintf("%s/batch=%d", shape, size), func(b *testing.B) {
				benchmarkApply(b, shape == "hot", size)
			})
		}
	}
}

func benchmarkApply(b *testing.B, hot bool, size int) {
	s := ledger.NewState(benchAccounts)
	ids := make([]ledger.ID, benchAccounts)
	for i := range ids {
		ids[i] = seqID('a', uint64(i+1))
		s.Accounts[ids[i]] = &ledger.Account{ID: ids[i], Currency: "CNY", Kind: ledger.KindCardholderFunds}
	}
	rng := rand.New(rand.NewPCG(uint64(size), 7))
	batch := make([]ledger.Transfer, size)
	for i := range batch {
		dr := rng.IntN(benchAccounts)
		cr := 0 // the hot account
		if !hot {
			cr = rng.IntN(benchAccounts - 1)
		}
		if dr == cr {
			dr = benchAccounts - 1
		}
		var tid ledger.ID
		for j := range tid {
			tid[j] = byte(rng.Uint32())
		}
		batch[i] = ledger.Transfer{
			ID: tid, DebitAccountID: ids[dr], CreditAccountID: ids[cr],
			Amount: 1 + rng.Int64N(10_000), Code: 1,
		}
	}

	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		out, err := s.Apply(batch, int64(i+1))
		b.StopTimer()
		if err != nil {
			b.Fatal(err)
		}
		if len(out.Created) != size {
			b.Fatalf("created %d of %d", len(out.Created), size)
		}
		clear(s.Transfers)
		clear(s.Resolutions)
		b.StartTimer()
	}
	b.ReportMetric(float64(b.N*size)/b.Elapsed().Seconds(), "transfers/s")
}
