package postgres_test

import (
	"context"
	"crypto/sha256"
	"errors"
	"testing"
	"time"

	"github.com/joinincard/engine/cards"
	"github.com/joinincard/engine/clearing"
	"github.com/joinincard/engine/medical"
	"github.com/joinincard/engine/postgres"
	"github.com/joinincard/engine/purchases"
)

// A merchant registered with its category and city is designated only as what it is: a Hangzhou
// merchant is not a Shanghai institution (the fund would pay it under Shanghai's catalogue and the
// funds' reports would name the wrong treating city), a grocer is no pharmacy, and a pharmacy no
// hospital. A refusal designates nothing and issues no key.
func TestMedicalInstitutionMatchesMerchantProfile(t *testing.T) {
	w := newMedWorld(t, time.Date(2026, 3, 2, 10, 0, 0, 0, cards.Shanghai))
	ctx := context.Background()
	if _, err := w.st.RegisterParty(ctx, clearing.PartyBank, "ACQ-HZ", "Acquirer Hangzhou"); err != nil {
		t.Fatal(err)
	}
	p, err := postgres.NewPurchases(w.st)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range []purchases.Merchant{
		{ID: "hz-hospital", Name: "Hangzhou hospital", MCC: "8062", City: "hangzhou", AcquiringBank: "ACQ-HZ", FeePlan: "domestic-standard"},
		{ID: "hz-grocer", Name: "Hangzhou grocer", MCC: "5411", City: "hangzhou", AcquiringBank: "ACQ-HZ", FeePlan: "domestic-standard"},
		// Recorded under its Chinese name, as data recorded before keeps it.
		{ID: "hz-pharmacy", Name: "Hangzhou pharmacy", MCC: "5912", City: "杭州", AcquiringBank: "ACQ-HZ", FeePlan: "domestic-standard"},
	} {
		if err := p.RegisterMerchant(ctx, m, sha256.Sum256([]byte("merchant-"+m.ID))); err != nil {
			t.Fatal(err)
		}
	}

	refused := []struct {
		in     medical.Institution
		reason medical.Reason
	}{
		{medical.Institution{ID: "hz-hospital", Kind: medical.Hospital, Tier: 3, City: "shanghai"}, medical.ReasonCityMismatch},
		{medical.Institution{ID: "hz-pharmacy", Kind: medical.PharmacyOutlet, Tier: 1, City: "jiaxing"}, medical.ReasonCityMismatch},
		{medical.Institution{ID: "hz-grocer", Kind: medical.PharmacyOutlet, Tier: 1, City: "hangzhou"}, medical.ReasonMerchantCategory},
		{medical.Institution{ID: "hz-pharmacy", Kind: medical.Hospital, Tier: 2, City: "hangzhou"}, medical.ReasonMerchantCategory},
		{medical.Institution{ID: "hz-hospital", Kind: medical.PharmacyOutlet, Tier: 1, City: "hangzhou"}, medical.ReasonMerchantCategory},
	}
	for _, c := range refused {
		key := sha256.Sum256([]byte("refused-" + c.in.ID + string(c.in.Kind) + c.in.City))
		_, created, err := w.med.RegisterInstitution(ctx, c.in, key)
		if created {
			t.Errorf("%s as a %s in %s: designated", c.in.ID, c.in.Kind, c.in.City)
		}
		wantRefusal(t, err, c.reason)
		if _, err := w.med.InstitutionByKey(ctx, key); !errors.Is(err, postgres.ErrNotFound) {
			t.Errorf("%s as a %s in %s: its key works after the refusal: %v", c.in.ID, c.in.Kind, c.in.City, err)
		}
	}

	// As what they are, by any name of their city, they are designated; a merchant known only as
	// a party (no category or city registered) is designated as before.
	for _, in := range []medical.Institution{
		{ID: "hz-hospital", Kind: medical.Hospital, Tier: 3, City: "hangzhou"},
		{ID: "hz-pharmacy", Kind: medical.PharmacyOutlet, Tier: 1, City: "hangzhou"},
	} {
		if _, created, err := w.med.RegisterInstitution(ctx, in, sha256.Sum256([]byte("ok-"+in.ID))); err != nil || !created {
			t.Errorf("%s as a %s in %s: created %v, %v", in.ID, in.Kind, in.City, created, err)
		}
	}
	if w.hospital.City != "jiaxing" || w.hospital.Kind != medical.Hospital {
		t.Errorf("the party-only hospital: %+v", w.hospital)
	}
}

// The other way round: a merchant designated while it was known only as a party is then
// registered with its category and city; a profile that contradicts the designation is refused
// whole, nothing of it kept.
func TestMerchantProfileMatchesItsDesignation(t *testing.T) {
	w := newMedWorld(t, time.Date(2026, 3, 2, 10, 0, 0, 0, cards.Shanghai))
	ctx := context.Background()
	if _, err := w.st.RegisterParty(ctx, clearing.PartyBank, "ACQ-JX", "Acquirer Jiaxing"); err != nil {
		t.Fatal(err)
	}
	if _, err := w.st.RegisterParty(ctx, clearing.PartyMerchant, "jx-clinic", "Jiaxing clinic"); err != nil {
		t.Fatal(err)
	}
	w.register(t, medical.Institution{ID: "jx-clinic", Kind: medical.Hospital, Tier: 2, City: "jiaxing"}, "clinic-key")
	p, err := postgres.NewPurchases(w.st)
	if err != nil {
		t.Fatal(err)
	}
	profile := purchases.Merchant{ID: "jx-clinic", Name: "Jiaxing clinic", AcquiringBank: "ACQ-JX", FeePlan: "domestic-standard"}
	for _, c := range []struct {
		mcc, city string
		reason    medical.Reason
	}{
		{"8011", "hangzhou", medical.ReasonCityMismatch},
		{"5411", "jiaxing", medical.ReasonMerchantCategory},
		{"5912", "嘉兴", medical.ReasonMerchantCategory},
	} {
		m := profile
		m.MCC, m.City = c.mcc, c.city
		err := p.RegisterMerchant(ctx, m, sha256.Sum256([]byte("refused-"+c.mcc+c.city)))
		wantRefusal(t, err, c.reason)
		if _, err := p.MerchantByKey(ctx, sha256.Sum256([]byte("refused-"+c.mcc+c.city))); err == nil {
			t.Errorf("MCC %s in %s: the refused profile's key works", c.mcc, c.city)
		}
	}
	m := profile
	m.MCC, m.City = "8011", "嘉兴"
	if err := p.RegisterMerchant(ctx, m, sha256.Sum256([]byte("clinic-merchant"))); err != nil {
		t.Fatalf("the profile of what the clinic is: %v", err)
	}
}
