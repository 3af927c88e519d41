package statement

import (
	"bufio"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"iter"
	"slices"
	"strings"

	"github.com/joinincard/engine/events"
	"github.com/joinincard/engine/internal/bankformat"
	"github.com/joinincard/engine/ledger"
	"github.com/joinincard/engine/settlement/bankfile"
)

// maxCSVRecordBytes bounds one CSV record: an entry with every field at its bound, its text of
// 4-byte characters or doubled quotes, is under 2.5 KiB (TestEntryFitsTheBounds). The CSV reader
// holds at most one record, whatever the statement's size.
const maxCSVRecordBytes = 4 << 10

// The first field of every record after the column header names the record type.
const (
	csvHeader  = "H"
	csvEntry   = "E"
	csvTrailer = "T"
)

// csvColumns is a statement CSV's first row. It names the entry records' columns; the header and
// trailer records have their own (docs/bank-statements.md).
var csvColumns = []string{"record", "amount", "direction", "booking_date", "value_date", "entry_ref", "end_to_end_ref", "additional_info"}

var (
	csvHeaderColumns = []string{"record", "statement_id", "created_at", "bank_id", "sequence", "copy",
		"from_date", "to_date", "currency", "opening_balance", "opening_direction", "closing_balance", "closing_direction"}
	csvTrailerColumns = []string{"record", "entries", "sum", "net_amount", "net_direction"}
)

// csvHeaderFields names the column of each Header field, for errors found on the header as a
// whole.
var csvHeaderFields = map[string]string{
	"StatementID": "statement_id", "CreatedAt": "created_at", "BankID": "bank_id", "Sequence": "sequence",
	"From": "from_date", "To": "to_date", "Currency": "currency", "OpeningBalance": "opening_balance",
	"ClosingBalance": "closing_balance",
}

// csvEntryFields names the column of each Entry field, for errors found on an entry as a whole.
var csvEntryFields = map[string]string{
	"Amount": "amount", "Direction": "direction", "BookingDate": "booking_date", "ValueDate": "value_date",
	"EntryRef": "entry_ref", "EndToEndRef": "end_to_end_ref", "AdditionalInfo": "additional_info",
}

// WriteCSV writes a statement as CSV (docs/bank-statements.md): the column header, a header
// record with the balances, one record per entry, and a trailer with the count, sum and net. It
// streams and checks as WriteXML does, and writes the same content. Text fields that a
// spreadsheet would take for a formula are written with a leading ' (bankfile.NeutraliseCSV); the
// reader removes it.
func WriteCSV(w io.Writer, h Header, entries iter.Seq[Entry]) error {
	if err := h.validate(); err != nil {
		return err
	}
	ew := bankformat.NewErrWriter(w)
	cw := csv.NewWriter(bufio.NewWriterSize(ew, writeBufferBytes))
	copyMark := ""
	if h.Copy {
		copyMark = copyDuplicate
	}
	openAbs, openDir := bankformat.SignedParts[Direction](h.OpeningBalance)
	closeAbs, closeDir := bankformat.SignedParts[Direction](h.ClosingBalance)
	cw.Write(csvColumns)
	cw.Write([]string{csvHeader, bankfile.NeutraliseCSV(h.StatementID), bankformat.FormatTime(h.CreatedAt),
		bankfile.NeutraliseCSV(h.BankID), bankformat.FormatCount(h.Sequence), copyMark, h.From.String(), h.To.String(),
		string(h.Currency), bankformat.FormatAmount(openAbs), string(openDir), bankformat.FormatAmount(closeAbs), string(closeDir)})
	var t totals
	n := 0
	record := make([]string, len(csvColumns))
	for e := range entries {
		n++
		if err := t.add(e, n, &h); err != nil {
			return err
		}
		record = append(record[:0], csvEntry, bankformat.FormatAmount(e.Amount), string(e.Direction), e.BookingDate.String(),
			e.ValueDate.String(), bankfile.NeutraliseCSV(e.EntryRef), bankfile.NeutraliseCSV(e.EndToEndRef),
			bankfile.NeutraliseCSV(e.AdditionalInfo))
		cw.Write(record)
		if ew.Err() != nil {
			return ew.Err()
		}
	}
	if err := t.check(&h, goPlaces); err != nil {
		return err
	}
	netAbs, netDir := bankformat.SignedParts[Direction](h.Net)
	cw.Write([]string{csvTrailer, bankformat.FormatCount(h.NumberOfEntries), bankformat.FormatAmount(h.Sum), bankformat.FormatAmount(netAbs), string(netDir)})
	cw.Flush()
	if err := cw.Error(); err != nil {
		return err
	}
	return ew.Err()
}

// csvSource reads a statement CSV: the header in NewCSVReader, an entry per next, and the trailer
// at the end.
type csvSource struct {
	c          *csvIn
	h          *Header
	headerLine int
	at         places
}

// NewCSVReader reads a statement CSV's column header and header record from r and returns a
// Reader of its entries (docs/bank-statements.md). It accepts what WriteCSV writes and nothing
// else: each record with its exact columns, "\n" line ends, texts neutralised against formulas
// exactly as WriteCSV does, and nothing after the trailer. The totals are in the trailer: the
// Reader's Header has them once Next has returned io.EOF.
func NewCSVReader(r io.Reader) (*Reader, error) {
	rd := &Reader{}
	s := &csvSource{c: newCSVIn(r), h: &rd.h}
	if err := s.header(); err != nil {
		return nil, err
	}
	rd.src = s
	return rd, nil
}

func (s *csvSource) header() error {
	c, h := s.c, s.h
	c.columns(csvColumns)
	c.record = recordHeader
	rec := c.read(csvHeader, len(csvHeaderColumns))
	if c.err != nil {
		return c.err
	}
	s.headerLine = c.line
	h.StatementID = c.id(rec, 1, "statement_id")
	c.parse(rec, 2, "created_at", func(v string) (err error) { h.CreatedAt, err = parseTime(v); return err })
	h.BankID = c.checked(rec, 3, "bank_id", checkBankID)
	c.parse(rec, 4, "sequence", func(v string) (err error) {
		if h.Sequence, err = bankformat.ParseCount(v); err != nil {
			return err
		}
		return checkSequence(h.Sequence)
	})
	c.parse(rec, 5, "copy", func(v string) error {
		switch v {
		case copyDuplicate:
			h.Copy = true
		case "":
		default:
			return errors.New("want DUPL or empty")
		}
		return nil
	})
	h.From = c.date(rec, 6, "from_date")
	h.To = c.date(rec, 7, "to_date")
	if c.err == nil {
		if err := checkPeriod(h.From, h.To); err != nil {
			c.fail(7, "to_date", err)
		}
	}
	c.parse(rec, 8, "currency", func(v string) error { h.Currency = ledger.Currency(v); return checkCurrency(h.Currency) })
	h.OpeningBalance = c.balance(rec, 9, "opening_balance", "opening_direction")
	h.ClosingBalance = c.balance(rec, 11, "closing_balance", "closing_direction")
	s.at.closing = place{recordHeader, s.headerLine, "closing_balance"}
	if c.err == nil {
		if err := h.validateFields(); err != nil {
			c.refield(err, csvHeaderFields)
		}
	}
	return c.err
}

// next reads the next entry, or the trailer and the end of the file.
func (s *csvSource) next(n int) (Entry, bool) {
	c := s.c
	rec := c.read("", 0)
	if c.err != nil {
		return Entry{}, false
	}
	if rec[0] == csvTrailer {
		s.trailer(rec)
		c.end()
		return Entry{}, false
	}
	c.entry = n
	c.record = recordEntry
	if rec[0] != csvEntry {
		c.fail(0, "record", errors.New("want an entry (E) or the trailer (T)"))
		return Entry{}, false
	}
	if len(rec) != len(csvColumns) {
		c.fail(0, "", fmt.Errorf("an entry record has %d fields, want %d", len(rec), len(csvColumns)))
		return Entry{}, false
	}
	var e Entry
	c.parse(rec, 1, "amount", func(v string) (err error) {
		if e.Amount, err = bankformat.ParseAmount(v); err != nil {
			return err
		}
		return checkAmount(e.Amount)
	})
	c.parse(rec, 2, "direction", func(v string) (err error) { e.Direction, err = parseDirection(v); return err })
	c.parse(rec, 3, "booking_date", func(v string) (err error) {
		if e.BookingDate, err = parseDate(v); err != nil {
			return err
		}
		return checkBookingDate(e.BookingDate, s.h)
	})
	e.ValueDate = c.date(rec, 4, "value_date")
	e.EntryRef = c.id(rec, 5, "entry_ref")
	e.EndToEndRef = c.checked(rec, 6, "end_to_end_ref", checkEndToEndRef)
	e.AdditionalInfo = c.checked(rec, 7, "additional_info", func(v string) error { return checkText(v, maxInfoRunes) })
	return e, c.err == nil
}

// trailer reads the T record into the header's totals, and checks them among themselves and
// against the balances.
func (s *csvSource) trailer(rec []string) {
	c, h := s.c, s.h
	c.entry = 0
	c.record = recordTrailer
	if len(rec) != len(csvTrailerColumns) {
		c.fail(0, "", fmt.Errorf("the trailer has %d fields, want %d", len(rec), len(csvTrailerColumns)))
		return
	}
	line := c.line
	s.at.count = place{recordTrailer, line, "entries"}
	s.at.sum = place{recordTrailer, line, "sum"}
	s.at.net = place{recordTrailer, line, "net_amount"}
	c.parse(rec, 1, "entries", func(v string) (err error) {
		if h.NumberOfEntries, err = bankformat.ParseCount(v); err != nil {
			return err
		}
		return checkCount(h.NumberOfEntries)
	})
	c.parse(rec, 2, "sum", func(v string) (err error) { h.Sum, err = bankformat.ParseAmount(v); return err })
	netAbs := c.amount(rec, 3, "net_amount")
	c.parse(rec, 4, "net_direction", func(v string) error {
		d, err := parseDirection(v)
		if err != nil {
			return err
		}
		h.Net, err = bankformat.SignedFrom(netAbs, d, zeroDebit)
		return err
	})
	if c.err == nil {
		if err := checkNet(h.Net, h.Sum); err != nil {
			c.fail(3, "net_amount", err)
		}
	}
	if c.err == nil {
		if err := checkClosing(h.OpeningBalance, h.Net, h.ClosingBalance, "the net"); err != nil {
			p := s.at.closing
			c.err = &FieldError{Record: p.record, Line: p.line, Field: p.field, Err: err}
		}
	}
}

// locate places err, found on the last entry as a whole, at the entry's line, with its field
// renamed to the column.
func (s *csvSource) locate(err error) error {
	s.c.refield(err, csvEntryFields)
	return s.c.err
}

func (s *csvSource) err() error { return s.c.err }

func (s *csvSource) totalsAt() places { return s.at }

// csvIn reads records strictly. The first error sticks, as in xmlIn.
type csvIn struct {
	cr     *csv.Reader
	guard  *csvGuard
	line   int // the line of the last record read
	record string
	entry  int
	err    error
}

func newCSVIn(r io.Reader) *csvIn {
	g := &csvGuard{r: r, line: 1, recordLine: 1}
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
		c.err = &FieldError{Record: c.record, Line: c.line + 1, Entry: c.entry, Err: errors.New("the file ends before its trailer: cut short")}
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
		c.err = &FieldError{Record: recordFile, Line: c.guard.errLine, Err: err}
	case errors.Is(err, ErrTooLarge):
		c.err = &FieldError{Record: recordFile, Line: c.guard.errLine, Err: err}
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

// parse checks rec[i] with parse, as it is: fields that are never neutralised.
func (c *csvIn) parse(rec []string, i int, column string, parse func(string) error) {
	if c.err != nil {
		return
	}
	if err := parse(rec[i]); err != nil {
		c.fail(i, column, err)
	}
}

// checked undoes the neutralisation of text field rec[i] and checks it.
func (c *csvIn) checked(rec []string, i int, column string, check func(string) error) string {
	if c.err != nil {
		return ""
	}
	v, err := bankfile.UnneutraliseCSV(rec[i])
	if err == nil {
		err = check(v)
	}
	if err != nil {
		c.fail(i, column, err)
	}
	return v
}

func (c *csvIn) id(rec []string, i int, column string) string {
	return c.checked(rec, i, column, func(s string) error { return bankformat.CheckID(s, maxIDBytes) })
}

func (c *csvIn) amount(rec []string, i int, column string) (fen int64) {
	c.parse(rec, i, column, func(s string) (err error) { fen, err = bankformat.ParseAmount(s); return err })
	return fen
}

func (c *csvIn) date(rec []string, i int, column string) (d events.Date) {
	c.parse(rec, i, column, func(s string) (err error) { d, err = parseDate(s); return err })
	return d
}

// balance reads a signed balance from its amount and direction columns.
func (c *csvIn) balance(rec []string, i int, amountColumn, directionColumn string) (fen int64) {
	abs := c.amount(rec, i, amountColumn)
	c.parse(rec, i+1, directionColumn, func(s string) error {
		d, err := parseDirection(s)
		if err != nil {
			return err
		}
		fen, err = bankformat.SignedFrom(abs, d, zeroDebit)
		return err
	})
	return fen
}

// errCarriageReturn: CSV files end lines with "\n" alone, and no field holds a carriage return.
var errCarriageReturn = errors.New("carriage return: lines end with \\n alone")

// csvGuard passes r through to the CSV parser, refusing a carriage return and a record longer
// than maxCSVRecordBytes, so that the parser never holds more than one record's bytes. It follows
// quoting to tell a record's end from a line end inside a quoted field. A refusal is handed on
// after the bytes before it, so that a parse error earlier in the input is the one reported.
type csvGuard struct {
	r          io.Reader
	line       int  // the line being read, from 1
	recordLine int  // the line the current record starts on
	quoted     bool // inside a quoted field
	record     int  // bytes of the current record so far
	pending    error
	errLine    int // the line of pending
}

func (g *csvGuard) Read(p []byte) (int, error) {
	if g.pending != nil {
		return 0, g.pending
	}
	n, err := g.r.Read(p)
	for i, b := range p[:n] {
		switch b {
		case '"':
			g.quoted = !g.quoted
		case '\r':
			return g.refuse(i, g.line, errCarriageReturn)
		case '\n':
			g.line++
			if !g.quoted {
				g.record, g.recordLine = 0, g.line
				continue
			}
		}
		if g.record++; g.record > maxCSVRecordBytes {
			return g.refuse(i, g.recordLine, fmt.Errorf("%w: a record is over %d bytes", ErrTooLarge, maxCSVRecordBytes))
		}
	}
	return n, err
}

// refuse hands on the i bytes before a refusal, and the refusal at the next read.
func (g *csvGuard) refuse(i, line int, err error) (int, error) {
	g.pending, g.errLine = err, line
	if i == 0 {
		return 0, err
	}
	return i, nil
}
