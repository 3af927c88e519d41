package transit

import (
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/joinincard/engine/events"
)

const (
	// MaxTapAhead: a tap stamped this far after the engine's clock is refused as in the future.
	// Readers' clocks drift by seconds to minutes; a reader writing local time as UTC is 8 hours
	// ahead and must be fixed, not believed.
	MaxTapAhead = 10 * time.Minute
	// MaxTapAge: a tap older than this is refused. Offline readers upload within days; older taps
	// belong to settlement cycles already reconciled with the banks (the event schema's bound).
	MaxTapAge = 30 * 24 * time.Hour
	// maxCardTokenBytes is the event schema's bound on a card token.
	maxCardTokenBytes = 64
)

// Tap is one accepted-shape tap of a card on an operator's device.
type Tap struct {
	Operator  string
	Device    string
	Seq       int64 // the device's sequence number: the same (operator, device, seq) is one tap
	Card      string
	At        time.Time
	Station   string
	Line      string // "" when the reader does not say
	Direction events.Direction
	Mode      events.Mode
}

// Key identifies a tap: its operator's device and the device's sequence number.
type Key struct {
	Operator string
	Device   string
	Seq      int64
}

// Key is the tap's identity.
func (t *Tap) Key() Key { return Key{t.Operator, t.Device, t.Seq} }

// Result is what became of a tap.
type Result string

const (
	Accepted  Result = "accepted"  // recorded; it is priced when its travel day closes
	Duplicate Result = "duplicate" // the same device and sequence was accepted before; dropped
	Rejected  Result = "rejected"  // refused, with a reason; nothing of it is kept but the answer
)

// Reason says why a tap was rejected.
type Reason string

const (
	ReasonMalformed       Reason = "malformed"        // a field is missing or not what it must be
	ReasonUnknownOperator Reason = "unknown_operator" // no fare table, or not registered
	ReasonUnknownStation  Reason = "unknown_station"  // not a station (on the line) of the operator
	ReasonUnknownCard     Reason = "unknown_card"     // no card has this token
	ReasonDenied          Reason = "card_denied"      // the card was on the deny list when it tapped
	ReasonInFuture        Reason = "time_in_future"   // tapped after the engine's clock, past MaxTapAhead
	ReasonTooOld          Reason = "too_old"          // tapped more than MaxTapAge ago
)

// Outcome is one tap's answer.
type Outcome struct {
	Result Result
	Reason Reason // for Rejected
	Detail string // for people: which field, what is wrong; never the card token
}

func reject(r Reason, format string, args ...any) Outcome {
	return Outcome{Result: Rejected, Reason: r, Detail: fmt.Sprintf(format, args...)}
}

// RawTap is a tap as an operator uploads it in a batch: every field as text.
type RawTap struct {
	DeviceID  string
	DeviceSeq string
	CardToken string
	TappedAt  string
	StationID string
	Line      string
	Direction string
	Mode      string
}

// Candidate is a tap to decide: parsed, or already refused (Refused.Result is set).
type Candidate struct {
	Tap     Tap
	Refused Outcome
}

// ParseTap reads a tap uploaded by operator and checks it against the operator's fare table.
func (t *Tables) ParseTap(operator string, raw *RawTap) Candidate {
	var tap Tap
	tap.Operator = operator
	if why := checkID(raw.DeviceID); why != "" {
		return Candidate{Refused: reject(ReasonMalformed, "device_id: %s", why)}
	}
	tap.Device = raw.DeviceID
	seq, err := strconv.ParseUint(raw.DeviceSeq, 10, 64)
	if err != nil || raw.DeviceSeq[0] == '+' {
		return Candidate{Refused: reject(ReasonMalformed, "device_seq: want an integer from 0 to %d", int64(math.MaxInt64))}
	}
	if seq > math.MaxInt64 {
		return Candidate{Refused: reject(ReasonMalformed, "device_seq: more than %d", int64(math.MaxInt64))}
	}
	tap.Seq = int64(seq)
	if raw.CardToken == "" {
		return Candidate{Refused: reject(ReasonMalformed, "card_token: missing")}
	}
	if why := checkID(raw.CardToken); why != "" || len(raw.CardToken) > maxCardTokenBytes {
		return Candidate{Refused: reject(ReasonMalformed, "card_token: want 1 to %d printable ascii characters without spaces", maxCardTokenBytes)}
	}
	tap.Card = raw.CardToken
	at, err := time.Parse(time.RFC3339Nano, raw.TappedAt)
	if err != nil || len(raw.TappedAt) < len("2006-01-02T15:04:05Z") || raw.TappedAt[10] != 'T' {
		return Candidate{Refused: reject(ReasonMalformed, "tapped_at: want rfc 3339 with a zone, such as 2025-03-01T08:12:03+08:00")}
	}
	tap.At = at.UTC()
	tap.Station, tap.Line = raw.StationID, raw.Line
	tap.Direction, tap.Mode = events.Direction(raw.Direction), events.Mode(raw.Mode)
	return t.check(tap)
}

// TapFromEvent is the tap of a transit.tap event, checked against the operator's fare table. The
// event decoder has checked the fields' shapes.
func (t *Tables) TapFromEvent(card string, e *events.TransitTap) Candidate {
	if e.DeviceSeq > math.MaxInt64 {
		return Candidate{Refused: reject(ReasonMalformed, "device_seq: more than %d", int64(math.MaxInt64))}
	}
	return t.check(Tap{Operator: e.OperatorID, Device: e.DeviceID, Seq: int64(e.DeviceSeq), Card: card, At: e.TappedAt.UTC(),
		Station: e.StationID, Line: e.Line, Direction: e.Direction, Mode: e.Mode})
}

// check checks what a tap says against its operator's fare table.
func (t *Tables) check(tap Tap) Candidate {
	if why := checkID(tap.Station); why != "" {
		return Candidate{Refused: reject(ReasonMalformed, "station_id: %s", why)}
	}
	if tap.Line != "" {
		if why := checkID(tap.Line); why != "" {
			return Candidate{Refused: reject(ReasonMalformed, "line: %s", why)}
		}
	}
	switch tap.Mode {
	case events.ModeMetro, events.ModeBus:
	default:
		return Candidate{Refused: reject(ReasonMalformed, "mode: want metro or bus")}
	}
	switch tap.Direction {
	case events.DirectionIn, events.DirectionOut, events.DirectionSingle:
	default:
		return Candidate{Refused: reject(ReasonMalformed, "direction: want in, out or single")}
	}
	op, ok := t.operators[tap.Operator]
	if !ok {
		return Candidate{Refused: reject(ReasonUnknownOperator, "operator %q has no fare table", tap.Operator)}
	}
	if tap.Mode != op.Mode {
		return Candidate{Refused: reject(ReasonMalformed, "mode: %s, the operator runs %s", tap.Mode, op.Mode)}
	}
	if op.Pricing == PricingFlat && tap.Direction != events.DirectionSingle {
		return Candidate{Refused: reject(ReasonMalformed, "direction: %s, the operator's flat fares take single taps", tap.Direction)}
	}
	if op.Pricing == PricingDistance && tap.Direction == events.DirectionSingle {
		return Candidate{Refused: reject(ReasonMalformed, "direction: single, the operator's distance fares take in and out")}
	}
	if !op.HasStation(tap.Station, tap.Line) {
		if tap.Line != "" && op.HasStation(tap.Station, "") {
			return Candidate{Refused: reject(ReasonUnknownStation, "station %q is not on line %q", tap.Station, tap.Line)}
		}
		return Candidate{Refused: reject(ReasonUnknownStation, "station %q is not the operator's", tap.Station)}
	}
	return Candidate{Tap: tap}
}

// View is what deciding taps needs to know of the world; the store prefetches it.
type View struct {
	// Cards maps every token that names a known card to the card's own token.
	Cards map[string]string
	// DeniedSince holds, for each card on the deny list (by its own token), when it went on it.
	DeniedSince map[string]time.Time
	// Seen holds the taps accepted before. Decide adds the taps it accepts.
	Seen map[Key]bool
	// Operators holds the operators registered for transit (with a clearing account).
	Operators map[string]bool
}

// Decide gives each candidate its outcome at instant now, in order: malformed or unknown to the
// fare table, unknown operator, duplicate (seen before, or earlier in the same batch), in the
// future, too old, unknown card, denied. An accepted tap's Card becomes the card's own token.
func Decide(cands []Candidate, v *View, now time.Time) []Outcome {
	out := make([]Outcome, len(cands))
	for i := range cands {
		c := &cands[i]
		if c.Refused.Result != "" {
			out[i] = c.Refused
			continue
		}
		tap := &c.Tap
		if !v.Operators[tap.Operator] {
			out[i] = reject(ReasonUnknownOperator, "operator %q is not registered for transit", tap.Operator)
			continue
		}
		if v.Seen[tap.Key()] {
			out[i] = Outcome{Result: Duplicate, Detail: "device and sequence seen before"}
			continue
		}
		if tap.At.After(now.Add(MaxTapAhead)) {
			out[i] = reject(ReasonInFuture, "tapped_at is %s after the engine's clock, more than %s", tap.At.Sub(now).Round(time.Second), MaxTapAhead)
			continue
		}
		if tap.At.Before(now.Add(-MaxTapAge)) {
			out[i] = reject(ReasonTooOld, "tapped_at is more than %d days ago", int(MaxTapAge/(24*time.Hour)))
			continue
		}
		card, ok := v.Cards[tap.Card]
		if !ok {
			out[i] = reject(ReasonUnknownCard, "no card has this token")
			continue
		}
		tap.Card = card
		if since, ok := v.DeniedSince[card]; ok && !tap.At.Before(since) {
			out[i] = reject(ReasonDenied, "the card is on the deny list since %s for unpaid fares", since.In(shanghai).Format(time.RFC3339))
			continue
		}
		v.Seen[tap.Key()] = true
		out[i] = Outcome{Result: Accepted}
	}
	return out
}
