package medical

import (
	"fmt"

	"github.com/shopspring/decimal"
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
