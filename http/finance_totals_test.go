package http

import (
	"math"
	"strings"
	"testing"

	"github.com/joinincard/engine/ledger"
	"github.com/joinincard/engine/postgres"
)

// The trial balance shows a currency whose totals pass int64 (two kinds near the bound, each
// account's totals within it, as an admin's transfers near the bound make them) with its totals
// exact and balanced, on the page and in its CSV, where the page failed with an internal error.
func TestFinanceTrialBalanceBeyondInt64(t *testing.T) {
	e := newEnv(t)
	f := e.finance()
	near := int64(math.MaxInt64 - 1_000_000)
	f.mu.Lock()
	f.trial = []postgres.KindTotal{
		{Kind: ledger.KindBankSettlement, Currency: "CNY", Accounts: 2, Balance: ledger.Balance{DebitsPosted: near}},
		{Kind: ledger.KindSuspense, Currency: "CNY", Accounts: 2, Balance: ledger.Balance{DebitsPosted: near, CreditsPosted: near}},
		{Kind: ledger.KindMerchantClearing, Currency: "CNY", Accounts: 1, Balance: ledger.Balance{CreditsPosted: near}},
	}
	f.mu.Unlock()
	b := loginAs(t, e, "Anna")
	body := checkPage(t, b.get(t, "/finance/trial-balance"))
	// 2 × (2^63 - 1 - 1,000,000) fen = 184,467,440,737,075,516.14 CNY on each side.
	for _, want := range []string{`184,467,440,737,075,516.14`, `<span class="status-resolved">debits equal credits</span>`} {
		if !strings.Contains(body, want) {
			t.Errorf("the trial balance lacks %q", want)
		}
	}
	if w := b.get(t, "/finance/trial-balance.csv"); w.Code != 200 || !strings.Contains(w.Body.String(), "92233720368537758.07") {
		t.Errorf("csv: %d %s", w.Code, w.Body.String())
	}
}
