package bankfile_test

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/joinincard/engine/settlement/bankfile"
)

func readGolden(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// mutation is a change to a golden file and the refusal it must bring.
type mutation struct {
	name     string
	golden   string
	old, new string   // new replaces the first old; "" old prepends nothing, see cut
	cut      bool     // cut the file at old instead
	want     []error  // sentinels the error must wrap
	contains []string // texts the error must contain
	// line, when not 0, is the line the error must name; -1 means the line where new is.
	line int
}

func (m mutation) apply(t *testing.T) ([]byte, int) {
	t.Helper()
	doc := readGolden(t, m.golden)
	i := strings.Index(doc, m.old)
	if i < 0 {
		t.Fatalf("%q is not in %s", m.old, m.golden)
	}
	if m.cut {
		return []byte(doc[:i]), 0
	}
	doc = doc[:i] + m.new + doc[i+len(m.old):]
	return []byte(doc), strings.Count(doc[:i], "\n") + 1
}

func (m mutation) check(t *testing.T, err error, at int) {
	t.Helper()
	if err == nil {
		t.Fatal("accepted")
	}
	for _, w := range m.want {
		if !errors.Is(err, w) {
			t.Errorf("error %q does not wrap %v", err, w)
		}
	}
	for _, c := range m.contains {
		if !strings.Contains(err.Error(), c) {
			t.Errorf("error %q does not say %q", err, c)
		}
	}
	var fe *bankfile.FieldError
	if !errors.As(err, &fe) {
		t.Errorf("error %q is not a *FieldError", err)
		return
	}
	want := m.line
	if want == -1 {
		want = at
	}
	if want != 0 && fe.Line != want {
		t.Errorf("error %q names line %d, want %d", err, fe.Line, want)
	}
}

const xmlA = "icbc-hz-20261009-42.xml"

func TestReadXMLRefuses(t *testing.T) {
	for _, m := range []mutation{
		// Control totals, each named.
		{name: "count", golden: xmlA, old: "<NbOfNtries>5<", new: "<NbOfNtries>4<", line: -1,
			want: []error{bankfile.ErrControlCount}, contains: []string{"TtlNtries/NbOfNtries", "states 4 items, there are 5"}},
		{name: "control sum", golden: xmlA, old: "<Sum>1245126.34<", new: "<Sum>1245126.36<", line: -1,
			want: []error{bankfile.ErrControlSum}, contains: []string{"TtlNtries/Sum"}},
		{name: "net amount", golden: xmlA, old: "<Amt>1241486.24<", new: "<Amt>1241486.22<", line: 27,
			want: []error{bankfile.ErrNetTotal}, contains: []string{"TtlNetNtry"}},
		{name: "net direction", golden: xmlA, old: "<CdtDbtInd>CRDT</CdtDbtInd>\n          </TtlNetNtry>", new: "<CdtDbtInd>DBIT</CdtDbtInd>\n          </TtlNetNtry>",
			want: []error{bankfile.ErrNetTotal}},
		{name: "an item's amount", golden: xmlA, old: ">300.05<", new: ">300.06<",
			want: []error{bankfile.ErrControlSum, bankfile.ErrNetTotal}},
		{name: "an item's direction", golden: xmlA, old: "<CdtDbtInd>DBIT</CdtDbtInd>", new: "<CdtDbtInd>CRDT</CdtDbtInd>",
			contains: []string{"want <CdtrAcct>"}},
		// Money strings.
		{name: "amount with an exponent", golden: xmlA, old: ">300.05<", new: ">1e3<", line: -1, contains: []string{"item 4: Ntfctn/Ntry/Amt"}},
		{name: "amount with three decimals", golden: xmlA, old: ">300.05<", new: ">300.050<", line: -1, contains: []string{"Ntry/Amt", "exactly 2 decimals"}},
		{name: "amount with one decimal", golden: xmlA, old: ">300.05<", new: ">300.5<", line: -1, contains: []string{"Ntry/Amt"}},
		{name: "amount without decimals", golden: xmlA, old: ">300.05<", new: ">300<", line: -1, contains: []string{"Ntry/Amt"}},
		{name: "negative amount", golden: xmlA, old: ">300.05<", new: ">-300.05<", line: -1, contains: []string{"Ntry/Amt", "unsigned"}},
		{name: "amount with a plus", golden: xmlA, old: ">300.05<", new: ">+300.05<", line: -1, contains: []string{"Ntry/Amt"}},
		{name: "amount with a leading zero", golden: xmlA, old: ">300.05<", new: ">0300.05<", line: -1, contains: []string{"Ntry/Amt"}},
		{name: "zero amount", golden: xmlA, old: ">300.05<", new: ">0.00<", line: 168, contains: []string{"item 4: Ntfctn/Ntry/Amt", "must be positive"}},
		{name: "amount overflowing", golden: xmlA, old: ">300.05<", new: ">92233720368547758.08<", line: -1, contains: []string{"Ntry/Amt", "overflows"}},
		{name: "amount with spaces", golden: xmlA, old: ">300.05<", new: "> 300.05<", line: -1, contains: []string{"Ntry/Amt"}},
		{name: "control sum with an exponent", golden: xmlA, old: "<Sum>1245126.34<", new: "<Sum>1.24512634E6<", line: -1, contains: []string{"TtlNtries/Sum"}},
		// Header fields.
		{name: "sequence zero", golden: xmlA, old: "<ElctrncSeqNb>42<", new: "<ElctrncSeqNb>0<", contains: []string{"Ntfctn/ElctrncSeqNb", "1 or more"}},
		{name: "sequence missing", golden: xmlA, old: "<ElctrncSeqNb>42</ElctrncSeqNb>", new: "", contains: []string{"want <ElctrncSeqNb>"}},
		{name: "sequence negative", golden: xmlA, old: "<ElctrncSeqNb>42<", new: "<ElctrncSeqNb>-42<", line: -1, contains: []string{"Ntfctn/ElctrncSeqNb"}},
		{name: "sequence with a leading zero", golden: xmlA, old: "<ElctrncSeqNb>42<", new: "<ElctrncSeqNb>042<", line: -1, contains: []string{"Ntfctn/ElctrncSeqNb"}},
		{name: "copy indicator", golden: xmlA, old: "<ElctrncSeqNb>42</ElctrncSeqNb>", new: "<ElctrncSeqNb>42</ElctrncSeqNb><CpyDplctInd>COPY</CpyDplctInd>", line: -1, contains: []string{"CpyDplctInd", "want DUPL"}},
		{name: "notification id", golden: xmlA, old: "<Id>JIC-ICBC-HZ-20261009-42</Id>", new: "<Id>JIC-ICBC-HZ-20261009-43</Id>", line: -1, contains: []string{"Ntfctn/Id"}},
		{name: "time without a zone", golden: xmlA, old: "2026-10-09T23:05:00+08:00", new: "2026-10-09T23:05:00", line: -1, contains: []string{"GrpHdr/CreDtTm"}},
		{name: "time not canonical", golden: xmlA, old: "2026-10-09T23:05:00+08:00", new: "2026-10-09T23:05:00.000+08:00", contains: []string{"GrpHdr/CreDtTm"}},
		{name: "dates", golden: xmlA, old: "/CYCLE/2026-10-09/VALDT/2026-10-10", new: "/CYCLE/2026-10-09 VALDT 2026-10-10", contains: []string{"GrpHdr/AddtlInf"}},
		{name: "value date before cycle date", golden: xmlA, old: "/CYCLE/2026-10-09/VALDT/2026-10-10", new: "/CYCLE/2026-10-09/VALDT/2026-10-09", contains: []string{"header: GrpHdr/AddtlInf", "after the cycle date"}},
		{name: "currency", golden: xmlA, old: "<Ccy>CNY</Ccy>", new: "<Ccy>USD</Ccy>", contains: []string{"Ntfctn/Acct/Ccy"}},
		{name: "entry currency", golden: xmlA, old: `<Amt Ccy="CNY">300.05`, new: `<Amt Ccy="USD">300.05`, line: -1, contains: []string{"Ntry/Amt", "currency"}},
		{name: "entry without currency", golden: xmlA, old: `<Amt Ccy="CNY">300.05`, new: `<Amt>300.05`, contains: []string{"attribute Ccy is missing"}},
		{name: "bank name empty", golden: xmlA, old: "<Nm>中国工商银行杭州分行</Nm>", new: "<Nm></Nm>", contains: []string{"Acct/Ownr/Nm", "is empty"}},
		// Entry fields.
		{name: "booking date", golden: xmlA, old: "<Dt>2026-10-09</Dt>", new: "<Dt>2026-10-08</Dt>", line: -1, contains: []string{"item 1: Ntfctn/Ntry/BookgDt/Dt", "cycle date"}},
		{name: "value date", golden: xmlA, old: "<Dt>2026-10-10</Dt>", new: "<Dt>2026-10-12</Dt>", line: -1, contains: []string{"Ntry/ValDt/Dt"}},
		{name: "entry status", golden: xmlA, old: "<Cd>BOOK</Cd>", new: "<Cd>PDNG</Cd>", line: -1, contains: []string{"Ntry/Sts/Cd", "want BOOK"}},
		{name: "kind", golden: xmlA, old: "<Cd>cardholder_spend</Cd>", new: "<Cd>cardholder_refund</Cd>", line: -1, contains: []string{"item 3: Ntfctn/Ntry/BkTxCd/Prtry/Cd", "unknown item kind"}},
		{name: "issuer", golden: xmlA, old: "<Issr>JOININ</Issr>", new: "<Issr>OTHER</Issr>", line: -1, contains: []string{"BkTxCd/Prtry/Issr"}},
		{name: "entries zero", golden: xmlA, old: "<NbOfTxs>3</NbOfTxs>", new: "<NbOfTxs>0</NbOfTxs>", contains: []string{"item 4", "Entries"}},
		{name: "duplicate item", golden: xmlA, old: "0199d3a2c4d07e4b9a1c5d2e3f405102", new: "0199d3a2c4d07e4b9a1c5d2e3f405101", line: 79,
			want: []error{bankfile.ErrDuplicateItem}, contains: []string{"item 2: Ntfctn/Ntry/NtryDtls/TxDtls/Refs/EndToEndId"}},
		{name: "card number in clear", golden: xmlA, old: "622848******5678", new: "6228480402564890018", line: -1,
			want: []error{bankfile.ErrCardNumber}, contains: []string{"item 4: Ntfctn/Ntry/NtryDtls/TxDtls/RltdPties/DbtrAcct/Id/Othr/Id"}},
		{name: "card number in a name", golden: xmlA, old: "<Nm>李华</Nm>", new: "<Nm>李华 6228 4804 0256 4890 018</Nm>", line: -1,
			want: []error{bankfile.ErrCardNumber}},
		{name: "empty party name", golden: xmlA, old: "<Nm>李华</Nm>", new: "<Nm></Nm>", line: -1, contains: []string{"Dbtr/Pty/Nm", "is empty"}},
		{name: "control character", golden: xmlA, old: "<Nm>李华</Nm>", new: "<Nm>李&#x9;华</Nm>", line: -1, contains: []string{"Dbtr/Pty/Nm", "control"}},
		{name: "a value with markup", golden: xmlA, old: "<Nm>李华</Nm>", new: "<Nm>李<b>华</b></Nm>", contains: []string{"only text"}},
		// Structure.
		{name: "comment", golden: xmlA, old: "<GrpHdr>", new: "<!-- hi --><GrpHdr>", line: -1, contains: []string{"comments"}},
		{name: "DOCTYPE", golden: xmlA, old: "<Document", new: "<!DOCTYPE Document []><Document", contains: []string{"DOCTYPE"}},
		{name: "processing instruction", golden: xmlA, old: "<GrpHdr>", new: "<?php x?><GrpHdr>", contains: []string{"processing instructions"}},
		{name: "unknown element", golden: xmlA, old: "<Ccy>CNY</Ccy>", new: "<Ccy>CNY</Ccy><Nm>x</Nm>", line: -1, contains: []string{"want <Ownr>, found <Nm>"}},
		{name: "missing element", golden: xmlA, old: "<Issr>JOININ</Issr>", new: "", contains: []string{"want <Issr>"}},
		{name: "attribute", golden: xmlA, old: "<GrpHdr>", new: `<GrpHdr x="1">`, line: -1, contains: []string{"unexpected attribute"}},
		{name: "other namespace", golden: xmlA, old: "camt.054.001.08", new: "camt.054.001.02", contains: []string{"outside the namespace"}},
		{name: "no namespace", golden: xmlA, old: ` xmlns="urn:iso:std:iso:20022:tech:xsd:camt.054.001.08"`, new: "", contains: []string{"outside the namespace"}},
		{name: "nested namespace declaration", golden: xmlA, old: "<GrpHdr>", new: `<GrpHdr xmlns="urn:iso:std:iso:20022:tech:xsd:camt.054.001.08">`, contains: []string{"namespace declaration"}},
		{name: "prefixed element", golden: xmlA, old: "<GrpHdr>", new: `<c:GrpHdr xmlns:c="urn:iso:std:iso:20022:tech:xsd:camt.054.001.08">`, contains: []string{"namespace declaration"}},
		{name: "text between elements", golden: xmlA, old: "<GrpHdr>", new: "hello<GrpHdr>", contains: []string{"text outside"}},
		{name: "after the document", golden: xmlA, old: "</Document>\n", new: "</Document>\n<Document/>", contains: []string{"after the end"}},
		{name: "cut short", golden: xmlA, old: "<Ntry>", cut: true, contains: []string{"not well-formed XML"}},
		{name: "cut inside an entry", golden: xmlA, old: "<BookgDt>", cut: true, contains: []string{"not well-formed XML"}},
		{name: "other encoding", golden: xmlA, old: `encoding="UTF-8"`, new: `encoding="GBK"`, contains: []string{"GBK"}},
		{name: "unknown entity", golden: xmlA, old: "<Nm>李华</Nm>", new: "<Nm>&nbsp;</Nm>", contains: []string{"not well-formed XML"}},
		// The zero net has one spelling.
		{name: "zero net debit", golden: "ccb-nb-20261012-1-empty.xml", old: "<CdtDbtInd>CRDT</CdtDbtInd>", new: "<CdtDbtInd>DBIT</CdtDbtInd>", line: -1,
			contains: []string{"TtlNetNtry/CdtDbtInd", "zero net"}},
	} {
		t.Run(m.name, func(t *testing.T) {
			doc, at := m.apply(t)
			f, err := bankfile.ReadXML(bytes.NewReader(doc))
			if err == nil {
				t.Fatalf("accepted: %+v", f.Header)
			}
			m.check(t, err, at)
			if strings.Contains(err.Error(), "6228480402564890018") || strings.Contains(err.Error(), "4890 018") {
				t.Errorf("error %q repeats the card number", err)
			}
		})
	}
}

const csvA = "icbc-hz-20261009-42.csv"

func TestReadCSVRefuses(t *testing.T) {
	for _, m := range []mutation{
		{name: "count", golden: csvA, old: "T,5,", new: "T,6,", line: 8,
			want: []error{bankfile.ErrControlCount}, contains: []string{"trailer: entries", "states 6 items, there are 5"}},
		{name: "control sum", golden: csvA, old: ",1245126.34,", new: ",1245126.35,", line: 8,
			want: []error{bankfile.ErrControlSum}, contains: []string{"trailer: control_sum"}},
		{name: "net amount", golden: csvA, old: ",1241486.24,", new: ",1241486.23,", line: 8,
			want: []error{bankfile.ErrNetTotal}, contains: []string{"trailer: net_amount"}},
		{name: "net direction", golden: csvA, old: ",1241486.24,CRDT", new: ",1241486.24,DBIT",
			want: []error{bankfile.ErrNetTotal}},
		{name: "an item removed", golden: csvA, old: "I,0199d3a2c4d07e4b9a1c5d2e3f405104,cardholder_spend,622848******5678,李华,300.05,DBIT,,3\n", new: "",
			want: []error{bankfile.ErrControlCount, bankfile.ErrControlSum, bankfile.ErrNetTotal}},
		{name: "an item's direction", golden: csvA, old: ",300.05,DBIT,", new: ",300.05,CRDT,",
			want: []error{bankfile.ErrNetTotal}},
		{name: "cut short", golden: csvA, old: "T,5", cut: true, contains: []string{"cut short"}},
		{name: "cut inside a record", golden: csvA, old: ",300.05", cut: true},
		{name: "after the trailer", golden: csvA, old: "T,5,1245126.34,1241486.24,CRDT\n", new: "T,5,1245126.34,1241486.24,CRDT\nI,x\n", line: 9, contains: []string{"after the trailer"}},
		{name: "two trailers", golden: csvA, old: "T,5,1245126.34,1241486.24,CRDT\n", new: "T,5,1245126.34,1241486.24,CRDT\nT,5,1245126.34,1241486.24,CRDT\n", contains: []string{"after the trailer"}},
		{name: "CRLF", golden: csvA, old: "\n", new: "\r\n", line: 1, contains: []string{"carriage return"}},
		{name: "byte order mark", golden: csvA, old: "record,", new: "\ufeffrecord,", line: 1, contains: []string{"column header"}},
		{name: "column header", golden: csvA, old: "party_name", new: "name", line: 1, contains: []string{"column header"}},
		{name: "header record missing", golden: csvA, old: "H,", new: "I,", line: 2, contains: []string{"record type H"}},
		{name: "unknown record", golden: csvA, old: "I,0199d3a2c4d07e4b9a1c5d2e3f405104", new: "X,0199d3a2c4d07e4b9a1c5d2e3f405104", line: -1, contains: []string{"item 4: record"}},
		{name: "field missing", golden: csvA, old: ",300.05,DBIT,,3", new: ",300.05,DBIT,3", line: -1, contains: []string{"item 4", "8 fields, want 9"}},
		{name: "amount with an exponent", golden: csvA, old: ",300.05,", new: ",3.0005e2,", line: -1, contains: []string{"item 4: amount"}},
		{name: "amount with three decimals", golden: csvA, old: ",300.05,", new: ",300.050,", line: -1, contains: []string{"item 4: amount"}},
		{name: "negative amount", golden: csvA, old: ",300.05,", new: ",-300.05,", line: -1, contains: []string{"item 4: amount", "unsigned"}},
		{name: "amount overflowing", golden: csvA, old: ",300.05,", new: ",92233720368547758.08,", line: -1, contains: []string{"item 4: amount", "overflows"}},
		{name: "amount as a formula", golden: csvA, old: ",300.05,", new: ",=300.05,", line: -1, contains: []string{"item 4: amount"}},
		{name: "unquoted formula", golden: csvA, old: ",李华,", new: ",=1+2,", line: -1, contains: []string{"item 4: party_name", "must start with '"}},
		{name: "quote before plain text", golden: csvA, old: ",李华,", new: ",'李华,", line: -1, contains: []string{"item 4: party_name", "leading '"}},
		{name: "lone quote", golden: csvA, old: ",李华,", new: ",',", line: -1, contains: []string{"item 4: party_name"}},
		{name: "direction", golden: csvA, old: ",300.05,DBIT,", new: ",300.05,dbit,", line: -1, contains: []string{"item 4: direction"}},
		{name: "kind", golden: csvA, old: "04,cardholder_spend,", new: "04,spend,", line: -1, contains: []string{"item 4: kind"}},
		{name: "entries", golden: csvA, old: ",DBIT,,3\n", new: ",DBIT,,03\n", line: -1, contains: []string{"item 4: entries", "leading zero"}},
		{name: "duplicate item", golden: csvA, old: "0199d3a2c4d07e4b9a1c5d2e3f405104", new: "0199d3a2c4d07e4b9a1c5d2e3f405103", line: -1,
			want: []error{bankfile.ErrDuplicateItem}, contains: []string{"item 4: item_id"}},
		{name: "card number in clear", golden: csvA, old: "622848******5678", new: "6228480402564890018", line: -1,
			want: []error{bankfile.ErrCardNumber}, contains: []string{"item 4: party"}},
		{name: "copy mark", golden: csvA, old: ",42,CNY,\n", new: ",42,CNY,COPY\n", line: 2, contains: []string{"header: copy"}},
		{name: "sequence zero", golden: csvA, old: ",42,CNY,", new: ",0,CNY,", line: 2, contains: []string{"header: sequence"}},
		{name: "currency", golden: csvA, old: ",42,CNY,", new: ",42,RMB,", line: 2, contains: []string{"header: currency"}},
		{name: "value date", golden: csvA, old: ",2026-10-10,", new: ",2026-10-08,", line: 2, contains: []string{"header: value_date"}},
		{name: "date", golden: csvA, old: ",2026-10-10,", new: ",2026-10-32,", line: 2, contains: []string{"header: value_date"}},
		{name: "time", golden: csvA, old: "2026-10-09T23:05:00+08:00", new: "2026-10-09 23:05:00", line: 2, contains: []string{"header: created_at"}},
		{name: "bare quote", golden: csvA, old: ",李华,", new: `,李"华,`, contains: []string{"not well-formed CSV"}},
		{name: "unterminated quote", golden: csvA, old: ",李华,", new: `,"李华,`, contains: []string{"not well-formed CSV"}},
		{name: "zero net debit", golden: "ccb-nb-20261012-1-empty.csv", old: "0.00,CRDT", new: "0.00,DBIT", line: 3,
			contains: []string{"trailer: net_direction", "zero net"}},
		{name: "net above the control sum", golden: "ccb-nb-20261012-1-empty.csv", old: "T,0,0.00,0.00", new: "T,0,0.00,1.00", line: 3,
			contains: []string{"trailer: net_amount", "larger than the control sum"}},
	} {
		t.Run(m.name, func(t *testing.T) {
			doc, at := m.apply(t)
			f, err := bankfile.ReadCSV(bytes.NewReader(doc))
			if err == nil {
				t.Fatalf("accepted: %+v", f.Header)
			}
			m.check(t, err, at)
			if strings.Contains(err.Error(), "6228480402564890018") {
				t.Errorf("error %q repeats the card number", err)
			}
		})
	}
}

// TestCSVNeutralisesFormulas: every text that a spreadsheet would take for a formula is written
// with a leading ', reads back as it was, and writes again to the same bytes.
func TestCSVNeutralisesFormulas(t *testing.T) {
	for _, lead := range []string{"=", "+", "-", "@", "'", "''"} {
		f := bankA()
		it := &f.Items[1]
		it.ID = lead + "id"
		it.Party = lead + "party"
		it.PartyName = lead + "西湖区百姓大药房"
		it.Reference = lead + "SUM(A1:A9)"
		f.Header.BankName = lead + f.Header.BankName
		f.Header.MessageID = lead + "msg"
		f.Header.BankID = lead + "bank"
		c := writeCSV(t, f)
		for _, cell := range []string{"'" + lead + "id", "'" + lead + "party", "'" + lead + "西湖区", "'" + lead + "SUM", "'" + lead + "msg", "'" + lead + "bank", "'" + lead + "中国"} {
			if !bytes.Contains(c, []byte(","+cell)) {
				t.Errorf("lead %q: no cell starting %q in\n%s", lead, cell, c)
			}
		}
		back, err := bankfile.ReadCSV(bytes.NewReader(c))
		if err != nil {
			t.Fatalf("lead %q: ReadCSV: %v", lead, err)
		}
		if !sameFile(back, f) {
			t.Errorf("lead %q: read back as %+v, want %+v", lead, back.Items[1], f.Items[1])
		}
		if again := writeCSV(t, back); !bytes.Equal(again, c) {
			t.Errorf("lead %q: written, read and written again differs", lead)
		}
		// The XML carries the same texts as they are.
		if x, err := bankfile.ReadXML(bytes.NewReader(writeXML(t, f))); err != nil || !sameFile(x, f) {
			t.Errorf("lead %q: the XML reads back as %+v, %v", lead, x, err)
		}
	}
}
