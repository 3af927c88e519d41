package bankfile_test

import (
	"strings"
	"testing"

	"github.com/joinincard/engine/settlement/bankfile"
)

// TestNeutraliseCSVIsUndoneExactly: every value comes back as it was, a value that a spreadsheet
// takes for a formula is written with a leading ', and what NeutraliseCSV never writes is refused.
func TestNeutraliseCSVIsUndoneExactly(t *testing.T) {
	for _, tc := range []struct{ in, out string }{
		{"", ""},
		{"plain", "plain"},
		{"西湖区", "西湖区"},
		{"a=b", "a=b"},
		{"=SUM(A1:A9)", "'=SUM(A1:A9)"},
		{"+86", "'+86"},
		{"-", "'-"},
		{"@cmd", "'@cmd"},
		{"\tx", "'\tx"},
		{"\rx", "'\rx"},
		{"'quoted'", "''quoted'"},
		{"''", "'''"},
	} {
		if got := bankfile.NeutraliseCSV(tc.in); got != tc.out {
			t.Errorf("NeutraliseCSV(%q) = %q, want %q", tc.in, got, tc.out)
		}
		if back, err := bankfile.UnneutraliseCSV(tc.out); err != nil || back != tc.in {
			t.Errorf("UnneutraliseCSV(%q) = %q, %v; want %q", tc.out, back, err, tc.in)
		}
	}
	for _, in := range []string{"=1+2", "-5", "'", "'plain", "@x"} {
		_, err := bankfile.UnneutraliseCSV(in)
		if err == nil {
			t.Errorf("UnneutraliseCSV(%q) accepted what NeutraliseCSV never writes", in)
		} else if len(in) > 1 && strings.Contains(err.Error(), in) {
			t.Errorf("UnneutraliseCSV(%q): error %q repeats the value", in, err)
		}
	}
}
