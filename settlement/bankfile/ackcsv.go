package bankfile

import (
	"bufio"
	"encoding/csv"
	"errors"
	"fmt"
	"io"

	"github.com/joinincard/engine/internal/bankformat"
)

// maxAckCSVBytes bounds an acknowledgement CSV ReadAckCSV reads.
const maxAckCSVBytes = (MaxItems + 3) * maxCSVRecordBytes

// ackColumns is an acknowledgement CSV's first row, naming the item status records' columns.
var (
	ackColumns        = []string{"record", "item_id", "status", "reason_code", "reason"}
	ackHeaderColumns  = []string{"record", "message_id", "created_at", "file_message_id", "bank_id", "status", "reason_code", "reason"}
	ackTrailerColumns = []string{"record", "items"}

	csvAckFields = map[string]string{
		"MessageID": "message_id", "CreatedAt": "created_at", "FileMessageID": "file_message_id",
		"BankID": "bank_id", "Status": "status", "ReasonCode": "reason_code", "Reason": "reason", "Items": "items",
	}
	csvItemStatusFields = map[string]string{"ItemID": "item_id", "ReasonCode": "reason_code", "Reason": "reason"}
)

// WriteAckCSV writes an acknowledgement as CSV (docs/settlement-files.md): the column header, a
// header record, one record per item status and a trailer with their count. Text fields are
// neutralised against formulas as in WriteCSV.
func WriteAckCSV(w io.Writer, a *Ack) error {
	if err := a.validate(); err != nil {
		return err
	}
	ew := bankformat.NewErrWriter(w)
	cw := csv.NewWriter(bufio.NewWriterSize(ew, writeBufferBytes))
	cw.Write(ackColumns)
	cw.Write([]string{csvHeader, NeutraliseCSV(a.MessageID), bankformat.FormatTime(a.CreatedAt), NeutraliseCSV(a.FileMessageID),
		NeutraliseCSV(a.BankID), string(a.Status), a.ReasonCode, NeutraliseCSV(a.Reason)})
	for _, s := range a.Items {
		st := StatusRejected
		if s.Accepted {
			st = StatusAccepted
		}
		cw.Write([]string{csvItem, NeutraliseCSV(s.ItemID), string(st), s.ReasonCode, NeutraliseCSV(s.Reason)})
		if ew.Err() != nil {
			return ew.Err()
		}
	}
	cw.Write([]string{csvTrailer, bankformat.FormatCount(int64(len(a.Items)))})
	cw.Flush()
	if err := cw.Error(); err != nil {
		return err
	}
	return ew.Err()
}

// ReadAckCSV reads an acknowledgement WriteAckCSV wrote, strictly, with the checks of
// ReadAckXML; the trailer's count must be the number of item status records.
func ReadAckCSV(r io.Reader) (*Ack, error) {
	c := newCSVIn(r, maxAckCSVBytes)
	c.Columns(ackColumns)
	a := &Ack{}
	c.Record = recordAck
	var groupLine int
	if rec := c.Read(csvHeader, len(ackHeaderColumns)); c.Err == nil {
		groupLine = c.Line
		a.MessageID = c.id(rec, 1, "message_id", maxIDBytes)
		a.CreatedAt = c.timestamp(rec, 2, "created_at")
		a.FileMessageID = c.id(rec, 3, "file_message_id", maxIDBytes)
		a.BankID = c.accountID(rec, 4, "bank_id", maxAccountIDBytes)
		c.Parse(rec, 5, "status", func(s string) (err error) { a.Status, err = parseStatus(s, false); return err })
		a.ReasonCode = rec[6]
		a.Reason = c.raw(rec, 7, "reason")
	}
	var lines []int
	for c.Err == nil {
		rec := c.Read("", 0)
		if c.Err != nil {
			break
		}
		if rec[0] == csvTrailer {
			c.Entry = 0
			c.Record = recordTrailer
			if len(rec) != len(ackTrailerColumns) {
				c.Fail(0, "", fmt.Errorf("the trailer has %d fields, want %d", len(rec), len(ackTrailerColumns)))
				break
			}
			if n := c.Count(rec, 1, "items"); c.Err == nil && n != int64(len(a.Items)) {
				c.Fail(1, "items", fmt.Errorf("%w: states %d item statuses, there are %d", ErrControlCount, n, len(a.Items)))
			}
			break
		}
		c.Entry++
		c.Record = recordItemStatus
		switch {
		case rec[0] != csvItem:
			c.Fail(0, "record", errors.New("want an item status (I) or the trailer (T)"))
		case len(rec) != len(ackColumns):
			c.Fail(0, "", fmt.Errorf("an item status record has %d fields, want %d", len(rec), len(ackColumns)))
		case c.Entry > MaxItems:
			c.Fail(0, "", errors.New("more item statuses than the bound"))
		}
		if c.Err != nil {
			break
		}
		s := ItemStatus{ItemID: c.id(rec, 1, "item_id", maxIDBytes)}
		c.Parse(rec, 2, "status", func(v string) error {
			st, err := parseStatus(v, true)
			s.Accepted = st == StatusAccepted
			return err
		})
		s.ReasonCode = rec[3]
		s.Reason = c.raw(rec, 4, "reason")
		lines = append(lines, c.Line)
		a.Items = append(a.Items, s)
	}
	c.End()
	if c.Err != nil {
		return nil, c.Err
	}
	if err := a.validate(); err != nil {
		return nil, relocate(err, groupLine, lines, csvAckFields, csvItemStatusFields)
	}
	return a, nil
}
