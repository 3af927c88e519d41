package events_test

import (
	"bytes"
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/joinincard/engine/events"
)

// reordered writes msg with the fields of the envelope and of data in reverse alphabetical order,
// each value as it was written.
func reordered(t *testing.T, msg string) string {
	t.Helper()
	var env map[string]json.RawMessage
	if err := json.Unmarshal([]byte(msg), &env); err != nil {
		t.Fatal(err)
	}
	var data map[string]json.RawMessage
	if err := json.Unmarshal(env["data"], &data); err != nil {
		t.Fatal(err)
	}
	env["data"] = json.RawMessage(writeReversed(data))
	return writeReversed(env)
}

func writeReversed(m map[string]json.RawMessage) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	slices.Reverse(keys)
	var b strings.Builder
	b.WriteByte('{')
	for i, k := range keys {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(`"` + k + `":`)
		b.Write(m[k])
	}
	b.WriteByte('}')
	return b.String()
}

// TestHashIgnoresSerialization: whitespace, field order and the other spellings Decode accepts of
// the same content give the same Hash.
func TestHashIgnoresSerialization(t *testing.T) {
	for _, typ := range events.Types() {
		want := mustDecode(t, base[typ]).Hash
		var pretty bytes.Buffer
		if err := json.Indent(&pretty, []byte(base[typ]), "", "\t"); err != nil {
			t.Fatal(err)
		}
		for _, variant := range []string{
			pretty.String(),
			reordered(t, base[typ]),
			strings.Replace(reordered(t, base[typ]), `"2025-03-01T00:30:00Z"`, `"2025-03-01T08:30:00.000+08:00"`, 1),
			strings.Replace(base[typ], "0195a3c2-5e00-7a41-8b3e-2f7d9c1e4a01", "0195A3C2-5E00-7A41-8B3E-2F7D9C1E4A01", 1),
		} {
			if got := mustDecode(t, variant).Hash; got != want {
				t.Errorf("%s: %s has another Hash than %s", typ, variant, base[typ])
			}
		}
	}
	if a, b := mustDecode(t, base[funds]).Hash, mustDecode(t, strings.Replace(base[funds], `"500.00"`, `"500"`, 1)).Hash; a != b {
		t.Errorf(`"500" and "500.00" CNY have different hashes`)
	}
}

// TestHashChangesWithEveryField: changing any one field of any type gives a new Hash.
func TestHashChangesWithEveryField(t *testing.T) {
	changes := []edit{
		{funds, `"event_id":"0195a3c2-5e00-7a41-8b3e-2f7d9c1e4a01"`, `"event_id":"0195a3c2-5e00-7a41-8b3e-2f7d9c1e4a09"`},
		{funds, `"occurred_at":"2025-03-01T00:30:00Z"`, `"occurred_at":"2025-03-01T00:30:00.000000001Z"`},
		{funds, `"card_token":"` + tokCard + `"`, `"card_token":"` + tokDigital + `"`},
		{funds, `"amount":"500.00"`, `"amount":"500.01"`},
		{funds, `"currency":"CNY"`, `"currency":"HKD"`},
		{funds, `"bank_reference":"ICBC20250301000123"`, `"bank_reference":"ICBC20250301000124"`},
		{purchase, `"merchant_id":"M330100000123"`, `"merchant_id":"M330100000124"`},
		{purchase, `"amount":"12.34"`, `"amount":"1234"`},
		{purchase, `"currency":"CNY"`, `"currency":"USD"`},
		{purchase, `"mcc":"5912"`, `"mcc":"5913"`},
		{purchase, `"authorization_id":"0195a3c2-5e00-7a41-8b3e-2f7d9c1e4a02"`, `"authorization_id":"0195a3c2-5e00-7a41-8b3e-2f7d9c1e4a09"`},
		{purchase, `,"authorization_id":"0195a3c2-5e00-7a41-8b3e-2f7d9c1e4a02"`, ``},
		{refund, `"merchant_id":"M330100000123"`, `"merchant_id":"M330100000124"`},
		{refund, `"original_event_id":"0195a3c2-5e00-7a41-8b3e-2f7d9c1e4a03"`, `"original_event_id":"0195a3c2-5e00-7a41-8b3e-2f7d9c1e4a04"`},
		{refund, `"amount":"2.34"`, `"amount":"2.35"`},
		{refund, `"currency":"CNY"`, `"currency":"EUR"`},
		{tap, `"operator_id":"HZMETRO"`, `"operator_id":"NBMETRO"`},
		{tap, `"device_id":"GATE-0107-03"`, `"device_id":"GATE-0107-04"`},
		{tap, `"device_seq":184467`, `"device_seq":184468`},
		{tap, `"tapped_at":"2025-02-27T07:58:12.25+08:00"`, `"tapped_at":"2025-02-27T07:58:12.250000001+08:00"`},
		{tap, `"station_id":"0107"`, `"station_id":"0108"`},
		{tap, `"line":"1"`, `"line":"2"`},
		{tap, `,"line":"1"`, ``},
		{tap, `"direction":"in"`, `"direction":"out"`},
		{tap, `"mode":"metro"`, `"mode":"bus"`},
		{register, `"physical_token":"` + tokCard + `"`, `"physical_token":"` + tokAccount + `"`},
		{register, `"physical_token":"` + tokCard + `",`, ``},
		{register, `"digital_token":"` + tokDigital + `"`, `"digital_token":"` + tokAccount + `"`},
		{register, `"digital_token":"` + tokDigital + `",`, ``},
		{register, `"holder_name":"Stephen Fox"`, `"holder_name":"Stephen Foz"`},
		{register, `"nationality":"USA"`, `"nationality":"SRB"`},
		{register, `"passport_token":"` + tokPassport + `"`, `"passport_token":"` + tokAccount + `"`},
		{register, `"passport_masked":"*****5678"`, `"passport_masked":"******5678"`},
		{register, `"social_security_token":"` + tokSocial + `"`, `"social_security_token":"` + tokAccount + `"`},
		{register, `"social_security_masked":"**************1234"`, `"social_security_masked":"**************1235"`},
		{register, `"work_permit_token":"` + tokPermit + `"`, `"work_permit_token":"` + tokAccount + `"`},
		{register, `"work_permit_masked":"***********6789"`, `"work_permit_masked":"***********678X"`},
		{register, `"permit_valid_until":"2027-06-30"`, `"permit_valid_until":"2027-07-01"`},
		{register, `"insurance_city":"Jiaxing"`, `"insurance_city":"嘉兴"`},
		{register, `"issuer_bank":"ICBC"`, `"issuer_bank":"BOC"`},
		{register, `"bank_account_token":"` + tokAccount + `"`, `"bank_account_token":"` + tokCard + `"`},
		{register, `"bank_account_masked":"***************0123"`, `"bank_account_masked":"**************0123"`},
		{register, `"card_number_masked":"622848******1234"`, `"card_number_masked":"622848******1235"`},
		{status, `"status":"blocked"`, `"status":"closed"`},
		{status, `"reason":"reported lost by the cardholder"`, `"reason":"reported lost by the cardholder."`},
		{renew, `"permit_valid_until":"2028-06-30"`, `"permit_valid_until":"2029-06-30"`},
		{medical, `"employer_id":"EMP-JX-000451"`, `"employer_id":"EMP-JX-000452"`},
		{medical, `"amount":"350.00"`, `"amount":"350.10"`},
		{medical, `"currency":"CNY"`, `"currency":"USD"`},
		{medical, `"period":"2025-02"`, `"period":"2025-03"`},
	}

	seen := make(map[[32]byte]string)
	add := func(what string, h [32]byte) {
		if prev, dup := seen[h]; dup {
			t.Errorf("%s has the same Hash as %s", what, prev)
		}
		seen[h] = what
	}
	for _, typ := range events.Types() {
		add(string(typ), mustDecode(t, base[typ]).Hash)
	}
	changed := make(map[string]bool) // "type field" of every field changed
	for _, c := range changes {
		add(c.new, mustDecode(t, string(c.apply(t))).Hash)
		field, _, _ := strings.Cut(strings.TrimPrefix(c.old, ","), ":")
		changed[string(c.typ)+" "+strings.Trim(field, `"`)] = true
	}
	for _, f := range events.EnvelopeFields {
		if f != "schema" && f != "type" && f != "data" && !changed[string(funds)+" "+f] {
			t.Errorf("no change of envelope field %s", f)
		}
	}
	for _, typ := range events.Types() {
		for _, f := range events.DataFields[typ] {
			if !changed[string(typ)+" "+f] {
				t.Errorf("no change of %s field %s", typ, f)
			}
		}
	}
}
