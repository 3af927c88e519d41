package archive

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"testing/fstest"
)

// monthArchive writes a whole archive of format with one transfer of 10.00 between two accounts,
// and the settlement items given as their amount and rejected marker (FormatV2; FormatV1 has no
// marker and its rows leave it out), stating net as the settlement net.
func monthArchive(t *testing.T, format string, items [][2]string, net string) (fstest.MapFS, Manifest) {
	t.Helper()
	files, err := DataFiles(format)
	if err != nil {
		t.Fatal(err)
	}
	rows := map[string][][]string{
		"cycles.csv":    {{"2026-03-31", "2026-03-30T15:00:00.000000Z", "2026-03-31T15:00:00.000000Z", "2026-04-01", "0.00", "2026-03-31T15:10:00.000000Z"}},
		"transfers.csv": {{"t1", "2026-03-31T01:00:00.000000Z", "a", "b", "10.00", "CNY", "1", "", "", "", "0"}},
		"accounts.csv": {
			{"a", "card", "CNY", "10.00", "10.00", "0.00", "0.00"},
			{"b", "merchant", "CNY", "-10.00", "0.00", "10.00", "0.00"},
		},
	}
	for i, it := range items {
		row := []string{"2026-03-31", "item-" + string(rune('a'+i)), "BANK", "merchant", "shop", "", it[0], "CNY", "1", ""}
		if format != FormatV1 {
			row = append(row, it[1])
		}
		rows["settlement_items.csv"] = append(rows["settlement_items.csv"], row)
	}
	fsys := fstest.MapFS{}
	m := Manifest{Format: format, Month: "2026-03", Cycles: 1,
		Totals: []Totals{{Currency: "CNY", Transfers: 1, TransferAmount: "10.00", Accounts: 2, Opening: "0.00",
			Debits: "10.00", Credits: "10.00", Closing: "0.00", SettlementNet: net}}}
	for _, f := range files {
		var data bytes.Buffer
		tab, err := NewTable(&data, f.Name, f.Header)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range rows[f.Name] {
			if err := tab.Row(r...); err != nil {
				t.Fatal(err)
			}
		}
		entry, err := tab.Close()
		if err != nil {
			t.Fatal(err)
		}
		m.Files = append(m.Files, entry)
		fsys[f.Name] = &fstest.MapFile{Data: data.Bytes()}
	}
	var manifest, sums bytes.Buffer
	if err := WriteManifest(&manifest, m); err != nil {
		t.Fatal(err)
	}
	if err := WriteChecksums(&sums, m.Files, manifest.Bytes()); err != nil {
		t.Fatal(err)
	}
	fsys[ManifestName] = &fstest.MapFile{Data: manifest.Bytes()}
	fsys[ChecksumsName] = &fstest.MapFile{Data: sums.Bytes()}
	return fsys, m
}

// The settlement net of a FormatV2 archive is recomputed from the items its banks did not reject;
// a marker that is neither true nor false is refused; a FormatV1 archive, whose items carry no
// marker, keeps its stated net unchecked.
func TestCheckTotalsRecomputesTheSettlementNet(t *testing.T) {
	for _, c := range []struct {
		name   string
		format string
		items  [][2]string
		net    string
		want   string // in the error, "" for none
	}{
		{"the banks settled all", FormatV2, [][2]string{{"12.00", "false"}, {"-2.50", "false"}}, "9.50", ""},
		{"a rejected item left out", FormatV2, [][2]string{{"12.00", "false"}, {"7.00", "true"}}, "12.00", ""},
		{"a rejected item counted", FormatV2, [][2]string{{"12.00", "false"}, {"7.00", "true"}}, "19.00",
			"CNY settlement_items_net: the manifest states 19.00, settlement_items.csv adds up to 12.00"},
		{"no items", FormatV2, nil, "0.00", ""},
		{"a marker of another word", FormatV2, [][2]string{{"12.00", "yes"}}, "12.00", `rejected: "yes" is neither true nor false`},
		{"an empty marker", FormatV2, [][2]string{{"12.00", ""}}, "12.00", `rejected: "" is neither true nor false`},
		{"an amount that is not one", FormatV2, [][2]string{{"12.001", "false"}}, "12.00", "amount: not an amount"},
		{"the first layout", FormatV1, [][2]string{{"12.00", ""}, {"7.00", ""}}, "12.00", ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			fsys, m := monthArchive(t, c.format, c.items, c.net)
			checked, err := Check(fsys)
			if err != nil {
				t.Fatal(err)
			}
			if checked.Format != m.Format {
				t.Fatalf("format read %q, written %q", checked.Format, m.Format)
			}
			err = CheckTotals(fsys, checked)
			switch {
			case c.want == "" && err != nil:
				t.Errorf("check: %v", err)
			case c.want != "" && (!errors.Is(err, ErrTotals) || !strings.Contains(err.Error(), c.want)):
				t.Errorf("check: %v, want ErrTotals naming %q", err, c.want)
			}
		})
	}
}

// An archive of a layout this engine does not know is not taken for one it does.
func TestCheckRefusesAnUnknownFormat(t *testing.T) {
	fsys, _ := monthArchive(t, FormatV2, nil, "0.00")
	raw := bytes.Replace(fsys[ManifestName].Data, []byte(FormatV2), []byte("joinin-month-archive/9"), 1)
	var sums bytes.Buffer
	m, _ := Check(fsys)
	if err := WriteChecksums(&sums, m.Files, raw); err != nil {
		t.Fatal(err)
	}
	fsys[ManifestName].Data, fsys[ChecksumsName].Data = raw, sums.Bytes()
	if _, err := Check(fsys); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "joinin-month-archive/9") {
		t.Errorf("an archive of layout 9: %v, want ErrCorrupt naming it", err)
	}
	if err := CheckTotals(fsys, Manifest{Format: "joinin-month-archive/9"}); !errors.Is(err, ErrTotals) {
		t.Errorf("totals of layout 9: %v, want ErrTotals", err)
	}
}
