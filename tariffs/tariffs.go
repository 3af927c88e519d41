// Package tariffs decides what the engine prices by: the fare tables, fee plans, medical policies
// and medical catalogues it starts with (built in, or from directories), and the versions the admin uploads
// while it runs, each from the first day it prices. It parses an upload exactly as the files are
// parsed at start, decides whether its date may be accepted, and builds the sets of every kind
// with it; the store keeps the versions and the days to re-price.
//
// The package is pure: no I/O but the bytes it is handed, no clock (today is an argument).
package tariffs

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/joinincard/engine/events"
	"github.com/joinincard/engine/fees"
	"github.com/joinincard/engine/medical"
	"github.com/joinincard/engine/transit"
)

// Kind is a kind of tariff.
type Kind string

const (
	Fares           Kind = "fares"            // an operator's fare table, by operator id
	FeePlans        Kind = "fee_plans"        // a fee plan, by plan id
	MedicalPolicies Kind = "medical_policies" // a city's medical policy for a year, by "city-year"
	// MedicalCatalogues: a city's medical catalogue of drugs, services and consumables, by city.
	MedicalCatalogues Kind = "medical_catalogues"
)

// Kinds lists the kinds.
func Kinds() []Kind { return []Kind{Fares, FeePlans, MedicalPolicies, MedicalCatalogues} }

// Segment is the kind as the API's paths name it: "fares", "fee-plans", "medical-policies".
func (k Kind) Segment() string { return strings.ReplaceAll(string(k), "_", "-") }

// KindOf returns the kind a path segment names.
func KindOf(segment string) (Kind, bool) {
	for _, k := range Kinds() {
		if k.Segment() == segment {
			return k, true
		}
	}
	return "", false
}

// Bounds of an upload.
const (
	// MaxBodyBytes bounds one uploaded file: a fare table of the largest metro is about 60 KiB,
	// and the fare parser's own bound is 1 MiB.
	MaxBodyBytes = 1 << 20
	// MaxCatalogueBytes bounds an uploaded medical catalogue: a province's tens of thousands of
	// entries at about 300 bytes each.
	MaxCatalogueBytes = 32 << 20
	// MaxAhead bounds how far ahead a version may take effect: fares and plans are announced
	// weeks or months ahead, and a date more than a year away is a typing error.
	MaxAhead = 366 * 24 * time.Hour
	// MaxRepriceAge bounds how far back a fare table may take effect when the admin asks to
	// re-price: taps older than transit.MaxTapAge are refused, and the days before belong to
	// settlement cycles reconciled with the banks.
	MaxRepriceAge = transit.MaxTapAge
	// MaxFeeRepriceAge bounds how far back a fee plan may take effect when the admin asks to
	// re-price. An acquiring bank bills a merchant its fees by the month, and the merchant checks
	// the bill against its own sales: correcting the month just billed is an adjustment on the
	// next bill, as banks do, while reaching further re-opens bills that are reconciled and
	// closed. The adjustments themselves are new transfers, settled in the next open cycle, so
	// closed settlement cycles and their files never change whatever the bound.
	MaxFeeRepriceAge = 31 * 24 * time.Hour
	// maxVersions bounds the versions of one kind the engine keeps in memory and rebuilds on each
	// upload: a hundred operators changing fares monthly for years.
	maxVersions = 100_000
)

// ErrInvalid is what every refusal of an upload is (errors.Is): a *Refusal.
var ErrInvalid = errors.New("invalid tariff")

// Refusal is why an upload is refused: a message that names the field and the reason.
type Refusal struct{ Message string }

func (r *Refusal) Error() string { return ErrInvalid.Error() + ": " + r.Message }

// Is makes a Refusal ErrInvalid.
func (r *Refusal) Is(target error) bool { return target == ErrInvalid }

// Source says where a version comes from.
type Source string

const (
	SourceBuiltIn   Source = "built_in"  // embedded in the binary
	SourceDirectory Source = "directory" // a file of --fares, --fee-plans, --medical-policies or --medical-catalogues
	SourceUpload    Source = "upload"    // uploaded by the admin, kept in the database
)

// Version is one version of a tariff.
type Version struct {
	Kind Kind
	ID   string // the operator's, the plan's or the policy's id, as its file says
	// Seq numbers the uploads of a kind from 1, in order; 0 for a file the engine started with.
	Seq int
	// From is the first day the version prices; zero for a file without a date, which prices
	// every day until a later version.
	From   events.Date
	Body   []byte
	SHA256 [32]byte
	Source Source
	File   string // the file's name, for a version the engine started with
	// UploadedBy and UploadedAt say who uploaded it and when; Repriced that it took effect in the
	// past and re-priced what was charged since.
	UploadedBy string
	UploadedAt time.Time
	Repriced   bool
	// Repricing is how far the re-pricing of a fee plan version in the past has gone; nil for
	// any other version.
	Repricing *Repricing
}

// Repricing is the progress of a fee plan version's re-pricing of the purchases since its first
// day.
type Repricing struct {
	Purchases  int64     // captured purchases looked at
	Adjusted   int64     // of them, adjusted
	Charged    int64     // fen the adjustments charged merchants, net; negative: given back
	FinishedAt time.Time // zero while it goes on
}

// Files are the files the engine starts with, by file name, and where they come from.
type Files struct {
	Fares, FeePlans, Medical      map[string][]byte
	Foreign                       []byte // the foreign-card comparison
	FaresFrom, PlansFrom, MedFrom Source
	// Catalogues are the medical catalogues, by file name ("shanghai@2025-01-01.json").
	Catalogues map[string][]byte
	CatFrom    Source
}

// BuiltIn returns the files embedded in the binary.
func BuiltIn() (Files, error) {
	f := Files{FaresFrom: SourceBuiltIn, PlansFrom: SourceBuiltIn, MedFrom: SourceBuiltIn, CatFrom: SourceBuiltIn}
	var err error
	if f.Fares, err = transit.ShippedFiles(); err != nil {
		return f, err
	}
	if f.FeePlans, f.Foreign, err = fees.ShippedFiles(nil); err != nil {
		return f, err
	}
	if f.Medical, err = medical.SampleFiles(); err != nil {
		return f, err
	}
	if f.Catalogues, err = medical.SampleCatalogueFiles(); err != nil {
		return f, err
	}
	return f, nil
}

// Set is what the engine prices by: every kind, each with its versions.
type Set struct {
	Fares    *transit.Tables
	FeePlans *fees.Catalog
	Medical  *medical.Policies
	// Catalogues are the medical catalogues, by treating city.
	Catalogues *medical.Catalogues
}

// Base is the files the engine started with, parsed: each upload builds on them. It keeps the
// uploaded versions it parsed, by seq, so that a build parses each version once. It is safe for
// concurrent use.
type Base struct {
	files    []Version
	fares    []*transit.Operator
	plans    []*fees.Plan
	foreign  fees.ForeignCard
	policies []*medical.Policy
	cats     []*medical.Catalogue

	mu     sync.Mutex
	parsed map[versionKey]any // *transit.Operator, *fees.Plan, *medical.Policy or *medical.Catalogue, never changed once parsed
}

type versionKey struct {
	kind Kind
	seq  int
}

// NewBase parses and checks the files the engine starts with, every kind as at start.
func NewBase(f Files) (*Base, error) {
	b := &Base{parsed: map[versionKey]any{}}
	var err error
	if b.fares, err = transit.ParseFiles(f.Fares); err != nil {
		return nil, fmt.Errorf("fare tables: %w", err)
	}
	if b.plans, err = fees.ParseFiles(f.FeePlans); err != nil {
		return nil, fmt.Errorf("fee plans: %w", err)
	}
	if b.foreign, err = fees.ParseForeignCard(f.Foreign); err != nil {
		return nil, fmt.Errorf("foreign-card comparison: %w", err)
	}
	if b.policies, err = medical.ParseFiles(f.Medical); err != nil {
		return nil, fmt.Errorf("medical policies: %w", err)
	}
	if b.cats, err = medical.ParseCatalogueFiles(f.Catalogues); err != nil {
		return nil, fmt.Errorf("medical catalogues: %w", err)
	}
	for _, k := range []struct {
		kind  Kind
		files map[string][]byte
		src   Source
	}{{Fares, f.Fares, f.FaresFrom}, {FeePlans, f.FeePlans, f.PlansFrom}, {MedicalPolicies, f.Medical, f.MedFrom},
		{MedicalCatalogues, f.Catalogues, f.CatFrom}} {
		for name, body := range k.files {
			v := Version{Kind: k.kind, Body: body, SHA256: sha256.Sum256(body), Source: k.src, File: name}
			id, date, dated := strings.Cut(strings.TrimSuffix(name, ".json"), "@")
			v.ID = id
			if dated {
				if v.From, err = parseDate(date); err != nil {
					return nil, fmt.Errorf("%s: %w", name, err)
				}
			}
			b.files = append(b.files, v)
		}
	}
	if _, err := b.Build(nil); err != nil {
		return nil, err
	}
	return b, nil
}

// Files lists the versions the engine started with, of kind.
func (b *Base) Files(kind Kind) []Version {
	var out []Version
	for _, v := range b.files {
		if v.Kind == kind {
			out = append(out, v)
		}
	}
	return out
}

func parseDate(s string) (events.Date, error) {
	t, err := time.Parse(time.DateOnly, s)
	if err != nil || len(s) != len(time.DateOnly) {
		return events.Date{}, errors.New("not a date, want yyyy-mm-dd")
	}
	return dateOf(t), nil
}

func dateOf(t time.Time) events.Date {
	return events.Date{Year: t.Year(), Month: t.Month(), Day: t.Day()}
}

func dayOf(d events.Date) transit.Day { return transit.DayOf(d.Year, d.Month, d.Day) }

// Build builds the set of every kind from the base files and the uploaded versions (as stored),
// checking each kind's versions together as at start.
func (b *Base) Build(uploaded []Version) (*Set, error) { return b.build(uploaded, nil) }

// build is Build with more versions, parsed, not yet stored.
func (b *Base) build(uploaded []Version, extra []any) (*Set, error) {
	if len(uploaded) > maxVersions {
		return nil, fmt.Errorf("%d uploaded versions, more than %d", len(uploaded), maxVersions)
	}
	ops := append([]*transit.Operator(nil), b.fares...)
	plans := append([]*fees.Plan(nil), b.plans...)
	policies := append([]*medical.Policy(nil), b.policies...)
	cats := append([]*medical.Catalogue(nil), b.cats...)
	for i := 0; i < len(uploaded)+len(extra); i++ {
		var parsed any
		if i < len(uploaded) {
			var err error
			if parsed, err = b.parse(uploaded[i]); err != nil {
				return nil, err
			}
		} else {
			parsed = extra[i-len(uploaded)]
		}
		switch p := parsed.(type) {
		case *transit.Operator:
			ops = append(ops, p)
		case *fees.Plan:
			plans = append(plans, p)
		case *medical.Policy:
			policies = append(policies, p)
		case *medical.Catalogue:
			cats = append(cats, p)
		}
	}
	var (
		s   Set
		err error
	)
	if s.Fares, err = transit.NewTables(ops...); err != nil {
		return nil, fmt.Errorf("fare tables: %w", err)
	}
	if s.FeePlans, err = fees.NewCatalog(b.foreign, plans...); err != nil {
		return nil, fmt.Errorf("fee plans: %w", err)
	}
	if s.Medical, err = medical.NewPolicies(policies...); err != nil {
		return nil, fmt.Errorf("medical policies: %w", err)
	}
	if s.Catalogues, err = medical.NewCatalogues(cats...); err != nil {
		return nil, fmt.Errorf("medical catalogues: %w", err)
	}
	return &s, nil
}

// parse parses an uploaded version with its first day and seq, or returns it parsed before.
func (b *Base) parse(v Version) (any, error) {
	k := versionKey{v.Kind, v.Seq}
	b.mu.Lock()
	p, ok := b.parsed[k]
	b.mu.Unlock()
	if ok {
		return p, nil
	}
	switch v.Kind {
	case Fares:
		op, err := transit.ParseOperator(v.Body)
		if err != nil {
			return nil, fmt.Errorf("fare table %s version %d: %w", v.ID, v.Seq, err)
		}
		op.From, op.Seq = dayOf(v.From), v.Seq
		p = op
	case FeePlans:
		pl, err := fees.ParsePlan(v.Body)
		if err != nil {
			return nil, fmt.Errorf("fee plan %s version %d: %w", v.ID, v.Seq, err)
		}
		pl.From, pl.Seq = v.From, v.Seq
		p = pl
	case MedicalPolicies:
		pol, err := medical.ParsePolicy(v.Body)
		if err != nil {
			return nil, fmt.Errorf("medical policy %s version %d: %w", v.ID, v.Seq, err)
		}
		pol.From, pol.Seq = v.From, v.Seq
		p = pol
	case MedicalCatalogues:
		c, err := medical.ParseCatalogue(v.Body)
		if err != nil {
			return nil, fmt.Errorf("medical catalogue %s version %d: %w", v.ID, v.Seq, err)
		}
		c.From, c.Seq = v.From, v.Seq
		p = c
	default:
		return nil, fmt.Errorf("version %d: unknown kind %q", v.Seq, v.Kind)
	}
	b.mu.Lock()
	b.parsed[k] = p
	b.mu.Unlock()
	return p, nil
}

// maxTogether bounds the fare tables uploaded together: a city's operators (metro lines, buses,
// ferries) changing a cap they share on one day.
const maxTogether = 64

// Upload is a version the admin asks to add: one file, or for fare tables several uploaded
// together, from one day (a JSON array of tables: a city's operators changing a cap they share,
// which each alone could not).
type Upload struct {
	Kind Kind
	Body []byte
	From events.Date // the first day it prices
	// Reprice asks that a fare table effective before today re-price the travel days since, as
	// late taps do, or that a fee plan effective today or before re-price the purchases since:
	// by adjustments, never edits. A medical policy is never re-priced.
	Reprice bool
	By      string
}

// Files splits an upload's body into its files: the body, or the tables of a JSON array of fare
// tables.
func (up *Upload) Files() ([][]byte, error) {
	trimmed := bytes.TrimLeft(up.Body, " \t\r\n")
	if len(trimmed) == 0 || trimmed[0] != '[' {
		return [][]byte{up.Body}, nil
	}
	if up.Kind != Fares {
		return nil, &Refusal{Message: fmt.Sprintf("a %s is uploaded alone: the body is one object, not an array", kindName(up.Kind))}
	}
	var raws []json.RawMessage
	if err := json.Unmarshal(up.Body, &raws); err != nil {
		return nil, &Refusal{Message: "not an array of fare tables: " + err.Error()}
	}
	if len(raws) == 0 || len(raws) > maxTogether {
		return nil, &Refusal{Message: fmt.Sprintf("%d fare tables, want 1 to %d uploaded together", len(raws), maxTogether)}
	}
	out := make([][]byte, len(raws))
	for i, r := range raws {
		out[i] = r
	}
	return out, nil
}

// Accept decides an upload at today (in Shanghai), given the versions uploaded before it (of
// every kind), numbering its files from seq: it parses each file as the engine parses its files at
// start, checks the date (a fare table from today on, or, when the admin asks to re-price, from
// at most MaxRepriceAge before; a fee plan from tomorrow on, or when the admin asks to re-price
// from at most MaxFeeRepriceAge before; a medical policy from tomorrow on, what today's and
// earlier bills paid being theirs; at most MaxAhead after; a medical policy's within its year), and builds the sets with them, so that a version that contradicts the others (a city's
// shared cap, an operator's city) is refused too. Its error is a *Refusal (ErrInvalid) that names
// the field, after the file's index in an array of several.
func (b *Base) Accept(before []Version, up Upload, today events.Date, seq int, at time.Time) ([]Version, *Set, error) {
	invalid := func(format string, args ...any) ([]Version, *Set, error) {
		return nil, nil, &Refusal{Message: fmt.Sprintf(format, args...)}
	}
	if len(up.Body) > MaxBody(up.Kind) {
		return invalid("the file is larger than %d bytes", MaxBody(up.Kind))
	}
	files, err := up.Files()
	if err != nil {
		return nil, nil, err
	}
	var (
		versions []Version
		parsed   []any // the versions, parsed as at start, with their first day and seq
		ids      = map[string]bool{}
	)
	for i, body := range files {
		where := ""
		if len(files) > 1 {
			where = fmt.Sprintf("[%d] ", i)
		}
		v := Version{Kind: up.Kind, Seq: seq + i, From: up.From, Body: body, SHA256: sha256.Sum256(body), Source: SourceUpload,
			UploadedBy: up.By, UploadedAt: at}
		switch up.Kind {
		case Fares:
			op, err := transit.ParseOperator(body)
			if err != nil {
				return invalid("%s%v", where, err)
			}
			v.ID = op.ID
			op.From, op.Seq = dayOf(up.From), v.Seq
			parsed = append(parsed, op)
		case FeePlans:
			p, err := fees.ParsePlan(body)
			if err != nil {
				return invalid("%v", err)
			}
			v.ID = p.ID
			p.From, p.Seq = up.From, v.Seq
			parsed = append(parsed, p)
		case MedicalPolicies:
			p, err := medical.ParsePolicy(body)
			if err != nil {
				return invalid("%v", err)
			}
			v.ID = p.ID()
			p.From, p.Seq = up.From, v.Seq
			parsed = append(parsed, p)
			if up.From.Year != p.Year {
				return invalid("effective_from: %s is not in the policy's year %d", up.From, p.Year)
			}
		case MedicalCatalogues:
			c, err := medical.ParseCatalogue(body)
			if err != nil {
				return invalid("%v", err)
			}
			v.ID = c.ID()
			c.From, c.Seq = up.From, v.Seq
			parsed = append(parsed, c)
		default:
			return invalid("kind: %q, want one of %q", up.Kind, Kinds())
		}
		// A version's id (an operator, a plan, a city and year) is listed and logged wherever
		// the engine loads it: never a card number in clear, nor repeated when refused.
		if events.ContainsCardNumber(v.ID) {
			return invalid("%s%s: looks like a card number in clear", where, idField[up.Kind])
		}
		if ids[v.ID] {
			return invalid("%soperator_id: %q is in the upload twice", where, v.ID)
		}
		ids[v.ID] = true
		versions = append(versions, v)
	}
	from, now := dayOf(up.From), dayOf(today)
	days := func(d time.Duration) transit.Day { return transit.Day(d / (24 * time.Hour)) }
	switch {
	case from > now+days(MaxAhead):
		return invalid("effective_from: %s is more than %d days ahead", up.From, int(days(MaxAhead)))
	case from <= now && up.Kind == MedicalPolicies:
		return invalid("effective_from: %s is not after today (%s): a medical policy takes effect from tomorrow at the "+
			"earliest, with or without reprice: the bills of today and before are split already between the city's "+
			"pooled fund, the personal medical account and cash, and settled with the fund as split; the engine does not "+
			"split them again", up.From, today)
	case from <= now && up.Kind == MedicalCatalogues:
		return invalid("effective_from: %s is not after today (%s): a medical catalogue takes effect from tomorrow at the "+
			"earliest, with or without reprice: the bills of today and before are classified and split already, and "+
			"settled with the fund as split; the engine does not split them again", up.From, today)
	case from <= now && up.Kind == FeePlans && !up.Reprice:
		return invalid("effective_from: %s is not after today (%s): today's and earlier purchases are priced already; "+
			"ask to re-price (reprice=true) to charge the purchases since by this version, by fee adjustments", up.From, today)
	case from <= now && up.Kind == FeePlans && from < now-days(MaxFeeRepriceAge):
		return invalid("effective_from: %s is more than %d days before today: merchants' fees are billed by the month, and "+
			"a re-pricing corrects at most the last bill", up.From, int(days(MaxFeeRepriceAge)))
	case from < now && up.Kind == Fares && !up.Reprice:
		return invalid("effective_from: %s is before today (%s): ask to re-price (reprice=true) to price the travel days "+
			"since by this table, by adjustments", up.From, today)
	case from < now && up.Kind == Fares && from < now-days(MaxRepriceAge):
		return invalid("effective_from: %s is more than %d days before today: taps older are refused, and their days are "+
			"settled with the banks", up.From, int(days(MaxRepriceAge)))
	}
	for i := range versions {
		// A fare table re-prices the days before today (today's are priced when they close); a
		// fee plan, the purchases of its first day on, today's included, priced at their capture.
		versions[i].Repriced = from < now || up.Kind == FeePlans && from <= now
	}
	set, err := b.build(before, parsed)
	if err != nil {
		return invalid("%v", err)
	}
	return versions, set, nil
}

// idField names the field a version's id comes from, by kind.
var idField = map[Kind]string{Fares: "operator_id", FeePlans: "id", MedicalPolicies: "city", MedicalCatalogues: "city"}

func kindName(k Kind) string {
	switch k {
	case FeePlans:
		return "fee plan"
	case MedicalPolicies:
		return "medical policy"
	case MedicalCatalogues:
		return "medical catalogue"
	}
	return "fare table"
}

// MaxBody is the largest file of kind an upload may carry.
func MaxBody(k Kind) int {
	if k == MedicalCatalogues {
		return MaxCatalogueBytes
	}
	return MaxBodyBytes
}

// FareDays is the first travel day a fare version prices, for the store's re-pricing.
func FareDays(v Version) transit.Day { return dayOf(v.From) }
