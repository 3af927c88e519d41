package events_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/joinincard/engine/events"
)

// The messages the tables below start from: one valid event of each type, canonical. Tokens are
// made with the example key of docs/events.md (TestDocTokenVectors checks them).
const (
	tokCard     = "tok_LPpxqdCrn2I94xqoc5EsBHGNAfKOto-zvzJW_9f6Olo" // 6228481234561234
	tokDigital  = "tok_uDxM89IatusCrQqLv4X2T3YEnpcknmAXvCKA_NdcV1Y" // 6258880000004321
	tokPassport = "tok_wPDKdT00Mz1CXqwe60fYFDM8f6NYMiVZmvOc3y0OQxk" // E12345678
	tokSocial   = "tok_FIadot-Q0wk2RuDhZSpl3X4Egmnk-k_LxQn0zZJc0RU" // 933010020250001234
	tokPermit   = "tok_yYnRBz0JBztLP2iZQyXtYlvBhoGq6cj1w9AGH4oDTzA" // WP2025123456789
	tokAccount  = "tok_hekI5gIoqxXg68vupF5hzu79p-Kjj8htiUF2Du2hJbA" // 6222021234567890123
)

const envelope = `{"schema":"joinin.card-event.v1","event_id":"0195a3c2-5e00-7a41-8b3e-2f7d9c1e4a01",` +
	`"occurred_at":"2025-03-01T00:30:00Z","card_token":"` + tokCard + `",`

var base = map[events.Type]string{
	events.TypeFundsLoaded: envelope + `"type":"funds.loaded","data":{"amount":"500.00","currency":"CNY",` +
		`"bank_reference":"ICBC20250301000123"}}`,
	events.TypePurchaseCleared: envelope + `"type":"purchase.cleared","data":{"merchant_id":"M330100000123",` +
		`"amount":"12.34","currency":"CNY","mcc":"5912","authorization_id":"0195a3c2-5e00-7a41-8b3e-2f7d9c1e4a02"}}`,
	events.TypePurchaseRefunded: envelope + `"type":"purchase.refunded","data":{"merchant_id":"M330100000123",` +
		`"original_event_id":"0195a3c2-5e00-7a41-8b3e-2f7d9c1e4a03","amount":"2.34","currency":"CNY"}}`,
	events.TypeTransitTap: envelope + `"type":"transit.tap","data":{"operator_id":"HZMETRO","device_id":"GATE-0107-03",` +
		`"device_seq":184467,"tapped_at":"2025-02-27T07:58:12.25+08:00","station_id":"0107","line":"1",` +
		`"direction":"in","mode":"metro"}}`,
	events.TypeCardRegistered: envelope + `"type":"card.registered","data":{"physical_token":"` + tokCard + `",` +
		`"digital_token":"` + tokDigital + `","holder_name":"Stephen Fox","nationality":"USA",` +
		`"passport_token":"` + tokPassport + `","passport_masked":"*****5678",` +
		`"social_security_token":"` + tokSocial + `","social_security_masked":"**************1234",` +
		`"work_permit_token":"` + tokPermit + `","work_permit_masked":"***********6789",` +
		`"permit_valid_until":"2027-06-30","insurance_city":"Jiaxing","issuer_bank":"ICBC",` +
		`"bank_account_token":"` + tokAccount + `","bank_account_masked":"***************0123",` +
		`"card_number_masked":"622848******1234"}}`,
	events.TypeCardStatusChanged: envelope + `"type":"card.status_changed","data":{"status":"blocked",` +
		`"reason":"reported lost by the cardholder"}}`,
	events.TypeCardPermitRenewed: envelope + `"type":"card.permit_renewed","data":{"permit_valid_until":"2028-06-30"}}`,
	events.TypeMedicalContribution: envelope + `"type":"medical.contribution","data":{"employer_id":"EMP-JX-000451",` +
		`"amount":"350.00","currency":"CNY","period":"2025-02"}}`,
}

// edit is a change to a base message: old must occur in it exactly once.
type edit struct {
	typ      events.Type
	old, new string
}

func (e edit) apply(t *testing.T) []byte {
	t.Helper()
	msg := base[e.typ]
	if n := strings.Count(msg, e.old); n != 1 {
		t.Fatalf("%q occurs %d times in the %s base message, want once", e.old, n, e.typ)
	}
	return []byte(strings.Replace(msg, e.old, e.new, 1))
}

const (
	funds    = events.TypeFundsLoaded
	purchase = events.TypePurchaseCleared
	refund   = events.TypePurchaseRefunded
	tap      = events.TypeTransitTap
	register = events.TypeCardRegistered
	status   = events.TypeCardStatusChanged
	renew    = events.TypeCardPermitRenewed
	medical  = events.TypeMedicalContribution
)

// TestDecodeRefuses pins each reason a message is refused, and its exact message.
func TestDecodeRefuses(t *testing.T) {
	for _, tc := range []struct {
		edit
		want string
	}{
		// The message as a whole.
		{edit{funds, `{"schema"`, ` [] {"schema"`}, `trailing data after the event object at byte 4`},
		{edit{funds, `}}`, `}}{}`}, `trailing data after the event object at byte 287`},
		{edit{funds, `}}`, `}}x`}, `trailing data after the event object at byte 287`},
		{edit{funds, `{"schema"`, "\ufeff{\"schema\""}, `invalid JSON at byte 0: unexpected byte 0xef, want a value`},
		{edit{funds, `,"data"`, ` "data"`}, `invalid JSON at byte 205: unexpected '"', want ',' or '}' after a field`},
		{edit{funds, `}}`, `}`}, `invalid JSON at byte 286: unexpected end of message, want ',' or '}' after a field`},
		{edit{funds, `"schema":`, `"schema"`}, `invalid JSON at byte 9: unexpected '"', want ':' after a field name`},
		{edit{funds, `{"schema"`, `{schema`}, `invalid JSON at byte 1: unexpected 's', want a field name in double quotes`},
		{edit{funds, `"500.00"`, `"500.00`}, `invalid JSON at byte 231: unexpected 'c', want ',' or '}' after a field`},
		{edit{funds, `"500.00"`, "\"500.00\x01\""}, `invalid JSON at byte 229: control character 0x01 in a string (escape it)`},
		{edit{funds, `"500.00"`, "\"500.00\xff\""}, `invalid JSON at byte 229: invalid UTF-8 in a string`},
		{edit{funds, `"500.00"`, "\"500.00\xed\xa0\x80\""}, `invalid JSON at byte 229: invalid UTF-8 in a string`},
		{edit{funds, `"500.00"`, `"500.00\ud800"`}, `invalid JSON at byte 229: \u escape of a lone surrogate`},
		{edit{funds, `"500.00"`, `"500.00\udc00"`}, `invalid JSON at byte 229: \u escape of a lone surrogate`},
		{edit{funds, `"500.00"`, `"500.00\u12"`}, `invalid JSON at byte 229: invalid \u escape, want 4 hex digits`},
		{edit{funds, `"500.00"`, `"500.00\x"`}, `invalid JSON at byte 230: invalid escape, want one of \" \\ \/ \b \f \n \r \t \u`},
		{edit{funds, `"500.00"`, `tru`}, `invalid JSON at byte 222: invalid literal, want true`},
		{edit{funds, `"500.00"`, `01`}, `invalid JSON at byte 223: unexpected '1', want ',' or '}' after a field`},
		{edit{funds, `"500.00"`, `1.`}, `invalid JSON at byte 224: unexpected ',', want a digit after '.'`},
		{edit{funds, `"500.00"`, `[1,]`}, `invalid JSON at byte 225: unexpected ']', want a value`},
		{edit{funds, `"500.00"`, strings.Repeat("[", 20)}, `invalid JSON at byte 236: nested deeper than 16 levels`},
		{edit{funds, `{"schema"`, `{"card_token":"x","schema"`}, `card_token: duplicate field`},
		{edit{funds, `{"amount"`, `{"currency":"CNY","amount"`}, `data.currency: duplicate field`},

		// The envelope: the schema first, then unknown fields, then the fields in order.
		{edit{funds, `"schema":"joinin.card-event.v1",`, ``}, `schema: missing required field`},
		{edit{funds, `"joinin.card-event.v1"`, `"joinin.card-event.v2"`}, `schema: unsupported schema "joinin.card-event.v2", want "joinin.card-event.v1"`},
		{edit{funds, `"joinin.card-event.v1",`, `"joinin.card-event.v2","new_field":1,`}, `schema: unsupported schema "joinin.card-event.v2", want "joinin.card-event.v1"`},
		{edit{funds, `"joinin.card-event.v1"`, `1`}, `schema: must be a string, not a number`},
		{edit{funds, `"schema":"joinin.card-event.v1",`, `"schema":"joinin.card-event.v1","Type":"x",`}, `"Type": unknown field`},
		{edit{funds, `"schema":"joinin.card-event.v1",`, `"schema":"joinin.card-event.v1","trace":{"a":[1,{"b":null}]},`}, `trace: unknown field`},
		{edit{funds, `"event_id":"0195a3c2-5e00-7a41-8b3e-2f7d9c1e4a01",`, ``}, `event_id: missing required field`},
		{edit{funds, `"0195a3c2-5e00-7a41-8b3e-2f7d9c1e4a01"`, `""`}, `event_id: must not be empty`},
		{edit{funds, `"0195a3c2-5e00-7a41-8b3e-2f7d9c1e4a01"`, `null`}, `event_id: must be a string, not null`},
		{edit{funds, `"0195a3c2-5e00-7a41-8b3e-2f7d9c1e4a01"`, `"42"`}, `event_id: "42" is not a UUID, want 8-4-4-4-12 hex digits`},
		{edit{funds, `"0195a3c2-5e00-7a41-8b3e-2f7d9c1e4a01"`, `"{0195a3c2-5e00-7a41-8b3e-2f7d9c1e4a01}"`}, `event_id: "{0195a3c2-5e00-7a41-8b3e-2f7d9c1e4a01}" is not a UUID, want 8-4-4-4-12 hex digits`},
		{edit{funds, `"0195a3c2-5e00-7a41-8b3e-2f7d9c1e4a01"`, `"0195a3c25e007a418b3e2f7d9c1e4a01"`}, `event_id: "0195a3c25e007a418b3e2f7d9c1e4a01" is not a UUID, want 8-4-4-4-12 hex digits`},
		{edit{funds, `"0195a3c2-5e00-7a41-8b3e-2f7d9c1e4a01"`, `"0195a3c2-5e00-7a41-8b3e-2f7d9c1e4a0g"`}, `event_id: "0195a3c2-5e00-7a41-8b3e-2f7d9c1e4a0g" is not a UUID, want 8-4-4-4-12 hex digits`},
		{edit{funds, `"0195a3c2-5e00-7a41-8b3e-2f7d9c1e4a01"`, `"00000000-0000-0000-0000-000000000000"`}, `event_id: is the nil UUID`},
		{edit{funds, `"type":"funds.loaded",`, ``}, `type: missing required field`},
		{edit{funds, `"funds.loaded"`, `"funds.unloaded"`}, `type: unknown event type "funds.unloaded"`},
		{edit{funds, `"funds.loaded"`, `"Funds.Loaded"`}, `type: unknown event type "Funds.Loaded"`},
		{edit{funds, `"occurred_at":"2025-03-01T00:30:00Z",`, ``}, `occurred_at: missing required field`},
		{edit{funds, `"2025-03-01T00:30:00Z"`, `"2025-03-01T00:30:00"`}, `occurred_at: "2025-03-01T00:30:00" has no zone offset, want RFC 3339 such as "2025-03-01T08:30:00+08:00"`},
		{edit{funds, `"2025-03-01T00:30:00Z"`, `"2025-03-01T00:30:00-00:00"`}, `occurred_at: "2025-03-01T00:30:00-00:00": offset -00:00 means the local offset is unknown, write the offset or Z`},
		{edit{funds, `"2025-03-01T00:30:00Z"`, `"2025-03-01t00:30:00Z"`}, `occurred_at: "2025-03-01t00:30:00Z" is not a time, want RFC 3339 such as "2025-03-01T08:30:00+08:00"`},
		{edit{funds, `"2025-03-01T00:30:00Z"`, `"2025-03-01T00:30:00z"`}, `occurred_at: "2025-03-01T00:30:00z" has an invalid zone offset, want RFC 3339 such as "2025-03-01T08:30:00+08:00"`},
		{edit{funds, `"2025-03-01T00:30:00Z"`, `"2025-03-01 00:30:00Z"`}, `occurred_at: "2025-03-01 00:30:00Z" is not a time, want RFC 3339 such as "2025-03-01T08:30:00+08:00"`},
		{edit{funds, `"2025-03-01T00:30:00Z"`, `"2025-03-01T00:30:00+0800"`}, `occurred_at: "2025-03-01T00:30:00+0800" has an invalid zone offset, want RFC 3339 such as "2025-03-01T08:30:00+08:00"`},
		{edit{funds, `"2025-03-01T00:30:00Z"`, `"2025-03-01T00:30:00+24:00"`}, `occurred_at: "2025-03-01T00:30:00+24:00" has an invalid zone offset`},
		{edit{funds, `"2025-03-01T00:30:00Z"`, `"2025-03-01T00:30:00.1234567891Z"`}, `occurred_at: the value (withheld: it may be a personal number): fraction of a second must be 1 to 9 digits`},
		{edit{funds, `"2025-03-01T00:30:00Z"`, `"2025-03-01T00:30:00.Z"`}, `occurred_at: "2025-03-01T00:30:00.Z": fraction of a second must be 1 to 9 digits`},
		{edit{funds, `"2025-03-01T00:30:00Z"`, `"2025-02-29T00:30:00Z"`}, `occurred_at: "2025-02-29T00:30:00Z" is not a valid time, want RFC 3339 such as "2025-03-01T08:30:00+08:00"`},
		{edit{funds, `"2025-03-01T00:30:00Z"`, `"2025-03-01T24:00:00Z"`}, `occurred_at: "2025-03-01T24:00:00Z" is not a valid time, want RFC 3339 such as "2025-03-01T08:30:00+08:00"`},
		{edit{funds, `"2025-03-01T00:30:00Z"`, `"2025-03-01T23:59:60Z"`}, `occurred_at: "2025-03-01T23:59:60Z" is not a valid time, want RFC 3339 such as "2025-03-01T08:30:00+08:00"`},
		{edit{funds, `"2025-03-01T00:30:00Z"`, `"1970-01-01T00:00:00Z"`}, `occurred_at: "1970-01-01T00:00:00Z" is before 2024-01-01T00:00:00Z, when no card existed: a clock reset to its epoch`},
		{edit{funds, `"2025-03-01T00:30:00Z"`, `"9999-12-31T23:00:00-05:00"`}, `occurred_at: "9999-12-31T23:00:00-05:00" is after the year 9999 in UTC`},
		{edit{funds, `"2025-03-01T00:30:00Z"`, `1740789000`}, `occurred_at: must be a string, not a number`},
		{edit{funds, `"card_token":"` + tokCard + `",`, ``}, `card_token: missing required field`},
		{edit{funds, `"` + tokCard + `"`, `""`}, `card_token: must not be empty`},
		{edit{funds, `"` + tokCard + `"`, `"card 1"`}, `card_token: must be printable ASCII without spaces`},
		{edit{funds, `"` + tokCard + `"`, `"` + strings.Repeat("x", 65) + `"`}, `card_token: is 65 bytes, more than 64`},
		{edit{funds, `"` + tokCard + `"`, `"6228481234561236"`}, `card_token: looks like a card number in clear, send the card's token`},
		{edit{funds, `,"data":{"amount":"500.00","currency":"CNY","bank_reference":"ICBC20250301000123"}`, ``}, `data: missing required field`},
		{edit{funds, `{"amount":"500.00","currency":"CNY","bank_reference":"ICBC20250301000123"}`, `null`}, `data: must be an object, not null`},
		{edit{funds, `{"amount":"500.00","currency":"CNY","bank_reference":"ICBC20250301000123"}`, `[]`}, `data: must be an object, not an array`},

		// Data: unknown fields first, then the fields in order.
		{edit{funds, `"amount":"500.00"`, `"amout":"500.00"`}, `data.amout: unknown field`},
		{edit{funds, `"amount":"500.00"`, `"amount":"500.00","note":"x"`}, `data.note: unknown field`},
		{edit{funds, `"amount":"500.00"`, `"Amount":"500.00"`}, `data."Amount": unknown field`},
		{edit{funds, `"amount":"500.00",`, ``}, `data.amount: missing required field`},
		{edit{funds, `"currency":"CNY",`, ``}, `data.currency: missing required field`},
		{edit{funds, `"500.00"`, `500.00`}, `data.amount: must be a JSON string such as "12.34", not a number: floats are never money`},
		{edit{funds, `"500.00"`, `500`}, `data.amount: must be a JSON string such as "12.34", not a number: floats are never money`},
		{edit{funds, `"500.00"`, `null`}, `data.amount: must be a string, not null`},
		{edit{funds, `"500.00"`, `""`}, `data.amount: must not be empty`},
		{edit{funds, `"500.00"`, `"500.001"`}, `data.amount: 3 decimal places, CNY has 2`},
		{edit{funds, `"500.00"`, `"500.000"`}, `data.amount: 3 decimal places, CNY has 2`},
		{edit{funds, `"500.00"`, `"-500.00"`}, `data.amount: "-500.00" is negative, amounts must be positive`},
		{edit{funds, `"500.00"`, `"+500.00"`}, `data.amount: "+500.00" has a sign, write the digits alone`},
		{edit{funds, `"500.00"`, `"0.00"`}, `data.amount: "0.00" is zero, amounts must be positive`},
		{edit{funds, `"500.00"`, `"0"`}, `data.amount: "0" is zero, amounts must be positive`},
		{edit{funds, `"500.00"`, `"5e2"`}, `data.amount: "5e2" uses an exponent, write plain decimal digits`},
		{edit{funds, `"500.00"`, `"5.00E+2"`}, `data.amount: "5.00E+2" uses an exponent, write plain decimal digits`},
		{edit{funds, `"500.00"`, `"0500.00"`}, `data.amount: "0500.00" has a leading zero`},
		{edit{funds, `"500.00"`, `".50"`}, `data.amount: ".50" is not a decimal amount, want digits with an optional fraction such as "12.34"`},
		{edit{funds, `"500.00"`, `"500."`}, `data.amount: "500." is not a decimal amount, want digits with an optional fraction such as "12.34"`},
		{edit{funds, `"500.00"`, `"500,00"`}, `data.amount: "500,00" is not a decimal amount, want digits with an optional fraction such as "12.34"`},
		{edit{funds, `"500.00"`, `" 500.00"`}, `data.amount: " 500.00" is not a decimal amount, want digits with an optional fraction such as "12.34"`},
		{edit{funds, `"500.00"`, `"1,000.00"`}, `data.amount: "1,000.00" is not a decimal amount, want digits with an optional fraction such as "12.34"`},
		{edit{funds, `"500.00"`, `"NaN"`}, `data.amount: "NaN" is not a decimal amount, want digits with an optional fraction such as "12.34"`},
		{edit{funds, `"500.00"`, `"1000000000000.01"`}, `data.amount: the value (withheld: it may be a personal number) is over the largest amount the engine takes, 1000000000000.00 CNY`},
		{edit{funds, `"500.00"`, `"92233720368547758.07"`}, `data.amount: the value (withheld: it may be a personal number) is over the largest amount the engine takes, 1000000000000.00 CNY`},
		{edit{funds, `"500.00","currency":"CNY"`, `"100000000000001","currency":"JPY"`}, `data.amount: the value (withheld: it may be a personal number) is over the largest amount the engine takes, 100000000000000 JPY`},
		{edit{funds, `"500.00"`, `"92233720368547758.08"`}, `data.amount: the value (withheld: it may be a personal number) overflows int64 minor units of CNY`},
		{edit{funds, `"500.00"`, `"100000000000000000000"`}, `data.amount: the value (withheld: it may be a personal number) overflows int64 minor units of CNY`},
		{edit{funds, `"500.00"`, `"` + strings.Repeat("9", 50) + `"`}, `data.amount: the value (withheld: it may be a personal number) overflows int64 minor units of CNY`},
		{edit{funds, `"500.00","currency":"CNY"`, `"5.5","currency":"JPY"`}, `data.amount: 1 decimal place, JPY has 0`},
		{edit{funds, `"500.00","currency":"CNY"`, `"9223372036854775808","currency":"JPY"`}, `data.amount: the value (withheld: it may be a personal number) overflows int64 minor units of JPY`},
		{edit{funds, `"CNY"`, `"XYZ"`}, `data.currency: unknown currency "XYZ"`},
		{edit{funds, `"CNY"`, `"cny"`}, `data.currency: unknown currency "cny"`},
		{edit{funds, `"CNY"`, `156`}, `data.currency: must be a string, not a number`},
		{edit{funds, `"ICBC20250301000123"`, `""`}, `data.bank_reference: must not be empty`},
		{edit{funds, `"ICBC20250301000123"`, `"ICBC 2025"`}, `data.bank_reference: must be printable ASCII without spaces`},
		{edit{funds, `"ICBC20250301000123"`, `"` + strings.Repeat("R", 65) + `"`}, `data.bank_reference: is 65 bytes, more than 64`},

		{edit{purchase, `"merchant_id":"M330100000123",`, ``}, `data.merchant_id: missing required field`},
		{edit{purchase, `"M330100000123"`, `"商户"`}, `data.merchant_id: must be printable ASCII without spaces`},
		{edit{purchase, `"5912"`, `5912`}, `data.mcc: must be a string, not a number`},
		{edit{purchase, `"5912"`, `"591"`}, `data.mcc: "591" is not a merchant category code, want 4 digits`},
		{edit{purchase, `"5912"`, `"59a2"`}, `data.mcc: "59a2" is not a merchant category code, want 4 digits`},
		{edit{purchase, `"0195a3c2-5e00-7a41-8b3e-2f7d9c1e4a02"`, `""`}, `data.authorization_id: must not be empty (leave an optional field out instead)`},
		{edit{purchase, `"0195a3c2-5e00-7a41-8b3e-2f7d9c1e4a02"`, `null`}, `data.authorization_id: must be a string, not null (leave an optional field out instead)`},
		{edit{purchase, `"0195a3c2-5e00-7a41-8b3e-2f7d9c1e4a02"`, `"AUTH-1"`}, `data.authorization_id: "AUTH-1" is not a UUID, want 8-4-4-4-12 hex digits`},

		{edit{refund, `"original_event_id":"0195a3c2-5e00-7a41-8b3e-2f7d9c1e4a03",`, ``}, `data.original_event_id: missing required field`},
		{edit{refund, `"0195a3c2-5e00-7a41-8b3e-2f7d9c1e4a03"`, `"00000000-0000-0000-0000-000000000000"`}, `data.original_event_id: is the nil UUID`},
		{edit{refund, `"2.34"`, `"-2.34"`}, `data.amount: "-2.34" is negative, amounts must be positive`},

		{edit{tap, `"operator_id":"HZMETRO",`, ``}, `data.operator_id: missing required field`},
		{edit{tap, `"GATE-0107-03"`, `"GATE 0107"`}, `data.device_id: must be printable ASCII without spaces`},
		{edit{tap, `184467`, `"184467"`}, `data.device_seq: must be a number, not a string`},
		{edit{tap, `184467`, `-1`}, `data.device_seq: "-1" is not an unsigned integer`},
		{edit{tap, `184467`, `1.5`}, `data.device_seq: "1.5" is not an unsigned integer`},
		{edit{tap, `184467`, `1e3`}, `data.device_seq: "1e3" is not an unsigned integer`},
		{edit{tap, `184467`, `18446744073709551616`}, `data.device_seq: the value (withheld: it may be a personal number) overflows uint64`},
		{edit{tap, `"tapped_at":"2025-02-27T07:58:12.25+08:00",`, ``}, `data.tapped_at: missing required field`},
		{edit{tap, `"2025-02-27T07:58:12.25+08:00"`, `"2025-02-27T07:58:12.25"`}, `data.tapped_at: "2025-02-27T07:58:12.25" has no zone offset, want RFC 3339 such as "2025-03-01T08:30:00+08:00"`},
		{edit{tap, `"2025-02-27T07:58:12.25+08:00"`, `"2025-03-01T02:30:00.5Z"`}, `data.tapped_at: is 2h0m0.5s after occurred_at, more than the 1h0m0s a device clock may run ahead`},
		{edit{tap, `"2025-02-27T07:58:12.25+08:00"`, `"2025-01-30T00:29:59Z"`}, `data.tapped_at: is 720h0m1s before occurred_at, more than the 720h0m0s an offline upload may be late`},
		{edit{tap, `"0107"`, `""`}, `data.station_id: must not be empty`},
		{edit{tap, `"line":"1"`, `"line":""`}, `data.line: must not be empty (leave an optional field out instead)`},
		{edit{tap, `"line":"1"`, `"line":1`}, `data.line: must be a string, not a number (leave an optional field out instead)`},
		{edit{tap, `"in"`, `"up"`}, `data.direction: "up" is not one of ["in" "out" "single"]`},
		{edit{tap, `"in"`, `"IN"`}, `data.direction: "IN" is not one of ["in" "out" "single"]`},
		{edit{tap, `"metro"`, `"tram"`}, `data.mode: "tram" is not one of ["metro" "bus"]`},
		{edit{tap, `,"mode":"metro"`, ``}, `data.mode: missing required field`},

		{edit{register, `"physical_token":"` + tokCard + `"`, `"physical_token":"6228481234561234"`}, `data.physical_token: not a token, want tok_ followed by 43 base64url characters`},
		{edit{register, `"digital_token":"` + tokDigital + `"`, `"digital_token":""`}, `data.digital_token: must not be empty (leave an optional field out instead)`},
		{edit{register, `"Stephen Fox"`, `"Stephen\nFox"`}, `data.holder_name: must not contain control characters`},
		{edit{register, `"Stephen Fox"`, `"Stephen\u0085Fox"`}, `data.holder_name: must not contain control characters`},
		{edit{register, `"Stephen Fox"`, `" Stephen Fox"`}, `data.holder_name: must not start or end with a space`},
		{edit{register, `"Stephen Fox"`, `"Stephen Fox\u3000"`}, `data.holder_name: must not start or end with a space`},
		{edit{register, `"Stephen Fox"`, `"` + strings.Repeat("福", 86) + `"`}, `data.holder_name: is 258 bytes, more than 256`},
		{edit{register, `"Stephen Fox"`, `"Stephen Fox 6228 4804 0256 4899"`}, `data.holder_name: looks like a card number in clear: write the card's masked form`},
		{edit{status, `"reported lost by the cardholder"`, `"card 6228480402564899 lost"`}, `data.reason: looks like a card number in clear: write the card's masked form`},
		{edit{register, `"USA"`, `"US"`}, `data.nationality: "US" is not an ISO 3166-1 alpha-3 country code`},
		{edit{register, `"USA"`, `"usa"`}, `data.nationality: "usa" is not an ISO 3166-1 alpha-3 country code`},
		{edit{register, `"USA"`, `"XXA"`}, `data.nationality: "XXA" is not an ISO 3166-1 alpha-3 country code`},
		{edit{register, `"passport_token":"` + tokPassport + `"`, `"passport_token":"E12345678"`}, `data.passport_token: not a token, want tok_ followed by 43 base64url characters`},
		{edit{register, `"passport_token":"` + tokPassport + `"`, `"passport_token":"` + tokPassport + `="`}, `data.passport_token: not a token, want tok_ followed by 43 base64url characters`},
		{edit{register, `"passport_token":"` + tokPassport + `"`, `"passport_token":"TOK_wPDKdT00Mz1CXqwe60fYFDM8f6NYMiVZmvOc3y0OQxk"`}, `data.passport_token: not a token, want tok_ followed by 43 base64url characters`},
		{edit{register, `"passport_token":"` + tokPassport + `"`, `"passport_token":"tok_wPDKdT00Mz1CXqwe60fYFDM8f6NYMiVZmvOc3y0OQxl"`}, `data.passport_token: not a token, want tok_ followed by 43 base64url characters of an HMAC-SHA256`},
		{edit{register, `"passport_token":"` + tokPassport + `"`, `"passport_token":"tok_wPDKdT00Mz1CXqwe60fYFDM8f6NYMiVZmvOc3y0O+xk"`}, `data.passport_token: not a token, want tok_ followed by 43 base64url characters`},
		{edit{register, `"passport_token":"` + tokPassport + `"`, `"passport_token":"tok_wPDKdT00Mz1CXqwe60fYFDM8f6NYMiVZmvOc3y0O\nxk"`}, `data.passport_token: not a token, want tok_ followed by 43 base64url characters`},
		{edit{register, `"*****5678"`, `"E12345678"`}, `data.passport_masked: reveals more than the last 4 characters`},
		{edit{register, `"*****5678"`, `"****45678"`}, `data.passport_masked: reveals more than the last 4 characters`},
		{edit{register, `"*****5678"`, `"#####5678"`}, `data.passport_masked: not a masked number, want '*'s then the last 4 letters or digits`},
		{edit{register, `"*****5678"`, `"*5678"`}, `data.passport_masked: a masked number is 6 to 34 characters`},
		{edit{register, `"*****5678"`, `"*****567*"`}, `data.passport_masked: not a masked number, want '*'s then the last 4 upper-case letters or digits`},
		{edit{register, `"**************1234"`, `"933010020250001234"`}, `data.social_security_masked: reveals more than the last 4 characters`},
		{edit{register, `"social_security_token":"` + tokSocial + `",`, ``}, `data.social_security_token: missing required field`},
		{edit{register, `"***********6789"`, `"WP*********6789"`}, `data.work_permit_masked: reveals more than the last 4 characters`},
		{edit{register, `"work_permit_token":"` + tokPermit + `"`, `"work_permit_token":"WP2025123456789"`}, `data.work_permit_token: not a token, want tok_ followed by 43 base64url characters`},
		{edit{register, `"2027-06-30"`, `"2027-02-30"`}, `data.permit_valid_until: "2027-02-30" is not a valid date`},
		{edit{register, `"2027-06-30"`, `"2027-6-30"`}, `data.permit_valid_until: "2027-6-30" is not a date, want YYYY-MM-DD such as "2027-06-30"`},
		{edit{register, `"2027-06-30"`, `"2027-06-30T00:00:00Z"`}, `data.permit_valid_until: "2027-06-30T00:00:00Z" is not a date, want YYYY-MM-DD such as "2027-06-30"`},
		{edit{register, `"2027-06-30"`, `"0000-06-30"`}, `data.permit_valid_until: "0000-06-30" is not a valid date`},
		{edit{register, `"Jiaxing"`, `""`}, `data.insurance_city: must not be empty`},
		{edit{register, `"ICBC"`, `"I C B C"`}, `data.issuer_bank: must be printable ASCII without spaces`},
		{edit{register, `"bank_account_token":"` + tokAccount + `"`, `"bank_account_token":"6222021234567890123"`}, `data.bank_account_token: not a token, want tok_ followed by 43 base64url characters`},
		{edit{register, `"***************0123"`, `"6222021234567890123"`}, `data.bank_account_masked: reveals more than the last 4 characters`},
		{edit{register, `"622848******1234"`, `"6228481234561234"`}, `data.card_number_masked: reveals more than the first 6 and last 4 digits`},
		{edit{register, `"622848******1234"`, `"622848*****51234"`}, `data.card_number_masked: reveals more than the first 6 and last 4 digits`},
		{edit{register, `"622848******1234"`, `"******123456****"`}, `data.card_number_masked: reveals more than the first 6 and last 4 digits`},
		{edit{register, `"622848******1234"`, `"62284*******1234"`}, `data.card_number_masked: not a masked card number, want 6 digits, '*'s, then 4 digits`},
		{edit{register, `"622848******1234"`, `"622848**1234"`}, `data.card_number_masked: a masked card number is 13 to 19 characters`},
		{edit{register, `"622848******1234"`, `"622848-****-1234"`}, `data.card_number_masked: not a masked card number, want 6 digits, '*'s, then 4 digits`},

		{edit{status, `"blocked"`, `"paused"`}, `data.status: "paused" is not one of ["active" "blocked" "closed"]`},
		{edit{status, `,"reason":"reported lost by the cardholder"`, ``}, `data.reason: missing required field`},
		{edit{status, `"reported lost by the cardholder"`, `""`}, `data.reason: must not be empty`},
		{edit{status, `"reported lost by the cardholder"`, `"` + strings.Repeat("r", 257) + `"`}, `data.reason: is 257 bytes, more than 256`},

		{edit{renew, `"2028-06-30"`, `"2028-06"`}, `data.permit_valid_until: "2028-06" is not a date, want YYYY-MM-DD such as "2027-06-30"`},
		{edit{renew, `{"permit_valid_until":"2028-06-30"}`, `{}`}, `data.permit_valid_until: missing required field`},
		{edit{renew, `"2028-06-30"}`, `"2028-06-30","permit_valid_from":"2025-06-30"}`}, `data.permit_valid_from: unknown field`},

		{edit{medical, `"EMP-JX-000451"`, `""`}, `data.employer_id: must not be empty`},
		{edit{medical, `"350.00"`, `"350.005"`}, `data.amount: 3 decimal places, CNY has 2`},
		{edit{medical, `"2025-02"`, `"2025-13"`}, `data.period: "2025-13" is not a valid month`},
		{edit{medical, `"2025-02"`, `"2025-2"`}, `data.period: "2025-2" is not a month, want YYYY-MM such as "2025-03"`},
		{edit{medical, `"2025-02"`, `"202502"`}, `data.period: "202502" is not a month, want YYYY-MM such as "2025-03"`},
		{edit{medical, `"2025-02"`, `"2025-02-01"`}, `data.period: "2025-02-01" is not a month, want YYYY-MM such as "2025-03"`},

		// Data fields belong to their type: a purchase's fields are unknown in a tap.
		{edit{tap, `"operator_id"`, `"merchant_id"`}, `data.merchant_id: unknown field`},
	} {
		msg := tc.apply(t)
		_, err := events.Decode(msg)
		if err == nil {
			t.Errorf("Decode(%s) accepted it, want %q", msg, tc.want)
			continue
		}
		var de *events.DecodeError
		if !errors.As(err, &de) {
			t.Errorf("Decode(%s): error %T is not a *DecodeError", msg, err)
		}
		if err.Error() != tc.want {
			t.Errorf("Decode(%s):\n got %s\nwant %s", msg, err, tc.want)
		}
	}
}

// TestDecodeAccepts pins what strictness still lets through, each decoding to the base event.
func TestDecodeAccepts(t *testing.T) {
	for _, tc := range []edit{
		{funds, `}}`, "}}\n"},
		{funds, `{"schema"`, " \t\r\n{ \"schema\" "},
		{funds, `"0195a3c2-5e00-7a41-8b3e-2f7d9c1e4a01"`, `"0195A3C2-5E00-7A41-8B3E-2F7D9C1E4A01"`},
		{funds, `"2025-03-01T00:30:00Z"`, `"2025-03-01T08:30:00+08:00"`},
		{funds, `"2025-03-01T00:30:00Z"`, `"2025-02-28T19:30:00.000-05:00"`},
		{funds, `"500.00"`, `"500"`},
		{funds, `"500.00"`, `"500.0"`},
		{funds, `"amount"`, `"\u0061mount"`},
		{funds, `"ICBC20250301000123"`, `"\u0049CBC20250301000123"`},
		{tap, `"2025-02-27T07:58:12.25+08:00"`, `"2025-02-26T23:58:12.250000000Z"`},
	} {
		msg := tc.apply(t)
		got, err := events.Decode(msg)
		if err != nil {
			t.Errorf("Decode(%s): %v", msg, err)
			continue
		}
		want, err := events.Decode([]byte(base[tc.typ]))
		if err != nil {
			t.Fatal(err)
		}
		if !eventsEqual(got, want) {
			t.Errorf("Decode(%s) = %+v, want %+v", msg, got, want)
		}
	}
}
