package statement_test

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/joinincard/engine/reconcile/statement"
)

// docBlocks returns the fenced code blocks of docs/bank-statements.md with their language.
func docBlocks(t *testing.T) (blocks [][2]string) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "docs", "bank-statements.md"))
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

// TestDocExamplesAreWhatTheWritersWrite: every example statement in docs/bank-statements.md reads,
// whole and entry by entry, and writes back as the same bytes; the XML and the first CSV are the
// same statement.
func TestDocExamplesAreWhatTheWritersWrite(t *testing.T) {
	var read []*statement.Statement
	seen := map[statement.Format]int{}
	for _, block := range docBlocks(t) {
		lang, body := block[0], block[1]
		var f statement.Format
		switch {
		case lang == "xml" && strings.Contains(body, statement.NamespaceCamt053):
			f = statement.FormatXML
		case lang == "csv" && strings.HasPrefix(body, "record,amount,direction,"):
			f = statement.FormatCSV
		default:
			continue
		}
		seen[f]++
		s, err := statement.ReadAll(strings.NewReader(body), f)
		if err != nil {
			t.Errorf("%s example: %v\n%s", f, err, body)
			continue
		}
		if streamed := streamAll(t, f, []byte(body)); !sameStatement(streamed, s) {
			t.Errorf("%s example: the Reader yields %+v, ReadAll %+v", f, streamed, s)
		}
		var out bytes.Buffer
		write := statement.WriteXML
		if f == statement.FormatCSV {
			write = statement.WriteCSV
		}
		if err := write(&out, s.Header, slices.Values(s.Entries)); err != nil {
			t.Errorf("%s example: %v", f, err)
		} else if out.String() != body {
			t.Errorf("%s example is not what the writer writes:\n%s", f, out.String())
		}
		read = append(read, s)
	}
	if seen[statement.FormatXML] == 0 || seen[statement.FormatCSV] < 2 {
		t.Fatalf("the documentation has %d XML and %d CSV examples, want one and two", seen[statement.FormatXML], seen[statement.FormatCSV])
	}
	if len(read) >= 2 && !sameStatement(read[0], read[1]) {
		t.Errorf("the XML example reads as %+v, the CSV that says it is the same as %+v", read[0], read[1])
	}
	if len(read) < 3 {
		return
	}
	// The examples show what the text says they show.
	x, c := read[0], read[2]
	if len(x.Entries) != 2 || statement.ClassifyRef(x.Entries[0].EndToEndRef) != statement.RefFile || x.Entries[1].EndToEndRef != "" {
		t.Errorf("the first example is not a file's net and a fee without a reference: %+v", x.Entries)
	}
	if !c.Header.Copy || c.Header.ClosingBalance >= 0 || c.Entries[1].EndToEndRef != strings.ToUpper(c.Entries[1].EndToEndRef) ||
		c.Entries[0].ValueDate == c.Entries[0].BookingDate {
		t.Errorf("the copy example is not an overdrawn duplicate copy with an upper-case reference and a later value date: %+v", c)
	}
}

// TestDocErrorExamples: the refusals the documentation quotes are the readers' own words.
func TestDocErrorExamples(t *testing.T) {
	var quoted strings.Builder
	for _, block := range docBlocks(t) {
		if block[0] == "" {
			quoted.WriteString(block[1])
		}
	}
	for _, m := range []mutation{
		{golden: xmlA, old: ">1520.00<", new: ">1520.000<"},
		{golden: xmlA, old: ">6257330.04<", new: ">6257330.05<"},
		{golden: csvA, old: ",1260420.04,", new: ",1260420.05,"},
		{golden: csvA, old: ",账户管理费 account fee", new: ",fee for " + pan},
		{golden: xmlA, old: ">8650.40<", new: ">8650.41<"},
	} {
		doc, _ := m.apply(t)
		read := readXML
		if strings.HasSuffix(m.golden, ".csv") {
			read = readCSV
		}
		_, err := read(doc)
		if err == nil || !strings.Contains(quoted.String(), err.Error()+"\n") {
			t.Errorf("the documentation does not quote the refusal %q", err)
		}
	}
}
