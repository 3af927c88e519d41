package postgres_test

import (
	"context"
	"crypto/sha256"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/joinincard/engine/internal/pgtest"
	"github.com/joinincard/engine/postgres"
)

func sessionHash(i int) [sha256.Size]byte { return sha256.Sum256(fmt.Appendf(nil, "session %d", i)) }

// TestFinanceSessionsLiveInTheDatabase: a session one store records is found by another on the
// same database (another engine, or the same one restarted) until it ends, by its time or by a
// logout; an ended one is gone from the table at the next login.
func TestFinanceSessionsLiveInTheDatabase(t *testing.T) {
	ctx := context.Background()
	u := pgtest.NewDatabase(t)
	one, two := pgtest.Open(t, u), pgtest.Open(t, u)
	t0 := time.Date(2026, time.March, 3, 9, 0, 0, 0, time.UTC)
	for i, s := range []postgres.FinanceSession{
		{IDHash: sessionHash(1), Who: "李娜", Started: t0, Expires: t0.Add(8 * time.Hour)},
		{IDHash: sessionHash(2), Who: "Wang Wei", Started: t0.Add(time.Hour), Expires: t0.Add(9 * time.Hour)},
	} {
		if err := one.StartFinanceSession(ctx, s, 10); err != nil {
			t.Fatalf("session %d: %v", i, err)
		}
	}
	got, ok, err := two.FinanceSessionAt(ctx, sessionHash(1), t0.Add(8*time.Hour-time.Microsecond))
	if err != nil || !ok || got.Who != "李娜" || !got.Expires.Equal(t0.Add(8*time.Hour)) {
		t.Fatalf("session 1 through the other store: %+v %v %v", got, ok, err)
	}
	if _, ok, err := two.FinanceSessionAt(ctx, sessionHash(1), t0.Add(8*time.Hour)); err != nil || ok {
		t.Fatalf("session 1 at its end: found %v, %v", ok, err)
	}
	if _, ok, err := two.FinanceSessionAt(ctx, sessionHash(3), t0); err != nil || ok {
		t.Fatalf("a session never started: found %v, %v", ok, err)
	}
	if err := two.EndFinanceSession(ctx, sessionHash(2)); err != nil {
		t.Fatal(err)
	}
	if _, ok, err := one.FinanceSessionAt(ctx, sessionHash(2), t0.Add(2*time.Hour)); err != nil || ok {
		t.Fatalf("session 2 after its logout through the other store: found %v, %v", ok, err)
	}
	if err := two.EndFinanceSession(ctx, sessionHash(2)); err != nil {
		t.Fatalf("ending an ended session: %v", err)
	}
	// The next login clears session 1, which has ended.
	if err := two.StartFinanceSession(ctx, postgres.FinanceSession{IDHash: sessionHash(4), Who: "Zhang", Started: t0.Add(8 * time.Hour),
		Expires: t0.Add(16 * time.Hour)}, 10); err != nil {
		t.Fatal(err)
	}
	if n := countSessions(t, one); n != 1 {
		t.Fatalf("%d sessions kept, want the one open", n)
	}
	for _, bad := range []postgres.FinanceSession{
		{IDHash: sessionHash(5), Started: t0, Expires: t0.Add(time.Hour)},
		{IDHash: sessionHash(5), Who: "x", Started: t0, Expires: t0},
	} {
		if err := one.StartFinanceSession(ctx, bad, 10); err == nil {
			t.Fatalf("session %+v recorded", bad)
		}
	}
	if err := one.StartFinanceSession(ctx, postgres.FinanceSession{IDHash: sessionHash(5), Who: "x", Started: t0, Expires: t0.Add(time.Hour)}, 0); err == nil {
		t.Fatal("a session recorded with no room for any")
	}
}

// TestFinanceSessionsBoundHoldsUnderConcurrentLogins: logins at once through several stores never
// leave more sessions open than the bound, and each ends those closest to their end.
func TestFinanceSessionsBoundHoldsUnderConcurrentLogins(t *testing.T) {
	ctx := context.Background()
	u := pgtest.NewDatabase(t)
	stores := []*postgres.Store{pgtest.Open(t, u), pgtest.Open(t, u), pgtest.Open(t, u)}
	const bound, logins = 8, 240
	t0 := time.Date(2026, time.March, 3, 9, 0, 0, 0, time.UTC)
	var wg sync.WaitGroup
	errs := make(chan error, logins)
	for i := range logins {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Later logins end later: the survivors are the last bound of them.
			s := postgres.FinanceSession{IDHash: sessionHash(i), Who: "clerk", Started: t0, Expires: t0.Add(time.Hour + time.Duration(i)*time.Second)}
			errs <- stores[i%len(stores)].StartFinanceSession(ctx, s, bound)
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if n := countSessions(t, stores[0]); n != bound {
		t.Fatalf("%d sessions open after %d logins, want the bound %d", n, logins, bound)
	}
	// One more login, after every one above: it ends the one closest to its end.
	if err := stores[1].StartFinanceSession(ctx, postgres.FinanceSession{IDHash: sessionHash(logins), Who: "clerk", Started: t0,
		Expires: t0.Add(2 * time.Hour)}, bound); err != nil {
		t.Fatal(err)
	}
	if n := countSessions(t, stores[2]); n != bound {
		t.Fatalf("%d sessions open, want %d", n, bound)
	}
	if _, ok, err := stores[0].FinanceSessionAt(ctx, sessionHash(logins), t0); err != nil || !ok {
		t.Fatalf("the last login's session: found %v, %v", ok, err)
	}
}

func countSessions(t *testing.T, st *postgres.Store) int {
	t.Helper()
	var n int
	if err := st.Pool().QueryRow(context.Background(), `SELECT count(*) FROM finance_sessions`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}
