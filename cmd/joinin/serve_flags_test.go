package main

import (
	"context"
	"strings"
	"testing"
	"time"

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
