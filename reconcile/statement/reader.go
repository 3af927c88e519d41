package statement

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"iter"
)

// Format is a statement's format.
type Format string

const (
	FormatXML Format = "xml" // ISO 20022 camt.053, WriteXML and NewXMLReader
	FormatCSV Format = "csv" // WriteCSV and NewCSVReader
)

// Reader streams a statement's entries. NewXMLReader and NewCSVReader have read and checked its
// header; each call of Next reads and checks one entry. When the entries end, Next compares
// their count, sum and net with the totals stated and the closing balance with the opening
// balance plus their net, and returns io.EOF only if all agree; otherwise it returns the refusal
// naming each that disagrees. Any error but io.EOF refuses the whole statement, including the
// entries Next returned before it: an importer keeps what it read only once Next returned io.EOF.
// Errors stick: every call after one returns it again.
//
// A Reader holds one entry and the running totals, whatever the number of entries.
type Reader struct {
	src source
	h   Header
	t   totals
	n   int // the entries read
	err error
}

// source is one format's reading of a statement, its header read when it is made.
type source interface {
	// next reads the n-th entry, checking each of its values; false at the end of the entries,
	// the end of the statement read and checked, or on an error.
	next(n int) (Entry, bool)
	// locate places an error found on the last entry as a whole at its line and field.
	locate(err error) error
	// err is the first error the source met.
	err() error
	// totalsAt says where the totals are stated, once the end is read.
	totalsAt() places
}

// skipBOM returns r past a UTF-8 byte order mark, and whether there was one.
func skipBOM(r io.Reader) (io.Reader, bool) {
	b := bufio.NewReaderSize(r, 16)
	if head, _ := b.Peek(3); bytes.Equal(head, []byte("\xef\xbb\xbf")) {
		_, _ = b.Discard(3)
		return b, true
	}
	return b, false
}

// Open returns a Reader of a statement in format f.
func Open(r io.Reader, f Format) (*Reader, error) {
	switch f {
	case FormatXML:
		return NewXMLReader(r)
	case FormatCSV:
		return NewCSVReader(r)
	}
	return nil, fmt.Errorf("unknown statement format %q, want xml or csv", string(f))
}

// Header returns the statement's header. For a CSV statement, whose totals come in its trailer,
// NumberOfEntries, Sum and Net are zero until Next has returned io.EOF.
func (r *Reader) Header() Header { return r.h }

// Next returns the next entry; io.EOF after the last, once the statement's totals and balances
// check out; or the refusal of the statement.
func (r *Reader) Next() (Entry, error) {
	if r.err != nil {
		return Entry{}, r.err
	}
	e, ok := r.src.next(r.n + 1)
	if err := r.src.err(); err != nil {
		r.err = err
		return Entry{}, err
	}
	if !ok {
		if err := r.t.check(&r.h, r.src.totalsAt()); err != nil {
			r.err = err
			return Entry{}, err
		}
		r.err = io.EOF
		return Entry{}, io.EOF
	}
	r.n++
	if err := r.t.add(e, r.n, &r.h); err != nil {
		r.err = r.src.locate(err)
		return Entry{}, r.err
	}
	return e, nil
}

// All yields the entries with a nil error, then, if the statement is refused, the zero Entry
// with the refusal; a statement read whole and checked ends without an error. The rule of Next
// holds: an error refuses the entries yielded before it.
func (r *Reader) All() iter.Seq2[Entry, error] {
	return func(yield func(Entry, error) bool) {
		for {
			e, err := r.Next()
			if err == io.EOF {
				return
			}
			if !yield(e, err) || err != nil {
				return
			}
		}
	}
}

// ReadAll reads a statement of at most MaxReadAllEntries entries whole: for small statements and
// tests. Larger statements are refused (ErrTooLarge) and are read with a Reader.
func ReadAll(r io.Reader, f Format) (*Statement, error) {
	rd, err := Open(r, f)
	if err != nil {
		return nil, err
	}
	s := &Statement{}
	for {
		e, err := rd.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
		if len(s.Entries) == MaxReadAllEntries {
			return nil, &FieldError{Record: recordEntry, Entry: rd.n,
				Err: fmt.Errorf("%w: more than %d entries to read whole: read them with a Reader", ErrTooLarge, MaxReadAllEntries)}
		}
		s.Entries = append(s.Entries, e)
	}
	s.Header = rd.Header()
	return s, nil
}
