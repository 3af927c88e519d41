package statement_test

import (
	"bytes"
	"errors"
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/joinincard/engine/events"
	"github.com/joinincard/engine/reconcile/statement"
)

// refuseWrite checks both writers refuse s with an error that wraps each of want and contains
// every text of contains, and that no error repeats secret.
func refuseWrite(t *testing.T, s *statement.Statement, want []error, secret string, contains ...string) {
	t.Helper()
	for _, w := range writers {
		err := w.write(io.Discard, s.Header, slices.Values(s.Entries))
		if err == nil {
			t.Errorf("%s: the writer accepted it", w.format)
			continue
		}
		for _, want := range want {
			if !errors.Is(err, want) {
				t.Errorf("%s: error %v, want %v", w.format, err, want)
			}
		}
		var fe *statement.FieldError
		if !errors.As(err, &fe) {
			t.Errorf("%s: error %q is not a *FieldError", w.format, err)
		}
		for _, c := range contains {
			if !strings.Contains(err.Error(), c) {
				t.Errorf("%s: error %q does not say %q", w.format, err, c)
			}
		}
		if secret != "" && strings.Contains(err.Error(), secret) {
			t.Errorf("%s: error %q repeats the value", w.format, err)
		}
	}
}

func TestWritersNameEachTotalThatDisagrees(t *testing.T) {
	for _, tc := range []struct {
		name     string
		change   func(*statement.Header)
		want     []error
		contains []string
	}{
		{"count", func(h *statement.Header) { h.NumberOfEntries++ },
			[]error{statement.ErrControlCount}, []string{"header: NumberOfEntries", "states 7 entries, there are 6"}},
		{"sum", func(h *statement.Header) { h.Sum += 2 },
			[]error{statement.ErrControlSum}, []string{"header: Sum", "states 1260420.06, the entries sum to 1260420.04"}},
		{"net", func(h *statement.Header) { h.Net -= 2; h.ClosingBalance -= 2 },
			[]error{statement.ErrNetTotal, statement.ErrClosingBalance},
			[]string{"header: Net", "states 1257330.02, the entries net to 1257330.04", "header: ClosingBalance"}},
		{"all three", func(h *statement.Header) {
			h.NumberOfEntries--
			h.Sum -= 100
			h.Net = -h.Net
			h.ClosingBalance = h.OpeningBalance + h.Net
		},
			[]error{statement.ErrControlCount, statement.ErrControlSum, statement.ErrNetTotal, statement.ErrClosingBalance}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := icbc()
			tc.change(&s.Header)
			refuseWrite(t, s, tc.want, "", tc.contains...)
		})
	}
}

// TestWritersRefuseAClosingBalanceThatIsNotOpeningPlusNet before writing anything.
func TestWritersRefuseAClosingBalanceThatIsNotOpeningPlusNet(t *testing.T) {
	for _, change := range []func(*statement.Header){
		func(h *statement.Header) { h.ClosingBalance++ },
		func(h *statement.Header) { h.OpeningBalance = -h.OpeningBalance },
		func(h *statement.Header) { h.ClosingBalance = -h.ClosingBalance },
		func(h *statement.Header) { h.OpeningBalance = 1<<63 - 1 },
	} {
		s := icbc()
		change(&s.Header)
		refuseWrite(t, s, []error{statement.ErrClosingBalance}, "", "header: ClosingBalance")
		for _, w := range writers {
			var b bytes.Buffer
			w.write(&b, s.Header, slices.Values(s.Entries))
			if b.Len() != 0 {
				t.Errorf("%s: %d bytes written before the refusal", w.format, b.Len())
			}
		}
	}
}

func TestWritersRefuseACardNumberInClear(t *testing.T) {
	for _, tc := range []struct {
		field string
		set   func(*statement.Statement)
	}{
		{"entry 3: AdditionalInfo", func(s *statement.Statement) { s.Entries[2].AdditionalInfo = "refund to " + pan }},
		{"entry 3: AdditionalInfo", func(s *statement.Statement) { s.Entries[2].AdditionalInfo = "卡号 6228 4804 0256 4890 018" }},
		{"entry 3: EndToEndRef", func(s *statement.Statement) { s.Entries[2].EndToEndRef = pan }},
		{"entry 3: EndToEndRef", func(s *statement.Statement) { s.Entries[2].EndToEndRef = "6228-4804-0256-4890-018" }},
		{"header: BankID", func(s *statement.Statement) { s.Header.BankID = pan }},
	} {
		s := icbc()
		tc.set(s)
		refuseWrite(t, s, []error{statement.ErrCardNumber}, "4890", tc.field)
	}
}

// TestEngineIDsAndBankReferencesMayReadLikeNumbers: the engine's item and file ids are hex and
// digits, and a bank's entry reference is its system's serial number: a run of digits in one that
// happens to pass the Luhn check is no card number, and such a statement is written and read back.
func TestEngineIDsAndBankReferencesMayReadLikeNumbers(t *testing.T) {
	s := icbc()
	s.Entries[1].EndToEndRef = "6228480402564890018a0b1c2d3e4f5a"
	s.Entries[2].EndToEndRef = "JIC-20261009-3637c6c0-4222222222222"
	s.Entries[3].EntryRef = pan
	for _, v := range []string{s.Entries[1].EndToEndRef, s.Entries[2].EndToEndRef, s.Entries[3].EntryRef} {
		if !events.ContainsCardNumber(v) {
			t.Fatalf("%s does not read like a card number: the test proves nothing", v)
		}
	}
	for _, tc := range []struct {
		format statement.Format
		write  func(testing.TB, *statement.Statement) []byte
	}{{statement.FormatXML, writeXML}, {statement.FormatCSV, writeCSV}} {
		got, err := statement.ReadAll(bytes.NewReader(tc.write(t, s)), tc.format)
		if err != nil || !sameStatement(got, s) {
			t.Errorf("%s: read back as %+v, %v", tc.format, got, err)
		}
	}
}

func TestWritersRefuseBadEntries(t *testing.T) {
	for _, tc := range []struct {
		name, field string
		set         func(*statement.Entry)
	}{
		{"zero amount", "Amount", func(e *statement.Entry) { e.Amount = 0 }},
		{"negative amount", "Amount", func(e *statement.Entry) { e.Amount = -152000 }},
		{"no direction", "Direction", func(e *statement.Entry) { e.Direction = "" }},
		{"other direction", "Direction", func(e *statement.Entry) { e.Direction = "DEBIT" }},
		{"booking date before the period", "BookingDate", func(e *statement.Entry) { e.BookingDate = date(2026, 10, 9) }},
		{"booking date after the period", "BookingDate", func(e *statement.Entry) { e.BookingDate = date(2026, 10, 11) }},
		{"no booking date", "BookingDate", func(e *statement.Entry) { e.BookingDate = date(0, 0, 0) }},
		{"value date that is none", "ValueDate", func(e *statement.Entry) { e.ValueDate = date(2026, 2, 29) }},
		{"no entry reference", "EntryRef", func(e *statement.Entry) { e.EntryRef = "" }},
		{"entry reference with a space", "EntryRef", func(e *statement.Entry) { e.EntryRef = "ICBC 1" }},
		{"entry reference too long", "EntryRef", func(e *statement.Entry) { e.EntryRef = strings.Repeat("1", 36) }},
		{"entry reference not ASCII", "EntryRef", func(e *statement.Entry) { e.EntryRef = "参考1" }},
		{"NOTPROVIDED spelt out", "EndToEndRef", func(e *statement.Entry) { e.EndToEndRef = "NOTPROVIDED" }},
		{"end-to-end reference with a space", "EndToEndRef", func(e *statement.Entry) { e.EndToEndRef = "JIC 1" }},
		{"additional information too long", "AdditionalInfo", func(e *statement.Entry) { e.AdditionalInfo = strings.Repeat("费", 501) }},
		{"additional information with a line end", "AdditionalInfo", func(e *statement.Entry) { e.AdditionalInfo = "a\nb" }},
		{"additional information with a trailing space", "AdditionalInfo", func(e *statement.Entry) { e.AdditionalInfo = "fee " }},
		{"additional information not UTF-8", "AdditionalInfo", func(e *statement.Entry) { e.AdditionalInfo = "\xff" }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := icbc()
			tc.set(&s.Entries[1])
			refuseWrite(t, s, nil, "", "entry 2: "+tc.field)
		})
	}
}

func TestWritersRefuseBadHeaders(t *testing.T) {
	for _, tc := range []struct {
		name, field string
		set         func(*statement.Header)
	}{
		{"no statement id", "StatementID", func(h *statement.Header) { h.StatementID = "" }},
		{"statement id too long", "StatementID", func(h *statement.Header) { h.StatementID = strings.Repeat("S", 36) }},
		{"no creation time", "CreatedAt", func(h *statement.Header) { h.CreatedAt = time.Time{} }},
		{"creation time in seconds of zone", "CreatedAt", func(h *statement.Header) {
			h.CreatedAt = time.Date(2026, 10, 11, 2, 0, 0, 0, time.FixedZone("LMT", 8*60*60+5*60+43))
		}},
		{"no bank", "BankID", func(h *statement.Header) { h.BankID = "" }},
		{"bank id too long", "BankID", func(h *statement.Header) { h.BankID = strings.Repeat("B", 35) }},
		{"sequence zero", "Sequence", func(h *statement.Header) { h.Sequence = 0 }},
		{"sequence negative", "Sequence", func(h *statement.Header) { h.Sequence = -12 }},
		{"no from date", "From", func(h *statement.Header) { h.From = date(0, 0, 0) }},
		{"period ending before it starts", "To", func(h *statement.Header) { h.To = date(2026, 10, 9) }},
		{"currency", "Currency", func(h *statement.Header) { h.Currency = "USD" }},
		{"opening balance out of range", "OpeningBalance", func(h *statement.Header) { h.OpeningBalance = -1 << 63 }},
		{"count negative", "NumberOfEntries", func(h *statement.Header) { h.NumberOfEntries = -1 }},
		{"count over the bound", "NumberOfEntries", func(h *statement.Header) { h.NumberOfEntries = statement.MaxEntries + 1 }},
		{"sum negative", "Sum", func(h *statement.Header) { h.Sum = -1 }},
		{"net over the sum", "Net", func(h *statement.Header) { h.Net = h.Sum + 1; h.ClosingBalance = h.OpeningBalance + h.Net }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := icbc()
			tc.set(&s.Header)
			refuseWrite(t, s, nil, "", "header: "+tc.field)
		})
	}
}

// failingWriter fails after n bytes.
type failingWriter struct{ n int }

var errDiskFull = errors.New("disk full")

func (w *failingWriter) Write(p []byte) (int, error) {
	if len(p) > w.n {
		n := w.n
		w.n = 0
		return n, errDiskFull
	}
	w.n -= len(p)
	return len(p), nil
}

// TestWritersStopAtTheFirstWriteError: a write error ends the stream, and is returned.
func TestWritersStopAtTheFirstWriteError(t *testing.T) {
	entries, h := manyEntries(10_000)
	for _, w := range writers {
		yielded := 0
		counted := func(yield func(statement.Entry) bool) {
			for e := range entries {
				yielded++
				if !yield(e) {
					return
				}
			}
		}
		err := w.write(&failingWriter{n: 100 << 10}, h, counted)
		if !errors.Is(err, errDiskFull) {
			t.Errorf("%s: error %v, want the write error", w.format, err)
		}
		if yielded == 10_000 {
			t.Errorf("%s: every entry was yielded after the write failed", w.format)
		}
	}
}

// TestWritersStreamTheEntries: entries are written as they come. Half-way through 20,000 entries,
// most of the first half is already written: the writers never hold the statement.
func TestWritersStreamTheEntries(t *testing.T) {
	const n = 20_000
	entries, h := manyEntries(n)
	for _, w := range writers {
		t.Run(string(w.format), func(t *testing.T) {
			cw := &countingWriter{w: io.Discard}
			var atHalf int64
			seen := 0
			observed := func(yield func(statement.Entry) bool) {
				for e := range entries {
					if seen++; seen == n/2 {
						atHalf = cw.n
					}
					if !yield(e) {
						return
					}
				}
			}
			if err := w.write(cw, h, observed); err != nil {
				t.Fatal(err)
			}
			if atHalf < cw.n*4/10 {
				t.Errorf("%d of %d bytes were written when half the entries had been yielded: the writer holds the statement", atHalf, cw.n)
			}
		})
	}
}

// TestCSVNeutralisesFormulas: every text that a spreadsheet would take for a formula is written
// with a leading ', reads back as it was, and writes again to the same bytes; the XML carries the
// texts as they are.
func TestCSVNeutralisesFormulas(t *testing.T) {
	for _, lead := range []string{"=", "+", "-", "@", "'", "''"} {
		s := icbc()
		e := &s.Entries[1]
		e.EntryRef = lead + "2026101000000418"
		e.EndToEndRef = lead + "SUM(A1:A9)"
		e.AdditionalInfo = lead + "卡消费结算"
		s.Header.StatementID = lead + "stmt"
		s.Header.BankID = lead + "bank"
		c := writeCSV(t, s)
		for _, cell := range []string{"'" + lead + "2026101000000418", "'" + lead + "SUM", "'" + lead + "卡消费", "'" + lead + "stmt", "'" + lead + "bank"} {
			if !bytes.Contains(c, []byte(","+cell)) {
				t.Errorf("lead %q: no cell starting %q in\n%s", lead, cell, c)
			}
		}
		back, err := readCSV(c)
		if err != nil {
			t.Fatalf("lead %q: %v", lead, err)
		}
		if !sameStatement(back, s) {
			t.Errorf("lead %q: read back as %+v, want %+v", lead, back.Entries[1], s.Entries[1])
		}
		if again := writeCSV(t, back); !bytes.Equal(again, c) {
			t.Errorf("lead %q: written, read and written again differs", lead)
		}
		if x, err := readXML(writeXML(t, s)); err != nil || !sameStatement(x, s) {
			t.Errorf("lead %q: the XML reads back as %+v, %v", lead, x, err)
		}
	}
}
