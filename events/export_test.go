package events

// Internals the external tests check the documentation and the bounds against.
var (
	DataFields     = dataFields
	EnvelopeFields = envelopeFields
	Unescape       = unescape
	ParseAmount    = parseAmount
)

const MaxEventBytes = maxEventBytes
