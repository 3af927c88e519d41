package bankfile

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/joinincard/engine/events"
	"github.com/joinincard/engine/internal/bankformat"
)

// Format is a settlement file's format, as a manifest names it.
type Format string

const (
	FormatXML Format = "xml" // ISO 20022 camt.054, WriteXML
	FormatCSV Format = "csv" // WriteCSV
)

const (
	// manifestMagic is a manifest's first line, naming the format and its version.
	manifestMagic = "joinin-settlement-manifest v1"
	// manifestColumns is its second line, naming the fields of the lines that follow.
	manifestColumns = "name format bank_id cycle_date sequence size sha256"
	// MaxManifestFiles bounds the files one manifest lists: two formats for each bank of a cycle.
	// The mainland has about 4,500 banking institutions; 10,000 files is more than all of them.
	MaxManifestFiles = 10_000
	// maxFileNameBytes bounds a file name: the common file system limit.
	maxFileNameBytes = 255
	// maxManifestLineBytes bounds one line of a manifest: a name at its bound and the other fields.
	maxManifestLineBytes = maxFileNameBytes + 200
)

// Manifest lists the settlement files of a delivery with their sizes and SHA-256 checksums, so
// that a bank (and the engine, before sending) can check each file arrived whole.
type Manifest struct {
	Files []ManifestEntry
}

// ManifestEntry is one file of a manifest.
type ManifestEntry struct {
	Name      string // the file's name: 1 to 255 letters, digits, '.', '_' or '-', not starting with '.'
	Format    Format
	BankID    string
	CycleDate events.Date
	Sequence  int64
	Size      int64
	SHA256    [sha256.Size]byte
}

// NewManifestEntry describes content, a settlement file with header h written in format f.
func NewManifestEntry(name string, f Format, h Header, content []byte) ManifestEntry {
	return ManifestEntry{
		Name: name, Format: f, BankID: h.BankID, CycleDate: h.CycleDate, Sequence: h.Sequence,
		Size: int64(len(content)), SHA256: sha256.Sum256(content),
	}
}

// Verify refuses content unless the manifest lists name with content's size and SHA-256
// (ErrChecksum, or ErrNotInManifest), naming the file.
func (m Manifest) Verify(name string, content []byte) error {
	for _, e := range m.Files {
		if e.Name != name {
			continue
		}
		if int64(len(content)) != e.Size {
			return fmt.Errorf("%w: %s is %d bytes, the manifest says %d", ErrChecksum, printableName(name), len(content), e.Size)
		}
		if sum := sha256.Sum256(content); sum != e.SHA256 {
			return fmt.Errorf("%w: %s has SHA-256 %s, the manifest says %s", ErrChecksum, printableName(name), hex.EncodeToString(sum[:]), hex.EncodeToString(e.SHA256[:]))
		}
		return nil
	}
	return fmt.Errorf("%w: %s", ErrNotInManifest, printableName(name))
}

// WriteManifest writes m as text (docs/settlement-files.md): a first line naming the format, a
// line naming the fields, then one line per file sorted by name, fields separated by one space,
// "\n" line ends. It refuses duplicate names and invalid fields. The same files in any order give
// the same bytes.
func WriteManifest(w io.Writer, m Manifest) error {
	files := slices.Clone(m.Files)
	slices.SortFunc(files, func(a, b ManifestEntry) int { return strings.Compare(a.Name, b.Name) })
	if len(files) > MaxManifestFiles {
		return &FieldError{Record: recordManifest, Err: fmt.Errorf("more than %d files", MaxManifestFiles)}
	}
	for i, e := range files {
		if err := e.validate(); err != nil {
			return &FieldError{Record: recordManifest, Entry: i + 1, Field: err.field, Err: err.err}
		}
		if i > 0 && files[i-1].Name == e.Name {
			return &FieldError{Record: recordManifest, Entry: i + 1, Field: "Name", Err: errors.New("listed twice")}
		}
	}
	bw := bufio.NewWriter(w)
	bw.WriteString(manifestMagic + "\n" + manifestColumns + "\n")
	for _, e := range files {
		fmt.Fprintf(bw, "%s %s %s %s %d %d %s\n", e.Name, e.Format, e.BankID, e.CycleDate, e.Sequence, e.Size, hex.EncodeToString(e.SHA256[:]))
	}
	return bw.Flush()
}

// ReadManifest reads a manifest WriteManifest wrote, strictly: its two first lines, then files
// sorted by name with no name twice, each field valid, "\n" after every line.
func ReadManifest(r io.Reader) (Manifest, error) {
	var m Manifest
	sc := bufio.NewScanner(newLimitReader(r, int64(MaxManifestFiles+2)*maxManifestLineBytes))
	sc.Buffer(make([]byte, 0, 4096), maxManifestLineBytes)
	sc.Split(scanLinesLF)
	line := 0
	fail := func(field string, err error) (Manifest, error) {
		entry := 0
		if line > 2 {
			entry = line - 2
		}
		return Manifest{}, &FieldError{Record: recordManifest, Line: line, Entry: entry, Field: field, Err: err}
	}
	for sc.Scan() {
		line++
		text := sc.Text()
		switch line {
		case 1:
			if text != manifestMagic {
				return fail("", fmt.Errorf("the first line must be %q", manifestMagic))
			}
			continue
		case 2:
			if text != manifestColumns {
				return fail("", fmt.Errorf("the second line must be %q", manifestColumns))
			}
			continue
		}
		if len(m.Files) == MaxManifestFiles {
			return fail("", fmt.Errorf("more than %d files", MaxManifestFiles))
		}
		e, ferr := parseManifestLine(text)
		if ferr != nil {
			return fail(ferr.field, ferr.err)
		}
		if n := len(m.Files); n > 0 && m.Files[n-1].Name >= e.Name {
			return fail("name", errors.New("files must be sorted by name, each listed once"))
		}
		m.Files = append(m.Files, e)
	}
	if err := sc.Err(); err != nil {
		line++
		return fail("", err)
	}
	if line < 2 {
		line++
		return fail("", errors.New("the manifest ends before its column line"))
	}
	return m, nil
}

var errNoFinalNewline = errors.New(`the last line does not end with "\n"`)

// scanLinesLF splits at "\n" only, and refuses a last line without one or a carriage return.
func scanLinesLF(data []byte, atEOF bool) (int, []byte, error) {
	if i := bytes.IndexByte(data, '\n'); i >= 0 {
		if bytes.IndexByte(data[:i], '\r') >= 0 {
			return 0, nil, errCarriageReturn
		}
		return i + 1, data[:i], nil
	}
	if atEOF && len(data) > 0 {
		return 0, nil, errNoFinalNewline
	}
	return 0, nil, nil
}

type manifestError struct {
	field string
	err   error
}

func parseManifestLine(s string) (ManifestEntry, *manifestError) {
	var e ManifestEntry
	f := strings.Split(s, " ")
	if len(f) != 7 {
		return e, &manifestError{"", fmt.Errorf("has %d fields separated by single spaces, want 7", len(f))}
	}
	e.Name = f[0]
	e.Format = Format(f[1])
	e.BankID = f[2]
	var err error
	if e.CycleDate, err = parseDate(f[3]); err != nil {
		return e, &manifestError{"cycle_date", err}
	}
	if e.Sequence, err = bankformat.ParseCount(f[4]); err != nil {
		return e, &manifestError{"sequence", err}
	}
	if e.Size, err = bankformat.ParseCount(f[5]); err != nil {
		return e, &manifestError{"size", err}
	}
	if len(f[6]) != 2*sha256.Size || strings.ToLower(f[6]) != f[6] {
		return e, &manifestError{"sha256", errors.New("want 64 lower-case hex digits")}
	}
	if _, err := hex.Decode(e.SHA256[:], []byte(f[6])); err != nil {
		return e, &manifestError{"sha256", errors.New("want 64 lower-case hex digits")}
	}
	if verr := e.validate(); verr != nil {
		return e, &manifestError{manifestColumn[verr.field], verr.err}
	}
	return e, nil
}

var manifestColumn = map[string]string{
	"Name": "name", "Format": "format", "BankID": "bank_id", "CycleDate": "cycle_date",
	"Sequence": "sequence", "Size": "size",
}

func (e ManifestEntry) validate() *manifestError {
	if err := checkFileName(e.Name); err != nil {
		return &manifestError{"Name", err}
	}
	if e.Format != FormatXML && e.Format != FormatCSV {
		return &manifestError{"Format", errors.New("want xml or csv")}
	}
	if err := checkAccountID(e.BankID, maxAccountIDBytes); err != nil {
		return &manifestError{"BankID", err}
	}
	if err := bankformat.CheckDate(e.CycleDate); err != nil {
		return &manifestError{"CycleDate", err}
	}
	if e.Sequence < 1 {
		return &manifestError{"Sequence", errors.New("must be 1 or more")}
	}
	if e.Size < 0 {
		return &manifestError{"Size", errors.New("must not be negative")}
	}
	return nil
}

func checkFileName(s string) error {
	if s == "" || len(s) > maxFileNameBytes {
		return fmt.Errorf("must be 1 to %d bytes", maxFileNameBytes)
	}
	if s[0] == '.' {
		return errors.New("must not start with '.'")
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-') {
			return errors.New("holds only letters, digits, '.', '_' and '-'")
		}
	}
	return nil
}

// printableName returns name for an error if it is a valid file name, else a description.
func printableName(name string) string {
	if checkFileName(name) != nil {
		return "a file with an invalid name"
	}
	return "file " + name
}
