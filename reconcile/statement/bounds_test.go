package statement_test

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"

	"github.com/joinincard/engine/reconcile/statement"
)

// largestTexts are the additional informations that take the most bytes at the 500-character
// bound: in XML an escaped '&' (5 bytes), in CSV a 4-byte character or a doubled quote.
var largestTexts = []string{strings.Repeat("&", 500), strings.Repeat("𠀀", 500), "'" + strings.Repeat(`"`, 499)}

// atBounds is a statement of one entry with every field at its bound, and the statement without it.
func atBounds(info string) (one, none *statement.Statement) {
	base := empty()
	base.Header.StatementID = strings.Repeat("&", 35)
	base.Header.BankID = strings.Repeat("&", 34)
	base.Header.Sequence = 999_999_999_999_999_999
	base.Header.OpeningBalance = -(1<<63 - 1) + 1
	none = withTotals(base.Header, nil)
	one = withTotals(base.Header, []statement.Entry{{
		Amount: 1<<63 - 1, Direction: statement.Debit, BookingDate: base.Header.From, ValueDate: date(9999, 12, 31),
		EntryRef: strings.Repeat("&", 35), EndToEndRef: strings.Repeat("<", 35), AdditionalInfo: info,
	}})
	one.Header.OpeningBalance = 0
	one.Header.ClosingBalance = -(1<<63 - 1)
	return one, none
}

// charRefs spells every character of the XML's additional information as a character reference,
// as a bank's XML library may: the longest spelling a reader must take.
func charRefs(doc []byte, info string) []byte {
	var refs strings.Builder
	for _, r := range info {
		refs.WriteString("&#x" + strconv.FormatInt(int64(r), 16) + ";")
	}
	var escaped bytes.Buffer
	for _, r := range info {
		switch r {
		case '&':
			escaped.WriteString("&amp;")
		default:
			escaped.WriteRune(r)
		}
	}
	return bytes.Replace(doc, escaped.Bytes(), []byte(refs.String()), 1)
}

// TestEntryFitsTheBounds: one entry with every field at its bound, in the writer's spelling and
// with its text as character references, stays under the bound per entry that the XML reader
// enforces, and reads back; so does a CSV record, and the header.
func TestEntryFitsTheBounds(t *testing.T) {
	for _, info := range largestTexts {
		one, none := atBounds(info)
		x, xNone := writeXML(t, one), writeXML(t, none)
		if len(xNone) > statement.MaxXMLHeadBytes {
			t.Errorf("a header at its bounds is %d bytes of XML, over the bound of %d", len(xNone), statement.MaxXMLHeadBytes)
		}
		refs := charRefs(x, info)
		if bytes.Equal(refs, x) {
			t.Fatal("no text spelt as character references")
		}
		for _, doc := range [][]byte{x, refs} {
			t.Logf("an entry at its bounds: %d bytes of XML", len(doc)-len(xNone))
			if entry := len(doc) - len(xNone); entry > statement.MaxXMLEntryBytes {
				t.Errorf("an entry at its bounds is %d bytes of XML, over the bound of %d", entry, statement.MaxXMLEntryBytes)
			}
			if s, err := readXML(doc); err != nil || !sameStatement(s, one) {
				t.Errorf("an entry at its bounds reads back as %+v, %v", s, err)
			}
		}
		c := writeCSV(t, one)
		t.Logf("an entry at its bounds: %d bytes of CSV; the header %d bytes of XML", len(c)-len(writeCSV(t, none)), len(xNone))
		if record := len(c) - len(writeCSV(t, none)); record > statement.MaxCSVRecordBytes {
			t.Errorf("an entry at its bounds is %d bytes of CSV, over the bound of %d", record, statement.MaxCSVRecordBytes)
		}
		if s, err := readCSV(c); err != nil || !sameStatement(s, one) {
			t.Errorf("an entry at its bounds reads back as %+v, %v", s, err)
		}
	}
}

// TestReadAllStopsAtItsBound: ReadAll refuses to hold more than MaxReadAllEntries entries, and
// says to stream them.
func TestReadAllStopsAtItsBound(t *testing.T) {
	var b bytes.Buffer
	b.WriteString("record,amount,direction,booking_date,value_date,entry_ref,end_to_end_ref,additional_info\n")
	b.WriteString("H,S-1,2026-10-11T02:00:00+08:00,X,1,,2026-10-10,2026-10-10,CNY,0.00,CRDT,1000.01,CRDT\n")
	for i := range statement.MaxReadAllEntries + 1 {
		fmt.Fprintf(&b, "E,0.01,CRDT,2026-10-10,2026-10-10,r%d,,\n", i)
	}
	fmt.Fprintf(&b, "T,%d,1000.01,1000.01,CRDT\n", statement.MaxReadAllEntries+1)
	_, err := statement.ReadAll(&b, statement.FormatCSV)
	if !errors.Is(err, statement.ErrTooLarge) || !strings.Contains(err.Error(), "entry 100001: larger than the bound: more than 100000 entries to read whole") {
		t.Errorf("ReadAll of MaxReadAllEntries+1 entries: %v", err)
	}
}
