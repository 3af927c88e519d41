package medical

import "fmt"

// Reason is why a medical request was refused, stable for clients to act on.
type Reason string

const (
	// Something named does not exist.
	ReasonUnknownCard        Reason = "unknown_card"
	ReasonUnknownInstitution Reason = "unknown_institution"
	ReasonUnknownSettlement  Reason = "unknown_settlement"
	ReasonUnknownFund        Reason = "unknown_fund"
	ReasonUnknownMerchant    Reason = "unknown_merchant"
	// ReasonUnknownCity: a treatment city (an institution's, or one a cardholder registers) that
	// the city list does not know by any of its names.
	ReasonUnknownCity Reason = "unknown_city"

	// The request contradicts what the engine holds.
	ReasonCardNotActive Reason = "card_not_active"
	ReasonNoPolicy      Reason = "no_policy"
	// ReasonNoCatalogue: the treating city has no catalogue in force on the bill's date, so
	// nothing says what its insurance covers there.
	ReasonNoCatalogue Reason = "no_catalogue"
	// ReasonNotRegistered: the insured city's policy requires a visit in another city to be
	// registered in advance, and this one was not.
	ReasonNotRegistered        Reason = "not_registered"
	ReasonRegistrationConflict Reason = "registration_conflict"
	ReasonVisitKindNotAllowed  Reason = "visit_kind_not_allowed"
	ReasonInsufficientFunds    Reason = "insufficient_funds"
	ReasonSettlementIDReused   Reason = "settlement_id_reused"
	ReasonInstitutionConflict  Reason = "institution_conflict"
	// ReasonCityMismatch: an institution is designated in another city than the one its merchant
	// is registered in.
	ReasonCityMismatch Reason = "city_mismatch"
	// ReasonMerchantCategory: the merchant's category (MCC) is not one of the medical categories,
	// or not one of the institution's kind.
	ReasonMerchantCategory Reason = "merchant_category"
	ReasonDayClosed        Reason = "day_closed"
	ReasonDayOpen          Reason = "day_open"
	ReasonAlreadyCancelled Reason = "already_cancelled"
	ReasonAlreadyReversed  Reason = "already_reversed"
)

// Refusal is an expected refusal of a medical request: nothing was applied. Its detail names
// institutions, settlement ids and amounts, never personal data.
type Refusal struct {
	Reason Reason
	Detail string
}

func (r *Refusal) Error() string { return string(r.Reason) + ": " + r.Detail }

// Refuse returns a Refusal with a formatted detail.
func Refuse(reason Reason, format string, args ...any) *Refusal {
	return &Refusal{Reason: reason, Detail: fmt.Sprintf(format, args...)}
}

// NotFound reports whether the reason is that something named does not exist.
func (r Reason) NotFound() bool {
	switch r {
	case ReasonUnknownCard, ReasonUnknownInstitution, ReasonUnknownSettlement, ReasonUnknownFund, ReasonUnknownMerchant,
		ReasonUnknownCity:
		return true
	}
	return false
}
