package statement

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

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
	// maxNameQuoted bounds how much of an unexpected element's name an error repeats.
	maxNameQuoted = 40
)

// xmlIn reads a strict subset of XML: the elements its caller asks for, in order, in one
// namespace, with no attributes but those asked for, no comments, processing instructions (but
// the XML declaration) or DOCTYPE, and no text outside leaf elements. The first error sticks:
// every method after it does nothing, and err says what and where.
type xmlIn struct {
	d       *xml.Decoder
	in      *budgetReader
	ns      string
	peeked  xml.Token
	started bool
	path    []string
	skip    int // how many outer elements the error paths leave out
	record  string
	entry   int
	err     error
}

func newXMLIn(r io.Reader, ns string) *xmlIn {
	in := newBudgetReader(r)
	in.reset(maxXMLHeadBytes, "the XML before the first entry")
	d := xml.NewDecoder(in)
	d.Strict = true
	return &xmlIn{d: d, in: in, ns: ns, record: recordFile}
}

// line is the line the decoder has read up to.
func (x *xmlIn) line() int {
	line, _ := x.d.InputPos()
	return line
}

// fail records err at the current element, or at its child leaf when leaf is not "".
func (x *xmlIn) fail(leaf string, err error) {
	if x.err != nil {
		return
	}
	x.err = &FieldError{Record: x.record, Line: x.line(), Entry: x.entry, Field: x.field(leaf), Err: err}
}

func (x *xmlIn) field(leaf string) string {
	p := x.path
	if len(p) > x.skip {
		p = p[x.skip:]
	} else {
		p = nil
	}
	if leaf != "" {
		p = append(p[:len(p):len(p)], leaf)
	}
	return strings.Join(p, "/")
}

// rename shows the element just opened as name in error paths: "Bal[OPBD]" for one of two Bal.
func (x *xmlIn) rename(name string) {
	if x.err == nil {
		x.path[len(x.path)-1] = name
	}
}

// token returns the next token that matters: elements and the end of input.
func (x *xmlIn) token() xml.Token {
	if x.err != nil {
		return nil
	}
	if t := x.peeked; t != nil {
		x.peeked = nil
		return t
	}
	for {
		t, err := x.d.Token()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			x.syntax(err)
			return nil
		}
		switch t := t.(type) {
		case xml.CharData:
			if len(bytes.TrimLeft(t, " \t\r\n")) == 0 {
				continue
			}
			x.fail("", errors.New("text outside an element's value"))
			return nil
		case xml.Comment:
			x.fail("", errors.New("comments are not allowed"))
			return nil
		case xml.ProcInst:
			if !x.started && t.Target == "xml" {
				x.started = true
				continue
			}
			x.fail("", errors.New("processing instructions are not allowed"))
			return nil
		case xml.Directive:
			x.fail("", errors.New("DOCTYPE and other directives are not allowed"))
			return nil
		}
		x.started = true
		return t // an element: its names and attributes are strings, valid after the next token
	}
}

func (x *xmlIn) syntax(err error) {
	var se *xml.SyntaxError
	switch {
	case errors.As(err, &se):
		x.err = &FieldError{Record: recordFile, Line: se.Line, Err: fmt.Errorf("not well-formed XML: %s", se.Msg)}
	case errors.Is(err, ErrTooLarge):
		x.err = &FieldError{Record: x.record, Line: x.line(), Entry: x.entry, Err: err}
	default:
		x.err = &FieldError{Record: recordFile, Line: x.line(), Err: fmt.Errorf("reading XML: %w", err)}
	}
}

// next reports whether the next element starts with name, without consuming it.
func (x *xmlIn) next(name string) bool {
	t := x.token()
	x.peeked = t
	se, ok := t.(xml.StartElement)
	return ok && se.Name.Local == name && se.Name.Space == x.ns
}

// open consumes the start of element name, which must have no attributes.
func (x *xmlIn) open(name string) {
	x.openAttrs(name, "")
}

// openAttrs consumes the start of element name, which must have exactly the attribute attr (none
// when attr is ""); it returns the attribute's value.
func (x *xmlIn) openAttrs(name, attr string) string {
	t := x.token()
	if x.err != nil {
		return ""
	}
	se, ok := t.(xml.StartElement)
	if !ok || se.Name.Local != name || se.Name.Space != x.ns {
		x.fail("", fmt.Errorf("want <%s>, found %s", name, describe(t, x.ns)))
		return ""
	}
	x.path = append(x.path, name)
	var value string
	for _, a := range se.Attr {
		switch {
		case len(x.path) == 1 && a.Name.Space == "" && a.Name.Local == "xmlns" && a.Value == x.ns:
			// the root's namespace declaration
		case attr != "" && a.Name.Space == "" && a.Name.Local == attr && value == "":
			value = a.Value
		default:
			x.fail("", errors.New("unexpected attribute or namespace declaration"))
			return ""
		}
	}
	if attr != "" && value == "" {
		x.fail("", fmt.Errorf("attribute %s is missing", attr))
	}
	return value
}

// close consumes the end of element name.
func (x *xmlIn) close(name string) {
	t := x.token()
	if x.err != nil {
		return
	}
	if ee, ok := t.(xml.EndElement); !ok || ee.Name.Local != name {
		x.fail("", fmt.Errorf("want </%s>, found %s", name, describe(t, x.ns)))
		return
	}
	x.path = x.path[:len(x.path)-1]
}

// leaf reads element name's text: character data only.
func (x *xmlIn) leaf(name string) string {
	v, _ := x.leafAttr(name, "")
	return v
}

// leafAttr reads element name's text and its attribute attr.
func (x *xmlIn) leafAttr(name, attr string) (string, string) {
	a := x.openAttrs(name, attr)
	if x.err != nil {
		return "", ""
	}
	var text []byte
	for {
		t, err := x.d.Token()
		if err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			x.syntax(err)
			return "", ""
		}
		switch t := t.(type) {
		case xml.CharData:
			text = append(text, t...)
			continue
		case xml.EndElement:
			x.path = x.path[:len(x.path)-1]
			return string(text), a
		}
		x.fail("", errors.New("a value holds only text"))
		return "", ""
	}
}

// end checks nothing follows the root element.
func (x *xmlIn) end() {
	if t := x.token(); x.err == nil && t != nil {
		x.fail("", fmt.Errorf("%s after the end of the document", describe(t, x.ns)))
	}
}

// Typed leaves: each reads, parses and checks one value, and fails naming the leaf.

// checked reads leaf name and fails with check's error.
func (x *xmlIn) checked(name string, check func(string) error) string {
	v := x.leaf(name)
	if x.err == nil {
		if err := check(v); err != nil {
			x.fail(name, err)
		}
	}
	return v
}

func (x *xmlIn) id(name string) string {
	return x.checked(name, func(s string) error { return bankformat.CheckID(s, maxIDBytes) })
}

func (x *xmlIn) fixed(name, want string) {
	if v := x.leaf(name); x.err == nil && v != want {
		x.fail(name, fmt.Errorf("want %s", want))
	}
}

func (x *xmlIn) count(name string) (n int64) {
	x.checked(name, func(s string) (err error) { n, err = bankformat.ParseCount(s); return err })
	return n
}

func (x *xmlIn) amount(name string) (fen int64) {
	x.checked(name, func(s string) (err error) { fen, err = bankformat.ParseAmount(s); return err })
	return fen
}

func (x *xmlIn) direction(name string) (d Direction) {
	x.checked(name, func(s string) (err error) { d, err = parseDirection(s); return err })
	return d
}

func (x *xmlIn) date(name string) (d events.Date) {
	x.checked(name, func(s string) (err error) { d, err = parseDate(s); return err })
	return d
}

// describe names a token for an error, without its content.
func describe(t xml.Token, ns string) string {
	switch t := t.(type) {
	case nil:
		return "the end of the input"
	case xml.StartElement:
		if t.Name.Space != ns {
			return "<" + quoteName(t.Name.Local) + "> outside the namespace"
		}
		return "<" + quoteName(t.Name.Local) + ">"
	case xml.EndElement:
		return "</" + quoteName(t.Name.Local) + ">"
	}
	return "something else"
}

func quoteName(s string) string {
	if len(s) > maxNameQuoted {
		s = s[:maxNameQuoted] + "..."
	}
	q := strconv.QuoteToASCII(s)
	return q[1 : len(q)-1]
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
