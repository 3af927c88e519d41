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
	x.skip = 2 // paths start below Document/BkToCstmrDbtCdtNtfctn
	f := &File{}
	h := &f.Header
	x.open("Document")
	x.open("BkToCstmrDbtCdtNtfctn")
	x.record = recordHeader
	x.open("GrpHdr")
	h.MessageID = x.id("MsgId", maxIDBytes)
	if v := x.leaf("CreDtTm"); x.err == nil {
		t, err := parseTime(v)
		if err != nil {
			x.fail("CreDtTm", err)
		}
		h.CreatedAt = t
	}
	if v := x.leaf("AddtlInf"); x.err == nil {
		var err error
		if h.CycleDate, h.ValueDate, err = parseDates(v); err != nil {
			x.fail("AddtlInf", err)
		}
	}
	x.close("GrpHdr")
	x.open("Ntfctn")
	if id := x.id("Id", maxIDBytes); x.err == nil && id != h.MessageID {
		x.fail("Id", errors.New("differs from GrpHdr/MsgId"))
	}
	h.Sequence = x.count("ElctrncSeqNb")
	if x.next("CpyDplctInd") {
		x.fixed("CpyDplctInd", copyDuplicate)
		h.Copy = true
	}
	x.open("Acct")
	h.BankID = x.accountID()
	if v := x.leaf("Ccy"); x.err == nil {
		h.Currency = ledger.Currency(v)
	}
	x.open("Ownr")
	h.BankName = x.text("Nm")
	x.close("Ownr")
	x.close("Acct")
	x.open("TxsSummry")
	var totalsLines [3]int
	x.open("TtlNtries")
	h.NumberOfEntries = x.count("NbOfNtries")
	totalsLines[0], _ = x.d.InputPos()
	h.ControlSum = x.amount("Sum")
	totalsLines[1], _ = x.d.InputPos()
	x.open("TtlNetNtry")
	totalsLines[2], _ = x.d.InputPos()
	netAbs := x.amount("Amt")
	netDir := x.direction("CdtDbtInd")
	if x.err == nil {
		var err error
		if h.Net, err = bankformat.SignedFrom(netAbs, netDir, zeroDebit); err != nil {
			x.fail("CdtDbtInd", err)
		}
	}
	x.close("TtlNetNtry")
	x.close("TtlNtries")
	x.close("TxsSummry")
	if x.err == nil {
		if err := h.validate(); err != nil {
			line, _ := x.d.InputPos()
			x.refield(err, line, xmlHeaderFields)
		}
	}

	var t totals
	for x.err == nil && x.next("Ntry") {
		x.entry++
		x.record = recordItem
		line, _ := x.d.InputPos()
		it := x.readEntry(h)
		if x.err == nil {
			if err := t.add(it, x.entry); err != nil {
				x.refield(err, line, xmlItemFields)
			}
			f.Items = append(f.Items, it)
		}
	}
	x.entry = 0
	x.record = recordFile
	x.close("Ntfctn")
	x.close("BkToCstmrDbtCdtNtfctn")
	x.close("Document")
	x.end()
	if x.err != nil {
		return nil, x.err
	}
	if err := t.check(*h, recordHeader, totalsLines, xmlTotalFields); err != nil {
		return nil, err
	}
	return f, nil
}

// readEntry reads one Ntry. Header fields repeated in it (currency, dates) must agree with h.
func (x *xmlIn) readEntry(h *Header) Item {
	var it Item
	x.open("Ntry")
	amount, ccy := x.leafAttr("Amt", "Ccy")
	if x.err == nil {
		if ledger.Currency(ccy) != h.Currency {
			x.fail("Amt", errors.New("currency differs from the account's"))
		}
		fen, err := bankformat.ParseAmount(amount)
		if err != nil {
			x.fail("Amt", err)
		}
		it.Amount = fen
	}
	it.Direction = x.direction("CdtDbtInd")
	x.open("Sts")
	x.fixed("Cd", entryStatusBooked)
	x.close("Sts")
	x.open("BookgDt")
	if d := x.date("Dt"); x.err == nil && d != h.CycleDate {
		x.fail("Dt", errors.New("differs from the file's cycle date"))
	}
	x.close("BookgDt")
	x.open("ValDt")
	if d := x.date("Dt"); x.err == nil && d != h.ValueDate {
		x.fail("Dt", errors.New("differs from the file's value date"))
	}
	x.close("ValDt")
	x.open("BkTxCd")
	x.open("Prtry")
	if v := x.leaf("Cd"); x.err == nil {
		k, err := ParseKind(v)
		if err != nil {
			x.fail("Cd", err)
		}
		it.Kind = k
	}
	x.fixed("Issr", bankTxCodeIssuer)
	x.close("Prtry")
	x.close("BkTxCd")
	x.open("NtryDtls")
	x.open("Btch")
	it.Entries = x.count("NbOfTxs")
	x.close("Btch")
	x.open("TxDtls")
	x.open("Refs")
	it.ID = x.id("EndToEndId", maxIDBytes)
	x.close("Refs")
	party, account := partyElements(it.Direction)
	x.open("RltdPties")
	if x.next(party) {
		x.open(party)
		x.open("Pty")
		it.PartyName = x.text("Nm")
		x.close("Pty")
		x.close(party)
	}
	x.open(account)
	it.Party = x.accountID()
	x.close(account)
	x.close("RltdPties")
	if x.next("RmtInf") {
		x.open("RmtInf")
		it.Reference = x.text("Ustrd")
		x.close("RmtInf")
	}
	x.close("TxDtls")
	x.close("NtryDtls")
	x.close("Ntry")
	return it
}

// refield records err, a *FieldError found on values already read, at line and the current
// record, with its field renamed by names.
func (x *xmlIn) refield(err error, line int, names map[string]string) {
	if x.err != nil {
		return
	}
	var fe *FieldError
	if errors.As(err, &fe) {
		c := *fe
		c.Line = line
		c.Record = x.record
		if n, ok := names[c.Field]; ok {
			c.Field = n
		}
		x.err = &c
		return
	}
	x.err = &FieldError{Record: x.record, Line: line, Entry: x.entry, Err: err}
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
