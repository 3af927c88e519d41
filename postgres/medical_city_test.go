package postgres_test

import (
	"context"
	"crypto/sha256"
	"testing"
	"time"

	"github.com/joinincard/engine/cards"
	"github.com/joinincard/engine/clearing"
	"github.com/joinincard/engine/events"
	"github.com/joinincard/engine/medical"
)

// A treatment city the city list does not know is refused (unknown_city) wherever one enters
// medical: an institution's city, a cardholder's registration of a treatment city, and a bill
// at an institution stored with one before the engine checked. Its names could not be told
// apart from another city's, nor one spelling of it from another: a visit at home would settle
// as one elsewhere, and a registration would never cover the visit it was made for. Even a
// catalogue uploaded under the name does not make it known. Nothing is applied.
func TestMedicalUnknownTreatmentCityIsRefused(t *testing.T) {
	ctx := context.Background()
	day := time.Date(2026, 3, 2, 10, 0, 0, 0, cards.Shanghai)
	w := newMedWorld(t, day)
	atlantis, err := medical.ParseCatalogue([]byte(`{"city": "Atlantis", "name": "one item", "currency": "CNY", "items": [
		{"code": "A", "kind": "drug", "name_zh": "甲", "name_en": "class A", "class": "A"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	known := classCatalogues(t)()
	cs, err := medical.NewCatalogues(append(known.All(), atlantis)...)
	if err != nil {
		t.Fatal(err)
	}
	w.med = w.med.WithCatalogues(func() *medical.Catalogues { return cs })
	card := w.card(t, 0)
	w.fund(t, 0, 1_000_00)
	w.contribute(t, 0, 100_00)
	before := w.snapshot(t, 0, card.MedicalAccount, card.FundsAccount)

	if _, err := w.st.RegisterParty(ctx, clearing.PartyMerchant, "atl-clinic", "Atlantis Clinic"); err != nil {
		t.Fatal(err)
	}
	clinic := medical.Institution{ID: "atl-clinic", Kind: medical.Hospital, Tier: 2, City: "Atlantis"}
	_, created, err := w.med.RegisterInstitution(ctx, clinic, sha256.Sum256([]byte("atl-key")))
	if created {
		t.Error("an institution in an unknown city was registered")
	}
	wantRefusal(t, err, medical.ReasonUnknownCity)

	// One stored before the check: its bills are refused, quoted or settled.
	clinic.Account = clearing.PartyAccount(clearing.PartyMerchant, clinic.ID)
	key := sha256.Sum256([]byte("atl-key"))
	if _, err := w.st.Pool().Exec(ctx, `INSERT INTO medical_institutions (merchant_id, account_id, kind, tier, city, key_hash, created_at, key_issued_at)
		VALUES ($1, $2, 'hospital', 2, $3, $4, $5, $5)`, clinic.ID, [16]byte(clinic.Account), clinic.City, key[:], day); err != nil {
		t.Fatal(err)
	}
	_, err = w.med.Quote(ctx, clinic, card.Token, basket(t, medical.Outpatient, "A100"))
	wantRefusal(t, err, medical.ReasonUnknownCity)
	_, _, err = w.med.Settle(ctx, clinic, "ATL-1", card.Token, basket(t, medical.Outpatient, "A100"))
	wantRefusal(t, err, medical.ReasonUnknownCity)

	reg := medical.Registration{City: "Atlantis", From: events.Date{Year: 2026, Month: 3, Day: 3}, By: "ICBC Jiaxing"}
	_, created, err = w.med.Register(ctx, card.Token, reg)
	if created {
		t.Error("a registration of an unknown treatment city was recorded")
	}
	wantRefusal(t, err, medical.ReasonUnknownCity)
	if regs, err := w.med.Registrations(ctx, card.Token); err != nil || len(regs) != 0 {
		t.Fatalf("registrations: %+v %v", regs, err)
	}
	if after := w.snapshot(t, 0, card.MedicalAccount, card.FundsAccount); !sameSnapshot(before, after) {
		t.Fatalf("refusals changed balances: %+v, then %+v", before, after)
	}

	// A known city by any of its names is still taken.
	reg.City = "上海"
	if r, created, err := w.med.Register(ctx, card.Token, reg); err != nil || !created || r.City != "shanghai" {
		t.Fatalf("register Shanghai: %+v %v %v", r, created, err)
	}
}
