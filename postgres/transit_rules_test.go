package postgres_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/joinincard/engine/clearing"
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
