package bankfile_test

import (
	"bytes"
	"errors"
	"io"
	"iter"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/joinincard/engine/settlement/bankfile"
)

var writers = []struct {
	name  string
	write func(io.Writer, bankfile.Header, iter.Seq[bankfile.Item]) error
}{
	{"xml", bankfile.WriteXML},
	{"csv", bankfile.WriteCSV},
}

// refuseWrite checks both writers refuse f with an error that wraps want (when not nil) and
// contains every text of contains, and that no error repeats secret.
func refuseWrite(t *testing.T, f *bankfile.File, want error, secret string, contains ...string) {
	t.Helper()
	for _, w := range writers {
		err := w.write(io.Discard, f.Header, slices.Values(f.Items))
		if err == nil {
			t.Errorf("%s: the writer accepted it", w.name)
			continue
		}
		if want != nil && !errors.Is(err, want) {
			t.Errorf("%s: error %v, want %v", w.name, err, want)
		}
		for _, c := range contains {
			if !strings.Contains(err.Error(), c) {
				t.Errorf("%s: error %q does not say %q", w.name, err, c)
			}
		}
		if secret != "" && strings.Contains(err.Error(), secret) {
			t.Errorf("%s: error %q repeats the value", w.name, err)
		}
	}
}

func TestWritersNameEachTotalThatDisagrees(t *testing.T) {
	for _, tc := range []struct {
		name     string
		change   func(*bankfile.Header)
		want     []error
		contains []string
	}{
		{"count", func(h *bankfile.Header) { h.NumberOfEntries++ },
			[]error{bankfile.ErrControlCount}, []string{"NumberOfEntries", "states 6 items, there are 5"}},
		{"control sum", func(h *bankfile.Header) { h.ControlSum += 2 },
			[]error{bankfile.ErrControlSum}, []string{"ControlSum", "states 1245126.36, the items sum to 1245126.34"}},
		{"net", func(h *bankfile.Header) { h.Net -= 2 },
			[]error{bankfile.ErrNetTotal}, []string{"Net", "states 1241486.22, the items net to 1241486.24"}},
		{"all three", func(h *bankfile.Header) { h.NumberOfEntries--; h.ControlSum -= 100; h.Net = -h.Net },
			[]error{bankfile.ErrControlCount, bankfile.ErrControlSum, bankfile.ErrNetTotal}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := bankA()
			tc.change(&f.Header)
			for _, want := range tc.want {
				refuseWrite(t, f, want, "", tc.contains...)
			}
		})
	}
}

func TestWritersRefuseAnItemWithACardNumberInClear(t *testing.T) {
	const pan = "6228480402564890018"
	for _, tc := range []struct {
		field string
		set   func(*bankfile.Item)
	}{
		{"Party", func(it *bankfile.Item) { it.Party = pan }},
		{"PartyName", func(it *bankfile.Item) { it.PartyName = "Stephen Fox " + pan }},
		{"PartyName", func(it *bankfile.Item) { it.PartyName = "卡号 6228 4804 0256 4890 018" }},
		{"Reference", func(it *bankfile.Item) { it.Reference = "refund to 6228-4804-0256-4890-018" }},
	} {
		f := bankA()
		tc.set(&f.Items[2])
		refuseWrite(t, f, bankfile.ErrCardNumber, "4890", "item 3: "+tc.field)
	}
	f := bankA()
	f.Header.BankName = "账户 " + pan
	refuseWrite(t, f, bankfile.ErrCardNumber, "4890", "header: BankName")
}

// Item and message ids are the engine's own hex identifiers: a run of digits in one that happens
// to pass Luhn is no card number, and such a file is written and read back.
func TestEngineIDsMayReadLikeNumbers(t *testing.T) {
	f := bankA()
	f.Items[2].ID = "6228480402564890018a0b1c2d3e4f5a6"
	for _, format := range []string{"xml", "csv"} {
		var buf bytes.Buffer
		write, read := bankfile.WriteXML, bankfile.ReadXML
		if format == "csv" {
			write, read = bankfile.WriteCSV, bankfile.ReadCSV
		}
		if err := write(&buf, f.Header, slices.Values(f.Items)); err != nil {
			t.Fatalf("%s: %v", format, err)
		}
		got, err := read(&buf)
		if err != nil || got.Items[2].ID != f.Items[2].ID {
			t.Fatalf("%s read back: %v", format, err)
		}
	}
}

func TestWritersRefuseBadItems(t *testing.T) {
	for _, tc := range []struct {
		name, field string
		set         func(*bankfile.Item)
		want        error
	}{
		{"no id", "ID", func(it *bankfile.Item) { it.ID = "" }, nil},
		{"id too long", "ID", func(it *bankfile.Item) { it.ID = strings.Repeat("a", 36) }, nil},
		{"id with a space", "ID", func(it *bankfile.Item) { it.ID = "a b" }, nil},
		{"duplicate id", "ID", func(it *bankfile.Item) { it.ID = "0199d3a2c4d07e4b9a1c5d2e3f405101" }, bankfile.ErrDuplicateItem},
		{"unknown kind", "Kind", func(it *bankfile.Item) { it.Kind = 0 }, nil},
		{"kind out of range", "Kind", func(it *bankfile.Item) { it.Kind = 99 }, nil},
		{"zero amount", "Amount", func(it *bankfile.Item) { it.Amount = 0 }, nil},
		{"negative amount", "Amount", func(it *bankfile.Item) { it.Amount = -5 }, nil},
		{"no direction", "Direction", func(it *bankfile.Item) { it.Direction = "" }, nil},
		{"lower-case direction", "Direction", func(it *bankfile.Item) { it.Direction = "crdt" }, nil},
		{"no entries", "Entries", func(it *bankfile.Item) { it.Entries = 0 }, nil},
		{"no party", "Party", func(it *bankfile.Item) { it.Party = "" }, nil},
		{"party too long", "Party", func(it *bankfile.Item) { it.Party = strings.Repeat("p", 35) }, nil},
		{"name with a newline", "PartyName", func(it *bankfile.Item) { it.PartyName = "a\nb" }, nil},
		{"name with a tab", "PartyName", func(it *bankfile.Item) { it.PartyName = "a\tb" }, nil},
		{"name not UTF-8", "PartyName", func(it *bankfile.Item) { it.PartyName = "a\xffb" }, nil},
		{"name with U+FFFE", "PartyName", func(it *bankfile.Item) { it.PartyName = "a\ufffeb" }, nil},
		{"name with a leading space", "PartyName", func(it *bankfile.Item) { it.PartyName = " 李华" }, nil},
		{"name too long", "PartyName", func(it *bankfile.Item) { it.PartyName = strings.Repeat("华", 141) }, nil},
		{"reference too long", "Reference", func(it *bankfile.Item) { it.Reference = strings.Repeat("r", 141) }, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := bankA()
			tc.set(&f.Items[3])
			refuseWrite(t, f, tc.want, "", "item 4: "+tc.field)
		})
	}
}

func TestWritersRefuseBadHeaders(t *testing.T) {
	for _, tc := range []struct {
		field string
		set   func(*bankfile.Header)
	}{
		{"MessageID", func(h *bankfile.Header) { h.MessageID = "" }},
		{"MessageID", func(h *bankfile.Header) { h.MessageID = strings.Repeat("M", 36) }},
		{"CreatedAt", func(h *bankfile.Header) { h.CreatedAt = time.Time{} }},
		{"CreatedAt", func(h *bankfile.Header) {
			h.CreatedAt = time.Date(2026, 10, 9, 0, 0, 0, 0, time.FixedZone("LMT", 8*3600+343))
		}},
		{"BankID", func(h *bankfile.Header) { h.BankID = "ICBC HZ" }},
		{"BankName", func(h *bankfile.Header) { h.BankName = "" }},
		{"CycleDate", func(h *bankfile.Header) { h.CycleDate = date(2026, 2, 30) }},
		{"ValueDate", func(h *bankfile.Header) { h.ValueDate = h.CycleDate }},
		{"ValueDate", func(h *bankfile.Header) { h.ValueDate = date(10000, 1, 1) }},
		{"Sequence", func(h *bankfile.Header) { h.Sequence = 0 }},
		{"Currency", func(h *bankfile.Header) { h.Currency = "USD" }},
		{"Currency", func(h *bankfile.Header) { h.Currency = "" }},
		{"NumberOfEntries", func(h *bankfile.Header) { h.NumberOfEntries = -1 }},
		{"NumberOfEntries", func(h *bankfile.Header) { h.NumberOfEntries = bankfile.MaxItems + 1 }},
		{"ControlSum", func(h *bankfile.Header) { h.ControlSum = -1 }},
		{"Net", func(h *bankfile.Header) { h.Net = h.ControlSum + 2 }},
	} {
		t.Run(tc.field, func(t *testing.T) {
			f := bankA()
			tc.set(&f.Header)
			for _, w := range writers {
				var b bytes.Buffer
				err := w.write(&b, f.Header, slices.Values(f.Items))
				if err == nil || !strings.Contains(err.Error(), "header: "+tc.field) {
					t.Errorf("%s: error %v, want one naming header: %s", w.name, err, tc.field)
				}
				if b.Len() != 0 {
					t.Errorf("%s: wrote %d bytes before refusing the header", w.name, b.Len())
				}
			}
		})
	}
}

// TestWritersRefuseAnOverflowingControlSum: items whose amounts sum past int64.
func TestWritersRefuseAnOverflowingControlSum(t *testing.T) {
	f := bankA()
	f.Items = f.Items[:2]
	f.Items[0].Amount = 1<<63 - 1
	f.Header.NumberOfEntries, f.Header.ControlSum, f.Header.Net = 2, 1<<63-1, 0
	refuseWrite(t, f, bankfile.ErrControlSum, "", "item 2: Amount", "overflows")
}

// failingWriter fails after n bytes.
type failingWriter struct{ n int }

var errDiskFull = errors.New("disk full")

func (w *failingWriter) Write(p []byte) (int, error) {
	if len(p) > w.n {
		return 0, errDiskFull
	}
	w.n -= len(p)
	return len(p), nil
}

// TestWritersStopAtAFailedWrite: a failed write ends the stream; the items are not all consumed.
func TestWritersStopAtAFailedWrite(t *testing.T) {
	items, h := manyItems(20_000)
	for _, w := range writers {
		consumed := 0
		counted := func(yield func(bankfile.Item) bool) {
			for it := range items {
				consumed++
				if !yield(it) {
					return
				}
			}
		}
		err := w.write(&failingWriter{n: 100_000}, h, counted)
		if !errors.Is(err, errDiskFull) {
			t.Errorf("%s: error %v, want the writer's", w.name, err)
		}
		if consumed > 10_000 {
			t.Errorf("%s: consumed %d items after the write failed", w.name, consumed)
		}
	}
}
