package main

import (
	"context"
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
