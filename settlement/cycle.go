// Package settlement decides what banks settle: which ledger transfers belong to which daily
// cycle, each account's settlement item and the bank behind it, the postings that move cleared
// money to the banks' positions, each bank's net position, and the contents of the files banks
// receive. It is pure: the store streams the cycle's movements in and writes what it is handed.
package settlement

import (
	"fmt"
	"time"

	"github.com/joinincard/engine/cards"
	"github.com/joinincard/engine/events"
)

// Date is a settlement day (a cycle) or a value date: a civil date in Asia/Shanghai.
type Date = events.Date

// DefaultCutoffHour is when a cycle closes, in Asia/Shanghai: 23:00, after the evening peak of
// transit and shopping and before banks' overnight batch runs.
const DefaultCutoffHour = 23

// Calendar says which days banks settle on: the mainland calendar of working days.
type Calendar interface {
	// NextBusinessDay is the first business day after d, or an error naming a year the calendar
	// does not have.
	NextBusinessDay(d Date) (Date, error)
}

// Cycles places instants in settlement cycles. A cycle is named after the business day whose
// activity it holds, and lasts a day, ending at the cut-off hour in Asia/Shanghai: a cut-off at
// noon or later ends cycle D on D (23 ends it at D 23:00), one before noon on the morning after
// D (0 ends it at midnight between D and D+1, 2 at D+1 02:00), so that cycle D never holds the
// afternoon of D-1. A cycle holds the ledger transfers stamped after the cut-off of the cycle
// before and up to its own.
type Cycles struct {
	// CutoffHour is the hour of the day, Asia/Shanghai, at which a cycle ends (0-23); before
	// noon, on the day after the cycle's.
	CutoffHour int
	Calendar   Calendar
}

// Validate checks the cut-off hour.
func (c Cycles) Validate() error {
	if c.CutoffHour < 0 || c.CutoffHour > 23 {
		return fmt.Errorf("settlement cut-off hour %d: want 0 to 23 (0 is midnight at the end of the cycle's day)", c.CutoffHour)
	}
	if c.Calendar == nil {
		return fmt.Errorf("settlement cycles need a calendar")
	}
	return nil
}

// morningCutoff is the first hour whose cut-off falls on the cycle's own day: a cut-off before it
// closes the cycle on the next morning.
const morningCutoff = 12

// Cutoff is the instant cycle d ends, at the cut-off hour in Asia/Shanghai: on d, or on the day
// after d for an hour before noon. A transfer stamped exactly then belongs to d.
func (c Cycles) Cutoff(d Date) time.Time {
	day := d.Day
	if c.CutoffHour < morningCutoff {
		day++
	}
	return time.Date(d.Year, d.Month, day, c.CutoffHour, 0, 0, 0, cards.Shanghai)
}

// Start is the instant cycle d begins after: the cut-off of the cycle before.
func (c Cycles) Start(d Date) time.Time { return c.Cutoff(AddDays(d, -1)) }

// CycleOf is the cycle that an instant stamped at t belongs to: the first whose cut-off is not
// before t.
func (c Cycles) CycleOf(t time.Time) Date {
	local := t.In(cards.Shanghai)
	d := AddDays(Date{Year: local.Year(), Month: local.Month(), Day: local.Day()}, -1)
	for t.After(c.Cutoff(d)) {
		d = AddDays(d, 1)
	}
	return d
}

// ValueDate is the day cycle d's money moves between banks: the next business day (T+1).
func (c Cycles) ValueDate(d Date) (Date, error) {
	v, err := c.Calendar.NextBusinessDay(d)
	if err != nil {
		return Date{}, fmt.Errorf("value date of cycle %s: %w", d, err)
	}
	return v, nil
}

// FirstRefusedCycle is the first cycle from from on, within the next within days, whose value
// date the calendar cannot give (a year it has no file for): the day settlement stops closing
// unless that year's calendar is added. ok is false when every cycle of the window has one.
func (c Cycles) FirstRefusedCycle(from Date, within int) (d Date, ok bool) {
	for i := range within {
		d = AddDays(from, i)
		if _, err := c.ValueDate(d); err != nil {
			return d, true
		}
	}
	return Date{}, false
}

// AddDays is d moved by n days.
func AddDays(d Date, n int) Date {
	t := time.Date(d.Year, d.Month, d.Day+n, 0, 0, 0, 0, time.UTC)
	return Date{Year: t.Year(), Month: t.Month(), Day: t.Day()}
}

// ParseDate reads a date written YYYY-MM-DD.
func ParseDate(s string) (Date, error) {
	t, err := time.Parse(time.DateOnly, s)
	if err != nil || len(s) != len(time.DateOnly) {
		return Date{}, fmt.Errorf("date: want YYYY-MM-DD")
	}
	return Date{Year: t.Year(), Month: t.Month(), Day: t.Day()}, nil
}

// Before reports whether a is earlier than b.
func Before(a, b Date) bool {
	if a.Year != b.Year {
		return a.Year < b.Year
	}
	if a.Month != b.Month {
		return a.Month < b.Month
	}
	return a.Day < b.Day
}

// DateTime is d at midnight UTC, the form a DATE column takes.
func DateTime(d Date) time.Time { return time.Date(d.Year, d.Month, d.Day, 0, 0, 0, 0, time.UTC) }

// DateOf is the date of a DATE column's value.
func DateOf(t time.Time) Date { return Date{Year: t.Year(), Month: t.Month(), Day: t.Day()} }
