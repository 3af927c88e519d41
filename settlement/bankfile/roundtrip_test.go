package bankfile_test

import (
	"bytes"
	"fmt"
	"io"
	"iter"
	"slices"
	"testing"

	"github.com/joinincard/engine/settlement/bankfile"
)

var fixtures = []func() *bankfile.File{bankA, bankB, empty}

// TestWriteReadWriteGivesTheSameBytes in both formats, and the XML and the CSV of a file read
// back as the same file.
func TestWriteReadWriteGivesTheSameBytes(t *testing.T) {
	for _, fixture := range fixtures {
		f := fixture()
		x := writeXML(t, f)
		fx, err := bankfile.ReadXML(bytes.NewReader(x))
		if err != nil {
			t.Fatalf("%s: ReadXML: %v", f.Header.MessageID, err)
		}
		if again := writeXML(t, fx); !bytes.Equal(again, x) {
			t.Errorf("%s: XML written, read and written again differs", f.Header.MessageID)
		}
		c := writeCSV(t, f)
		fc, err := bankfile.ReadCSV(bytes.NewReader(c))
		if err != nil {
			t.Fatalf("%s: ReadCSV: %v", f.Header.MessageID, err)
		}
		if again := writeCSV(t, fc); !bytes.Equal(again, c) {
			t.Errorf("%s: CSV written, read and written again differs", f.Header.MessageID)
		}
		if !sameFile(fx, fc) || !sameFile(fx, f) {
			t.Errorf("%s: the XML reads as %+v, the CSV as %+v; want %+v", f.Header.MessageID, fx, fc, f)
		}
	}
}

// manyItems yields n generated items, each different, without holding them.
func manyItems(n int) (iter.Seq[bankfile.Item], bankfile.Header) {
	h := bankA().Header
	h.NumberOfEntries, h.ControlSum, h.Net = 0, 0, 0
	item := func(i int) bankfile.Item {
		it := bankfile.Item{
			ID: fmt.Sprintf("item-%08d", i), Kind: bankfile.Kinds()[i%len(bankfile.Kinds())],
			Party: fmt.Sprintf("merchant-%06d", i%5000), PartyName: "商户 " + fmt.Sprint(i%5000),
			Amount: int64(1 + i%100000), Direction: bankfile.Credit, Entries: int64(1 + i%7),
			Reference: "cycle 2026-10-09",
		}
		if i%3 == 0 {
			it.Direction = bankfile.Debit
		}
		return it
	}
	for i := range n {
		it := item(i)
		h.NumberOfEntries++
		h.ControlSum += it.Amount
		if it.Direction == bankfile.Credit {
			h.Net += it.Amount
		} else {
			h.Net -= it.Amount
		}
	}
	return func(yield func(bankfile.Item) bool) {
		for i := range n {
			if !yield(item(i)) {
				return
			}
		}
	}, h
}

// countingWriter counts the bytes written to it.
type countingWriter struct{ n int }

func (w *countingWriter) Write(p []byte) (int, error) { w.n += len(p); return len(p), nil }

// TestWritersStreamTheItems: items are written as they come. Half-way through 20,000 items (some
// 20 MB of XML), most of the first half is already written: the writers never hold the document.
func TestWritersStreamTheItems(t *testing.T) {
	const n = 20_000
	items, h := manyItems(n)
	for _, tc := range []struct {
		name  string
		write func(io.Writer, bankfile.Header, iter.Seq[bankfile.Item]) error
	}{
		{"xml", bankfile.WriteXML},
		{"csv", bankfile.WriteCSV},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := &countingWriter{}
			var atHalf int
			seen := 0
			observed := func(yield func(bankfile.Item) bool) {
				for it := range items {
					if seen++; seen == n/2 {
						atHalf = w.n
					}
					if !yield(it) {
						return
					}
				}
			}
			if err := tc.write(w, h, observed); err != nil {
				t.Fatal(err)
			}
			if atHalf < w.n*4/10 {
				t.Errorf("%d of %d bytes were written when half the items had been yielded: the writer holds the document", atHalf, w.n)
			}
		})
	}
}

// TestLargeFileReadsBack: a file of 5,000 items reads back whole in both formats.
func TestLargeFileReadsBack(t *testing.T) {
	const n = 5_000
	items, h := manyItems(n)
	want := slices.Collect(items)
	for _, tc := range []struct {
		name  string
		write func(io.Writer, bankfile.Header, iter.Seq[bankfile.Item]) error
		read  func(io.Reader) (*bankfile.File, error)
	}{
		{"xml", bankfile.WriteXML, bankfile.ReadXML},
		{"csv", bankfile.WriteCSV, bankfile.ReadCSV},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var b bytes.Buffer
			if err := tc.write(&b, h, items); err != nil {
				t.Fatal(err)
			}
			f, err := tc.read(&b)
			if err != nil {
				t.Fatal(err)
			}
			if f.Header.NumberOfEntries != n || !slices.Equal(f.Items, want) {
				t.Errorf("read %d items (header says %d), want the %d written", len(f.Items), f.Header.NumberOfEntries, n)
			}
		})
	}
}
