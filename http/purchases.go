package http

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/joinincard/engine/cities"
	"github.com/joinincard/engine/fees"
	"github.com/joinincard/engine/ledger"
	"github.com/joinincard/engine/medical"
	"github.com/joinincard/engine/postgres"
	"github.com/joinincard/engine/purchases"
)

// PurchaseService is what the purchase endpoints need: the purchase engine on the store.
type PurchaseService interface {
	// FeeCatalog is the fee plans merchants may be registered with.
	FeeCatalog() *fees.Catalog
	// RegisterMerchant registers a merchant with the SHA-256 of its API key. Errors wrap
	// postgres.ErrMerchantExists, ErrUnknownBank, ErrInvalidMerchant or ErrAccountConflict, or are
	// a *medical.Refusal for a designated institution's profile that contradicts it.
	RegisterMerchant(ctx context.Context, m purchases.Merchant, keyHash [32]byte) error
	// RotateMerchantKey replaces a merchant's key, or fails with postgres.ErrNotFound.
	RotateMerchantKey(ctx context.Context, merchantID string, keyHash [32]byte) (purchases.Merchant, error)
	// MerchantByKey finds a merchant by the SHA-256 of its key, or fails with postgres.ErrNotFound.
	MerchantByKey(ctx context.Context, keyHash [32]byte) (purchases.Merchant, error)
	// SetCardLimits sets a card's limits and returns its own token; postgres.ErrNotFound for no
	// such card, ErrInvalidLimits for limits the domain refuses.
	SetCardLimits(ctx context.Context, token string, l purchases.Limits) (string, error)
	// Do applies a merchant's request durably and answers it (see postgres.Purchases.Do).
	Do(ctx context.Context, req postgres.PurchaseRequest) (postgres.PurchaseResult, error)
	// Authorization returns a merchant's own authorization, or postgres.ErrNotFound.
	Authorization(ctx context.Context, merchantID string, id ledger.ID) (postgres.AuthorizationRecord, error)
	// Authorizations pages through a merchant's own authorizations, newest first.
	Authorizations(ctx context.Context, merchantID string, before ledger.ID, limit int) ([]postgres.AuthorizationRecord, error)
	// Savings sums a card's foreign-card comparison, or fails with postgres.ErrNotFound.
	Savings(ctx context.Context, token string) (postgres.CardSavings, error)
}

var _ PurchaseService = (*postgres.Purchases)(nil)

// Purchases is the purchase API: merchants registered by the admin, each with its own API key,
// authorize, raise, capture, void and refund purchases, and see only their own.
type Purchases struct {
	svc PurchaseService
}

// NewPurchases returns the purchase API on svc.
func NewPurchases(svc PurchaseService) *Purchases { return &Purchases{svc: svc} }

// Routes registers the purchase endpoints.
func (p *Purchases) Routes(s *Server) []FeatureRoute {
	h := &purchaseHandlers{s: s, svc: p.svc}
	return []FeatureRoute{
		{Method: http.MethodPost, Path: "/v1/merchants", Admin: true, Handler: h.registerMerchant},
		{Method: http.MethodPost, Path: "/v1/merchants/{id}/key", Admin: true, Handler: h.rotateKey},
		{Method: http.MethodPost, Path: "/v1/cards/{token}/limits", Admin: true, Handler: h.setLimits},
		{Method: http.MethodGet, Path: "/v1/cards/{token}/savings", Admin: true, Handler: h.savings},
		{Method: http.MethodPost, Path: "/v1/authorizations", Handler: h.merchantOnly(h.authorize)},
		{Method: http.MethodGet, Path: "/v1/authorizations", Query: true, Handler: h.merchantOnly(h.list)},
		{Method: http.MethodGet, Path: "/v1/authorizations/{id}", Handler: h.merchantOnly(h.get)},
		{Method: http.MethodPost, Path: "/v1/authorizations/{id}/increments", Handler: h.merchantOnly(h.operate(postgres.OpIncrement))},
		{Method: http.MethodPost, Path: "/v1/authorizations/{id}/capture", Handler: h.merchantOnly(h.operate(postgres.OpCapture))},
		{Method: http.MethodPost, Path: "/v1/authorizations/{id}/void", Handler: h.merchantOnly(h.operate(postgres.OpVoid))},
		{Method: http.MethodPost, Path: "/v1/authorizations/{id}/refunds", Handler: h.merchantOnly(h.operate(postgres.OpRefund))},
	}
}

type purchaseHandlers struct {
	s   *Server
	svc PurchaseService
}

// merchantKeyBytes is the entropy of a merchant's API key: 256 bits, so that a plain SHA-256 of it is
// as good a stored form as a slow password hash, and a lookup by hash costs one index probe.
const merchantKeyBytes = 32

// merchantKeyPrefix marks a merchant key, so that one pasted where it does not belong is recognized.
const merchantKeyPrefix = "mk_"

// merchantKeyLen is the length of every merchant key: the prefix and the key's bytes in base64.
var merchantKeyLen = len(merchantKeyPrefix) + base64.RawURLEncoding.EncodedLen(merchantKeyBytes)

func newMerchantKey() (string, [32]byte, error) {
	var b [merchantKeyBytes]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", [32]byte{}, fmt.Errorf("new api key: %w", err)
	}
	key := merchantKeyPrefix + base64.RawURLEncoding.EncodeToString(b[:])
	return key, sha256.Sum256([]byte(key)), nil
}

type merchantRequest struct {
	ID            string `json:"id"`
	Name          string `json:"name"`
	MCC           string `json:"mcc"`
	City          string `json:"city"`
	AcquiringBank string `json:"acquiring_bank"`
	FeePlan       string `json:"fee_plan"`
}

// merchantView is a merchant with its API key: shown when the key is made, never again.
type merchantView struct {
	ID            string `json:"id"`
	Name          string `json:"name"`
	MCC           string `json:"mcc"`
	City          string `json:"city"`
	AcquiringBank string `json:"acquiring_bank"`
	FeePlan       string `json:"fee_plan"`
	AccountID     string `json:"account_id"`
	APIKey        string `json:"api_key"`
}

func viewMerchantKey(m purchases.Merchant, key string) merchantView {
	return merchantView{ID: m.ID, Name: m.Name, MCC: m.MCC, City: m.City, AcquiringBank: m.AcquiringBank,
		FeePlan: m.FeePlan, AccountID: m.Account().String(), APIKey: key}
}

// registerMerchant registers a merchant on an acquiring bank already registered, with a fee plan
// the engine has, and answers its API key, once.
func (h *purchaseHandlers) registerMerchant(w http.ResponseWriter, r *http.Request) {
	var req merchantRequest
	if err := decodeBody(w, r, &req); err != nil {
		h.s.writeError(w, r, err)
		return
	}
	for _, f := range []struct{ name, value string }{{"id", req.ID}, {"name", req.Name}, {"mcc", req.MCC},
		{"city", req.City}, {"acquiring_bank", req.AcquiringBank}, {"fee_plan", req.FeePlan}} {
		if f.value == "" {
			h.s.writeError(w, r, Errorf(EINVALID, "%s: missing required field", f.name))
			return
		}
	}
	if why := checkID(req.ID); why != "" {
		h.s.writeError(w, r, Errorf(EINVALID, "id: %s", why))
		return
	}
	if why := checkID(req.AcquiringBank); why != "" {
		h.s.writeError(w, r, Errorf(EINVALID, "acquiring_bank: %s", why))
		return
	}
	for _, f := range []struct{ name, value string }{{"name", req.Name}, {"city", req.City}} {
		if why := checkProse(f.value); why != "" {
			h.s.writeError(w, r, Errorf(EINVALID, "%s: %s", f.name, why))
			return
		}
	}
	if err := checkMerchantInFiles(req.ID, req.Name); err != nil {
		h.s.writeError(w, r, err)
		return
	}
	if !fees.ValidMCC(req.MCC) {
		h.s.writeError(w, r, Errorf(EINVALID, "mcc: must be four digits"))
		return
	}
	cat := h.svc.FeeCatalog()
	if _, ok := cat.Plan(req.FeePlan); !ok {
		h.s.writeError(w, r, Errorf(EINVALID, "fee_plan: must be one of %q", cat.PlanIDs()))
		return
	}
	key, hash, err := newMerchantKey()
	if err != nil {
		h.s.writeError(w, r, err)
		return
	}
	m := purchases.Merchant{ID: req.ID, Name: req.Name, MCC: req.MCC, City: cities.Canonical(req.City), AcquiringBank: req.AcquiringBank, FeePlan: req.FeePlan}
	err = h.svc.RegisterMerchant(r.Context(), m, hash)
	var (
		refused *medical.Refusal
		differs *postgres.PartyBankConflictError
	)
	switch {
	case errors.As(err, &differs):
		h.s.writeError(w, r, &Error{Code: ECONFLICT, Reason: "settlement_bank_differs", Message: fmt.Sprintf(
			"merchant %q is settled by bank %q, not by the acquiring_bank named: nothing was changed; "+
				"to change its bank, PUT /v1/parties/merchant/{id}/settlement-bank", req.ID, differs.Current)})
		return
	case errors.Is(err, postgres.ErrMerchantExists):
		h.s.writeError(w, r, Errorf(ECONFLICT, "merchant %q is already registered: rotate its key to get a new one", req.ID))
		return
	case errors.Is(err, postgres.ErrAccountConflict):
		h.s.writeError(w, r, Errorf(ECONFLICT, "merchant %q is registered as a party under another name", req.ID))
		return
	case errors.Is(err, postgres.ErrUnknownBank):
		h.s.writeError(w, r, Errorf(EINVALID, "acquiring_bank: bank %q is not registered", req.AcquiringBank))
		return
	case errors.As(err, &refused):
		h.s.writeError(w, r, Errorf(ECONFLICT, "%s", refused.Error()))
		return
	case err != nil:
		h.s.writeError(w, r, h.s.storeError(r.Context(), err))
		return
	}
	w.Header().Set("Location", "/v1/merchants/"+url.PathEscape(m.ID))
	h.s.writeJSON(w, r, http.StatusCreated, viewMerchantKey(m, key))
}

// rotateKey gives a merchant a new API key; the old one stops working.
func (h *purchaseHandlers) rotateKey(w http.ResponseWriter, r *http.Request) {
	// It reads no body: one that says something is refused, not ignored.
	if err := decodeEmptyBody(w, r); err != nil {
		h.s.writeError(w, r, err)
		return
	}
	id, err := pathID(r, "id")
	if err != nil {
		h.s.writeError(w, r, err)
		return
	}
	key, hash, err := newMerchantKey()
	if err != nil {
		h.s.writeError(w, r, err)
		return
	}
	m, err := h.svc.RotateMerchantKey(r.Context(), id, hash)
	if errors.Is(err, postgres.ErrNotFound) {
		h.s.writeError(w, r, Errorf(ENOTFOUND, "merchant not found"))
		return
	}
	if err != nil {
		h.s.writeError(w, r, h.s.storeError(r.Context(), err))
		return
	}
	h.s.writeJSON(w, r, http.StatusCreated, viewMerchantKey(m, key))
}

type cardLimitsRequest struct {
	PerTransaction string `json:"per_transaction"`
	PerDay         string `json:"per_day"`
}

type cardLimitsView struct {
	CardToken      string `json:"card_token"`
	Currency       string `json:"currency"`
	PerTransaction string `json:"per_transaction"`
	PerDay         string `json:"per_day"`
}

// setLimits sets a card's per-transaction and daily limits.
func (h *purchaseHandlers) setLimits(w http.ResponseWriter, r *http.Request) {
	var req cardLimitsRequest
	if err := decodeBody(w, r, &req); err != nil {
		h.s.writeError(w, r, err)
		return
	}
	var l purchases.Limits
	for _, f := range []struct {
		name, value string
		dst         *int64
	}{{"per_transaction", req.PerTransaction, &l.PerTransaction}, {"per_day", req.PerDay, &l.PerDay}} {
		if f.value == "" {
			h.s.writeError(w, r, Errorf(EINVALID, "%s: missing required field", f.name))
			return
		}
		v, err := purchases.ParseAmount(f.value)
		if err != nil && f.name == "per_day" {
			v, err = dailyLimitOver(f.value, err)
		}
		if err != nil {
			h.s.writeError(w, r, Errorf(EINVALID, "%s: %v", f.name, err))
			return
		}
		*f.dst = v
	}
	if err := l.Validate(); err != nil {
		h.s.writeError(w, r, Errorf(EINVALID, "%v", err))
		return
	}
	token := r.PathValue("token")
	if err := checkCardToken("token", token); err != nil {
		h.s.writeError(w, r, err)
		return
	}
	own, err := h.svc.SetCardLimits(r.Context(), token, l)
	switch {
	case errors.Is(err, postgres.ErrNotFound):
		h.s.writeError(w, r, Errorf(ENOTFOUND, "card not found"))
		return
	case err != nil:
		h.s.writeError(w, r, h.s.storeError(r.Context(), err))
		return
	}
	h.s.writeJSON(w, r, http.StatusOK, cardLimitsView{CardToken: own, Currency: string(purchases.Currency),
		PerTransaction: purchases.FormatAmount(l.PerTransaction), PerDay: purchases.FormatAmount(l.PerDay)})
}

type cardSavingsView struct {
	CardToken       string              `json:"card_token"`
	Currency        string              `json:"currency"`
	Purchases       int64               `json:"purchases"`
	Paid            string              `json:"paid"`
	CardFees        string              `json:"card_fees"`
	ForeignCardCost foreignCardCostView `json:"foreign_card_cost"`
	Saved           string              `json:"saved"`
}

type foreignCardCostView struct {
	Surcharge string `json:"surcharge"`
	FXMargin  string `json:"fx_margin"`
	Total     string `json:"total"`
}

func viewForeignCardCost(c fees.ForeignCost) foreignCardCostView {
	return foreignCardCostView{Surcharge: purchases.FormatAmount(c.Surcharge), FXMargin: purchases.FormatAmount(c.FXMargin),
		Total: purchases.FormatAmount(c.Total())}
}

// savings shows what a card's purchases would have cost on a foreign card: what the card saved.
func (h *purchaseHandlers) savings(w http.ResponseWriter, r *http.Request) {
	token := r.PathValue("token")
	if err := checkCardToken("token", token); err != nil {
		h.s.writeError(w, r, err)
		return
	}
	sv, err := h.svc.Savings(r.Context(), token)
	switch {
	case errors.Is(err, postgres.ErrNotFound):
		h.s.writeError(w, r, Errorf(ENOTFOUND, "card not found"))
		return
	case err != nil:
		h.s.writeError(w, r, h.s.storeError(r.Context(), err))
		return
	}
	// On domestic rails the cardholder pays no fee: the whole foreign-card cost is saved.
	h.s.writeJSON(w, r, http.StatusOK, cardSavingsView{CardToken: sv.CardToken, Currency: string(purchases.Currency),
		Purchases: sv.Purchases, Paid: purchases.FormatAmount(sv.Paid), CardFees: purchases.FormatAmount(0),
		ForeignCardCost: viewForeignCardCost(sv.Foreign), Saved: purchases.FormatAmount(sv.Foreign.Total())})
}

// merchantHandler is a handler of a merchant's own requests.
type merchantHandler func(w http.ResponseWriter, r *http.Request, m purchases.Merchant)

// merchantOnly lets a request through with a merchant's API key as its bearer token, and hands
// the handler the merchant: a merchant sees and acts on only its own authorizations.
func (h *purchaseHandlers) merchantOnly(next merchantHandler) http.HandlerFunc {
	return apiKey[purchases.Merchant]{
		holder: "merchant", realm: "joinin-merchant",
		wellFormed: func(key string) bool { return len(key) == merchantKeyLen && strings.HasPrefix(key, merchantKeyPrefix) },
		lookup:     h.svc.MerchantByKey,
	}.require(h.s, next)
}

type authorizeRequest struct {
	CardToken  string `json:"card_token"`
	Amount     string `json:"amount"`
	Currency   string `json:"currency"`
	MerchantID string `json:"merchant_id,omitempty"`
}

// purchaseCaptureRequest captures amount, or without one everything the authorization holds.
type purchaseCaptureRequest struct {
	Amount string `json:"amount,omitempty"`
}

// purchaseAmountRequest is an increment's or a refund's amount.
type purchaseAmountRequest struct {
	Amount string `json:"amount"`
}

// purchaseRequestHash is the SHA-256 of a request's meaning: the operation, the authorization it acts on
// and its fields, each length-prefixed. The same key with another hash is another request.
func purchaseRequestHash(op postgres.Operation, auth ledger.ID, fields ...string) [32]byte {
	d := sha256.New()
	for _, f := range append([]string{string(op), auth.String()}, fields...) {
		fmt.Fprintf(d, "%d:%s;", len(f), f)
	}
	var sum [32]byte
	d.Sum(sum[:0])
	return sum
}

// authorize decides an authorization: approved with a hold durable before the answer, or
// declined with a reason. Both are 201: the authorization is made either way, and kept.
func (h *purchaseHandlers) authorize(w http.ResponseWriter, r *http.Request, m purchases.Merchant) {
	key, _, err := h.s.idempotencyKey(r)
	if err != nil {
		h.s.writeError(w, r, err)
		return
	}
	var req authorizeRequest
	if err := decodeBody(w, r, &req); err != nil {
		h.s.writeError(w, r, err)
		return
	}
	for _, f := range []struct{ name, value string }{{"card_token", req.CardToken}, {"amount", req.Amount}, {"currency", req.Currency}} {
		if f.value == "" {
			h.s.writeError(w, r, Errorf(EINVALID, "%s: missing required field", f.name))
			return
		}
	}
	// Every field is checked here, before the request queues for the committer: what the
	// database cannot take must never reach the transaction the request shares with others.
	if err := checkCardToken("card_token", req.CardToken); err != nil {
		h.s.writeError(w, r, err)
		return
	}
	if req.Currency != string(purchases.Currency) {
		h.s.writeError(w, r, Errorf(EINVALID, "currency: must be CNY, the card pays on domestic rails"))
		return
	}
	if why := checkID(req.MerchantID); req.MerchantID != "" && why != "" {
		h.s.writeError(w, r, Errorf(EINVALID, "merchant_id: %s", why))
		return
	}
	if req.MerchantID != "" && req.MerchantID != m.ID {
		h.s.writeError(w, r, Errorf(EFORBIDDEN, "merchant_id: the api key is another merchant's"))
		return
	}
	if err := checkAmountText(req.Amount); err != nil {
		h.s.writeError(w, r, err)
		return
	}
	// An amount that is not one is an authorization declined invalid_amount, kept like any other;
	// its text goes no further than this handler.
	amount, amountErr := purchases.ParseAmount(req.Amount)
	// The card token is hashed as its token, never as sent: a client may have put a card number
	// there, and the stored hash must not be one a guess can confirm.
	hash := purchaseRequestHash(postgres.OpAuthorize, ledger.ID{}, h.s.tokenizer.Token(req.CardToken), purchaseAmountKey(amount, amountErr, req.Amount), req.Currency)
	res, err := h.svc.Do(r.Context(), postgres.PurchaseRequest{Op: postgres.OpAuthorize, Merchant: m, Key: key, Hash: hash,
		CardToken: req.CardToken, Amount: amount, AmountErr: amountErr})
	if err != nil {
		h.s.writeError(w, r, h.purchaseError(r.Context(), err))
		return
	}
	if res.Authorization == nil {
		h.s.writeError(w, r, fmt.Errorf("authorize answered without an authorization"))
		return
	}
	h.answer(w, r, res, authorizationDecisionView(res.Authorization))
}

// checkAmountText refuses an amount that is not even text an amount could be written in: an
// amount in the wrong shape (zero, three decimals, over the bound) is the decline invalid_amount,
// but a control character or a byte outside ASCII is a broken client, answered 400.
func checkAmountText(s string) error {
	if why := checkID(s); why != "" {
		return Errorf(EINVALID, "amount: %s", why)
	}
	return nil
}

// purchaseAmountKey is an amount as hashed: its fen when it is one, so that "12.3" and "12.30" are
// the same request, and as sent when it is not.
func purchaseAmountKey(fen int64, err error, sent string) string {
	if err != nil {
		return "invalid:" + sent
	}
	return strconv.FormatInt(fen, 10)
}

// operate handles the requests on an existing authorization: increments, capture, void and
// refunds, each idempotent by its key.
func (h *purchaseHandlers) operate(op postgres.Operation) merchantHandler {
	return func(w http.ResponseWriter, r *http.Request, m purchases.Merchant) {
		key, _, err := h.s.idempotencyKey(r)
		if err != nil {
			h.s.writeError(w, r, err)
			return
		}
		id, err := authorizationIDOf(r)
		if err != nil {
			h.s.writeError(w, r, err)
			return
		}
		req := postgres.PurchaseRequest{Op: op, Merchant: m, Key: key, AuthorizationID: id}
		switch op {
		case postgres.OpCapture:
			var body purchaseCaptureRequest
			if err := decodeBody(w, r, &body); err != nil {
				h.s.writeError(w, r, err)
				return
			}
			if body.Amount == "" {
				// Everything held when the capture is applied, increments included.
				req.Hash, req.Full = purchaseRequestHash(op, id, "full"), true
				break
			}
			req.Amount, req.AmountErr = purchases.ParseAmount(body.Amount)
			if req.AmountErr != nil {
				h.s.writeError(w, r, Errorf(EINVALID, "%v", req.AmountErr))
				return
			}
			req.Hash = purchaseRequestHash(op, id, purchaseAmountKey(req.Amount, req.AmountErr, body.Amount))
		case postgres.OpIncrement, postgres.OpRefund:
			var body purchaseAmountRequest
			if err := decodeBody(w, r, &body); err != nil {
				h.s.writeError(w, r, err)
				return
			}
			if body.Amount == "" {
				h.s.writeError(w, r, Errorf(EINVALID, "amount: missing required field"))
				return
			}
			if err := checkAmountText(body.Amount); err != nil {
				h.s.writeError(w, r, err)
				return
			}
			req.Amount, req.AmountErr = purchases.ParseAmount(body.Amount)
			if req.AmountErr != nil && op == postgres.OpRefund {
				// An increment with an invalid amount is declined invalid_amount, as an
				// authorization is; a refund has no decline to give.
				h.s.writeError(w, r, Errorf(EINVALID, "%v", req.AmountErr))
				return
			}
			req.Hash = purchaseRequestHash(op, id, purchaseAmountKey(req.Amount, req.AmountErr, body.Amount))
		case postgres.OpVoid:
			// A void has nothing to say but its path: no body, or an empty object.
			if err := decodeEmptyBody(w, r); err != nil {
				h.s.writeError(w, r, err)
				return
			}
			req.Hash = purchaseRequestHash(op, id)
		}
		res, err := h.svc.Do(r.Context(), req)
		if err != nil {
			h.s.writeError(w, r, h.purchaseError(r.Context(), err))
			return
		}
		switch {
		case res.Increment != nil:
			h.answer(w, r, res, viewPurchaseIncrement(res.Increment))
		case res.Close != nil:
			h.answer(w, r, res, viewPurchaseClose(res.Close))
		case res.Refund != nil:
			h.answer(w, r, res, viewPurchaseRefund(res.Refund))
		default:
			h.s.writeError(w, r, fmt.Errorf("%s answered without a result", op))
		}
	}
}

// answer writes a request's result: 201 the first time, and the same body with the same status
// for a retry, marked by Idempotent-Replayed.
func (h *purchaseHandlers) answer(w http.ResponseWriter, r *http.Request, res postgres.PurchaseResult, view any) {
	if res.Replayed {
		w.Header().Set("Idempotent-Replayed", "true")
	}
	h.s.writeJSON(w, r, http.StatusCreated, view)
}

// purchaseError maps the purchase engine's errors to the API's.
func (h *purchaseHandlers) purchaseError(ctx context.Context, err error) error {
	var rf *purchases.Refusal
	switch {
	case errors.As(err, &rf):
		switch rf.Code {
		case purchases.RefusedNotFound:
			return Errorf(ENOTFOUND, "%s", rf.Message)
		case purchases.RefusedInvalid:
			return Errorf(EINVALID, "%s", rf.Message)
		}
		return Errorf(ECONFLICT, "%s", rf.Message)
	case errors.Is(err, postgres.ErrIdempotencyKeyReused):
		return Errorf(ECONFLICT, "idempotency key reused with a different body")
	case errors.Is(err, postgres.ErrPurchasesBusy):
		return Errorf(EUNAVAILABLE, "busy, retry")
	case errors.Is(err, postgres.ErrPurchasesStopped):
		return Errorf(EUNAVAILABLE, "shutting down, retry")
	}
	return h.s.storeError(ctx, err)
}

// get shows one of the merchant's authorizations as it is now.
func (h *purchaseHandlers) get(w http.ResponseWriter, r *http.Request, m purchases.Merchant) {
	id, err := authorizationIDOf(r)
	if err != nil {
		h.s.writeError(w, r, err)
		return
	}
	rec, err := h.svc.Authorization(r.Context(), m.ID, id)
	if errors.Is(err, postgres.ErrNotFound) {
		h.s.writeError(w, r, Errorf(ENOTFOUND, "authorization not found"))
		return
	}
	if err != nil {
		h.s.writeError(w, r, h.s.storeError(r.Context(), err))
		return
	}
	h.s.writeJSON(w, r, http.StatusOK, authorizationNowView(&rec, h.s.now()))
}

type authorizationListView struct {
	Authorizations []authorizationView `json:"authorizations"`
	// NextBefore pages on: pass it as before for the next, older page. Absent on the last page.
	NextBefore string `json:"next_before,omitempty"`
}

// defaultAuthorizationsPage is a page of authorizations when the request names no limit.
const defaultAuthorizationsPage = 50

// list pages through the merchant's authorizations, newest first.
func (h *purchaseHandlers) list(w http.ResponseWriter, r *http.Request, m purchases.Merchant) {
	if err := onlyParameters(r, "limit", "before"); err != nil {
		h.s.writeError(w, r, err)
		return
	}
	q := r.URL.Query()
	limit := defaultAuthorizationsPage
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > postgres.MaxAuthorizationsPage {
			h.s.writeError(w, r, Errorf(EINVALID, "limit: must be from 1 to %d", postgres.MaxAuthorizationsPage))
			return
		}
		limit = n
	}
	var before ledger.ID
	if v := q.Get("before"); v != "" {
		id, ok := parseAuthorizationID(v)
		if !ok {
			h.s.writeError(w, r, Errorf(EINVALID, "before: must be an authorization id"))
			return
		}
		before = id
	}
	recs, err := h.svc.Authorizations(r.Context(), m.ID, before, limit)
	if err != nil {
		h.s.writeError(w, r, h.s.storeError(r.Context(), err))
		return
	}
	now := h.s.now()
	out := authorizationListView{Authorizations: make([]authorizationView, 0, len(recs))}
	for i := range recs {
		out.Authorizations = append(out.Authorizations, authorizationNowView(&recs[i], now))
	}
	if len(recs) == limit {
		out.NextBefore = recs[len(recs)-1].ID.String()
	}
	h.s.writeJSON(w, r, http.StatusOK, out)
}

// authorizationIDOf reads the path's authorization id, refusing what is not one.
func authorizationIDOf(r *http.Request) (ledger.ID, error) {
	id, ok := parseAuthorizationID(r.PathValue("id"))
	if !ok {
		return ledger.ID{}, Errorf(EINVALID, "id: must be an authorization id (a uuid)")
	}
	return id, nil
}

// parseAuthorizationID reads an authorization id from a path or a query: a UUID in 8-4-4-4-12.
func parseAuthorizationID(s string) (ledger.ID, bool) {
	if len(s) != 36 {
		return ledger.ID{}, false
	}
	u, err := uuid.Parse(s)
	if err != nil || u == uuid.Nil {
		return ledger.ID{}, false
	}
	return ledger.ID(u), true
}

type merchantFeeView struct {
	MerchantDiscount string `json:"merchant_discount"`
	Network          string `json:"network"`
	Total            string `json:"total"`
}

func viewMerchantFee(f fees.Fee) merchantFeeView {
	return merchantFeeView{MerchantDiscount: purchases.FormatAmount(f.MerchantDiscount), Network: purchases.FormatAmount(f.Network),
		Total: purchases.FormatAmount(f.Total())}
}

// authorizationView is an authorization: as decided (POST /v1/authorizations, and its replays)
// or as it is now, with its increments, capture or void, and refunds (GET).
type authorizationView struct {
	ID            string                  `json:"id"`
	MerchantID    string                  `json:"merchant_id"`
	CardToken     string                  `json:"card_token,omitempty"`
	Decision      string                  `json:"decision"`
	DeclineReason string                  `json:"decline_reason,omitempty"`
	DeclineDetail string                  `json:"decline_detail,omitempty"`
	Status        string                  `json:"status"`
	Currency      string                  `json:"currency"`
	Amount        string                  `json:"amount"`
	Held          string                  `json:"held"`
	Captured      string                  `json:"captured"`
	Refunded      string                  `json:"refunded"`
	ExpiresAt     string                  `json:"expires_at,omitempty"`
	CreatedAt     string                  `json:"created_at"`
	Increments    []purchaseIncrementView `json:"increments,omitempty"`
	Close         *purchaseCloseView      `json:"close,omitempty"`
	Refunds       []purchaseRefundView    `json:"refunds,omitempty"`
	// FeeAdjustments are the re-pricings of the purchase's fee by fee plan versions uploaded to
	// take effect on its date or before; FeePaid what the merchant has paid on it in the end.
	FeeAdjustments []feeAdjustmentView `json:"fee_adjustments,omitempty"`
	FeePaid        *merchantFeeView    `json:"fee_paid,omitempty"`
}

// appendJSON spells v as encoding/json would, for writeJSON, without its reflection: every
// authorization request is answered with one. One with increments, a close, refunds or fee
// adjustments, or with a string that is not plain ASCII, is left to encoding/json.
func (v authorizationView) appendJSON(b []byte) ([]byte, bool) {
	if len(v.Increments) > 0 || v.Close != nil || len(v.Refunds) > 0 || len(v.FeeAdjustments) > 0 || v.FeePaid != nil {
		return b, false
	}
	// The names, quotes and separators of every member take 200 bytes.
	n := 200
	for _, s := range [...]string{v.ID, v.MerchantID, v.CardToken, v.Decision, v.DeclineReason, v.DeclineDetail, v.Status,
		v.Currency, v.Amount, v.Held, v.Captured, v.Refunded, v.ExpiresAt, v.CreatedAt} {
		if !plainJSON(s) {
			return b, false
		}
		n += len(s)
	}
	b = slices.Grow(b, n)
	b = append(b, `{"id":"`...)
	b = append(b, v.ID...)
	b = appendMember(b, "merchant_id", v.MerchantID)
	if v.CardToken != "" {
		b = appendMember(b, "card_token", v.CardToken)
	}
	b = appendMember(b, "decision", v.Decision)
	if v.DeclineReason != "" {
		b = appendMember(b, "decline_reason", v.DeclineReason)
	}
	if v.DeclineDetail != "" {
		b = appendMember(b, "decline_detail", v.DeclineDetail)
	}
	b = appendMember(b, "status", v.Status)
	b = appendMember(b, "currency", v.Currency)
	b = appendMember(b, "amount", v.Amount)
	b = appendMember(b, "held", v.Held)
	b = appendMember(b, "captured", v.Captured)
	b = appendMember(b, "refunded", v.Refunded)
	if v.ExpiresAt != "" {
		b = appendMember(b, "expires_at", v.ExpiresAt)
	}
	b = appendMember(b, "created_at", v.CreatedAt)
	return append(b, `"}`...), true
}

// appendMember ends the string member before it and appends `,"name":"value`, value plain JSON
// (plainJSON), its closing quote left to the next member or the object's end.
func appendMember(b []byte, name, value string) []byte {
	b = append(b, `","`...)
	b = append(b, name...)
	b = append(b, `":"`...)
	return append(b, value...)
}

// reflectedAuthorizationView is authorizationView spelled by encoding/json.
type reflectedAuthorizationView authorizationView

// feeAdjustmentView is a fee adjustment of a purchase: signed differences, positive when the
// merchant paid more.
type feeAdjustmentView struct {
	Version          int    `json:"version"`
	PricedBy         int    `json:"priced_by"`
	MerchantDiscount string `json:"merchant_discount"`
	Network          string `json:"network"`
	Total            string `json:"total"`
	TransferID       string `json:"transfer_id,omitempty"`
	CreatedAt        string `json:"created_at"`
}

func viewFeeAdjustment(a *postgres.FeeAdjustment) feeAdjustmentView {
	v := feeAdjustmentView{Version: a.Job, PricedBy: a.PlanSeq, MerchantDiscount: fenText(a.Fee.MerchantDiscount),
		Network: fenText(a.Fee.Network), Total: fenText(a.Fee.Total()), CreatedAt: purchaseTime(a.CreatedAt)}
	if !a.TransferID.IsZero() {
		v.TransferID = a.TransferID.String()
	}
	return v
}

func purchaseTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339Nano)
}

func decisionName(d purchases.Decision) string {
	if d.Approved {
		return "approved"
	}
	return "declined"
}

// authorizationDecisionView is the authorization as decided: what the answer to the request said, the same
// for every retry of it.
func authorizationDecisionView(a *purchases.Authorization) authorizationView {
	v := authorizationView{ID: a.ID.String(), MerchantID: a.MerchantID, CardToken: a.CardToken, Decision: decisionName(a.Decision),
		Status: string(purchases.StatusDeclined), Currency: string(purchases.Currency), Amount: purchases.FormatAmount(a.Amount),
		Held: purchases.FormatAmount(0), Captured: purchases.FormatAmount(0), Refunded: purchases.FormatAmount(0),
		ExpiresAt: purchaseTime(a.ExpiresAt), CreatedAt: purchaseTime(a.CreatedAt)}
	if a.Approved {
		v.Status, v.Held = string(purchases.StatusAuthorized), purchases.FormatAmount(a.Amount)
	} else {
		v.DeclineReason, v.DeclineDetail = string(a.Reason), a.Detail
	}
	return v
}

// authorizationNowView is the authorization as it is at now.
func authorizationNowView(rec *postgres.AuthorizationRecord, now time.Time) authorizationView {
	v := authorizationDecisionView(&rec.Authorization)
	status := rec.Status(now)
	v.Status = string(status)
	if status != purchases.StatusAuthorized {
		v.Held = purchases.FormatAmount(0)
	} else {
		v.Held = purchases.FormatAmount(rec.Held())
	}
	for i := range rec.IncrementList {
		v.Increments = append(v.Increments, viewPurchaseIncrement(&rec.IncrementList[i]))
	}
	if rec.Close != nil {
		c := viewPurchaseClose(rec.Close)
		v.Close = &c
		v.Captured = purchases.FormatAmount(rec.Close.Amount)
	}
	v.Refunded = purchases.FormatAmount(rec.Refunded)
	for i := range rec.RefundList {
		v.Refunds = append(v.Refunds, viewPurchaseRefund(&rec.RefundList[i]))
	}
	if rec.Close != nil && rec.Close.Kind == purchases.Captured {
		paid := rec.Close.Fee
		for _, r := range rec.RefundList {
			paid.MerchantDiscount -= r.FeeReturned.MerchantDiscount
			paid.Network -= r.FeeReturned.Network
		}
		for i := range rec.FeeAdjustments {
			a := &rec.FeeAdjustments[i]
			v.FeeAdjustments = append(v.FeeAdjustments, viewFeeAdjustment(a))
			paid.MerchantDiscount += a.Fee.MerchantDiscount
			paid.Network += a.Fee.Network
		}
		fp := viewMerchantFee(paid)
		v.FeePaid = &fp
	}
	return v
}

type purchaseIncrementView struct {
	ID              string `json:"id"`
	AuthorizationID string `json:"authorization_id"`
	Decision        string `json:"decision"`
	DeclineReason   string `json:"decline_reason,omitempty"`
	DeclineDetail   string `json:"decline_detail,omitempty"`
	Currency        string `json:"currency"`
	Amount          string `json:"amount"`
	CreatedAt       string `json:"created_at"`
}

func viewPurchaseIncrement(inc *purchases.Increment) purchaseIncrementView {
	v := purchaseIncrementView{ID: inc.ID.String(), AuthorizationID: inc.AuthorizationID.String(), Decision: decisionName(inc.Decision),
		Currency: string(purchases.Currency), Amount: purchases.FormatAmount(inc.Amount), CreatedAt: purchaseTime(inc.CreatedAt)}
	if !inc.Approved {
		v.DeclineReason, v.DeclineDetail = string(inc.Reason), inc.Detail
	}
	return v
}

// purchaseCloseView is a capture (a purchase, with its fee and its foreign-card comparison) or a void.
type purchaseCloseView struct {
	ID              string              `json:"id"`
	AuthorizationID string              `json:"authorization_id"`
	Kind            string              `json:"kind"`
	Currency        string              `json:"currency"`
	Amount          string              `json:"amount"`
	Released        string              `json:"released"`
	Fee             merchantFeeView     `json:"fee"`
	ForeignCardCost foreignCardCostView `json:"foreign_card_cost"`
	CreatedAt       string              `json:"created_at"`
}

func viewPurchaseClose(c *purchases.Close) purchaseCloseView {
	return purchaseCloseView{ID: c.ID.String(), AuthorizationID: c.AuthorizationID.String(), Kind: string(c.Kind),
		Currency: string(purchases.Currency), Amount: purchases.FormatAmount(c.Amount), Released: purchases.FormatAmount(c.Released),
		Fee: viewMerchantFee(c.Fee), ForeignCardCost: viewForeignCardCost(c.Foreign), CreatedAt: purchaseTime(c.CreatedAt)}
}

type purchaseRefundView struct {
	ID              string          `json:"id"`
	AuthorizationID string          `json:"authorization_id"`
	Currency        string          `json:"currency"`
	Amount          string          `json:"amount"`
	RefundedTotal   string          `json:"refunded_total"`
	FeeReturned     merchantFeeView `json:"fee_returned"`
	CreatedAt       string          `json:"created_at"`
}

func viewPurchaseRefund(r *purchases.Refund) purchaseRefundView {
	return purchaseRefundView{ID: r.ID.String(), AuthorizationID: r.AuthorizationID.String(), Currency: string(purchases.Currency),
		Amount: purchases.FormatAmount(r.Amount), RefundedTotal: purchases.FormatAmount(r.RefundedTotal),
		FeeReturned: viewMerchantFee(r.FeeReturned), CreatedAt: purchaseTime(r.CreatedAt)}
}
