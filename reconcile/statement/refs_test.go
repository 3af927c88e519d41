package statement_test

import (
	"testing"

	"github.com/joinincard/engine/ledger"
	"github.com/joinincard/engine/reconcile/statement"
	"github.com/joinincard/engine/settlement"
)

// TestClassifyRefKnowsTheEngineIDs: the ids settlement writes in its files classify as what they
// are, whatever the bank, the cycle and the sequence.
func TestClassifyRefKnowsTheEngineIDs(t *testing.T) {
	ids := []ledger.ID{{}, {0x01, 0x99, 0xd3, 0xa2, 0xff, 0x0e}}
	for i := range 1000 {
		var id ledger.ID
		for j := range id {
			id[j] = byte(i*31 + j*17)
		}
		ids = append(ids, id)
	}
	for _, id := range ids {
		if got := statement.ClassifyRef(settlement.FileItemID(id)); got != statement.RefItem {
			t.Errorf("ClassifyRef(%s) = %s, want item", settlement.FileItemID(id), got)
		}
	}
	for _, bank := range []string{"ICBC-HZ", "ABC-SH", "CCB-NB", "a-bank-with-a-long-id-of-34-chars"} {
		for _, seq := range []int64{1, 42, 999_999, 1_000_000, 9_999_999_999_999} {
			id := settlement.FileMessageID(bank, date(2026, 10, 9), seq)
			if got := statement.ClassifyRef(id); got != statement.RefFile {
				t.Errorf("ClassifyRef(%s) = %s, want file", id, got)
			}
		}
	}
}

func TestClassifyRef(t *testing.T) {
	for _, tc := range []struct {
		ref  string
		want statement.RefKind
	}{
		{"", statement.RefNone},
		{"0199d3a2c4d07e4b9a1c5d2e3f405103", statement.RefItem},
		{"0199D3A2C4D07E4B9A1C5D2E3F405103", statement.RefItem},
		{"0199d3a2c4d07e4b9a1c5d2e3f40510", statement.RefOther},
		{"0199d3a2c4d07e4b9a1c5d2e3f4051033", statement.RefOther},
		{"0199d3a2-c4d0-7e4b-9a1c-5d2e3f405103", statement.RefOther},
		{"0199d3a2c4d07e4b9a1c5d2e3f40510g", statement.RefOther},
		{"JIC-20261009-3637c6c0-000042", statement.RefFile},
		{"JIC-20261009-3637c6c0-00042", statement.RefOther},
		{"JIC-20261009-3637C6C0-000042", statement.RefOther},
		{"JIC-20261332-3637c6c0-000042", statement.RefOther},
		{"JIC-20261009-3637c6c0-00004a", statement.RefOther},
		{"JIC-20261009_3637c6c0-000042", statement.RefOther},
		{"jic-20261009-3637c6c0-000042", statement.RefOther},
		{"NOTPROVIDED", statement.RefOther},
		{"RTN-AC04-0199d3a2", statement.RefOther},
	} {
		if got := statement.ClassifyRef(tc.ref); got != tc.want {
			t.Errorf("ClassifyRef(%q) = %s, want %s", tc.ref, got, tc.want)
		}
	}
}
