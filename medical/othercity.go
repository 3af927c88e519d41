package medical

import (
	"fmt"
	"time"

	"github.com/shopspring/decimal"

	"github.com/joinincard/engine/cities"
	"github.com/joinincard/engine/events"
)

// Elsewhere is a visit treated outside the insured city (异地就医直接结算). By the national rule,
// the treating city's catalogue decides what is covered (Catalogue.Classify) and the insured
// city's policy decides the deductible, the fund's ratios and the caps; the insured city's fund
// pays. The policy may lower its fund's ratio for such visits, more when the cardholder did not
// register the treatment city in advance (OtherCityRule).
type Elsewhere struct {
	City string // the treating city's canonical id
	// Registered says the cardholder registered the treatment city for the visit's date
	// (异地就医备案).
	Registered bool
}

// Where decides where a visit is treated for the split: nil when the treating city is the insured
// one (any of their names), else the other city with whether the cardholder registered it for
// the visit's date. A visit elsewhere that was not registered, under a policy that requires the
// registration, is refused (not_registered).
func (p *Policy) Where(insured, treating string, registered bool) (*Elsewhere, error) {
	if cities.Canonical(insured) == cities.Canonical(treating) {
		return nil, nil
	}
	if !registered && p.OtherCity.RequireRegistration {
		return nil, Refuse(ReasonNotRegistered, "the policy %s requires a visit in %s to be registered in advance, and none covers the visit",
			p.ID(), cities.Canonical(treating))
	}
	return &Elsewhere{City: cities.Canonical(treating), Registered: registered}, nil
}

// OtherCityRule is how an insured city's policy treats visits in another city. The zero rule
// settles them as at home.
type OtherCityRule struct {
	// RegisteredCut and UnregisteredCut lower the fund's ratio, in ratio points (0.10 is ten
	// percentage points), for a visit whose treatment city the cardholder registered in advance,
	// and for one it did not. The ratio never goes below zero.
	RegisteredCut   decimal.Decimal
	UnregisteredCut decimal.Decimal
	// RequireRegistration refuses a visit in another city that was not registered
	// (not_registered): the cardholder pays in full and claims later.
	RequireRegistration bool
}

// otherCityFile is the rule's JSON form, the policy's optional "other_city" object.
type otherCityFile struct {
	RegisteredCut       string `json:"registered_ratio_cut,omitempty"`
	UnregisteredCut     string `json:"unregistered_ratio_cut,omitempty"`
	RequireRegistration bool   `json:"require_registration,omitempty"`
}

func parseOtherCity(f *otherCityFile) (OtherCityRule, error) {
	var r OtherCityRule
	if f == nil {
		return r, nil
	}
	r.RequireRegistration = f.RequireRegistration
	for _, x := range []struct {
		name string
		src  string
		dst  *decimal.Decimal
	}{{"registered_ratio_cut", f.RegisteredCut, &r.RegisteredCut}, {"unregistered_ratio_cut", f.UnregisteredCut, &r.UnregisteredCut}} {
		if x.src == "" {
			continue
		}
		v, err := parseRatio(x.src)
		if err != nil {
			return r, fmt.Errorf("other_city: %s: %w", x.name, err)
		}
		*x.dst = v
	}
	return r, nil
}

// Cut is how many ratio points the rule takes off the fund's ratio for a visit treated elsewhere
// (nil: at home, no cut).
func (r OtherCityRule) Cut(e *Elsewhere) decimal.Decimal {
	switch {
	case e == nil:
		return decimal.Zero
	case e.Registered:
		return r.RegisteredCut
	}
	return r.UnregisteredCut
}

// fundRatio is the fund's ratio for a visit at tier t of kind rule, lowered by the policy's cut
// for a visit treated elsewhere, never below zero; note says why for the trail.
func (p *Policy) fundRatio(rule VisitRule, t Tier, e *Elsewhere) (ratio decimal.Decimal, note string) {
	ratio = rule.FundRatio[t]
	if e == nil {
		return ratio, ""
	}
	cut := p.OtherCity.Cut(e)
	lowered := decimal.Max(ratio.Sub(cut), decimal.Zero)
	how := "not registered in advance"
	if e.Registered {
		how = "registered in advance"
	}
	return lowered, fmt.Sprintf(" (treated in %s, %s: %s less %s points)", e.City, how, formatRatio(ratio), cut.Shift(2).String())
}

// KnownTreatmentCity returns the canonical id of city, a city where cardholders are treated (an
// institution's, or one a cardholder registers), or a Refusal (unknown_city) when the city list
// does not know it by any of its names. Elsewhere a city the list lacks is kept as written, but
// medical compares cities: the insured city with the treating one, a registration's with the
// visit's. Under an unknown name a visit at home would settle as one elsewhere, with its cut, and
// a registration would never cover the visit it was made for.
func KnownTreatmentCity(city string) (string, error) {
	c, ok := cities.Lookup(city)
	if !ok {
		return "", Refuse(ReasonUnknownCity, "treatment city %q is not one the engine knows: name it by its id, its Chinese or its English name", city)
	}
	return c.ID, nil
}

// Registration is a cardholder's registration of a treatment city in advance (异地就医备案): the
// visits there from From through Until (zero: open-ended) are registered.
type Registration struct {
	CardToken string
	City      string // the treatment city's canonical id
	From      events.Date
	Until     events.Date
	By        string // who registered it: the admin's name for it, or the cardholder's bank
	At        time.Time
}

// maxRegistrationDays bounds how far ahead a registration may start: cardholders register
// a planned treatment weeks ahead, and a start a year away is a typing error.
const maxRegistrationDays = 366

// Covers reports whether the registration covers a visit on d.
func (r Registration) Covers(d events.Date) bool {
	return !dateAfter(r.From, d) && (r.Until == (events.Date{}) || !dateAfter(d, r.Until))
}

// Check checks a registration made on today for a card insured in insuredCity: a treatment city
// the city list knows (unknown_city, see KnownTreatmentCity) other than the insured one, a period
// from today at the earliest (a visit's split is decided when it is settled, and a registration
// cannot change one that was), at most maxRegistrationDays ahead, and an end not before its
// start. Its city becomes the canonical id.
func (r *Registration) Check(today events.Date, insuredCity string) error {
	city, err := KnownTreatmentCity(r.City)
	if err != nil {
		return err
	}
	r.City = city
	start := time.Date(r.From.Year, r.From.Month, r.From.Day, 0, 0, 0, 0, time.UTC)
	now := time.Date(today.Year, today.Month, today.Day, 0, 0, 0, 0, time.UTC)
	switch {
	case r.City == cities.Canonical(insuredCity):
		return fmt.Errorf("%w: treatment_city: the card is insured in %s: a visit there needs no registration", ErrInvalid, r.City)
	case dateAfter(today, r.From):
		return fmt.Errorf("%w: valid_from: %s is before today (%s): a registration is made in advance", ErrInvalid, r.From, today)
	case start.Sub(now) > maxRegistrationDays*24*time.Hour:
		return fmt.Errorf("%w: valid_from: %s is more than %d days ahead", ErrInvalid, r.From, maxRegistrationDays)
	case r.Until != (events.Date{}) && dateAfter(r.From, r.Until):
		return fmt.Errorf("%w: valid_until: %s is before valid_from %s", ErrInvalid, r.Until, r.From)
	}
	return nil
}
