package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

// captureStderr runs f with os.Stderr, where the flag sets write, going to a file; it returns
// what was written.
func captureStderr(t *testing.T, f func()) string {
	t.Helper()
	file, err := os.CreateTemp(t.TempDir(), "stderr")
	if err != nil {
		t.Fatal(err)
	}
	defer file.Close()
	saved := os.Stderr
	os.Stderr = file
	defer func() { os.Stderr = saved }()
	f()
	b, err := os.ReadFile(file.Name())
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// A wrong flag is one line, the error naming the flag and where the flags are listed, with a
// status that is not 0; asking for the flags is no error: they are printed and the status is 0.
func TestAWrongFlagIsOneLine(t *testing.T) {
	for _, c := range commands() {
		if c.name == "reconcile" {
			continue // its flags follow a subcommand: below
		}
		var out, errs strings.Builder
		var err error
		printed := captureStderr(t, func() {
			err = run(context.Background(), []string{c.name, "--no-such-flag"}, &out, &errs)
		})
		if err == nil || !strings.Contains(err.Error(), "-no-such-flag") || !strings.Contains(err.Error(), "joinin "+c.name+" --help") {
			t.Errorf("%s --no-such-flag: %v", c.name, err)
		}
		if printed != "" {
			t.Errorf("%s --no-such-flag printed more than its error:\n%s", c.name, printed)
		}
		var status strings.Builder
		if code := exitStatus(err, &status); code != 2 || strings.Count(status.String(), "\n") != 1 {
			t.Errorf("%s --no-such-flag: status %d, printed %q", c.name, code, status.String())
		}
	}
	var out, errs strings.Builder
	var err error
	printed := captureStderr(t, func() {
		err = run(context.Background(), []string{"reconcile", "import", "--no-such-flag"}, &out, &errs)
	})
	if err == nil || !strings.Contains(err.Error(), "joinin reconcile import --help") || printed != "" {
		t.Errorf("reconcile import --no-such-flag: %v, printed %q", err, printed)
	}
	printed = captureStderr(t, func() {
		err = run(context.Background(), []string{"serve", "--partitions", "many"}, &out, &errs)
	})
	if err == nil || !strings.Contains(err.Error(), `invalid value "many" for flag -partitions`) || printed != "" {
		t.Errorf("serve --partitions many: %v, printed %q", err, printed)
	}

	for _, args := range [][]string{{"serve", "--help"}, {"settle", "-h"}, {"reconcile", "-h"}, {"reconcile", "run", "--help"}} {
		printed := captureStderr(t, func() {
			err = run(context.Background(), args, &out, &errs)
		})
		var status strings.Builder
		if code := exitStatus(err, &status); code != 0 || status.Len() != 0 {
			t.Errorf("%q: status %d, printed %q", args, code, status.String())
		}
		if !strings.Contains(printed, "Flags:") || !strings.Contains(printed, "-database-url") {
			t.Errorf("%q printed no flags:\n%s", args, printed)
		}
	}
	var status strings.Builder
	if code := exitStatus(nil, &status); code != 0 || status.Len() != 0 {
		t.Errorf("no error: status %d, printed %q", code, status.String())
	}
	if code := exitStatus(errors.New("no command given"), &status); code != 2 || status.String() != "joinin: no command given\n" {
		t.Errorf("an error: status %d, printed %q", code, status.String())
	}
}

// Each flag's line in --help names the flag and the kind of value it takes: a name quoted in
// backticks in a flag's help would be printed as that kind instead.
func TestEveryFlagNamesItsKindOfValue(t *testing.T) {
	line := regexp.MustCompile(`^  -[a-z0-9-]+( (string|int|uint|uint64|int64|float|duration|value))?$`)
	for _, args := range append([][]string{{"reconcile", "import", "-h"}, {"reconcile", "run", "-h"}}, commandArgs()...) {
		var out, errs strings.Builder
		printed := captureStderr(t, func() { _ = run(context.Background(), args, &out, &errs) })
		for _, l := range strings.Split(printed, "\n") {
			if strings.HasPrefix(l, "  -") && !line.MatchString(l) {
				t.Errorf("%q: flag line %q", args, l)
			}
		}
	}
}

func commandArgs() [][]string {
	var all [][]string
	for _, c := range commands() {
		all = append(all, []string{c.name, "--help"})
	}
	return all
}

// The load runs check their counts before they create their database: a count the run cannot
// use is refused with the flag named, never a panic in the generator or a run without end.
func TestLoadRunsCheckTheirCountsFirst(t *testing.T) {
	const nowhere = "postgres://postgres@127.0.0.1:1/joinin_nowhere?sslmode=disable&connect_timeout=2"
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"loadtest", "--cards", "-1"}, "--cards -1: must be at least 1"},
		{[]string{"loadtest", "--cards", "0"}, "--cards 0: must be at least 1"},
		{[]string{"loadtest", "--merchants", "0"}, "--merchants 0: must be at least 1"},
		{[]string{"loadtest", "--events", "10", "--cards", "10"}, "--events 10 leaves no purchases for 10 cards"},
		{[]string{"loadtest", "--prefill-events", "-1"}, "--prefill-events -1: must not be negative"},
		{[]string{"loadtest", "--latency-rate", "-1"}, "--latency-rate -1: must not be negative"},
		{[]string{"loadtest", "--latency", "-1s"}, "--latency -1s: must not be negative"},
		{[]string{"loadtest", "--partitions", "0"}, "--partitions 0: must be 1 to"},
		{[]string{"loadtest-taps", "--partitions", "0"}, "--partitions 0: must be 1 to"},
		{[]string{"loadtest-taps", "--committers", "0"}, "--committers 0: must be 1 to 15"},
		{[]string{"loadtest-cityday", "--committers", "0"}, "--committers 0: must be 1 to 15"},
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

// README.md says which flags of the engine's commands have no environment variable: every other
// one names its variable on its help line.
func TestFlagsWithoutAnEnvironmentVariableAreNamed(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	const intro = "The flags that have none"
	_, rest, ok := strings.Cut(string(readme), intro)
	if !ok {
		t.Fatalf("README.md has no paragraph beginning %q", intro)
	}
	paragraph, _, _ := strings.Cut(rest, "\n\n")
	for _, args := range [][]string{{"migrate"}, {"verify"}, {"serve"}, {"broker"}, {"demo"}, {"settle"}, {"archive"}, {"reconcile", "run"}} {
		var out, errs strings.Builder
		printed := captureStderr(t, func() { _ = run(context.Background(), append(args, "--help"), &out, &errs) })
		lines := strings.Split(printed, "\n")
		for i, l := range lines {
			name, _, _ := strings.Cut(strings.TrimPrefix(l, "  -"), " ")
			if !strings.HasPrefix(l, "  -") || i+1 >= len(lines) || strings.Contains(lines[i+1], "(env ") {
				continue
			}
			if !strings.Contains(paragraph, "`--"+name+"`") && !strings.Contains(paragraph, " --"+name+"`") {
				t.Errorf("%s --%s has no environment variable, and README.md does not say so", strings.Join(args, " "), name)
			}
		}
	}
}

// `joinin help` lists the commands with their summaries in one column, however long a name is.
func TestHelpAlignsTheCommands(t *testing.T) {
	var usage strings.Builder
	if err := run(context.Background(), []string{"help"}, &strings.Builder{}, &usage); err != nil {
		t.Fatal(err)
	}
	column := -1
	for _, c := range commands() {
		var line string
		for _, l := range strings.Split(usage.String(), "\n") {
			if strings.HasPrefix(l, "  "+c.name+" ") {
				line = l
			}
		}
		at := strings.Index(line, c.summary)
		if line == "" || at < 0 {
			t.Fatalf("no line for %s in:\n%s", c.name, usage.String())
		}
		if column < 0 {
			column = at
		}
		if at != column || strings.TrimSpace(line[:at]) != c.name {
			t.Errorf("%s: summary at column %d, want %d:\n%s", c.name, at, column, usage.String())
		}
	}
}

// `joinin help X` prints what `joinin X --help` prints, and is no failure.
func TestHelpOfACommandIsItsFlags(t *testing.T) {
	for _, c := range commands() {
		var err error
		want := captureStderr(t, func() {
			_ = run(context.Background(), []string{c.name, "--help"}, &strings.Builder{}, &strings.Builder{})
		})
		got := captureStderr(t, func() {
			err = run(context.Background(), []string{"help", c.name}, &strings.Builder{}, &strings.Builder{})
		})
		if got != want {
			t.Errorf("help %s printed:\n%s\nwant:\n%s", c.name, got, want)
		}
		var status strings.Builder
		if code := exitStatus(err, &status); code != 0 {
			t.Errorf("help %s: status %d, %s", c.name, code, status.String())
		}
	}
	var usage strings.Builder
	if err := run(context.Background(), []string{"help", "no-such-command"}, &strings.Builder{}, &usage); err == nil || !strings.Contains(usage.String(), "Commands:") {
		t.Errorf("help of an unknown command: %v, usage %q", err, usage.String())
	}
}
