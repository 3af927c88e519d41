// Package fees prices card payments: the merchant discount and network fee a merchant pays on
// domestic rails (the cardholder pays nothing), and what the same payment would have cost the
// cardholder on a foreign card, so that a cardholder can see what the Join in Card saved.
//
// Plans are data: JSON files embedded in the binary (data/plans/*.json, data/foreign_card.json),
// each validated when loaded. Money is int64 fen; rates are decimals, and every product of an
// amount and a rate is rounded half-even to the fen where it is computed. The package is pure.
package fees

import (
	"bytes"
	"cmp"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/shopspring/decimal"

	"github.com/joinincard/engine/events"
	"github.com/joinincard/engine/ledger"
)

//go:embed data/plans/*.json data/foreign_card.json
var data embed.FS

const (
	// maxRate bounds every rate of a plan: no domestic merchant discount, network fee, surcharge
	// or FX margin comes near 10%, so a larger rate is a typo (35 for 0.35%), refused at load.
	maxRate = "0.10"
	// maxAmountFen bounds the amounts priced: 10^12 fen is ten billion CNY, far past any card
	// payment, and keeps every product of an amount and a rate exact in int64.
	maxAmountFen = 1_000_000_000_000
	// mccDigits is the length of a merchant category code (ISO 18245).
	mccDigits = 4
	// maxPlanIDBytes bounds a plan's id: merchants name it, and files are named after it.
	maxPlanIDBytes = 64
	// maxDescriptionBytes bounds a plan's description: a paragraph for people.
	maxDescriptionBytes = 4096
	// maxPlanFiles bounds a directory of plans: an acquirer has a handful, with their versions.
	maxPlanFiles = 1000
)

// fenPlaces is the number of decimals of CNY, the only currency plans price.
const fenPlaces = 2

// Fee is what a merchant pays for one payment, in fen.
type Fee struct {
	MerchantDiscount int64 // the merchant discount rate's share, to the issuer and acquirer side
	Network          int64 // the network's fee
}

// Total is the whole fee.
func (f Fee) Total() int64 { return f.MerchantDiscount + f.Network }

// RefundPolicy says what a refund gives back of a fee component.
type RefundPolicy string

const (
	// RefundProportional returns the fee on what the refund takes off the purchase: after
	// refunds, the merchant has paid the fee of the amount it kept, whatever the caps.
	RefundProportional RefundPolicy = "proportional"
	// RefundRetained keeps the fee whatever is refunded.
	RefundRetained RefundPolicy = "retained"
)

// Rate is a rate with an optional cap.
type Rate struct {
	Rate decimal.Decimal
	// Cap is the most the rate charges on one payment, in fen; -1 for no cap.
	Cap int64
}

// of is the rate's charge on amount fen, rounded half-even to the fen, then capped.
func (r Rate) of(amount int64) int64 {
	// RoundBank(2): half-even to the fen, as the plan's rounding rule says.
	fee := decimal.New(amount, -fenPlaces).Mul(r.Rate).RoundBank(fenPlaces).Shift(fenPlaces).IntPart()
	if r.Cap >= 0 && fee > r.Cap {
		return r.Cap
	}
	return fee
}

// Category is a group of merchant category codes priced alike.
type Category struct {
	Name             string
	MCCs             []string // empty for the default category
	MerchantDiscount Rate
	Network          Rate
}

// Plan is a fee plan, or a version of one: a category for each MCC it names, a default for the
// rest, and what refunds return.
type Plan struct {
	ID          string
	Description string
	Categories  []Category
	RefundMDR   RefundPolicy // what a refund returns of the merchant discount
	RefundNet   RefundPolicy // what a refund returns of the network fee
	// From is the first date (in Shanghai) whose purchases this version prices; zero for every
	// date until a later version. Seq orders versions with one From, the later uploaded winning.
	From events.Date
	Seq  int

	byMCC map[string]*Category
	def   *Category
}

// Category returns the category that prices mcc: the one naming it, or the default.
func (p *Plan) Category(mcc string) *Category {
	if c, ok := p.byMCC[mcc]; ok {
		return c
	}
	return p.def
}

// Fee is the fee a merchant of category mcc pays on a payment of amount fen (0 costs nothing).
func (p *Plan) Fee(mcc string, amount int64) (Fee, error) {
	if err := checkAmount(amount); err != nil {
		return Fee{}, err
	}
	c := p.Category(mcc)
	return Fee{MerchantDiscount: c.MerchantDiscount.of(amount), Network: c.Network.of(amount)}, nil
}

// RefundRule says in words what a refund gives back under the plan: the engine's rule, which
// RefundReturn applies. A plan's description does not describe refunds, so that its words can
// never say otherwise.
func (p *Plan) RefundRule() string {
	name := func(pol RefundPolicy, fee string) string {
		if pol == RefundRetained {
			return "the " + fee + " is kept"
		}
		return "the " + fee + " comes back as the difference between the " + fee + " on what remained of the purchase " +
			"before the refund and on what remains after it, so that in the end the merchant has paid the " + fee +
			" of what it kept (a capped fee comes back only once what remains is below the cap)"
	}
	switch {
	case p.RefundMDR == RefundRetained && p.RefundNet == RefundRetained:
		return "A refund returns no fee."
	case p.RefundMDR == p.RefundNet:
		return "A refund returns the fees as the difference between the fees on what remained of the purchase before the " +
			"refund and on what remains after it, so that in the end the merchant has paid the fees of what it kept " +
			"(a capped fee comes back only once what remains is below the cap)."
	}
	return "On a refund, " + name(p.RefundMDR, "merchant discount") + "; " + name(p.RefundNet, "network fee") + "."
}

// RefundReturn is the fee a refund of refund fen gives back to the merchant, on a purchase of
// category mcc of which net fen remained before the refund (captured less earlier refunds). A
// proportional component returns the fee of the net before less the fee of the net after, so
// that however a purchase is refunded, in one refund or many, the merchant has in the end paid
// exactly the fee of what it kept, and a full refund returns the whole fee.
func (p *Plan) RefundReturn(mcc string, net, refund int64) (Fee, error) {
	if err := checkAmount(net); err != nil {
		return Fee{}, err
	}
	if refund <= 0 || refund > net {
		return Fee{}, fmt.Errorf("refund of %d fen against %d fen remaining", refund, net)
	}
	before, err := p.Fee(mcc, net)
	if err != nil {
		return Fee{}, err
	}
	after, err := p.Fee(mcc, net-refund)
	if err != nil {
		return Fee{}, err
	}
	var f Fee
	if p.RefundMDR == RefundProportional {
		f.MerchantDiscount = before.MerchantDiscount - after.MerchantDiscount
	}
	if p.RefundNet == RefundProportional {
		f.Network = before.Network - after.Network
	}
	return f, nil
}

// Owed is the fee a merchant owes in the end under the plan on a purchase of category mcc,
// captured for captured fen of which refunded fen were refunded: a proportional component on what
// the merchant kept, a retained one on what it captured. It is where RefundReturn brings a
// purchase charged by the plan, whatever its refunds: the fee on the capture less every return.
func (p *Plan) Owed(mcc string, captured, refunded int64) (Fee, error) {
	if err := checkAmount(captured); err != nil {
		return Fee{}, err
	}
	if refunded < 0 || refunded > captured {
		return Fee{}, fmt.Errorf("%d fen refunded of %d fen captured", refunded, captured)
	}
	all, err := p.Fee(mcc, captured)
	if err != nil {
		return Fee{}, err
	}
	kept, err := p.Fee(mcc, captured-refunded)
	if err != nil {
		return Fee{}, err
	}
	f := all
	if p.RefundMDR == RefundProportional {
		f.MerchantDiscount = kept.MerchantDiscount
	}
	if p.RefundNet == RefundProportional {
		f.Network = kept.Network
	}
	return f, nil
}

// Adjustment is what a re-pricing by the plan charges a merchant on one purchase (negative: gives
// back), component by component: the fee the plan says is owed (Owed) less charged, what the
// merchant has paid on it so far (the fee on its capture, less the fees its refunds returned,
// plus the adjustments before). Each component's rate was rounded half-even to the fen where it
// was computed (Rate.of, RoundBank(2)): the difference of two amounts in fen is exact.
func (p *Plan) Adjustment(mcc string, captured, refunded int64, charged Fee) (Fee, error) {
	owed, err := p.Owed(mcc, captured, refunded)
	if err != nil {
		return Fee{}, err
	}
	return Fee{MerchantDiscount: owed.MerchantDiscount - charged.MerchantDiscount, Network: owed.Network - charged.Network}, nil
}

// ForeignCard is what a foreign card charges its holder for a payment in CNY.
type ForeignCard struct {
	Description string
	// SurchargeRate applies to the whole of a payment over SurchargeOver fen.
	SurchargeRate decimal.Decimal
	SurchargeOver int64
	// FXMarginRate is the issuer's margin on converting every payment into the card's currency.
	FXMarginRate decimal.Decimal
}

// ForeignCost is what a payment would have cost on a foreign card, beyond the payment itself.
type ForeignCost struct {
	Surcharge int64
	FXMargin  int64
}

// Total is the whole foreign-card cost.
func (c ForeignCost) Total() int64 { return c.Surcharge + c.FXMargin }

// Cost is what a payment of amount fen would have cost on a foreign card. The Join in Card
// charges its holder nothing, so this is also what the card saved.
func (f ForeignCard) Cost(amount int64) (ForeignCost, error) {
	if err := checkAmount(amount); err != nil {
		return ForeignCost{}, err
	}
	var c ForeignCost
	if amount > f.SurchargeOver {
		c.Surcharge = Rate{Rate: f.SurchargeRate, Cap: -1}.of(amount)
	}
	c.FXMargin = Rate{Rate: f.FXMarginRate, Cap: -1}.of(amount)
	return c, nil
}

func checkAmount(amount int64) error {
	if amount < 0 || amount > maxAmountFen {
		return fmt.Errorf("amount of %d fen is outside 0 to %d", amount, int64(maxAmountFen))
	}
	return nil
}

// Catalog is every fee plan, by id, each with its versions, and the foreign-card comparison.
type Catalog struct {
	versions map[string][]*Plan // by From, then Seq
	seq      int                // the highest Seq of its versions
	Foreign  ForeignCard
}

// NewCatalog checks plans and their versions together: no two versions of a plan share a From
// and a Seq.
func NewCatalog(foreign ForeignCard, plans ...*Plan) (*Catalog, error) {
	c := &Catalog{versions: map[string][]*Plan{}, Foreign: foreign}
	for _, p := range plans {
		for _, o := range c.versions[p.ID] {
			if o.From == p.From && o.Seq == p.Seq {
				return nil, fmt.Errorf("fee plan %q has two versions from %s", p.ID, fromText(p.From))
			}
		}
		c.versions[p.ID] = append(c.versions[p.ID], p)
		c.seq = max(c.seq, p.Seq)
	}
	for _, vs := range c.versions {
		slices.SortStableFunc(vs, func(a, b *Plan) int {
			if d := compareDates(a.From, b.From); d != 0 {
				return d
			}
			return a.Seq - b.Seq
		})
	}
	return c, nil
}

func fromText(d events.Date) string {
	if d == (events.Date{}) {
		return "the start"
	}
	return d.String()
}

func compareDates(a, b events.Date) int {
	return cmp.Or(cmp.Compare(a.Year, b.Year), cmp.Compare(a.Month, b.Month), cmp.Compare(a.Day, b.Day))
}

// Seq is the highest Seq of the catalog's versions: the number of fee plans uploaded when it was
// built, uploads being numbered from 1 without gaps.
func (c *Catalog) Seq() int { return c.seq }

// Plan returns the newest version of the plan named id: the one in force from the latest date.
func (c *Catalog) Plan(id string) (*Plan, bool) {
	vs := c.versions[id]
	if len(vs) == 0 {
		return nil, false
	}
	return vs[len(vs)-1], true
}

// PlanOn returns the version of the plan named id that prices a purchase of date d (in
// Shanghai): the newest whose first date is d or before.
func (c *Catalog) PlanOn(id string, d events.Date) (*Plan, bool) {
	vs := c.versions[id]
	for i := len(vs) - 1; i >= 0; i-- {
		if compareDates(vs[i].From, d) <= 0 {
			return vs[i], true
		}
	}
	return nil, false
}

// Versions lists the versions of the plan named id, oldest first.
func (c *Catalog) Versions(id string) []*Plan { return slices.Clone(c.versions[id]) }

// All lists every version of every plan, by id, oldest first.
func (c *Catalog) All() []*Plan {
	var out []*Plan
	for _, id := range c.PlanIDs() {
		out = append(out, c.versions[id]...)
	}
	return out
}

// PlanIDs lists the plans' ids, sorted.
func (c *Catalog) PlanIDs() []string {
	ids := make([]string, 0, len(c.versions))
	for id := range c.versions {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

// Load reads and validates the plans and the foreign-card comparison embedded in the binary.
func Load() (*Catalog, error) {
	return LoadFS(data)
}

// LoadFS reads and validates plans from fsys: every data/plans/*.json, and data/foreign_card.json.
func LoadFS(fsys fs.FS) (*Catalog, error) {
	files, foreign, err := ShippedFiles(fsys)
	if err != nil {
		return nil, err
	}
	plans, err := ParseFiles(files)
	if err != nil {
		return nil, err
	}
	fc, err := ParseForeignCard(foreign)
	if err != nil {
		return nil, fmt.Errorf("foreign-card comparison: %w", err)
	}
	return NewCatalog(fc, plans...)
}

// ShippedFiles reads the plan files (data/plans/*.json, by name) and the foreign-card comparison
// (data/foreign_card.json) of fsys; nil reads those embedded in the binary.
func ShippedFiles(fsys fs.FS) (plans map[string][]byte, foreign []byte, err error) {
	if fsys == nil {
		fsys = data
	}
	names, err := fs.Glob(fsys, "data/plans/*.json")
	if err != nil {
		return nil, nil, fmt.Errorf("list fee plans: %w", err)
	}
	if len(names) == 0 {
		return nil, nil, errors.New("no fee plans in data/plans")
	}
	plans = map[string][]byte{}
	for _, name := range names {
		b, err := fs.ReadFile(fsys, name)
		if err != nil {
			return nil, nil, fmt.Errorf("read fee plan: %w", err)
		}
		plans[path.Base(name)] = b
	}
	if foreign, err = fs.ReadFile(fsys, "data/foreign_card.json"); err != nil {
		return nil, nil, fmt.Errorf("read foreign-card comparison: %w", err)
	}
	return plans, foreign, nil
}

// ForeignCardFile is the name of the foreign-card comparison in a directory of fee plans.
const ForeignCardFile = "foreign_card.json"

// ReadDir reads a directory of fee plans: every *.json at its top is a plan (<id>.json, or
// <id>@YYYY-MM-DD.json for a version that prices the purchases from that date on), but
// foreign_card.json, the foreign-card comparison, which may be absent (foreign is then nil).
func ReadDir(fsys fs.FS) (plans map[string][]byte, foreign []byte, err error) {
	names, err := fs.Glob(fsys, "*.json")
	if err != nil {
		return nil, nil, fmt.Errorf("list fee plans: %w", err)
	}
	if len(names) > maxPlanFiles {
		return nil, nil, fmt.Errorf("%d fee plan files, more than %d", len(names), maxPlanFiles)
	}
	plans = map[string][]byte{}
	for _, name := range names {
		b, err := fs.ReadFile(fsys, name)
		if err != nil {
			return nil, nil, fmt.Errorf("read fee plan: %w", err)
		}
		if name == ForeignCardFile {
			foreign = b
			continue
		}
		plans[name] = b
	}
	if len(plans) == 0 {
		return nil, nil, errors.New("no fee plans")
	}
	return plans, foreign, nil
}

// ParseFiles parses plan files by name, each named after its plan's id, with the version's first
// date after an @ when it has one.
func ParseFiles(files map[string][]byte) ([]*Plan, error) {
	names := make([]string, 0, len(files))
	for name := range files {
		names = append(names, name)
	}
	slices.Sort(names)
	plans := make([]*Plan, 0, len(names))
	for _, name := range names {
		p, err := ParsePlan(files[name])
		if err != nil {
			return nil, fmt.Errorf("fee plan %s: %w", name, err)
		}
		base := strings.TrimSuffix(path.Base(name), ".json")
		id, date, dated := strings.Cut(base, "@")
		if p.ID != id {
			return nil, fmt.Errorf("fee plan %s: id %q, want the file's name %q", name, p.ID, id)
		}
		if dated {
			t, err := time.Parse(time.DateOnly, date)
			if err != nil || len(date) != len(time.DateOnly) {
				return nil, fmt.Errorf("fee plan %s: after the @: want a date yyyy-mm-dd", name)
			}
			p.From = events.Date{Year: t.Year(), Month: t.Month(), Day: t.Day()}
		}
		plans = append(plans, p)
	}
	return plans, nil
}

type planFile struct {
	ID          string         `json:"id"`
	Description string         `json:"description"`
	Currency    string         `json:"currency"`
	Categories  []categoryFile `json:"categories"`
	Refund      struct {
		MerchantDiscount RefundPolicy `json:"merchant_discount"`
		Network          RefundPolicy `json:"network"`
	} `json:"refund"`
}

type categoryFile struct {
	Name             string    `json:"name"`
	Default          bool      `json:"default"`
	MCCs             []string  `json:"mccs"`
	MerchantDiscount *rateFile `json:"merchant_discount"`
	Network          *rateFile `json:"network"`
}

type rateFile struct {
	Rate string `json:"rate"`
	Cap  string `json:"cap"` // optional: no cap when absent
}

// checkPlanID returns why id is not a plan's id, or "": lowercase letters, digits and dashes, as a
// file can be named after it.
func checkPlanID(id string) string {
	if len(id) > maxPlanIDBytes {
		return fmt.Sprintf("%d bytes, more than %d", len(id), maxPlanIDBytes)
	}
	for i := 0; i < len(id); i++ {
		if c := id[i]; !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-') {
			return "want lowercase letters, digits and dashes"
		}
	}
	return ""
}

// ParsePlan reads one plan file strictly (unknown fields refused) and validates it: CNY, a name
// and both rates for every category, rates within [0, 0.10], caps in whole fen, four-digit MCCs
// each in one category at most, exactly one default category, and known refund policies.
func ParsePlan(b []byte) (*Plan, error) {
	var f planFile
	if err := decodeStrict(b, &f); err != nil {
		return nil, err
	}
	switch {
	case f.ID == "":
		return nil, errors.New("id: missing")
	case checkPlanID(f.ID) != "":
		return nil, fmt.Errorf("id: %s", checkPlanID(f.ID))
	case events.CheckText(f.Description, maxDescriptionBytes) != "":
		return nil, fmt.Errorf("description: %s", events.CheckText(f.Description, maxDescriptionBytes))
	case strings.Contains(strings.ToLower(f.Description), "refund"):
		return nil, errors.New("description: leave refunds out of it: the refund field says what a refund returns, and the engine states it in words")
	case f.Currency != "CNY":
		return nil, fmt.Errorf("currency %q: plans price CNY", f.Currency)
	case len(f.Categories) == 0:
		return nil, errors.New("categories: none")
	}
	p := &Plan{ID: f.ID, Description: f.Description, byMCC: map[string]*Category{}}
	for _, pol := range []struct {
		name string
		v    RefundPolicy
		dst  *RefundPolicy
	}{{"refund.merchant_discount", f.Refund.MerchantDiscount, &p.RefundMDR}, {"refund.network", f.Refund.Network, &p.RefundNet}} {
		if pol.v != RefundProportional && pol.v != RefundRetained {
			return nil, fmt.Errorf("%s: %q, want %q or %q", pol.name, pol.v, RefundProportional, RefundRetained)
		}
		*pol.dst = pol.v
	}
	p.Categories = make([]Category, len(f.Categories))
	for i, cf := range f.Categories {
		c := &p.Categories[i]
		if cf.Name == "" {
			return nil, fmt.Errorf("category %d: name missing", i)
		}
		if why := events.CheckText(cf.Name, maxPlanIDBytes); why != "" {
			return nil, fmt.Errorf("category %d: name %s", i, why)
		}
		c.Name = cf.Name
		var err error
		if c.MerchantDiscount, err = parseRate(cf.MerchantDiscount); err != nil {
			return nil, fmt.Errorf("category %q: merchant_discount: %w", cf.Name, err)
		}
		if c.Network, err = parseRate(cf.Network); err != nil {
			return nil, fmt.Errorf("category %q: network: %w", cf.Name, err)
		}
		if cf.Default {
			if len(cf.MCCs) != 0 {
				return nil, fmt.Errorf("category %q: the default category names no mccs", cf.Name)
			}
			if p.def != nil {
				return nil, fmt.Errorf("category %q: a second default category", cf.Name)
			}
			p.def = c
			continue
		}
		if len(cf.MCCs) == 0 {
			return nil, fmt.Errorf("category %q: no mccs and not the default", cf.Name)
		}
		for _, mcc := range cf.MCCs {
			if !ValidMCC(mcc) {
				return nil, fmt.Errorf("category %q: mcc %q is not four digits", cf.Name, mcc)
			}
			if prior, ok := p.byMCC[mcc]; ok {
				return nil, fmt.Errorf("category %q: mcc %s is already in %q", cf.Name, mcc, prior.Name)
			}
			p.byMCC[mcc] = c
		}
		c.MCCs = slices.Clone(cf.MCCs)
	}
	if p.def == nil {
		return nil, errors.New("categories: no default category")
	}
	return p, nil
}

type foreignFile struct {
	Description   string `json:"description"`
	SurchargeRate string `json:"surcharge_rate"`
	SurchargeOver string `json:"surcharge_over"`
	FXMarginRate  string `json:"fx_margin_rate"`
}

// ParseForeignCard reads the foreign-card comparison strictly and validates it.
func ParseForeignCard(b []byte) (ForeignCard, error) {
	var f foreignFile
	if err := decodeStrict(b, &f); err != nil {
		return ForeignCard{}, err
	}
	var (
		fc  = ForeignCard{Description: f.Description}
		err error
	)
	if fc.SurchargeRate, err = parseRateValue(f.SurchargeRate); err != nil {
		return ForeignCard{}, fmt.Errorf("surcharge_rate: %w", err)
	}
	if fc.FXMarginRate, err = parseRateValue(f.FXMarginRate); err != nil {
		return ForeignCard{}, fmt.Errorf("fx_margin_rate: %w", err)
	}
	if fc.SurchargeOver, err = parseFen(f.SurchargeOver); err != nil {
		return ForeignCard{}, fmt.Errorf("surcharge_over: %w", err)
	}
	return fc, nil
}

func decodeStrict(b []byte, dst any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		return fmt.Errorf("decode: %w", err)
	}
	if dec.More() {
		return errors.New("decode: data after the object")
	}
	return nil
}

func parseRate(f *rateFile) (Rate, error) {
	if f == nil {
		return Rate{}, errors.New("missing")
	}
	r, err := parseRateValue(f.Rate)
	if err != nil {
		return Rate{}, fmt.Errorf("rate: %w", err)
	}
	if f.Cap == "" {
		return Rate{Rate: r, Cap: -1}, nil
	}
	capFen, err := parseFen(f.Cap)
	if err != nil {
		return Rate{}, fmt.Errorf("cap: %w", err)
	}
	return Rate{Rate: r, Cap: capFen}, nil
}

func parseRateValue(s string) (decimal.Decimal, error) {
	if s == "" {
		return decimal.Decimal{}, errors.New("missing")
	}
	r, err := decimal.NewFromString(s)
	if err != nil {
		return decimal.Decimal{}, fmt.Errorf("%q is not a decimal", s)
	}
	if r.IsNegative() || r.GreaterThan(decimal.RequireFromString(maxRate)) {
		return decimal.Decimal{}, fmt.Errorf("%s is outside 0 to %s", s, maxRate)
	}
	return r, nil
}

// parseFen reads a non-negative CNY amount with at most two decimals as fen.
func parseFen(s string) (int64, error) {
	d, err := decimal.NewFromString(s)
	if err != nil {
		return 0, fmt.Errorf("%q is not a decimal", s)
	}
	fen := d.Shift(fenPlaces)
	if d.IsNegative() || !fen.IsInteger() || fen.GreaterThan(decimal.NewFromInt(maxAmountFen)) {
		return 0, fmt.Errorf("%s is not an amount of whole fen from 0 to %s", s, ledger.FormatAmount(maxAmountFen, "CNY"))
	}
	return fen.IntPart(), nil
}

// ValidMCC reports whether mcc is a merchant category code: four ASCII digits.
func ValidMCC(mcc string) bool {
	if len(mcc) != mccDigits {
		return false
	}
	for i := 0; i < len(mcc); i++ {
		if mcc[i] < '0' || mcc[i] > '9' {
			return false
		}
	}
	return true
}
