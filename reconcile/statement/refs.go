package statement

import "strings"

// notProvided is what ISO 20022 writes in EndToEndId when a payment carried no end-to-end
// reference. The XML writes it for an entry whose EndToEndRef is empty; the reader reads it back
// as empty.
const notProvided = "NOTPROVIDED"

// RefKind says what an entry's end-to-end reference names, by its shape alone: whether the item
// or file it names exists is for reconciliation to find.
type RefKind uint8

const (
	RefNone  RefKind = iota // the bank carried no reference
	RefItem                 // a settlement item id: 32 hex digits (settlement.FileItemID)
	RefFile                 // a settlement file's message id: "JIC-20260303-4b21dc38-000002" (settlement.FileMessageID)
	RefOther                // anything else: the bank's own, or one of the engine's ids mangled
)

func (k RefKind) String() string {
	switch k {
	case RefNone:
		return "none"
	case RefItem:
		return "item"
	case RefFile:
		return "file"
	}
	return "other"
}

// ClassifyRef says what ref names: RefItem for 32 hex digits (either case, as
// settlement.ParseFileItemID reads them), RefFile for a settlement file's message id, RefNone for
// an empty reference, RefOther for anything else.
func ClassifyRef(ref string) RefKind {
	switch {
	case ref == "":
		return RefNone
	case isItemID(ref):
		return RefItem
	case isFileMessageID(ref):
		return RefFile
	}
	return RefOther
}

// itemIDDigits: an item id is a UUID's 16 bytes in hex.
const itemIDDigits = 32

func isItemID(s string) bool {
	if len(s) != itemIDDigits {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !isHex(s[i]) {
			return false
		}
	}
	return true
}

// A settlement file's message id is "JIC", the cycle date as 8 digits, 8 lower-case hex digits of
// the bank id's hash, and the file's sequence in at least 6 digits, joined by "-".
const (
	fileIDPrefix       = "JIC"
	fileIDDateDigits   = 8
	fileIDHashDigits   = 8
	fileIDMinSeqDigits = 6
)

func isFileMessageID(s string) bool {
	parts := strings.Split(s, "-")
	if len(parts) != 4 || parts[0] != fileIDPrefix {
		return false
	}
	date, hash, seq := parts[1], parts[2], parts[3]
	if len(date) != fileIDDateDigits || len(hash) != fileIDHashDigits || len(seq) < fileIDMinSeqDigits {
		return false
	}
	if _, err := parseDate(date[:4] + "-" + date[4:6] + "-" + date[6:]); err != nil {
		return false
	}
	for i := 0; i < len(hash); i++ {
		if c := hash[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	for i := 0; i < len(seq); i++ {
		if seq[i] < '0' || seq[i] > '9' {
			return false
		}
	}
	return true
}

func isHex(c byte) bool { return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F' }
