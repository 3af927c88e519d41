package statement

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/joinincard/engine/events"
)

// TestTotalsStopAtMaxEntries: the entry after the MaxEntries-th is refused, whatever the header
// states (a Reader counts every entry it yields through totals.add).
func TestTotalsStopAtMaxEntries(t *testing.T) {
	day := events.Date{Year: 2026, Month: time.October, Day: 10}
	h := Header{From: day, To: day}
	e := Entry{Amount: 1, Direction: Credit, BookingDate: day, ValueDate: day, EntryRef: "r"}
	tot := totals{count: MaxEntries - 1, sum: MaxEntries - 1}
	if err := tot.add(e, MaxEntries, &h); err != nil {
		t.Fatalf("entry %d: %v", MaxEntries, err)
	}
	err := tot.add(e, MaxEntries+1, &h)
	if !errors.Is(err, ErrControlCount) || !strings.Contains(err.Error(), "entry 5000001: entry count disagrees: more than 5000000 entries") {
		t.Errorf("entry %d: %v, want ErrControlCount", MaxEntries+1, err)
	}
}
