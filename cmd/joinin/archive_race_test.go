package main

import (
	"context"
	"encoding/binary"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/joinincard/engine/cards"
	"github.com/joinincard/engine/internal/pgtest"
	"github.com/joinincard/engine/ledger"
	"github.com/joinincard/engine/postgres"
)

// archiveRaceTransfers makes the month's transfers.csv take a while to write, so that runs
// started at once overlap.
const archiveRaceTransfers = 4 * ledger.MaxBatchTransfers

// `joinin archive` run several times at once into one --out, as a scheduled export and an
// operator's by hand might: the directory named --out, once there, holds a whole archive that
// passes its check; runs that lost the race say so, and nothing is left beside it.
func TestArchiveRunsAtOnceIntoOneDirectoryLeaveAWholeArchive(t *testing.T) {
	if testing.Short() {
		t.Skip("the archive race writes a month of 65,536 transfers several times; make test runs it")
	}
	ctx := context.Background()
	url := pgtest.NewDatabase(t)
	st, err := postgres.Open(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	noon := time.Date(2026, time.March, 31, 12, 0, 0, 0, cards.Shanghai)
	st.Now = func() time.Time { return noon }
	id := func(kind byte, n int) ledger.ID {
		var b ledger.ID
		b[0] = kind
		binary.BigEndian.PutUint64(b[8:], uint64(n))
		b[6] = b[6]&0x0f | 0x40 // version 4: the ids the engine derives are of version 8
		b[8] = b[8]&0x3f | 0x80
		return b
	}
	from, to := id(1, 1), id(1, 2)
	if err := st.CreateAccounts(ctx, []postgres.AccountSpec{
		{Account: ledger.Account{ID: from, Currency: "CNY", Kind: ledger.KindSuspense}, Name: "from"},
		{Account: ledger.Account{ID: to, Currency: "CNY", Kind: ledger.KindSuspense}, Name: "to"},
	}); err != nil {
		t.Fatal(err)
	}
	for start := 0; start < archiveRaceTransfers; start += ledger.MaxBatchTransfers {
		batch := make([]ledger.Transfer, 0, ledger.MaxBatchTransfers)
		for i := start; i < start+ledger.MaxBatchTransfers; i++ {
			batch = append(batch, ledger.Transfer{ID: id(2, i), DebitAccountID: from, CreditAccountID: to, Amount: 100, Code: 1})
		}
		if _, err := st.CommitBatch(ctx, batch, nil); err != nil {
			t.Fatal(err)
		}
	}
	st.Close()
	var out, errs strings.Builder
	if err := run(ctx, []string{"settle", "--database-url", url, "--log-level", "error", "--date", "2026-03-31"}, &out, &errs); err != nil {
		t.Fatalf("settle: %v\n%s", err, errs.String())
	}

	// rounds and runs: several rounds of runs started at once, so that one of them overlaps.
	const rounds, runs = 3, 3
	for round := range rounds {
		parent := t.TempDir()
		dir := filepath.Join(parent, "2026-03")
		cmds := make([]*exec.Cmd, runs)
		for i := range cmds {
			cmds[i] = joininChild(t, "archive", "--database-url", url, "--log-level", "error", "--month", "2026-03", "--out", dir, "--by", "auditor@finance")
		}
		ok := 0
		for _, c := range cmds {
			if err := c.Wait(); err == nil {
				ok++
			} else {
				t.Logf("round %d: a run failed: %v: %s", round, err, c.Stderr)
			}
		}
		if ok == 0 {
			t.Fatalf("round %d: no run of %d exported the month", round, runs)
		}
		if err := run(ctx, []string{"archive", "--check", dir}, &out, &errs); err != nil {
			t.Errorf("round %d: the archive in --out after %d runs at once (%d exported): %v", round, runs, ok, err)
		}
		left, err := os.ReadDir(parent)
		if err != nil {
			t.Fatal(err)
		}
		if len(left) != 1 {
			var names []string
			for _, e := range left {
				names = append(names, e.Name())
			}
			t.Errorf("round %d: the runs leave %v beside --out", round, names)
		}
	}
}
