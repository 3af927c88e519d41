package main

import (
	"context"
	"errors"
	"flag"
	"strings"
	"testing"

	"github.com/joinincard/engine/internal/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m, "cmd") }

// The main job, as `make run` runs it: a city day through the embedded broker into the ledger.
func TestDemoRunsACityDayEndToEnd(t *testing.T) {
	url := pgtest.NewDatabase(t)
	var out, errs strings.Builder
	if err := run(context.Background(), []string{"demo", "--database-url", url, "--log-level", "warn"}, &out, &errs); err != nil {
		t.Fatalf("demo: %v\n%s\n%s", err, out.String(), errs.String())
	}
	for _, want := range []string{
		"events/s end to end",
		"card.registered       accepted   1000",
		"funds.loaded          applied    1000",
		"(any)                 duplicate  2",
		"rejected: merchant \"m-unregistered\" is not registered",
		"malformed: event_id",
		"conflict: event id used before",
		"3 the same batch redelivered",
		"verified: every balance recomputes from its transfers",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("the demo's report lacks %q:\n%s", want, out.String())
		}
	}
	for _, line := range strings.Split(out.String(), "\n") {
		if strings.HasPrefix(line, "3 the same batch redelivered") && !strings.Contains(line, "exists") ||
			strings.HasPrefix(line, "4 expiry sweep") && !strings.Contains(line, "created") {
			t.Errorf("%q", line)
		}
	}
	if strings.Contains(out.String(), "linked_event_failed") || strings.Contains(out.String(), "pending_already_resolved") {
		t.Errorf("the redelivered capture batch was not answered exists:\n%s", out.String())
	}
}

func TestEveryCommandExplainsItself(t *testing.T) {
	for _, c := range commands() {
		var out, errs strings.Builder
		err := run(context.Background(), []string{c.name, "--help"}, &out, &errs)
		if !errors.Is(err, flag.ErrHelp) {
			t.Errorf("%s --help: %v", c.name, err)
		}
	}
	var out, errs strings.Builder
	if err := run(context.Background(), []string{"no-such-command"}, &out, &errs); err == nil || !strings.Contains(errs.String(), "Commands:") {
		t.Errorf("an unknown command: %v, usage %q", err, errs.String())
	}
	if err := run(context.Background(), []string{"verify", "--log-level", "loud"}, &out, &errs); err == nil {
		t.Error("a bad --log-level was accepted")
	}
}
