package http

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/joinincard/engine/cards"
	"github.com/joinincard/engine/clearing"
	"github.com/joinincard/engine/events"
	"github.com/joinincard/engine/ledger"
	"github.com/joinincard/engine/postgres"
)

// httpSource is the Source of the messages the HTTP edge ingests; their Offset is nextOffset's.
const httpSource = "http/cards"

const idempotencyHeader = "Idempotency-Key"

// maxKeyAhead is how far an Idempotency-Key's UUIDv7 time may be ahead of the server's clock.
// Client clocks drift by seconds; a key minutes in the future would date its event there.
const maxKeyAhead = 5 * time.Minute

type registerCardRequest struct {
	CardNumber           string `json:"card_number"`
	PassportNumber       string `json:"passport_number"`
	SocialSecurityNumber string `json:"social_security_number"`
	WorkPermitNumber     string `json:"work_permit_number"`
	BankAccountNumber    string `json:"bank_account_number"`
	HolderName           string `json:"holder_name"`
	Nationality          string `json:"nationality"`
	PermitValidUntil     string `json:"permit_valid_until"`
	InsuranceCity        string `json:"insurance_city"`
	IssuerBank           string `json:"issuer_bank"`
	PhysicalToken        string `json:"physical_token,omitempty"`
	DigitalToken         string `json:"digital_token,omitempty"`
}

type cardStatusRequest struct {
	Status string `json:"status"`
	Reason string `json:"reason"`
}

// cardView is a card as the API shows it: tokens and masked numbers, never a clear number.
type cardView struct {
	Token                string      `json:"token"`
	PhysicalToken        string      `json:"physical_token,omitempty"`
	DigitalToken         string      `json:"digital_token,omitempty"`
	HolderName           string      `json:"holder_name"`
	Nationality          string      `json:"nationality"`
	CardNumberMasked     string      `json:"card_number_masked"`
	PassportMasked       string      `json:"passport_masked"`
	SocialSecurityMasked string      `json:"social_security_masked"`
	WorkPermitMasked     string      `json:"work_permit_masked"`
	BankAccountMasked    string      `json:"bank_account_masked"`
	PermitValidUntil     string      `json:"permit_valid_until"`
	InsuranceCity        string      `json:"insurance_city"`
	IssuerBank           string      `json:"issuer_bank"`
	Status               string      `json:"status"`
	StatusReason         string      `json:"status_reason"`
	FundsAccountID       string      `json:"funds_account_id"`
	MedicalAccountID     string      `json:"medical_account_id"`
	FundsBalance         balanceView `json:"funds_balance"`
}

// balanceView is an account's balance as decimal strings in its currency's major unit.
type balanceView struct {
	Currency  string `json:"currency"`
	Available string `json:"available"`
	Posted    string `json:"posted"`
}

// registrationFields names, for each field of a card.registered event, the request field it
// comes from, so that a refusal names what the client sent.
var registrationFields = map[string]string{
	"event_id":                    "idempotency-key",
	"occurred_at":                 "idempotency-key",
	"card_token":                  "card_number",
	"data.card_number_masked":     "card_number",
	"data.passport_token":         "passport_number",
	"data.passport_masked":        "passport_number",
	"data.social_security_token":  "social_security_number",
	"data.social_security_masked": "social_security_number",
	"data.work_permit_token":      "work_permit_number",
	"data.work_permit_masked":     "work_permit_number",
	"data.bank_account_token":     "bank_account_number",
	"data.bank_account_masked":    "bank_account_number",
}

var statusFields = map[string]string{
	"event_id":    "idempotency-key",
	"occurred_at": "idempotency-key",
	"card_token":  "token",
}

// handleRegisterCard registers a card from its clear personal numbers, which it tokenizes and
// masks before anything else happens to them.
func (s *Server) handleRegisterCard(w http.ResponseWriter, r *http.Request) {
	key, occurred, err := s.idempotencyKey(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	var req registerCardRequest
	if err := decodeBody(w, r, &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	token, reg, err := s.registration(&req)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	e := events.Event{ID: key, Type: events.TypeCardRegistered, OccurredAt: occurred, CardToken: token, Data: reg}
	o, err := s.ingest(r.Context(), e, registrationFields)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	status := http.StatusCreated
	switch o.kind {
	case outcomeAccepted:
	case outcomeDuplicate:
		status = http.StatusOK
	case outcomeRejected:
		s.writeError(w, r, Errorf(ECONFLICT, "%s", o.reason))
		return
	}
	view, err := s.cardView(r.Context(), token)
	var refused *Error
	if o.kind == outcomeDuplicate && errors.As(err, &refused) && refused.Code == ENOTFOUND {
		// The first request with this key was refused (its tokens named another card); the store
		// keeps no more than that it was decided.
		err = Errorf(ECONFLICT, "idempotency key already used by a refused registration")
	}
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	w.Header().Set("Location", "/v1/cards/"+url.PathEscape(view.Token))
	s.writeJSON(w, r, status, view)
}

// registration tokenizes and masks the request's numbers into a card.registered payload, and
// returns the card's token: the Tokenizer's token of its card number.
func (s *Server) registration(req *registerCardRequest) (string, *events.CardRegistered, error) {
	required := []struct{ name, value string }{
		{"card_number", req.CardNumber}, {"passport_number", req.PassportNumber},
		{"social_security_number", req.SocialSecurityNumber}, {"work_permit_number", req.WorkPermitNumber},
		{"bank_account_number", req.BankAccountNumber}, {"holder_name", req.HolderName},
		{"nationality", req.Nationality}, {"permit_valid_until", req.PermitValidUntil},
		{"insurance_city", req.InsuranceCity}, {"issuer_bank", req.IssuerBank},
	}
	for _, f := range required {
		if f.value == "" {
			return "", nil, Errorf(EINVALID, "%s: missing required field", f.name)
		}
	}
	// The masking functions' errors describe the expected shape and never quote the number.
	cardMasked, err := events.MaskCardNumber(req.CardNumber)
	if err != nil {
		return "", nil, Errorf(EINVALID, "card_number: %v", err)
	}
	if !luhnValid(req.CardNumber) {
		return "", nil, Errorf(EINVALID, "card_number: fails the luhn check digit")
	}
	tail := func(field, number string) (token, masked string, err error) {
		masked, err = events.MaskTail(number)
		if err != nil {
			return "", "", Errorf(EINVALID, "%s: %v", field, err)
		}
		return s.tokenizer.Token(number), masked, nil
	}
	reg := &events.CardRegistered{
		PhysicalToken: req.PhysicalToken, DigitalToken: req.DigitalToken,
		HolderName: req.HolderName, Nationality: req.Nationality,
		InsuranceCity: req.InsuranceCity, IssuerBank: req.IssuerBank,
		CardNumberMasked: cardMasked,
	}
	if reg.PassportToken, reg.PassportMasked, err = tail("passport_number", req.PassportNumber); err != nil {
		return "", nil, err
	}
	if reg.SocialSecurityToken, reg.SocialSecurityMasked, err = tail("social_security_number", req.SocialSecurityNumber); err != nil {
		return "", nil, err
	}
	if reg.WorkPermitToken, reg.WorkPermitMasked, err = tail("work_permit_number", req.WorkPermitNumber); err != nil {
		return "", nil, err
	}
	if reg.BankAccountToken, reg.BankAccountMasked, err = tail("bank_account_number", req.BankAccountNumber); err != nil {
		return "", nil, err
	}
	d, err := time.Parse(time.DateOnly, req.PermitValidUntil)
	if err != nil || len(req.PermitValidUntil) != len(time.DateOnly) {
		return "", nil, Errorf(EINVALID, `permit_valid_until: want a date yyyy-mm-dd such as "2027-06-30"`)
	}
	reg.PermitValidUntil = events.Date{Year: d.Year(), Month: d.Month(), Day: d.Day()}
	return s.tokenizer.Token(req.CardNumber), reg, nil
}

// luhnValid reports whether a card number (spaces and hyphens ignored, as MaskCardNumber ignores
// them) passes the Luhn check: a mistyped digit would register a card no terminal ever reads.
func luhnValid(pan string) bool {
	sum, n := 0, 0
	for i := len(pan) - 1; i >= 0; i-- {
		c := pan[i]
		if c == ' ' || c == '-' {
			continue
		}
		if c < '0' || c > '9' {
			return false
		}
		d := int(c - '0')
		if n%2 == 1 {
			if d *= 2; d > 9 {
				d -= 9
			}
		}
		sum += d
		n++
	}
	return n > 0 && sum%10 == 0
}

// handleGetCard shows a card found by any of its tokens.
func (s *Server) handleGetCard(w http.ResponseWriter, r *http.Request) {
	view, err := s.cardView(r.Context(), r.PathValue("token"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	s.writeJSON(w, r, http.StatusOK, view)
}

// handleCardStatus declares a card active, blocked or closed, through a card.status_changed event.
func (s *Server) handleCardStatus(w http.ResponseWriter, r *http.Request) {
	key, occurred, err := s.idempotencyKey(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	var req cardStatusRequest
	if err := decodeBody(w, r, &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	if req.Status == "" {
		s.writeError(w, r, Errorf(EINVALID, "status: missing required field"))
		return
	}
	if req.Reason == "" {
		s.writeError(w, r, Errorf(EINVALID, "reason: missing required field"))
		return
	}
	// Checked again by the event's decoder; here first, so that a malformed request is answered
	// as such before the card is looked up.
	switch events.CardStatus(req.Status) {
	case events.StatusActive, events.StatusBlocked, events.StatusClosed:
	default:
		s.writeError(w, r, Errorf(EINVALID, `status: must be "active", "blocked" or "closed"`))
		return
	}
	if why := checkProse(req.Reason); why != "" {
		s.writeError(w, r, Errorf(EINVALID, "reason: %s", why))
		return
	}
	card, err := s.card(r.Context(), r.PathValue("token"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	// The event names the card by its own token, whichever token the path used, so a retry
	// through another of its tokens is the same event.
	e := events.Event{ID: key, Type: events.TypeCardStatusChanged, OccurredAt: occurred, CardToken: card.Token,
		Data: &events.CardStatusChanged{Status: events.CardStatus(req.Status), Reason: req.Reason}}
	o, err := s.ingest(r.Context(), e, statusFields)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if o.kind == outcomeRejected {
		if o.reason == "unknown card" { // gone between the lookup and the batch: cannot happen today
			s.writeError(w, r, Errorf(ENOTFOUND, "card not found"))
			return
		}
		s.writeError(w, r, Errorf(ECONFLICT, "%s", o.reason))
		return
	}
	view, err := s.cardView(r.Context(), card.Token)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	s.writeJSON(w, r, http.StatusOK, view)
}

// idempotencyKey reads the request's Idempotency-Key: a UUIDv7, which becomes the event's id, and
// whose time becomes the event's occurred_at. Taking the time from the key rather than the clock
// makes the event a function of the request alone, so a retry, whenever it comes, is the same
// event with the same hash (a duplicate), and only a different body is a conflict.
func (s *Server) idempotencyKey(r *http.Request) (uuid.UUID, time.Time, error) {
	values := r.Header.Values(idempotencyHeader)
	switch {
	case len(values) == 0 || values[0] == "":
		return uuid.Nil, time.Time{}, Errorf(EINVALID, "missing idempotency-key header, want a uuidv7")
	case len(values) > 1:
		return uuid.Nil, time.Time{}, Errorf(EINVALID, "more than one idempotency-key header")
	}
	v := values[0]
	// 8-4-4-4-12 only, as the event schema's event_id: uuid.Parse also takes braces, urn:uuid:
	// and no hyphens.
	shaped := len(v) == 36 && v[8] == '-' && v[13] == '-' && v[18] == '-' && v[23] == '-'
	id, err := uuid.Parse(v)
	if !shaped || err != nil || id == uuid.Nil {
		return uuid.Nil, time.Time{}, Errorf(EINVALID, "idempotency-key: not a uuid, want 8-4-4-4-12 hex digits")
	}
	if id.Version() != 7 || id.Variant() != uuid.RFC4122 {
		return uuid.Nil, time.Time{}, Errorf(EINVALID, "idempotency-key: want a uuidv7 (rfc 9562), whose time dates the request")
	}
	ms := int64(binary.BigEndian.Uint64(id[:8]) >> 16) // the first 48 bits: unix milliseconds
	at := time.UnixMilli(ms).UTC()
	if at.After(s.now().Add(maxKeyAhead)) {
		return uuid.Nil, time.Time{}, Errorf(EINVALID, "idempotency-key: its time is more than %s in the future", maxKeyAhead)
	}
	return id, at, nil
}

type outcomeKind int

const (
	outcomeAccepted  outcomeKind = iota + 1 // decided now and recorded
	outcomeDuplicate                        // decided before, with the same content
	outcomeRejected                         // decided now and refused, with a reason
)

type outcome struct {
	kind   outcomeKind
	reason string
}

// ingest puts e through exactly what a Kafka message goes through: Encode, Decode (the same
// validation, and the canonical Hash) and the store's Ingest. fields maps the event's field names
// to the request's, for the refusals.
func (s *Server) ingest(ctx context.Context, e events.Event, fields map[string]string) (outcome, error) {
	raw, err := events.Encode(e)
	if err == nil {
		e, err = events.Decode(raw)
	}
	if err != nil {
		var de *events.DecodeError
		if !errors.As(err, &de) {
			return outcome{}, fmt.Errorf("encode %s event: %w", e.Type, err)
		}
		// A DecodeError's reason never quotes a token, masked form, name or identifier, and the
		// clear numbers are not in the event at all.
		field, ok := fields[de.Field]
		if !ok {
			field = strings.TrimPrefix(de.Field, "data.")
		}
		if field == "" {
			return outcome{}, Errorf(EINVALID, "%s", de.Reason)
		}
		return outcome{}, Errorf(EINVALID, "%s: %s", field, de.Reason)
	}
	msg := clearing.Message{Source: httpSource, Offset: s.nextOffset(), Raw: raw, Event: e}
	d, err := s.store.Ingest(ctx, nil, []clearing.Message{msg})
	if err != nil {
		return outcome{}, s.storeError(ctx, fmt.Errorf("ingest %s event: %w", e.Type, err))
	}
	switch {
	case len(d.Processed) == 1 && d.Processed[0].Status == clearing.Accepted:
		return outcome{kind: outcomeAccepted}, nil
	case len(d.Processed) == 1 && d.Processed[0].Status == clearing.Rejected:
		return outcome{kind: outcomeRejected, reason: d.Processed[0].Reason}, nil
	case len(d.Processed) == 0 && d.Duplicates == 1:
		return outcome{kind: outcomeDuplicate}, nil
	case len(d.Processed) == 0 && len(d.DeadLetters) == 1 && strings.HasPrefix(d.DeadLetters[0].Reason, "conflict"):
		return outcome{}, Errorf(ECONFLICT, "idempotency key reused with a different body")
	}
	return outcome{}, fmt.Errorf("unexpected decision on %s event: %d processed, %d duplicates, %d dead letters",
		e.Type, len(d.Processed), d.Duplicates, len(d.DeadLetters))
}

// nextOffset gives each message ingested over HTTP its Offset: the clock's nanoseconds, moved on
// by one when the clock has not advanced since the last message. Dead letters are keyed by
// (source, offset), so two requests refused in one clock tick must not share an offset.
func (s *Server) nextOffset() int64 {
	now := s.now().UnixNano()
	for {
		last := s.lastOffset.Load()
		next := max(now, last+1)
		if s.lastOffset.CompareAndSwap(last, next) {
			return next
		}
	}
}

// card returns the card token, the path's, names: an invalid *Error for what cannot be a token,
// a not-found one for a token of no card.
func (s *Server) card(ctx context.Context, token string) (*cards.Card, error) {
	if err := checkCardToken("token", token); err != nil {
		return nil, err
	}
	c, err := s.store.Card(ctx, token)
	if errors.Is(err, postgres.ErrNotFound) {
		return nil, Errorf(ENOTFOUND, "card not found")
	}
	if err != nil {
		return nil, s.storeError(ctx, err)
	}
	return c, nil
}

// cardView reads the card token names and the balance of its funds account.
func (s *Server) cardView(ctx context.Context, token string) (cardView, error) {
	c, err := s.card(ctx, token)
	if err != nil {
		return cardView{}, err
	}
	b, err := s.store.Balance(ctx, c.FundsAccount)
	if err != nil {
		// A card's accounts are opened with it: a missing one is a broken registry, not a 404.
		return cardView{}, s.storeError(ctx, fmt.Errorf("balance of card %s: %w", c.Token, err))
	}
	return cardView{
		Token: c.Token, PhysicalToken: c.PhysicalToken, DigitalToken: c.DigitalToken,
		HolderName: c.HolderName, Nationality: c.Nationality,
		CardNumberMasked: c.CardNumberMasked, PassportMasked: c.PassportMasked,
		SocialSecurityMasked: c.SSNMasked, WorkPermitMasked: c.PermitMasked,
		BankAccountMasked: c.BankAccountMasked, PermitValidUntil: c.PermitValidUntil.String(),
		InsuranceCity: c.InsuranceCity, IssuerBank: c.IssuerBank,
		Status: string(c.Status(s.now())), StatusReason: c.StatusReason,
		FundsAccountID: c.FundsAccount.String(), MedicalAccountID: c.MedicalAccount.String(),
		FundsBalance: balanceView{
			Currency:  string(b.Currency),
			Available: decimalAmount(b.Available(), b.Currency),
			Posted:    decimalAmount(b.Net(), b.Currency),
		},
	}, nil
}

// decimalAmount writes minor units as a plain decimal in the currency's major unit, "1234.56":
// ledger.FormatAmount without the thousands separators it adds for people.
func decimalAmount(minor int64, c ledger.Currency) string {
	return ledger.FormatDecimal(minor, c)
}
