package events_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/joinincard/engine/events"
	"github.com/joinincard/engine/ledger"
)

// FuzzDecode reads, writes and reads again: whatever Decode accepts, Encode writes, and Decode
// reads back as the same event with the same Hash; Encode is a fixed point on its own output. What
// Decode accepts is also valid JSON to encoding/json, with the same fields and the same strings.
func FuzzDecode(f *testing.F) {
	for _, msg := range base {
		f.Add([]byte(msg))
	}
	for _, pattern := range []string{"testdata/valid/*.json", "testdata/invalid/*.json", "testdata/valid/*.golden"} {
		files, err := filepath.Glob(pattern)
		if err != nil {
			f.Fatal(err)
		}
		for _, path := range files {
			b, err := os.ReadFile(path)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(b)
		}
	}
	f.Fuzz(readWriteRead)
}

// FuzzDecodeFields puts fuzzed values into the fields of valid messages, JSON-escaped, so that
// the values' own validators, rather than the JSON syntax, decide: whatever Decode accepts must
// read, write and read again as in FuzzDecode.
func FuzzDecodeFields(f *testing.F) {
	f.Add("2025-03-01T08:30:00+08:00", "2025-03-01T08:12:03.120+08:00", "12.34", "CNY", "Stephen Fox", "*****5678", "622848******1234", "2027-06-30", "2025-02", "0195a3c2-5e00-7a41-8b3e-2f7d9c1e4a02", "1")
	f.Add("9999-12-31T23:59:59.999999999Z", "9999-12-31T23:59:59Z", "92233720368547758.07", "CNY", "福 \"x\" \\", "**************ABCD", "622848*********1234", "9999-12-31", "9999-12", "FFFFFFFF-FFFF-FFFF-FFFF-FFFFFFFFFFFF", "\u2028")
	f.Add("9999-12-31T23:59:59+00:01", "2024-01-01T00:00:00-00:01", "0.01", "EUR", "x", "******1234", "622848*********1234", "2024-02-29", "2024-12", "0195a3c2-5e00-7a41-8b3e-2f7d9c1e4a02", "-")
	f.Add("2024-01-01T00:00:00+00:00", "2023-12-31T23:00:00-01:00", "9223372036854775807", "JPY", "a", "**3456", "622848***1234", "0001-01-01", "0001-01", "00000000-0000-0000-0000-000000000001", "L")
	f.Fuzz(func(t *testing.T, occurred, tapped, amount, currency, text, masked, cardMasked, date, period, id, line string) {
		q := func(s string) string {
			b, err := json.Marshal(s)
			if err != nil {
				t.Skip()
			}
			return string(b)
		}
		env := `{"schema":"joinin.card-event.v1","event_id":` + q(id) + `,"occurred_at":` + q(occurred) +
			`,"card_token":"` + tokCard + `",`
		for _, msg := range []string{
			env + `"type":"purchase.cleared","data":{"merchant_id":"M1","amount":` + q(amount) + `,"currency":` + q(currency) +
				`,"mcc":"5912","authorization_id":` + q(id) + `}}`,
			env + `"type":"transit.tap","data":{"operator_id":"O","device_id":"D","device_seq":1,"tapped_at":` + q(tapped) +
				`,"station_id":"S","line":` + q(line) + `,"direction":"in","mode":"metro"}}`,
			env + `"type":"card.status_changed","data":{"status":"closed","reason":` + q(text) + `}}`,
			env + `"type":"card.permit_renewed","data":{"permit_valid_until":` + q(date) + `}}`,
			env + `"type":"medical.contribution","data":{"employer_id":"E","amount":` + q(amount) + `,"currency":` + q(currency) +
				`,"period":` + q(period) + `}}`,
			strings.Replace(strings.Replace(strings.Replace(base[events.TypeCardRegistered],
				`"*****5678"`, q(masked), 1), `"622848******1234"`, q(cardMasked), 1), `"Stephen Fox"`, q(text), 1),
		} {
			readWriteRead(t, []byte(msg))
		}
	})
}

// readWriteRead checks the properties of a message, valid or not: a refusal is a DecodeError; an
// accepted message encodes, and decodes back to the same event and Hash.
func readWriteRead(t *testing.T, msg []byte) {
	t.Helper()
	e, err := events.Decode(msg)
	if err != nil {
		var de *events.DecodeError
		if !errors.As(err, &de) || de.Reason == "" {
			t.Fatalf("Decode failed without a DecodeError: %#v", err)
		}
		return
	}
	if !json.Valid(msg) {
		t.Fatalf("Decode accepted what encoding/json calls invalid: %q", msg)
	}
	enc, err := events.Encode(e)
	if err != nil {
		t.Fatalf("Encode refused a decoded event: %v\n%q", err, msg)
	}
	if sha256.Sum256(enc) != e.Hash {
		t.Fatalf("Hash is not the SHA-256 of %s", enc)
	}
	again, err := events.Decode(enc)
	if err != nil {
		t.Fatalf("Decode refused Encode's output: %v\n%s", err, enc)
	}
	if !reflect.DeepEqual(again, e) {
		t.Fatalf("read-write-read changed the event:\n%+v\n%+v", e, again)
	}
	enc2, err := events.Encode(again)
	if err != nil || !bytes.Equal(enc, enc2) {
		t.Fatalf("Encode is not a fixed point: %s then %s (%v)", enc, enc2, err)
	}
	sameAsStdlib(t, msg, enc)
}

// normalized are the fields whose canonical spelling may differ from the producer's.
var normalized = map[string]bool{
	"event_id": true, "occurred_at": true, "tapped_at": true, "amount": true,
	"authorization_id": true, "original_event_id": true,
}

// sameAsStdlib checks that encoding/json reads msg and its canonical form enc as objects with the
// same fields and, but for the normalized ones, the same values.
func sameAsStdlib(t *testing.T, msg, enc []byte) {
	t.Helper()
	read := func(b []byte) map[string]any {
		d := json.NewDecoder(bytes.NewReader(b))
		d.UseNumber()
		var m map[string]any
		if err := d.Decode(&m); err != nil {
			t.Fatalf("encoding/json: %v\n%q", err, b)
		}
		return m
	}
	a, b := read(msg), read(enc)
	var compare func(path string, a, b map[string]any)
	compare = func(path string, a, b map[string]any) {
		if len(a) != len(b) {
			t.Fatalf("%s: %d fields, canonical form has %d\n%q\n%s", path, len(a), len(b), msg, enc)
		}
		for k, va := range a {
			vb, ok := b[k]
			switch {
			case !ok:
				t.Fatalf("%s%s: missing from the canonical form %s", path, k, enc)
			case k == "data":
				compare("data.", va.(map[string]any), vb.(map[string]any))
			case !normalized[k] && !reflect.DeepEqual(va, vb):
				t.Fatalf("%s%s: encoding/json reads %#v, the canonical form has %#v\n%q", path, k, va, vb, msg)
			}
		}
	}
	compare("", a, b)
}

// FuzzEncode builds events from fuzzed fields, as a producer would: whatever Encode accepts,
// Decode reads back as the same event (times in UTC) with the Hash of the bytes. It explores the
// edge of what the validators accept from the producer's side, where FuzzDecode rarely gets.
func FuzzEncode(f *testing.F) {
	f.Add(int64(1234), uint8(0), "M330100000123", "5912", int64(1740789000), int64(503_000_000), int32(8*3600), "1", uint64(184467), "Stephen Fox", "*****5678", "622848******1234")
	f.Add(int64(1), uint8(4), "V", "0742", int64(1704067200), int64(0), int32(-5*3600), "", uint64(0), "嘉兴 福", "******1234", "622848***1234")
	f.Add(int64(9223372036854775807), uint8(2), "M", "0000", int64(253402300799), int64(999_999_999), int32(0), "L-1", uint64(18446744073709551615), "a", "**************ABCD", "622848*********1234")
	currencies := []string{"CNY", "HKD", "USD", "EUR", "JPY", "GBP", ""}
	f.Fuzz(func(t *testing.T, minor int64, cur uint8, id, mcc string, sec, nsec int64, offset int32, line string, seq uint64, name, masked, cardMasked string) {
		zone := time.FixedZone("", int(offset%(24*3600)))
		at := time.Unix(sec, nsec).In(zone)
		// The time as a producer in that zone writes it, with its offset: Decode decides.
		readWriteRead(t, []byte(strings.Replace(base[funds], `"2025-03-01T00:30:00Z"`, `"`+at.Format(time.RFC3339Nano)+`"`, 1)))
		card := mustDecode(t, base[register]).Data.(*events.CardRegistered)
		card.HolderName, card.InsuranceCity, card.PassportMasked, card.CardNumberMasked = name, name, masked, cardMasked
		for _, d := range []events.Data{
			&events.PurchaseCleared{MerchantID: id, Amount: events.Money{Minor: minor, Currency: ledger.Currency(currencies[int(cur)%len(currencies)])}, MCC: mcc},
			&events.TransitTap{OperatorID: id, DeviceID: id, DeviceSeq: seq, TappedAt: at, StationID: id, Line: line, Direction: events.DirectionIn, Mode: events.ModeBus},
			card,
		} {
			e := events.Event{ID: uuid.UUID{15: 1}, Type: d.Type(), OccurredAt: at, CardToken: tokCard, Data: d}
			enc, err := events.Encode(e)
			if err != nil {
				var de *events.DecodeError
				if !errors.As(err, &de) {
					t.Fatalf("Encode failed without a DecodeError: %v", err)
				}
				continue
			}
			got, err := events.Decode(enc)
			if err != nil {
				t.Fatalf("Decode refused Encode's output: %v\n%s", err, enc)
			}
			if got.Hash != sha256.Sum256(enc) {
				t.Fatalf("Hash is not the SHA-256 of %s", enc)
			}
			e.OccurredAt = e.OccurredAt.UTC()
			if tap, ok := e.Data.(*events.TransitTap); ok {
				utc := *tap
				utc.TappedAt = utc.TappedAt.UTC()
				e.Data = &utc
			}
			e.Hash = got.Hash
			if !reflect.DeepEqual(got, e) {
				t.Fatalf("Decode(Encode(e)) differs from e:\n%+v\n%+v\n%s", got, e, enc)
			}
		}
	})
}
