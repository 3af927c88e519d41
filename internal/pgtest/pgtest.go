// Package pgtest gives every test its own database on the real PostgreSQL: a package's TestMain
// migrates a template database once, each test gets a copy of it, and the copy is verified and
// dropped when the test ends. Tests therefore never see each other's data, and every integration
// test ends with the ledger's property check: each balance recomputes from its transfers and every
// currency sums to zero.
package pgtest

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/joinincard/engine/postgres"
)

// DefaultServerURL is where tests create their databases unless DATABASE_URL says otherwise.
const DefaultServerURL = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"

var (
	template string // the migrated template of this test binary, set by Main
	serial   atomic.Int64
)

// ServerURL is the PostgreSQL server tests use: DATABASE_URL (its database name is ignored: each
// test gets its own), or the local default.
func ServerURL() string {
	if u := os.Getenv("DATABASE_URL"); u != "" {
		return u
	}
	return DefaultServerURL
}

// URLFor returns the server URL with its database replaced by name.
func URLFor(name string) (string, error) {
	cfg, err := pgx.ParseConfig(ServerURL())
	if err != nil {
		return "", fmt.Errorf("parse DATABASE_URL: %w", err)
	}
	u := fmt.Sprintf("postgres://%s@%s:%d/%s?sslmode=disable", cfg.User, cfg.Host, cfg.Port, name)
	if cfg.Password != "" {
		u = fmt.Sprintf("postgres://%s:%s@%s:%d/%s?sslmode=disable", cfg.User, cfg.Password, cfg.Host, cfg.Port, name)
	}
	return u, nil
}

// Main runs a package's tests with a migrated template database, dropped afterwards. Call it from
// TestMain with a short name for the package.
func Main(m *testing.M, pkg string) {
	os.Exit(run(m, pkg))
}

func run(m *testing.M, pkg string) int {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	template = fmt.Sprintf("joinin_test_%s_%d_tmpl", pkg, os.Getpid())
	err := createTemplate(ctx, template)
	cancel()
	if err != nil {
		fmt.Fprintf(os.Stderr, "pgtest: %v\n", err)
		return 1
	}
	code := m.Run()
	ctx, cancel = context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := exec(ctx, "DROP DATABASE IF EXISTS "+template+" WITH (FORCE)"); err != nil {
		fmt.Fprintf(os.Stderr, "pgtest: drop template: %v\n", err)
	}
	return code
}

func createTemplate(ctx context.Context, name string) error {
	if err := exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
		return err
	}
	if err := exec(ctx, "CREATE DATABASE "+name); err != nil {
		return err
	}
	u, err := URLFor(name)
	if err != nil {
		return err
	}
	st, err := postgres.Open(ctx, u)
	if err != nil {
		return err
	}
	defer st.Close()
	return st.Migrate(ctx)
}

// exec runs an administrative statement in the server's postgres database.
func exec(ctx context.Context, sql string) error {
	admin, err := URLFor("postgres")
	if err != nil {
		return err
	}
	conn, err := pgx.Connect(ctx, admin)
	if err != nil {
		return fmt.Errorf("connect to %s: %w", admin, err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, sql); err != nil {
		return fmt.Errorf("%s: %w", sql, err)
	}
	return nil
}

// NewDatabase creates an empty, migrated database for t and returns its URL. When t ends the
// ledger in it is verified (a failed check fails t) and the database is dropped.
func NewDatabase(t testing.TB) string {
	t.Helper()
	if template == "" {
		t.Fatal("pgtest: the package's TestMain must call pgtest.Main")
	}
	name := fmt.Sprintf("%s_%d", strings.TrimSuffix(template, "_tmpl"), serial.Add(1))
	ctx := context.Background()
	if err := exec(ctx, "CREATE DATABASE "+name+" TEMPLATE "+template); err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	u, err := URLFor(name)
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	t.Cleanup(func() {
		if !t.Failed() {
			VerifyURL(t, u)
		}
		if err := exec(context.Background(), "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			t.Errorf("pgtest: %v", err)
		}
	})
	return u
}

// NewStore opens a Store on a new database for t (see NewDatabase), closed when t ends.
func NewStore(t testing.TB) *postgres.Store {
	t.Helper()
	return Open(t, NewDatabase(t))
}

// Open opens a Store on the database at u, closed when t ends.
func Open(t testing.TB, u string) *postgres.Store {
	t.Helper()
	st, err := postgres.Open(context.Background(), u)
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	t.Cleanup(st.Close)
	return st
}

// ClockFrom makes st's clock run from start: start plus the time passed since the call. A test
// whose events carry fixed dates sets it a little after them, so that the engine receives them as
// it would have then: within an offline purchase's presentment window, for one.
func ClockFrom(st *postgres.Store, start time.Time) {
	t0 := time.Now()
	st.Now = func() time.Time { return start.Add(time.Since(t0)) }
}

// VerifyURL runs the ledger's verification on the database at u and fails t on any problem.
func VerifyURL(t testing.TB, u string) {
	t.Helper()
	ctx := context.Background()
	st, err := postgres.Open(ctx, u)
	if err != nil {
		t.Errorf("pgtest: verify: %v", err)
		return
	}
	defer st.Close()
	rep, err := st.Verify(ctx)
	if err != nil {
		t.Errorf("pgtest: verify: %v", err)
		return
	}
	if !rep.OK() {
		t.Errorf("pgtest: ledger failed verification:\n%s", rep.String())
		return
	}
	// The incremental check (checkpointing the closed days, then checking the rest against the
	// newest checkpoint) must find the same ledger sound, with the same counts and trial balance.
	inc, err := st.VerifyIncremental(ctx)
	if err != nil {
		t.Errorf("pgtest: verify incrementally: %v", err)
		return
	}
	if !inc.OK() || inc.Accounts != rep.Accounts || inc.Transfers != rep.Transfers ||
		fmt.Sprint(inc.Currencies) != fmt.Sprint(rep.Currencies) {
		t.Errorf("pgtest: incremental verification disagrees with the full one:\nfull:\n%s\nincremental:\n%s", rep.String(), inc.String())
	}
}

// CopyDatabase creates a copy of the database at u (which must have no open connections) and
// returns its URL; the copy is verified and dropped when t ends, as NewDatabase's are.
func CopyDatabase(t testing.TB, u string) string {
	t.Helper()
	cfg, err := pgx.ParseConfig(u)
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	name := fmt.Sprintf("%s_%d", strings.TrimSuffix(template, "_tmpl"), serial.Add(1))
	if err := exec(context.Background(), "CREATE DATABASE "+name+" TEMPLATE "+cfg.Database); err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	c, err := URLFor(name)
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	t.Cleanup(func() {
		if !t.Failed() {
			VerifyURL(t, c)
		}
		if err := exec(context.Background(), "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			t.Errorf("pgtest: %v", err)
		}
	})
	return c
}
