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
	dto "github.com/prometheus/client_model/go"

	"github.com/joinincard/engine/postgres"
)

// scriptedVerifier answers VerifyIncremental from a script, then ends the loop's context.
type scriptedVerifier struct {
	mu      sync.Mutex
	answers []func() (postgres.Report, error)
	stop    context.CancelFunc
}

func (v *scriptedVerifier) VerifyIncremental(context.Context) (postgres.Report, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	next := v.answers[0]
	v.answers = v.answers[1:]
	if len(v.answers) == 0 {
		v.stop()
	}
	return next()
}

// serve's verification loop counts each run by its result, keeps the last run's problems as a
// gauge, counts the days checkpointed, logs problems as errors, and goes on after a failed run.
func TestVerifyLoopCountsAndLogsEachRun(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	v := &scriptedVerifier{stop: cancel, answers: []func() (postgres.Report, error){
		func() (postgres.Report, error) {
			return postgres.Report{Mode: "incremental", Checkpointed: []string{"2026-03-01", "2026-03-02"}}, nil
		},
		func() (postgres.Report, error) {
			return postgres.Report{}, errors.New("database unreachable")
		},
		func() (postgres.Report, error) {
			return postgres.Report{Problems: []string{"account 1: balance differs", "account 2: balance differs"}}, nil
		},
	}}
	reg := prometheus.NewRegistry()
	m := newServeMetrics(reg)
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	done := make(chan struct{})
	go func() {
		defer close(done)
		verifyLedger(ctx, v, time.Millisecond, time.Millisecond, log, m)
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("the loop did not end with its context")
	}
	for result, want := range map[string]float64{"ok": 1, "error": 1, "problems": 1} {
		if got := metricValue(t, m.verifications.WithLabelValues(result)); got != want {
			t.Errorf("verifications %s: %v, want %v", result, got, want)
		}
	}
	if got := metricValue(t, m.verifyProblems); got != 2 {
		t.Errorf("problems gauge %v, want 2", got)
	}
	if got := metricValue(t, m.checkpointedDays); got != 2 {
		t.Errorf("checkpointed days %v, want 2", got)
	}
	for _, want := range []string{`level=INFO msg="ledger verified"`, `level=WARN msg="verify the ledger`,
		`level=ERROR msg="the ledger failed verification`, `problems=2`, `first="account 1: balance differs"`} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("no %q in the log:\n%s", want, logs.String())
		}
	}
}

// metricValue is a counter's or a gauge's value.
func metricValue(t *testing.T, c prometheus.Collector) float64 {
	t.Helper()
	ch := make(chan prometheus.Metric, 1)
	c.Collect(ch)
	var d dto.Metric
	if err := (<-ch).Write(&d); err != nil {
		t.Fatal(err)
	}
	if d.Counter != nil {
		return d.Counter.GetValue()
	}
	return d.Gauge.GetValue()
}
