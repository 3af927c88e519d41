package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/joinincard/engine/internal/pgtest"
)

// joinin archive refuses a month that is not settled, leaves no directory behind, and says why;
// bad flags are refused before anything is opened.
func TestArchiveCommandRefusesAnOpenMonth(t *testing.T) {
	url := pgtest.NewDatabase(t)
	dir := filepath.Join(t.TempDir(), "2026-03")
	var out, errs strings.Builder
	err := run(context.Background(), []string{"archive", "--database-url", url, "--log-level", "warn",
		"--month", "2026-03", "--out", dir, "--by", "auditor@finance"}, &out, &errs)
	if err == nil || !strings.Contains(err.Error(), "no settlement cycle") {
		t.Fatalf("archive of an open month: %v", err)
	}
	if left, err := os.ReadDir(filepath.Dir(dir)); err != nil || len(left) != 0 {
		t.Errorf("left behind: %v %v", left, err)
	}
	for _, args := range [][]string{
		{"--month", "2026-3", "--out", dir, "--by", "x"},
		{"--month", "2026-13", "--out", dir, "--by", "x"},
		{"--month", "2026-03", "--out", dir},
		{"--month", "2026-03", "--by", "x"},
		{"--check", dir, "--month", "2026-03"},
	} {
		if err := run(context.Background(), append([]string{"archive", "--database-url", url}, args...), &out, &errs); err == nil {
			t.Errorf("archive %q accepted", args)
		}
	}
	errs.Reset()
	err = run(context.Background(), []string{"archive", "--database-url", url, "--month", "2026-03", "--out", dir, "--by", "6228 4804 0256 4899"}, &out, &errs)
	if err == nil || !strings.Contains(err.Error(), "--by: looks like a card number") || strings.Contains(err.Error()+errs.String(), "4899") {
		t.Errorf("archive asked for by a card number: %v %s", err, errs.String())
	}
	if err := run(context.Background(), []string{"archive", "--check", t.TempDir()}, &out, &errs); err == nil {
		t.Error("an empty directory passed the check")
	}
}
