package statement_test

import (
	"fmt"
	"io"
	"iter"
	"runtime"
	"testing"

	"github.com/joinincard/engine/reconcile/statement"
)

// manyEntries yields n generated entries, each different, without holding them, and the header
// that states their totals.
func manyEntries(n int) (iter.Seq[statement.Entry], statement.Header) {
	h := icbc().Header
	h.From, h.To = date(2026, 10, 1), date(2026, 10, 10)
	h.NumberOfEntries, h.Sum, h.Net = 0, 0, 0
	entry := func(i int) statement.Entry {
		e := statement.Entry{
			Amount: int64(1 + i%100000), Direction: statement.Credit,
			BookingDate: date(2026, 10, 1+i%10), ValueDate: date(2026, 10, 1+i%10),
			EntryRef:    fmt.Sprintf("ICBC%012d", i),
			EndToEndRef: fmt.Sprintf("0199d3a2c4d07e4b9a1c5d2e%08x", i),
		}
		if i%3 == 0 {
			e.Direction = statement.Debit
		}
		if i%5 == 0 {
			e.AdditionalInfo = "商户结算 " + fmt.Sprint(i%5000)
		}
		if i%7 == 0 {
			e.EndToEndRef = ""
		}
		return e
	}
	for i := range n {
		e := entry(i)
		h.NumberOfEntries++
		h.Sum += e.Amount
		h.Net += e.Signed()
	}
	h.ClosingBalance = h.OpeningBalance + h.Net
	return func(yield func(statement.Entry) bool) {
		for i := range n {
			if !yield(entry(i)) {
				return
			}
		}
	}, h
}

var writers = []struct {
	format statement.Format
	write  func(io.Writer, statement.Header, iter.Seq[statement.Entry]) error
}{
	{statement.FormatXML, statement.WriteXML},
	{statement.FormatCSV, statement.WriteCSV},
}

// countingWriter counts the bytes written through it.
type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// maxStreamHeapBytes is the heap a Reader streaming any number of entries must stay under: a
// statement of a million entries is hundreds of megabytes of XML.
const maxStreamHeapBytes = 50 << 20

// streamThroughPipe writes n entries into a pipe in one goroutine and reads them in this one,
// checking each entry is the one written and the heap stays under maxStreamHeapBytes.
func streamThroughPipe(t *testing.T, n int) {
	entries, h := manyEntries(n)
	for _, w := range writers {
		t.Run(string(w.format), func(t *testing.T) {
			pr, pw := io.Pipe()
			written := &countingWriter{w: pw}
			go func() { pw.CloseWithError(w.write(written, h, entries)) }()
			r, err := statement.Open(pr, w.format)
			if err != nil {
				t.Fatal(err)
			}
			next, stop := iter.Pull(entries)
			defer stop()
			var ms runtime.MemStats
			var heapMax uint64
			read := 0
			for {
				e, err := r.Next()
				if err == io.EOF {
					break
				}
				if err != nil {
					t.Fatalf("entry %d: %v", read+1, err)
				}
				if want, _ := next(); e != want {
					t.Fatalf("entry %d reads as %+v, want %+v", read+1, e, want)
				}
				if read++; read%(n/20) == 0 {
					runtime.ReadMemStats(&ms)
					heapMax = max(heapMax, ms.HeapAlloc)
				}
			}
			pr.Close()
			if read != n || r.Header().NumberOfEntries != int64(n) {
				t.Fatalf("read %d entries, the header states %d; want %d", read, r.Header().NumberOfEntries, n)
			}
			t.Logf("%d entries, %d MB streamed, heap at most %.1f MB", n, written.n>>20, float64(heapMax)/(1<<20))
			if heapMax > maxStreamHeapBytes {
				t.Errorf("the heap reached %d MB while streaming %d MB: the reader holds the statement", heapMax>>20, written.n>>20)
			}
		})
	}
}

// TestReaderStreamsAStatementInBoundedMemory: 100,000 entries go from a writer to a reader through
// a pipe, and the heap stays small.
func TestReaderStreamsAStatementInBoundedMemory(t *testing.T) {
	streamThroughPipe(t, 100_000)
}

// TestReaderStreamsAMillionEntriesInBoundedMemory: a statement of a million entries, hundreds of
// megabytes of XML, streams with the heap under maxStreamHeapBytes.
func TestReaderStreamsAMillionEntriesInBoundedMemory(t *testing.T) {
	switch {
	case testing.Short():
		t.Skip("a million entries take half a minute; TestReaderStreamsAStatementInBoundedMemory streams 100,000")
	case raceDetector:
		t.Skip("under the race detector a million entries of XML take minutes; TestReaderStreamsAStatementInBoundedMemory streams 100,000, and go test without -race runs this one")
	}
	streamThroughPipe(t, 1_000_000)
}
