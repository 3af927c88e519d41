package calendar_test

import (
	"errors"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/joinincard/engine/events"
	"github.com/joinincard/engine/settlement/calendar"
)

func date(y int, m time.Month, d int) events.Date { return events.Date{Year: y, Month: m, Day: d} }

func load(t *testing.T) *calendar.Calendar {
	t.Helper()
	c, err := calendar.Load()
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	return c
}

// The 2026 arrangements as the State Council's notice of 2025-11-04 lists them, written here
// independently of data/2026.txt.
var (
	holidays2026 = [][2]events.Date{
		{date(2026, 1, 1), date(2026, 1, 3)},
		{date(2026, 2, 15), date(2026, 2, 23)},
		{date(2026, 4, 4), date(2026, 4, 6)},
		{date(2026, 5, 1), date(2026, 5, 5)},
		{date(2026, 6, 19), date(2026, 6, 21)},
		{date(2026, 9, 25), date(2026, 9, 27)},
		{date(2026, 10, 1), date(2026, 10, 7)},
	}
	workdays2026 = []events.Date{
		date(2026, 1, 4), date(2026, 2, 14), date(2026, 2, 28), date(2026, 5, 9), date(2026, 9, 20), date(2026, 10, 10),
	}
)

func TestEmbeddedCalendarHas2026(t *testing.T) {
	c := load(t)
	if got := c.Years(); len(got) != 1 || got[0] != 2026 {
		t.Errorf("Years() = %v, want [2026]", got)
	}
}

func TestEvery2026HolidayIsNoBusinessDay(t *testing.T) {
	c := load(t)
	for _, run := range holidays2026 {
		for d := run[0]; ; d = next(d) {
			ok, err := c.IsBusinessDay(d)
			if err != nil || ok {
				t.Errorf("IsBusinessDay(%s) = %v, %v; want false: a public holiday", d, ok, err)
			}
			if d == run[1] {
				break
			}
		}
	}
}

func TestEvery2026AdjustedWorkingDayIsABusinessDay(t *testing.T) {
	c := load(t)
	for _, d := range workdays2026 {
		wd := civil(d).Weekday()
		if wd != time.Saturday && wd != time.Sunday {
			t.Fatalf("test data: %s is a %s", d, wd)
		}
		ok, err := c.IsBusinessDay(d)
		if err != nil || !ok {
			t.Errorf("IsBusinessDay(%s, a %s) = %v, %v; want true: an adjusted working day", d, wd, ok, err)
		}
	}
}

// TestValueDatesAround2026Holidays: the first business day after each day around every holiday
// run, worked out by hand from the notice and the weekdays.
func TestValueDatesAround2026Holidays(t *testing.T) {
	c := load(t)
	for _, tc := range []struct {
		day, want events.Date
	}{
		{date(2026, 1, 1), date(2026, 1, 4)}, // Thursday, holiday -> Sunday 4th, a working day
		{date(2026, 1, 2), date(2026, 1, 4)},
		{date(2026, 1, 3), date(2026, 1, 4)},
		{date(2026, 1, 4), date(2026, 1, 5)},
		{date(2026, 2, 12), date(2026, 2, 13)},
		{date(2026, 2, 13), date(2026, 2, 14)}, // Friday -> Saturday 14th, a working day
		{date(2026, 2, 14), date(2026, 2, 24)}, // Spring Festival 15th to 23rd
		{date(2026, 2, 15), date(2026, 2, 24)},
		{date(2026, 2, 23), date(2026, 2, 24)},
		{date(2026, 2, 27), date(2026, 2, 28)}, // Friday -> Saturday 28th, a working day
		{date(2026, 2, 28), date(2026, 3, 2)},  // Sunday 1st March is off
		{date(2026, 4, 3), date(2026, 4, 7)},   // Qingming 4th to 6th
		{date(2026, 4, 6), date(2026, 4, 7)},
		{date(2026, 4, 30), date(2026, 5, 6)}, // Labour Day 1st to 5th
		{date(2026, 5, 3), date(2026, 5, 6)},
		{date(2026, 5, 8), date(2026, 5, 9)}, // Friday -> Saturday 9th, a working day
		{date(2026, 5, 9), date(2026, 5, 11)},
		{date(2026, 6, 18), date(2026, 6, 22)}, // Dragon Boat 19th to 21st
		{date(2026, 9, 18), date(2026, 9, 20)}, // Friday -> Sunday 20th, a working day
		{date(2026, 9, 19), date(2026, 9, 20)},
		{date(2026, 9, 20), date(2026, 9, 21)},
		{date(2026, 9, 24), date(2026, 9, 28)}, // Mid-Autumn 25th to 27th
		{date(2026, 9, 30), date(2026, 10, 8)}, // National Day 1st to 7th; Thursday 8th works
		{date(2026, 10, 1), date(2026, 10, 8)},
		{date(2026, 10, 2), date(2026, 10, 8)},
		{date(2026, 10, 3), date(2026, 10, 8)},
		{date(2026, 10, 4), date(2026, 10, 8)},
		{date(2026, 10, 5), date(2026, 10, 8)},
		{date(2026, 10, 6), date(2026, 10, 8)},
		{date(2026, 10, 7), date(2026, 10, 8)},
		{date(2026, 10, 8), date(2026, 10, 9)},
		{date(2026, 10, 9), date(2026, 10, 10)}, // Friday -> Saturday 10th, a working day
		{date(2026, 10, 10), date(2026, 10, 12)},
		{date(2026, 12, 30), date(2026, 12, 31)},
	} {
		got, err := c.NextBusinessDay(tc.day)
		if err != nil || got != tc.want {
			t.Errorf("NextBusinessDay(%s) = %s, %v; want %s", tc.day, got, err, tc.want)
		}
	}
}

// TestEvery2026DayAgreesWithTheNotice compares every day of 2026, and its value date, with a
// reference computed from the notice's lists in this file.
func TestEvery2026DayAgreesWithTheNotice(t *testing.T) {
	c := load(t)
	business := func(d events.Date) bool {
		for _, run := range holidays2026 {
			if !civil(d).Before(civil(run[0])) && !civil(d).After(civil(run[1])) {
				return false
			}
		}
		for _, w := range workdays2026 {
			if d == w {
				return true
			}
		}
		wd := civil(d).Weekday()
		return wd != time.Saturday && wd != time.Sunday
	}
	count := 0
	for d := date(2026, 1, 1); d.Year == 2026; d = next(d) {
		got, err := c.IsBusinessDay(d)
		if err != nil || got != business(d) {
			t.Errorf("IsBusinessDay(%s) = %v, %v; the notice says %v", d, got, err, business(d))
		}
		if got {
			count++
		}
		if d == date(2026, 12, 31) {
			break
		}
		want := next(d)
		for !business(want) {
			want = next(want)
		}
		if got, err := c.NextBusinessDay(d); err != nil || got != want {
			t.Errorf("NextBusinessDay(%s) = %s, %v; want %s", d, got, err, want)
		}
	}
	// 261 weekdays, 19 of them holidays, and 6 weekend working days.
	if count != 261-19+6 {
		t.Errorf("2026 has %d business days, want %d", count, 261-19+6)
	}
}

func TestYearEndNeedsTheNextYear(t *testing.T) {
	c := load(t)
	_, err := c.NextBusinessDay(date(2026, 12, 31))
	var missing *calendar.MissingYearError
	if !errors.As(err, &missing) || missing.Year != 2027 {
		t.Fatalf("NextBusinessDay(2026-12-31) error = %v, want the missing year 2027", err)
	}
	if err.Error() != "settlement calendar has no year 2027" {
		t.Errorf("error = %q", err)
	}
}

func TestDatesOutsideTheCalendarAreRefused(t *testing.T) {
	c := load(t)
	for _, d := range []events.Date{date(2025, 12, 31), date(2027, 1, 4)} {
		_, err := c.IsBusinessDay(d)
		var missing *calendar.MissingYearError
		if !errors.As(err, &missing) || missing.Year != d.Year {
			t.Errorf("IsBusinessDay(%s) error = %v, want the missing year %d", d, err, d.Year)
		}
		// Dec 31 2025's next business day lies in 2026, but the calendar does not know 2025.
		if _, err := c.NextBusinessDay(d); !errors.As(err, &missing) || missing.Year != d.Year {
			t.Errorf("NextBusinessDay(%s) error = %v, want the missing year %d", d, err, d.Year)
		}
	}
	for _, d := range []events.Date{date(2026, 2, 29), date(2026, 13, 1), date(2026, 4, 0), {}} {
		if _, err := c.IsBusinessDay(d); err == nil {
			t.Errorf("IsBusinessDay(%s) accepted a date that does not exist", d)
		}
		if _, err := c.NextBusinessDay(d); err == nil {
			t.Errorf("NextBusinessDay(%s) accepted a date that does not exist", d)
		}
	}
}

func TestLoadDirReadsSeveralYears(t *testing.T) {
	c, err := calendar.LoadDir(fstest.MapFS{
		"2026.txt":  {Data: []byte("holiday 2026-12-31 test day\n")},
		"2027.txt":  {Data: []byte("# a comment\n\nholiday 2027-01-01 元旦\nworkday 2027-01-02 元旦 (Saturday)\n")},
		"README.md": {Data: []byte("not a year")},
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Years(); len(got) != 2 || got[0] != 2026 || got[1] != 2027 {
		t.Errorf("Years() = %v", got)
	}
	// Thursday 31st and Friday 1st are holidays, Saturday 2nd works.
	if got, err := c.NextBusinessDay(date(2026, 12, 30)); err != nil || got != date(2027, 1, 2) {
		t.Errorf("NextBusinessDay(2026-12-30) = %s, %v; want 2027-01-02", got, err)
	}
}

// An operator's directory adds a year to the built-in calendar, or replaces one, and leaves the
// other built-in years as they are.
func TestWithAddsAndReplacesYears(t *testing.T) {
	builtIn := load(t)
	added, err := calendar.LoadDir(fstest.MapFS{
		"2027.txt": {Data: []byte("holiday 2027-01-01 元旦 New Year's Day\n")},
	})
	if err != nil {
		t.Fatal(err)
	}
	c := builtIn.With(added)
	if got := c.Years(); len(got) != 2 || got[0] != 2026 || got[1] != 2027 {
		t.Errorf("Years() = %v, want 2026 and 2027", got)
	}
	// Thursday 31 December: Friday 1 January is a holiday, Monday 4 January the next business day.
	if got, err := c.NextBusinessDay(date(2026, 12, 31)); err != nil || got != date(2027, 1, 4) {
		t.Errorf("NextBusinessDay(2026-12-31) = %s, %v; want 2027-01-04", got, err)
	}
	// The built-in 2026 is still there: Friday 2 October is in the National Day holiday.
	if ok, err := c.IsBusinessDay(date(2026, 10, 2)); err != nil || ok {
		t.Errorf("IsBusinessDay(2026-10-02) = %v, %v; want a holiday", ok, err)
	}
	if got := builtIn.Years(); len(got) != 1 || got[0] != 2026 {
		t.Errorf("the built-in calendar changed: %v", got)
	}
	replaced := builtIn.With(mustLoadDir(t, fstest.MapFS{"2026.txt": {Data: []byte("holiday 2026-03-02 test day\n")}}))
	if ok, err := replaced.IsBusinessDay(date(2026, 10, 2)); err != nil || !ok {
		t.Errorf("a replaced 2026 still has the built-in holidays: %v, %v", ok, err)
	}
	if ok, err := replaced.IsBusinessDay(date(2026, 3, 2)); err != nil || ok {
		t.Errorf("a replaced 2026 lacks its own holiday: %v, %v", ok, err)
	}
}

func mustLoadDir(t *testing.T, fsys fstest.MapFS) *calendar.Calendar {
	t.Helper()
	c, err := calendar.LoadDir(fsys)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestLoadDirRefusesBadData(t *testing.T) {
	for _, tc := range []struct {
		name, file, text, want string
	}{
		{"holiday also a working day", "2026.txt", "holiday 2026-01-01..2026-01-03 元旦\nworkday 2026-01-03 元旦\n",
			"2026.txt:2: 2026-01-03 is already listed on line 1"},
		{"working day also a holiday", "2026.txt", "workday 2026-01-04 元旦\nholiday 2026-01-01..2026-01-05 元旦\n",
			"2026.txt:2: 2026-01-04 is already listed on line 1"},
		{"holiday twice", "2026.txt", "holiday 2026-10-01..2026-10-07 国庆节\n\nholiday 2026-10-07 again\n",
			"2026.txt:3: 2026-10-07 is already listed on line 1"},
		{"working day twice", "2026.txt", "holiday 2026-10-01 x\nworkday 2026-10-10 x\nworkday 2026-10-10 x\n",
			"2026.txt:3: 2026-10-10 is already listed on line 2"},
		{"date in another year", "2026.txt", "holiday 2027-01-01 元旦\n",
			"2026.txt:1: 2027-01-01 is outside the file's year 2026"},
		{"range into another year", "2026.txt", "holiday 2026-12-31..2027-01-01 元旦\n",
			"2026.txt:1: 2027-01-01 is outside the file's year 2026"},
		{"unparsable date", "2026.txt", "holiday 2026-02-30 x\n",
			`2026.txt:1: "2026-02-30" is not a date`},
		{"short date", "2026.txt", "holiday 2026-2-3 x\n",
			`2026.txt:1: "2026-2-3" is not a date`},
		{"range reversed", "2026.txt", "holiday 2026-01-03..2026-01-01 x\n",
			"2026.txt:1: range ends before it starts"},
		{"working day on a weekday", "2026.txt", "holiday 2026-01-01 x\nworkday 2026-01-05 x\n",
			"2026.txt:2: 2026-01-05 is a Monday, an adjusted working day is a Saturday or Sunday"},
		{"working day range", "2026.txt", "workday 2026-01-03..2026-01-04 x\n",
			"2026.txt:1: a working day is one date, not a range"},
		{"unknown keyword", "2026.txt", "holliday 2026-01-01 x\n",
			`2026.txt:1: unknown keyword "holliday"`},
		{"no name", "2026.txt", "holiday 2026-01-01\n",
			"2026.txt:1: want a keyword, a date and a name"},
		{"carriage return", "2026.txt", "holiday 2026-01-01 x\r\n",
			"2026.txt:1: carriage return"},
		{"no holiday", "2026.txt", "# nothing yet\n",
			"2026.txt: lists no holiday"},
		{"file name", "y2026.txt", "holiday 2026-01-01 x\n",
			"y2026.txt: a year file is named YYYY.txt"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := calendar.LoadDir(fstest.MapFS{tc.file: {Data: []byte(tc.text)}})
			var de *calendar.DataError
			if !errors.As(err, &de) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("LoadDir error = %v, want a DataError containing %q", err, tc.want)
			}
		})
	}
	if _, err := calendar.LoadDir(fstest.MapFS{"README.md": {Data: []byte("x")}}); err == nil {
		t.Error("LoadDir accepted a directory without years")
	}
}

func civil(d events.Date) time.Time { return time.Date(d.Year, d.Month, d.Day, 0, 0, 0, 0, time.UTC) }

func next(d events.Date) events.Date {
	t := civil(d).AddDate(0, 0, 1)
	return events.Date{Year: t.Year(), Month: t.Month(), Day: t.Day()}
}
