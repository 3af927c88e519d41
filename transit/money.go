package transit

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/joinincard/engine/ledger"
)

// maxFareFen bounds every amount a fare file may name: 10,000 CNY is far beyond any fare or cap,
// so a larger number is a typo (fen written as yuan), refused before it can overflow a sum.
const maxFareFen = 1_000_000

// parseFen reads a CNY amount written in yuan with at most two decimals ("2", "2.5", "2.00") as
// fen, exactly: no floating point, no sign, no exponent.
func parseFen(s string) (int64, error) {
	whole, frac, hasPoint := strings.Cut(s, ".")
	if whole == "" || !allDigits(whole) || hasPoint && (frac == "" || !allDigits(frac)) {
		return 0, fmt.Errorf("%q is not an amount, want yuan such as \"2.00\"", s)
	}
	if len(frac) > 2 {
		return 0, fmt.Errorf("%q has more than 2 decimals", s)
	}
	if len(whole) > 1 && whole[0] == '0' {
		return 0, fmt.Errorf("%q has a leading zero", s)
	}
	if len(whole) > len(strconv.Itoa(maxFareFen/100)) { // refused before parsing can overflow
		return 0, fmt.Errorf("%q is more than %s", s, FormatFen(maxFareFen))
	}
	w, err := strconv.ParseInt(whole, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%q: %w", s, err)
	}
	f := int64(0)
	if frac != "" {
		f, _ = strconv.ParseInt(frac, 10, 64) // digits only, at most two: cannot fail
		if len(frac) == 1 {
			f *= 10
		}
	}
	fen := w*100 + f
	if fen > maxFareFen {
		return 0, fmt.Errorf("%q is more than %s", s, FormatFen(maxFareFen))
	}
	return fen, nil
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

// FormatFen writes fen as yuan with two decimals, "-1.50" for -150: the API's and the files' form.
func FormatFen(fen int64) string { return ledger.FormatDecimal(fen, "CNY") }
