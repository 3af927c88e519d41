package http

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/google/uuid"

	"github.com/joinincard/engine/ledger"
	"github.com/joinincard/engine/postgres"
)

// AccountStore is what the accounts API reads: balances now or at an instant, and statements.
type AccountStore interface {
	Balance(ctx context.Context, id ledger.ID) (postgres.AccountBalance, error)
	BalanceAt(ctx context.Context, id ledger.ID, at time.Time) (postgres.AccountBalance, error)
	Statement(ctx context.Context, id ledger.ID, from, to time.Time, limit int) ([]ledger.Transfer, error)
}

var _ AccountStore = (*postgres.Store)(nil)

// maxStatementPage bounds one page of a statement over HTTP: a month of a busy card fits, and an
// operator's clearing account is read page by page.
const maxStatementPage = 1000

// Accounts is the finance staff's view of the ledger: any account's balance, now or as it was at
// an instant, and its statement over a period.
type Accounts struct {
	store AccountStore
}

// NewAccounts returns the accounts API over store.
func NewAccounts(store AccountStore) *Accounts { return &Accounts{store: store} }

// Routes registers the accounts endpoints; both need the admin token.
func (a *Accounts) Routes(s *Server) []FeatureRoute {
	h := &accountHandlers{s: s, store: a.store}
	return []FeatureRoute{
		{Method: http.MethodGet, Path: "/v1/accounts/{id}", Admin: true, Handler: h.balance},
		{Method: http.MethodGet, Path: "/v1/accounts/{id}/statement", Admin: true, Handler: h.statement},
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
	// More says the page is full: ask again from the last line's time.
	More bool `json:"more"`
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
	var b postgres.AccountBalance
	if at := r.URL.Query().Get("at"); at != "" {
		t, perr := time.Parse(time.RFC3339Nano, at)
		if perr != nil {
			h.s.writeError(w, r, Errorf(EINVALID, "at: want an RFC 3339 time with its zone"))
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
	constraint := "none"
	switch {
	case b.Flags&ledger.DebitsMustNotExceedCredits != 0:
		constraint = "debits_must_not_exceed_credits"
	case b.Flags&ledger.CreditsMustNotExceedDebits != 0:
		constraint = "credits_must_not_exceed_debits"
	}
	return accountView{
		ID: b.ID.String(), Name: b.Name, Kind: b.Kind.String(), Currency: string(c), Constraint: constraint,
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
	q := r.URL.Query()
	from, to, limit, err := statementRange(q.Get("from"), q.Get("to"), q.Get("limit"))
	if err != nil {
		h.s.writeError(w, r, err)
		return
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
	lines, err := h.store.Statement(r.Context(), id, from, to, limit)
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
	h.s.writeJSON(w, r, http.StatusOK, v)
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
		if from, err = time.Parse(time.RFC3339Nano, fromS); err != nil {
			return from, to, 0, Errorf(EINVALID, "from: want an RFC 3339 time with its zone")
		}
	}
	if toS != "" {
		if to, err = time.Parse(time.RFC3339Nano, toS); err != nil {
			return from, to, 0, Errorf(EINVALID, "to: want an RFC 3339 time with its zone")
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
