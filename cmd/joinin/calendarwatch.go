package main

import (
	"context"
	"log/slog"
	"time"

	"github.com/joinincard/engine/settlement"
)

const (
	// calendarWarnAhead is how many days ahead serve looks for a cycle whose value date the
	// business-day calendar cannot give: the State Council publishes a year's arrangements in
	// November of the year before, so two months leave weeks to add the file once it is out.
	calendarWarnAhead = 60
	// calendarCheckInterval is how often serve looks again: the horizon moves a day a day.
	calendarCheckInterval = 24 * time.Hour
)

// watchCalendar looks at start and then every interval, until ctx is done, for the first cycle
// of the next calendarWarnAhead days whose value date the calendar cannot give: from that cycle
// on, no cycle closes until the year's calendar is added. It sets the days left as a gauge and
// warns while there is such a cycle.
func watchCalendar(ctx context.Context, c settlement.Cycles, now func() time.Time, every time.Duration, log *slog.Logger, m *serveMetrics) {
	for {
		from := c.CycleOf(now())
		left := calendarWarnAhead
		if d, ok := c.FirstRefusedCycle(from, calendarWarnAhead); ok {
			left = int(settlement.DateTime(d).Sub(settlement.DateTime(from)) / (24 * time.Hour))
			_, err := c.ValueDate(d)
			log.Warn("the settlement calendar cannot give the value date of a coming cycle: from that cycle on, no cycle "+
				"closes until the year's business days are added (a file per year, as the State Council publishes them, "+
				"in the directory named by --calendar)", "cycle", d.String(), "days_left", left, "err", err)
		}
		m.calendarDaysLeft.Set(float64(left))
		if !waitOrDone(ctx, every) {
			return
		}
	}
}
