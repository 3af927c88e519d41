package http

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
)

// The JSON request examples of README.md and docs/*.md are accepted as they are written: a block
// of JSON whose introducing line names operations (`POST /v1/...`) decodes into each named
// operation's request with no field unknown to it and no value of another JSON type.
func TestDocumentedRequestExamplesDecode(t *testing.T) {
	files, err := filepath.Glob("../docs/*.md")
	if err != nil {
		t.Fatal(err)
	}
	files = append(files, "../README.md")
	named := regexp.MustCompile("`((?:POST|PUT) /v1/[^`?]*)")
	found := 0
	for _, file := range files {
		b, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(string(b), "\n")
		for i := 0; i < len(lines); i++ {
			if strings.TrimSpace(lines[i]) != "```json" {
				continue
			}
			intro := ""
			for j := i - 1; j >= 0 && intro == ""; j-- {
				intro = strings.TrimSpace(lines[j])
			}
			end := i + 1
			for end < len(lines) && strings.TrimSpace(lines[end]) != "```" {
				end++
			}
			block := strings.Join(lines[i+1:end], "\n")
			for _, m := range named.FindAllStringSubmatch(intro, -1) {
				typ, ok := requestTypes[m[1]]
				if !ok {
					continue
				}
				found++
				dec := json.NewDecoder(strings.NewReader(block))
				dec.DisallowUnknownFields()
				if err := dec.Decode(reflect.New(reflect.TypeOf(typ)).Interface()); err != nil {
					t.Errorf("%s:%d: the example of %s: %v", filepath.Base(file), i+1, m[1], err)
				}
			}
			i = end
		}
	}
	if found == 0 {
		t.Fatal("no request example found")
	}
}
