package main

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// cpuMark is CPU time spent so far by this process (the engine and, in a load run, its client)
// and by the PostgreSQL backends serving one database, read where the system tells them.
type cpuMark struct {
	engine   time.Duration
	database time.Duration
	ok       bool
}

// clockTicks is the unit of /proc/<pid>/stat's CPU times on Linux.
const clockTicks = 100

// readCPUMark reads the CPU this process has used and that the backends whose command line names
// database have: a backend shows its database in its title, so another run's backends are not
// counted. A backend that exited since the last mark takes its time with it: the load runs keep
// their connections open. ok is false where /proc or getrusage is not there.
func readCPUMark(database string) cpuMark {
	var m cpuMark
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return m
	}
	m.engine = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	dirs, err := filepath.Glob("/proc/[0-9]*")
	if err != nil || database == "" {
		return m
	}
	for _, d := range dirs {
		cmd, err := os.ReadFile(filepath.Join(d, "cmdline"))
		if err != nil || !strings.HasPrefix(string(cmd), "postgres:") || !strings.Contains(string(cmd), " "+database+" ") {
			continue
		}
		stat, err := os.ReadFile(filepath.Join(d, "stat"))
		if err != nil {
			continue
		}
		// The fields after the command's closing parenthesis: utime and stime are the 12th and 13th.
		s := string(stat)
		f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
		if len(f) < 13 {
			continue
		}
		ut, err1 := strconv.ParseInt(f[11], 10, 64)
		st, err2 := strconv.ParseInt(f[12], 10, 64)
		if err1 != nil || err2 != nil {
			continue
		}
		m.database += time.Duration(ut+st) * time.Second / clockTicks
	}
	m.ok = true
	return m
}
