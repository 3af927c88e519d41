package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/joinincard/engine/internal/pgtest"
)

// joinin serve refuses a memory limit the runtime cannot take, which it dropped without a word.
func TestServeRefusesAMemoryLimitOutOfRange(t *testing.T) {
	url := pgtest.NewDatabase(t)
	for _, v := range []string{"-5", "9000000000000"} {
		var out, errs strings.Builder
		// Without the check serve would start: it stops when ctx ends, without an error.
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		err := run(ctx, []string{"serve", "--database-url", url, "--http-addr", "127.0.0.1:0", "--settle-grace", "0",
			"--token-key", devTokenKey, "--log-level", "warn", "--memory-limit-mib", v}, &out, &errs)
		if err == nil || !strings.Contains(err.Error(), "--memory-limit-mib "+v+": must be 0 to") {
			t.Errorf("--memory-limit-mib %s: %v", v, err)
		}
		cancel()
	}
}

// joinin serve, demo, settle and archive check every flag's value they can before they open the
// database: a value
// out of range is refused with the flag named, and nothing is created or migrated. The URL names
// a server that is not there, so a command that reached for it first fails on it instead.
func TestEngineFlagsAreCheckedBeforeTheDatabase(t *testing.T) {
	const nowhere = "postgres://postgres@127.0.0.1:1/joinin_nowhere?sslmode=disable&connect_timeout=2"
	badPlans := t.TempDir()
	if err := os.WriteFile(filepath.Join(badPlans, "flat.json"), []byte(`{"id": "flat"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		args []string
		want string
	}{
		// Tariff directories and the reconciliation rules are read and checked before the
		// database is created or migrated.
		{[]string{"serve", "--fee-plans", "/nonexistent"}, "--fee-plans /nonexistent: stat /nonexistent: no such file or directory"},
		{[]string{"serve", "--fee-plans", badPlans}, "fee plan flat.json:"},
		{[]string{"serve", "--fares", "/nonexistent"}, "--fares /nonexistent: stat /nonexistent: no such file or directory"},
		{[]string{"serve", "--medical-policies", "/nonexistent"}, "--medical-policies /nonexistent: stat /nonexistent: no such file or directory"},
		{[]string{"serve", "--medical-catalogues", "/nonexistent"}, "--medical-catalogues /nonexistent: stat /nonexistent: no such file or directory"},
		{[]string{"serve", "--fee-plans", "/dev/null"}, "--fee-plans /dev/null: not a directory"},
		{[]string{"serve", "--reconcile-rules", "/nonexistent/rules.json"}, "--reconcile-rules:"},
		{[]string{"demo", "--reconcile-rules", "/nonexistent/rules.json"}, "--reconcile-rules:"},
		{[]string{"reconcile", "run", "--reconcile-rules", "/nonexistent/rules.json"}, "--reconcile-rules:"},
		{[]string{"serve", "--http-addr", "127.0.0.1:99999"}, "--http-addr 127.0.0.1:99999:"},
		{[]string{"serve", "--embedded-kafka-data", "/proc/nope"}, "--embedded-kafka-data /proc/nope:"},
		{[]string{"demo", "--embedded-kafka-data", "/proc/nope"}, "--embedded-kafka-data /proc/nope:"},
		{[]string{"serve", "--heap-profile", "/nonexistent/heap.pprof"}, "--heap-profile /nonexistent/heap.pprof:"},
		{[]string{"serve", "--partitions", "-1"}, "--partitions -1: must be 1 to"},
		{[]string{"serve", "--partitions", "0"}, "--partitions 0: must be 1 to"},
		{[]string{"demo", "--partitions", "-1"}, "--partitions -1: must be 1 to"},
		{[]string{"serve", "--committers", "0"}, "--committers 0: must be 1 to 15"},
		{[]string{"demo", "--committers", "16"}, "--committers 16: must be 1 to 15"},
		{[]string{"serve", "--memory-limit-mib", "-5"}, "--memory-limit-mib -5: must be 0 to"},
		{[]string{"serve", "--settle-grace", "-1s"}, "--settle-grace: must not be negative"},
		{[]string{"serve", "--verify-interval", "-1h"}, "--verify-interval: must not be negative"},
		{[]string{"serve", "--transit-interval", "0s"}, "--transit-interval: must be positive"},
		{[]string{"serve", "--cutoff-hour", "25"}, "--cutoff-hour: settlement cut-off hour 25: want 0 to 23"},
		{[]string{"serve", "--calendar", "/nonexistent"}, "--calendar /nonexistent:"},
		{[]string{"serve", "--token-key", "zz"}, "--token-key: not hex"},
		{[]string{"serve", "--token-key", "abcd"}, "--token-key:"},
		{[]string{"demo", "--cutoff-hour", "24"}, "--cutoff-hour: settlement cut-off hour 24: want 0 to 23"},
		{[]string{"settle", "--cutoff-hour", "-1"}, "--cutoff-hour: settlement cut-off hour -1: want 0 to 23"},
		{[]string{"settle", "--date", "2026-02-30"}, "--date: 2026-02-30 is not a day: want YYYY-MM-DD"},
		{[]string{"settle", "--date", "2026-13-01"}, "--date: 2026-13-01 is not a day: want YYYY-MM-DD"},
		{[]string{"settle", "--calendar", "/nonexistent"}, "--calendar /nonexistent:"},
		// A directory the files cannot be written in is refused before the cycle closes.
		{[]string{"settle", "--date", "2026-03-01", "--out", "/proc/nope"}, "--out /proc/nope:"},
		{[]string{"settle", "--date", "2026-03-01", "--out", "/dev/null/files"}, "--out /dev/null/files:"},
		{[]string{"demo", "--settlement-out", "/proc/nope"}, "--settlement-out /proc/nope:"},
		{[]string{"archive", "--month", "2026-10", "--out", "/nonexistent/archive", "--by", "me", "--cutoff-hour", "30"},
			"--cutoff-hour: settlement cut-off hour 30: want 0 to 23"},
	}
	for _, c := range cases {
		var out, errs strings.Builder
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		args := append(slices.Clone(c.args), "--database-url", nowhere, "--log-level", "error")
		err := func() (err error) {
			defer func() {
				if p := recover(); p != nil {
					err = fmt.Errorf("panic: %v", p)
				}
			}()
			return run(ctx, args, &out, &errs)
		}()
		cancel()
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: %v, want %q", c.args, err, c.want)
		}
	}
}

// JOININ_SECURE_COOKIE takes what --secure-cookie takes (true, 1, false, 0, ...); any other
// value is refused before the database is opened, never read as false: a deployment that wrote
// yes would otherwise send the finance page's session cookie over plain HTTP without a word.
func TestServeRefusesASecureCookieVariableItCannotRead(t *testing.T) {
	const nowhere = "postgres://postgres@127.0.0.1:1/joinin_nowhere?sslmode=disable&connect_timeout=2"
	for _, v := range []string{"yes", "on", "ture"} {
		t.Setenv("JOININ_SECURE_COOKIE", v)
		var out, errs strings.Builder
		err := run(context.Background(), []string{"serve", "--database-url", nowhere, "--log-level", "error"}, &out, &errs)
		if err == nil || !strings.Contains(err.Error(), "JOININ_SECURE_COOKIE: "+strconv.Quote(v)+" is neither true nor false") {
			t.Errorf("JOININ_SECURE_COOKIE=%s: %v", v, err)
		}
	}
	for _, v := range []string{"1", "TRUE", "true", "0", "false"} {
		t.Setenv("JOININ_SECURE_COOKIE", v)
		want, _ := strconv.ParseBool(v)
		if got, err := boolEnv("JOININ_SECURE_COOKIE", false); err != nil || got != want {
			t.Errorf("%s: %v, %v", v, got, err)
		}
	}
}

// The commands that read a ledger (verify, settle, reconcile, archive) refuse a database that
// is not there, saying so, and create nothing: a name mistyped would otherwise get an empty
// ledger of its own, which verify then reported verified. migrate, serve and demo create it.
func TestLedgerCommandsRefuseADatabaseThatIsNotThere(t *testing.T) {
	name := fmt.Sprintf("joinin_test_cmd_missing_%d", os.Getpid())
	url, err := pgtest.URLFor(name)
	if err != nil {
		t.Fatal(err)
	}
	admin, err := pgtest.URLFor("postgres")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { // were it created all the same
		conn, err := pgx.Connect(context.Background(), admin)
		if err != nil {
			t.Errorf("drop %s: %v", name, err)
			return
		}
		defer conn.Close(context.Background())
		if _, err := conn.Exec(context.Background(), "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			t.Errorf("drop %s: %v", name, err)
		}
	})
	for _, args := range [][]string{
		{"verify"}, {"verify", "--full"}, {"settle"}, {"reconcile", "run"},
		{"archive", "--month", "2026-10", "--out", filepath.Join(t.TempDir(), "archive"), "--by", "finance"},
	} {
		var out, errs strings.Builder
		err := run(context.Background(), append(slices.Clone(args), "--database-url", url, "--log-level", "error"), &out, &errs)
		if err == nil || !strings.Contains(err.Error(), "database "+name+" does not exist") {
			t.Errorf("%q: %v", args, err)
		}
		conn, err := pgx.Connect(context.Background(), url)
		if err == nil {
			conn.Close(context.Background())
			t.Fatalf("%q created the database %s", args, name)
		}
	}
}

// The check of settle's --out creates the directory and leaves nothing in it.
func TestSettleOutCheckLeavesNothing(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "files", "march")
	if err := writableDir("--out", dir); err != nil {
		t.Fatal(err)
	}
	if left, err := os.ReadDir(dir); err != nil || len(left) != 0 {
		t.Errorf("after the check %s holds %v (%v)", dir, left, err)
	}
}
