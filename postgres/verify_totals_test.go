package postgres_test

import (
	"context"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/joinincard/engine/cards"
	"github.com/joinincard/engine/ledger"
	"github.com/joinincard/engine/postgres"
)

// A currency's totals over every account pass int64 once two accounts' come near its bound (an
// admin's transfers near 92,233,720,368,547,758.07 CNY, each one the ledger takes): verification,
// full and incremental with checkpoints of those days, still passes and prints the totals, where
// it failed reading them.
func TestVerifyPassesWithTotalsBeyondInt64(t *testing.T) {
	w := newCheckpointWorld(t)
	ctx := context.Background()
	// Two funding accounts each send near the bound to a suspense account of its own, on two
	// days: every account's totals fit, their sums do not. Each has a constraint (one it always
	// meets), which keeps its balance whole in its home shard, where it may reach int64: an
	// account kept in shards is capped at a 32nd of it a shard.
	var accounts []ledger.ID
	var specs []postgres.AccountSpec
	for i := range 4 {
		id := newID(t)
		accounts = append(accounts, id)
		kind, flags := ledger.KindBankSettlement, ledger.CreditsMustNotExceedDebits
		if i%2 == 1 {
			kind, flags = ledger.KindSuspense, ledger.DebitsMustNotExceedCredits
		}
		specs = append(specs, postgres.AccountSpec{Account: ledger.Account{ID: id, Currency: "CNY", Kind: kind, Flags: flags}, Name: "near the bound"})
	}
	if err := w.st.CreateAccounts(ctx, specs); err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		w.now = time.Date(2026, 3, 1+i, 9, 0, 0, 0, cards.Shanghai)
		res := commit(t, w.st, nil, ledger.Transfer{ID: newID(t), DebitAccountID: accounts[2*i], CreditAccountID: accounts[2*i+1],
			Amount: math.MaxInt64 - 1_000_000, Code: 1})
		wantResults(t, res.Results, ledger.Created)
	}
	w.now = time.Date(2026, 3, 2, 12, 0, 0, 0, cards.Shanghai)
	inc, err := w.st.VerifyIncremental(ctx) // checkpoints 1 March
	if err != nil || !inc.OK() || len(inc.Checkpointed) == 0 {
		t.Fatalf("incremental: %v %s", err, inc.String())
	}
	w.now = time.Date(2026, 3, 4, 12, 0, 0, 0, cards.Shanghai)
	inc, err = w.st.VerifyIncremental(ctx) // on the checkpoint, totals past 2^63
	if err != nil || !inc.OK() {
		t.Fatalf("incremental after the checkpoint: %v %s", err, inc.String())
	}
	// The trial balance by kind: the funding accounts' debits pass int64 together.
	kinds, err := w.st.TrialBalance(ctx)
	if err != nil {
		t.Fatalf("trial balance: %v", err)
	}
	for _, k := range kinds {
		if k.Kind == ledger.KindBankSettlement && postgres.FormatTotal(k.DebitsPosted, k.Currency) != "184,467,440,737,076,516.14" {
			t.Errorf("bank settlement accounts' debits %s", postgres.FormatTotal(k.DebitsPosted, k.Currency))
		}
	}
	for _, verify := range []func(context.Context) (postgres.Report, error){w.st.Verify, w.st.VerifyFull} {
		rep, err := verify(ctx)
		if err != nil || !rep.OK() {
			t.Fatalf("verify: %v %s", err, rep.String())
		}
		// 2 × 92,233,720,368,537,758.07, and the chart's 1,000.00: 2^64 less 1,000,000 fen and some.
		if !strings.Contains(rep.String(), "CNY posted: debits 184,467,440,737,076,516.14 credits 184,467,440,737,076,516.14") {
			t.Errorf("report:\n%s", rep.String())
		}
	}
}
