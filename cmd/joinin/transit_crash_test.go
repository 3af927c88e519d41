package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	nethttp "net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/joinincard/engine/internal/pgtest"
)

const (
	// tapCrashCards tap at Hangzhou's metro gates; tapCrashBatch taps go in each upload.
	tapCrashCards = 50
	tapCrashBatch = 40
	// tapCrashGates upload at once, each waiting for its answer.
	tapCrashGates = 6
)

// tapCrashCall is one batch a gate uploaded, and the answer it got, if any.
type tapCrashCall struct {
	s      *crashServer
	apiKey string
	id     string
	body   []byte
	taps   int
	answer string // the batch's answer, once one came
}

func (c *tapCrashCall) send() (bool, error) {
	status, _, got, err := c.s.post(c.apiKey, "/v1/transit/batches", c.id, c.body)
	if err != nil || status >= 500 {
		return false, nil
	}
	var v struct {
		Taps []struct {
			Result string `json:"result"`
		} `json:"taps"`
	}
	if status != nethttp.StatusCreated && status != nethttp.StatusOK || json.Unmarshal(got, &v) != nil || len(v.Taps) != c.taps {
		return false, fmt.Errorf("batch %s: %d %.300s", c.id, status, got)
	}
	for i, tap := range v.Taps {
		if tap.Result != "accepted" {
			return false, fmt.Errorf("batch %s: tap %d answered %s: %.300s", c.id, i, tap.Result, got)
		}
	}
	if c.answer != "" && string(got) != c.answer {
		return false, fmt.Errorf("batch %s answered\n%s\nafter\n%s", c.id, got, c.answer)
	}
	c.answer = string(got)
	return true, nil
}

// A transit server killed with SIGKILL while an operator's gates upload batches of taps, three
// times, and started again each time, keeps every tap once: a batch answered before a kill is
// answered the same when uploaded again under its id; a batch that got no answer, uploaded again,
// is decided once; and the database holds each tap once.
func TestKilledServeKeepsEveryTapOnce(t *testing.T) {
	ctx := context.Background()
	url := pgtest.NewDatabase(t)
	city, st := fundedCity(t, url, 41, tapCrashCards, 50_000)
	s := startCrashServer(t, url)
	status, _, got, err := s.post(s.admin, "/v1/transit/operators", "", []byte(`{"id":"HZMETRO","name":"Hangzhou Metro"}`))
	var operator struct {
		APIKey string `json:"api_key"`
	}
	if err != nil || status != nethttp.StatusCreated || json.Unmarshal(got, &operator) != nil {
		t.Fatalf("register operator: %d %v %s", status, err, got)
	}

	var uploads atomic.Int64
	calls, unanswered := s.driveThroughKills(tapCrashGates, func(rng *rand.Rand) crashCall {
		// Each upload is a gate's next batch: a device and sequences of its own.
		n := int(uploads.Add(1))
		device, station := fmt.Sprintf("G-%04d", n%tapCrashGates+1), fmt.Sprintf("01%02d", n%tapCrashGates+1)
		var b bytes.Buffer
		b.WriteString(`{"taps":[`)
		at := time.Now().Add(-time.Minute).UTC().Format(time.RFC3339)
		for i := range tapCrashBatch {
			if i > 0 {
				b.WriteByte(',')
			}
			fmt.Fprintf(&b, `{"device_id":%q,"device_seq":%d,"card_token":%q,"tapped_at":%q,"station_id":%q,"direction":"in","mode":"metro"}`,
				device, n*tapCrashBatch+i, city.Cards[rng.IntN(len(city.Cards))], at, station)
		}
		b.WriteString(`]}`)
		return &tapCrashCall{s: s, apiKey: operator.APIKey, id: fmt.Sprintf("upload-%06d", n), body: b.Bytes(), taps: tapCrashBatch}
	})
	s.resend(calls)
	s.proc.kill(t)

	taps := len(calls) * tapCrashBatch
	var stored, distinct int
	if err := st.Pool().QueryRow(ctx, `SELECT count(*), count(DISTINCT (device_id, device_seq)) FROM transit_taps WHERE operator_id = 'HZMETRO'`).Scan(&stored, &distinct); err != nil {
		t.Fatal(err)
	}
	if stored != taps || distinct != taps {
		t.Errorf("the database holds %d taps (%d distinct); the gates uploaded %d", stored, distinct, taps)
	}
	t.Logf("%d uploads of %d taps, %d without an answer until uploaded again", len(calls), taps, unanswered)
}
