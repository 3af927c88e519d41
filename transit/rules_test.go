package transit

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/joinincard/engine/events"
)

// tablesOf parses fare files (as minimal and metroFile write them) and checks them together;
// a file's "@from" key, when set, is the version's first travel day, and "@seq" its order.
func tablesOf(t testing.TB, files ...map[string]any) *Tables {
	t.Helper()
	ts, err := tablesFrom(files...)
	if err != nil {
		t.Fatal(err)
	}
	return ts
}

func tablesFrom(files ...map[string]any) (*Tables, error) {
	var ops []*Operator
	for _, f := range files {
		f = clone(f)
		from, _ := f["@from"].(string)
		seq, _ := f["@seq"].(int)
		delete(f, "@from")
		delete(f, "@seq")
		b, err := json.Marshal(f)
		if err != nil {
			return nil, err
		}
		op, err := ParseOperator(b)
		if err != nil {
			return nil, err
		}
		if from != "" {
			if op.From, err = ParseDay(from); err != nil {
				return nil, err
			}
		}
		op.Seq = seq
		ops = append(ops, op)
	}
	return NewTables(ops...)
}

func clone(m map[string]any) map[string]any {
	b, _ := json.Marshal(m)
	var out map[string]any
	if err := json.Unmarshal(b, &out); err != nil {
		panic(err)
	}
	for k, v := range m {
		if strings.HasPrefix(k, "@") {
			out[k] = v
		}
	}
	return out
}

// ride is a tap in and its tap out on one operator: "MM-DD HH:MM FROM HH:MM TO".
func rides(t testing.TB, op string, lines string) []Tap {
	t.Helper()
	var text []string
	for _, ln := range strings.Split(strings.TrimSpace(lines), "\n") {
		f := strings.Fields(ln)
		if len(f) != 5 {
			t.Fatalf("ride %q: want MM-DD HH:MM FROM HH:MM TO", ln)
		}
		text = append(text, fmt.Sprintf("%s %s %s in %s", op, f[0], f[1], f[2]), fmt.Sprintf("%s %s %s out %s", op, f[0], f[3], f[4]))
	}
	taps := parseTaps(t, strings.Join(text, "\n"))
	for i := range taps {
		taps[i].Mode = events.ModeMetro
	}
	return taps
}

// describeRules is describe with the rules each journey met: its time band, concession class
// and spend discount.
func describeRules(dps []DayPrice) string {
	var b strings.Builder
	for _, dp := range dps {
		for _, j := range dp.Journeys {
			fmt.Fprintf(&b, "%s %s>%s fare %s", dp.Day.String()[5:], j.From, j.To, FormatFen(j.Fare))
			if j.TimeBand != "" {
				fmt.Fprintf(&b, " [%s]", j.TimeBand)
			}
			if j.Concession != "" {
				fmt.Fprintf(&b, " (%s)", j.Concession)
			}
			if j.Discount != 0 {
				fmt.Fprintf(&b, " discount %s", FormatFen(j.Discount))
			}
			if j.TierDiscount != 0 {
				fmt.Fprintf(&b, " tier %s", FormatFen(j.TierDiscount))
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

func TestBeijingDistanceBands(t *testing.T) {
	ts := shippedTables(t)
	bj, _ := ts.Operator("BJSUBWAY")
	var f fareFile
	b, err := shipped.ReadFile("fares/BJSUBWAY.json")
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &f); err != nil {
		t.Fatal(err)
	}
	sc, err := readScale(f.DistanceFare)
	if err != nil {
		t.Fatal(err)
	}
	// 3 CNY up to 6 km, 4 up to 12, 5 up to 22, 6 up to 32, then 1 more per 20 km (or part).
	for m, want := range map[int64]int64{0: 300, 6000: 300, 6001: 400, 12000: 400, 12001: 500, 22000: 500, 22001: 600,
		32000: 600, 32001: 700, 52000: 700, 52001: 800, 72000: 800, 72001: 900, 92000: 900, 100_000: 1000} {
		if got := sc.fare(m); got != want {
			t.Errorf("%d m: %s, want %s", m, FormatFen(got), FormatFen(want))
		}
	}
	if r := bj.Group().RulesOn(DayOf(2026, time.March, 1)); r.Tiers == nil || r.Tiers.Period != PeriodMonth || len(r.Tiers.Tiers) != 3 {
		t.Fatalf("Beijing's spend discount: %+v", r.Tiers)
	}
}

// beijingMonth is four rides of 7.00 (Pingguoyuan to Tuqiao, 45.4 km, and back, twice) on each
// day from first for days days.
func beijingMonth(t testing.TB, first Day, days int) []Tap {
	t.Helper()
	var lines []string
	for d := first; d < first+Day(days); d++ {
		md := d.String()[5:]
		lines = append(lines,
			md+" 07:30 0101 08:40 BT13", md+" 12:00 BT13 13:10 0101",
			md+" 14:00 0101 15:10 BT13", md+" 18:00 BT13 19:10 0101")
	}
	taps := rides(t, "BJSUBWAY", strings.Join(lines, "\n"))
	for i := range taps {
		taps[i].Seq = int64(i + 1)
	}
	return taps
}

// Beijing's month, exact to the fen: 124 rides of 7.00 cross every tier. Rides 1 to 15 pay 7.00
// (the 15th takes the spend from 98.00 to 105.00: a ride is priced whole at the tier it starts
// in); rides 16 to 24 pay 5.60, 20% less (the 24th from 149.80 to 155.40); rides 25 to 94 pay
// 3.50, half (the 94th from 396.90 to 400.40); rides 95 to 124 pay 7.00 again. April starts over.
func TestBeijingMonthCrossesEveryTier(t *testing.T) {
	ts := shippedTables(t)
	g, _ := ts.Group("city/beijing")
	march1 := DayOf(2026, time.March, 1)
	taps := beijingMonth(t, march1, 32) // March and April 1
	var days []Day
	for d := march1; d < march1+32; d++ {
		days = append(days, d)
	}
	now := time.Date(2026, time.April, 10, 0, 0, 0, 0, shanghai)
	dps, err := ts.PriceDays(g, taps, days, Prior{}, nil, now)
	if err != nil {
		t.Fatal(err)
	}
	want := map[int]int64{4: 2660, 5: 2240, 6: 2240, 24: 2100}
	for d := 1; d <= 3; d++ {
		want[d] = 2800
	}
	for d := 7; d <= 23; d++ {
		want[d] = 1400
	}
	for d := 25; d <= 31; d++ {
		want[d] = 2800
	}
	want[32] = 2800 // April 1: a new month, full fares
	var march int64
	for i, dp := range dps {
		checkDay(t, g, dp)
		if got := dp.ByOperator["BJSUBWAY"].Charged; got != want[i+1] {
			t.Errorf("%s: charged %s, want %s\n%s", dp.Day, FormatFen(got), FormatFen(want[i+1]), describeRules(dps[i:i+1]))
		}
		if dp.Day < march1+31 {
			march += dp.Spent
		}
	}
	if march != 61040 {
		t.Fatalf("March: %s, want 610.40", FormatFen(march))
	}
	// The rides that cross a threshold, and the ones after them.
	day4 := describeRules(dps[3:4])
	if want := trimLines(`
		03-04 0101>BT13 fare 7.00 charged 7.00
		03-04 BT13>0101 fare 7.00 charged 7.00
		03-04 0101>BT13 fare 7.00 charged 7.00
		03-04 BT13>0101 fare 7.00 tier 1.40 charged 5.60`); day4 != want {
		t.Errorf("March 4:\n%swant\n%s", day4, want)
	}
	if got := describeRules(dps[23:24]); got != trimLines(`
		03-24 0101>BT13 fare 7.00 tier 3.50 charged 3.50
		03-24 BT13>0101 fare 7.00 tier 3.50 charged 3.50
		03-24 0101>BT13 fare 7.00 charged 7.00
		03-24 BT13>0101 fare 7.00 charged 7.00`) {
		t.Errorf("March 24:\n%s", got)
	}

	// Day by day, each with what the month before it spent, as the store closes days: the same.
	var prior Prior
	for i, d := range days {
		if d == d.MonthStart() {
			prior.Month = Counted{}
		}
		if d == d.WeekStart() {
			prior.Week = Counted{}
		}
		one, err := ts.PriceDays(g, taps, []Day{d}, prior, nil, now)
		if err != nil {
			t.Fatal(err)
		}
		if a, b := describeRules(one), describeRules(dps[i:i+1]); a != b {
			t.Fatalf("%s alone:\n%swith the month:\n%s", d, a, b)
		}
		c := Counted{Capped: one[0].CapCounted, Spent: one[0].Spent}
		prior.Week.add(c)
		prior.Month.add(c)
	}

	// A late tap: one more ride on March 2 (Pingguoyuan to Babaoshan, 5.5 km, 3.00, at full
	// fare) moves every threshold a ride earlier: the 14th ride of 7.00 crosses 100 (at 101.00),
	// the 23rd crosses 150 (at 151.40), the 95th crosses 400 (at 403.40). March is 3.00 + 14
	// rides at 7.00, 9 at 5.60, 72 at 3.50 and 29 at 7.00: 606.40, four yuan less for a ride more.
	late := append(slices.Clone(taps), rides(t, "BJSUBWAY", "03-02 21:00 0101 21:40 0104")...)
	late[len(late)-2].Seq, late[len(late)-1].Seq = 1001, 1002
	again, err := ts.PriceDays(g, late, days, Prior{}, nil, now)
	if err != nil {
		t.Fatal(err)
	}
	march = 0
	for _, dp := range again[:31] {
		march += dp.Spent
	}
	if march != 60640 {
		t.Fatalf("March with the late ride: %s, want 606.40", FormatFen(march))
	}
	if got := again[3].ByOperator["BJSUBWAY"].Charged; got != 700+700+560+560 {
		t.Fatalf("March 4 after the late ride: %s\n%s", FormatFen(got), describeRules(again[3:4]))
	}
}

func TestPercentOfRoundsHalfEven(t *testing.T) {
	for _, c := range []struct {
		fen  int64
		pct  int
		want int64
	}{{700, 80, 560}, {225, 50, 112}, {235, 50, 118}, {1, 50, 0}, {3, 50, 2}, {300, 150, 450}, {333, 0, 0}, {333, 100, 333}} {
		if got := percentOf(c.fen, c.pct); got != c.want {
			t.Errorf("%d%% of %d: %d, want %d", c.pct, c.fen, got, c.want)
		}
	}
}

// ruledMetro is metroFile (A1 to X 6 km: 3.00; X to B1 9 km: 3.00; A1 to B1 15 km: 4.00) with
// rules added by change.
func ruledMetro(change func(m map[string]any)) map[string]any {
	m := metroFile()
	m["max_fare"] = "9.00"
	m["caps"] = map[string]any{"scope": "operator"}
	change(m)
	return m
}

func TestFareRules(t *testing.T) {
	late := time.Date(2026, time.April, 30, 0, 0, 0, 0, shanghai)
	senior := Concessions{{At: time.Date(2026, time.March, 1, 0, 0, 0, 0, shanghai), Class: "senior"}}
	student := Concessions{{At: time.Date(2026, time.March, 2, 12, 0, 0, 0, shanghai), Class: "student"}}
	cases := []struct {
		name    string
		table   map[string]any
		classes Concessions
		days    int // from Monday 2026-03-02; default 1
		rides   string
		want    string
	}{
		{name: "peak and off-peak by the journey's start",
			table: ruledMetro(func(m map[string]any) {
				m["time_of_day"] = []any{
					map[string]any{"name": "peak", "from": "07:00", "to": "09:00", "days": "weekdays", "fare_percent": 150},
					map[string]any{"name": "off-peak", "from": "10:00", "to": "16:00", "days": "all", "fare_percent": 80}}
			}), days: 6, rides: `
				03-02 06:59 A1 07:30 X
				03-02 08:59 A1 09:30 X
				03-02 09:40 X 09:55 A1
				03-02 11:00 A1 11:20 X
				03-02 15:59 A1 16:30 B1
				03-07 08:00 A1 08:20 X`,
			want: `
				03-02 A1>X fare 3.00 charged 3.00
				03-02 A1>X fare 4.50 [peak] charged 4.50
				03-02 X>A1 fare 3.00 charged 3.00
				03-02 A1>X fare 2.40 [off-peak] charged 2.40
				03-02 A1>B1 fare 3.20 [off-peak] charged 3.20
				03-07 A1>X fare 3.00 charged 3.00`},
		{name: "a senior rides free, a student at half from when the card carries the class",
			table: ruledMetro(func(m map[string]any) {
				m["concessions"] = []any{map[string]any{"class": "senior", "fare_percent": 0}, map[string]any{"class": "student", "fare_percent": 50}}
				m["time_of_day"] = []any{map[string]any{"name": "peak", "from": "17:00", "to": "19:00", "days": "all", "fare_percent": 150}}
			}), classes: student, rides: `
				03-02 08:00 A1 08:30 B1
				03-02 12:00 A1 12:30 B1
				03-02 17:30 A1 18:00 B1`,
			want: `
				03-02 A1>B1 fare 4.00 charged 4.00
				03-02 A1>B1 fare 2.00 (student) charged 2.00
				03-02 A1>B1 fare 3.00 [peak] (student) charged 3.00`},
		{name: "a class the table does not know pays the fare",
			table: ruledMetro(func(m map[string]any) {
				m["concessions"] = []any{map[string]any{"class": "student", "fare_percent": 50}}
			}), classes: senior, rides: `03-02 08:00 A1 08:30 B1`,
			want: `03-02 A1>B1 fare 4.00 charged 4.00`},
		{name: "free transfers within the window, from the previous journey's end",
			table: ruledMetro(func(m map[string]any) {
				m["transfer"] = map[string]any{"window_minutes": 60, "free": true}
			}), rides: `
				03-02 08:00 A1 08:30 X
				03-02 09:30 X 09:50 B1
				03-02 10:51 B1 11:20 X`,
			want: `
				03-02 A1>X fare 3.00 charged 3.00
				03-02 X>B1 fare 3.00 discount 3.00 charged 0.00
				03-02 B1>X fare 3.00 charged 3.00`},
		{name: "daily, weekly and monthly caps",
			table: ruledMetro(func(m map[string]any) {
				m["caps"] = map[string]any{"scope": "operator", "daily": "10.00", "weekly": "25.00", "monthly": "30.00"}
			}), days: 9, rides: `
				03-02 08:00 A1 08:30 B1
				03-02 12:00 B1 12:30 A1
				03-02 18:00 A1 18:30 B1
				03-03 08:00 A1 08:30 B1
				03-03 12:00 B1 12:30 A1
				03-03 18:00 A1 18:30 B1
				03-04 08:00 A1 08:30 B1
				03-04 12:00 B1 12:30 A1
				03-09 08:00 A1 08:30 B1
				03-10 08:00 A1 08:30 B1`,
			want: `
				03-02 A1>B1 fare 4.00 charged 4.00
				03-02 B1>A1 fare 4.00 charged 4.00
				03-02 A1>B1 fare 4.00 charged 2.00 capped 2.00
				03-03 A1>B1 fare 4.00 charged 4.00
				03-03 B1>A1 fare 4.00 charged 4.00
				03-03 A1>B1 fare 4.00 charged 2.00 capped 2.00
				03-04 A1>B1 fare 4.00 charged 4.00
				03-04 B1>A1 fare 4.00 charged 1.00 capped 3.00
				03-09 A1>B1 fare 4.00 charged 4.00
				03-10 A1>B1 fare 4.00 charged 1.00 capped 3.00`},
		{name: "a daily spend discount, after the transfer discount",
			table: ruledMetro(func(m map[string]any) {
				m["transfer"] = map[string]any{"window_minutes": 30, "discount": "1.00"}
				m["spend_tiers"] = map[string]any{"period": "day", "tiers": []any{map[string]any{"from": "5.00", "percent_off": 50}}}
			}), days: 2, rides: `
				03-02 08:00 A1 08:30 X
				03-02 09:00 X 09:30 B1
				03-02 12:00 A1 12:30 B1
				03-02 12:40 B1 13:10 X
				03-03 08:00 A1 08:30 X`,
			want: `
				03-02 A1>X fare 3.00 charged 3.00
				03-02 X>B1 fare 3.00 discount 1.00 charged 2.00
				03-02 A1>B1 fare 4.00 tier 2.00 charged 2.00
				03-02 B1>X fare 3.00 discount 1.00 tier 1.00 charged 1.00
				03-03 A1>X fare 3.00 charged 3.00`},
		{name: "a weekly spend discount that ends at a threshold, counted across the week's days",
			table: ruledMetro(func(m map[string]any) {
				m["spend_tiers"] = map[string]any{"period": "week", "tiers": []any{
					map[string]any{"from": "6.00", "percent_off": 25}, map[string]any{"from": "9.00", "percent_off": 0}}}
			}), days: 8, rides: `
				03-02 08:00 A1 08:30 X
				03-03 08:00 A1 08:30 X
				03-04 08:00 A1 08:30 B1
				03-05 08:00 A1 08:30 B1
				03-09 08:00 A1 08:30 B1`,
			want: `
				03-02 A1>X fare 3.00 charged 3.00
				03-03 A1>X fare 3.00 charged 3.00
				03-04 A1>B1 fare 4.00 tier 1.00 charged 3.00
				03-05 A1>B1 fare 4.00 charged 4.00
				03-09 A1>B1 fare 4.00 charged 4.00`},
		{name: "a maximum fare counts as spend but takes no discount",
			table: ruledMetro(func(m map[string]any) {
				m["spend_tiers"] = map[string]any{"period": "day", "tiers": []any{map[string]any{"from": "9.00", "percent_off": 50}}}
			}), rides: `
				03-02 08:00 A1 13:30 X
				03-02 14:00 A1 14:30 B1`,
			want: `
				03-02 A1>A1 fare 9.00 charged 9.00
				03-02 X>X fare 9.00 charged 9.00
				03-02 A1>B1 fare 4.00 tier 2.00 charged 2.00`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ts := tablesOf(t, c.table)
			g, _ := ts.Group("operator/TESTMETRO")
			n := max(c.days, 1)
			var days []Day
			for d := monday; d < monday+Day(n); d++ {
				days = append(days, d)
			}
			taps := rides(t, "TESTMETRO", c.rides)
			dps, err := ts.PriceDays(g, taps, days, Prior{}, c.classes, late)
			if err != nil {
				t.Fatal(err)
			}
			if got, want := describeRules(dps), trimLines(c.want); got != want {
				t.Fatalf("got:\n%swant:\n%s", got, want)
			}
			for _, dp := range dps {
				checkDay(t, g, dp)
			}
		})
	}
}

// Versions: each day is priced by the version in force on it, taps are checked against it, and
// the versions of an operator keep its shape.
func TestVersionsPriceEachDayByTheirOwn(t *testing.T) {
	base := ruledMetro(func(m map[string]any) {})
	newer := ruledMetro(func(m map[string]any) {
		m["@from"] = "2026-03-04"
		m["distance_fare"].(map[string]any)["base_fare"] = "2.50"
		m["caps"] = map[string]any{"scope": "operator", "daily": "6.00"}
		// A new station at the end of line B.
		line := m["lines"].([]any)[1].(map[string]any)
		line["stations"] = append(line["stations"].([]any), map[string]any{"id": "B2", "name": "B two", "at_m": 12000})
	})
	ts := tablesOf(t, base, newer)
	g, _ := ts.Group("operator/TESTMETRO")
	if r := g.RulesOn(monday + 1); r.DailyCap != NoCap {
		t.Fatalf("Tuesday's cap %d", r.DailyCap)
	}
	if r := g.RulesOn(monday + 2); r.DailyCap != 600 {
		t.Fatalf("Wednesday's cap %d", r.DailyCap)
	}
	taps := rides(t, "TESTMETRO", `
		03-03 08:00 A1 08:30 X
		03-03 09:00 X 09:30 A1
		03-03 10:00 A1 10:30 X
		03-04 08:00 A1 08:30 X
		03-04 09:00 X 09:30 A1
		03-04 10:00 A1 10:30 X`)
	dps, err := ts.PriceDays(g, taps, []Day{monday + 1, monday + 2}, Prior{}, nil, time.Date(2026, time.March, 10, 0, 0, 0, 0, shanghai))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := describeRules(dps), trimLines(`
		03-03 A1>X fare 3.00 charged 3.00
		03-03 X>A1 fare 3.00 charged 3.00
		03-03 A1>X fare 3.00 charged 3.00
		03-04 A1>X fare 3.50 charged 3.50
		03-04 X>A1 fare 3.50 charged 2.50 capped 1.00
		03-04 A1>X fare 3.50 charged 0.00 capped 3.50`); got != want {
		t.Fatalf("got:\n%swant:\n%s", got, want)
	}
	// A tap at the new station is refused before the version that has it, accepted from it.
	raw := RawTap{DeviceID: "g", DeviceSeq: "1", CardToken: "tok_" + strings.Repeat("A", 43), TappedAt: "2026-03-03T08:00:00+08:00",
		StationID: "B2", Direction: "in", Mode: "metro"}
	if c := ts.ParseTap("TESTMETRO", &raw); c.Refused.Reason != ReasonUnknownStation {
		t.Fatalf("B2 on Tuesday: %+v", c)
	}
	raw.TappedAt = "2026-03-04T08:00:00+08:00"
	if c := ts.ParseTap("TESTMETRO", &raw); c.Refused.Result != "" {
		t.Fatalf("B2 on Wednesday: %+v", c)
	}
	// An operator whose only table starts later has none before.
	later := tablesOf(t, ruledMetro(func(m map[string]any) { m["@from"] = "2026-03-04" }))
	raw.StationID, raw.TappedAt = "A1", "2026-03-03T08:00:00+08:00"
	if c := later.ParseTap("TESTMETRO", &raw); c.Refused.Reason != ReasonUnknownOperator || !strings.Contains(c.Refused.Detail, "2026-03-03") {
		t.Fatalf("a tap before the operator's first table: %+v", c)
	}

	for _, c := range []struct {
		name   string
		change func(m map[string]any)
		want   string
	}{
		{"city", func(m map[string]any) { m["city"] = "elsewhere" }, `city "elsewhere", its other tables say "testcity"`},
		{"start hour", func(m map[string]any) { m["travel_day_start_hour"] = 5 }, "travel day starts at 5, its other tables say 4"},
		{"scope", func(m map[string]any) { m["caps"] = map[string]any{"scope": "city"} }, "cap scope city, its other tables say operator"},
		{"same day twice", func(m map[string]any) { delete(m, "@from") }, `operator "TESTMETRO" has two fare tables from the start`},
	} {
		v := ruledMetro(func(m map[string]any) { m["@from"] = "2026-03-04" })
		c.change(v)
		if _, err := tablesFrom(base, v); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", c.name, err, c.want)
		}
	}
	// Two versions from one day: the later uploaded prices it.
	again := ruledMetro(func(m map[string]any) {
		m["@from"], m["@seq"] = "2026-03-04", 1
		m["distance_fare"].(map[string]any)["base_fare"] = "2.20"
	})
	if op, _ := tablesOf(t, base, newer, again).OperatorOn("TESTMETRO", monday+2); op.Seq != 1 {
		t.Fatalf("the later upload does not price its day: %+v", op.Seq)
	}

	// Operators sharing a city's cap must agree on every day they are both in force.
	metro := ruledMetro(func(m map[string]any) { m["caps"] = map[string]any{"scope": "city", "daily": "10.00"} })
	bus := minimal()
	bus["caps"] = map[string]any{"scope": "city", "daily": "10.00"}
	busLater := minimal()
	busLater["caps"] = map[string]any{"scope": "city", "daily": "12.00"}
	busLater["@from"] = "2026-03-10"
	if _, err := tablesFrom(metro, bus, busLater); err == nil || !strings.Contains(err.Error(), "caps differ") ||
		!strings.Contains(err.Error(), "from 2026-03-10") {
		t.Fatalf("a city cap changed for one operator only: %v", err)
	}
	metroLater := clone(metro)
	metroLater["caps"] = map[string]any{"scope": "city", "daily": "12.00"}
	metroLater["@from"] = "2026-03-10"
	ts = tablesOf(t, metro, bus, busLater, metroLater)
	city, _ := ts.Group("city/testcity")
	if city.RulesOn(monday+7).DailyCap != 1000 || city.RulesOn(monday+8).DailyCap != 1200 {
		t.Fatalf("the city's cap by day: %d %d", city.RulesOn(monday+7).DailyCap, city.RulesOn(monday+8).DailyCap)
	}
}

func TestRepriceThrough(t *testing.T) {
	wed, last := monday+2, monday+60
	for _, c := range []struct {
		name   string
		change func(m map[string]any)
		from   Day
		want   Day
	}{
		{"no periodic rule", func(m map[string]any) {}, wed, wed},
		{"a daily cap", func(m map[string]any) { m["caps"] = map[string]any{"scope": "operator", "daily": "5.00"} }, wed, wed},
		{"a weekly cap", func(m map[string]any) { m["caps"] = map[string]any{"scope": "operator", "weekly": "50.00"} }, wed, monday + 6},
		{"a monthly tier", func(m map[string]any) {
			m["spend_tiers"] = map[string]any{"period": "month", "tiers": []any{map[string]any{"from": "100.00", "percent_off": 20}}}
		}, wed, DayOf(2026, time.March, 31)},
		{"weekly and monthly chain to the last day", func(m map[string]any) {
			m["caps"] = map[string]any{"scope": "operator", "weekly": "50.00", "monthly": "150.00"}
		}, wed, last},
		{"never past the last day", func(m map[string]any) { m["caps"] = map[string]any{"scope": "operator", "weekly": "50.00"} }, last - 1, last},
	} {
		g, _ := tablesOf(t, ruledMetro(c.change)).Group("operator/TESTMETRO")
		if got := g.RepriceThrough(c.from, last); got != c.want {
			t.Errorf("%s: through %s, want %s", c.name, got, c.want)
		}
	}
}

// Properties over random tables and tap streams across a month's end: every journey's parts add
// up to its fare; no day, week or month charges more than its cap outside maximum fares; each
// journey's spend discount is the tier of what the card had spent in the period when it started;
// the taps' arrival order changes nothing; and pricing the days one at a time, carrying what the
// week and the month counted, is pricing them at once, as the store's close and re-pricing do.
func TestFareRulesProperties(t *testing.T) {
	rng := rand.New(rand.NewPCG(13, 13))
	first := DayOf(2026, time.March, 16) // a Monday; the days run into April
	const ndays = 24
	var days []Day
	for d := first; d < first+ndays; d++ {
		days = append(days, d)
	}
	now := time.Date(2026, time.May, 1, 0, 0, 0, 0, shanghai)
	met := map[string]int{} // how often each rule changed a price, over every round
	for round := range 40 {
		table := randomRules(rng)
		ts := tablesOf(t, table)
		g, _ := ts.Group("operator/TESTMETRO")
		op, _ := ts.Operator("TESTMETRO")
		taps := randomTaps(rng, ts, g, "card-1", first, ndays, 120)
		var classes Concessions
		if rng.IntN(2) == 0 {
			classes = Concessions{{At: g.DayStart(first + Day(rng.IntN(ndays))), Class: "senior"}}
		}
		all, err := ts.PriceDays(g, taps, days, Prior{}, classes, now)
		if err != nil {
			t.Fatal(err)
		}
		var week, month Counted
		for _, dp := range all {
			checkDay(t, g, dp)
			if dp.Day == dp.Day.WeekStart() {
				week = Counted{}
			}
			if dp.Day == dp.Day.MonthStart() {
				month = Counted{}
			}
			r := g.RulesOn(dp.Day)
			var day Counted
			for _, j := range dp.Journeys {
				if !j.Kind.Incomplete() && j.Kind != KindSameStation {
					spent := map[Period]int64{PeriodDay: day.Spent, PeriodWeek: week.Spent, PeriodMonth: month.Spent}[periodOf(r.Tiers)]
					pct := r.Tiers.PercentAt(spent)
					due := j.Fare - j.Discount
					if want := due - percentOf(due, 100-pct); j.TierDiscount != want {
						t.Fatalf("round %d %s: tier discount %d after spending %d, want %d%% of %d", round, dp.Day, j.TierDiscount, spent, pct, due)
					}
				}
				for rule, hit := range map[string]bool{"tier": j.TierDiscount > 0, "cap": j.CapCredit > 0, "band": j.TimeBand != "",
					"concession": j.Concession != "", "free transfer": j.Discount > 0 && j.Discount == j.Fare} {
					if hit {
						met[rule]++
					}
				}
				c := Counted{Spent: j.Charged}
				if !j.Kind.Incomplete() {
					c.Capped = j.Charged
				}
				day.add(c)
				week.add(c)
				month.add(c)
			}
			for _, lim := range []struct {
				name      string
				cap, used int64
			}{{"daily", r.DailyCap, day.Capped}, {"weekly", r.WeeklyCap, week.Capped}, {"monthly", r.MonthlyCap, month.Capped}} {
				if lim.cap != NoCap && lim.used > lim.cap {
					t.Fatalf("round %d %s: %s cap %d, counted %d", round, dp.Day, lim.name, lim.cap, lim.used)
				}
			}
			if day.Spent != dp.Spent || day.Capped != dp.CapCounted {
				t.Fatalf("round %d %s: day counts %+v, journeys say %+v", round, dp.Day, Counted{dp.CapCounted, dp.Spent}, day)
			}
		}
		rng.Shuffle(len(taps), func(i, j int) { taps[i], taps[j] = taps[j], taps[i] })
		if again, err := ts.PriceDays(g, taps, days, Prior{}, classes, now); err != nil || describeRules(again) != describeRules(all) {
			t.Fatalf("round %d: shuffled taps price differently (%v)", round, err)
		}
		var prior Prior
		for i, d := range days {
			if d == d.WeekStart() {
				prior.Week = Counted{}
			}
			if d == d.MonthStart() {
				prior.Month = Counted{}
			}
			one, err := ts.PriceDays(g, taps, []Day{d}, prior, classes, now)
			if err != nil {
				t.Fatal(err)
			}
			if a, b := describeRules(one), describeRules(all[i:i+1]); a != b {
				t.Fatalf("round %d %s (%s): alone\n%swith the others\n%s", round, d, op.ID, a, b)
			}
			c := Counted{Capped: one[0].CapCounted, Spent: one[0].Spent}
			prior.Week.add(c)
			prior.Month.add(c)
		}
	}
	for _, rule := range []string{"tier", "cap", "band", "concession", "free transfer"} {
		if met[rule] < 10 {
			t.Errorf("the %s rule changed %d prices over every round: the streams do not exercise it", rule, met[rule])
		}
	}
}

// randomRules draws a test metro with some of every rule.
func randomRules(rng *rand.Rand) map[string]any {
	return ruledMetro(func(m map[string]any) {
		caps := map[string]any{"scope": "operator"}
		daily := 500 + rng.IntN(1000)
		if rng.IntN(2) == 0 {
			caps["daily"] = FormatFen(int64(daily))
		}
		if rng.IntN(2) == 0 {
			caps["weekly"] = FormatFen(int64(daily * 4))
		}
		if rng.IntN(2) == 0 {
			caps["monthly"] = FormatFen(int64(daily * 12))
		}
		m["caps"] = caps
		if rng.IntN(3) > 0 {
			period := []string{"day", "week", "month"}[rng.IntN(3)]
			from := 300 + rng.IntN(2000)
			m["spend_tiers"] = map[string]any{"period": period, "tiers": []any{
				map[string]any{"from": FormatFen(int64(from)), "percent_off": 1 + rng.IntN(60)},
				map[string]any{"from": FormatFen(int64(from * 3)), "percent_off": rng.IntN(100)}}}
		}
		switch rng.IntN(3) {
		case 0:
			m["transfer"] = map[string]any{"window_minutes": 30 + rng.IntN(60), "free": true}
		case 1:
			m["transfer"] = map[string]any{"window_minutes": 30 + rng.IntN(60), "discount": "1.00"}
		}
		if rng.IntN(2) == 0 {
			m["time_of_day"] = []any{
				map[string]any{"name": "peak", "from": "07:00", "to": "09:30", "days": "weekdays", "fare_percent": 100 + rng.IntN(100)},
				map[string]any{"name": "off-peak", "from": "10:00", "to": "16:00", "days": "all", "fare_percent": 50 + rng.IntN(50)}}
			m["max_fare"] = "9.00"
		}
		m["concessions"] = []any{map[string]any{"class": "senior", "fare_percent": rng.IntN(101)}}
	})
}
