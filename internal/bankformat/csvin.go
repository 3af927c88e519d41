package bankformat

import (
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
)

// CSVIn reads records strictly. The first error sticks, as in XMLIn.
type CSVIn struct {
	// Line is the line of the last record read.
	Line int
	// Record and Entry are the record being read and its position, for FieldError.
	Record string
	Entry  int
	// Err is the first refusal, a *FieldError.
	Err error

	cr   *csv.Reader
	errs CSVErrors
}

// CSVErrors says how a format reports what is not a record's own refusal.
type CSVErrors struct {
	// FileRecord names the whole file in errors, and is the record read first.
	FileRecord string
	// Guard reports whether err is the refusal of the guard the CSV is read through (a carriage
	// return, a record or file over its bound), and the line to report it at (0 for none).
	Guard func(err error) (line int, ok bool)
	// CutShortEntry: the refusal of a file cut short names the position of the record read last.
	CutShortEntry bool
}

// NewCSVIn reads CSV records from r, each with any number of fields.
func NewCSVIn(r io.Reader, errs CSVErrors) *CSVIn {
	cr := csv.NewReader(r)
	cr.FieldsPerRecord = -1
	cr.ReuseRecord = true
	return &CSVIn{cr: cr, Record: errs.FileRecord, errs: errs}
}

// Columns reads the column header, which must be exactly want.
func (c *CSVIn) Columns(want []string) {
	rec := c.Read("", 0)
	if c.Err == nil && !slices.Equal(rec, want) {
		c.Fail(0, "", fmt.Errorf("the first row must be the column header %s", strings.Join(want, ",")))
	}
}

// Read returns the next record; with typ, the record must be of that type and have n fields.
func (c *CSVIn) Read(typ string, n int) []string {
	if c.Err != nil {
		return nil
	}
	rec, err := c.cr.Read()
	if err == io.EOF {
		e := &FieldError{Record: c.Record, Line: c.Line + 1, Err: errors.New("the file ends before its trailer: cut short")}
		if c.errs.CutShortEntry {
			e.Entry = c.Entry
		}
		c.Err = e
		return nil
	}
	if err != nil {
		c.syntax(err)
		return nil
	}
	c.Line, _ = c.cr.FieldPos(0)
	if typ != "" {
		if rec[0] != typ {
			c.Fail(0, "record", fmt.Errorf("want the record type %s", typ))
			return nil
		}
		if len(rec) != n {
			c.Fail(0, "", fmt.Errorf("has %d fields, want %d", len(rec), n))
			return nil
		}
	}
	return rec
}

// End checks nothing follows the trailer.
func (c *CSVIn) End() {
	if c.Err != nil {
		return
	}
	_, err := c.cr.Read()
	switch {
	case err == io.EOF:
	case err != nil:
		c.syntax(err)
	default:
		line, _ := c.cr.FieldPos(0)
		c.Err = &FieldError{Record: c.errs.FileRecord, Line: line, Err: errors.New("records after the trailer")}
	}
}

func (c *CSVIn) syntax(err error) {
	var pe *csv.ParseError
	if line, ok := c.errs.Guard(err); ok {
		c.Err = &FieldError{Record: c.errs.FileRecord, Line: line, Err: err}
	} else if errors.As(err, &pe) {
		c.Err = &FieldError{Record: c.errs.FileRecord, Line: pe.Line, Err: fmt.Errorf("not well-formed CSV: %w", pe.Err)}
	} else {
		c.Err = &FieldError{Record: c.errs.FileRecord, Err: fmt.Errorf("reading CSV: %w", err)}
	}
}

// Fail records err at field i of the last record, named column.
func (c *CSVIn) Fail(i int, column string, err error) {
	if c.Err != nil {
		return
	}
	line, _ := c.cr.FieldPos(i)
	c.Err = &FieldError{Record: c.Record, Line: line, Entry: c.Entry, Field: column, Err: err}
}

// Refield records err, a *FieldError found on a record as a whole, at the record's line, with
// its field renamed to the column.
func (c *CSVIn) Refield(err error, names map[string]string) {
	if c.Err != nil {
		return
	}
	var fe *FieldError
	if errors.As(err, &fe) {
		e := *fe
		e.Line = c.Line
		e.Record = c.Record
		if n, ok := names[e.Field]; ok {
			e.Field = n
		}
		c.Err = &e
		return
	}
	c.Err = &FieldError{Record: c.Record, Line: c.Line, Entry: c.Entry, Err: err}
}

// Typed fields: each parses and checks rec[i], and fails naming the column.

// Parse checks rec[i] with parse, as it is: fields that are never neutralised.
func (c *CSVIn) Parse(rec []string, i int, column string, parse func(string) error) {
	if c.Err != nil {
		return
	}
	if err := parse(rec[i]); err != nil {
		c.Fail(i, column, err)
	}
}

// Checked undoes the neutralisation of text field rec[i] and checks it.
func (c *CSVIn) Checked(rec []string, i int, column string, check func(string) error) string {
	if c.Err != nil {
		return ""
	}
	v, err := UnneutraliseCSV(rec[i])
	if err == nil {
		err = check(v)
	}
	if err != nil {
		c.Fail(i, column, err)
	}
	return v
}

// Count reads rec[i] as ParseCount does.
func (c *CSVIn) Count(rec []string, i int, column string) (n int64) {
	c.Parse(rec, i, column, func(s string) (err error) { n, err = ParseCount(s); return err })
	return n
}

// Amount reads rec[i] as ParseAmount does.
func (c *CSVIn) Amount(rec []string, i int, column string) (fen int64) {
	c.Parse(rec, i, column, func(s string) (err error) { fen, err = ParseAmount(s); return err })
	return fen
}

// NeutraliseCSV writes a CSV text field so that no spreadsheet takes it for a formula: a value
// starting with = + - @, a tab or a carriage return gets a leading ', and so does one starting
// with ' itself.
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
