package statement

import (
	"bufio"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"iter"

	"github.com/joinincard/engine/events"
	"github.com/joinincard/engine/internal/bankformat"
	"github.com/joinincard/engine/ledger"
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
	cw.Write([]string{csvHeader, bankformat.NeutraliseCSV(h.StatementID), bankformat.FormatTime(h.CreatedAt),
		bankformat.NeutraliseCSV(h.BankID), bankformat.FormatCount(h.Sequence), copyMark, h.From.String(), h.To.String(),
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
			e.ValueDate.String(), bankformat.NeutraliseCSV(e.EntryRef), bankformat.NeutraliseCSV(e.EndToEndRef),
			bankformat.NeutraliseCSV(e.AdditionalInfo))
		cw.Write(record)
		if ew.Err() != nil {
			return ew.Err()
		}
	}
	if err := t.check(&h, goPlaces); err != nil {
		return err
	}
	netAbs, netDir := bankformat.SignedParts[Direction](h.Net)
	cw.Write([]string{csvTrailer, bankformat.FormatCount(h.NumberOfEntries), bankformat.FormatAmount(h.Sum),
		bankformat.FormatAmount(netAbs), string(netDir)})
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
	r, bom := skipBOM(r)
	if bom {
		return nil, &FieldError{Record: recordFile, Line: 1, Err: errors.New("starts with a byte order mark: want UTF-8 without one")}
	}
	s := &csvSource{c: newCSVIn(r), h: &rd.h}
	if err := s.header(); err != nil {
		return nil, err
	}
	rd.src = s
	return rd, nil
}

func (s *csvSource) header() error {
	c, h := s.c, s.h
	c.Columns(csvColumns)
	c.Record = recordHeader
	rec := c.Read(csvHeader, len(csvHeaderColumns))
	if c.Err != nil {
		return c.Err
	}
	s.headerLine = c.Line
	h.StatementID = c.id(rec, 1, "statement_id")
	c.Parse(rec, 2, "created_at", func(v string) (err error) { h.CreatedAt, err = parseTime(v); return err })
	h.BankID = c.Checked(rec, 3, "bank_id", checkBankID)
	c.Parse(rec, 4, "sequence", func(v string) (err error) {
		if h.Sequence, err = bankformat.ParseCount(v); err != nil {
			return err
		}
		return checkSequence(h.Sequence)
	})
	c.Parse(rec, 5, "copy", func(v string) error {
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
	if c.Err == nil {
		if err := checkPeriod(h.From, h.To); err != nil {
			c.Fail(7, "to_date", err)
		}
	}
	c.Parse(rec, 8, "currency", func(v string) error { h.Currency = ledger.Currency(v); return checkCurrency(h.Currency) })
	h.OpeningBalance = c.balance(rec, 9, "opening_balance", "opening_direction")
	h.ClosingBalance = c.balance(rec, 11, "closing_balance", "closing_direction")
	s.at.closing = place{recordHeader, s.headerLine, "closing_balance"}
	if c.Err == nil {
		if err := h.validateFields(); err != nil {
			c.Refield(err, csvHeaderFields)
		}
	}
	return c.Err
}

// next reads the next entry, or the trailer and the end of the file.
func (s *csvSource) next(n int) (Entry, bool) {
	c := s.c
	rec := c.Read("", 0)
	if c.Err != nil {
		return Entry{}, false
	}
	if rec[0] == csvTrailer {
		s.trailer(rec)
		c.End()
		return Entry{}, false
	}
	c.Entry = n
	c.Record = recordEntry
	if rec[0] != csvEntry {
		c.Fail(0, "record", errors.New("want an entry (E) or the trailer (T)"))
		return Entry{}, false
	}
	if len(rec) != len(csvColumns) {
		c.Fail(0, "", fmt.Errorf("an entry record has %d fields, want %d", len(rec), len(csvColumns)))
		return Entry{}, false
	}
	var e Entry
	c.Parse(rec, 1, "amount", func(v string) (err error) {
		if e.Amount, err = bankformat.ParseAmount(v); err != nil {
			return err
		}
		return checkAmount(e.Amount)
	})
	c.Parse(rec, 2, "direction", func(v string) (err error) { e.Direction, err = parseDirection(v); return err })
	c.Parse(rec, 3, "booking_date", func(v string) (err error) {
		if e.BookingDate, err = parseDate(v); err != nil {
			return err
		}
		return checkBookingDate(e.BookingDate, s.h)
	})
	e.ValueDate = c.date(rec, 4, "value_date")
	e.EntryRef = c.id(rec, 5, "entry_ref")
	e.EndToEndRef = c.Checked(rec, 6, "end_to_end_ref", checkEndToEndRef)
	e.AdditionalInfo = c.Checked(rec, 7, "additional_info", func(v string) error { return checkText(v, maxInfoRunes) })
	return e, c.Err == nil
}

// trailer reads the T record into the header's totals, and checks them among themselves and
// against the balances.
func (s *csvSource) trailer(rec []string) {
	c, h := s.c, s.h
	c.Entry = 0
	c.Record = recordTrailer
	if len(rec) != len(csvTrailerColumns) {
		c.Fail(0, "", fmt.Errorf("the trailer has %d fields, want %d", len(rec), len(csvTrailerColumns)))
		return
	}
	line := c.Line
	s.at.count = place{recordTrailer, line, "entries"}
	s.at.sum = place{recordTrailer, line, "sum"}
	s.at.net = place{recordTrailer, line, "net_amount"}
	c.Parse(rec, 1, "entries", func(v string) (err error) {
		if h.NumberOfEntries, err = bankformat.ParseCount(v); err != nil {
			return err
		}
		return checkCount(h.NumberOfEntries)
	})
	c.Parse(rec, 2, "sum", func(v string) (err error) { h.Sum, err = bankformat.ParseAmount(v); return err })
	netAbs := c.Amount(rec, 3, "net_amount")
	c.Parse(rec, 4, "net_direction", func(v string) error {
		d, err := parseDirection(v)
		if err != nil {
			return err
		}
		h.Net, err = bankformat.SignedFrom(netAbs, d, zeroDebit)
		return err
	})
	if c.Err == nil {
		if err := checkNet(h.Net, h.Sum); err != nil {
			c.Fail(3, "net_amount", err)
		}
	}
	if c.Err == nil {
		if err := checkClosing(h.OpeningBalance, h.Net, h.ClosingBalance, "the net"); err != nil {
			p := s.at.closing
			c.Err = &FieldError{Record: p.record, Line: p.line, Field: p.field, Err: err}
		}
	}
}

// locate places err, found on the last entry as a whole, at the entry's line, with its field
// renamed to the column.
func (s *csvSource) locate(err error) error {
	s.c.Refield(err, csvEntryFields)
	return s.c.Err
}

func (s *csvSource) err() error { return s.c.Err }

func (s *csvSource) totalsAt() places { return s.at }

// csvIn is the strict CSV reader of bankformat, reading a statement through a csvGuard.
type csvIn struct {
	*bankformat.CSVIn
}

func newCSVIn(r io.Reader) *csvIn {
	g := &csvGuard{r: r, line: 1, recordLine: 1}
	guard := func(err error) (int, bool) {
		if errors.Is(err, errCarriageReturn) || errors.Is(err, ErrTooLarge) {
			return g.errLine, true
		}
		return 0, false
	}
	return &csvIn{bankformat.NewCSVIn(g, bankformat.CSVErrors{FileRecord: recordFile, Guard: guard, CutShortEntry: true})}
}

// Typed fields of statements.

func (c *csvIn) id(rec []string, i int, column string) string {
	return c.Checked(rec, i, column, func(s string) error { return bankformat.CheckID(s, maxIDBytes) })
}

func (c *csvIn) date(rec []string, i int, column string) (d events.Date) {
	c.Parse(rec, i, column, func(s string) (err error) { d, err = parseDate(s); return err })
	return d
}

// balance reads a signed balance from its amount and direction columns.
func (c *csvIn) balance(rec []string, i int, amountColumn, directionColumn string) (fen int64) {
	abs := c.Amount(rec, i, amountColumn)
	c.Parse(rec, i+1, directionColumn, func(s string) error {
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
