package transit

import (
	"fmt"
	"time"

	"github.com/joinincard/engine/cards"
)

// Day is a travel day: a calendar date, counted in days since 1970-01-01. Its instants depend on
// the operator's start hour (Group.DayStart); the date alone is what the store keys charges by.
type Day int32

// DayOf returns the Day of a calendar date.
func DayOf(year int, month time.Month, day int) Day {
	return Day(time.Date(year, month, day, 0, 0, 0, 0, time.UTC).Unix() / secondsPerDay)
}

const secondsPerDay = 24 * 60 * 60

// DayOfTime returns the Day of t's calendar date, whatever t's location: the store reads DATE
// columns as midnight UTC.
func DayOfTime(t time.Time) Day { return DayOf(t.Date()) }

// ParseDay reads a date written YYYY-MM-DD.
func ParseDay(s string) (Day, error) {
	t, err := time.Parse(time.DateOnly, s)
	if err != nil || len(s) != len(time.DateOnly) {
		return 0, fmt.Errorf("not a date, want yyyy-mm-dd")
	}
	return DayOfTime(t), nil
}

// Date is the day's midnight in UTC: what the store writes to a DATE column.
func (d Day) Date() time.Time { return time.Unix(int64(d)*secondsPerDay, 0).UTC() }

func (d Day) String() string { return d.Date().Format(time.DateOnly) }

// Weekday is the day's day of the week.
func (d Day) Weekday() time.Weekday { return d.Date().Weekday() }

// WeekStart is the Monday of the day's week: weekly caps run Monday to Sunday, by travel day.
func (d Day) WeekStart() Day {
	return d - Day((int(d.Weekday())+6)%7)
}

// MonthStart is the first day of the day's calendar month: monthly caps and spend discounts run
// by calendar month, by travel day.
func (d Day) MonthStart() Day {
	y, m, _ := d.Date().Date()
	return DayOf(y, m, 1)
}

// MonthEnd is the last day of the day's calendar month.
func (d Day) MonthEnd() Day {
	y, m, _ := d.Date().Date()
	return DayOf(y, m+1, 1) - 1
}

// shanghai is the zone travel days are reckoned in: every operator's, checked on load.
var shanghai = cards.Shanghai
