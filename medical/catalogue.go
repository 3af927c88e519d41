package medical

import (
	"bytes"
	"embed"
	"encoding/json"
	"fmt"
	"io/fs"
	"slices"
	"sort"

	"github.com/shopspring/decimal"

	"github.com/joinincard/engine/cities"
	"github.com/joinincard/engine/events"
)

// ItemKind is what a catalogue item is: a drug, a medical service or a consumable.
type ItemKind string

const (
	Drug       ItemKind = "drug"       // 药品
	Service    ItemKind = "service"    // 医疗服务项目
	Consumable ItemKind = "consumable" // 医用耗材
)

// ItemKinds lists the kinds of catalogue item.
func ItemKinds() []ItemKind { return []ItemKind{Drug, Service, Consumable} }

const (
	// maxCatalogueItems bounds one city's catalogue: a province's catalogue holds about 3,000
	// drugs, 5,000 services and a few tens of thousands of consumables.
	maxCatalogueItems = 100_000
	// maxUnitBytes bounds an item's unit of sale ("片", "盒", "次"): a word.
	maxUnitBytes = 32
	// MaxQuantity bounds a bill line's quantity: units are the smallest the institution bills
	// (a tablet, a day, a millilitre bottle), and a long stay bills a few thousand of one item.
	MaxQuantity int64 = 100_000
	// maxCatalogueFiles bounds a directory of catalogues: 41 cities with a few versions each.
	maxCatalogueFiles = 10_000
)

// CatalogueItem is one entry of a city's catalogue.
type CatalogueItem struct {
	Code   string
	Kind   ItemKind
	NameZH string
	NameEN string
	Unit   string
	Class  Class
	// SelfPay is a class B item's self-pay share as the catalogue states it; nil leaves the share
	// to the insured city's policy (class_b_self_pay_ratio).
	SelfPay *decimal.Decimal
	// Ceiling is the most the fund's catalogue accepts per unit, in fen (最高支付标准); 0 for none.
	// What a unit costs above it is paid in cash.
	Ceiling int64
}

// Catalogue is one city's medical catalogue (医保目录), or a version of it from a date on: the
// drugs, services and consumables the city's insurance covers, by code, with their class.
// Where a bill is treated, that city's catalogue decides what is covered.
type Catalogue struct {
	City string // the treating city's canonical id
	Name string
	// From is the first date this version classifies; zero for a file without a date. Seq orders
	// versions with one From, the later uploaded winning.
	From  events.Date
	Seq   int
	items map[string]*CatalogueItem
	codes []string // in the file's order
}

// ID names a catalogue: its city's canonical id.
func (c *Catalogue) ID() string { return c.City }

// Item returns the entry of code.
func (c *Catalogue) Item(code string) (*CatalogueItem, bool) {
	it, ok := c.items[code]
	return it, ok
}

// Len is the number of entries.
func (c *Catalogue) Len() int { return len(c.codes) }

// Version names the version for people: "shanghai from 2026-01-01", "shanghai" for the undated one.
func (c *Catalogue) Version() string {
	if c.From == (events.Date{}) {
		return c.City
	}
	return c.City + " from " + c.From.String()
}

// catalogueFile is a catalogue's JSON form: amounts are decimal strings in yuan per unit, ratios
// decimal strings between 0 and 1.
type catalogueFile struct {
	City     string          `json:"city"`
	Name     string          `json:"name"`
	Currency string          `json:"currency"`
	Items    []catalogueLine `json:"items"`
}

type catalogueLine struct {
	Code         string   `json:"code"`
	Kind         ItemKind `json:"kind"`
	NameZH       string   `json:"name_zh"`
	NameEN       string   `json:"name_en"`
	Unit         string   `json:"unit,omitempty"`
	Class        Class    `json:"class"`
	SelfPayRatio string   `json:"self_pay_ratio,omitempty"`
	PriceCeiling string   `json:"price_ceiling,omitempty"`
}

// ParseCatalogue reads and checks one catalogue file. Unknown fields are refused, and every
// refusal names the field: "items[3].self_pay_ratio: ...".
func ParseCatalogue(data []byte) (*Catalogue, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var f catalogueFile
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("decode catalogue: %w", err)
	}
	if dec.More() {
		return nil, fmt.Errorf("decode catalogue: data after the catalogue object")
	}
	switch {
	case f.City == "" || events.CheckText(f.City, maxNameBytes) != "":
		return nil, fmt.Errorf("city: must be 1 to %d bytes of text without control characters", maxNameBytes)
	case f.Name == "" || events.CheckText(f.Name, maxNameBytes) != "":
		return nil, fmt.Errorf("name: must be 1 to %d bytes of text without control characters", maxNameBytes)
	case f.Currency != "CNY":
		return nil, fmt.Errorf("currency: %q, want CNY", f.Currency)
	case len(f.Items) == 0 || len(f.Items) > maxCatalogueItems:
		return nil, fmt.Errorf("items: want 1 to %d items, not %d", maxCatalogueItems, len(f.Items))
	}
	c := &Catalogue{City: cities.Canonical(f.City), Name: f.Name, items: make(map[string]*CatalogueItem, len(f.Items))}
	for i, l := range f.Items {
		it, err := parseCatalogueLine(l)
		if err != nil {
			return nil, fmt.Errorf("items[%d].%w", i, err)
		}
		if _, dup := c.items[it.Code]; dup {
			return nil, fmt.Errorf("items[%d].code: %q is in the catalogue twice", i, it.Code)
		}
		c.items[it.Code] = it
		c.codes = append(c.codes, it.Code)
	}
	return c, nil
}

func parseCatalogueLine(l catalogueLine) (*CatalogueItem, error) {
	it := &CatalogueItem{Code: l.Code, Kind: l.Kind, NameZH: l.NameZH, NameEN: l.NameEN, Unit: l.Unit, Class: l.Class}
	if why := checkCode(l.Code); why != "" {
		return nil, fmt.Errorf("code: %s", why)
	}
	switch {
	case !slices.Contains(ItemKinds(), l.Kind):
		return nil, fmt.Errorf("kind: %q, want one of %q", l.Kind, ItemKinds())
	case l.NameZH == "" || events.CheckText(l.NameZH, maxNameBytes) != "":
		return nil, fmt.Errorf("name_zh: must be 1 to %d bytes of text without control characters", maxNameBytes)
	case l.NameEN == "" || events.CheckText(l.NameEN, maxNameBytes) != "":
		return nil, fmt.Errorf("name_en: must be 1 to %d bytes of text without control characters", maxNameBytes)
	case events.CheckText(l.Unit, maxUnitBytes) != "":
		return nil, fmt.Errorf("unit: must be at most %d bytes of text without control characters", maxUnitBytes)
	case !slices.Contains(Classes(), l.Class):
		return nil, fmt.Errorf(`class: %q, want "A", "B" or "C"`, l.Class)
	case l.SelfPayRatio != "" && l.Class != ClassB:
		return nil, fmt.Errorf("self_pay_ratio: only a class B item has a self-pay share, this one is class %s", l.Class)
	case l.PriceCeiling != "" && l.Class == ClassC:
		return nil, fmt.Errorf("price_ceiling: a class C item is paid in cash whatever its price: it has no ceiling")
	}
	if l.SelfPayRatio != "" {
		r, err := parseRatio(l.SelfPayRatio)
		if err != nil {
			return nil, fmt.Errorf("self_pay_ratio: %w", err)
		}
		it.SelfPay = &r
	}
	if l.PriceCeiling != "" {
		fen, err := ParseAmount(l.PriceCeiling)
		if err != nil {
			return nil, fmt.Errorf("price_ceiling: %w", err)
		}
		if fen == 0 {
			return nil, fmt.Errorf("price_ceiling: must be positive (leave it out for no ceiling)")
		}
		it.Ceiling = fen
	}
	return it, nil
}

// checkCode returns why code is not an item code, or "": 1 to MaxItemCodeBytes of printable
// ASCII without spaces, as the national codes are written.
func checkCode(code string) string {
	if code == "" || len(code) > MaxItemCodeBytes {
		return fmt.Sprintf("must be 1 to %d bytes", MaxItemCodeBytes)
	}
	for j := 0; j < len(code); j++ {
		if c := code[j]; c <= ' ' || c >= 0x7f {
			return "must be printable ascii without spaces"
		}
	}
	return ""
}

// Catalogues is a set of catalogues, one per city, each with its versions.
type Catalogues struct {
	byCity map[string][]*Catalogue // by From, then Seq
}

// NewCatalogues builds a set, refusing two versions of one city with one first date and seq.
func NewCatalogues(list ...*Catalogue) (*Catalogues, error) {
	cs := &Catalogues{byCity: map[string][]*Catalogue{}}
	for _, c := range list {
		for _, o := range cs.byCity[c.City] {
			if o.From == c.From && o.Seq == c.Seq {
				if c.From == (events.Date{}) {
					return nil, fmt.Errorf("two catalogues for %s", c.City)
				}
				return nil, fmt.Errorf("two versions of catalogue %s from %s", c.City, c.From)
			}
		}
		cs.byCity[c.City] = append(cs.byCity[c.City], c)
	}
	for _, vs := range cs.byCity {
		slices.SortStableFunc(vs, func(a, b *Catalogue) int {
			if a.From != b.From {
				if dateAfter(a.From, b.From) {
					return 1
				}
				return -1
			}
			return a.Seq - b.Seq
		})
	}
	return cs, nil
}

// On returns the version of city's (any of its names) catalogue in force on date d: the newest
// whose first date is d or before.
func (cs *Catalogues) On(city string, d events.Date) (*Catalogue, bool) {
	if cs == nil {
		return nil, false
	}
	vs := cs.byCity[cities.Canonical(city)]
	for i := len(vs) - 1; i >= 0; i-- {
		if !dateAfter(vs[i].From, d) {
			return vs[i], true
		}
	}
	return nil, false
}

// All lists every version by city, then first date, then seq.
func (cs *Catalogues) All() []*Catalogue {
	var out []*Catalogue
	for _, vs := range cs.byCity {
		out = append(out, vs...)
	}
	sort.SliceStable(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.City != b.City {
			return a.City < b.City
		}
		if a.From != b.From {
			return dateAfter(b.From, a.From)
		}
		return a.Seq < b.Seq
	})
	return out
}

// ReadCatalogueDir reads every *.json file of fsys's root, by name, as ParseCatalogueFiles reads them.
func ReadCatalogueDir(fsys fs.FS) (map[string][]byte, error) {
	return readDataDir(fsys, maxCatalogueFiles, "catalogue", "catalogues")
}

// ParseCatalogueFiles parses catalogue files by name. Each is named after its city's canonical id
// ("shanghai.json"); a version from a date on has the date after an @ ("shanghai@2026-07-01.json").
func ParseCatalogueFiles(files map[string][]byte) ([]*Catalogue, error) {
	return parseVersionedFiles(files, ParseCatalogue, (*Catalogue).ID,
		func(c *Catalogue, from events.Date) { c.From = from }, "the catalogue of")
}

//go:embed catalogues/*.json
var catalogueFiles embed.FS

// SampleCatalogueFiles returns the bytes of the catalogues shipped with the engine, by file name.
func SampleCatalogueFiles() (map[string][]byte, error) {
	return embeddedFiles(catalogueFiles, "catalogues/*.json", "sample catalogues")
}

// SampleCatalogues returns the catalogues shipped with the engine (catalogues/*.json): a few
// dozen real-looking entries per city in the national code format, with sample classes and
// ceilings, not the cities' official catalogues.
func SampleCatalogues() (*Catalogues, error) {
	files, err := SampleCatalogueFiles()
	if err != nil {
		return nil, err
	}
	list, err := ParseCatalogueFiles(files)
	if err != nil {
		return nil, err
	}
	return NewCatalogues(list...)
}

// BillLine is one line of a bill as the institution writes it: an item's code, how many units,
// and the price of one, in fen.
type BillLine struct {
	Code      string
	Quantity  int64
	UnitPrice int64
}

// Bill is what an institution asks to settle: the lines of one visit of one kind, by code.
type Bill struct {
	VisitKind VisitKind
	Lines     []BillLine
}

// Why a part of a bill line is paid in cash, whatever the policy.
const (
	CashUnknownCode = "unknown_code" // the code is not in the treating city's catalogue
	CashClassC      = "class_c"      // the catalogue lists it as class C (自费)
	CashOverCeiling = "over_ceiling" // the unit price is above the catalogue's ceiling: the excess
)

// Line is a bill line as the treating city's catalogue classified it.
type Line struct {
	BillLine
	Amount int64 // Quantity × UnitPrice
	// Listed says the code is in the catalogue; the fields after it are the catalogue's.
	Listed  bool
	Kind    ItemKind
	NameZH  string
	NameEN  string
	Class   Class
	SelfPay *decimal.Decimal
	Ceiling int64
	// Covered is the part the class applies to: the amount, or for a price over the ceiling the
	// ceiling times the quantity; 0 for class C and unknown codes. Cash is the rest, paid in
	// cash whatever the policy, and CashReason says why ("" when Cash is 0); Note says it for
	// people, on the receipt.
	Covered    int64
	Cash       int64
	CashReason string
	Note       string
}

// Classification is a bill classified by a catalogue: its lines, and the basket the policy splits.
type Classification struct {
	Catalogue *Catalogue
	Lines     []Line
	Basket    Basket
}

// validateBill checks a bill's shape: 1 to MaxItems lines with codes, quantities 1 to MaxQuantity,
// positive unit prices, each line's amount and the total within MaxAmount.
func validateBill(lines []BillLine) error {
	if len(lines) == 0 {
		return fmt.Errorf("%w: no items", ErrInvalid)
	}
	if len(lines) > MaxItems {
		return fmt.Errorf("%w: %d items, at most %d", ErrInvalid, len(lines), MaxItems)
	}
	var total int64
	for i, l := range lines {
		switch {
		case checkCode(l.Code) != "":
			return fmt.Errorf("%w: item %d: code %s", ErrInvalid, i, checkCode(l.Code))
		case l.Quantity <= 0 || l.Quantity > MaxQuantity:
			return fmt.Errorf("%w: item %d: quantity must be 1 to %d", ErrInvalid, i, MaxQuantity)
		case l.UnitPrice <= 0 || l.UnitPrice > MaxAmount:
			return fmt.Errorf("%w: item %d: unit price must be positive and at most %s", ErrInvalid, i, FormatAmount(MaxAmount))
		case l.UnitPrice > MaxAmount/l.Quantity:
			return fmt.Errorf("%w: item %d: quantity times unit price over %s", ErrInvalid, i, FormatAmount(MaxAmount))
		}
		total += l.Quantity * l.UnitPrice // each at most MaxAmount: no overflow
		if total > MaxAmount {
			return fmt.Errorf("%w: total over %s", ErrInvalid, FormatAmount(MaxAmount))
		}
	}
	return nil
}

// ValidateBill checks a bill's shape, as Classify does before it classifies.
func ValidateBill(lines []BillLine) error { return validateBill(lines) }

// Classify classifies a bill of visit kind v by the catalogue: each line by its code, whatever
// the institution thinks its class is. A code the catalogue does not list is paid in cash; so is
// a class C item, and the part of a unit price above the item's ceiling. The basket it returns
// has for each line its covered part (class A or B, with the item's self-pay share) and its cash
// part (as class C), in the bill's order.
func (c *Catalogue) Classify(v VisitKind, lines []BillLine) (Classification, error) {
	out := Classification{Catalogue: c, Basket: Basket{VisitKind: v}}
	if !slices.Contains(VisitKinds(), v) {
		return out, fmt.Errorf("%w: visit kind %q, want one of %q", ErrInvalid, v, VisitKinds())
	}
	if err := validateBill(lines); err != nil {
		return out, err
	}
	out.Lines = make([]Line, len(lines))
	for i, bl := range lines {
		l := Line{BillLine: bl, Amount: bl.Quantity * bl.UnitPrice}
		it, ok := c.items[bl.Code]
		switch {
		case !ok:
			l.Cash, l.CashReason = l.Amount, CashUnknownCode
			l.Note = fmt.Sprintf("code %s is not in the catalogue of %s: paid in cash", bl.Code, c.Version())
		case it.Class == ClassC:
			l.Listed, l.Cash, l.CashReason = true, l.Amount, CashClassC
			l.Note = fmt.Sprintf("class C in the catalogue of %s (自费): paid in cash", c.Version())
		case it.Ceiling > 0 && bl.UnitPrice > it.Ceiling:
			l.Listed, l.Covered = true, it.Ceiling*bl.Quantity
			l.Cash, l.CashReason = l.Amount-l.Covered, CashOverCeiling
			l.Note = fmt.Sprintf("unit price %s over the ceiling of %s: %s × %d = %s paid in cash", FormatAmount(bl.UnitPrice),
				FormatAmount(it.Ceiling), FormatAmount(bl.UnitPrice-it.Ceiling), bl.Quantity, FormatAmount(l.Cash))
		default:
			l.Listed, l.Covered = true, l.Amount
			l.Note = fmt.Sprintf("class %s in the catalogue of %s", it.Class, c.Version())
		}
		if ok {
			l.Kind, l.NameZH, l.NameEN, l.Class, l.SelfPay, l.Ceiling = it.Kind, it.NameZH, it.NameEN, it.Class, it.SelfPay, it.Ceiling
		}
		if l.Covered > 0 {
			out.Basket.Items = append(out.Basket.Items, Item{Code: bl.Code, Class: it.Class, Amount: l.Covered, SelfPay: it.SelfPay})
		}
		if l.Cash > 0 {
			out.Basket.Items = append(out.Basket.Items, Item{Code: bl.Code, Class: ClassC, Amount: l.Cash})
		}
		out.Lines[i] = l
	}
	return out, nil
}
