package bankfile

import (
	"bufio"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"iter"
	"slices"
	"strings"
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
	cw.Write([]string{csvTrailer, bankformat.FormatCount(h.NumberOfEntries), bankformat.FormatAmount(h.ControlSum), bankformat.FormatAmount(netAbs), string(netDir)})
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
	c.columns(csvColumns)
	f := &File{}
	h := &f.Header
	c.record = recordHeader
	if rec := c.read(csvHeader, len(csvHeaderColumns)); c.err == nil {
		h.MessageID = c.id(rec, 1, "message_id", maxIDBytes)
		h.CreatedAt = c.timestamp(rec, 2, "created_at")
		h.BankID = c.accountID(rec, 3, "bank_id", maxAccountIDBytes)
		h.BankName = c.text(rec, 4, "bank_name", true)
		h.CycleDate = c.date(rec, 5, "cycle_date")
		h.ValueDate = c.date(rec, 6, "value_date")
		h.Sequence = c.count(rec, 7, "sequence")
		h.Currency = ledger.Currency(rec[8])
		switch rec[9] {
		case copyDuplicate:
			h.Copy = true
		case "":
		default:
			c.fail(9, "copy", errors.New("want DUPL or empty"))
		}
		// The totals are in the trailer: checked there, zero until then.
		if err := h.validate(); err != nil {
			c.refield(err, csvHeaderFields)
		}
	}
	var t totals
	for c.err == nil {
		rec := c.read("", 0)
		if c.err != nil {
			break
		}
		if rec[0] == csvTrailer {
			c.trailer(rec, h)
			break
		}
		c.entry++
		c.record = recordItem
		if rec[0] != csvItem {
			c.fail(0, "record", errors.New("want an item (I) or the trailer (T)"))
			break
		}
		if len(rec) != len(csvColumns) {
			c.fail(0, "", fmt.Errorf("an item record has %d fields, want %d", len(rec), len(csvColumns)))
			break
		}
		it := Item{
			ID:        c.id(rec, 1, "item_id", maxIDBytes),
			Kind:      c.kind(rec, 2),
			Party:     c.accountID(rec, 3, "party", maxAccountIDBytes),
			PartyName: c.text(rec, 4, "party_name", false),
			Amount:    c.amount(rec, 5, "amount"),
			Direction: c.direction(rec, 6, "direction"),
			Reference: c.text(rec, 7, "reference", false),
			Entries:   c.count(rec, 8, "entries"),
		}
		if c.err == nil {
			if err := t.add(it, c.entry); err != nil {
				c.refield(err, csvItemFields)
			}
		}
		f.Items = append(f.Items, it)
	}
	if c.err != nil {
		return nil, c.err
	}
	trailerLine := c.line
	c.end()
	if c.err != nil {
		return nil, c.err
	}
	if err := t.check(*h, recordTrailer, [3]int{trailerLine, trailerLine, trailerLine}, csvTotalFields); err != nil {
		return nil, err
	}
	return f, nil
}

// trailer reads the T record into h's totals, and checks the header as a whole.
func (c *csvIn) trailer(rec []string, h *Header) {
	c.entry = 0
	c.record = recordTrailer
	if len(rec) != len(csvTrailerColumns) {
		c.fail(0, "", fmt.Errorf("the trailer has %d fields, want %d", len(rec), len(csvTrailerColumns)))
		return
	}
	h.NumberOfEntries = c.count(rec, 1, "entries")
	h.ControlSum = c.amount(rec, 2, "control_sum")
	netAbs := c.amount(rec, 3, "net_amount")
	netDir := c.direction(rec, 4, "net_direction")
	if c.err != nil {
		return
	}
	var err error
	if h.Net, err = bankformat.SignedFrom(netAbs, netDir, zeroDebit); err != nil {
		c.fail(4, "net_direction", err)
		return
	}
	if err := h.validate(); err != nil {
		c.refield(err, csvHeaderFields)
	}
}

// NeutraliseCSV writes a CSV text field so that no spreadsheet takes it for a formula: a value
// starting with = + - @, a tab or a carriage return gets a leading ', and so does one starting
// with ' itself. Every CSV the engine exchanges with banks follows this rule.
func NeutraliseCSV(s string) string {
	if s != "" && strings.IndexByte(formulaLeads, s[0]) >= 0 {
		return "'" + s
	}
	return s
}

// formulaLeads are the first characters NeutraliseCSV quotes: those that start a formula, and the
// quote itself, so that a value starting with ' reads back as written.
const formulaLeads = "=+-@\t\r'"

// UnneutraliseCSV undoes NeutraliseCSV exactly, and refuses what NeutraliseCSV never writes: a
// formula without its ', or a ' before a value that needs none. The errors never repeat s.
func UnneutraliseCSV(s string) (string, error) {
	if s == "" {
		return s, nil
	}
	if s[0] == '\'' {
		if len(s) == 1 || strings.IndexByte(formulaLeads, s[1]) < 0 {
			return "", errors.New("a leading ' quotes only a value starting with = + - @ tab, carriage return or '")
		}
		return s[1:], nil
	}
	if strings.IndexByte(formulaLeads, s[0]) >= 0 {
		return "", errors.New("a value starting with = + - @ tab or carriage return must start with '")
	}
	return s, nil
}

// csvIn reads records strictly. The first error sticks, as in xmlIn.
type csvIn struct {
	cr     *csv.Reader
	guard  *crGuard
	line   int // the line of the last record read
	record string
	entry  int
	err    error
}

func newCSVIn(r io.Reader, maxBytes int64) *csvIn {
	g := &crGuard{r: newLimitReader(r, maxBytes), line: 1}
	cr := csv.NewReader(g)
	cr.FieldsPerRecord = -1
	cr.ReuseRecord = true
	return &csvIn{cr: cr, guard: g, record: recordFile}
}

// columns reads the column header, which must be exactly want.
func (c *csvIn) columns(want []string) {
	rec := c.read("", 0)
	if c.err == nil && !slices.Equal(rec, want) {
		c.fail(0, "", fmt.Errorf("the first row must be the column header %s", strings.Join(want, ",")))
	}
}

// read returns the next record; with typ, the record must be of that type and have n fields.
func (c *csvIn) read(typ string, n int) []string {
	if c.err != nil {
		return nil
	}
	rec, err := c.cr.Read()
	if err == io.EOF {
		c.err = &FieldError{Record: c.record, Line: c.line + 1, Err: errors.New("the file ends before its trailer: cut short")}
		return nil
	}
	if err != nil {
		c.syntax(err)
		return nil
	}
	c.line, _ = c.cr.FieldPos(0)
	if typ != "" {
		if rec[0] != typ {
			c.fail(0, "record", fmt.Errorf("want the record type %s", typ))
			return nil
		}
		if len(rec) != n {
			c.fail(0, "", fmt.Errorf("has %d fields, want %d", len(rec), n))
			return nil
		}
	}
	return rec
}

// end checks nothing follows the trailer.
func (c *csvIn) end() {
	if c.err != nil {
		return
	}
	_, err := c.cr.Read()
	switch {
	case err == io.EOF:
	case err != nil:
		c.syntax(err)
	default:
		line, _ := c.cr.FieldPos(0)
		c.err = &FieldError{Record: recordFile, Line: line, Err: errors.New("records after the trailer")}
	}
}

func (c *csvIn) syntax(err error) {
	var pe *csv.ParseError
	switch {
	case errors.Is(err, errCarriageReturn):
		c.err = &FieldError{Record: recordFile, Line: c.guard.line, Err: err}
	case errors.Is(err, errTooLarge):
		c.err = &FieldError{Record: recordFile, Err: err}
	case errors.As(err, &pe):
		c.err = &FieldError{Record: recordFile, Line: pe.Line, Err: fmt.Errorf("not well-formed CSV: %w", pe.Err)}
	default:
		c.err = &FieldError{Record: recordFile, Err: fmt.Errorf("reading CSV: %w", err)}
	}
}

func (c *csvIn) fail(i int, column string, err error) {
	if c.err != nil {
		return
	}
	line, _ := c.cr.FieldPos(i)
	c.err = &FieldError{Record: c.record, Line: line, Entry: c.entry, Field: column, Err: err}
}

// refield records err, a *FieldError found on a record as a whole, at the record's line, with
// its field renamed to the column.
func (c *csvIn) refield(err error, names map[string]string) {
	if c.err != nil {
		return
	}
	var fe *FieldError
	if errors.As(err, &fe) {
		e := *fe
		e.Line = c.line
		e.Record = c.record
		if n, ok := names[e.Field]; ok {
			e.Field = n
		}
		c.err = &e
		return
	}
	c.err = &FieldError{Record: c.record, Line: c.line, Entry: c.entry, Err: err}
}

// Typed fields: each parses and checks rec[i], and fails naming the column.

func (c *csvIn) raw(rec []string, i int, column string) (string, bool) {
	if c.err != nil {
		return "", false
	}
	v, err := UnneutraliseCSV(rec[i])
	if err != nil {
		c.fail(i, column, err)
		return "", false
	}
	return v, true
}

func (c *csvIn) id(rec []string, i int, column string, max int) string {
	return c.checked(rec, i, column, max, bankformat.CheckID)
}

func (c *csvIn) accountID(rec []string, i int, column string, max int) string {
	return c.checked(rec, i, column, max, checkAccountID)
}

func (c *csvIn) checked(rec []string, i int, column string, max int, check func(string, int) error) string {
	v, ok := c.raw(rec, i, column)
	if ok {
		if err := check(v, max); err != nil {
			c.fail(i, column, err)
		}
	}
	return v
}

func (c *csvIn) text(rec []string, i int, column string, required bool) string {
	v, ok := c.raw(rec, i, column)
	if ok {
		if err := checkText(v, required); err != nil {
			c.fail(i, column, err)
		}
	}
	return v
}

func (c *csvIn) parse(rec []string, i int, column string, parse func(string) error) {
	if c.err != nil {
		return
	}
	if err := parse(rec[i]); err != nil {
		c.fail(i, column, err)
	}
}

func (c *csvIn) count(rec []string, i int, column string) (n int64) {
	c.parse(rec, i, column, func(s string) (err error) { n, err = bankformat.ParseCount(s); return err })
	return n
}

func (c *csvIn) amount(rec []string, i int, column string) (fen int64) {
	c.parse(rec, i, column, func(s string) (err error) { fen, err = bankformat.ParseAmount(s); return err })
	return fen
}

func (c *csvIn) direction(rec []string, i int, column string) (d Direction) {
	c.parse(rec, i, column, func(s string) (err error) { d, err = parseDirection(s); return err })
	return d
}

func (c *csvIn) kind(rec []string, i int) (k Kind) {
	c.parse(rec, i, "kind", func(s string) (err error) { k, err = ParseKind(s); return err })
	return k
}

func (c *csvIn) date(rec []string, i int, column string) (d events.Date) {
	c.parse(rec, i, column, func(s string) (err error) { d, err = parseDate(s); return err })
	return d
}

func (c *csvIn) timestamp(rec []string, i int, column string) (t time.Time) {
	c.parse(rec, i, column, func(s string) (err error) { t, err = parseTime(s); return err })
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
