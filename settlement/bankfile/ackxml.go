package bankfile

import (
	"errors"
	"io"

	"github.com/joinincard/engine/internal/bankformat"
)

const (
	// NamespacePain002 is the acknowledgement's XML namespace: ISO 20022's pain.002.001.10,
	// CustomerPaymentStatusReport.
	NamespacePain002 = "urn:iso:std:iso:20022:tech:xsd:pain.002.001.10"
	// maxAckXMLItemBytes bounds the XML of one item status, every field at its bound.
	maxAckXMLItemBytes = 2 << 10
	// maxAckXMLBytes bounds an acknowledgement ReadAckXML reads.
	maxAckXMLBytes = MaxItems*maxAckXMLItemBytes + maxXMLHeadBytes
)

var xmlAckFields = map[string]string{
	"MessageID":     "GrpHdr/MsgId",
	"CreatedAt":     "GrpHdr/CreDtTm",
	"BankID":        "GrpHdr/InitgPty/Id/OrgId/Othr/Id",
	"FileMessageID": "OrgnlGrpInfAndSts/OrgnlMsgId",
	"Status":        "OrgnlGrpInfAndSts/GrpSts",
	"ReasonCode":    "OrgnlGrpInfAndSts/StsRsnInf/Rsn/Cd",
	"Reason":        "OrgnlGrpInfAndSts/StsRsnInf/AddtlInf",
	"Items":         "OrgnlPmtInfAndSts",
}

var xmlItemStatusFields = map[string]string{
	"ItemID":     "OrgnlPmtInfAndSts/TxInfAndSts/OrgnlEndToEndId",
	"ReasonCode": "OrgnlPmtInfAndSts/TxInfAndSts/StsRsnInf/Rsn/Cd",
	"Reason":     "OrgnlPmtInfAndSts/TxInfAndSts/StsRsnInf/AddtlInf",
}

// WriteAckXML writes an acknowledgement as ISO 20022 pain.002 XML (docs/settlement-files.md),
// after checking it as ReadAckXML does. Banks write these; the engine writes them in tests and the
// demo.
func WriteAckXML(w io.Writer, a *Ack) error {
	if err := a.validate(); err != nil {
		return err
	}
	x := &xmlOut{bankformat.NewXMLOut(w, writeBufferBytes)}
	x.OpenNS("Document", NamespacePain002)
	x.Open("CstmrPmtStsRpt")
	x.Open("GrpHdr")
	x.Leaf("MsgId", a.MessageID)
	x.Leaf("CreDtTm", bankformat.FormatTime(a.CreatedAt))
	x.LeafIn(a.BankID, "InitgPty", "Id", "OrgId", "Othr", "Id")
	x.Close("GrpHdr")
	x.Open("OrgnlGrpInfAndSts")
	x.Leaf("OrgnlMsgId", a.FileMessageID)
	x.Leaf("OrgnlMsgNmId", messageNameCamt054)
	x.Leaf("GrpSts", string(a.Status))
	if a.ReasonCode != "" {
		x.reason(a.ReasonCode, a.Reason)
	}
	x.Close("OrgnlGrpInfAndSts")
	if len(a.Items) > 0 {
		x.Open("OrgnlPmtInfAndSts")
		x.Leaf("OrgnlPmtInfId", a.FileMessageID)
		for _, s := range a.Items {
			x.Open("TxInfAndSts")
			x.Leaf("OrgnlEndToEndId", s.ItemID)
			if s.Accepted {
				x.Leaf("TxSts", string(StatusAccepted))
			} else {
				x.Leaf("TxSts", string(StatusRejected))
				x.reason(s.ReasonCode, s.Reason)
			}
			x.Close("TxInfAndSts")
			if err := x.Err(); err != nil {
				return err
			}
		}
		x.Close("OrgnlPmtInfAndSts")
	}
	x.Close("CstmrPmtStsRpt")
	x.Close("Document")
	return x.Flush()
}

func (x *xmlOut) reason(code, text string) {
	x.Open("StsRsnInf")
	x.LeafIn(code, "Rsn", "Cd")
	if text != "" {
		x.Leaf("AddtlInf", text)
	}
	x.Close("StsRsnInf")
}

// ReadAckXML reads an acknowledgement WriteAckXML wrote, strictly, and refuses one whose group
// status disagrees with its item statuses (ErrAckStatus) or that lists an item twice
// (ErrDuplicateItem). Every refusal is a *FieldError with the line and element.
func ReadAckXML(r io.Reader) (*Ack, error) {
	x := newXMLIn(r, NamespacePain002, maxAckXMLBytes)
	x.Skip = 2 // paths start below Document/CstmrPmtStsRpt
	a := &Ack{}
	x.Open("Document")
	x.Open("CstmrPmtStsRpt")
	x.Record = recordAck
	x.Open("GrpHdr")
	a.MessageID = x.id("MsgId", maxIDBytes)
	if v := x.Leaf("CreDtTm"); x.Err == nil {
		t, err := parseTime(v)
		if err != nil {
			x.Fail("CreDtTm", err)
		}
		a.CreatedAt = t
	}
	x.Open("InitgPty")
	x.Open("Id")
	x.Open("OrgId")
	x.Open("Othr")
	a.BankID = x.partyID("Id", maxAccountIDBytes)
	x.Close("Othr")
	x.Close("OrgId")
	x.Close("Id")
	x.Close("InitgPty")
	x.Close("GrpHdr")
	x.Open("OrgnlGrpInfAndSts")
	a.FileMessageID = x.id("OrgnlMsgId", maxIDBytes)
	x.Fixed("OrgnlMsgNmId", messageNameCamt054)
	if v := x.Leaf("GrpSts"); x.Err == nil {
		st, err := parseStatus(v, false)
		if err != nil {
			x.Fail("GrpSts", err)
		}
		a.Status = st
	}
	groupLine := x.Line()
	if x.Next("StsRsnInf") {
		a.ReasonCode, a.Reason = x.readReason()
	}
	x.Close("OrgnlGrpInfAndSts")
	var lines []int
	if x.Next("OrgnlPmtInfAndSts") {
		x.Open("OrgnlPmtInfAndSts")
		if id := x.id("OrgnlPmtInfId", maxIDBytes); x.Err == nil && id != a.FileMessageID {
			x.Fail("OrgnlPmtInfId", errors.New("differs from OrgnlGrpInfAndSts/OrgnlMsgId"))
		}
		x.Record = recordItemStatus
		for x.Err == nil && x.Next("TxInfAndSts") {
			x.Entry++
			if x.Entry > MaxItems {
				x.Fail("", errors.New("more item statuses than the bound"))
				break
			}
			line := x.Line()
			lines = append(lines, line)
			a.Items = append(a.Items, x.readItemStatus())
		}
		if x.Err == nil && x.Entry == 0 {
			x.Fail("", errors.New("lists no item status"))
		}
		x.Entry = 0
		x.Record = recordAck
		x.Close("OrgnlPmtInfAndSts")
	}
	x.Record = recordFile
	x.Close("CstmrPmtStsRpt")
	x.Close("Document")
	x.End()
	if x.Err != nil {
		return nil, x.Err
	}
	if err := a.validate(); err != nil {
		return nil, relocate(err, groupLine, lines, xmlAckFields, xmlItemStatusFields)
	}
	return a, nil
}

func (x *xmlIn) readItemStatus() ItemStatus {
	var s ItemStatus
	x.Open("TxInfAndSts")
	s.ItemID = x.id("OrgnlEndToEndId", maxIDBytes)
	if v := x.Leaf("TxSts"); x.Err == nil {
		st, err := parseStatus(v, true)
		if err != nil {
			x.Fail("TxSts", err)
		}
		s.Accepted = st == StatusAccepted
	}
	if x.Next("StsRsnInf") {
		s.ReasonCode, s.Reason = x.readReason()
	}
	x.Close("TxInfAndSts")
	return s
}

func (x *xmlIn) readReason() (code, text string) {
	x.Open("StsRsnInf")
	x.Open("Rsn")
	code = x.Leaf("Cd")
	x.Close("Rsn")
	if x.Next("AddtlInf") {
		text = x.Leaf("AddtlInf")
		if x.Err == nil && text == "" {
			x.Fail("AddtlInf", errors.New("is empty"))
		}
	}
	x.Close("StsRsnInf")
	return code, text
}

// relocate places an error found by Ack.validate on the line of the group status or of the item
// status, with its field renamed to where it is in the file.
func relocate(err error, groupLine int, lines []int, ackFields, itemFields map[string]string) error {
	var fe *FieldError
	if !errors.As(err, &fe) {
		return err
	}
	e := *fe
	e.Line = groupLine
	names := ackFields
	if e.Entry > 0 && e.Entry <= len(lines) {
		e.Line = lines[e.Entry-1]
		names = itemFields
	}
	if n, ok := names[e.Field]; ok {
		e.Field = n
	}
	return &e
}
