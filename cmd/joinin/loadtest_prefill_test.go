package main

import (
	"encoding/binary"
	"testing"
	"time"

	"github.com/joinincard/engine/loadtest"
)

// A pre-filled run measures tables holding earlier traffic: every prefill event happened before
// the measured run begins, and its id (a UUIDv7) sorts before any id of the run, so the run
// writes where new traffic writes, after the history, not in the middle of it.
func TestPrefillTrafficIsEarlierThanTheRun(t *testing.T) {
	now := time.Date(2026, 12, 6, 23, 0, 0, 0, time.UTC)
	for _, n := range []int{1, 100, 20_000} {
		_, evs := prefillCity(7, n, now)
		if len(evs) < n {
			t.Fatalf("n=%d: %d events, want at least %d", n, len(evs), n)
		}
		for i, e := range evs {
			if !e.OccurredAt.Before(now) {
				t.Fatalf("n=%d: event %d at %s, not before the run at %s", n, i, e.OccurredAt, now)
			}
			ms := int64(binary.BigEndian.Uint64(append([]byte{0, 0}, e.ID[:6]...)))
			if ms >= now.UnixMilli() {
				t.Fatalf("n=%d: event %d has id %s of %s, not before the run", n, i, e.ID, time.UnixMilli(ms).UTC())
			}
		}
		if first := evs[0].OccurredAt; now.Sub(first) > time.Duration(len(evs)+1)*loadtest.MaxEventStep {
			t.Fatalf("n=%d: the earlier traffic starts %s before the run, more than its events span", n, now.Sub(first))
		}
	}
}
