// Package events is the schema of the card events the engine consumes from Kafka: one JSON object
// per message, keyed by card token, in the envelope
//
//	{"schema":"joinin.card-event.v1","event_id":"<UUID>","type":"<type>",
//	 "occurred_at":"<RFC 3339>","card_token":"<token>","data":{...}}
//
// Decode is strict: it refuses unknown and duplicate fields, missing fields, JSON numbers where
// money is expected, amounts with more decimals than their currency, times without a zone offset,
// personal numbers that are not tokens, masked numbers that show too much, trailing data and
// messages over maxEventBytes. Every refusal is a *DecodeError naming the field and what is wrong.
//
// Encode writes the canonical form: fields in schema order, no insignificant whitespace, times in
// UTC, amounts with exactly the currency's decimals. Event.Hash is the SHA-256 of that form, so two
// serializations of the same event have the same Hash and a replayed event_id with another Hash is
// a conflict. Encode validates by decoding what it wrote, so it never emits what Decode refuses.
//
// docs/events.md is the producers' reference; its examples are decoded by the tests.
package events
