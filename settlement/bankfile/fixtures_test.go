package bankfile_test

import (
	"bytes"
	"slices"
	"testing"
	"time"

	"github.com/joinincard/engine/events"
	"github.com/joinincard/engine/settlement/bankfile"
)

var shanghai = time.FixedZone("CST", 8*60*60)

func date(y int, m time.Month, d int) events.Date { return events.Date{Year: y, Month: m, Day: d} }

// bankA is a cycle in which the bank's merchants and operators earned more than its cardholders
// spent: a positive net, the bank receives. Its value date is a Saturday working day.
func bankA() *bankfile.File {
	items := []bankfile.Item{
		{ID: "0199d3a2c4d07e4b9a1c5d2e3f405101", Kind: bankfile.KindOperatorEarnings, Party: "operator-hz-metro",
			PartyName: "杭州地铁集团有限责任公司", Amount: 123456789, Direction: bankfile.Credit,
			Reference: "transit 2026-10-09", Entries: 48211},
		{ID: "0199d3a2c4d07e4b9a1c5d2e3f405102", Kind: bankfile.KindMerchantEarnings, Party: "merchant-000123",
			PartyName: "西湖区百姓大药房", Amount: 865040, Direction: bankfile.Credit,
			Reference: "purchases 2026-10-09", Entries: 37},
		{ID: "0199d3a2c4d07e4b9a1c5d2e3f405103", Kind: bankfile.KindCardholderSpend, Party: "622848******1234",
			PartyName: "Stephen Fox", Amount: 152000, Direction: bankfile.Debit, Entries: 12},
		{ID: "0199d3a2c4d07e4b9a1c5d2e3f405104", Kind: bankfile.KindCardholderSpend, Party: "622848******5678",
			PartyName: "李华", Amount: 30005, Direction: bankfile.Debit, Entries: 3},
		{ID: "0199d3a2c4d07e4b9a1c5d2e3f405105", Kind: bankfile.KindReturned, Party: "622848******9012",
			Amount: 8800, Direction: bankfile.Credit, Reference: "returned: AC04 in JIC-ICBC-HZ-20261008-41", Entries: 1},
	}
	return withTotals(bankfile.Header{
		MessageID: "JIC-ICBC-HZ-20261009-42",
		CreatedAt: time.Date(2026, 10, 9, 23, 5, 0, 0, shanghai),
		BankID:    "ICBC-HZ",
		BankName:  "中国工商银行杭州分行",
		CycleDate: date(2026, 10, 9),
		ValueDate: date(2026, 10, 10),
		Sequence:  42,
		Currency:  bankfile.CurrencyCNY,
	}, items)
}

// bankB is a duplicate copy of a cycle in which the bank's cardholders and the medical fund it
// holds paid more than its merchants earned: a negative net, the bank pays. Its texts start with
// what spreadsheets take for formulas, and hold XML's markup characters.
func bankB() *bankfile.File {
	items := []bankfile.Item{
		{ID: "0199d3a2c4d07e4b9a1c5d2e3f405201", Kind: bankfile.KindCardholderSpend, Party: "622700******4321",
			PartyName: "Seán O'Brien", Amount: 2500000, Direction: bankfile.Debit, Entries: 40},
		{ID: "0199d3a2c4d07e4b9a1c5d2e3f405202", Kind: bankfile.KindMedicalFundShare, Party: "fund-shanghai",
			PartyName: "上海市医疗保障局统筹基金", Amount: 1234567, Direction: bankfile.Debit,
			Reference: "medical 2026-09-30", Entries: 210},
		{ID: "0199d3a2c4d07e4b9a1c5d2e3f405203", Kind: bankfile.KindMerchantEarnings, Party: "merchant-sh-0042",
			PartyName: "=HYPERLINK(\"http://x\") 餐厅", Amount: 100000, Direction: bankfile.Credit,
			Reference: "@purchases 2026-09-30", Entries: 9},
		{ID: "0199d3a2c4d07e4b9a1c5d2e3f405204", Kind: bankfile.KindAdjustment, Party: "merchant-sh-0042",
			PartyName: "'Quoted' Trading & Co. <SH>", Amount: 1000, Direction: bankfile.Debit,
			Reference: "+fee correction, cycle 2026-09-29", Entries: 1},
		{ID: "-0199d3a2c4d07e4b9a1c5d2e3f40520", Kind: bankfile.KindOperatorEarnings, Party: "operator-sh-bus",
			PartyName: "上海久事公交", Amount: 765432, Direction: bankfile.Credit, Reference: "-", Entries: 20417},
	}
	return withTotals(bankfile.Header{
		MessageID: "JIC-ABC-SH-20260930-7",
		CreatedAt: time.Date(2026, 9, 30, 15, 5, 0, 123000000, time.UTC),
		BankID:    "ABC-SH",
		BankName:  "中国农业银行上海分行",
		CycleDate: date(2026, 9, 30),
		ValueDate: date(2026, 10, 8),
		Sequence:  7,
		Currency:  bankfile.CurrencyCNY,
		Copy:      true,
	}, items)
}

// empty is a cycle without items: a file is still sent, with zero totals.
func empty() *bankfile.File {
	return withTotals(bankfile.Header{
		MessageID: "JIC-CCB-NB-20261012-1",
		CreatedAt: time.Date(2026, 10, 12, 23, 5, 0, 0, shanghai),
		BankID:    "CCB-NB",
		BankName:  "中国建设银行宁波分行",
		CycleDate: date(2026, 10, 12),
		ValueDate: date(2026, 10, 13),
		Sequence:  1,
		Currency:  bankfile.CurrencyCNY,
	}, nil)
}

// withTotals computes the totals as the caller does from the database: independently of the
// package.
func withTotals(h bankfile.Header, items []bankfile.Item) *bankfile.File {
	h.NumberOfEntries, h.ControlSum, h.Net = 0, 0, 0
	for _, it := range items {
		h.NumberOfEntries++
		h.ControlSum += it.Amount
		if it.Direction == bankfile.Credit {
			h.Net += it.Amount
		} else {
			h.Net -= it.Amount
		}
	}
	return &bankfile.File{Header: h, Items: items}
}

// ackPartial accepts bank A's file but for one card, whose account is closed.
func ackPartial() *bankfile.Ack {
	return &bankfile.Ack{
		MessageID:     "ICBC-HZ-ACK-20261010-0001",
		CreatedAt:     time.Date(2026, 10, 10, 9, 30, 0, 0, shanghai),
		FileMessageID: "JIC-ICBC-HZ-20261009-42",
		BankID:        "ICBC-HZ",
		Status:        bankfile.StatusPartial,
		Items: []bankfile.ItemStatus{
			{ItemID: "0199d3a2c4d07e4b9a1c5d2e3f405103", Accepted: true},
			{ItemID: "0199d3a2c4d07e4b9a1c5d2e3f405104", ReasonCode: "AC04", Reason: "账户已销户 account closed"},
		},
	}
}

// ackRejected rejects bank B's file whole.
func ackRejected() *bankfile.Ack {
	return &bankfile.Ack{
		MessageID:     "ABC-SH-ACK-20261008-0007",
		CreatedAt:     time.Date(2026, 10, 8, 1, 2, 3, 0, time.UTC),
		FileMessageID: "JIC-ABC-SH-20260930-7",
		BankID:        "ABC-SH",
		Status:        bankfile.StatusRejected,
		ReasonCode:    "FF01",
		Reason:        "=control sum differs from our records",
	}
}

// ackAccepted accepts a file whole, listing nothing.
func ackAccepted() *bankfile.Ack {
	return &bankfile.Ack{
		MessageID:     "CCB-NB-ACK-1",
		CreatedAt:     time.Date(2026, 10, 13, 8, 0, 0, 0, shanghai),
		FileMessageID: "JIC-CCB-NB-20261012-1",
		BankID:        "CCB-NB",
		Status:        bankfile.StatusAccepted,
	}
}

func writeXML(t testing.TB, f *bankfile.File) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := bankfile.WriteXML(&b, f.Header, slices.Values(f.Items)); err != nil {
		t.Fatalf("WriteXML: %v", err)
	}
	return b.Bytes()
}

func writeCSV(t testing.TB, f *bankfile.File) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := bankfile.WriteCSV(&b, f.Header, slices.Values(f.Items)); err != nil {
		t.Fatalf("WriteCSV: %v", err)
	}
	return b.Bytes()
}

// sameFile reports whether two files have the same content: times as instants in the same
// offset, and no difference between no items and an empty list.
func sameFile(a, b *bankfile.File) bool {
	ha, hb := a.Header, b.Header
	if !ha.CreatedAt.Equal(hb.CreatedAt) || ha.CreatedAt.Format(time.RFC3339Nano) != hb.CreatedAt.Format(time.RFC3339Nano) {
		return false
	}
	ha.CreatedAt, hb.CreatedAt = time.Time{}, time.Time{}
	return ha == hb && slices.Equal(a.Items, b.Items)
}

func sameAck(a, b *bankfile.Ack) bool {
	if !a.CreatedAt.Equal(b.CreatedAt) || a.CreatedAt.Format(time.RFC3339Nano) != b.CreatedAt.Format(time.RFC3339Nano) {
		return false
	}
	return a.MessageID == b.MessageID && a.FileMessageID == b.FileMessageID && a.BankID == b.BankID &&
		a.Status == b.Status && a.ReasonCode == b.ReasonCode && a.Reason == b.Reason && slices.Equal(a.Items, b.Items)
}
