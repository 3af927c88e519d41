package main

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	nethttp "net/http"
	"testing"

	"github.com/google/uuid"

	"github.com/joinincard/engine/cards"
	"github.com/joinincard/engine/internal/pgtest"
	"github.com/joinincard/engine/loadtest"
)

const (
	// authCrashCards are funded with authCrashFunds each: the run's authorizations ask for several
	// times that in all, so that declines for funds come as well as approvals.
	authCrashCards = 12
	authCrashFunds = 20_000 // 200.00 CNY
	// authCrashClients send authorizations at once, each waiting for its answer.
	authCrashClients = 8
)

// authCrashCall is one authorization a client sent, and what it was answered, if anything.
type authCrashCall struct {
	s        *crashServer
	apiKey   string
	key      uuid.UUID
	card     string
	amount   int64
	answered bool
	approved bool
	reason   string
	id       string
}

func (c *authCrashCall) send() (bool, error) {
	body := fmt.Appendf(nil, `{"card_token":%q,"amount":"%d.%02d","currency":"CNY"}`, c.card, c.amount/100, c.amount%100)
	status, hdr, got, err := c.s.post(c.apiKey, "/v1/authorizations", c.key.String(), body)
	if err != nil || status >= 500 {
		return false, nil
	}
	var v struct {
		ID            string `json:"id"`
		Decision      string `json:"decision"`
		DeclineReason string `json:"decline_reason"`
	}
	if status != nethttp.StatusCreated || json.Unmarshal(got, &v) != nil {
		return false, fmt.Errorf("authorization %s: %d %s", c.key, status, got)
	}
	approved := v.Decision == "approved"
	if c.answered && (v.ID != c.id || approved != c.approved || v.DeclineReason != c.reason || hdr.Get("Idempotent-Replayed") != "true") {
		return false, fmt.Errorf("authorization %s answered %s %s %q (replayed %q) after %s %v %q",
			c.key, v.ID, v.Decision, v.DeclineReason, hdr.Get("Idempotent-Replayed"), c.id, c.approved, c.reason)
	}
	c.answered, c.approved, c.reason, c.id = true, approved, v.DeclineReason, v.ID
	return true, nil
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
	city, st := fundedCity(t, url, 31, authCrashCards, authCrashFunds)
	s := startCrashServer(t, url)
	status, _, got, err := s.post(s.admin, "/v1/merchants", "", fmt.Appendf(nil,
		`{"id":"crash-shop","name":"Crash Shop","mcc":"5411","city":%q,"acquiring_bank":%q,"fee_plan":%q}`,
		city.Cities[0], city.Banks[0], loadtest.MerchantFeePlan))
	var merchant struct {
		APIKey string `json:"api_key"`
	}
	if err != nil || status != nethttp.StatusCreated || json.Unmarshal(got, &merchant) != nil {
		t.Fatalf("register merchant: %d %v %s", status, err, got)
	}

	calls, unanswered := s.driveThroughKills(authCrashClients, func(rng *rand.Rand) crashCall {
		return &authCrashCall{s: s, apiKey: merchant.APIKey, key: uuid.Must(uuid.NewV7()),
			card: city.Cards[rng.IntN(len(city.Cards))], amount: 100 + rng.Int64N(1900)}
	})
	// Every request again, with its key: the unanswered ones until they are decided, the answered
	// ones to see their decision kept.
	s.resend(calls)
	s.proc.kill(t)

	approvedAmount := map[string]int64{}
	var wantApprovals int
	var wantHeld int64
	for _, call := range calls {
		if c := call.(*authCrashCall); c.approved {
			approvedAmount[c.card] += c.amount
			wantApprovals++
			wantHeld += c.amount
		}
	}
	var requests, approvals int
	var held int64
	if err := st.Pool().QueryRow(ctx, `SELECT (SELECT count(*) FROM purchase_requests WHERE merchant_id = 'crash-shop'),
		count(*), coalesce(sum(amount), 0) FROM purchase_authorizations WHERE merchant_id = 'crash-shop' AND approved`).Scan(&requests, &approvals, &held); err != nil {
		t.Fatal(err)
	}
	if requests != len(calls) || approvals != wantApprovals || held != wantHeld {
		t.Errorf("the database holds %d requests, %d approvals for %d fen; the clients sent %d and were approved %d for %d fen",
			requests, approvals, held, len(calls), wantApprovals, wantHeld)
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
	if wantApprovals == 0 || wantApprovals == len(calls) {
		t.Errorf("%d requests, %d approved: the run should see approvals and declines", len(calls), wantApprovals)
	}
	t.Logf("%d requests, %d approved, %d without an answer until sent again", len(calls), wantApprovals, unanswered)
}
