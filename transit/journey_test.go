package transit

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/joinincard/engine/events"
)

func shippedTables(t testing.TB) *Tables {
	t.Helper()
	ts, err := Shipped()
	if err != nil {
		t.Fatal(err)
	}
	return ts
}

// parseTaps reads one tap a line: "OPERATOR MM-DD HH:MM direction station [line=L] [card=C]
// [dev=D] [seq=N]", in 2026, Shanghai time. Devices and sequences default to a device per
// operator and the line's number, so every tap is distinct unless a line says otherwise.
func parseTaps(t testing.TB, text string) []Tap {
	t.Helper()
	var taps []Tap
	for n, ln := range strings.Split(strings.TrimSpace(text), "\n") {
		f := strings.Fields(ln)
		if len(f) == 0 {
			continue
		}
		if len(f) < 5 {
			t.Fatalf("tap line %q: want OPERATOR MM-DD HH:MM direction station", ln)
		}
		at, err := time.ParseInLocation("2006-01-02 15:04", "2026-"+f[1]+" "+f[2], shanghai)
		if err != nil {
			t.Fatalf("tap line %q: %v", ln, err)
		}
		tp := Tap{Operator: f[0], Device: "dev-" + f[0], Seq: int64(n + 1), Card: "card-1", At: at.UTC(),
			Direction: events.Direction(f[3]), Station: f[4], Mode: events.ModeMetro}
		if f[0] == "HZBUS" {
			tp.Mode = events.ModeBus
		}
		for _, kv := range f[5:] {
			k, v, _ := strings.Cut(kv, "=")
			switch k {
			case "line":
				tp.Line = v
			case "card":
				tp.Card = v
			case "dev":
				tp.Device = v
			case "seq":
				tp.Seq, err = strconv.ParseInt(v, 10, 64)
				if err != nil {
					t.Fatalf("tap line %q: %v", ln, err)
				}
			default:
				t.Fatalf("tap line %q: unknown %q", ln, kv)
			}
		}
		taps = append(taps, tp)
	}
	return taps
}

// describe writes priced days one journey a line: "MM-DD OPERATOR kind FROM>TO fare F
// [discount D] charged C [capped X]".
func describe(dps []DayPrice) string {
	var b strings.Builder
	for _, dp := range dps {
		for _, j := range dp.Journeys {
			stations := j.From
			if j.Exit != (Key{}) {
				stations += ">" + j.To
			}
			fmt.Fprintf(&b, "%s %s %s %s fare %s", dp.Day.String()[5:], j.Operator, j.Kind, stations, FormatFen(j.Fare))
			if j.Discount != 0 {
				fmt.Fprintf(&b, " discount %s", FormatFen(j.Discount))
			}
			fmt.Fprintf(&b, " charged %s", FormatFen(j.Charged))
			if j.CapCredit != 0 {
				fmt.Fprintf(&b, " capped %s", FormatFen(j.CapCredit))
			}
			b.WriteByte('\n')
		}
	}
	return b.String()
}

func trimLines(s string) string {
	var out []string
	for _, l := range strings.Split(strings.TrimSpace(s), "\n") {
		if l = strings.TrimSpace(l); l != "" {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n") + "\n"
}

// checkDay checks what every priced day must satisfy, whatever the taps.
func checkDay(t testing.TB, g *Group, dp DayPrice) {
	t.Helper()
	var counted int64
	sums := map[string]OperatorDay{}
	for _, j := range dp.Journeys {
		if j.Charged < 0 || j.Discount < 0 || j.CapCredit < 0 {
			t.Fatalf("%s: negative part in %+v", dp.Day, j)
		}
		if j.Kind.Incomplete() {
			if j.Charged != j.Fare || j.Discount != 0 || j.TierDiscount != 0 || j.CapCredit != 0 {
				t.Fatalf("%s: an incomplete journey not at its maximum fare: %+v", dp.Day, j)
			}
		} else {
			if j.Fare != j.Discount+j.TierDiscount+j.Charged+j.CapCredit {
				t.Fatalf("%s: fare %d is not discount %d + tier discount %d + charged %d + capped %d", dp.Day, j.Fare, j.Discount,
					j.TierDiscount, j.Charged, j.CapCredit)
			}
			counted += j.Charged
		}
		s := sums[j.Operator]
		s.Charged += j.Charged
		s.CapCredit += j.CapCredit
		s.Journeys++
		if !j.Kind.Incomplete() {
			s.CapCounted += j.Charged
		}
		sums[j.Operator] = s
	}
	var spent int64
	for _, j := range dp.Journeys {
		spent += j.Charged
	}
	if spent != dp.Spent {
		t.Fatalf("%s: spent %d, journeys charged %d", dp.Day, dp.Spent, spent)
	}
	if counted != dp.CapCounted {
		t.Fatalf("%s: cap counted %d, journeys say %d", dp.Day, dp.CapCounted, counted)
	}
	if daily := g.RulesOn(dp.Day).DailyCap; daily != NoCap && counted > daily {
		t.Fatalf("%s: charged %d outside maximum fares, over the daily cap %d", dp.Day, counted, daily)
	}
	if len(sums) != len(dp.ByOperator) {
		t.Fatalf("%s: operators %v, journeys name %v", dp.Day, dp.ByOperator, sums)
	}
	for op, s := range sums {
		if dp.ByOperator[op] != s {
			t.Fatalf("%s %s: totals %+v, journeys sum to %+v", dp.Day, op, dp.ByOperator[op], s)
		}
	}
}

// week is the Monday to Sunday the scenarios live in: 2026-03-02 is a Monday.
var monday = DayOf(2026, time.March, 2)

func TestScenarios(t *testing.T) {
	ts := shippedTables(t)
	hz, _ := ts.Group("city/hangzhou")
	sh, _ := ts.Group("operator/SHMETRO")
	late := time.Date(2026, time.March, 20, 12, 0, 0, 0, shanghai)
	cases := []struct {
		name  string
		group *Group
		days  []Day // default: Monday
		now   time.Time
		taps  string
		want  string
	}{
		{name: "simple in and out", taps: `
			HZMETRO 03-02 08:00 in 0101
			HZMETRO 03-02 08:25 out 0105`,
			want: `03-02 HZMETRO complete 0101>0105 fare 3.00 charged 3.00`},
		{name: "distance bands and an interchange", taps: `
			HZMETRO 03-02 07:00 in 0101
			HZMETRO 03-02 07:50 out 0122
			HZMETRO 03-02 18:00 in 0101
			HZMETRO 03-02 18:40 out 0216
			HZMETRO 03-02 21:00 in 0108
			HZMETRO 03-02 21:20 out 0116`,
			// 30.9 km: 2 + 2 (4-12 km) + 2 (12-24 km) + 1 (24-32 km); Xianghu to Sandun changes
			// at Fengqi Road, 25.7 km; the third reaches the cap: 15 - 14 leaves 1.
			want: `
			03-02 HZMETRO complete 0101>0122 fare 7.00 charged 7.00
			03-02 HZMETRO complete 0101>0216 fare 7.00 charged 7.00
			03-02 HZMETRO complete 0108>0116 fare 4.00 charged 1.00 capped 3.00`},
		{name: "bus flat fare per route", taps: `
			HZBUS 03-02 08:00 single K155-01 line=K155
			HZBUS 03-02 12:00 single B1-03 line=B1
			HZBUS 03-02 18:00 single K7-02`,
			want: `
			03-02 HZBUS flat K155-01 fare 2.00 charged 2.00
			03-02 HZBUS flat B1-03 fare 3.00 charged 3.00
			03-02 HZBUS flat K7-02 fare 2.00 charged 2.00`},
		{name: "transfer discount bus to metro to bus", taps: `
			HZBUS 03-02 08:00 single K155-12
			HZMETRO 03-02 08:40 in 0116
			HZMETRO 03-02 09:05 out 0101
			HZBUS 03-02 10:30 single K7-01
			HZBUS 03-02 12:01 single K7-05`,
			// East Railway Station to Xianghu is shortest by Line 4 to Jinjiang, 17.8 km; the
			// metro starts 40 min after the bus; the second bus 85 min after the metro's
			// exit; the third 91 min after the second bus: outside the 90 minute window.
			want: `
			03-02 HZBUS flat K155-12 fare 2.00 charged 2.00
			03-02 HZMETRO complete 0116>0101 fare 5.00 discount 1.00 charged 4.00
			03-02 HZBUS flat K7-01 fare 2.00 discount 1.00 charged 1.00
			03-02 HZBUS flat K7-05 fare 2.00 charged 2.00`},
		{name: "incomplete journeys", now: late, taps: `
			HZMETRO 03-02 07:00 in 0101
			HZMETRO 03-02 08:00 in 0105
			HZMETRO 03-02 08:30 out 0110
			HZMETRO 03-02 09:00 out 0112
			HZMETRO 03-02 12:00 in 0112
			HZMETRO 03-02 16:01 out 0101
			HZMETRO 03-02 22:00 in 0101`,
			// in then in: the first has no exit; an out nobody entered; in and out 241 min
			// apart: both incomplete; the last in, with the limit long passed.
			want: `
			03-02 HZMETRO no_exit 0101 fare 10.00 charged 10.00
			03-02 HZMETRO complete 0105>0110 fare 3.00 charged 3.00
			03-02 HZMETRO no_entry 0112 fare 10.00 charged 10.00
			03-02 HZMETRO no_exit 0112 fare 10.00 charged 10.00
			03-02 HZMETRO no_entry 0101 fare 10.00 charged 10.00
			03-02 HZMETRO no_exit 0101 fare 10.00 charged 10.00`},
		{name: "a tap in waiting for its exit is not charged yet", now: time.Date(2026, time.March, 2, 9, 0, 0, 0, shanghai), taps: `
			HZMETRO 03-02 07:00 in 0101
			HZMETRO 03-02 07:30 out 0103
			HZMETRO 03-02 08:00 in 0101`,
			want: `03-02 HZMETRO complete 0101>0103 fare 2.00 charged 2.00`},
		{name: "same-station exit", taps: `
			HZMETRO 03-02 08:00 in 0101
			HZMETRO 03-02 08:29 out 0101
			HZMETRO 03-02 09:00 in 0105
			HZMETRO 03-02 09:45 out 0105`,
			// within 30 minutes: free, and no transfer from it; after: the base fare.
			want: `
			03-02 HZMETRO same_station 0101>0101 fare 0.00 charged 0.00
			03-02 HZMETRO complete 0105>0105 fare 2.00 charged 2.00`},
		{name: "cap reached mid-day, maximum fares outside it", taps: `
			HZMETRO 03-02 07:00 in 0101
			HZMETRO 03-02 07:50 out 0122
			HZBUS 03-02 10:00 single B1-01
			HZMETRO 03-02 13:00 in 0122
			HZMETRO 03-02 13:50 out 0101
			HZMETRO 03-02 15:00 in 0112
			HZBUS 03-02 17:00 single K155-01
			HZMETRO 03-02 20:00 in 0101
			HZMETRO 03-02 20:20 out 0105`,
			want: `
			03-02 HZMETRO complete 0101>0122 fare 7.00 charged 7.00
			03-02 HZBUS flat B1-01 fare 3.00 charged 3.00
			03-02 HZMETRO complete 0122>0101 fare 7.00 charged 5.00 capped 2.00
			03-02 HZMETRO no_exit 0112 fare 10.00 charged 10.00
			03-02 HZBUS flat K155-01 fare 2.00 charged 0.00 capped 2.00
			03-02 HZMETRO complete 0101>0105 fare 3.00 charged 0.00 capped 3.00`},
		{name: "weekly cap", days: []Day{monday, monday + 1, monday + 2, monday + 3, monday + 4}, taps: `
			HZMETRO 03-02 07:00 in 0101
			HZMETRO 03-02 07:50 out 0122
			HZMETRO 03-02 18:00 in 0122
			HZMETRO 03-02 18:50 out 0101
			HZBUS 03-02 21:00 single K155-01
			HZMETRO 03-03 07:00 in 0101
			HZMETRO 03-03 07:50 out 0122
			HZMETRO 03-03 18:00 in 0122
			HZMETRO 03-03 18:50 out 0101
			HZBUS 03-03 21:00 single K155-01
			HZMETRO 03-04 07:00 in 0101
			HZMETRO 03-04 07:50 out 0122
			HZMETRO 03-04 18:00 in 0122
			HZMETRO 03-04 18:50 out 0101
			HZBUS 03-04 21:00 single K155-01
			HZMETRO 03-05 07:00 in 0101
			HZMETRO 03-05 07:50 out 0122
			HZMETRO 03-05 18:00 in 0122
			HZMETRO 03-05 18:50 out 0101
			HZBUS 03-05 21:00 single K155-01
			HZMETRO 03-06 07:00 in 0101
			HZMETRO 03-06 07:50 out 0122
			HZMETRO 03-06 18:00 in 0122`,
			// Each day's bus reaches the daily cap of 15: four days reach the weekly cap of 60,
			// so Friday's journey is free, and its tap in without an exit pays the maximum fare.
			want: `
			03-02 HZMETRO complete 0101>0122 fare 7.00 charged 7.00
			03-02 HZMETRO complete 0122>0101 fare 7.00 charged 7.00
			03-02 HZBUS flat K155-01 fare 2.00 charged 1.00 capped 1.00
			03-03 HZMETRO complete 0101>0122 fare 7.00 charged 7.00
			03-03 HZMETRO complete 0122>0101 fare 7.00 charged 7.00
			03-03 HZBUS flat K155-01 fare 2.00 charged 1.00 capped 1.00
			03-04 HZMETRO complete 0101>0122 fare 7.00 charged 7.00
			03-04 HZMETRO complete 0122>0101 fare 7.00 charged 7.00
			03-04 HZBUS flat K155-01 fare 2.00 charged 1.00 capped 1.00
			03-05 HZMETRO complete 0101>0122 fare 7.00 charged 7.00
			03-05 HZMETRO complete 0122>0101 fare 7.00 charged 7.00
			03-05 HZBUS flat K155-01 fare 2.00 charged 1.00 capped 1.00
			03-06 HZMETRO complete 0101>0122 fare 7.00 charged 0.00 capped 7.00
			03-06 HZMETRO no_exit 0122 fare 10.00 charged 10.00`},
		{name: "day boundary at the start hour", days: []Day{monday, monday + 1}, taps: `
			HZMETRO 03-03 03:40 in 0101
			HZMETRO 03-03 04:10 out 0105
			HZMETRO 03-03 04:30 in 0110 dev=gate-2
			HZMETRO 03-03 04:50 out 0112 dev=gate-2`,
			// 03:40 is still Monday's travel day, and so is its journey, ending after 04:00;
			// the journey starting at 04:30 is Tuesday's.
			want: `
			03-02 HZMETRO complete 0101>0105 fare 3.00 charged 3.00
			03-03 HZMETRO complete 0110>0112 fare 2.00 charged 2.00`},
		{name: "shanghai starts its day at five", group: sh, days: []Day{monday, monday + 1}, taps: `
			SHMETRO 03-03 04:30 in 0101
			SHMETRO 03-03 04:55 out 0113
			SHMETRO 03-03 05:00 in 0113
			SHMETRO 03-03 05:20 out 0213`,
			// Xinzhuang to People's Square, 15.8 km: 3 + 1 per started 10 km beyond 6: 4.
			want: `
			03-02 SHMETRO complete 0101>0113 fare 4.00 charged 4.00
			03-03 SHMETRO complete 0113>0213 fare 3.00 charged 3.00`},
		{name: "shanghai daily cap of the one-day ticket", group: sh, taps: `
			SHMETRO 03-02 07:00 in 0101
			SHMETRO 03-02 08:00 out 0128
			SHMETRO 03-02 12:00 in 0128
			SHMETRO 03-02 13:00 out 0101
			SHMETRO 03-02 18:00 in 0201
			SHMETRO 03-02 19:00 out 0221`,
			// 35.9 km: 3 + 3; 35.2 km the same; 18 - 12 leaves 6.
			want: `
			03-02 SHMETRO complete 0101>0128 fare 6.00 charged 6.00
			03-02 SHMETRO complete 0128>0101 fare 6.00 charged 6.00
			03-02 SHMETRO complete 0201>0221 fare 6.00 charged 6.00`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			g := c.group
			if g == nil {
				g = hz
			}
			days := c.days
			if days == nil {
				days = []Day{monday}
			}
			now := c.now
			if now.IsZero() {
				now = late
			}
			taps := parseTaps(t, c.taps)
			dps, err := ts.PriceDays(g, taps, days, Prior{}, nil, now)
			if err != nil {
				t.Fatal(err)
			}
			got := describe(dps)
			if want := trimLines(c.want); got != want {
				t.Fatalf("got:\n%swant:\n%s", got, want)
			}
			for _, dp := range dps {
				checkDay(t, g, dp)
			}
			// Out of order: the same taps arriving in any order price the same.
			rng := rand.New(rand.NewPCG(1, 2))
			for range 5 {
				shuffled := slices.Clone(taps)
				rng.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
				again, err := ts.PriceDays(g, shuffled, days, Prior{}, nil, now)
				if err != nil {
					t.Fatal(err)
				}
				if describe(again) != got {
					t.Fatalf("shuffled taps price differently:\n%s", describe(again))
				}
			}
		})
	}
}

// A late tap changes its own day's price: what the store posts as an adjustment is the
// difference between the two prices.
func TestLateTapReprices(t *testing.T) {
	ts := shippedTables(t)
	hz, _ := ts.Group("city/hangzhou")
	now := time.Date(2026, time.March, 10, 12, 0, 0, 0, shanghai)
	before := parseTaps(t, `
		HZMETRO 03-02 08:00 in 0101
		HZMETRO 03-02 18:00 in 0105
		HZMETRO 03-02 18:20 out 0101`)
	// The reader at 0105 uploads, days later, the exit of the morning's journey.
	after := append(slices.Clone(before), parseTaps(t, `HZMETRO 03-02 08:30 out 0110 dev=gate-0110`)...)
	first, err := ts.PriceDays(hz, before, []Day{monday}, Prior{}, nil, now)
	if err != nil {
		t.Fatal(err)
	}
	second, err := ts.PriceDays(hz, after, []Day{monday}, Prior{}, nil, now)
	if err != nil {
		t.Fatal(err)
	}
	if got := first[0].ByOperator["HZMETRO"].Charged; got != 1300 {
		t.Fatalf("before the late tap: %d, want the maximum fare and 3.00", got)
	}
	// 0101 to 0110 is 12.7 km: 5.00; the evening journey starts outside the transfer window.
	if got := second[0].ByOperator["HZMETRO"].Charged; got != 800 {
		t.Fatalf("after the late tap: %d\n%s", got, describe(second))
	}
}

// Properties over random tap streams: every day stays within the daily cap and every week within
// the weekly cap (maximum fares excluded); each journey's parts add up to its fare; the taps'
// arrival order changes nothing; pricing a week day by day, carrying the weekly total, is pricing
// it at once; and a window of taps that reaches the lookback around a day prices it as all the
// taps do.
func TestRandomTapStreams(t *testing.T) {
	ts := shippedTables(t)
	hz, _ := ts.Group("city/hangzhou")
	rng := rand.New(rand.NewPCG(7, 7))
	now := time.Date(2026, time.March, 20, 0, 0, 0, 0, shanghai)
	for round := range 50 {
		taps := randomTaps(rng, ts, hz, "card-1", monday, 7, 40)
		week := []Day{monday, monday + 1, monday + 2, monday + 3, monday + 4, monday + 5, monday + 6}
		all, err := ts.PriceDays(hz, taps, week, Prior{}, nil, now)
		if err != nil {
			t.Fatal(err)
		}
		for _, dp := range all {
			checkDay(t, hz, dp)
		}
		rng.Shuffle(len(taps), func(i, j int) { taps[i], taps[j] = taps[j], taps[i] })
		if again, err := ts.PriceDays(hz, taps, week, Prior{}, nil, now); err != nil || describe(again) != describe(all) {
			t.Fatalf("round %d: shuffled taps price differently (%v)", round, err)
		}
		var used int64
		for i, d := range week {
			from, to := hz.DayStart(d).Add(-hz.Lookback()), hz.DayEnd(d).Add(hz.Lookback())
			var window []Tap
			for _, tp := range taps {
				if !tp.At.Before(from) && tp.At.Before(to) {
					window = append(window, tp)
				}
			}
			one, err := ts.PriceDays(hz, window, []Day{d}, Prior{Week: Counted{Capped: used}}, nil, now)
			if err != nil {
				t.Fatal(err)
			}
			if a, b := describe(one), describe(all[i:i+1]); a != b {
				t.Fatalf("round %d %s: alone\n%swith the week\n%s", round, d, a, b)
			}
			used += one[0].CapCounted
		}
		if weekly := hz.RulesOn(monday).WeeklyCap; weekly != NoCap && used > weekly {
			t.Fatalf("round %d: week counted %d, over the weekly cap %d", round, used, weekly)
		}
	}
}

// randomTaps draws n taps of a card over days days from first, at the group's operators: mostly
// sensible journeys, with taps missing, repeated directions and odd hours mixed in.
func randomTaps(rng *rand.Rand, ts *Tables, g *Group, card string, first Day, days, n int) []Tap {
	var taps []Tap
	seq := int64(rng.Int64N(1_000_000))
	for range n {
		op, _ := ts.Operator(g.Operators[rng.IntN(len(g.Operators))])
		d := first + Day(rng.IntN(days))
		at := g.DayStart(d).Add(time.Duration(rng.IntN(24*60)) * time.Minute)
		seq++
		tap := Tap{Operator: op.ID, Device: fmt.Sprintf("dev-%d", rng.IntN(4)), Seq: seq, Card: card, At: at.UTC(), Mode: op.Mode}
		ids := stationIDs(op)
		tap.Station = ids[rng.IntN(len(ids))]
		if op.Pricing == PricingFlat {
			tap.Direction = events.DirectionSingle
			taps = append(taps, tap)
			continue
		}
		tap.Direction = events.DirectionIn
		taps = append(taps, tap)
		if rng.IntN(10) == 0 {
			continue // no exit
		}
		out := tap
		seq++
		out.Seq, out.Direction = seq, events.DirectionOut
		out.At = at.Add(time.Duration(1+rng.IntN(90)) * time.Minute).UTC()
		if rng.IntN(20) == 0 {
			out.At = at.Add(5 * time.Hour).UTC() // too late
		}
		out.Station = ids[rng.IntN(len(ids))]
		if rng.IntN(8) == 0 {
			out.Station = tap.Station
		}
		taps = append(taps, out)
	}
	return taps
}

// stationIDs lists an operator's stations, sorted, so that draws from a seeded generator repeat.
func stationIDs(op *Operator) []string {
	ids := make([]string, 0, len(op.stations))
	for id := range op.stations {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

func TestPriceDaysRefusesBadInput(t *testing.T) {
	ts := shippedTables(t)
	hz, _ := ts.Group("city/hangzhou")
	if _, err := ts.PriceDays(hz, nil, []Day{monday, monday + 2}, Prior{}, nil, time.Now()); err == nil {
		t.Error("days with a gap priced")
	}
	var long []Day
	for d := monday; d < monday+MaxPriceDays+1; d++ {
		long = append(long, d)
	}
	if _, err := ts.PriceDays(hz, nil, long, Prior{}, nil, time.Now()); err == nil {
		t.Errorf("%d days priced at once", len(long))
	}
	taps := parseTaps(t, `SHMETRO 03-02 08:00 in 0101`)
	if _, err := ts.PriceDays(hz, taps, []Day{monday}, Prior{}, nil, time.Now()); err == nil {
		t.Error("a Shanghai tap priced in Hangzhou's group")
	}
}
