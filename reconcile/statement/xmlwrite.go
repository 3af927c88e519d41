package statement

import (
	"io"
	"iter"

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
	x := &xmlOut{bankformat.NewXMLOut(w, writeBufferBytes)}
	x.OpenNS("Document", NamespaceCamt053)
	x.Open("BkToCstmrStmt")
	x.Open("GrpHdr")
	x.Leaf("MsgId", h.StatementID)
	x.Leaf("CreDtTm", bankformat.FormatTime(h.CreatedAt))
	x.Close("GrpHdr")
	x.Open("Stmt")
	x.Leaf("Id", h.StatementID)
	x.Leaf("ElctrncSeqNb", bankformat.FormatCount(h.Sequence))
	x.Open("FrToDt")
	x.Leaf("FrDt", h.From.String())
	x.Leaf("ToDt", h.To.String())
	x.Close("FrToDt")
	if h.Copy {
		x.Leaf("CpyDplctInd", copyDuplicate)
	}
	x.Open("Acct")
	x.LeafIn(h.BankID, "Id", "Othr", "Id")
	x.Leaf("Ccy", string(h.Currency))
	x.Close("Acct")
	x.balance(balanceOpening, h.OpeningBalance, h)
	x.balance(balanceClosing, h.ClosingBalance, h)
	x.Summary(h.NumberOfEntries, h.Sum, h.Net)

	var t totals
	n := 0
	for e := range entries {
		n++
		if err := t.add(e, n, &h); err != nil {
			return err
		}
		x.entry(h, e)
		if err := x.Err(); err != nil {
			return err
		}
	}
	if err := t.check(&h, goPlaces); err != nil {
		return err
	}
	x.Close("Stmt")
	x.Close("BkToCstmrStmt")
	x.Close("Document")
	return x.Flush()
}

// balance writes one Bal: the opening balance is dated the first day of the period, the closing
// balance the last.
func (x *xmlOut) balance(code string, fen int64, h Header) {
	date := h.From
	if code == balanceClosing {
		date = h.To
	}
	abs, dir := bankformat.SignedParts[Direction](fen)
	x.Open("Bal")
	x.LeafIn(code, "Tp", "CdOrPrtry", "Cd")
	x.LeafCcy("Amt", string(h.Currency), bankformat.FormatAmount(abs))
	x.Leaf("CdtDbtInd", string(dir))
	x.LeafIn(date.String(), "Dt", "Dt")
	x.Close("Bal")
}

// entry writes one Ntry.
func (x *xmlOut) entry(h Header, e Entry) {
	x.Open("Ntry")
	x.LeafCcy("Amt", string(h.Currency), bankformat.FormatAmount(e.Amount))
	x.Leaf("CdtDbtInd", string(e.Direction))
	x.LeafIn(entryStatusBooked, "Sts", "Cd")
	x.LeafIn(e.BookingDate.String(), "BookgDt", "Dt")
	x.LeafIn(e.ValueDate.String(), "ValDt", "Dt")
	x.Leaf("AcctSvcrRef", e.EntryRef)
	x.Open("NtryDtls")
	x.Open("TxDtls")
	x.Open("Refs")
	ref := e.EndToEndRef
	if ref == "" {
		ref = notProvided
	}
	x.Leaf("EndToEndId", ref)
	x.Close("Refs")
	x.Close("TxDtls")
	x.Close("NtryDtls")
	if e.AdditionalInfo != "" {
		x.Leaf("AddtlNtryInf", e.AdditionalInfo)
	}
	x.Close("Ntry")
}

// xmlOut is the XML writer of bankformat.
type xmlOut struct {
	*bankformat.XMLOut
}
