package settlement_test

import (
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/joinincard/engine/ledger"
	"github.com/joinincard/engine/settlement"
	"github.com/joinincard/engine/settlement/bankfile"
)

// A party whose id or name a file cannot carry as registered (an insurance fund's city written
// with a space or in Chinese, a long name, a party registered before ids were checked) still
// gets its item written: the file names it by a stable stand-in, and its name is cut to the
// file's 140 characters or left out. Without it one such party failed its bank's file, and the
// cycle's close, at every try.
func TestFileItemsOfPartiesAFileCannotNameAsRegistered(t *testing.T) {
	d := settlement.Date{Year: 2026, Month: 3, Day: 2}
	var items []bankfile.Item
	for i, p := range []struct{ id, name string }{
		{"San Francisco", "SF fund"},
		{"苏州工业园区", "园区基金"},
		{"m-" + strings.Repeat("y", 40), strings.Repeat("杭", 141) + " "},
		{"6228480402564899", "Shop 6228 4804 0256 4899"},
		{"shop-1", "Shop"},
	} {
		it := settlement.Item{ID: ledger.ID{byte(i + 1)}, Cycle: d, Bank: "ICBC-JX", Account: ledger.ID{byte(i + 1)}, Kind: settlement.KindMerchantEarnings,
			Party: p.id, PartyName: p.name, Amount: 100, Entries: 1}
		fi, err := settlement.FileItem(it)
		if err != nil {
			t.Fatal(err)
		}
		if again, _ := settlement.FileItem(it); again != fi {
			t.Errorf("%q: named %+v, then %+v", p.id, fi, again)
		}
		if bankfile.CheckPartyID(p.id) == nil && fi.Party != p.id {
			t.Errorf("%q: a file names it %q", p.id, fi.Party)
		}
		items = append(items, fi)
	}
	if items[0].Party == items[1].Party || !strings.HasPrefix(items[0].Party, "P-") || items[4].Party != "shop-1" {
		t.Errorf("parties named %q %q %q", items[0].Party, items[1].Party, items[4].Party)
	}
	if got := []rune(items[2].PartyName); len(got) != 140 || items[3].PartyName != "" || items[1].PartyName != "园区基金" {
		t.Errorf("names %q (%d characters), %q, %q", items[2].PartyName, len(got), items[3].PartyName, items[1].PartyName)
	}
	h := settlement.FileHeader("ICBC-JX", "ICBC Jiaxing", d, settlement.AddDays(d, 1), 1, time.Date(2026, 3, 2, 15, 0, 0, 0, time.UTC),
		settlement.FileTotals{Entries: int64(len(items)), ControlSum: 500, Net: 500})
	if err := bankfile.WriteXML(io.Discard, h, slices.Values(items)); err != nil {
		t.Errorf("xml: %v", err)
	}
	if err := bankfile.WriteCSV(io.Discard, h, slices.Values(items)); err != nil {
		t.Errorf("csv: %v", err)
	}
}
