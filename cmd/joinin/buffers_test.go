package main

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/joinincard/engine/postgres"
)

// scriptedSizer answers BufferFit from a script, then ends the loop's context.
type scriptedSizer struct {
	mu      sync.Mutex
	answers []func() (postgres.BufferFit, error)
	stop    context.CancelFunc
	asked   int
}

func (s *scriptedSizer) BufferFit(context.Context) (postgres.BufferFit, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.asked++
	next := s.answers[0]
	s.answers = s.answers[1:]
	if len(s.answers) == 0 {
		s.stop()
	}
	return next()
}

func fits(buffers, key int64) func() (postgres.BufferFit, error) {
	return func() (postgres.BufferFit, error) {
		return postgres.BufferFit{Known: true, SharedBuffers: buffers << 20, BalanceKey: key << 20}, nil
	}
}

// serve warns when the balance key outgrows the shared buffers, again only once it has grown by
// half since, sets the gauges at every reading, and goes on after a failed one.
func TestWatchBuffersWarnsAsTheKeyOutgrowsTheBuffers(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s := &scriptedSizer{stop: cancel, answers: []func() (postgres.BufferFit, error){
		fits(128, 100), // fits: nothing to say
		fits(128, 200), // outgrown: warn
		fits(128, 250), // grown by less than half: quiet
		func() (postgres.BufferFit, error) { return postgres.BufferFit{}, errors.New("database unreachable") },
		fits(128, 300), // half again: warn
		fits(128, 310),
	}}
	m := newServeMetrics(prometheus.NewRegistry())
	var logs bytes.Buffer
	watchBuffers(ctx, s, time.Millisecond, slog.New(slog.NewTextHandler(&logs, nil)), m)
	if got := strings.Count(logs.String(), "outgrown PostgreSQL's shared buffers"); got != 2 {
		t.Errorf("%d warnings that the key outgrew the buffers, want 2:\n%s", got, logs.String())
	}
	for _, want := range []string{"balance_key_mib=200", "balance_key_mib=300", "shared_buffers_mib=128", "database unreachable"} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("log lacks %q:\n%s", want, logs.String())
		}
	}
	if got := metricValue(t, m.balanceKey); got != 310<<20 {
		t.Errorf("balance key gauge %v, want %v", got, 310<<20)
	}
	if got := metricValue(t, m.sharedBuffers); got != 128<<20 {
		t.Errorf("shared buffers gauge %v, want %v", got, 128<<20)
	}
}

// On CockroachDB there are no shared buffers to size: one reading, no gauges, no warning.
func TestWatchBuffersStopsWhereThereAreNoBuffers(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s := &scriptedSizer{stop: func() {}, answers: []func() (postgres.BufferFit, error){
		func() (postgres.BufferFit, error) { return postgres.BufferFit{}, nil },
		fits(128, 200),
	}}
	m := newServeMetrics(prometheus.NewRegistry())
	var logs bytes.Buffer
	done := make(chan struct{})
	go func() {
		defer close(done)
		watchBuffers(ctx, s, time.Millisecond, slog.New(slog.NewTextHandler(&logs, nil)), m)
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("the watch went on without buffers to watch")
	}
	if s.asked != 1 || logs.Len() != 0 || metricValue(t, m.balanceKey) != 0 {
		t.Errorf("asked %d times, logged %q, key gauge %v: want one reading and nothing else", s.asked, logs.String(), metricValue(t, m.balanceKey))
	}
}
