package http

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"unicode"
	"unicode/utf8"

	"github.com/joinincard/engine/clearing"
	"github.com/joinincard/engine/events"
	"github.com/joinincard/engine/postgres"
	"github.com/joinincard/engine/settlement/bankfile"
)

// Bounds of a party's fields, the event schema's: an identifier (issuer_bank, merchant_id,
// operator_id) is at most 64 bytes of printable ASCII without spaces, prose (a name, a city) at
// most 256 bytes of UTF-8. A party whose id events cannot carry could never be paid.
const (
	maxIDBytes   = 64
	maxTextBytes = 256
)

type partyRequest struct {
	Kind string `json:"kind"`
	ID   string `json:"id"`
	Name string `json:"name"`
	// SettlementBank is the registered bank that settles a merchant's, operator's or insurance
	// fund's clearing account: optional, and refused for a bank, which settles for itself.
	SettlementBank string `json:"settlement_bank,omitempty"`
}

type partyView struct {
	Kind      string `json:"kind"`
	ID        string `json:"id"`
	Name      string `json:"name"`
	AccountID string `json:"account_id"`
	// SettlementBank is the settlement bank the request set, when it set one.
	SettlementBank string `json:"settlement_bank,omitempty"`
}

// handleRegisterParty registers a bank, merchant, transit operator or insurance fund and opens
// its account, and records its settlement bank when the request names one. Registering it again
// with the same name changes nothing and answers the same; naming a settlement bank for a party
// that has none records it, naming another than the party's is refused with 409 (reason
// settlement_bank_differs) and changes nothing. A settlement bank that is not registered refuses
// the whole request before anything is written.
func (s *Server) handleRegisterParty(w http.ResponseWriter, r *http.Request) {
	var req partyRequest
	if err := decodeBody(w, r, &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	kind := clearing.PartyKind(req.Kind)
	if err := checkParty(kind, req.ID, req.Name); err != nil {
		s.writeError(w, r, err)
		return
	}
	req.ID = clearing.CanonicalPartyID(kind, req.ID)
	if req.SettlementBank != "" {
		if err := s.checkSettlementBank(r.Context(), "settlement_bank", kind, req.SettlementBank); err != nil {
			s.writeError(w, r, err)
			return
		}
	}
	p, err := s.store.RegisterParty(r.Context(), kind, req.ID, req.Name)
	if errors.Is(err, postgres.ErrAccountConflict) {
		s.writeError(w, r, &Error{Code: ECONFLICT, Reason: "name_differs", Message: fmt.Sprintf(
			"%s is registered under another name: nothing was changed", kind)})
		return
	}
	if err != nil {
		s.writeError(w, r, s.storeError(r.Context(), err))
		return
	}
	if req.SettlementBank != "" {
		// Both the party and the bank are registered now: a failure here is the store's. The
		// request sent again registers nothing twice and sets the bank. A party settled by
		// another bank keeps it: what it is owed follows its bank only by a deliberate change.
		err := s.store.RegisterPartyBank(r.Context(), kind, req.ID, req.SettlementBank)
		var differs *postgres.PartyBankConflictError
		if errors.As(err, &differs) {
			s.writeError(w, r, &Error{Code: ECONFLICT, Reason: "settlement_bank_differs", Message: fmt.Sprintf(
				"%s %q is settled by bank %q, not by the settlement_bank named: nothing was changed; "+
					"to change its bank, PUT /v1/parties/%s/{id}/settlement-bank", kind, req.ID, differs.Current, kind)})
			return
		}
		if err != nil {
			s.writeError(w, r, s.storeError(r.Context(), err))
			return
		}
	}
	s.writeJSON(w, r, http.StatusCreated, partyView{Kind: string(p.Kind), ID: p.ID, Name: p.Name, AccountID: p.Account.String(),
		SettlementBank: req.SettlementBank})
}

type partyBankRequest struct {
	Bank string `json:"bank"`
}

// partyBankView is a party and the bank that settles its clearing account.
type partyBankView struct {
	Kind           string `json:"kind"`
	ID             string `json:"id"`
	AccountID      string `json:"account_id"`
	SettlementBank string `json:"settlement_bank"`
}

// handleSetPartyBank sets or changes the bank that settles a merchant's, operator's or insurance
// fund's clearing account. Items the party earned while it had no settlement bank, held at their
// cycles' close, are offered to this bank at the next close.
func (s *Server) handleSetPartyBank(w http.ResponseWriter, r *http.Request) {
	kind := clearing.PartyKind(r.PathValue("kind"))
	switch {
	case !slices.Contains(clearing.PartyKinds(), kind):
		s.writeError(w, r, Errorf(EINVALID, "kind: must be one of %q", clearing.PartyKinds()))
		return
	case kind == clearing.PartyBank:
		s.writeError(w, r, Errorf(EINVALID, "kind: a bank settles for itself, want %s, %s or %s",
			clearing.PartyMerchant, clearing.PartyOperator, clearing.PartyInsuranceFund))
		return
	}
	id := r.PathValue("id")
	if err := checkPartyID(kind, id); err != nil {
		s.writeError(w, r, err)
		return
	}
	id = clearing.CanonicalPartyID(kind, id)
	var req partyBankRequest
	if err := decodeBody(w, r, &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	if req.Bank == "" {
		s.writeError(w, r, Errorf(EINVALID, "bank: missing required field"))
		return
	}
	if err := s.checkSettlementBank(r.Context(), "bank", kind, req.Bank); err != nil {
		s.writeError(w, r, err)
		return
	}
	err := s.store.SetPartyBank(r.Context(), kind, id, req.Bank)
	if errors.Is(err, postgres.ErrNotFound) {
		// The bank was found registered just now, and banks are never removed: the party is not.
		s.writeError(w, r, Errorf(ENOTFOUND, "%s %q is not registered", kind, id))
		return
	}
	if err != nil {
		s.writeError(w, r, s.storeError(r.Context(), err))
		return
	}
	s.writeJSON(w, r, http.StatusOK, partyBankView{Kind: string(kind), ID: id,
		AccountID: clearing.PartyAccount(kind, id).String(), SettlementBank: req.Bank})
}

// checkSettlementBank checks bank, named in field, as the settlement bank of a party of kind:
// an identifier, of a party that is not itself a bank, naming a registered bank.
func (s *Server) checkSettlementBank(ctx context.Context, field string, kind clearing.PartyKind, bank string) error {
	if kind == clearing.PartyBank {
		return Errorf(EINVALID, "%s: a bank settles for itself and takes no settlement bank", field)
	}
	if why := checkID(bank); why != "" {
		return Errorf(EINVALID, "%s: %s", field, why)
	}
	// A party's account is opened by its registration, in the same transaction: the bank's
	// account exists exactly when the bank is registered.
	_, err := s.store.Balance(ctx, clearing.PartyAccount(clearing.PartyBank, bank))
	if errors.Is(err, postgres.ErrNotFound) {
		return Errorf(EINVALID, "%s: bank %q is not registered", field, bank)
	}
	if err != nil {
		return s.storeError(ctx, err)
	}
	return nil
}

// checkParty checks a party's fields against what events can name: an insurance fund's id is a
// card's insurance_city (prose), every other party's id an identifier.
func checkParty(kind clearing.PartyKind, id, name string) error {
	if kind == "" {
		return Errorf(EINVALID, "kind: missing required field")
	}
	if !slices.Contains(clearing.PartyKinds(), kind) {
		return Errorf(EINVALID, "kind: must be one of %q", clearing.PartyKinds())
	}
	if err := checkPartyID(kind, id); err != nil {
		return err
	}
	if name == "" {
		return Errorf(EINVALID, "name: missing required field")
	}
	if why := checkProse(name); why != "" {
		return Errorf(EINVALID, "name: %s", why)
	}
	return checkPartyInFiles(kind, id, name)
}

// checkPartyInFiles refuses a party that a settlement file could not name. A bank's file names
// the bank in its header by its id and name as registered, and a file refuses an id or a name it
// cannot carry (too long for its field, or what may be a card number in clear): such a bank
// would fail its file, and the cycle's close, at every try. Other parties are named in items,
// which stand in for an id a file cannot carry (settlement.FileParty), but never hold a card
// number in clear, which checkText refuses in their names. The error does not repeat the value.
func checkPartyInFiles(kind clearing.PartyKind, id, name string) error {
	if kind == clearing.PartyBank {
		if err := bankfile.CheckPartyID(id); err != nil {
			return Errorf(EINVALID, "id: %v: settlement files name the bank by its id", err)
		}
		if err := bankfile.CheckPartyName(name); err != nil {
			return Errorf(EINVALID, "name: %v: settlement files name the bank by its name", err)
		}
		return nil
	}
	if events.ContainsCardNumber(id) {
		return Errorf(EINVALID, "id: looks like a card number in clear: a party's id is logged and written in files")
	}
	return nil
}

// checkPartyID checks a party's id: an insurance fund's is prose (its city), every other
// party's an identifier.
func checkPartyID(kind clearing.PartyKind, id string) error {
	if id == "" {
		return Errorf(EINVALID, "id: missing required field")
	}
	if kind == clearing.PartyInsuranceFund {
		if why := checkProse(id); why != "" {
			return Errorf(EINVALID, "id: %s", why)
		}
	} else if why := checkID(id); why != "" {
		return Errorf(EINVALID, "id: %s", why)
	}
	return nil
}

// checkID returns why s is not an identifier, or "".
func checkID(s string) string {
	if len(s) > maxIDBytes {
		return "must be at most 64 bytes"
	}
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] >= 0x7f {
			return "must be printable ascii without spaces"
		}
	}
	return ""
}

// checkText returns why s is not acceptable prose, or "". A query parameter or a path may carry
// any bytes: invalid UTF-8 is refused here, as PostgreSQL would refuse it.
func checkText(s string) string {
	if len(s) > maxTextBytes {
		return "must be at most 256 bytes"
	}
	if !utf8.ValidString(s) {
		return "must be valid utf-8"
	}
	for _, r := range s {
		if unicode.IsControl(r) {
			return "must not contain control characters"
		}
	}
	first, _ := utf8.DecodeRuneInString(s)
	last, _ := utf8.DecodeLastRuneInString(s)
	if unicode.IsSpace(first) || unicode.IsSpace(last) {
		return "must not start or end with a space"
	}
	// Prose is stored, answered and logged as given: a card number in clear in it would be one
	// in every answer and log line that shows it.
	if events.ContainsCardNumber(s) {
		return "looks like a card number in clear: write the card's masked form"
	}
	return ""
}

// checkProse returns why s is not acceptable prose to keep as it is, or "": what checkText
// refuses, and what may hold a personal number of any kind (events.MayBePersonalNumber: a
// passport, social security, resident id or work permit number as well as a card number). For
// the texts the engine stores, shows and logs as given: names, reasons, notes, who did something.
func checkProse(s string) string {
	if why := checkText(s); why != "" {
		return why
	}
	if events.MayBePersonalNumber(s) {
		return "may hold a passport, social security, resident id or work permit number: write none here"
	}
	return ""
}

// checkSegment returns why s is not an identifier that names a resource in a path, or "": an
// identifier, and not "." or "..", which a client resolving the Location header would take for
// the path's own directories.
func checkSegment(s string) string {
	if why := checkID(s); why != "" {
		return why
	}
	if s == "." || s == ".." {
		return `must not be "." or ".."`
	}
	return ""
}

// pathID reads the path parameter name, an identifier: a malformed one is refused naming the
// parameter, never repeating it.
func pathID(r *http.Request, name string) (string, error) {
	id := r.PathValue(name)
	if id == "" {
		return "", Errorf(EINVALID, "%s: missing", name)
	}
	if why := checkID(id); why != "" {
		return "", Errorf(EINVALID, "%s: %s", name, why)
	}
	return id, nil
}

// checkCardToken checks a card token arriving in field (a path's token, a body's card_token, a
// query's after) by the rule every entry point shares, events.CheckCardToken: what is not a
// token is refused naming the field, never repeating the value, before anything reads the
// database with it.
func checkCardToken(field, token string) error {
	if err := events.CheckCardToken(token); err != nil {
		return Errorf(EINVALID, "%s: %v", field, err)
	}
	return nil
}

// storeError maps the store's errors that a client can act on; the rest are internal.
func (s *Server) storeError(ctx context.Context, err error) error {
	if postgres.IsConflict(err) {
		// Concurrent writers raced for the same rows for longer than the store retries.
		s.log.WarnContext(ctx, "store busy", "err", err)
		return Errorf(EUNAVAILABLE, "busy, retry")
	}
	return err
}

// checkMerchantInFiles is checkPartyInFiles for a merchant.
func checkMerchantInFiles(id, name string) error {
	return checkPartyInFiles(clearing.PartyMerchant, id, name)
}
