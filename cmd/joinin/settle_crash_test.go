package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/joinincard/engine/cards"
	"github.com/joinincard/engine/clearing"
	"github.com/joinincard/engine/events"
	"github.com/joinincard/engine/internal/pgtest"
	"github.com/joinincard/engine/ledger"
	"github.com/joinincard/engine/loadtest"
	"github.com/joinincard/engine/postgres"
	"github.com/joinincard/engine/settlement"
)

// asJoininEnv makes the test binary run as joinin, its arguments joinin's, instead of the tests.
const asJoininEnv = "JOININ_TEST_AS_JOININ"

const (
	// crashCards is enough cardholders that a cycle's postings take more than one ledger batch, so
	// that kills land while postings are being written as well as before and after.
	crashCards     = 24000
	crashPurchases = 40000
	crashMerchants = 50
)

// populateCycle fills the database at url with a day of purchases on day, stamped at noon.
func populateCycle(t *testing.T, url string, day settlement.Date) {
	t.Helper()
	ctx := context.Background()
	st, err := postgres.Open(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	noon := time.Date(day.Year, day.Month, day.Day, 12, 0, 0, 0, cards.Shanghai)
	st.Now = func() time.Time { return noon }
	city := loadtest.NewCity(77, crashCards, crashMerchants, noon)
	for _, p := range city.Parties() {
		if _, err := st.RegisterParty(ctx, p.Kind, p.ID, p.Name); err != nil {
			t.Fatal(err)
		}
	}
	for _, b := range city.SettlementBanks() {
		if err := st.SetPartyBank(ctx, b.Kind, b.ID, b.Bank); err != nil {
			t.Fatal(err)
		}
	}
	evs := append(city.Registrations(), city.Funding(10000, 50000)...)
	evs = append(evs, city.Purchases(crashPurchases, 5000)...)
	for from := 0; from < len(evs); from += 4096 {
		part := evs[from:min(from+4096, len(evs))]
		msgs := make([]clearing.Message, len(part))
		for i, e := range part {
			raw := loadtest.Encode(e)
			dec, err := events.Decode(raw)
			msgs[i] = clearing.Message{Source: "setup/0", Offset: int64(from + i), Raw: raw, Event: dec, DecodeErr: err}
		}
		if _, err := st.Ingest(ctx, nil, msgs); err != nil {
			t.Fatal(err)
		}
	}
}

// joininChild starts this test binary as `joinin args...`.
func joininChild(t *testing.T, args ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), asJoininEnv+"=1")
	var errs bytes.Buffer
	cmd.Stderr = &errs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return cmd
}

// `joinin settle` killed with SIGKILL at random points of a cycle's close, and run again until it
// finishes, leaves what one uninterrupted run leaves on a copy of the same database: the same
// items, one posting each and no more, the same files (their creation time aside, which is the
// moment each database's close began).
func TestSettleKilledMidCycleCompletesTheSame(t *testing.T) {
	if testing.Short() {
		t.Skip("the settlement crash test takes half a minute; make test runs it")
	}
	ctx := context.Background()
	day := settlement.AddDays(settlement.DateOf(time.Now().In(cards.Shanghai)), -2)
	crashed := pgtest.NewDatabase(t)
	populateCycle(t, crashed, day)
	reference := pgtest.CopyDatabase(t, crashed)
	// An uninterrupted `joinin settle` on the copy, for comparison.
	began := time.Now()
	if err := joininChild(t, "settle", "--database-url", reference, "--log-level", "error", "--date", day.String()).Wait(); err != nil {
		t.Fatalf("settle of the reference: %v", err)
	}
	t.Logf("an uninterrupted settle takes %s", time.Since(began).Round(time.Millisecond))

	args := []string{"settle", "--database-url", crashed, "--log-level", "error", "--date", day.String()}
	st := func() *postgres.Store {
		st, err := postgres.Open(ctx, crashed)
		if err != nil {
			t.Fatal(err)
		}
		return st
	}()
	// state is how far the close has come: whether the cycle's end is fixed, its items and
	// postings all written, how many postings and files are.
	type state struct {
		fixed, closed, items, postings bool
		posted, files                  int64
	}
	read := func() state {
		var (
			s      state
			status string
		)
		err := st.Pool().QueryRow(ctx, `SELECT status, items_written, postings_written,
				(SELECT count(*) FROM transfers WHERE code = $2),
				(SELECT count(*) FROM settlement_files WHERE cycle_date = $1)
			FROM settlement_cycles WHERE cycle_date = $1`, settlement.DateTime(day), int32(clearing.CodeSettlement)).
			Scan(&status, &s.items, &s.postings, &s.posted, &s.files)
		if err != nil {
			return s
		}
		s.fixed, s.closed = true, status == "closed"
		return s
	}
	// Each run is killed the moment the close reaches the next point, and the next run goes on
	// from there: its end fixed, its items written, its first batch of postings written, its first
	// file numbered.
	targets := []struct {
		name string
		at   func(state) bool
	}{
		{"end fixed", func(s state) bool { return s.fixed }},
		{"items written", func(s state) bool { return s.items }},
		{"postings part written", func(s state) bool { return s.posted > 0 }},
		{"a file numbered", func(s state) bool { return s.files > 0 }},
	}
	var hits []string
	for _, target := range targets {
		child := joininChild(t, args...)
		exited := make(chan error, 1)
		go func() { exited <- child.Wait() }()
		outcome := "finished first"
	poll:
		for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); {
			select {
			case <-exited:
				break poll
			default:
			}
			if s := read(); target.at(s) && !s.closed {
				if err := child.Process.Signal(syscall.SIGKILL); err != nil {
					t.Fatal(err)
				}
				<-exited
				s = read()
				outcome = fmt.Sprintf("killed (items %v, %d posted, postings %v, %d files)", s.items, s.posted, s.postings, s.files)
				break poll
			}
			time.Sleep(time.Millisecond)
		}
		hits = append(hits, target.name+": "+outcome)
		if read().closed {
			break
		}
	}
	st.Close()
	t.Logf("%s", strings.Join(hits, "; "))
	if !strings.Contains(strings.Join(hits, ";"), "killed") {
		t.Fatalf("no run was killed mid-cycle: %v", hits)
	}
	var out, errs strings.Builder
	if err := run(ctx, args, &out, &errs); err != nil {
		t.Fatalf("settle after the kills: %v\n%s", err, errs.String())
	}

	open := func(url string) *postgres.Store {
		st, err := postgres.Open(ctx, url)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(st.Close)
		return st
	}
	a, b := open(crashed), open(reference)
	summary := func(st *postgres.Store) string {
		var items, postings int64
		var sum int64
		if err := st.Pool().QueryRow(ctx, `SELECT count(*), coalesce(sum(amount), 0)::BIGINT FROM settlement_items WHERE cycle_date = $1`,
			settlement.DateTime(day)).Scan(&items, &sum); err != nil {
			t.Fatal(err)
		}
		if err := st.Pool().QueryRow(ctx, `SELECT count(*) FROM transfers t JOIN settlement_items i ON i.item_id = t.id
			WHERE i.cycle_date = $1`, settlement.DateTime(day)).Scan(&postings); err != nil {
			t.Fatal(err)
		}
		var all int64
		if err := st.Pool().QueryRow(ctx, `SELECT count(*) FROM transfers WHERE code = $1`, int32(clearing.CodeSettlement)).Scan(&all); err != nil {
			t.Fatal(err)
		}
		return fmt.Sprintf("%d items summing to %d, %d posted, %d settlement transfers", items, sum, postings, all)
	}
	if sa, sb := summary(a), summary(b); sa != sb {
		t.Fatalf("after the kills: %s\nuninterrupted: %s", sa, sb)
	} else {
		t.Log(sa)
	}
	var items int64
	if err := a.Pool().QueryRow(ctx, `SELECT count(*) FROM settlement_items`).Scan(&items); err != nil {
		t.Fatal(err)
	}
	if items <= ledger.MaxBatchTransfers {
		t.Fatalf("only %d items: the postings fit one batch, and no kill can land between two", items)
	}
	files := func(url string) map[string][]byte {
		dir := t.TempDir()
		if err := run(ctx, []string{"settle", "--database-url", url, "--log-level", "error", "--date", day.String(), "--out", dir},
			&out, &errs); err != nil {
			t.Fatal(err)
		}
		st := open(url)
		var closing time.Time
		if err := st.Pool().QueryRow(ctx, `SELECT closing_at FROM settlement_cycles WHERE cycle_date = $1`, settlement.DateTime(day)).Scan(&closing); err != nil {
			t.Fatal(err)
		}
		entries, err := os.ReadDir(filepath.Join(dir, day.String()))
		if err != nil {
			t.Fatal(err)
		}
		out := map[string][]byte{}
		stamp := []byte(closing.UTC().Format(time.RFC3339Nano))
		for _, e := range entries {
			raw, err := os.ReadFile(filepath.Join(dir, day.String(), e.Name()))
			if err != nil {
				t.Fatal(err)
			}
			if e.Name() == "manifest.txt" {
				continue // its checksums cover the creation time
			}
			out[e.Name()] = bytes.ReplaceAll(raw, stamp, []byte("CREATED"))
		}
		return out
	}
	fa, fb := files(crashed), files(reference)
	if len(fa) != 6 || len(fa) != len(fb) {
		t.Fatalf("%d files after the kills, %d uninterrupted", len(fa), len(fb))
	}
	for name, want := range fb {
		if got := fa[name]; !bytes.Equal(got, want) {
			t.Errorf("%s differs from the uninterrupted run's", name)
		}
	}
}
