package events

import (
	"fmt"
	"strconv"
	"time"

	"github.com/google/uuid"
)

// Encode writes e in the canonical form: the envelope's and data's fields in schema order,
// optional fields left out when absent, no insignificant whitespace, times in UTC with trailing
// zeros of the fraction cut, amounts with exactly their currency's decimals, UUIDs in lower case.
// It ignores e.Hash; the Hash of the result is sha256.Sum256 of the bytes returned.
//
// Encode decodes what it wrote before returning it, so it never emits what Decode refuses: an
// invalid event is an error wrapping the *DecodeError that Decode gives.
func Encode(e Event) ([]byte, error) {
	b, derr := appendEvent(make([]byte, 0, 512), &e)
	if derr != nil {
		return nil, fmt.Errorf("encode card event %s: %w", e.ID, derr)
	}
	if _, err := Decode(b); err != nil {
		return nil, fmt.Errorf("encode card event %s: %w", e.ID, err)
	}
	return b, nil
}

// appendEvent appends e's canonical form to b. It checks only what it needs to write: that Data
// is a payload of e.Type.
func appendEvent(b []byte, e *Event) ([]byte, *DecodeError) {
	if isNilData(e.Data) {
		return nil, &DecodeError{Field: "data", Reason: "missing payload"}
	}
	if e.Data.Type() != e.Type {
		return nil, &DecodeError{Field: "type", Reason: fmt.Sprintf("is %s but data is a %s payload", quote(string(e.Type)), e.Data.Type())}
	}
	w := objectWriter{b: append(b, '{')}
	w.str("schema", SchemaV1)
	w.uuid("event_id", e.ID)
	w.str("type", string(e.Type))
	w.time("occurred_at", e.OccurredAt)
	w.str("card_token", e.CardToken)
	w.key("data")
	d := objectWriter{b: append(w.b, '{')}
	switch v := e.Data.(type) {
	case *FundsLoaded:
		d.money(v.Amount)
		d.str("bank_reference", v.BankReference)
	case *PurchaseCleared:
		d.str("merchant_id", v.MerchantID)
		d.money(v.Amount)
		d.str("mcc", v.MCC)
		if v.AuthorizationID != uuid.Nil {
			d.uuid("authorization_id", v.AuthorizationID)
		}
	case *PurchaseRefunded:
		d.str("merchant_id", v.MerchantID)
		d.uuid("original_event_id", v.OriginalEventID)
		d.money(v.Amount)
	case *TransitTap:
		d.str("operator_id", v.OperatorID)
		d.str("device_id", v.DeviceID)
		d.key("device_seq")
		d.b = strconv.AppendUint(d.b, v.DeviceSeq, 10)
		d.time("tapped_at", v.TappedAt)
		d.str("station_id", v.StationID)
		d.optional("line", v.Line)
		d.str("direction", string(v.Direction))
		d.str("mode", string(v.Mode))
	case *CardRegistered:
		d.optional("physical_token", v.PhysicalToken)
		d.optional("digital_token", v.DigitalToken)
		d.str("holder_name", v.HolderName)
		d.str("nationality", v.Nationality)
		d.str("passport_token", v.PassportToken)
		d.str("passport_masked", v.PassportMasked)
		d.str("social_security_token", v.SocialSecurityToken)
		d.str("social_security_masked", v.SocialSecurityMasked)
		d.str("work_permit_token", v.WorkPermitToken)
		d.str("work_permit_masked", v.WorkPermitMasked)
		d.str("permit_valid_until", v.PermitValidUntil.String())
		d.str("insurance_city", v.InsuranceCity)
		d.str("issuer_bank", v.IssuerBank)
		d.str("bank_account_token", v.BankAccountToken)
		d.str("bank_account_masked", v.BankAccountMasked)
		d.str("card_number_masked", v.CardNumberMasked)
	case *CardStatusChanged:
		d.str("status", string(v.Status))
		d.str("reason", v.Reason)
	case *CardPermitRenewed:
		d.str("permit_valid_until", v.PermitValidUntil.String())
	case *MedicalContribution:
		d.str("employer_id", v.EmployerID)
		d.money(v.Amount)
		d.str("period", v.Period.String())
	}
	return append(d.b, '}', '}'), nil
}

// isNilData reports whether d is nil or a nil payload pointer.
func isNilData(d Data) bool {
	switch v := d.(type) {
	case nil:
		return true
	case *FundsLoaded:
		return v == nil
	case *PurchaseCleared:
		return v == nil
	case *PurchaseRefunded:
		return v == nil
	case *TransitTap:
		return v == nil
	case *CardRegistered:
		return v == nil
	case *CardStatusChanged:
		return v == nil
	case *CardPermitRenewed:
		return v == nil
	case *MedicalContribution:
		return v == nil
	}
	return true // Data is sealed: nothing else implements it
}

// objectWriter appends the members of one JSON object; the caller writes its braces.
type objectWriter struct {
	b []byte
	n int
}

func (w *objectWriter) key(k string) {
	if w.n > 0 {
		w.b = append(w.b, ',')
	}
	w.n++
	w.b = append(w.b, '"')
	w.b = append(w.b, k...)
	w.b = append(w.b, '"', ':')
}

func (w *objectWriter) str(k, v string) {
	w.key(k)
	w.b = appendString(w.b, v)
}

func (w *objectWriter) optional(k, v string) {
	if v != "" {
		w.str(k, v)
	}
}

func (w *objectWriter) uuid(k string, id uuid.UUID) {
	w.key(k)
	w.b = append(w.b, '"')
	w.b = append(w.b, id.String()...)
	w.b = append(w.b, '"')
}

func (w *objectWriter) time(k string, t time.Time) {
	w.key(k)
	w.b = append(w.b, '"')
	w.b = t.UTC().AppendFormat(w.b, time.RFC3339Nano)
	w.b = append(w.b, '"')
}

func (w *objectWriter) money(m Money) {
	w.key("amount")
	w.b = append(w.b, '"')
	w.b = formatAmount(w.b, m.Minor, m.Currency)
	w.b = append(w.b, '"')
	w.str("currency", string(m.Currency))
}

// appendString appends s as a JSON string, escaping only what JSON requires. Bytes that are not
// UTF-8 are written as they are, and the validating decode refuses them.
func appendString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' {
			continue
		}
		b = append(b, s[start:i]...)
		switch c {
		case '"', '\\':
			b = append(b, '\\', c)
		case '\n':
			b = append(b, '\\', 'n')
		case '\r':
			b = append(b, '\\', 'r')
		case '\t':
			b = append(b, '\\', 't')
		default:
			b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
		}
		start = i + 1
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
