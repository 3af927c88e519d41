package bankformat

import (
	"errors"
	"testing"
	"time"

	"github.com/joinincard/engine/events"
)

type direction string

func TestAmounts(t *testing.T) {
	for _, tc := range []struct {
		in      string
		fen     int64
		wantErr bool
	}{
		{"1234.56", 123456, false},
		{"0.00", 0, false},
		{"-1.00", 0, true},
		{"+1.00", 0, true},
		{"1.5", 0, true},
		{"", 0, true},
	} {
		fen, err := ParseAmount(tc.in)
		if (err != nil) != tc.wantErr || fen != tc.fen {
			t.Errorf("ParseAmount(%q) = %d, %v", tc.in, fen, err)
		}
		if err == nil && FormatAmount(fen) != tc.in {
			t.Errorf("FormatAmount(%d) = %q, want %q", fen, FormatAmount(fen), tc.in)
		}
	}
	if got := FormatAmount(-1200); got != "-12.00" {
		t.Errorf("FormatAmount(-1200) = %q", got)
	}
}

func TestSigned(t *testing.T) {
	for _, v := range []int64{-5, 0, 7} {
		abs, d := SignedParts[direction](v)
		back, err := SignedFrom(abs, d, "zero")
		if err != nil || back != v || abs < 0 {
			t.Errorf("%d: parts %d %s, back %d, %v", v, abs, d, back, err)
		}
	}
	if _, d := SignedParts[direction](0); d != Credit {
		t.Errorf("zero is %s", d)
	}
	if _, err := SignedFrom[direction](0, Debit, "a zero net is written CRDT"); err == nil || err.Error() != "a zero net is written CRDT" {
		t.Errorf("zero DBIT: %v", err)
	}
	for in, ok := range map[string]bool{"CRDT": true, "DBIT": true, "crdt": false, "": false} {
		if d, err := ParseDirection[direction](in); (err == nil) != ok || ok && string(d) != in {
			t.Errorf("ParseDirection(%q) = %q, %v", in, d, err)
		}
	}
}

func TestTimesAndDates(t *testing.T) {
	const example = "2026-10-08T18:30:00+08:00"
	for in, ok := range map[string]bool{
		example:                         true,
		"2026-10-08T10:30:00Z":          true,
		"2026-10-08T10:30:00.5Z":        true,
		"2026-10-08T10:30:00.50Z":       false, // a trailing zero
		"2026-10-08T10:30:00+00:00":     false, // UTC is Z
		"2026-10-08 10:30:00Z":          false,
		"0000-10-08T10:30:00Z":          false,
		"2026-10-08T10:30:00+08:00:30x": false,
	} {
		tm, err := ParseTime(in, example)
		if (err == nil) != ok {
			t.Errorf("ParseTime(%q): %v", in, err)
		}
		if ok && FormatTime(tm) != in {
			t.Errorf("FormatTime(ParseTime(%q)) = %q", in, FormatTime(tm))
		}
	}
	if _, err := ParseTime("x", example); err == nil || err.Error() != `not an RFC 3339 time such as "`+example+`" (UTC written Z, no trailing zeros in the fraction)` {
		t.Errorf("message: %v", err)
	}
	if _, err := ParseDate("2026-02-30", "2026-10-09"); err == nil || err.Error() != `not a date such as "2026-10-09"` {
		t.Errorf("message: %v", err)
	}
	if d, err := ParseDate("2026-10-09", "x"); err != nil || d != (events.Date{Year: 2026, Month: 10, Day: 9}) {
		t.Errorf("ParseDate: %v %v", d, err)
	}
	if err := CheckDate(events.Date{Year: 2026, Month: 2, Day: 29}); err == nil {
		t.Error("2026-02-29 is not a date")
	}
	if err := CheckDate(events.Date{Year: 10000, Month: 1, Day: 1}); err == nil {
		t.Error("year 10000 accepted")
	}
	if err := CheckTime(time.Time{}); err == nil {
		t.Error("zero time accepted")
	}
	if err := CheckTime(time.Date(2026, 1, 1, 0, 0, 0, 0, time.FixedZone("", 30))); err == nil {
		t.Error("an offset of 30 seconds accepted")
	}
}

func TestCounts(t *testing.T) {
	for _, tc := range []struct {
		in string
		n  int64
		ok bool
	}{
		{"0", 0, true},
		{"42", 42, true},
		{"999999999999999999", 999999999999999999, true},
		{"1000000000000000000", 0, false},
		{"042", 0, false},
		{"-1", 0, false},
		{"", 0, false},
	} {
		n, err := ParseCount(tc.in)
		if (err == nil) != tc.ok || n != tc.n {
			t.Errorf("ParseCount(%q) = %d, %v", tc.in, n, err)
		}
		if tc.ok && FormatCount(n) != tc.in {
			t.Errorf("FormatCount(%d) = %q", n, FormatCount(n))
		}
	}
}

func TestCheckIDAndText(t *testing.T) {
	for in, ok := range map[string]bool{"MSG-1": true, "": false, "a b": false, "é": false, "123456": true} {
		if err := CheckID(in, 6); (err == nil) != ok {
			t.Errorf("CheckID(%q): %v", in, err)
		}
	}
	card := errors.New("card")
	for _, tc := range []struct {
		in  string
		err bool
	}{
		{"", false},
		{"中文 text", false},
		{" lead", true},
		{"trail ", true},
		{"bell\a", true},
		{"\uFFFE", true},
		{"\xff", true},
		{"abcdefgh", true}, // more than 7 characters
	} {
		if err := CheckText(tc.in, 7, card); (err != nil) != tc.err {
			t.Errorf("CheckText(%q): %v", tc.in, err)
		}
	}
	if err := CheckText("card 4111 1111 1111 1111", 100, card); err != card {
		t.Errorf("a card number: %v", err)
	}
}
