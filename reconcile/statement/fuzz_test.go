package statement_test

import (
	"bytes"
	"encoding/xml"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/joinincard/engine/reconcile/statement"
)

// seed adds every testdata file matching pattern to f's corpus.
func seed(f *testing.F, pattern string) {
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

// readWriteRead: whatever read accepts writes back in both formats, and each reads back as the
// same statement; writing what was read back gives the same bytes. A refusal is a *FieldError
// (or several joined).
func readWriteRead(t *testing.T, in []byte, read func([]byte) (*statement.Statement, error)) {
	s, err := read(in)
	if err != nil {
		var fe *statement.FieldError
		if !errors.As(err, &fe) {
			t.Fatalf("refusal %q (%T) is not a *FieldError", err, err)
		}
		return
	}
	for _, format := range []struct {
		name  string
		write func(testing.TB, *statement.Statement) []byte
		read  func([]byte) (*statement.Statement, error)
	}{
		{"xml", writeXMLOrFail, readXML},
		{"csv", writeCSVOrFail, readCSV},
	} {
		w1 := format.write(t, s)
		again, err := format.read(w1)
		if err != nil {
			t.Fatalf("%s: the reader refuses what the writer wrote: %v\n%s", format.name, err, w1)
		}
		if !sameStatement(again, s) {
			t.Fatalf("%s: read back as %+v, want %+v", format.name, again, s)
		}
		if w2 := format.write(t, again); !bytes.Equal(w1, w2) {
			t.Fatalf("%s: written, read and written again differs", format.name)
		}
	}
}

func writeXMLOrFail(t testing.TB, s *statement.Statement) []byte {
	var b bytes.Buffer
	if err := statement.WriteXML(&b, s.Header, slices.Values(s.Entries)); err != nil {
		t.Fatalf("xml: the writer refuses what the reader accepted: %v", err)
	}
	return b.Bytes()
}

func writeCSVOrFail(t testing.TB, s *statement.Statement) []byte {
	var b bytes.Buffer
	if err := statement.WriteCSV(&b, s.Header, slices.Values(s.Entries)); err != nil {
		t.Fatalf("csv: the writer refuses what the reader accepted: %v", err)
	}
	return b.Bytes()
}

func FuzzReadXML(f *testing.F) {
	seed(f, "*.xml")
	f.Fuzz(func(t *testing.T, in []byte) { readWriteRead(t, in, readXML) })
}

func FuzzReadCSV(f *testing.F) {
	seed(f, "*.csv")
	f.Fuzz(func(t *testing.T, in []byte) { readWriteRead(t, in, readCSV) })
}

// FuzzFields puts fuzzed values into the fields of valid statements, escaped for each format, so
// that the fields' own checks, not the syntax, decide: whatever the readers accept must read, write
// and read again as in FuzzReadXML.
func FuzzFields(f *testing.F) {
	f.Add("Stephen Fox 卡消费结算", "2026101000000418", "0199d3a2c4d07e4b9a1c5d2e3f405103", "1520.00", "2026-10-10", "2026-10-11T02:00:00+08:00", "12", "5000000.00")
	f.Add("=1+2 & <b>", "'@x", "NOTPROVIDED", "0.01", "2026-10-09", "2026-10-11T02:00:00.5Z", "1", "0.00")
	f.Add("𠀀\u2028x", "\"q\",y", "JIC-20261009-3637c6c0-4222222222222", "92233720368547758.07", "2026-10-11", "9999-12-31T23:59:59.999999999-23:59", "999999999999999999", "92233720368547758.07")
	f.Add("a\x00b", "6228 4804 0256 4890 018", "6228480402564890018", "1e3", "2026-02-30", "2026-10-11T02:00:00", "-1", "-1.00")
	xmlDoc := []byte(readGolden(f, xmlA))
	csvDoc := []byte(readGolden(f, csvA))
	f.Fuzz(func(t *testing.T, info, entryRef, endToEnd, amount, booking, created, seq, opening string) {
		x := xmlDoc
		for _, r := range [][2]string{
			{"<AddtlNtryInf>Stephen Fox 卡消费结算<", "<AddtlNtryInf>" + xmlEscape(info) + "<"},
			{">2026101000000418<", ">" + xmlEscape(entryRef) + "<"},
			{">0199d3a2c4d07e4b9a1c5d2e3f405103<", ">" + xmlEscape(endToEnd) + "<"},
			{">1520.00<", ">" + xmlEscape(amount) + "<"},
			{"<Dt>2026-10-10</Dt>\n        </BookgDt>", "<Dt>" + xmlEscape(booking) + "</Dt>\n        </BookgDt>"},
			{"<CreDtTm>2026-10-11T02:00:00+08:00<", "<CreDtTm>" + xmlEscape(created) + "<"},
			{"<ElctrncSeqNb>12<", "<ElctrncSeqNb>" + xmlEscape(seq) + "<"},
			{">5000000.00<", ">" + xmlEscape(opening) + "<"},
		} {
			x = bytes.Replace(x, []byte(r[0]), []byte(r[1]), 1)
		}
		readWriteRead(t, x, readXML)
		c := csvDoc
		for _, r := range [][2]string{
			{",Stephen Fox 卡消费结算\n", "," + csvQuote(info) + "\n"},
			{",2026101000000418,", "," + csvQuote(entryRef) + ","},
			{",0199d3a2c4d07e4b9a1c5d2e3f405103,", "," + csvQuote(endToEnd) + ","},
			{",1520.00,", "," + csvQuote(amount) + ","},
			{"DBIT,2026-10-10,", "DBIT," + csvQuote(booking) + ","},
			{",2026-10-11T02:00:00+08:00,", "," + csvQuote(created) + ","},
			{",12,,", "," + csvQuote(seq) + ",,"},
			{",5000000.00,", "," + csvQuote(opening) + ","},
		} {
			c = bytes.Replace(c, []byte(r[0]), []byte(r[1]), 1)
		}
		readWriteRead(t, c, readCSV)
	})
}

func xmlEscape(s string) string {
	var b bytes.Buffer
	if err := xml.EscapeText(&b, []byte(s)); err != nil {
		return s
	}
	return b.String()
}

func csvQuote(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }
