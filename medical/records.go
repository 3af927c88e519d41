package medical

import (
	"fmt"
	"slices"
	"time"

	"github.com/google/uuid"

	"github.com/joinincard/engine/cards"
	"github.com/joinincard/engine/cities"
	"github.com/joinincard/engine/clearing"
	"github.com/joinincard/engine/events"
	"github.com/joinincard/engine/ledger"
)

// Transfer codes of medical settlements, kept with every other code in package clearing: the three
// parts of a settlement, and the undoing of all three by a cancellation or a reversal.
const (
	CodeFundPart     = clearing.CodeMedicalFundPart     // the pooled fund pays the institution
	CodePersonalPart = clearing.CodeMedicalPersonalPart // the personal medical account pays the institution
	CodeCashPart     = clearing.CodeMedicalCashPart     // the card's funds pay the institution
	CodeCancel       = clearing.CodeMedicalCancel       // a part given back by a cancellation, the day of the settlement
	CodeReversal     = clearing.CodeMedicalReversal     // a part given back by a reversal, on a later day
)

// InstitutionKind is what a designated institution is.
type InstitutionKind string

const (
	Hospital       InstitutionKind = "hospital"
	PharmacyOutlet InstitutionKind = "pharmacy"
)

// maxCityBytes bounds an institution's city: prose, bounded as a card's insurance_city.
const maxCityBytes = 256

// InstitutionKinds lists the kinds of institution.
func InstitutionKinds() []InstitutionKind { return []InstitutionKind{Hospital, PharmacyOutlet} }

// Allows reports whether an institution of kind k may settle visits of kind v: hospitals treat
// outpatients and inpatients, pharmacies sell drugs.
func (k InstitutionKind) Allows(v VisitKind) bool {
	if k == PharmacyOutlet {
		return v == Pharmacy
	}
	return v == Outpatient || v == Inpatient
}

// Institution is a designated hospital or pharmacy: a registered merchant with its medical
// attributes. The fund pays into the merchant's clearing account.
type Institution struct {
	ID      string // the merchant id
	Kind    InstitutionKind
	Tier    Tier
	City    string
	Account ledger.ID
}

// Validate checks the attributes an admin registers.
func (in *Institution) Validate() error {
	switch {
	case !slices.Contains(InstitutionKinds(), in.Kind):
		return fmt.Errorf("kind %q, want one of %q", in.Kind, InstitutionKinds())
	case !in.Tier.Valid():
		return fmt.Errorf("tier %d, want 1, 2 or 3", in.Tier)
	case in.City == "" || len(in.City) > maxCityBytes:
		return fmt.Errorf("city must be 1 to %d bytes", maxCityBytes)
	}
	return nil
}

// kindByCategory names the merchant categories (ISO 18245 MCCs) that may be designated, each
// with the kind of institution it is: the medical insurance designates institutions that treat
// (定点医疗机构) and retail outlets of drugs and medical goods (定点零售药店), and a merchant of
// any other category (a grocer, a restaurant) is no medical institution whatever the admin types.
var kindByCategory = map[string]InstitutionKind{
	"8062": Hospital,       // hospitals
	"8011": Hospital,       // doctors and physicians
	"8021": Hospital,       // dentists and orthodontists
	"8099": Hospital,       // medical services and health practitioners
	"8071": Hospital,       // medical and dental laboratories
	"8050": Hospital,       // nursing and personal care facilities
	"5912": PharmacyOutlet, // drug stores and pharmacies
	"8043": PharmacyOutlet, // opticians, optical goods and eyeglasses
	"5047": PharmacyOutlet, // medical, dental, ophthalmic and hospital equipment and supplies
	"5975": PharmacyOutlet, // hearing aids
	"5976": PharmacyOutlet, // orthopedic goods and prosthetic devices
}

// CheckMerchant decides whether a merchant registered with category mcc in city may be
// designated as in: the institution's city is the merchant's (by any of its names: the treating
// city's catalogue classifies its bills, and the funds' reports name it), and the merchant's
// category is a medical one of the institution's kind. It returns a Refusal, or nil.
func (in *Institution) CheckMerchant(mcc, city string) error {
	if cities.Canonical(city) != cities.Canonical(in.City) {
		return Refuse(ReasonCityMismatch, "merchant %q is registered in %s, not in %s", in.ID, cities.Canonical(city), cities.Canonical(in.City))
	}
	kind, ok := kindByCategory[mcc]
	if !ok {
		return Refuse(ReasonMerchantCategory, "merchant %q has category %q, which is not a medical category", in.ID, mcc)
	}
	if kind != in.Kind {
		return Refuse(ReasonMerchantCategory, "merchant %q has category %q, which is designated as a %s, not a %s", in.ID, mcc, kind, in.Kind)
	}
	return nil
}

// DayOf is the business day of instant t: its date in Shanghai. A day's settlements close at
// its end, midnight in Shanghai.
func DayOf(t time.Time) events.Date {
	y, m, d := t.In(cards.Shanghai).Date()
	return events.Date{Year: y, Month: m, Day: d}
}

// Quote is a split worked out for a basket without applying it.
type Quote struct {
	CardToken   string
	Fund        string // the card's insurance city, whose fund pays
	Policy      *Policy
	Institution Institution
	Basket      Basket
	Split       Split
	// Before are the cardholder's accumulators for the policy's year before this basket.
	Before Accumulators
	// TreatingCity is the institution's city, whose catalogue (version Catalogue) classified
	// the bill into Lines; Registered says the cardholder registered it, when it is not Fund.
	TreatingCity string
	Registered   bool
	Catalogue    string
	Lines        []Line
}

// Settlement is an applied split: the receipt of one settlement of an institution.
type Settlement struct {
	ID          uuid.UUID // the engine's id
	Institution string
	Ref         string // the institution's settlement id
	CardToken   string
	Fund        string
	PolicyID    string
	PolicyName  string
	PolicyYear  int
	VisitKind   VisitKind
	Tier        Tier
	Items       []Item
	Split       Split
	// TreatingCity is where the bill was treated (the institution's city), Fund the insured
	// city; Registered says the cardholder had registered the treatment city when they differ.
	// Catalogue is the version of the treating city's catalogue that classified the bill into
	// Lines; both are empty for a settlement recorded before bills were classified by code.
	TreatingCity string
	Registered   bool
	Catalogue    string
	Lines        []Line
	Day          events.Date
	SettledAt    time.Time
	// PersonalBalanceAfter is the personal account's posted balance after the settlement;
	// FundsAvailableAfter what the card's funds could still spend.
	PersonalBalanceAfter int64
	FundsAvailableAfter  int64
	// FundTransfer, PersonalTransfer and CashTransfer are the ledger transfers of the three
	// parts; zero for a part of zero.
	FundTransfer, PersonalTransfer, CashTransfer ledger.ID
	// End is the settlement's cancellation or reversal, if any.
	End *End
	// Refunds are the settlement's partial refunds, oldest first.
	Refunds []Refund
	// Stay marks a bill of an inpatient stay; TrueUp is the stay's true-up, on its final bill.
	Stay   *StayBill
	TrueUp *TrueUp
}

// EndKind is how a settlement was undone.
type EndKind string

const (
	// Cancelled: undone on its own business day, before the day closed; it counts in no day's
	// totals.
	Cancelled EndKind = "cancelled"
	// Reversed: undone on a later day; the reversal counts, negatively, in its own day's totals,
	// and the settlement's day is left as it closed.
	Reversed EndKind = "reversed"
)

// End is a settlement's cancellation or reversal: every part given back, and the accumulators
// restored.
type End struct {
	Kind   EndKind
	Reason string
	Day    events.Date
	At     time.Time
	// The card's balances after the parts came back.
	PersonalBalanceAfter int64
	FundsAvailableAfter  int64
}

// Status is the settlement's state: "settled", "cancelled", "reversed", "partially_refunded"
// or "refunded".
func (s *Settlement) Status() string {
	switch {
	case s.End != nil:
		return string(s.End.Kind)
	case len(s.Refunds) == 0:
		return "settled"
	case s.Refunded() == RefundBase(s).Total:
		return "refunded"
	}
	return "partially_refunded"
}

// Refunded is what the settlement's refunds gave back.
func (s *Settlement) Refunded() int64 {
	var n int64
	for _, r := range s.Refunds {
		n += r.Amount
	}
	return n
}

// Totals are a fund's figures for a day: settlements of the day (not cancelled) less reversals
// and refunds made that day, with the adjustments of the stays trued up that day. Cancelled counts
// the day's settlements that were cancelled, which count nowhere else.
type Totals struct {
	Settlements int64
	Reversals   int64
	Cancelled   int64
	Refunds     int64 // refunds made that day
	TrueUps     int64 // stays trued up that day
	Total       int64
	Fund        int64
	Personal    int64
	Cash        int64
}

// Add adds o to t.
func (t *Totals) Add(o Totals) {
	t.Settlements += o.Settlements
	t.Reversals += o.Reversals
	t.Cancelled += o.Cancelled
	t.Refunds += o.Refunds
	t.TrueUps += o.TrueUps
	t.Total += o.Total
	t.Fund += o.Fund
	t.Personal += o.Personal
	t.Cash += o.Cash
}

// InstitutionTotals are one institution's totals of a fund's day.
type InstitutionTotals struct {
	Institution string
	City        string // the institution's city: the treating city of its settlements
	Totals
}

// DayTotals is a fund's reconciliation of one business day, by institution: what the fund checks
// against its own records. A closed day's totals never change: cancellations happen before the
// day closes, and reversals count on the day they are made.
type DayTotals struct {
	Fund         string
	Day          events.Date
	Closed       bool
	Institutions []InstitutionTotals
	All          Totals
}

// Line kinds of the detail export.
const (
	LineSettlement = "settlement"
	LineReversal   = "reversal"
	// LineRefund is a refund made that day, its amounts negative.
	LineRefund = "refund"
	// LineStayAdjustment is a stay's true-up made that day: its adjustments, of either sign,
	// summing to a total of zero.
	LineStayAdjustment = "stay_adjustment"
)

// DetailLine is one line of a fund's day detail: a settlement of the day that was not cancelled,
// a reversal or a refund made that day with its amounts negative, or a stay's true-up made that
// day. The lines of a day sum to its totals.
type DetailLine struct {
	Kind        string
	At          time.Time
	Institution string
	Ref         string
	ID          uuid.UUID
	CardToken   string
	VisitKind   VisitKind
	Tier        Tier
	PolicyID    string
	// TreatingCity is where the bill was treated; Registered whether the cardholder had
	// registered it, when it is not the fund's city.
	TreatingCity string
	Registered   bool
	Total        int64
	Fund         int64
	Personal     int64
	Cash         int64
}

// CardYear is a cardholder's medical year under one policy: accumulators and limits.
type CardYear struct {
	CardToken    string
	Fund         string
	Policy       *Policy // nil when no policy covers the year
	Year         int
	Accumulators Accumulators
	// PersonalBalance is the personal account's posted balance.
	PersonalBalance int64
}
