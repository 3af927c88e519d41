package settlement

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
	"time"
	"unicode"

	"github.com/joinincard/engine/ledger"
	"github.com/joinincard/engine/settlement/bankfile"
)

// FileMessageID is the message id of bank's file of cycle d, numbered seq: unique across banks and
// cycles, and within ISO 20022's 35 characters whatever the bank's id ("JIC-20260302-1a2b3c4d-000017").
func FileMessageID(bank string, d Date, seq int64) string {
	h := sha256.Sum256([]byte(bank))
	return fmt.Sprintf("JIC-%04d%02d%02d-%s-%06d", d.Year, int(d.Month), d.Day, hex.EncodeToString(h[:4]), seq)
}

// FileName is the name a file is delivered under: its message id and its format.
func FileName(h bankfile.Header, f bankfile.Format) string { return h.MessageID + "." + string(f) }

// FileItemID is how a file names an item: its id's 32 hex digits (ISO's EndToEndId takes 35).
func FileItemID(id ledger.ID) string { return hex.EncodeToString(id[:]) }

// ParseFileItemID reads an item id as a file writes it.
func ParseFileItemID(s string) (ledger.ID, error) {
	var id ledger.ID
	if len(s) != 2*len(id) {
		return id, fmt.Errorf("item id: want %d hex digits", 2*len(id))
	}
	if _, err := hex.Decode(id[:], []byte(s)); err != nil {
		return id, fmt.Errorf("item id: want %d hex digits", 2*len(id))
	}
	return id, nil
}

// FileItem is item it as its bank's file shows it: the amount unsigned with the direction from
// the bank's point of view, the party as a masked identifier, and for an item offered again, the
// item it offers again as its reference.
func FileItem(it Item) (bankfile.Item, error) {
	k, err := bankfile.ParseKind(string(it.Kind))
	if err != nil {
		return bankfile.Item{}, fmt.Errorf("item %s: kind %q: %w", it.ID, it.Kind, err)
	}
	fi := bankfile.Item{ID: FileItemID(it.ID), Kind: k, Party: FileParty(it.Party), PartyName: fileText(it.PartyName), Amount: it.Amount,
		Direction: bankfile.Credit, Entries: it.Entries}
	if it.Amount < 0 {
		fi.Amount, fi.Direction = -it.Amount, bankfile.Debit
	}
	if !it.Reoffers.IsZero() {
		fi.Reference = FileItemID(it.Reoffers)
	}
	return fi, nil
}

// filePartyPrefix starts the name a file gives a party whose own id it cannot carry.
const filePartyPrefix = "P-"

// filePartyHashBytes: 12 bytes of SHA-256, 24 hex digits, name a party in a file apart from the
// others of a city's registry (about 2^48 parties before two are likely to share one), within
// Max34Text with the prefix.
const filePartyHashBytes = 12

// FileParty is how a file names a party: its id, or, for an id a file cannot carry (an insurance
// fund's city written with a space or in Chinese, more than 34 bytes, what may read as a card
// number), "P-" and the first 12 bytes of the id's SHA-256 in hex. The same id always gives the
// same name, so a file written again is the same bytes, and the close never fails on a party's
// id: the item's own id is what acknowledgements and statements name.
func FileParty(id string) string {
	if bankfile.CheckPartyID(id) == nil {
		return id
	}
	h := sha256.Sum256([]byte(id))
	return filePartyPrefix + hex.EncodeToString(h[:filePartyHashBytes])
}

// fileText is a party's name as a file carries it: as registered, cut to the file's 140
// characters if it is longer, or left out if a file still cannot carry it.
func fileText(name string) string {
	if name == "" || bankfile.CheckPartyName(name) == nil {
		return name
	}
	if r := []rune(name); len(r) > bankfile.MaxTextRunes {
		cut := strings.TrimRightFunc(string(r[:bankfile.MaxTextRunes]), unicode.IsSpace)
		if bankfile.CheckPartyName(cut) == nil {
			return cut
		}
	}
	return ""
}

// FileTotals are a file's control totals: its items, the sum of their amounts and its net.
type FileTotals struct {
	Entries    int64
	ControlSum int64
	Net        int64
}

// FileHeader is the header of bank's file of cycle d numbered seq, created at the instant the
// cycle's close began, so that the file written again is the same bytes.
func FileHeader(bank, bankName string, d, value Date, seq int64, created time.Time, t FileTotals) bankfile.Header {
	return bankfile.Header{MessageID: FileMessageID(bank, d, seq), CreatedAt: created.UTC(), BankID: bank, BankName: bankName,
		CycleDate: d, ValueDate: value, Sequence: seq, Currency: bankfile.CurrencyCNY,
		NumberOfEntries: t.Entries, ControlSum: t.ControlSum, Net: t.Net}
}
