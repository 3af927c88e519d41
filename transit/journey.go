package transit

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/joinincard/engine/events"
)

// Kind is what a journey is.
type Kind string

const (
	KindComplete    Kind = "complete"     // tap in and tap out: the station-to-station fare
	KindFlat        Kind = "flat"         // a single tap on a flat-fare operator
	KindSameStation Kind = "same_station" // in and out at one station within the window: free
	KindNoExit      Kind = "no_exit"      // a tap in without a tap out in time: the maximum fare
	KindNoEntry     Kind = "no_entry"     // a tap out without a tap in before it: the maximum fare
)

// Incomplete reports whether the journey is charged the maximum fare, outside the caps.
func (k Kind) Incomplete() bool { return k == KindNoExit || k == KindNoEntry }

// Journey is one priced journey of a card on one operator.
type Journey struct {
	Operator string
	Kind     Kind
	Start    time.Time // the first tap
	End      time.Time // the last tap (Start for a journey of one tap)
	From, To string    // stations (To is From for one tap)
	Line     string
	Entry    Key // the first tap
	Exit     Key // the second tap; zero for a journey of one tap
	Day      Day
	// Fare is the journey's fare before discounts and caps, at its time of day and for the card's
	// concession class; Discount the transfer discount; TierDiscount the spend discount; Charged
	// what the card pays; CapCredit what the caps waived: Fare = Discount + TierDiscount +
	// Charged + CapCredit.
	Fare, Discount, TierDiscount, Charged, CapCredit int64
	// TimeBand names the fare by time of day the journey paid, if any; Concession the card's
	// concession class, if its fare was the class's.
	TimeBand, Concession string
}

// tapOrder sorts a card's taps by when they happened, then (for readers stamping the same
// instant) entries before exits, then by identity, so that pairing is a function of the taps
// alone, never of the order they arrived in.
func tapOrder(a, b *Tap) int {
	if c := a.At.Compare(b.At); c != 0 {
		return c
	}
	if c := cmp.Compare(directionRank(a.Direction), directionRank(b.Direction)); c != 0 {
		return c
	}
	if c := strings.Compare(a.Operator, b.Operator); c != 0 {
		return c
	}
	if c := strings.Compare(a.Device, b.Device); c != 0 {
		return c
	}
	return cmp.Compare(a.Seq, b.Seq)
}

func directionRank(d events.Direction) int {
	switch d {
	case events.DirectionIn:
		return 0
	case events.DirectionSingle:
		return 1
	}
	return 2
}

// pair turns one card's taps at one operator, sorted by tapOrder, into journeys. A tap in pairs
// with the tap that follows it if that is a tap out within the limit of the operator's table in
// force on the tap in's travel day; otherwise it is a journey without an exit, once the limit has
// passed at now or another tap has followed it (a tap in still waiting for its exit is left out).
// A tap out that no tap in claimed is a journey without an entry. Pairing looks only at
// neighbours, so any window of taps that starts at least the group's lookback before a journey
// pairs that journey the same way.
func (t *Tables) pair(id string, g *Group, taps []*Tap, now time.Time) []Journey {
	js := make([]Journey, 0, len(taps))
	one := func(tp *Tap, k Kind) Journey {
		return Journey{Operator: id, Kind: k, Start: tp.At, End: tp.At, From: tp.Station, To: tp.Station, Line: tp.Line, Entry: tp.Key()}
	}
	for i := 0; i < len(taps); i++ {
		tp := taps[i]
		switch tp.Direction {
		case events.DirectionSingle:
			js = append(js, one(tp, KindFlat))
		case events.DirectionOut:
			js = append(js, one(tp, KindNoEntry))
		case events.DirectionIn:
			op := t.opOn(id, g.DayOf(tp.At))
			if i+1 < len(taps) {
				next := taps[i+1]
				if next.Direction == events.DirectionOut && next.At.Sub(tp.At) <= op.IncompleteAfter {
					k := KindComplete
					if next.Station == tp.Station && next.At.Sub(tp.At) <= op.SameStationExit {
						k = KindSameStation
					}
					js = append(js, Journey{Operator: id, Kind: k, Start: tp.At, End: next.At, From: tp.Station, To: next.Station,
						Line: tp.Line, Entry: tp.Key(), Exit: next.Key()})
					i++
					continue
				}
				js = append(js, one(tp, KindNoExit))
				continue
			}
			if now.Sub(tp.At) > op.IncompleteAfter {
				js = append(js, one(tp, KindNoExit))
			}
		}
	}
	return js
}

// opOn is the version of operator id's table in force on day d, or its first version for a day
// before any (a tap the intake refused would be on such a day): never nil for an operator of the
// tables.
func (t *Tables) opOn(id string, d Day) *Operator {
	if v := t.versionOn(id, d); v != nil {
		return v
	}
	return t.versions[id][0]
}

// MaxPriceDays bounds the days priced at once: a re-pricing runs from a late tap's day (at most
// MaxTapAge old) through the end of its month and of the week that month ends in.
const MaxPriceDays = 62

// Prior is what a card's travel days before the first day priced counted, in that day's week
// and month: what the week's and month's caps and spend discount carry over.
type Prior struct {
	Week, Month Counted
}

// Counted is what a card's days counted toward a period's rules.
type Counted struct {
	Capped int64 // charges toward the caps: every charge but the maximum fares
	Spent  int64 // what the card paid, maximum fares included: toward the spend discount
}

func (c *Counted) add(o Counted) {
	c.Capped += o.Capped
	c.Spent += o.Spent
}

// ClassChange is a card's concession class from an instant on ("" for none).
type ClassChange struct {
	At    time.Time
	Class string
}

// Concessions is a card's concession class over time, oldest first; nil for a card that never
// carried one.
type Concessions []ClassChange

// At is the class the card carried at instant t.
func (c Concessions) At(t time.Time) string {
	class := ""
	for _, ch := range c {
		if ch.At.After(t) {
			break
		}
		class = ch.Class
	}
	return class
}

// DayPrice is a card's travel day in one group, priced.
type DayPrice struct {
	Day      Day
	Journeys []Journey // in the order they started
	// ByOperator sums the journeys per operator: what each operator is owed for the day.
	ByOperator map[string]OperatorDay
	// CapCounted is what the day's charges add to the card's weekly and monthly caps: every
	// charge but the maximum fares of incomplete journeys.
	CapCounted int64
	// Spent is what the day's charges add to the card's spend: every charge.
	Spent int64
}

// OperatorDay is one operator's share of a card's travel day.
type OperatorDay struct {
	Charged    int64 // what the card pays the operator, maximum fares included
	CapCounted int64 // the part of Charged that counts toward the caps
	CapCredit  int64 // what the caps waived on the operator's journeys
	Journeys   int
}

// PriceDays prices a card's travel days in group g, in order, from its taps at the group's
// operators, each day by the versions of the operators' tables in force on it. taps must hold
// every tap of the card from g.Lookback() before the first day's start to g.Lookback() after the
// last day's end (more is fine; they are ignored). days must be consecutive, at most
// MaxPriceDays; prior is what the card's days of the first day's week and month before it
// counted; classes is the card's concession class over time. now decides whether a tap in still
// waiting for its exit has run out of time.
//
// Within a day, the journeys in the order they started. Each costs its fare (the station-to-
// station or flat fare, times its time band's fare percent, times the card's concession class's
// fare percent, each rounded half-even to the fen), less the transfer discount of its operator
// when it starts within the window after the previous journey of the group ended that day (all
// of it for a free transfer), less the spend discount of the tier the card's spend in the period
// had reached when it started (the price rounded half-even to the fen), then capped: what the
// day, the week and the month already counted leaves each cap's remainder, and no journey pays
// more than the least of them. Incomplete journeys pay the maximum fare, outside the caps and
// the discounts; they neither earn nor give a transfer discount, and count as spend.
func (t *Tables) PriceDays(g *Group, taps []Tap, days []Day, prior Prior, classes Concessions, now time.Time) ([]DayPrice, error) {
	if len(days) == 0 {
		return nil, nil
	}
	if len(days) > MaxPriceDays {
		return nil, fmt.Errorf("%d days priced at once, more than %d", len(days), MaxPriceDays)
	}
	for i, d := range days {
		if d != days[0]+Day(i) {
			return nil, fmt.Errorf("days %v are not consecutive", days)
		}
	}
	// One sort by operator, then by tapOrder: each operator's taps are a run of it.
	sorted := make([]*Tap, len(taps))
	for i := range taps {
		tp := &taps[i]
		if vs := t.versions[tp.Operator]; len(vs) == 0 || vs[0].group != g {
			return nil, fmt.Errorf("tap %s/%s/%d: operator %q is not in group %s", tp.Operator, tp.Device, tp.Seq, tp.Operator, g.Key)
		}
		sorted[i] = tp
	}
	slices.SortFunc(sorted, func(a, b *Tap) int {
		if c := strings.Compare(a.Operator, b.Operator); c != 0 {
			return c
		}
		return tapOrder(a, b)
	})
	first, last := days[0], days[len(days)-1]
	all := make([]Journey, 0, len(taps))
	for start := 0; start < len(sorted); {
		end := start + 1
		for end < len(sorted) && sorted[end].Operator == sorted[start].Operator {
			end++
		}
		for _, j := range t.pair(sorted[start].Operator, g, sorted[start:end], now) {
			j.Day = g.DayOf(j.Start)
			if j.Day >= first && j.Day <= last {
				all = append(all, j)
			}
		}
		start = end
	}
	slices.SortFunc(all, func(a, b Journey) int {
		if c := a.Start.Compare(b.Start); c != 0 {
			return c
		}
		if c := strings.Compare(a.Entry.Operator, b.Entry.Operator); c != 0 {
			return c
		}
		if c := strings.Compare(a.Entry.Device, b.Entry.Device); c != 0 {
			return c
		}
		return cmp.Compare(a.Entry.Seq, b.Entry.Seq)
	})
	// A journey's day follows its start, so each day's journeys are a run of all.
	out := make([]DayPrice, len(days))
	c := counters{week: prior.Week, month: prior.Month}
	k := 0
	for i, d := range days {
		if i > 0 && d == d.WeekStart() {
			c.week = Counted{}
		}
		if i > 0 && d == d.MonthStart() {
			c.month = Counted{}
		}
		c.day = Counted{}
		dp := DayPrice{Day: d, ByOperator: make(map[string]OperatorDay, 1)}
		from := k
		for k < len(all) && all[k].Day == d {
			k++
		}
		dp.Journeys = all[from:k:k]
		t.priceDay(g, &dp, &c, classes)
		out[i] = dp
	}
	return out, nil
}

// counters are what the card's journeys counted so far in the day, week and month being priced.
type counters struct {
	day, week, month Counted
}

func (c *counters) add(o Counted) {
	c.day.add(o)
	c.week.add(o)
	c.month.add(o)
}

// spent is what the card spent so far in period p.
func (c *counters) spent(p Period) int64 {
	switch p {
	case PeriodWeek:
		return c.week.Spent
	case PeriodMonth:
		return c.month.Spent
	}
	return c.day.Spent
}

// priceDay prices a day's journeys, already in the order they started, counting them into c.
func (t *Tables) priceDay(g *Group, dp *DayPrice, c *counters, classes Concessions) {
	rules := g.RulesOn(dp.Day)
	var (
		day     Counted
		prevEnd time.Time // the end of the last journey that can be transferred from
		hasPrev bool
	)
	for i := range dp.Journeys {
		j := &dp.Journeys[i]
		op := t.opOn(j.Operator, dp.Day)
		var counted Counted
		switch j.Kind {
		case KindNoExit, KindNoEntry:
			j.Fare, j.Charged = op.MaxFare, op.MaxFare
		case KindSameStation:
			j.Fare = 0
		default:
			j.Fare = op.fareOf(j, classes)
			if op.Transfer != nil && hasPrev && j.Start.Sub(prevEnd) <= op.Transfer.Window {
				j.Discount = min(op.Transfer.Discount, j.Fare)
				if op.Transfer.Free {
					j.Discount = j.Fare
				}
			}
			due := j.Fare - j.Discount
			if pct := rules.Tiers.PercentAt(c.spent(periodOf(rules.Tiers))); pct > 0 {
				j.TierDiscount = due - percentOf(due, 100-pct)
				due -= j.TierDiscount
			}
			room := min(remaining(rules.DailyCap, c.day.Capped), remaining(rules.WeeklyCap, c.week.Capped),
				remaining(rules.MonthlyCap, c.month.Capped))
			j.Charged = min(due, room)
			j.CapCredit = due - j.Charged
			counted.Capped = j.Charged
			prevEnd, hasPrev = j.End, true
		}
		counted.Spent = j.Charged
		c.add(counted)
		day.add(counted)
		od := dp.ByOperator[j.Operator]
		od.Charged += j.Charged
		od.CapCredit += j.CapCredit
		od.Journeys++
		od.CapCounted += counted.Capped
		dp.ByOperator[j.Operator] = od
	}
	dp.CapCounted, dp.Spent = day.Capped, day.Spent
}

func periodOf(s *SpendTiers) Period {
	if s == nil {
		return PeriodDay
	}
	return s.Period
}

// fareOf is a complete or flat journey's fare: the station-to-station or flat fare (the maximum
// fare between stations the table does not have, as a version that dropped a station leaves
// them), times the fare percent of the time band it starts in, times the fare percent of the
// card's concession class then, each rounded half-even to the fen. It names the band and the
// class on j.
func (op *Operator) fareOf(j *Journey, classes Concessions) int64 {
	fare, ok := op.Fare(j.From, j.To, j.Line)
	if !ok {
		return op.MaxFare
	}
	for i := range op.TimeBands {
		if b := &op.TimeBands[i]; b.contains(j.Start) {
			fare, j.TimeBand = percentOf(fare, b.FarePercent), b.Name
			break
		}
	}
	if class := classes.At(j.Start); class != "" {
		if pct, ok := op.Concessions[class]; ok {
			fare, j.Concession = percentOf(fare, pct), class
		}
	}
	return fare
}

// remaining is what a cap leaves after used; NoCap leaves everything.
func remaining(capFen, used int64) int64 {
	if capFen == NoCap {
		return NoCap
	}
	return max(0, capFen-used)
}
