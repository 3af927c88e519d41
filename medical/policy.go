package medical

import (
	"bytes"
	"cmp"
	"embed"
	"encoding/json"
	"fmt"
	"io/fs"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/shopspring/decimal"

	"github.com/joinincard/engine/cities"
	"github.com/joinincard/engine/events"
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

// Policy is one city's medical insurance policy for one calendar year, or a version of it that
// settles the bills from a date of that year on.
type Policy struct {
	City string // the insurance city's canonical id (cities.Canonical): the id of its insurance fund party
	Year int
	Name string
	// From is the first date this version settles; zero for the policy's whole year. Seq orders
	// versions with one From, the later uploaded winning.
	From events.Date
	Seq  int
	// ClassBSelfPay is the share of class B items the cardholder pays before anything else
	// (乙类先行自付); the rest of them counts as eligible, like class A.
	ClassBSelfPay decimal.Decimal
	Deductibles   map[string]Deductible
	// Caps are the yearly fund caps by bucket, in fen: the fund pays at most so much per
	// cardholder and year for the visit kinds that count against the bucket.
	Caps   map[string]int64
	Visits map[VisitKind]VisitRule
	// OtherCity is how the policy settles its cardholders' visits in another city.
	OtherCity OtherCityRule
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
	OtherCity     *otherCityFile              `json:"other_city,omitempty"`
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
	p := &Policy{City: cities.Canonical(f.City), Year: f.Year, Name: f.Name, Deductibles: map[string]Deductible{},
		Caps: map[string]int64{}, Visits: map[VisitKind]VisitRule{}}
	switch {
	case f.City == "" || events.CheckText(f.City, maxNameBytes) != "":
		return nil, fmt.Errorf("city: must be 1 to %d bytes of text without control characters", maxNameBytes)
	case events.CheckText(f.Name, maxNameBytes) != "":
		return nil, fmt.Errorf("policy %s: name: must be 1 to %d bytes of text without control characters", p.ID(), maxNameBytes)
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
	if p.OtherCity, err = parseOtherCity(f.OtherCity); err != nil {
		return nil, fmt.Errorf("policy %s: %w", p.ID(), err)
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

// Policies is a set of policies, one per city and year, each with its versions.
type Policies struct {
	byKey map[policyKey][]*Policy // by From, then Seq
}

type policyKey struct {
	city string
	year int
}

// For returns the newest version of the policy of city (any of its names) for year: the one in
// force at the year's end.
func (ps *Policies) For(city string, year int) (*Policy, bool) {
	vs := ps.byKey[policyKey{cities.Canonical(city), year}]
	if len(vs) == 0 {
		return nil, false
	}
	return vs[len(vs)-1], true
}

// On returns the version of city's (any of its names) policy in force on date d: the policy of
// d's year, from the newest version whose first date is d or before.
func (ps *Policies) On(city string, d events.Date) (*Policy, bool) {
	vs := ps.byKey[policyKey{cities.Canonical(city), d.Year}]
	for i := len(vs) - 1; i >= 0; i-- {
		if !dateAfter(vs[i].From, d) {
			return vs[i], true
		}
	}
	return nil, false
}

// dateAfter reports whether a is after b; a zero date is before every date.
func dateAfter(a, b events.Date) bool {
	return cmp.Or(cmp.Compare(a.Year, b.Year), cmp.Compare(a.Month, b.Month), cmp.Compare(a.Day, b.Day)) > 0
}

// Uncovered is a day on which a city's insured cardholders have no policy in force: their
// medical settlements are refused (no_policy) until one is added.
type Uncovered struct {
	City string
	Day  events.Date
}

// FirstUncovered lists, for each city whose policy is in force on today, the first day of the
// next within days (today included) on which none is: a new year, or the start of one, that the
// city has no policy for yet. The list is ordered by day, then city; it is empty when every such
// city is covered through the window.
func (ps *Policies) FirstUncovered(today events.Date, within int) []Uncovered {
	var out []Uncovered
	seen := map[string]bool{}
	for k := range ps.byKey {
		if seen[k.city] {
			continue
		}
		seen[k.city] = true
		if _, ok := ps.On(k.city, today); !ok {
			continue
		}
		start := time.Date(today.Year, today.Month, today.Day, 0, 0, 0, 0, time.UTC)
		for i := 1; i < within; i++ {
			y, m, d := start.AddDate(0, 0, i).Date()
			day := events.Date{Year: y, Month: m, Day: d}
			if _, ok := ps.On(k.city, day); !ok {
				out = append(out, Uncovered{City: k.city, Day: day})
				break
			}
		}
	}
	slices.SortFunc(out, func(a, b Uncovered) int {
		if a.Day != b.Day {
			if dateAfter(a.Day, b.Day) {
				return 1
			}
			return -1
		}
		return strings.Compare(a.City, b.City)
	})
	return out
}

// Versions lists the versions of city's policy for year, oldest first.
func (ps *Policies) Versions(city string, year int) []*Policy {
	return slices.Clone(ps.byKey[policyKey{cities.Canonical(city), year}])
}

// All lists every version of every policy by city, then year, then from.
func (ps *Policies) All() []*Policy {
	out := make([]*Policy, 0, len(ps.byKey))
	for _, vs := range ps.byKey {
		out = append(out, vs...)
	}
	sort.SliceStable(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.City != b.City {
			return a.City < b.City
		}
		if a.Year != b.Year {
			return a.Year < b.Year
		}
		if a.From != b.From {
			return dateAfter(b.From, a.From)
		}
		return a.Seq < b.Seq
	})
	return out
}

// NewPolicies builds a set from policies and their versions, refusing two for one city, year,
// first date and seq, and a version whose first date is outside its policy's year.
func NewPolicies(list ...*Policy) (*Policies, error) {
	ps := &Policies{byKey: make(map[policyKey][]*Policy, len(list))}
	for _, p := range list {
		if p.From != (events.Date{}) && p.From.Year != p.Year {
			return nil, fmt.Errorf("policy %s: a version from %s is not in the policy's year", p.ID(), p.From)
		}
		k := policyKey{p.City, p.Year}
		for _, o := range ps.byKey[k] {
			if o.From == p.From && o.Seq == p.Seq {
				if p.From == (events.Date{}) {
					return nil, fmt.Errorf("two policies for %s", p.ID())
				}
				return nil, fmt.Errorf("two versions of policy %s from %s", p.ID(), p.From)
			}
		}
		ps.byKey[k] = append(ps.byKey[k], p)
	}
	for _, vs := range ps.byKey {
		slices.SortStableFunc(vs, func(a, b *Policy) int {
			if a.From != b.From {
				if dateAfter(a.From, b.From) {
					return 1
				}
				return -1
			}
			return a.Seq - b.Seq
		})
	}
	return ps, nil
}

// maxPolicyFiles bounds a directory of policies: 41 cities with a few years and versions each.
const maxPolicyFiles = 10_000

// ReadDir reads every *.json file of fsys's root, by name, as LoadPolicies reads them.
func ReadDir(fsys fs.FS) (map[string][]byte, error) {
	return readDataDir(fsys, maxPolicyFiles, "policy", "policies")
}

// LoadPolicies reads every *.json file of fsys's root as a policy. Each file must be named after
// the policy it holds ("jiaxing-2026.json"), so that a city's files are found by name; a version
// that settles from a date of the year on is named with the date after an @
// ("jiaxing-2026@2026-07-01.json").
func LoadPolicies(fsys fs.FS) (*Policies, error) {
	files, err := ReadDir(fsys)
	if err != nil {
		return nil, err
	}
	list, err := ParseFiles(files)
	if err != nil {
		return nil, err
	}
	return NewPolicies(list...)
}

// ParseFiles parses policy files by name, as LoadPolicies names them.
func ParseFiles(files map[string][]byte) ([]*Policy, error) {
	return parseVersionedFiles(files, ParsePolicy, (*Policy).ID,
		func(p *Policy, from events.Date) { p.From = from }, "policy")
}

//go:embed policies/*.json
var policyFiles embed.FS

// SampleFiles returns the bytes of the policy files shipped with the engine, by file name.
func SampleFiles() (map[string][]byte, error) {
	return embeddedFiles(policyFiles, "policies/*.json", "sample policies")
}

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
