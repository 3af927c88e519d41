package statement

import (
	"errors"
	"io"

	"github.com/joinincard/engine/internal/bankformat"
	"github.com/joinincard/engine/ledger"
)

// xmlEntryFields names where each Entry field is in an Ntry, for errors found on an entry as a
// whole.
var xmlEntryFields = map[string]string{
	"Amount":         "Stmt/Ntry/Amt",
	"Direction":      "Stmt/Ntry/CdtDbtInd",
	"BookingDate":    "Stmt/Ntry/BookgDt/Dt",
	"ValueDate":      "Stmt/Ntry/ValDt/Dt",
	"EntryRef":       "Stmt/Ntry/AcctSvcrRef",
	"EndToEndRef":    "Stmt/Ntry/NtryDtls/TxDtls/Refs/EndToEndId",
	"AdditionalInfo": "Stmt/Ntry/AddtlNtryInf",
}

// xmlSource reads a camt.053 statement: the header in newXMLSource, an entry per next.
type xmlSource struct {
	x         *xmlIn
	h         *Header
	at        places
	entryLine int // the line of the last entry's start
}

// NewXMLReader reads a statement's XML header from r and returns a Reader of its entries
// (docs/bank-statements.md). It accepts what WriteXML writes and nothing else: the elements in
// their order, in camt.053's namespace, without other elements, attributes, comments, processing
// instructions or DOCTYPE. The header's fields, its totals among themselves and its closing
// balance against its opening balance plus its net are checked before it returns; the entries'
// totals when Next reaches the end.
func NewXMLReader(r io.Reader) (*Reader, error) {
	rd := &Reader{}
	r, _ = skipBOM(r) // XML allows a UTF-8 document to start with a byte order mark
	s := &xmlSource{x: newXMLIn(r, NamespaceCamt053), h: &rd.h}
	if err := s.header(); err != nil {
		return nil, err
	}
	rd.src = s
	return rd, nil
}

func (s *xmlSource) header() error {
	x, h := s.x, s.h
	x.Skip = 2 // paths start below Document/BkToCstmrStmt
	x.Open("Document")
	x.Open("BkToCstmrStmt")
	x.Record = recordHeader
	x.Open("GrpHdr")
	h.StatementID = x.id("MsgId")
	x.Checked("CreDtTm", func(v string) (err error) { h.CreatedAt, err = parseTime(v); return err })
	x.Close("GrpHdr")
	x.Open("Stmt")
	if id := x.id("Id"); x.Err == nil && id != h.StatementID {
		x.Fail("Id", errors.New("differs from GrpHdr/MsgId"))
	}
	h.Sequence = x.Count("ElctrncSeqNb")
	if x.Err == nil {
		if err := checkSequence(h.Sequence); err != nil {
			x.Fail("ElctrncSeqNb", err)
		}
	}
	x.Open("FrToDt")
	h.From = x.date("FrDt")
	h.To = x.date("ToDt")
	if x.Err == nil {
		if err := checkPeriod(h.From, h.To); err != nil {
			x.Fail("ToDt", err)
		}
	}
	x.Close("FrToDt")
	if x.Next("CpyDplctInd") {
		x.Fixed("CpyDplctInd", copyDuplicate)
		h.Copy = true
	}
	x.Open("Acct")
	x.Open("Id")
	x.Open("Othr")
	h.BankID = x.Checked("Id", checkBankID)
	x.Close("Othr")
	x.Close("Id")
	h.Currency = ledger.Currency(x.Checked("Ccy", func(v string) error { return checkCurrency(ledger.Currency(v)) }))
	x.Close("Acct")
	h.OpeningBalance, _ = s.balance(balanceOpening)
	var closingLine int
	h.ClosingBalance, closingLine = s.balance(balanceClosing)
	s.at.closing = place{recordHeader, closingLine, "Stmt/Bal[CLBD]/Amt"}

	x.Open("TxsSummry")
	x.Open("TtlNtries")
	h.NumberOfEntries = x.Count("NbOfNtries")
	if x.Err == nil {
		if err := checkCount(h.NumberOfEntries); err != nil {
			x.Fail("NbOfNtries", err)
		}
	}
	s.at.count = place{recordHeader, x.Line(), "Stmt/TxsSummry/TtlNtries/NbOfNtries"}
	h.Sum = x.Amount("Sum")
	s.at.sum = place{recordHeader, x.Line(), "Stmt/TxsSummry/TtlNtries/Sum"}
	x.Open("TtlNetNtry")
	netAbs := x.Amount("Amt")
	s.at.net = place{recordHeader, x.Line(), "Stmt/TxsSummry/TtlNtries/TtlNetNtry/Amt"}
	netDir := x.direction("CdtDbtInd")
	if x.Err == nil {
		var err error
		if h.Net, err = bankformat.SignedFrom(netAbs, netDir, zeroDebit); err != nil {
			x.Fail("CdtDbtInd", err)
		} else if err := checkNet(h.Net, h.Sum); err != nil {
			n := s.at.net
			x.Err = &FieldError{Record: n.record, Line: n.line, Field: n.field, Err: err}
		}
	}
	x.Close("TtlNetNtry")
	x.Close("TtlNtries")
	x.Close("TxsSummry")
	if x.Err == nil {
		if err := checkClosing(h.OpeningBalance, h.Net, h.ClosingBalance, "the net"); err != nil {
			c := s.at.closing
			x.Err = &FieldError{Record: c.record, Line: c.line, Field: c.field, Err: err}
		}
	}
	if x.Err == nil {
		// What each value was checked against as it was read, the writers check on the Header
		// as a whole: the two must agree.
		var fe *FieldError
		if err := h.validate(); errors.As(err, &fe) {
			c := *fe
			c.Line = x.Line()
			x.Err = &c
		}
	}
	return x.Err
}

// balance reads one Bal of the given type, dated the first day of the period for the opening
// balance and the last for the closing one. It returns the signed balance and the line of its
// amount.
func (s *xmlSource) balance(code string) (int64, int) {
	x := s.x
	x.Open("Bal")
	x.Rename("Bal[" + code + "]")
	x.Open("Tp")
	x.Open("CdOrPrtry")
	x.Fixed("Cd", code)
	x.Close("CdOrPrtry")
	x.Close("Tp")
	amount, ccy := x.LeafAttr("Amt", "Ccy")
	line := x.Line()
	var abs int64
	if x.Err == nil {
		var err error
		if ledger.Currency(ccy) != s.h.Currency {
			x.Fail("Amt", errors.New("currency differs from the account's"))
		} else if abs, err = bankformat.ParseAmount(amount); err != nil {
			x.Fail("Amt", err)
		}
	}
	dir := x.direction("CdtDbtInd")
	var fen int64
	if x.Err == nil {
		var err error
		if fen, err = bankformat.SignedFrom(abs, dir, zeroDebit); err != nil {
			x.Fail("CdtDbtInd", err)
		}
	}
	want, what := s.h.From, "the first day of the period (FrToDt/FrDt)"
	if code == balanceClosing {
		want, what = s.h.To, "the last day of the period (FrToDt/ToDt)"
	}
	x.Open("Dt")
	if d := x.date("Dt"); x.Err == nil && d != want {
		x.Fail("Dt", errors.New("is not "+what))
	}
	x.Close("Dt")
	x.Close("Bal")
	return fen, line
}

// next reads the next entry, or the end of the statement.
func (s *xmlSource) next(n int) (Entry, bool) {
	x := s.x
	if !x.Next("Ntry") {
		if x.Err == nil {
			x.in.reset(maxXMLTailBytes, "the XML after the last entry")
		}
		x.Entry = 0
		x.Record = recordFile
		x.Close("Stmt")
		x.Close("BkToCstmrStmt")
		x.Close("Document")
		x.End()
		return Entry{}, false
	}
	x.in.reset(maxXMLEntryBytes, "an entry")
	x.Entry = n
	x.Record = recordEntry
	s.entryLine = x.Line()
	return s.readEntry(), x.Err == nil
}

// readEntry reads one Ntry, checking each value as it comes.
func (s *xmlSource) readEntry() Entry {
	x, h := s.x, s.h
	var e Entry
	x.Open("Ntry")
	amount, ccy := x.LeafAttr("Amt", "Ccy")
	if x.Err == nil {
		var err error
		if ledger.Currency(ccy) != h.Currency {
			x.Fail("Amt", errors.New("currency differs from the account's"))
		} else if e.Amount, err = bankformat.ParseAmount(amount); err != nil {
			x.Fail("Amt", err)
		} else if err := checkAmount(e.Amount); err != nil {
			x.Fail("Amt", err)
		}
	}
	e.Direction = x.direction("CdtDbtInd")
	x.Open("Sts")
	x.Fixed("Cd", entryStatusBooked)
	x.Close("Sts")
	x.Open("BookgDt")
	x.Checked("Dt", func(v string) (err error) {
		if e.BookingDate, err = parseDate(v); err != nil {
			return err
		}
		return checkBookingDate(e.BookingDate, h)
	})
	x.Close("BookgDt")
	x.Open("ValDt")
	e.ValueDate = x.date("Dt")
	x.Close("ValDt")
	e.EntryRef = x.id("AcctSvcrRef")
	x.Open("NtryDtls")
	x.Open("TxDtls")
	x.Open("Refs")
	x.Checked("EndToEndId", func(v string) error {
		if v == notProvided {
			return nil
		}
		if v == "" {
			return errors.New("is empty: an entry without a reference has NOTPROVIDED")
		}
		e.EndToEndRef = v
		return checkEndToEndRef(v)
	})
	x.Close("Refs")
	x.Close("TxDtls")
	x.Close("NtryDtls")
	if x.Next("AddtlNtryInf") {
		x.Checked("AddtlNtryInf", func(v string) error {
			if v == "" {
				return errors.New("is empty: an entry without additional information leaves the element out")
			}
			e.AdditionalInfo = v
			return checkText(v, maxInfoRunes)
		})
	}
	x.Close("Ntry")
	return e
}

// locate places err, found on the last entry as a whole, at the entry's line, with its field
// renamed to the element.
func (s *xmlSource) locate(err error) error {
	var fe *FieldError
	if errors.As(err, &fe) {
		c := *fe
		c.Line = s.entryLine
		if n, ok := xmlEntryFields[c.Field]; ok {
			c.Field = n
		}
		return &c
	}
	return &FieldError{Record: recordEntry, Line: s.entryLine, Entry: s.x.Entry, Err: err}
}

func (s *xmlSource) err() error { return s.x.Err }

func (s *xmlSource) totalsAt() places { return s.at }
