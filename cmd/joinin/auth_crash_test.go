package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	nethttp "net/http"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/joinincard/engine/cards"
	"github.com/joinincard/engine/clearing"
	"github.com/joinincard/engine/events"
	"github.com/joinincard/engine/internal/pgtest"
	"github.com/joinincard/engine/loadtest"
	"github.com/joinincard/engine/postgres"
)

const (
	// authCrashCards are funded with authCrashFunds each: the run's authorizations ask for several
	// times that in all, so that declines for funds come as well as approvals.
	authCrashCards = 12
	authCrashFunds = 20_000 // 200.00 CNY
	// authCrashKills is how many times the server is killed while the clients send.
	authCrashKills = 3
	// authCrashClients send authorizations at once, each waiting for its answer.
	authCrashClients = 8
	// httpCrashRequestTimeout bounds one request: a server killed mid-request answers nothing.
	httpCrashRequestTimeout = 3 * time.Second
	// httpCrashRetries bound the retries of a request that was never answered, once the server is
	// up for good.
	httpCrashRetries = 50
)

// authCrashRequest is one authorization a client sent, and what it was answered, if anything.
type authCrashRequest struct {
	key      uuid.UUID
	card     string
	amount   int64
	answered bool
	approved bool
	reason   string
	id       string
}

// An authorization server killed with SIGKILL while merchants' requests are in flight, three
// times, and started again each time, loses no answered decision and applies no request twice:
// every request answered before a kill is answered the same when sent again with its key (an
// approval is a hold that is still there); every request that got no answer, sent again with its
// key once the server is back, is decided once; the database holds one decision per key; each
// card's available funds are its funding less the holds it was answered; and the ledger verifies.
func TestKilledServeKeepsEveryAnsweredAuthorization(t *testing.T) {
	ctx := context.Background()
	url := pgtest.NewDatabase(t)
	st, err := postgres.Open(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	city := loadtest.NewCity(31, authCrashCards, 0, time.Now().Add(-time.Hour))
	for _, p := range city.Parties() {
		if _, err := st.RegisterParty(ctx, p.Kind, p.ID, p.Name); err != nil {
			t.Fatal(err)
		}
	}
	var msgs []clearing.Message
	for i, e := range append(city.Registrations(), city.Funding(authCrashFunds, authCrashFunds)...) {
		raw := loadtest.Encode(e)
		dec, err := events.Decode(raw)
		if err != nil {
			t.Fatal(err)
		}
		msgs = append(msgs, clearing.Message{Source: "crash-test", Offset: int64(i), Raw: raw, Event: dec})
	}
	if _, err := st.Ingest(ctx, nil, msgs); err != nil {
		t.Fatal(err)
	}

	addr, admin := freeTCPAddr(t), "crash-test-admin"
	start := func() *engineProc {
		return startJoinin(t, "serve", "serve", "--database-url", url, "--http-addr", addr, "--admin-token", admin,
			"--token-key", devTokenKey, "--settle-grace", "0", "--log-level", "warn")
	}
	server := start()
	client := &nethttp.Client{Timeout: httpCrashRequestTimeout}
	post := func(key, path string, idem uuid.UUID, body []byte) (int, nethttp.Header, []byte, error) {
		req, err := nethttp.NewRequestWithContext(ctx, nethttp.MethodPost, "http://"+addr+path, bytes.NewReader(body))
		if err != nil {
			return 0, nil, nil, err
		}
		req.Header.Set("Authorization", "Bearer "+key)
		req.Header.Set("Content-Type", "application/json")
		if idem != uuid.Nil {
			req.Header.Set("Idempotency-Key", idem.String())
		}
		resp, err := client.Do(req)
		if err != nil {
			return 0, nil, nil, err
		}
		defer resp.Body.Close()
		got, err := io.ReadAll(resp.Body)
		return resp.StatusCode, resp.Header, got, err
	}
	status, _, got, err := post(admin, "/v1/merchants", uuid.Nil, fmt.Appendf(nil,
		`{"id":"crash-shop","name":"Crash Shop","mcc":"5411","city":%q,"acquiring_bank":%q,"fee_plan":%q}`,
		city.Cities[0], city.Banks[0], loadtest.MerchantFeePlan))
	var merchant struct {
		APIKey string `json:"api_key"`
	}
	if err != nil || status != nethttp.StatusCreated || json.Unmarshal(got, &merchant) != nil {
		t.Fatalf("register merchant: %d %v %s", status, err, got)
	}
	body := func(r *authCrashRequest) []byte {
		return fmt.Appendf(nil, `{"card_token":%q,"amount":"%d.%02d","currency":"CNY"}`, r.card, r.amount/100, r.amount%100)
	}
	// send sends r (again) and records its answer; it reports false when none came.
	send := func(r *authCrashRequest) (bool, error) {
		status, hdr, got, err := post(merchant.APIKey, "/v1/authorizations", r.key, body(r))
		if err != nil || status >= 500 {
			return false, nil // the server is down, or going down: no decision came back
		}
		var v struct {
			ID            string `json:"id"`
			Decision      string `json:"decision"`
			DeclineReason string `json:"decline_reason"`
		}
		if status != nethttp.StatusCreated || json.Unmarshal(got, &v) != nil {
			return false, fmt.Errorf("authorization %s: %d %s", r.key, status, got)
		}
		approved := v.Decision == "approved"
		if r.answered && (v.ID != r.id || approved != r.approved || v.DeclineReason != r.reason || hdr.Get("Idempotent-Replayed") != "true") {
			return false, fmt.Errorf("authorization %s answered %s %s %q (replayed %q) after %s %v %q",
				r.key, v.ID, v.Decision, v.DeclineReason, hdr.Get("Idempotent-Replayed"), r.id, r.approved, r.reason)
		}
		r.answered, r.approved, r.reason, r.id = true, approved, v.DeclineReason, v.ID
		return true, nil
	}

	var (
		mu   sync.Mutex
		sent []*authCrashRequest
		errs []error
	)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for c := range authCrashClients {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(c), 17))
			for {
				select {
				case <-stop:
					return
				default:
				}
				r := &authCrashRequest{key: uuid.Must(uuid.NewV7()), card: city.Cards[rng.IntN(len(city.Cards))], amount: 100 + rng.Int64N(1900)}
				ok, err := send(r)
				mu.Lock()
				sent = append(sent, r)
				if err != nil {
					errs = append(errs, err)
				}
				mu.Unlock()
				if !ok {
					time.Sleep(20 * time.Millisecond) // the server is down: wait for it as a terminal would
				}
			}
		})
	}
	rng := rand.New(rand.NewPCG(7, 7))
	for range authCrashKills {
		time.Sleep(time.Duration(300+rng.IntN(700)) * time.Millisecond)
		server.kill(t)
		server = start()
	}
	time.Sleep(300 * time.Millisecond)
	close(stop)
	wg.Wait()
	for _, err := range errs {
		t.Error(err)
	}

	// Every request again, with its key: the unanswered ones until they are decided, the answered
	// ones to see their decision kept.
	unanswered, approvedAmount := 0, map[string]int64{}
	for _, r := range sent {
		if !r.answered {
			unanswered++
		}
		for attempt := 0; ; attempt++ {
			ok, err := send(r)
			if err != nil {
				t.Fatal(err)
			}
			if ok {
				break
			}
			if attempt == httpCrashRetries {
				t.Fatalf("authorization %s: no answer after %d retries:\n%s", r.key, httpCrashRetries, server.errs.String())
			}
			time.Sleep(50 * time.Millisecond)
		}
		if r.approved {
			approvedAmount[r.card] += r.amount
		}
	}

	var requests, approvals int
	var held int64
	if err := st.Pool().QueryRow(ctx, `SELECT (SELECT count(*) FROM purchase_requests WHERE merchant_id = 'crash-shop'),
		count(*), coalesce(sum(amount), 0) FROM purchase_authorizations WHERE merchant_id = 'crash-shop' AND approved`).Scan(&requests, &approvals, &held); err != nil {
		t.Fatal(err)
	}
	var wantApprovals int
	var wantHeld int64
	for _, r := range sent {
		if r.approved {
			wantApprovals++
			wantHeld += r.amount
		}
	}
	if requests != len(sent) || approvals != wantApprovals || held != wantHeld {
		t.Errorf("the database holds %d requests, %d approvals for %d fen; the clients sent %d and were approved %d for %d fen",
			requests, approvals, held, len(sent), wantApprovals, wantHeld)
	}
	for _, card := range city.Cards {
		b, err := st.Balance(ctx, cards.AccountID("funds", card))
		if err != nil {
			t.Fatal(err)
		}
		if b.Available() != authCrashFunds-approvedAmount[card] {
			t.Errorf("card %s: %d fen available, want %d less %d held", card, b.Available(), authCrashFunds, approvedAmount[card])
		}
	}
	if wantApprovals == 0 || wantApprovals == len(sent) || unanswered == 0 {
		t.Errorf("%d requests, %d approved, %d unanswered at first: the run should see approvals, declines and kills mid-request",
			len(sent), wantApprovals, unanswered)
	}
	t.Logf("%d requests, %d approved, %d without an answer until sent again", len(sent), wantApprovals, unanswered)
	server.kill(t)
}
