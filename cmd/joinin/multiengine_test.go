package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	nethttp "net/http"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/joinincard/engine/cards"
	"github.com/joinincard/engine/events"
	"github.com/joinincard/engine/ledger"
	"github.com/joinincard/engine/loadtest"
	"github.com/joinincard/engine/postgres"
	"github.com/joinincard/engine/purchases"
	"github.com/joinincard/engine/settlement"
)

const (
	// fleetCards are the cards every engine authorizes on at once while their events flow.
	fleetCards = 6
	// fleetPerTx and fleetPerDay are the cards' limits, set before the run.
	fleetPerTx  = 100_00
	fleetPerDay = 600_00
	// fleetRun is how long the clients send, through fleetKills kills.
	fleetRun   = 9 * time.Second
	fleetKills = 3
	fleetShop  = "fleet-shop"
	// fleetTakeover bounds how long a killed engine's partitions wait for the other engine: the
	// group's 6 s session timeout and a rebalance of up to 10 s (docs/deploying.md).
	fleetTakeover = 16 * time.Second
)

// fleet is two `joinin serve` processes on one database, one broker and one consumer group, each
// at an address of its own that stays the same when it is killed and started again.
type fleet struct {
	t      *testing.T
	c      *cluster
	mu     sync.RWMutex
	nodes  []*crashServer
	apiKey string   // the merchant's
	extra  []string // flags every engine starts with besides the fleet's own
}

func (f *fleet) start(i int) {
	n := f.nodes[i]
	args := []string{"serve", "--database-url", f.c.url, "--kafka-brokers", f.c.broker, "--group", "fleet",
		"--partitions", strconv.Itoa(scalePartitions), "--http-addr", n.addr, "--admin-token", n.admin,
		"--token-key", devTokenKey, "--settle-grace", "0", "--log-level", "warn"}
	p := startJoinin(f.t, fmt.Sprintf("engine-%d", i), append(args, f.extra...)...)
	p.http = n.addr
	f.mu.Lock()
	n.proc = p
	f.mu.Unlock()
}

func (f *fleet) procs() []*engineProc {
	f.mu.RLock()
	defer f.mu.RUnlock()
	var out []*engineProc
	for _, n := range f.nodes {
		out = append(out, n.proc)
	}
	return out
}

// answer is one HTTP answer.
type answer struct {
	status   int
	body     []byte
	replayed bool
}

// send posts to engine i; ok is false when no answer came (the engine is down or died).
func (f *fleet) send(i int, key, path, idem string, body []byte) (answer, bool) {
	status, hdr, got, err := f.nodes[i].post(key, path, idem, body)
	if err != nil || status >= 500 {
		return answer{}, false
	}
	return answer{status: status, body: got, replayed: hdr.Get("Idempotent-Replayed") == "true"}, true
}

// sendUntil sends to engine i, then to the others in turn, until one answers.
func (f *fleet) sendUntil(i int, key, path, idem string, body []byte) answer {
	for attempt := 0; attempt < 400; attempt++ {
		if a, ok := f.send((i+attempt)%len(f.nodes), key, path, idem, body); ok {
			return a
		}
		time.Sleep(25 * time.Millisecond)
	}
	f.t.Errorf("%s %s: no engine answered", path, idem)
	return answer{}
}

// both sends the same request with the same key to both engines at once, then again to any
// engine for each that did not answer, and checks the two answers are one effect: the same
// status and body, at most one of them first (not replayed). It returns the answer.
func (f *fleet) both(key, path, idem string, body []byte) answer {
	var as [2]answer
	var oks [2]bool
	var wg sync.WaitGroup
	for i := range 2 {
		wg.Go(func() { as[i], oks[i] = f.send(i, key, path, idem, body) })
	}
	wg.Wait()
	for i := range 2 {
		if !oks[i] {
			as[i] = f.sendUntil(1-i, key, path, idem, body)
		}
	}
	if as[0].status != as[1].status || !bytes.Equal(as[0].body, as[1].body) {
		f.t.Errorf("%s with key %s answered differently by the two engines:\n%d %s (replayed %v)\n%d %s (replayed %v)",
			path, idem, as[0].status, as[0].body, as[0].replayed, as[1].status, as[1].body, as[1].replayed)
	}
	if as[0].status == nethttp.StatusCreated && as[1].status == nethttp.StatusCreated && !as[0].replayed && !as[1].replayed && oks[0] && oks[1] {
		f.t.Errorf("%s with key %s: both engines answered as the first: %s", path, idem, as[0].body)
	}
	if as[1].status == nethttp.StatusCreated {
		return as[1] // what was done, whichever engine said so
	}
	return as[0]
}

// fleetAuth is an authorization the clients made and what became of it, by their answers.
type fleetAuth struct {
	card     string
	amount   int64
	approved bool
	id       string
	captured int64 // by HTTP or by a clearing on Kafka
	refunded int64
	closed   bool
	cleared  *events.Event // the purchase.cleared sent for it, if one was
	voided   bool          // a void over HTTP won over the clearing
	// httpCaptured says a capture over HTTP won over the clearing.
	httpCaptured bool
	// kafkaRefund is the purchase.refunded sent against the clearing, if one was.
	kafkaRefund       *events.Event
	kafkaRefundAmount int64
}

// Two `joinin serve` processes share one database, one broker and one consumer group, and are
// each killed with SIGKILL and started again while clients authorize, capture, void and refund
// through both at once, on the same few cards, with the same idempotency keys sent to both; while
// the cards' loads, offline purchases, clearings and refunds flow through Kafka; while admin
// clients send the same transfers, linked chains and racing posts and voids of holds to both;
// and while a settlement cycle is closed by both engines and `joinin settle` at once. Afterwards:
// each key had one effect and both engines gave it the same answer; no card approved past its
// per-transaction or daily limit; each card's balance is what its answered requests and applied
// events make it (no hold lost, nothing applied twice); every transfer exists once with its
// answer; one cycle with one set of files; and the ledger verifies.
func TestEnginesShareCardsTransfersAndCloses(t *testing.T) {
	if testing.Short() {
		t.Skip("two engine processes and a broker through kills take a minute; make test runs it")
	}
	ctx := context.Background()
	c := newCluster(t, fleetCards)
	f := &fleet{t: t, c: c}
	for range 2 {
		f.nodes = append(f.nodes, &crashServer{t: t, url: c.url, addr: freeTCPAddr(t), admin: "fleet-admin",
			client: &nethttp.Client{Timeout: httpCrashRequestTimeout}})
	}
	f.start(0)
	f.start(1)
	c.caughtUp(f.procs())
	city := c.city

	a := f.sendUntil(0, "fleet-admin", "/v1/merchants", "", fmt.Appendf(nil,
		`{"id":%q,"name":"Fleet Shop","mcc":"5411","city":%q,"acquiring_bank":%q,"fee_plan":%q}`,
		fleetShop, city.Cities[0], city.Banks[0], loadtest.MerchantFeePlan))
	var merchant struct {
		APIKey string `json:"api_key"`
	}
	if a.status != nethttp.StatusCreated || json.Unmarshal(a.body, &merchant) != nil {
		t.Fatalf("register merchant: %d %s", a.status, a.body)
	}
	f.apiKey = merchant.APIKey
	for _, card := range city.Cards {
		a := f.sendUntil(1, "fleet-admin", "/v1/cards/"+card+"/limits", "", fmt.Appendf(nil, `{"per_transaction":"%s","per_day":"%s"}`,
			purchases.FormatAmount(fleetPerTx), purchases.FormatAmount(fleetPerDay)))
		if a.status != nethttp.StatusOK {
			t.Fatalf("limits of %s: %d %s", card, a.status, a.body)
		}
	}
	// Offline purchases bring some cards below their daily limit.
	c.send(city.Purchases(2*fleetCards, 900_00))

	// Transfer accounts: a funded one that may not be overdrawn, and others without a constraint.
	accounts := make([]uuid.UUID, 5)
	var open bytes.Buffer
	open.WriteString(`{"accounts":[`)
	for i := range accounts {
		accounts[i] = uuid.Must(uuid.NewV7())
		constraint := "none"
		if i == 0 {
			constraint = "debits_must_not_exceed_credits"
		}
		if i > 0 {
			open.WriteByte(',')
		}
		fmt.Fprintf(&open, `{"id":%q,"name":"fleet %d","kind":"suspense","currency":"CNY","constraint":%q}`, accounts[i], i, constraint)
	}
	open.WriteString(`]}`)
	if a := f.sendUntil(0, "fleet-admin", "/v1/accounts", "", open.Bytes()); a.status != nethttp.StatusCreated {
		t.Fatalf("open accounts: %d %s", a.status, a.body)
	}

	var (
		mu        sync.Mutex
		auths     []*fleetAuth
		produced  []events.Event // the run's events on Kafka
		tcalls    []*fleetTransfers
		transfers = newFleetLedger(accounts)
	)
	produce := func(evs ...events.Event) {
		mu.Lock()
		defer mu.Unlock()
		c.send(evs)
		produced = append(produced, evs...)
	}
	eventAt := func(typ events.Type, card string, data events.Data) events.Event {
		return events.Event{ID: uuid.Must(uuid.NewV7()), Type: typ, OccurredAt: time.Now().UTC().Truncate(time.Millisecond), CardToken: card, Data: data}
	}
	// Fund account 0 from account 1 with 500.00 CNY before the run, once.
	transfers.send(f, rand.New(rand.NewPCG(1, 1)), []fleetTransfer{{id: uuid.Must(uuid.NewV7()), from: 1, to: 0, amount: 500_00}})

	stop := make(chan struct{})
	var wg sync.WaitGroup
	// Merchants' clients.
	for w := range 6 {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), 99))
			for {
				select {
				case <-stop:
					return
				default:
				}
				fa := &fleetAuth{card: city.Cards[rng.IntN(len(city.Cards))], amount: 1 + rng.Int64N(fleetPerTx*6/5)}
				body := fmt.Appendf(nil, `{"card_token":%q,"amount":%q,"currency":"CNY"}`, fa.card, purchases.FormatAmount(fa.amount))
				var ans answer
				if rng.IntN(3) == 0 {
					ans = f.both(f.apiKey, "/v1/authorizations", uuid.Must(uuid.NewV7()).String(), body)
				} else {
					ans = f.sendUntil(rng.IntN(2), f.apiKey, "/v1/authorizations", uuid.Must(uuid.NewV7()).String(), body)
				}
				var v struct {
					ID       string `json:"id"`
					Decision string `json:"decision"`
				}
				if ans.status != nethttp.StatusCreated || json.Unmarshal(ans.body, &v) != nil {
					t.Errorf("authorization: %d %s", ans.status, ans.body)
					continue
				}
				fa.id, fa.approved = v.ID, v.Decision == "approved"
				mu.Lock()
				auths = append(auths, fa)
				mu.Unlock()
				if !fa.approved {
					continue
				}
				f.settle(rng, fa, produce, eventAt)
			}
		})
	}
	// Admin clients of transfers.
	for w := range 2 {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), 7))
			for {
				select {
				case <-stop:
					return
				default:
				}
				tc := transfers.next(rng)
				transfers.send(f, rng, tc.transfers)
				mu.Lock()
				tcalls = append(tcalls, tc)
				mu.Unlock()
				if tc.pending {
					transfers.resolve(f, rng, tc)
				}
			}
		})
	}
	// The cards' issuers: loads now and then.
	wg.Go(func() {
		for {
			select {
			case <-stop:
				return
			case <-time.After(40 * time.Millisecond):
			}
			card := city.Cards[rand.IntN(len(city.Cards))]
			if rand.IntN(2) == 0 {
				produce(eventAt(events.TypeFundsLoaded, card, &events.FundsLoaded{Amount: events.Money{Minor: 20_00, Currency: "CNY"},
					BankReference: "FT" + strconv.Itoa(rand.IntN(1e9))}))
				continue
			}
			produce(eventAt(events.TypePurchaseCleared, card, &events.PurchaseCleared{MerchantID: city.Merchants[0],
				Amount: events.Money{Minor: 1 + rand.Int64N(30_00), Currency: "CNY"}, MCC: "5411"}))
		}
	})

	// The kills, and a cycle closed by both engines and `joinin settle` at once, midway.
	cycles, err := (&settleFlags{cutoffHour: 23}).cycles()
	if err != nil {
		t.Fatal(err)
	}
	day := lastDue(cycles, time.Now(), 0)
	out := t.TempDir()
	rng := rand.New(rand.NewPCG(5, 5))
	for k := range fleetKills {
		time.Sleep(time.Duration(fleetRun.Milliseconds()/fleetKills/2+rng.Int64N(fleetRun.Milliseconds()/fleetKills/2)) * time.Millisecond)
		var cw sync.WaitGroup
		if k == 1 {
			// The closes race each other and the kill that follows.
			for i := range 2 {
				cw.Go(func() {
					a := f.sendUntil(i, "fleet-admin", "/v1/settlement/cycles/"+day.String()+"/close", "", nil)
					if a.status != nethttp.StatusOK && a.status != nethttp.StatusCreated {
						t.Errorf("close %s through engine %d: %d %s", day, i, a.status, a.body)
					}
				})
			}
			cw.Go(func() {
				if err := joininChild(t, "settle", "--database-url", c.url, "--log-level", "error", "--date", day.String(),
					"--out", out).Wait(); err != nil {
					t.Errorf("joinin settle: %v", err)
				}
			})
			time.Sleep(time.Duration(rng.IntN(300)) * time.Millisecond)
		}
		victim := rng.IntN(2)
		for _, p := range f.procs() {
			if p.exited() {
				t.Fatalf("%s ended by itself:\n%s", p.name, p.errs.String())
			}
		}
		f.nodes[victim].proc.kill(t)
		f.start(victim)
		cw.Wait()
	}
	close(stop)
	wg.Wait()
	c.caughtUp(f.procs())
	// One engine killed for good: the other takes its partitions within the session timeout and
	// a rebalance, and consumes what came after the kill.
	f.nodes[0].proc.kill(t)
	killed := time.Now()
	produce(city.Funding(1, 1)...)
	c.caughtUp([]*engineProc{f.nodes[1].proc})
	takeover := time.Since(killed)
	if takeover > fleetTakeover {
		t.Errorf("the surviving engine consumed the killed one's partitions %s after the kill, more than %s", takeover.Round(time.Millisecond), fleetTakeover)
	}
	f.start(0)
	// Let every hold's and resolution's commit land: the clients were answered after each.
	st := c.st

	// One request row per key; the approvals within each card's limits.
	approvedByCard := map[string]int64{}
	held := map[string]int64{}
	posted := map[string]int64{}
	for _, fa := range auths {
		if !fa.approved {
			continue
		}
		if fa.amount > fleetPerTx {
			t.Errorf("authorization %s approved %d fen, over the per-transaction limit", fa.id, fa.amount)
		}
		approvedByCard[fa.card] += fa.amount
		switch {
		case !fa.closed:
			held[fa.card] += fa.amount
		default:
			posted[fa.card] += fa.captured - fa.refunded
		}
	}
	var keys, rows int
	if err := st.Pool().QueryRow(ctx, `SELECT count(*), count(DISTINCT (merchant_id, idempotency_key)) FROM purchase_requests
		WHERE merchant_id = $1`, fleetShop).Scan(&rows, &keys); err != nil {
		t.Fatal(err)
	}
	if rows != keys {
		t.Errorf("%d requests stored for %d keys", rows, keys)
	}
	var approvals int
	if err := st.Pool().QueryRow(ctx, `SELECT count(*) FROM purchase_authorizations WHERE merchant_id = $1 AND approved`, fleetShop).
		Scan(&approvals); err != nil {
		t.Fatal(err)
	}
	wantApprovals := 0
	for _, fa := range auths {
		if fa.approved {
			wantApprovals++
		}
	}
	if approvals != wantApprovals {
		t.Errorf("%d approvals stored, the clients were answered %d", approvals, wantApprovals)
	}
	// Each card's funds: everything loaded, less the offline purchases applied, the captures
	// less their refunds, and the holds still open.
	loaded, spent := map[string]int64{}, map[string]int64{}
	statuses := map[uuid.UUID]string{}
	rs, err := st.Pool().Query(ctx, `SELECT event_id, status FROM processed_events`)
	if err != nil {
		t.Fatal(err)
	}
	for rs.Next() {
		var id uuid.UUID
		var s string
		if err := rs.Scan(&id, &s); err != nil {
			t.Fatal(err)
		}
		statuses[id] = s
	}
	if err := rs.Err(); err != nil {
		t.Fatal(err)
	}
	all := c.all
	for _, e := range all {
		s, ok := statuses[e.ID]
		if !ok {
			t.Errorf("event %s (%s) was never processed", e.ID, e.Type)
			continue
		}
		if s != "applied" {
			continue
		}
		switch d := e.Data.(type) {
		case *events.FundsLoaded:
			loaded[e.CardToken] += d.Amount.Minor
		case *events.PurchaseCleared:
			if d.AuthorizationID == uuid.Nil {
				spent[e.CardToken] += d.Amount.Minor
			}
		case *events.PurchaseRefunded:
			if d.MerchantID != fleetShop {
				spent[e.CardToken] -= d.Amount.Minor
			}
		}
	}
	for _, fa := range auths {
		if fa.cleared == nil {
			continue
		}
		if (statuses[fa.cleared.ID] == "applied") == (fa.voided || fa.httpCaptured) {
			t.Errorf("authorization %s: voided over HTTP %v, captured over HTTP %v, its clearing %s", fa.id, fa.voided, fa.httpCaptured, statuses[fa.cleared.ID])
		}
		if fa.kafkaRefund != nil && statuses[fa.kafkaRefund.ID] == "applied" {
			fa.refunded += fa.kafkaRefundAmount
			posted[fa.card] -= fa.kafkaRefundAmount
		}
		if fa.refunded > fa.captured {
			t.Errorf("authorization %s: %d fen refunded over HTTP and Kafka of %d captured", fa.id, fa.refunded, fa.captured)
		}
	}
	for _, card := range city.Cards {
		b, err := st.Balance(ctx, cards.AccountID("funds", card))
		if err != nil {
			t.Fatal(err)
		}
		if b.DebitsPending != held[card] || b.Net() != loaded[card]-spent[card]-posted[card] {
			t.Errorf("card %s: %d fen held, net %d; the answers and events make it %d held, net %d (loaded %d, offline %d, captured net %d)",
				card, b.DebitsPending, b.Net(), held[card], loaded[card]-spent[card]-posted[card], loaded[card], spent[card], posted[card])
		}
	}
	// The day's approvals, in the order they committed, less what voids and captures released
	// before each: no approval took a card past its daily limit.
	type step struct {
		at     time.Time
		card   string
		amount int64 // an approval's hold, or less a release
		id     string
	}
	var steps []step
	rs, err = st.Pool().Query(ctx, `SELECT created_at, card_token, amount, authorization_id::TEXT FROM purchase_authorizations WHERE merchant_id = $1 AND approved
		UNION ALL SELECT created_at, card_token, -released, authorization_id::TEXT FROM purchase_closes WHERE merchant_id = $1`, fleetShop)
	if err != nil {
		t.Fatal(err)
	}
	for rs.Next() {
		var s step
		if err := rs.Scan(&s.at, &s.card, &s.amount, &s.id); err != nil {
			t.Fatal(err)
		}
		steps = append(steps, s)
	}
	if err := rs.Err(); err != nil {
		t.Fatal(err)
	}
	sort.SliceStable(steps, func(i, j int) bool {
		if !steps[i].at.Equal(steps[j].at) {
			return steps[i].at.Before(steps[j].at)
		}
		return steps[i].amount < steps[j].amount // releases first where they tie
	})
	used := map[string]int64{}
	for _, s := range steps {
		used[s.card] += s.amount
		if s.amount > 0 && used[s.card] > fleetPerDay {
			t.Errorf("card %s: authorization %s of %d fen approved at %s took the day to %d fen, over its limit of %d",
				s.card, s.id, s.amount, s.at.Format(time.RFC3339Nano), used[s.card], fleetPerDay)
		}
	}
	_ = approvedByCard

	// Transfers: each once, each account as the answers make it.
	transfers.check(t, ctx, st)

	// One cycle closed once, with one set of files, the same as `joinin settle` wrote.
	var cyclesN, files, dupFiles int
	if err := st.Pool().QueryRow(ctx, `SELECT (SELECT count(*) FROM settlement_cycles WHERE status = 'closed'),
		(SELECT count(*) FROM settlement_files WHERE cycle_date = $1),
		(SELECT count(*) FROM (SELECT 1 FROM settlement_files GROUP BY bank_id HAVING max(sequence) <> count(*)) d)`,
		settlement.DateTime(day)).Scan(&cyclesN, &files, &dupFiles); err != nil {
		t.Fatal(err)
	}
	if cyclesN != 1 || files == 0 || dupFiles != 0 {
		t.Errorf("%d cycles closed, %d files of %s, %d banks whose files skip a number", cyclesN, files, day, dupFiles)
	}
	written, _ := filepath.Glob(filepath.Join(out, "*", "*"))
	if len(written) == 0 {
		t.Errorf("joinin settle wrote no files under its --out")
	}
	for _, p := range written {
		if _, err := os.Stat(p); err != nil {
			t.Error(err)
		}
	}

	// The retries the engines took are counted.
	var retries float64
	for _, p := range f.procs() {
		retries += p.counts(t).storeRetries
	}
	rep, err := st.Verify(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !rep.OK() {
		t.Fatalf("the ledger fails verification:\n%s", rep.String())
	}
	t.Logf("%d authorizations (%d approved), %d transfer requests, %d events, %.0f retries on the last engines; cycle %s with %d files; partitions taken over %s after a kill",
		len(auths), wantApprovals, len(tcalls), len(all), retries, day, files, takeover.Round(time.Millisecond))
}

// settle follows an approved authorization with what a merchant does next, sometimes racing two
// of them across the engines.
func (f *fleet) settle(rng *rand.Rand, fa *fleetAuth, produce func(...events.Event), eventAt func(events.Type, string, events.Data) events.Event) {
	path := "/v1/authorizations/" + fa.id
	close := func(a answer, op string) bool {
		switch a.status {
		case nethttp.StatusCreated:
			return true
		case nethttp.StatusConflict:
			return false
		}
		f.t.Errorf("%s %s: %d %s", op, fa.id, a.status, a.body)
		return false
	}
	switch rng.IntN(6) {
	case 0: // leave the hold open
	case 1: // void, sent to both with one key
		if close(f.both(f.apiKey, path+"/void", uuid.Must(uuid.NewV7()).String(), nil), "void") {
			fa.closed = true
		}
	case 2: // capture through one engine racing a void through the other
		amount := 1 + rng.Int64N(fa.amount)
		var capA, voidA answer
		var wg sync.WaitGroup
		wg.Go(func() {
			capA = f.sendUntil(0, f.apiKey, path+"/capture", uuid.Must(uuid.NewV7()).String(), fmt.Appendf(nil, `{"amount":%q}`, purchases.FormatAmount(amount)))
		})
		wg.Go(func() { voidA = f.sendUntil(1, f.apiKey, path+"/void", uuid.Must(uuid.NewV7()).String(), nil) })
		wg.Wait()
		c, v := close(capA, "capture"), close(voidA, "void")
		if c == v {
			f.t.Errorf("authorization %s: capture answered %d %s, void %d %s: want exactly one", fa.id, capA.status, capA.body, voidA.status, voidA.body)
		}
		fa.closed = c || v
		if c {
			fa.captured = amount
			f.refund(rng, fa, produce, eventAt)
		}
	case 3: // capture in full, sent to both with one key, then refunds
		if close(f.both(f.apiKey, path+"/capture", uuid.Must(uuid.NewV7()).String(), []byte(`{}`)), "capture") {
			fa.closed, fa.captured = true, fa.amount
			f.refund(rng, fa, produce, eventAt)
		}
	case 4, 5: // the clearing on Kafka racing a void, or a capture, over HTTP
		id, _ := uuid.Parse(fa.id)
		e := eventAt(events.TypePurchaseCleared, fa.card, &events.PurchaseCleared{MerchantID: fleetShop,
			Amount: events.Money{Minor: fa.amount, Currency: "CNY"}, MCC: "5411", AuthorizationID: id})
		produce(e)
		fa.closed, fa.cleared = true, &e
		if rng.IntN(2) == 0 {
			if close(f.sendUntil(rng.IntN(2), f.apiKey, path+"/void", uuid.Must(uuid.NewV7()).String(), nil), "void") {
				fa.voided = true
				return
			}
		} else {
			amount := 1 + rng.Int64N(fa.amount)
			if close(f.sendUntil(rng.IntN(2), f.apiKey, path+"/capture", uuid.Must(uuid.NewV7()).String(),
				fmt.Appendf(nil, `{"amount":%q}`, purchases.FormatAmount(amount))), "capture") {
				fa.captured, fa.httpCaptured = amount, true
				f.refund(rng, fa, produce, eventAt)
				return
			}
		}
		fa.captured = fa.amount // the clearing captured it (checked against its status afterwards)
		// A refund on Kafka against the clearing, racing one over HTTP.
		kr := 1 + rng.Int64N(fa.amount)
		re := eventAt(events.TypePurchaseRefunded, fa.card, &events.PurchaseRefunded{MerchantID: fleetShop, OriginalEventID: e.ID,
			Amount: events.Money{Minor: kr, Currency: "CNY"}})
		produce(re)
		fa.kafkaRefund, fa.kafkaRefundAmount = &re, kr
		hr := 1 + rng.Int64N(fa.amount)
		switch a := f.sendUntil(rng.IntN(2), f.apiKey, path+"/refunds", uuid.Must(uuid.NewV7()).String(),
			fmt.Appendf(nil, `{"amount":%q}`, purchases.FormatAmount(hr))); a.status {
		case nethttp.StatusCreated:
			fa.refunded += hr
		case nethttp.StatusConflict:
		default:
			f.t.Errorf("refund of %s: %d %s", fa.id, a.status, a.body)
		}
	}
}

// refund refunds a captured authorization twice at once, through both engines with keys of
// their own, each for up to what was captured: their sum never passes it.
func (f *fleet) refund(rng *rand.Rand, fa *fleetAuth, _ func(...events.Event), _ func(events.Type, string, events.Data) events.Event) {
	if rng.IntN(2) == 0 {
		return
	}
	if rng.IntN(2) == 0 {
		amount := 1 + rng.Int64N(fa.captured)
		switch a := f.both(f.apiKey, "/v1/authorizations/"+fa.id+"/refunds", uuid.Must(uuid.NewV7()).String(),
			fmt.Appendf(nil, `{"amount":%q}`, purchases.FormatAmount(amount))); a.status {
		case nethttp.StatusCreated:
			fa.refunded += amount
		default:
			f.t.Errorf("refund of %s: %d %s", fa.id, a.status, a.body)
		}
		return
	}
	amounts := [2]int64{1 + rng.Int64N(fa.captured), 1 + rng.Int64N(fa.captured)}
	var as [2]answer
	var wg sync.WaitGroup
	for i := range 2 {
		wg.Go(func() {
			as[i] = f.sendUntil(i, f.apiKey, "/v1/authorizations/"+fa.id+"/refunds", uuid.Must(uuid.NewV7()).String(),
				fmt.Appendf(nil, `{"amount":%q}`, purchases.FormatAmount(amounts[i])))
		})
	}
	wg.Wait()
	for i := range 2 {
		switch as[i].status {
		case nethttp.StatusCreated:
			fa.refunded += amounts[i]
		case nethttp.StatusConflict:
		default:
			f.t.Errorf("refund of %s: %d %s", fa.id, as[i].status, as[i].body)
		}
	}
	if fa.refunded > fa.captured {
		f.t.Errorf("authorization %s refunded %d fen of %d captured", fa.id, fa.refunded, fa.captured)
	}
}

// fleetTransfer is one transfer the admin's clients sent.
type fleetTransfer struct {
	id            uuid.UUID
	from, to      int
	amount        int64
	flag          string    // "", "pending", "post_pending" or "void_pending"
	ref           uuid.UUID // the hold a post or void resolves
	linked        bool
	answers       []string // every result it was answered
	createdAnswer bool
}

// fleetTransfers is one request of transfers: a chain when its transfers are linked.
type fleetTransfers struct {
	transfers []fleetTransfer
	pending   bool
}

// fleetLedger keeps the transfers sent, by id.
type fleetLedger struct {
	mu       sync.Mutex
	accounts []uuid.UUID
	byID     map[uuid.UUID]*fleetTransfer
}

func newFleetLedger(accounts []uuid.UUID) *fleetLedger {
	return &fleetLedger{accounts: accounts, byID: map[uuid.UUID]*fleetTransfer{}}
}

// next draws a request: a single transfer, a linked chain of two or three, or a hold.
func (l *fleetLedger) next(rng *rand.Rand) *fleetTransfers {
	n := len(l.accounts)
	one := func() fleetTransfer {
		from := rng.IntN(n)
		return fleetTransfer{id: uuid.Must(uuid.NewV7()), from: from, to: (from + 1 + rng.IntN(n-1)) % n, amount: 1 + rng.Int64N(200_00)}
	}
	tc := &fleetTransfers{}
	switch rng.IntN(3) {
	case 0:
		tc.transfers = []fleetTransfer{one()}
	case 1:
		for range 2 + rng.IntN(2) {
			t := one()
			t.linked = true
			tc.transfers = append(tc.transfers, t)
		}
		tc.transfers[len(tc.transfers)-1].linked = false
	case 2:
		t := one()
		t.flag = "pending"
		tc.transfers, tc.pending = []fleetTransfer{t}, true
	}
	return tc
}

func (l *fleetLedger) body(ts []fleetTransfer) []byte {
	var b bytes.Buffer
	b.WriteString(`{"transfers":[`)
	for i, t := range ts {
		if i > 0 {
			b.WriteByte(',')
		}
		var flags []string
		if t.linked {
			flags = append(flags, "linked")
		}
		if t.flag != "" {
			flags = append(flags, t.flag)
		}
		fl := ""
		if len(flags) > 0 {
			j, _ := json.Marshal(flags)
			fl = `,"flags":` + string(j)
		}
		ref := ""
		if t.ref != uuid.Nil {
			ref = fmt.Sprintf(`,"ref_id":%q`, t.ref)
		}
		fmt.Fprintf(&b, `{"id":%q,"debit_account_id":%q,"credit_account_id":%q,"amount":%q,"currency":"CNY"%s%s}`,
			t.id, l.accounts[t.from], l.accounts[t.to], purchases.FormatAmount(t.amount), fl, ref)
	}
	b.WriteString(`]}`)
	return b.Bytes()
}

// send sends ts to one engine, or to both at once, and records every answer.
func (l *fleetLedger) send(f *fleet, rng *rand.Rand, ts []fleetTransfer) {
	l.mu.Lock()
	for i := range ts {
		l.byID[ts[i].id] = &ts[i]
	}
	l.mu.Unlock()
	body := l.body(ts)
	var as []answer
	if rng.IntN(2) == 0 {
		var two [2]answer
		var wg sync.WaitGroup
		for i := range 2 {
			wg.Go(func() { two[i] = f.sendUntil(i, "fleet-admin", "/v1/transfers", "", body) })
		}
		wg.Wait()
		as = two[:]
	} else {
		as = []answer{f.sendUntil(rng.IntN(2), "fleet-admin", "/v1/transfers", "", body)}
	}
	for _, a := range as {
		var v struct {
			Results []struct {
				ID     string `json:"id"`
				Result string `json:"result"`
			} `json:"results"`
		}
		if a.status != nethttp.StatusOK || json.Unmarshal(a.body, &v) != nil || len(v.Results) != len(ts) {
			f.t.Errorf("transfers: %d %s", a.status, a.body)
			continue
		}
		l.mu.Lock()
		for i, r := range v.Results {
			ts[i].answers = append(ts[i].answers, r.Result)
			if r.Result == "created" {
				if ts[i].createdAnswer {
					f.t.Errorf("transfer %s answered created twice", ts[i].id)
				}
				ts[i].createdAnswer = true
			}
		}
		l.mu.Unlock()
	}
}

// resolve races a post of the hold through one engine against its void through the other.
func (l *fleetLedger) resolve(f *fleet, rng *rand.Rand, tc *fleetTransfers) {
	h := tc.transfers[0]
	if !h.createdAnswer {
		return
	}
	post := []fleetTransfer{{id: uuid.Must(uuid.NewV7()), from: h.from, to: h.to, amount: h.amount, flag: "post_pending", ref: h.id}}
	void := []fleetTransfer{{id: uuid.Must(uuid.NewV7()), from: h.from, to: h.to, amount: h.amount, flag: "void_pending", ref: h.id}}
	// Each send draws from a generator of its own: they run at once.
	postRng, voidRng := rand.New(rand.NewPCG(rng.Uint64(), 1)), rand.New(rand.NewPCG(rng.Uint64(), 2))
	var wg sync.WaitGroup
	wg.Go(func() { l.send(f, postRng, post) })
	wg.Go(func() { l.send(f, voidRng, void) })
	wg.Wait()
	done := func(t fleetTransfer) bool {
		return t.createdAnswer || slices.Contains(t.answers, "exists")
	}
	if done(post[0]) == done(void[0]) {
		f.t.Errorf("hold %s: post answered %v, void %v: want exactly one created", h.id, post[0].answers, void[0].answers)
	}
	for _, r := range append(append([]fleetTransfer{}, post...), void...) {
		for _, a := range r.answers {
			if a != "created" && a != "exists" && a != "pending_already_resolved" {
				f.t.Errorf("resolution %s of hold %s answered %s", r.flag, h.id, a)
			}
		}
	}
}

// check compares every transfer the clients sent with the ledger: those that exist were answered
// created or exists, those that do not never were, chains are whole, and every account's balance
// is what the existing transfers make it.
func (l *fleetLedger) check(t *testing.T, ctx context.Context, st *postgres.Store) {
	ids := make([]uuid.UUID, 0, len(l.byID))
	for id := range l.byID {
		ids = append(ids, id)
	}
	stored := map[uuid.UUID]bool{}
	rows, err := st.Pool().Query(ctx, `SELECT id FROM transfers WHERE id = ANY($1)`, ids)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var id uuid.UUID
		if err := rows.Scan(&id); err != nil {
			t.Fatal(err)
		}
		stored[id] = true
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	type sums struct{ dPend, cPend, dPost, cPost int64 }
	want := make([]sums, len(l.accounts))
	resolved := map[uuid.UUID]string{}
	for id, tr := range l.byID {
		said := false
		for _, a := range tr.answers {
			said = said || a == "created" || a == "exists"
		}
		if stored[id] != said {
			t.Errorf("transfer %s (%s): stored %v, answered %v", id, tr.flag, stored[id], tr.answers)
		}
		if !stored[id] {
			continue
		}
		switch tr.flag {
		case "pending":
			want[tr.from].dPend += tr.amount
			want[tr.to].cPend += tr.amount
		case "post_pending", "void_pending":
			if other, ok := resolved[tr.ref]; ok {
				t.Errorf("hold %s resolved by %s and %s", tr.ref, other, tr.flag)
			}
			resolved[tr.ref] = tr.flag
			want[tr.from].dPend -= tr.amount
			want[tr.to].cPend -= tr.amount
			if tr.flag == "post_pending" {
				want[tr.from].dPost += tr.amount
				want[tr.to].cPost += tr.amount
			}
		default:
			want[tr.from].dPost += tr.amount
			want[tr.to].cPost += tr.amount
		}
	}
	for i, a := range l.accounts {
		b, err := st.Balance(ctx, ledger.ID(a))
		if err != nil {
			t.Fatal(err)
		}
		got := sums{b.DebitsPending, b.CreditsPending, b.DebitsPosted, b.CreditsPosted}
		if got != want[i] {
			t.Errorf("account %d: %+v, the answered transfers make it %+v", i, got, want[i])
		}
	}
}
