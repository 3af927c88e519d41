package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/joinincard/engine/cards"
	"github.com/joinincard/engine/internal/pgtest"
	"github.com/joinincard/engine/settlement"
)

// `joinin settle --out` killed with SIGKILL while it writes the banks' files leaves under a
// file's own name the whole file or nothing: a bank's transfer that picks the folder up never
// sends a truncated settlement file. Run again, it writes every file whole, and leaves nothing
// else behind.
func TestSettleOutKilledLeavesNoPartFile(t *testing.T) {
	if testing.Short() {
		t.Skip("the settlement files crash test fills a cycle of 24,000 cards; make test runs it")
	}
	ctx := context.Background()
	day := settlement.AddDays(settlement.DateOf(time.Now().In(cards.Shanghai)), -2)
	url := pgtest.NewDatabase(t)
	populateCycle(t, url, day)
	base := []string{"settle", "--database-url", url, "--log-level", "error", "--date", day.String()}

	// The files as an uninterrupted run writes them: the same bytes every time.
	ref := t.TempDir()
	var out, errs strings.Builder
	if err := run(ctx, append(base, "--out", ref), &out, &errs); err != nil {
		t.Fatalf("settle: %v\n%s", err, errs.String())
	}
	want := map[string][]byte{}
	entries, err := os.ReadDir(filepath.Join(ref, day.String()))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		raw, err := os.ReadFile(filepath.Join(ref, day.String(), e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		want[e.Name()] = raw
	}
	if len(want) != 7 {
		t.Fatalf("%d files in an uninterrupted run, want 6 and the manifest", len(want))
	}

	// attempts: each kills a run the moment a file of the cycle has its name in the folder.
	const attempts = 5
	killed := 0
	for range attempts {
		dir := t.TempDir()
		folder := filepath.Join(dir, day.String())
		child := joininChild(t, append(base, "--out", dir)...)
		exited := make(chan error, 1)
		go func() { exited <- child.Wait() }()
	poll:
		for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); {
			select {
			case <-exited:
				break poll
			default:
			}
			names, _ := os.ReadDir(folder)
			for _, n := range names {
				if _, ok := want[n.Name()]; ok {
					if err := child.Process.Signal(syscall.SIGKILL); err != nil {
						t.Fatal(err)
					}
					<-exited
					killed++
					break poll
				}
			}
		}
		check := func(when string) {
			t.Helper()
			names, err := os.ReadDir(folder)
			if err != nil {
				t.Fatal(err)
			}
			for _, n := range names {
				w, ok := want[n.Name()]
				if !ok {
					continue
				}
				got, err := os.ReadFile(filepath.Join(folder, n.Name()))
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(got, w) {
					t.Errorf("%s: %s holds %d bytes, the whole file %d", when, n.Name(), len(got), len(w))
				}
			}
		}
		check("killed")
		// Run again into the same folder: every file whole, nothing else left.
		if err := run(ctx, append(base, "--out", dir), &out, &errs); err != nil {
			t.Fatalf("settle after the kill: %v\n%s", err, errs.String())
		}
		check("run again")
		names, err := os.ReadDir(folder)
		if err != nil {
			t.Fatal(err)
		}
		whole := 0
		for _, n := range names {
			if _, ok := want[n.Name()]; ok {
				whole++
			} else if !strings.HasPrefix(n.Name(), ".") || !strings.HasSuffix(n.Name(), ".part") {
				t.Errorf("run again: %s in the folder, neither a file of the cycle nor a hidden part of one", n.Name())
			}
		}
		if whole != len(want) {
			t.Errorf("run again: %d of the %d files of the cycle in the folder", whole, len(want))
		}
	}
	if killed == 0 {
		t.Fatalf("every run finished before a file had its name: no kill landed")
	}
	t.Logf("%d of %d runs killed while writing the files", killed, attempts)

	// Two runs at once into one folder: whenever a file has its name, it is whole, and the runs
	// leave the files of the cycle only.
	dir := t.TempDir()
	folder := filepath.Join(dir, day.String())
	runs := []*exec.Cmd{joininChild(t, append(base, "--out", dir)...), joininChild(t, append(base, "--out", dir)...)}
	exited := make(chan error, len(runs))
	for _, c := range runs {
		go func() { exited <- c.Wait() }()
	}
	for done := 0; done < len(runs); {
		select {
		case err := <-exited:
			if err != nil {
				t.Errorf("a run at once with another: %v", err)
			}
			done++
			continue
		default:
		}
		names, _ := os.ReadDir(folder)
		for _, n := range names {
			w, ok := want[n.Name()]
			if !ok {
				continue
			}
			if got, err := os.ReadFile(filepath.Join(folder, n.Name())); err == nil && !bytes.Equal(got, w) {
				t.Errorf("two runs at once: %s read with %d bytes, the whole file %d", n.Name(), len(got), len(w))
			}
		}
	}
	names, err := os.ReadDir(folder)
	if err != nil {
		t.Fatal(err)
	}
	if len(names) != len(want) {
		var got []string
		for _, n := range names {
			got = append(got, n.Name())
		}
		t.Errorf("two runs at once leave %v, want the %d files of the cycle", got, len(want))
	}
}
