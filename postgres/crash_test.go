package postgres_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/joinincard/engine/internal/pgtest"
	"github.com/joinincard/engine/ledger"
	"github.com/joinincard/engine/postgres"
)

const (
	writerEnv    = "JOININ_TEST_WRITER_DB"
	writerCursor = "crash-test/0"
	// writerBatch is large enough that a kill often lands inside a batch's transaction.
	writerBatch = 2000
	writerKills = 8
)

var (
	crashSource = ledger.ID(uuid.MustParse("018f0000-0000-7000-8000-000000000001"))
	crashTarget = func(i int) ledger.ID {
		return ledger.ID(uuid.NewSHA1(uuid.NameSpaceOID, []byte(fmt.Sprintf("crash-target-%d", i))))
	}
)

// crashBatch is the batch for cursor position pos: the same every time, as a consumer re-reads
// the same Kafka offsets after a crash.
func crashBatch(pos int64) []ledger.Transfer {
	batch := make([]ledger.Transfer, writerBatch)
	for i := range batch {
		batch[i] = ledger.Transfer{
			ID:             ledger.ID(uuid.NewSHA1(uuid.NameSpaceOID, []byte(fmt.Sprintf("crash-%d-%d", pos, i)))),
			DebitAccountID: crashSource, CreditAccountID: crashTarget(i % 50), Amount: int64(1 + i%7), Code: 10,
		}
	}
	return batch
}

func crashBatchTotal() int64 {
	var sum int64
	for _, t := range crashBatch(0) {
		sum += t.Amount
	}
	return sum
}

// runWriter is the child process: it commits batches after its cursor forever, until killed.
func runWriter(url string) int {
	ctx := context.Background()
	st, err := postgres.Open(ctx, url)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	for {
		pos, err := st.Cursor(ctx, writerCursor)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		if _, err := st.CommitBatch(ctx, crashBatch(pos), &postgres.Cursor{Name: writerCursor, From: pos, To: pos + 1}); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
	}
}

// A writer killed with SIGKILL between and inside batches leaves whole batches only, and its
// cursor names exactly the batches that are in the database; restarted, it goes on from there.
func TestKilledWriterLeavesWholeBatches(t *testing.T) {
	url := pgtest.NewDatabase(t)
	ctx := context.Background()
	st, err := postgres.Open(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	specs := []postgres.AccountSpec{{Account: ledger.Account{ID: crashSource, Currency: "CNY", Kind: ledger.KindBankSettlement}, Name: "source"}}
	for i := 0; i < 50; i++ {
		specs = append(specs, postgres.AccountSpec{Account: ledger.Account{ID: crashTarget(i), Currency: "CNY", Kind: ledger.KindMerchantClearing}, Name: "target"})
	}
	if err := st.CreateAccounts(ctx, specs); err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(7, 7))
	for kill := 0; kill < writerKills; kill++ {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), writerEnv+"="+url)
		var stderr strings.Builder
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		// Let the writer commit at least once, then kill it at a random point of what follows:
		// between batches or inside one.
		before, err := st.Cursor(ctx, writerCursor)
		if err != nil {
			t.Fatal(err)
		}
		for deadline := time.Now().Add(time.Minute); ; time.Sleep(5 * time.Millisecond) {
			pos, err := st.Cursor(ctx, writerCursor)
			if err != nil {
				t.Fatal(err)
			}
			if pos > before {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("writer made no progress in a minute: %s", stderr.String())
			}
		}
		time.Sleep(time.Duration(rng.IntN(60)) * time.Millisecond)
		if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		err = cmd.Wait()
		if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() {
			t.Fatalf("writer ended by itself (%v): %s", err, stderr.String())
		}
		checkCrashLedger(t, st)
	}
	pos, err := st.Cursor(ctx, writerCursor)
	if err != nil {
		t.Fatal(err)
	}
	if pos < writerKills {
		t.Fatalf("writer committed only %d batches in %d runs", pos, writerKills)
	}
	t.Logf("%d batches of %d committed across %d kills", pos, writerBatch, writerKills)
}

// checkCrashLedger checks, in one snapshot, that the cursor names exactly the batches written.
// A batch whose COMMIT the killed writer had already sent may land after the kill: one snapshot
// sees it whole or not at all, with its cursor.
func checkCrashLedger(t *testing.T, st *postgres.Store) {
	t.Helper()
	ctx := context.Background()
	tx, err := st.Pool().BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tx.Rollback(ctx) }()
	// The source is an account without a constraint, so its balance may be kept in several
	// shards (one per writer process): its debits are the sum of each shard's newest version.
	var pos, n, debited int64
	err = tx.QueryRow(ctx, `SELECT
			COALESCE((SELECT position FROM cursors WHERE name = $1), 0),
			(SELECT count(*) FROM transfers),
			(SELECT COALESCE(sum(b.debits_posted), 0)::BIGINT FROM account_balances b WHERE b.account_id = $2
				AND b.version = (SELECT max(c.version) FROM account_balances c WHERE c.account_id = b.account_id AND c.shard = b.shard))`,
		writerCursor, [16]byte(crashSource)).Scan(&pos, &n, &debited)
	if err != nil {
		t.Fatal(err)
	}
	if n != pos*writerBatch {
		t.Fatalf("cursor at %d batches but %d transfers (%.2f batches) written", pos, n, float64(n)/writerBatch)
	}
	if debited != pos*crashBatchTotal() {
		t.Fatalf("source debited %d, want %d for %d batches", debited, pos*crashBatchTotal(), pos)
	}
	rep, err := st.Verify(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !rep.OK() {
		t.Fatalf("after a kill:\n%s", rep.String())
	}
}
