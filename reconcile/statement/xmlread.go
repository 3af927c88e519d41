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
	s := &xmlSource{x: newXMLIn(r, NamespaceCamt053), h: &rd.h}
	if err := s.header(); err != nil {
		return nil, err
	}
	rd.src = s
	return rd, nil
}

func (s *xmlSource) header() error {
	x, h := s.x, s.h
	x.skip = 2 // paths start below Document/BkToCstmrStmt
	x.open("Document")
	x.open("BkToCstmrStmt")
	x.record = recordHeader
	x.open("GrpHdr")
	h.StatementID = x.id("MsgId")
	x.checked("CreDtTm", func(v string) (err error) { h.CreatedAt, err = parseTime(v); return err })
	x.close("GrpHdr")
	x.open("Stmt")
	if id := x.id("Id"); x.err == nil && id != h.StatementID {
		x.fail("Id", errors.New("differs from GrpHdr/MsgId"))
	}
	h.Sequence = x.count("ElctrncSeqNb")
	if x.err == nil {
		if err := checkSequence(h.Sequence); err != nil {
			x.fail("ElctrncSeqNb", err)
		}
	}
	x.open("FrToDt")
	h.From = x.date("FrDt")
	h.To = x.date("ToDt")
	if x.err == nil {
		if err := checkPeriod(h.From, h.To); err != nil {
			x.fail("ToDt", err)
		}
	}
	x.close("FrToDt")
	if x.next("CpyDplctInd") {
		x.fixed("CpyDplctInd", copyDuplicate)
		h.Copy = true
	}
	x.open("Acct")
	x.open("Id")
	x.open("Othr")
	h.BankID = x.checked("Id", checkBankID)
	x.close("Othr")
	x.close("Id")
	h.Currency = ledger.Currency(x.checked("Ccy", func(v string) error { return checkCurrency(ledger.Currency(v)) }))
	x.close("Acct")
	h.OpeningBalance, _ = s.balance(balanceOpening)
	var closingLine int
	h.ClosingBalance, closingLine = s.balance(balanceClosing)
	s.at.closing = place{recordHeader, closingLine, "Stmt/Bal[CLBD]/Amt"}

	x.open("TxsSummry")
	x.open("TtlNtries")
	h.NumberOfEntries = x.count("NbOfNtries")
	if x.err == nil {
		if err := checkCount(h.NumberOfEntries); err != nil {
			x.fail("NbOfNtries", err)
		}
	}
	s.at.count = place{recordHeader, x.line(), "Stmt/TxsSummry/TtlNtries/NbOfNtries"}
	h.Sum = x.amount("Sum")
	s.at.sum = place{recordHeader, x.line(), "Stmt/TxsSummry/TtlNtries/Sum"}
	x.open("TtlNetNtry")
	netAbs := x.amount("Amt")
	s.at.net = place{recordHeader, x.line(), "Stmt/TxsSummry/TtlNtries/TtlNetNtry/Amt"}
	netDir := x.direction("CdtDbtInd")
	if x.err == nil {
		var err error
		if h.Net, err = bankformat.SignedFrom(netAbs, netDir, zeroDebit); err != nil {
			x.fail("CdtDbtInd", err)
		} else if err := checkNet(h.Net, h.Sum); err != nil {
			n := s.at.net
			x.err = &FieldError{Record: n.record, Line: n.line, Field: n.field, Err: err}
		}
	}
	x.close("TtlNetNtry")
	x.close("TtlNtries")
	x.close("TxsSummry")
	if x.err == nil {
		if err := checkClosing(h.OpeningBalance, h.Net, h.ClosingBalance, "the net"); err != nil {
			c := s.at.closing
			x.err = &FieldError{Record: c.record, Line: c.line, Field: c.field, Err: err}
		}
	}
	if x.err == nil {
		// What each value was checked against as it was read, the writers check on the Header
		// as a whole: the two must agree.
		var fe *FieldError
		if err := h.validate(); errors.As(err, &fe) {
			c := *fe
			c.Line = x.line()
			x.err = &c
		}
	}
	return x.err
}

// balance reads one Bal of the given type, dated the first day of the period for the opening
// balance and the last for the closing one. It returns the signed balance and the line of its
// amount.
func (s *xmlSource) balance(code string) (int64, int) {
	x := s.x
	x.open("Bal")
	x.rename("Bal[" + code + "]")
	x.open("Tp")
	x.open("CdOrPrtry")
	x.fixed("Cd", code)
	x.close("CdOrPrtry")
	x.close("Tp")
	amount, ccy := x.leafAttr("Amt", "Ccy")
	line := x.line()
	var abs int64
	if x.err == nil {
		var err error
		if ledger.Currency(ccy) != s.h.Currency {
			x.fail("Amt", errors.New("currency differs from the account's"))
		} else if abs, err = bankformat.ParseAmount(amount); err != nil {
			x.fail("Amt", err)
		}
	}
	dir := x.direction("CdtDbtInd")
	var fen int64
	if x.err == nil {
		var err error
		if fen, err = bankformat.SignedFrom(abs, dir, zeroDebit); err != nil {
			x.fail("CdtDbtInd", err)
		}
	}
	want, what := s.h.From, "the first day of the period (FrToDt/FrDt)"
	if code == balanceClosing {
		want, what = s.h.To, "the last day of the period (FrToDt/ToDt)"
	}
	x.open("Dt")
	if d := x.date("Dt"); x.err == nil && d != want {
		x.fail("Dt", errors.New("is not "+what))
	}
	x.close("Dt")
	x.close("Bal")
	return fen, line
}

// next reads the next entry, or the end of the statement.
func (s *xmlSource) next(n int) (Entry, bool) {
	x := s.x
	if !x.next("Ntry") {
		if x.err == nil {
			x.in.reset(maxXMLTailBytes, "the XML after the last entry")
		}
		x.entry = 0
		x.record = recordFile
		x.close("Stmt")
		x.close("BkToCstmrStmt")
		x.close("Document")
		x.end()
		return Entry{}, false
	}
	x.in.reset(maxXMLEntryBytes, "an entry")
	x.entry = n
	x.record = recordEntry
	s.entryLine = x.line()
	return s.readEntry(), x.err == nil
}

// readEntry reads one Ntry, checking each value as it comes.
func (s *xmlSource) readEntry() Entry {
	x, h := s.x, s.h
	var e Entry
	x.open("Ntry")
	amount, ccy := x.leafAttr("Amt", "Ccy")
	if x.err == nil {
		var err error
		if ledger.Currency(ccy) != h.Currency {
			x.fail("Amt", errors.New("currency differs from the account's"))
		} else if e.Amount, err = bankformat.ParseAmount(amount); err != nil {
			x.fail("Amt", err)
		} else if err := checkAmount(e.Amount); err != nil {
			x.fail("Amt", err)
		}
	}
	e.Direction = x.direction("CdtDbtInd")
	x.open("Sts")
	x.fixed("Cd", entryStatusBooked)
	x.close("Sts")
	x.open("BookgDt")
	x.checked("Dt", func(v string) (err error) {
		if e.BookingDate, err = parseDate(v); err != nil {
			return err
		}
		return checkBookingDate(e.BookingDate, h)
	})
	x.close("BookgDt")
	x.open("ValDt")
	e.ValueDate = x.date("Dt")
	x.close("ValDt")
	e.EntryRef = x.id("AcctSvcrRef")
	x.open("NtryDtls")
	x.open("TxDtls")
	x.open("Refs")
	x.checked("EndToEndId", func(v string) error {
		if v == notProvided {
			return nil
		}
		if v == "" {
			return errors.New("is empty: an entry without a reference has NOTPROVIDED")
		}
		e.EndToEndRef = v
		return checkEndToEndRef(v)
	})
	x.close("Refs")
	x.close("TxDtls")
	x.close("NtryDtls")
	if x.next("AddtlNtryInf") {
		x.checked("AddtlNtryInf", func(v string) error {
			if v == "" {
				return errors.New("is empty: an entry without additional information leaves the element out")
			}
			e.AdditionalInfo = v
			return checkText(v, maxInfoRunes)
		})
	}
	x.close("Ntry")
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
	return &FieldError{Record: recordEntry, Line: s.entryLine, Entry: s.x.entry, Err: err}
}

func (s *xmlSource) err() error { return s.x.err }

func (s *xmlSource) totalsAt() places { return s.at }
