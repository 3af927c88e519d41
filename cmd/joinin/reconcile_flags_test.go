package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestReconcileImportNamesAFileOfNoKnownFormat: a statement is a .xml (camt.053) or .csv file;
// any other name is refused before anything is imported or the database is opened, naming the
// file and the formats, not read as XML and refused for what it holds.
func TestReconcileImportNamesAFileOfNoKnownFormat(t *testing.T) {
	for _, name := range []string{"statement.txt", "statement", "statement.xml.gz"} {
		var out, errs strings.Builder
		err := run(context.Background(), []string{"reconcile", "import", "--database-url", "postgres://postgres@127.0.0.1:1/none?connect_timeout=1",
			"--log-level", "warn", "ok.csv", name}, &out, &errs)
		if err == nil || !strings.Contains(err.Error(), name) || !strings.Contains(err.Error(), "want a .xml (camt.053) or .csv statement") {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// Every file named is read through before any is imported: a statement that does not read is
// refused, naming it and where, and the ones before it are not imported either. The database
// here cannot be reached: the refusal comes before the engine would connect.
func TestReconcileImportReadsEveryFileBeforeImportingAny(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join("..", "..", "reconcile", "statement", "testdata", "icbc-hz-20261010-12.csv")
	raw, err := os.ReadFile(good)
	if err != nil {
		t.Fatal(err)
	}
	cut := filepath.Join(dir, "cut.csv")
	if err := os.WriteFile(cut, raw[:len(raw)*2/3], 0o644); err != nil {
		t.Fatal(err)
	}
	var out, errs strings.Builder
	err = run(context.Background(), []string{"reconcile", "import", "--database-url", "postgres://postgres@127.0.0.1:1/none?connect_timeout=1",
		"--log-level", "warn", good, cut}, &out, &errs)
	if err == nil || !strings.Contains(err.Error(), "cut.csv") || strings.Contains(err.Error(), "connect") {
		t.Errorf("a statement cut short after a good one: %v", err)
	}
}

// A flag written after the statement files is not taken for a file (the flags end at the first
// file): it is refused, saying that flags go first, and nothing is imported. Taken for a file,
// it was refused as a statement of no known format, the --database-url meant for the command
// named as if it were one.
func TestReconcileImportRefusesAFlagAfterTheFiles(t *testing.T) {
	var out, errs strings.Builder
	err := run(context.Background(), []string{"reconcile", "import", "statement.xml",
		"--database-url", "postgres://postgres@127.0.0.1:1/none?connect_timeout=1"}, &out, &errs)
	if err == nil || !strings.Contains(err.Error(), "--database-url after the files: flags go before them") {
		t.Errorf("a flag after the files: %v", err)
	}
	err = run(context.Background(), []string{"reconcile", "run", "--log-level", "warn", "-x"}, &out, &errs)
	if err == nil || !strings.Contains(err.Error(), "flag provided but not defined: -x") {
		t.Errorf("reconcile run -x: %v", err)
	}
}
