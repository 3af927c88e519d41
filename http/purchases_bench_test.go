package http

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/joinincard/engine/clearing"
	"github.com/joinincard/engine/events"
	"github.com/joinincard/engine/loadtest"
	"github.com/joinincard/engine/postgres"
)

const (
	// benchHTTPRate is the offered load: 2,000 authorizations/s.
	benchHTTPRate = 2000
	// benchHTTPCards spreads the load over a city's active cards, each funded far beyond what a
	// run spends, so that every authorization is approved and holds funds.
	benchHTTPCards = 2000
	benchHTTPFunds = 10_000_000 // 100,000.00 CNY
	// benchHTTPConns is the client's connection pool: terminals' gateways keep connections open.
	benchHTTPConns = 256
)

// BenchmarkAuthorizeHTTP offers POST /v1/authorizations over TCP at benchHTTPRate, open loop,
// each answered once its hold is committed, and reports the latency percentiles a merchant sees.
// Run it with -benchtime 4000x for two seconds of load.
func BenchmarkAuthorizeHTTP(b *testing.B) {
	w := newPurchaseWorld(b)
	ctx := context.Background()
	city := loadtest.NewCity(11, benchHTTPCards, 1, time.Now().Add(-time.Hour))
	for _, p := range city.Parties() {
		if p.Kind == clearing.PartyMerchant {
			continue
		}
		// The world registered ICBC-JX and jiaxing under names of its own: those stay.
		if _, err := w.store.RegisterParty(ctx, p.Kind, p.ID, p.Name); err != nil && !errors.Is(err, postgres.ErrAccountConflict) {
			b.Fatalf("party %s: %v", p.ID, err)
		}
	}
	var msgs []clearing.Message
	for i, e := range append(city.Registrations(), city.Funding(benchHTTPFunds, benchHTTPFunds)...) {
		raw := loadtest.Encode(e)
		dec, err := events.Decode(raw)
		if err != nil {
			b.Fatal(err)
		}
		msgs = append(msgs, clearing.Message{Source: "bench", Offset: int64(i), Raw: raw, Event: dec})
	}
	if _, err := w.store.Ingest(ctx, nil, msgs); err != nil {
		b.Fatal(err)
	}
	key := w.merchant(b, `{"id":"pharmacy-1","name":"Jiaxing Pharmacy","mcc":"5912","city":"jiaxing","acquiring_bank":"ICBC-JX","fee_plan":"domestic-standard"}`)

	srv := httptest.NewServer(w.h)
	defer srv.Close()
	client := &http.Client{Transport: &http.Transport{MaxIdleConns: benchHTTPConns, MaxIdleConnsPerHost: benchHTTPConns}, Timeout: 30 * time.Second}
	post := func(i int, idem string) error {
		body := fmt.Sprintf(`{"card_token":%q,"amount":"%d.%02d","currency":"CNY"}`, city.Cards[i%benchHTTPCards], 1+i%99, i%100)
		req, err := http.NewRequest("POST", srv.URL+"/v1/authorizations", strings.NewReader(body))
		if err != nil {
			return err
		}
		req.Header.Set("Authorization", "Bearer "+key)
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Idempotency-Key", idem)
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		got, err := io.ReadAll(resp.Body)
		if err != nil {
			return err
		}
		if resp.StatusCode != http.StatusCreated || !strings.Contains(string(got), `"decision":"approved"`) {
			return fmt.Errorf("%d %s", resp.StatusCode, got)
		}
		return nil
	}
	keys := make([]string, b.N+benchHTTPConns)
	for i := range keys {
		keys[i] = keyAt(b, time.Now())
	}
	// Warm the connections, the caches and the committer.
	var wg sync.WaitGroup
	for i := range benchHTTPConns / 4 {
		wg.Go(func() {
			if err := post(i, keys[b.N+i]); err != nil {
				b.Error(err)
			}
		})
	}
	wg.Wait()

	latencies := make([]time.Duration, b.N)
	errs := make([]error, b.N)
	interval := time.Second / benchHTTPRate
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; i++ {
		if d := time.Until(start.Add(time.Duration(i) * interval)); d > 0 {
			time.Sleep(d)
		}
		wg.Go(func() {
			sent := time.Now()
			errs[i] = post(i, keys[i])
			latencies[i] = time.Since(sent)
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	for i, err := range errs {
		if err != nil {
			b.Fatalf("request %d: %v", i, err)
		}
	}
	slices.Sort(latencies)
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	b.ReportMetric(ms(latencies[len(latencies)/2]), "p50_ms")
	b.ReportMetric(ms(latencies[min(len(latencies)-1, len(latencies)*99/100)]), "p99_ms")
	b.ReportMetric(ms(latencies[len(latencies)-1]), "max_ms")
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "req/s")
}
