package medical

import (
	"bytes"
	"embed"
	"encoding/json"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"sort"
	"strconv"

	"github.com/shopspring/decimal"
)

// VisitKind is what a settlement pays for: an outpatient visit, an inpatient stay, or drugs
// bought at a pharmacy.
type VisitKind string

const (
	Outpatient VisitKind = "outpatient"
	Inpatient  VisitKind = "inpatient"
	Pharmacy   VisitKind = "pharmacy"
)

// VisitKinds lists the visit kinds; every policy states its rules for each.
func VisitKinds() []VisitKind { return []VisitKind{Outpatient, Inpatient, Pharmacy} }

// Tier is a designated institution's grade: 1 (community), 2 (district) or 3 (city or teaching
// hospital). Funds pay a higher ratio at lower tiers to keep patients out of the big hospitals.
type Tier int

const (
	MinTier Tier = 1
	MaxTier Tier = 3
)

// Valid reports whether t is a tier a policy has figures for.
func (t Tier) Valid() bool { return t >= MinTier && t <= MaxTier }

// Scope says whether a deductible is met once a year or again at every visit.
type Scope string

const (
	PerYear  Scope = "year"  // met once per calendar year: what the cardholder paid counts on
	PerVisit Scope = "visit" // met again at each visit or admission
)

// Policy is one city's medical insurance policy for one calendar year.
type Policy struct {
	City string // the insurance city: the id of its insurance fund party
	Year int
	Name string
	// ClassBSelfPay is the share of class B items the cardholder pays before anything else
	// (乙类先行自付); the rest of them counts as eligible, like class A.
	ClassBSelfPay decimal.Decimal
	Deductibles   map[string]Deductible
	// Caps are the yearly fund caps by bucket, in fen: the fund pays at most so much per
	// cardholder and year for the visit kinds that count against the bucket.
	Caps   map[string]int64
	Visits map[VisitKind]VisitRule
}

// ID names a policy: "jiaxing-2026".
func (p *Policy) ID() string { return p.City + "-" + strconv.Itoa(p.Year) }

// Deductible is one deductible bucket (起付线): what the cardholder pays of the eligible amount
// before the fund pays its ratio.
type Deductible struct {
	Scope Scope
	// ByTier is the amount in fen by tier (index 1..3); a yearly deductible has one amount for
	// every tier.
	ByTier [MaxTier + 1]int64
}

// VisitRule is how a policy treats one visit kind.
type VisitRule struct {
	// PersonalAccountFirst: the personal account pays the catalogue items (class B first) before
	// the fund's share is worked out, and what it paid counts toward no deductible. Otherwise
	// the fund's share is worked out on the whole basket and the personal account then pays the
	// cardholder's share of the catalogue items.
	PersonalAccountFirst bool
	Deductible           string   // the deductible bucket
	Caps                 []string // the cap buckets the fund's part counts against
	// FundRatio is the fund's share, by tier (index 1..3), of the eligible amount above the
	// deductible.
	FundRatio [MaxTier + 1]decimal.Decimal
}

// policyFile is a policy's JSON form. Amounts are decimal strings in yuan, ratios decimal
// strings between 0 and 1; tiers are the keys "1", "2" and "3".
type policyFile struct {
	City          string                      `json:"city"`
	Year          int                         `json:"year"`
	Name          string                      `json:"name"`
	Currency      string                      `json:"currency"`
	ClassBSelfPay string                      `json:"class_b_self_pay_ratio"`
	Deductibles   map[string]deductibleFile   `json:"deductibles"`
	FundCaps      map[string]string           `json:"fund_caps"`
	VisitKinds    map[VisitKind]visitRuleFile `json:"visit_kinds"`
}

type deductibleFile struct {
	Scope        Scope             `json:"scope"`
	Amount       string            `json:"amount,omitempty"`
	AmountByTier map[string]string `json:"amount_by_tier,omitempty"`
}

type visitRuleFile struct {
	PersonalAccountFirst bool              `json:"personal_account_first"`
	Deductible           string            `json:"deductible"`
	Caps                 []string          `json:"caps"`
	FundRatioByTier      map[string]string `json:"fund_ratio_by_tier"`
}

const (
	// minPolicyYear and maxPolicyYear bound a policy's year: the card exists from 2025, and a
	// year far ahead is a typing error, not a policy.
	minPolicyYear = 2000
	maxPolicyYear = 2100
	// maxBuckets bounds a policy's deductible and cap buckets: real policies have one to three.
	maxBuckets = 8
	// maxNameBytes bounds a policy's and a bucket's name: they are shown on receipts.
	maxNameBytes = 256
)

// ParsePolicy reads and checks one policy file. Unknown fields are refused: a misspelt rule must
// not be silently ignored.
func ParsePolicy(data []byte) (*Policy, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var f policyFile
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("decode policy: %w", err)
	}
	if dec.More() {
		return nil, fmt.Errorf("decode policy: data after the policy object")
	}
	p := &Policy{City: f.City, Year: f.Year, Name: f.Name, Deductibles: map[string]Deductible{},
		Caps: map[string]int64{}, Visits: map[VisitKind]VisitRule{}}
	switch {
	case f.City == "" || len(f.City) > maxNameBytes:
		return nil, fmt.Errorf("policy city must be 1 to %d bytes", maxNameBytes)
	case f.Year < minPolicyYear || f.Year > maxPolicyYear:
		return nil, fmt.Errorf("policy %s: year %d out of range %d..%d", f.City, f.Year, minPolicyYear, maxPolicyYear)
	case f.Name == "" || len(f.Name) > maxNameBytes:
		return nil, fmt.Errorf("policy %s: name must be 1 to %d bytes", p.ID(), maxNameBytes)
	case f.Currency != "CNY":
		return nil, fmt.Errorf("policy %s: currency %q, want CNY", p.ID(), f.Currency)
	case len(f.Deductibles) == 0 || len(f.Deductibles) > maxBuckets:
		return nil, fmt.Errorf("policy %s: want 1 to %d deductibles", p.ID(), maxBuckets)
	case len(f.FundCaps) == 0 || len(f.FundCaps) > maxBuckets:
		return nil, fmt.Errorf("policy %s: want 1 to %d fund caps", p.ID(), maxBuckets)
	}
	var err error
	if p.ClassBSelfPay, err = parseRatio(f.ClassBSelfPay); err != nil {
		return nil, fmt.Errorf("policy %s: class_b_self_pay_ratio: %w", p.ID(), err)
	}
	for name, d := range f.Deductibles {
		if err := checkBucketName(name); err != nil {
			return nil, fmt.Errorf("policy %s: deductible %w", p.ID(), err)
		}
		ded, err := parseDeductible(d)
		if err != nil {
			return nil, fmt.Errorf("policy %s: deductible %s: %w", p.ID(), name, err)
		}
		p.Deductibles[name] = ded
	}
	for name, amount := range f.FundCaps {
		if err := checkBucketName(name); err != nil {
			return nil, fmt.Errorf("policy %s: fund cap %w", p.ID(), err)
		}
		fen, err := ParseAmount(amount)
		if err != nil {
			return nil, fmt.Errorf("policy %s: fund cap %s: %w", p.ID(), name, err)
		}
		p.Caps[name] = fen
	}
	for _, k := range VisitKinds() {
		v, ok := f.VisitKinds[k]
		if !ok {
			return nil, fmt.Errorf("policy %s: no rule for visit kind %s", p.ID(), k)
		}
		rule, err := p.parseVisitRule(v)
		if err != nil {
			return nil, fmt.Errorf("policy %s: visit kind %s: %w", p.ID(), k, err)
		}
		p.Visits[k] = rule
	}
	if len(f.VisitKinds) != len(VisitKinds()) {
		for k := range f.VisitKinds {
			if !slices.Contains(VisitKinds(), k) {
				return nil, fmt.Errorf("policy %s: unknown visit kind %q", p.ID(), k)
			}
		}
	}
	return p, nil
}

func checkBucketName(name string) error {
	if name == "" || len(name) > maxNameBytes {
		return fmt.Errorf("name %q must be 1 to %d bytes", name, maxNameBytes)
	}
	for i := 0; i < len(name); i++ {
		if c := name[i]; !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '_') {
			return fmt.Errorf("name %q: want lowercase letters, digits and underscores", name)
		}
	}
	return nil
}

func parseDeductible(d deductibleFile) (Deductible, error) {
	ded := Deductible{Scope: d.Scope}
	switch d.Scope {
	case PerYear:
		if d.Amount == "" || d.AmountByTier != nil {
			return ded, fmt.Errorf("a yearly deductible has one amount, not amount_by_tier")
		}
		fen, err := ParseAmount(d.Amount)
		if err != nil {
			return ded, err
		}
		for t := MinTier; t <= MaxTier; t++ {
			ded.ByTier[t] = fen
		}
	case PerVisit:
		if d.Amount != "" || d.AmountByTier == nil {
			return ded, fmt.Errorf("a per-visit deductible has amount_by_tier, not amount")
		}
		byTier, err := tierMap(d.AmountByTier, func(s string) (int64, error) { return ParseAmount(s) })
		if err != nil {
			return ded, err
		}
		ded.ByTier = byTier
	default:
		return ded, fmt.Errorf("scope %q, want %q or %q", d.Scope, PerYear, PerVisit)
	}
	return ded, nil
}

func (p *Policy) parseVisitRule(v visitRuleFile) (VisitRule, error) {
	rule := VisitRule{PersonalAccountFirst: v.PersonalAccountFirst, Deductible: v.Deductible, Caps: v.Caps}
	if _, ok := p.Deductibles[v.Deductible]; !ok {
		return rule, fmt.Errorf("unknown deductible %q", v.Deductible)
	}
	if len(v.Caps) == 0 {
		return rule, fmt.Errorf("no fund cap: the fund must never pay without one")
	}
	for i, c := range v.Caps {
		if _, ok := p.Caps[c]; !ok {
			return rule, fmt.Errorf("unknown fund cap %q", c)
		}
		if slices.Contains(v.Caps[:i], c) {
			return rule, fmt.Errorf("fund cap %q listed twice", c)
		}
	}
	ratios, err := tierMap(v.FundRatioByTier, parseRatio)
	if err != nil {
		return rule, fmt.Errorf("fund_ratio_by_tier: %w", err)
	}
	rule.FundRatio = ratios
	return rule, nil
}

// tierMap reads a map with exactly the keys "1", "2" and "3".
func tierMap[T any](m map[string]string, parse func(string) (T, error)) ([MaxTier + 1]T, error) {
	var out [MaxTier + 1]T
	if len(m) != int(MaxTier) {
		return out, fmt.Errorf("want exactly the tiers 1, 2 and 3")
	}
	for t := MinTier; t <= MaxTier; t++ {
		s, ok := m[strconv.Itoa(int(t))]
		if !ok {
			return out, fmt.Errorf("want exactly the tiers 1, 2 and 3")
		}
		v, err := parse(s)
		if err != nil {
			return out, fmt.Errorf("tier %d: %w", t, err)
		}
		out[t] = v
	}
	return out, nil
}

// Policies is a set of policies, one per city and year.
type Policies struct {
	byKey map[policyKey]*Policy
}

type policyKey struct {
	city string
	year int
}

// For returns the policy of city for year.
func (ps *Policies) For(city string, year int) (*Policy, bool) {
	p, ok := ps.byKey[policyKey{city, year}]
	return p, ok
}

// All lists the policies by city, then year.
func (ps *Policies) All() []*Policy {
	out := make([]*Policy, 0, len(ps.byKey))
	for _, p := range ps.byKey {
		out = append(out, p)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].City != out[j].City {
			return out[i].City < out[j].City
		}
		return out[i].Year < out[j].Year
	})
	return out
}

// NewPolicies builds a set from policies, refusing two for one city and year.
func NewPolicies(list ...*Policy) (*Policies, error) {
	ps := &Policies{byKey: make(map[policyKey]*Policy, len(list))}
	for _, p := range list {
		k := policyKey{p.City, p.Year}
		if _, dup := ps.byKey[k]; dup {
			return nil, fmt.Errorf("two policies for %s", p.ID())
		}
		ps.byKey[k] = p
	}
	return ps, nil
}

// LoadPolicies reads every *.json file of fsys's root as a policy. Each file must be named after
// the policy it holds ("jiaxing-2026.json"), so that a city's files are found by name.
func LoadPolicies(fsys fs.FS) (*Policies, error) {
	names, err := fs.Glob(fsys, "*.json")
	if err != nil {
		return nil, fmt.Errorf("list policies: %w", err)
	}
	if len(names) == 0 {
		return nil, fmt.Errorf("no policy files")
	}
	list := make([]*Policy, 0, len(names))
	for _, name := range names {
		data, err := fs.ReadFile(fsys, name)
		if err != nil {
			return nil, fmt.Errorf("read policy %s: %w", name, err)
		}
		p, err := ParsePolicy(data)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		if want := p.ID() + ".json"; path.Base(name) != want {
			return nil, fmt.Errorf("%s holds policy %s: name the file %s", name, p.ID(), want)
		}
		list = append(list, p)
	}
	return NewPolicies(list...)
}

//go:embed policies/*.json
var policyFiles embed.FS

// SamplePolicies returns the policies shipped with the engine (policies/*.json). Their figures
// are plausible samples in the shape of the cities' published rules, not the official figures.
func SamplePolicies() (*Policies, error) {
	sub, err := fs.Sub(policyFiles, "policies")
	if err != nil {
		return nil, fmt.Errorf("sample policies: %w", err)
	}
	return LoadPolicies(sub)
}

// DeductibleOf returns the deductible bucket named name of policy p, which may be nil.
func (p *Policy) DeductibleOf(name string) (Deductible, bool) {
	if p == nil {
		return Deductible{}, false
	}
	d, ok := p.Deductibles[name]
	return d, ok
}
