package bankformat

import (
	"errors"
	"testing"
)

func TestFieldError(t *testing.T) {
	sentinel := errors.New("control sum disagrees")
	for _, tc := range []struct {
		e    FieldError
		want string
	}{
		{FieldError{Record: "file", Err: sentinel}, "file: control sum disagrees"},
		{FieldError{Record: "header", Line: 3, Field: "ctrl_sum", Err: sentinel}, "line 3: header: ctrl_sum: control sum disagrees"},
		{FieldError{Record: "item", Entry: 2, Field: "Amount", Err: sentinel}, "item 2: Amount: control sum disagrees"},
		{FieldError{Record: "entry", Line: 9, Entry: 7, Field: "Ntry/Amt", Err: sentinel}, "line 9: entry 7: Ntry/Amt: control sum disagrees"},
	} {
		if got := tc.e.Error(); got != tc.want {
			t.Errorf("Error() = %q, want %q", got, tc.want)
		}
		if !errors.Is(&tc.e, sentinel) {
			t.Errorf("%q does not unwrap to its sentinel", tc.want)
		}
	}
}
