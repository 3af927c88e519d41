package bankfile

import (
	"errors"
	"io"
	"strings"

	"github.com/joinincard/engine/events"
	"github.com/joinincard/engine/internal/bankformat"
	"github.com/joinincard/engine/ledger"
)

const (
	// maxXMLEntryBytes bounds the XML of one entry: with every field at its bound and every
	// character of the name and reference escaped it is under 3 KiB (TestXMLEntryFitsTheBound).
	maxXMLEntryBytes = 4 << 10
	// maxXMLHeadBytes bounds the XML around the entries.
	maxXMLHeadBytes = 8 << 10
	// maxXMLBytes bounds a settlement file ReadXML reads.
	maxXMLBytes = MaxItems*maxXMLEntryBytes + maxXMLHeadBytes
)

// xmlHeaderFields names where each Header field is in the XML, for errors found on the header as
// a whole.
var xmlHeaderFields = map[string]string{
	"MessageID":       "GrpHdr/MsgId",
	"CreatedAt":       "GrpHdr/CreDtTm",
	"BankID":          "Ntfctn/Acct/Id/Othr/Id",
	"BankName":        "Ntfctn/Acct/Ownr/Nm",
	"CycleDate":       "GrpHdr/AddtlInf",
	"ValueDate":       "GrpHdr/AddtlInf",
	"Sequence":        "Ntfctn/ElctrncSeqNb",
	"Currency":        "Ntfctn/Acct/Ccy",
	"NumberOfEntries": "Ntfctn/TxsSummry/TtlNtries/NbOfNtries",
	"ControlSum":      "Ntfctn/TxsSummry/TtlNtries/Sum",
	"Net":             "Ntfctn/TxsSummry/TtlNtries/TtlNetNtry",
}

// xmlItemFields names where each Item field is in an Ntry.
var xmlItemFields = map[string]string{
	"ID":     "Ntfctn/Ntry/NtryDtls/TxDtls/Refs/EndToEndId",
	"Amount": "Ntfctn/Ntry/Amt",
}

var xmlTotalFields = [3]string{xmlHeaderFields["NumberOfEntries"], xmlHeaderFields["ControlSum"], xmlHeaderFields["Net"]}

// ReadXML reads a settlement file WriteXML wrote, strictly: the elements it writes in its order,
// and nothing else. It recomputes the count, control sum and net of the items and refuses a file
// whose header disagrees, naming each total that does (ErrControlCount, ErrControlSum,
// ErrNetTotal). Every refusal is a *FieldError (or several joined) with the line and element.
func ReadXML(r io.Reader) (*File, error) {
	x := newXMLIn(r, NamespaceCamt054, maxXMLBytes)
	x.Skip = 2 // paths start below Document/BkToCstmrDbtCdtNtfctn
	f := &File{}
	h := &f.Header
	x.Open("Document")
	x.Open("BkToCstmrDbtCdtNtfctn")
	x.Record = recordHeader
	x.Open("GrpHdr")
	h.MessageID = x.id("MsgId", maxIDBytes)
	if v := x.Leaf("CreDtTm"); x.Err == nil {
		t, err := parseTime(v)
		if err != nil {
			x.Fail("CreDtTm", err)
		}
		h.CreatedAt = t
	}
	if v := x.Leaf("AddtlInf"); x.Err == nil {
		var err error
		if h.CycleDate, h.ValueDate, err = parseDates(v); err != nil {
			x.Fail("AddtlInf", err)
		}
	}
	x.Close("GrpHdr")
	x.Open("Ntfctn")
	if id := x.id("Id", maxIDBytes); x.Err == nil && id != h.MessageID {
		x.Fail("Id", errors.New("differs from GrpHdr/MsgId"))
	}
	h.Sequence = x.Count("ElctrncSeqNb")
	if x.Next("CpyDplctInd") {
		x.Fixed("CpyDplctInd", copyDuplicate)
		h.Copy = true
	}
	x.Open("Acct")
	h.BankID = x.accountID()
	if v := x.Leaf("Ccy"); x.Err == nil {
		h.Currency = ledger.Currency(v)
	}
	x.Open("Ownr")
	h.BankName = x.text("Nm")
	x.Close("Ownr")
	x.Close("Acct")
	x.Open("TxsSummry")
	var totalsLines [3]int
	x.Open("TtlNtries")
	h.NumberOfEntries = x.Count("NbOfNtries")
	totalsLines[0] = x.Line()
	h.ControlSum = x.Amount("Sum")
	totalsLines[1] = x.Line()
	x.Open("TtlNetNtry")
	totalsLines[2] = x.Line()
	netAbs := x.Amount("Amt")
	netDir := x.direction("CdtDbtInd")
	if x.Err == nil {
		var err error
		if h.Net, err = bankformat.SignedFrom(netAbs, netDir, zeroDebit); err != nil {
			x.Fail("CdtDbtInd", err)
		}
	}
	x.Close("TtlNetNtry")
	x.Close("TtlNtries")
	x.Close("TxsSummry")
	if x.Err == nil {
		if err := h.validate(); err != nil {
			line := x.Line()
			x.refield(err, line, xmlHeaderFields)
		}
	}

	var t totals
	for x.Err == nil && x.Next("Ntry") {
		x.Entry++
		x.Record = recordItem
		line := x.Line()
		it := x.readEntry(h)
		if x.Err == nil {
			if err := t.add(it, x.Entry); err != nil {
				x.refield(err, line, xmlItemFields)
			}
			f.Items = append(f.Items, it)
		}
	}
	x.Entry = 0
	x.Record = recordFile
	x.Close("Ntfctn")
	x.Close("BkToCstmrDbtCdtNtfctn")
	x.Close("Document")
	x.End()
	if x.Err != nil {
		return nil, x.Err
	}
	if err := t.check(*h, recordHeader, totalsLines, xmlTotalFields); err != nil {
		return nil, err
	}
	return f, nil
}

// readEntry reads one Ntry. Header fields repeated in it (currency, dates) must agree with h.
func (x *xmlIn) readEntry(h *Header) Item {
	var it Item
	x.Open("Ntry")
	amount, ccy := x.LeafAttr("Amt", "Ccy")
	if x.Err == nil {
		if ledger.Currency(ccy) != h.Currency {
			x.Fail("Amt", errors.New("currency differs from the account's"))
		}
		fen, err := bankformat.ParseAmount(amount)
		if err != nil {
			x.Fail("Amt", err)
		}
		it.Amount = fen
	}
	it.Direction = x.direction("CdtDbtInd")
	x.Open("Sts")
	x.Fixed("Cd", entryStatusBooked)
	x.Close("Sts")
	x.Open("BookgDt")
	if d := x.date("Dt"); x.Err == nil && d != h.CycleDate {
		x.Fail("Dt", errors.New("differs from the file's cycle date"))
	}
	x.Close("BookgDt")
	x.Open("ValDt")
	if d := x.date("Dt"); x.Err == nil && d != h.ValueDate {
		x.Fail("Dt", errors.New("differs from the file's value date"))
	}
	x.Close("ValDt")
	x.Open("BkTxCd")
	x.Open("Prtry")
	if v := x.Leaf("Cd"); x.Err == nil {
		k, err := ParseKind(v)
		if err != nil {
			x.Fail("Cd", err)
		}
		it.Kind = k
	}
	x.Fixed("Issr", bankTxCodeIssuer)
	x.Close("Prtry")
	x.Close("BkTxCd")
	x.Open("NtryDtls")
	x.Open("Btch")
	it.Entries = x.Count("NbOfTxs")
	x.Close("Btch")
	x.Open("TxDtls")
	x.Open("Refs")
	it.ID = x.id("EndToEndId", maxIDBytes)
	x.Close("Refs")
	party, account := partyElements(it.Direction)
	x.Open("RltdPties")
	if x.Next(party) {
		x.Open(party)
		x.Open("Pty")
		it.PartyName = x.text("Nm")
		x.Close("Pty")
		x.Close(party)
	}
	x.Open(account)
	it.Party = x.accountID()
	x.Close(account)
	x.Close("RltdPties")
	if x.Next("RmtInf") {
		x.Open("RmtInf")
		it.Reference = x.text("Ustrd")
		x.Close("RmtInf")
	}
	x.Close("TxDtls")
	x.Close("NtryDtls")
	x.Close("Ntry")
	return it
}

// refield records err, a *FieldError found on values already read, at line and the current
// record, with its field renamed by names.
func (x *xmlIn) refield(err error, line int, names map[string]string) {
	if x.Err != nil {
		return
	}
	var fe *FieldError
	if errors.As(err, &fe) {
		c := *fe
		c.Line = line
		c.Record = x.Record
		if n, ok := names[c.Field]; ok {
			c.Field = n
		}
		x.Err = &c
		return
	}
	x.Err = &FieldError{Record: x.Record, Line: line, Entry: x.Entry, Err: err}
}

// parseDates reads GrpHdr/AddtlInf: "/CYCLE/2026-10-08/VALDT/2026-10-09".
func parseDates(s string) (cycle, value events.Date, err error) {
	rest, ok := strings.CutPrefix(s, datesPrefix)
	c, v, ok2 := strings.Cut(rest, datesValue)
	if !ok || !ok2 {
		return cycle, value, errors.New(`want "` + datesPrefix + `YYYY-MM-DD` + datesValue + `YYYY-MM-DD"`)
	}
	if cycle, err = parseDate(c); err != nil {
		return cycle, value, err
	}
	value, err = parseDate(v)
	return cycle, value, err
}
