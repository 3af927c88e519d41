package transit

import (
	"embed"
	"fmt"
	"io"
	"io/fs"
	"path"
	"slices"
	"sort"
	"strings"
	"time"
)

// Always is the From of a fare table without an effective date: it prices every travel day until
// a later version of the operator's table takes over.
const Always Day = 0

// Group is the operators whose journeys are priced together: they share a travel day, caps, a
// spend discount and transfer discounts. An operator with cap scope "operator" is a group of its
// own; the operators of a city with cap scope "city" are one group. A group's shape (who is in it,
// when its travel day starts) is the same in every version of its operators' tables; its rules
// (caps, spend discount) may change from a version's first day on.
type Group struct {
	Key       string   // "city/<city>" or "operator/<id>"
	Operators []string // sorted
	StartHour int
	// CloseDelay is how long after a travel day ends it is charged: the longest open journey of
	// its operators (in any version of their tables), plus closeGrace.
	CloseDelay time.Duration

	rules []datedRules // by from, increasing
}

type datedRules struct {
	from  Day
	rules Rules
}

// Tables is every operator's fare table, each with its versions, checked together.
type Tables struct {
	versions map[string][]*Operator // by operator id, ordered by From, then Seq
	groups   map[string]*Group
	seq      int // the highest Seq of the versions
}

//go:embed fares/*.json
var shipped embed.FS

// Shipped returns the fare tables shipped with the engine (transit/fares/*.json).
func Shipped() (*Tables, error) {
	sub, err := fs.Sub(shipped, "fares")
	if err != nil {
		return nil, fmt.Errorf("fare files: %w", err)
	}
	return Load(sub)
}

// ShippedFiles returns the bytes of the fare files shipped with the engine, by file name.
func ShippedFiles() (map[string][]byte, error) {
	sub, err := fs.Sub(shipped, "fares")
	if err != nil {
		return nil, fmt.Errorf("fare files: %w", err)
	}
	return ReadFiles(sub)
}

// ReadFiles reads every *.json file at the top of fsys, by name, each at most maxFareFileBytes.
func ReadFiles(fsys fs.FS) (map[string][]byte, error) {
	names, err := fs.Glob(fsys, "*.json")
	if err != nil {
		return nil, fmt.Errorf("list fare files: %w", err)
	}
	if len(names) > maxOperators {
		return nil, fmt.Errorf("%d fare files, more than %d", len(names), maxOperators)
	}
	out := make(map[string][]byte, len(names))
	for _, name := range names {
		f, err := fsys.Open(name)
		if err != nil {
			return nil, fmt.Errorf("fare file %s: %w", name, err)
		}
		data, err := io.ReadAll(io.LimitReader(f, maxFareFileBytes+1))
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("fare file %s: %w", name, err)
		}
		out[name] = data
	}
	return out, nil
}

// Load reads every *.json file at the top of fsys as one version of an operator's fare table,
// validates each, and checks them together: <operator_id>.json prices every travel day, and
// <operator_id>@YYYY-MM-DD.json prices the travel days from that date on.
func Load(fsys fs.FS) (*Tables, error) {
	files, err := ReadFiles(fsys)
	if err != nil {
		return nil, err
	}
	ops, err := ParseFiles(files)
	if err != nil {
		return nil, err
	}
	return NewTables(ops...)
}

// ParseFiles parses fare files by name (as ReadFiles returns them), each named after the
// operator its table is of, with the version's first travel day after an @ when it has one.
func ParseFiles(files map[string][]byte) ([]*Operator, error) {
	names := make([]string, 0, len(files))
	for name := range files {
		names = append(names, name)
	}
	sort.Strings(names)
	ops := make([]*Operator, 0, len(names))
	for _, name := range names {
		base := strings.TrimSuffix(path.Base(name), ".json")
		id, date, dated := strings.Cut(base, "@")
		from := Always
		if dated {
			d, err := ParseDay(date)
			if err != nil {
				return nil, fmt.Errorf("fare file %s: after the @: %w", name, err)
			}
			from = d
		}
		op, err := ParseOperator(files[name])
		if err != nil {
			return nil, fmt.Errorf("fare file %s: %w", name, err)
		}
		if op.ID != id {
			return nil, fmt.Errorf("fare file %s: operator_id %q, want the file named after it (%s.json)", name, op.ID, op.ID)
		}
		op.From = from
		ops = append(ops, op)
	}
	return ops, nil
}

// NewTables checks versions of operators' tables together (each with its From and Seq): an
// operator keeps its city, mode, pricing, cap scope and travel day start in every version; no two
// versions of an operator share a From and a Seq; the operators sharing a city's cap agree on
// when the travel day starts, and on every day on the caps and the spend discount in force.
func NewTables(ops ...*Operator) (*Tables, error) {
	t := &Tables{versions: map[string][]*Operator{}, groups: map[string]*Group{}}
	for _, op := range ops {
		// A copy: the tables set its group, and the operator handed in may be in other tables
		// that are pricing now. What the copies share (stations, fares) is never written.
		c := *op
		t.versions[op.ID] = append(t.versions[op.ID], &c)
		t.seq = max(t.seq, op.Seq)
	}
	ids := make([]string, 0, len(t.versions))
	for id, vs := range t.versions {
		ids = append(ids, id)
		slices.SortStableFunc(vs, func(a, b *Operator) int {
			if a.From != b.From {
				return int(a.From - b.From)
			}
			return a.Seq - b.Seq
		})
		for i := 1; i < len(vs); i++ {
			first, v := vs[0], vs[i]
			if v.From == vs[i-1].From && v.Seq == vs[i-1].Seq {
				return nil, fmt.Errorf("operator %q has two fare tables from %s", v.ID, fromText(v.From))
			}
			switch {
			case v.City != first.City:
				return nil, fmt.Errorf("operator %q from %s: city %q, its other tables say %q: %s", v.ID, fromText(v.From), v.City, first.City, keepShape)
			case v.Mode != first.Mode:
				return nil, fmt.Errorf("operator %q from %s: mode %s, its other tables say %s: %s", v.ID, fromText(v.From), v.Mode, first.Mode, keepShape)
			case v.Pricing != first.Pricing:
				return nil, fmt.Errorf("operator %q from %s: pricing %s, its other tables say %s: %s", v.ID, fromText(v.From), v.Pricing, first.Pricing, keepShape)
			case v.CapScope != first.CapScope:
				return nil, fmt.Errorf("operator %q from %s: cap scope %s, its other tables say %s: %s", v.ID, fromText(v.From), v.CapScope, first.CapScope, keepShape)
			case v.StartHour != first.StartHour:
				return nil, fmt.Errorf("operator %q from %s: travel day starts at %d, its other tables say %d: %s", v.ID, fromText(v.From), v.StartHour, first.StartHour, keepShape)
			}
		}
	}
	if len(ids) > maxOperators {
		return nil, fmt.Errorf("%d operators, more than %d", len(ids), maxOperators)
	}
	sort.Strings(ids)
	for _, id := range ids {
		vs := t.versions[id]
		op := vs[0]
		key := "operator/" + op.ID
		if op.CapScope == CapPerCity {
			key = "city/" + op.City
		}
		g, ok := t.groups[key]
		if !ok {
			g = &Group{Key: key, StartHour: op.StartHour}
			t.groups[key] = g
		}
		if g.StartHour != op.StartHour {
			return nil, fmt.Errorf("operator %q: travel day starts at %d, but %s starts it at %d", op.ID, op.StartHour, g.Key, g.StartHour)
		}
		g.Operators = append(g.Operators, op.ID)
		for _, v := range vs {
			g.CloseDelay = max(g.CloseDelay, v.IncompleteAfter+closeGrace)
			v.group = g
		}
	}
	for _, g := range t.groups {
		if err := t.groupRules(g); err != nil {
			return nil, err
		}
	}
	return t, nil
}

// keepShape says why a version may not change what decides an operator's group and its days.
const keepShape = "an operator keeps its city, mode, pricing, cap scope and travel day start in every version"

func fromText(d Day) string {
	if d == Always {
		return "the start"
	}
	return d.String()
}

// groupRules works out the group's rules on each day a version of one of its operators starts,
// refusing operators that disagree on a day they are both in force.
func (t *Tables) groupRules(g *Group) error {
	var days []Day
	for _, id := range g.Operators {
		for _, v := range t.versions[id] {
			days = append(days, v.From)
		}
	}
	slices.Sort(days)
	days = slices.Compact(days)
	for _, d := range days {
		var (
			rules Rules
			by    *Operator
		)
		for _, id := range g.Operators {
			v := t.versionOn(id, d)
			if v == nil {
				continue
			}
			if by == nil {
				rules, by = v.Rules, v
				continue
			}
			if !v.Rules.equal(rules) {
				return fmt.Errorf("operator %q: caps differ from the other operators sharing %s (%s's table) from %s", v.ID, g.Key, by.ID, fromText(d))
			}
		}
		if by != nil {
			g.rules = append(g.rules, datedRules{from: d, rules: rules})
		}
	}
	return nil
}

// Seq is the highest Seq of the tables' versions: the number of fare tables uploaded when they
// were built, uploads being numbered from 1 without gaps.
func (t *Tables) Seq() int { return t.seq }

// versionOn is the version of operator id's table in force on day d, or nil.
func (t *Tables) versionOn(id string, d Day) *Operator {
	vs := t.versions[id]
	for i := len(vs) - 1; i >= 0; i-- {
		if vs[i].From <= d {
			return vs[i]
		}
	}
	return nil
}

// Operator returns the newest version of the operator's fare table: the one in force from the
// latest first day. Its name, city, mode and group are every version's.
func (t *Tables) Operator(id string) (*Operator, bool) {
	vs := t.versions[id]
	if len(vs) == 0 {
		return nil, false
	}
	return vs[len(vs)-1], true
}

// OperatorOn returns the version of the operator's fare table in force on travel day d.
func (t *Tables) OperatorOn(id string, d Day) (*Operator, bool) {
	v := t.versionOn(id, d)
	return v, v != nil
}

// Versions lists the versions of the operator's fare table, oldest first.
func (t *Tables) Versions(id string) []*Operator { return slices.Clone(t.versions[id]) }

// All lists every version of every operator's table, by operator, oldest first.
func (t *Tables) All() []*Operator {
	var out []*Operator
	for _, op := range t.Operators() {
		out = append(out, t.versions[op.ID]...)
	}
	return out
}

// Operators lists the operators, sorted by id, each by its newest table.
func (t *Tables) Operators() []*Operator {
	ops := make([]*Operator, 0, len(t.versions))
	for id := range t.versions {
		op, _ := t.Operator(id)
		ops = append(ops, op)
	}
	slices.SortFunc(ops, func(a, b *Operator) int { return strings.Compare(a.ID, b.ID) })
	return ops
}

// Groups lists the pricing groups, sorted by key.
func (t *Tables) Groups() []*Group {
	gs := make([]*Group, 0, len(t.groups))
	for _, g := range t.groups {
		gs = append(gs, g)
	}
	slices.SortFunc(gs, func(a, b *Group) int { return strings.Compare(a.Key, b.Key) })
	return gs
}

// Group returns the group with key.
func (t *Tables) Group(key string) (*Group, bool) {
	g, ok := t.groups[key]
	return g, ok
}

// Group is the group the operator is priced in.
func (op *Operator) Group() *Group { return op.group }

// RulesOn returns the caps and spend discount of the group on travel day d.
func (g *Group) RulesOn(d Day) Rules {
	r := noRules
	for _, dr := range g.rules {
		if dr.from > d {
			break
		}
		r = dr.rules
	}
	return r
}

// Counts reports whether a rule of the group, in any version, counts over period p: a cap or a
// spend discount of that period. A day's price then depends on the period's days before it.
func (g *Group) Counts(p Period) bool {
	for _, dr := range g.rules {
		r := dr.rules
		if r.Tiers != nil && r.Tiers.Period == p {
			return true
		}
		switch p {
		case PeriodWeek:
			if r.WeeklyCap != NoCap {
				return true
			}
		case PeriodMonth:
			if r.MonthlyCap != NoCap {
				return true
			}
		}
	}
	return false
}

// RepriceThrough is the last day, up to last, whose price can change when day d's does: the end
// of d's week when a rule counts over weeks, of its month when one counts over months, and on
// through the periods those days belong to.
func (g *Group) RepriceThrough(d, last Day) Day {
	week, month := g.Counts(PeriodWeek), g.Counts(PeriodMonth)
	end := d
	for end < last {
		next := end
		if week {
			next = max(next, end.WeekStart()+6)
		}
		if month {
			next = max(next, end.MonthEnd())
		}
		if next == end {
			break
		}
		end = next
	}
	return min(end, max(d, last))
}

// DayOf is the travel day of instant t: its date in Shanghai, counted from the start hour.
func (g *Group) DayOf(t time.Time) Day {
	return DayOfTime(t.In(shanghai).Add(-time.Duration(g.StartHour) * time.Hour))
}

// DayStart is the instant the travel day d starts.
func (g *Group) DayStart(d Day) time.Time {
	y, m, dd := d.Date().Date()
	return time.Date(y, m, dd, g.StartHour, 0, 0, 0, shanghai)
}

// DayEnd is the instant the travel day d ends: the next one's start.
func (g *Group) DayEnd(d Day) time.Time { return g.DayStart(d + 1) }

// ClosesAt is when the travel day d is charged: its end plus the close delay.
func (g *Group) ClosesAt(d Day) time.Time { return g.DayEnd(d).Add(g.CloseDelay) }

// Lookback is how long before an instant a tap may have started the journey that instant ends:
// the longest open journey of the group's operators.
func (g *Group) Lookback() time.Duration { return g.CloseDelay - closeGrace }
