package postgres_test

import (
	"strings"
	"testing"

	"github.com/joinincard/engine/clearing"
	"github.com/joinincard/engine/events"
)

// A purchase cleared without an authorization names its own category; at a merchant registered
// in a category the card does not pay (a casino), a record calling it a grocer is refused and the
// card pays nothing. At a merchant registered in a category the card pays, it is applied.
func TestOfflinePurchaseAtAMerchantRegisteredInARefusedCategory(t *testing.T) {
	s := newShop(t, 1, fen1000)
	offline := func(merchant string) events.Event {
		return s.event(0, &events.PurchaseCleared{MerchantID: merchant, Amount: events.Money{Minor: 10000, Currency: "CNY"}, MCC: "5411"})
	}
	d := s.ingestDecision(offline("casino-1"), offline("grocer-1"))
	if len(d.Processed) != 2 || d.Processed[0].Status != clearing.Rejected || d.Processed[1].Status != clearing.Applied {
		t.Fatalf("decisions %+v", d.Processed)
	}
	if !strings.Contains(d.Processed[0].Reason, "registered in category 7995") {
		t.Fatalf("reason %q", d.Processed[0].Reason)
	}
	if av, posted := s.funds(0); av != fen1000-10000 || posted != fen1000-10000 {
		t.Fatalf("card 0: available %s posted %s, want only the grocer's 100.00 paid", cny(av), cny(posted))
	}
}
