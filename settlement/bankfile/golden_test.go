package bankfile_test

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"testing"

	"github.com/joinincard/engine/settlement/bankfile"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/ from what the writers write")

// golden compares got with testdata/name, or rewrites it with -update.
func golden(t *testing.T, name string, got []byte) []byte {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to write it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s: the writer's bytes differ from the golden file:\n got:\n%s\nwant:\n%s", name, got, want)
	}
	return want
}

var goldenFiles = []struct {
	name string
	file func() *bankfile.File
}{
	{"icbc-hz-20261009-42", bankA},
	{"abc-sh-20260930-7-copy", bankB},
	{"ccb-nb-20261012-1-empty", empty},
}

// TestGoldenSettlementFiles: each fixture writes the golden bytes in both formats, and the golden
// bytes read back as the fixture.
func TestGoldenSettlementFiles(t *testing.T) {
	for _, g := range goldenFiles {
		t.Run(g.name, func(t *testing.T) {
			f := g.file()
			x := golden(t, g.name+".xml", writeXML(t, f))
			c := golden(t, g.name+".csv", writeCSV(t, f))
			if got, err := bankfile.ReadXML(bytes.NewReader(x)); err != nil || !sameFile(got, f) {
				t.Errorf("ReadXML(golden) = %+v, %v; want %+v", got, err, f)
			}
			if got, err := bankfile.ReadCSV(bytes.NewReader(c)); err != nil || !sameFile(got, f) {
				t.Errorf("ReadCSV(golden) = %+v, %v; want %+v", got, err, f)
			}
		})
	}
}

var goldenAcks = []struct {
	name string
	ack  func() *bankfile.Ack
}{
	{"ack-icbc-hz-part", ackPartial},
	{"ack-abc-sh-rjct", ackRejected},
	{"ack-ccb-nb-accp", ackAccepted},
}

func TestGoldenAcknowledgements(t *testing.T) {
	for _, g := range goldenAcks {
		t.Run(g.name, func(t *testing.T) {
			a := g.ack()
			var x, c bytes.Buffer
			if err := bankfile.WriteAckXML(&x, a); err != nil {
				t.Fatal(err)
			}
			if err := bankfile.WriteAckCSV(&c, a); err != nil {
				t.Fatal(err)
			}
			xb := golden(t, g.name+".xml", x.Bytes())
			cb := golden(t, g.name+".csv", c.Bytes())
			if got, err := bankfile.ReadAckXML(bytes.NewReader(xb)); err != nil || !sameAck(got, a) {
				t.Errorf("ReadAckXML(golden) = %+v, %v; want %+v", got, err, a)
			}
			if got, err := bankfile.ReadAckCSV(bytes.NewReader(cb)); err != nil || !sameAck(got, a) {
				t.Errorf("ReadAckCSV(golden) = %+v, %v; want %+v", got, err, a)
			}
		})
	}
}

// TestGoldenManifest: the manifest of the golden settlement files, which it verifies.
func TestGoldenManifest(t *testing.T) {
	var m bankfile.Manifest
	contents := map[string][]byte{}
	for _, g := range goldenFiles {
		f := g.file()
		for _, format := range []bankfile.Format{bankfile.FormatCSV, bankfile.FormatXML} {
			name := g.name + "." + string(format)
			b, err := os.ReadFile(filepath.Join("testdata", name))
			if err != nil {
				t.Fatal(err)
			}
			contents[name] = b
			m.Files = append(m.Files, bankfile.NewManifestEntry(name, format, f.Header, b))
		}
	}
	var b bytes.Buffer
	if err := bankfile.WriteManifest(&b, m); err != nil {
		t.Fatal(err)
	}
	want := golden(t, "manifest.txt", b.Bytes())
	got, err := bankfile.ReadManifest(bytes.NewReader(want))
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Files) != len(m.Files) {
		t.Fatalf("ReadManifest: %d files, want %d", len(got.Files), len(m.Files))
	}
	for name, content := range contents {
		if err := got.Verify(name, content); err != nil {
			t.Errorf("Verify(%s): %v", name, err)
		}
	}
}
