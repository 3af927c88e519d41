package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/joinincard/engine/archive"
	"github.com/joinincard/engine/events"
	"github.com/joinincard/engine/postgres"
)

// runArchive exports a closed month for auditors (--month, --out, --by), or checks an archive's
// files against its checksums (--check DIR).
func runArchive(ctx context.Context, args []string, stdout io.Writer) error {
	fs, c := newFlagSet("archive", "export a settled and reconciled month for auditors, with checksums (--month, --out, --by); or check an archive (--check DIR)")
	sf := addSettleFlags(fs)
	month := fs.String("month", "", "the month to export, YYYY-MM: every settlement cycle of it closed and reconciled")
	out := fs.String("out", "", "directory to create and write the archive into; it must not exist")
	by := fs.String("by", "", "who asks for the archive, recorded with it (an admin action)")
	check := fs.String("check", "", "check the archive in this directory against its manifest and checksums, recompute its control totals from its files, and print them")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *check != "" {
		if *month != "" || *out != "" || fs.NArg() > 0 {
			return errors.New("--check takes a directory and nothing else")
		}
		m, err := archive.Check(os.DirFS(*check))
		if err != nil {
			return err
		}
		// Checksums made again over a changed file match: the totals recomputed from the files
		// do not.
		if err := archive.CheckTotals(os.DirFS(*check), m); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "archive of %s: %d cycles, %d files, every checksum matches, the control totals add up\n", m.Month, m.Cycles, len(m.Files))
		printArchiveTotals(stdout, m)
		return nil
	}
	p, err := parseMonth(*month)
	if err != nil {
		return fmt.Errorf("--month: %w", err)
	}
	if *out == "" || strings.TrimSpace(*by) == "" {
		return errors.New("--out and --by are required")
	}
	// Who asks is logged and written in the archive's manifest, for auditors: never a card
	// number in clear, nor repeated.
	if events.ContainsCardNumber(*by) {
		return errors.New("--by: looks like a card number in clear: name who asks for the archive")
	}
	if events.MayBePersonalNumber(*by) {
		return errors.New("--by: may hold a passport, social security, resident id or work permit number: name who asks for the archive")
	}
	if _, err := os.Stat(*out); err == nil {
		return fmt.Errorf("--out %s exists: an archive goes into a directory of its own", *out)
	}
	log, st, err := c.start(ctx, fs, nil, sf.check)
	if err != nil {
		return err
	}
	defer st.Close()
	set, err := sf.settlement(st)
	if err != nil {
		return err
	}
	// Written beside its final place, in a hidden directory of this run's own, and renamed when
	// whole: a directory named --out is a complete archive, and runs at once into one --out
	// never write into each other's files.
	parent, base := filepath.Split(filepath.Clean(*out))
	if parent == "" {
		parent = "."
	}
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return fmt.Errorf("create %s: %w", parent, err)
	}
	partial, err := os.MkdirTemp(parent, "."+base+".*.partial")
	if err != nil {
		return fmt.Errorf("archive: %w", err)
	}
	if err := os.Chmod(partial, 0o750); err != nil {
		os.RemoveAll(partial)
		return fmt.Errorf("archive: %w", err)
	}
	m, outcome, err := set.ArchiveMonth(ctx, p, *by, dirSink(partial))
	if err != nil {
		log.Warn("archive refused", "month", p.String(), "by", *by, "err", err)
		os.RemoveAll(partial)
		return err
	}
	if err := os.Rename(partial, *out); err != nil {
		os.RemoveAll(partial)
		if _, serr := os.Stat(*out); serr == nil {
			return fmt.Errorf("--out %s exists: another run wrote the archive there first", *out)
		}
		return fmt.Errorf("archive: %w", err)
	}
	if err := syncDir(parent); err != nil {
		return fmt.Errorf("archive: %w", err)
	}
	log.Info("month archived", "month", p.String(), "by", *by, "outcome", outcome, "dir", *out)
	fmt.Fprintf(stdout, "archive of %s %s into %s: %d cycles, %s to %s\n", m.Month, outcome, *out, m.Cycles,
		m.StartsAfter.Format(time.RFC3339), m.EndsAt.Format(time.RFC3339))
	for _, f := range m.Files {
		fmt.Fprintf(stdout, "  %-22s %10d rows %14d bytes  sha256 %s\n", f.Name, f.Rows, f.Bytes, f.SHA256)
	}
	printArchiveTotals(stdout, m)
	return nil
}

func printArchiveTotals(w io.Writer, m archive.Manifest) {
	for _, t := range m.Totals {
		fmt.Fprintf(w, "  %s: %d transfers of %s; %d accounts, opening %s, posted debits %s credits %s, closing %s; settled net %s\n",
			t.Currency, t.Transfers, t.TransferAmount, t.Accounts, t.Opening, t.Debits, t.Credits, t.Closing, t.SettlementNet)
	}
}

// parseMonth reads YYYY-MM.
func parseMonth(s string) (events.Period, error) {
	y, mo, ok := strings.Cut(s, "-")
	year, err1 := strconv.Atoi(y)
	month, err2 := strconv.Atoi(mo)
	if !ok || len(y) != 4 || len(mo) != 2 || err1 != nil || err2 != nil || month < 1 || month > 12 {
		return events.Period{}, errors.New("want a month written YYYY-MM")
	}
	return events.Period{Year: year, Month: time.Month(month)}, nil
}

// dirSink writes an archive's files into a directory.
type dirSink string

var _ postgres.ArchiveSink = dirSink("")

func (d dirSink) Create(name string) (io.WriteCloser, error) {
	f, err := os.OpenFile(filepath.Join(string(d), name), os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o640)
	if err != nil {
		return nil, err
	}
	return &syncedFile{f}, nil
}

// syncDir flushes a directory's entries to disk: a file renamed in it stays renamed after a
// power cut.
func syncDir(path string) error {
	d, err := os.Open(path)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// syncedFile is flushed to disk when closed: an archive is complete on disk when it is renamed.
type syncedFile struct{ *os.File }

func (f *syncedFile) Close() error {
	if err := f.File.Sync(); err != nil {
		f.File.Close()
		return err
	}
	return f.File.Close()
}
