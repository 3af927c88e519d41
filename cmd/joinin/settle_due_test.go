package main

import (
	"testing"
	"time"

	"github.com/joinincard/engine/cards"
	"github.com/joinincard/engine/settlement"
	"github.com/joinincard/engine/settlement/calendar"
)

// The cycle settle closes without --date, and serve closes on its own, is the last whose cut-off
// (plus the grace) is reached: at the cut-off instant itself the cycle is over, since a transfer
// stamped then is its last, and the close moves every later one past it.
func TestLastDueAtTheCutoffInstant(t *testing.T) {
	cal, err := calendar.Load()
	if err != nil {
		t.Fatal(err)
	}
	d := settlement.Date{Year: 2026, Month: 3, Day: 3}
	for _, hour := range []int{0, 1, 11, 12, 22, 23} {
		c := settlement.Cycles{CutoffHour: hour, Calendar: cal}
		cut := c.Cutoff(d)
		for _, tc := range []struct {
			now   time.Time
			grace time.Duration
			want  settlement.Date
		}{
			{cut.Add(-time.Microsecond), 0, settlement.AddDays(d, -1)},
			{cut, 0, d},
			{cut.Add(time.Microsecond), 0, d},
			{cut.Add(10*time.Minute - time.Microsecond), 10 * time.Minute, settlement.AddDays(d, -1)},
			{cut.Add(10 * time.Minute), 10 * time.Minute, d},
			{cut.Add(24*time.Hour - time.Microsecond), 0, d},
			{cut.Add(24 * time.Hour), 0, settlement.AddDays(d, 1)},
		} {
			if got := lastDue(c, tc.now, tc.grace); got != tc.want {
				t.Errorf("hour %d: at %s with grace %s: cycle %s due, want %s", hour, tc.now.In(cards.Shanghai), tc.grace, got, tc.want)
			}
		}
	}
}
