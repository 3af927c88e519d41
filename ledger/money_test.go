package ledger

import (
	"math"
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
