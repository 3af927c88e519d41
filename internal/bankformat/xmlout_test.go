package bankformat

import (
	"errors"
	"strings"
	"testing"
)

func TestXMLOut(t *testing.T) {
	var b strings.Builder
	x := NewXMLOut(&b, 16)
	x.OpenNS("Doc", "urn:test")
	x.Open("Hdr")
	x.Leaf("Nm", `A&B <x> "q"`)
	x.LeafCcy("Amt", "CNY", "1.00")
	x.LeafIn("2026-12-07", "ValDt", "Dt")
	x.LeafIn("nothing")
	x.Close("Hdr")
	x.Close("Doc")
	if err := x.Flush(); err != nil {
		t.Fatal(err)
	}
	const want = `<?xml version="1.0" encoding="UTF-8"?>
<Doc xmlns="urn:test">
  <Hdr>
    <Nm>A&amp;B &lt;x&gt; "q"</Nm>
    <Amt Ccy="CNY">1.00</Amt>
    <ValDt>
      <Dt>2026-12-07</Dt>
    </ValDt>
  </Hdr>
</Doc>
`
	if b.String() != want {
		t.Errorf("got\n%s\nwant\n%s", b.String(), want)
	}
	// What XMLOut writes, XMLIn reads back.
	in := NewXMLIn(strings.NewReader(b.String()), "urn:test", "file", testReadError)
	in.Open("Doc")
	in.Open("Hdr")
	if nm := in.Leaf("Nm"); nm != `A&B <x> "q"` {
		t.Errorf("read back %q", nm)
	}
	if v, ccy := in.LeafAttr("Amt", "Ccy"); v != "1.00" || ccy != "CNY" {
		t.Errorf("read back %q %q", v, ccy)
	}
	in.Open("ValDt")
	if d := in.Leaf("Dt"); d != "2026-12-07" {
		t.Errorf("read back %q", d)
	}
	in.Close("ValDt")
	in.Close("Hdr")
	in.Close("Doc")
	in.End()
	if in.Err != nil {
		t.Error(in.Err)
	}
}

// failAfter accepts n bytes, then fails.
type failAfter struct{ n int }

var errTestWrite = errors.New("disk full")

func (f *failAfter) Write(p []byte) (int, error) {
	if len(p) > f.n {
		n := f.n
		f.n = 0
		return n, errTestWrite
	}
	f.n -= len(p)
	return len(p), nil
}

func TestXMLOutKeepsTheFirstWriteError(t *testing.T) {
	x := NewXMLOut(&failAfter{n: 50}, 16)
	x.OpenNS("Doc", "urn:test")
	for range 10 {
		x.Leaf("Id", "0123456789")
	}
	if err := x.Err(); !errors.Is(err, errTestWrite) {
		t.Errorf("Err() = %v", err)
	}
	x.Close("Doc")
	if err := x.Flush(); !errors.Is(err, errTestWrite) {
		t.Errorf("Flush() = %v", err)
	}
	ew := NewErrWriter(&failAfter{n: 3})
	if n, err := ew.Write([]byte("abcdef")); n != 3 || err == nil {
		t.Errorf("first write: %d, %v", n, err)
	}
	if n, err := ew.Write([]byte("g")); n != 0 || !errors.Is(err, errTestWrite) || ew.Err() != err {
		t.Errorf("a write after the error: %d, %v", n, err)
	}
}
