package bankformat

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/joinincard/engine/events"
)

// maxNameQuoted bounds how much of an unexpected element's name an error repeats; a name that
// may be a personal number is not repeated at all.
const maxNameQuoted = 40

// XMLIn reads a strict subset of XML: the elements its caller asks for, in order, in one
// namespace, with no attributes but those asked for, no comments, processing instructions (but
// the XML declaration) or DOCTYPE, and no text outside leaf elements. The first error sticks:
// every method after it does nothing, and Err says what and where.
type XMLIn struct {
	// Skip is how many outer elements the error paths leave out.
	Skip int
	// Record and Entry are the record being read and its position, for FieldError.
	Record string
	Entry  int
	// Err is the first refusal, a *FieldError.
	Err error

	d          *xml.Decoder
	ns         string
	peeked     xml.Token
	started    bool
	path       []string
	fileRecord string
	readError  func(x *XMLIn, err error) error
}

// NewXMLIn reads r, whose elements must be in namespace ns. fileRecord names the whole file in
// errors, and is the record read first. readError makes the refusal for an error of r (a bound
// passed, a failed read), which formats report differently; malformed XML is reported here.
func NewXMLIn(r io.Reader, ns, fileRecord string, readError func(x *XMLIn, err error) error) *XMLIn {
	d := xml.NewDecoder(r)
	d.Strict = true
	return &XMLIn{d: d, ns: ns, Record: fileRecord, fileRecord: fileRecord, readError: readError}
}

// Line is the line the decoder has read up to.
func (x *XMLIn) Line() int {
	line, _ := x.d.InputPos()
	return line
}

// Fail records err at the current element, or at its child leaf when leaf is not "".
func (x *XMLIn) Fail(leaf string, err error) {
	if x.Err != nil {
		return
	}
	x.Err = &FieldError{Record: x.Record, Line: x.Line(), Entry: x.Entry, Field: x.field(leaf), Err: err}
}

func (x *XMLIn) field(leaf string) string {
	p := x.path
	if len(p) > x.Skip {
		p = p[x.Skip:]
	} else {
		p = nil
	}
	if leaf != "" {
		p = append(p[:len(p):len(p)], leaf)
	}
	return strings.Join(p, "/")
}

// Rename shows the element just opened as name in error paths: "Bal[OPBD]" for one of two Bal.
func (x *XMLIn) Rename(name string) {
	if x.Err == nil {
		x.path[len(x.path)-1] = name
	}
}

// token returns the next token that matters: elements and the end of input.
func (x *XMLIn) token() xml.Token {
	if x.Err != nil {
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
			x.Fail("", errors.New("text outside an element's value"))
			return nil
		case xml.Comment:
			x.Fail("", errors.New("comments are not allowed"))
			return nil
		case xml.ProcInst:
			if !x.started && t.Target == "xml" {
				x.started = true
				continue
			}
			x.Fail("", errors.New("processing instructions are not allowed"))
			return nil
		case xml.Directive:
			x.Fail("", errors.New("DOCTYPE and other directives are not allowed"))
			return nil
		}
		x.started = true
		return t // an element: its names and attributes are strings, valid after the next token
	}
}

func (x *XMLIn) syntax(err error) {
	var se *xml.SyntaxError
	if errors.As(err, &se) {
		// The parser's message names the elements it read: one named with a personal number is
		// withheld.
		x.Err = &FieldError{Record: x.fileRecord, Line: se.Line, Err: fmt.Errorf("not well-formed XML: %s", events.RedactWords(se.Msg))}
		return
	}
	x.Err = x.readError(x, err)
}

// Next reports whether the next element starts with name, without consuming it.
func (x *XMLIn) Next(name string) bool {
	t := x.token()
	x.peeked = t
	se, ok := t.(xml.StartElement)
	return ok && se.Name.Local == name && se.Name.Space == x.ns
}

// Open consumes the start of element name, which must have no attributes.
func (x *XMLIn) Open(name string) {
	x.OpenAttrs(name, "")
}

// OpenAttrs consumes the start of element name, which must have exactly the attribute attr (none
// when attr is ""); it returns the attribute's value.
func (x *XMLIn) OpenAttrs(name, attr string) string {
	t := x.token()
	if x.Err != nil {
		return ""
	}
	se, ok := t.(xml.StartElement)
	if !ok || se.Name.Local != name || se.Name.Space != x.ns {
		x.Fail("", fmt.Errorf("want <%s>, found %s", name, describe(t, x.ns)))
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
			x.Fail("", errors.New("unexpected attribute or namespace declaration"))
			return ""
		}
	}
	if attr != "" && value == "" {
		x.Fail("", fmt.Errorf("attribute %s is missing", attr))
	}
	return value
}

// Close consumes the end of element name.
func (x *XMLIn) Close(name string) {
	t := x.token()
	if x.Err != nil {
		return
	}
	if ee, ok := t.(xml.EndElement); !ok || ee.Name.Local != name {
		x.Fail("", fmt.Errorf("want </%s>, found %s", name, describe(t, x.ns)))
		return
	}
	x.path = x.path[:len(x.path)-1]
}

// Leaf reads element name's text: character data only.
func (x *XMLIn) Leaf(name string) string {
	v, _ := x.LeafAttr(name, "")
	return v
}

// LeafAttr reads element name's text and its attribute attr.
func (x *XMLIn) LeafAttr(name, attr string) (string, string) {
	a := x.OpenAttrs(name, attr)
	if x.Err != nil {
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
		x.Fail("", errors.New("a value holds only text"))
		return "", ""
	}
}

// End checks nothing follows the root element.
func (x *XMLIn) End() {
	if t := x.token(); x.Err == nil && t != nil {
		x.Fail("", fmt.Errorf("%s after the end of the document", describe(t, x.ns)))
	}
}

// Typed leaves: each reads, parses and checks one value, and fails naming the leaf.

// Checked reads leaf name and fails with check's error.
func (x *XMLIn) Checked(name string, check func(string) error) string {
	v := x.Leaf(name)
	if x.Err == nil {
		if err := check(v); err != nil {
			x.Fail(name, err)
		}
	}
	return v
}

// Fixed reads leaf name, which must be want.
func (x *XMLIn) Fixed(name, want string) {
	if v := x.Leaf(name); x.Err == nil && v != want {
		x.Fail(name, fmt.Errorf("want %s", want))
	}
}

// Count reads leaf name as ParseCount does.
func (x *XMLIn) Count(name string) (n int64) {
	x.Checked(name, func(s string) (err error) { n, err = ParseCount(s); return err })
	return n
}

// Amount reads leaf name as ParseAmount does.
func (x *XMLIn) Amount(name string) (fen int64) {
	x.Checked(name, func(s string) (err error) { fen, err = ParseAmount(s); return err })
	return fen
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
	if events.MayBePersonalNumber(s) {
		return events.Withheld
	}
	if len(s) > maxNameQuoted {
		s = s[:maxNameQuoted] + "..."
	}
	q := strconv.QuoteToASCII(s)
	return q[1 : len(q)-1]
}
