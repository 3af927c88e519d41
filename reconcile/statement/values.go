package statement

import (
	"time"

	"github.com/joinincard/engine/events"
	"github.com/joinincard/engine/internal/bankformat"
)

// The examples a refused time or date quotes.
const (
	timeExample = "2026-10-10T02:00:00+08:00"
	dateExample = "2026-10-09"
)

// zeroDebit refuses a zero balance or net written DBIT.
const zeroDebit = "zero is written CRDT"

func parseTime(s string) (time.Time, error) { return bankformat.ParseTime(s, timeExample) }

func parseDate(s string) (events.Date, error) { return bankformat.ParseDate(s, dateExample) }

func parseDirection(s string) (Direction, error) { return bankformat.ParseDirection[Direction](s) }

// checkText refuses a text bankformat.CheckText refuses, with ErrCardNumber for a card number.
func checkText(s string, maxRunes int) error { return bankformat.CheckText(s, maxRunes, ErrCardNumber) }
