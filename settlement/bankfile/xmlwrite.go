package bankfile

import (
	"io"
	"iter"

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
	x := &xmlOut{bankformat.NewXMLOut(w, writeBufferBytes)}
	x.OpenNS("Document", NamespaceCamt054)
	x.Open("BkToCstmrDbtCdtNtfctn")
	x.Open("GrpHdr")
	x.Leaf("MsgId", h.MessageID)
	x.Leaf("CreDtTm", bankformat.FormatTime(h.CreatedAt))
	x.Leaf("AddtlInf", datesPrefix+h.CycleDate.String()+datesValue+h.ValueDate.String())
	x.Close("GrpHdr")
	x.Open("Ntfctn")
	x.Leaf("Id", h.MessageID)
	x.Leaf("ElctrncSeqNb", bankformat.FormatCount(h.Sequence))
	if h.Copy {
		x.Leaf("CpyDplctInd", copyDuplicate)
	}
	x.Open("Acct")
	x.accountID(h.BankID)
	x.Leaf("Ccy", string(h.Currency))
	x.LeafIn(h.BankName, "Ownr", "Nm")
	x.Close("Acct")
	x.Summary(h.NumberOfEntries, h.ControlSum, h.Net)

	var t totals
	entry := 0
	for it := range items {
		entry++
		if err := t.add(it, entry); err != nil {
			return err
		}
		x.entry(h, it)
		if err := x.Err(); err != nil {
			return err
		}
	}
	if err := t.check(h, recordHeader, [3]int{}, goFields); err != nil {
		return err
	}
	x.Close("Ntfctn")
	x.Close("BkToCstmrDbtCdtNtfctn")
	x.Close("Document")
	return x.Flush()
}

// entry writes one Ntry.
func (x *xmlOut) entry(h Header, it Item) {
	x.Open("Ntry")
	x.LeafCcy("Amt", string(h.Currency), bankformat.FormatAmount(it.Amount))
	x.Leaf("CdtDbtInd", string(it.Direction))
	x.LeafIn(entryStatusBooked, "Sts", "Cd")
	x.LeafIn(h.CycleDate.String(), "BookgDt", "Dt")
	x.LeafIn(h.ValueDate.String(), "ValDt", "Dt")
	x.Open("BkTxCd")
	x.Open("Prtry")
	x.Leaf("Cd", it.Kind.String())
	x.Leaf("Issr", bankTxCodeIssuer)
	x.Close("Prtry")
	x.Close("BkTxCd")
	x.Open("NtryDtls")
	x.LeafIn(bankformat.FormatCount(it.Entries), "Btch", "NbOfTxs")
	x.Open("TxDtls")
	x.LeafIn(it.ID, "Refs", "EndToEndId")
	party, account := partyElements(it.Direction)
	x.Open("RltdPties")
	if it.PartyName != "" {
		x.Open(party)
		x.LeafIn(it.PartyName, "Pty", "Nm")
		x.Close(party)
	}
	x.Open(account)
	x.accountID(it.Party)
	x.Close(account)
	x.Close("RltdPties")
	if it.Reference != "" {
		x.LeafIn(it.Reference, "RmtInf", "Ustrd")
	}
	x.Close("TxDtls")
	x.Close("NtryDtls")
	x.Close("Ntry")
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
	x.LeafIn(id, "Id", "Othr", "Id")
}

// xmlOut is the XML writer of bankformat.
type xmlOut struct {
	*bankformat.XMLOut
}
