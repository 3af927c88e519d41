package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/joinincard/engine/archive"
)

// writeTestArchive writes an archive of one cycle whose transfers.csv holds transfers (amounts
// in CNY) and whose manifest states totals, as the export writes it, checksums and all.
func writeTestArchive(t *testing.T, dir string, transfers []string, totals archive.Totals) {
	t.Helper()
	m := archive.Manifest{Format: archive.FormatV1, Month: "2026-03", Cycles: 1, Totals: []archive.Totals{totals}}
	tables := []struct {
		name   string
		header []string
		rows   [][]string
	}{
		{"cycles.csv", []string{"cycle_date", "starts_after", "ends_at", "value_date", "fee_income", "closed_at"},
			[][]string{{"2026-03-31", "2026-03-30T15:00:00.000000Z", "2026-03-31T15:00:00.000000Z", "2026-04-01", "0.00", "2026-03-31T15:10:00.000000Z"}}},
		{"transfers.csv", []string{"id", "ts", "debit_account_id", "credit_account_id", "amount", "currency", "code", "flags",
			"ref_id", "user_data", "timeout_seconds"}, nil},
		{"accounts.csv", []string{"account_id", "kind", "currency", "opening_net", "debits_posted", "credits_posted", "closing_net"},
			[][]string{
				{"00000000-0000-0000-0000-00000000000a", "asset", "CNY", "-5.00", "12.34", "0.00", "-17.34"},
				{"00000000-0000-0000-0000-00000000000b", "liability", "CNY", "5.00", "0.00", "12.34", "17.34"},
			}},
		{"settlement_items.csv", []string{"cycle_date", "item_id", "bank_id", "kind", "party", "party_name", "amount", "currency",
			"entries", "reoffers"}, nil},
	}
	for i, a := range transfers {
		tables[1].rows = append(tables[1].rows, []string{"00000000-0000-0000-0000-00000000010" + string(rune('0'+i)), "2026-03-31T01:00:00.000000Z",
			"00000000-0000-0000-0000-00000000000a", "00000000-0000-0000-0000-00000000000b", a, "CNY", "1", "", "", "", "0"})
	}
	for _, tab := range tables {
		f, err := os.Create(filepath.Join(dir, tab.name))
		if err != nil {
			t.Fatal(err)
		}
		tw, err := archive.NewTable(f, tab.name, tab.header)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range tab.rows {
			if err := tw.Row(r...); err != nil {
				t.Fatal(err)
			}
		}
		entry, err := tw.Close()
		if err != nil {
			t.Fatal(err)
		}
		f.Close()
		m.Files = append(m.Files, entry)
	}
	var manifest, sums bytes.Buffer
	if err := archive.WriteManifest(&manifest, m); err != nil {
		t.Fatal(err)
	}
	if err := archive.WriteChecksums(&sums, m.Files, manifest.Bytes()); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, archive.ManifestName), manifest.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, archive.ChecksumsName), sums.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

// joinin archive --check recomputes the control totals from the archived files: an archive whose
// checksums were made again over a changed file, or whose manifest states other totals than its
// files add up to, is refused, naming each total that disagrees with both values.
func TestArchiveCheckRecomputesTheControlTotals(t *testing.T) {
	totals := archive.Totals{Currency: "CNY", Transfers: 2, TransferAmount: "12.34", Accounts: 2, Opening: "0.00",
		Debits: "12.34", Credits: "12.34", Closing: "0.00", SettlementNet: "0.00"}
	check := func(dir string) (string, error) {
		var out, errs strings.Builder
		err := run(context.Background(), []string{"archive", "--check", dir}, &out, &errs)
		return out.String(), err
	}
	good := t.TempDir()
	writeTestArchive(t, good, []string{"10.00", "2.34"}, totals)
	if out, err := check(good); err != nil || !strings.Contains(out, "control totals add up") {
		t.Fatalf("a whole archive: %v\n%s", err, out)
	}

	// A transfer's amount changed, its checksums made again: the totals disagree.
	changed := t.TempDir()
	writeTestArchive(t, changed, []string{"10.00", "3.34"}, totals)
	if _, err := check(changed); err == nil || !strings.Contains(err.Error(), "CNY transfer_amount: the manifest states 12.34, transfers.csv adds up to 13.34") {
		t.Errorf("a changed transfer: %v", err)
	}
	// A transfer left out, and the manifest states another number of accounts.
	short := t.TempDir()
	less := totals
	less.Accounts = 3
	writeTestArchive(t, short, []string{"10.00"}, less)
	_, err := check(short)
	for _, want := range []string{"CNY transfers: the manifest states 2, transfers.csv adds up to 1",
		"CNY transfer_amount: the manifest states 12.34, transfers.csv adds up to 10.00", "CNY accounts: the manifest states 3, accounts.csv adds up to 2"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("a transfer left out: %v, want %q", err, want)
		}
	}
}
