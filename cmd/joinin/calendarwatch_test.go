package main

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/joinincard/engine/cards"
	"github.com/joinincard/engine/settlement"
	"github.com/joinincard/engine/settlement/calendar"
)

// serve says, weeks ahead, when a coming cycle's value date falls in a year the business-day
// calendar has no file for, and keeps the days left as a gauge; a calendar that covers the
// coming two months says nothing.
func TestWatchCalendarWarnsBeforeTheCalendarEnds(t *testing.T) {
	cal, err := calendar.Load()
	if err != nil {
		t.Fatal(err)
	}
	c := settlement.Cycles{CutoffHour: settlement.DefaultCutoffHour, Calendar: cal}
	for _, tc := range []struct {
		now  time.Time
		left float64
		warn string
	}{
		{time.Date(2026, 12, 7, 10, 0, 0, 0, cards.Shanghai), 24, "cycle=2026-12-31 days_left=24"},
		// After the cut-off the instant belongs to the next day's cycle.
		{time.Date(2026, 12, 30, 23, 30, 0, 0, cards.Shanghai), 0, "cycle=2026-12-31 days_left=0"},
		{time.Date(2026, 11, 1, 10, 0, 0, 0, cards.Shanghai), 60, ""},
		{time.Date(2026, 6, 1, 10, 0, 0, 0, cards.Shanghai), 60, ""},
	} {
		ctx, cancel := context.WithCancel(context.Background())
		now := func() time.Time { cancel(); return tc.now } // one look, then the loop ends
		m := newServeMetrics(prometheus.NewRegistry())
		var logs bytes.Buffer
		watchCalendar(ctx, c, now, time.Hour, slog.New(slog.NewTextHandler(&logs, nil)), m)
		if got := metricValue(t, m.calendarDaysLeft); got != tc.left {
			t.Errorf("at %s: %v days left, want %v", tc.now, got, tc.left)
		}
		switch {
		case tc.warn == "" && logs.Len() > 0:
			t.Errorf("at %s: logged %q, want nothing", tc.now, logs.String())
		case tc.warn != "" && (!strings.Contains(logs.String(), tc.warn) || !strings.Contains(logs.String(), "level=WARN") ||
			!strings.Contains(logs.String(), "no year 2027")):
			t.Errorf("at %s: logged %q, want a warning with %q naming 2027", tc.now, logs.String(), tc.warn)
		}
	}
}
