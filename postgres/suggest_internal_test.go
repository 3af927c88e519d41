package postgres

import (
	"slices"
	"testing"
)

func TestAmountsWithinSpellsOutTheTolerance(t *testing.T) {
	if got, ok := amountsWithin([]int64{100, 103, 100}, 0); !ok || !slices.Equal(got, []int64{100, 103}) {
		t.Fatalf("no tolerance: %v %v", got, ok)
	}
	if got, ok := amountsWithin([]int64{100, 103}, 2); !ok || !slices.Equal(got, []int64{98, 99, 100, 101, 102, 103, 104, 105}) {
		t.Fatalf("two fen: %v %v", got, ok)
	}
	full := make([]int64, maxReconcileGroup)
	for i := range full {
		full[i] = int64(i) * 1000
	}
	if got, ok := amountsWithin(full, 2); !ok || len(got) != maxSuggestAmounts {
		t.Fatalf("a full chunk within two fen: %d amounts, %v", len(got), ok)
	}
	if _, ok := amountsWithin(full, 3); ok {
		t.Fatal("a full chunk within three fen is spelt out")
	}
	if _, ok := amountsWithin([]int64{1, 2}, 100_00); ok {
		t.Fatal("100.00 either way is spelt out")
	}
}
