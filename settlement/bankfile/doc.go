// Package bankfile writes and reads the settlement files the engine sends each bank per cycle,
// the manifests that list them with their checksums, and the acknowledgements banks send back.
// docs/settlement-files.md describes every format element by element.
//
// A settlement file exists in two formats with the same content: ISO 20022 camt.054 XML
// (WriteXML, ReadXML) and CSV (WriteCSV, ReadCSV). The writers stream the items from an
// iter.Seq, holding one at a time, and check that they add up to the totals the caller stated
// in the Header; the same input always gives the same bytes, so a regenerated cycle can be
// compared byte for byte with what was sent. The readers are strict: they accept what the
// writers write and nothing else, and recompute the count, control sum and net of the items.
//
// Acknowledgements (Ack) come as pain.002 XML (ReadAckXML) or CSV (ReadAckCSV); the writers are
// the banks' side, used in tests and the demo. A Manifest lists files with their sizes and
// SHA-256 (Verify), and CheckSequence checks a bank's file sequence has no gap.
//
// Refusals are *FieldError values naming the record, the line, the item and the field, wrapping
// sentinel errors (ErrControlCount, ErrControlSum, ErrNetTotal, ErrSequence, ErrChecksum, ...)
// that errors.Is finds. No error repeats a field's value: text fields may be personal, and a
// field that may hold a card number in clear is refused (ErrCardNumber), never written.
//
// The package is pure: no clock (times are given), no database, no I/O but the readers and
// writers it is handed.
package bankfile
