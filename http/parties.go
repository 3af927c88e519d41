package http

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"unicode"
	"unicode/utf8"

	"github.com/joinincard/engine/clearing"
	"github.com/joinincard/engine/events"
	"github.com/joinincard/engine/postgres"
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
}

type partyView struct {
	Kind      string `json:"kind"`
	ID        string `json:"id"`
	Name      string `json:"name"`
	AccountID string `json:"account_id"`
}

// handleRegisterParty registers a bank, merchant, transit operator or insurance fund and opens
// its account. Registering it again with the same name changes nothing and answers the same.
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
	p, err := s.store.RegisterParty(r.Context(), kind, req.ID, req.Name)
	if errors.Is(err, postgres.ErrAccountConflict) {
		s.writeError(w, r, Errorf(ECONFLICT, "%s is registered under another name", kind))
		return
	}
	if err != nil {
		s.writeError(w, r, s.storeError(r.Context(), err))
		return
	}
	s.writeJSON(w, r, http.StatusCreated, partyView{Kind: string(p.Kind), ID: p.ID, Name: p.Name, AccountID: p.Account.String()})
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
	if id == "" {
		return Errorf(EINVALID, "id: missing required field")
	}
	if kind == clearing.PartyInsuranceFund {
		if why := checkText(id); why != "" {
			return Errorf(EINVALID, "id: %s", why)
		}
	} else if why := checkID(id); why != "" {
		return Errorf(EINVALID, "id: %s", why)
	}
	if name == "" {
		return Errorf(EINVALID, "name: missing required field")
	}
	if why := checkText(name); why != "" {
		return Errorf(EINVALID, "name: %s", why)
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
