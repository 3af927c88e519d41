package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	nethttp "net/http"
	"strings"
	"sync"
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
	// transferCrashKills is how many times the server is killed while the clients send.
	transferCrashKills = 3
	// transferCrashClients send requests at once, each of one to transferCrashPerRequest
	// transfers, each waiting for its answer.
	transferCrashClients    = 8
	transferCrashPerRequest = 4
)

// transferCrashRequest is one request a client sent, and whether it was answered.
type transferCrashRequest struct {
	ids      []uuid.UUID
	from, to []int
	amounts  []int64
	answered bool
}

// A transfers server killed with SIGKILL while the admin's clients post transfers, three times,
// and started again each time, loses no transfer it answered `created` and applies none twice:
// every request sent again with the same ids answers `exists` for each transfer, the database
// holds each transfer once, and each account's balance is what the clients' transfers make it.
func TestKilledServeKeepsEveryAnsweredTransfer(t *testing.T) {
	ctx := context.Background()
	url := pgtest.NewDatabase(t)
	addr, admin := freeTCPAddr(t), "crash-test-admin"
	start := func() *engineProc {
		return startJoinin(t, "serve", "serve", "--database-url", url, "--http-addr", addr, "--admin-token", admin,
			"--token-key", devTokenKey, "--settle-grace", "0", "--log-level", "warn")
	}
	server := start()
	client := &nethttp.Client{Timeout: httpCrashRequestTimeout}
	post := func(path string, body []byte) (int, []byte, error) {
		req, err := nethttp.NewRequestWithContext(ctx, nethttp.MethodPost, "http://"+addr+path, bytes.NewReader(body))
		if err != nil {
			return 0, nil, err
		}
		req.Header.Set("Authorization", "Bearer "+admin)
		req.Header.Set("Content-Type", "application/json")
		resp, err := client.Do(req)
		if err != nil {
			return 0, nil, err
		}
		defer resp.Body.Close()
		got, err := io.ReadAll(resp.Body)
		return resp.StatusCode, got, err
	}
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
	if status, got, err := post("/v1/accounts", open.Bytes()); err != nil || status != nethttp.StatusCreated {
		t.Fatalf("open accounts: %d %v %s", status, err, got)
	}

	body := func(r *transferCrashRequest) []byte {
		var b bytes.Buffer
		b.WriteString(`{"transfers":[`)
		for i := range r.ids {
			if i > 0 {
				b.WriteByte(',')
			}
			fmt.Fprintf(&b, `{"id":%q,"debit_account_id":%q,"credit_account_id":%q,"amount":"%d.%02d","currency":"CNY"}`,
				r.ids[i], accounts[r.from[i]], accounts[r.to[i]], r.amounts[i]/100, r.amounts[i]%100)
		}
		b.WriteString(`]}`)
		return b.Bytes()
	}
	// send sends r (again) and checks its answer; it reports false when none came.
	send := func(r *transferCrashRequest) (bool, error) {
		status, got, err := post("/v1/transfers", body(r))
		if err != nil || status >= 500 {
			return false, nil
		}
		var v struct {
			Results []struct {
				ID     string `json:"id"`
				Result string `json:"result"`
			} `json:"results"`
		}
		if status != nethttp.StatusOK || json.Unmarshal(got, &v) != nil || len(v.Results) != len(r.ids) {
			return false, fmt.Errorf("transfers %s: %d %s", r.ids[0], status, got)
		}
		for i, res := range v.Results {
			// The first answer creates; an answer to the same transfer sent again, or to one
			// whose first answer was lost with the server, says it exists.
			want := map[bool]string{false: "created", true: "exists"}[r.answered]
			if res.ID != r.ids[i].String() || res.Result != want && (r.answered || res.Result != "exists") {
				return false, fmt.Errorf("transfer %s answered %s %s, sent before: %v", r.ids[i], res.ID, res.Result, r.answered)
			}
		}
		r.answered = true
		return true, nil
	}

	var (
		mu   sync.Mutex
		sent []*transferCrashRequest
		errs []error
	)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for c := range transferCrashClients {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(c), 23))
			for {
				select {
				case <-stop:
					return
				default:
				}
				r := &transferCrashRequest{}
				for range 1 + rng.IntN(transferCrashPerRequest) {
					from := rng.IntN(len(accounts))
					r.ids = append(r.ids, uuid.Must(uuid.NewV7()))
					r.from, r.to = append(r.from, from), append(r.to, (from+1+rng.IntN(len(accounts)-1))%len(accounts))
					r.amounts = append(r.amounts, 1+rng.Int64N(99_999))
				}
				ok, err := send(r)
				mu.Lock()
				sent = append(sent, r)
				if err != nil {
					errs = append(errs, err)
				}
				mu.Unlock()
				if !ok {
					time.Sleep(20 * time.Millisecond)
				}
			}
		})
	}
	rng := rand.New(rand.NewPCG(9, 9))
	for range transferCrashKills {
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

	unanswered, transfers := 0, 0
	net := make([]int64, len(accounts))
	ids := []uuid.UUID{}
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
				t.Fatalf("transfers %s: no answer after %d retries:\n%s", r.ids[0], httpCrashRetries, server.errs.String())
			}
			time.Sleep(50 * time.Millisecond)
		}
		for i := range r.ids {
			transfers++
			net[r.from[i]] -= r.amounts[i]
			net[r.to[i]] += r.amounts[i]
			ids = append(ids, r.ids[i])
		}
	}
	server.kill(t)
	// Started again with a short interval, serve verifies the ledger the clients left, as
	// `joinin verify` would, and counts the run in its metrics.
	server = startJoinin(t, "serve", "serve", "--database-url", url, "--http-addr", addr, "--admin-token", admin,
		"--token-key", devTokenKey, "--settle-grace", "0", "--log-level", "warn", "--verify-interval", "200ms")
	for deadline := time.Now().Add(scaleWait); ; {
		resp, err := client.Get("http://" + addr + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		metrics, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(metrics, []byte(`joinin_ledger_verifications_total{result="ok"}`)) &&
			bytes.Contains(metrics, []byte("joinin_ledger_verification_problems 0")) {
			break
		}
		if bytes.Contains(metrics, []byte(`joinin_ledger_verifications_total{result="problems"}`)) || time.Now().After(deadline) {
			t.Fatalf("serve's verification of the ledger:\n%s\n%s", grepLines(string(metrics), "joinin_ledger_"), server.errs.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	server.kill(t)

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
	if unanswered == 0 {
		t.Errorf("%d requests, none unanswered: the kills should land mid-request", len(sent))
	}
	t.Logf("%d requests of %d transfers, %d without an answer until sent again", len(sent), transfers, unanswered)
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
