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
	// Fare is the journey's fare before discounts and caps; Discount the transfer discount;
	// Charged what the card pays; CapCredit what the caps waived: Fare = Discount + Charged +
	// CapCredit.
	Fare, Discount, Charged, CapCredit int64
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
// with the tap that follows it if that is a tap out within the operator's limit; otherwise it is
// a journey without an exit, once the limit has passed at now or another tap has followed it (a
// tap in still waiting for its exit is left out). A tap out that no tap in claimed is a journey
// without an entry. Pairing looks only at neighbours, so any window of taps that starts at least
// the operator's limit before a journey pairs that journey the same way.
func pair(op *Operator, taps []*Tap, now time.Time) []Journey {
	js := make([]Journey, 0, len(taps))
	one := func(t *Tap, k Kind) Journey {
		return Journey{Operator: op.ID, Kind: k, Start: t.At, End: t.At, From: t.Station, To: t.Station, Line: t.Line, Entry: t.Key()}
	}
	for i := 0; i < len(taps); i++ {
		t := taps[i]
		switch t.Direction {
		case events.DirectionSingle:
			js = append(js, one(t, KindFlat))
		case events.DirectionOut:
			js = append(js, one(t, KindNoEntry))
		case events.DirectionIn:
			if i+1 < len(taps) {
				next := taps[i+1]
				if next.Direction == events.DirectionOut && next.At.Sub(t.At) <= op.IncompleteAfter {
					k := KindComplete
					if next.Station == t.Station && next.At.Sub(t.At) <= op.SameStationExit {
						k = KindSameStation
					}
					js = append(js, Journey{Operator: op.ID, Kind: k, Start: t.At, End: next.At, From: t.Station, To: next.Station,
						Line: t.Line, Entry: t.Key(), Exit: next.Key()})
					i++
					continue
				}
				js = append(js, one(t, KindNoExit))
				continue
			}
			if now.Sub(t.At) > op.IncompleteAfter {
				js = append(js, one(t, KindNoExit))
			}
		}
	}
	return js
}

// DayPrice is a card's travel day in one group, priced.
type DayPrice struct {
	Day      Day
	Journeys []Journey // in the order they started
	// ByOperator sums the journeys per operator: what each operator is owed for the day.
	ByOperator map[string]OperatorDay
	// CapCounted is what the day's charges add to the card's weekly cap: every charge but the
	// maximum fares of incomplete journeys.
	CapCounted int64
}

// OperatorDay is one operator's share of a card's travel day.
type OperatorDay struct {
	Charged    int64 // what the card pays the operator, maximum fares included
	CapCounted int64 // the part of Charged that counts toward the caps
	CapCredit  int64 // what the caps waived on the operator's journeys
	Journeys   int
}

// PriceDays prices a card's travel days in group g, in order, from its taps at the group's
// operators. taps must hold every tap of the card from g.Lookback() before the first day's start
// to g.Lookback() after the last day's end (more is fine; they are ignored). weekUsed is what the
// card's days of the first day's week before it counted toward the weekly cap; days must be
// consecutive and in one week. now decides whether a tap in still waiting for its exit has run
// out of time.
//
// Within a day: the journeys in the order they started, each with its fare (the maximum fare
// when incomplete, nothing for a same-station exit), less the transfer discount of its operator
// when it starts within the window after the previous journey of the group ended, then capped:
// what the day (and the week) already counted leaves the cap's remainder, and no journey pays
// more than that. Incomplete journeys pay the maximum fare, outside the caps; they neither earn
// nor give a transfer discount.
func (t *Tables) PriceDays(g *Group, taps []Tap, days []Day, weekUsed int64, now time.Time) ([]DayPrice, error) {
	if len(days) == 0 {
		return nil, nil
	}
	for i, d := range days {
		if d != days[0]+Day(i) || d.WeekStart() != days[0].WeekStart() {
			return nil, fmt.Errorf("days %v are not consecutive days of one week", days)
		}
	}
	// One sort by operator, then by tapOrder: each operator's taps are a run of it.
	sorted := make([]*Tap, len(taps))
	for i := range taps {
		tp := &taps[i]
		op, ok := t.operators[tp.Operator]
		if !ok || op.group != g {
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
		for _, j := range pair(t.operators[sorted[start].Operator], sorted[start:end], now) {
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
	k := 0
	for i, d := range days {
		dp := DayPrice{Day: d, ByOperator: make(map[string]OperatorDay, 1)}
		from := k
		for k < len(all) && all[k].Day == d {
			k++
		}
		dp.Journeys = all[from:k:k]
		t.priceDay(g, &dp, weekUsed)
		weekUsed += dp.CapCounted
		out[i] = dp
	}
	return out, nil
}

// priceDay prices a day's journeys, already in the order they started.
func (t *Tables) priceDay(g *Group, dp *DayPrice, weekUsed int64) {
	var (
		dayUsed int64
		prevEnd time.Time // the end of the last journey that can be transferred from
		hasPrev bool
	)
	for i := range dp.Journeys {
		j := &dp.Journeys[i]
		op := t.operators[j.Operator]
		switch j.Kind {
		case KindNoExit, KindNoEntry:
			j.Fare, j.Charged = op.MaxFare, op.MaxFare
		case KindSameStation:
			j.Fare = 0
		default:
			j.Fare, _ = op.Fare(j.From, j.To, j.Line) // stations were checked at intake
			if op.Transfer != nil && hasPrev && j.Start.Sub(prevEnd) <= op.Transfer.Window {
				j.Discount = min(op.Transfer.Discount, j.Fare)
			}
			due := j.Fare - j.Discount
			room := min(remaining(g.DailyCap, dayUsed), remaining(g.WeeklyCap, weekUsed+dayUsed))
			j.Charged = min(due, room)
			j.CapCredit = due - j.Charged
			dayUsed += j.Charged
			prevEnd, hasPrev = j.End, true
		}
		od := dp.ByOperator[j.Operator]
		od.Charged += j.Charged
		od.CapCredit += j.CapCredit
		od.Journeys++
		if !j.Kind.Incomplete() {
			od.CapCounted += j.Charged
		}
		dp.ByOperator[j.Operator] = od
	}
	dp.CapCounted = dayUsed
}

// remaining is what a cap leaves after used; NoCap leaves everything.
func remaining(capFen, used int64) int64 {
	if capFen == NoCap {
		return NoCap
	}
	return max(0, capFen-used)
}
