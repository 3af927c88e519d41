package bankfile_test

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/joinincard/engine/settlement/bankfile"
)

// docBlocks returns the fenced code blocks of docs/settlement-files.md with their language.
func docBlocks(t *testing.T) (blocks [][2]string) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "docs", "settlement-files.md"))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.SplitAfter(string(b), "\n")
	for i := 0; i < len(lines); i++ {
		lang, ok := strings.CutPrefix(strings.TrimSuffix(lines[i], "\n"), "```")
		if !ok {
			continue
		}
		var body strings.Builder
		for i++; i < len(lines) && !strings.HasPrefix(lines[i], "```"); i++ {
			body.WriteString(lines[i])
		}
		blocks = append(blocks, [2]string{lang, body.String()})
	}
	return blocks
}

// TestDocExamplesAreWhatTheWritersWrite: every example in docs/settlement-files.md reads, and
// writes back as the same bytes.
func TestDocExamplesAreWhatTheWritersWrite(t *testing.T) {
	seen := map[string]int{}
	for _, block := range docBlocks(t) {
		lang, body := block[0], block[1]
		var out bytes.Buffer
		var err error
		kind := lang
		switch {
		case lang == "xml" && strings.Contains(body, bankfile.NamespaceCamt054):
			kind = "settlement xml"
			var f *bankfile.File
			if f, err = bankfile.ReadXML(strings.NewReader(body)); err == nil {
				err = bankfile.WriteXML(&out, f.Header, slices.Values(f.Items))
			}
		case lang == "xml":
			kind = "ack xml"
			var a *bankfile.Ack
			if a, err = bankfile.ReadAckXML(strings.NewReader(body)); err == nil {
				err = bankfile.WriteAckXML(&out, a)
			}
		case lang == "csv" && strings.HasPrefix(body, "record,item_id,kind,"):
			kind = "settlement csv"
			var f *bankfile.File
			if f, err = bankfile.ReadCSV(strings.NewReader(body)); err == nil {
				err = bankfile.WriteCSV(&out, f.Header, slices.Values(f.Items))
			}
		case lang == "csv":
			kind = "ack csv"
			var a *bankfile.Ack
			if a, err = bankfile.ReadAckCSV(strings.NewReader(body)); err == nil {
				err = bankfile.WriteAckCSV(&out, a)
			}
		case lang == "text":
			kind = "manifest"
			var m bankfile.Manifest
			if m, err = bankfile.ReadManifest(strings.NewReader(body)); err == nil {
				err = bankfile.WriteManifest(&out, m)
			}
		default:
			continue
		}
		seen[kind]++
		if err != nil {
			t.Errorf("%s example: %v\n%s", kind, err, body)
			continue
		}
		if out.String() != body {
			t.Errorf("%s example is not what the writer writes:\n%s", kind, out.String())
		}
	}
	for _, kind := range []string{"settlement xml", "settlement csv", "ack xml", "ack csv", "manifest"} {
		if seen[kind] == 0 {
			t.Errorf("the documentation has no %s example", kind)
		}
	}
}

// TestDocErrorExamples: the refusals the documentation quotes are the readers' own words.
func TestDocErrorExamples(t *testing.T) {
	var quoted string
	for _, block := range docBlocks(t) {
		if block[0] == "" && strings.Contains(block[1], "Ntfctn/Ntry/Amt") {
			quoted = block[1]
		}
	}
	for _, m := range []mutation{
		{golden: xmlA, old: ">300.05<", new: ">300.050<"},
		{golden: csvA, old: ",1245126.34,", new: ",1245126.35,"},
	} {
		doc, _ := m.apply(t)
		var err error
		if strings.HasSuffix(m.golden, ".xml") {
			_, err = bankfile.ReadXML(bytes.NewReader(doc))
		} else {
			_, err = bankfile.ReadCSV(bytes.NewReader(doc))
		}
		if err == nil || !strings.Contains(quoted, err.Error()+"\n") {
			t.Errorf("the documentation does not quote the refusal %q", err)
		}
	}
}
