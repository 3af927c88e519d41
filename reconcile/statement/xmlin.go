package statement

import (
	"errors"
	"fmt"
	"io"

	"github.com/joinincard/engine/events"
	"github.com/joinincard/engine/internal/bankformat"
)

const (
	// maxXMLEntryBytes bounds the XML of one entry, from its start to the next one's: with every
	// field at its bound and every character written as a character reference (&#x4E2D; for a
	// character of three bytes) it is under 6 KiB (TestEntryFitsTheBounds). The XML decoder holds
	// at most this much of an entry, whatever the statement's size.
	maxXMLEntryBytes = 16 << 10
	// maxXMLHeadBytes bounds the XML before the first entry, and maxXMLTailBytes the XML after
	// the last: the header with its fields at their bounds is under 2 KiB.
	maxXMLHeadBytes = 16 << 10
	maxXMLTailBytes = 1 << 10
)

// xmlIn is the strict XML reader of bankformat, reading a statement part by part against the
// budgets of in.
type xmlIn struct {
	*bankformat.XMLIn
	in *budgetReader
}

func newXMLIn(r io.Reader, ns string) *xmlIn {
	in := newBudgetReader(r)
	in.reset(maxXMLHeadBytes, "the XML before the first entry")
	return &xmlIn{XMLIn: bankformat.NewXMLIn(in, ns, recordFile, readError), in: in}
}

// readError refuses a part over its budget where it is, and a failed read at the file.
func readError(x *bankformat.XMLIn, err error) error {
	if errors.Is(err, ErrTooLarge) {
		return &FieldError{Record: x.Record, Line: x.Line(), Entry: x.Entry, Err: err}
	}
	return &FieldError{Record: recordFile, Line: x.Line(), Err: fmt.Errorf("reading XML: %w", err)}
}

// Typed leaves of statements.

func (x *xmlIn) id(name string) string {
	return x.Checked(name, func(s string) error { return bankformat.CheckID(s, maxIDBytes) })
}

func (x *xmlIn) direction(name string) (d Direction) {
	x.Checked(name, func(s string) (err error) { d, err = parseDirection(s); return err })
	return d
}

func (x *xmlIn) date(name string) (d events.Date) {
	x.Checked(name, func(s string) (err error) { d, err = parseDate(s); return err })
	return d
}

// budgetReader hands the XML decoder its input a byte at a time from a buffer of its own (the
// decoder reads an io.ByteReader so, rather than through a buffer of its own), charging each byte
// to the part of the statement being read: the head, each entry, the tail. A part over its budget
// fails with ErrTooLarge, so the decoder never holds more than one part's bytes, whatever the
// input.
type budgetReader struct {
	r        io.Reader
	buf      []byte
	pos, end int
	err      error // the error of r, once the buffer is drained
	left     int
	bound    int
	part     string
}

// readBufferBytes: the XML is read from its source in blocks of this size.
const readBufferBytes = 32 << 10

func newBudgetReader(r io.Reader) *budgetReader {
	return &budgetReader{r: r, buf: make([]byte, readBufferBytes)}
}

// reset starts a part of at most bound bytes.
func (b *budgetReader) reset(bound int, part string) {
	b.left, b.bound, b.part = bound, bound, part
}

func (b *budgetReader) ReadByte() (byte, error) {
	if b.pos < b.end && b.left > 0 {
		c := b.buf[b.pos]
		b.pos++
		b.left--
		return c, nil
	}
	return b.readByteSlow()
}

func (b *budgetReader) readByteSlow() (byte, error) {
	if b.left <= 0 {
		return 0, fmt.Errorf("%w: %s is over %d bytes", ErrTooLarge, b.part, b.bound)
	}
	for b.pos == b.end {
		if b.err != nil {
			return 0, b.err
		}
		b.pos = 0
		b.end, b.err = io.ReadAtLeast(b.r, b.buf, 1)
		if b.err == io.ErrUnexpectedEOF {
			b.err = io.EOF
		}
	}
	return b.ReadByte()
}

// Read makes budgetReader an io.Reader, as xml.NewDecoder asks; the decoder only calls ReadByte.
func (b *budgetReader) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		c, err := b.ReadByte()
		if err != nil {
			if n > 0 {
				return n, nil
			}
			return 0, err
		}
		p[n] = c
		n++
	}
	return n, nil
}
