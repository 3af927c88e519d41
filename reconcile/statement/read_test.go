package statement_test

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/joinincard/engine/reconcile/statement"
)

func readGolden(t testing.TB, name string) string {
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
	old, new string    // new replaces the first old
	and      [2]string // a second replacement, when the first alone would be refused for another reason
	cut      bool      // cut the file at old instead
	want     []error   // sentinels the error must wrap
	contains []string  // texts the error must contain
	// line, when not 0, is the line the error must name; -1 means the line where new is.
	line int
}

func (m mutation) apply(t testing.TB) ([]byte, int) {
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
	at := strings.Count(doc[:i], "\n") + 1
	if m.and[0] != "" {
		if !strings.Contains(doc, m.and[0]) {
			t.Fatalf("%q is not in %s", m.and[0], m.golden)
		}
		doc = strings.Replace(doc, m.and[0], m.and[1], 1)
	}
	return []byte(doc), at
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
	var fe *statement.FieldError
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
	for _, secret := range []string{"6228480402564890018", "4890 018"} {
		if strings.Contains(err.Error(), secret) {
			t.Errorf("error %q repeats the card number", err)
		}
	}
}

const (
	xmlA     = "icbc-hz-20261010-12.xml"
	csvA     = "icbc-hz-20261010-12.csv"
	xmlEmpty = "ccb-nb-20261012-1-empty.xml"
	csvEmpty = "ccb-nb-20261012-1-empty.csv"
	pan      = "6228480402564890018"
)

func TestReadXMLRefuses(t *testing.T) {
	for _, m := range []mutation{
		// Control totals, each named.
		{name: "count", golden: xmlA, old: "<NbOfNtries>6<", new: "<NbOfNtries>5<", line: -1,
			want: []error{statement.ErrControlCount}, contains: []string{"header: Stmt/TxsSummry/TtlNtries/NbOfNtries", "states 5 entries, there are 6"}},
		{name: "sum", golden: xmlA, old: "<Sum>1260420.04<", new: "<Sum>1260420.06<", line: -1,
			want: []error{statement.ErrControlSum}, contains: []string{"Stmt/TxsSummry/TtlNtries/Sum", "states 1260420.06, the entries sum to 1260420.04"}},
		{name: "net", golden: xmlA, old: "<Amt>1257330.04<", new: "<Amt>1257330.02<", line: -1,
			and:  [2]string{">6257330.04<", ">6257330.02<"},
			want: []error{statement.ErrNetTotal, statement.ErrClosingBalance}, contains: []string{"TtlNetNtry/Amt", "states 1257330.02, the entries net to 1257330.04"}},
		{name: "net not the closing balance's", golden: xmlA, old: "<Amt>1257330.04<", new: "<Amt>1257330.02<", line: 41,
			want: []error{statement.ErrClosingBalance}, contains: []string{"header: Stmt/Bal[CLBD]/Amt", "plus the net 1257330.02 is 6257330.02"}},
		{name: "net direction", golden: xmlA, old: "<CdtDbtInd>CRDT</CdtDbtInd>\n          </TtlNetNtry>", new: "<CdtDbtInd>DBIT</CdtDbtInd>\n          </TtlNetNtry>",
			want: []error{statement.ErrClosingBalance}},
		{name: "closing balance", golden: xmlA, old: ">6257330.04<", new: ">6257330.05<", line: -1,
			want:     []error{statement.ErrClosingBalance},
			contains: []string{"header: Stmt/Bal[CLBD]/Amt", "states 6257330.05, the opening balance 5000000.00 plus the net 1257330.04 is 6257330.04"}},
		{name: "closing balance direction", golden: xmlA, old: "<CdtDbtInd>CRDT</CdtDbtInd>\n        <Dt>\n          <Dt>2026-10-10</Dt>\n        </Dt>\n      </Bal>\n      <TxsSummry>",
			new:  "<CdtDbtInd>DBIT</CdtDbtInd>\n        <Dt>\n          <Dt>2026-10-10</Dt>\n        </Dt>\n      </Bal>\n      <TxsSummry>",
			want: []error{statement.ErrClosingBalance}, contains: []string{"states -6257330.04"}},
		{name: "opening balance", golden: xmlA, old: ">5000000.00<", new: ">5000000.01<", line: 41,
			want: []error{statement.ErrClosingBalance}},
		{name: "an entry's amount", golden: xmlA, old: ">8650.40<", new: ">8650.41<",
			want:     []error{statement.ErrControlSum, statement.ErrNetTotal, statement.ErrClosingBalance},
			contains: []string{"the opening balance 5000000.00 plus the entries' net 1257330.05 is 6257330.05"}},
		{name: "an entry's direction", golden: xmlA, old: "<CdtDbtInd>DBIT</CdtDbtInd>", new: "<CdtDbtInd>CRDT</CdtDbtInd>",
			want: []error{statement.ErrNetTotal, statement.ErrClosingBalance}},
		{name: "an entry removed", golden: xmlA, old: readGolden(t, xmlA)[strings.Index(readGolden(t, xmlA), "      <Ntry>\n        <Amt Ccy=\"CNY\">25.00"):strings.Index(readGolden(t, xmlA), "      <Ntry>\n        <Amt Ccy=\"CNY\">88.00")], new: "",
			want: []error{statement.ErrControlCount, statement.ErrControlSum, statement.ErrNetTotal, statement.ErrClosingBalance}},
		{name: "count above the bound", golden: xmlA, old: "<NbOfNtries>6<", new: "<NbOfNtries>5000001<", line: -1,
			want: []error{statement.ErrControlCount}, contains: []string{"NbOfNtries", "0 to 5000000"}},
		{name: "net above the sum", golden: xmlEmpty, old: "<Amt>0.00</Amt>", new: "<Amt>1.00</Amt>", line: -1,
			contains: []string{"TtlNetNtry/Amt", "larger than the control sum"}},
		{name: "zero net debit", golden: xmlEmpty, old: "<CdtDbtInd>CRDT</CdtDbtInd>\n          </TtlNetNtry>", new: "<CdtDbtInd>DBIT</CdtDbtInd>\n          </TtlNetNtry>", line: -1,
			contains: []string{"TtlNetNtry/CdtDbtInd", "zero is written CRDT"}},
		{name: "zero balance debit", golden: xmlEmpty, old: "<CdtDbtInd>CRDT</CdtDbtInd>", new: "<CdtDbtInd>DBIT</CdtDbtInd>", line: -1,
			contains: []string{"header: Stmt/Bal[OPBD]/CdtDbtInd", "zero is written CRDT"}},
		// Money strings.
		{name: "amount with an exponent", golden: xmlA, old: ">1520.00<", new: ">1.52e3<", line: -1, contains: []string{"entry 2: Stmt/Ntry/Amt"}},
		{name: "amount with three decimals", golden: xmlA, old: ">1520.00<", new: ">1520.000<", line: -1, contains: []string{"entry 2: Stmt/Ntry/Amt", "exactly 2 decimals"}},
		{name: "amount with one decimal", golden: xmlA, old: ">1520.00<", new: ">1520.0<", line: -1, contains: []string{"Stmt/Ntry/Amt"}},
		{name: "amount without decimals", golden: xmlA, old: ">1520.00<", new: ">1520<", line: -1, contains: []string{"Stmt/Ntry/Amt"}},
		{name: "negative amount", golden: xmlA, old: ">1520.00<", new: ">-1520.00<", line: -1, contains: []string{"Stmt/Ntry/Amt", "unsigned"}},
		{name: "amount with a plus", golden: xmlA, old: ">1520.00<", new: ">+1520.00<", line: -1, contains: []string{"Stmt/Ntry/Amt"}},
		{name: "amount with a leading zero", golden: xmlA, old: ">1520.00<", new: ">01520.00<", line: -1, contains: []string{"Stmt/Ntry/Amt"}},
		{name: "amount with a comma", golden: xmlA, old: ">1520.00<", new: ">1,520.00<", line: -1, contains: []string{"Stmt/Ntry/Amt"}},
		{name: "zero amount", golden: xmlA, old: ">1520.00<", new: ">0.00<", line: -1, contains: []string{"entry 2: Stmt/Ntry/Amt", "must be positive"}},
		{name: "amount overflowing", golden: xmlA, old: ">1520.00<", new: ">92233720368547758.08<", line: -1, contains: []string{"Stmt/Ntry/Amt", "overflows"}},
		{name: "amount with spaces", golden: xmlA, old: ">1520.00<", new: "> 1520.00<", line: -1, contains: []string{"Stmt/Ntry/Amt"}},
		{name: "sum with an exponent", golden: xmlA, old: "<Sum>1260420.04<", new: "<Sum>1.26042004E6<", line: -1, contains: []string{"TtlNtries/Sum"}},
		{name: "negative balance", golden: xmlA, old: ">5000000.00<", new: ">-5000000.00<", line: -1, contains: []string{"Stmt/Bal[OPBD]/Amt", "unsigned"}},
		{name: "sum of the entries overflowing", golden: xmlA, old: ">1241486.24<", new: ">92233720368547758.07<",
			want: []error{statement.ErrControlSum}, contains: []string{"entry 2: Stmt/Ntry/Amt", "the sum overflows"}},
		// Currencies.
		{name: "account currency", golden: xmlA, old: "<Ccy>CNY</Ccy>", new: "<Ccy>USD</Ccy>", line: -1, contains: []string{"header: Stmt/Acct/Ccy", "CNY"}},
		{name: "balance currency", golden: xmlA, old: `<Amt Ccy="CNY">5000000.00`, new: `<Amt Ccy="USD">5000000.00`, line: -1, contains: []string{"Stmt/Bal[OPBD]/Amt", "currency"}},
		{name: "entry currency", golden: xmlA, old: `<Amt Ccy="CNY">1520.00`, new: `<Amt Ccy="USD">1520.00`, line: -1, contains: []string{"entry 2: Stmt/Ntry/Amt", "currency"}},
		{name: "entry without currency", golden: xmlA, old: `<Amt Ccy="CNY">1520.00`, new: `<Amt>1520.00`, line: -1, contains: []string{"attribute Ccy is missing"}},
		// Sequence.
		{name: "sequence zero", golden: xmlA, old: "<ElctrncSeqNb>12<", new: "<ElctrncSeqNb>0<", line: -1, contains: []string{"header: Stmt/ElctrncSeqNb", "1 or more"}},
		{name: "sequence negative", golden: xmlA, old: "<ElctrncSeqNb>12<", new: "<ElctrncSeqNb>-12<", line: -1, contains: []string{"Stmt/ElctrncSeqNb"}},
		{name: "sequence with a leading zero", golden: xmlA, old: "<ElctrncSeqNb>12<", new: "<ElctrncSeqNb>012<", line: -1, contains: []string{"Stmt/ElctrncSeqNb", "leading zero"}},
		{name: "sequence missing", golden: xmlA, old: "<ElctrncSeqNb>12</ElctrncSeqNb>", new: "", line: 11, contains: []string{"want <ElctrncSeqNb>, found <FrToDt>"}},
		{name: "copy indicator", golden: xmlA, old: "</FrToDt>", new: "</FrToDt><CpyDplctInd>COPY</CpyDplctInd>", line: -1, contains: []string{"Stmt/CpyDplctInd", "want DUPL"}},
		// Dates and times.
		{name: "period ending before it starts", golden: xmlA, old: "<FrDt>2026-10-10<", new: "<FrDt>2026-10-11<", line: 13, contains: []string{"header: Stmt/FrToDt/ToDt", "ends before it starts"}},
		{name: "no such date", golden: xmlA, old: "<FrDt>2026-10-10<", new: "<FrDt>2026-02-30<", line: -1, contains: []string{"Stmt/FrToDt/FrDt", "not a date"}},
		{name: "date with a time", golden: xmlA, old: "<ToDt>2026-10-10<", new: "<ToDt>2026-10-10T00:00:00+08:00<", line: -1, contains: []string{"Stmt/FrToDt/ToDt"}},
		{name: "booking date outside the period", golden: xmlA, old: "<Dt>2026-10-10</Dt>\n        </BookgDt>", new: "<Dt>2026-10-11</Dt>\n        </BookgDt>", line: -1,
			contains: []string{"entry 1: Stmt/Ntry/BookgDt/Dt", "outside the statement's period"}},
		{name: "value date", golden: xmlA, old: "<Dt>2026-10-10</Dt>\n        </ValDt>", new: "<Dt>2026-13-10</Dt>\n        </ValDt>", line: -1,
			contains: []string{"entry 1: Stmt/Ntry/ValDt/Dt"}},
		{name: "opening balance date", golden: xmlA, old: "<Dt>2026-10-10</Dt>\n        </Dt>", new: "<Dt>2026-10-09</Dt>\n        </Dt>", line: -1,
			contains: []string{"header: Stmt/Bal[OPBD]/Dt/Dt", "first day of the period"}},
		{name: "time without a zone", golden: xmlA, old: "2026-10-11T02:00:00+08:00", new: "2026-10-11T02:00:00", line: -1, contains: []string{"header: GrpHdr/CreDtTm"}},
		{name: "time not canonical", golden: xmlA, old: "2026-10-11T02:00:00+08:00", new: "2026-10-11T02:00:00.000+08:00", line: -1, contains: []string{"GrpHdr/CreDtTm"}},
		// Identifiers.
		{name: "statement ids differ", golden: xmlA, old: "<Id>ICBC-HZ-S-20261010-12</Id>", new: "<Id>ICBC-HZ-S-20261010-13</Id>", line: -1, contains: []string{"Stmt/Id", "differs from GrpHdr/MsgId"}},
		{name: "statement id too long", golden: xmlA, old: "<MsgId>ICBC-HZ-S-20261010-12</MsgId>", new: "<MsgId>" + strings.Repeat("S", 36) + "</MsgId>", line: -1, contains: []string{"GrpHdr/MsgId", "more than 35"}},
		{name: "entry reference with a space", golden: xmlA, old: ">2026101000000418<", new: ">2026 101000000418<", line: -1, contains: []string{"entry 2: Stmt/Ntry/AcctSvcrRef", "without spaces"}},
		{name: "entry reference missing", golden: xmlA, old: "<AcctSvcrRef>2026101000000418</AcctSvcrRef>", new: "", contains: []string{"entry 2: Stmt/Ntry", "want <AcctSvcrRef>, found <NtryDtls>"}},
		{name: "end-to-end reference empty", golden: xmlA, old: ">0199d3a2c4d07e4b9a1c5d2e3f405103<", new: "><", line: -1,
			contains: []string{"entry 2: Stmt/Ntry/NtryDtls/TxDtls/Refs/EndToEndId", "NOTPROVIDED"}},
		{name: "end-to-end reference too long", golden: xmlA, old: ">0199d3a2c4d07e4b9a1c5d2e3f405103<", new: ">0199d3a2c4d07e4b9a1c5d2e3f4051030000<", line: -1,
			contains: []string{"Refs/EndToEndId", "more than 35"}},
		{name: "additional information empty", golden: xmlA, old: "<AddtlNtryInf>Stephen Fox 卡消费结算</AddtlNtryInf>", new: "<AddtlNtryInf></AddtlNtryInf>", line: -1,
			contains: []string{"entry 2: Stmt/Ntry/AddtlNtryInf", "is empty"}},
		{name: "additional information with a control character", golden: xmlA, old: "Stephen Fox 卡消费结算", new: "Stephen Fox&#x9;卡消费结算", line: -1,
			contains: []string{"Stmt/Ntry/AddtlNtryInf", "control"}},
		{name: "additional information too long", golden: xmlA, old: "Stephen Fox 卡消费结算", new: strings.Repeat("卡", 501), line: -1,
			contains: []string{"Stmt/Ntry/AddtlNtryInf", "501 characters, more than 500"}},
		// Card numbers in clear.
		{name: "card number in the additional information", golden: xmlA, old: "Stephen Fox 卡消费结算", new: "Stephen Fox " + pan, line: -1,
			want: []error{statement.ErrCardNumber}, contains: []string{"entry 2: Stmt/Ntry/AddtlNtryInf"}},
		{name: "card number printed in groups", golden: xmlA, old: "Stephen Fox 卡消费结算", new: "卡号 6228 4804 0256 4890 018", line: -1,
			want: []error{statement.ErrCardNumber}},
		{name: "card number as the bank id", golden: xmlA, old: "<Id>ICBC-HZ</Id>", new: "<Id>" + pan + "</Id>", line: -1,
			want: []error{statement.ErrCardNumber}, contains: []string{"header: Stmt/Acct/Id/Othr/Id"}},
		{name: "card number as the end-to-end reference", golden: xmlA, old: ">0199d3a2c4d07e4b9a1c5d2e3f405103<", new: ">" + pan + "<", line: -1,
			want: []error{statement.ErrCardNumber}, contains: []string{"entry 2: Stmt/Ntry/NtryDtls/TxDtls/Refs/EndToEndId"}},
		// Structure.
		{name: "elements out of order", golden: xmlA, old: "<ValDt>\n          <Dt>2026-10-10</Dt>\n        </ValDt>\n        <AcctSvcrRef>2026101000000417</AcctSvcrRef>",
			new: "<AcctSvcrRef>2026101000000417</AcctSvcrRef>\n        <ValDt>\n          <Dt>2026-10-10</Dt>\n        </ValDt>", line: -1,
			contains: []string{"entry 1: Stmt/Ntry", "want <ValDt>, found <AcctSvcrRef>"}},
		{name: "balances out of order", golden: xmlA, old: "<Cd>OPBD</Cd>", new: "<Cd>CLBD</Cd>", line: -1,
			contains: []string{"header: Stmt/Bal[OPBD]/Tp/CdOrPrtry/Cd", "want OPBD"}},
		{name: "summary after the entries", golden: xmlA, old: "<TxsSummry>", new: "<Ntry>", line: -1, contains: []string{"want <TxsSummry>, found <Ntry>"}},
		{name: "unknown element", golden: xmlA, old: "<Ccy>CNY</Ccy>", new: "<Ccy>CNY</Ccy><Nm>x</Nm>", line: -1, contains: []string{"want </Acct>, found <Nm>"}},
		{name: "unknown element in an entry", golden: xmlA, old: "<AcctSvcrRef>2026101000000418</AcctSvcrRef>",
			new: "<AcctSvcrRef>2026101000000418</AcctSvcrRef><BkTxCd><Domn/></BkTxCd>", line: -1, contains: []string{"entry 2: Stmt/Ntry", "want <NtryDtls>, found <BkTxCd>"}},
		{name: "missing element", golden: xmlA, old: "<Sts>\n          <Cd>BOOK</Cd>\n        </Sts>\n", new: "", contains: []string{"want <Sts>, found <BookgDt>"}},
		{name: "entry status", golden: xmlA, old: "<Cd>BOOK</Cd>", new: "<Cd>PDNG</Cd>", line: -1, contains: []string{"entry 1: Stmt/Ntry/Sts/Cd", "want BOOK"}},
		{name: "attribute", golden: xmlA, old: "<GrpHdr>", new: `<GrpHdr x="1">`, line: -1, contains: []string{"unexpected attribute"}},
		{name: "other namespace", golden: xmlA, old: "camt.053.001.08", new: "camt.053.001.02", contains: []string{"outside the namespace"}},
		{name: "settlement file namespace", golden: xmlA, old: "camt.053.001.08", new: "camt.054.001.08", contains: []string{"outside the namespace"}},
		{name: "no namespace", golden: xmlA, old: ` xmlns="urn:iso:std:iso:20022:tech:xsd:camt.053.001.08"`, new: "", contains: []string{"outside the namespace"}},
		{name: "nested namespace declaration", golden: xmlA, old: "<GrpHdr>", new: `<GrpHdr xmlns="urn:iso:std:iso:20022:tech:xsd:camt.053.001.08">`, contains: []string{"namespace declaration"}},
		{name: "prefixed element", golden: xmlA, old: "<GrpHdr>", new: `<c:GrpHdr xmlns:c="urn:iso:std:iso:20022:tech:xsd:camt.053.001.08">`, contains: []string{"namespace declaration"}},
		{name: "comment", golden: xmlA, old: "<GrpHdr>", new: "<!-- hi --><GrpHdr>", line: -1, contains: []string{"comments"}},
		{name: "DOCTYPE", golden: xmlA, old: "<Document", new: "<!DOCTYPE Document []><Document", contains: []string{"DOCTYPE"}},
		{name: "processing instruction", golden: xmlA, old: "<GrpHdr>", new: "<?php x?><GrpHdr>", contains: []string{"processing instructions"}},
		{name: "text between elements", golden: xmlA, old: "<GrpHdr>", new: "hello<GrpHdr>", contains: []string{"text outside"}},
		{name: "markup in a value", golden: xmlA, old: "Stephen Fox 卡消费结算", new: "Stephen <b>Fox</b>", contains: []string{"only text"}},
		{name: "after the document", golden: xmlA, old: "</Document>\n", new: "</Document>\n<Document/>", contains: []string{"after the end"}},
		{name: "cut before the entries", golden: xmlA, old: "<Ntry>", cut: true, contains: []string{"not well-formed XML"}},
		{name: "cut inside an entry", golden: xmlA, old: "<AcctSvcrRef>2026101000000419", cut: true, contains: []string{"not well-formed XML"}},
		{name: "cut after the entries", golden: xmlA, old: "    </Stmt>", cut: true, contains: []string{"not well-formed XML"}},
		{name: "empty", golden: xmlA, old: "<?xml", cut: true, contains: []string{"file: want <Document>, found the end of the input"}},
		{name: "other encoding", golden: xmlA, old: `encoding="UTF-8"`, new: `encoding="GBK"`, contains: []string{"GBK"}},
		{name: "unknown entity", golden: xmlA, old: "Stephen Fox 卡消费结算", new: "&nbsp;", contains: []string{"not well-formed XML"}},
		// Bounds.
		{name: "entry over its bound", golden: xmlA, old: "</AddtlNtryInf>", new: "</AddtlNtryInf>" + strings.Repeat(" ", 16<<10),
			want: []error{statement.ErrTooLarge}, contains: []string{"entry 1: larger than the bound: an entry is over 16384 bytes"}},
		{name: "head over its bound", golden: xmlA, old: "<Stmt>", new: "<Stmt>" + strings.Repeat("\n", 16<<10),
			want: []error{statement.ErrTooLarge}, contains: []string{"header: larger than the bound: the XML before the first entry is over 16384 bytes"}},
		{name: "tail over its bound", golden: xmlA, old: "</Document>\n", new: "</Document>\n" + strings.Repeat(" ", 1<<10),
			want: []error{statement.ErrTooLarge}, contains: []string{"the XML after the last entry is over 1024 bytes"}},
	} {
		t.Run(m.name, func(t *testing.T) {
			doc, at := m.apply(t)
			s, err := readXML(doc)
			if err == nil {
				t.Fatalf("accepted: %+v", s.Header)
			}
			m.check(t, err, at)
		})
	}
}

func TestReadCSVRefuses(t *testing.T) {
	for _, m := range []mutation{
		// Control totals, each named.
		{name: "count", golden: csvA, old: "T,6,", new: "T,7,", line: 9,
			want: []error{statement.ErrControlCount}, contains: []string{"trailer: entries", "states 7 entries, there are 6"}},
		{name: "sum", golden: csvA, old: ",1260420.04,", new: ",1260420.05,", line: 9,
			want: []error{statement.ErrControlSum}, contains: []string{"trailer: sum", "states 1260420.05, the entries sum to 1260420.04"}},
		{name: "net", golden: csvA, old: ",1257330.04,CRDT", new: ",1257330.03,CRDT", and: [2]string{",6257330.04,", ",6257330.03,"},
			want: []error{statement.ErrNetTotal, statement.ErrClosingBalance}, contains: []string{"line 9: trailer: net_amount", "line 2: header: closing_balance"}},
		{name: "net not the closing balance's", golden: csvA, old: ",1257330.04,CRDT", new: ",1257330.03,CRDT", line: 2,
			want: []error{statement.ErrClosingBalance}, contains: []string{"header: closing_balance", "plus the net 1257330.03 is 6257330.03"}},
		{name: "net direction", golden: csvA, old: ",1257330.04,CRDT", new: ",1257330.04,DBIT", line: 2,
			want: []error{statement.ErrClosingBalance}},
		{name: "closing balance", golden: csvA, old: ",6257330.04,", new: ",6257330.05,", line: 2,
			want: []error{statement.ErrClosingBalance}, contains: []string{"header: closing_balance", "states 6257330.05"}},
		{name: "opening balance direction", golden: csvA, old: ",5000000.00,CRDT,", new: ",5000000.00,DBIT,", line: 2,
			want: []error{statement.ErrClosingBalance}},
		{name: "an entry removed", golden: csvA, old: "E,25.00,DBIT,2026-10-10,2026-10-10,2026101000000420,,账户管理费 account fee\n", new: "",
			want: []error{statement.ErrControlCount, statement.ErrControlSum, statement.ErrNetTotal, statement.ErrClosingBalance}},
		{name: "an entry's direction", golden: csvA, old: ",25.00,DBIT,", new: ",25.00,CRDT,",
			want: []error{statement.ErrNetTotal, statement.ErrClosingBalance}},
		{name: "count above the bound", golden: csvA, old: "T,6,", new: "T,5000001,", line: 9,
			want: []error{statement.ErrControlCount}, contains: []string{"trailer: entries", "0 to 5000000"}},
		{name: "net above the sum", golden: csvEmpty, old: "T,0,0.00,0.00", new: "T,0,0.00,1.00", line: 3,
			contains: []string{"trailer: net_amount", "larger than the control sum"}},
		{name: "zero net debit", golden: csvEmpty, old: "T,0,0.00,0.00,CRDT", new: "T,0,0.00,0.00,DBIT", line: 3,
			contains: []string{"trailer: net_direction", "zero is written CRDT"}},
		{name: "zero balance debit", golden: csvEmpty, old: ",0.00,CRDT,", new: ",0.00,DBIT,", line: 2,
			contains: []string{"header: opening_direction", "zero is written CRDT"}},
		// Structure.
		{name: "cut short", golden: csvA, old: "T,6,1260420", cut: true, line: 9, contains: []string{"cut short"}},
		{name: "cut inside a record", golden: csvA, old: ",1520.00", cut: true, line: 4, contains: []string{"entry 2", "1 fields, want 8"}},
		{name: "cut after the header", golden: csvA, old: "E,", cut: true, contains: []string{"cut short"}},
		{name: "empty", golden: csvA, old: "record", cut: true, contains: []string{"cut short"}},
		{name: "after the trailer", golden: csvA, old: "T,6,1260420.04,1257330.04,CRDT\n", new: "T,6,1260420.04,1257330.04,CRDT\nE,x\n", line: 10, contains: []string{"after the trailer"}},
		{name: "two trailers", golden: csvA, old: "T,6,1260420.04,1257330.04,CRDT\n", new: "T,6,1260420.04,1257330.04,CRDT\nT,6,1260420.04,1257330.04,CRDT\n", contains: []string{"after the trailer"}},
		{name: "CRLF", golden: csvA, old: "\n", new: "\r\n", line: 1, contains: []string{"carriage return"}},
		{name: "carriage return in a field", golden: csvA, old: ",账户管理费 account fee", new: ",\"账户管理费\raccount fee\"", line: -1, contains: []string{"carriage return"}},
		{name: "byte order mark", golden: csvA, old: "record,", new: "\ufeffrecord,", line: 1, contains: []string{"starts with a byte order mark"}},
		{name: "column header", golden: csvA, old: "entry_ref", new: "reference", line: 1, contains: []string{"column header"}},
		{name: "header record missing", golden: csvA, old: "H,", new: "E,", line: 2, contains: []string{"record type H"}},
		{name: "header record short", golden: csvA, old: ",6257330.04,CRDT\n", new: ",6257330.04\n", line: 2, contains: []string{"12 fields, want 13"}},
		{name: "unknown record", golden: csvA, old: "E,1520.00", new: "X,1520.00", line: -1, contains: []string{"entry 2: record", "want an entry (E) or the trailer (T)"}},
		{name: "field missing", golden: csvA, old: ",2026101000000420,,", new: ",2026101000000420,", line: -1, contains: []string{"entry 5", "7 fields, want 8"}},
		{name: "trailer short", golden: csvA, old: "T,6,1260420.04,1257330.04,CRDT", new: "T,6,1260420.04,1257330.04", line: -1, contains: []string{"trailer", "4 fields, want 5"}},
		// Money strings.
		{name: "amount with an exponent", golden: csvA, old: ",1520.00,", new: ",1.52e3,", line: -1, contains: []string{"entry 2: amount"}},
		{name: "amount with three decimals", golden: csvA, old: ",1520.00,", new: ",1520.000,", line: -1, contains: []string{"entry 2: amount", "exactly 2 decimals"}},
		{name: "negative amount", golden: csvA, old: ",1520.00,", new: ",-1520.00,", line: -1, contains: []string{"entry 2: amount", "unsigned"}},
		{name: "zero amount", golden: csvA, old: ",1520.00,", new: ",0.00,", line: -1, contains: []string{"entry 2: amount", "must be positive"}},
		{name: "amount overflowing", golden: csvA, old: ",1520.00,", new: ",92233720368547758.08,", line: -1, contains: []string{"entry 2: amount", "overflows"}},
		{name: "amount as a formula", golden: csvA, old: ",1520.00,", new: ",=1520.00,", line: -1, contains: []string{"entry 2: amount"}},
		{name: "amount quoted against formulas", golden: csvA, old: ",1520.00,", new: ",'1520.00,", line: -1, contains: []string{"entry 2: amount"}},
		{name: "sum with grouping", golden: csvA, old: ",1260420.04,", new: ",\"1,260,420.04\",", line: -1, contains: []string{"trailer: sum"}},
		{name: "negative balance", golden: csvA, old: ",5000000.00,", new: ",-5000000.00,", line: 2, contains: []string{"header: opening_balance", "unsigned"}},
		{name: "direction", golden: csvA, old: ",1520.00,DBIT,", new: ",1520.00,D,", line: -1, contains: []string{"entry 2: direction", "want CRDT or DBIT"}},
		// Texts and neutralisation.
		{name: "unquoted formula", golden: csvA, old: ",账户管理费 account fee", new: ",=1+2", line: -1, contains: []string{"entry 5: additional_info", "must start with '"}},
		{name: "quote before plain text", golden: csvA, old: ",账户管理费 account fee", new: ",'账户管理费 account fee", line: -1, contains: []string{"entry 5: additional_info", "leading '"}},
		{name: "entry reference as a formula", golden: csvA, old: ",2026101000000420,", new: ",@2026101000000420,", line: -1, contains: []string{"entry 5: entry_ref"}},
		{name: "NOTPROVIDED spelt out", golden: csvA, old: ",2026101000000420,,", new: ",2026101000000420,NOTPROVIDED,", line: -1,
			contains: []string{"entry 5: end_to_end_ref", "NOTPROVIDED"}},
		{name: "leading space", golden: csvA, old: ",账户管理费 account fee", new: ", 账户管理费 account fee", line: -1, contains: []string{"entry 5: additional_info", "space"}},
		{name: "bare quote", golden: csvA, old: ",账户管理费 account fee", new: `,账户"管理费`, contains: []string{"not well-formed CSV"}},
		{name: "unterminated quote", golden: csvA, old: ",账户管理费 account fee", new: `,"账户管理费`, contains: []string{"not well-formed CSV"}},
		{name: "line end in a quoted field", golden: csvA, old: ",账户管理费 account fee", new: ",\"账户管理费\naccount fee\"", line: -1, contains: []string{"entry 5: additional_info", "control"}},
		// Card numbers in clear.
		{name: "card number in the additional information", golden: csvA, old: ",账户管理费 account fee", new: ",fee for " + pan, line: -1,
			want: []error{statement.ErrCardNumber}, contains: []string{"entry 5: additional_info"}},
		{name: "card number as the bank id", golden: csvA, old: ",ICBC-HZ,", new: "," + pan + ",", line: 2,
			want: []error{statement.ErrCardNumber}, contains: []string{"header: bank_id"}},
		{name: "card number as the end-to-end reference", golden: csvA, old: ",0199d3a2c4d07e4b9a1c5d2e3f405103,", new: ",6228-4804-0256-4890-018,", line: -1,
			want: []error{statement.ErrCardNumber}, contains: []string{"entry 2: end_to_end_ref"}},
		// Header fields.
		{name: "copy mark", golden: csvA, old: ",12,,", new: ",12,COPY,", line: 2, contains: []string{"header: copy", "want DUPL or empty"}},
		{name: "sequence zero", golden: csvA, old: ",12,,", new: ",0,,", line: 2, contains: []string{"header: sequence", "1 or more"}},
		{name: "sequence signed", golden: csvA, old: ",12,,", new: ",+12,,", line: 2, contains: []string{"header: sequence"}},
		{name: "currency", golden: csvA, old: ",CNY,", new: ",RMB,", line: 2, contains: []string{"header: currency"}},
		{name: "period ending before it starts", golden: csvA, old: ",2026-10-10,2026-10-10,CNY", new: ",2026-10-10,2026-10-09,CNY", line: 2,
			contains: []string{"header: to_date", "ends before it starts"}},
		{name: "date", golden: csvA, old: ",2026-10-10,2026-10-10,CNY", new: ",2026-10-32,2026-10-10,CNY", line: 2, contains: []string{"header: from_date"}},
		{name: "booking date outside the period", golden: csvA, old: ",25.00,DBIT,2026-10-10,", new: ",25.00,DBIT,2026-10-09,", line: -1,
			contains: []string{"entry 5: booking_date", "outside the statement's period"}},
		{name: "value date", golden: csvA, old: ",25.00,DBIT,2026-10-10,2026-10-10,", new: ",25.00,DBIT,2026-10-10,10/10/2026,", line: -1,
			contains: []string{"entry 5: value_date"}},
		{name: "time", golden: csvA, old: "2026-10-11T02:00:00+08:00", new: "2026-10-11 02:00:00", line: 2, contains: []string{"header: created_at"}},
		// Bounds.
		{name: "record over its bound", golden: csvA, old: ",账户管理费 account fee", new: "," + strings.Repeat("费", 1400), line: -1,
			want: []error{statement.ErrTooLarge}, contains: []string{"a record is over 4096 bytes"}},
		{name: "quoted record over its bound", golden: csvA, old: ",账户管理费 account fee", new: ",\"" + strings.Repeat("a\n", 2100) + "\"", line: -1,
			want: []error{statement.ErrTooLarge}},
	} {
		t.Run(m.name, func(t *testing.T) {
			doc, at := m.apply(t)
			s, err := readCSV(doc)
			if err == nil {
				t.Fatalf("accepted: %+v", s.Header)
			}
			m.check(t, err, at)
		})
	}
}

// TestReaderYieldsEntriesThenRefusesTheTotals: a statement whose totals disagree streams its
// entries, then Next refuses the statement instead of io.EOF, and keeps refusing it.
func TestReaderYieldsEntriesThenRefusesTheTotals(t *testing.T) {
	for _, m := range []mutation{
		{golden: xmlA, old: "<Sum>1260420.04<", new: "<Sum>1260420.06<"},
		{golden: csvA, old: ",1260420.04,", new: ",1260420.05,"},
	} {
		doc, _ := m.apply(t)
		f := statement.Format(strings.TrimPrefix(filepath.Ext(m.golden), "."))
		r, err := statement.Open(bytes.NewReader(doc), f)
		if err != nil {
			t.Fatalf("%s: Open: %v", f, err)
		}
		n := 0
		for {
			_, err = r.Next()
			if err != nil {
				break
			}
			n++
		}
		if n != 6 || !errors.Is(err, statement.ErrControlSum) {
			t.Errorf("%s: %d entries, then %v; want 6 entries, then the control sum refused", f, n, err)
		}
		if _, again := r.Next(); again != err {
			t.Errorf("%s: Next after the refusal = %v, want the refusal again", f, again)
		}
		var yielded []error
		r, _ = statement.Open(bytes.NewReader(doc), f)
		for _, err := range r.All() {
			yielded = append(yielded, err)
		}
		if len(yielded) != 7 || !errors.Is(yielded[6], statement.ErrControlSum) {
			t.Errorf("%s: All yields %v; want 6 entries and the refusal", f, yielded)
		}
	}
}

// TestReaderRefusesABadHeaderBeforeAnyEntry: the header is checked when the Reader is made.
func TestReaderRefusesABadHeaderBeforeAnyEntry(t *testing.T) {
	for _, m := range []mutation{
		{golden: xmlA, old: ">6257330.04<", new: ">6257330.05<"},
		{golden: csvA, old: ",12,,", new: ",0,,"},
	} {
		doc, _ := m.apply(t)
		f := statement.Format(strings.TrimPrefix(filepath.Ext(m.golden), "."))
		if r, err := statement.Open(bytes.NewReader(doc), f); err == nil {
			t.Errorf("%s: Open accepted the header %+v", f, r.Header())
		}
	}
}

// TestNOTPROVIDEDReadsAsNoReference: the XML's NOTPROVIDED is an empty EndToEndRef, as in the CSV.
func TestNOTPROVIDEDReadsAsNoReference(t *testing.T) {
	s, err := readXML([]byte(readGolden(t, xmlA)))
	if err != nil {
		t.Fatal(err)
	}
	if e := s.Entries[4]; e.EndToEndRef != "" || statement.ClassifyRef(e.EndToEndRef) != statement.RefNone {
		t.Errorf("entry 5 has the reference %q, want none", e.EndToEndRef)
	}
	if !strings.Contains(readGolden(t, xmlA), "<EndToEndId>NOTPROVIDED</EndToEndId>") {
		t.Error("the XML does not write NOTPROVIDED for an entry without a reference")
	}
}

// TestDuplicateEntriesAreKept: a bank that booked one payment twice lists two entries alike in
// every field; the readers keep both, for reconciliation to find.
func TestDuplicateEntriesAreKept(t *testing.T) {
	for _, tc := range []struct {
		name string
		read func([]byte) (*statement.Statement, error)
	}{{xmlA, readXML}, {csvA, readCSV}} {
		s, err := tc.read([]byte(readGolden(t, tc.name)))
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if len(s.Entries) != 6 || s.Entries[2] != s.Entries[3] {
			t.Errorf("%s: entries %+v; want the third and fourth alike", tc.name, s.Entries)
		}
	}
}

// TestReadByteOrderMark: a camt.053 may start with a UTF-8 byte order mark, as XML allows, and
// reads as without one; a CSV statement is UTF-8 without one, and one that has it is refused
// naming it, not as a column header that looks right but is not.
func TestReadByteOrderMark(t *testing.T) {
	const bom = "\ufeff"
	plain, err := statement.ReadAll(strings.NewReader(readGolden(t, xmlA)), statement.FormatXML)
	if err != nil {
		t.Fatal(err)
	}
	marked, err := statement.ReadAll(strings.NewReader(bom+readGolden(t, xmlA)), statement.FormatXML)
	if err != nil {
		t.Fatalf("XML with a byte order mark: %v", err)
	}
	if marked.Header != plain.Header || len(marked.Entries) != len(plain.Entries) {
		t.Errorf("XML with a byte order mark reads %+v, without %+v", marked.Header, plain.Header)
	}
	_, err = statement.ReadAll(strings.NewReader(bom+readGolden(t, csvA)), statement.FormatCSV)
	var fe *statement.FieldError
	if !errors.As(err, &fe) || fe.Line != 1 || fe.Record != "file" || !strings.Contains(err.Error(), "byte order mark") {
		t.Errorf("CSV with a byte order mark: %v", err)
	}
}
