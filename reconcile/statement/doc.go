// Package statement writes and reads the account statements banks send back: what each bank
// actually booked on its settlement account over a period, entry by entry, with its opening and
// closing balances. Finance staff reconcile them against the settlement files the engine sent
// (settlement/bankfile); docs/bank-statements.md describes both formats element by element.
//
// A statement exists in two formats with the same content: ISO 20022 camt.053 XML
// (BankToCustomerStatement; WriteXML, NewXMLReader) and CSV (WriteCSV, NewCSVReader). The writers
// stream the entries from an iter.Seq, holding one at a time, and check at the end that they add
// up to the totals the caller stated in the Header; the same input always gives the same bytes.
//
// The readers stream too, because a statement may hold millions of entries: a Reader reads and
// checks the header first (for the XML with its control totals, which camt.053 places before the
// entries; for the CSV the totals are in a trailer), then yields one entry per call of Next, and
// when the entries end recomputes their count, sum and net, compares them with the stated totals
// and the closing balance with the opening balance plus the net, and answers io.EOF only when
// everything agrees. Memory stays bounded whatever the number of entries: each entry and each
// record has a size bound, and nothing is kept but the running totals. ReadAll collects a small
// statement whole.
//
// The readers are strict: they accept what the writers write and nothing else. Refusals are
// *FieldError values naming the record, the line, the entry and the field (the XML element path
// or CSV column), wrapping sentinel errors (ErrControlCount, ErrControlSum, ErrNetTotal,
// ErrClosingBalance, ErrCardNumber, ErrTooLarge, ...) that errors.Is finds. No error repeats a
// field's value: a text may be personal, and one that may hold a card number in clear is refused.
//
// A statement may legitimately list one payment twice (the bank's mistake) or list entries that
// match nothing the engine sent: the package reads them as they are, and leaves telling them apart
// to reconciliation. ClassifyRef says what an entry's end-to-end reference names.
//
// The package is pure: no clock (times are given), no database, no I/O but the readers and
// writers it is handed.
package statement
