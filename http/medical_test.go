package http

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/joinincard/engine/events"
	"github.com/joinincard/engine/ledger"
	"github.com/joinincard/engine/medical"
	"github.com/joinincard/engine/postgres"
)

// The fake's institutions and cards: a tier 3 hospital and a pharmacy in Jiaxing, with keys the
// tests present, and cards insured in Jiaxing (active, blocked) and in a city without a policy.
const (
	medHospitalKey = "jmi_test-hospital-key-0123456789abcdefghijklmno"
	medPharmacyKey = "jmi_test-pharmacy-key-0123456789abcdefghijklmno"
	medCard        = "tok_medical_card"
	medBlocked     = "tok_medical_blocked"
	medNoPolicy    = "tok_medical_hangzhou"
)

func init() {
	featureEnvs = append(featureEnvs, func(t testing.TB, e *env, cfg *Config) {
		f := newFakeMedical(t, e.clock)
		e.features["medical"] = f
		cfg.Features = append(cfg.Features, NewMedical(f))
	})
	for route, st := range map[string][]int{
		"POST /v1/medical/institutions":                         {200, 201, 400, 401, 403, 404, 409, 413, 500, 503},
		"POST /v1/medical/institutions/{merchant_id}/keys":      {201, 400, 401, 403, 404, 413, 500, 503},
		"POST /v1/medical/quotes":                               {200, 400, 401, 403, 404, 409, 413, 500, 503},
		"POST /v1/medical/settlements":                          {200, 201, 400, 401, 403, 404, 409, 413, 500, 503},
		"GET /v1/medical/settlements/{settlement_id}":           {200, 400, 401, 403, 404, 500, 503},
		"POST /v1/medical/settlements/{settlement_id}/cancel":   {200, 400, 401, 403, 404, 409, 413, 500, 503},
		"POST /v1/medical/settlements/{settlement_id}/reversal": {200, 400, 401, 403, 404, 409, 413, 500, 503},
		"GET /v1/medical/reconciliation":                        {200, 400, 401, 403, 404, 500, 503},
		"GET /v1/medical/reconciliation/detail":                 {200, 400, 401, 403, 404, 500, 503},
		"GET /v1/medical/cards/{token}":                         {200, 400, 401, 403, 404, 500, 503},
		"POST /v1/medical/cards/{token}/registrations":          {200, 201, 400, 401, 403, 404, 409, 413, 500, 503},
		"GET /v1/medical/cards/{token}/registrations":           {200, 400, 401, 403, 404, 500, 503},
		"POST /v1/bank/cards/{token}/medical-registrations":     {200, 201, 400, 401, 403, 404, 409, 413, 500, 503},
	} {
		statuses[route] = st
	}
	requestTypes["POST /v1/medical/institutions"] = institutionRequest{}
	requestTypes["POST /v1/medical/quotes"] = medicalQuoteRequest{}
	requestTypes["POST /v1/medical/settlements"] = medicalSettleRequest{}
	requestTypes["POST /v1/medical/settlements/{settlement_id}/cancel"] = medicalEndRequest{}
	requestTypes["POST /v1/medical/settlements/{settlement_id}/reversal"] = medicalEndRequest{}
	responseTypes["POST /v1/medical/institutions"] = institutionView{}
	responseTypes["POST /v1/medical/institutions/{merchant_id}/keys"] = institutionKeyView{}
	responseTypes["POST /v1/medical/quotes"] = medicalQuoteView{}
	responseTypes["POST /v1/medical/settlements"] = medicalReceiptView{}
	responseTypes["GET /v1/medical/settlements/{settlement_id}"] = medicalReceiptView{}
	responseTypes["POST /v1/medical/settlements/{settlement_id}/cancel"] = medicalReceiptView{}
	responseTypes["POST /v1/medical/settlements/{settlement_id}/reversal"] = medicalReceiptView{}
	responseTypes["GET /v1/medical/reconciliation"] = medicalReconciliationView{}
	responseTypes["GET /v1/medical/cards/{token}"] = medicalCardView{}
	requestTypes["POST /v1/medical/cards/{token}/registrations"] = registrationRequest{}
	responseTypes["POST /v1/medical/cards/{token}/registrations"] = registrationView{}
	responseTypes["GET /v1/medical/cards/{token}/registrations"] = registrationListView{}
	requestTypes["POST /v1/bank/cards/{token}/medical-registrations"] = bankRegistrationRequest{}
	responseTypes["POST /v1/bank/cards/{token}/medical-registrations"] = registrationView{}
	featureStatusCases = append(featureStatusCases, medicalStatusCases()...)
}

// fakeMedical is the MedicalStore in memory. It splits with the sample policies, as the real
// store does, and keeps settlements in a map; errs makes a method fail.
type fakeMedical struct {
	mu           sync.Mutex
	clock        *clock
	policies     *medical.Policies
	catalogues   *medical.Catalogues
	regs         map[string][]medical.Registration // by card token
	merchants    map[string]bool
	institutions map[string]medical.Institution
	keys         map[[32]byte]string // key hash -> institution id
	cards        map[string]*fakeMedCard
	settlements  map[[2]string]*fakeMedSettlement
	errs         map[string]error
}

type fakeMedCard struct {
	city             string
	bank             string // the issuer
	active           bool
	personal, funds  int64
	acc              medical.Accumulators
	medical, fundsID ledger.ID
}

type fakeMedSettlement struct {
	s    medical.Settlement
	hash string
}

func newFakeMedical(t testing.TB, c *clock) *fakeMedical {
	t.Helper()
	ps, err := medical.SamplePolicies()
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeMedical{clock: c, policies: ps, catalogues: fakeCatalogues(t), regs: map[string][]medical.Registration{}, merchants: map[string]bool{"H1": true, "P1": true, "M9": true},
		institutions: map[string]medical.Institution{}, keys: map[[32]byte]string{}, cards: map[string]*fakeMedCard{},
		settlements: map[[2]string]*fakeMedSettlement{}, errs: map[string]error{}}
	f.institutions["H1"] = medical.Institution{ID: "H1", Kind: medical.Hospital, Tier: 3, City: "jiaxing"}
	f.institutions["P1"] = medical.Institution{ID: "P1", Kind: medical.PharmacyOutlet, Tier: 1, City: "jiaxing"}
	f.keys[sha256.Sum256([]byte(medHospitalKey))] = "H1"
	f.keys[sha256.Sum256([]byte(medPharmacyKey))] = "P1"
	f.cards[medCard] = &fakeMedCard{city: "jiaxing", bank: "ICBC-JX", active: true, personal: 500_00, funds: 2000_00, acc: medical.Accumulators{}.Clone()}
	f.cards[medBlocked] = &fakeMedCard{city: "jiaxing", active: false, acc: medical.Accumulators{}.Clone()}
	f.cards[medNoPolicy] = &fakeMedCard{city: "hangzhou", active: true, acc: medical.Accumulators{}.Clone()}
	return f
}

func medFake(e *env) *fakeMedical { return e.features["medical"].(*fakeMedical) }

func (f *fakeMedical) fail(method string, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.errs[method] = err
}

func (f *fakeMedical) RegisterInstitution(_ context.Context, in medical.Institution, keyHash [32]byte) (medical.Institution, bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.errs["RegisterInstitution"]; err != nil {
		return in, false, err
	}
	if !f.merchants[in.ID] {
		return in, false, fmt.Errorf("batch transaction: %w", medical.Refuse(medical.ReasonUnknownMerchant, "merchant %q is not registered", in.ID))
	}
	if prior, ok := f.institutions[in.ID]; ok {
		if prior.Kind != in.Kind || prior.Tier != in.Tier || prior.City != in.City {
			return in, false, medical.Refuse(medical.ReasonInstitutionConflict, "institution %q is registered otherwise", in.ID)
		}
		return prior, false, nil
	}
	f.institutions[in.ID] = in
	f.keys[keyHash] = in.ID
	return in, true, nil
}

func (f *fakeMedical) RotateInstitutionKey(_ context.Context, id string, keyHash [32]byte) (medical.Institution, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.errs["RotateInstitutionKey"]; err != nil {
		return medical.Institution{}, err
	}
	in, ok := f.institutions[id]
	if !ok {
		return in, medical.Refuse(medical.ReasonUnknownInstitution, "no institution %q", id)
	}
	for k, v := range f.keys {
		if v == id {
			delete(f.keys, k)
		}
	}
	f.keys[keyHash] = id
	return in, nil
}

func (f *fakeMedical) InstitutionByKey(_ context.Context, keyHash [32]byte) (medical.Institution, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.errs["InstitutionByKey"]; err != nil {
		return medical.Institution{}, err
	}
	id, ok := f.keys[keyHash]
	if !ok {
		return medical.Institution{}, fmt.Errorf("institution: %w", postgres.ErrNotFound)
	}
	return f.institutions[id], nil
}

// fakeCatalogues are catalogues of Jiaxing and Shanghai with one item of each class, coded by its
// class ("A", "B", "C"), and Shanghai's sample entries besides.
func fakeCatalogues(t testing.TB) *medical.Catalogues {
	t.Helper()
	files, err := medical.SampleCatalogueFiles()
	if err != nil {
		t.Fatal(err)
	}
	const classes = `{"code": "A", "kind": "drug", "name_zh": "甲", "name_en": "class A", "class": "A"},
		{"code": "B", "kind": "service", "name_zh": "乙", "name_en": "class B", "class": "B"},
		{"code": "C", "kind": "consumable", "name_zh": "丙", "name_en": "class C", "class": "C"},`
	var list []*medical.Catalogue
	for _, name := range []string{"jiaxing@2025-01-01.json", "shanghai@2025-01-01.json"} {
		c, err := medical.ParseCatalogue([]byte(strings.Replace(string(files[name]), `"items": [`, `"items": [`+classes, 1)))
		if err != nil {
			t.Fatal(err)
		}
		list = append(list, c)
	}
	cs, err := medical.NewCatalogues(list...)
	if err != nil {
		t.Fatal(err)
	}
	return cs
}

// split works out a bill as the real store's prepare does.
func (f *fakeMedical) split(in medical.Institution, token string, bill medical.Bill) (*fakeMedCard, *medical.Policy, medical.Classification, medical.Split, error) {
	c, p, class, err := f.classify(in, token, bill)
	if err != nil {
		return nil, nil, class, medical.Split{}, err
	}
	s, err := p.Split(class.Basket, in.Tier, c.acc, c.personal)
	return c, p, class, s, err
}

func (f *fakeMedical) classify(in medical.Institution, token string, bill medical.Bill) (*fakeMedCard, *medical.Policy, medical.Classification, error) {
	var none medical.Classification
	if !in.Kind.Allows(bill.VisitKind) {
		return nil, nil, none, medical.Refuse(medical.ReasonVisitKindNotAllowed, "a %s does not settle %s visits", in.Kind, bill.VisitKind)
	}
	c, ok := f.cards[token]
	if !ok {
		return nil, nil, none, medical.Refuse(medical.ReasonUnknownCard, "no card has this token")
	}
	if !c.active {
		return nil, nil, none, medical.Refuse(medical.ReasonCardNotActive, "the card is blocked")
	}
	day := medical.DayOf(f.clock.Now())
	p, ok := f.policies.On(c.city, day)
	if !ok {
		return nil, nil, none, medical.Refuse(medical.ReasonNoPolicy, "no medical policy of %s, the card's insurance city", c.city)
	}
	cat, ok := f.catalogues.On(in.City, day)
	if !ok {
		return nil, nil, none, medical.Refuse(medical.ReasonNoCatalogue, "no medical catalogue of %s", in.City)
	}
	class, err := cat.Classify(bill.VisitKind, bill.Lines)
	if err != nil {
		return nil, nil, none, err
	}
	registered := slices.ContainsFunc(f.regs[token], func(r medical.Registration) bool { return r.City == cat.City && r.Covers(day) })
	if class.Basket.Elsewhere, err = p.Where(c.city, cat.City, registered); err != nil {
		return nil, nil, none, err
	}
	return c, p, class, nil
}

func (f *fakeMedical) Register(ctx context.Context, token string, r medical.Registration) (medical.Registration, bool, error) {
	return f.RegisterForBank(ctx, "", token, r)
}

func (f *fakeMedical) RegisterForBank(_ context.Context, bank, token string, r medical.Registration) (medical.Registration, bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.errs["Register"]; err != nil {
		return r, false, err
	}
	c, ok := f.cards[token]
	if !ok || bank != "" && c.bank != bank {
		return r, false, medical.Refuse(medical.ReasonUnknownCard, "no card has this token")
	}
	if err := r.Check(medical.DayOf(f.clock.Now()), c.city); err != nil {
		return r, false, err
	}
	r.CardToken, r.At = token, f.clock.Now()
	for _, o := range f.regs[token] {
		if o.City == r.City && o.From == r.From {
			if o.Until != r.Until {
				return r, false, medical.Refuse(medical.ReasonRegistrationConflict, "the card registered %s from %s already", r.City, r.From)
			}
			return o, false, nil
		}
	}
	f.regs[token] = append(f.regs[token], r)
	return r, true, nil
}

// BankByKey knows ICBC's and ABC's keys, as the settlement fake does.
func (f *fakeMedical) BankByKey(_ context.Context, keyHash [32]byte) (string, error) {
	f.mu.Lock()
	err := f.errs["BankByKey"]
	f.mu.Unlock()
	if err != nil {
		return "", err
	}
	for key, bank := range map[string]string{icbcKey: "ICBC-JX", abcKey: "ABC-JX"} {
		if sha256.Sum256([]byte(key)) == keyHash {
			return bank, nil
		}
	}
	return "", fmt.Errorf("bank key: %w", postgres.ErrNotFound)
}

func (f *fakeMedical) Registrations(_ context.Context, token string) ([]medical.Registration, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.errs["Registrations"]; err != nil {
		return nil, err
	}
	if _, ok := f.cards[token]; !ok {
		return nil, medical.Refuse(medical.ReasonUnknownCard, "no card has this token")
	}
	return slices.Clone(f.regs[token]), nil
}

func (f *fakeMedical) Quote(_ context.Context, in medical.Institution, token string, b medical.Bill) (medical.Quote, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.errs["Quote"]; err != nil {
		return medical.Quote{}, err
	}
	c, p, class, s, err := f.split(in, token, b)
	if err != nil {
		return medical.Quote{}, err
	}
	q := medical.Quote{CardToken: token, Fund: c.city, Policy: p, Institution: in, Basket: class.Basket, Split: s, Before: c.acc.Clone(),
		TreatingCity: class.Catalogue.City, Catalogue: class.Catalogue.Version(), Lines: class.Lines}
	if e := class.Basket.Elsewhere; e != nil {
		q.Registered = e.Registered
	}
	return q, nil
}

func (f *fakeMedical) Settle(_ context.Context, in medical.Institution, ref, token string, b medical.Bill) (medical.Settlement, bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.errs["Settle"]; err != nil {
		return medical.Settlement{}, false, err
	}
	hash := fmt.Sprintf("%s/%+v", token, b)
	if prior, ok := f.settlements[[2]string{in.ID, ref}]; ok {
		if prior.hash != hash {
			return medical.Settlement{}, false, medical.Refuse(medical.ReasonSettlementIDReused, "settlement id %q was used for another request", ref)
		}
		return prior.s, true, nil
	}
	c, p, class, s, err := f.split(in, token, b)
	if err != nil {
		return medical.Settlement{}, false, err
	}
	if s.Cash > c.funds {
		return medical.Settlement{}, false, medical.Refuse(medical.ReasonInsufficientFunds, "the card's funds cannot pay the cash part of %s", medical.FormatAmount(s.Cash))
	}
	c.personal -= s.Personal
	c.funds -= s.Cash
	c.acc = c.acc.Plus(s.Delta)
	now := f.clock.Now()
	st := medical.Settlement{ID: uuid.New(), Institution: in.ID, Ref: ref, CardToken: token, Fund: c.city, PolicyID: p.ID(),
		PolicyName: p.Name, PolicyYear: p.Year, VisitKind: b.VisitKind, Tier: in.Tier, Items: class.Basket.Items, Split: s,
		TreatingCity: class.Catalogue.City, Catalogue: class.Catalogue.Version(), Lines: class.Lines,
		Registered: class.Basket.Elsewhere != nil && class.Basket.Elsewhere.Registered,
		Day:        medical.DayOf(now), SettledAt: now, PersonalBalanceAfter: c.personal, FundsAvailableAfter: c.funds}
	f.settlements[[2]string{in.ID, ref}] = &fakeMedSettlement{s: st, hash: hash}
	return st, false, nil
}

func (f *fakeMedical) Settlement(_ context.Context, in medical.Institution, ref string) (medical.Settlement, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.errs["Settlement"]; err != nil {
		return medical.Settlement{}, err
	}
	s, ok := f.settlements[[2]string{in.ID, ref}]
	if !ok {
		return medical.Settlement{}, medical.Refuse(medical.ReasonUnknownSettlement, "no settlement %q of %s", ref, in.ID)
	}
	return s.s, nil
}

func (f *fakeMedical) End(_ context.Context, in medical.Institution, ref string, kind medical.EndKind, reason string) (medical.Settlement, bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.errs["End"]; err != nil {
		return medical.Settlement{}, false, err
	}
	st, ok := f.settlements[[2]string{in.ID, ref}]
	if !ok {
		return medical.Settlement{}, false, medical.Refuse(medical.ReasonUnknownSettlement, "no settlement %q of %s", ref, in.ID)
	}
	s := &st.s
	if s.End != nil {
		if s.End.Kind == kind {
			return *s, true, nil
		}
		return medical.Settlement{}, false, medical.Refuse(medical.ReasonAlreadyCancelled, "settlement %q was %s", ref, s.End.Kind)
	}
	today := medical.DayOf(f.clock.Now())
	if kind == medical.Cancelled && today != s.Day {
		return medical.Settlement{}, false, medical.Refuse(medical.ReasonDayClosed, "settlement %q belongs to %s: reverse it instead", ref, s.Day)
	}
	if kind == medical.Reversed && today == s.Day {
		return medical.Settlement{}, false, medical.Refuse(medical.ReasonDayOpen, "settlement %q belongs to today: cancel it instead", ref)
	}
	c := f.cards[s.CardToken]
	c.personal += s.Split.Personal
	c.funds += s.Split.Cash
	acc, err := c.acc.Minus(s.Split.Delta)
	if err != nil {
		return medical.Settlement{}, false, err
	}
	c.acc = acc
	s.End = &medical.End{Kind: kind, Reason: reason, Day: today, At: f.clock.Now(), PersonalBalanceAfter: c.personal, FundsAvailableAfter: c.funds}
	return *s, false, nil
}

func (f *fakeMedical) lines(fund string, day events.Date) []medical.DetailLine {
	var out []medical.DetailLine
	for _, st := range f.settlements {
		s := st.s
		if s.Fund != fund {
			continue
		}
		if s.Day == day && (s.End == nil || s.End.Kind != medical.Cancelled) {
			out = append(out, medical.DetailLine{Kind: medical.LineSettlement, At: s.SettledAt, Institution: s.Institution, Ref: s.Ref,
				ID: s.ID, CardToken: s.CardToken, VisitKind: s.VisitKind, Tier: s.Tier, PolicyID: s.PolicyID,
				Total: s.Split.Total, Fund: s.Split.Fund, Personal: s.Split.Personal, Cash: s.Split.Cash,
				TreatingCity: s.TreatingCity, Registered: s.Registered})
		}
		if s.End != nil && s.End.Kind == medical.Reversed && s.End.Day == day {
			out = append(out, medical.DetailLine{Kind: medical.LineReversal, At: s.End.At, Institution: s.Institution, Ref: s.Ref,
				ID: s.ID, CardToken: s.CardToken, VisitKind: s.VisitKind, Tier: s.Tier, PolicyID: s.PolicyID,
				Total: -s.Split.Total, Fund: -s.Split.Fund, Personal: -s.Split.Personal, Cash: -s.Split.Cash,
				TreatingCity: s.TreatingCity, Registered: s.Registered})
		}
		for _, r := range s.Refunds {
			if r.Day == day {
				out = append(out, medical.DetailLine{Kind: medical.LineRefund, At: r.At, Institution: s.Institution, Ref: s.Ref,
					ID: s.ID, CardToken: s.CardToken, VisitKind: s.VisitKind, Tier: s.Tier, PolicyID: s.PolicyID,
					Total: -r.Amount, Fund: -r.Parts.Fund, Personal: -r.Parts.Personal, Cash: -r.Parts.Cash})
			}
		}
	}
	slices.SortFunc(out, func(a, b medical.DetailLine) int { return a.At.Compare(b.At) })
	return out
}

func (f *fakeMedical) Reconciliation(_ context.Context, fund string, day events.Date) (medical.DayTotals, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.errs["Reconciliation"]; err != nil {
		return medical.DayTotals{}, err
	}
	if fund != "jiaxing" {
		return medical.DayTotals{}, medical.Refuse(medical.ReasonUnknownFund, "no insurance fund %q", fund)
	}
	d := medical.DayTotals{Fund: fund, Day: day, Closed: day != medical.DayOf(f.clock.Now())}
	by := map[string]*medical.Totals{}
	for _, l := range f.lines(fund, day) {
		if by[l.Institution] == nil {
			by[l.Institution] = &medical.Totals{}
		}
		t := medical.Totals{Total: l.Total, Fund: l.Fund, Personal: l.Personal, Cash: l.Cash}
		switch l.Kind {
		case medical.LineReversal:
			t.Reversals = 1
		case medical.LineRefund:
			t.Refunds = 1
		default:
			t.Settlements = 1
		}
		by[l.Institution].Add(t)
		d.All.Add(t)
	}
	for id, t := range by {
		d.Institutions = append(d.Institutions, medical.InstitutionTotals{Institution: id, City: f.institutions[id].City, Totals: *t})
	}
	return d, nil
}

func (f *fakeMedical) Detail(_ context.Context, fund string, day events.Date, fn func(medical.DetailLine) error) error {
	f.mu.Lock()
	lines, err := f.lines(fund, day), f.errs["Detail"]
	f.mu.Unlock()
	if err != nil {
		return err
	}
	if fund != "jiaxing" {
		return medical.Refuse(medical.ReasonUnknownFund, "no insurance fund %q", fund)
	}
	for _, l := range lines {
		if err := fn(l); err != nil {
			return err
		}
	}
	return nil
}

func (f *fakeMedical) CardYear(_ context.Context, token string, year int) (medical.CardYear, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.errs["CardYear"]; err != nil {
		return medical.CardYear{}, err
	}
	c, ok := f.cards[token]
	if !ok {
		return medical.CardYear{}, medical.Refuse(medical.ReasonUnknownCard, "no card has this token")
	}
	p, _ := f.policies.For(c.city, year)
	acc := medical.Accumulators{}.Clone() // the fake accumulates the clock's year only
	if year == medical.DayOf(f.clock.Now()).Year {
		acc = c.acc.Clone()
	}
	return medical.CardYear{CardToken: token, Fund: c.city, Policy: p, Year: year, Accumulators: acc, PersonalBalance: c.personal}, nil
}

var _ MedicalStore = (*fakeMedical)(nil)

// medBasket is a settlement body: ref "" leaves settlement_id out (a quote).
func medBasket(ref, card, visit string, items ...string) string {
	m := map[string]any{"card_token": card, "visit_kind": visit}
	if ref != "" {
		m["settlement_id"] = ref
	}
	var its []map[string]any
	for _, it := range items {
		class, amount, _ := strings.Cut(it, ":")
		its = append(its, map[string]any{"code": class, "quantity": 1, "unit_price": amount})
	}
	m["items"] = its
	b, err := json.Marshal(m)
	if err != nil {
		panic(err)
	}
	return string(b)
}

// medRequest is a request of an institution: auth is its bearer key, "-" for none.
func medRequest(method, path, body, key string) request {
	rq := request{method: method, path: path, body: body, auth: "Bearer " + key}
	if key == "-" {
		rq.auth = "-"
	}
	return rq
}

// settled settles a basket at the hospital first, then runs next.
func settled(ref string, next func(t *testing.T, e *env) *httptest.ResponseRecorder) func(t *testing.T, e *env) *httptest.ResponseRecorder {
	return func(t *testing.T, e *env) *httptest.ResponseRecorder {
		t.Helper()
		w := e.do(t, medRequest("POST", "/v1/medical/settlements", medBasket(ref, medCard, "outpatient", "A:1500.00", "C:20.00"), medHospitalKey))
		if w.Code != http.StatusCreated {
			t.Fatalf("settling %s: %d %s", ref, w.Code, w.Body.String())
		}
		return next(t, e)
	}
}

func medFailing(method string, err error, next func(t *testing.T, e *env) *httptest.ResponseRecorder) func(t *testing.T, e *env) *httptest.ResponseRecorder {
	return func(t *testing.T, e *env) *httptest.ResponseRecorder {
		medFake(e).fail(method, err)
		return next(t, e)
	}
}

func medicalStatusCases() []statusCase {
	tooLarge := `{"card_token":"` + strings.Repeat("a", maxMedicalBodyBytes) + `"}`
	inst := `{"merchant_id":"M9","kind":"hospital","tier":"2","city":"jiaxing"}`
	quote := medBasket("", medCard, "outpatient", "A:300.00", "B:100.00")
	settle := medBasket("S-1", medCard, "outpatient", "A:300.00", "B:100.00")
	hk := medHospitalKey
	var cs []statusCase
	add := func(route string, c ...statusCase) {
		for _, x := range c {
			x.route = route
			cs = append(cs, x)
		}
	}
	// What every institution route answers alike: no key, a wrong key, a key whose lookup fails.
	keyCases := func(route, method, path, body string) {
		add(route,
			statusCase{name: "no key", status: 401, code: EUNAUTHORIZED, run: send(medRequest(method, path, body, "-"))},
			statusCase{name: "basic auth", status: 401, code: EUNAUTHORIZED, run: send(request{method: method, path: path, body: body, auth: "Basic eDp5"})},
			statusCase{name: "wrong key", status: 403, code: EFORBIDDEN, message: "invalid institution api key",
				run: send(medRequest(method, path, body, "jmi_guessed"))},
			statusCase{name: "admin token is not an institution key", status: 403, code: EFORBIDDEN,
				run: send(request{method: method, path: path, body: body})},
			statusCase{name: "key lookup broken", status: 500, code: EINTERNAL,
				run: medFailing("InstitutionByKey", errBroken, send(medRequest(method, path, body, hk)))},
			statusCase{name: "key lookup busy", status: 503, code: EUNAVAILABLE,
				run: medFailing("InstitutionByKey", busy, send(medRequest(method, path, body, hk)))},
		)
	}
	// What every admin route answers alike.
	adminCases := func(route, method, path, body string) {
		add(route,
			statusCase{name: "without auth", status: 401, code: EUNAUTHORIZED, run: send(request{method: method, path: path, body: body, auth: "-"})},
			statusCase{name: "wrong token", status: 403, code: EFORBIDDEN, run: send(request{method: method, path: path, body: body, auth: "Bearer wrong"})},
			statusCase{name: "institution key is not the admin token", status: 403, code: EFORBIDDEN, run: send(medRequest(method, path, body, hk))},
			statusCase{name: "no admin token", status: 503, code: EUNAVAILABLE, opts: []envOption{noAdmin}, run: send(request{method: method, path: path, body: body})},
		)
	}

	r := "POST /v1/medical/institutions"
	add(r,
		statusCase{name: "register", status: 201, run: func(t *testing.T, e *env) *httptest.ResponseRecorder {
			w := e.do(t, request{method: "POST", path: "/v1/medical/institutions", body: inst})
			var v institutionView
			decodeJSON(t, w, &v)
			if !strings.HasPrefix(v.APIKey, apiKeyPrefix) || len(v.APIKey) != len(apiKeyPrefix)+43 {
				t.Errorf("issued key %q", v.APIKey)
			}
			// The key works at once.
			if w2 := e.do(t, medRequest("POST", "/v1/medical/quotes", quote, v.APIKey)); w2.Code != http.StatusOK {
				t.Errorf("quote with the issued key: %d %s", w2.Code, w2.Body.String())
			}
			return w
		}},
		statusCase{name: "again", status: 200, run: func(t *testing.T, e *env) *httptest.ResponseRecorder {
			e.do(t, request{method: "POST", path: "/v1/medical/institutions", body: inst})
			w := e.do(t, request{method: "POST", path: "/v1/medical/institutions", body: inst})
			if strings.Contains(w.Body.String(), "api_key") {
				t.Errorf("registering again shows a key: %s", w.Body.String())
			}
			return w
		}},
		statusCase{name: "no tier", status: 400, code: EINVALID, message: "tier: missing",
			run: send(request{method: "POST", path: "/v1/medical/institutions", body: `{"merchant_id":"M9","kind":"hospital","city":"jiaxing"}`})},
		statusCase{name: "tier 4", status: 400, code: EINVALID, message: "tier: must be",
			run: send(request{method: "POST", path: "/v1/medical/institutions", body: `{"merchant_id":"M9","kind":"hospital","tier":"4","city":"jiaxing"}`})},
		statusCase{name: "tier as a number", status: 400, code: EINVALID, message: "tier: must be a string",
			run: send(request{method: "POST", path: "/v1/medical/institutions", body: `{"merchant_id":"M9","kind":"hospital","tier":2,"city":"jiaxing"}`})},
		statusCase{name: "unknown kind", status: 400, code: EINVALID, message: "kind: must be one of",
			run: send(request{method: "POST", path: "/v1/medical/institutions", body: `{"merchant_id":"M9","kind":"clinic","tier":"2","city":"jiaxing"}`})},
		statusCase{name: "merchant id with a space", status: 400, code: EINVALID, message: "merchant_id: must be printable",
			run: send(request{method: "POST", path: "/v1/medical/institutions", body: `{"merchant_id":"M 9","kind":"hospital","tier":"2","city":"jiaxing"}`})},
		statusCase{name: "unknown merchant", status: 404, code: ENOTFOUND, message: "unknown_merchant",
			run: send(request{method: "POST", path: "/v1/medical/institutions", body: `{"merchant_id":"M404","kind":"hospital","tier":"2","city":"jiaxing"}`})},
		statusCase{name: "other attributes", status: 409, code: ECONFLICT, message: "institution_conflict",
			run: send(request{method: "POST", path: "/v1/medical/institutions", body: `{"merchant_id":"H1","kind":"hospital","tier":"2","city":"jiaxing"}`})},
		statusCase{name: "too large", status: 413, code: ETOOLARGE, run: send(request{method: "POST", path: "/v1/medical/institutions", body: tooLarge})},
		statusCase{name: "store broken", status: 500, code: EINTERNAL,
			run: medFailing("RegisterInstitution", errBroken, send(request{method: "POST", path: "/v1/medical/institutions", body: inst}))},
		statusCase{name: "store busy", status: 503, code: EUNAVAILABLE,
			run: medFailing("RegisterInstitution", busy, send(request{method: "POST", path: "/v1/medical/institutions", body: inst}))},
	)
	adminCases(r, "POST", "/v1/medical/institutions", inst)

	r = "POST /v1/medical/institutions/{merchant_id}/keys"
	add(r,
		statusCase{name: "rotate", status: 201, run: func(t *testing.T, e *env) *httptest.ResponseRecorder {
			w := e.do(t, request{method: "POST", path: "/v1/medical/institutions/H1/keys"})
			var v institutionKeyView
			decodeJSON(t, w, &v)
			if w2 := e.do(t, medRequest("POST", "/v1/medical/quotes", quote, hk)); w2.Code != http.StatusForbidden {
				t.Errorf("the old key after rotation: %d", w2.Code)
			}
			if w2 := e.do(t, medRequest("POST", "/v1/medical/quotes", quote, v.APIKey)); w2.Code != http.StatusOK {
				t.Errorf("the new key: %d %s", w2.Code, w2.Body.String())
			}
			return w
		}},
		statusCase{name: "unknown institution", status: 404, code: ENOTFOUND, message: "unknown_institution",
			run: send(request{method: "POST", path: "/v1/medical/institutions/M9/keys"})},
		statusCase{name: "not an id", status: 400, code: EINVALID, message: "merchant_id: must be printable ascii",
			run: send(request{method: "POST", path: "/v1/medical/institutions/H%FF1/keys"})},
		statusCase{name: "store broken", status: 500, code: EINTERNAL,
			run: medFailing("RotateInstitutionKey", errBroken, send(request{method: "POST", path: "/v1/medical/institutions/H1/keys"}))},
		statusCase{name: "store busy", status: 503, code: EUNAVAILABLE,
			run: medFailing("RotateInstitutionKey", busy, send(request{method: "POST", path: "/v1/medical/institutions/H1/keys"}))},
	)
	adminCases(r, "POST", "/v1/medical/institutions/H1/keys", "")

	r = "POST /v1/medical/quotes"
	q := func(body string) func(t *testing.T, e *env) *httptest.ResponseRecorder {
		return send(medRequest("POST", "/v1/medical/quotes", body, hk))
	}
	add(r,
		statusCase{name: "quote", status: 200, run: q(quote)},
		statusCase{name: "no items", status: 400, code: EINVALID, message: "items: must hold at least one item",
			run: q(`{"card_token":"x","visit_kind":"outpatient","items":[]}`)},
		statusCase{name: "items not an array", status: 400, code: EINVALID, message: "items: must be an array of objects",
			run: q(`{"card_token":"x","visit_kind":"outpatient","items":{"class":"A"}}`)},
		statusCase{name: "item not an object", status: 400, code: EINVALID, message: "items[0]: must be an object",
			run: q(`{"card_token":"x","visit_kind":"outpatient","items":["A"]}`)},
		statusCase{name: "item unit price a number", status: 400, code: EINVALID, message: "items[1].unit_price: must be a string",
			run: q(`{"card_token":"x","visit_kind":"outpatient","items":[{"code":"A","quantity":1,"unit_price":"1"},{"code":"A","quantity":1,"unit_price":1}]}`)},
		statusCase{name: "item quantity a string", status: 400, code: EINVALID, message: "items[0].quantity: must be a whole number",
			run: q(`{"card_token":"x","visit_kind":"outpatient","items":[{"code":"A","quantity":"1","unit_price":"1"}]}`)},
		statusCase{name: "item quantity a fraction", status: 400, code: EINVALID, message: "items[0].quantity: must be a whole number",
			run: q(`{"card_token":"x","visit_kind":"outpatient","items":[{"code":"A","quantity":1.5,"unit_price":"1"}]}`)},
		statusCase{name: "item quantity zero", status: 400, code: EINVALID, message: "items[0].quantity: must be 1 to 100000",
			run: q(`{"card_token":"tok_x","visit_kind":"outpatient","items":[{"code":"A","quantity":0,"unit_price":"1"}]}`)},
		statusCase{name: "item without a quantity", status: 400, code: EINVALID, message: "items[0].quantity: missing required field",
			run: q(`{"card_token":"tok_x","visit_kind":"outpatient","items":[{"code":"A","unit_price":"1"}]}`)},
		statusCase{name: "item quantity over the bound", status: 400, code: EINVALID, message: "items[0].quantity: must be 1 to 100000",
			run: q(`{"card_token":"tok_x","visit_kind":"outpatient","items":[{"code":"A","quantity":100001,"unit_price":"1"}]}`)},
		statusCase{name: "item without a code", status: 400, code: EINVALID, message: "items[0].code: missing",
			run: q(`{"card_token":"tok_x","visit_kind":"outpatient","items":[{"quantity":1,"unit_price":"1"}]}`)},
		statusCase{name: "the former class refused", status: 400, code: EINVALID, message: "items[0].class: not taken: the treating city's catalogue classifies",
			run: q(`{"card_token":"tok_x","visit_kind":"outpatient","items":[{"code":"A","class":"A","quantity":1,"unit_price":"1"}]}`)},
		statusCase{name: "the former amount refused", status: 400, code: EINVALID, message: "items[0].amount: not taken: send the quantity and the unit_price",
			run: q(`{"card_token":"tok_x","visit_kind":"outpatient","items":[{"code":"A","amount":"1.00"}]}`)},
		statusCase{name: "item unknown field", status: 400, code: EINVALID, message: `unknown field "price"`,
			run: q(`{"card_token":"x","visit_kind":"outpatient","items":[{"code":"A","price":"1"}]}`)},
		statusCase{name: "item duplicate field", status: 400, code: EINVALID, message: "items[0].code: duplicate field",
			run: q(`{"card_token":"x","visit_kind":"outpatient","items":[{"code":"A","code":"B","quantity":1,"unit_price":"1"}]}`)},
		statusCase{name: "three decimals", status: 400, code: EINVALID, message: "items[0].unit_price",
			run: q(medBasket("", medCard, "outpatient", "A:1.005"))},
		statusCase{name: "zero unit price", status: 400, code: EINVALID, message: "items[0].unit_price: must be positive",
			run: q(medBasket("", medCard, "outpatient", "A:0.00"))},
		statusCase{name: "unknown visit kind", status: 400, code: EINVALID, message: "visit_kind: must be one of",
			run: q(medBasket("", medCard, "dental", "A:1.00"))},
		statusCase{name: "no card", status: 400, code: EINVALID, message: "card_token: missing",
			run: q(medBasket("", "", "outpatient", "A:1.00"))},
		statusCase{name: "unknown card", status: 404, code: ENOTFOUND, message: "unknown_card",
			run: q(medBasket("", "tok_nobody", "outpatient", "A:1.00"))},
		statusCase{name: "blocked card", status: 409, code: ECONFLICT, message: "card_not_active",
			run: q(medBasket("", medBlocked, "outpatient", "A:1.00"))},
		statusCase{name: "no policy", status: 409, code: ECONFLICT, message: "no_policy",
			run: q(medBasket("", medNoPolicy, "outpatient", "A:1.00"))},
		statusCase{name: "a pharmacy visit at a hospital", status: 409, code: ECONFLICT, message: "visit_kind_not_allowed",
			run: q(medBasket("", medCard, "pharmacy", "A:1.00"))},
		statusCase{name: "too large", status: 413, code: ETOOLARGE, run: q(tooLarge)},
		statusCase{name: "store broken", status: 500, code: EINTERNAL, run: medFailing("Quote", errBroken, q(quote))},
		statusCase{name: "store busy", status: 503, code: EUNAVAILABLE, run: medFailing("Quote", busy, q(quote))},
	)
	keyCases(r, "POST", "/v1/medical/quotes", quote)

	r = "POST /v1/medical/settlements"
	st := func(body string) func(t *testing.T, e *env) *httptest.ResponseRecorder {
		return send(medRequest("POST", "/v1/medical/settlements", body, hk))
	}
	add(r,
		statusCase{name: "settle", status: 201, run: st(settle)},
		statusCase{name: "replay", status: 200, run: settled("S-1", st(medBasket("S-1", medCard, "outpatient", "A:1500.00", "C:20.00")))},
		statusCase{name: "no settlement id", status: 400, code: EINVALID, message: "settlement_id: missing", run: st(quote)},
		statusCase{name: "settlement id with a space", status: 400, code: EINVALID, message: "settlement_id: must be printable",
			run: st(medBasket("S 1", medCard, "outpatient", "A:1.00"))},
		statusCase{name: "unknown card", status: 404, code: ENOTFOUND, message: "unknown_card",
			run: st(medBasket("S-2", "tok_nobody", "outpatient", "A:1.00"))},
		statusCase{name: "insufficient funds", status: 409, code: ECONFLICT, message: "insufficient_funds",
			run: st(medBasket("S-3", medCard, "outpatient", "C:99999.00"))},
		statusCase{name: "settlement id reused", status: 409, code: ECONFLICT, message: "settlement_id_reused",
			run: settled("S-1", st(medBasket("S-1", medCard, "outpatient", "A:1.00")))},
		statusCase{name: "too large", status: 413, code: ETOOLARGE, run: st(tooLarge)},
		statusCase{name: "store broken", status: 500, code: EINTERNAL, run: medFailing("Settle", errBroken, st(settle))},
		statusCase{name: "store busy", status: 503, code: EUNAVAILABLE, run: medFailing("Settle", busy, st(settle))},
	)
	keyCases(r, "POST", "/v1/medical/settlements", settle)

	r = "GET /v1/medical/settlements/{settlement_id}"
	get := send(medRequest("GET", "/v1/medical/settlements/S-1", "", hk))
	add(r,
		statusCase{name: "receipt", status: 200, run: settled("S-1", get)},
		statusCase{name: "unknown", status: 404, code: ENOTFOUND, message: "unknown_settlement", run: get},
		statusCase{name: "not an id", status: 400, code: EINVALID, message: "settlement_id: must be printable ascii",
			run: send(medRequest("GET", "/v1/medical/settlements/S%00-1", "", hk))},
		statusCase{name: "another institution's", status: 404, code: ENOTFOUND, message: "unknown_settlement",
			run: settled("S-1", send(medRequest("GET", "/v1/medical/settlements/S-1", "", medPharmacyKey)))},
		statusCase{name: "store broken", status: 500, code: EINTERNAL, run: medFailing("Settlement", errBroken, get)},
		statusCase{name: "store busy", status: 503, code: EUNAVAILABLE, run: medFailing("Settlement", busy, get)},
	)
	keyCases(r, "GET", "/v1/medical/settlements/S-1", "")

	for _, kind := range []string{"cancel", "reversal"} {
		r = "POST /v1/medical/settlements/{settlement_id}/" + kind
		path := "/v1/medical/settlements/S-1/" + kind
		body := `{"reason":"entered twice"}`
		do := send(medRequest("POST", path, body, hk))
		nextDay := func(t *testing.T, e *env) *httptest.ResponseRecorder {
			e.clock.Advance(24 * time.Hour)
			return do(t, e)
		}
		// A cancellation belongs to the settlement's day, a reversal to a later one.
		ok, wrongDay, wrongMsg := do, nextDay, "day_closed"
		if kind == "reversal" {
			ok, wrongDay, wrongMsg = nextDay, do, "day_open"
		}
		add(r,
			statusCase{name: kind, status: 200, run: settled("S-1", ok)},
			statusCase{name: "again", status: 200, run: settled("S-1", func(t *testing.T, e *env) *httptest.ResponseRecorder {
				ok(t, e)
				return do(t, e)
			})},
			statusCase{name: "no reason", status: 400, code: EINVALID, message: "reason: missing",
				run: send(medRequest("POST", path, `{}`, hk))},
			statusCase{name: "unknown", status: 404, code: ENOTFOUND, message: "unknown_settlement", run: do},
			statusCase{name: "outside its window", status: 409, code: ECONFLICT, message: wrongMsg, run: settled("S-1", wrongDay)},
			statusCase{name: "too large", status: 413, code: ETOOLARGE, run: send(medRequest("POST", path, tooLarge, hk))},
			statusCase{name: "store broken", status: 500, code: EINTERNAL, run: medFailing("End", errBroken, do)},
			statusCase{name: "store busy", status: 503, code: EUNAVAILABLE, run: medFailing("End", busy, do)},
		)
		keyCases(r, "POST", path, body)
	}

	for _, path := range []string{"/v1/medical/reconciliation", "/v1/medical/reconciliation/detail"} {
		r = "GET " + path
		q := path + "?fund=jiaxing&day=2026-03-01"
		add(r,
			statusCase{name: "day", status: 200, run: settled("S-1", send(request{method: "GET", path: q}))},
			statusCase{name: "no day", status: 400, code: EINVALID, message: "day:", run: send(request{method: "GET", path: path + "?fund=jiaxing"})},
			statusCase{name: "bad day", status: 400, code: EINVALID, message: "day:", run: send(request{method: "GET", path: path + "?fund=jiaxing&day=2026-3-1"})},
			statusCase{name: "no fund", status: 400, code: EINVALID, message: "fund:", run: send(request{method: "GET", path: path + "?day=2026-03-01"})},
			statusCase{name: "two funds", status: 400, code: EINVALID, message: "fund:", run: send(request{method: "GET", path: q + "&fund=shanghai"})},
			statusCase{name: "unknown parameter", status: 400, code: EINVALID, message: "unknown query parameter", run: send(request{method: "GET", path: q + "&institution=H1"})},
			statusCase{name: "unknown fund", status: 404, code: ENOTFOUND, message: "unknown_fund",
				run: send(request{method: "GET", path: path + "?fund=atlantis&day=2026-03-01"})},
		)
		method := "Reconciliation"
		if strings.HasSuffix(path, "detail") {
			method = "Detail"
		}
		add(r,
			statusCase{name: "store broken", status: 500, code: EINTERNAL, run: medFailing(method, errBroken, send(request{method: "GET", path: q}))},
			statusCase{name: "store busy", status: 503, code: EUNAVAILABLE, run: medFailing(method, busy, send(request{method: "GET", path: q}))},
		)
		adminCases(r, "GET", q, "")
	}

	r = "GET /v1/medical/cards/{token}"
	card := send(request{method: "GET", path: "/v1/medical/cards/" + medCard})
	add(r,
		statusCase{name: "year", status: 200, run: settled("S-1", card)},
		statusCase{name: "another year", status: 200, run: send(request{method: "GET", path: "/v1/medical/cards/" + medCard + "?year=2025"})},
		statusCase{name: "bad year", status: 400, code: EINVALID, message: "year:", run: send(request{method: "GET", path: "/v1/medical/cards/" + medCard + "?year=26"})},
		statusCase{name: "unknown parameter", status: 400, code: EINVALID, message: "unknown query parameter",
			run: send(request{method: "GET", path: "/v1/medical/cards/" + medCard + "?fund=x"})},
		statusCase{name: "unknown card", status: 404, code: ENOTFOUND, message: "unknown_card", run: send(request{method: "GET", path: "/v1/medical/cards/tok_nobody"})},
		statusCase{name: "store broken", status: 500, code: EINTERNAL, run: medFailing("CardYear", errBroken, card)},
		statusCase{name: "store busy", status: 503, code: EUNAVAILABLE, run: medFailing("CardYear", busy, card)},
	)
	adminCases(r, "GET", "/v1/medical/cards/"+medCard, "")

	r = "POST /v1/medical/cards/{token}/registrations"
	reg := func(token, body string) func(t *testing.T, e *env) *httptest.ResponseRecorder {
		return send(request{method: "POST", path: "/v1/medical/cards/" + token + "/registrations", body: body})
	}
	const shanghai = `{"treatment_city":"上海","valid_from":"2026-03-10","registered_by":"Wang Li"}`
	twice := func(first, second string) func(t *testing.T, e *env) *httptest.ResponseRecorder {
		return func(t *testing.T, e *env) *httptest.ResponseRecorder {
			t.Helper()
			if w := reg(medCard, first)(t, e); w.Code != http.StatusCreated {
				t.Fatalf("first registration: %d %s", w.Code, w.Body.String())
			}
			return reg(medCard, second)(t, e)
		}
	}
	add(r,
		statusCase{name: "registered", status: 201, run: reg(medCard, shanghai)},
		statusCase{name: "the same again by its English name", status: 200,
			run: twice(shanghai, `{"treatment_city":"Shanghai","valid_from":"2026-03-10","registered_by":"Wang Li"}`)},
		statusCase{name: "another end", status: 409, code: ECONFLICT, message: "registration_conflict",
			run: twice(shanghai, `{"treatment_city":"shanghai","valid_from":"2026-03-10","valid_until":"2026-04-30","registered_by":"Wang Li"}`)},
		statusCase{name: "no city", status: 400, code: EINVALID, message: "treatment_city: missing",
			run: reg(medCard, `{"valid_from":"2026-03-10","registered_by":"Wang Li"}`)},
		statusCase{name: "the insured city", status: 400, code: EINVALID, message: "treatment_city: the card is insured in jiaxing",
			run: reg(medCard, `{"treatment_city":"嘉兴","valid_from":"2026-03-10","registered_by":"Wang Li"}`)},
		statusCase{name: "in the past", status: 400, code: EINVALID, message: "valid_from: 2026-02-28 is before today",
			run: reg(medCard, `{"treatment_city":"上海","valid_from":"2026-02-28","registered_by":"Wang Li"}`)},
		statusCase{name: "an end before the start", status: 400, code: EINVALID, message: "valid_until: 2026-03-09 is before valid_from",
			run: reg(medCard, `{"treatment_city":"上海","valid_from":"2026-03-10","valid_until":"2026-03-09","registered_by":"Wang Li"}`)},
		statusCase{name: "a malformed day", status: 400, code: EINVALID, message: "valid_from: want a business day",
			run: reg(medCard, `{"treatment_city":"上海","valid_from":"10/03/2026","registered_by":"Wang Li"}`)},
		statusCase{name: "unknown card", status: 404, code: ENOTFOUND, message: "unknown_card", run: reg("tok_nobody", shanghai)},
		statusCase{name: "too large", status: 413, code: ETOOLARGE,
			run: reg(medCard, `{"treatment_city":"`+strings.Repeat("a", maxRequestBytes)+`"}`)},
		statusCase{name: "store broken", status: 500, code: EINTERNAL, run: medFailing("Register", errBroken, reg(medCard, shanghai))},
		statusCase{name: "store busy", status: 503, code: EUNAVAILABLE, run: medFailing("Register", busy, reg(medCard, shanghai))},
	)
	adminCases(r, "POST", "/v1/medical/cards/"+medCard+"/registrations", shanghai)

	r = "GET /v1/medical/cards/{token}/registrations"
	regs := send(request{method: "GET", path: "/v1/medical/cards/" + medCard + "/registrations"})
	add(r,
		statusCase{name: "list", status: 200, run: regs},
		statusCase{name: "unknown parameter", status: 400, code: EINVALID, message: "unknown query parameter",
			run: send(request{method: "GET", path: "/v1/medical/cards/" + medCard + "/registrations?city=x"})},
		statusCase{name: "unknown card", status: 404, code: ENOTFOUND, message: "unknown_card",
			run: send(request{method: "GET", path: "/v1/medical/cards/tok_nobody/registrations"})},
		statusCase{name: "store broken", status: 500, code: EINTERNAL, run: medFailing("Registrations", errBroken, regs)},
		statusCase{name: "store busy", status: 503, code: EUNAVAILABLE, run: medFailing("Registrations", busy, regs)},
	)
	adminCases(r, "GET", "/v1/medical/cards/"+medCard+"/registrations", "")

	r = "POST /v1/bank/cards/{token}/medical-registrations"
	bankReg := func(key, token, body string) func(t *testing.T, e *env) *httptest.ResponseRecorder {
		return send(asBank(key, request{method: "POST", path: "/v1/bank/cards/" + token + "/medical-registrations", body: body}))
	}
	const byBank = `{"treatment_city":"Shanghai","valid_from":"2026-03-10","valid_until":"2026-06-30"}`
	add(r,
		statusCase{name: "registered by the issuer", status: 201, run: func(t *testing.T, e *env) *httptest.ResponseRecorder {
			w := bankReg(icbcKey, medCard, byBank)(t, e)
			var v registrationView
			decodeJSON(t, w, &v)
			if v.RegisteredBy != "bank ICBC-JX" || v.TreatmentCity != "shanghai" || v.ValidUntil != "2026-06-30" {
				t.Errorf("registration %+v", v)
			}
			return w
		}},
		statusCase{name: "the same again", status: 200, run: func(t *testing.T, e *env) *httptest.ResponseRecorder {
			bankReg(icbcKey, medCard, byBank)(t, e)
			return bankReg(icbcKey, medCard, byBank)(t, e)
		}},
		statusCase{name: "another end", status: 409, code: ECONFLICT, message: "registration_conflict", run: func(t *testing.T, e *env) *httptest.ResponseRecorder {
			bankReg(icbcKey, medCard, byBank)(t, e)
			return bankReg(icbcKey, medCard, `{"treatment_city":"上海","valid_from":"2026-03-10"}`)(t, e)
		}},
		statusCase{name: "another bank's card", status: 404, code: ENOTFOUND, message: "unknown_card", run: bankReg(abcKey, medCard, byBank)},
		statusCase{name: "who registers is the bank", status: 400, code: EINVALID, message: `unknown field "registered_by"`,
			run: bankReg(icbcKey, medCard, `{"treatment_city":"上海","valid_from":"2026-03-10","registered_by":"x"}`)},
		statusCase{name: "no day", status: 400, code: EINVALID, message: "valid_from: missing", run: bankReg(icbcKey, medCard, `{"treatment_city":"上海"}`)},
		statusCase{name: "too large", status: 413, code: ETOOLARGE,
			run: bankReg(icbcKey, medCard, `{"treatment_city":"`+strings.Repeat("a", maxRequestBytes)+`"}`)},
		statusCase{name: "no key", status: 401, code: EUNAUTHORIZED,
			run: send(request{method: "POST", path: "/v1/bank/cards/" + medCard + "/medical-registrations", body: byBank, auth: "-"})},
		statusCase{name: "the admin token is not a bank key", status: 403, code: EFORBIDDEN,
			run: send(request{method: "POST", path: "/v1/bank/cards/" + medCard + "/medical-registrations", body: byBank})},
		statusCase{name: "store broken", status: 500, code: EINTERNAL, run: medFailing("Register", errBroken, bankReg(icbcKey, medCard, byBank))},
		statusCase{name: "key lookup busy", status: 503, code: EUNAVAILABLE, run: medFailing("BankByKey", busy, bankReg(icbcKey, medCard, byBank))},
	)
	return cs
}

// TestMedicalReceipt checks a receipt and a quote field by field against the split the policy
// makes, through the fake store.
func TestMedicalReceipt(t *testing.T) {
	e := newEnv(t)
	w := e.do(t, medRequest("POST", "/v1/medical/quotes", medBasket("", medCard, "outpatient", "A:1200.00", "B:300.00", "C:20.00"), medHospitalKey))
	if w.Code != http.StatusOK {
		t.Fatalf("quote: %d %s", w.Code, w.Body.String())
	}
	var q medicalQuoteView
	decodeStrictly(t, w, &q)
	// B300: 30 self-pay; eligible 1470: deductible 1000; 60% of 470 = 282 to the fund; the
	// cardholder's 1218 paid 500 by the personal account; 718 + the class C 20 in cash.
	if q.Split.Total != "1520.00" || q.Split.Fund != "282.00" || q.Split.PersonalAccount != "500.00" || q.Split.Cash != "738.00" ||
		q.Split.Breakdown.ClassBSelfPay != "30.00" || q.Split.Breakdown.Deductible != "1000.00" || q.Split.Breakdown.CoPayment != "188.00" ||
		q.Policy != "jiaxing-2026" || q.Tier != 3 || !reflect.DeepEqual(q.AccumulatedAfter.Deductible, []medicalBucketView{{Name: "outpatient", Amount: "1000.00"}}) {
		t.Errorf("quote %+v", q)
	}
	if len(q.Split.Rules) == 0 || q.Split.Rules[0].Step != medical.StepTotal {
		t.Errorf("rules %+v", q.Split.Rules)
	}

	body := medBasket("HIS-1", medCard, "outpatient", "A:1200.00", "B:300.00", "C:20.00")
	w = e.do(t, medRequest("POST", "/v1/medical/settlements", body, medHospitalKey))
	if w.Code != http.StatusCreated || w.Header().Get("Location") != "/v1/medical/settlements/HIS-1" {
		t.Fatalf("settle: %d %s %s", w.Code, w.Header().Get("Location"), w.Body.String())
	}
	var rc medicalReceiptView
	decodeStrictly(t, w, &rc)
	if rc.Status != "settled" || rc.Split.Fund != q.Split.Fund || rc.Split.Cash != q.Split.Cash || rc.PersonalAccountBalanceAfter != "0.00" ||
		rc.FundsAvailableAfter != "1262.00" || rc.BusinessDay != "2026-03-01" || rc.SettledAt != "2026-03-01T10:00:00+08:00" ||
		len(rc.Items) != 3 || rc.Items[1] != (medicalItemView{Code: "B", NameZH: "乙", NameEN: "class B", Kind: "service", Quantity: 1,
		UnitPrice: "300.00", Amount: "300.00", Class: "B", Covered: "300.00", Cash: "0.00", Note: "class B in the catalogue of jiaxing"}) ||
		rc.Items[2].CashReason != medical.CashClassC || rc.TreatingCity != "jiaxing" || rc.Split.InsuredCity != "jiaxing" || rc.Split.Registered != nil || rc.End != nil {
		t.Errorf("receipt %+v", rc)
	}
	again := e.do(t, medRequest("POST", "/v1/medical/settlements", body, medHospitalKey))
	if again.Code != http.StatusOK || again.Body.String() != w.Body.String() {
		t.Errorf("replay: %d\n%s\nwant\n%s", again.Code, again.Body.String(), w.Body.String())
	}
	w = e.do(t, medRequest("POST", "/v1/medical/settlements/HIS-1/cancel", `{"reason":"wrong patient"}`, medHospitalKey))
	decodeStrictly(t, w, &rc)
	if rc.Status != "cancelled" || rc.End == nil || rc.End.Reason != "wrong patient" || rc.End.PersonalAccountBalanceAfter != "500.00" {
		t.Errorf("cancelled receipt %+v", rc)
	}
}

// TestMedicalDetailCSV exports a day with a settlement and a reversal, and defuses cells that a
// spreadsheet would run as formulas.
func TestMedicalDetailCSV(t *testing.T) {
	e := newEnv(t)
	for _, ref := range []string{"=HYPERLINK(1)", "S-2"} {
		if w := e.do(t, medRequest("POST", "/v1/medical/settlements", medBasket(ref, medCard, "outpatient", "A:100.00"), medHospitalKey)); w.Code != 201 && ref == "S-2" {
			t.Fatalf("settle %s: %d %s", ref, w.Code, w.Body.String())
		}
	}
	// A settlement id is printable ascii: "=HYPERLINK(1)" is one. The fake stores it as sent.
	e.clock.Advance(24 * time.Hour)
	if w := e.do(t, medRequest("POST", "/v1/medical/settlements/S-2/reversal", `{"reason":"refund"}`, medHospitalKey)); w.Code != 200 {
		t.Fatalf("reverse: %d %s", w.Code, w.Body.String())
	}
	w := e.do(t, request{method: "GET", path: "/v1/medical/reconciliation/detail?fund=jiaxing&day=2026-03-01"})
	if w.Code != 200 || w.Header().Get("Content-Type") != "text/csv; charset=utf-8" ||
		w.Header().Get("Content-Disposition") != `attachment; filename=medical-jiaxing-2026-03-01.csv` {
		t.Fatalf("detail: %d %v %s", w.Code, w.Header(), w.Body.String())
	}
	lines := strings.Split(strings.TrimSpace(w.Body.String()), "\n")
	if len(lines) != 3 || lines[0] != strings.Join(detailHeader, ",") {
		t.Fatalf("detail of day 1:\n%s", w.Body.String())
	}
	if !strings.Contains(w.Body.String(), ",'=HYPERLINK(1),") {
		t.Errorf("a formula-like settlement id is not defused:\n%s", w.Body.String())
	}
	w = e.do(t, request{method: "GET", path: "/v1/medical/reconciliation/detail?fund=jiaxing&day=2026-03-02"})
	lines = strings.Split(strings.TrimSpace(w.Body.String()), "\n")
	if len(lines) != 2 || !strings.Contains(lines[1], ",reversal,") || !strings.HasSuffix(lines[1], ",-100.00,0.00,-100.00,0.00,jiaxing,jiaxing,") {
		t.Errorf("detail of day 2:\n%s", w.Body.String())
	}
	// A day without lines is the header alone.
	w = e.do(t, request{method: "GET", path: "/v1/medical/reconciliation/detail?fund=jiaxing&day=2026-02-01"})
	if w.Code != 200 || strings.TrimSpace(w.Body.String()) != strings.Join(detailHeader, ",") {
		t.Errorf("an empty day: %d %q", w.Code, w.Body.String())
	}
}

// TestMedicalDetailCutShort: a failure after the first line cuts the connection rather than end
// a file that looks whole.
func TestMedicalDetailCutShort(t *testing.T) {
	e := newEnv(t)
	if w := e.do(t, medRequest("POST", "/v1/medical/settlements", medBasket("S-1", medCard, "outpatient", "A:100.00"), medHospitalKey)); w.Code != 201 {
		t.Fatal(w.Body.String())
	}
	f := medFake(e)
	srv := NewServer(Config{Store: e.store, Broker: pinger(pingOK), Tokenizer: testTokenizer(t), AdminToken: testAdminToken,
		Now: e.clock.Now, Features: []Feature{NewMedical(failAfterFirst{f})}, Log: slog.New(slog.NewJSONHandler(e.log, nil))})
	defer func() {
		if p := recover(); p != http.ErrAbortHandler {
			t.Errorf("recovered %v, want http.ErrAbortHandler", p)
		}
	}()
	srv.Handler().ServeHTTP(httptest.NewRecorder(), authed(httptest.NewRequest("GET", "/v1/medical/reconciliation/detail?fund=jiaxing&day=2026-03-01", nil)))
	t.Error("the handler returned normally")
}

func authed(r *http.Request) *http.Request {
	r.Header.Set("Authorization", "Bearer "+testAdminToken)
	return r
}

// failAfterFirst fails a detail export after its first line.
type failAfterFirst struct{ *fakeMedical }

func (f failAfterFirst) Detail(ctx context.Context, fund string, day events.Date, fn func(medical.DetailLine) error) error {
	err := f.fakeMedical.Detail(ctx, fund, day, fn)
	if err != nil {
		return err
	}
	return errBroken
}

func TestMedicalCardYear(t *testing.T) {
	e := newEnv(t)
	e.do(t, medRequest("POST", "/v1/medical/settlements", medBasket("S-1", medCard, "outpatient", "A:1500.00"), medHospitalKey))
	w := e.do(t, request{method: "GET", path: "/v1/medical/cards/" + medCard})
	var v medicalCardView
	decodeStrictly(t, w, &v)
	want := medicalCardView{CardToken: medCard, Fund: "jiaxing", Year: 2026, Policy: "jiaxing-2026", PersonalAccountBalance: "0.00",
		Deductibles: []medicalLimitView{{Name: "inpatient", Scope: "visit", Used: "0.00"}, {Name: "outpatient", Scope: "year", Used: "1000.00", Limit: "1000.00"}},
		FundCaps:    []medicalLimitView{{Name: "outpatient", Used: "300.00", Limit: "8000.00"}, {Name: "total", Used: "300.00", Limit: "400000.00"}}}
	if !reflect.DeepEqual(v, want) {
		t.Errorf("card year\n got %+v\nwant %+v", v, want)
	}
	// A year without a policy lists what was accumulated (nothing here), without limits.
	w = e.do(t, request{method: "GET", path: "/v1/medical/cards/" + medCard + "?year=2024"})
	var old medicalCardView
	decodeStrictly(t, w, &old)
	if old.Policy != "" || old.Year != 2024 || len(old.Deductibles) != 0 || len(old.FundCaps) != 0 {
		t.Errorf("2024 %+v", old)
	}
}

// TestMedicalNoPersonalDataInLogs: bodies of medical requests (card tokens, items) never reach
// the access log, which keeps the route pattern only.
func TestMedicalNoPersonalDataInLogs(t *testing.T) {
	e := newEnv(t)
	e.do(t, medRequest("POST", "/v1/medical/settlements", medBasket("S-1", medCard, "outpatient", "A:1500.00"), medHospitalKey))
	e.do(t, request{method: "GET", path: "/v1/medical/cards/" + medCard})
	for _, s := range []string{medCard, medHospitalKey, "1500.00"} {
		if strings.Contains(e.log.String(), s) {
			t.Errorf("the log holds %q:\n%s", s, e.log.String())
		}
	}
}

// TestSettlementLocationIsEscaped: a settlement id is one path segment of its Location, whatever
// it holds, and the Location reads the settlement back; "." and ".." cannot be one.
func TestSettlementLocationIsEscaped(t *testing.T) {
	e := newEnv(t)
	const ref = "../../etc/passwd?x#y"
	w := e.do(t, medRequest("POST", "/v1/medical/settlements", medBasket(ref, medCard, "outpatient", "A:10.00"), medHospitalKey))
	if w.Code != http.StatusCreated {
		t.Fatalf("settle: %d %s", w.Code, w.Body.String())
	}
	loc := w.Header().Get("Location")
	if want := "/v1/medical/settlements/..%2F..%2Fetc%2Fpasswd%3Fx%23y"; loc != want {
		t.Fatalf("Location %q, want %q", loc, want)
	}
	r := e.do(t, medRequest("GET", loc, "", medHospitalKey))
	var rc medicalReceiptView
	decodeStrictly(t, r, &rc)
	if r.Code != http.StatusOK || rc.SettlementID != ref {
		t.Errorf("GET Location: %d %s", r.Code, r.Body.String())
	}
	for _, dots := range []string{".", ".."} {
		w := e.do(t, medRequest("POST", "/v1/medical/settlements", medBasket(dots, medCard, "outpatient", "A:10.00"), medHospitalKey))
		if w.Code != http.StatusBadRequest || !strings.HasPrefix(errorOf(t, w).Message, "settlement_id: ") {
			t.Errorf("settlement id %q: %d %s", dots, w.Code, w.Body.String())
		}
	}
}

// TestQuoteShowsNoBalance: any institution may quote for any card, so a quote gives the split and
// none of the card's balances, nor whether its funds cover the cash part.
func TestQuoteShowsNoBalance(t *testing.T) {
	e := newEnv(t)
	w := e.do(t, medRequest("POST", "/v1/medical/quotes", medBasket("", medCard, "outpatient", "A:1200.00", "C:20.00"), medHospitalKey))
	if w.Code != http.StatusOK {
		t.Fatalf("quote: %d %s", w.Code, w.Body.String())
	}
	var fields map[string]any
	decodeJSON(t, w, &fields)
	for _, f := range []string{"funds_available", "personal_account_available", "funds_cover_cash"} {
		if _, ok := fields[f]; ok {
			t.Errorf("the quote shows %s: %s", f, w.Body.String())
		}
	}
	if _, ok := fields["split"]; !ok {
		t.Errorf("the quote has no split: %s", w.Body.String())
	}
	if strings.Contains(w.Body.String(), "2000.00") { // the card's funds in the fake store
		t.Errorf("the quote repeats the card's funds: %s", w.Body.String())
	}
}

// TestUnknownQueryParametersAreNotEchoed: an unknown query parameter is named only when it looks
// like a parameter's name; one that may be a personal number is described, not repeated.
func TestUnknownQueryParametersAreNotEchoed(t *testing.T) {
	e := newEnv(t)
	for path, named := range map[string]bool{
		"/v1/medical/reconciliation?fund=jiaxing&day=2026-03-01&institution=H1":    true,
		"/v1/medical/reconciliation?fund=jiaxing&day=2026-03-01&" + testPAN + "=1": false,
		"/v1/medical/cards/" + medCard + "?years=2026":                             true,
		"/v1/medical/cards/" + medCard + "?" + testPassport + "=1":                 false,
	} {
		w := e.do(t, request{method: "GET", path: path})
		msg := errorOf(t, w).Message
		if w.Code != http.StatusBadRequest || !strings.HasPrefix(msg, "unknown query parameter") {
			t.Errorf("%s: %d %s", path, w.Code, w.Body.String())
		}
		if strings.Contains(msg, testPAN) || strings.Contains(msg, testPassport) {
			t.Errorf("%s: the message repeats a personal number: %q", path, msg)
		}
		if named != strings.Contains(msg, `"`) {
			t.Errorf("%s: %q names the parameter: %v, want %v", path, msg, !named, named)
		}
	}
}
