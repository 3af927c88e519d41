package bankfile_test

import (
	"testing"

	"github.com/joinincard/engine/settlement"
	"github.com/joinincard/engine/settlement/bankfile"
)

// TestEverySettlementItemKindHasAFileKind: the items settlement makes can all be written.
func TestEverySettlementItemKindHasAFileKind(t *testing.T) {
	for _, k := range []settlement.ItemKind{
		settlement.KindCardholderSpend, settlement.KindMerchantEarnings, settlement.KindOperatorEarnings,
		settlement.KindMedicalFundShare, settlement.KindReoffered,
	} {
		fk, err := bankfile.ParseKind(string(k))
		if err != nil || fk.String() != string(k) {
			t.Errorf("ParseKind(%s) = %v, %v", k, fk, err)
		}
	}
}

func TestKindsReadAsTheyAreWritten(t *testing.T) {
	kinds := bankfile.Kinds()
	if len(kinds) != 7 {
		t.Errorf("Kinds() = %v, want the 7 kinds of the documentation", kinds)
	}
	for _, k := range kinds {
		if got, err := bankfile.ParseKind(k.String()); err != nil || got != k {
			t.Errorf("ParseKind(%s) = %v, %v", k, got, err)
		}
	}
	for _, s := range []string{"", "unknown", "Cardholder_spend", "kind(99)"} {
		if _, err := bankfile.ParseKind(s); err == nil {
			t.Errorf("ParseKind(%q) accepted", s)
		}
	}
}
