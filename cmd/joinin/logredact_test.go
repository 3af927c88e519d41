package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
)

// TestLogWithholdsPersonalNumbers: a log line quoting a value that may be a personal number, in
// its message or any attribute, never writes it.
func TestLogWithholdsPersonalNumbers(t *testing.T) {
	for _, n := range []string{"6228480402564899", "E98765432X", "EA1234567", "11010519491231002X", "USA310078110101", "WP20250001234"} {
		for _, format := range []string{"text", "json"} {
			var out strings.Builder
			log, err := (&common{logLevel: "debug", logFormat: format}).loggerTo(&out)
			if err != nil {
				t.Fatal(err)
			}
			reason := fmt.Sprintf("insurance fund of %q is not registered", n)
			log.With("first", reason).WithGroup("g").Warn("rejected: "+reason, "reason", reason,
				"err", fmt.Errorf("batch: %w", errors.New(reason)), slog.Group("event", "reason", reason))
			if strings.Contains(out.String(), n) {
				t.Errorf("%s log holds %s:\n%s", format, n, out.String())
			}
			if !strings.Contains(out.String(), "is not registered") {
				t.Errorf("%s log lost the message:\n%s", format, out.String())
			}
		}
	}
}

// TestLogWithholdsUnquotedPersonalNumbers: a value written into a log line without quotes (a name
// given with --by, a finance login, a database error repeating its input, an attribute that is the
// value itself) is withheld too, at every level, and what identifies the engine's own records (an
// event id, a token, a time, an offset) stays readable.
func TestLogWithholdsUnquotedPersonalNumbers(t *testing.T) {
	const (
		id    = "0190a4b2-3637-7c6c-8000-0000000000a1"
		token = "tok_yYnRBz0JBztLP2iZQyXtYlvBhoGq6cj1w9AGH4oDTzA"
	)
	for _, n := range []string{"6228480402564899", "E98765432X", "EA1234567", "C01X00T47", "123456789",
		"11010519491231002X", "USA310078110101", "933100198001011237", "WP20250001234"} {
		for _, format := range []string{"text", "json"} {
			var out strings.Builder
			log, err := (&common{logLevel: "debug", logFormat: format}).loggerTo(&out)
			if err != nil {
				t.Fatal(err)
			}
			log.With("who", n).Debug("break resolved by "+n, "break", id, "by", n, "token", token, "offset", int64(98760543),
				"err", fmt.Errorf("load cards: invalid input value for enum: %s", n), "names", []string{"x", n},
				slog.Group("g", "note", "paid by passport "+n+"."))
			if strings.Contains(out.String(), n) {
				t.Errorf("%s log holds %s:\n%s", format, n, out.String())
			}
			for _, keep := range []string{"break resolved by", id, token, "98760543", "load cards: invalid input value for enum"} {
				if !strings.Contains(out.String(), keep) {
					t.Errorf("%s log lost %q:\n%s", format, keep, out.String())
				}
			}
		}
	}
}

// TestArchiveRefusesAPersonalNumberAsWhoAsks: who asks for an archive is logged and written in
// its manifest and the archive actions: a passport, social security or work permit number there
// is refused, before anything is opened, and not repeated.
func TestArchiveRefusesAPersonalNumberAsWhoAsks(t *testing.T) {
	const url = "postgres://postgres@127.0.0.1:1/joinin_privacy_never_opened?sslmode=disable"
	for _, n := range []string{"E98765432X", "11010519491231002X", "WP20250001234"} {
		var out, errs strings.Builder
		dir := t.TempDir() + "/archive"
		err := run(context.Background(), []string{"archive", "--database-url", url, "--month", "2026-03", "--out", dir, "--by", "auditor " + n}, &out, &errs)
		if err == nil || !strings.HasPrefix(err.Error(), "--by: ") || strings.Contains(err.Error()+errs.String()+out.String(), n) {
			t.Errorf("archive asked for by %s: %v %s", n, err, errs.String())
		}
	}
}
