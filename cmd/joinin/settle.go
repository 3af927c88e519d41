package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/joinincard/engine/ledger"
	"github.com/joinincard/engine/postgres"
	"github.com/joinincard/engine/settlement"
	"github.com/joinincard/engine/settlement/bankfile"
	"github.com/joinincard/engine/settlement/calendar"
)

const (
	// autoSettleInterval is how often serve looks for a cycle due to close: a cycle closes within a
	// minute of its cut-off plus the grace.
	autoSettleInterval = time.Minute
	// defaultSettleGrace is how long after a cycle's cut-off serve closes it: time for late
	// batches to land (offline uploads keep arriving) and for an operator to close it by hand first.
	defaultSettleGrace = 10 * time.Minute
)

// settleFlags are the settlement options of the commands that close cycles.
type settleFlags struct {
	cutoffHour  int
	calendarDir string
	envErr      error // an environment variable that does not parse, reported by check
}

func addSettleFlags(fs *flag.FlagSet) *settleFlags {
	f := &settleFlags{}
	hour, err := strconv.Atoi(envOr("JOININ_CUTOFF_HOUR", strconv.Itoa(settlement.DefaultCutoffHour)))
	if err != nil {
		hour, f.envErr = settlement.DefaultCutoffHour, errors.New("JOININ_CUTOFF_HOUR: not a whole number")
	}
	fs.IntVar(&f.cutoffHour, "cutoff-hour", hour, "hour of the day (0-23, Asia/Shanghai) at which a settlement cycle closes: from 12 on the cycle's day, before 12 (0 is midnight) on the morning after (env JOININ_CUTOFF_HOUR)")
	fs.StringVar(&f.calendarDir, "calendar", envOr("JOININ_CALENDAR", ""),
		"directory of business-day calendars, one file per year YYYY.txt (env JOININ_CALENDAR), added to the mainland calendar built in: a year there replaces the built-in one")
	return f
}

// check reads the cut-off hour and the calendars the flags name, before anything is opened: a
// value out of range or a calendar that does not load is refused and changes nothing.
func (f *settleFlags) check() error {
	_, err := f.cycles()
	return err
}

// cycles are the settlement cycles the flags describe.
func (f *settleFlags) cycles() (settlement.Cycles, error) {
	if f.envErr != nil {
		return settlement.Cycles{}, f.envErr
	}
	cal, err := calendar.Load()
	if err != nil {
		return settlement.Cycles{}, fmt.Errorf("settlement calendar: %w", err)
	}
	if f.calendarDir != "" {
		added, err := calendar.LoadDir(os.DirFS(f.calendarDir))
		if err != nil {
			return settlement.Cycles{}, fmt.Errorf("--calendar %s: %w", f.calendarDir, err)
		}
		cal = cal.With(added)
	}
	cycles := settlement.Cycles{CutoffHour: f.cutoffHour, Calendar: cal}
	if err := cycles.Validate(); err != nil {
		return settlement.Cycles{}, fmt.Errorf("--cutoff-hour: %w", err)
	}
	return cycles, nil
}

// settlement returns the settlement engine on st by the flags.
func (f *settleFlags) settlement(st *postgres.Store) (*postgres.Settlement, error) {
	cycles, err := f.cycles()
	if err != nil {
		return nil, err
	}
	s, err := postgres.NewSettlement(st, cycles)
	if err != nil {
		return nil, fmt.Errorf("--cutoff-hour: %w", err)
	}
	return s, nil
}

func runSettle(ctx context.Context, args []string, stdout io.Writer) error {
	fs, c := newFlagSet("settle", "close a settlement cycle: its items, postings and the banks' files")
	sf := addSettleFlags(fs)
	date := fs.String("date", "", "the cycle to close, YYYY-MM-DD (default: the last cycle whose cut-off is reached, at the cut-off instant that cycle)")
	out := fs.String("out", "", "write the cycle's files and manifest under this directory, in a folder named after the cycle")
	var day *settlement.Date
	checkDate := func() error {
		if *date == "" {
			return nil
		}
		d, err := settlement.ParseDate(*date)
		if err != nil {
			return fmt.Errorf("--date: %s is not a day: want YYYY-MM-DD", *date)
		}
		day = &d
		return nil
	}
	checkOut := func() error {
		if *out == "" {
			return nil
		}
		return writableDir("--out", *out)
	}
	log, st, err := c.start(ctx, fs, args, sf.check, checkDate, checkOut)
	if err != nil {
		return err
	}
	defer st.Close()
	set, err := sf.settlement(st)
	if err != nil {
		return err
	}
	d := lastDue(set.Cycles(), st.Now(), 0)
	if day != nil {
		d = *day
	}
	cy, err := set.Close(ctx, d)
	if err != nil {
		return err
	}
	log.Info("cycle closed", "cycle", cy.Date, "value_date", cy.ValueDate)
	if err := printCycle(ctx, stdout, set, cy); err != nil {
		return err
	}
	if *out != "" {
		dir, err := writeCycleFiles(ctx, set, cy.Date, *out)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "files written under %s\n", dir)
	}
	return nil
}

// lastDue is the last cycle whose cut-off, plus grace, is reached at now: at the cut-off instant
// the cycle is over (a transfer stamped then is its last; the close stamps every later one after
// it).
func lastDue(c settlement.Cycles, now time.Time, grace time.Duration) settlement.Date {
	at := now.Add(-grace)
	d := c.CycleOf(at)
	if at.Before(c.Cutoff(d)) {
		return settlement.AddDays(d, -1)
	}
	return d
}

// printCycle prints a closed cycle's net positions per bank for people.
func printCycle(ctx context.Context, w io.Writer, set *postgres.Settlement, cy postgres.Cycle) error {
	pos, err := set.Positions(ctx, cy.Date)
	if err != nil {
		return err
	}
	files, err := set.Files(ctx, cy.Date)
	if err != nil {
		return err
	}
	span := fmt.Sprintf("%s to %s", cy.StartsAfter.Format(time.RFC3339), cy.EndsAt.Format(time.RFC3339))
	if cy.StartsAfter.Unix() == 0 {
		span = "the ledger's first cycle, up to " + cy.EndsAt.Format(time.RFC3339)
	}
	fmt.Fprintf(w, "settlement cycle %s (%s), value date %s, %s\n", cy.Date, span, cy.ValueDate, cy.Status)
	fmt.Fprintf(w, "  %-12s %6s %16s %16s %16s %16s %18s\n", "bank", "items", "spent", "earned", "fees", "medical fund", "net position")
	total := cy.FeeIncome
	for _, f := range files {
		p := pos.Bank(f.Header.BankID)
		total += p.Net
		fmt.Fprintf(w, "  %-12s %6d %16s %16s %16s %16s %18s\n", p.Bank, p.Items, money(p.Spent), money(p.Earned), money(p.Fees),
			money(p.MedicalFundShare), signed(p.Net))
	}
	if held := pos.Bank(""); held.Items > 0 {
		total += held.Net
		fmt.Fprintf(w, "  %-12s %6d items held for want of a settlement bank, %s\n", "(no bank)", held.Items, signed(held.Net))
	}
	fmt.Fprintf(w, "  fee income %s; net positions, held items and fee income sum to %s\n", money(cy.FeeIncome), signed(total))
	return nil
}

func money(fen int64) string { return ledger.FormatAmount(fen, "CNY") }

func signed(fen int64) string {
	if fen > 0 {
		return "+" + money(fen) + " receives"
	}
	if fen < 0 {
		return money(fen) + " pays"
	}
	return money(0)
}

// writeCycleFiles writes every bank's files of cycle d, as first written, and the cycle's
// manifest, under dir/<cycle>, checking each file against the manifest. Each file is written
// beside its place, flushed to disk and renamed into it, the manifest last: a file under its own
// name is whole, whenever the command stops, and a folder with the manifest holds every file.
func writeCycleFiles(ctx context.Context, set *postgres.Settlement, d settlement.Date, dir string) (string, error) {
	m, err := set.Manifest(ctx, "", d)
	if err != nil {
		return "", err
	}
	folder := filepath.Join(dir, d.String())
	if err := os.MkdirAll(folder, 0o755); err != nil {
		return "", fmt.Errorf("create %s: %w", folder, err)
	}
	for _, e := range m.Files {
		var buf bytes.Buffer
		if _, _, err := set.WriteFile(ctx, &buf, e.BankID, d, e.Format, false); err != nil {
			return "", err
		}
		if err := m.Verify(e.Name, buf.Bytes()); err != nil {
			return "", err
		}
		if err := writeWhole(folder, e.Name, buf.Bytes()); err != nil {
			return "", err
		}
	}
	var buf bytes.Buffer
	if err := bankfile.WriteManifest(&buf, m); err != nil {
		return "", err
	}
	if err := writeWhole(folder, "manifest.txt", buf.Bytes()); err != nil {
		return "", err
	}
	return folder, nil
}

// writableDir makes sure the files can be written under dir, named by flag, before anything is
// done that they record: it creates dir if it is missing, and a file in it, removed at once. A
// settle whose --out cannot be written then fails before it closes the cycle, with nothing changed.
func writableDir(flag, dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("%s %s: %w", flag, dir, err)
	}
	f, err := os.CreateTemp(dir, fmt.Sprintf(partPattern, "check"))
	if err != nil {
		return fmt.Errorf("%s %s: cannot write in it: %w", flag, dir, err)
	}
	name := f.Name()
	err = f.Close()
	if rerr := os.Remove(name); err == nil {
		err = rerr
	}
	if err != nil {
		return fmt.Errorf("%s %s: %w", flag, dir, err)
	}
	return nil
}

// partPattern names a file being written, in the folder it is renamed in once whole: hidden,
// and of its own for each run, so that two runs writing one folder at once never write into the
// same file, and a run killed leaves only files named so.
const partPattern = ".%s.*.part"

// writeWhole writes data to folder/name through a file of its own in folder, flushed to disk
// before the rename and the folder after it: the name never holds part of a file, even after a
// crash or a power cut, and a reader of the file the name held before sees that one whole.
func writeWhole(folder, name string, data []byte) (err error) {
	f, err := os.CreateTemp(folder, fmt.Sprintf(partPattern, name))
	if err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
			err = fmt.Errorf("write %s: %w", name, err)
		}
	}()
	if err := f.Chmod(0o644); err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(f.Name(), filepath.Join(folder, name)); err != nil {
		return err
	}
	return syncDir(folder)
}

// autoSettle closes, every autoSettleInterval, the cycles whose cut-off plus grace has passed,
// until ctx is done. Several serve processes may run it: a cycle closes once, whoever asks.
func autoSettle(ctx context.Context, set *postgres.Settlement, now func() time.Time, grace time.Duration, log *slog.Logger, m *serveMetrics) {
	t := time.NewTicker(autoSettleInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		d := lastDue(set.Cycles(), now(), grace)
		before, err := set.Cycle(ctx, d)
		if err == nil && before.Status == postgres.CycleClosed {
			continue
		}
		if err != nil && !errors.Is(err, postgres.ErrNotFound) {
			log.Warn("settlement", "cycle", d, "err", err)
			continue
		}
		began := time.Now()
		cy, err := set.Close(ctx, d)
		if err != nil {
			if ctx.Err() == nil {
				m.closeFailed.Inc()
				log.Error("settlement cycle did not close; the next try is in a minute", "cycle", d, "err", err)
			}
			continue
		}
		m.cyclesClosed.Inc()
		m.closeSeconds.Observe(time.Since(began).Seconds())
		log.Info("settlement cycle closed", "cycle", cy.Date, "value_date", cy.ValueDate)
	}
}

// durationEnv reads a duration from the environment variable key, or fallback; a value that is
// not a duration is an error, named by the variable, for the command to report once it starts.
func durationEnv(key string, fallback time.Duration) (time.Duration, error) {
	v, ok := os.LookupEnv(key)
	if !ok || v == "" {
		return fallback, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		return fallback, fmt.Errorf("%s: not a duration", key)
	}
	return d, nil
}

// boolEnv reads a true or false environment variable as a flag reads one (true, 1, false, 0,
// ...); unset or empty is fallback, anything else an error naming the variable.
func boolEnv(key string, fallback bool) (bool, error) {
	v, ok := os.LookupEnv(key)
	if !ok || v == "" {
		return fallback, nil
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		return fallback, fmt.Errorf("%s: %q is neither true nor false", key, v)
	}
	return b, nil
}
