package statement_test

import (
	"bytes"
	"slices"
	"testing"

	"github.com/joinincard/engine/reconcile/statement"
)

// TestWriteReadWriteGivesTheSameBytes in both formats, and the XML and the CSV of a statement read
// back as the same statement.
func TestWriteReadWriteGivesTheSameBytes(t *testing.T) {
	for _, g := range goldenStatements {
		s := g.statement()
		x := writeXML(t, s)
		sx, err := readXML(x)
		if err != nil {
			t.Fatalf("%s: ReadXML: %v", g.name, err)
		}
		if again := writeXML(t, sx); !bytes.Equal(again, x) {
			t.Errorf("%s: XML written, read and written again differs", g.name)
		}
		c := writeCSV(t, s)
		sc, err := readCSV(c)
		if err != nil {
			t.Fatalf("%s: ReadCSV: %v", g.name, err)
		}
		if again := writeCSV(t, sc); !bytes.Equal(again, c) {
			t.Errorf("%s: CSV written, read and written again differs", g.name)
		}
		if !sameStatement(sx, sc) || !sameStatement(sx, s) {
			t.Errorf("%s: the XML reads as %+v, the CSV as %+v; want %+v", g.name, sx, sc, s)
		}
	}
}

// TestLargeStatementReadsBackWhole: 5,000 entries read back whole in both formats.
func TestLargeStatementReadsBackWhole(t *testing.T) {
	const n = 5_000
	entries, h := manyEntries(n)
	want := slices.Collect(entries)
	for _, w := range writers {
		var b bytes.Buffer
		if err := w.write(&b, h, entries); err != nil {
			t.Fatal(err)
		}
		read := readXML
		if w.format == "csv" {
			read = readCSV
		}
		s, err := read(b.Bytes())
		if err != nil {
			t.Fatalf("%s: %v", w.format, err)
		}
		if !sameStatement(s, &statement.Statement{Header: h, Entries: want}) {
			t.Errorf("%s: read %d entries (the header says %d), want the %d written", w.format, len(s.Entries), s.Header.NumberOfEntries, n)
		}
	}
}
