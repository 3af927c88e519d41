// Package archive is the format of a closed month's archive, the files a bank auditor reads: one
// CSV per kind of record (the month's transfers, every account's opening and closing balance,
// the settlement cycles and their items), a manifest that says what the month covers with its
// control totals, and SHA-256 checksums of every file in the form `sha256sum -c` checks.
//
// An archive is a function of the ledger: exporting the same month again gives the same bytes,
// so a second export proves that the month's history has not changed since the first.
package archive

import (
	"bytes"
	"crypto/sha256"
	"encoding/csv"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"path"
	"slices"
	"strings"
	"time"
)

// Names of the files every archive holds.
const (
	ManifestName  = "manifest.json"
	ChecksumsName = "SHA256SUMS"
)

// Manifest says what an archive covers and holds. Amounts are decimal strings in their currency.
type Manifest struct {
	// Format names this layout, for readers of archives written by later versions.
	Format string `json:"format"`
	// Month is the calendar month (YYYY-MM) of the settlement cycles archived: every transfer
	// stamped after StartsAfter (the cut-off before the month's first cycle) and up to EndsAt
	// (the cut-off of its last).
	Month       string    `json:"month"`
	StartsAfter time.Time `json:"starts_after"`
	EndsAt      time.Time `json:"ends_at"`
	Cycles      int       `json:"cycles"`
	// Files are the data files, in the order written, with their rows (header excluded), size
	// and checksum.
	Files []File `json:"files"`
	// Totals are the control totals per currency.
	Totals []Totals `json:"totals"`
}

// The layouts of an archive. A month is exported again in the layout of its first export, so
// that its bytes stay the same; a new month is exported in Format.
const (
	// FormatV1: settlement_items.csv does not say which items a bank rejected, so its settlement
	// net cannot be recomputed from the files.
	FormatV1 = "joinin-month-archive/1"
	// FormatV2 adds settlement_items.csv's column rejected: true for an item its bank rejected
	// in its acknowledgement, which the settlement net leaves out.
	FormatV2 = "joinin-month-archive/2"
	// Format is the layout of a month's first export.
	Format = FormatV2
)

// DataFile is one data file of an archive: its name and header row.
type DataFile struct {
	Name   string
	Header []string
}

// DataFiles returns the data files of an archive in format, in the order they are written.
func DataFiles(format string) ([]DataFile, error) {
	items := []string{"cycle_date", "item_id", "bank_id", "kind", "party", "party_name", "amount", "currency", "entries", "reoffers"}
	switch format {
	case FormatV1:
	case FormatV2:
		items = append(items, "rejected")
	default:
		return nil, fmt.Errorf("archive format %q: not one this engine reads or writes", format)
	}
	return []DataFile{
		{"cycles.csv", []string{"cycle_date", "starts_after", "ends_at", "value_date", "fee_income", "closed_at"}},
		{"transfers.csv", []string{"id", "ts", "debit_account_id", "credit_account_id", "amount", "currency", "code", "flags",
			"ref_id", "user_data", "timeout_seconds"}},
		{"accounts.csv", []string{"account_id", "kind", "currency", "opening_net", "debits_posted", "credits_posted", "closing_net"}},
		{"settlement_items.csv", items},
	}, nil
}

// File is one data file of an archive.
type File struct {
	Name   string `json:"name"`
	Rows   int64  `json:"rows"`
	Bytes  int64  `json:"bytes"`
	SHA256 string `json:"sha256"`
}

// Totals are a currency's control totals: the month's transfers, and the sum over every account
// of its posted balance (credits less debits) at the month's start and end, which is zero in a
// ledger whose every transfer debits one account what it credits another; Debits and Credits are
// what the month posted, equal for the same reason.
type Totals struct {
	Currency       string `json:"currency"`
	Transfers      int64  `json:"transfers"`
	TransferAmount string `json:"transfer_amount"`
	Accounts       int64  `json:"accounts"`
	Opening        string `json:"opening_net"`
	Debits         string `json:"debits_posted"`
	Credits        string `json:"credits_posted"`
	Closing        string `json:"closing_net"`
	SettlementNet  string `json:"settlement_items_net"` // the month's settlement items, but those a bank rejected
}

// Table writes one CSV file of an archive, counting its rows and bytes and hashing it as it goes.
type Table struct {
	name string
	cols int
	csv  *csv.Writer
	out  hashingWriter
	rows int64
}

// hashingWriter passes writes on to w, hashing and counting what w took.
type hashingWriter struct {
	w     io.Writer
	h     hash.Hash
	bytes int64
}

func (h *hashingWriter) Write(p []byte) (int, error) {
	n, err := h.w.Write(p)
	h.h.Write(p[:n])
	h.bytes += int64(n)
	return n, err
}

// NewTable starts file name on w with its header row. name is a bare file name ending in .csv.
func NewTable(w io.Writer, name string, header []string) (*Table, error) {
	if name == "" || path.Base(name) != name || !strings.HasSuffix(name, ".csv") {
		return nil, fmt.Errorf("archive file name %q: want a bare name ending in .csv", name)
	}
	t := &Table{name: name, cols: len(header), out: hashingWriter{w: w, h: sha256.New()}}
	t.csv = csv.NewWriter(&t.out)
	if err := t.csv.Write(header); err != nil {
		return nil, fmt.Errorf("write %s: %w", name, err)
	}
	return t, nil
}

// Row writes one record. Every text field goes through Text first where it may start like a
// formula; Row checks only the number of fields.
func (t *Table) Row(fields ...string) error {
	if len(fields) != t.cols {
		return fmt.Errorf("%s: row of %d fields, the header has %d", t.name, len(fields), t.cols)
	}
	if err := t.csv.Write(fields); err != nil {
		return fmt.Errorf("write %s: %w", t.name, err)
	}
	t.rows++
	return nil
}

// Close flushes the file and returns its entry for the manifest.
func (t *Table) Close() (File, error) {
	t.csv.Flush()
	if err := t.csv.Error(); err != nil {
		return File{}, fmt.Errorf("write %s: %w", t.name, err)
	}
	return File{Name: t.name, Rows: t.rows, Bytes: t.out.bytes, SHA256: hex.EncodeToString(t.out.h.Sum(nil))}, nil
}

// Text makes a text field safe for a spreadsheet: a value starting with = + - @, a tab, a
// carriage return or ' gets a leading ', as every CSV the engine writes for people does.
func Text(s string) string {
	if s != "" && strings.IndexByte("=+-@\t\r'", s[0]) >= 0 {
		return "'" + s
	}
	return s
}

// WriteManifest writes m as indented JSON.
func WriteManifest(w io.Writer, m Manifest) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(m); err != nil {
		return fmt.Errorf("write manifest: %w", err)
	}
	return nil
}

// WriteChecksums writes the checksums of the data files and of the manifest (whose bytes are
// given) in the format `sha256sum -c` reads.
func WriteChecksums(w io.Writer, files []File, manifest []byte) error {
	sum := sha256.Sum256(manifest)
	var b bytes.Buffer
	for _, f := range files {
		fmt.Fprintf(&b, "%s  %s\n", f.SHA256, f.Name)
	}
	fmt.Fprintf(&b, "%s  %s\n", hex.EncodeToString(sum[:]), ManifestName)
	if _, err := w.Write(b.Bytes()); err != nil {
		return fmt.Errorf("write checksums: %w", err)
	}
	return nil
}

// ErrCorrupt is returned by Check for an archive whose files do not match its manifest and
// checksums.
var ErrCorrupt = errors.New("archive does not match its checksums")

// Check reads the archive in fsys and checks it whole: the checksum list names exactly the
// manifest and its files, and every file's size, rows and SHA-256 are as recorded. It returns
// the manifest.
func Check(fsys fs.FS) (Manifest, error) {
	var m Manifest
	raw, err := fs.ReadFile(fsys, ManifestName)
	if err != nil {
		return m, fmt.Errorf("read manifest: %w", err)
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil {
		return m, fmt.Errorf("manifest: %w: %w", ErrCorrupt, err)
	}
	if _, err := DataFiles(m.Format); err != nil {
		return m, fmt.Errorf("manifest: %w: %w", ErrCorrupt, err)
	}
	sums, err := fs.ReadFile(fsys, ChecksumsName)
	if err != nil {
		return m, fmt.Errorf("read checksums: %w", err)
	}
	want := map[string]string{}
	for i, line := range strings.Split(strings.TrimSuffix(string(sums), "\n"), "\n") {
		sum, name, ok := strings.Cut(line, "  ")
		if !ok || len(sum) != 2*sha256.Size {
			return m, fmt.Errorf("%s line %d: %w", ChecksumsName, i+1, ErrCorrupt)
		}
		if _, dup := want[name]; dup {
			return m, fmt.Errorf("%s names %s twice: %w", ChecksumsName, name, ErrCorrupt)
		}
		want[name] = sum
	}
	manifestSum := sha256.Sum256(raw)
	if want[ManifestName] != hex.EncodeToString(manifestSum[:]) {
		return m, fmt.Errorf("%s: checksum differs: %w", ManifestName, ErrCorrupt)
	}
	if len(want) != len(m.Files)+1 {
		return m, fmt.Errorf("%s lists %d files, the manifest %d: %w", ChecksumsName, len(want)-1, len(m.Files), ErrCorrupt)
	}
	for _, f := range m.Files {
		if want[f.Name] != f.SHA256 {
			return m, fmt.Errorf("%s: checksum in the manifest and in %s differ: %w", f.Name, ChecksumsName, ErrCorrupt)
		}
		if err := checkFile(fsys, f); err != nil {
			return m, err
		}
	}
	return m, nil
}

func checkFile(fsys fs.FS, f File) error {
	r, err := fsys.Open(f.Name)
	if err != nil {
		return fmt.Errorf("open %s: %w", f.Name, err)
	}
	defer r.Close()
	h := sha256.New()
	cr := csv.NewReader(io.TeeReader(r, h))
	cr.ReuseRecord = true
	var rows int64 = -1 // the header
	for {
		if _, err := cr.Read(); err == io.EOF {
			break
		} else if err != nil {
			return fmt.Errorf("%s: %w: %w", f.Name, ErrCorrupt, err)
		}
		rows++
	}
	if _, err := io.Copy(h, r); err != nil {
		return fmt.Errorf("read %s: %w", f.Name, err)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != f.SHA256 {
		return fmt.Errorf("%s: checksum differs: %w", f.Name, ErrCorrupt)
	}
	if rows != f.Rows {
		return fmt.Errorf("%s: %d rows, the manifest says %d: %w", f.Name, rows, f.Rows, ErrCorrupt)
	}
	return nil
}

// SortTotals orders totals by currency, the order a manifest lists them in.
func SortTotals(t []Totals) {
	slices.SortFunc(t, func(a, b Totals) int { return strings.Compare(a.Currency, b.Currency) })
}
