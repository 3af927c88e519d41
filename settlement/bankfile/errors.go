package bankfile

import (
	"errors"

	"github.com/joinincard/engine/internal/bankformat"
)

// The refusals a caller may need to tell apart. Each is wrapped in a *FieldError that says where.
var (
	// ErrControlCount: the number of items disagrees with the count the header or trailer states.
	ErrControlCount = errors.New("control count disagrees")
	// ErrControlSum: the sum of the item amounts disagrees with the control sum stated, or
	// overflows.
	ErrControlSum = errors.New("control sum disagrees")
	// ErrNetTotal: the items' credits minus debits disagree with the net stated.
	ErrNetTotal = errors.New("net total disagrees")
	// ErrSequence: a file's sequence number does not follow the bank's previous one.
	ErrSequence = errors.New("file sequence does not follow")
	// ErrChecksum: a file's size or SHA-256 disagrees with its manifest.
	ErrChecksum = errors.New("checksum disagrees")
	// ErrNotInManifest: a file the manifest does not list.
	ErrNotInManifest = errors.New("file not in the manifest")
	// ErrCardNumber: a text field holds what may be a card number in clear.
	ErrCardNumber = errors.New("looks like a card number in clear")
	// ErrDuplicateItem: two items (or two item statuses) with one id.
	ErrDuplicateItem = errors.New("duplicate item id")
	// ErrAckStatus: an acknowledgement's group status disagrees with its item statuses.
	ErrAckStatus = errors.New("group status disagrees with the item statuses")
)

// FieldError says what is wrong and where: the record (header, item, trailer, ack, item status,
// manifest), the line of the file (0 when writing), the item's position counted from 1 (0 for
// other records), and the field: the Go field name when writing, the XML element path or CSV
// column when reading. It never repeats the field's value, which may be personal.
type FieldError = bankformat.FieldError

// Record names used in FieldError.Record.
const (
	recordFile       = "file"
	recordHeader     = "header"
	recordItem       = "item"
	recordTrailer    = "trailer"
	recordAck        = "ack"
	recordItemStatus = "item status"
	recordManifest   = "manifest"
)
