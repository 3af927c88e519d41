package bankfile

import (
	"errors"
	"fmt"
	"io"

	"github.com/joinincard/engine/events"
	"github.com/joinincard/engine/internal/bankformat"
)

// errTooLarge is the refusal of an input over its reader's bound.
var errTooLarge = errors.New("larger than the bound")

// xmlIn is the strict XML reader of bankformat, reading at most a bound of bytes.
type xmlIn struct {
	*bankformat.XMLIn
}

func newXMLIn(r io.Reader, ns string, maxBytes int64) *xmlIn {
	return &xmlIn{bankformat.NewXMLIn(newLimitReader(r, maxBytes), ns, recordFile, readError)}
}

// readError refuses an input over the bound, or a failed read, at the file.
func readError(_ *bankformat.XMLIn, err error) error {
	if errors.Is(err, errTooLarge) {
		return &FieldError{Record: recordFile, Err: err}
	}
	return &FieldError{Record: recordFile, Err: fmt.Errorf("reading XML: %w", err)}
}

// Typed leaves of settlement files and acknowledgements.

func (x *xmlIn) id(name string, max int) string {
	return x.Checked(name, func(s string) error { return bankformat.CheckID(s, max) })
}

func (x *xmlIn) partyID(name string, max int) string {
	return x.Checked(name, func(s string) error { return checkAccountID(s, max) })
}

func (x *xmlIn) text(name string) string {
	return x.Checked(name, func(s string) error { return checkText(s, true) })
}

func (x *xmlIn) direction(name string) (d Direction) {
	x.Checked(name, func(s string) (err error) { d, err = parseDirection(s); return err })
	return d
}

func (x *xmlIn) date(name string) (d events.Date) {
	x.Checked(name, func(s string) (err error) { d, err = parseDate(s); return err })
	return d
}

// accountID reads Id/Othr/Id.
func (x *xmlIn) accountID() string {
	x.Open("Id")
	x.Open("Othr")
	v := x.partyID("Id", maxAccountIDBytes)
	x.Close("Othr")
	x.Close("Id")
	return v
}

// limitReader reads at most max bytes of r, and fails with errTooLarge if r has more.
type limitReader struct {
	r    io.Reader
	left int64
	max  int64
}

func newLimitReader(r io.Reader, max int64) *limitReader {
	return &limitReader{r: r, left: max, max: max}
}

func (l *limitReader) Read(p []byte) (int, error) {
	if l.left < 0 {
		return 0, fmt.Errorf("%w of %d bytes", errTooLarge, l.max)
	}
	if int64(len(p)) > l.left+1 {
		p = p[:l.left+1]
	}
	n, err := l.r.Read(p)
	l.left -= int64(n)
	if l.left < 0 {
		return 0, fmt.Errorf("%w of %d bytes", errTooLarge, l.max)
	}
	return n, err
}
