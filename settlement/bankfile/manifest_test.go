package bankfile_test

import (
	"bytes"
	"errors"
	"strconv"
	"strings"
	"testing"

	"github.com/joinincard/engine/settlement/bankfile"
)

func goldenManifest(t *testing.T) bankfile.Manifest {
	t.Helper()
	m, err := bankfile.ReadManifest(strings.NewReader(readGolden(t, "manifest.txt")))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestManifestVerifyRefusesWhatDiffers(t *testing.T) {
	m := goldenManifest(t)
	content := []byte(readGolden(t, "icbc-hz-20261009-42.xml"))
	const name = "icbc-hz-20261009-42.xml"
	if err := m.Verify(name, content); err != nil {
		t.Fatalf("Verify(golden): %v", err)
	}
	changed := bytes.Replace(content, []byte("300.05"), []byte("300.06"), 1)
	err := m.Verify(name, changed)
	if !errors.Is(err, bankfile.ErrChecksum) || !strings.Contains(err.Error(), name) || !strings.Contains(err.Error(), "SHA-256") {
		t.Errorf("Verify(one digit changed) = %v, want ErrChecksum naming the file and the SHA-256", err)
	}
	err = m.Verify(name, content[:len(content)-1])
	if !errors.Is(err, bankfile.ErrChecksum) || !strings.Contains(err.Error(), name) || !strings.Contains(err.Error(), "bytes") {
		t.Errorf("Verify(cut by a byte) = %v, want ErrChecksum naming the file and the size", err)
	}
	// The CSV of the same cycle is another file.
	if err := m.Verify("icbc-hz-20261009-42.csv", content); !errors.Is(err, bankfile.ErrChecksum) {
		t.Errorf("Verify(the XML under the CSV's name) = %v, want ErrChecksum", err)
	}
	if err := m.Verify("icbc-hz-20261009-43.xml", content); !errors.Is(err, bankfile.ErrNotInManifest) {
		t.Errorf("Verify(an unlisted file) = %v, want ErrNotInManifest", err)
	}
}

// TestManifestIsTheSameWhateverTheOrder: WriteManifest sorts the files by name.
func TestManifestIsTheSameWhateverTheOrder(t *testing.T) {
	m := goldenManifest(t)
	reversed := bankfile.Manifest{}
	for i := len(m.Files) - 1; i >= 0; i-- {
		reversed.Files = append(reversed.Files, m.Files[i])
	}
	var b bytes.Buffer
	if err := bankfile.WriteManifest(&b, reversed); err != nil {
		t.Fatal(err)
	}
	if b.String() != readGolden(t, "manifest.txt") {
		t.Errorf("the manifest of the files in reverse order differs:\n%s", b.String())
	}
	reversed.Files = append(reversed.Files, reversed.Files[0])
	if err := bankfile.WriteManifest(&b, reversed); err == nil || !strings.Contains(err.Error(), "listed twice") {
		t.Errorf("WriteManifest(a name twice) = %v", err)
	}
}

func TestReadManifestRefuses(t *testing.T) {
	const golden = "manifest.txt"
	first := "abc-sh-20260930-7-copy.csv csv ABC-SH 2026-09-30 7 858 "
	for _, m := range []mutation{
		{name: "magic", golden: golden, old: "v1", new: "v2", line: 1},
		{name: "columns", golden: golden, old: "size sha256", new: "sha256 size", line: 2},
		{name: "unsorted", golden: golden, old: "abc-sh-20260930-7-copy.csv", new: "abc-sh-20260930-7-copy.zzz", line: 4, contains: []string{"sorted"}},
		{name: "a name twice", golden: golden, old: "abc-sh-20260930-7-copy.xml", new: "abc-sh-20260930-7-copy.csv", line: 4, contains: []string{"sorted by name, each listed once"}},
		{name: "upper-case hex", golden: golden, old: first + "45e4", new: first + "45E4", line: 3, contains: []string{"sha256"}},
		{name: "short hash", golden: golden, old: first + "45e4", new: first + "5e4", line: 3, contains: []string{"sha256"}},
		{name: "negative size", golden: golden, old: " 858 ", new: " -858 ", line: 3, contains: []string{"size"}},
		{name: "sequence zero", golden: golden, old: " 2026-09-30 7 ", new: " 2026-09-30 0 ", line: 3, contains: []string{"sequence"}},
		{name: "format", golden: golden, old: "copy.csv csv", new: "copy.csv txt", line: 3, contains: []string{"format"}},
		{name: "path in a name", golden: golden, old: "abc-sh-20260930-7-copy.csv", new: "../abc-sh-20260930-7-copy.csv", line: 3, contains: []string{"name"}},
		{name: "two spaces", golden: golden, old: "copy.csv csv", new: "copy.csv  csv", line: 3, contains: []string{"single spaces"}},
		{name: "CRLF", golden: golden, old: "\n", new: "\r\n", contains: []string{"carriage return"}},
	} {
		t.Run(m.name, func(t *testing.T) {
			doc, at := m.apply(t)
			_, err := bankfile.ReadManifest(bytes.NewReader(doc))
			if err == nil {
				t.Fatal("accepted")
			}
			m.check(t, err, at)
		})
	}
	doc := readGolden(t, golden)
	if _, err := bankfile.ReadManifest(strings.NewReader(strings.TrimSuffix(doc, "\n"))); err == nil || !strings.Contains(err.Error(), `does not end with "\n"`) {
		t.Errorf("ReadManifest(no final newline) = %v", err)
	}
	if _, err := bankfile.ReadManifest(strings.NewReader("")); err == nil {
		t.Error("ReadManifest accepted an empty input")
	}
}

func TestCheckSequence(t *testing.T) {
	h := bankA().Header // sequence 42
	if err := bankfile.CheckSequence(41, h); err != nil {
		t.Errorf("CheckSequence(41, 42): %v", err)
	}
	for _, previous := range []int64{40, 42, 43, 0} {
		err := bankfile.CheckSequence(previous, h)
		if !errors.Is(err, bankfile.ErrSequence) || !strings.Contains(err.Error(), "file 42 after file "+strconv.FormatInt(previous, 10)) {
			t.Errorf("CheckSequence(%d, 42) = %v, want ErrSequence naming both", previous, err)
		}
	}
	first := empty().Header // sequence 1
	if err := bankfile.CheckSequence(0, first); err != nil {
		t.Errorf("CheckSequence(0, 1): %v", err)
	}
	dup := bankB().Header // a copy of file 7
	for _, previous := range []int64{7, 8, 100} {
		if err := bankfile.CheckSequence(previous, dup); err != nil {
			t.Errorf("CheckSequence(%d, copy of 7): %v", previous, err)
		}
	}
	if err := bankfile.CheckSequence(6, dup); !errors.Is(err, bankfile.ErrSequence) || !strings.Contains(err.Error(), "a copy of file 7, but the last file sent is 6") {
		t.Errorf("CheckSequence(6, copy of 7) = %v, want ErrSequence", err)
	}
}
