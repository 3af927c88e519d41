package postgres_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/joinincard/engine/cards"
	"github.com/joinincard/engine/internal/pgtest"
	"github.com/joinincard/engine/ledger"
	"github.com/joinincard/engine/postgres"
)

// checkpointWorld is a ledger written over several days by a clock the test moves.
type checkpointWorld struct {
	st  *postgres.Store
	db  *pgx.Conn
	url string
	now time.Time
	c   chart
	// byDay holds the transfers created each day, by day index.
	byDay [][]ledger.ID
}

func newCheckpointWorld(t *testing.T) *checkpointWorld {
	t.Helper()
	u := pgtest.NewDatabase(t)
	ctx := context.Background()
	st, err := postgres.Open(ctx, u)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.Close)
	db, err := pgx.Connect(ctx, u)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close(context.Background()) })
	w := &checkpointWorld{st: st, db: db, url: u, now: time.Date(2026, 3, 1, 9, 0, 0, 0, cards.Shanghai)}
	st.Now = func() time.Time { return w.now }
	w.c = openChart(t, st)
	return w
}

// day writes a day of traffic on day i (from 0): fares, purchases, a hold posted, a hold voided
// and a hold left open with a timeout, then moves the clock to the day after.
func (w *checkpointWorld) day(t *testing.T, i int) {
	t.Helper()
	w.now = time.Date(2026, 3, 1+i, 9, 0, 0, 0, cards.Shanghai)
	var ids []ledger.ID
	for k := 0; k < 5; k++ {
		fare, buy := newID(t), newID(t)
		commit(t, w.st, nil,
			ledger.Transfer{ID: fare, DebitAccountID: w.c.card, CreditAccountID: w.c.operator, Amount: int64(200 + k), Code: 10},
			ledger.Transfer{ID: buy, DebitAccountID: w.c.card2, CreditAccountID: w.c.merchant, Amount: int64(100 + k), Code: 20})
		ids = append(ids, fare, buy)
		w.now = w.now.Add(time.Hour)
	}
	hold, post, void, held, open := newID(t), newID(t), newID(t), newID(t), newID(t)
	res := commit(t, w.st, nil,
		ledger.Transfer{ID: hold, DebitAccountID: w.c.card, CreditAccountID: w.c.merchant, Amount: 900, Code: 20, Flags: ledger.Pending},
		ledger.Transfer{ID: held, DebitAccountID: w.c.card, CreditAccountID: w.c.merchant, Amount: 400, Code: 20, Flags: ledger.Pending},
		ledger.Transfer{ID: open, DebitAccountID: w.c.card, CreditAccountID: w.c.merchant, Amount: 50, Code: 20,
			Flags: ledger.Pending, TimeoutSeconds: 30 * 24 * 3600})
	wantResults(t, res.Results, ledger.Created, ledger.Created, ledger.Created)
	w.now = w.now.Add(time.Hour)
	res = commit(t, w.st, nil,
		ledger.Transfer{ID: post, DebitAccountID: w.c.card, CreditAccountID: w.c.merchant, Amount: 700, Ref: hold, Code: 20, Flags: ledger.PostPending},
		ledger.Transfer{ID: void, DebitAccountID: w.c.card, CreditAccountID: w.c.merchant, Ref: held, Code: 20, Flags: ledger.VoidPending})
	wantResults(t, res.Results, ledger.Created, ledger.Created)
	ids = append(ids, hold, post, void, held, open)
	w.byDay = append(w.byDay, ids)
}

// tamper runs statements on history with its immutability triggers disabled, as only an owner of
// the schema could, and returns what undoes them.
func (w *checkpointWorld) tamper(t *testing.T, table, change, undo string, args ...any) func() {
	t.Helper()
	ctx := context.Background()
	run := func(sql string) {
		t.Helper()
		if _, err := w.db.Exec(ctx, `ALTER TABLE `+table+` DISABLE TRIGGER USER`); err != nil {
			t.Fatal(err)
		}
		if tag, err := w.db.Exec(ctx, sql, args...); err != nil || tag.RowsAffected() != 1 {
			t.Fatalf("%s: %v %v", sql, tag, err)
		}
		if _, err := w.db.Exec(ctx, `ALTER TABLE `+table+` ENABLE TRIGGER USER`); err != nil {
			t.Fatal(err)
		}
	}
	run(change)
	return func() { run(undo) }
}

func verifyIncremental(t *testing.T, st *postgres.Store) postgres.Report {
	t.Helper()
	rep, err := st.VerifyIncremental(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

func verifyFull(t *testing.T, st *postgres.Store) postgres.Report {
	t.Helper()
	rep, err := st.VerifyFull(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

func wantProblem(t *testing.T, what string, rep postgres.Report, substr string) {
	t.Helper()
	for _, p := range rep.Problems {
		if strings.Contains(p, substr) {
			return
		}
	}
	t.Errorf("%s: no problem mentions %q:\n%s", what, substr, rep.String())
}

func TestVerifyIncrementalCheckpointsClosedDays(t *testing.T) {
	w := newCheckpointWorld(t)
	ctx := context.Background()
	for i := 0; i < 5; i++ {
		w.day(t, i)
	}
	// 5 March, 10 minutes past midnight in Shanghai: 1 to 4 March have closed; 5 March closes
	// only after the margin that lets its last batches commit.
	w.now = time.Date(2026, 3, 6, 0, 5, 0, 0, cards.Shanghai)
	rep := verifyIncremental(t, w.st)
	if !rep.OK() || strings.Join(rep.Checkpointed, " ") != "2026-03-01 2026-03-02 2026-03-03 2026-03-04" {
		t.Fatalf("first run:\n%s", rep.String())
	}
	full := verifyFull(t, w.st)
	if !full.OK() || full.Checkpoints != 4 {
		t.Fatalf("full:\n%s", full.String())
	}
	if rep.Transfers != full.Transfers || rep.Accounts != full.Accounts {
		t.Errorf("incremental counts %d accounts %d transfers, full %d %d", rep.Accounts, rep.Transfers, full.Accounts, full.Transfers)
	}
	w.now = time.Date(2026, 3, 6, 0, 15, 0, 0, cards.Shanghai)
	rep = verifyIncremental(t, w.st)
	if !rep.OK() || strings.Join(rep.Checkpointed, " ") != "2026-03-05" || !strings.Contains(rep.Mode, "2026-03-05") {
		t.Fatalf("after the margin:\n%s", rep.String())
	}
	// The checkpoint holds the day's balances at its end, one per balance shard the day moved,
	// and the trial balance.
	var rows, accounts, shards, totals int
	if err := w.db.QueryRow(ctx, `SELECT (SELECT count(*) FROM verify_checkpoint_balances WHERE day = '2026-03-05'),
		(SELECT count(DISTINCT account_id) FROM verify_checkpoint_balances WHERE day = '2026-03-05'),
		(SELECT count(*) FROM (SELECT DISTINCT account_id, shard FROM account_balances
			WHERE ts >= '2026-03-05T00:00:00+08:00' AND ts < '2026-03-06T00:00:00+08:00') d),
		(SELECT count(*) FROM verify_checkpoint_totals WHERE day = '2026-03-05')`).Scan(&rows, &accounts, &shards, &totals); err != nil {
		t.Fatal(err)
	}
	// The bank did not move on 5 March; card, card 2, operator and merchant did, the merchant in its
	// home shard (the holds) and in the shard of the writer that credited it.
	if accounts != 4 || rows != shards || rows < 5 || totals != 1 {
		t.Errorf("5 March: %d balances of %d accounts (%d shards moved), %d totals", rows, accounts, shards, totals)
	}
	// Checkpoints are history too.
	if _, err := w.db.Exec(ctx, `DELETE FROM verify_checkpoints WHERE day = '2026-03-01'`); err == nil ||
		!strings.Contains(err.Error(), "immutable") {
		t.Errorf("deleting a checkpoint: %v", err)
	}

	// Traffic after the newest checkpoint is checked against it.
	w.day(t, 5)
	w.now = w.now.Add(time.Hour)
	rep = verifyIncremental(t, w.st)
	if !rep.OK() || len(rep.Checkpointed) != 0 {
		t.Fatalf("6 March, open:\n%s", rep.String())
	}
	full = verifyFull(t, w.st)
	if !full.OK() || rep.Transfers != full.Transfers || len(rep.Currencies) != 1 || rep.Currencies[0] != full.Currencies[0] {
		t.Fatalf("incremental %+v, full:\n%s", rep, full.String())
	}
}

func TestVerifyIncrementalFindsCorruptionAfterCheckpointAndFullBefore(t *testing.T) {
	w := newCheckpointWorld(t)
	for i := 0; i < 4; i++ {
		w.day(t, i)
	}
	w.now = time.Date(2026, 3, 4, 12, 0, 0, 0, cards.Shanghai)
	if rep := verifyIncremental(t, w.st); !rep.OK() || len(rep.Checkpointed) != 3 {
		t.Fatalf("checkpoints:\n%s", rep.String())
	}

	// After the checkpoint: the card's newest balance version credited 1 fen from nowhere.
	undo := w.tamper(t, "account_balances",
		`UPDATE account_balances SET credits_posted = credits_posted + 1
		 WHERE account_id = $1 AND version = (SELECT max(version) FROM account_balances WHERE account_id = $1)`,
		`UPDATE account_balances SET credits_posted = credits_posted - 1
		 WHERE account_id = $1 AND version = (SELECT max(version) FROM account_balances WHERE account_id = $1)`,
		w.c.card)
	wantProblem(t, "incremental, balance after the checkpoint", verifyIncremental(t, w.st), "does not recompute from the checkpoint")
	wantProblem(t, "full, balance after the checkpoint", verifyFull(t, w.st), "does not recompute")
	undo()

	// After the checkpoint: a transfer of 4 March whose amount changed.
	undo = w.tamper(t, "transfers", `UPDATE transfers SET amount = amount + 1 WHERE id = $1`,
		`UPDATE transfers SET amount = amount - 1 WHERE id = $1`, w.byDay[3][0])
	wantProblem(t, "incremental, transfer after the checkpoint", verifyIncremental(t, w.st), "does not recompute from the checkpoint")
	undo()

	// After the checkpoint: a hold that left the expiry queue.
	ctx := context.Background()
	open := w.byDay[3][len(w.byDay[3])-1]
	if _, err := w.db.Exec(ctx, `DELETE FROM open_holds WHERE transfer_id = $1`, open); err != nil {
		t.Fatal(err)
	}
	wantProblem(t, "incremental, open holds", verifyIncremental(t, w.st), "open holds queue")
	if _, err := w.db.Exec(ctx, `INSERT INTO open_holds (transfer_id, expires_at) SELECT id, expires_at FROM transfers WHERE id = $1`, open); err != nil {
		t.Fatal(err)
	}
	if rep := verifyIncremental(t, w.st); !rep.OK() {
		t.Fatalf("undone:\n%s", rep.String())
	}

	// Before the checkpoint: a fare of 2 March changed. The incremental check trusts the
	// checkpoint and does not read that day again; the full check finds the balance that no longer
	// recomputes and the checkpoints whose history changed.
	undo = w.tamper(t, "transfers", `UPDATE transfers SET amount = amount + 1 WHERE id = $1`,
		`UPDATE transfers SET amount = amount - 1 WHERE id = $1`, w.byDay[1][0])
	if rep := verifyIncremental(t, w.st); !rep.OK() {
		t.Errorf("incremental reads history before its checkpoint:\n%s", rep.String())
	}
	full := verifyFull(t, w.st)
	wantProblem(t, "full, transfer before the checkpoint", full, "does not recompute")
	wantProblem(t, "full, transfer before the checkpoint", full, "checkpoint 2026-03-02: the history it verified has changed")
	undo()

	// Before the checkpoint, a change no balance shows (a transfer's user data): only the
	// digest finds it.
	undo = w.tamper(t, "transfers", `UPDATE transfers SET user_data = id WHERE id = $1`,
		`UPDATE transfers SET user_data = NULL WHERE id = $1`, w.byDay[0][1])
	if rep, err := w.st.Verify(ctx); err != nil || !rep.OK() {
		t.Fatalf("the checks without digests see nothing: %v\n%s", err, rep.String())
	}
	full = verifyFull(t, w.st)
	wantProblem(t, "full, user data before the checkpoint", full, "checkpoint 2026-03-01: the history it verified has changed")
	if len(full.Problems) != 1 {
		t.Errorf("one changed day is reported once:\n%s", full.String())
	}
	undo()

	if rep := verifyFull(t, w.st); !rep.OK() {
		t.Fatalf("everything undone:\n%s", rep.String())
	}
}

// A day with a fault is not checkpointed, and the run says which day failed.
func TestVerifyIncrementalRefusesToCheckpointABrokenDay(t *testing.T) {
	w := newCheckpointWorld(t)
	for i := 0; i < 2; i++ {
		w.day(t, i)
	}
	undo := w.tamper(t, "transfers", `UPDATE transfers SET amount = amount + 1 WHERE id = $1`,
		`UPDATE transfers SET amount = amount - 1 WHERE id = $1`, w.byDay[1][2])
	w.now = time.Date(2026, 3, 4, 12, 0, 0, 0, cards.Shanghai)
	rep := verifyIncremental(t, w.st)
	wantProblem(t, "broken 2 March", rep, "does not recompute")
	if strings.Join(rep.Checkpointed, " ") != "2026-03-01" || !strings.Contains(rep.Mode, "2026-03-02 failed") {
		t.Errorf("checkpointed %v, %s", rep.Checkpointed, rep.Mode)
	}
	undo()
	// 3 March saw nothing: it gets no checkpoint of its own.
	if rep := verifyIncremental(t, w.st); !rep.OK() || strings.Join(rep.Checkpointed, " ") != "2026-03-02" {
		t.Fatalf("repaired:\n%s", rep.String())
	}
}

// Two verifiers at once checkpoint each day once between them, and both find the ledger sound.
func TestVerifyIncrementalConcurrentVerifiers(t *testing.T) {
	w := newCheckpointWorld(t)
	for i := 0; i < 4; i++ {
		w.day(t, i)
	}
	w.now = time.Date(2026, 3, 5, 12, 0, 0, 0, cards.Shanghai)
	reps := make([]postgres.Report, 2)
	errs := make([]error, 2)
	var wg sync.WaitGroup
	for i := range reps {
		wg.Go(func() { reps[i], errs[i] = w.st.VerifyIncremental(context.Background()) })
	}
	wg.Wait()
	var days []string
	for i, rep := range reps {
		if errs[i] != nil || !rep.OK() {
			t.Fatalf("verifier %d: %v\n%s", i, errs[i], rep.String())
		}
		days = append(days, rep.Checkpointed...)
	}
	slices.Sort(days)
	if strings.Join(days, " ") != "2026-03-01 2026-03-02 2026-03-03 2026-03-04" {
		t.Errorf("checkpointed between them: %v", days)
	}
	if rep := verifyFull(t, w.st); !rep.OK() || rep.Checkpoints != 4 {
		t.Fatalf("full:\n%s", rep.String())
	}
}

// Several writers credit the operator, the merchant and the bank over several days: two processes'
// consumers each from its own partition, and each process's other writers from leased shards, so
// that those accounts' balances are spread over several shards. The checkpoints keep each shard's
// cut; the incremental check agrees with the full one, closed days and open; a sharded row changed
// after the checkpoint is found by the incremental check, one changed before it by the full
// check's digest.
func TestVerifyIncrementalShardedByWriters(t *testing.T) {
	w := newCheckpointWorld(t)
	ctx := context.Background()
	b, err := postgres.Open(ctx, w.url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	b.Now = func() time.Time { return w.now }
	commit(t, b, nil, ledger.Transfer{ID: newID(t), DebitAccountID: w.c.bank, CreditAccountID: w.c.card2, Amount: 100000, Code: 1})

	const hours = 4
	var pos [2]int64 // each partition's consumer's cursor
	day := func(i int) {
		t.Helper()
		w.now = time.Date(2026, 3, 1+i, 9, 0, 0, 0, cards.Shanghai)
		for h := 0; h < hours; h++ {
			// Both processes' consumers at once, each from its partition.
			errs := make([]error, 2)
			var wg sync.WaitGroup
			for p, x := range []struct {
				st   *postgres.Store
				card ledger.ID
			}{{w.st, w.c.card}, {b, w.c.card2}} {
				wg.Go(func() {
					cur := &postgres.Cursor{Name: fmt.Sprintf("card-events/%d", p), From: pos[p], To: pos[p] + 1}
					res, err := x.st.CommitBatch(ctx, []ledger.Transfer{
						{ID: newID(t), DebitAccountID: x.card, CreditAccountID: w.c.operator, Amount: int64(200 + h), Code: 10},
						{ID: newID(t), DebitAccountID: x.card, CreditAccountID: w.c.merchant, Amount: int64(100 + h), Code: 20},
					}, cur)
					if err == nil && (res.Results[0] != ledger.Created || res.Results[1] != ledger.Created) {
						err = fmt.Errorf("refused: %v", res.Results)
					}
					errs[p] = err
				})
			}
			wg.Wait()
			for _, err := range errs {
				if err != nil {
					t.Fatal(err)
				}
			}
			pos[0]++
			pos[1]++
			// Each process's other writers: a leased shard.
			commit(t, b, nil, ledger.Transfer{ID: newID(t), DebitAccountID: w.c.bank, CreditAccountID: w.c.merchant, Amount: int64(1000 + h), Code: 1})
			w.now = w.now.Add(time.Hour)
		}
		// A hold on the operator placed by the card's partition's consumer and posted by another
		// writer of the same process: both in the home shard.
		hold := newID(t)
		commit(t, w.st, &postgres.Cursor{Name: "card-events/0", From: pos[0], To: pos[0] + 1},
			ledger.Transfer{ID: hold, DebitAccountID: w.c.card, CreditAccountID: w.c.operator, Amount: 500, Code: 10, Flags: ledger.Pending})
		w.now = w.now.Add(time.Hour)
		res := commit(t, w.st, nil, ledger.Transfer{ID: newID(t), Ref: hold, Amount: 300, Code: 10, Flags: ledger.PostPending})
		wantResults(t, res.Results, ledger.Created)
		pos[0]++
	}
	agree := func(what string, wantCheckpointed string) postgres.Report {
		t.Helper()
		inc := verifyIncremental(t, w.st)
		full := verifyFull(t, w.st)
		if !inc.OK() || !full.OK() || strings.Join(inc.Checkpointed, " ") != wantCheckpointed ||
			inc.Accounts != full.Accounts || inc.Transfers != full.Transfers || fmt.Sprint(inc.Currencies) != fmt.Sprint(full.Currencies) {
			t.Fatalf("%s: incremental:\n%s\nfull:\n%s", what, inc.String(), full.String())
		}
		return inc
	}

	for i := 0; i < 3; i++ {
		day(i)
	}
	var shards int
	if err := w.db.QueryRow(ctx, `SELECT count(DISTINCT shard) FROM account_balances WHERE account_id = $1`,
		[16]byte(w.c.merchant)).Scan(&shards); err != nil {
		t.Fatal(err)
	}
	if shards < 4 {
		t.Fatalf("merchant in %d shards, want its home, one per consumer and a leased one at least", shards)
	}
	w.now = time.Date(2026, 3, 3, 12, 0, 0, 0, cards.Shanghai)
	agree("1 and 2 March closed", "2026-03-01 2026-03-02")
	// The checkpoints keep one row per shard the day moved, each the shard's newest before the cut.
	var wrong int
	if err := w.db.QueryRow(ctx, `SELECT count(*) FROM verify_checkpoint_balances c
		LEFT JOIN LATERAL (SELECT max(b.version) AS version FROM account_balances b
			WHERE b.account_id = c.account_id AND b.shard = c.shard AND b.ts < (c.day + 1)::TIMESTAMP AT TIME ZONE 'Asia/Shanghai') n ON true
		WHERE c.version IS DISTINCT FROM n.version`).Scan(&wrong); err != nil {
		t.Fatal(err)
	}
	var merchantRows int
	if err := w.db.QueryRow(ctx, `SELECT count(*) FROM verify_checkpoint_balances WHERE account_id = $1 AND day = '2026-03-02'`,
		[16]byte(w.c.merchant)).Scan(&merchantRows); err != nil {
		t.Fatal(err)
	}
	if wrong != 0 || merchantRows < 3 {
		t.Fatalf("%d checkpoint rows not their shard's cut; the merchant's 2 March in %d rows", wrong, merchantRows)
	}

	// 4 March, open, is checked against the checkpoint of 3 March; then it closes too.
	day(3)
	w.now = time.Date(2026, 3, 4, 20, 0, 0, 0, cards.Shanghai)
	agree("3 March closed, 4 March open", "2026-03-03")
	w.now = time.Date(2026, 3, 5, 9, 0, 0, 0, cards.Shanghai)
	agree("4 March closed", "2026-03-04")
	day(5)

	// After the checkpoint (6 March, open): the newest row of a consumer's shard of the merchant
	// credited 1 fen.
	var shard int
	if err := w.db.QueryRow(ctx, `SELECT shard FROM account_balances WHERE account_id = $1 AND shard <> 0
		AND ts >= '2026-03-06T00:00:00+08:00' ORDER BY shard LIMIT 1`, [16]byte(w.c.merchant)).Scan(&shard); err != nil {
		t.Fatal(err)
	}
	newest := `(SELECT max(version) FROM account_balances WHERE account_id = $1 AND shard = $2)`
	undo := w.tamper(t, "account_balances",
		`UPDATE account_balances SET credits_posted = credits_posted + 1 WHERE account_id = $1 AND shard = $2 AND version = `+newest,
		`UPDATE account_balances SET credits_posted = credits_posted - 1 WHERE account_id = $1 AND shard = $2 AND version = `+newest,
		w.c.merchant, shard)
	inc := verifyIncremental(t, w.st)
	wantProblem(t, "incremental, sharded balance after the checkpoint", inc,
		"does not recompute from the checkpoint and the transfers after it: account "+w.c.merchant.String())
	wantProblem(t, "incremental, sharded balance after the checkpoint", inc, "CNY does not balance")
	wantProblem(t, "full, sharded balance after the checkpoint", verifyFull(t, w.st), "does not recompute from transfers: account "+w.c.merchant.String())
	undo()

	// After the checkpoint: a version of a sharded row missing from its shard's chain.
	undo = w.tamper(t, "account_balances",
		`UPDATE account_balances SET version = version + 100 WHERE account_id = $1 AND shard = $2 AND version = `+newest,
		`UPDATE account_balances SET version = version - 100 WHERE account_id = $1 AND shard = $2 AND version = `+newest,
		w.c.merchant, shard)
	wantProblem(t, "incremental, sharded history with a gap", verifyIncremental(t, w.st),
		fmt.Sprintf("balance history has gaps: account %s shard %d", w.c.merchant, shard))
	undo()
	w.now = time.Date(2026, 3, 6, 20, 0, 0, 0, cards.Shanghai)
	agree("undone", "")

	// Before the checkpoint: a sharded row of 2 March changed where no balance shows it (a
	// transfer id of its statement line swapped for another's). Only the digest finds it.
	var version int
	var line, other [16]byte
	if err := w.db.QueryRow(ctx, `SELECT version, transfer_ids[1] FROM account_balances WHERE account_id = $1 AND shard = $2
		AND ts >= '2026-03-02T00:00:00+08:00' AND ts < '2026-03-03T00:00:00+08:00' ORDER BY version LIMIT 1`,
		[16]byte(w.c.merchant), shard).Scan(&version, &line); err != nil {
		t.Fatal(err)
	}
	other = [16]byte(newID(t))
	undo = w.tamper(t, "account_balances",
		`UPDATE account_balances SET transfer_ids = array_replace(transfer_ids, $3, $4) WHERE account_id = $1 AND shard = $2 AND version = $5`,
		`UPDATE account_balances SET transfer_ids = array_replace(transfer_ids, $4, $3) WHERE account_id = $1 AND shard = $2 AND version = $5`,
		w.c.merchant, shard, line, other, version)
	if rep := verifyIncremental(t, w.st); !rep.OK() {
		t.Errorf("incremental reads history before its checkpoint:\n%s", rep.String())
	}
	wantProblem(t, "full, sharded row before the checkpoint", verifyFull(t, w.st),
		"checkpoint 2026-03-02: the history it verified has changed")
	undo()
	agree("everything undone", "")
}
