package main

import (
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
