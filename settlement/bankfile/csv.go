package bankfile

import (
	"bufio"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"iter"
	"time"

	"github.com/joinincard/engine/events"
	"github.com/joinincard/engine/internal/bankformat"
	"github.com/joinincard/engine/ledger"
)

const (
	// maxCSVRecordBytes bounds one CSV record: an item with every field at its bound, every text
	// quoted and every quote doubled, is under 2 KiB.
	maxCSVRecordBytes = 2 << 10
	// maxCSVBytes bounds a settlement or acknowledgement CSV file the readers read.
	maxCSVBytes = (MaxItems + 3) * maxCSVRecordBytes
)

// The first field of every record after the column header names the record type.
const (
	csvHeader  = "H"
	csvItem    = "I"
	csvTrailer = "T"
)

// csvColumns is a settlement CSV's first row. It names the item records' columns; the header and
// trailer records have their own (docs/settlement-files.md).
var csvColumns = []string{"record", "item_id", "kind", "party", "party_name", "amount", "direction", "reference", "entries"}

var (
	csvHeaderColumns  = []string{"record", "message_id", "created_at", "bank_id", "bank_name", "cycle_date", "value_date", "sequence", "currency", "copy"}
	csvTrailerColumns = []string{"record", "entries", "control_sum", "net_amount", "net_direction"}
)

// csvHeaderFields and csvItemFields name the column of each Go field, for errors found on a record
// as a whole.
var (
	csvHeaderFields = map[string]string{
		"MessageID": "message_id", "CreatedAt": "created_at", "BankID": "bank_id", "BankName": "bank_name",
		"CycleDate": "cycle_date", "ValueDate": "value_date", "Sequence": "sequence", "Currency": "currency",
		"NumberOfEntries": "entries", "ControlSum": "control_sum", "Net": "net_amount",
	}
	csvItemFields  = map[string]string{"ID": "item_id", "Amount": "amount"}
	csvTotalFields = [3]string{"entries", "control_sum", "net_amount"}
)

// WriteCSV writes a settlement file as CSV (docs/settlement-files.md): the column header, a
// header record, one record per item, and a trailer with the count, control sum and net. It
// streams and checks as WriteXML does, and writes the same content. Text fields that a
// spreadsheet would take for a formula (starting with = + - @, a tab or a carriage return) are
// written with a leading ', and so are those starting with ' itself; ReadCSV removes it.
func WriteCSV(w io.Writer, h Header, items iter.Seq[Item]) error {
	if err := h.validate(); err != nil {
		return err
	}
	ew := bankformat.NewErrWriter(w)
	cw := csv.NewWriter(bufio.NewWriterSize(ew, writeBufferBytes))
	copyMark := ""
	if h.Copy {
		copyMark = copyDuplicate
	}
	cw.Write(csvColumns)
	cw.Write([]string{csvHeader, NeutraliseCSV(h.MessageID), bankformat.FormatTime(h.CreatedAt), NeutraliseCSV(h.BankID),
		NeutraliseCSV(h.BankName), h.CycleDate.String(), h.ValueDate.String(), bankformat.FormatCount(h.Sequence),
		string(h.Currency), copyMark})
	var t totals
	entry := 0
	record := make([]string, len(csvColumns))
	for it := range items {
		entry++
		if err := t.add(it, entry); err != nil {
			return err
		}
		record = append(record[:0], csvItem, NeutraliseCSV(it.ID), it.Kind.String(), NeutraliseCSV(it.Party),
			NeutraliseCSV(it.PartyName), bankformat.FormatAmount(it.Amount), string(it.Direction), NeutraliseCSV(it.Reference),
			bankformat.FormatCount(it.Entries))
		cw.Write(record)
		if ew.Err() != nil {
			return ew.Err()
		}
	}
	if err := t.check(h, recordHeader, [3]int{}, goFields); err != nil {
		return err
	}
	netAbs, netDir := bankformat.SignedParts[Direction](h.Net)
	cw.Write([]string{csvTrailer, bankformat.FormatCount(h.NumberOfEntries), bankformat.FormatAmount(h.ControlSum),
		bankformat.FormatAmount(netAbs), string(netDir)})
	cw.Flush()
	if err := cw.Error(); err != nil {
		return err
	}
	return ew.Err()
}

// ReadCSV reads a settlement CSV WriteCSV wrote, strictly: the column header, one header record,
// the item records and the trailer, each with its exact columns, "\n" line ends, and nothing
// after the trailer. It recomputes the trailer's totals from the items and refuses a file that
// disagrees, naming each total that does. A file cut short has no trailer and is refused.
func ReadCSV(r io.Reader) (*File, error) {
	c := newCSVIn(r, maxCSVBytes)
	c.Columns(csvColumns)
	f := &File{}
	h := &f.Header
	c.Record = recordHeader
	if rec := c.Read(csvHeader, len(csvHeaderColumns)); c.Err == nil {
		h.MessageID = c.id(rec, 1, "message_id", maxIDBytes)
		h.CreatedAt = c.timestamp(rec, 2, "created_at")
		h.BankID = c.accountID(rec, 3, "bank_id", maxAccountIDBytes)
		h.BankName = c.text(rec, 4, "bank_name", true)
		h.CycleDate = c.date(rec, 5, "cycle_date")
		h.ValueDate = c.date(rec, 6, "value_date")
		h.Sequence = c.Count(rec, 7, "sequence")
		h.Currency = ledger.Currency(rec[8])
		switch rec[9] {
		case copyDuplicate:
			h.Copy = true
		case "":
		default:
			c.Fail(9, "copy", errors.New("want DUPL or empty"))
		}
		// The totals are in the trailer: checked there, zero until then.
		if err := h.validate(); err != nil {
			c.Refield(err, csvHeaderFields)
		}
	}
	var t totals
	for c.Err == nil {
		rec := c.Read("", 0)
		if c.Err != nil {
			break
		}
		if rec[0] == csvTrailer {
			c.trailer(rec, h)
			break
		}
		c.Entry++
		c.Record = recordItem
		if rec[0] != csvItem {
			c.Fail(0, "record", errors.New("want an item (I) or the trailer (T)"))
			break
		}
		if len(rec) != len(csvColumns) {
			c.Fail(0, "", fmt.Errorf("an item record has %d fields, want %d", len(rec), len(csvColumns)))
			break
		}
		it := Item{
			ID:        c.id(rec, 1, "item_id", maxIDBytes),
			Kind:      c.kind(rec, 2),
			Party:     c.accountID(rec, 3, "party", maxAccountIDBytes),
			PartyName: c.text(rec, 4, "party_name", false),
			Amount:    c.Amount(rec, 5, "amount"),
			Direction: c.direction(rec, 6, "direction"),
			Reference: c.text(rec, 7, "reference", false),
			Entries:   c.Count(rec, 8, "entries"),
		}
		if c.Err == nil {
			if err := t.add(it, c.Entry); err != nil {
				c.Refield(err, csvItemFields)
			}
		}
		f.Items = append(f.Items, it)
	}
	if c.Err != nil {
		return nil, c.Err
	}
	trailerLine := c.Line
	c.End()
	if c.Err != nil {
		return nil, c.Err
	}
	if err := t.check(*h, recordTrailer, [3]int{trailerLine, trailerLine, trailerLine}, csvTotalFields); err != nil {
		return nil, err
	}
	return f, nil
}

// trailer reads the T record into h's totals, and checks the header as a whole.
func (c *csvIn) trailer(rec []string, h *Header) {
	c.Entry = 0
	c.Record = recordTrailer
	if len(rec) != len(csvTrailerColumns) {
		c.Fail(0, "", fmt.Errorf("the trailer has %d fields, want %d", len(rec), len(csvTrailerColumns)))
		return
	}
	h.NumberOfEntries = c.Count(rec, 1, "entries")
	h.ControlSum = c.Amount(rec, 2, "control_sum")
	netAbs := c.Amount(rec, 3, "net_amount")
	netDir := c.direction(rec, 4, "net_direction")
	if c.Err != nil {
		return
	}
	var err error
	if h.Net, err = bankformat.SignedFrom(netAbs, netDir, zeroDebit); err != nil {
		c.Fail(4, "net_direction", err)
		return
	}
	if err := h.validate(); err != nil {
		c.Refield(err, csvHeaderFields)
	}
}

// NeutraliseCSV writes a CSV text field so that no spreadsheet takes it for a formula: a value
// starting with = + - @, a tab or a carriage return gets a leading ', and so does one starting
// with ' itself. Every CSV the engine exchanges with banks follows this rule.
func NeutraliseCSV(s string) string { return bankformat.NeutraliseCSV(s) }

// UnneutraliseCSV undoes NeutraliseCSV exactly, and refuses what NeutraliseCSV never writes: a
// formula without its ', or a ' before a value that needs none. The errors never repeat s.
func UnneutraliseCSV(s string) (string, error) { return bankformat.UnneutraliseCSV(s) }

// csvIn is the strict CSV reader of bankformat, reading at most a bound of bytes.
type csvIn struct {
	*bankformat.CSVIn
}

func newCSVIn(r io.Reader, maxBytes int64) *csvIn {
	g := &crGuard{r: newLimitReader(r, maxBytes), line: 1}
	guard := func(err error) (int, bool) {
		switch {
		case errors.Is(err, errCarriageReturn):
			return g.line, true
		case errors.Is(err, errTooLarge):
			return 0, true
		}
		return 0, false
	}
	return &csvIn{bankformat.NewCSVIn(g, bankformat.CSVErrors{FileRecord: recordFile, Guard: guard})}
}

// Typed fields of settlement files and acknowledgements.

// raw undoes the neutralisation of text field rec[i], checking nothing else.
func (c *csvIn) raw(rec []string, i int, column string) string {
	return c.Checked(rec, i, column, func(string) error { return nil })
}

func (c *csvIn) id(rec []string, i int, column string, max int) string {
	return c.Checked(rec, i, column, func(s string) error { return bankformat.CheckID(s, max) })
}

func (c *csvIn) accountID(rec []string, i int, column string, max int) string {
	return c.Checked(rec, i, column, func(s string) error { return checkAccountID(s, max) })
}

func (c *csvIn) text(rec []string, i int, column string, required bool) string {
	return c.Checked(rec, i, column, func(s string) error { return checkText(s, required) })
}

func (c *csvIn) direction(rec []string, i int, column string) (d Direction) {
	c.Parse(rec, i, column, func(s string) (err error) { d, err = parseDirection(s); return err })
	return d
}

func (c *csvIn) kind(rec []string, i int) (k Kind) {
	c.Parse(rec, i, "kind", func(s string) (err error) { k, err = ParseKind(s); return err })
	return k
}

func (c *csvIn) date(rec []string, i int, column string) (d events.Date) {
	c.Parse(rec, i, column, func(s string) (err error) { d, err = parseDate(s); return err })
	return d
}

func (c *csvIn) timestamp(rec []string, i int, column string) (t time.Time) {
	c.Parse(rec, i, column, func(s string) (err error) { t, err = parseTime(s); return err })
	return t
}

// errCarriageReturn: CSV files end lines with "\n" alone, and no field holds a carriage return.
var errCarriageReturn = errors.New("carriage return: lines end with \\n alone")

// crGuard passes r through, failing at the first carriage return, and counts lines for the error.
type crGuard struct {
	r    io.Reader
	line int
}

func (g *crGuard) Read(p []byte) (int, error) {
	n, err := g.r.Read(p)
	for _, b := range p[:n] {
		switch b {
		case '\n':
			g.line++
		case '\r':
			return 0, errCarriageReturn
		}
	}
	return n, err
}
