package transit

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/joinincard/engine/cards"
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
		{"card number in clear", "HZMETRO", raw(func(r *RawTap) { next(r); r.CardToken = "6228-4804-0256-4899" }), Rejected, ReasonMalformed, "card_token: looks like a card number in clear"},
		{"card token with a nul byte", "HZMETRO", raw(func(r *RawTap) { next(r); r.CardToken = "tok\x00x" }), Rejected, ReasonMalformed, "card_token: must be printable"},
		{"time without zone", "HZMETRO", raw(func(r *RawTap) { next(r); r.TappedAt = "2026-03-02T08:12:03" }), Rejected, ReasonMalformed, "tapped_at"},
		{"time not a time", "HZMETRO", raw(func(r *RawTap) { next(r); r.TappedAt = "yesterday" }), Rejected, ReasonMalformed, "tapped_at"},
		{"direction", "HZMETRO", raw(func(r *RawTap) { next(r); r.Direction = "sideways" }), Rejected, ReasonMalformed, "direction: want in, out or single"},
		{"single on a metro", "HZMETRO", raw(func(r *RawTap) { next(r); r.Direction = "single" }), Rejected, ReasonMalformed, "take in and out"},
		{"in on a bus", "HZBUS", raw(func(r *RawTap) { next(r); r.Mode, r.StationID, r.Line = "bus", "K155-07", "K155" }), Rejected, ReasonMalformed, "take single taps"},
		{"bus mode on a metro", "HZMETRO", raw(func(r *RawTap) { next(r); r.Mode = "bus" }), Rejected, ReasonMalformed, "mode: bus, the operator runs metro"},
		{"unknown station", "HZMETRO", raw(func(r *RawTap) { next(r); r.StationID = "9999" }), Rejected, ReasonUnknownStation, `station "9999" is not the operator's`},
		{"card number as the station", "HZMETRO", raw(func(r *RawTap) { next(r); r.StationID = "6228480402564899" }), Rejected, ReasonUnknownStation, "station " + events.Withheld + " is not the operator's"},
		{"station on another line", "HZMETRO", raw(func(r *RawTap) { next(r); r.Line = "2" }), Rejected, ReasonUnknownStation, `not on line "2"`},
		{"operator without a table", "XXMETRO", raw(next), Rejected, ReasonUnknownOperator, "no fare table"},
		{"operator not registered", "SHMETRO", raw(func(r *RawTap) { next(r); r.StationID = "0113" }), Rejected, ReasonUnknownOperator, "not registered"},
		{"in the future", "HZMETRO", raw(func(r *RawTap) { next(r); r.TappedAt = "2026-03-02T12:11:00+08:00" }), Rejected, ReasonInFuture, "after the engine's clock"},
		{"a little ahead", "HZMETRO", raw(func(r *RawTap) { next(r); r.TappedAt = "2026-03-02T12:09:00+08:00" }), Accepted, "", ""},
		{"too old", "HZMETRO", raw(func(r *RawTap) { next(r); r.TappedAt = "2026-01-30T12:00:00+08:00" }), Rejected, ReasonTooOld, "30 days"},
		{"older than every fare table", "HZMETRO", raw(func(r *RawTap) { next(r); r.TappedAt = "0001-01-01T08:00:00+08:00" }), Rejected, ReasonTooOld, "30 days"},
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
	out := ts.Decide(cands, v, now)
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

// A card that may not travel at the time it tapped is refused with a reason per status, judged at
// the tap's time rather than the engine's; a tap out that ends a journey entered while the card
// could travel is let through.
func TestDecideRefusesCardsThatMayNotTravelWhenTheyTapped(t *testing.T) {
	ts := shippedTables(t)
	at := func(hm string) time.Time {
		v, err := time.ParseInLocation("2006-01-02 15:04", "2026-03-02 "+hm, shanghai)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	now := at("12:00")
	valid := events.Date{Year: 2027, Month: time.June, Day: 30}
	blockedAt := func(hm, reason string) *CardStatus {
		return &CardStatus{PermitValidUntil: valid, History: []cards.StatusChange{{At: at(hm), Declared: events.StatusBlocked, Reason: reason}}}
	}
	v := &View{
		Cards: map[string]string{},
		Status: map[string]*CardStatus{
			"lost":   blockedAt("09:00", "reported lost by the cardholder"),
			"stolen": blockedAt("09:00", "reported stolen"),
			"fraud":  blockedAt("09:00", "suspected fraud"),
			"closed": {PermitValidUntil: valid, History: []cards.StatusChange{{At: at("09:00"), Declared: events.StatusClosed, Reason: "left"}}},
			// The permit's last day was yesterday: expired since midnight.
			"expired": {PermitValidUntil: events.Date{Year: 2026, Month: time.March, Day: 1}},
			"found": {PermitValidUntil: valid, History: []cards.StatusChange{
				{At: at("08:00"), Declared: events.StatusBlocked, Reason: "lost"}, {At: at("10:00"), Declared: events.StatusActive, Reason: "found"}}},
			"active": {PermitValidUntil: valid},
		},
		DeniedSince: map[string]time.Time{"owing": at("09:00")},
		Seen:        map[Key]bool{},
		Operators:   map[string]bool{"HZMETRO": true, "HZBUS": true},
		Recent:      map[string][]Tap{},
	}
	for card := range v.Status {
		v.Cards[card] = card
	}
	v.Cards["owing"] = "owing"
	seq := 0
	tap := func(card, hm, dir, station string) Candidate {
		seq++
		return ts.ParseTap("HZMETRO", &RawTap{DeviceID: "GATE-1", DeviceSeq: strconv.Itoa(seq), CardToken: card,
			TappedAt: at(hm).Format(time.RFC3339), StationID: station, Line: "1", Direction: dir, Mode: "metro"})
	}
	cases := []struct {
		cand   Candidate
		result Result
		reason Reason
		detail string
	}{
		{tap("lost", "08:30", "in", "0101"), Accepted, "", ""},
		// Out of the journey entered before the block, within the metro's four hours.
		{tap("lost", "09:20", "out", "0105"), Accepted, "", ""},
		{tap("lost", "09:30", "in", "0105"), Rejected, ReasonCardBlocked, "blocked (lost) since 2026-03-02T09:00:00+08:00"},
		{tap("lost", "09:50", "out", "0101"), Rejected, ReasonCardBlocked, "blocked (lost)"},
		{tap("stolen", "09:00", "in", "0101"), Rejected, ReasonCardBlocked, "blocked (stolen)"},
		{tap("fraud", "11:00", "in", "0101"), Rejected, ReasonCardBlocked, "blocked (blocked)"},
		{tap("closed", "08:59", "in", "0101"), Accepted, "", ""},
		{tap("closed", "09:01", "in", "0101"), Rejected, ReasonCardClosed, "closed since"},
		{tap("expired", "07:00", "in", "0101"), Rejected, ReasonPermitExpired, "expired at 2026-03-02T00:00:00+08:00"},
		{tap("found", "09:00", "in", "0101"), Rejected, ReasonCardBlocked, "blocked (lost)"},
		{tap("found", "10:00", "in", "0101"), Accepted, "", ""},
		{tap("owing", "08:00", "in", "0101"), Accepted, "", ""},
		{tap("owing", "09:10", "out", "0103"), Accepted, "", ""},
		{tap("owing", "09:20", "in", "0103"), Rejected, ReasonDenied, "unpaid fares"},
		{tap("active", "11:00", "in", "0101"), Accepted, "", ""},
	}
	cands := make([]Candidate, len(cases))
	for i := range cases {
		cands[i] = cases[i].cand
	}
	stopped, from, to := Stopped(cands, v)
	slices.Sort(stopped)
	if strings.Join(stopped, " ") != "closed expired found fraud lost owing stolen" || !from.Equal(at("07:00").Add(-24*time.Hour)) ||
		!to.Equal(at("11:00")) {
		t.Fatalf("stopped %v from %s to %s", stopped, from, to)
	}
	for _, card := range stopped {
		v.Recent[card] = nil
	}
	out := ts.Decide(cands, v, now)
	for i, c := range cases {
		o := out[i]
		if o.Result != c.result || o.Reason != c.reason || !strings.Contains(o.Detail, c.detail) {
			t.Errorf("%s %s at %s: %+v, want %s %s %q", c.cand.Tap.Card, c.cand.Tap.Direction, c.cand.Tap.At.In(shanghai).Format("15:04"),
				o, c.result, c.reason, c.detail)
		}
	}
}

// A card pays for the taps it made while it could travel, and for the taps out that end a journey
// it entered then: what intake accepts.
func TestPayableLeavesOutTapsMadeAfterTheCardStopped(t *testing.T) {
	ts := shippedTables(t)
	at := func(hm string) time.Time {
		v, err := time.ParseInLocation("2006-01-02 15:04", "2026-03-02 "+hm, shanghai)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	st := &CardStatus{PermitValidUntil: events.Date{Year: 2027, Month: time.June, Day: 30},
		History: []cards.StatusChange{{At: at("09:00"), Declared: events.StatusBlocked, Reason: "lost"}}}
	taps := []Tap{
		{Operator: "HZMETRO", Device: "g", Seq: 4, At: at("09:30"), Direction: events.DirectionIn},
		{Operator: "HZMETRO", Device: "g", Seq: 1, At: at("08:30"), Direction: events.DirectionIn},
		{Operator: "HZBUS", Device: "b", Seq: 1, At: at("08:50"), Direction: events.DirectionSingle},
		{Operator: "HZMETRO", Device: "g", Seq: 2, At: at("09:10"), Direction: events.DirectionOut},
		{Operator: "HZBUS", Device: "b", Seq: 2, At: at("09:05"), Direction: events.DirectionSingle},
		{Operator: "HZMETRO", Device: "g", Seq: 5, At: at("09:40"), Direction: events.DirectionOut},
	}
	var kept []int64
	for _, tp := range ts.Payable(taps, st) {
		kept = append(kept, tp.Seq)
	}
	slices.Sort(kept)
	if fmt.Sprint(kept) != "[1 1 2]" {
		t.Errorf("payable taps %v, want the bus at 08:50 and the journey 08:30-09:10", kept)
	}
	if got := ts.Payable(taps, nil); len(got) != len(taps) {
		t.Errorf("a card always active pays %d of %d taps", len(got), len(taps))
	}
}

// The deny list carries a card that may not travel with its status's cause, and one that owes
// fares as such.
func TestDenyGivesTheStatusFirstThenFaresOwed(t *testing.T) {
	now := time.Date(2026, time.March, 2, 12, 0, 0, 0, shanghai)
	blocked := time.Date(2026, time.March, 2, 9, 0, 0, 0, shanghai)
	owedSince := time.Date(2026, time.February, 27, 5, 0, 0, 0, shanghai)
	valid := events.Date{Year: 2027, Month: time.June, Day: 30}
	for _, tc := range []struct {
		st     *CardStatus
		owed   int64
		reason DenyReason
		since  time.Time
	}{
		{nil, 0, "", time.Time{}},
		{&CardStatus{PermitValidUntil: valid}, 700, DenyFaresOwed, owedSince},
		{&CardStatus{PermitValidUntil: valid, History: []cards.StatusChange{{At: blocked, Declared: events.StatusBlocked, Reason: "stolen"}}}, 700,
			DenyReason(cards.CauseStolen), blocked},
		{&CardStatus{PermitValidUntil: valid, History: []cards.StatusChange{{At: blocked, Declared: events.StatusClosed, Reason: "left"}}}, 0,
			DenyReason(cards.CauseClosed), blocked},
		{&CardStatus{PermitValidUntil: events.Date{Year: 2026, Month: time.February, Day: 28}}, 0, DenyReason(cards.CausePermitExpired),
			time.Date(2026, time.March, 1, 0, 0, 0, 0, shanghai)},
	} {
		var owed time.Time
		if tc.owed > 0 {
			owed = owedSince
		}
		reason, since, denied := Deny(tc.st, tc.owed, owed, now)
		if reason != tc.reason || !since.Equal(tc.since) || denied != (tc.reason != "") {
			t.Errorf("%+v owing %d: %q since %s (%v), want %q since %s", tc.st, tc.owed, reason, since, denied, tc.reason, tc.since)
		}
	}
}

// Whether a blocked card's tap out ends a journey depends on its taps in tap order, not on the
// order the batch lists them in.
func TestDecideJudgesAStoppedCardsExitsInTapOrder(t *testing.T) {
	ts := shippedTables(t)
	at := func(hm string) time.Time {
		v, err := time.ParseInLocation("2006-01-02 15:04", "2026-03-02 "+hm, shanghai)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	v := &View{
		Cards: map[string]string{"lost": "lost"},
		Status: map[string]*CardStatus{"lost": {PermitValidUntil: events.Date{Year: 2027, Month: time.June, Day: 30},
			History: []cards.StatusChange{{At: at("09:00"), Declared: events.StatusBlocked, Reason: "lost"}}}},
		Seen:      map[Key]bool{},
		Operators: map[string]bool{"HZMETRO": true},
		Recent:    map[string][]Tap{"lost": nil},
	}
	var cands []Candidate
	for i, tp := range []struct{ hm, dir, station string }{{"10:30", "out", "0105"}, {"08:50", "in", "0101"}, {"09:10", "out", "0103"}} {
		cands = append(cands, ts.ParseTap("HZMETRO", &RawTap{DeviceID: "GATE-1", DeviceSeq: strconv.Itoa(i), CardToken: "lost",
			TappedAt: at(tp.hm).Format(time.RFC3339), StationID: tp.station, Line: "1", Direction: tp.dir, Mode: "metro"}))
	}
	var got []string
	for _, o := range ts.Decide(cands, v, at("12:00")) {
		got = append(got, string(o.Result)+":"+string(o.Reason))
	}
	if strings.Join(got, " ") != "rejected:card_blocked accepted: accepted:" {
		t.Fatalf("outcomes %v", got)
	}
}

// An uploaded tap's time is read as a transit.tap event's is: every zone offset names one instant,
// and what the event decoder refuses (an offset that says the local time is unknown, a comma for
// the decimal point, a fraction finer than nanoseconds) is malformed through either door.
func TestParseTapReadsTheTimeAsTheEventDecoderDoes(t *testing.T) {
	ts := shippedTables(t)
	tap := func(at string) Candidate {
		return ts.ParseTap("HZMETRO", &RawTap{DeviceID: "GATE-0107-03", DeviceSeq: "1", CardToken: "tok_card", TappedAt: at,
			StationID: "0107", Line: "1", Direction: "in", Mode: "metro"})
	}
	want := time.Date(2026, time.March, 2, 0, 12, 3, 120_000_000, time.UTC)
	for _, at := range []string{"2026-03-02T08:12:03.12+08:00", "2026-03-02T00:12:03.120Z", "2026-03-01T19:12:03.12-05:00"} {
		if c := tap(at); c.Refused.Result != "" || !c.Tap.At.Equal(want) {
			t.Errorf("%s: %+v, want the tap at %s", at, c, want)
		}
	}
	for _, at := range []string{"2026-03-02T08:12:03-00:00", "2026-03-02T08:12:03,12+08:00", "2026-03-02T08:12:03.1234567891+08:00",
		"2026-03-02T23:59:60+08:00", "2026-03-02T08:12:03+0800", "2026-03-02T08:12:03"} {
		c := tap(at)
		if c.Refused.Result != Rejected || c.Refused.Reason != ReasonMalformed || !strings.Contains(c.Refused.Detail, "tapped_at") {
			t.Errorf("%s: %+v, want malformed tapped_at", at, c.Refused)
		}
		if _, err := events.Decode(tapEvent(at)); err == nil || !strings.Contains(err.Error(), "tapped_at") {
			t.Errorf("%s: the event decoder says %v, want tapped_at refused", at, err)
		}
	}
	if _, err := events.Decode(tapEvent("2026-03-02T08:12:03.12+08:00")); err != nil {
		t.Fatalf("the event: %v", err)
	}
}

// tapEvent is a transit.tap event tapped at at.
func tapEvent(at string) []byte {
	return fmt.Appendf(nil, `{"schema":"joinin.card-event.v1","event_id":"0195d1a4-5b1e-7000-8000-000000000001","type":"transit.tap",`+
		`"occurred_at":"2026-03-02T08:12:04+08:00","card_token":"tok_card","data":{"operator_id":"HZMETRO","device_id":"GATE-0107-03",`+
		`"device_seq":1,"tapped_at":%q,"station_id":"0107","direction":"in","mode":"metro"}}`, at)
}

// No card had its token before the card was issued: a tap dated before the card's issue (its
// registration's occurred_at) by more than a reader's clock may be behind (MaxTapBeforeIssue) is
// refused as a tap of no card, uploaded late or not, and the card pays nothing for it.
func TestDecideRefusesTapsBeforeTheCardWasIssued(t *testing.T) {
	ts := shippedTables(t)
	at := func(hm string) time.Time {
		v, err := time.ParseInLocation("2006-01-02 15:04", "2026-03-02 "+hm, shanghai)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	valid := events.Date{Year: 2027, Month: time.June, Day: 30}
	v := &View{
		Cards:     map[string]string{"new": "new", "old": "old"},
		Status:    map[string]*CardStatus{"new": {PermitValidUntil: valid, IssuedAt: at("10:00")}, "old": {PermitValidUntil: valid}},
		Seen:      map[Key]bool{},
		Operators: map[string]bool{"HZBUS": true},
		Recent:    map[string][]Tap{},
	}
	seq := 0
	tap := func(card, hm string) Candidate {
		seq++
		return ts.ParseTap("HZBUS", &RawTap{DeviceID: "BUS-1", DeviceSeq: strconv.Itoa(seq), CardToken: card,
			TappedAt: at(hm).Format(time.RFC3339), StationID: "K155-01", Line: "K155", Direction: "single", Mode: "bus"})
	}
	cases := []struct {
		cand   Candidate
		result Result
		reason Reason
		detail string
	}{
		{tap("new", "08:00"), Rejected, ReasonUnknownCard, "no card had this token when it tapped: the card was issued at 2026-03-02T10:00:00+08:00"},
		{tap("new", "09:49"), Rejected, ReasonUnknownCard, "issued at"},
		{tap("new", "09:50"), Accepted, "", ""},
		{tap("new", "10:30"), Accepted, "", ""},
		{tap("old", "08:00"), Accepted, "", ""}, // registered before the engine kept the issue time
	}
	cands := make([]Candidate, len(cases))
	for i := range cases {
		cands[i] = cases[i].cand
	}
	out := ts.Decide(cands, v, at("12:00"))
	for i, c := range cases {
		o := out[i]
		if o.Result != c.result || o.Reason != c.reason || !strings.Contains(o.Detail, c.detail) {
			t.Errorf("%s at %s: %+v, want %s %s %q", c.cand.Tap.Card, c.cand.Tap.At.In(shanghai).Format("15:04"), o, c.result, c.reason, c.detail)
		}
	}
}
