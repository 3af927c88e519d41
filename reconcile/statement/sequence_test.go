package statement_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/joinincard/engine/reconcile/statement"
)

func TestCheckSequence(t *testing.T) {
	for _, tc := range []struct {
		previous, sequence int64
		copy               bool
		ok                 bool
		says               string
	}{
		{0, 1, false, true, ""},
		{11, 12, false, true, ""},
		{11, 13, false, false, "statement 13 after statement 11, want 12"},
		{12, 12, false, false, "statement 12 after statement 12, want 13"},
		{0, 2, false, false, "want 1"},
		{12, 12, true, true, ""},
		{12, 1, true, true, ""},
		{12, 13, true, false, "a copy of statement 13, but the last statement is 12"},
		{0, 1, true, false, "a copy of statement 1, but the last statement is 0"},
		{-1, 0, false, false, "negative"},
	} {
		h := icbc().Header
		h.Sequence, h.Copy = tc.sequence, tc.copy
		err := statement.CheckSequence(tc.previous, h)
		if tc.ok != (err == nil) {
			t.Errorf("CheckSequence(%d, %d copy=%v) = %v", tc.previous, tc.sequence, tc.copy, err)
			continue
		}
		if err != nil && (!errors.Is(err, statement.ErrSequence) || !strings.Contains(err.Error(), tc.says)) {
			t.Errorf("CheckSequence(%d, %d copy=%v) = %v, want ErrSequence saying %q", tc.previous, tc.sequence, tc.copy, err, tc.says)
		}
	}
}
