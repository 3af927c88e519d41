// Command joinin is the Join in Card clearing and settlement engine.
//
// Usage:
//
//	joinin <command> [flags]
//
// `joinin help` lists the commands (migrate, demo, serve, settle, reconcile, verify, archive,
// broker, the load tests and bench-report) with one line each; `joinin help <command>` prints the
// flags of one.
//
// The settings of a deployment can also be set by environment variables, each named on its flag's
// help line; README.md lists the flags that have none.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"text/tabwriter"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/joinincard/engine/postgres"
)

type command struct {
	name    string
	summary string
	run     func(ctx context.Context, args []string, stdout io.Writer) error
}

func commands() []command {
	return []command{
		{"migrate", "apply the database schema", runMigrate},
		{"demo", "run a city day end to end through Kafka into the ledger and print what it did", runDemo},
		{"verify", "checkpoint the closed days and check what came after the newest checkpoint (--full: everything)", runVerify},
		{"serve", "consume card events from Kafka into the ledger and serve HTTP", runServe},
		{"broker", "run an embedded Kafka broker on this machine (a pilot without a Kafka cluster)", runBroker},
		{"loadtest", "produce a city's card events into Kafka, consume them into the ledger, print the figures as JSON", runLoadtest},
		{"settle", "close a settlement cycle: its items, postings and the banks' files", runSettle},
		{"reconcile", "import bank statements (camt.053 XML or CSV), match them with the settlement, list the breaks: `reconcile import FILE...` or `reconcile run`", runReconcile},
		{"loadtest-reconcile", "import and match a bank statement of a million entries in a database of its own; print seconds and peak memory as JSON", runLoadReconcile},
		{"loadtest-settle", "close a settlement cycle of millions of transfers in a database of its own; print seconds and peak memory as JSON", runLoadSettle},
		{"loadtest-taps", "upload a day of metro taps in batches over HTTP and send another as transit.tap events over Kafka, in a database of its own; print each door's taps/s as JSON", runLoadTaps},
		{"loadtest-cityday", "run a city day through Kafka and the purchase, transit and medical APIs in a database of its own; compare the ledger with a model of the day; print the figures as JSON", runLoadCityDay},
		{"loadtest-auth", "drive POST /v1/authorizations over HTTP in a database of its own: open loop at a rate, a rate sweep, closed loop with concurrent clients, optionally on tables pre-filled with earlier requests; print latency and authorizations/s as JSON", runLoadAuth},
		{"loadtest-transfers", "drive POST /v1/transfers over HTTP with concurrent clients in a database of its own; print transfers/s and latency as JSON", runLoadTransfers},
		{"loadtest-verify", "write transfers over many days into a database of its own, then time joinin verify --full against joinin verify from the newest checkpoint; print JSON", runLoadVerify},
		{"archive", "export a settled and reconciled month for auditors, with checksums (--month, --out, --by); or check an archive (--check DIR)", runArchive},
		{"bench-report", "print one table of the figures `make bench` wrote into a directory, with their goals, and the Go benchmarks' medians", runBenchReport},
	}
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(exitStatus(run(ctx, os.Args[1:], os.Stdout, os.Stderr), os.Stderr))
}

// exitStatus prints err, if any, on stderr as one line and returns the process's exit status:
// 0 when the command succeeded or the flags were asked for (--help), 2 when it failed.
func exitStatus(err error, stderr io.Writer) int {
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return 0
	}
	fmt.Fprintf(stderr, "joinin: %v\n", err)
	return 2
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) >= 2 && args[0] == "help" {
		// `joinin help X` is `joinin X --help`, and `joinin help reconcile run` is
		// `joinin reconcile run --help`.
		args = append(slices.Clone(args[1:]), "--help")
	}
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(stderr)
		if len(args) == 0 {
			return errors.New("no command given")
		}
		return nil
	}
	for _, c := range commands() {
		if c.name == args[0] {
			return c.run(ctx, args[1:], stdout)
		}
	}
	usage(stderr)
	return fmt.Errorf("unknown command %q", args[0])
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "joinin: the Join in Card clearing and settlement engine")
	fmt.Fprintln(w, "\nUsage: joinin <command> [flags]   (joinin help <command> for its flags)")
	fmt.Fprintln(w, "\nCommands:")
	// The summaries start in one column, after the longest name.
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, c := range commands() {
		fmt.Fprintf(tw, "  %s\t%s\n", c.name, c.summary)
	}
	tw.Flush()
}

// common holds the flags every command takes.
type common struct {
	databaseURL string
	logLevel    string
	logFormat   string
	// create lets the command create its database when it is missing (migrate, serve, demo). The
	// commands that read a ledger refuse one that is not there: a mistyped name would otherwise
	// get an empty ledger of its own, verified and settled as if it were the one meant.
	create bool
}

func newFlagSet(name, summary string) (*flag.FlagSet, *common) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	c := &common{}
	fs.StringVar(&c.databaseURL, "database-url", envOr("DATABASE_URL", postgres.DefaultURL),
		"PostgreSQL or CockroachDB URL (env DATABASE_URL)")
	fs.StringVar(&c.logLevel, "log-level", envOr("JOININ_LOG_LEVEL", "info"), "debug, info, warn or error (env JOININ_LOG_LEVEL)")
	fs.StringVar(&c.logFormat, "log-format", envOr("JOININ_LOG_FORMAT", "text"), "text or json (env JOININ_LOG_FORMAT)")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "joinin %s: %s\n\nFlags:\n", name, summary)
		fs.PrintDefaults()
	}
	return fs, c
}

// parseFlags parses a command's flags. A wrong flag is one line, the error returned, naming
// where the flags are listed, not the whole list after it; --help prints the list and returns
// flag.ErrHelp, which is no failure.
func parseFlags(fs *flag.FlagSet, args []string) error {
	usage := fs.Usage
	fs.Usage = func() {}
	fs.SetOutput(io.Discard)
	err := fs.Parse(args)
	fs.SetOutput(nil)
	fs.Usage = usage
	switch {
	case errors.Is(err, flag.ErrHelp):
		fs.Usage()
		return err
	case err != nil:
		return fmt.Errorf("%w (joinin %s --help lists the flags)", err, fs.Name())
	}
	return nil
}

func envOr(key, fallback string) string {
	if v, ok := os.LookupEnv(key); ok && v != "" {
		return v
	}
	return fallback
}

// logger builds the structured logger the flags ask for. Logs go to stderr; what a command
// reports for people goes to stdout.
func (c *common) logger() (*slog.Logger, error) {
	return c.loggerTo(os.Stderr)
}

// loggerTo builds the logger writing to w. Every line goes through redactingHandler.
func (c *common) loggerTo(w io.Writer) (*slog.Logger, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(c.logLevel)); err != nil {
		return nil, fmt.Errorf("--log-level: %w", err)
	}
	opts := &slog.HandlerOptions{Level: level}
	switch strings.ToLower(c.logFormat) {
	case "text":
		return slog.New(redactingHandler{next: slog.NewTextHandler(w, opts)}), nil
	case "json":
		return slog.New(redactingHandler{next: slog.NewJSONHandler(w, opts)}), nil
	}
	return nil, fmt.Errorf("--log-format: %q is neither text nor json", c.logFormat)
}

// openStore connects and migrates, creating the database first if it is missing and the
// command may create it.
func (c *common) openStore(ctx context.Context, log *slog.Logger) (*postgres.Store, error) {
	if c.create {
		if err := postgres.EnsureDatabase(ctx, c.databaseURL); err != nil {
			return nil, err
		}
	}
	st, err := postgres.Open(ctx, c.databaseURL)
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "3D000" { // invalid_catalog_name
		name := "named by --database-url"
		if cfg, perr := pgx.ParseConfig(c.databaseURL); perr == nil {
			name = cfg.Database
		}
		return nil, fmt.Errorf("database %s does not exist: joinin migrate creates it", name)
	}
	if err != nil {
		return nil, err
	}
	if err := st.Migrate(ctx); err != nil {
		st.Close()
		return nil, err
	}
	log.Debug("database ready")
	return st, nil
}

// start parses a command's flags, runs checks on their values, builds its logger and opens its
// store, migrated. A check that fails stops the command before the database is created or
// migrated: a value out of range changes nothing.
func (c *common) start(ctx context.Context, fs *flag.FlagSet, args []string, checks ...func() error) (*slog.Logger, *postgres.Store, error) {
	if err := parseFlags(fs, args); err != nil {
		return nil, nil, err
	}
	if fs.NArg() > 0 {
		return nil, nil, fmt.Errorf("%s takes no arguments, got %q", fs.Name(), fs.Args())
	}
	for _, check := range checks {
		if err := check(); err != nil {
			return nil, nil, err
		}
	}
	log, err := c.logger()
	if err != nil {
		return nil, nil, err
	}
	st, err := c.openStore(ctx, log)
	if err != nil {
		return nil, nil, err
	}
	return log, st, nil
}

func runMigrate(ctx context.Context, args []string, stdout io.Writer) error {
	fs, c := newFlagSet("migrate", "apply the database schema (creating the database if missing)")
	c.create = true
	_, st, err := c.start(ctx, fs, args)
	if err != nil {
		return err
	}
	st.Close()
	fmt.Fprintln(stdout, "schema is up to date")
	return nil
}

func runVerify(ctx context.Context, args []string, stdout io.Writer) error {
	fs, c := newFlagSet("verify", "checkpoint the closed days, then check what came after the newest checkpoint (--full: everything)")
	full := fs.Bool("full", false, "check the whole history and recompute every checkpoint's digest, "+
		"instead of checkpointing the closed days and checking what came after the newest checkpoint")
	_, st, err := c.start(ctx, fs, args)
	if err != nil {
		return err
	}
	defer st.Close()
	verify := st.VerifyIncremental
	if *full {
		verify = st.VerifyFull
	}
	rep, err := verify(ctx)
	if err != nil {
		return err
	}
	fmt.Fprint(stdout, rep.String())
	if !rep.OK() {
		return fmt.Errorf("ledger failed verification with %d problems", len(rep.Problems))
	}
	return nil
}
