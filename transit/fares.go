package transit

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"time"

	"github.com/joinincard/engine/cities"
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
	// maxTimeBands bounds the fares by time of day: a morning and an evening peak, an off-peak
	// and a night are four; eight is beyond any published rule.
	maxTimeBands = 8
	// maxFarePercent bounds a time band's fare: a peak fare of three times the normal one is
	// beyond any rule, so more is a typo (150 meant as 1.50).
	maxFarePercent = 300
	// maxConcessions bounds the concession classes of one table: senior, student, disabled,
	// veteran and a few local ones.
	maxConcessions = 16
	// maxClassBytes bounds a concession class's name, which cards carry.
	maxClassBytes = 32
	// maxSpendTiers bounds a spend discount's tiers: Beijing's has three.
	maxSpendTiers = 8
	// maxNameBytes bounds a name (an operator's, a line's, a station's, a band's): shown on
	// trip histories, like the event schema's prose.
	maxNameBytes = 256
	// maxSourceBytes bounds a table's source: a paragraph citing the published rules.
	maxSourceBytes = 4096
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
	SpendTiers             *tiersFile    `json:"spend_tiers"`
	TimeOfDay              []timeFile    `json:"time_of_day"`
	Concessions            []classFile   `json:"concessions"`
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
	Free          bool   `json:"free"`
}

type capsFile struct {
	Scope   string `json:"scope"`
	Daily   string `json:"daily"`
	Weekly  string `json:"weekly"`
	Monthly string `json:"monthly"`
}

// tiersFile is a spend discount: once a card has spent From in the period, its further journeys
// cost PercentOff less.
type tiersFile struct {
	Period string     `json:"period"`
	Tiers  []tierFile `json:"tiers"`
}

type tierFile struct {
	From       string `json:"from"`
	PercentOff *int   `json:"percent_off"`
}

// timeFile is a fare by time of day: a journey starting from From to To (local "HH:MM", To
// "24:00" for midnight) on the band's days costs FarePercent of the fare.
type timeFile struct {
	Name        string `json:"name"`
	From        string `json:"from"`
	To          string `json:"to"`
	Days        string `json:"days"`
	FarePercent *int   `json:"fare_percent"`
}

// classFile is a concession class: a card that carries the class pays FarePercent of the fare.
type classFile struct {
	Class       string `json:"class"`
	FarePercent *int   `json:"fare_percent"`
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
// Discount less (never below zero), or nothing when Free.
type Transfer struct {
	Window   time.Duration
	Discount int64
	Free     bool
}

// Period is what a periodic rule (a cap, a spend discount) counts over: a travel day, a week
// (Monday to Sunday, by travel day) or a calendar month (by travel day).
type Period string

const (
	PeriodDay   Period = "day"
	PeriodWeek  Period = "week"
	PeriodMonth Period = "month"
)

// SpendTiers is a spend discount per card and period: a journey costs the PercentOff of the
// highest tier whose From the card's spend in the period had reached when the journey started.
// Spend is what the card paid, after every discount; a journey is priced whole at one tier, so
// the journey that crosses a threshold pays the tier it started in and the next one the new tier.
type SpendTiers struct {
	Period Period
	Tiers  []SpendTier // From increasing
}

// SpendTier is one tier of a spend discount.
type SpendTier struct {
	From       int64 // fen spent in the period
	PercentOff int   // 0 to 100
}

// PercentAt is the discount of a journey that starts with spent fen spent in the period.
func (s *SpendTiers) PercentAt(spent int64) int {
	if s == nil {
		return 0
	}
	pct := 0
	for _, t := range s.Tiers {
		if spent < t.From {
			break
		}
		pct = t.PercentOff
	}
	return pct
}

func (s *SpendTiers) equal(o *SpendTiers) bool {
	if s == nil || o == nil {
		return s == o
	}
	return s.Period == o.Period && slices.Equal(s.Tiers, o.Tiers)
}

// TimeBand is a fare by time of day: a journey that starts at a local time of day within
// [From, To) on the band's days costs FarePercent of its fare.
type TimeBand struct {
	Name         string
	From, To     time.Duration // since local midnight
	WeekdaysOnly bool          // Monday to Friday only
	FarePercent  int
}

// contains reports whether a journey starting at t (any zone) is in the band.
func (b *TimeBand) contains(t time.Time) bool {
	local := t.In(shanghai)
	if b.WeekdaysOnly && (local.Weekday() == time.Saturday || local.Weekday() == time.Sunday) {
		return false
	}
	h, m, sec := local.Clock()
	at := time.Duration(h)*time.Hour + time.Duration(m)*time.Minute + time.Duration(sec)*time.Second
	return at >= b.From && at < b.To
}

// Rules are the periodic rules a pricing group's operators share on a travel day: the caps and
// the spend discount.
type Rules struct {
	DailyCap, WeeklyCap, MonthlyCap int64 // NoCap when there is none
	Tiers                           *SpendTiers
}

func (r Rules) equal(o Rules) bool {
	return r.DailyCap == o.DailyCap && r.WeeklyCap == o.WeeklyCap && r.MonthlyCap == o.MonthlyCap && r.Tiers.equal(o.Tiers)
}

// noRules are the rules of a day no table is in force on.
var noRules = Rules{DailyCap: NoCap, WeeklyCap: NoCap, MonthlyCap: NoCap}

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
	// Rules are the caps and the spend discount, shared with the group's other operators.
	Rules Rules
	// TimeBands are the fares by time of day, by start; a journey outside them pays its fare.
	TimeBands []TimeBand
	// Concessions is the fare percent of each concession class a card may carry.
	Concessions map[string]int
	Source      string
	// From is the first travel day this version of the table prices (Always for a table without
	// a date); Seq orders versions with one From, the later uploaded winning.
	From Day
	Seq  int

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
	op := &Operator{ID: f.OperatorID, Name: f.Name, City: cities.Canonical(f.City), Source: f.Source, lines: map[string]*line{},
		stations: map[string]int32{}, onLines: map[string][]string{}, Rules: noRules}
	if why := checkID(f.OperatorID); why != "" {
		return nil, fmt.Errorf("operator_id: %s", why)
	}
	for _, t := range []struct {
		name, value string
		max         int
	}{{"name", f.Name, maxNameBytes}, {"city", f.City, maxNameBytes}, {"source", f.Source, maxSourceBytes}} {
		if t.value == "" && t.name != "source" {
			return nil, fmt.Errorf("%s: missing", t.name)
		}
		if why := events.CheckText(t.value, t.max); why != "" {
			return nil, fmt.Errorf("%s: %s", t.name, why)
		}
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
	if err := op.readTiers(f.SpendTiers); err != nil {
		return nil, err
	}
	if err := op.readTimeBands(f.TimeOfDay); err != nil {
		return nil, err
	}
	if err := op.readConcessions(f.Concessions); err != nil {
		return nil, err
	}
	if t := f.Transfer; t != nil {
		w := time.Duration(t.WindowMinutes) * time.Minute
		if w <= 0 || w > maxTransferWindow {
			return nil, fmt.Errorf("transfer.window_minutes: %d, want 1 to %d", t.WindowMinutes, int(maxTransferWindow/time.Minute))
		}
		if t.Free {
			if t.Discount != "" {
				return nil, errors.New("transfer.discount: a free transfer has no discount, leave it out")
			}
			op.Transfer = &Transfer{Window: w, Free: true}
		} else {
			d, err := parseFen(t.Discount)
			if err != nil {
				return nil, fmt.Errorf("transfer.discount: %w", err)
			}
			if d == 0 {
				return nil, errors.New("transfer.discount: zero, leave the transfer out instead")
			}
			op.Transfer = &Transfer{Window: w, Discount: d}
		}
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
		highest = op.peak(highest)
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
		op.Rules.DailyCap = d
	}
	if c.Weekly != "" {
		w, err := parseFen(c.Weekly)
		if err != nil || w == 0 {
			return fmt.Errorf("caps.weekly: %w", nonZero(err))
		}
		if op.Rules.DailyCap != NoCap && w < op.Rules.DailyCap {
			return fmt.Errorf("caps.weekly: %s is below the daily cap %s", FormatFen(w), FormatFen(op.Rules.DailyCap))
		}
		op.Rules.WeeklyCap = w
	}
	if c.Monthly != "" {
		m, err := parseFen(c.Monthly)
		if err != nil || m == 0 {
			return fmt.Errorf("caps.monthly: %w", nonZero(err))
		}
		switch r := op.Rules; {
		case r.WeeklyCap != NoCap && m < r.WeeklyCap:
			return fmt.Errorf("caps.monthly: %s is below the weekly cap %s", FormatFen(m), FormatFen(r.WeeklyCap))
		case r.DailyCap != NoCap && m < r.DailyCap:
			return fmt.Errorf("caps.monthly: %s is below the daily cap %s", FormatFen(m), FormatFen(r.DailyCap))
		}
		op.Rules.MonthlyCap = m
	}
	return nil
}

// readTiers reads the spend discount: a period, and tiers from increasing amounts spent.
func (op *Operator) readTiers(f *tiersFile) error {
	if f == nil {
		return nil
	}
	st := &SpendTiers{Period: Period(f.Period)}
	switch st.Period {
	case PeriodDay, PeriodWeek, PeriodMonth:
	default:
		return fmt.Errorf("spend_tiers.period: %q, want day, week or month", f.Period)
	}
	if len(f.Tiers) == 0 || len(f.Tiers) > maxSpendTiers {
		return fmt.Errorf("spend_tiers.tiers: %d, want 1 to %d", len(f.Tiers), maxSpendTiers)
	}
	for i, tf := range f.Tiers {
		where := fmt.Sprintf("spend_tiers.tiers[%d]", i)
		from, err := parseFen(tf.From)
		if err != nil || from == 0 {
			return fmt.Errorf("%s.from: %w", where, nonZeroTier(err))
		}
		if i > 0 && from <= st.Tiers[i-1].From {
			return fmt.Errorf("%s.from: %s, want more than the tier before (%s)", where, FormatFen(from), FormatFen(st.Tiers[i-1].From))
		}
		if tf.PercentOff == nil {
			return fmt.Errorf("%s.percent_off: missing", where)
		}
		if p := *tf.PercentOff; p < 0 || p > 100 {
			return fmt.Errorf("%s.percent_off: %d, want 0 to 100", where, p)
		}
		st.Tiers = append(st.Tiers, SpendTier{From: from, PercentOff: *tf.PercentOff})
	}
	op.Rules.Tiers = st
	return nil
}

func nonZeroTier(err error) error {
	if err != nil {
		return err
	}
	return errors.New("zero, every journey would be in the tier: put its discount in the fares instead")
}

// readTimeBands reads the fares by time of day: bands that do not overlap, each with its fare.
func (op *Operator) readTimeBands(fs []timeFile) error {
	if len(fs) > maxTimeBands {
		return fmt.Errorf("time_of_day: %d bands, more than %d", len(fs), maxTimeBands)
	}
	for i, tf := range fs {
		where := fmt.Sprintf("time_of_day[%d]", i)
		if tf.Name == "" {
			return fmt.Errorf("%s.name: missing", where)
		}
		if why := events.CheckText(tf.Name, maxNameBytes); why != "" {
			return fmt.Errorf("%s.name: %s", where, why)
		}
		b := TimeBand{Name: tf.Name}
		var err error
		if b.From, err = parseClock(tf.From, false); err != nil {
			return fmt.Errorf("%s.from: %w", where, err)
		}
		if b.To, err = parseClock(tf.To, true); err != nil {
			return fmt.Errorf("%s.to: %w", where, err)
		}
		if b.To <= b.From {
			return fmt.Errorf("%s.to: %s, want after from (%s)", where, tf.To, tf.From)
		}
		switch tf.Days {
		case "all":
		case "weekdays":
			b.WeekdaysOnly = true
		default:
			return fmt.Errorf("%s.days: %q, want all or weekdays", where, tf.Days)
		}
		if tf.FarePercent == nil {
			return fmt.Errorf("%s.fare_percent: missing", where)
		}
		if p := *tf.FarePercent; p < 0 || p > maxFarePercent {
			return fmt.Errorf("%s.fare_percent: %d, want 0 to %d", where, p, maxFarePercent)
		}
		b.FarePercent = *tf.FarePercent
		for j, o := range op.TimeBands {
			if b.From < o.To && o.From < b.To {
				return fmt.Errorf("%s: %s to %s overlaps time_of_day[%d]", where, tf.From, tf.To, j)
			}
		}
		op.TimeBands = append(op.TimeBands, b)
	}
	return nil
}

// parseClock reads a local time of day "HH:MM"; "24:00" is midnight at the end of the day, when
// end allows it.
func parseClock(s string, end bool) (time.Duration, error) {
	if len(s) != 5 || s[2] != ':' || !allDigits(s[:2]) || !allDigits(s[3:]) {
		return 0, fmt.Errorf("%q, want a time of day such as \"07:30\"", s)
	}
	h, m := int(s[0]-'0')*10+int(s[1]-'0'), int(s[3]-'0')*10+int(s[4]-'0')
	if m > 59 || h > 24 || h == 24 && (m != 0 || !end) {
		return 0, fmt.Errorf("%q is not a time of day", s)
	}
	return time.Duration(h)*time.Hour + time.Duration(m)*time.Minute, nil
}

// readConcessions reads the concession classes and their fares.
func (op *Operator) readConcessions(fs []classFile) error {
	if len(fs) > maxConcessions {
		return fmt.Errorf("concessions: %d classes, more than %d", len(fs), maxConcessions)
	}
	for i, cf := range fs {
		where := fmt.Sprintf("concessions[%d]", i)
		if why := CheckClass(cf.Class); why != "" {
			return fmt.Errorf("%s.class: %s", where, why)
		}
		if _, dup := op.Concessions[cf.Class]; dup {
			return fmt.Errorf("%s.class: %q twice", where, cf.Class)
		}
		if cf.FarePercent == nil {
			return fmt.Errorf("%s.fare_percent: missing", where)
		}
		if p := *cf.FarePercent; p < 0 || p > 100 {
			return fmt.Errorf("%s.fare_percent: %d, want 0 to 100", where, p)
		}
		if op.Concessions == nil {
			op.Concessions = map[string]int{}
		}
		op.Concessions[cf.Class] = *cf.FarePercent
	}
	return nil
}

// CheckClass returns why s is not a concession class's name, or "": lowercase letters, digits
// and underscores, 1 to maxClassBytes bytes.
func CheckClass(s string) string {
	if s == "" {
		return "missing"
	}
	if len(s) > maxClassBytes {
		return fmt.Sprintf("%d bytes, more than %d", len(s), maxClassBytes)
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '_') {
			return "want lowercase letters, digits and underscores"
		}
	}
	return ""
}

// peak is fare at the dearest time of day: what the maximum fare must cover.
func (op *Operator) peak(fare int64) int64 {
	pct := 100
	for _, b := range op.TimeBands {
		pct = max(pct, b.FarePercent)
	}
	return percentOf(fare, pct)
}

// percentOf is pct percent of fen, rounded half-even to the fen.
func percentOf(fen int64, pct int) int64 {
	n := fen * int64(pct) // fen is at most maxFareFen and pct maxFarePercent: far inside int64
	q, r := n/100, n%100
	if r > 50 || r == 50 && q%2 == 1 {
		q++
	}
	return q
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
		if why := events.CheckText(lf.Name, maxNameBytes); why != "" {
			return fmt.Errorf("%s.name: %s", where, why)
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
			if why := events.CheckText(s.Name, maxNameBytes); why != "" {
				return fmt.Errorf("%s.name: %s", sw, why)
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
			highest = max(highest, op.peak(fare))
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
