package main

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestBenchReportPrintsOneTable reads a directory as `make bench` leaves it and checks the
// table: every figure with its goal and verdict, the pre-filled and hot runs over the plain one, and
// the Go benchmarks' medians.
func TestBenchReportPrintsOneTable(t *testing.T) {
	var out strings.Builder
	if err := runBenchReport(context.Background(), []string{"testdata/bench"}, &out); err != nil {
		t.Fatal(err)
	}
	got := out.String()
	for _, row := range []string{
		`loadtest +ratio_to_ceiling +0.16 +>= 0.4 +NO`,
		`loadtest +latency_p99_ms +90.5 +<= 100 +yes`,
		`loadtest +events_per_second +40,000 `,
		`loadtest +verified +1 `,
		`loadtest-prefilled +latency_p99_ms +120 +<= 100 +NO`,
		`loadtest-transfers +phases\[uniform\].transfers_per_second +10,250 +>= 10,000 +yes`,
		`loadtest-transfers +phases\[hot\].transfers_per_second +9,133 +>= 10,000 +NO`,
		`loadtest-prefilled/loadtest +events/s pre-filled over empty +0.95 +>= 0.9 +yes`,
		`loadtest-prefilled/loadtest +latency p99 pre-filled over empty +1.33 +<= 1.1 +NO`,
		`loadtest-hot/loadtest +events/s one hot merchant over 500 +0.975 +>= 0.95 +yes`,
		`go test -bench +ledger\.Apply-2 +2,000 ns/op`,
		`go test -bench +ledger\.Apply-2 +4 allocs/op`,
		`go test -bench +events\.Decode-2 +11.5 events/ms`,
	} {
		if !regexp.MustCompile(`(?m)^ *` + row).MatchString(got) {
			t.Errorf("no row matching %q in\n%s", row, got)
		}
	}
	if strings.Contains(got, "transfers_expected_actual") {
		t.Errorf("pairs of numbers are printed as figures:\n%s", got)
	}
}

// TestBenchReportRefusesAFileThatIsNotJSON names the run whose output is broken rather than
// printing a table without it.
func TestBenchReportRefusesAFileThatIsNotJSON(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "loadtest.json"), []byte("{\"events\": 1"), 0o600); err != nil {
		t.Fatal(err)
	}
	err := runBenchReport(context.Background(), []string{dir}, &strings.Builder{})
	if err == nil || !strings.Contains(err.Error(), "loadtest.json") {
		t.Fatalf("got %v, want an error naming loadtest.json", err)
	}
}

// TestBenchReportRefusesADirectoryThatIsNotThere names it rather than printing an empty table
// with status 0, as if the runs had written nothing.
func TestBenchReportRefusesADirectoryThatIsNotThere(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "bench")
	var out strings.Builder
	err := runBenchReport(context.Background(), []string{missing}, &out)
	if err == nil || !strings.Contains(err.Error(), missing) || out.Len() != 0 {
		t.Fatalf("got %v, printed %q; want an error naming %s", err, out.String(), missing)
	}
	file := filepath.Join(t.TempDir(), "bench.json")
	if err := os.WriteFile(file, []byte("{}"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := runBenchReport(context.Background(), []string{file}, &out); err == nil || !strings.Contains(err.Error(), "not a directory") {
		t.Fatalf("a file: %v", err)
	}
}
