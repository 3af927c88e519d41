package bankformat

import (
	"bufio"
	"encoding/xml"
	"io"
	"strings"
)

// XMLOut writes indented XML, two spaces a level, one element a line, "\n" line ends, through a
// buffer. The first write error sticks (ErrWriter): Err reports it, and nothing is written after.
type XMLOut struct {
	w     *bufio.Writer
	ew    *ErrWriter
	depth int
}

// NewXMLOut writes the XML declaration to w through a buffer of bufferBytes.
func NewXMLOut(w io.Writer, bufferBytes int) *XMLOut {
	ew := NewErrWriter(w)
	x := &XMLOut{w: bufio.NewWriterSize(ew, bufferBytes), ew: ew}
	x.w.WriteString(xml.Header)
	return x
}

// Err is the first write error, so that a writer streaming many records stops at it.
func (x *XMLOut) Err() error { return x.ew.Err() }

// Flush writes what the buffer holds, and reports the first write error.
func (x *XMLOut) Flush() error {
	if err := x.w.Flush(); err != nil {
		return err
	}
	return x.ew.Err()
}

func (x *XMLOut) indent() {
	for range x.depth {
		x.w.WriteString("  ")
	}
}

// Open writes the start of element name.
func (x *XMLOut) Open(name string) {
	x.indent()
	x.w.WriteByte('<')
	x.w.WriteString(name)
	x.w.WriteString(">\n")
	x.depth++
}

// OpenNS writes the start of the root element name, declaring its namespace ns.
func (x *XMLOut) OpenNS(name, ns string) {
	x.indent()
	x.w.WriteString("<" + name + ` xmlns="` + ns + `">` + "\n")
	x.depth++
}

// Close writes the end of element name.
func (x *XMLOut) Close(name string) {
	x.depth--
	x.indent()
	x.w.WriteString("</")
	x.w.WriteString(name)
	x.w.WriteString(">\n")
}

// Leaf writes element name holding text, which has been checked to hold no control characters.
func (x *XMLOut) Leaf(name, text string) {
	x.indent()
	x.w.WriteByte('<')
	x.w.WriteString(name)
	x.w.WriteByte('>')
	escapeText(x.w, text)
	x.w.WriteString("</")
	x.w.WriteString(name)
	x.w.WriteString(">\n")
}

// LeafIn writes text as the leaf of nested elements, outermost first: LeafIn(d, "ValDt", "Dt")
// writes <ValDt><Dt>d</Dt></ValDt>, one element a line as ever; with no names it writes nothing.
func (x *XMLOut) LeafIn(text string, names ...string) {
	if len(names) == 0 {
		return
	}
	outer, leaf := names[:len(names)-1], names[len(names)-1]
	for _, n := range outer {
		x.Open(n)
	}
	x.Leaf(leaf, text)
	for i := len(outer) - 1; i >= 0; i-- {
		x.Close(outer[i])
	}
}

// Summary writes the transaction summary camt.053 and camt.054 share (TxsSummry): the number of
// entries, their sum, and their net with its direction.
func (x *XMLOut) Summary(entries, sum, net int64) {
	x.Open("TxsSummry")
	x.Open("TtlNtries")
	x.Leaf("NbOfNtries", FormatCount(entries))
	x.Leaf("Sum", FormatAmount(sum))
	netAbs, netDir := SignedParts[string](net)
	x.Open("TtlNetNtry")
	x.Leaf("Amt", FormatAmount(netAbs))
	x.Leaf("CdtDbtInd", netDir)
	x.Close("TtlNetNtry")
	x.Close("TtlNtries")
	x.Close("TxsSummry")
}

// LeafCcy writes an amount element with its currency attribute; ccy is a checked currency code.
func (x *XMLOut) LeafCcy(name, ccy, amount string) {
	x.indent()
	x.w.WriteString("<" + name + ` Ccy="` + ccy + `">` + amount + "</" + name + ">\n")
}

// escapeText writes s as XML character data: s has been checked to hold no control characters,
// so only the markup characters need escaping.
func escapeText(w *bufio.Writer, s string) {
	for {
		i := strings.IndexAny(s, "&<>")
		if i < 0 {
			w.WriteString(s)
			return
		}
		w.WriteString(s[:i])
		switch s[i] {
		case '&':
			w.WriteString("&amp;")
		case '<':
			w.WriteString("&lt;")
		case '>':
			w.WriteString("&gt;")
		}
		s = s[i+1:]
	}
}

// ErrWriter keeps the first error of the writer below it and writes nothing after it, so that a
// writer streaming many records stops at the first failed write.
type ErrWriter struct {
	w   io.Writer
	err error
}

// NewErrWriter writes to w until w fails.
func NewErrWriter(w io.Writer) *ErrWriter { return &ErrWriter{w: w} }

// Err is the first error of the writer below.
func (e *ErrWriter) Err() error { return e.err }

func (e *ErrWriter) Write(p []byte) (int, error) {
	if e.err != nil {
		return 0, e.err
	}
	n, err := e.w.Write(p)
	if err != nil {
		e.err = err
	}
	return n, err
}
