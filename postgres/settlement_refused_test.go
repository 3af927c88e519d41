package postgres_test

import (
	"context"
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/joinincard/engine/cards"
	"github.com/joinincard/engine/clearing"
	"github.com/joinincard/engine/ledger"
	"github.com/joinincard/engine/postgres"
	"github.com/joinincard/engine/settlement"
)

// A cycle whose settlement posting the ledger refuses (two merchants of one bank credited with
// more between them than one balance shard of the bank's position may hold, which amounts from
// outside are bounded to make unreachable, but which the store itself can still write) stops its close with a named refusal: the bank, the
// posting and the ledger's result, the cycle still closing.
func TestCloseStopsAtARefusedPosting(t *testing.T) {
	ctx := context.Background()
	s := newShop(t, 2, fen1000)
	half := int64(math.MaxInt64/32/2 + 1) // half of a balance shard's ceiling, and a fen
	var batch []ledger.Transfer
	for _, m := range []string{"pharmacy-1", "grocer-1"} { // both acquired by ICBC-JX
		suspense := ledger.ID(uuid.Must(uuid.NewV7())) // one each: each gives half of a shard
		if err := s.st.CreateAccounts(ctx, []postgres.AccountSpec{{Account: ledger.Account{ID: suspense, Currency: "CNY", Kind: ledger.KindSuspense},
			Name: "adjustments"}}); err != nil {
			t.Fatal(err)
		}
		batch = append(batch, ledger.Transfer{ID: ledger.ID(uuid.Must(uuid.NewV7())), DebitAccountID: suspense,
			CreditAccountID: clearing.PartyAccount(clearing.PartyMerchant, m), Amount: half, Currency: "CNY", Code: 1})
	}
	res, err := s.st.CommitBatch(ctx, batch, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range res.Results {
		if r != ledger.Created {
			t.Fatalf("transfer %d: %s", i, r)
		}
	}
	day := settlement.Date{Year: 2026, Month: 3, Day: 3}
	s.clock.Store(time.Date(2026, 3, 3, 23, 30, 0, 0, cards.Shanghai).UnixMicro())
	set := newSettlement(t, s.st)
	_, err = set.Close(ctx, day)
	var refused *postgres.PostingRefusedError
	if !errors.As(err, &refused) {
		t.Fatalf("close: %v, want a refused posting", err)
	}
	if refused.Bank != "ICBC-JX" || refused.Cycle != day || !strings.HasPrefix(refused.Result.String(), "overflows_") {
		t.Fatalf("close: %+v", refused)
	}
	if c, err := set.Cycle(ctx, day); err != nil || c.Status != postgres.CycleClosing {
		t.Fatalf("cycle %+v %v, want closing", c, err)
	}
}
