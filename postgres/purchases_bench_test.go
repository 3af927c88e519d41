package postgres_test

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/joinincard/engine/ledger"
	"github.com/joinincard/engine/postgres"
	"github.com/joinincard/engine/purchases"
)

const (
	// benchRate is the offered load of the authorization benchmark: 2,000 requests/s, a busy
	// city's card purchases at peak on one machine.
	benchRate = 2000
	// benchCards spreads the load over a city's active cards, each funded far beyond what the
	// run can spend, so every request is approved and holds funds.
	benchCards = 2000
	benchFunds = 10_000_000 // 100,000.00 CNY
)

// BenchmarkAuthorize offers authorizations at benchRate, open loop (each request is sent at its
// time whatever the ones before it are doing), each answered only once its hold is committed,
// and reports the latency percentiles, the batching, the rate achieved and the commits' own
// durations: a request waits for the commit under way, then for its own. Run it with
// -benchtime 4000x for two seconds of load.
func BenchmarkAuthorize(b *testing.B) {
	s := newShop(b, benchCards, benchFunds)
	reqs := make([]postgres.PurchaseRequest, b.N)
	for i := range reqs {
		amount := purchases.FormatAmount(100 + int64(i%9900))
		reqs[i] = s.req(postgres.OpAuthorize, "pharmacy-1", newKey(b), ledger.ID{}, s.city.Cards[i%benchCards], amount)
	}
	// Warm the connections, the caches and the committer.
	for i := 0; i < 50; i++ {
		if _, err := s.do(s.req(postgres.OpAuthorize, "pharmacy-1", newKey(b), ledger.ID{}, s.city.Cards[i], "1.00")); err != nil {
			b.Fatal(err)
		}
	}
	latencies := make([]time.Duration, b.N)
	failed := make([]error, b.N)
	interval := time.Second / benchRate
	commits0 := s.commits.Load()
	var wg sync.WaitGroup
	b.ResetTimer()
	start := time.Now()
	for i := range reqs {
		if d := time.Until(start.Add(time.Duration(i) * interval)); d > 0 {
			time.Sleep(d)
		}
		wg.Go(func() {
			sent := time.Now()
			res, err := s.do(reqs[i])
			latencies[i] = time.Since(sent)
			if err == nil && !res.Authorization.Approved {
				err = errDeclined(res.Authorization.Reason)
			}
			failed[i] = err
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	for i, err := range failed {
		if err != nil {
			b.Fatalf("request %d: %v", i, err)
		}
	}
	slices.Sort(latencies)
	pct := func(p float64) float64 {
		return float64(latencies[min(len(latencies)-1, int(p*float64(len(latencies))))].Microseconds()) / 1000
	}
	b.ReportMetric(pct(0.50), "p50_ms")
	b.ReportMetric(pct(0.99), "p99_ms")
	b.ReportMetric(float64(latencies[len(latencies)-1].Microseconds())/1000, "max_ms")
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "req/s")
	b.ReportMetric(float64(b.N)/float64(max(1, s.commits.Load()-commits0)), "req/commit")
	s.commitMu.Lock()
	commits := slices.Clone(s.commitTimes[len(s.commitTimes)-int(s.commits.Load()-commits0):])
	s.commitMu.Unlock()
	slices.Sort(commits)
	b.ReportMetric(float64(commits[len(commits)/2].Microseconds())/1000, "commit_p50_ms")
	b.ReportMetric(float64(commits[len(commits)*99/100].Microseconds())/1000, "commit_p99_ms")
}

type errDeclined purchases.Reason

func (e errDeclined) Error() string { return "declined: " + string(e) }

// BenchmarkCapture captures b.N authorizations made beforehand, 64 clients at a time (closed
// loop), on a store pricing by loaded tariffs: each commit holds the fee plans' row FOR SHARE, so
// that it prices by every version uploaded before it. It reports the rate and the commits'
// durations.
func BenchmarkCapture(b *testing.B) {
	const clients = 64
	s := newShop(b, benchCards, benchFunds)
	if _, err := s.st.LoadTariffs(context.Background(), builtIn(b)); err != nil {
		b.Fatal(err)
	}
	ids := make([]ledger.ID, b.N)
	var wg sync.WaitGroup
	next := atomic.Int64{}
	authorize := func() {
		for i := int(next.Add(1)) - 1; i < b.N; i = int(next.Add(1)) - 1 {
			res, err := s.do(s.req(postgres.OpAuthorize, "shop-1", newKey(b), ledger.ID{}, s.city.Cards[i%benchCards], "100.00"))
			if err != nil || !res.Authorization.Approved {
				b.Errorf("authorize %d: %v", i, err)
				return
			}
			ids[i] = res.Authorization.ID
		}
	}
	for range clients {
		wg.Go(authorize)
	}
	wg.Wait()
	if b.Failed() {
		return
	}
	commits0 := s.commits.Load()
	next.Store(0)
	b.ResetTimer()
	start := time.Now()
	for range clients {
		wg.Go(func() {
			for i := int(next.Add(1)) - 1; i < b.N; i = int(next.Add(1)) - 1 {
				if _, err := s.do(s.req(postgres.OpCapture, "shop-1", newKey(b), ids[i], "", "100.00")); err != nil {
					b.Errorf("capture %d: %v", i, err)
					return
				}
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "req/s")
	b.ReportMetric(float64(b.N)/float64(max(1, s.commits.Load()-commits0)), "req/commit")
	s.commitMu.Lock()
	commits := slices.Clone(s.commitTimes[len(s.commitTimes)-int(s.commits.Load()-commits0):])
	s.commitMu.Unlock()
	slices.Sort(commits)
	b.ReportMetric(float64(commits[len(commits)/2].Microseconds())/1000, "commit_p50_ms")
}
