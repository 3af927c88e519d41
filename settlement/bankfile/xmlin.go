package bankfile

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

// maxNameQuoted bounds how much of an unexpected element's name an error repeats.
const maxNameQuoted = 40

// errTooLarge is the refusal of an input over its reader's bound.
var errTooLarge = errors.New("larger than the bound")

// xmlIn reads a strict subset of XML: the elements its caller asks for, in order, in one
// namespace, with no attributes but those asked for, no comments, processing instructions (but
// the XML declaration) or DOCTYPE, and no text outside leaf elements. The first error sticks:
// every method after it does nothing, and err says what and where.
type xmlIn struct {
	d       *xml.Decoder
	ns      string
	peeked  xml.Token
	started bool
	path    []string
	skip    int // how many outer elements the error paths leave out
	record  string
	entry   int
	err     error
}

func newXMLIn(r io.Reader, ns string, maxBytes int64) *xmlIn {
	d := xml.NewDecoder(newLimitReader(r, maxBytes))
	d.Strict = true
	return &xmlIn{d: d, ns: ns, record: recordFile}
}

// fail records err at the current element, or at its child leaf when leaf is not "".
func (x *xmlIn) fail(leaf string, err error) {
	if x.err != nil {
		return
	}
	line, _ := x.d.InputPos()
	field := x.field(leaf)
	x.err = &FieldError{Record: x.record, Line: line, Entry: x.entry, Field: field, Err: err}
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
	case errors.Is(err, errTooLarge):
		x.err = &FieldError{Record: recordFile, Err: err}
	default:
		x.err = &FieldError{Record: recordFile, Err: fmt.Errorf("reading XML: %w", err)}
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

func (x *xmlIn) id(name string, max int) string { return x.checked(name, max, bankformat.CheckID) }

func (x *xmlIn) partyID(name string, max int) string { return x.checked(name, max, checkAccountID) }

func (x *xmlIn) checked(name string, max int, check func(string, int) error) string {
	v := x.leaf(name)
	if x.err == nil {
		if err := check(v, max); err != nil {
			x.fail(name, err)
		}
	}
	return v
}

func (x *xmlIn) text(name string) string {
	v := x.leaf(name)
	if x.err == nil {
		if err := checkText(v, true); err != nil {
			x.fail(name, err)
		}
	}
	return v
}

func (x *xmlIn) fixed(name, want string) {
	if v := x.leaf(name); x.err == nil && v != want {
		x.fail(name, fmt.Errorf("want %s", want))
	}
}

func (x *xmlIn) count(name string) int64 {
	v := x.leaf(name)
	if x.err != nil {
		return 0
	}
	n, err := bankformat.ParseCount(v)
	if err != nil {
		x.fail(name, err)
	}
	return n
}

func (x *xmlIn) amount(name string) int64 {
	v := x.leaf(name)
	if x.err != nil {
		return 0
	}
	fen, err := bankformat.ParseAmount(v)
	if err != nil {
		x.fail(name, err)
	}
	return fen
}

func (x *xmlIn) direction(name string) Direction {
	v := x.leaf(name)
	if x.err != nil {
		return ""
	}
	d, err := parseDirection(v)
	if err != nil {
		x.fail(name, err)
	}
	return d
}

func (x *xmlIn) date(name string) events.Date {
	v := x.leaf(name)
	if x.err != nil {
		return events.Date{}
	}
	d, err := parseDate(v)
	if err != nil {
		x.fail(name, err)
	}
	return d
}

// accountID reads Id/Othr/Id.
func (x *xmlIn) accountID() string {
	x.open("Id")
	x.open("Othr")
	v := x.partyID("Id", maxAccountIDBytes)
	x.close("Othr")
	x.close("Id")
	return v
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

// limitReader reads at most max bytes of r, and fails with errTooLarge if r has more.
type limitReader struct {
	r    io.Reader
	left int64
	max  int64
}

func newLimitReader(r io.Reader, max int64) *limitReader {
	return &limitReader{r: r, left: max, max: max}
}

func (l *limitReader) Read(p []byte) (int, error) {
	if l.left < 0 {
		return 0, fmt.Errorf("%w of %d bytes", errTooLarge, l.max)
	}
	if int64(len(p)) > l.left+1 {
		p = p[:l.left+1]
	}
	n, err := l.r.Read(p)
	l.left -= int64(n)
	if l.left < 0 {
		return 0, fmt.Errorf("%w of %d bytes", errTooLarge, l.max)
	}
	return n, err
}
