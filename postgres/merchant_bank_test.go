package postgres_test

import (
	"context"
	"errors"
	"testing"

	"github.com/joinincard/engine/clearing"
	"github.com/joinincard/engine/internal/pgtest"
	"github.com/joinincard/engine/postgres"
	"github.com/joinincard/engine/purchases"
)

// A merchant registered over a party that a bank settles already keeps that bank: registration
// naming another acquiring bank is refused and changes nothing, as a party's registration naming
// another settlement bank is; its bank changes only by a deliberate change. The bank a merchant's
// registration sets first is kept in the history of its banks, as every other.
func TestMerchantRegistrationKeepsThePartysBank(t *testing.T) {
	ctx := context.Background()
	st := pgtest.NewStore(t)
	for _, b := range []string{"ACQ-A", "ACQ-B"} {
		if _, err := st.RegisterParty(ctx, clearing.PartyBank, b, "bank "+b); err != nil {
			t.Fatal(err)
		}
	}
	p, err := postgres.NewPurchases(st)
	if err != nil {
		t.Fatal(err)
	}
	bankOf := func(id string) (bank string, changes int) {
		t.Helper()
		account := [16]byte(clearing.PartyAccount(clearing.PartyMerchant, id))
		if err := st.Pool().QueryRow(ctx, `SELECT coalesce((SELECT bank_id FROM party_banks WHERE account_id = $1), ''),
				(SELECT count(*) FROM party_bank_changes WHERE account_id = $1)`, account).Scan(&bank, &changes); err != nil {
			t.Fatal(err)
		}
		return bank, changes
	}
	merchant := func(id, bank string) purchases.Merchant {
		return purchases.Merchant{ID: id, Name: "Shop " + id, MCC: "5411", City: "jiaxing", AcquiringBank: bank, FeePlan: "domestic-standard"}
	}

	// A party settled by ACQ-A, registered as a merchant of ACQ-B: refused, nothing changed.
	if _, err := st.RegisterParty(ctx, clearing.PartyMerchant, "shop-1", "Shop shop-1"); err != nil {
		t.Fatal(err)
	}
	if err := st.RegisterPartyBank(ctx, clearing.PartyMerchant, "shop-1", "ACQ-A"); err != nil {
		t.Fatal(err)
	}
	var differs *postgres.PartyBankConflictError
	if err := p.RegisterMerchant(ctx, merchant("shop-1", "ACQ-B"), [32]byte{1}); !errors.As(err, &differs) || differs.Current != "ACQ-A" {
		t.Errorf("a merchant of ACQ-B over a party of ACQ-A: %v, want the party's bank named", err)
	}
	if bank, changes := bankOf("shop-1"); bank != "ACQ-A" || changes != 1 {
		t.Errorf("after the refusal: settled by %q with %d changes, want ACQ-A as it was, with 1", bank, changes)
	}
	var merchants int
	if err := st.Pool().QueryRow(ctx, `SELECT count(*) FROM merchants WHERE merchant_id = 'shop-1'`).Scan(&merchants); err != nil || merchants != 0 {
		t.Errorf("the refused merchant is registered: %d, %v", merchants, err)
	}
	// Of the bank that settles it: registered, the bank as it was.
	if err := p.RegisterMerchant(ctx, merchant("shop-1", "ACQ-A"), [32]byte{1}); err != nil {
		t.Fatal(err)
	}
	if bank, changes := bankOf("shop-1"); bank != "ACQ-A" || changes != 1 {
		t.Errorf("a merchant of its party's bank: settled by %q with %d changes, want ACQ-A with 1", bank, changes)
	}
	// A new merchant: its acquiring bank set, and kept in the history.
	if err := p.RegisterMerchant(ctx, merchant("shop-2", "ACQ-B"), [32]byte{2}); err != nil {
		t.Fatal(err)
	}
	if bank, changes := bankOf("shop-2"); bank != "ACQ-B" || changes != 1 {
		t.Errorf("a new merchant of ACQ-B: settled by %q with %d changes, want ACQ-B with 1", bank, changes)
	}
}
