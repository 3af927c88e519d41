package cities

import (
	"strings"
	"testing"
)

func TestCanonicalAcceptsChineseAndEnglishNames(t *testing.T) {
	for name, want := range map[string]string{
		"上海": "shanghai", "上海市": "shanghai", "Shanghai": "shanghai", "SHANGHAI": "shanghai", " shanghai ": "shanghai",
		"嘉兴": "jiaxing", "嘉兴市": "jiaxing", "Jiaxing": "jiaxing",
		"北京": "beijing", "Peking": "beijing", "杭州": "hangzhou",
		"西安": "xian", "Xi'an": "xian", "xian": "xian",
		// Unknown names are kept as written.
		"San Francisco": "San Francisco", "泰州": "泰州", "": "",
	} {
		if got := Canonical(name); got != want {
			t.Errorf("Canonical(%q) = %q, want %q", name, got, want)
		}
	}
	if _, ok := Lookup("a\xffb"); ok {
		t.Error("invalid utf-8 names a city")
	}
}

func TestTheListIsConsistent(t *testing.T) {
	all, err := All()
	if err != nil {
		t.Fatal(err)
	}
	if len(all) < 40 {
		t.Fatalf("%d cities", len(all))
	}
	for _, c := range all {
		for _, n := range []string{c.ID, c.Chinese, c.English} {
			if got := Canonical(n); got != c.ID {
				t.Errorf("%s: %q is %q", c.ID, n, got)
			}
		}
	}
	// A name given to two cities, or an id not in lower case, is refused.
	for _, bad := range []string{
		`[{"id":"a","zh":"甲","en":"A"},{"id":"b","zh":"乙","en":"a"}]`,
		`[{"id":"Upper","zh":"甲","en":"A"}]`,
		`[{"id":"a","zh":"","en":"A"}]`,
	} {
		if _, err := parse([]byte(bad)); err == nil || !strings.Contains(err.Error(), "cities") {
			t.Errorf("%s: %v", bad, err)
		}
	}
}
