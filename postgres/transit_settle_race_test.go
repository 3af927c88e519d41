package postgres_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/joinincard/engine/internal/pgtest"
	"github.com/joinincard/engine/postgres"
	"github.com/joinincard/engine/transit"
)

// Two engines on one database close the same group's days: a slow one that settled Monday marks
// it after a fast one settled Tuesday. The settled-through mark stays on Tuesday, and the slow
// engine does not settle Tuesday a second time.
func TestTransitSettledThroughNeverMovesBack(t *testing.T) {
	ctx := context.Background()
	w := newTransitWorld(t, 2, 10000)
	w.clock.Set(sh("2026-03-04 05:00"))
	w.upload(t, "two days", `
		HZMETRO 0 2026-03-02 08:00 in 0101
		HZMETRO 0 2026-03-02 08:25 out 0105
		HZMETRO 1 2026-03-03 08:00 in 0101
		HZMETRO 1 2026-03-03 08:25 out 0105`)
	const group = "city/hangzhou"

	slow, fast := w.st, pgtest.Open(t, w.url)
	fast.Now = w.clock.Now
	var (
		mu     sync.Mutex
		marked []transit.Day // the days the slow engine came to mark settled
	)
	release := make(chan struct{})
	paused := make(chan struct{})
	postgres.SetBeforeSettledMark(slow, func(key string, d transit.Day) {
		if key != group {
			return
		}
		mu.Lock()
		marked = append(marked, d)
		first := len(marked) == 1
		mu.Unlock()
		if first {
			close(paused)
			<-release
		}
	})

	// The slow engine closes Monday (Hangzhou's closes on Tuesday at 09:00), charges its cards and
	// stops before marking it settled.
	slowDone := make(chan error, 1)
	go func() {
		_, err := slow.CloseTransitDays(ctx, w.ts, sh("2026-03-03 09:30"))
		slowDone <- err
	}()
	select {
	case <-paused:
	case err := <-slowDone:
		t.Fatalf("the slow engine finished without settling Monday: %v", err)
	case <-time.After(time.Minute):
		t.Fatal("the slow engine never came to mark Monday settled")
	}
	// The fast engine, a day later, settles Monday, closes and settles Tuesday.
	if _, err := fast.CloseTransitDays(ctx, w.ts, sh("2026-03-04 09:30")); err != nil {
		t.Fatal(err)
	}
	if got := settledThrough(t, w.url, group); got != monday+1 {
		t.Fatalf("after the fast engine: settled through %s, want %s", got, monday+1)
	}
	close(release)
	if err := <-slowDone; err != nil {
		t.Fatal(err)
	}
	if got := settledThrough(t, w.url, group); got != monday+1 {
		t.Errorf("after the slow engine: settled through %s, want %s", got, monday+1)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(marked) != 1 || marked[0] != monday {
		t.Errorf("the slow engine came to mark %v settled, want only %s: the mark moved back and Tuesday was settled again",
			marked, monday)
	}
}

func settledThrough(t *testing.T, u, group string) transit.Day {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, u)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var d *time.Time
	if err := conn.QueryRow(ctx, `SELECT settled_through FROM transit_groups WHERE group_key = $1`, group).Scan(&d); err != nil {
		t.Fatal(err)
	}
	if d == nil {
		t.Fatalf("%s: nothing settled", group)
	}
	return transit.DayOfTime(*d)
}
