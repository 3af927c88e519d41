package events_test

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/joinincard/engine/events"
)

func eventsEqual(a, b events.Event) bool { return reflect.DeepEqual(a, b) }

func mustDecode(t testing.TB, msg string) events.Event {
	t.Helper()
	e, err := events.Decode([]byte(msg))
	if err != nil {
		t.Fatalf("Decode(%s): %v", msg, err)
	}
	return e
}

// TestEveryTypeRoundTrips decodes the base message of each type, encodes it, and decodes that: the
// same event, the Hash of the canonical bytes, and a fixed point of Encode.
func TestEveryTypeRoundTrips(t *testing.T) {
	for _, typ := range events.Types() {
		e := mustDecode(t, base[typ])
		if e.Type != typ || e.Data == nil || e.Data.Type() != typ {
			t.Errorf("%s: decoded type %s with %T", typ, e.Type, e.Data)
		}
		b, err := events.Encode(e)
		if err != nil {
			t.Fatalf("%s: Encode: %v", typ, err)
		}
		if e.Hash != sha256.Sum256(b) {
			t.Errorf("%s: Hash is not the SHA-256 of the canonical encoding", typ)
		}
		again := mustDecode(t, string(b))
		if !eventsEqual(again, e) {
			t.Errorf("%s: decode(encode(e)) = %+v, want %+v", typ, again, e)
		}
		b2, err := events.Encode(again)
		if err != nil || !bytes.Equal(b, b2) {
			t.Errorf("%s: encoding is not a fixed point: %s then %s (%v)", typ, b, b2, err)
		}
	}
	if len(events.Types()) != len(base) {
		t.Errorf("%d types, %d base messages", len(events.Types()), len(base))
	}
}

// TestEncodeLiteral is what a producer writes: a struct literal, with times in any zone.
func TestEncodeLiteral(t *testing.T) {
	shanghai := time.FixedZone("CST", 8*60*60)
	e := events.Event{
		ID:         uuid.MustParse("0195a3c2-5e00-7a41-8b3e-2f7d9c1e4a01"),
		Type:       events.TypeTransitTap,
		OccurredAt: time.Date(2025, 3, 1, 8, 30, 0, 0, shanghai),
		CardToken:  tokCard,
		Data: &events.TransitTap{
			OperatorID: "HZBUS",
			DeviceID:   "BUS-K155-2",
			DeviceSeq:  18446744073709551615,
			TappedAt:   time.Date(2025, 3, 1, 8, 12, 3, 120_000_000, shanghai),
			StationID:  "K155",
			Direction:  events.DirectionSingle,
			Mode:       events.ModeBus,
		},
	}
	got, err := events.Encode(e)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"schema":"joinin.card-event.v1","event_id":"0195a3c2-5e00-7a41-8b3e-2f7d9c1e4a01",` +
		`"type":"transit.tap","occurred_at":"2025-03-01T00:30:00Z","card_token":"` + tokCard + `",` +
		`"data":{"operator_id":"HZBUS","device_id":"BUS-K155-2","device_seq":18446744073709551615,` +
		`"tapped_at":"2025-03-01T00:12:03.12Z","station_id":"K155","direction":"single","mode":"bus"}}`
	if string(got) != want {
		t.Errorf("Encode:\n got %s\nwant %s", got, want)
	}

	m := events.Event{
		ID: uuid.MustParse("0195a3c2-5e00-7a41-8b3e-2f7d9c1e4a05"), Type: events.TypeMedicalContribution,
		OccurredAt: time.Date(2025, 3, 5, 0, 0, 0, 0, time.UTC), CardToken: tokCard,
		Data: &events.MedicalContribution{
			EmployerID: "EMP-1",
			Amount:     events.Money{Minor: 1200, Currency: "JPY"},
			Period:     events.Period{Year: 2025, Month: time.February},
		},
	}
	got, err = events.Encode(m)
	if err != nil {
		t.Fatal(err)
	}
	if want := `"data":{"employer_id":"EMP-1","amount":"1200","currency":"JPY","period":"2025-02"}}`; !bytes.HasSuffix(got, []byte(want)) {
		t.Errorf("Encode: got %s, want it to end with %s", got, want)
	}
}

// TestEncodeRefuses: Encode never writes what Decode refuses, and says why as Decode would.
func TestEncodeRefuses(t *testing.T) {
	valid := func() events.Event {
		return events.Event{
			ID: uuid.MustParse("0195a3c2-5e00-7a41-8b3e-2f7d9c1e4a01"), Type: events.TypePurchaseCleared,
			OccurredAt: time.Date(2025, 3, 1, 0, 30, 0, 0, time.UTC), CardToken: tokCard,
			Data: &events.PurchaseCleared{MerchantID: "M1", Amount: events.Money{Minor: 1234, Currency: "CNY"}, MCC: "5912"},
		}
	}
	if _, err := events.Encode(valid()); err != nil {
		t.Fatalf("the valid event: %v", err)
	}
	for _, tc := range []struct {
		name   string
		change func(*events.Event)
		want   string
	}{
		{"nil data", func(e *events.Event) { e.Data = nil }, "data: missing payload"},
		{"nil payload", func(e *events.Event) { e.Data = (*events.PurchaseCleared)(nil) }, "data: missing payload"},
		{"type mismatch", func(e *events.Event) { e.Type = events.TypeFundsLoaded }, `type: is "funds.loaded" but data is a purchase.cleared payload`},
		{"nil id", func(e *events.Event) { e.ID = uuid.Nil }, "event_id: is the nil UUID"},
		{"zero time", func(e *events.Event) { e.OccurredAt = time.Time{} }, `occurred_at: "0001-01-01T00:00:00Z" is before 2024-01-01T00:00:00Z, when no card existed: a clock reset to its epoch`},
		{"no card token", func(e *events.Event) { e.CardToken = "" }, "card_token: must not be empty"},
		{"zero amount", func(e *events.Event) { e.Data.(*events.PurchaseCleared).Amount.Minor = 0 }, `data.amount: "0.00" is zero, amounts must be positive`},
		{"negative amount", func(e *events.Event) { e.Data.(*events.PurchaseCleared).Amount.Minor = -5 }, `data.amount: "-0.05" is negative, amounts must be positive`},
		{"no currency", func(e *events.Event) { e.Data.(*events.PurchaseCleared).Amount.Currency = "" }, `data.currency: must not be empty`},
		{"unknown currency", func(e *events.Event) { e.Data.(*events.PurchaseCleared).Amount.Currency = "GBP" }, `data.currency: unknown currency "GBP"`},
		{"bad mcc", func(e *events.Event) { e.Data.(*events.PurchaseCleared).MCC = "59" }, `data.mcc: "59" is not a merchant category code, want 4 digits`},
		{"invalid UTF-8", func(e *events.Event) { e.Data.(*events.PurchaseCleared).MerchantID = "M\xff" }, `invalid JSON at byte 233: invalid UTF-8 in a string`},
		{"control character", func(e *events.Event) { e.Data.(*events.PurchaseCleared).MerchantID = "M\n1" }, `data.merchant_id: must be printable ASCII without spaces`},
		{"invalid date", func(e *events.Event) {
			e.Type, e.Data = events.TypeCardPermitRenewed, &events.CardPermitRenewed{PermitValidUntil: events.Date{Year: 2027, Month: 2, Day: 29}}
		}, `data.permit_valid_until: "2027-02-29" is not a valid date`},
		{"clear number as a token", func(e *events.Event) {
			r := *mustDecode(t, base[events.TypeCardRegistered]).Data.(*events.CardRegistered)
			r.PassportToken = "E12345678"
			e.Type, e.Data = events.TypeCardRegistered, &r
		}, `data.passport_token: not a token, want tok_ followed by 43 base64url characters`},
		{"clear card number as the mask", func(e *events.Event) {
			r := *mustDecode(t, base[events.TypeCardRegistered]).Data.(*events.CardRegistered)
			r.CardNumberMasked = "6228481234561234"
			e.Type, e.Data = events.TypeCardRegistered, &r
		}, `data.card_number_masked: reveals more than the first 6 and last 4 digits`},
	} {
		e := valid()
		tc.change(&e)
		b, err := events.Encode(e)
		if err == nil {
			t.Errorf("%s: Encode wrote %s, want an error", tc.name, b)
			continue
		}
		var de *events.DecodeError
		if !errors.As(err, &de) {
			t.Errorf("%s: error %v does not wrap a *DecodeError", tc.name, err)
			continue
		}
		if de.Error() != tc.want {
			t.Errorf("%s:\n got %s\nwant %s", tc.name, de, tc.want)
		}
	}
}
