package main

import (
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestMedicalPolicyDirectory(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	// Empty: the built-in samples.
	ps, err := (&medicalFlags{}).policies(log)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := ps.For("jiaxing", 2026); !ok {
		t.Error("the built-in samples lack jiaxing-2026")
	}

	// A directory: its files, and only them. A new city is a new file.
	dir := t.TempDir()
	sample, err := os.ReadFile("../../medical/policies/shanghai-2026.json")
	if err != nil {
		t.Fatal(err)
	}
	hz := strings.Replace(string(sample), `"city": "shanghai"`, `"city": "hangzhou"`, 1)
	if err := os.WriteFile(filepath.Join(dir, "hangzhou-2026.json"), []byte(hz), 0o600); err != nil {
		t.Fatal(err)
	}
	ps, err = (&medicalFlags{policyDir: dir}).policies(log)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := ps.For("hangzhou", 2026); !ok || len(ps.All()) != 1 {
		t.Errorf("loaded %d policies from the directory", len(ps.All()))
	}

	// A file that does not check stops the engine at start.
	if err := os.WriteFile(filepath.Join(dir, "ningbo-2026.json"), []byte(`{"city":"ningbo"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := (&medicalFlags{policyDir: dir}).policies(log); err == nil || !strings.Contains(err.Error(), "ningbo-2026.json") {
		t.Errorf("a broken policy file: %v", err)
	}
}
