package events

import (
	"crypto/sha256"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/joinincard/engine/ledger"
)

// maxEventBytes bounds one message. The largest valid event in canonical form, a card.registered
// with every field at its bound, is 2.1 KB, and 9 KB with every character of every string and
// field name written as a \u escape (TestLargestEventFitsTheBound); 64 KiB leaves room for any
// pretty-printing while keeping a broken producer from making every consumer parse megabytes.
// Kafka's default message limit (1 MiB) is far above it.
const maxEventBytes = 64 << 10

// Decode parses one Kafka message into an Event and sets its Hash. It refuses anything that is not
// exactly a valid event of schema v1 with a *DecodeError. The checks run in a fixed order, which the
// tests pin: size, JSON syntax (including duplicate fields and trailing data), the schema version,
// unknown envelope fields, the envelope's fields in schema order, unknown data fields, the data
// fields in schema order, and the checks between fields.
func Decode(b []byte) (Event, error) {
	if len(b) > maxEventBytes {
		return Event{}, &DecodeError{Reason: fmt.Sprintf("message is %d bytes, more than the %d-byte limit", len(b), maxEventBytes)}
	}
	sc := scratches.Get().(*scratch)
	defer scratches.Put(sc)
	e, err := decodeIn(b, &sc.members)
	sc.members = memberArena{} // the arena keeps no strings of this message alive
	if err != nil {
		return Event{}, err
	}
	canonical, derr := appendEvent(sc.canonical[:0], &e)
	if derr != nil {
		return Event{}, derr // cannot happen: decodeEvent pairs every type with its payload
	}
	e.Hash = sha256.Sum256(canonical)
	return e, nil
}

// canonicalBytes is room for a typical event's canonical form; a longer one grows onto the heap.
const canonicalBytes = 512

// scratch is what decoding one message needs only while it runs: the member lists of its JSON
// objects and the bytes of its canonical form, which is hashed and dropped. Decoders reuse
// scratches (scratches) rather than allocate them per message: at tens of thousands of events a
// second, those were most of the decoder's garbage.
type scratch struct {
	members   memberArena
	canonical [canonicalBytes]byte
}

var scratches = sync.Pool{New: func() any { return new(scratch) }}

// decodeIn parses b with its member lists in arena and decodes the event; nothing it returns
// refers to arena.
func decodeIn(b []byte, arena *memberArena) (Event, error) {
	root, err := parseJSON(b, arena)
	if err != nil {
		return Event{}, err
	}
	if root.kind != jsonObject {
		return Event{}, &DecodeError{Reason: fmt.Sprintf("message must be a JSON object, not %s", root.kind)}
	}
	e, derr := decodeEvent(root.members)
	if derr != nil {
		return Event{}, derr
	}
	return e, nil
}

// DecodeMessage decodes a Kafka message's value and checks that its key is the event's card_token:
// a message keyed otherwise may sit in another partition than the card's other events, out of order.
func DecodeMessage(key, value []byte) (Event, error) {
	e, err := Decode(value)
	if err != nil {
		return Event{}, err
	}
	if string(key) != e.CardToken {
		return Event{}, &DecodeError{Field: "card_token", Reason: "is not the message key: producers key each event by its card_token"}
	}
	return e, nil
}

func decodeEvent(members []jsonMember) (Event, *DecodeError) {
	r := reader{members: members}
	// The schema comes first: a message of another version is refused as such, whatever its fields.
	if schema, ok := r.str("schema", false); ok && schema != SchemaV1 {
		r.failf("schema", "unsupported schema %s, want %q", quote(schema), SchemaV1)
	}
	r.refuseUnknown(envelopeFields)
	var e Event
	e.ID = r.uuid("event_id", false)
	e.Type = r.eventType("type")
	e.OccurredAt = r.time("occurred_at")
	e.CardToken = r.cardToken("card_token")
	data, ok := r.value("data", false)
	if ok && data.kind != jsonObject {
		r.failf("data", "must be an object, not %s", data.kind)
	}
	if r.err != nil {
		return Event{}, r.err
	}

	d := reader{prefix: "data.", members: data.members}
	d.refuseUnknown(dataFields[e.Type])
	switch e.Type {
	case TypeFundsLoaded:
		e.Data = d.fundsLoaded()
	case TypePurchaseCleared:
		e.Data = d.purchaseCleared()
	case TypePurchaseRefunded:
		e.Data = d.purchaseRefunded()
	case TypeTransitTap:
		tap := d.transitTap()
		d.tapTime(tap.TappedAt, e.OccurredAt)
		e.Data = tap
	case TypeCardRegistered:
		reg := d.cardRegistered()
		d.permitValidity(reg.PermitValidUntil, e.OccurredAt)
		e.Data = reg
	case TypeCardStatusChanged:
		e.Data = d.cardStatusChanged()
	case TypeCardPermitRenewed:
		renewed := &CardPermitRenewed{PermitValidUntil: d.date("permit_valid_until")}
		d.permitValidity(renewed.PermitValidUntil, e.OccurredAt)
		e.Data = renewed
	case TypeMedicalContribution:
		e.Data = d.medicalContribution()
	}
	if d.err != nil {
		return Event{}, d.err
	}
	return e, nil
}

func (r *reader) fundsLoaded() *FundsLoaded {
	var v FundsLoaded
	v.Amount = r.money("amount", "currency")
	v.BankReference = r.id("bank_reference", false)
	return &v
}

func (r *reader) purchaseCleared() *PurchaseCleared {
	var v PurchaseCleared
	v.MerchantID = r.id("merchant_id", false)
	v.Amount = r.money("amount", "currency")
	v.MCC = r.mcc("mcc")
	v.AuthorizationID = r.uuid("authorization_id", true)
	return &v
}

func (r *reader) purchaseRefunded() *PurchaseRefunded {
	var v PurchaseRefunded
	v.MerchantID = r.id("merchant_id", false)
	v.OriginalEventID = r.uuid("original_event_id", false)
	v.Amount = r.money("amount", "currency")
	return &v
}

func (r *reader) transitTap() *TransitTap {
	var v TransitTap
	v.OperatorID = r.id("operator_id", false)
	v.DeviceID = r.id("device_id", false)
	v.DeviceSeq = r.uint64("device_seq")
	v.TappedAt = r.time("tapped_at")
	v.StationID = r.id("station_id", false)
	v.Line = r.id("line", true)
	v.Direction = Direction(r.enum("direction", string(DirectionIn), string(DirectionOut), string(DirectionSingle)))
	v.Mode = Mode(r.enum("mode", string(ModeMetro), string(ModeBus)))
	return &v
}

// permitValidity checks a work permit's last valid day against its event's time: a permit is
// issued for at most MaxPermitYears, so one said to be valid longer after the event (a
// placeholder such as 9999-12-31, a mistyped year) is no permit an issuer has seen, and would keep
// the card paying long after the cardholder's right to work in China ended.
func (r *reader) permitValidity(validUntil Date, occurred time.Time) {
	if r.err != nil {
		return
	}
	if PermitBeyondIssue(validUntil, occurred) {
		r.failf("permit_valid_until", "%s is more than %d years after occurred_at, longer than a work permit is issued for",
			validUntil, MaxPermitYears)
	}
}

// PermitBeyondIssue reports whether a work permit valid until validUntil would run more than
// MaxPermitYears past the day, in Shanghai, of instant at: longer than any permit is issued for.
func PermitBeyondIssue(validUntil Date, at time.Time) bool {
	y, m, d := at.In(civilZone).Date()
	last := time.Date(y+MaxPermitYears, m, d, 0, 0, 0, 0, time.UTC)
	return time.Date(validUntil.Year, validUntil.Month, validUntil.Day, 0, 0, 0, 0, time.UTC).After(last)
}

// tapTime checks a tap's time against its event's: an offline upload is late by at most
// maxTapDelay, and a device clock runs ahead by at most maxTapAhead.
func (r *reader) tapTime(tapped, occurred time.Time) {
	if r.err != nil {
		return
	}
	if ahead := tapped.Sub(occurred); ahead > maxTapAhead {
		r.failf("tapped_at", "is %s after occurred_at, more than the %s a device clock may run ahead", ahead, maxTapAhead)
	}
	if late := occurred.Sub(tapped); late > maxTapDelay {
		r.failf("tapped_at", "is %s before occurred_at, more than the %s an offline upload may be late", late, maxTapDelay)
	}
}

func (r *reader) cardRegistered() *CardRegistered {
	var v CardRegistered
	v.PhysicalToken = r.token("physical_token", true)
	v.DigitalToken = r.token("digital_token", true)
	v.HolderName = r.prose("holder_name")
	v.Nationality = r.country("nationality")
	v.PassportToken = r.token("passport_token", false)
	v.PassportMasked = r.maskedTail("passport_masked")
	v.SocialSecurityToken = r.token("social_security_token", false)
	v.SocialSecurityMasked = r.maskedTail("social_security_masked")
	v.WorkPermitToken = r.token("work_permit_token", false)
	v.WorkPermitMasked = r.maskedTail("work_permit_masked")
	v.PermitValidUntil = r.date("permit_valid_until")
	v.InsuranceCity = r.text("insurance_city")
	v.IssuerBank = r.id("issuer_bank", false)
	v.BankAccountToken = r.token("bank_account_token", false)
	v.BankAccountMasked = r.maskedTail("bank_account_masked")
	v.CardNumberMasked = r.maskedCard("card_number_masked")
	return &v
}

func (r *reader) cardStatusChanged() *CardStatusChanged {
	var v CardStatusChanged
	v.Status = CardStatus(r.enum("status", string(StatusActive), string(StatusBlocked), string(StatusClosed)))
	v.Reason = r.prose("reason")
	return &v
}

func (r *reader) medicalContribution() *MedicalContribution {
	var v MedicalContribution
	v.EmployerID = r.id("employer_id", false)
	v.Amount = r.money("amount", "currency")
	v.Period = r.period("period")
	return &v
}

// reader reads the fields of one object. The first failure sticks: later reads return zero values,
// and err says what is wrong.
type reader struct {
	prefix  string // "data." inside data
	members []jsonMember
	err     *DecodeError
}

func (r *reader) fail(field, reason string) {
	if r.err == nil {
		r.err = &DecodeError{Field: r.prefix + field, Reason: reason}
	}
}

func (r *reader) failf(field, format string, args ...any) {
	if r.err == nil {
		r.fail(field, fmt.Sprintf(format, args...))
	}
}

// refuseUnknown fails on the first field, in message order, that known does not list.
func (r *reader) refuseUnknown(known []string) {
	for _, m := range r.members {
		if !slices.Contains(known, m.key) {
			r.fail(fieldName(m.key), "unknown field")
			return
		}
	}
}

// value returns the named field's value and whether it is present. A required field that is
// absent fails.
func (r *reader) value(name string, optional bool) (jsonValue, bool) {
	if r.err != nil {
		return jsonValue{}, false
	}
	for i := range r.members {
		if r.members[i].key == name {
			return r.members[i].val, true
		}
	}
	if !optional {
		r.fail(name, "missing required field")
	}
	return jsonValue{}, false
}

// str returns a string field's value and whether it is present. Present, it must be a non-empty
// string: an optional field is left out, never null or "".
func (r *reader) str(name string, optional bool) (string, bool) {
	v, ok := r.value(name, optional)
	if !ok {
		return "", false
	}
	hint := ""
	if optional {
		hint = " (leave an optional field out instead)"
	}
	if v.kind != jsonString {
		r.failf(name, "must be a string, not %s%s", v.kind, hint)
		return "", false
	}
	if v.text == "" {
		r.failf(name, "must not be empty%s", hint)
		return "", false
	}
	return v.text, true
}

func (r *reader) id(name string, optional bool) string {
	s, ok := r.str(name, optional)
	if !ok {
		return ""
	}
	if why := checkID(s, maxIDBytes); why != "" {
		r.fail(name, why)
		return ""
	}
	return s
}

func (r *reader) text(name string) string {
	s, ok := r.str(name, false)
	if !ok {
		return ""
	}
	if why := checkText(s); why != "" {
		r.fail(name, why)
		return ""
	}
	return s
}

// prose reads a text the engine stores and shows as it is (a holder's name, a status change's
// reason): a text that may hold a personal number of any kind (MayBePersonalNumber) is refused,
// as a card number in any text is, since the engine would otherwise keep it in clear.
func (r *reader) prose(name string) string {
	s := r.text(name)
	if s != "" && MayBePersonalNumber(s) {
		r.fail(name, "may hold a passport, social security, resident id or work permit number: free text must not hold one")
		return ""
	}
	return s
}

func (r *reader) cardToken(name string) string {
	s, ok := r.str(name, false)
	if !ok {
		return ""
	}
	if err := CheckCardToken(s); err != nil {
		r.fail(name, err.Error())
		return ""
	}
	return s
}

func (r *reader) eventType(name string) Type {
	s, ok := r.str(name, false)
	if !ok {
		return ""
	}
	if _, known := dataFields[Type(s)]; !known {
		r.failf(name, "unknown event type %s", quote(s))
		return ""
	}
	return Type(s)
}

func (r *reader) enum(name string, allowed ...string) string {
	s, ok := r.str(name, false)
	if !ok {
		return ""
	}
	if !slices.Contains(allowed, s) {
		r.failf(name, "%s is not one of %q", quote(s), allowed)
		return ""
	}
	return s
}

func (r *reader) uuid(name string, optional bool) uuid.UUID {
	s, ok := r.str(name, optional)
	if !ok {
		return uuid.UUID{}
	}
	id, why := parseUUID(s)
	if why != "" {
		r.fail(name, why)
	}
	return id
}

func (r *reader) time(name string) time.Time {
	s, ok := r.str(name, false)
	if !ok {
		return time.Time{}
	}
	t, why := parseTime(s)
	if why != "" {
		r.fail(name, why)
	}
	return t
}

func (r *reader) date(name string) Date {
	s, ok := r.str(name, false)
	if !ok {
		return Date{}
	}
	d, why := parseDate(s)
	if why != "" {
		r.fail(name, why)
	}
	return d
}

func (r *reader) period(name string) Period {
	s, ok := r.str(name, false)
	if !ok {
		return Period{}
	}
	p, why := parsePeriod(s)
	if why != "" {
		r.fail(name, why)
	}
	return p
}

// money reads an amount and its currency. The amount must be a JSON string: a JSON number is a
// float to most producers' encoders, and floats are never money.
func (r *reader) money(amountName, currencyName string) Money {
	if v, ok := r.value(amountName, false); ok && v.kind == jsonNumber {
		r.fail(amountName, `must be a JSON string such as "12.34", not a number: floats are never money`)
	}
	amount, aok := r.str(amountName, false)
	code, cok := r.str(currencyName, false)
	if !aok || !cok {
		return Money{}
	}
	c := ledger.Currency(code)
	if _, known := c.MinorUnits(); !known {
		r.failf(currencyName, "unknown currency %s", quote(code))
		return Money{}
	}
	minor, why := parseAmount(amount, c)
	if why != "" {
		r.fail(amountName, why)
		return Money{}
	}
	return Money{Minor: minor, Currency: c}
}

// uint64 reads a JSON number that is a plain unsigned integer: no sign, fraction or exponent.
func (r *reader) uint64(name string) uint64 {
	v, ok := r.value(name, false)
	if !ok {
		return 0
	}
	if v.kind != jsonNumber {
		r.failf(name, "must be a number, not %s", v.kind)
		return 0
	}
	if !allDigits(v.text) {
		r.failf(name, "%s is not an unsigned integer", quote(v.text))
		return 0
	}
	n, err := strconv.ParseUint(v.text, 10, 64)
	if err != nil {
		r.failf(name, "%s overflows uint64", quote(v.text))
		return 0
	}
	return n
}

func (r *reader) mcc(name string) string {
	s, ok := r.str(name, false)
	if !ok {
		return ""
	}
	if len(s) != 4 || !allDigits(s) {
		r.failf(name, "%s is not a merchant category code, want 4 digits", quote(s))
		return ""
	}
	return s
}

func (r *reader) country(name string) string {
	s, ok := r.str(name, false)
	if !ok {
		return ""
	}
	if _, known := iso3166Alpha3[s]; !known {
		r.failf(name, "%s is not an ISO 3166-1 alpha-3 country code", quote(s))
		return ""
	}
	return s
}

func (r *reader) token(name string, optional bool) string {
	s, ok := r.str(name, optional)
	if !ok {
		return ""
	}
	if why := checkToken(s); why != "" {
		r.fail(name, why)
		return ""
	}
	return s
}

func (r *reader) maskedTail(name string) string {
	s, ok := r.str(name, false)
	if !ok {
		return ""
	}
	if why := checkMaskedTail(s); why != "" {
		r.fail(name, why)
		return ""
	}
	return s
}

func (r *reader) maskedCard(name string) string {
	s, ok := r.str(name, false)
	if !ok {
		return ""
	}
	if why := checkMaskedCard(s); why != "" {
		r.fail(name, why)
		return ""
	}
	return s
}
