package main

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
)

// A missing admin token and one short enough to guess are warned of when the API starts; the
// warning never repeats the token.
func TestAdminTokenWarnings(t *testing.T) {
	for _, c := range []struct {
		token, want string
	}{
		{"", "no --admin-token configured"},
		{"x", "short enough to guess"},
		{"fifteen-chars-x", "short enough to guess"},
		{"sixteen-chars-xx", ""},
		{"a-long-random-admin-token-of-40-characters", ""},
	} {
		var buf bytes.Buffer
		warnAdminToken(slog.New(slog.NewTextHandler(&buf, nil)), c.token)
		got := buf.String()
		if c.want == "" && got != "" || c.want != "" && !strings.Contains(got, c.want) {
			t.Errorf("token of %d bytes: logged %q, want %q", len(c.token), got, c.want)
		}
		if c.token != "" && strings.Contains(got, c.token) {
			t.Errorf("the warning repeats the token: %q", got)
		}
	}
}
