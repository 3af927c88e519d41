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
	"github.com/joinincard/engine/medical"
)

// serve says, weeks ahead, when a city whose medical policy settles today's bills has none for a
// coming day (the next year's file is not added yet), and keeps the days left as a gauge; policies
// that cover the coming two months say nothing.
func TestWatchMedicalPoliciesWarnsBeforeAYearWithoutPolicy(t *testing.T) {
	ps, err := medical.SamplePolicies()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		now  time.Time
		left float64
		warn string
	}{
		{time.Date(2026, 12, 7, 10, 0, 0, 0, cards.Shanghai), 25, "city=jiaxing day=2027-01-01 days_left=25"},
		// Midnight in Shanghai is the new day, whatever the clock's zone.
		{time.Date(2026, 12, 31, 23, 59, 59, 0, cards.Shanghai), 1, "day=2027-01-01 days_left=1"},
		{time.Date(2026, 10, 1, 10, 0, 0, 0, cards.Shanghai), 60, ""},
		{time.Date(2026, 3, 1, 10, 0, 0, 0, cards.Shanghai), 60, ""},
	} {
		ctx, cancel := context.WithCancel(context.Background())
		now := func() time.Time { cancel(); return tc.now } // one look, then the loop ends
		m := newServeMetrics(prometheus.NewRegistry())
		var logs bytes.Buffer
		watchMedicalPolicies(ctx, func() *medical.Policies { return ps }, now, time.Hour, slog.New(slog.NewTextHandler(&logs, nil)), m)
		if got := metricValue(t, m.medicalPolicyDaysLeft); got != tc.left {
			t.Errorf("at %s: %v days left, want %v", tc.now, got, tc.left)
		}
		switch {
		case tc.warn == "" && logs.Len() > 0:
			t.Errorf("at %s: logged %q, want nothing", tc.now, logs.String())
		case tc.warn != "" && (!strings.Contains(logs.String(), tc.warn) || !strings.Contains(logs.String(), "level=WARN")):
			t.Errorf("at %s: logged %q, want a warning with %q", tc.now, logs.String(), tc.warn)
		}
	}
}
