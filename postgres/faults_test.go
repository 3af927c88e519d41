package postgres_test

import (
	"context"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/joinincard/engine/internal/pgtest"
	"github.com/joinincard/engine/ledger"
	"github.com/joinincard/engine/postgres"
)

const (
	// faultClients and faultRequests size the lost-COMMIT test of authorizations: clients at
	// once, each sending requests one after the other, so that commits carry several requests.
	faultClients  = 12
	faultRequests = 30
	// faultRetries bounds a client's tries of one request, as a terminal's retries are bounded.
	faultRetries = 8
)

// The answer to an authorization batch's COMMIT is lost: the server holds the funds and records
// the requests, and the engine sees its connection cut. Every client, trying again with its
// idempotency key when it gets an error, ends with one approved authorization per key, the one
// a later replay names; no hold is placed twice and none is lost.
func TestLostCommitAnswersHoldFundsOncePerKey(t *testing.T) {
	url := pgtest.NewDatabase(t)
	ctx := context.Background()
	proxy := pgtest.StartProxy(t, url)
	through, err := proxy.URL(url)
	if err != nil {
		t.Fatal(err)
	}
	st, err := postgres.Open(ctx, through)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.Close)
	const cardsInShop = faultClients
	s := newShopOn(t, st, cardsInShop, 1_000_000)
	before := make([]int64, cardsInShop)
	for i := range before {
		before[i], _ = s.funds(i)
	}

	stop := make(chan struct{})
	armed := make(chan struct{})
	go func() {
		defer close(armed)
		rng := rand.New(rand.NewPCG(31, 32))
		for {
			select {
			case <-stop:
				return
			case <-time.After(time.Duration(60+rng.IntN(140)) * time.Millisecond):
				if proxy.Armed() == 0 {
					proxy.LoseCommits(1)
				}
			}
		}
	}()

	type outcome struct {
		key  uuid.UUID
		card int
		auth ledger.ID
	}
	outcomes := make([][]outcome, faultClients)
	var wg sync.WaitGroup
	for c := range faultClients {
		wg.Go(func() {
			for range faultRequests {
				key := newKey(t)
				req := s.req(postgres.OpAuthorize, "pharmacy-1", key, ledger.ID{}, s.city.Cards[c], "1.00")
				var (
					res postgres.PurchaseResult
					err error
				)
				for try := 0; try < faultRetries; try++ {
					if res, err = s.do(req); err == nil {
						break
					}
					time.Sleep(10 * time.Millisecond)
				}
				if err != nil || res.Authorization == nil || !res.Authorization.Approved {
					t.Errorf("client %d key %s: %v %+v", c, key, err, res.Authorization)
					return
				}
				outcomes[c] = append(outcomes[c], outcome{key, c, res.Authorization.ID})
			}
		})
	}
	wg.Wait()
	close(stop)
	<-armed
	if t.Failed() {
		return
	}
	if proxy.Lost() == 0 {
		t.Fatal("no COMMIT answer was lost: the test tested nothing")
	}
	t.Logf("%d COMMIT answers lost", proxy.Lost())

	seen := map[ledger.ID]bool{}
	for c, outs := range outcomes {
		for _, o := range outs {
			if seen[o.auth] {
				t.Fatalf("authorization %s answered for two keys", o.auth)
			}
			seen[o.auth] = true
			again, err := s.do(s.req(postgres.OpAuthorize, "pharmacy-1", o.key, ledger.ID{}, s.city.Cards[c], "1.00"))
			if err != nil || !again.Replayed || again.Authorization == nil || again.Authorization.ID != o.auth {
				t.Fatalf("key %s replayed: %v %+v, want authorization %s", o.key, err, again.Authorization, o.auth)
			}
		}
		avail, _ := s.funds(c)
		if held := before[c] - avail; held != int64(len(outs))*100 {
			t.Errorf("card %d: %d fen held for %d authorizations of 1.00", c, held, len(outs))
		}
	}
	var rows int
	if err := st.Pool().QueryRow(ctx, `SELECT count(*) FROM purchase_authorizations`).Scan(&rows); err != nil {
		t.Fatal(err)
	}
	if rows != faultClients*faultRequests {
		t.Errorf("%d authorizations stored for %d keys", rows, faultClients*faultRequests)
	}
}
