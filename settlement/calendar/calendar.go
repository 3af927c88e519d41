// Package calendar is the mainland business-day calendar, as data: one file per year listing the
// public holidays and the weekend days that are working days ("adjusted working days"), embedded
// from data/ (data/README.md is the format). Settlement uses it for value dates: a cycle's value
// date is the first business day after its cycle date.
//
// A calendar knows only the years it has files for. A date in any other year is refused with a
// *MissingYearError naming the year, never guessed, also when finding the next business day walks
// into a year the calendar does not have. The package is pure: no clock, no I/O but the fs.FS it
// is given.
package calendar

import (
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/joinincard/engine/events"
)

//go:embed data/*.txt
var embedded embed.FS

const (
	// maxWalkDays bounds the search for the next business day. The longest run of days off on
	// the mainland is the Spring Festival's nine; a month without a business day means the data
	// is wrong, and is refused rather than walked through.
	maxWalkDays = 31
	// maxFileBytes bounds one year's file: a year lists a few dozen lines.
	maxFileBytes = 64 << 10
	// maxYears bounds how many year files a directory may hold: a century of calendars.
	maxYears = 100
)

type dayKind uint8

const (
	dayOrdinary dayKind = iota // a business day on weekdays, a day off at weekends
	dayHoliday                 // a public holiday
	dayWorkday                 // an adjusted working day: a weekend day that is a business day
)

// Calendar is a set of years of holidays and adjusted working days. It is immutable once loaded
// and safe for concurrent use.
type Calendar struct {
	// years maps a year to its days, indexed by the day of the year (1 to 365 or 366).
	years map[int][]dayKind
}

// MissingYearError is the refusal of a date in a year the calendar has no data for.
type MissingYearError struct {
	Year int
}

func (e *MissingYearError) Error() string {
	return fmt.Sprintf("settlement calendar has no year %d", e.Year)
}

// DataError is the refusal of a year file: the file, the line (0 for the file as a whole) and why.
type DataError struct {
	File string
	Line int
	Err  error
}

func (e *DataError) Error() string {
	if e.Line == 0 {
		return fmt.Sprintf("settlement calendar %s: %v", e.File, e.Err)
	}
	return fmt.Sprintf("settlement calendar %s:%d: %v", e.File, e.Line, e.Err)
}

func (e *DataError) Unwrap() error { return e.Err }

// Load returns the calendar of the years embedded in the binary.
func Load() (*Calendar, error) {
	sub, err := fs.Sub(embedded, "data")
	if err != nil {
		return nil, fmt.Errorf("settlement calendar: %w", err)
	}
	return LoadDir(sub)
}

// LoadDir reads every file named YYYY.txt at the root of fsys, one year each. Other files (a
// README) are ignored, but a .txt file with another name is refused. Any refused file refuses the
// whole directory.
func LoadDir(fsys fs.FS) (*Calendar, error) {
	entries, err := fs.ReadDir(fsys, ".")
	if err != nil {
		return nil, fmt.Errorf("settlement calendar: %w", err)
	}
	c := &Calendar{years: make(map[int][]dayKind)}
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() || path.Ext(name) != ".txt" {
			continue
		}
		year, err := fileYear(name)
		if err != nil {
			return nil, &DataError{File: name, Err: err}
		}
		if len(c.years) == maxYears {
			return nil, fmt.Errorf("settlement calendar: more than %d year files", maxYears)
		}
		b, err := readBounded(fsys, name)
		if err != nil {
			return nil, &DataError{File: name, Err: err}
		}
		days, err := parseYear(name, year, string(b))
		if err != nil {
			return nil, err
		}
		c.years[year] = days
	}
	if len(c.years) == 0 {
		return nil, errors.New("settlement calendar: no year files (YYYY.txt)")
	}
	return c, nil
}

// With returns the calendar of c's years and other's, other's year replacing c's where both
// have one: the built-in calendar with a year added or corrected by an operator. Neither is
// changed.
func (c *Calendar) With(other *Calendar) *Calendar {
	out := &Calendar{years: make(map[int][]dayKind, len(c.years)+len(other.years))}
	for y, d := range c.years {
		out.years[y] = d
	}
	for y, d := range other.years {
		out.years[y] = d
	}
	return out
}

// Years returns the years the calendar has, in ascending order.
func (c *Calendar) Years() []int {
	years := make([]int, 0, len(c.years))
	for y := range c.years {
		years = append(years, y)
	}
	slices.Sort(years)
	return years
}

// IsBusinessDay reports whether d is a business day: a weekday that is not a public holiday, or
// an adjusted working day.
func (c *Calendar) IsBusinessDay(d events.Date) (bool, error) {
	t, err := toTime(d)
	if err != nil {
		return false, err
	}
	return c.isBusinessDay(t)
}

// NextBusinessDay returns the first business day strictly after d: the value date of a cycle
// whose cycle date is d.
func (c *Calendar) NextBusinessDay(d events.Date) (events.Date, error) {
	t, err := toTime(d)
	if err != nil {
		return events.Date{}, err
	}
	if _, ok := c.years[t.Year()]; !ok {
		return events.Date{}, &MissingYearError{Year: t.Year()}
	}
	for range maxWalkDays {
		t = t.AddDate(0, 0, 1)
		ok, err := c.isBusinessDay(t)
		if err != nil {
			return events.Date{}, err
		}
		if ok {
			return fromTime(t), nil
		}
	}
	return events.Date{}, fmt.Errorf("settlement calendar has no business day within %d days after %s", maxWalkDays, d)
}

func (c *Calendar) isBusinessDay(t time.Time) (bool, error) {
	days, ok := c.years[t.Year()]
	if !ok {
		return false, &MissingYearError{Year: t.Year()}
	}
	switch days[t.YearDay()] {
	case dayHoliday:
		return false, nil
	case dayWorkday:
		return true, nil
	}
	return !weekend(t), nil
}

// toTime returns d at midnight UTC, refusing a date that does not exist.
func toTime(d events.Date) (time.Time, error) {
	if d.Year < 1 || d.Year > 9999 {
		return time.Time{}, fmt.Errorf("date %s: year outside 1 to 9999", d)
	}
	t := time.Date(d.Year, d.Month, d.Day, 0, 0, 0, 0, time.UTC)
	if t.Month() != d.Month || t.Day() != d.Day {
		return time.Time{}, fmt.Errorf("date %s does not exist", d)
	}
	return t, nil
}

func fromTime(t time.Time) events.Date {
	return events.Date{Year: t.Year(), Month: t.Month(), Day: t.Day()}
}

func weekend(t time.Time) bool {
	return t.Weekday() == time.Saturday || t.Weekday() == time.Sunday
}

func fileYear(name string) (int, error) {
	stem := strings.TrimSuffix(name, ".txt")
	if len(stem) != 4 || strings.Trim(stem, "0123456789") != "" {
		return 0, errors.New("a year file is named YYYY.txt")
	}
	year, err := strconv.Atoi(stem)
	if err != nil || year < 1 {
		return 0, errors.New("a year file is named YYYY.txt, with a year from 0001")
	}
	return year, nil
}

func readBounded(fsys fs.FS, name string) ([]byte, error) {
	info, err := fs.Stat(fsys, name)
	if err != nil {
		return nil, err
	}
	if info.Size() > maxFileBytes {
		return nil, fmt.Errorf("%d bytes, more than %d", info.Size(), maxFileBytes)
	}
	return fs.ReadFile(fsys, name)
}

// parseYear reads one year file. Every line is checked before the year is returned.
func parseYear(file string, year int, text string) ([]dayKind, error) {
	first := time.Date(year, time.January, 1, 0, 0, 0, 0, time.UTC)
	days := make([]dayKind, int(first.AddDate(1, 0, 0).Sub(first).Hours()/24)+1)
	// listedOn remembers the line that listed each day, to name both lines of a duplicate.
	listedOn := make(map[int]int)
	holidays := 0
	for i, line := range strings.Split(text, "\n") {
		n := i + 1
		fail := func(format string, args ...any) error {
			return &DataError{File: file, Line: n, Err: fmt.Errorf(format, args...)}
		}
		if strings.ContainsRune(line, '\r') {
			return nil, fail("carriage return: lines end with \\n alone")
		}
		if strings.TrimSpace(line) == "" || strings.HasPrefix(line, "#") {
			continue
		}
		fields := strings.Fields(line)
		if len(fields) < 3 {
			return nil, fail("want a keyword, a date and a name")
		}
		keyword, when := fields[0], fields[1]
		var kind dayKind
		switch keyword {
		case "holiday":
			kind = dayHoliday
		case "workday":
			kind = dayWorkday
		default:
			return nil, fail("unknown keyword %q, want holiday or workday", keyword)
		}
		from, to, err := parseRange(when, kind == dayHoliday)
		if err != nil {
			return nil, fail("%v", err)
		}
		for _, t := range []time.Time{from, to} {
			if t.Year() != year {
				return nil, fail("%s is outside the file's year %d", fromTime(t), year)
			}
		}
		if to.Before(from) {
			return nil, fail("range ends before it starts")
		}
		for t := from; !t.After(to); t = t.AddDate(0, 0, 1) {
			yd := t.YearDay()
			if prev, ok := listedOn[yd]; ok {
				return nil, fail("%s is already listed on line %d", fromTime(t), prev)
			}
			if kind == dayWorkday && !weekend(t) {
				return nil, fail("%s is a %s, an adjusted working day is a Saturday or Sunday", fromTime(t), t.Weekday())
			}
			listedOn[yd] = n
			days[yd] = kind
			if kind == dayHoliday {
				holidays++
			}
		}
	}
	if holidays == 0 {
		return nil, &DataError{File: file, Err: errors.New("lists no holiday")}
	}
	return days, nil
}

// parseRange reads a date, or FIRST..LAST where ranges are allowed.
func parseRange(s string, rangeAllowed bool) (time.Time, time.Time, error) {
	a, b, isRange := strings.Cut(s, "..")
	if isRange && !rangeAllowed {
		return time.Time{}, time.Time{}, errors.New("a working day is one date, not a range")
	}
	from, err := parseDate(a)
	if err != nil || !isRange {
		return from, from, err
	}
	to, err := parseDate(b)
	return from, to, err
}

func parseDate(s string) (time.Time, error) {
	t, err := time.Parse(time.DateOnly, s)
	if err != nil || t.Format(time.DateOnly) != s {
		return time.Time{}, fmt.Errorf("%q is not a date, want YYYY-MM-DD", s)
	}
	return t, nil
}
