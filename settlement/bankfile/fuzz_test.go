package bankfile_test

import (
	"bytes"
	"encoding/xml"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/joinincard/engine/settlement/bankfile"
)

// seed adds every testdata file matching pattern to f's corpus.
func seed(f *testing.F, patterns ...string) {
	for _, pattern := range patterns {
		files, err := filepath.Glob(filepath.Join("testdata", pattern))
		if err != nil || len(files) == 0 {
			f.Fatalf("no seeds for %s: %v", pattern, err)
		}
		for _, path := range files {
			b, err := os.ReadFile(path)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(b)
		}
	}
}

// mustBeFieldError fails unless a refusal is a *FieldError (or several joined).
func mustBeFieldError(t *testing.T, err error) {
	t.Helper()
	var fe *bankfile.FieldError
	if !errors.As(err, &fe) {
		t.Fatalf("refusal %q (%T) is not a *FieldError", err, err)
	}
}

// settlementReadWriteRead: whatever read accepts writes back in both formats, and each reads
// back as the same file; writing what was read back gives the same bytes.
func settlementReadWriteRead(t *testing.T, in []byte, read func([]byte) (*bankfile.File, error)) {
	f, err := read(in)
	if err != nil {
		mustBeFieldError(t, err)
		return
	}
	for _, format := range []struct {
		name  string
		write func(*bytes.Buffer, *bankfile.File) error
		read  func([]byte) (*bankfile.File, error)
	}{
		{"xml", func(b *bytes.Buffer, f *bankfile.File) error {
			return bankfile.WriteXML(b, f.Header, slices.Values(f.Items))
		},
			func(b []byte) (*bankfile.File, error) { return bankfile.ReadXML(bytes.NewReader(b)) }},
		{"csv", func(b *bytes.Buffer, f *bankfile.File) error {
			return bankfile.WriteCSV(b, f.Header, slices.Values(f.Items))
		},
			func(b []byte) (*bankfile.File, error) { return bankfile.ReadCSV(bytes.NewReader(b)) }},
	} {
		var w1 bytes.Buffer
		if err := format.write(&w1, f); err != nil {
			t.Fatalf("%s: the writer refuses what the reader accepted: %v", format.name, err)
		}
		again, err := format.read(w1.Bytes())
		if err != nil {
			t.Fatalf("%s: the reader refuses what the writer wrote: %v\n%s", format.name, err, w1.Bytes())
		}
		if !sameFile(again, f) {
			t.Fatalf("%s: read back as %+v, want %+v", format.name, again, f)
		}
		var w2 bytes.Buffer
		if err := format.write(&w2, again); err != nil || !bytes.Equal(w1.Bytes(), w2.Bytes()) {
			t.Fatalf("%s: written, read and written again differs (%v)", format.name, err)
		}
	}
}

func FuzzReadXML(f *testing.F) {
	seed(f, "*.xml")
	f.Fuzz(func(t *testing.T, in []byte) {
		settlementReadWriteRead(t, in, func(b []byte) (*bankfile.File, error) { return bankfile.ReadXML(bytes.NewReader(b)) })
	})
}

func FuzzReadCSV(f *testing.F) {
	seed(f, "*.csv")
	f.Fuzz(func(t *testing.T, in []byte) {
		settlementReadWriteRead(t, in, func(b []byte) (*bankfile.File, error) { return bankfile.ReadCSV(bytes.NewReader(b)) })
	})
}

// ackReadWriteRead is settlementReadWriteRead for acknowledgements.
func ackReadWriteRead(t *testing.T, in []byte, read func([]byte) (*bankfile.Ack, error)) {
	a, err := read(in)
	if err != nil {
		mustBeFieldError(t, err)
		return
	}
	for _, format := range []struct {
		name  string
		write func(*bytes.Buffer, *bankfile.Ack) error
		read  func([]byte) (*bankfile.Ack, error)
	}{
		{"xml", func(b *bytes.Buffer, a *bankfile.Ack) error { return bankfile.WriteAckXML(b, a) },
			func(b []byte) (*bankfile.Ack, error) { return bankfile.ReadAckXML(bytes.NewReader(b)) }},
		{"csv", func(b *bytes.Buffer, a *bankfile.Ack) error { return bankfile.WriteAckCSV(b, a) },
			func(b []byte) (*bankfile.Ack, error) { return bankfile.ReadAckCSV(bytes.NewReader(b)) }},
	} {
		var w1 bytes.Buffer
		if err := format.write(&w1, a); err != nil {
			t.Fatalf("%s: the writer refuses what the reader accepted: %v", format.name, err)
		}
		again, err := format.read(w1.Bytes())
		if err != nil {
			t.Fatalf("%s: the reader refuses what the writer wrote: %v\n%s", format.name, err, w1.Bytes())
		}
		if !sameAck(again, a) {
			t.Fatalf("%s: read back as %+v, want %+v", format.name, again, a)
		}
		var w2 bytes.Buffer
		if err := format.write(&w2, again); err != nil || !bytes.Equal(w1.Bytes(), w2.Bytes()) {
			t.Fatalf("%s: written, read and written again differs (%v)", format.name, err)
		}
	}
}

func FuzzReadAckXML(f *testing.F) {
	seed(f, "ack-*.xml")
	f.Fuzz(func(t *testing.T, in []byte) {
		ackReadWriteRead(t, in, func(b []byte) (*bankfile.Ack, error) { return bankfile.ReadAckXML(bytes.NewReader(b)) })
	})
}

func FuzzReadAckCSV(f *testing.F) {
	seed(f, "ack-*.csv")
	f.Fuzz(func(t *testing.T, in []byte) {
		ackReadWriteRead(t, in, func(b []byte) (*bankfile.Ack, error) { return bankfile.ReadAckCSV(bytes.NewReader(b)) })
	})
}

// FuzzReadManifest: whatever ReadManifest accepts, WriteManifest writes back as the same bytes.
func FuzzReadManifest(f *testing.F) {
	seed(f, "manifest.txt")
	f.Fuzz(func(t *testing.T, in []byte) {
		m, err := bankfile.ReadManifest(bytes.NewReader(in))
		if err != nil {
			mustBeFieldError(t, err)
			return
		}
		var out bytes.Buffer
		if err := bankfile.WriteManifest(&out, m); err != nil {
			t.Fatalf("WriteManifest refuses what ReadManifest accepted: %v", err)
		}
		if !bytes.Equal(out.Bytes(), in) {
			t.Fatalf("the manifest reads and writes as\n%s\nnot\n%s", out.Bytes(), in)
		}
	})
}

// FuzzFields puts fuzzed values into the fields of valid files, escaped for each format, so that
// the fields' own checks, not the syntax, decide: whatever the readers accept must read, write
// and read again as in FuzzReadXML.
func FuzzFields(f *testing.F) {
	f.Add("李华", "returned: AC04", "622848******5678", "300.05", "0199d3a2c4d07e4b9a1c5d2e3f405104", "2026-10-09T23:05:00+08:00", "42")
	f.Add("=1+2 & <b>", "'@x", "-p", "0.01", "'id", "2026-10-09T23:05:00.5Z", "1")
	f.Add("𠀀\u2028x", "\"q\", y", "p*1", "92233720368547758.07", "i", "9999-12-31T23:59:59.999999999-23:59", "999999999999999999")
	f.Add("a\x00b", "6228 4804 0256 4890 018", "6228480402564890018", "1e3", "a b", "2026-10-09T23:05:00", "-1")
	xmlDoc := readFile(f, "icbc-hz-20261009-42.xml")
	csvDoc := readFile(f, "icbc-hz-20261009-42.csv")
	f.Fuzz(func(t *testing.T, name, reference, party, amount, id, created, seq string) {
		x := xmlDoc
		for _, r := range [][2]string{
			{"<Nm>李华</Nm>", "<Nm>" + xmlEscape(name) + "</Nm>"},
			{"<Ustrd>returned: AC04 in JIC-ICBC-HZ-20261008-41</Ustrd>", "<Ustrd>" + xmlEscape(reference) + "</Ustrd>"},
			{"<Id>622848******5678</Id>", "<Id>" + xmlEscape(party) + "</Id>"},
			{">300.05<", ">" + xmlEscape(amount) + "<"},
			{">0199d3a2c4d07e4b9a1c5d2e3f405104<", ">" + xmlEscape(id) + "<"},
			{"<CreDtTm>2026-10-09T23:05:00+08:00<", "<CreDtTm>" + xmlEscape(created) + "<"},
			{"<ElctrncSeqNb>42<", "<ElctrncSeqNb>" + xmlEscape(seq) + "<"},
		} {
			x = bytes.Replace(x, []byte(r[0]), []byte(r[1]), 1)
		}
		settlementReadWriteRead(t, x, func(b []byte) (*bankfile.File, error) { return bankfile.ReadXML(bytes.NewReader(b)) })
		c := csvDoc
		for _, r := range [][2]string{
			{",李华,", "," + csvQuote(name) + ","},
			{",returned: AC04 in JIC-ICBC-HZ-20261008-41,", "," + csvQuote(reference) + ","},
			{",622848******5678,", "," + csvQuote(party) + ","},
			{",300.05,", "," + csvQuote(amount) + ","},
			{",0199d3a2c4d07e4b9a1c5d2e3f405104,", "," + csvQuote(id) + ","},
			{",2026-10-09T23:05:00+08:00,", "," + csvQuote(created) + ","},
			{",42,CNY,", "," + csvQuote(seq) + ",CNY,"},
		} {
			c = bytes.Replace(c, []byte(r[0]), []byte(r[1]), 1)
		}
		settlementReadWriteRead(t, c, func(b []byte) (*bankfile.File, error) { return bankfile.ReadCSV(bytes.NewReader(b)) })
	})
}

func readFile(f *testing.F, name string) []byte {
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		f.Fatal(err)
	}
	return b
}

func xmlEscape(s string) string {
	var b bytes.Buffer
	if err := xml.EscapeText(&b, []byte(s)); err != nil {
		return s
	}
	return b.String()
}

func csvQuote(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }
