package bankfile_test

import (
	"bytes"
	"errors"
	"strconv"
	"strings"
	"testing"

	"github.com/joinincard/engine/settlement/bankfile"
)

// largestTexts are the texts that take the most bytes at the 140-character bound: in XML an
// escaped '&' (5 bytes), in CSV a 4-byte character or a doubled quote.
var largestTexts = []string{strings.Repeat("&", 140), strings.Repeat("𠀀", 140), "'" + strings.Repeat(`"`, 139)}

// TestXMLEntryFitsTheBound: one entry with every field at its bound stays under the bound per
// entry that ReadXML's size limit is built from; so does a CSV record.
func TestXMLEntryFitsTheBound(t *testing.T) {
	for _, text := range largestTexts {
		base := empty()
		one := withTotals(base.Header, []bankfile.Item{{
			ID: strings.Repeat("i", 35), Kind: bankfile.KindMedicalFundShare, Party: strings.Repeat("p", 34),
			PartyName: text, Amount: 1<<63 - 1, Direction: bankfile.Debit, Reference: text, Entries: 999_999_999_999_999,
		}})
		entry := len(writeXML(t, one)) - len(writeXML(t, base))
		if entry > bankfile.MaxXMLEntryBytes {
			t.Errorf("an entry at its bounds is %d bytes of XML, over the bound of %d", entry, bankfile.MaxXMLEntryBytes)
		}
		record := len(writeCSV(t, one)) - len(writeCSV(t, base))
		if record > bankfile.MaxCSVRecordBytes {
			t.Errorf("an item at its bounds is %d bytes of CSV, over the bound of %d", record, bankfile.MaxCSVRecordBytes)
		}
		if f, err := bankfile.ReadXML(bytes.NewReader(writeXML(t, one))); err != nil || !sameFile(f, one) {
			t.Errorf("an entry at its bounds reads back as %+v, %v", f, err)
		}
		if f, err := bankfile.ReadCSV(bytes.NewReader(writeCSV(t, one))); err != nil || !sameFile(f, one) {
			t.Errorf("an item at its bounds reads back as %+v, %v", f, err)
		}
	}
}

func TestAckItemFitsTheBound(t *testing.T) {
	for _, text := range largestTexts {
		a := ackPartial()
		a.Items = a.Items[:1]
		var base bytes.Buffer
		if err := bankfile.WriteAckXML(&base, &bankfile.Ack{MessageID: a.MessageID, CreatedAt: a.CreatedAt,
			FileMessageID: a.FileMessageID, BankID: a.BankID, Status: bankfile.StatusAccepted}); err != nil {
			t.Fatal(err)
		}
		a.Items = []bankfile.ItemStatus{{ItemID: strings.Repeat("i", 35), ReasonCode: "AM04", Reason: string([]rune(text)[:105])}}
		var one bytes.Buffer
		if err := bankfile.WriteAckXML(&one, a); err != nil {
			t.Fatal(err)
		}
		if n := one.Len() - base.Len(); n > bankfile.MaxAckXMLItemBytes {
			t.Errorf("an item status at its bounds is %d bytes of XML, over the bound of %d", n, bankfile.MaxAckXMLItemBytes)
		}
	}
}

// TestReadersRefuseTooManyItems: the readers stop at MaxItems items.
func TestReadersRefuseTooManyItems(t *testing.T) {
	var b bytes.Buffer
	b.WriteString("record,item_id,kind,party,party_name,amount,direction,reference,entries\n")
	b.WriteString("H,JIC-X-1,2026-10-09T23:05:00+08:00,X,X Bank,2026-10-09,2026-10-10,1,CNY,\n")
	for i := range bankfile.MaxItems + 1 {
		b.WriteString("I,i")
		b.WriteString(strconv.Itoa(i))
		b.WriteString(",adjustment,p,,1.00,CRDT,,1\n")
	}
	_, err := bankfile.ReadCSV(&b)
	if !errors.Is(err, bankfile.ErrControlCount) || !strings.Contains(err.Error(), "item 500001: control count disagrees: more than 500000 items") {
		t.Errorf("ReadCSV of MaxItems+1 items: %v", err)
	}
}
