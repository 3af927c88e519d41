package statement_test

import (
	"bytes"
	"errors"
	"flag"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/joinincard/engine/reconcile/statement"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/ from what the writers write")

// golden compares got with testdata/name, or rewrites it with -update.
func golden(t *testing.T, name string, got []byte) []byte {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to write it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s: the writer's bytes differ from the golden file:\n got:\n%s\nwant:\n%s", name, got, want)
	}
	return want
}

var goldenStatements = []struct {
	name      string
	statement func() *statement.Statement
}{
	{"icbc-hz-20261010-12", icbc},
	{"abc-sh-20261007-7-copy", abcCopy},
	{"ccb-nb-20261012-1-empty", empty},
}

// TestGoldenStatements: each fixture writes the golden bytes in both formats, and the golden bytes
// read back as the fixture, whole and entry by entry.
func TestGoldenStatements(t *testing.T) {
	for _, g := range goldenStatements {
		t.Run(g.name, func(t *testing.T) {
			s := g.statement()
			for _, format := range []struct {
				f    statement.Format
				file []byte
			}{
				{statement.FormatXML, golden(t, g.name+".xml", writeXML(t, s))},
				{statement.FormatCSV, golden(t, g.name+".csv", writeCSV(t, s))},
			} {
				if got, err := statement.ReadAll(bytes.NewReader(format.file), format.f); err != nil || !sameStatement(got, s) {
					t.Errorf("%s: ReadAll(golden) = %+v, %v; want %+v", format.f, got, err, s)
				}
				streamed := streamAll(t, format.f, format.file)
				if !sameStatement(streamed, s) {
					t.Errorf("%s: the Reader yields %+v; want %+v", format.f, streamed, s)
				}
			}
		})
	}
}

// streamAll reads a statement through a Reader, checking Next keeps answering io.EOF at the end.
func streamAll(t *testing.T, f statement.Format, b []byte) *statement.Statement {
	t.Helper()
	r, err := statement.Open(bytes.NewReader(b), f)
	if err != nil {
		t.Fatalf("%s: Open: %v", f, err)
	}
	s := &statement.Statement{}
	for e, err := range r.All() {
		if err != nil {
			t.Fatalf("%s: entry %d: %v", f, len(s.Entries)+1, err)
		}
		s.Entries = append(s.Entries, e)
	}
	if _, err := r.Next(); !errors.Is(err, io.EOF) {
		t.Errorf("%s: Next after the end = %v, want io.EOF", f, err)
	}
	s.Header = r.Header()
	return s
}
