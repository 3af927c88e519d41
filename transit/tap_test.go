package transit

import (
	"math"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/joinincard/engine/events"
)

func TestDecide(t *testing.T) {
	ts := shippedTables(t)
	now := time.Date(2026, time.March, 2, 12, 0, 0, 0, shanghai)
	raw := func(change func(r *RawTap)) *RawTap {
		r := &RawTap{DeviceID: "GATE-0107-03", DeviceSeq: "184467", CardToken: "tok_physical", TappedAt: "2026-03-02T08:12:03.120+08:00",
			StationID: "0107", Line: "1", Direction: "in", Mode: "metro"}
		if change != nil {
			change(r)
		}
		return r
	}
	seq := 10
	next := func(r *RawTap) { seq++; r.DeviceSeq = strconv.Itoa(seq) }
	cases := []struct {
		name   string
		op     string
		raw    *RawTap
		result Result
		reason Reason
		detail string
	}{
		{"accepted", "HZMETRO", raw(next), Accepted, "", ""},
		{"accepted by another token of the card", "HZMETRO", raw(func(r *RawTap) { next(r); r.CardToken = "tok_card" }), Accepted, "", ""},
		{"duplicate of an earlier batch", "HZMETRO", raw(func(r *RawTap) { r.DeviceSeq = "1" }), Duplicate, "", "seen before"},
		{"duplicate within the batch", "HZMETRO", raw(func(r *RawTap) { r.DeviceSeq = "12" }), Duplicate, "", ""},
		{"same sequence on another device", "HZMETRO", raw(func(r *RawTap) { r.DeviceSeq, r.DeviceID = "1", "GATE-2" }), Accepted, "", ""},
		{"no device", "HZMETRO", raw(func(r *RawTap) { next(r); r.DeviceID = "" }), Rejected, ReasonMalformed, "device_id: missing"},
		{"sequence not a number", "HZMETRO", raw(func(r *RawTap) { r.DeviceSeq = "12a" }), Rejected, ReasonMalformed, "device_seq"},
		{"sequence negative", "HZMETRO", raw(func(r *RawTap) { r.DeviceSeq = "-1" }), Rejected, ReasonMalformed, "device_seq"},
		{"sequence past int64", "HZMETRO", raw(func(r *RawTap) { r.DeviceSeq = "9223372036854775808" }), Rejected, ReasonMalformed, "device_seq: more than"},
		{"no card", "HZMETRO", raw(func(r *RawTap) { next(r); r.CardToken = "" }), Rejected, ReasonMalformed, "card_token: missing"},
		{"card number with spaces", "HZMETRO", raw(func(r *RawTap) { next(r); r.CardToken = "6228 4804" }), Rejected, ReasonMalformed, "card_token"},
		{"time without zone", "HZMETRO", raw(func(r *RawTap) { next(r); r.TappedAt = "2026-03-02T08:12:03" }), Rejected, ReasonMalformed, "tapped_at"},
		{"time not a time", "HZMETRO", raw(func(r *RawTap) { next(r); r.TappedAt = "yesterday" }), Rejected, ReasonMalformed, "tapped_at"},
		{"direction", "HZMETRO", raw(func(r *RawTap) { next(r); r.Direction = "sideways" }), Rejected, ReasonMalformed, "direction: want in, out or single"},
		{"single on a metro", "HZMETRO", raw(func(r *RawTap) { next(r); r.Direction = "single" }), Rejected, ReasonMalformed, "take in and out"},
		{"in on a bus", "HZBUS", raw(func(r *RawTap) { next(r); r.Mode, r.StationID, r.Line = "bus", "K155-07", "K155" }), Rejected, ReasonMalformed, "take single taps"},
		{"bus mode on a metro", "HZMETRO", raw(func(r *RawTap) { next(r); r.Mode = "bus" }), Rejected, ReasonMalformed, "mode: bus, the operator runs metro"},
		{"unknown station", "HZMETRO", raw(func(r *RawTap) { next(r); r.StationID = "9999" }), Rejected, ReasonUnknownStation, `station "9999" is not the operator's`},
		{"station on another line", "HZMETRO", raw(func(r *RawTap) { next(r); r.Line = "2" }), Rejected, ReasonUnknownStation, `not on line "2"`},
		{"operator without a table", "XXMETRO", raw(next), Rejected, ReasonUnknownOperator, "no fare table"},
		{"operator not registered", "SHMETRO", raw(func(r *RawTap) { next(r); r.StationID = "0113" }), Rejected, ReasonUnknownOperator, "not registered"},
		{"in the future", "HZMETRO", raw(func(r *RawTap) { next(r); r.TappedAt = "2026-03-02T12:11:00+08:00" }), Rejected, ReasonInFuture, "after the engine's clock"},
		{"a little ahead", "HZMETRO", raw(func(r *RawTap) { next(r); r.TappedAt = "2026-03-02T12:09:00+08:00" }), Accepted, "", ""},
		{"too old", "HZMETRO", raw(func(r *RawTap) { next(r); r.TappedAt = "2026-01-30T12:00:00+08:00" }), Rejected, ReasonTooOld, "30 days"},
		{"unknown card", "HZMETRO", raw(func(r *RawTap) { next(r); r.CardToken = "tok_nobody" }), Rejected, ReasonUnknownCard, "no card"},
		{"denied card", "HZMETRO", raw(func(r *RawTap) { next(r); r.CardToken = "tok_owing" }), Rejected, ReasonDenied, "deny list"},
		{"denied card, tapped before", "HZMETRO", raw(func(r *RawTap) { next(r); r.CardToken = "tok_owing"; r.TappedAt = "2026-03-02T06:00:00+08:00" }), Accepted, "", ""},
		{"bus without a line", "HZBUS", raw(func(r *RawTap) { next(r); r.Mode, r.StationID, r.Line, r.Direction = "bus", "K155-07", "", "single" }), Accepted, "", ""},
	}
	v := &View{
		Cards:       map[string]string{"tok_physical": "tok_card", "tok_card": "tok_card", "tok_owing": "tok_owing"},
		DeniedSince: map[string]time.Time{"tok_owing": time.Date(2026, time.March, 2, 7, 0, 0, 0, shanghai)},
		Seen:        map[Key]bool{{"HZMETRO", "GATE-0107-03", 1}: true},
		Operators:   map[string]bool{"HZMETRO": true, "HZBUS": true},
	}
	var cands []Candidate
	for _, c := range cases {
		cands = append(cands, ts.ParseTap(c.op, c.raw))
	}
	// "duplicate within the batch" names seq 12, accepted two cases before it.
	out := Decide(cands, v, now)
	for i, c := range cases {
		o := out[i]
		if o.Result != c.result || o.Reason != c.reason || !strings.Contains(o.Detail, c.detail) {
			t.Errorf("%s: %+v, want %s %s %q", c.name, o, c.result, c.reason, c.detail)
		}
		if strings.Contains(o.Detail, "tok_") {
			t.Errorf("%s: the detail repeats a card token: %q", c.name, o.Detail)
		}
		if o.Result == Accepted && cands[i].Tap.Card != "tok_card" && cands[i].Tap.Card != "tok_owing" {
			t.Errorf("%s: accepted for card %q, want the card's own token", c.name, cands[i].Tap.Card)
		}
	}
}

func TestTapFromEvent(t *testing.T) {
	ts := shippedTables(t)
	e := &events.TransitTap{OperatorID: "HZBUS", DeviceID: "BUS-K155-2", DeviceSeq: 90211, TappedAt: time.Date(2025, 3, 1, 10, 40, 0, 0, time.UTC),
		StationID: "K155-07", Direction: events.DirectionSingle, Mode: events.ModeBus}
	c := ts.TapFromEvent("tok_card", e)
	if c.Refused.Result != "" || c.Tap.Key() != (Key{"HZBUS", "BUS-K155-2", 90211}) || c.Tap.Card != "tok_card" {
		t.Fatalf("%+v", c)
	}
	e.DeviceSeq = math.MaxUint64
	if c := ts.TapFromEvent("tok_card", e); c.Refused.Reason != ReasonMalformed {
		t.Fatalf("a sequence past int64: %+v", c)
	}
}
