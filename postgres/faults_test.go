package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgconn"

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

// loseSomeCommits loses the answer to one COMMIT in every few (two to seven, at random), however
// fast commits come, until the function it returns is called: that stops it, disarms the proxy,
// and fails t unless some answer was lost, since then the test tested nothing.
func loseSomeCommits(t *testing.T, proxy *pgtest.Proxy, seed uint64) (stop func()) {
	quit, stopped := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(stopped)
		defer proxy.Disarm()
		rng := rand.New(rand.NewPCG(seed, seed+1))
		next := proxy.Commits() + 2 + rng.IntN(6)
		for {
			select {
			case <-quit:
				return
			case <-time.After(time.Millisecond):
			}
			if proxy.Armed() == 0 && proxy.Commits() >= next {
				proxy.LoseCommits(1)
				next = proxy.Commits() + 2 + rng.IntN(6)
			}
		}
	}()
	return func() {
		t.Helper()
		close(quit)
		<-stopped
		if proxy.Lost() == 0 {
			t.Fatal("no COMMIT answer was lost: the test tested nothing")
		}
		t.Logf("%d COMMIT answers lost", proxy.Lost())
	}
}

// The answer to an authorization batch's COMMIT is lost: the server holds the funds and records
// the requests, and the engine sees its connection cut. Every client, trying again with its
// idempotency key when it gets an error, ends with one approved authorization per key, the one
// a later replay names; no hold is placed twice and none is lost.
func TestLostCommitAnswersHoldFundsOncePerKey(t *testing.T) {
	url := pgtest.NewDatabase(t)
	ctx := context.Background()
	proxy := pgtest.StartProxy(t, url)
	st := proxy.Open(t, url)
	const cardsInShop = faultClients
	s := newShopOn(t, st, cardsInShop, 1_000_000)
	before := make([]int64, cardsInShop)
	for i := range before {
		before[i], _ = s.funds(i)
	}

	stopLosing := loseSomeCommits(t, proxy, 31)

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
					if !postgres.IsUnavailable(err) {
						t.Errorf("client %d: %v is not said to be the database not answering: the API would not ask to send it again", c, err)
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
	stopLosing()
	if t.Failed() {
		return
	}
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

// The answer to a transfers batch's COMMIT is lost. Every client sends its transfer again with
// the same id when it gets an error, and learns that it was created once: Created, or Exists when
// an attempt whose answer was lost had created it. Every account ends with what the transfers say.
func TestLostCommitAnswersCreateEachTransferOnce(t *testing.T) {
	url := pgtest.NewDatabase(t)
	ctx := context.Background()
	proxy := pgtest.StartProxy(t, url)
	st := proxy.Open(t, url)
	bank, hot := newID(t), newID(t)
	specs := []postgres.AccountSpec{
		{Account: ledger.Account{ID: bank, Currency: "CNY", Kind: ledger.KindBankSettlement}, Name: "bank"},
		{Account: ledger.Account{ID: hot, Currency: "CNY", Kind: ledger.KindSuspense}, Name: "hot"},
	}
	sources := make([]ledger.ID, faultClients)
	var funding []ledger.Transfer
	for i := range sources {
		sources[i] = newID(t)
		specs = append(specs, postgres.AccountSpec{Account: ledger.Account{ID: sources[i], Currency: "CNY", Kind: ledger.KindSuspense,
			Flags: ledger.DebitsMustNotExceedCredits}, Name: "source"})
		funding = append(funding, ledger.Transfer{ID: newID(t), DebitAccountID: bank, CreditAccountID: sources[i], Amount: 1_000_00, Currency: "CNY"})
	}
	if err := st.CreateAccounts(ctx, specs); err != nil {
		t.Fatal(err)
	}
	commit(t, st, nil, funding...)
	tr := postgres.NewTransfers(st)
	runCtx, cancel := context.WithCancel(ctx)
	ran := make(chan struct{})
	go func() {
		defer close(ran)
		tr.Run(runCtx)
	}()
	defer func() {
		cancel()
		<-ran
	}()

	stopLosing := loseSomeCommits(t, proxy, 41)
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		results = map[ledger.Result]int{}
	)
	for c := range faultClients {
		wg.Go(func() {
			for range faultRequests {
				x := ledger.Transfer{ID: newID(t), DebitAccountID: sources[c], CreditAccountID: hot, Amount: 100, Currency: "CNY"}
				var (
					res []ledger.Result
					err error
				)
				for try := 0; try < faultRetries; try++ {
					if res, _, err = tr.Do(ctx, []ledger.Transfer{x}); err == nil {
						break
					}
					if !postgres.IsUnavailable(err) {
						t.Errorf("client %d: %v is not said to be the database not answering: the API would not ask to send it again", c, err)
					}
					time.Sleep(10 * time.Millisecond)
				}
				if err != nil || (res[0] != ledger.Created && res[0] != ledger.Exists) {
					t.Errorf("client %d transfer %s: %v %v", c, x.ID, err, res)
					return
				}
				mu.Lock()
				results[res[0]]++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	stopLosing()
	if t.Failed() {
		return
	}
	t.Logf("results %v", results)
	b, err := st.Balance(ctx, hot)
	if err != nil {
		t.Fatal(err)
	}
	if want := int64(faultClients * faultRequests * 100); b.Net() != want {
		t.Errorf("hot account holds %d fen, want %d: a transfer applied twice or lost", b.Net(), want)
	}
	for i, src := range sources {
		b, err := st.Balance(ctx, src)
		if err != nil {
			t.Fatal(err)
		}
		if want := int64(1_000_00 - faultRequests*100); b.Net() != want {
			t.Errorf("source %d holds %d fen, want %d", i, b.Net(), want)
		}
	}
}

// What the database did not answer is told apart from what it answered.
func TestIsUnavailable(t *testing.T) {
	for _, c := range []struct {
		err  error
		want bool
	}{
		{nil, false},
		{&pgconn.PgError{Code: "57P01"}, true},
		{&pgconn.PgError{Code: "57P03"}, true},
		{fmt.Errorf("begin: %w", &pgconn.PgError{Code: "08006"}), true},
		{fmt.Errorf("commit: %w", io.ErrUnexpectedEOF), true},
		{fmt.Errorf("read: %w", io.EOF), true},
		{&net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connection refused")}, true},
		{errors.New("batch transaction: commit: conn closed"), true},
		{fmt.Errorf("batch transaction: %w", context.DeadlineExceeded), true},
		{&pgconn.PgError{Code: "40001"}, false},
		{&pgconn.PgError{Code: "23505"}, false},
		{&pgconn.PgError{Code: "22P02"}, false},
		{postgres.ErrIdempotencyKeyReused, false},
		{errors.New("closed"), false},
	} {
		if got := postgres.IsUnavailable(c.err); got != c.want {
			t.Errorf("IsUnavailable(%v) = %v, want %v", c.err, got, c.want)
		}
	}
}
