package http

import (
	"context"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/google/uuid"

	"github.com/joinincard/engine/events"
	"github.com/joinincard/engine/ledger"
	"github.com/joinincard/engine/postgres"
)

// AccountStore is what the accounts API reads and writes: balances now or at an instant,
// statements, and accounts the admin opens.
type AccountStore interface {
	// OpenAccounts opens accounts, all or none, and says of each whether this call opened it or
	// found it open with the same definition; another definition fails with an
	// *postgres.AccountConflictError.
	OpenAccounts(ctx context.Context, specs []postgres.AccountSpec) ([]bool, error)
	Balance(ctx context.Context, id ledger.ID) (postgres.AccountBalance, error)
	BalanceAt(ctx context.Context, id ledger.ID, at time.Time) (postgres.AccountBalance, error)
	Statement(ctx context.Context, id ledger.ID, from, to time.Time, after *postgres.StatementAfter, limit int) ([]ledger.Transfer, error)
}

var _ AccountStore = (*postgres.Store)(nil)

// maxStatementPage bounds one page of a statement over HTTP: a month of a busy card fits, and an
// operator's clearing account is read page by page.
const maxStatementPage = 1000

// Accounts is the finance staff's view of the ledger: any account's balance, now or as it was at
// an instant, and its statement over a period; and the accounts the admin opens for transfers of
// its own (a bank's funding account, a suspense account, a load run's accounts).
type Accounts struct {
	store AccountStore
}

// NewAccounts returns the accounts API over store.
func NewAccounts(store AccountStore) *Accounts { return &Accounts{store: store} }

// Routes registers the accounts endpoints; all need the admin token.
func (a *Accounts) Routes(s *Server) []FeatureRoute {
	h := &accountHandlers{s: s, store: a.store}
	return []FeatureRoute{
		{Method: http.MethodPost, Path: "/v1/accounts", Admin: true, Handler: h.open},
		{Method: http.MethodGet, Path: "/v1/accounts/{id}", Query: true, Admin: true, Handler: h.balance},
		{Method: http.MethodGet, Path: "/v1/accounts/{id}/statement", Query: true, Admin: true, Handler: h.statement},
	}
}

type accountHandlers struct {
	s     *Server
	store AccountStore
}

// accountView is an account and its balance. Amounts are decimal strings in the account's
// currency; net is credits posted less debits posted.
type accountView struct {
	ID             string `json:"id"`
	Name           string `json:"name"`
	Kind           string `json:"kind"`
	Currency       string `json:"currency"`
	Constraint     string `json:"constraint"`
	Limit          string `json:"limit"`
	DebitsPending  string `json:"debits_pending"`
	DebitsPosted   string `json:"debits_posted"`
	CreditsPending string `json:"credits_pending"`
	CreditsPosted  string `json:"credits_posted"`
	Net            string `json:"net"`
	Available      string `json:"available"`
	Version        int64  `json:"version"`
	AsOf           string `json:"as_of"`
}

// statementView is one page of an account's statement, oldest first.
type statementView struct {
	AccountID string          `json:"account_id"`
	From      string          `json:"from"`
	To        string          `json:"to"`
	Lines     []statementLine `json:"lines"`
	// More says the page is full: ask again with after=Next for the lines after it.
	More bool `json:"more"`
	// Next is where the page ends, when it is full: the after of the next page. The lines of
	// one commit share its time, so a page goes on after its last line, not from its time.
	Next string `json:"next,omitempty"`
}

// statementLine is one transfer as the account sees it: on its debit or its credit side.
type statementLine struct {
	TransferID   string `json:"transfer_id"`
	Time         string `json:"time"`
	Code         int    `json:"code"`
	Kind         string `json:"kind"`
	Side         string `json:"side"`
	Amount       string `json:"amount"`
	Counterparty string `json:"counterparty"`
	Ref          string `json:"ref,omitempty"`
}

func (h *accountHandlers) balance(w http.ResponseWriter, r *http.Request) {
	id, err := accountID(r)
	if err != nil {
		h.s.writeError(w, r, err)
		return
	}
	if err := onlyParameters(r, "at"); err != nil {
		h.s.writeError(w, r, err)
		return
	}
	var b postgres.AccountBalance
	if at := r.URL.Query().Get("at"); at != "" {
		t, perr := events.ParseInstant(at)
		if perr != nil {
			h.s.writeError(w, r, Errorf(EINVALID, "at: %v", perr))
			return
		}
		b, err = h.store.BalanceAt(r.Context(), id, t)
	} else {
		b, err = h.store.Balance(r.Context(), id)
	}
	if errors.Is(err, postgres.ErrNotFound) {
		h.s.writeError(w, r, Errorf(ENOTFOUND, "no such account (or none yet at that time)"))
		return
	}
	if err != nil {
		h.s.writeError(w, r, h.s.storeError(r.Context(), err))
		return
	}
	h.s.writeJSON(w, r, http.StatusOK, viewAccount(&b))
}

func viewAccount(b *postgres.AccountBalance) accountView {
	c := b.Currency
	return accountView{
		ID: b.ID.String(), Name: b.Name, Kind: b.Kind.String(), Currency: string(c), Constraint: constraintName(b.Flags),
		Limit:         decimalAmount(b.Limit, c),
		DebitsPending: decimalAmount(b.DebitsPending, c), DebitsPosted: decimalAmount(b.DebitsPosted, c),
		CreditsPending: decimalAmount(b.CreditsPending, c), CreditsPosted: decimalAmount(b.CreditsPosted, c),
		Net: decimalAmount(b.Net(), c), Available: decimalAmount(b.Available(), c),
		Version: b.Version, AsOf: b.AsOf.UTC().Format(time.RFC3339Nano),
	}
}

func (h *accountHandlers) statement(w http.ResponseWriter, r *http.Request) {
	id, err := accountID(r)
	if err != nil {
		h.s.writeError(w, r, err)
		return
	}
	if err := onlyParameters(r, "from", "to", "limit", "after"); err != nil {
		h.s.writeError(w, r, err)
		return
	}
	q := r.URL.Query()
	from, to, limit, err := statementRange(q.Get("from"), q.Get("to"), q.Get("limit"))
	if err != nil {
		h.s.writeError(w, r, err)
		return
	}
	var after *postgres.StatementAfter
	if q.Has("after") {
		a, ok := parseStatementCursor(q.Get("after"))
		if !ok {
			h.s.writeError(w, r, Errorf(EINVALID, "after: want the next of the page before"))
			return
		}
		after = &a
	}
	b, err := h.store.Balance(r.Context(), id)
	if errors.Is(err, postgres.ErrNotFound) {
		h.s.writeError(w, r, Errorf(ENOTFOUND, "no such account"))
		return
	}
	if err != nil {
		h.s.writeError(w, r, h.s.storeError(r.Context(), err))
		return
	}
	lines, err := h.store.Statement(r.Context(), id, from, to, after, limit)
	if err != nil {
		h.s.writeError(w, r, h.s.storeError(r.Context(), err))
		return
	}
	v := statementView{AccountID: id.String(), From: from.UTC().Format(time.RFC3339Nano), To: to.UTC().Format(time.RFC3339Nano),
		Lines: make([]statementLine, 0, len(lines)), More: len(lines) == limit}
	for _, t := range lines {
		l := statementLine{TransferID: t.ID.String(), Time: time.UnixMicro(t.Timestamp).UTC().Format(time.RFC3339Nano),
			Code: int(t.Code), Kind: transferKind(t.Flags), Side: "credit", Counterparty: t.DebitAccountID.String(),
			Amount: decimalAmount(t.Amount, b.Currency)}
		if t.DebitAccountID == id {
			l.Side, l.Counterparty = "debit", t.CreditAccountID.String()
		}
		if !t.Ref.IsZero() {
			l.Ref = t.Ref.String()
		}
		v.Lines = append(v.Lines, l)
	}
	if v.More {
		last := lines[len(lines)-1]
		v.Next = statementCursor(postgres.StatementAfter{Timestamp: last.Timestamp, ID: last.ID})
	}
	h.s.writeJSON(w, r, http.StatusOK, v)
}

// statementCursorBytes is a statement cursor decoded: a line's time in Unix microseconds (8
// bytes, big-endian) and its transfer id (16).
const statementCursorBytes = 8 + 16

// statementCursor writes where a page of a statement ends as its next page's after: opaque,
// URL-safe base64 without padding.
func statementCursor(a postgres.StatementAfter) string {
	var b [statementCursorBytes]byte
	binary.BigEndian.PutUint64(b[:8], uint64(a.Timestamp))
	copy(b[8:], a.ID[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// parseStatementCursor reads an after that statementCursor wrote.
func parseStatementCursor(s string) (postgres.StatementAfter, bool) {
	b, err := base64.RawURLEncoding.Strict().DecodeString(s)
	if err != nil || len(b) != statementCursorBytes {
		return postgres.StatementAfter{}, false
	}
	a := postgres.StatementAfter{Timestamp: int64(binary.BigEndian.Uint64(b[:8]))}
	copy(a.ID[:], b[8:])
	return a, true
}

func accountID(r *http.Request) (ledger.ID, error) {
	u, err := uuid.Parse(r.PathValue("id"))
	if err != nil || u == uuid.Nil {
		return ledger.ID{}, Errorf(EINVALID, "id: want an account id (a UUID)")
	}
	return ledger.ID(u), nil
}

// statementRange reads a statement's period and page size: from defaults to the beginning, to to
// now (the server's clock is not needed: an open end is far in the future), limit to the page
// bound.
func statementRange(fromS, toS, limitS string) (from, to time.Time, limit int, err error) {
	from, to, limit = time.Unix(0, 0).UTC(), time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC), maxStatementPage
	if fromS != "" {
		if from, err = events.ParseInstant(fromS); err != nil {
			return from, to, 0, Errorf(EINVALID, "from: %v", err)
		}
	}
	if toS != "" {
		if to, err = events.ParseInstant(toS); err != nil {
			return from, to, 0, Errorf(EINVALID, "to: %v", err)
		}
	}
	if !from.Before(to) {
		return from, to, 0, Errorf(EINVALID, "from must be before to")
	}
	if limitS != "" {
		n, perr := strconv.Atoi(limitS)
		if perr != nil || n < 1 || n > maxStatementPage {
			return from, to, 0, Errorf(EINVALID, "limit: want 1 to %d", maxStatementPage)
		}
		limit = n
	}
	return from, to, limit, nil
}

// transferKind names what a transfer did, for people reading a statement.
func transferKind(f ledger.TransferFlags) string {
	switch {
	case f&ledger.Pending != 0:
		return "hold"
	case f&ledger.PostPending != 0:
		return "capture"
	case f&ledger.VoidPending != 0:
		return "void"
	case f&ledger.ExpirePending != 0:
		return "expiry"
	case f&ledger.Reversal != 0:
		return "reversal"
	}
	return "transfer"
}

const (
	// maxOpenAccounts bounds one POST /v1/accounts: a city's merchants, or a load run's ten
	// thousand accounts, open in one request, one statement for the accounts and one for their
	// opening balances, well under a second.
	maxOpenAccounts = 10_000
	// maxAccountJSONBytes bounds one account in the body: an id, a name of at most 256 bytes, a
	// kind, a currency, a constraint and a limit take under 450 bytes; 1 KiB leaves room for
	// spacing and escapes.
	maxAccountJSONBytes = 1 << 10
)

// openAccountsRequest is the body of POST /v1/accounts. The handler reads it with decodeList; the
// types name the fields for the document's check.
type openAccountsRequest struct {
	Accounts []openAccountRequest `json:"accounts"`
}

// openAccountRequest is one account to open, named as an account is shown: constraint none
// unless given, limit zero unless given.
type openAccountRequest struct {
	ID         string `json:"id"`
	Name       string `json:"name"`
	Kind       string `json:"kind"`
	Currency   string `json:"currency"`
	Constraint string `json:"constraint,omitempty"`
	Limit      string `json:"limit,omitempty"`
}

var openAccountFields = map[string]jsonKind{
	"id": jsonString, "name": jsonString, "kind": jsonString, "currency": jsonString, "constraint": jsonString, "limit": jsonString,
}

// engineIDVersion is the UUID version of the accounts the engine derives from what they belong to
// (cards.AccountID): a card's funds and medical accounts, a party's, a bank's settlement position,
// the reconciliation adjustments. The admin opens accounts under other ids: one opened first under
// such an id would refuse the registration of its card or party, or a cycle's close, for good.
const engineIDVersion = 8

// openableKinds are the kinds of account the admin opens. The others have a role in settlement
// and belong to a card or a party, opened when it is registered under an id derived from it: a
// cycle's close refuses an account of those kinds that belongs to neither.
var openableKinds = []ledger.Kind{ledger.KindBankSettlement, ledger.KindSuspense}

// constraints are an account's constraints by name, as accountView shows them.
var constraints = map[string]ledger.AccountFlags{
	"none": 0, "debits_must_not_exceed_credits": ledger.DebitsMustNotExceedCredits,
	"credits_must_not_exceed_debits": ledger.CreditsMustNotExceedDebits,
}

// openedAccountsView answers POST /v1/accounts: each account as opened, in order.
type openedAccountsView struct {
	Accounts []openedAccountView `json:"accounts"`
}

// openedAccountView is an account's definition, and whether this request opened it (created)
// or found it open with this definition.
type openedAccountView struct {
	ID         string `json:"id"`
	Name       string `json:"name"`
	Kind       string `json:"kind"`
	Currency   string `json:"currency"`
	Constraint string `json:"constraint"`
	Limit      string `json:"limit"`
	Created    bool   `json:"created"`
}

// open opens accounts, all or none: 201 when this request opened any, 200 when every one was open
// already with the same definition, 409 when one is open with another.
func (h *accountHandlers) open(w http.ResponseWriter, r *http.Request) {
	body, err := readListBody(w, r, maxOpenAccounts*maxAccountJSONBytes)
	if err != nil {
		h.s.writeError(w, r, err)
		return
	}
	items, err := decodeList(body, "accounts", maxOpenAccounts, openAccountFields)
	if err != nil {
		h.s.writeError(w, r, err)
		return
	}
	specs := make([]postgres.AccountSpec, len(items))
	index := make(map[ledger.ID]int, len(items))
	for i, it := range items {
		where := fmt.Sprintf("accounts[%d]", i)
		if err := parseAccountSpec(where, it, &specs[i]); err != nil {
			h.s.writeError(w, r, err)
			return
		}
		if j, dup := index[specs[i].ID]; dup {
			h.s.writeError(w, r, Errorf(EINVALID, "%s.id: the id of accounts[%d] again", where, j))
			return
		}
		index[specs[i].ID] = i
	}
	opened, err := h.store.OpenAccounts(r.Context(), specs)
	var conflict *postgres.AccountConflictError
	switch {
	case errors.As(err, &conflict):
		h.s.writeError(w, r, Errorf(ECONFLICT, "accounts[%d].id: the account is open with another definition", index[conflict.ID]))
		return
	case err != nil:
		h.s.writeError(w, r, h.s.storeError(r.Context(), err))
		return
	case len(opened) != len(specs):
		h.s.writeError(w, r, fmt.Errorf("opened %d accounts of %d", len(opened), len(specs)))
		return
	}
	v := openedAccountsView{Accounts: make([]openedAccountView, len(specs))}
	status := http.StatusOK
	for i := range specs {
		a := &specs[i]
		v.Accounts[i] = openedAccountView{ID: a.ID.String(), Name: a.Name, Kind: a.Kind.String(), Currency: string(a.Currency),
			Constraint: constraintName(a.Flags), Limit: decimalAmount(a.Limit, a.Currency), Created: opened[i]}
		if opened[i] {
			status = http.StatusCreated
		}
	}
	h.s.writeJSON(w, r, status, v)
}

// parseAccountSpec reads item into spec.
func parseAccountSpec(where string, it listItem, spec *postgres.AccountSpec) error {
	bad := func(field, format string, args ...any) error {
		return Errorf(EINVALID, "%s.%s: %s", where, field, fmt.Sprintf(format, args...))
	}
	for _, f := range []string{"id", "name", "kind", "currency"} {
		if _, ok := it.text(f); !ok {
			return bad(f, "missing required field")
		}
	}
	s, _ := it.text("id")
	id, err := parseUUID(s)
	if err != nil || id.IsZero() {
		return bad("id", "want a uuid, not the zero one")
	}
	if id[6]>>4 == engineIDVersion {
		return bad("id", "a version 8 uuid names the account of a card, a party or the engine itself (their ids derive from them): want another version, such as a uuidv7")
	}
	spec.ID = id
	spec.Name, _ = it.text("name")
	if why := checkProse(spec.Name); why != "" {
		return bad("name", "%s", why)
	}
	if spec.Name == "" {
		return bad("name", "must not be empty")
	}
	s, _ = it.text("kind")
	kind, err := ledger.ParseKind(s)
	if err != nil || !slices.Contains(openableKinds, kind) {
		names := make([]string, len(openableKinds))
		for i, k := range openableKinds {
			names[i] = k.String()
		}
		return bad("kind", "want one of %q: the others belong to cards and parties, opened when they are registered", names)
	}
	spec.Kind = kind
	s, _ = it.text("currency")
	if _, known := ledger.Currency(s).MinorUnits(); !known {
		return bad("currency", "not a currency the ledger books")
	}
	spec.Currency = ledger.Currency(s)
	if s, ok := it.text("constraint"); ok {
		f, known := constraints[s]
		if !known {
			return bad("constraint", "want one of %q", slices.Sorted(maps.Keys(constraints)))
		}
		spec.Flags = f
	}
	if s, ok := it.text("limit"); ok {
		limit, err := ledger.ParseAmount(s, spec.Currency)
		if err != nil {
			return bad("limit", "%v", err)
		}
		if limit != 0 && spec.Flags == 0 {
			return bad("limit", "an account without a constraint has no limit")
		}
		spec.Limit = limit
	}
	return nil
}

// constraintName names an account's constraint as accountView shows it.
func constraintName(f ledger.AccountFlags) string {
	switch {
	case f&ledger.DebitsMustNotExceedCredits != 0:
		return "debits_must_not_exceed_credits"
	case f&ledger.CreditsMustNotExceedDebits != 0:
		return "credits_must_not_exceed_debits"
	}
	return "none"
}
