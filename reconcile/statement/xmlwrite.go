package statement

import (
	"bufio"
	"encoding/xml"
	"io"
	"iter"
	"strings"

	"github.com/joinincard/engine/internal/bankformat"
)

const (
	// NamespaceCamt053 is the statement's XML namespace: ISO 20022's camt.053.001.08,
	// BankToCustomerStatement.
	NamespaceCamt053 = "urn:iso:std:iso:20022:tech:xsd:camt.053.001.08"
	// entryStatusBooked: a statement lists booked entries only.
	entryStatusBooked = "BOOK"
	// copyDuplicate marks a duplicate copy (CopyDuplicate1Code).
	copyDuplicate = "DUPL"
	// balanceOpening, balanceClosing: the balance types (BalanceType12Code) of the opening and
	// closing booked balances.
	balanceOpening = "OPBD"
	balanceClosing = "CLBD"
	// writeBufferBytes: statements are written through a buffer of this size.
	writeBufferBytes = 64 << 10
)

// WriteXML writes a statement as ISO 20022 camt.053 XML (docs/bank-statements.md), streaming the
// entries: it never holds more than one. h is checked before anything is written (its fields, its
// totals among themselves, and its closing balance against its opening balance plus its net);
// each entry is checked before it is written; after the last entry their count, sum and net are
// compared with h's and every one that disagrees is named (ErrControlCount, ErrControlSum,
// ErrNetTotal). On an error what was written is incomplete: write to a temporary file and keep it
// only when WriteXML returns nil. The same h and entries always give the same bytes.
func WriteXML(w io.Writer, h Header, entries iter.Seq[Entry]) error {
	if err := h.validate(); err != nil {
		return err
	}
	ew := &errWriter{w: w}
	x := &xmlOut{w: bufio.NewWriterSize(ew, writeBufferBytes)}
	x.w.WriteString(xml.Header)
	x.openNS("Document", NamespaceCamt053)
	x.open("BkToCstmrStmt")
	x.open("GrpHdr")
	x.leaf("MsgId", h.StatementID)
	x.leaf("CreDtTm", bankformat.FormatTime(h.CreatedAt))
	x.close("GrpHdr")
	x.open("Stmt")
	x.leaf("Id", h.StatementID)
	x.leaf("ElctrncSeqNb", bankformat.FormatCount(h.Sequence))
	x.open("FrToDt")
	x.leaf("FrDt", h.From.String())
	x.leaf("ToDt", h.To.String())
	x.close("FrToDt")
	if h.Copy {
		x.leaf("CpyDplctInd", copyDuplicate)
	}
	x.open("Acct")
	x.open("Id")
	x.open("Othr")
	x.leaf("Id", h.BankID)
	x.close("Othr")
	x.close("Id")
	x.leaf("Ccy", string(h.Currency))
	x.close("Acct")
	x.balance(balanceOpening, h.OpeningBalance, h)
	x.balance(balanceClosing, h.ClosingBalance, h)
	x.open("TxsSummry")
	x.open("TtlNtries")
	x.leaf("NbOfNtries", bankformat.FormatCount(h.NumberOfEntries))
	x.leaf("Sum", bankformat.FormatAmount(h.Sum))
	netAbs, netDir := bankformat.SignedParts[Direction](h.Net)
	x.open("TtlNetNtry")
	x.leaf("Amt", bankformat.FormatAmount(netAbs))
	x.leaf("CdtDbtInd", string(netDir))
	x.close("TtlNetNtry")
	x.close("TtlNtries")
	x.close("TxsSummry")

	var t totals
	n := 0
	for e := range entries {
		n++
		if err := t.add(e, n, &h); err != nil {
			return err
		}
		x.entry(h, e)
		if ew.err != nil {
			return ew.err
		}
	}
	if err := t.check(&h, goPlaces); err != nil {
		return err
	}
	x.close("Stmt")
	x.close("BkToCstmrStmt")
	x.close("Document")
	if err := x.w.Flush(); err != nil {
		return err
	}
	return ew.err
}

// balance writes one Bal: the opening balance is dated the first day of the period, the closing
// balance the last.
func (x *xmlOut) balance(code string, fen int64, h Header) {
	date := h.From
	if code == balanceClosing {
		date = h.To
	}
	abs, dir := bankformat.SignedParts[Direction](fen)
	x.open("Bal")
	x.open("Tp")
	x.open("CdOrPrtry")
	x.leaf("Cd", code)
	x.close("CdOrPrtry")
	x.close("Tp")
	x.leafCcy("Amt", string(h.Currency), bankformat.FormatAmount(abs))
	x.leaf("CdtDbtInd", string(dir))
	x.open("Dt")
	x.leaf("Dt", date.String())
	x.close("Dt")
	x.close("Bal")
}

// entry writes one Ntry.
func (x *xmlOut) entry(h Header, e Entry) {
	x.open("Ntry")
	x.leafCcy("Amt", string(h.Currency), bankformat.FormatAmount(e.Amount))
	x.leaf("CdtDbtInd", string(e.Direction))
	x.open("Sts")
	x.leaf("Cd", entryStatusBooked)
	x.close("Sts")
	x.open("BookgDt")
	x.leaf("Dt", e.BookingDate.String())
	x.close("BookgDt")
	x.open("ValDt")
	x.leaf("Dt", e.ValueDate.String())
	x.close("ValDt")
	x.leaf("AcctSvcrRef", e.EntryRef)
	x.open("NtryDtls")
	x.open("TxDtls")
	x.open("Refs")
	ref := e.EndToEndRef
	if ref == "" {
		ref = notProvided
	}
	x.leaf("EndToEndId", ref)
	x.close("Refs")
	x.close("TxDtls")
	x.close("NtryDtls")
	if e.AdditionalInfo != "" {
		x.leaf("AddtlNtryInf", e.AdditionalInfo)
	}
	x.close("Ntry")
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
// many entries stops at the first failed write.
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
