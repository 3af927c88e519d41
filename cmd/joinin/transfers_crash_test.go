package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	nethttp "net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/joinincard/engine/internal/pgtest"
	"github.com/joinincard/engine/ledger"
	"github.com/joinincard/engine/postgres"
)

const (
	// transferCrashAccounts receive and send the run's transfers.
	transferCrashAccounts = 20
	// transferCrashClients send requests at once, each of one to transferCrashPerRequest
	// transfers, each waiting for its answer.
	transferCrashClients    = 8
	transferCrashPerRequest = 4
)

// transferCrashCall is one request of transfers a client sent, and whether it was answered.
type transferCrashCall struct {
	s        *crashServer
	accounts []uuid.UUID
	ids      []uuid.UUID
	from, to []int
	amounts  []int64
	answered bool
}

func (c *transferCrashCall) send() (bool, error) {
	var b bytes.Buffer
	b.WriteString(`{"transfers":[`)
	for i := range c.ids {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"id":%q,"debit_account_id":%q,"credit_account_id":%q,"amount":"%d.%02d","currency":"CNY"}`,
			c.ids[i], c.accounts[c.from[i]], c.accounts[c.to[i]], c.amounts[i]/100, c.amounts[i]%100)
	}
	b.WriteString(`]}`)
	status, _, got, err := c.s.post(c.s.admin, "/v1/transfers", "", b.Bytes())
	if err != nil || status >= 500 {
		return false, nil
	}
	var v struct {
		Results []struct {
			ID     string `json:"id"`
			Result string `json:"result"`
		} `json:"results"`
	}
	if status != nethttp.StatusOK || json.Unmarshal(got, &v) != nil || len(v.Results) != len(c.ids) {
		return false, fmt.Errorf("transfers %s: %d %s", c.ids[0], status, got)
	}
	for i, res := range v.Results {
		// The first answer creates; an answer to the same transfer sent again, or to one whose
		// first answer was lost with the server, says it exists.
		if res.ID != c.ids[i].String() || res.Result != "exists" && (c.answered || res.Result != "created") {
			return false, fmt.Errorf("transfer %s answered %s %s, answered before: %v", c.ids[i], res.ID, res.Result, c.answered)
		}
	}
	c.answered = true
	return true, nil
}

// A transfers server killed with SIGKILL while the admin's clients post transfers, three times,
// and started again each time, loses no transfer it answered `created` and applies none twice:
// every request sent again with the same ids answers `exists` for each transfer, the database
// holds each transfer once, and each account's balance is what the clients' transfers make it.
// Started once more with a short --verify-interval, serve verifies the ledger the clients left.
func TestKilledServeKeepsEveryAnsweredTransfer(t *testing.T) {
	ctx := context.Background()
	url := pgtest.NewDatabase(t)
	s := startCrashServer(t, url)
	accounts := make([]uuid.UUID, transferCrashAccounts)
	var open bytes.Buffer
	open.WriteString(`{"accounts":[`)
	for i := range accounts {
		accounts[i] = uuid.Must(uuid.NewV7())
		if i > 0 {
			open.WriteByte(',')
		}
		fmt.Fprintf(&open, `{"id":%q,"name":"crash %d","kind":"suspense","currency":"CNY","constraint":"none"}`, accounts[i], i)
	}
	open.WriteString(`]}`)
	if status, _, got, err := s.post(s.admin, "/v1/accounts", "", open.Bytes()); err != nil || status != nethttp.StatusCreated {
		t.Fatalf("open accounts: %d %v %s", status, err, got)
	}

	calls, unanswered := s.driveThroughKills(transferCrashClients, func(rng *rand.Rand) crashCall {
		c := &transferCrashCall{s: s, accounts: accounts}
		for range 1 + rng.IntN(transferCrashPerRequest) {
			from := rng.IntN(len(accounts))
			c.ids = append(c.ids, uuid.Must(uuid.NewV7()))
			c.from, c.to = append(c.from, from), append(c.to, (from+1+rng.IntN(len(accounts)-1))%len(accounts))
			c.amounts = append(c.amounts, 1+rng.Int64N(99_999))
		}
		return c
	})
	s.resend(calls)
	s.proc.kill(t)

	// Started again with a short interval, serve verifies the ledger the clients left, as
	// `joinin verify` would, and counts the run in its metrics.
	s.start("--verify-interval", "200ms")
	for deadline := time.Now().Add(scaleWait); ; {
		metrics, err := s.get("/metrics")
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(metrics, []byte(`joinin_ledger_verifications_total{result="ok"}`)) &&
			bytes.Contains(metrics, []byte("joinin_ledger_verification_problems 0")) {
			break
		}
		if bytes.Contains(metrics, []byte(`joinin_ledger_verifications_total{result="problems"}`)) || time.Now().After(deadline) {
			t.Fatalf("serve's verification of the ledger:\n%s\n%s", grepLines(string(metrics), "joinin_ledger_"), s.proc.errs.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	s.proc.kill(t)

	transfers := 0
	net := make([]int64, len(accounts))
	var ids []uuid.UUID
	for _, call := range calls {
		c := call.(*transferCrashCall)
		for i := range c.ids {
			transfers++
			net[c.from[i]] -= c.amounts[i]
			net[c.to[i]] += c.amounts[i]
			ids = append(ids, c.ids[i])
		}
	}
	st, err := postgres.Open(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	var stored int
	if err := st.Pool().QueryRow(ctx, `SELECT count(*) FROM transfers WHERE id = ANY($1)`, ids).Scan(&stored); err != nil {
		t.Fatal(err)
	}
	if stored != transfers {
		t.Errorf("the database holds %d of the %d transfers the clients sent", stored, transfers)
	}
	for i, a := range accounts {
		b, err := st.Balance(ctx, ledger.ID(a))
		if err != nil {
			t.Fatal(err)
		}
		if b.Net() != net[i] {
			t.Errorf("account %d: net %d fen, the clients' transfers make it %d", i, b.Net(), net[i])
		}
	}
	t.Logf("%d requests of %d transfers, %d without an answer until sent again", len(calls), transfers, unanswered)
}

// grepLines are the lines of s that contain sub.
func grepLines(s, sub string) string {
	var out []string
	for _, line := range strings.Split(s, "\n") {
		if strings.Contains(line, sub) {
			out = append(out, line)
		}
	}
	return strings.Join(out, "\n")
}
