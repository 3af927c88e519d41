package bankformat

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

var errTestGuard = errors.New("guard refused")

func testGuard(err error) (int, bool) { return 7, errors.Is(err, errTestGuard) }

// readCSV reads the columns, a header H, items I and a trailer T.
func readCSV(in string, cutShortEntry bool) (*CSVIn, []int64) {
	c := NewCSVIn(strings.NewReader(in), CSVErrors{FileRecord: "file", Guard: testGuard, CutShortEntry: cutShortEntry})
	c.Columns([]string{"type", "a", "b"})
	c.Record = "header"
	rec := c.Read("H", 3)
	c.Checked(rec, 1, "id", func(s string) error { return CheckID(s, 8) })
	var amounts []int64
	for c.Err == nil {
		if rec = c.Read("", 0); c.Err != nil || rec[0] == "T" {
			break
		}
		c.Entry++
		c.Record = "item"
		amounts = append(amounts, c.Amount(rec, 1, "amount"))
	}
	c.Entry = 0
	c.Record = "trailer"
	c.Count(rec, 1, "count")
	c.End()
	return c, amounts
}

func TestCSVIn(t *testing.T) {
	c, amounts := readCSV("type,a,b\nH,'=x,\nI,1.00,\nI,2.50,\nT,2,\n", false)
	if c.Err != nil || fmt.Sprint(amounts) != "[100 250]" {
		t.Fatalf("read %v, %v", amounts, c.Err)
	}
	for _, tc := range []struct {
		in            string
		cutShortEntry bool
		want          string
	}{
		{"type,a\n", false, "line 1: file: the first row must be the column header type,a,b"},
		{"type,a,b\nX,1,2\n", false, "line 2: header: record: want the record type H"},
		{"type,a,b\nH,1\n", false, "line 2: header: has 2 fields, want 3"},
		{"type,a,b\nH,=x,\n", false, "line 2: header: id: a value starting with = + - @ tab or carriage return must start with '"},
		{"type,a,b\nH,a b,\n", false, "line 2: header: id: must be printable ASCII without spaces"},
		{"type,a,b\nH,x,\nI,1.5,\n", false, "line 3: item 1: amount: not an amount such as \"1234.56\": "},
		{"type,a,b\nH,x,\nI,1.00,\n", false, "line 4: item: the file ends before its trailer: cut short"},
		{"type,a,b\nH,x,\nI,1.00,\n", true, "line 4: item 1: the file ends before its trailer: cut short"},
		{"type,a,b\nH,x,\nT,0,\nT,0,\n", false, "line 4: file: records after the trailer"},
		{"type,a,b\nH,x\"y,\n", false, "line 2: file: not well-formed CSV: bare \" in non-quoted-field"},
	} {
		c, _ := readCSV(tc.in, tc.cutShortEntry)
		var fe *FieldError
		if !errors.As(c.Err, &fe) || !strings.HasPrefix(c.Err.Error(), tc.want) {
			t.Errorf("%q:\n got %v\nwant %s", tc.in, c.Err, tc.want)
		}
	}
	c = NewCSVIn(&failingReader{"type,a,b\n", errTestGuard}, CSVErrors{FileRecord: "file", Guard: testGuard})
	c.Columns([]string{"type", "a", "b"})
	c.Read("H", 3)
	if !errors.Is(c.Err, errTestGuard) || c.Err.Error() != "line 7: file: guard refused" {
		t.Errorf("a guard's refusal: %v", c.Err)
	}
}

func TestCSVInRefield(t *testing.T) {
	c := NewCSVIn(strings.NewReader("H,x\n"), CSVErrors{FileRecord: "file", Guard: testGuard})
	c.Record = "header"
	c.Read("H", 2)
	sentinel := errors.New("net total disagrees")
	c.Refield(&FieldError{Record: "header", Field: "Net", Err: sentinel}, map[string]string{"Net": "net"})
	if !errors.Is(c.Err, sentinel) || c.Err.Error() != "line 1: header: net: net total disagrees" {
		t.Errorf("got %v", c.Err)
	}
}

func TestNeutraliseCSV(t *testing.T) {
	for _, s := range []string{"", "plain", "=SUM(A1)", "+86", "-", "@x", "\tx", "'", "''x"} {
		n := NeutraliseCSV(s)
		if back, err := UnneutraliseCSV(n); err != nil || back != s {
			t.Errorf("%q: neutralised %q, back %q, %v", s, n, back, err)
		}
	}
	for _, s := range []string{"=x", "'x", "'"} {
		if _, err := UnneutraliseCSV(s); err == nil {
			t.Errorf("%q is not what NeutraliseCSV writes", s)
		}
	}
}
