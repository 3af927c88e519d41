package statement

import (
	"errors"

	"github.com/joinincard/engine/internal/bankformat"
)

// The refusals a caller may need to tell apart. Each is wrapped in a *FieldError that says where.
var (
	// ErrControlCount: the number of entries disagrees with the number stated, or passes
	// MaxEntries.
	ErrControlCount = errors.New("entry count disagrees")
	// ErrControlSum: the sum of the entries' amounts disagrees with the sum stated, or overflows.
	ErrControlSum = errors.New("control sum disagrees")
	// ErrNetTotal: the entries' credits minus their debits disagree with the net stated.
	ErrNetTotal = errors.New("net total disagrees")
	// ErrClosingBalance: the closing balance is not the opening balance plus the net.
	ErrClosingBalance = errors.New("closing balance is not the opening balance plus the net")
	// ErrSequence: a statement's sequence number does not follow the bank's previous one.
	ErrSequence = errors.New("statement sequence does not follow")
	// ErrCardNumber: a text field holds what may be a card number in clear.
	ErrCardNumber = errors.New("looks like a card number in clear")
	// ErrTooLarge: an entry, a record or a statement read whole is over its bound.
	ErrTooLarge = errors.New("larger than the bound")
)

// FieldError says what is wrong and where: the record (file, header, entry, trailer), the line of
// the file (0 when writing), the entry's position counted from 1 (0 for other records), and the
// field: the Go field name when writing, the XML element path or CSV column when reading. It never
// repeats the field's value, which may be personal.
type FieldError = bankformat.FieldError

// Record names used in FieldError.Record.
const (
	recordFile    = "file"
	recordHeader  = "header"
	recordEntry   = "entry"
	recordTrailer = "trailer"
)
