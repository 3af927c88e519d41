package events_test

import (
	"bytes"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/joinincard/engine/events"
)

var update = flag.Bool("update", false, "rewrite testdata/valid/*.golden and testdata/invalid/*.err from what the code does")

// TestGoldenValid: each testdata/valid/NAME.json decodes, and encodes to the canonical bytes in
// NAME.golden, which decode to the same event.
func TestGoldenValid(t *testing.T) {
	files, err := filepath.Glob("testdata/valid/*.json")
	if err != nil || len(files) == 0 {
		t.Fatalf("no valid files: %v", err)
	}
	seen := make(map[events.Type]bool)
	for _, path := range files {
		t.Run(filepath.Base(path), func(t *testing.T) {
			in, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			e, err := events.Decode(in)
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			seen[e.Type] = true
			got, err := events.Encode(e)
			if err != nil {
				t.Fatalf("Encode: %v", err)
			}
			golden := strings.TrimSuffix(path, ".json") + ".golden"
			if *update {
				if err := os.WriteFile(golden, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("Encode:\n got %s\nwant %s", got, want)
			}
			again, err := events.Decode(want)
			if err != nil || !eventsEqual(again, e) {
				t.Errorf("the golden bytes decode to %+v (%v), want %+v", again, err, e)
			}
		})
	}
	for _, typ := range events.Types() {
		if !seen[typ] {
			t.Errorf("no valid file of type %s", typ)
		}
	}
}

// TestGoldenInvalid: each testdata/invalid/NAME.json is refused with the message in NAME.err.
func TestGoldenInvalid(t *testing.T) {
	files, err := filepath.Glob("testdata/invalid/*.json")
	if err != nil || len(files) == 0 {
		t.Fatalf("no invalid files: %v", err)
	}
	for _, path := range files {
		t.Run(filepath.Base(path), func(t *testing.T) {
			in, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			_, derr := events.Decode(in)
			var de *events.DecodeError
			if !errors.As(derr, &de) {
				t.Fatalf("Decode accepted it or failed with %T: %v", derr, derr)
			}
			errFile := strings.TrimSuffix(path, ".json") + ".err"
			if *update {
				if err := os.WriteFile(errFile, []byte(derr.Error()+"\n"), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(errFile)
			if err != nil {
				t.Fatal(err)
			}
			if got := derr.Error(); got != strings.TrimSuffix(string(want), "\n") {
				t.Errorf("Decode:\n got %s\nwant %s", got, want)
			}
		})
	}
}
