package statement

// Internals the external tests check the bounds against.
const (
	MaxXMLEntryBytes  = maxXMLEntryBytes
	MaxXMLHeadBytes   = maxXMLHeadBytes
	MaxCSVRecordBytes = maxCSVRecordBytes
)
