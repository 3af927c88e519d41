package transit

import (
	"bytes"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"path"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/joinincard/engine/events"
)

// Bounds of a fare file. Each says what real networks need and what the engine can afford.
const (
	// maxFareFileBytes: the Shanghai metro, 500 stations on 20 lines, is about 60 KiB of JSON.
	maxFareFileBytes = 1 << 20
	// maxStations bounds one operator's stations and stops: the station-to-station fare matrix
	// is computed on load and held in memory, n² int64s (8 MiB at the bound).
	maxStations = 1000
	// maxLines bounds one operator's lines or routes.
	maxLines = 500
	// maxBands bounds a distance scale's bands: real scales have three or four.
	maxBands = 16
	// maxIncompleteAfter bounds how long a journey may stay open: a day. Longer, and the travel
	// day could not close the day after.
	maxIncompleteAfter = 24 * time.Hour
	// maxTransferWindow bounds the transfer discount window: three hours is beyond any rule.
	maxTransferWindow = 3 * time.Hour
	// maxOperators bounds the fare files loaded at once.
	maxOperators = 1000
	// maxIDBytes is the event schema's identifier bound: ids a tap can carry.
	maxIDBytes = 64
)

// closeGrace is how long after the last possible tap-out of a travel day the day waits before it
// is charged: online readers upload within minutes, so an hour lets a day's online taps land
// first. Later taps re-price the day with an adjustment.
const closeGrace = time.Hour

// Pricing is how an operator prices a journey.
type Pricing string

const (
	// PricingFlat: one fare per tap (direction single), per line where lines differ: buses.
	PricingFlat Pricing = "flat"
	// PricingDistance: tap in and tap out; the fare follows the shortest distance along the
	// network between the two stations, on the operator's distance scale: metros.
	PricingDistance Pricing = "distance"
)

// CapScope says which journeys share a cap.
type CapScope string

const (
	CapPerOperator CapScope = "operator" // the operator's own journeys
	CapPerCity     CapScope = "city"     // every city-scoped operator of the city together
)

// NoCap is the cap of an operator without one.
const NoCap = math.MaxInt64

// fareFile is a fare file as written. Amounts are yuan strings ("2.00"), distances whole meters,
// durations whole minutes: nothing in the file is a float.
type fareFile struct {
	OperatorID             string        `json:"operator_id"`
	Name                   string        `json:"name"`
	City                   string        `json:"city"`
	Mode                   string        `json:"mode"`
	Source                 string        `json:"source"`
	TimeZone               string        `json:"time_zone"`
	Currency               string        `json:"currency"`
	TravelDayStartHour     *int          `json:"travel_day_start_hour"`
	Pricing                string        `json:"pricing"`
	FlatFare               string        `json:"flat_fare"`
	DistanceFare           *distanceFile `json:"distance_fare"`
	MaxFare                string        `json:"max_fare"`
	IncompleteAfterMinutes int           `json:"incomplete_after_minutes"`
	SameStationExitMinutes int           `json:"same_station_exit_minutes"`
	Transfer               *transferFile `json:"transfer"`
	Caps                   capsFile      `json:"caps"`
	Lines                  []lineFile    `json:"lines"`
}

type distanceFile struct {
	BaseFare string     `json:"base_fare"`
	BaseM    int64      `json:"base_m"`
	Bands    []bandFile `json:"bands"`
}

// bandFile adds Add for every EveryM meters (or part of them) travelled beyond the previous band,
// up to UpToM meters; the last band has no UpToM and prices every distance beyond.
type bandFile struct {
	UpToM  int64  `json:"up_to_m"`
	EveryM int64  `json:"every_m"`
	Add    string `json:"add"`
}

type transferFile struct {
	WindowMinutes int    `json:"window_minutes"`
	Discount      string `json:"discount"`
}

type capsFile struct {
	Scope  string `json:"scope"`
	Daily  string `json:"daily"`
	Weekly string `json:"weekly"`
}

type lineFile struct {
	ID       string        `json:"id"`
	Name     string        `json:"name"`
	FlatFare string        `json:"flat_fare"`
	Stations []stationFile `json:"stations"`
}

type stationFile struct {
	ID   string `json:"id"`
	Name string `json:"name"`
	AtM  *int64 `json:"at_m"`
}

// Transfer is an operator's transfer discount: a journey on this operator that starts within
// Window of the end of the card's previous journey in the same group, that travel day, costs
// Discount less (never below zero).
type Transfer struct {
	Window   time.Duration
	Discount int64
}

// Operator is one operator's fare table, validated, with its station-to-station fares computed.
type Operator struct {
	ID       string
	Name     string
	City     string
	Mode     events.Mode
	Pricing  Pricing
	FlatFare int64 // PricingFlat: the fare of a line without a fare of its own
	// MaxFare is what an incomplete journey costs (no tap-out, or no tap-in); outside the caps.
	MaxFare int64
	// IncompleteAfter is how long after a tap-in a journey without a tap-out becomes incomplete.
	IncompleteAfter time.Duration
	// SameStationExit: leaving by the station entered within this long costs nothing.
	SameStationExit time.Duration
	Transfer        *Transfer // nil: no transfer discount
	StartHour       int       // the travel day starts at this hour, Asia/Shanghai
	CapScope        CapScope
	DailyCap        int64 // NoCap when there is none
	WeeklyCap       int64 // NoCap when there is none
	Source          string

	group    *Group
	stations map[string]int32 // station id → index into names and fares
	names    []string
	lines    map[string]*line
	onLines  map[string][]string // station id → the lines serving it
	fares    []int64             // PricingDistance: fares[from*n+to]
}

type line struct {
	flatFare int64
	stations map[string]bool
}

// Group is the operators whose journeys are priced together: they share a travel day, caps and
// transfer discounts. An operator with cap scope "operator" is a group of its own; the operators
// of a city with cap scope "city" are one group.
type Group struct {
	Key       string   // "city/<city>" or "operator/<id>"
	Operators []string // sorted
	StartHour int
	DailyCap  int64
	WeeklyCap int64
	// CloseDelay is how long after a travel day ends it is charged: the longest open journey of
	// its operators, plus closeGrace.
	CloseDelay time.Duration
}

// Tables is every operator's fare table, checked together.
type Tables struct {
	operators map[string]*Operator
	groups    map[string]*Group
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

// Load reads every *.json file at the top of fsys as one operator's fare table, validates each,
// and checks them together.
func Load(fsys fs.FS) (*Tables, error) {
	names, err := fs.Glob(fsys, "*.json")
	if err != nil {
		return nil, fmt.Errorf("list fare files: %w", err)
	}
	if len(names) > maxOperators {
		return nil, fmt.Errorf("%d fare files, more than %d", len(names), maxOperators)
	}
	sort.Strings(names)
	ops := make([]*Operator, 0, len(names))
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
		op, err := ParseOperator(data)
		if err != nil {
			return nil, fmt.Errorf("fare file %s: %w", name, err)
		}
		if want := strings.TrimSuffix(path.Base(name), ".json"); op.ID != want {
			return nil, fmt.Errorf("fare file %s: operator_id %q, want the file named after it (%s.json)", name, op.ID, op.ID)
		}
		ops = append(ops, op)
	}
	return NewTables(ops...)
}

// ParseOperator reads and validates one fare file.
func ParseOperator(data []byte) (*Operator, error) {
	if len(data) > maxFareFileBytes {
		return nil, fmt.Errorf("more than %d bytes", maxFareFileBytes)
	}
	var f fareFile
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("not a fare file: %w", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, errors.New("data after the fare table")
	}
	return f.operator()
}

func (f *fareFile) operator() (*Operator, error) {
	op := &Operator{ID: f.OperatorID, Name: f.Name, City: f.City, Source: f.Source, lines: map[string]*line{},
		stations: map[string]int32{}, onLines: map[string][]string{}, DailyCap: NoCap, WeeklyCap: NoCap}
	if why := checkID(f.OperatorID); why != "" {
		return nil, fmt.Errorf("operator_id: %s", why)
	}
	if f.Name == "" {
		return nil, errors.New("name: missing")
	}
	if f.City == "" {
		return nil, errors.New("city: missing")
	}
	switch m := events.Mode(f.Mode); m {
	case events.ModeMetro, events.ModeBus:
		op.Mode = m
	default:
		return nil, fmt.Errorf("mode: %q, want metro or bus", f.Mode)
	}
	if f.TimeZone != "Asia/Shanghai" {
		// Every operator the card serves is in China, on Shanghai time; another zone is a mistake.
		return nil, fmt.Errorf("time_zone: %q, want Asia/Shanghai", f.TimeZone)
	}
	if f.Currency != "CNY" {
		return nil, fmt.Errorf("currency: %q, want CNY", f.Currency)
	}
	if f.TravelDayStartHour == nil {
		return nil, errors.New("travel_day_start_hour: missing")
	}
	if h := *f.TravelDayStartHour; h < 0 || h > 23 {
		return nil, fmt.Errorf("travel_day_start_hour: %d, want 0 to 23", h)
	}
	op.StartHour = *f.TravelDayStartHour
	if f.IncompleteAfterMinutes < 0 || time.Duration(f.IncompleteAfterMinutes)*time.Minute > maxIncompleteAfter {
		return nil, fmt.Errorf("incomplete_after_minutes: %d, want 0 to %d", f.IncompleteAfterMinutes, int(maxIncompleteAfter/time.Minute))
	}
	op.IncompleteAfter = time.Duration(f.IncompleteAfterMinutes) * time.Minute
	if f.SameStationExitMinutes < 0 || f.SameStationExitMinutes > f.IncompleteAfterMinutes {
		return nil, fmt.Errorf("same_station_exit_minutes: %d, want 0 to incomplete_after_minutes", f.SameStationExitMinutes)
	}
	op.SameStationExit = time.Duration(f.SameStationExitMinutes) * time.Minute
	if err := op.readCaps(&f.Caps); err != nil {
		return nil, err
	}
	if t := f.Transfer; t != nil {
		d, err := parseFen(t.Discount)
		if err != nil {
			return nil, fmt.Errorf("transfer.discount: %w", err)
		}
		w := time.Duration(t.WindowMinutes) * time.Minute
		if w <= 0 || w > maxTransferWindow {
			return nil, fmt.Errorf("transfer.window_minutes: %d, want 1 to %d", t.WindowMinutes, int(maxTransferWindow/time.Minute))
		}
		if d == 0 {
			return nil, errors.New("transfer.discount: zero, leave the transfer out instead")
		}
		op.Transfer = &Transfer{Window: w, Discount: d}
	}
	if err := op.readLines(f); err != nil {
		return nil, err
	}
	switch Pricing(f.Pricing) {
	case PricingFlat:
		op.Pricing = PricingFlat
		if f.DistanceFare != nil {
			return nil, errors.New("distance_fare: not used by flat pricing")
		}
		fare, err := parseFen(f.FlatFare)
		if err != nil {
			return nil, fmt.Errorf("flat_fare: %w", err)
		}
		op.FlatFare = fare
		highest := fare
		for _, l := range op.lines {
			if l.flatFare == 0 {
				l.flatFare = fare
			}
			highest = max(highest, l.flatFare)
		}
		op.MaxFare = highest
		if f.MaxFare != "" {
			m, err := parseFen(f.MaxFare)
			if err != nil {
				return nil, fmt.Errorf("max_fare: %w", err)
			}
			if m < highest {
				return nil, fmt.Errorf("max_fare: %s is below the highest flat fare %s", FormatFen(m), FormatFen(highest))
			}
			op.MaxFare = m
		}
	case PricingDistance:
		op.Pricing = PricingDistance
		if f.FlatFare != "" {
			return nil, errors.New("flat_fare: not used by distance pricing")
		}
		if op.IncompleteAfter == 0 {
			return nil, errors.New("incomplete_after_minutes: distance pricing needs a limit for journeys without a tap-out")
		}
		if err := op.readDistance(f); err != nil {
			return nil, err
		}
	default:
		return nil, fmt.Errorf("pricing: %q, want flat or distance", f.Pricing)
	}
	return op, nil
}

func (op *Operator) readCaps(c *capsFile) error {
	switch CapScope(c.Scope) {
	case CapPerOperator, CapPerCity:
		op.CapScope = CapScope(c.Scope)
	default:
		return fmt.Errorf("caps.scope: %q, want operator or city", c.Scope)
	}
	if c.Daily != "" {
		d, err := parseFen(c.Daily)
		if err != nil || d == 0 {
			return fmt.Errorf("caps.daily: %w", nonZero(err))
		}
		op.DailyCap = d
	}
	if c.Weekly != "" {
		w, err := parseFen(c.Weekly)
		if err != nil || w == 0 {
			return fmt.Errorf("caps.weekly: %w", nonZero(err))
		}
		if op.DailyCap != NoCap && w < op.DailyCap {
			return fmt.Errorf("caps.weekly: %s is below the daily cap %s", FormatFen(w), FormatFen(op.DailyCap))
		}
		op.WeeklyCap = w
	}
	return nil
}

func nonZero(err error) error {
	if err != nil {
		return err
	}
	return errors.New("zero, leave the cap out instead")
}

// readLines reads the lines and their stations. A station on several lines (an interchange) has
// one id and one name on all of them.
func (op *Operator) readLines(f *fareFile) error {
	if len(f.Lines) == 0 {
		return errors.New("lines: none")
	}
	if len(f.Lines) > maxLines {
		return fmt.Errorf("lines: %d, more than %d", len(f.Lines), maxLines)
	}
	for i, lf := range f.Lines {
		where := fmt.Sprintf("lines[%d]", i)
		if why := checkID(lf.ID); why != "" {
			return fmt.Errorf("%s.id: %s", where, why)
		}
		if _, ok := op.lines[lf.ID]; ok {
			return fmt.Errorf("%s.id: line %q twice", where, lf.ID)
		}
		l := &line{stations: map[string]bool{}}
		if lf.FlatFare != "" {
			if f.Pricing != string(PricingFlat) {
				return fmt.Errorf("%s.flat_fare: only flat pricing has fares per line", where)
			}
			fare, err := parseFen(lf.FlatFare)
			if err != nil {
				return fmt.Errorf("%s.flat_fare: %w", where, err)
			}
			l.flatFare = fare
		}
		if len(lf.Stations) == 0 {
			return fmt.Errorf("%s.stations: none", where)
		}
		for j, s := range lf.Stations {
			sw := fmt.Sprintf("%s.stations[%d]", where, j)
			if why := checkID(s.ID); why != "" {
				return fmt.Errorf("%s.id: %s", sw, why)
			}
			if s.Name == "" {
				return fmt.Errorf("%s.name: missing", sw)
			}
			if l.stations[s.ID] {
				return fmt.Errorf("%s.id: station %q twice on line %q", sw, s.ID, lf.ID)
			}
			l.stations[s.ID] = true
			op.onLines[s.ID] = append(op.onLines[s.ID], lf.ID)
			if idx, ok := op.stations[s.ID]; ok {
				if op.names[idx] != s.Name {
					return fmt.Errorf("%s.name: station %q is %q on another line", sw, s.ID, op.names[idx])
				}
				continue
			}
			if len(op.names) == maxStations {
				return fmt.Errorf("%s: more than %d stations", sw, maxStations)
			}
			op.stations[s.ID] = int32(len(op.names))
			op.names = append(op.names, s.Name)
		}
		op.lines[lf.ID] = l
	}
	return nil
}

// scale is a distance fare scale.
type scale struct {
	base  int64
	baseM int64
	bands []band
}

type band struct {
	upToM, everyM int64 // upToM 0: unbounded
	add           int64
}

// fare prices a distance in meters.
func (s *scale) fare(m int64) int64 {
	fare := s.base
	from := s.baseM
	for _, b := range s.bands {
		if m <= from {
			break
		}
		to := m
		if b.upToM != 0 {
			to = min(m, b.upToM)
		}
		fare += (to - from + b.everyM - 1) / b.everyM * b.add
		from = b.upToM
	}
	return fare
}

func readScale(d *distanceFile) (*scale, error) {
	base, err := parseFen(d.BaseFare)
	if err != nil || base == 0 {
		return nil, fmt.Errorf("distance_fare.base_fare: %w", nonZero(err))
	}
	if d.BaseM <= 0 {
		return nil, fmt.Errorf("distance_fare.base_m: %d, want a positive number of meters", d.BaseM)
	}
	if len(d.Bands) == 0 || len(d.Bands) > maxBands {
		return nil, fmt.Errorf("distance_fare.bands: %d, want 1 to %d", len(d.Bands), maxBands)
	}
	s := &scale{base: base, baseM: d.BaseM}
	from := d.BaseM
	for i, b := range d.Bands {
		where := fmt.Sprintf("distance_fare.bands[%d]", i)
		last := i == len(d.Bands)-1
		switch {
		case last && b.UpToM != 0:
			return nil, fmt.Errorf("%s.up_to_m: the last band prices every longer distance, leave it out", where)
		case !last && b.UpToM <= from:
			return nil, fmt.Errorf("%s.up_to_m: %d, want more than %d", where, b.UpToM, from)
		case b.EveryM <= 0:
			return nil, fmt.Errorf("%s.every_m: %d, want a positive number of meters", where, b.EveryM)
		}
		add, err := parseFen(b.Add)
		if err != nil || add == 0 {
			return nil, fmt.Errorf("%s.add: %w", where, nonZero(err))
		}
		s.bands = append(s.bands, band{upToM: b.UpToM, everyM: b.EveryM, add: add})
		from = b.UpToM
	}
	return s, nil
}

// maxNetworkM bounds a station's position on its line: 1,000 km, beyond any metro line, keeps
// every sum of distances far inside int64.
const maxNetworkM = 1_000_000

// readDistance computes every station-to-station fare: the shortest distance along the network
// (changing lines at interchanges, which share a station id), priced on the scale.
func (op *Operator) readDistance(f *fareFile) error {
	if f.DistanceFare == nil {
		return errors.New("distance_fare: missing")
	}
	sc, err := readScale(f.DistanceFare)
	if err != nil {
		return err
	}
	n := len(op.names)
	type edge struct {
		to int32
		m  int64
	}
	adj := make([][]edge, n)
	for i, lf := range f.Lines {
		var prev *stationFile
		for j := range lf.Stations {
			s := &lf.Stations[j]
			where := fmt.Sprintf("lines[%d].stations[%d].at_m", i, j)
			if s.AtM == nil {
				return fmt.Errorf("%s: missing, distance pricing needs each station's position", where)
			}
			if *s.AtM < 0 || *s.AtM > maxNetworkM {
				return fmt.Errorf("%s: %d, want 0 to %d", where, *s.AtM, maxNetworkM)
			}
			if prev != nil {
				if *s.AtM <= *prev.AtM {
					return fmt.Errorf("%s: %d, must increase along the line (previous %d)", where, *s.AtM, *prev.AtM)
				}
				a, b := op.stations[prev.ID], op.stations[s.ID]
				m := *s.AtM - *prev.AtM
				adj[a] = append(adj[a], edge{b, m})
				adj[b] = append(adj[b], edge{a, m})
			}
			prev = s
		}
	}
	// Dijkstra from every station; n is at most maxStations, so n² work on load is bounded.
	dist := make([]int64, n)
	done := make([]bool, n)
	op.fares = make([]int64, n*n)
	highest := int64(0)
	for from := 0; from < n; from++ {
		for i := range dist {
			dist[i], done[i] = math.MaxInt64, false
		}
		dist[from] = 0
		for {
			u := -1
			for i := 0; i < n; i++ {
				if !done[i] && dist[i] != math.MaxInt64 && (u < 0 || dist[i] < dist[u]) {
					u = i
				}
			}
			if u < 0 {
				break
			}
			done[u] = true
			for _, e := range adj[u] {
				if d := dist[u] + e.m; d < dist[e.to] {
					dist[e.to] = d
				}
			}
		}
		for to := 0; to < n; to++ {
			if dist[to] == math.MaxInt64 {
				return fmt.Errorf("lines: station %q cannot be reached from %q: the network must be connected", op.names[to], op.names[from])
			}
			fare := sc.fare(dist[to])
			op.fares[from*n+to] = fare
			highest = max(highest, fare)
		}
	}
	if f.MaxFare == "" {
		return errors.New("max_fare: missing, distance pricing needs the fare of an incomplete journey")
	}
	m, err := parseFen(f.MaxFare)
	if err != nil {
		return fmt.Errorf("max_fare: %w", err)
	}
	if m < highest {
		return fmt.Errorf("max_fare: %s is below the highest station-to-station fare %s", FormatFen(m), FormatFen(highest))
	}
	op.MaxFare = m
	return nil
}

// checkID returns why s is not an identifier a tap can carry, or "".
func checkID(s string) string {
	if s == "" {
		return "missing"
	}
	if len(s) > maxIDBytes {
		return fmt.Sprintf("%d bytes, more than %d", len(s), maxIDBytes)
	}
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] >= 0x7f {
			return "must be printable ascii without spaces"
		}
	}
	return ""
}

// NewTables checks operators together: ids are unique, and the operators sharing a city's cap
// agree on its amounts and on when the travel day starts.
func NewTables(ops ...*Operator) (*Tables, error) {
	t := &Tables{operators: map[string]*Operator{}, groups: map[string]*Group{}}
	for _, op := range ops {
		if _, ok := t.operators[op.ID]; ok {
			return nil, fmt.Errorf("operator %q has two fare tables", op.ID)
		}
		t.operators[op.ID] = op
		key := "operator/" + op.ID
		if op.CapScope == CapPerCity {
			key = "city/" + op.City
		}
		g, ok := t.groups[key]
		if !ok {
			g = &Group{Key: key, StartHour: op.StartHour, DailyCap: op.DailyCap, WeeklyCap: op.WeeklyCap}
			t.groups[key] = g
		}
		switch {
		case g.StartHour != op.StartHour:
			return nil, fmt.Errorf("operator %q: travel day starts at %d, but %s starts it at %d", op.ID, op.StartHour, g.Key, g.StartHour)
		case g.DailyCap != op.DailyCap || g.WeeklyCap != op.WeeklyCap:
			return nil, fmt.Errorf("operator %q: caps differ from the other operators sharing %s", op.ID, g.Key)
		}
		g.Operators = append(g.Operators, op.ID)
		g.CloseDelay = max(g.CloseDelay, op.IncompleteAfter+closeGrace)
		op.group = g
	}
	for _, g := range t.groups {
		slices.Sort(g.Operators)
	}
	return t, nil
}

// Operator returns the fare table of the operator id.
func (t *Tables) Operator(id string) (*Operator, bool) {
	op, ok := t.operators[id]
	return op, ok
}

// Operators lists the operators, sorted by id.
func (t *Tables) Operators() []*Operator {
	ops := make([]*Operator, 0, len(t.operators))
	for _, op := range t.operators {
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

// HasStation reports whether the operator has the station, and, when line is not empty, whether
// the station is on that line.
func (op *Operator) HasStation(station, line string) bool {
	if _, ok := op.stations[station]; !ok {
		return false
	}
	if line == "" {
		return true
	}
	l, ok := op.lines[line]
	return ok && l.stations[station]
}

// StationName returns the station's name, or "".
func (op *Operator) StationName(station string) string {
	if i, ok := op.stations[station]; ok {
		return op.names[i]
	}
	return ""
}

// Fare is the fare of a journey from one station to another, before discounts and caps: the
// distance fare, or for flat pricing the line's fare (from and to are then the one stop). A tap
// that does not name its line pays the fare of the only line serving the stop, or the operator's
// flat fare where several lines do.
func (op *Operator) Fare(from, to, lineID string) (int64, bool) {
	a, ok1 := op.stations[from]
	b, ok2 := op.stations[to]
	if !ok1 || !ok2 {
		return 0, false
	}
	if op.Pricing == PricingFlat {
		if lineID == "" && len(op.onLines[from]) == 1 {
			lineID = op.onLines[from][0]
		}
		if l, ok := op.lines[lineID]; ok {
			return l.flatFare, true
		}
		return op.FlatFare, true
	}
	return op.fares[int(a)*len(op.names)+int(b)], true
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
