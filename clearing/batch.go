package clearing

import (
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/joinincard/engine/cards"
	"github.com/joinincard/engine/cities"
	"github.com/joinincard/engine/events"
	"github.com/joinincard/engine/ledger"
)

// Message is one consumed record: where it came from, its bytes, and what decoding made of them.
type Message struct {
	Source    string // topic/partition
	Offset    int64
	Raw       []byte
	Event     events.Event
	DecodeErr error // set when Raw is not a valid event; Event is then zero
	// Produced is when the message was produced (its Kafka timestamp); zero when unknown.
	Produced time.Time
}

// Processed is an event the engine decided on. Its id is never decided again: a redelivery with
// the same content is a duplicate, with other content a conflict.
type Processed struct {
	EventID  uuid.UUID
	Hash     [32]byte
	Type     events.Type
	Status   Status
	Reason   string
	Transfer ledger.ID // the event's first transfer, when applied
	// Source and Offset say where the event was consumed from; empty for an event read back
	// that was applied as a transfer of its own kind, whose record keeps no source.
	Source string
	Offset int64
}

// DeadLetterKind says why a message became a dead letter.
type DeadLetterKind string

const (
	Malformed DeadLetterKind = "malformed" // the bytes are not a valid event
	Conflict  DeadLetterKind = "conflict"  // the event id was used before with other content
	Refused   DeadLetterKind = "rejected"  // a valid event the engine refused, with its reason
)

// DeadLetter is a message the engine could not apply, kept with its bytes and why. What may be a
// personal number is taken out of both before the dead letter is made (RedactDeadLetter).
type DeadLetter struct {
	Kind    DeadLetterKind
	Source  string
	Offset  int64
	EventID uuid.UUID // zero when the bytes did not decode
	Reason  string
	// Raw is the original bytes, or the bytes redacted when they held what may be a personal
	// number; Reason then says so.
	Raw []byte
	// Fingerprint is the keyed hash (events.Tokenizer.Fingerprint) of the original bytes of a
	// redacted dead letter, for whoever holds the key to recognize the message; nil when nothing
	// was redacted, or no key was given.
	Fingerprint []byte
}

// RedactDeadLetter returns dl with what may be a personal number taken out of its bytes and its
// reason (events.Redact, events.RedactText). When the bytes change, the reason says what was
// taken out, by field, and fingerprint (nil: none) keeps a keyed hash of the original bytes, unless
// the dead letter has one already. A dead letter redacted already comes back as it is.
func RedactDeadLetter(dl DeadLetter, fingerprint func([]byte) []byte) DeadLetter {
	dl.Reason = events.RedactText(dl.Reason)
	r := events.Redact(dl.Raw)
	if len(r.Fields) == 0 {
		return dl
	}
	// A dead letter stored redacted already keeps the hash of its original bytes, which it holds
	// no longer.
	if fingerprint != nil && dl.Fingerprint == nil {
		dl.Fingerprint = fingerprint(dl.Raw)
	}
	dl.Raw = r.Bytes
	dl.Reason += " [redacted: " + strings.Join(r.Fields, ", ") + "]"
	return dl
}

// Tap is a transit tap recorded for transit clearing.
type Tap struct {
	EventID   uuid.UUID
	CardToken string
	events.TransitTap
	Received time.Time
}

// View is what a batch needs to know before deciding: the cards its events name, the parties
// registered, and the events decided before. The adapter prefetches it.
type View struct {
	Cards     map[string]*cards.Card // by every token that names a card
	Parties   map[ledger.ID]bool     // party accounts that exist
	Processed map[uuid.UUID]Processed
	// Cleared holds the purchases cleared without an authorization that the batch's refunds
	// name, applied in earlier batches, with their refunds so far. Decide counts the refunds it
	// plans.
	Cleared map[uuid.UUID]*ClearedPurchase
	// MerchantCategories holds the category (MCC) a merchant was registered with, by its clearing
	// account, for the merchants the batch names that have one; a party of kind merchant
	// registered without a category is not in it.
	MerchantCategories map[ledger.ID]string
	// StatusHistories holds, by the card's own token, the declared statuses the engine had recorded
	// before the batch (oldest first), for the cards whose purchases cleared without an
	// authorization the batch decides: such a purchase is judged by the status at its time.
	StatusHistories map[string][]cards.StatusChange
	// Purchases plans clearing records of authorized purchases; nil rejects those records.
	Purchases Purchases
	// Fingerprint keys the hash kept of a dead letter's original bytes when they had to be
	// redacted (events.Tokenizer.Fingerprint); nil keeps none.
	Fingerprint func([]byte) []byte
}

// Decision is what a batch of messages does: the records to write and the transfers to apply.
type Decision struct {
	Processed   []Processed
	DeadLetters []DeadLetter
	Taps        []Tap
	// Cards holds the cards registered or changed, in their final state; NewCards says which of
	// them are new and need their accounts opened.
	Cards    []*cards.Card
	NewCards []*cards.Card
	// StatusChanged holds the tokens of the cards whose declared status (or its reason) changed:
	// their final state in Cards is in force from the batch's time.
	StatusChanged []string
	// Transfers is every planned transfer, each event's legs linked into one group.
	Transfers []ledger.Transfer
	// Duplicates counts redelivered events (same id, same content), skipped; Replayed holds the
	// earlier decisions they repeat, in batch order, so an API can answer a retry as it answered
	// the first request.
	Duplicates int
	Replayed   []Processed
	// ClearedRefunds holds the refunds of purchases cleared without an authorization, in batch
	// order: after Settle, only those applied, numbered as applied.
	ClearedRefunds []ClearedRefund

	groups      []group // which transfers belong to which processed event
	refunds     []int   // the processed event of each of ClearedRefunds, until Settle
	fingerprint func([]byte) []byte
}

// deadLetter records a dead letter, redacted.
func (d *Decision) deadLetter(dl DeadLetter) {
	d.DeadLetters = append(d.DeadLetters, RedactDeadLetter(dl, d.fingerprint))
}

type group struct{ processed, first, n int }

// Independent returns how many of msgs, from the first, can be decided as one batch: up to the
// first refund of a purchase cleared earlier in them. Such a refund depends on the ledger's
// answer to its purchase (a purchase the card cannot pay must not be refunded), which a batch
// learns only once applied: it starts the next batch, which reads that answer.
func Independent(msgs []Message) int {
	cleared := map[uuid.UUID]bool{}
	for i := range msgs {
		if msgs[i].DecodeErr != nil {
			continue
		}
		e := &msgs[i].Event
		switch data := e.Data.(type) {
		case *events.PurchaseCleared:
			cleared[e.ID] = true
		case *events.PurchaseRefunded:
			if cleared[data.OriginalEventID] {
				return i
			}
		}
	}
	return len(msgs)
}

// Merge appends the decision of the messages that followed d's: d then answers for both. Both
// must be settled.
func (d *Decision) Merge(next *Decision) {
	d.Processed = append(d.Processed, next.Processed...)
	d.DeadLetters = append(d.DeadLetters, next.DeadLetters...)
	d.Taps = append(d.Taps, next.Taps...)
	d.NewCards = append(d.NewCards, next.NewCards...)
	d.Transfers = append(d.Transfers, next.Transfers...)
	d.Duplicates += next.Duplicates
	d.Replayed = append(d.Replayed, next.Replayed...)
	d.ClearedRefunds = append(d.ClearedRefunds, next.ClearedRefunds...)
	// A card changed by both holds its final state in next.
	final := make(map[string]bool, len(next.Cards))
	for _, c := range next.Cards {
		final[c.Token] = true
	}
	cs := next.Cards
	for _, c := range d.Cards {
		if !final[c.Token] {
			cs = append(cs, c)
		}
	}
	d.Cards = cs
	d.StatusChanged = append(d.StatusChanged, next.StatusChanged...)
	d.groups, d.refunds = nil, nil
}

// presentedAt is when m was presented to the engine: its Kafka timestamp, unless unknown or
// after now (a producer's clock ahead), when it was presented by now at the latest. A record
// produced in time and consumed late, after an outage of the engine, was presented in time.
func presentedAt(m *Message, now time.Time) time.Time {
	if m.Produced.IsZero() || m.Produced.After(now) {
		return now
	}
	return m.Produced
}

// Decide walks a batch in order and decides every message against the view, updating the view as
// it goes (a card registered early in the batch can be paid into later in it). Nothing is applied
// yet: the transfers go to the ledger, and Settle turns its results into the final statuses.
func Decide(msgs []Message, v *View, now time.Time) *Decision {
	// Every message is one processed record, and all but a few plan one transfer: sized once,
	// rather than grown by doubling through a batch of thousands.
	d := &Decision{fingerprint: v.Fingerprint, Processed: make([]Processed, 0, len(msgs)),
		Transfers: make([]ledger.Transfer, 0, len(msgs)), groups: make([]group, 0, len(msgs))}
	changed := map[string]*cards.Card{}
	statusChanged := map[string]bool{}
	for i := range msgs {
		m := &msgs[i]
		if m.DecodeErr != nil {
			d.deadLetter(DeadLetter{Kind: Malformed, Source: m.Source, Offset: m.Offset, Reason: "malformed: " + m.DecodeErr.Error(), Raw: m.Raw})
			continue
		}
		e := &m.Event
		if prior, ok := v.Processed[e.ID]; ok {
			if prior.Hash == e.Hash {
				d.Duplicates++
				d.Replayed = append(d.Replayed, prior)
				continue
			}
			before := fmt.Sprintf("%s at %s offset %d", prior.Type, prior.Source, prior.Offset)
			if prior.Source == "" {
				// An event applied as a transfer of its own kind is recorded without its source.
				before = fmt.Sprintf("%s applied as transfer %s", prior.Type, prior.Transfer)
			}
			d.deadLetter(DeadLetter{Kind: Conflict, Source: m.Source, Offset: m.Offset, EventID: e.ID,
				Reason: "conflict: event id used before (" + before + ") with different content", Raw: m.Raw})
			continue
		}
		p := Processed{EventID: e.ID, Hash: e.Hash, Type: e.Type, Status: Accepted, Source: m.Source, Offset: m.Offset}
		switch data := e.Data.(type) {
		case *events.CardRegistered:
			if _, ok := v.Cards[e.CardToken]; ok {
				p.Status, p.Reason = Rejected, "card already registered"
				break
			}
			if !v.Parties[PartyAccount(PartyBank, data.IssuerBank)] {
				p.Status, p.Reason = Rejected, fmt.Sprintf("issuer bank %q is not registered", data.IssuerBank)
				break
			}
			if city := cities.Canonical(data.InsuranceCity); !v.Parties[PartyAccount(PartyInsuranceFund, city)] {
				p.Status, p.Reason = Rejected, fmt.Sprintf("insurance fund of %q is not registered", city)
				break
			}
			if events.PermitBeyondIssue(data.PermitValidUntil, now) {
				p.Status, p.Reason = Rejected, permitBeyondIssue(data.PermitValidUntil)
				break
			}
			c := cards.FromRegistration(e.CardToken, data)
			// Issued when the issuer says, and by the time the engine records it at the latest: an
			// issuer's clock ahead does not move the issue past the record.
			c.IssuedAt = e.OccurredAt
			if c.IssuedAt.After(now) {
				c.IssuedAt = now
			}
			taken := false
			for _, t := range c.Tokens() {
				if _, ok := v.Cards[t]; ok {
					taken = true
				}
			}
			if taken {
				p.Status, p.Reason = Rejected, "a physical or digital token already names another card"
				break
			}
			for _, t := range c.Tokens() {
				v.Cards[t] = &c
			}
			changed[c.Token] = &c
			d.NewCards = append(d.NewCards, &c)
		case *events.CardStatusChanged:
			c, ok := v.Cards[e.CardToken]
			if !ok {
				p.Status, p.Reason = Rejected, "unknown card"
				break
			}
			if c.Declared == events.StatusClosed && data.Status != events.StatusClosed {
				p.Status, p.Reason = Rejected, "a closed card cannot be reopened"
				break
			}
			c.Declared, c.StatusReason = data.Status, data.Reason
			changed[c.Token] = c
			statusChanged[c.Token] = true
		case *events.CardPermitRenewed:
			c, ok := v.Cards[e.CardToken]
			if !ok {
				p.Status, p.Reason = Rejected, "unknown card"
				break
			}
			if events.PermitBeyondIssue(data.PermitValidUntil, now) {
				p.Status, p.Reason = Rejected, permitBeyondIssue(data.PermitValidUntil)
				break
			}
			c.PermitValidUntil = data.PermitValidUntil
			changed[c.Token] = c
		case *events.TransitTap:
			if _, ok := v.Cards[e.CardToken]; !ok {
				p.Status, p.Reason = Rejected, "unknown card"
				break
			}
			if data.DeviceSeq > math.MaxInt64 {
				p.Status, p.Reason = Rejected, "device_seq out of range"
				break
			}
			d.Taps = append(d.Taps, Tap{EventID: e.ID, CardToken: e.CardToken, TransitTap: *data, Received: now})
		default:
			plan := PlanEvent(e, directory{v}, now, presentedAt(m, now))
			if plan.Reason != "" {
				p.Status, p.Reason = Rejected, plan.Reason
				break
			}
			if len(plan.Transfers) == 0 {
				break // accepted without transfers: the clearing record of a capture the API made
			}
			p.Status = Applied
			p.Transfer = plan.Transfers[0].ID
			if r := plan.Refund; r != nil {
				// The next refund of the purchase in this batch builds on this one.
				o := v.Cleared[r.OriginalEventID]
				o.Refunded, o.Refunds = r.RefundedTotal, r.Seq
				d.ClearedRefunds = append(d.ClearedRefunds, *r)
				d.refunds = append(d.refunds, len(d.Processed))
			}
			first := len(d.Transfers)
			for j, t := range plan.Transfers {
				if j < len(plan.Transfers)-1 {
					t.Flags |= ledger.Linked
				}
				d.Transfers = append(d.Transfers, t)
			}
			d.groups = append(d.groups, group{processed: len(d.Processed), first: first, n: len(plan.Transfers)})
		}
		if p.Status == Rejected {
			// A reason may name what the event named (a merchant, a bank): never a card number,
			// in processed_events nor anywhere else.
			p.Reason = events.RedactText(p.Reason)
			d.deadLetter(DeadLetter{Kind: Refused, Source: m.Source, Offset: m.Offset, EventID: e.ID, Reason: "rejected: " + p.Reason, Raw: m.Raw})
		}
		v.Processed[e.ID] = p
		d.Processed = append(d.Processed, p)
	}
	for _, c := range changed {
		d.Cards = append(d.Cards, c)
		if statusChanged[c.Token] {
			d.StatusChanged = append(d.StatusChanged, c.Token)
		}
	}
	return d
}

// Settle records the ledger's results for the planned transfers: an event whose group was not
// created is rejected with the ledger's reason and goes to the dead letters. raw finds a
// processed event's original bytes.
func (d *Decision) Settle(results []ledger.Result, raw func(source string, offset int64) []byte) error {
	if len(results) != len(d.Transfers) {
		return fmt.Errorf("%d results for %d transfers", len(results), len(d.Transfers))
	}
	for _, g := range d.groups {
		p := &d.Processed[g.processed]
		for _, r := range results[g.first : g.first+g.n] {
			if r == ledger.Created || r == ledger.Exists || r == ledger.LinkedEventFailed {
				continue
			}
			p.Status, p.Reason, p.Transfer = Rejected, r.String(), ledger.ID{}
			d.deadLetter(DeadLetter{Kind: Refused, Source: p.Source, Offset: p.Offset, EventID: p.EventID,
				Reason: "rejected: " + r.String(), Raw: raw(p.Source, p.Offset)})
			break
		}
	}
	// A refund the ledger refused does not count: the purchase's later refunds in the batch
	// move down in sequence and total.
	type shift struct {
		n      int
		amount int64
	}
	shifts := map[uuid.UUID]shift{}
	kept := d.ClearedRefunds[:0]
	for i, r := range d.ClearedRefunds {
		sh := shifts[r.OriginalEventID]
		if d.Processed[d.refunds[i]].Status != Applied {
			sh.n++
			sh.amount += r.Amount
			shifts[r.OriginalEventID] = sh
			continue
		}
		r.Seq -= sh.n
		r.RefundedTotal -= sh.amount
		kept = append(kept, r)
	}
	d.ClearedRefunds, d.refunds = kept, nil
	return nil
}

// directory answers PlanEvent from a View.
type directory struct{ v *View }

func (d directory) Card(token string) (*cards.Card, bool) {
	c, ok := d.v.Cards[token]
	return c, ok
}

func (d directory) Party(kind PartyKind, id string) bool { return d.v.Parties[PartyAccount(kind, id)] }

func (d directory) MerchantCategory(id string) (string, bool) {
	mcc, ok := d.v.MerchantCategories[PartyAccount(PartyMerchant, id)]
	return mcc, ok
}

func (d directory) Purchases() Purchases { return d.v.Purchases }

func (d directory) StatusHistory(card *cards.Card) []cards.StatusChange {
	return d.v.StatusHistories[card.Token]
}

func (d directory) ClearedPurchase(id uuid.UUID) (*ClearedPurchase, bool) {
	if p, ok := d.v.Processed[id]; !ok || p.Status != Applied {
		return nil, false
	}
	o, ok := d.v.Cleared[id]
	return o, ok
}

// Poison is the decision for a message that can never be applied (the database refuses what it
// holds, or it plans more than a batch takes): a dead letter with the reason and, when the message
// is a valid event, its id decided as rejected, so that a redelivery is a duplicate. The dead
// letter is redacted as every other is, fingerprint keying the hash of its original bytes (nil:
// none).
func Poison(m Message, reason string, fingerprint func([]byte) []byte) *Decision {
	d := &Decision{fingerprint: fingerprint}
	// The reason may quote the database, which may repeat the value it refused, with quotes or
	// without: every word that may be a personal number is withheld.
	reason = events.RedactWords(reason)
	if m.DecodeErr != nil {
		d.deadLetter(DeadLetter{Kind: Malformed, Source: m.Source, Offset: m.Offset, Reason: "malformed: " + reason, Raw: m.Raw})
		return d
	}
	e := &m.Event
	d.Processed = append(d.Processed, Processed{EventID: e.ID, Hash: e.Hash, Type: e.Type, Status: Rejected, Reason: reason,
		Source: m.Source, Offset: m.Offset})
	d.deadLetter(DeadLetter{Kind: Refused, Source: m.Source, Offset: m.Offset, EventID: e.ID, Reason: "rejected: " + reason, Raw: m.Raw})
	return d
}

// permitBeyondIssue is the reason a registration or renewal is refused whose permit runs past what
// a work permit is issued for, counted from the engine's day: the decoder counts from the event's
// occurred_at, which a producer's clock may have put in the future.
func permitBeyondIssue(validUntil events.Date) string {
	return fmt.Sprintf("permit_valid_until %s is more than %d years from today, longer than a work permit is issued for",
		validUntil, events.MaxPermitYears)
}
