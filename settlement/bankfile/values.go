package bankfile

import (
	"errors"
	"time"

	"github.com/joinincard/engine/events"
	"github.com/joinincard/engine/internal/bankformat"
)

// The examples a refused time or date quotes.
const (
	timeExample = "2026-10-08T18:30:00+08:00"
	dateExample = "2026-10-08"
)

// zeroDebit refuses a zero net written DBIT.
const zeroDebit = "a zero net is written CRDT"

func parseTime(s string) (time.Time, error) { return bankformat.ParseTime(s, timeExample) }

func parseDate(s string) (events.Date, error) { return bankformat.ParseDate(s, dateExample) }

func parseDirection(s string) (Direction, error) { return bankformat.ParseDirection[Direction](s) }

// checkText refuses what is not at most maxTextRunes characters of UTF-8 that XML can carry, with
// no control characters and no leading or trailing space, or may hold a card number in clear.
func checkText(s string, required bool) error {
	if s == "" && required {
		return errors.New("is empty")
	}
	return bankformat.CheckText(s, maxTextRunes, ErrCardNumber)
}

// CheckPartyID refuses an id that a file cannot name a bank or a party by: what is not 1 to 34
// bytes of printable ASCII without spaces (ISO 20022 Max34Text), or may be a card number in
// clear. The registry checks a party's id with it when the party registers, since a party whose
// id a file refuses would stop its bank's file, and with it the cycle's close, at every try.
func CheckPartyID(s string) error { return checkAccountID(s, maxAccountIDBytes) }

// CheckPartyName refuses a bank's or a party's name that a file cannot carry: empty, more than
// 140 characters (Max140Text), characters XML cannot carry, a leading or trailing space, or what
// may be a card number in clear. The registry checks a party's name with it when it registers.
func CheckPartyName(s string) error { return checkText(s, true) }
