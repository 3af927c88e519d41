package http

import (
	"encoding/json"
	"fmt"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"
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

// The curl examples of README.md and docs/*.md work as they are written, today: each is run by
// the shell with a curl that only hands over its arguments, which are sent to a server whose
// clock is the real one, with the admin token in $JOININ_ADMIN_TOKEN and a file named with
// @FILE looked up in the repository. Each must succeed.
func TestDocumentedCurlExamplesWork(t *testing.T) {
	files, err := filepath.Glob("../docs/*.md")
	if err != nil {
		t.Fatal(err)
	}
	files = append(files, "../README.md")
	found := 0
	for _, file := range files {
		b, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(string(b), "\n")
		for i := 0; i < len(lines); i++ {
			if strings.TrimSpace(lines[i]) != "```sh" {
				continue
			}
			end := i + 1
			for end < len(lines) && strings.TrimSpace(lines[end]) != "```" {
				end++
			}
			block := strings.Join(lines[i+1:end], "\n")
			if strings.Contains(block, "curl ") {
				found++
				runCurlExample(t, fmt.Sprintf("%s:%d", filepath.Base(file), i+1), block)
			}
			i = end
		}
	}
	if found == 0 {
		t.Fatal("no curl example found")
	}
}

func runCurlExample(t *testing.T, where, block string) {
	t.Helper()
	script := "curl() { for a in \"$@\"; do printf '%s\\000' \"$a\"; done; printf '\\n\\000'; }\n" + block
	cmd := exec.Command("sh", "-c", script)
	cmd.Env = append(os.Environ(), "JOININ_ADMIN_TOKEN="+testAdminToken)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s: sh: %v", where, err)
	}
	for _, call := range strings.Split(string(out), "\n\x00") {
		args := strings.Split(strings.TrimSuffix(call, "\x00"), "\x00")
		if len(args) == 1 && args[0] == "" {
			continue
		}
		e := newEnv(t)
		e.clock.mu.Lock()
		e.clock.now = time.Now()
		e.clock.mu.Unlock()
		method, target, body, header := http.MethodGet, "", "", http.Header{}
		for k := 0; k < len(args); k++ {
			switch a := args[k]; {
			case a == "-X" && k+1 < len(args):
				k++
				method = args[k]
			case a == "-H" && k+1 < len(args):
				k++
				name, value, _ := strings.Cut(args[k], ":")
				header.Add(name, strings.TrimSpace(value))
			case (a == "--data-binary" || a == "-d" || a == "--data") && k+1 < len(args):
				k++
				body = args[k]
				if name, ok := strings.CutPrefix(body, "@"); ok {
					body = string(readRepoFile(t, name))
				}
				if a == "-d" || a == "--data" {
					body = strings.ReplaceAll(body, "\n", "")
				}
			case strings.HasPrefix(a, "-"):
				t.Fatalf("%s: curl option %q not understood here", where, a)
			default:
				target = a
			}
		}
		u, err := url.Parse(target)
		if err != nil || u.Path == "" {
			t.Fatalf("%s: curl to %q", where, target)
		}
		r := httptest.NewRequest(method, u.RequestURI(), strings.NewReader(body))
		r.Header = header
		w := httptest.NewRecorder()
		e.h.ServeHTTP(w, r)
		if w.Code >= 300 {
			t.Errorf("%s: %s %s answered %d %s", where, method, u.RequestURI(), w.Code, w.Body.String())
		}
	}
}

// readRepoFile returns the file of the repository named name (a base name, as an example's
// @FILE is written beside it).
func readRepoFile(t *testing.T, name string) []byte {
	t.Helper()
	var found []string
	err := filepath.WalkDir("..", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == ".git" || d.Name() == "bin") {
			return filepath.SkipDir
		}
		if !d.IsDir() && d.Name() == name {
			found = append(found, path)
		}
		return nil
	})
	if err != nil || len(found) != 1 {
		t.Fatalf("@%s: found %q (%v)", name, found, err)
	}
	b, err := os.ReadFile(found[0])
	if err != nil {
		t.Fatal(err)
	}
	return b
}
