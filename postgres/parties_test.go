package postgres_test

import (
	"context"
	"testing"

	"github.com/joinincard/engine/clearing"
	"github.com/joinincard/engine/internal/pgtest"
)

// TestBanksListsRegisteredBanksWithTheirNames lists the banks in id order with their names as
// registered, Chinese included, and nothing of the other kinds of party.
func TestBanksListsRegisteredBanksWithTheirNames(t *testing.T) {
	st := pgtest.NewStore(t)
	ctx := context.Background()
	for _, p := range []struct {
		kind     clearing.PartyKind
		id, name string
	}{
		{clearing.PartyBank, "ICBC-JX", "中国工商银行嘉兴分行 ICBC Jiaxing"},
		{clearing.PartyBank, "ABC-JX", "ABC Jiaxing"},
		{clearing.PartyMerchant, "shop-1", "百货 Department Store"},
		{clearing.PartyInsuranceFund, "jiaxing", "嘉兴市医疗保障基金"},
	} {
		if _, err := st.RegisterParty(ctx, p.kind, p.id, p.name); err != nil {
			t.Fatal(err)
		}
	}
	banks, err := st.Banks(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(banks) != 2 || banks[0].ID != "ABC-JX" || banks[0].Name != "ABC Jiaxing" ||
		banks[1].ID != "ICBC-JX" || banks[1].Name != "中国工商银行嘉兴分行 ICBC Jiaxing" ||
		banks[1].Kind != clearing.PartyBank || banks[1].Account != clearing.PartyAccount(clearing.PartyBank, "ICBC-JX") {
		t.Fatalf("banks: %+v", banks)
	}
}
