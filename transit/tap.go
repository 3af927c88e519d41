package transit

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/joinincard/engine/cards"
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
	// MaxTapBeforeIssue: a tap stamped this far before its card was issued (the registration's
	// occurred_at) is still the card's, a reader's clock behind by as much as MaxTapAhead allows
	// ahead; one stamped earlier is of no card, for no card had the token yet.
	MaxTapBeforeIssue = MaxTapAhead
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
	ReasonCardBlocked     Reason = "card_blocked"     // the card was blocked when it tapped (as purchases decline it)
	ReasonCardClosed      Reason = "card_closed"      // the card was closed when it tapped
	ReasonPermitExpired   Reason = "permit_expired"   // the cardholder's work permit had expired when the card tapped
	ReasonDenied          Reason = "card_denied"      // the card was on the deny list for unpaid fares when it tapped
	ReasonInFuture        Reason = "time_in_future"   // tapped after the engine's clock, past MaxTapAhead
	ReasonTooOld          Reason = "too_old"          // tapped more than MaxTapAge ago
)

// Outcome is one tap's answer.
type Outcome struct {
	Result Result
	Reason Reason // for Rejected
	Detail string // for people: which field, what is wrong; never the card token
}

// reject refuses a tap. The detail may name what the tap named (a station, a line): a card
// number put there is redacted, as everywhere the engine keeps or answers text.
func reject(r Reason, format string, args ...any) Outcome {
	return Outcome{Result: Rejected, Reason: r, Detail: events.RedactText(fmt.Sprintf(format, args...))}
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
	if err := events.CheckCardToken(raw.CardToken); err != nil {
		return Candidate{Refused: reject(ReasonMalformed, "card_token: %v", err)}
	}
	tap.Card = raw.CardToken
	// Read as a transit.tap event's time is, so that a tap is the same through either door.
	at, err := events.ParseInstant(raw.TappedAt)
	if err != nil {
		return Candidate{Refused: reject(ReasonMalformed, "tapped_at: %v", err)}
	}
	tap.At = at
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
	vs := t.versions[tap.Operator]
	if len(vs) == 0 {
		return Candidate{Refused: reject(ReasonUnknownOperator, "operator %q has no fare table", tap.Operator)}
	}
	day := vs[0].group.DayOf(tap.At)
	op := t.versionOn(tap.Operator, day)
	if op == nil {
		// The tap is kept with the refusal: one older than MaxTapAge is refused for its age (Decide),
		// whatever table its day lacks.
		return Candidate{Tap: tap, Refused: reject(ReasonUnknownOperator, "operator %q has no fare table in force on travel day %s", tap.Operator, day)}
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

// CardStatus is what transit knows of a card's status over time: the declared statuses the engine
// recorded for it, each in force from the instant it was recorded (oldest first; none for a card
// active since its registration), and its permit's last valid day. A nil CardStatus is a card
// that has always been active.
type CardStatus struct {
	History          []cards.StatusChange
	PermitValidUntil events.Date
	// IssuedAt is when the card was issued (its registration's occurred_at); zero when not known,
	// for a card registered before the engine kept it.
	IssuedAt time.Time
}

// At is the card's status at instant at, why it may not pay then, and since when.
func (s *CardStatus) At(at time.Time) (cards.Status, cards.Cause, time.Time) {
	if s == nil {
		return cards.StatusActive, "", time.Time{}
	}
	return cards.StatusAt(s.History, s.PermitValidUntil, at)
}

// View is what deciding taps needs to know of the world; the store prefetches it.
type View struct {
	// Cards maps every token that names a known card to the card's own token.
	Cards map[string]string
	// Status holds the status over time of the known cards, by their own tokens; a card without
	// one has always been active.
	Status map[string]*CardStatus
	// DeniedSince holds, for each card on the deny list for unpaid fares (by its own token), when
	// it went on it.
	DeniedSince map[string]time.Time
	// Recent holds, for each card Stopped names, its taps accepted before, at every operator,
	// from the window Stopped gives. Decide adds the taps it accepts of those cards.
	Recent map[string][]Tap
	// Seen holds the taps accepted before. Decide adds the taps it accepts.
	Seen map[Key]bool
	// Operators holds the operators registered for transit (with a clearing account).
	Operators map[string]bool
}

// stopped returns why a card may not travel at instant at, if it may not: closed, blocked or with
// its permit expired then, or on the deny list for unpaid fares since then or before.
func (v *View) stopped(card string, at time.Time) (Outcome, bool) {
	if s := v.Status[card]; s != nil && !s.IssuedAt.IsZero() && s.IssuedAt.Sub(at) > MaxTapBeforeIssue {
		return reject(ReasonUnknownCard, "no card had this token when it tapped: the card was issued at %s",
			s.IssuedAt.In(shanghai).Format(time.RFC3339)), true
	}
	st, cause, since := v.Status[card].At(at)
	when := since.In(shanghai).Format(time.RFC3339)
	switch st {
	case cards.StatusClosed:
		return reject(ReasonCardClosed, "the card is closed since %s", when), true
	case cards.StatusBlocked:
		return reject(ReasonCardBlocked, "the card is blocked (%s) since %s", cause, when), true
	case cards.StatusPermitExpired:
		return reject(ReasonPermitExpired, "the cardholder's work permit expired at %s", when), true
	}
	if since, ok := v.DeniedSince[card]; ok && !at.Before(since) {
		return reject(ReasonDenied, "the card is on the deny list since %s for unpaid fares", since.In(shanghai).Format(time.RFC3339)), true
	}
	return Outcome{}, false
}

// Stopped returns the cards (by their own tokens) that may not travel at the time of one of the
// candidates, and the window of their earlier taps that Decide needs in View.Recent to let such a
// card leave by a tap out: from the longest a journey may last (maxIncompleteAfter) before the
// earliest of their taps to the latest. v must hold Cards, Status and DeniedSince.
func Stopped(cands []Candidate, v *View) (stopped []string, from, to time.Time) {
	seen := map[string]bool{}
	for i := range cands {
		c := &cands[i]
		if c.Refused.Result != "" {
			continue
		}
		card, ok := v.Cards[c.Tap.Card]
		if !ok {
			continue
		}
		if _, ok := v.stopped(card, c.Tap.At); !ok {
			continue
		}
		if !seen[card] {
			seen[card] = true
			stopped = append(stopped, card)
		}
		if from.IsZero() || c.Tap.At.Before(from) {
			from = c.Tap.At
		}
		if c.Tap.At.After(to) {
			to = c.Tap.At
		}
	}
	if len(stopped) == 0 {
		return nil, time.Time{}, time.Time{}
	}
	return stopped, from.Add(-maxIncompleteAfter), to
}

// endsJourney reports whether tap, of a card that may not travel at its time, is the tap out of a
// journey the card entered while it could: the card's previous tap at the operator (in tap order,
// among those accepted) is a tap in, made while the card could travel, within the operator's limit
// of an open journey. Gates let a passenger out of a journey they let them into, and the journey
// is priced as it was travelled rather than as one without an exit at the maximum fare.
func (t *Tables) endsJourney(v *View, tap *Tap) bool {
	if tap.Direction != events.DirectionOut {
		return false
	}
	vs := t.versions[tap.Operator]
	if len(vs) == 0 {
		return false
	}
	recent := v.Recent[tap.Card]
	prev := -1
	for i := range recent {
		r := &recent[i]
		if r.Operator == tap.Operator && tapOrder(r, tap) < 0 && (prev < 0 || tapOrder(&recent[prev], r) < 0) {
			prev = i
		}
	}
	if prev < 0 {
		return false
	}
	in := &recent[prev]
	if in.Direction != events.DirectionIn || tap.At.Sub(in.At) > t.opOn(tap.Operator, vs[0].group.DayOf(in.At)).IncompleteAfter {
		return false
	}
	_, stopped := v.stopped(tap.Card, in.At)
	return !stopped
}

// Decide gives each candidate its outcome at instant now, in order: malformed or unknown to the
// fare table, unknown operator, duplicate (seen before, or earlier in the same batch), in the
// future, too old, unknown card, and then whether the card could travel when it tapped: closed,
// blocked, permit expired (as the card's status stood at the tap's time, not at now), or on the
// deny list for unpaid fares; a tap out that ends a journey the card entered while it could
// travel is accepted all the same (judged after the batch's other taps, in tap order). An
// accepted tap's Card becomes the card's own token.
func (t *Tables) Decide(cands []Candidate, v *View, now time.Time) []Outcome {
	out := make([]Outcome, len(cands))
	accept := func(i int) {
		tap := &cands[i].Tap
		v.Seen[tap.Key()] = true
		if r, ok := v.Recent[tap.Card]; ok {
			v.Recent[tap.Card] = append(r, *tap)
		}
		out[i] = Outcome{Result: Accepted}
	}
	var exits []int // taps out of cards that may not travel at their time
	for i := range cands {
		c := &cands[i]
		if c.Refused.Result != "" {
			out[i] = c.Refused
			// A tap refused for the fare table its day lacks is too old first when it is: a tap of
			// year 1 is too old, not a sign that the operator's tables are missing.
			if c.Refused.Reason == ReasonUnknownOperator && c.Tap.Operator != "" && c.Tap.At.Before(now.Add(-MaxTapAge)) {
				out[i] = reject(ReasonTooOld, "tapped_at is more than %d days ago", int(MaxTapAge/(24*time.Hour)))
			}
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
		if o, stopped := v.stopped(card, tap.At); stopped {
			out[i] = o
			if tap.Direction == events.DirectionOut {
				exits = append(exits, i)
			}
			continue
		}
		accept(i)
	}
	// A stopped card's taps out are judged last, in tap order, once every other tap of the batch
	// is accepted or not: whether one ends a journey depends on the taps before it, whichever
	// order they came in.
	slices.SortStableFunc(exits, func(a, b int) int { return tapOrder(&cands[a].Tap, &cands[b].Tap) })
	for _, i := range exits {
		tap := &cands[i].Tap
		switch {
		case v.Seen[tap.Key()]:
			out[i] = Outcome{Result: Duplicate, Detail: "device and sequence seen before"}
		case t.endsJourney(v, tap):
			accept(i)
		}
	}
	return out
}

// Payable returns the taps of one card that it pays for, given its status over time: those made
// while it could travel, and the taps out that end a journey entered while it could (as Decide
// accepts them). Intake refuses the others, but a tap decided while the change that stops the card
// was being recorded, or stamped ahead of the engine's clock, may have been accepted: the card does
// not pay for it. Unpaid fares do not count here: a card owing fares pays for the journeys it made.
func (t *Tables) Payable(taps []Tap, st *CardStatus) []Tap {
	if st == nil {
		return taps
	}
	if len(st.History) == 0 {
		// Never blocked nor closed: only the permit can have stopped it, by the latest tap.
		var latest time.Time
		for i := range taps {
			if taps[i].At.After(latest) {
				latest = taps[i].At
			}
		}
		if !cards.PermitExpired(st.PermitValidUntil, latest) {
			return taps
		}
	}
	sorted := make([]*Tap, len(taps))
	for i := range taps {
		sorted[i] = &taps[i]
	}
	slices.SortFunc(sorted, func(a, b *Tap) int {
		if c := strings.Compare(a.Operator, b.Operator); c != 0 {
			return c
		}
		return tapOrder(a, b)
	})
	active := func(at time.Time) bool {
		s, _, _ := st.At(at)
		return s == cards.StatusActive
	}
	out := make([]Tap, 0, len(taps))
	for i, tp := range sorted {
		if !active(tp.At) {
			if tp.Direction != events.DirectionOut || i == 0 {
				continue
			}
			in, vs := sorted[i-1], t.versions[tp.Operator]
			if len(vs) == 0 || in.Operator != tp.Operator || in.Direction != events.DirectionIn ||
				tp.At.Sub(in.At) > t.opOn(tp.Operator, vs[0].group.DayOf(in.At)).IncompleteAfter || !active(in.At) {
				continue
			}
		}
		out = append(out, *tp)
	}
	return out
}

// DenyReason says why a card is on the deny list: the cause of its status (lost, stolen, blocked,
// closed, permit_expired), or unpaid fares.
type DenyReason string

// DenyFaresOwed: a travel day's charge failed for lack of funds, and is not paid yet.
const DenyFaresOwed DenyReason = "fares_owed"

// Deny says whether a card is on the deny list at instant now, why and since when: its status
// first (a closed, blocked or permit-expired card may not travel whatever it owes), then the fares
// it owes (owed fen, unpaid since owedSince).
func Deny(st *CardStatus, owed int64, owedSince, now time.Time) (DenyReason, time.Time, bool) {
	if s, cause, since := st.At(now); s != cards.StatusActive {
		return DenyReason(cause), since, true
	}
	if owed > 0 {
		return DenyFaresOwed, owedSince, true
	}
	return "", time.Time{}, false
}
