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

	"github.com/joinincard/engine/clearing"
	"github.com/joinincard/engine/events"
	"github.com/joinincard/engine/internal/pgtest"
	"github.com/joinincard/engine/loadtest"
	"github.com/joinincard/engine/postgres"
)

const (
	// tapCrashCards tap at Hangzhou's metro gates; tapCrashBatch taps go in each upload.
	tapCrashCards = 50
	tapCrashBatch = 40
	// tapCrashKills is how many times the server is killed while the gates upload.
	tapCrashKills = 3
	// tapCrashGates upload at once, each its own device, each waiting for its answer.
	tapCrashGates = 6
)

// tapCrashUpload is one batch a gate uploaded, and the answer it got, if any.
type tapCrashUpload struct {
	id     string
	body   []byte
	taps   int
	answer string // the batch's answer, once one came
}

// A transit server killed with SIGKILL while an operator's gates upload batches of taps, three
// times, and started again each time, keeps every tap once: a batch answered before a kill is
// answered the same when uploaded again under its id; a batch that got no answer, uploaded again,
// is decided once; and the database holds each tap once.
func TestKilledServeKeepsEveryTapOnce(t *testing.T) {
	ctx := context.Background()
	url := pgtest.NewDatabase(t)
	st, err := postgres.Open(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	city := loadtest.NewCity(41, tapCrashCards, 0, time.Now().Add(-time.Hour))
	for _, p := range city.Parties() {
		if _, err := st.RegisterParty(ctx, p.Kind, p.ID, p.Name); err != nil {
			t.Fatal(err)
		}
	}
	var msgs []clearing.Message
	for i, e := range append(city.Registrations(), city.Funding(50_000, 50_000)...) {
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
	post := func(key, path, idem string, body []byte) (int, []byte, error) {
		req, err := nethttp.NewRequestWithContext(ctx, nethttp.MethodPost, "http://"+addr+path, bytes.NewReader(body))
		if err != nil {
			return 0, nil, err
		}
		req.Header.Set("Authorization", "Bearer "+key)
		req.Header.Set("Content-Type", "application/json")
		if idem != "" {
			req.Header.Set("Idempotency-Key", idem)
		}
		resp, err := client.Do(req)
		if err != nil {
			return 0, nil, err
		}
		defer resp.Body.Close()
		got, err := io.ReadAll(resp.Body)
		return resp.StatusCode, got, err
	}
	status, got, err := post(admin, "/v1/transit/operators", "", []byte(`{"id":"HZMETRO","name":"Hangzhou Metro"}`))
	var operator struct {
		APIKey string `json:"api_key"`
	}
	if err != nil || status != nethttp.StatusCreated || json.Unmarshal(got, &operator) != nil {
		t.Fatalf("register operator: %d %v %s", status, err, got)
	}

	// send uploads u (again) and checks its answer; it reports false when none came.
	send := func(u *tapCrashUpload) (bool, error) {
		status, got, err := post(operator.APIKey, "/v1/transit/batches", u.id, u.body)
		if err != nil || status >= 500 {
			return false, nil
		}
		var v struct {
			Taps []struct {
				Result string `json:"result"`
			} `json:"taps"`
		}
		if status != nethttp.StatusCreated && status != nethttp.StatusOK || json.Unmarshal(got, &v) != nil || len(v.Taps) != u.taps {
			return false, fmt.Errorf("batch %s: %d %.300s", u.id, status, got)
		}
		for i, tap := range v.Taps {
			if tap.Result != "accepted" {
				return false, fmt.Errorf("batch %s: tap %d answered %s: %.300s", u.id, i, tap.Result, got)
			}
		}
		if u.answer != "" && string(got) != u.answer {
			return false, fmt.Errorf("batch %s answered\n%s\nafter\n%s", u.id, got, u.answer)
		}
		u.answer = string(got)
		return true, nil
	}

	var (
		mu      sync.Mutex
		uploads []*tapCrashUpload
		errs    []error
	)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for g := range tapCrashGates {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(g), 29))
			device := fmt.Sprintf("G-%04d", g+1)
			station := fmt.Sprintf("01%02d", 1+g)
			for n := 0; ; n++ {
				select {
				case <-stop:
					return
				default:
				}
				var b bytes.Buffer
				b.WriteString(`{"taps":[`)
				at := time.Now().Add(-time.Minute).UTC().Format(time.RFC3339)
				for i := range tapCrashBatch {
					if i > 0 {
						b.WriteByte(',')
					}
					fmt.Fprintf(&b, `{"device_id":%q,"device_seq":%d,"card_token":%q,"tapped_at":%q,"station_id":%q,"direction":"in","mode":"metro"}`,
						device, n*tapCrashBatch+i+1, city.Cards[rng.IntN(len(city.Cards))], at, station)
				}
				b.WriteString(`]}`)
				u := &tapCrashUpload{id: fmt.Sprintf("%s-%06d", device, n), body: b.Bytes(), taps: tapCrashBatch}
				ok, err := send(u)
				mu.Lock()
				uploads = append(uploads, u)
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
	rng := rand.New(rand.NewPCG(11, 11))
	for range tapCrashKills {
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

	unanswered, taps := 0, 0
	for _, u := range uploads {
		if u.answer == "" {
			unanswered++
		}
		for attempt := 0; ; attempt++ {
			ok, err := send(u)
			if err != nil {
				t.Fatal(err)
			}
			if ok {
				break
			}
			if attempt == httpCrashRetries {
				t.Fatalf("batch %s: no answer after %d retries:\n%s", u.id, httpCrashRetries, server.errs.String())
			}
			time.Sleep(50 * time.Millisecond)
		}
		taps += u.taps
	}
	server.kill(t)
	var stored, distinct int
	if err := st.Pool().QueryRow(ctx, `SELECT count(*), count(DISTINCT (device_id, device_seq)) FROM transit_taps WHERE operator_id = 'HZMETRO'`).Scan(&stored, &distinct); err != nil {
		t.Fatal(err)
	}
	if stored != taps || distinct != taps {
		t.Errorf("the database holds %d taps (%d distinct); the gates uploaded %d", stored, distinct, taps)
	}
	if unanswered == 0 {
		t.Errorf("%d uploads, none unanswered: the kills should land mid-upload", len(uploads))
	}
	t.Logf("%d uploads of %d taps, %d without an answer until uploaded again", len(uploads), taps, unanswered)
}
