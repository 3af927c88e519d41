package main

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/joinincard/engine/cards"
	"github.com/joinincard/engine/internal/pgtest"
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

// --calendar adds the operator's years to the built-in calendar: a directory holding only the
// next year's file leaves this year's value dates as they were.
func TestCalendarFlagAddsYearsToTheBuiltInCalendar(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "2027.txt"), []byte("holiday 2027-01-01 元旦 New Year's Day\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	f := &settleFlags{cutoffHour: settlement.DefaultCutoffHour, calendarDir: dir}
	set, err := f.settlement(pgtest.NewStore(t))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ cycle, value settlement.Date }{
		{settlement.Date{Year: 2026, Month: 12, Day: 31}, settlement.Date{Year: 2027, Month: 1, Day: 4}},
		{settlement.Date{Year: 2026, Month: 10, Day: 1}, settlement.Date{Year: 2026, Month: 10, Day: 8}},
	} {
		if got, err := set.Cycles().ValueDate(tc.cycle); err != nil || got != tc.value {
			t.Errorf("value date of %s: %s, %v; want %s", tc.cycle, got, err, tc.value)
		}
	}
	bad := t.TempDir()
	if err := os.WriteFile(filepath.Join(bad, "2027.txt"), []byte("holiday 2028-01-01 wrong year\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	f.calendarDir = bad
	if _, err := f.settlement(pgtest.NewStore(t)); err == nil || !strings.Contains(err.Error(), "--calendar") {
		t.Errorf("a bad calendar file: %v, want a refusal naming --calendar", err)
	}
}
