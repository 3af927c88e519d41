package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/joinincard/engine/ledger"
	"github.com/joinincard/engine/postgres"
	"github.com/joinincard/engine/reconcile"
	"github.com/joinincard/engine/reconcile/statement"
)

// reconcileFlags are the reconciliation options.
type reconcileFlags struct {
	rules string
}

func addReconcileFlags(fs *flag.FlagSet) *reconcileFlags {
	f := &reconcileFlags{}
	fs.StringVar(&f.rules, "reconcile-rules", envOr("JOININ_RECONCILE_RULES", ""),
		"file of matching tolerances (reconcile/rules.json's format); empty: the rules built in (env JOININ_RECONCILE_RULES)")
	return f
}

// read reads the matching tolerances: the file --reconcile-rules names, or the rules built in.
func (f *reconcileFlags) read() (*reconcile.RuleSet, error) {
	rules, err := reconcile.DefaultRules()
	if f.rules != "" {
		var file *os.File
		if file, err = os.Open(f.rules); err == nil {
			rules, err = reconcile.ReadRules(file)
			file.Close()
		}
	}
	if err != nil {
		return rules, fmt.Errorf("--reconcile-rules: %w", err)
	}
	return rules, nil
}

// check reads the rules before anything is opened: a file that cannot be read or does not check
// stops the command with nothing created or migrated.
func (f *reconcileFlags) check() error {
	_, err := f.read()
	return err
}

func (f *reconcileFlags) reconciler(st *postgres.Store) (*postgres.Reconciler, error) {
	rules, err := f.read()
	if err != nil {
		return nil, err
	}
	return postgres.NewReconciler(st, rules), nil
}

// runReconcile is `joinin reconcile import FILE...` and `joinin reconcile run`.
func runReconcile(ctx context.Context, args []string, stdout io.Writer) error {
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		fs, _ := newFlagSet("reconcile", "import bank statements (camt.053 XML or CSV) and match them with the settlement: "+
			"`reconcile import FILE...` imports and matches, `reconcile run` matches what was imported")
		addReconcileFlags(fs)
		if len(args) > 0 && (args[0] == "-h" || args[0] == "--help" || args[0] == "-help") {
			fs.Usage()
			return flag.ErrHelp
		}
		return errors.New("reconcile: want `reconcile import FILE...` or `reconcile run`")
	}
	sub, args := args[0], args[1:]
	fs, c := newFlagSet("reconcile "+sub, "import bank statements (camt.053 XML or CSV) and match them with the settlement; list what does not match")
	rf := addReconcileFlags(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	files := fs.Args()
	// The flags end at the first file: one written after the files would be taken for a file.
	for _, name := range files {
		if strings.HasPrefix(name, "-") && len(name) > 1 {
			return fmt.Errorf("reconcile %s: %s after the files: flags go before them (joinin reconcile %s [flags] FILE...)", sub, name, sub)
		}
	}
	switch {
	case sub == "import" && len(files) == 0:
		return errors.New("reconcile import: name the statement files")
	case sub == "run" && len(files) > 0:
		return errors.New("reconcile run takes no files")
	case sub != "import" && sub != "run":
		return fmt.Errorf("reconcile: unknown %q, want import or run", sub)
	}
	for _, name := range files {
		if _, err := statementFormat(name); err != nil {
			return err
		}
	}
	// Every statement is read through before any is imported: one that does not read is refused
	// and nothing is imported, rather than the files before it imported and nothing reconciled.
	headers := make([]statement.Header, len(files))
	for i, name := range files {
		h, err := readStatementFile(name)
		if err != nil {
			return fmt.Errorf("%s: %w (nothing was imported)", name, err)
		}
		headers[i] = h
	}
	if err := rf.check(); err != nil {
		return err
	}
	log, err := c.logger()
	if err != nil {
		return err
	}
	st, err := c.openStore(ctx, log)
	if err != nil {
		return err
	}
	defer st.Close()
	r, err := rf.reconciler(st)
	if err != nil {
		return err
	}
	// A statement whose period ends in the future is refused before any is imported too.
	for i, name := range files {
		if err := postgres.CheckStatementPeriod(headers[i], st.Now()); err != nil {
			return fmt.Errorf("%s: %w (nothing was imported)", name, err)
		}
	}
	for _, name := range files {
		imp, replayed, err := importFile(ctx, r, name)
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		what := "imported"
		if replayed {
			what = "imported before: nothing new"
		}
		fmt.Fprintf(stdout, "%s: statement %s of %s, sequence %d, %d entries: %s\n", filepath.Base(name), imp.Statement, imp.Bank,
			imp.Sequence, imp.Entries, what)
	}
	reps, err := r.ReconcileAll(ctx)
	if err != nil {
		return err
	}
	return printReconciliation(ctx, stdout, r, reps)
}

// statementFormat is the format of statement file name, told by its extension: .xml (camt.053) or
// .csv, in either case.
func statementFormat(name string) (statement.Format, error) {
	switch ext := filepath.Ext(name); {
	case strings.EqualFold(ext, ".xml"):
		return statement.FormatXML, nil
	case strings.EqualFold(ext, ".csv"):
		return statement.FormatCSV, nil
	}
	return "", fmt.Errorf("%s: want a .xml (camt.053) or .csv statement", name)
}

// openStatementFile opens the statement in file name, its format told by its extension. Close
// the file when done.
func openStatementFile(name string) (*statement.Reader, *os.File, error) {
	format, err := statementFormat(name)
	if err != nil {
		return nil, nil, err
	}
	f, err := os.Open(name)
	if err != nil {
		return nil, nil, err
	}
	rd, err := statement.Open(f, format)
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	return rd, f, nil
}

// readStatementFile reads the statement in file name through, as its import will, and imports
// nothing: its header, every entry and its totals. It returns the header as read at the end (a
// CSV statement's totals come in its trailer).
func readStatementFile(name string) (statement.Header, error) {
	rd, f, err := openStatementFile(name)
	if err != nil {
		return statement.Header{}, err
	}
	defer f.Close()
	for {
		if _, err := rd.Next(); err == io.EOF {
			return rd.Header(), nil
		} else if err != nil {
			return statement.Header{}, err
		}
	}
}

// importFile imports the statement in file name, its format told by its extension.
func importFile(ctx context.Context, r *postgres.Reconciler, name string) (postgres.Imported, bool, error) {
	rd, f, err := openStatementFile(name)
	if err != nil {
		return postgres.Imported{}, false, err
	}
	defer f.Close()
	return r.Import(ctx, rd)
}

// printReconciliation prints what a reconciliation found, then the breaks still open, by bank.
func printReconciliation(ctx context.Context, w io.Writer, r *postgres.Reconciler, reps []postgres.ReconcileReport) error {
	for _, rep := range reps {
		var kinds []string
		for _, k := range reconcile.BreakKinds() {
			if n := rep.Breaks[k]; n > 0 {
				kinds = append(kinds, fmt.Sprintf("%d %s", n, k))
			}
		}
		found := "no new break"
		if len(kinds) > 0 {
			found = strings.Join(kinds, ", ")
		}
		fmt.Fprintf(w, "reconciled %-8s %d new entries: %d matched, %d suggested, %s; %d breaks resolved\n",
			rep.Bank, rep.Entries, rep.Matched, rep.Suggested, found, rep.Resolved)
	}
	open, err := r.Breaks(ctx, postgres.BreakFilter{Open: true})
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "%d open breaks\n", len(open))
	sort.SliceStable(open, func(i, j int) bool { return open[i].Bank < open[j].Bank })
	for _, b := range open {
		amounts := ""
		if b.Expected != nil {
			amounts += " expected " + ledger.FormatAmount(*b.Expected, "CNY")
		}
		if b.Actual != nil {
			amounts += " booked " + ledger.FormatAmount(*b.Actual, "CNY")
		}
		fmt.Fprintf(w, "  %-8s %-18s %-7s days %-3d%s: %s\n", b.Bank, b.Kind, b.Bucket, b.Age, amounts, b.Detail)
	}
	return nil
}
