package medical_test

import (
	"testing"

	"github.com/joinincard/engine/medical"
)

// Only merchants of a medical category are designated, each as the kind of institution its
// category is: treatment (hospitals, doctors, dentists, health practitioners, laboratories,
// nursing) or medical goods (pharmacies, opticians, medical supplies, hearing aids, orthopedic
// goods).
func TestCheckMerchantCategories(t *testing.T) {
	for _, c := range []struct {
		mcc  string
		kind medical.InstitutionKind
		ok   bool
	}{
		{"8062", medical.Hospital, true}, {"8011", medical.Hospital, true}, {"8021", medical.Hospital, true},
		{"8099", medical.Hospital, true}, {"8071", medical.Hospital, true}, {"8050", medical.Hospital, true},
		{"5912", medical.PharmacyOutlet, true}, {"8043", medical.PharmacyOutlet, true}, {"5047", medical.PharmacyOutlet, true},
		{"5975", medical.PharmacyOutlet, true}, {"5976", medical.PharmacyOutlet, true},
		{"5912", medical.Hospital, false}, {"8062", medical.PharmacyOutlet, false},
		{"5411", medical.PharmacyOutlet, false}, {"5812", medical.Hospital, false}, {"", medical.Hospital, false},
	} {
		in := medical.Institution{ID: "m", Kind: c.kind, Tier: 1, City: "hangzhou"}
		err := in.CheckMerchant(c.mcc, "Hangzhou")
		if (err == nil) != c.ok {
			t.Errorf("MCC %q as a %s: %v, want allowed %v", c.mcc, c.kind, err, c.ok)
		}
	}
}

func TestCheckMerchantCity(t *testing.T) {
	in := medical.Institution{ID: "m", Kind: medical.Hospital, Tier: 3, City: "shanghai"}
	if err := in.CheckMerchant("8062", "杭州"); err == nil {
		t.Error("a Hangzhou hospital designated in Shanghai")
	}
	if err := in.CheckMerchant("8062", "上海"); err != nil {
		t.Errorf("a Shanghai hospital by its Chinese name: %v", err)
	}
}
