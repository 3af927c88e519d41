package main

import (
	"math"
	"runtime/debug"
	"testing"
)

// The engine's collector runs at engineGCPercent under the memory limit serve gives it, unless
// the operator's GOGC or GOMEMLIMIT says otherwise, and at the runtime's own without a limit.
func TestEngineMemory(t *testing.T) {
	prevGC, prevLimit := debug.SetGCPercent(100), debug.SetMemoryLimit(math.MaxInt64)
	t.Cleanup(func() { debug.SetGCPercent(prevGC); debug.SetMemoryLimit(prevLimit) })
	for _, tc := range []struct {
		name           string
		gogc, memlimit string
		limitMiB       int
		wantGC         int
		wantLimitBytes int64
	}{
		{"a limit", "", "", defaultMemoryLimitMiB, engineGCPercent, defaultMemoryLimitMiB << 20},
		{"no limit", "", "", 0, 100, math.MaxInt64},
		{"the operator's GOGC", "100", "", defaultMemoryLimitMiB, 100, defaultMemoryLimitMiB << 20},
		{"the operator's GOMEMLIMIT", "", "1GiB", defaultMemoryLimitMiB, engineGCPercent, math.MaxInt64},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("GOGC", tc.gogc)
			t.Setenv("GOMEMLIMIT", tc.memlimit)
			debug.SetGCPercent(100)
			debug.SetMemoryLimit(math.MaxInt64)
			engineMemory(tc.limitMiB)
			if gc, limit := debug.SetGCPercent(100), debug.SetMemoryLimit(math.MaxInt64); gc != tc.wantGC || limit != tc.wantLimitBytes {
				t.Errorf("GOGC %d, memory limit %d bytes; want %d and %d", gc, limit, tc.wantGC, tc.wantLimitBytes)
			}
		})
	}
}
