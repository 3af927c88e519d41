package bankfile_test

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/joinincard/engine/settlement/bankfile"
)

func TestAckAcceptsFollowsTheGroupStatus(t *testing.T) {
	const listedOK, listedRejected, unlisted = "0199d3a2c4d07e4b9a1c5d2e3f405103", "0199d3a2c4d07e4b9a1c5d2e3f405104", "0199d3a2c4d07e4b9a1c5d2e3f405101"
	part := ackPartial().Accepts()
	if !part(listedOK) || part(listedRejected) || !part(unlisted) {
		t.Errorf("PART: accepted %v %v %v, want true false true", part(listedOK), part(listedRejected), part(unlisted))
	}
	rjct := ackRejected().Accepts()
	if rjct(unlisted) {
		t.Error("RJCT accepts an item it does not list")
	}
	accp := ackAccepted().Accepts()
	if !accp(unlisted) {
		t.Error("ACCP rejects an item it does not list")
	}
}

// TestAckWritersRefuseInconsistentStatuses: what the readers refuse, the writers refuse too.
func TestAckWritersRefuseInconsistentStatuses(t *testing.T) {
	for _, tc := range []struct {
		name     string
		ack      func() *bankfile.Ack
		want     error
		contains string
	}{
		{"ACCP with a rejected item", func() *bankfile.Ack {
			a := ackPartial()
			a.Status = bankfile.StatusAccepted
			return a
		}, bankfile.ErrAckStatus, "ACCP with 1 rejected items"},
		{"RJCT with an accepted item", func() *bankfile.Ack {
			a := ackPartial()
			a.Status = bankfile.StatusRejected
			return a
		}, bankfile.ErrAckStatus, "RJCT with 1 accepted items"},
		{"PART without a rejected item", func() *bankfile.Ack {
			a := ackPartial()
			a.Items = a.Items[:1]
			return a
		}, bankfile.ErrAckStatus, "PART without a rejected item"},
		{"PART listing nothing", func() *bankfile.Ack {
			a := ackPartial()
			a.Items = nil
			return a
		}, bankfile.ErrAckStatus, "PART without"},
		{"a group reason with PART", func() *bankfile.Ack {
			a := ackPartial()
			a.ReasonCode = "FF01"
			return a
		}, bankfile.ErrAckStatus, "ack: ReasonCode"},
		{"duplicate item", func() *bankfile.Ack {
			a := ackPartial()
			a.Items[0].ItemID = a.Items[1].ItemID
			return a
		}, bankfile.ErrDuplicateItem, "item status 2: ItemID"},
		{"a rejected item without a reason code", func() *bankfile.Ack {
			a := ackPartial()
			a.Items[1].ReasonCode = ""
			return a
		}, nil, "item status 2: ReasonCode"},
		{"a reason code of five characters", func() *bankfile.Ack {
			a := ackPartial()
			a.Items[1].ReasonCode = "AC04X"
			return a
		}, nil, "item status 2: ReasonCode"},
		{"a lower-case reason code", func() *bankfile.Ack {
			a := ackPartial()
			a.Items[1].ReasonCode = "ac04"
			return a
		}, nil, "item status 2: ReasonCode"},
		{"an accepted item with a reason", func() *bankfile.Ack {
			a := ackPartial()
			a.Items[0].ReasonCode = "AC04"
			return a
		}, nil, "item status 1: ReasonCode"},
		{"a reason too long", func() *bankfile.Ack {
			a := ackPartial()
			a.Items[1].Reason = strings.Repeat("x", 106)
			return a
		}, nil, "item status 2: Reason"},
		{"a card number in a reason", func() *bankfile.Ack {
			a := ackPartial()
			a.Items[1].Reason = "card 6228480402564890018 closed"
			return a
		}, bankfile.ErrCardNumber, "item status 2: Reason"},
		{"a group reason text without a code", func() *bankfile.Ack {
			a := ackRejected()
			a.ReasonCode = ""
			return a
		}, nil, "ack: ReasonCode"},
		{"unknown status", func() *bankfile.Ack {
			a := ackPartial()
			a.Status = "ACSC"
			return a
		}, nil, "ack: Status"},
		{"no file message id", func() *bankfile.Ack {
			a := ackPartial()
			a.FileMessageID = ""
			return a
		}, nil, "ack: FileMessageID"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for name, write := range map[string]func(*bytes.Buffer, *bankfile.Ack) error{
				"xml": func(b *bytes.Buffer, a *bankfile.Ack) error { return bankfile.WriteAckXML(b, a) },
				"csv": func(b *bytes.Buffer, a *bankfile.Ack) error { return bankfile.WriteAckCSV(b, a) },
			} {
				var b bytes.Buffer
				err := write(&b, tc.ack())
				if err == nil || tc.want != nil && !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.contains) {
					t.Errorf("%s: error %v, want one wrapping %v and saying %q", name, err, tc.want, tc.contains)
				}
				if b.Len() != 0 {
					t.Errorf("%s: wrote %d bytes", name, b.Len())
				}
				if err != nil && strings.Contains(err.Error(), "6228480402564890018") {
					t.Errorf("%s: error %q repeats the card number", name, err)
				}
			}
		})
	}
}

const (
	ackXML = "ack-icbc-hz-part.xml"
	ackCSV = "ack-icbc-hz-part.csv"
)

func TestReadAckXMLRefuses(t *testing.T) {
	for _, m := range []mutation{
		{name: "ACCP with a rejected item", golden: ackXML, old: "<GrpSts>PART<", new: "<GrpSts>ACCP<", line: 20,
			want: []error{bankfile.ErrAckStatus}, contains: []string{"ack: OrgnlGrpInfAndSts/GrpSts"}},
		{name: "RJCT with an accepted item", golden: ackXML, old: "<GrpSts>PART<", new: "<GrpSts>RJCT<",
			want: []error{bankfile.ErrAckStatus}},
		{name: "PART without a rejected item", golden: ackXML, old: "<TxSts>RJCT</TxSts>\n        <StsRsnInf>\n          <Rsn>\n            <Cd>AC04</Cd>\n          </Rsn>\n          <AddtlInf>账户已销户 account closed</AddtlInf>\n        </StsRsnInf>",
			new: "<TxSts>ACCP</TxSts>", line: 20, want: []error{bankfile.ErrAckStatus}},
		{name: "an accepted item with a reason", golden: ackXML, old: "<TxSts>RJCT<", new: "<TxSts>ACCP<", line: 28,
			contains: []string{"item status 2: OrgnlPmtInfAndSts/TxInfAndSts/StsRsnInf/Rsn/Cd", "no reason"}},
		{name: "duplicate item", golden: ackXML, old: "0199d3a2c4d07e4b9a1c5d2e3f405103", new: "0199d3a2c4d07e4b9a1c5d2e3f405104", line: 28,
			want: []error{bankfile.ErrDuplicateItem}, contains: []string{"item status 2: OrgnlPmtInfAndSts/TxInfAndSts/OrgnlEndToEndId"}},
		{name: "unknown item status", golden: ackXML, old: "<TxSts>RJCT<", new: "<TxSts>PART<", line: -1, contains: []string{"item status 2: OrgnlPmtInfAndSts/TxInfAndSts/TxSts"}},
		{name: "unknown group status", golden: ackXML, old: "<GrpSts>PART<", new: "<GrpSts>ACSP<", line: -1, contains: []string{"OrgnlGrpInfAndSts/GrpSts"}},
		{name: "reason code", golden: ackXML, old: "<Cd>AC04<", new: "<Cd>AC4<", contains: []string{"item status 2: OrgnlPmtInfAndSts/TxInfAndSts/StsRsnInf/Rsn/Cd"}},
		{name: "rejected without a reason", golden: ackXML, old: "<StsRsnInf>", cut: true, contains: []string{"not well-formed"}},
		{name: "payment information id", golden: ackXML, old: "<OrgnlPmtInfId>JIC-ICBC-HZ-20261009-42<", new: "<OrgnlPmtInfId>JIC-ICBC-HZ-20261009-43<", line: -1, contains: []string{"OrgnlPmtInfId"}},
		{name: "message name", golden: ackXML, old: "camt.054.001.08<", new: "pain.001.001.09<", line: -1, contains: []string{"OrgnlMsgNmId"}},
		{name: "card number in a reason", golden: ackXML, old: "账户已销户 account closed", new: "6228480402564890018 closed",
			want: []error{bankfile.ErrCardNumber}},
		{name: "comment", golden: ackXML, old: "<GrpHdr>", new: "<!--x--><GrpHdr>", contains: []string{"comments"}},
		{name: "no items under OrgnlPmtInfAndSts", golden: "ack-ccb-nb-accp.xml", old: "</OrgnlGrpInfAndSts>\n",
			new: "</OrgnlGrpInfAndSts>\n<OrgnlPmtInfAndSts><OrgnlPmtInfId>JIC-CCB-NB-20261012-1</OrgnlPmtInfId></OrgnlPmtInfAndSts>\n", contains: []string{"lists no item status"}},
		{name: "cut short", golden: ackXML, old: "</CstmrPmtStsRpt>", cut: true, contains: []string{"not well-formed"}},
	} {
		t.Run(m.name, func(t *testing.T) {
			doc, at := m.apply(t)
			a, err := bankfile.ReadAckXML(bytes.NewReader(doc))
			if err == nil {
				t.Fatalf("accepted: %+v", a)
			}
			m.check(t, err, at)
			if strings.Contains(err.Error(), "6228480402564890018") {
				t.Errorf("error %q repeats the card number", err)
			}
		})
	}
}

func TestReadAckCSVRefuses(t *testing.T) {
	for _, m := range []mutation{
		{name: "ACCP with a rejected item", golden: ackCSV, old: ",PART,", new: ",ACCP,", line: 2,
			want: []error{bankfile.ErrAckStatus}, contains: []string{"ack: status"}},
		{name: "PART without a rejected item", golden: ackCSV, old: ",RJCT,AC04,", new: ",ACCP,AC04,", line: 4,
			contains: []string{"item status 2: reason_code", "no reason"}},
		{name: "duplicate item", golden: ackCSV, old: "0199d3a2c4d07e4b9a1c5d2e3f405103", new: "0199d3a2c4d07e4b9a1c5d2e3f405104", line: 4,
			want: []error{bankfile.ErrDuplicateItem}, contains: []string{"item status 2: item_id"}},
		{name: "trailer count", golden: ackCSV, old: "T,2", new: "T,3", line: 5, want: []error{bankfile.ErrControlCount}, contains: []string{"trailer: items"}},
		{name: "cut short", golden: ackCSV, old: "T,2", cut: true, contains: []string{"cut short"}},
		{name: "item status", golden: ackCSV, old: ",RJCT,AC04,", new: ",PART,AC04,", line: 4, contains: []string{"item status 2: status"}},
		{name: "reason code", golden: ackCSV, old: ",RJCT,AC04,", new: ",RJCT,,", line: 4, contains: []string{"item status 2: reason_code"}},
		{name: "unneutralised formula", golden: ackCSV, old: ",账户已销户", new: ",=账户已销户", line: 4, contains: []string{"item status 2: reason"}},
		{name: "record type", golden: ackCSV, old: "I,0199d3a2c4d07e4b9a1c5d2e3f405104", new: "X,0199d3a2c4d07e4b9a1c5d2e3f405104", line: 4, contains: []string{"item status 2: record"}},
		{name: "CRLF", golden: ackCSV, old: "\nT,2", new: "\r\nT,2", line: 4, contains: []string{"carriage return"}},
	} {
		t.Run(m.name, func(t *testing.T) {
			doc, at := m.apply(t)
			a, err := bankfile.ReadAckCSV(bytes.NewReader(doc))
			if err == nil {
				t.Fatalf("accepted: %+v", a)
			}
			m.check(t, err, at)
		})
	}
}

func TestAckWriteReadWriteGivesTheSameBytes(t *testing.T) {
	for _, fixture := range []func() *bankfile.Ack{ackPartial, ackRejected, ackAccepted} {
		a := fixture()
		var x, c bytes.Buffer
		if err := bankfile.WriteAckXML(&x, a); err != nil {
			t.Fatal(err)
		}
		if err := bankfile.WriteAckCSV(&c, a); err != nil {
			t.Fatal(err)
		}
		ax, err := bankfile.ReadAckXML(bytes.NewReader(x.Bytes()))
		if err != nil {
			t.Fatal(err)
		}
		ac, err := bankfile.ReadAckCSV(bytes.NewReader(c.Bytes()))
		if err != nil {
			t.Fatal(err)
		}
		var x2, c2 bytes.Buffer
		if err := bankfile.WriteAckXML(&x2, ax); err != nil || !bytes.Equal(x2.Bytes(), x.Bytes()) {
			t.Errorf("%s: XML written, read and written again differs (%v)", a.MessageID, err)
		}
		if err := bankfile.WriteAckCSV(&c2, ac); err != nil || !bytes.Equal(c2.Bytes(), c.Bytes()) {
			t.Errorf("%s: CSV written, read and written again differs (%v)", a.MessageID, err)
		}
		if !sameAck(ax, ac) {
			t.Errorf("%s: the XML reads as %+v, the CSV as %+v", a.MessageID, ax, ac)
		}
	}
}
