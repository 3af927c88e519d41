package events_test

import (
	"bufio"
	"encoding/hex"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/joinincard/engine/events"
)

const docPath = "../docs/events.md"

// docSections reads docs/events.md: the ```json blocks, and the first cells of table rows
// (`name` in backticks) under each heading.
func docSections(t *testing.T) (blocks []string, rows map[string][][]string) {
	t.Helper()
	f, err := os.Open(docPath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rows = make(map[string][][]string)
	heading := ""
	var block *strings.Builder
	s := bufio.NewScanner(f)
	for s.Scan() {
		line := s.Text()
		switch {
		case block != nil && line == "```":
			blocks = append(blocks, block.String())
			block = nil
		case block != nil:
			block.WriteString(line + "\n")
		case line == "```json":
			block = new(strings.Builder)
		case strings.HasPrefix(line, "#"):
			heading = strings.TrimSpace(strings.TrimLeft(line, "#"))
		case strings.HasPrefix(line, "| `"):
			var cells []string
			for _, c := range strings.Split(strings.Trim(line, "|"), "|") {
				cells = append(cells, strings.Trim(strings.TrimSpace(c), "`"))
			}
			rows[heading] = append(rows[heading], cells)
		}
	}
	if err := s.Err(); err != nil {
		t.Fatal(err)
	}
	if block != nil {
		t.Fatal("unterminated ```json block")
	}
	return blocks, rows
}

// TestDocExamplesDecode: every JSON example of the producers' documentation is a valid event, and
// every type has one.
func TestDocExamplesDecode(t *testing.T) {
	blocks, _ := docSections(t)
	seen := make(map[events.Type]int)
	for i, b := range blocks {
		e, err := events.Decode([]byte(b))
		if err != nil {
			t.Errorf("example %d: %v\n%s", i+1, err, b)
			continue
		}
		seen[e.Type]++
	}
	for _, typ := range events.Types() {
		if seen[typ] == 0 {
			t.Errorf("no example of %s", typ)
		}
	}
}

// TestDocFieldTables: the documentation's field tables list exactly the decoder's fields, in
// canonical order.
func TestDocFieldTables(t *testing.T) {
	_, rows := docSections(t)
	check := func(heading string, want []string) {
		var got []string
		for _, r := range rows[heading] {
			got = append(got, r[0])
		}
		if !slices.Equal(got, want) {
			t.Errorf("the table under %q lists %q, the decoder reads %q", heading, got, want)
		}
	}
	check("Envelope", events.EnvelopeFields)
	for _, typ := range events.Types() {
		check("`"+string(typ)+"`", events.DataFields[typ])
	}
}

// TestDocTokenVectors: the documented test vectors are what Tokenizer and the masks make, with
// the key as the documentation gives it to --token-key, in hex.
func TestDocTokenVectors(t *testing.T) {
	_, rows := docSections(t)
	doc, err := os.ReadFile(docPath)
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile("--token-key ([0-9a-f]+)\n").FindSubmatch(doc)
	if m == nil {
		t.Fatal("the documentation gives no --token-key for its test vectors")
	}
	key, err := hex.DecodeString(string(m[1]))
	if err != nil {
		t.Fatalf("the documented --token-key is not hex: %v", err)
	}
	if string(key) != "join-in-card-example-key-not-for-production" {
		t.Errorf("the documented --token-key is the bytes %q, not the text the documentation names", key)
	}
	tk, err := events.NewTokenizer(key)
	if err != nil {
		t.Fatal(err)
	}
	vectors := rows["Test vectors"]
	if len(vectors) == 0 {
		t.Fatal("no test vectors")
	}
	for _, v := range vectors {
		number, token, masked := v[0], v[1], v[2]
		if got := tk.Token(number); got != token {
			t.Errorf("Token(%s) = %s, the documentation says %s", number, got, token)
		}
		mask := events.MaskTail
		if strings.Contains(masked, "******") && !strings.HasPrefix(masked, "*") {
			mask = events.MaskCardNumber
		}
		if got, err := mask(number); err != nil || got != masked {
			t.Errorf("mask(%s) = %s (%v), the documentation says %s", number, got, err, masked)
		}
	}
}
