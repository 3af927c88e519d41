package postgres_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/joinincard/engine/clearing"
	"github.com/joinincard/engine/postgres"
	"github.com/joinincard/engine/transit"
)

// beijingDay is a day of four rides of 7.00 on the Beijing subway: Pingguoyuan to Tuqiao (45.4
// km) and back, twice.
func beijingDay(card int, day string) string {
	var b strings.Builder
	for _, r := range [][4]string{{"07:30", "0101", "08:40", "BT13"}, {"12:00", "BT13", "13:10", "0101"},
		{"14:00", "0101", "15:10", "BT13"}, {"18:00", "BT13", "19:10", "0101"}} {
		fmt.Fprintf(&b, "BJSUBWAY %d %s %s in %s\nBJSUBWAY %d %s %s out %s\n", card, day, r[0], r[1], card, day, r[2], r[3])
	}
	return b.String()
}

// Beijing's month through the store, exact to the fen: the taps of each day uploaded that
// evening, each day closed the next morning with what the month spent before it. 124 rides of
// 7.00 cross every tier of the monthly spend discount: 610.40. Then a late ride of March 5,
// uploaded on April 1, moves the 150 threshold a ride earlier: March 5 and 6 are re-priced by
// adjustments (2.40 more, 2.10 less), and nothing else changes.
func TestTransitBeijingMonthThroughTheStore(t *testing.T) {
	ctx := context.Background()
	w := newTransitWorld(t, 1, 100_000)
	march1 := transit.DayOf(2026, time.March, 1)
	for d := march1; d < march1+31; d++ {
		w.clock.Set(sh(d.String() + " 23:00"))
		res := w.upload(t, "bj-"+d.String(), beijingDay(0, d.String()))["BJSUBWAY"]
		if res.Accepted != 8 {
			t.Fatalf("%s: %s", d, results(res))
		}
		w.close(t, sh((d+1).String()+" 09:30"))
	}
	want := map[int]int64{4: 2660, 5: 2240, 6: 2240, 24: 2100}
	for d := 1; d <= 31; d++ {
		if _, ok := want[d]; !ok {
			want[d] = map[bool]int64{true: 1400, false: 2800}[d >= 7 && d <= 23]
		}
	}
	trips := func() map[int]int64 {
		_, days, err := w.st.TransitTrips(ctx, w.ts, w.cards[0], march1, march1+30)
		if err != nil {
			t.Fatal(err)
		}
		out := map[int]int64{}
		for _, d := range days {
			if d.Priced != d.Paid || d.Owed != 0 {
				t.Fatalf("%s: priced %d, paid %d, owed %d", d.Day, d.Priced, d.Paid, d.Owed)
			}
			var journeys int64
			for _, j := range d.Journeys {
				journeys += j.Charged
			}
			if journeys != d.Priced {
				t.Fatalf("%s: the journeys priced again charge %d, the day %d", d.Day, journeys, d.Priced)
			}
			out[int(d.Day-march1)+1] = d.Priced
		}
		return out
	}
	got := trips()
	var march int64
	for d := 1; d <= 31; d++ {
		if got[d] != want[d] {
			t.Errorf("March %d: %s, want %s", d, transit.FormatFen(got[d]), transit.FormatFen(want[d]))
		}
		march += got[d]
	}
	if march != 61040 || w.funds(t, 0) != 100_000-61040 || w.operator(t, "BJSUBWAY") != 61040 {
		t.Fatalf("March %s, card's funds %d, the operator's %d", transit.FormatFen(march), w.funds(t, 0), w.operator(t, "BJSUBWAY"))
	}

	// The late ride: March 5 at 21:00, Pingguoyuan to Babaoshan (3.00), after the day's four
	// rides, at 20% off: 2.40. The ride that crossed 150 was March 6's last; now it is its
	// third, and its last pays 3.50 instead of 5.60.
	w.clock.Set(sh("2026-04-01 10:30"))
	res := w.upload(t, "bj-late", `
		BJSUBWAY 0 2026-03-05 21:00 in 0101 dev=gate-late seq=1
		BJSUBWAY 0 2026-03-05 21:40 out 0104 dev=gate-late seq=2`)["BJSUBWAY"]
	if results(res) != "accepted accepted" {
		t.Fatalf("the late ride: %s", results(res))
	}
	rep := w.close(t, sh("2026-04-01 10:35"))
	if rep.Transfers != 2 || rep.Charged != 240-210 {
		t.Fatalf("re-pricing the month: %+v", rep)
	}
	want[5], want[6] = 2240+240, 2240-210
	got = trips()
	march = 0
	for d := 1; d <= 31; d++ {
		if got[d] != want[d] {
			t.Errorf("after the late ride, March %d: %s, want %s", d, transit.FormatFen(got[d]), transit.FormatFen(want[d]))
		}
		march += got[d]
	}
	if march != 61070 || w.operator(t, "BJSUBWAY") != 61070 {
		t.Fatalf("March after the late ride %s, the operator's %d", transit.FormatFen(march), w.operator(t, "BJSUBWAY"))
	}
	// The adjustments are new postings, never edits: March 6 has its fare and a refund.
	_, days, err := w.st.TransitTrips(ctx, w.ts, w.cards[0], march1+5, march1+5)
	if err != nil || len(days) != 1 || len(days[0].Postings) != 2 {
		t.Fatalf("March 6: %v %+v", err, days)
	}
	if p := days[0].Postings[1]; p.Code != clearing.CodeTransitAdjustment || p.Amount != -210 || p.Revision != 1 {
		t.Fatalf("March 6's adjustment %+v", p)
	}
	// Running the passes again changes nothing.
	if rep := w.close(t, sh("2026-04-01 10:40")); rep.Transfers != 0 {
		t.Fatalf("again: %+v", rep)
	}
}

// The days a card's marks re-price: each marked day through the last closed day its price
// reaches, marks within a span merged, and a span longer than transit.MaxPriceDays cut, its rest
// marked again for the next pass.
func TestRepriceSpans(t *testing.T) {
	ts, err := transit.Shipped()
	if err != nil {
		t.Fatal(err)
	}
	sh, _ := ts.Group("operator/SHMETRO") // a daily cap only: a day alone
	hz, _ := ts.Group("city/hangzhou")    // a weekly cap: through the week's end
	bj, _ := ts.Group("city/beijing")     // a monthly spend discount: through the month's end
	d := func(s string) transit.Day { day, _ := transit.ParseDay(s); return day }
	describe := func(spans [][]transit.Day, rest []transit.Day) string {
		var parts []string
		for _, sp := range spans {
			parts = append(parts, sp[0].String()[5:]+".."+sp[len(sp)-1].String()[5:])
		}
		for _, r := range rest {
			parts = append(parts, "rest "+r.String()[5:])
		}
		return strings.Join(parts, " ")
	}
	for _, c := range []struct {
		g      *transit.Group
		marked []string
		closed string
		want   string
	}{
		{sh, []string{"2026-03-03", "2026-03-05"}, "2026-03-10", "03-03..03-03 03-05..03-05"},
		{sh, []string{"2026-03-03", "2026-03-04"}, "2026-03-10", "03-03..03-04"},
		{hz, []string{"2026-03-03", "2026-03-05", "2026-03-10"}, "2026-03-20", "03-03..03-08 03-10..03-15"},
		{hz, []string{"2026-03-03"}, "2026-03-04", "03-03..03-04"},
		{bj, []string{"2026-03-05", "2026-03-20"}, "2026-04-10", "03-05..03-31"},
		{bj, []string{"2026-03-05", "2026-04-02"}, "2026-04-10", "03-05..03-31 04-02..04-10"},
		{sh, []string{"2026-03-12"}, "2026-03-10", ""},
	} {
		var marked []transit.Day
		for _, m := range c.marked {
			marked = append(marked, d(m))
		}
		if got := describe(postgres.RepriceSpans(c.g, marked, d(c.closed))); got != c.want {
			t.Errorf("%s %v closed %s: %q, want %q", c.g.Key, c.marked, c.closed, got, c.want)
		}
	}
	// Marks a week apart, each chaining on through the next week's and month's ends, run longer than
	// one pricing: the first MaxPriceDays days, the rest marked again.
	tables := strings.NewReplacer(`"scope": "city"`, `"scope": "city", "weekly": "100.00", "monthly": "300.00"`)
	files, err := transit.ShippedFiles()
	if err != nil {
		t.Fatal(err)
	}
	op, err := transit.ParseOperator([]byte(tables.Replace(string(files["BJSUBWAY.json"]))))
	if err != nil {
		t.Fatal(err)
	}
	chained, err := transit.NewTables(op)
	if err != nil {
		t.Fatal(err)
	}
	g, _ := chained.Group("city/beijing")
	spans, rest := postgres.RepriceSpans(g, []transit.Day{d("2026-01-05"), d("2026-01-12")}, d("2026-04-30"))
	if len(spans) != 1 || len(spans[0]) != transit.MaxPriceDays || len(rest) != 1 || rest[0] != d("2026-01-05")+transit.MaxPriceDays {
		t.Fatalf("a long chain: %s", describe(spans, rest))
	}
}
