package consumer

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/joinincard/engine/postgres"
)

func gauge(t *testing.T, g *prometheus.GaugeVec, label string) float64 {
	t.Helper()
	var m dto.Metric
	if err := g.WithLabelValues(label).Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetGauge().GetValue()
}

func counter(t *testing.T, c prometheus.Counter) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}

// The watchdog's timeline over three partitions: 0 is drained, 1 has events that never move,
// 2 has events and moves at every look. Only 1 is warned about, after a session timeout; only
// it makes the process rejoin, after a failover's time, and then at most once a minute; events
// arriving on a partition idle for hours do not count as hours of waiting.
func TestWatchdogRejoinsWhenEventsWaitLongerThanAFailover(t *testing.T) {
	var logs bytes.Buffer
	m := NewMetrics(prometheus.NewRegistry())
	w := &watchdog{topic: "card-events", log: slog.New(slog.NewTextHandler(&logs, nil)), metrics: m, parts: map[int]*partitionWatch{}}
	t0 := time.Date(2024, 12, 2, 8, 0, 0, 0, time.UTC)
	longAgo := t0.Add(-3 * time.Hour)
	moving := int64(100)
	look := func(after time.Duration, idleEnd int64) bool {
		moving += 10
		now := t0.Add(after)
		return w.observe(now,
			map[int]int64{0: idleEnd, 1: 50, 2: moving + 5},
			map[string]postgres.CursorState{
				"card-events/0": {Position: 20, UpdatedAt: longAgo},
				"card-events/1": {Position: 40, UpdatedAt: t0.Add(-time.Minute)},
				"card-events/2": {Position: moving, UpdatedAt: now},
			})
	}
	warnings := func() int {
		return strings.Count(logs.String(), "has not committed for longer than the session timeout")
	}

	steps := []struct {
		after      time.Duration
		idleEnd    int64
		wantRejoin bool
		wantWarns  int
	}{
		{0, 20, false, 0},
		{lagInterval, 20, false, 0},
		{stallWarnAfter, 20, false, 1},
		{stallRejoinAfter - time.Second, 20, false, 1},
		{stallRejoinAfter, 20, true, 1},
		// The rejoin gives the group a full failover's time again, and another warning is due
		// a session timeout later if nothing moved.
		{stallRejoinAfter + stallWarnAfter, 20, false, 2},
		{2 * stallRejoinAfter, 20, false, 2},
		{stallRejoinAfter + minRejoinInterval - time.Second, 20, false, 2},
		// An event on partition 0, idle for hours: it waits from now, not from its last commit.
		{stallRejoinAfter + minRejoinInterval, 21, true, 2},
		{stallRejoinAfter + minRejoinInterval + stallWarnAfter - time.Second, 21, false, 2},
		{stallRejoinAfter + minRejoinInterval + stallWarnAfter, 21, false, 4},
	}
	for i, s := range steps {
		if got := look(s.after, s.idleEnd); got != s.wantRejoin {
			t.Fatalf("step %d (%v): rejoin %v, want %v\n%s", i, s.after, got, s.wantRejoin, logs.String())
		}
		if got := warnings(); got != s.wantWarns {
			t.Fatalf("step %d (%v): %d warnings, want %d\n%s", i, s.after, got, s.wantWarns, logs.String())
		}
	}
	if strings.Contains(logs.String(), "card-events/2") {
		t.Errorf("the moving partition was warned about:\n%s", logs.String())
	}
	if got := counter(t, m.ForcedRejoins); got != 2 {
		t.Errorf("forced rejoins counted %v, want 2", got)
	}
	now := t0.Add(stallRejoinAfter + minRejoinInterval + stallWarnAfter)
	for label, want := range map[string]float64{"0": 1, "1": 10, "2": 5} {
		if got := gauge(t, m.Lag, label); got != want {
			t.Errorf("lag of partition %s = %v, want %v", label, got, want)
		}
	}
	for label, want := range map[string]float64{"0": now.Sub(longAgo).Seconds(), "1": now.Sub(t0.Add(-time.Minute)).Seconds(), "2": 0} {
		if got := gauge(t, m.CommitAge, label); got != want {
			t.Errorf("commit age of partition %s = %v, want %v", label, got, want)
		}
	}
}

// cursorStore serves the partitions' cursors, or fails as a database that is down.
type cursorStore struct {
	Ingester
	cursors map[string]postgres.CursorState
	down    bool
}

func (s *cursorStore) Cursors(context.Context, []string) (map[string]postgres.CursorState, error) {
	if s.down {
		return nil, errors.New("connect: connection refused")
	}
	return s.cursors, nil
}

// While the database is down no cursor moves: the lag the metrics show grows with the events
// arriving, as does the time since the last commit, instead of staying at the last look's.
func TestWatchdogLagGrowsWhileTheCursorsCannotBeRead(t *testing.T) {
	m := NewMetrics(prometheus.NewRegistry())
	t0 := time.Date(2024, 12, 2, 8, 0, 0, 0, time.UTC)
	now := t0
	st := &cursorStore{cursors: map[string]postgres.CursorState{"card-events/0": {Position: 40, UpdatedAt: t0}}}
	c := &Consumer{cfg: Config{Topic: "card-events", Log: slog.New(slog.DiscardHandler), Metrics: m, Now: func() time.Time { return now }}, store: st}
	w := &watchdog{topic: c.cfg.Topic, log: c.cfg.Log, metrics: m, parts: map[int]*partitionWatch{}}

	c.look(context.Background(), w, map[int]int64{0: 40})
	if lag := gauge(t, m.Lag, "0"); lag != 0 {
		t.Fatalf("caught up: lag %v", lag)
	}
	st.down = true
	now = t0.Add(time.Minute)
	if c.look(context.Background(), w, map[int]int64{0: 90}) {
		t.Error("rejoined the group over a database that is down")
	}
	if lag := gauge(t, m.Lag, "0"); lag != 50 {
		t.Errorf("database down, 50 events arrived: lag %v", lag)
	}
	if age := gauge(t, m.CommitAge, "0"); age != 60 {
		t.Errorf("database down a minute: %v s since the last commit", age)
	}
}
