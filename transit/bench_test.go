package transit

import (
	"fmt"
	"testing"
	"time"

	"github.com/joinincard/engine/events"
)

// BenchmarkPriceDay prices one card's metro day of ten taps, as a day's close does for each card.
func BenchmarkPriceDay(b *testing.B) {
	ts := shippedTables(b)
	hz, _ := ts.Group("city/hangzhou")
	stations := []string{"0101", "0105", "0110", "0116", "0122", "0201", "0210", "0216", "0401", "0405"}
	var taps []Tap
	at := hz.DayStart(monday).Add(3 * time.Hour)
	for i := range 5 {
		taps = append(taps,
			Tap{Operator: "HZMETRO", Device: "gate-a", Seq: int64(2 * i), Card: "card", At: at, Station: stations[2*i], Direction: events.DirectionIn, Mode: events.ModeMetro},
			Tap{Operator: "HZMETRO", Device: "gate-b", Seq: int64(2*i + 1), Card: "card", At: at.Add(30 * time.Minute), Station: stations[2*i+1], Direction: events.DirectionOut, Mode: events.ModeMetro})
		at = at.Add(2 * time.Hour)
	}
	now := hz.ClosesAt(monday)
	b.ReportAllocs()
	for b.Loop() {
		dps, err := ts.PriceDays(hz, taps, []Day{monday}, Prior{}, nil, now)
		if err != nil || len(dps[0].Journeys) != 5 {
			b.Fatal(fmt.Sprint(err, dps))
		}
	}
	b.ReportMetric(float64(b.N*len(taps))/b.Elapsed().Seconds(), "taps/s")
}
