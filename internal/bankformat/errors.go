package bankformat

import (
	"strconv"
	"strings"
)

// FieldError says what is wrong and where: the record (its names are the format package's), the
// line of the file (0 when writing), the position counted from 1 of the entry or item the record
// is (0 for other records), and the field: the Go field name when writing, the XML element path or
// CSV column when reading. It never repeats the field's value, which may be personal.
type FieldError struct {
	Record string
	Line   int
	Entry  int
	Field  string
	Err    error
}

func (e *FieldError) Error() string {
	var b strings.Builder
	if e.Line > 0 {
		b.WriteString("line ")
		b.WriteString(strconv.Itoa(e.Line))
		b.WriteString(": ")
	}
	b.WriteString(e.Record)
	if e.Entry > 0 {
		b.WriteByte(' ')
		b.WriteString(strconv.Itoa(e.Entry))
	}
	if e.Field != "" {
		b.WriteString(": ")
		b.WriteString(e.Field)
	}
	b.WriteString(": ")
	b.WriteString(e.Err.Error())
	return b.String()
}

func (e *FieldError) Unwrap() error { return e.Err }
