package bankfile

// Internals the external tests check the bounds against.
const (
	MaxXMLEntryBytes   = maxXMLEntryBytes
	MaxCSVRecordBytes  = maxCSVRecordBytes
	MaxAckXMLItemBytes = maxAckXMLItemBytes
)
