package main

import (
	"bufio"
	"context"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// `make bench` measures on a PostgreSQL of its own, started by scripts/bench-postgres with the
// settings docs/deploying.md recommends, and stopped again after the runs.
func TestBenchPostgresIsSizedAsDeployingSays(t *testing.T) {
	// Not t.TempDir: its parents are private to this user, and the server runs as postgres
	// when the tests run as root.
	dir, err := os.MkdirTemp("", "joinin-bench-postgres-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	_ = l.Close()
	script := "../../scripts/bench-postgres"
	out, err := exec.Command(script, "start", dir, strconv.Itoa(port)).Output()
	if err != nil {
		t.Fatalf("start: %v: %s", err, stderrOf(err))
	}
	t.Cleanup(func() { _ = exec.Command(script, "stop", dir).Run() })
	url := strings.TrimSpace(string(out))
	if want := "postgres://postgres@127.0.0.1:" + strconv.Itoa(port) + "/joinin?sslmode=disable"; url != want {
		t.Fatalf("url %q, want %q", url, want)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, strings.Replace(url, "/joinin?", "/postgres?", 1))
	if err != nil {
		t.Fatal(err)
	}
	settings := map[string]string{}
	rows, err := conn.Query(ctx, `SELECT name, current_setting(name) FROM pg_settings
		WHERE name IN ('shared_buffers', 'max_wal_size', 'checkpoint_timeout', 'wal_compression', 'fsync', 'synchronous_commit')`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var k, v string
		if err := rows.Scan(&k, &v); err != nil {
			t.Fatal(err)
		}
		settings[k] = v
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	_ = conn.Close(ctx)
	buffers := min(memTotalKiB(t)/4/1024, 4096)
	want := map[string]string{"shared_buffers": strconv.Itoa(int(buffers)) + "MB", "max_wal_size": "16GB",
		"checkpoint_timeout": "30min", "wal_compression": "lz4", "fsync": "on", "synchronous_commit": "on"}
	if buffers%1024 == 0 {
		want["shared_buffers"] = strconv.Itoa(int(buffers/1024)) + "GB"
	}
	for k, v := range want {
		if settings[k] != v {
			t.Errorf("%s = %q, want %q", k, settings[k], v)
		}
	}
	if err := exec.Command(script, "stop", dir).Run(); err != nil {
		t.Fatalf("stop: %v: %s", err, stderrOf(err))
	}
	if c, err := pgx.Connect(ctx, strings.Replace(url, "/joinin?", "/postgres?", 1)); err == nil {
		_ = c.Close(ctx)
		t.Fatal("the server still answers after stop")
	}
}

func stderrOf(err error) string {
	if ee, ok := err.(*exec.ExitError); ok {
		return string(ee.Stderr)
	}
	return ""
}

func memTotalKiB(t *testing.T) int64 {
	t.Helper()
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if fields := strings.Fields(s.Text()); len(fields) >= 2 && fields[0] == "MemTotal:" {
			n, err := strconv.ParseInt(fields[1], 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Fatal("no MemTotal in /proc/meminfo")
	return 0
}
