package ledger

import (
	"math"
	"strings"
	"testing"
)

func TestFormatAmount(t *testing.T) {
	for _, tc := range []struct {
		minor int64
		c     Currency
		want  string
	}{
		{0, "CNY", "0.00"},
		{5, "CNY", "0.05"},
		{100, "CNY", "1.00"},
		{123456, "CNY", "1,234.56"},
		{-123456, "CNY", "-1,234.56"},
		{100000000, "CNY", "1,000,000.00"},
		{1234, "JPY", "1,234"},
		{math.MinInt64, "CNY", "-92,233,720,368,547,758.08"},
		{math.MaxInt64, "CNY", "92,233,720,368,547,758.07"},
	} {
		if got := FormatAmount(tc.minor, tc.c); got != tc.want {
			t.Errorf("FormatAmount(%d, %s) = %q, want %q", tc.minor, tc.c, got, tc.want)
		}
	}
}

func TestFormatDecimal(t *testing.T) {
	for _, tc := range []struct {
		minor int64
		c     Currency
		want  string
	}{
		{0, "CNY", "0.00"},
		{5, "CNY", "0.05"},
		{-150, "CNY", "-1.50"},
		{123456, "CNY", "1234.56"},
		{100000000, "CNY", "1000000.00"},
		{1234, "JPY", "1234"},
		{math.MinInt64, "CNY", "-92233720368547758.08"},
	} {
		if got := FormatDecimal(tc.minor, tc.c); got != tc.want {
			t.Errorf("FormatDecimal(%d, %s) = %q, want %q", tc.minor, tc.c, got, tc.want)
		}
	}
}

func TestParseDecimalReadsWhatFormatDecimalWrites(t *testing.T) {
	for _, tc := range []struct {
		minor int64
		c     Currency
	}{
		{0, "CNY"}, {5, "CNY"}, {-5, "CNY"}, {150, "CNY"}, {-150, "CNY"}, {123456, "CNY"},
		{math.MaxInt64, "CNY"}, {math.MinInt64, "CNY"}, {1234, "JPY"}, {-1, "JPY"}, {0, "JPY"},
		{math.MaxInt64, "JPY"}, {math.MinInt64, "JPY"},
	} {
		s := FormatDecimal(tc.minor, tc.c)
		got, err := ParseDecimal(s, tc.c)
		if err != nil || got != tc.minor {
			t.Errorf("ParseDecimal(%q, %s) = %d, %v; want %d", s, tc.c, got, err, tc.minor)
		}
	}
}

func TestParseDecimalRefusesAnyOtherForm(t *testing.T) {
	for _, tc := range []struct {
		s    string
		c    Currency
		want string
	}{
		{"", "CNY", "empty"},
		{"1e3", "CNY", "not a decimal"},
		{"1.234", "CNY", "exactly 2 decimals"},
		{"1.2", "CNY", "exactly 2 decimals"},
		{"12", "CNY", "exactly 2 decimals"},
		{"12.", "CNY", "exactly 2 decimals"},
		{".50", "CNY", "not a decimal"},
		{"+1.00", "CNY", "not a decimal"},
		{"--1.00", "CNY", "not a decimal"},
		{"-", "CNY", "not a decimal"},
		{" 1.00", "CNY", "not a decimal"},
		{"1,000.00", "CNY", "not a decimal"},
		{"01.00", "CNY", "leading zero"},
		{"-0.00", "CNY", "negative zero"},
		{"-0", "JPY", "negative zero"},
		{"1.0", "JPY", "no decimals"},
		{"92233720368547758.08", "CNY", "overflows"},
		{"-92233720368547758.09", "CNY", "overflows"},
		{"99999999999999999999999.00", "CNY", "overflows"},
		{"9223372036854775808", "JPY", "overflows"},
		{"1.00", "XXX", "unknown currency"},
		{"１.00", "CNY", "not a decimal"},
	} {
		got, err := ParseDecimal(tc.s, tc.c)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ParseDecimal(%q, %s) = %d, %v; want an error containing %q", tc.s, tc.c, got, err, tc.want)
		}
	}
}

// FuzzParseDecimal: whatever ParseDecimal accepts, FormatDecimal writes back as the same bytes, so
// a file's amounts have exactly one spelling.
func FuzzParseDecimal(f *testing.F) {
	for _, s := range []string{"0.00", "-0.05", "1234.56", "92233720368547758.07", "-92233720368547758.08", "1e3", "01.00", "-0.00"} {
		f.Add(s, false)
	}
	f.Add("1234", true)
	f.Fuzz(func(t *testing.T, s string, jpy bool) {
		c := Currency("CNY")
		if jpy {
			c = "JPY"
		}
		v, err := ParseDecimal(s, c)
		if err != nil {
			return
		}
		if back := FormatDecimal(v, c); back != s {
			t.Errorf("ParseDecimal(%q, %s) = %d, which FormatDecimal writes as %q", s, c, v, back)
		}
	})
}

func TestParseAmountTakesUpToTheCurrencysDecimals(t *testing.T) {
	for _, tc := range []struct {
		s    string
		c    Currency
		want int64
	}{
		{"0", "CNY", 0}, {"0.00", "CNY", 0}, {"1", "CNY", 100}, {"1.5", "CNY", 150}, {"1.05", "CNY", 105},
		{"1234.56", "CNY", 123456}, {"1234", "JPY", 1234}, {"92233720368547758.07", "CNY", math.MaxInt64},
		{"9223372036854775807", "JPY", math.MaxInt64},
	} {
		got, err := ParseAmount(tc.s, tc.c)
		if err != nil || got != tc.want {
			t.Errorf("ParseAmount(%q, %s) = %d, %v, want %d", tc.s, tc.c, got, err, tc.want)
		}
	}
	for _, tc := range []struct {
		s, c, why string
	}{
		{"", "CNY", "empty"}, {"-1.00", "CNY", "negative"}, {"+1.00", "CNY", "not a decimal"}, {"1e3", "CNY", "not a decimal"},
		{"1.", "CNY", "not a decimal"}, {".5", "CNY", "not a decimal"}, {"1.234", "CNY", "has 3 decimal places, CNY has 2"},
		{"1.0", "JPY", "has 1 decimal places, JPY has 0"}, {"01.00", "CNY", "leading zero"}, {"1 000", "CNY", "not a decimal"},
		{"92233720368547758.08", "CNY", "overflows"}, {"100000000000000000000", "JPY", "overflows"},
		{"1.00", "XXX", "unknown currency"}, {"1,00", "CNY", "not a decimal"},
	} {
		_, err := ParseAmount(tc.s, Currency(tc.c))
		if err == nil || !strings.Contains(err.Error(), tc.why) {
			t.Errorf("ParseAmount(%q, %s): %v, want an error saying %q", tc.s, tc.c, err, tc.why)
			continue
		}
		if tc.s != "" && strings.Contains(err.Error(), tc.s) && tc.why != "unknown currency" {
			t.Errorf("ParseAmount(%q): the error %q repeats the amount", tc.s, err)
		}
	}
}
