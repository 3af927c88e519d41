package bankformat

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

const testNS = "urn:test"

var errTestRead = errors.New("read refused")

// failingReader hands out its input, then fails with err.
type failingReader struct {
	s   string
	err error
}

func (f *failingReader) Read(p []byte) (int, error) {
	if f.s == "" {
		return 0, f.err
	}
	n := copy(p, f.s)
	f.s = f.s[n:]
	return n, nil
}

func testReadError(x *XMLIn, err error) error {
	return &FieldError{Record: x.Record, Line: x.Line(), Err: fmt.Errorf("reading: %w", err)}
}

// readDoc reads <Doc><Hdr><Id>..</Id><Amt Ccy="..">..</Amt></Hdr><Nb>..</Nb></Doc>.
func readDoc(x *XMLIn) (id, ccy string, amt, n int64) {
	x.Skip = 1
	x.Open("Doc")
	x.Record = "header"
	x.Open("Hdr")
	id = x.Checked("Id", func(s string) error { return CheckID(s, 8) })
	v, ccy := x.LeafAttr("Amt", "Ccy")
	if x.Err == nil {
		if amt, _ = ParseAmount(v); x.Next("Fix") {
			x.Fixed("Fix", "F")
		}
	}
	x.Close("Hdr")
	x.Record = "file"
	n = x.Count("Nb")
	x.Close("Doc")
	x.End()
	return id, ccy, amt, n
}

func TestXMLIn(t *testing.T) {
	const good = `<?xml version="1.0"?>
<Doc xmlns="urn:test">
  <Hdr><Id>A1</Id><Amt Ccy="CNY">12.30</Amt></Hdr>
  <Nb>3</Nb>
</Doc>`
	x := NewXMLIn(strings.NewReader(good), testNS, "file", testReadError)
	id, ccy, amt, n := readDoc(x)
	if x.Err != nil || id != "A1" || ccy != "CNY" || amt != 1230 || n != 3 {
		t.Fatalf("read %q %q %d %d, %v", id, ccy, amt, n, x.Err)
	}
	for _, tc := range []struct{ in, want string }{
		{`<Doc xmlns="urn:other"/>`, "line 1: file: want <Doc>, found <Doc> outside the namespace"},
		{`<Doc xmlns="urn:test"><Hdr a="1">`, "line 1: header: Hdr: unexpected attribute or namespace declaration"},
		{`<Doc xmlns="urn:test"><Hdr><Id>A 1</Id>`, "line 1: header: Hdr/Id: must be printable ASCII without spaces"},
		{`<Doc xmlns="urn:test"><Hdr><Id>A1</Id><Amt>1.00</Amt>`, "line 1: header: Hdr/Amt: attribute Ccy is missing"},
		{`<Doc xmlns="urn:test"><Hdr><Id>A1</Id><Amt Ccy="CNY">1.00</Amt><Fix>G</Fix>`, "line 1: header: Hdr/Fix: want F"},
		{`<Doc xmlns="urn:test"><Hdr><Id><B/></Id>`, "line 1: header: Hdr/Id: a value holds only text"},
		{`<Doc xmlns="urn:test"><!-- c --><Hdr>`, "line 1: header: comments are not allowed"},
		{`<Doc xmlns="urn:test">text<Hdr>`, "line 1: header: text outside an element's value"},
		{`<!DOCTYPE d><Doc>`, "line 1: file: DOCTYPE and other directives are not allowed"},
		{`<Doc xmlns="urn:test"><?pi x?>`, "line 1: header: processing instructions are not allowed"},
		{`<Doc xmlns="urn:test"><Hdr><Id>A1</Id><Amt Ccy="CNY">1.00</Amt></Hdr><Nb>07</Nb>`, "line 1: file: Nb: has a leading zero"},
		{`<Doc xmlns="urn:test"><Hdr><Id>A1</Id><Amt Ccy="CNY">1.00</Amt></Hdr><Nb>7</Nb></Doc><Doc/>`, "line 1: file: <Doc> outside the namespace after the end of the document"},
		{`<Doc xmlns="urn:test"><Hdr></Doc>`, "line 1: file: not well-formed XML: element <Hdr> closed by </Doc>"},
		{`<Doc xmlns="urn:test"><` + strings.Repeat("N", 50) + `>`, "line 1: header: want <Hdr>, found <" + strings.Repeat("N", 40) + "...>"},
	} {
		x := NewXMLIn(strings.NewReader(tc.in), testNS, "file", testReadError)
		readDoc(x)
		var fe *FieldError
		if !errors.As(x.Err, &fe) || x.Err.Error() != tc.want {
			t.Errorf("%s:\n got %v\nwant %s", tc.in, x.Err, tc.want)
		}
	}
	x = NewXMLIn(&failingReader{`<Doc xmlns="urn:test"><Hdr>`, errTestRead}, testNS, "file", testReadError)
	readDoc(x)
	if !errors.Is(x.Err, errTestRead) || x.Err.Error() != "line 1: header: reading: read refused" {
		t.Errorf("a failed read: %v", x.Err)
	}
}

func TestXMLInRenameAndSkip(t *testing.T) {
	x := NewXMLIn(strings.NewReader(`<Doc xmlns="urn:test"><Bal><Amt>x</Amt></Bal></Doc>`), testNS, "file", testReadError)
	x.Skip = 1
	x.Open("Doc")
	x.Open("Bal")
	x.Rename("Bal[OPBD]")
	x.Amount("Amt")
	if x.Err == nil || !strings.HasPrefix(x.Err.Error(), "line 1: file: Bal[OPBD]/Amt: not an amount") {
		t.Errorf("got %v", x.Err)
	}
}

// TestXMLInErrorsWithholdPersonalNumbers: an element named with what may be a personal number is
// described, never repeated, whether the reader or the XML parser refuses it.
func TestXMLInErrorsWithholdPersonalNumbers(t *testing.T) {
	for _, n := range []string{"E98765432X", "WP20250001234", "X110105194912310021"} {
		for _, in := range []string{
			`<Doc xmlns="urn:test"><` + n + `>`,
			`<Doc xmlns="urn:test"><Hdr></` + n + `>`,
			`<` + n + ` xmlns="urn:other"/>`,
		} {
			x := NewXMLIn(strings.NewReader(in), testNS, "file", testReadError)
			readDoc(x)
			if x.Err == nil || strings.Contains(x.Err.Error(), n) || !strings.HasPrefix(x.Err.Error(), "line 1: ") {
				t.Errorf("%s: %v", in, x.Err)
			}
		}
	}
}
