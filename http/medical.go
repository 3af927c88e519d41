package http

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"mime"
	"net/http"
	"net/url"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/joinincard/engine/cards"
	"github.com/joinincard/engine/cities"
	"github.com/joinincard/engine/clearing"
	"github.com/joinincard/engine/events"
	"github.com/joinincard/engine/ledger"
	"github.com/joinincard/engine/medical"
	"github.com/joinincard/engine/postgres"
)

// MedicalStore is what the medical endpoints need of the database. Refusals come back as
// *medical.Refusal (nothing was applied), a malformed basket as an error wrapping
// medical.ErrInvalid; anything else is internal.
type MedicalStore interface {
	// RegisterInstitution gives a registered merchant its medical attributes and the hash of its
	// API key; again with the same attributes it changes nothing and reports created false.
	RegisterInstitution(ctx context.Context, in medical.Institution, keyHash [32]byte) (inst medical.Institution, created bool, err error)
	// RotateInstitutionKey replaces an institution's key hash.
	RotateInstitutionKey(ctx context.Context, merchantID string, keyHash [32]byte) (medical.Institution, error)
	// InstitutionByKey finds the institution by its key hash, or an error wrapping
	// postgres.ErrNotFound.
	InstitutionByKey(ctx context.Context, keyHash [32]byte) (medical.Institution, error)
	// Quote classifies a bill by the treating city's catalogue, works out its split and applies
	// nothing.
	Quote(ctx context.Context, in medical.Institution, cardToken string, b medical.Bill) (medical.Quote, error)
	// Settle applies a bill's split under the institution's settlement id; replayed says the id
	// was settled before with the same request.
	Settle(ctx context.Context, in medical.Institution, ref, cardToken string, b medical.Bill) (s medical.Settlement, replayed bool, err error)
	// Settlement returns one of the institution's settlements.
	Settlement(ctx context.Context, in medical.Institution, ref string) (medical.Settlement, error)
	// End cancels or reverses one of the institution's settlements; replayed says it was already.
	End(ctx context.Context, in medical.Institution, ref string, kind medical.EndKind, reason string) (s medical.Settlement, replayed bool, err error)
	// Reconciliation sums a fund's business day by institution.
	Reconciliation(ctx context.Context, fund string, day events.Date) (medical.DayTotals, error)
	// Detail streams a fund's business day line by line to fn.
	Detail(ctx context.Context, fund string, day events.Date, fn func(medical.DetailLine) error) error
	// CardYear returns a card's medical year: accumulators and personal account balance.
	CardYear(ctx context.Context, cardToken string, year int) (medical.CardYear, error)
	// Register records a card's registration of a treatment city in advance; again the same it
	// changes nothing and reports created false.
	Register(ctx context.Context, cardToken string, r medical.Registration) (reg medical.Registration, created bool, err error)
	// Registrations lists a card's registrations.
	Registrations(ctx context.Context, cardToken string) ([]medical.Registration, error)
	// RegisterForBank is Register asked by a bank for a card it issued; another bank's card is
	// unknown to it.
	RegisterForBank(ctx context.Context, bank, cardToken string, r medical.Registration) (reg medical.Registration, created bool, err error)
	// BankByKey finds a bank by its API key's hash, or an error wrapping postgres.ErrNotFound.
	BankByKey(ctx context.Context, keyHash [32]byte) (string, error)
	// Refund gives back part of one of the institution's settlements under its refund id;
	// replayed says the refund id was used before with the same amount and reason.
	Refund(ctx context.Context, in medical.Institution, settlementRef, refundRef string, amount int64, reason string) (r medical.Refund, s medical.Settlement, replayed bool, err error)
	// SettleStay settles a bill of an inpatient stay; a final bill trues the stay up.
	SettleStay(ctx context.Context, in medical.Institution, ref, cardToken string, b medical.Bill, stay medical.StayBill) (s medical.Settlement, replayed bool, err error)
}

var _ MedicalStore = (*postgres.Medical)(nil)

// Medical is the API of medical settlements, a Feature: designated institutions quote, settle,
// cancel and reverse with their own API key; the admin registers institutions and reads the
// funds' reconciliation and the cardholders' medical years.
type Medical struct {
	store MedicalStore
	// Rand issues API keys; nil is crypto/rand.
	Rand io.Reader
}

// NewMedical returns the medical API over store.
func NewMedical(store MedicalStore) *Medical { return &Medical{store: store} }

const (
	// maxMedicalBodyBytes bounds a basket's body: medical.MaxItems lines of at most
	// medical.MaxItemCodeBytes of code and an amount are about 64 KiB written plainly; twice that
	// leaves room for escapes and whitespace, and still keeps a broken client from making the
	// server buffer megabytes.
	maxMedicalBodyBytes = 128 << 10
	// apiKeyBytes is an institution key's entropy: 256 bits, beyond guessing.
	apiKeyBytes = 32
	// apiKeyPrefix marks institution keys, so that one pasted in the wrong place is recognized.
	apiKeyPrefix = "jmi_"
	// maxAPIKeyBytes bounds a presented key: a real one is 47 bytes.
	maxAPIKeyBytes = 128
	// medicalRealm names the institution keys in WWW-Authenticate.
	medicalRealm = "joinin-medical"
)

// Routes registers the medical endpoints.
func (m *Medical) Routes(s *Server) []FeatureRoute {
	h := &medicalHandlers{s: s, store: m.store, rand: m.Rand}
	if h.rand == nil {
		h.rand = rand.Reader
	}
	return []FeatureRoute{
		{Method: http.MethodPost, Path: "/v1/medical/institutions", Admin: true, Handler: h.registerInstitution},
		{Method: http.MethodPost, Path: "/v1/medical/institutions/{merchant_id}/keys", Admin: true, Handler: h.rotateKey},
		{Method: http.MethodPost, Path: "/v1/medical/quotes", Handler: h.institution(h.quote)},
		{Method: http.MethodPost, Path: "/v1/medical/settlements", Handler: h.institution(h.settle)},
		{Method: http.MethodGet, Path: "/v1/medical/settlements/{settlement_id}", Handler: h.institution(h.getSettlement)},
		{Method: http.MethodPost, Path: "/v1/medical/settlements/{settlement_id}/cancel", Handler: h.institution(h.end(medical.Cancelled))},
		{Method: http.MethodPost, Path: "/v1/medical/settlements/{settlement_id}/reversal", Handler: h.institution(h.end(medical.Reversed))},
		{Method: http.MethodPost, Path: "/v1/medical/settlements/{settlement_id}/refunds", Handler: h.institution(h.refund)},
		{Method: http.MethodGet, Path: "/v1/medical/reconciliation", Query: true, Admin: true, Handler: h.reconciliation},
		{Method: http.MethodGet, Path: "/v1/medical/reconciliation/detail", Query: true, Admin: true, Handler: h.detail},
		{Method: http.MethodGet, Path: "/v1/medical/cards/{token}", Query: true, Admin: true, Handler: h.cardYear},
		{Method: http.MethodPost, Path: "/v1/medical/cards/{token}/registrations", Admin: true, Handler: h.register},
		{Method: http.MethodGet, Path: "/v1/medical/cards/{token}/registrations", Admin: true, Handler: h.registrations},
		{Method: http.MethodPost, Path: "/v1/bank/cards/{token}/medical-registrations", Handler: h.bank(h.bankRegister)},
	}
}

type medicalHandlers struct {
	s     *Server
	store MedicalStore
	rand  io.Reader
}

// medicalError maps the store's errors: refusals to not found or conflict, a malformed request
// to invalid, busy to unavailable; the rest is internal.
func (h *medicalHandlers) medicalError(ctx context.Context, err error) error {
	var r *medical.Refusal
	switch {
	case errors.As(err, &r) && r.Reason.NotFound():
		return Errorf(ENOTFOUND, "%s", r.Error())
	case errors.As(err, &r):
		return Errorf(ECONFLICT, "%s", r.Error())
	case errors.Is(err, medical.ErrInvalid):
		return Errorf(EINVALID, "%s", invalidDetail(err))
	}
	return h.s.storeError(ctx, err)
}

// invalidDetail is what an error wrapping medical.ErrInvalid says past it.
func invalidDetail(err error) string {
	msg := err.Error()
	if _, rest, ok := strings.Cut(msg, medical.ErrInvalid.Error()+": "); ok {
		return rest
	}
	return msg
}

// --- institutions -------------------------------------------------------------------------------

type institutionRequest struct {
	MerchantID string `json:"merchant_id"`
	Kind       string `json:"kind"`
	Tier       string `json:"tier"`
	City       string `json:"city"`
}

type institutionView struct {
	MerchantID string `json:"merchant_id"`
	Kind       string `json:"kind"`
	Tier       int    `json:"tier"`
	City       string `json:"city"`
	AccountID  string `json:"account_id"`
	// APIKey is shown once, when the institution is first registered.
	APIKey string `json:"api_key,omitempty"`
}

type institutionKeyView struct {
	MerchantID string `json:"merchant_id"`
	APIKey     string `json:"api_key"`
}

func institutionViewOf(in medical.Institution, key string) institutionView {
	return institutionView{MerchantID: in.ID, Kind: string(in.Kind), Tier: int(in.Tier), City: in.City,
		AccountID: in.Account.String(), APIKey: key}
}

// newAPIKey draws a key and its hash; the store keeps only the hash.
func (h *medicalHandlers) newAPIKey() (string, [32]byte, error) {
	var raw [apiKeyBytes]byte
	if _, err := io.ReadFull(h.rand, raw[:]); err != nil {
		return "", [32]byte{}, fmt.Errorf("draw api key: %w", err)
	}
	key := apiKeyPrefix + base64.RawURLEncoding.EncodeToString(raw[:])
	return key, sha256.Sum256([]byte(key)), nil
}

// registerInstitution gives a registered merchant its medical attributes and issues its API key.
// Again with the same attributes it answers 200 without a key (rotate it to get a new one).
func (h *medicalHandlers) registerInstitution(w http.ResponseWriter, r *http.Request) {
	var req institutionRequest
	if err := decodeBody(w, r, &req); err != nil {
		h.s.writeError(w, r, err)
		return
	}
	in, err := institutionOf(&req)
	if err != nil {
		h.s.writeError(w, r, err)
		return
	}
	key, hash, err := h.newAPIKey()
	if err != nil {
		h.s.writeError(w, r, err)
		return
	}
	in, created, err := h.store.RegisterInstitution(r.Context(), in, hash)
	if err != nil {
		h.s.writeError(w, r, h.medicalError(r.Context(), err))
		return
	}
	if !created {
		h.s.writeJSON(w, r, http.StatusOK, institutionViewOf(in, ""))
		return
	}
	h.s.writeJSON(w, r, http.StatusCreated, institutionViewOf(in, key))
}

func institutionOf(req *institutionRequest) (medical.Institution, error) {
	for _, f := range []struct{ name, value string }{
		{"merchant_id", req.MerchantID}, {"kind", req.Kind}, {"tier", req.Tier}, {"city", req.City},
	} {
		if f.value == "" {
			return medical.Institution{}, Errorf(EINVALID, "%s: missing required field", f.name)
		}
	}
	if why := checkID(req.MerchantID); why != "" {
		return medical.Institution{}, Errorf(EINVALID, "merchant_id: %s", why)
	}
	kind := medical.InstitutionKind(req.Kind)
	if !slices.Contains(medical.InstitutionKinds(), kind) {
		return medical.Institution{}, Errorf(EINVALID, "kind: must be one of %q", medical.InstitutionKinds())
	}
	tier, err := strconv.Atoi(req.Tier)
	if err != nil || !medical.Tier(tier).Valid() || len(req.Tier) != 1 {
		return medical.Institution{}, Errorf(EINVALID, `tier: must be "1", "2" or "3"`)
	}
	if why := checkText(req.City); why != "" {
		return medical.Institution{}, Errorf(EINVALID, "city: %s", why)
	}
	return medical.Institution{ID: req.MerchantID, Kind: kind, Tier: medical.Tier(tier), City: cities.Canonical(req.City)}, nil
}

// rotateKey issues a new API key for an institution; the old one stops working at once.
func (h *medicalHandlers) rotateKey(w http.ResponseWriter, r *http.Request) {
	// It reads no body: one that says something is refused, not ignored.
	if err := decodeEmptyBody(w, r); err != nil {
		h.s.writeError(w, r, err)
		return
	}
	id, err := pathID(r, "merchant_id")
	if err != nil {
		h.s.writeError(w, r, err)
		return
	}
	key, hash, err := h.newAPIKey()
	if err != nil {
		h.s.writeError(w, r, err)
		return
	}
	in, err := h.store.RotateInstitutionKey(r.Context(), id, hash)
	if err != nil {
		h.s.writeError(w, r, h.medicalError(r.Context(), err))
		return
	}
	h.s.writeJSON(w, r, http.StatusCreated, institutionKeyView{MerchantID: in.ID, APIKey: key})
}

// institution authenticates the request with an institution's API key and passes the institution
// on: each institution sees and acts on its own settlements only.
func (h *medicalHandlers) institution(next func(http.ResponseWriter, *http.Request, medical.Institution)) http.HandlerFunc {
	return apiKey[medical.Institution]{
		holder: "institution", realm: medicalRealm,
		wellFormed: func(key string) bool { return len(key) <= maxAPIKeyBytes && strings.HasPrefix(key, apiKeyPrefix) },
		lookup:     h.store.InstitutionByKey,
	}.require(h.s, next)
}

// --- baskets ------------------------------------------------------------------------------------

// medicalItemRequest is a bill line: the item's code in the catalogue, the units billed and the
// price of one. Class and amount are the bill's former fields, refused by name: the treating
// city's catalogue classifies each item by its code, whatever the institution declares.
type medicalItemRequest struct {
	Code string `json:"code"`
	// Quantity is nil when the field is absent, told apart from a quantity of 0.
	Quantity  *int64 `json:"quantity"`
	UnitPrice string `json:"unit_price"`
	Class     string `json:"class,omitempty"`
	Amount    string `json:"amount,omitempty"`
}

type medicalQuoteRequest struct {
	CardToken string               `json:"card_token"`
	VisitKind string               `json:"visit_kind"`
	Items     []medicalItemRequest `json:"items"`
}

type medicalSettleRequest struct {
	SettlementID string               `json:"settlement_id"`
	CardToken    string               `json:"card_token"`
	VisitKind    string               `json:"visit_kind"`
	Items        []medicalItemRequest `json:"items"`
	// StayID and StayBill mark a bill of an inpatient stay: the institution's admission id, and
	// "interim" or "final".
	StayID   string `json:"stay_id,omitempty"`
	StayBill string `json:"stay_bill,omitempty"`
}

type medicalEndRequest struct {
	Reason string `json:"reason"`
}

// basketOf checks a bill at the edge, naming the field at fault: each line's code, its quantity
// (a whole number of units) and its unit price (a decimal string in yuan with at most two
// decimals).
func basketOf(token, visit string, items []medicalItemRequest) (medical.Bill, error) {
	switch {
	case token == "":
		return medical.Bill{}, Errorf(EINVALID, "card_token: missing required field")
	case checkCardToken("card_token", token) != nil:
		return medical.Bill{}, checkCardToken("card_token", token)
	case visit == "":
		return medical.Bill{}, Errorf(EINVALID, "visit_kind: missing required field")
	case !slices.Contains(medical.VisitKinds(), medical.VisitKind(visit)):
		return medical.Bill{}, Errorf(EINVALID, "visit_kind: must be one of %q", medical.VisitKinds())
	case len(items) == 0:
		return medical.Bill{}, Errorf(EINVALID, "items: must hold at least one item")
	case len(items) > medical.MaxItems:
		return medical.Bill{}, Errorf(EINVALID, "items: at most %d items, settle a longer stay in parts", medical.MaxItems)
	}
	b := medical.Bill{VisitKind: medical.VisitKind(visit), Lines: make([]medical.BillLine, len(items))}
	for i, it := range items {
		switch {
		case it.Class != "":
			return b, Errorf(EINVALID, "items[%d].class: not taken: the treating city's catalogue classifies each item by its code", i)
		case it.Amount != "":
			return b, Errorf(EINVALID, "items[%d].amount: not taken: send the quantity and the unit_price", i)
		case it.Code == "":
			return b, Errorf(EINVALID, "items[%d].code: missing required field", i)
		case it.Quantity == nil:
			return b, Errorf(EINVALID, "items[%d].quantity: missing required field, a whole number of units from 1", i)
		case *it.Quantity < 1 || *it.Quantity > medical.MaxQuantity:
			return b, Errorf(EINVALID, "items[%d].quantity: must be 1 to %d", i, medical.MaxQuantity)
		case it.UnitPrice == "":
			return b, Errorf(EINVALID, "items[%d].unit_price: missing required field", i)
		}
		if why := checkID(it.Code); why != "" {
			return b, Errorf(EINVALID, "items[%d].code: %s", i, why)
		}
		fen, err := medical.ParseAmount(it.UnitPrice)
		if err != nil {
			return b, Errorf(EINVALID, "items[%d].unit_price: %v", i, err)
		}
		if fen == 0 {
			return b, Errorf(EINVALID, "items[%d].unit_price: must be positive", i)
		}
		b.Lines[i] = medical.BillLine{Code: it.Code, Quantity: *it.Quantity, UnitPrice: fen}
	}
	if err := medical.ValidateBill(b.Lines); err != nil {
		return b, Errorf(EINVALID, "items: %s", invalidDetail(err))
	}
	return b, nil
}

// --- views --------------------------------------------------------------------------------------

type medicalSplitView struct {
	// InsuredCity's fund pays, by its policy; TreatingCity's catalogue classified the bill.
	// Registered, shown when the two differ, says the cardholder registered the treatment city.
	InsuredCity     string               `json:"insured_city"`
	TreatingCity    string               `json:"treating_city"`
	Registered      *bool                `json:"registered,omitempty"`
	Currency        string               `json:"currency"`
	Total           string               `json:"total"`
	Fund            string               `json:"fund"`
	PersonalAccount string               `json:"personal_account"`
	Cash            string               `json:"cash"`
	Breakdown       medicalBreakdownView `json:"breakdown"`
	Rules           []medicalRuleView    `json:"rules"`
}

type medicalBreakdownView struct {
	OutOfCatalogue       string `json:"out_of_catalogue"`
	PersonalAccountFirst string `json:"personal_account_first"`
	ClassBSelfPay        string `json:"class_b_self_pay"`
	Deductible           string `json:"deductible"`
	CoPayment            string `json:"co_payment"`
	OverCap              string `json:"over_cap"`
}

type medicalRuleView struct {
	Step   string `json:"step"`
	Amount string `json:"amount"`
	Note   string `json:"note"`
}

// medicalAccumulatorsView lists a cardholder's yearly accumulators (or what one settlement added
// to them) by bucket name, in name order.
type medicalAccumulatorsView struct {
	Deductible []medicalBucketView `json:"deductible"`
	Fund       []medicalBucketView `json:"fund"`
}

type medicalBucketView struct {
	Name   string `json:"name"`
	Amount string `json:"amount"`
}

// medicalItemView is a bill line as the treating city's catalogue classified it: what it covers
// (its class applies to covered) and what it leaves to cash, with the reason. A settlement
// recorded before bills were classified by code shows its items' code, class and amount only.
type medicalItemView struct {
	Code         string `json:"code,omitempty"`
	NameZH       string `json:"name_zh,omitempty"`
	NameEN       string `json:"name_en,omitempty"`
	Kind         string `json:"kind,omitempty"`
	Quantity     int64  `json:"quantity,omitempty"`
	UnitPrice    string `json:"unit_price,omitempty"`
	Amount       string `json:"amount"`
	Class        string `json:"class,omitempty"`
	SelfPayRatio string `json:"self_pay_ratio,omitempty"`
	PriceCeiling string `json:"price_ceiling,omitempty"`
	Covered      string `json:"covered,omitempty"`
	Cash         string `json:"cash,omitempty"`
	CashReason   string `json:"cash_reason,omitempty"`
	Note         string `json:"note,omitempty"`
}

func linesView(lines []medical.Line) []medicalItemView {
	out := make([]medicalItemView, len(lines))
	for i, l := range lines {
		v := medicalItemView{Code: l.Code, NameZH: l.NameZH, NameEN: l.NameEN, Kind: string(l.Kind), Quantity: l.Quantity,
			UnitPrice: medical.FormatAmount(l.UnitPrice), Amount: medical.FormatAmount(l.Amount), Class: string(l.Class),
			Covered: medical.FormatAmount(l.Covered), Cash: medical.FormatAmount(l.Cash), CashReason: l.CashReason, Note: l.Note}
		if l.SelfPay != nil {
			v.SelfPayRatio = l.SelfPay.String()
		}
		if l.Ceiling > 0 {
			v.PriceCeiling = medical.FormatAmount(l.Ceiling)
		}
		out[i] = v
	}
	return out
}

// medicalQuoteView is a quote: the split a settlement would make now. It shows no balance of the
// card's, nor whether its funds would cover the cash part: any institution may quote for any
// card, and a balance is for the cardholder and the fund to read, not for every hospital.
type medicalQuoteView struct {
	CardToken         string                  `json:"card_token"`
	Fund              string                  `json:"fund"`
	TreatingCity      string                  `json:"treating_city"`
	Catalogue         string                  `json:"catalogue"`
	Items             []medicalItemView       `json:"items"`
	Policy            string                  `json:"policy"`
	PolicyName        string                  `json:"policy_name"`
	Institution       string                  `json:"institution"`
	VisitKind         string                  `json:"visit_kind"`
	Tier              int                     `json:"tier"`
	Split             medicalSplitView        `json:"split"`
	AccumulatedBefore medicalAccumulatorsView `json:"accumulated_before"`
	AccumulatedAfter  medicalAccumulatorsView `json:"accumulated_after"`
}

type medicalTransfersView struct {
	Fund            string `json:"fund,omitempty"`
	PersonalAccount string `json:"personal_account,omitempty"`
	Cash            string `json:"cash,omitempty"`
}

type medicalEndView struct {
	Kind                        string `json:"kind"`
	Reason                      string `json:"reason"`
	BusinessDay                 string `json:"business_day"`
	At                          string `json:"at"`
	PersonalAccountBalanceAfter string `json:"personal_account_balance_after"`
	FundsAvailableAfter         string `json:"funds_available_after"`
}

// medicalReceiptView is a settlement's receipt.
type medicalReceiptView struct {
	ID                          string                  `json:"id"`
	SettlementID                string                  `json:"settlement_id"`
	Institution                 string                  `json:"institution"`
	Status                      string                  `json:"status"`
	CardToken                   string                  `json:"card_token"`
	Fund                        string                  `json:"fund"`
	TreatingCity                string                  `json:"treating_city"`
	Catalogue                   string                  `json:"catalogue,omitempty"`
	Policy                      string                  `json:"policy"`
	PolicyName                  string                  `json:"policy_name"`
	VisitKind                   string                  `json:"visit_kind"`
	Tier                        int                     `json:"tier"`
	BusinessDay                 string                  `json:"business_day"`
	SettledAt                   string                  `json:"settled_at"`
	Items                       []medicalItemView       `json:"items"`
	Split                       medicalSplitView        `json:"split"`
	Accumulated                 medicalAccumulatorsView `json:"accumulated"`
	PersonalAccountBalanceAfter string                  `json:"personal_account_balance_after"`
	FundsAvailableAfter         string                  `json:"funds_available_after"`
	Transfers                   medicalTransfersView    `json:"transfers"`
	End                         *medicalEndView         `json:"end,omitempty"`
	// Refunded is what the refunds gave back, Refunds each of them.
	Refunded string              `json:"refunded"`
	Refunds  []medicalRefundView `json:"refunds"`
	Stay     *medicalStayView    `json:"stay,omitempty"`
	TrueUp   *medicalTrueUpView  `json:"true_up,omitempty"`
}

func splitView(s medical.Split) medicalSplitView {
	v := medicalSplitView{
		InsuredCity: s.InsuredCity, TreatingCity: s.InsuredCity,
		Currency: "CNY", Total: medical.FormatAmount(s.Total), Fund: medical.FormatAmount(s.Fund),
		PersonalAccount: medical.FormatAmount(s.Personal), Cash: medical.FormatAmount(s.Cash),
		Breakdown: medicalBreakdownView{
			OutOfCatalogue: medical.FormatAmount(s.OutOfCatalogue), PersonalAccountFirst: medical.FormatAmount(s.PersonalAccountFirst),
			ClassBSelfPay: medical.FormatAmount(s.ClassBSelfPay), Deductible: medical.FormatAmount(s.Deductible),
			CoPayment: medical.FormatAmount(s.CoPayment), OverCap: medical.FormatAmount(s.OverCap),
		},
		Rules: make([]medicalRuleView, len(s.Rules)),
	}
	for i, r := range s.Rules {
		v.Rules[i] = medicalRuleView{Step: r.Step, Amount: medical.FormatAmount(r.Amount), Note: r.Note}
	}
	if e := s.Elsewhere; e != nil {
		registered := e.Registered
		v.TreatingCity, v.Registered = e.City, &registered
	}
	return v
}

func accumulatorsView(a medical.Accumulators) medicalAccumulatorsView {
	buckets := func(m map[string]int64) []medicalBucketView {
		out := make([]medicalBucketView, 0, len(m))
		for _, k := range slices.Sorted(maps.Keys(m)) {
			out = append(out, medicalBucketView{Name: k, Amount: medical.FormatAmount(m[k])})
		}
		return out
	}
	return medicalAccumulatorsView{Deductible: buckets(a.Deductible), Fund: buckets(a.Fund)}
}

// shanghaiTime writes an instant as people in the card's zone read it, RFC 3339 with +08:00.
func shanghaiTime(t time.Time) string { return t.In(cards.Shanghai).Format(time.RFC3339Nano) }

// transferID writes a transfer's id, or "" for none.
func transferID(id ledger.ID) string {
	if id.IsZero() {
		return ""
	}
	return id.String()
}

func receiptView(s medical.Settlement) medicalReceiptView {
	v := medicalReceiptView{
		ID: s.ID.String(), SettlementID: s.Ref, Institution: s.Institution, Status: s.Status(),
		CardToken: s.CardToken, Fund: s.Fund, TreatingCity: s.TreatingCity, Catalogue: s.Catalogue, Policy: s.PolicyID, PolicyName: s.PolicyName,
		VisitKind: string(s.VisitKind), Tier: int(s.Tier), BusinessDay: s.Day.String(), SettledAt: shanghaiTime(s.SettledAt),
		Items: make([]medicalItemView, len(s.Items)), Split: splitView(s.Split), Accumulated: accumulatorsView(s.Split.Delta),
		PersonalAccountBalanceAfter: medical.FormatAmount(s.PersonalBalanceAfter),
		FundsAvailableAfter:         medical.FormatAmount(s.FundsAvailableAfter),
	}
	if s.Lines != nil {
		v.Items = linesView(s.Lines)
	} else {
		for i, it := range s.Items {
			v.Items[i] = medicalItemView{Code: it.Code, Class: string(it.Class), Amount: medical.FormatAmount(it.Amount)}
		}
	}
	v.Transfers = medicalTransfersView{Fund: transferID(s.FundTransfer), PersonalAccount: transferID(s.PersonalTransfer),
		Cash: transferID(s.CashTransfer)}
	if e := s.End; e != nil {
		v.End = &medicalEndView{Kind: string(e.Kind), Reason: e.Reason, BusinessDay: e.Day.String(), At: shanghaiTime(e.At),
			PersonalAccountBalanceAfter: medical.FormatAmount(e.PersonalBalanceAfter),
			FundsAvailableAfter:         medical.FormatAmount(e.FundsAvailableAfter)}
	}
	addAfterViews(&v, s)
	return v
}

// --- quote, settle, cancel, reverse -------------------------------------------------------------

// quote answers the split of a basket as a settlement would make it now, applying nothing.
func (h *medicalHandlers) quote(w http.ResponseWriter, r *http.Request, in medical.Institution) {
	var req medicalQuoteRequest
	if err := decodeNested(w, r, &req, maxMedicalBodyBytes); err != nil {
		h.s.writeError(w, r, err)
		return
	}
	b, err := basketOf(req.CardToken, req.VisitKind, req.Items)
	if err != nil {
		h.s.writeError(w, r, err)
		return
	}
	q, err := h.store.Quote(r.Context(), in, req.CardToken, b)
	if err != nil {
		h.s.writeError(w, r, h.medicalError(r.Context(), err))
		return
	}
	h.s.writeJSON(w, r, http.StatusOK, medicalQuoteView{
		CardToken: q.CardToken, Fund: q.Fund, TreatingCity: q.TreatingCity, Catalogue: q.Catalogue, Items: linesView(q.Lines),
		Policy: q.Policy.ID(), PolicyName: q.Policy.Name, Institution: in.ID,
		VisitKind: string(b.VisitKind), Tier: int(in.Tier), Split: splitView(q.Split),
		AccumulatedBefore: accumulatorsView(q.Before), AccumulatedAfter: accumulatorsView(q.Before.Plus(q.Split.Delta)),
	})
}

// settle applies a basket's split: 201 with the receipt, or 200 with the same receipt for a
// replay of the settlement id with the same request.
func (h *medicalHandlers) settle(w http.ResponseWriter, r *http.Request, in medical.Institution) {
	var req medicalSettleRequest
	if err := decodeNested(w, r, &req, maxMedicalBodyBytes); err != nil {
		h.s.writeError(w, r, err)
		return
	}
	if req.SettlementID == "" {
		h.s.writeError(w, r, Errorf(EINVALID, "settlement_id: missing required field"))
		return
	}
	if why := checkSegment(req.SettlementID); why != "" {
		h.s.writeError(w, r, Errorf(EINVALID, "settlement_id: %s", why))
		return
	}
	b, err := basketOf(req.CardToken, req.VisitKind, req.Items)
	if err != nil {
		h.s.writeError(w, r, err)
		return
	}
	stay, err := stayOf(&req)
	if err != nil {
		h.s.writeError(w, r, err)
		return
	}
	var (
		s        medical.Settlement
		replayed bool
	)
	if stay != nil {
		s, replayed, err = h.store.SettleStay(r.Context(), in, req.SettlementID, req.CardToken, b, *stay)
	} else {
		s, replayed, err = h.store.Settle(r.Context(), in, req.SettlementID, req.CardToken, b)
	}
	if err != nil {
		h.s.writeError(w, r, h.medicalError(r.Context(), err))
		return
	}
	status := http.StatusCreated
	if replayed {
		status = http.StatusOK
	}
	w.Header().Set("Location", "/v1/medical/settlements/"+url.PathEscape(s.Ref))
	h.s.writeJSON(w, r, status, receiptView(s))
}

// getSettlement shows one of the institution's settlements: its receipt.
func (h *medicalHandlers) getSettlement(w http.ResponseWriter, r *http.Request, in medical.Institution) {
	ref, err := pathID(r, "settlement_id")
	if err != nil {
		h.s.writeError(w, r, err)
		return
	}
	s, err := h.store.Settlement(r.Context(), in, ref)
	if err != nil {
		h.s.writeError(w, r, h.medicalError(r.Context(), err))
		return
	}
	h.s.writeJSON(w, r, http.StatusOK, receiptView(s))
}

// end cancels (the settlement's own day) or reverses (a later day) a settlement. Asking again
// answers the same receipt; both answer 200.
func (h *medicalHandlers) end(kind medical.EndKind) func(http.ResponseWriter, *http.Request, medical.Institution) {
	return func(w http.ResponseWriter, r *http.Request, in medical.Institution) {
		var req medicalEndRequest
		if err := decodeBody(w, r, &req); err != nil {
			h.s.writeError(w, r, err)
			return
		}
		if req.Reason == "" {
			h.s.writeError(w, r, Errorf(EINVALID, "reason: missing required field"))
			return
		}
		if why := checkProse(req.Reason); why != "" {
			h.s.writeError(w, r, Errorf(EINVALID, "reason: %s", why))
			return
		}
		ref, err := pathID(r, "settlement_id")
		if err != nil {
			h.s.writeError(w, r, err)
			return
		}
		s, _, err := h.store.End(r.Context(), in, ref, kind, req.Reason)
		if err != nil {
			h.s.writeError(w, r, h.medicalError(r.Context(), err))
			return
		}
		h.s.writeJSON(w, r, http.StatusOK, receiptView(s))
	}
}

// --- the fund's reconciliation, the cardholder's year -------------------------------------------

type medicalTotalsView struct {
	Institution     string `json:"institution,omitempty"`
	TreatingCity    string `json:"treating_city,omitempty"`
	Settlements     int64  `json:"settlements"`
	Reversals       int64  `json:"reversals"`
	Cancelled       int64  `json:"cancelled"`
	Refunds         int64  `json:"refunds"`
	TrueUps         int64  `json:"true_ups"`
	Total           string `json:"total"`
	Fund            string `json:"fund"`
	PersonalAccount string `json:"personal_account"`
	Cash            string `json:"cash"`
}

type medicalReconciliationView struct {
	Fund         string              `json:"fund"`
	InsuredCity  string              `json:"insured_city"`
	BusinessDay  string              `json:"business_day"`
	Closed       bool                `json:"closed"`
	Currency     string              `json:"currency"`
	Institutions []medicalTotalsView `json:"institutions"`
	Total        medicalTotalsView   `json:"total"`
}

func totalsView(institution string, t medical.Totals) medicalTotalsView {
	return medicalTotalsView{Institution: institution, Settlements: t.Settlements, Reversals: t.Reversals, Cancelled: t.Cancelled,
		Refunds: t.Refunds, TrueUps: t.TrueUps,
		Total: medical.FormatAmount(t.Total), Fund: medical.FormatAmount(t.Fund),
		PersonalAccount: medical.FormatAmount(t.Personal), Cash: medical.FormatAmount(t.Cash)}
}

// fundDay reads the fund and day query parameters, refusing any other.
func fundDay(r *http.Request) (string, events.Date, error) {
	q := r.URL.Query()
	for k := range q {
		if k != "fund" && k != "day" {
			return "", events.Date{}, unknownParameter(k, "fund and day")
		}
	}
	if len(q["fund"]) != 1 || q.Get("fund") == "" {
		return "", events.Date{}, Errorf(EINVALID, "fund: want one query parameter naming the insurance fund")
	}
	fund := q.Get("fund")
	if why := checkText(fund); why != "" {
		return "", events.Date{}, Errorf(EINVALID, "fund: %s", why)
	}
	if len(q["day"]) != 1 {
		return "", events.Date{}, Errorf(EINVALID, `day: want one query parameter, a business day yyyy-mm-dd such as "2026-03-01"`)
	}
	day, err := parseDay(q.Get("day"))
	if err != nil {
		return "", events.Date{}, Errorf(EINVALID, "day: %v", err)
	}
	return clearing.CanonicalPartyID(clearing.PartyInsuranceFund, fund), day, nil
}

func parseDay(s string) (events.Date, error) {
	d, err := time.Parse(time.DateOnly, s)
	if err != nil || len(s) != len(time.DateOnly) {
		return events.Date{}, fmt.Errorf(`want a business day yyyy-mm-dd such as "2026-03-01"`)
	}
	return events.Date{Year: d.Year(), Month: d.Month(), Day: d.Day()}, nil
}

// onlyParameters refuses a query that names a parameter other than names, or one of them twice:
// a parameter a client misspelled or the endpoint does not take is refused, never ignored, since
// an ignored filter answers with more than was asked.
func onlyParameters(r *http.Request, names ...string) error {
	for k, v := range r.URL.Query() {
		if !slices.Contains(names, k) {
			want := "none"
			if len(names) > 0 {
				want = strings.Join(names, ", ")
			}
			return unknownParameter(k, want)
		}
		if len(v) != 1 {
			return Errorf(EINVALID, "%s: give it once", k)
		}
	}
	return nil
}

// unknownParameter refuses a query parameter the endpoint does not take, naming it only when it
// looks like a parameter's name: a client may have put anything there, even a number that must
// not be echoed.
func unknownParameter(name, want string) error {
	if looksLikeFieldName(name) {
		return Errorf(EINVALID, "unknown query parameter %q, want %s", name, want)
	}
	return Errorf(EINVALID, "unknown query parameter, want %s", want)
}

// reconciliation answers a fund's business day by institution: counts and totals.
func (h *medicalHandlers) reconciliation(w http.ResponseWriter, r *http.Request) {
	fund, day, err := fundDay(r)
	if err != nil {
		h.s.writeError(w, r, err)
		return
	}
	d, err := h.store.Reconciliation(r.Context(), fund, day)
	if err != nil {
		h.s.writeError(w, r, h.medicalError(r.Context(), err))
		return
	}
	v := medicalReconciliationView{Fund: d.Fund, InsuredCity: cities.Canonical(d.Fund), BusinessDay: d.Day.String(), Closed: d.Closed, Currency: "CNY",
		Institutions: make([]medicalTotalsView, len(d.Institutions)), Total: totalsView("", d.All)}
	for i, t := range d.Institutions {
		v.Institutions[i] = totalsView(t.Institution, t.Totals)
		v.Institutions[i].TreatingCity = t.City
	}
	h.s.writeJSON(w, r, http.StatusOK, v)
}

// detailHeader is the detail export's header row.
var detailHeader = []string{"business_day", "fund", "institution", "settlement_id", "id", "kind", "at", "card_token",
	"visit_kind", "tier", "policy", "total", "fund_part", "personal_account", "cash", "insured_city", "treating_city", "registered"}

// detail streams a fund's business day as CSV, one line per settlement, reversal, refund and stay
// true-up. Lines go out as the database returns them; a failure after the first line cuts the
// connection, so that a truncated file is never taken for a whole one.
func (h *medicalHandlers) detail(w http.ResponseWriter, r *http.Request) {
	fund, day, err := fundDay(r)
	if err != nil {
		h.s.writeError(w, r, err)
		return
	}
	var cw *csv.Writer
	start := func() {
		hdr := w.Header()
		hdr.Set("Content-Type", "text/csv; charset=utf-8")
		hdr.Set("Content-Disposition", mime.FormatMediaType("attachment", map[string]string{
			"filename": "medical-" + fund + "-" + day.String() + ".csv"}))
		hdr.Set("Cache-Control", "no-store")
		hdr.Set("X-Content-Type-Options", "nosniff")
		w.WriteHeader(http.StatusOK)
		cw = csv.NewWriter(w)
		// A write error is the client gone; the next Write reports it through Error.
		_ = cw.Write(detailHeader)
	}
	err = h.store.Detail(r.Context(), fund, day, func(l medical.DetailLine) error {
		if cw == nil {
			start()
		}
		_ = cw.Write([]string{day.String(), cell(fund), cell(l.Institution), cell(l.Ref), l.ID.String(), l.Kind,
			shanghaiTime(l.At), cell(l.CardToken), string(l.VisitKind), strconv.Itoa(int(l.Tier)), l.PolicyID,
			medical.FormatAmount(l.Total), medical.FormatAmount(l.Fund), medical.FormatAmount(l.Personal), medical.FormatAmount(l.Cash),
			cell(cities.Canonical(fund)), cell(l.TreatingCity), registeredCell(fund, l)})
		return cw.Error()
	})
	if err != nil && cw == nil {
		h.s.writeError(w, r, h.medicalError(r.Context(), err))
		return
	}
	if cw == nil {
		start()
	}
	cw.Flush()
	if err == nil {
		err = cw.Error()
	}
	if err != nil {
		h.s.log.ErrorContext(r.Context(), "medical detail export cut short", "route", r.Pattern, "err", err)
		// The status is out: only cutting the connection tells the client the file is incomplete.
		panic(http.ErrAbortHandler)
	}
}

// registeredCell says whether a line treated in another city than the fund's was registered:
// "yes" or "no", and "" for a line treated at home.
func registeredCell(fund string, l medical.DetailLine) string {
	switch {
	case l.TreatingCity == cities.Canonical(fund):
		return ""
	case l.Registered:
		return "yes"
	}
	return "no"
}

// cell defuses a text cell that a spreadsheet would take for a formula (OWASP's CSV injection
// advice): a leading =, +, -, @, tab or carriage return gets a leading apostrophe.
func cell(s string) string {
	if s != "" && strings.ContainsRune("=+-@\t\r", rune(s[0])) {
		return "'" + s
	}
	return s
}

type medicalLimitView struct {
	Name  string `json:"name"`
	Scope string `json:"scope,omitempty"`
	Used  string `json:"used"`
	// Limit is the yearly amount; absent for a per-visit deductible (it is met at each visit)
	// and for a bucket the year's policy does not know.
	Limit string `json:"limit,omitempty"`
}

type medicalCardView struct {
	CardToken              string             `json:"card_token"`
	Fund                   string             `json:"fund"`
	Year                   int                `json:"year"`
	Policy                 string             `json:"policy,omitempty"`
	PersonalAccountBalance string             `json:"personal_account_balance"`
	Deductibles            []medicalLimitView `json:"deductibles"`
	FundCaps               []medicalLimitView `json:"fund_caps"`
}

// maxYearsAround bounds the year a cardholder's medical year is asked for: the card's policies
// cover recent years, and a year far off is a typing error.
const maxYearsAround = 50

// cardYear shows a cardholder's medical year: the personal account's balance and, for each of
// the policy's deductibles and fund caps, what was met or paid against its limit.
func (h *medicalHandlers) cardYear(w http.ResponseWriter, r *http.Request) {
	token := r.PathValue("token")
	if err := checkCardToken("token", token); err != nil {
		h.s.writeError(w, r, err)
		return
	}
	q := r.URL.Query()
	year := medical.DayOf(h.s.now()).Year
	for k := range q {
		if k != "year" {
			h.s.writeError(w, r, unknownParameter(k, "year"))
			return
		}
	}
	if v := q["year"]; len(v) > 0 {
		y, err := strconv.Atoi(v[0])
		if len(v) != 1 || err != nil || len(v[0]) != 4 || y < year-maxYearsAround || y > year+maxYearsAround {
			h.s.writeError(w, r, Errorf(EINVALID, "year: want one four-digit year within %d years of this one", maxYearsAround))
			return
		}
		year = y
	}
	cy, err := h.store.CardYear(r.Context(), token, year)
	if err != nil {
		h.s.writeError(w, r, h.medicalError(r.Context(), err))
		return
	}
	v := medicalCardView{CardToken: cy.CardToken, Fund: cy.Fund, Year: cy.Year,
		PersonalAccountBalance: medical.FormatAmount(cy.PersonalBalance),
		Deductibles:            []medicalLimitView{}, FundCaps: []medicalLimitView{}}
	names := func(m ...map[string]int64) []string {
		var out []string
		for _, x := range m {
			for k := range x {
				if !slices.Contains(out, k) {
					out = append(out, k)
				}
			}
		}
		slices.Sort(out)
		return out
	}
	var deductibles, caps map[string]int64
	if p := cy.Policy; p != nil {
		v.Policy = p.ID()
		deductibles, caps = map[string]int64{}, p.Caps
		for k := range p.Deductibles {
			deductibles[k] = 0
		}
	}
	for _, k := range names(deductibles, cy.Accumulators.Deductible) {
		l := medicalLimitView{Name: k, Used: medical.FormatAmount(cy.Accumulators.Deductible[k])}
		if d, ok := cy.Policy.DeductibleOf(k); ok {
			l.Scope = string(d.Scope)
			if d.Scope == medical.PerYear {
				l.Limit = medical.FormatAmount(d.ByTier[medical.MinTier])
			}
		}
		v.Deductibles = append(v.Deductibles, l)
	}
	for _, k := range names(caps, cy.Accumulators.Fund) {
		l := medicalLimitView{Name: k, Used: medical.FormatAmount(cy.Accumulators.Fund[k])}
		if c, ok := caps[k]; ok {
			l.Limit = medical.FormatAmount(c)
		}
		v.FundCaps = append(v.FundCaps, l)
	}
	h.s.writeJSON(w, r, http.StatusOK, v)
}

// --- strict nested bodies -----------------------------------------------------------------------

// decodeNested reads one JSON object into dst, a pointer to a struct whose fields are strings,
// int64s (whole JSON numbers) or slices of such structs, as strictly as decodeBody reads flat ones: at most limit bytes of UTF-8,
// exactly one object, only the struct's field names spelled exactly, each at most once, each of
// its type, and arrays of objects the same all the way down. Messages name fields, never values.
func decodeNested(w http.ResponseWriter, r *http.Request, dst any, limit int64) error {
	body, err := readJSONBody(w, r, limit)
	if err != nil {
		return err
	}
	if !utf8.Valid(body) {
		return Errorf(EINVALID, "request body is not valid utf-8")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	nc := nestedChecker{dec: dec}
	tok, err := dec.Token()
	if errors.Is(err, io.EOF) {
		return Errorf(EINVALID, "request body must be a json object")
	}
	if err != nil {
		return nc.syntax(err)
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return Errorf(EINVALID, "request body must be a json object")
	}
	if err := nc.object("", reflect.TypeOf(dst).Elem()); err != nil {
		return err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return Errorf(EINVALID, "request body has data after the json object")
	}
	if why := unpairedSurrogate(body); why != "" {
		return Errorf(EINVALID, "%s", why)
	}
	strict := json.NewDecoder(bytes.NewReader(body))
	strict.DisallowUnknownFields()
	if err := strict.Decode(dst); err != nil {
		// The checker has seen every field: this is a bug, not the client's fault. The decoder's
		// message may quote a value, so it is not passed on.
		return fmt.Errorf("decode checked request body into %T: %w", dst, err)
	}
	return nil
}

type nestedChecker struct{ dec *json.Decoder }

func (c nestedChecker) syntax(err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return Errorf(EINVALID, "request body is not valid json: unexpected end")
	}
	return Errorf(EINVALID, "request body is not valid json at byte %d", c.dec.InputOffset())
}

// object checks the members of an object whose '{' was read, against struct type t; path names
// the object in messages ("" at the top, "items[3]" below).
func (c nestedChecker) object(path string, t reflect.Type) error {
	fields := map[string]reflect.Type{}
	for i := 0; i < t.NumField(); i++ {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ",")
		if name != "" && name != "-" {
			fields[name] = t.Field(i).Type
		}
	}
	seen := map[string]bool{}
	for c.dec.More() {
		tok, err := c.dec.Token()
		if err != nil {
			return c.syntax(err)
		}
		key, _ := tok.(string) // inside an object the decoder yields only string keys
		ft, ok := fields[key]
		switch {
		case !ok:
			return unknownField(key)
		case seen[key]:
			return Errorf(EINVALID, "%s: duplicate field", join(path, key))
		}
		seen[key] = true
		if err := c.value(join(path, key), ft); err != nil {
			return err
		}
	}
	if _, err := c.dec.Token(); err != nil { // the closing brace
		return c.syntax(err)
	}
	return nil
}

// value checks one value against type t: a string, or an array of objects of a struct type.
func (c nestedChecker) value(path string, t reflect.Type) error {
	tok, err := c.dec.Token()
	if err != nil {
		return c.syntax(err)
	}
	if tok == nil {
		return Errorf(EINVALID, "%s: must not be null (leave an optional field out)", path)
	}
	if t.Kind() == reflect.Pointer { // a field whose absence is told apart from its zero
		t = t.Elem()
	}
	if t.Kind() == reflect.Int64 {
		n, ok := tok.(json.Number)
		if !ok {
			if _, isDelim := tok.(json.Delim); isDelim {
				if err := c.skip(); err != nil {
					return err
				}
			}
			return Errorf(EINVALID, "%s: must be a whole number", path)
		}
		if _, err := strconv.ParseInt(string(n), 10, 64); err != nil {
			return Errorf(EINVALID, "%s: must be a whole number such as 2", path)
		}
		return nil
	}
	if t.Kind() == reflect.String {
		if _, ok := tok.(string); !ok {
			if _, isDelim := tok.(json.Delim); isDelim {
				if err := c.skip(); err != nil {
					return err
				}
			}
			return Errorf(EINVALID, "%s: must be a string", path)
		}
		return nil
	}
	// A slice of structs: an array of objects.
	if d, ok := tok.(json.Delim); !ok || d != '[' {
		return Errorf(EINVALID, "%s: must be an array of objects", path)
	}
	for i := 0; c.dec.More(); i++ {
		elem := fmt.Sprintf("%s[%d]", path, i)
		tok, err := c.dec.Token()
		if err != nil {
			return c.syntax(err)
		}
		if d, ok := tok.(json.Delim); !ok || d != '{' {
			return Errorf(EINVALID, "%s: must be an object", elem)
		}
		if err := c.object(elem, t.Elem()); err != nil {
			return err
		}
	}
	if _, err := c.dec.Token(); err != nil { // the closing bracket
		return c.syntax(err)
	}
	return nil
}

// skip reads past the rest of a nested object or array whose opening was read.
func (c nestedChecker) skip() error {
	depth := 1
	for depth > 0 {
		tok, err := c.dec.Token()
		if err != nil {
			return c.syntax(err)
		}
		if x, ok := tok.(json.Delim); ok {
			if x == '{' || x == '[' {
				depth++
			} else {
				depth--
			}
		}
	}
	return nil
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}
