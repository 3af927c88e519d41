package medical

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/shopspring/decimal"
)

// Class is an item's class in the insurance catalogue.
type Class string

const (
	ClassA Class = "A" // in the catalogue, fully eligible (甲类)
	ClassB Class = "B" // in the catalogue, eligible after the cardholder's self-pay share (乙类)
	ClassC Class = "C" // outside the catalogue: paid in cash (丙类, 自费)
)

// Classes lists the catalogue classes.
func Classes() []Class { return []Class{ClassA, ClassB, ClassC} }

const (
	// MaxItems bounds a basket's lines. Institutions settle a visit's bill by catalogue item; a
	// long stay with several hundred lines settles in interim settlements (中途结算) well under it.
	MaxItems = 500
	// MaxItemCodeBytes bounds an item's catalogue code: national codes are 20 to 27 characters.
	MaxItemCodeBytes = 64
)

// Item is one part of a basket: an item of the catalogue (its code, optional), its class as the
// treating city's catalogue gives it, and its amount. A bill line is one item, or two when a part
// of it is paid in cash (Catalogue.Classify).
type Item struct {
	Code   string
	Class  Class
	Amount int64 // fen, positive
	// SelfPay is a class B item's self-pay share as the catalogue states it; nil takes the
	// insured city's policy's class_b_self_pay_ratio.
	SelfPay *decimal.Decimal
}

// Basket is what an institution asks to settle: the items of one visit of one kind.
type Basket struct {
	VisitKind VisitKind
	Items     []Item
	// Elsewhere is where the visit was treated when that is not the insured city; nil when it is.
	Elsewhere *Elsewhere
}

// maxBasketItems bounds a basket's items: a bill's MaxItems lines give at most two items each.
const maxBasketItems = 2 * MaxItems

// ErrInvalid is wrapped by the errors of a request that cannot be settled as written: a malformed
// basket, an institution's unknown kind or tier.
var ErrInvalid = errors.New("invalid medical request")

// Validate checks a basket's shape: a known visit kind, 1 to MaxItems items of known classes with
// positive amounts, and a total within MaxAmount.
func (b *Basket) Validate() error {
	if !slices.Contains(VisitKinds(), b.VisitKind) {
		return fmt.Errorf("%w: visit kind %q, want one of %q", ErrInvalid, b.VisitKind, VisitKinds())
	}
	if len(b.Items) == 0 {
		return fmt.Errorf("%w: no items", ErrInvalid)
	}
	if len(b.Items) > maxBasketItems {
		return fmt.Errorf("%w: %d items, at most %d", ErrInvalid, len(b.Items), maxBasketItems)
	}
	var total int64
	for i, it := range b.Items {
		switch {
		case !slices.Contains(Classes(), it.Class):
			return fmt.Errorf("%w: item %d: class %q, want A, B or C", ErrInvalid, i, it.Class)
		case it.Amount <= 0:
			return fmt.Errorf("%w: item %d: amount must be positive", ErrInvalid, i)
		case it.Amount > MaxAmount:
			return fmt.Errorf("%w: item %d: amount over %s", ErrInvalid, i, FormatAmount(MaxAmount))
		case it.Code != "" && checkCode(it.Code) != "":
			return fmt.Errorf("%w: item %d: code %s", ErrInvalid, i, checkCode(it.Code))
		case it.SelfPay != nil && (it.Class != ClassB || it.SelfPay.IsNegative() || it.SelfPay.GreaterThan(decimal.NewFromInt(1))):
			return fmt.Errorf("%w: item %d: a self-pay share belongs to a class B item, between 0 and 1", ErrInvalid, i)
		}
		total += it.Amount // both at most MaxAmount: no overflow
		if total > MaxAmount {
			return fmt.Errorf("%w: total over %s", ErrInvalid, FormatAmount(MaxAmount))
		}
	}
	return nil
}

// Accumulators are a cardholder's yearly running totals under one policy: the deductible met per
// deductible bucket, and what the fund paid per cap bucket, in fen.
type Accumulators struct {
	Deductible map[string]int64 `json:"deductible"`
	Fund       map[string]int64 `json:"fund"`
}

// Clone returns a deep copy of a, with empty maps for nil ones.
func (a Accumulators) Clone() Accumulators {
	c := Accumulators{Deductible: maps.Clone(a.Deductible), Fund: maps.Clone(a.Fund)}
	if c.Deductible == nil {
		c.Deductible = map[string]int64{}
	}
	if c.Fund == nil {
		c.Fund = map[string]int64{}
	}
	return c
}

// Plus returns a with d added.
func (a Accumulators) Plus(d Accumulators) Accumulators {
	c := a.Clone()
	for k, v := range d.Deductible {
		c.Deductible[k] += v
	}
	for k, v := range d.Fund {
		c.Fund[k] += v
	}
	return c
}

// Minus returns a with d taken away: a settlement's contribution undone by its cancellation or
// reversal. Taking away more than a holds means d was never added, an error.
func (a Accumulators) Minus(d Accumulators) (Accumulators, error) {
	c := a.Clone()
	for k, v := range d.Deductible {
		if c.Deductible[k] < v {
			return a, fmt.Errorf("deductible %s: taking away %d from %d", k, v, c.Deductible[k])
		}
		c.Deductible[k] -= v
	}
	for k, v := range d.Fund {
		if c.Fund[k] < v {
			return a, fmt.Errorf("fund cap %s: taking away %d from %d", k, v, c.Fund[k])
		}
		c.Fund[k] -= v
	}
	return c, nil
}

// Split is how a basket is paid. Fund + Personal + Cash = Total, each non-negative. The breakdown
// says why: OutOfCatalogue + PersonalAccountFirst + ClassBSelfPay + Deductible + CoPayment +
// OverCap + Fund = Total.
type Split struct {
	Total    int64
	Fund     int64 // the pooled fund's part
	Personal int64 // the personal medical account's part
	Cash     int64 // the card's funds' part

	OutOfCatalogue       int64 // class C items
	PersonalAccountFirst int64 // paid by the personal account before the fund's share was worked out
	ClassBSelfPay        int64 // the cardholder's self-pay share of class B items
	Deductible           int64 // the part of the eligible amount that met the deductible
	CoPayment            int64 // the cardholder's share above the deductible
	OverCap              int64 // the fund's share past its yearly cap, left to the cardholder

	// InsuredCity is the policy's city, whose fund pays; Elsewhere the treating city when it is
	// another (nil at home).
	InsuredCity string
	Elsewhere   *Elsewhere

	// Rules is the trail: each step of the policy with the amount it decided.
	Rules []Rule
	// Delta is what the split adds to the cardholder's yearly accumulators.
	Delta Accumulators
}

// Rule is one step of a split's trail.
type Rule struct {
	Step   string `json:"step"`
	Amount int64  `json:"amount"`
	Note   string `json:"note"`
}

// Trail steps, in the order a split takes them.
const (
	StepTotal                = "total"
	StepOutOfCatalogue       = "out_of_catalogue"
	StepPersonalAccountFirst = "personal_account_first"
	StepClassBSelfPay        = "class_b_self_pay"
	StepDeductible           = "deductible"
	StepFundRatio            = "fund_ratio"
	StepCoPayment            = "co_payment"
	StepFundCap              = "fund_cap"
	StepFund                 = "fund"
	StepPersonalAccount      = "personal_account"
	StepCash                 = "cash"
)

// Split works out how the policy pays basket b at an institution of tier t, for a cardholder
// whose accumulators for the policy's year are acc and whose personal account can spend
// personalAvailable fen. It reads nothing else and changes nothing.
//
// The steps: class C items are cash. If the visit kind's rule says the personal account pays
// first, it pays the catalogue items (class B first) up to its balance. Of the class B items left,
// the cardholder's self-pay share is taken (half-even to the fen). What remains of the catalogue
// items is eligible: the deductible takes its part (what is left of a yearly one, or all of a
// per-visit one), the fund pays its ratio of the rest (half-even to the fen) and the cardholder
// the co-payment, and the fund's part is cut to what its yearly caps have left. The cardholder's
// share of the catalogue items is paid by the personal account up to its balance, the rest and
// the class C items in cash.
func (p *Policy) Split(b Basket, t Tier, acc Accumulators, personalAvailable int64) (Split, error) {
	if err := b.Validate(); err != nil {
		return Split{}, err
	}
	if !t.Valid() {
		return Split{}, fmt.Errorf("%w: tier %d, want 1 to 3", ErrInvalid, t)
	}
	rule := p.Visits[b.VisitKind]
	var s Split
	var catA, catB int64
	var classB []Item // the class B items, in order: the personal account pays them first, in order
	for _, it := range b.Items {
		switch it.Class {
		case ClassA:
			catA += it.Amount
		case ClassB:
			catB += it.Amount
			classB = append(classB, it)
		case ClassC:
			s.OutOfCatalogue += it.Amount
		}
	}
	s.Total = catA + catB + s.OutOfCatalogue
	s.InsuredCity, s.Elsewhere = p.City, b.Elsewhere
	where := ""
	if b.Elsewhere != nil {
		where = ", treated in " + b.Elsewhere.City
	}
	s.rule(StepTotal, s.Total, "%d %s, %s visit at a tier %d institution%s, policy %s",
		len(b.Items), plural(len(b.Items), "item", "items"), b.VisitKind, t, where, p.ID())
	s.rule(StepOutOfCatalogue, s.OutOfCatalogue, "class C items, unknown codes and prices over the catalogue's ceilings: cash")

	available := max(personalAvailable, 0)
	remA, remB := catA, catB
	if rule.PersonalAccountFirst {
		first := min(available, catA+catB)
		fromB := min(first, catB)
		remB -= fromB
		remA -= first - fromB
		available -= first
		s.PersonalAccountFirst = first
		s.rule(StepPersonalAccountFirst, first, "the personal account pays the catalogue items first, class B first, up to its balance of %s",
			FormatAmount(max(personalAvailable, 0)))
	}

	s.ClassBSelfPay = p.classBSelfPay(&s, classB, catB-remB)
	eligible := remA + remB - s.ClassBSelfPay

	ded := p.Deductibles[rule.Deductible]
	left := ded.ByTier[t]
	var dedNote string
	if ded.Scope == PerYear {
		used := acc.Deductible[rule.Deductible]
		left = max(left-used, 0)
		dedNote = fmt.Sprintf("yearly deductible %q of %s, %s met before, %s left", rule.Deductible,
			FormatAmount(ded.ByTier[t]), FormatAmount(used), FormatAmount(left))
	} else {
		dedNote = fmt.Sprintf("per-visit deductible %q of %s at tier %d", rule.Deductible, FormatAmount(left), t)
	}
	s.Deductible = min(eligible, left)
	s.rule(StepDeductible, s.Deductible, "%s of the eligible %s", dedNote, FormatAmount(eligible))
	above := eligible - s.Deductible

	ratio, cutNote := p.fundRatio(rule, t, b.Elsewhere)
	share := mulRatio(above, ratio)
	s.rule(StepFundRatio, share, "the fund pays %s of %s above the deductible at tier %d%s, half-even to the fen",
		formatRatio(ratio), FormatAmount(above), t, cutNote)
	s.CoPayment = above - share
	s.rule(StepCoPayment, s.CoPayment, "the cardholder's %s of %s", formatRatio(decimal.NewFromInt(1).Sub(ratio)), FormatAmount(above))

	capLeft := MaxAmount
	notes := make([]string, 0, len(rule.Caps))
	for _, c := range rule.Caps {
		paid := acc.Fund[c]
		l := max(p.Caps[c]-paid, 0)
		capLeft = min(capLeft, l)
		notes = append(notes, fmt.Sprintf("%q %s with %s paid before", c, FormatAmount(p.Caps[c]), FormatAmount(paid)))
	}
	s.Fund = min(share, capLeft)
	s.OverCap = share - s.Fund
	s.rule(StepFundCap, s.OverCap, "yearly fund caps %s leave %s; the fund's share past them falls to the cardholder",
		strings.Join(notes, ", "), FormatAmount(capLeft))
	s.rule(StepFund, s.Fund, "the pooled fund pays")

	cardholderShare := s.ClassBSelfPay + s.Deductible + s.CoPayment + s.OverCap
	later := min(available, cardholderShare)
	s.Personal = s.PersonalAccountFirst + later
	s.rule(StepPersonalAccount, s.Personal, "the personal medical account pays %s of the cardholder's %s share of catalogue items, up to its balance",
		FormatAmount(later), FormatAmount(cardholderShare))
	s.Cash = s.Total - s.Fund - s.Personal
	s.rule(StepCash, s.Cash, "the card's funds pay the rest")

	s.Delta = Accumulators{Deductible: map[string]int64{}, Fund: map[string]int64{}}
	if s.Deductible > 0 {
		s.Delta.Deductible[rule.Deductible] = s.Deductible
	}
	if s.Fund > 0 {
		for _, c := range rule.Caps {
			s.Delta.Fund[c] = s.Fund
		}
	}
	if err := s.check(); err != nil {
		return Split{}, fmt.Errorf("policy %s: %w", p.ID(), err)
	}
	return s, nil
}

// classBSelfPay is the cardholder's self-pay share of the class B items, less the paidFirst fen
// the personal account paid of them first (taken from the first items first): each item's share
// is its catalogue's or the policy's, and the items of one share are summed before the share is
// taken, half-even to the fen, so that a basket of one share rounds once.
func (p *Policy) classBSelfPay(s *Split, classB []Item, paidFirst int64) int64 {
	type group struct {
		ratio  decimal.Decimal
		amount int64
	}
	var groups []group
	for _, it := range classB {
		left := it.Amount - min(paidFirst, it.Amount)
		paidFirst -= it.Amount - left
		ratio := p.ClassBSelfPay
		if it.SelfPay != nil {
			ratio = *it.SelfPay
		}
		i := slices.IndexFunc(groups, func(g group) bool { return g.ratio.Equal(ratio) })
		if i < 0 {
			groups, i = append(groups, group{ratio: ratio}), len(groups)
		}
		groups[i].amount += left
	}
	if len(groups) == 0 {
		groups = append(groups, group{ratio: p.ClassBSelfPay})
	}
	var total int64
	notes := make([]string, len(groups))
	for i, g := range groups {
		total += mulRatio(g.amount, g.ratio)
		notes[i] = fmt.Sprintf("%s of %s", formatRatio(g.ratio), FormatAmount(g.amount))
	}
	s.rule(StepClassBSelfPay, total, "class B items paid by the cardholder: %s, half-even to the fen", strings.Join(notes, ", "))
	return total
}

func (s *Split) rule(step string, amount int64, format string, args ...any) {
	s.Rules = append(s.Rules, Rule{Step: step, Amount: amount, Note: fmt.Sprintf(format, args...)})
}

// check asserts the split's invariants: a failure is a bug in Split, never the input's fault.
func (s *Split) check() error {
	parts := []int64{s.Fund, s.Personal, s.Cash, s.OutOfCatalogue, s.PersonalAccountFirst, s.ClassBSelfPay,
		s.Deductible, s.CoPayment, s.OverCap}
	for _, v := range parts {
		if v < 0 {
			return fmt.Errorf("split invariant: a negative part in %+v", *s)
		}
	}
	if s.Fund+s.Personal+s.Cash != s.Total {
		return fmt.Errorf("split invariant: parts %d + %d + %d do not sum to %d", s.Fund, s.Personal, s.Cash, s.Total)
	}
	if s.OutOfCatalogue+s.PersonalAccountFirst+s.ClassBSelfPay+s.Deductible+s.CoPayment+s.OverCap+s.Fund != s.Total {
		return fmt.Errorf("split invariant: the breakdown does not sum to %d: %+v", s.Total, *s)
	}
	if s.Cash < s.OutOfCatalogue {
		return fmt.Errorf("split invariant: cash %d pays less than the class C items %d", s.Cash, s.OutOfCatalogue)
	}
	return nil
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
