package bankfile

import (
	"bufio"
	"encoding/xml"
	"io"
	"iter"
	"strings"

	"github.com/joinincard/engine/internal/bankformat"
)

const (
	// NamespaceCamt054 is the settlement file's XML namespace: ISO 20022's camt.054.001.08,
	// BankToCustomerDebitCreditNotification.
	NamespaceCamt054 = "urn:iso:std:iso:20022:tech:xsd:camt.054.001.08"
	// messageNameCamt054 names the settlement file's message in acknowledgements (OrgnlMsgNmId).
	messageNameCamt054 = "camt.054.001.08"
	// bankTxCodeIssuer issues the proprietary bank transaction codes that carry item kinds.
	bankTxCodeIssuer = "JOININ"
	// entryStatusBooked: every entry of a settlement file is booked.
	entryStatusBooked = "BOOK"
	// copyDuplicate marks a duplicate copy (CopyDuplicate1Code).
	copyDuplicate = "DUPL"
	// datesPrefix, datesValue: GrpHdr/AddtlInf carries the cycle and value dates of the whole
	// file as "/CYCLE/2026-10-08/VALDT/2026-10-09", so that a file without items has them too.
	datesPrefix = "/CYCLE/"
	datesValue  = "/VALDT/"
	// writeBufferBytes: files are written through a buffer of this size.
	writeBufferBytes = 64 << 10
)

// WriteXML writes a settlement file as ISO 20022 camt.054 XML (docs/settlement-files.md), streaming
// the items: it never holds more than one item. h is checked before anything is written; each item
// is checked before it is written; after the last item the count, control sum and net of the items
// are compared with h's and every one that disagrees is named (ErrControlCount, ErrControlSum,
// ErrNetTotal). On an error what was written is incomplete: write to a temporary file and keep it
// only when WriteXML returns nil. The same h and items always give the same bytes.
func WriteXML(w io.Writer, h Header, items iter.Seq[Item]) error {
	if err := h.validate(); err != nil {
		return err
	}
	ew := &errWriter{w: w}
	x := &xmlOut{w: bufio.NewWriterSize(ew, writeBufferBytes)}
	x.w.WriteString(xml.Header)
	x.openNS("Document", NamespaceCamt054)
	x.open("BkToCstmrDbtCdtNtfctn")
	x.open("GrpHdr")
	x.leaf("MsgId", h.MessageID)
	x.leaf("CreDtTm", bankformat.FormatTime(h.CreatedAt))
	x.leaf("AddtlInf", datesPrefix+h.CycleDate.String()+datesValue+h.ValueDate.String())
	x.close("GrpHdr")
	x.open("Ntfctn")
	x.leaf("Id", h.MessageID)
	x.leaf("ElctrncSeqNb", bankformat.FormatCount(h.Sequence))
	if h.Copy {
		x.leaf("CpyDplctInd", copyDuplicate)
	}
	x.open("Acct")
	x.accountID(h.BankID)
	x.leaf("Ccy", string(h.Currency))
	x.open("Ownr")
	x.leaf("Nm", h.BankName)
	x.close("Ownr")
	x.close("Acct")
	x.open("TxsSummry")
	x.open("TtlNtries")
	x.leaf("NbOfNtries", bankformat.FormatCount(h.NumberOfEntries))
	x.leaf("Sum", bankformat.FormatAmount(h.ControlSum))
	netAbs, netDir := bankformat.SignedParts[Direction](h.Net)
	x.open("TtlNetNtry")
	x.leaf("Amt", bankformat.FormatAmount(netAbs))
	x.leaf("CdtDbtInd", string(netDir))
	x.close("TtlNetNtry")
	x.close("TtlNtries")
	x.close("TxsSummry")

	var t totals
	entry := 0
	for it := range items {
		entry++
		if err := t.add(it, entry); err != nil {
			return err
		}
		x.entry(h, it)
		if ew.err != nil {
			return ew.err
		}
	}
	if err := t.check(h, recordHeader, [3]int{}, goFields); err != nil {
		return err
	}
	x.close("Ntfctn")
	x.close("BkToCstmrDbtCdtNtfctn")
	x.close("Document")
	if err := x.w.Flush(); err != nil {
		return err
	}
	return ew.err
}

// entry writes one Ntry.
func (x *xmlOut) entry(h Header, it Item) {
	x.open("Ntry")
	x.leafCcy("Amt", string(h.Currency), bankformat.FormatAmount(it.Amount))
	x.leaf("CdtDbtInd", string(it.Direction))
	x.open("Sts")
	x.leaf("Cd", entryStatusBooked)
	x.close("Sts")
	x.open("BookgDt")
	x.leaf("Dt", h.CycleDate.String())
	x.close("BookgDt")
	x.open("ValDt")
	x.leaf("Dt", h.ValueDate.String())
	x.close("ValDt")
	x.open("BkTxCd")
	x.open("Prtry")
	x.leaf("Cd", it.Kind.String())
	x.leaf("Issr", bankTxCodeIssuer)
	x.close("Prtry")
	x.close("BkTxCd")
	x.open("NtryDtls")
	x.open("Btch")
	x.leaf("NbOfTxs", bankformat.FormatCount(it.Entries))
	x.close("Btch")
	x.open("TxDtls")
	x.open("Refs")
	x.leaf("EndToEndId", it.ID)
	x.close("Refs")
	party, account := partyElements(it.Direction)
	x.open("RltdPties")
	if it.PartyName != "" {
		x.open(party)
		x.open("Pty")
		x.leaf("Nm", it.PartyName)
		x.close("Pty")
		x.close(party)
	}
	x.open(account)
	x.accountID(it.Party)
	x.close(account)
	x.close("RltdPties")
	if it.Reference != "" {
		x.open("RmtInf")
		x.leaf("Ustrd", it.Reference)
		x.close("RmtInf")
	}
	x.close("TxDtls")
	x.close("NtryDtls")
	x.close("Ntry")
}

// partyElements: the party of a credit (the bank receives for it) is the creditor; of a debit
// (the bank pays for it), the debtor.
func partyElements(d Direction) (party, account string) {
	if d == Debit {
		return "Dbtr", "DbtrAcct"
	}
	return "Cdtr", "CdtrAcct"
}

// accountID writes Id/Othr/Id, an account identification that is not an IBAN.
func (x *xmlOut) accountID(id string) {
	x.open("Id")
	x.open("Othr")
	x.leaf("Id", id)
	x.close("Othr")
	x.close("Id")
}

// xmlOut writes indented XML, two spaces a level, one element a line, "\n" line ends. Write
// errors are kept by the errWriter below it.
type xmlOut struct {
	w     *bufio.Writer
	depth int
}

func (x *xmlOut) indent() {
	for range x.depth {
		x.w.WriteString("  ")
	}
}

func (x *xmlOut) open(name string) {
	x.indent()
	x.w.WriteByte('<')
	x.w.WriteString(name)
	x.w.WriteString(">\n")
	x.depth++
}

func (x *xmlOut) openNS(name, ns string) {
	x.indent()
	x.w.WriteString("<" + name + ` xmlns="` + ns + `">` + "\n")
	x.depth++
}

func (x *xmlOut) close(name string) {
	x.depth--
	x.indent()
	x.w.WriteString("</")
	x.w.WriteString(name)
	x.w.WriteString(">\n")
}

func (x *xmlOut) leaf(name, text string) {
	x.indent()
	x.w.WriteByte('<')
	x.w.WriteString(name)
	x.w.WriteByte('>')
	escapeText(x.w, text)
	x.w.WriteString("</")
	x.w.WriteString(name)
	x.w.WriteString(">\n")
}

// leafCcy writes an amount element with its currency attribute; ccy is a checked currency code.
func (x *xmlOut) leafCcy(name, ccy, amount string) {
	x.indent()
	x.w.WriteString("<" + name + ` Ccy="` + ccy + `">` + amount + "</" + name + ">\n")
}

// escapeText writes s as XML character data: s has been checked to hold no control characters,
// so only the markup characters need escaping.
func escapeText(w *bufio.Writer, s string) {
	for {
		i := strings.IndexAny(s, "&<>")
		if i < 0 {
			w.WriteString(s)
			return
		}
		w.WriteString(s[:i])
		switch s[i] {
		case '&':
			w.WriteString("&amp;")
		case '<':
			w.WriteString("&lt;")
		case '>':
			w.WriteString("&gt;")
		}
		s = s[i+1:]
	}
}

// errWriter keeps the first error of w and writes nothing after it, so that a writer streaming
// many items stops at the first failed write.
type errWriter struct {
	w   io.Writer
	err error
}

func (e *errWriter) Write(p []byte) (int, error) {
	if e.err != nil {
		return 0, e.err
	}
	n, err := e.w.Write(p)
	if err != nil {
		e.err = err
	}
	return n, err
}
