package postgres_test

import (
	"context"
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
	w := &checkpointWorld{st: st, db: db, now: time.Date(2026, 3, 1, 9, 0, 0, 0, cards.Shanghai)}
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
	// The checkpoint holds the day's balances at its end and the trial balance.
	var rows, totals int
	if err := w.db.QueryRow(ctx, `SELECT (SELECT count(*) FROM verify_checkpoint_balances WHERE day = '2026-03-05'),
		(SELECT count(*) FROM verify_checkpoint_totals WHERE day = '2026-03-05')`).Scan(&rows, &totals); err != nil {
		t.Fatal(err)
	}
	if rows != 4 || totals != 1 { // the bank did not move on 5 March; card, card 2, operator and merchant did
		t.Errorf("5 March: %d balances, %d totals", rows, totals)
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
