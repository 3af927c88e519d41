package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/shopspring/decimal"

	"github.com/joinincard/engine/cities"
	"github.com/joinincard/engine/events"
	"github.com/joinincard/engine/medical"
)

// sampleCatalogues are the catalogues built into the binary, for a medical store built without
// the loaded tariffs.
var sampleCatalogues = sync.OnceValues(medical.SampleCatalogues)

// NewMedicalTariffs returns the medical store over s, settling under the medical policies and
// classifying bills by the medical catalogues of t as they stand when each bill is settled.
func NewMedicalTariffs(s *Store, t *Tariffs) *Medical {
	m := NewMedicalLive(s, t.MedicalPolicies)
	m.catalogues = func() (*medical.Catalogues, error) { return t.MedicalCatalogues(), nil }
	return m
}

// WithCatalogues makes the store classify bills by the catalogues cs returns instead of the
// samples built in, and returns it.
func (m *Medical) WithCatalogues(cs func() *medical.Catalogues) *Medical {
	m.catalogues = func() (*medical.Catalogues, error) { return cs(), nil }
	return m
}

// classify reads what classifying a bill for a card insured in insured at institution in on day
// needs, and classifies it: the institution's city, refused when the city list does not know it
// (unknown_city: registered before the engine checked), the catalogue of the institution's city in force that day (refused,
// no_catalogue, when there is none) and, for a visit in another city than the insured one, the
// cardholder's registration of it, which the policy weighs (Policy.Where).
func (m *Medical) classify(ctx context.Context, q querier, in medical.Institution, token, insured string, p *medical.Policy,
	b medical.Bill, day events.Date) (medical.Classification, error) {
	cats, err := m.catalogues()
	if err != nil {
		return medical.Classification{}, fmt.Errorf("medical catalogues: %w", err)
	}
	treating, err := medical.KnownTreatmentCity(in.City)
	if err != nil {
		return medical.Classification{}, err
	}
	cat, ok := cats.On(treating, day)
	if !ok {
		return medical.Classification{}, medical.Refuse(medical.ReasonNoCatalogue, "no medical catalogue of %s, where %s treats, in force on %s",
			treating, in.ID, day)
	}
	c, err := cat.Classify(b.VisitKind, b.Lines)
	if err != nil {
		return c, err
	}
	registered := false
	if treating != cities.Canonical(insured) {
		if registered, err = registeredOn(ctx, q, token, treating, day); err != nil {
			return c, err
		}
	}
	c.Basket.Elsewhere, err = p.Where(insured, treating, registered)
	return c, err
}

// registeredOn reports whether the card registered treatment city for a visit on day.
func registeredOn(ctx context.Context, q querier, token, city string, day events.Date) (bool, error) {
	var n int
	err := q.QueryRow(ctx, `SELECT count(*) FROM medical_registrations
		WHERE card_token = $1 AND treatment_city = $2 AND valid_from <= $3 AND (valid_until IS NULL OR valid_until >= $3)`,
		token, city, sqlDate(day)).Scan(&n)
	if err != nil {
		return false, fmt.Errorf("read registrations: %w", err)
	}
	return n > 0, nil
}

func sqlDate(d events.Date) time.Time { return time.Date(d.Year, d.Month, d.Day, 0, 0, 0, 0, time.UTC) }

// Register records a card's registration of a treatment city (any of its names) in advance,
// checked by medical.Registration.Check against the card's insurance city and today in
// Shanghai. The same registration again changes nothing and reports created false; one from the
// same day with another end is refused (registration_conflict): a new period is a new
// registration. A card that does not exist is refused (unknown_card).
func (m *Medical) Register(ctx context.Context, cardToken string, r medical.Registration) (medical.Registration, bool, error) {
	return m.register(ctx, "", cardToken, r)
}

// RegisterForBank is Register asked by a bank for one of its cardholders: a card another bank
// issued is unknown to it (unknown_card), so that a bank learns nothing of other banks' cards.
func (m *Medical) RegisterForBank(ctx context.Context, bank, cardToken string, r medical.Registration) (medical.Registration, bool, error) {
	return m.register(ctx, bank, cardToken, r)
}

// BankByKey finds the bank whose API key (as the settlement API issues them) hashes to keyHash,
// or an error wrapping ErrNotFound.
func (m *Medical) BankByKey(ctx context.Context, keyHash [32]byte) (string, error) {
	return m.store.BankByKey(ctx, keyHash)
}

// register records a registration; bank, when not empty, must have issued the card.
func (m *Medical) register(ctx context.Context, bank, cardToken string, r medical.Registration) (medical.Registration, bool, error) {
	var created bool
	err := m.store.InTx(ctx, nil, func(ctx context.Context, tx *Tx) error {
		created = false
		card, err := readCard(ctx, tx, cardToken)
		var refused *medical.Refusal
		if bank != "" && (errors.As(err, &refused) && refused.Reason == medical.ReasonUnknownCard || err == nil && card.IssuerBank != bank) {
			// A card of another bank and no card at all are one answer: a bank that tries tokens
			// learns nothing of which are other banks' cardholders.
			return medical.Refuse(medical.ReasonUnknownCard, "no card of bank %s has this token", bank)
		}
		if err != nil {
			return err
		}
		r.CardToken = card.Token
		now := m.store.Now().UTC().Truncate(time.Microsecond)
		if err := r.Check(medical.DayOf(now), card.InsuranceCity); err != nil {
			return err
		}
		r.At = now
		var until *time.Time
		if r.Until != (events.Date{}) {
			u := sqlDate(r.Until)
			until = &u
		}
		tag, err := tx.Exec(ctx, `INSERT INTO medical_registrations (card_token, treatment_city, valid_from, valid_until, registered_by, registered_at)
			VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (card_token, treatment_city, valid_from) DO NOTHING`,
			card.Token, r.City, sqlDate(r.From), until, r.By, now)
		if err != nil {
			return fmt.Errorf("insert registration: %w", err)
		}
		if tag.RowsAffected() == 1 {
			created = true
			return nil
		}
		prior, err := readRegistrations(ctx, tx, card.Token, `AND treatment_city = $2 AND valid_from = $3`, r.City, sqlDate(r.From))
		if err != nil {
			return err
		}
		if len(prior) != 1 {
			return fmt.Errorf("registration of %s from %s vanished within its transaction", r.City, r.From)
		}
		if prior[0].Until != r.Until {
			return medical.Refuse(medical.ReasonRegistrationConflict, "the card registered %s from %s until %s already",
				r.City, r.From, untilText(prior[0].Until))
		}
		r = prior[0]
		return nil
	})
	return r, created, err
}

func untilText(d events.Date) string {
	if d == (events.Date{}) {
		return "further notice"
	}
	return d.String()
}

// Registrations lists a card's registrations, by city and first day.
func (m *Medical) Registrations(ctx context.Context, cardToken string) ([]medical.Registration, error) {
	card, err := readCard(ctx, m.store.pool, cardToken)
	if err != nil {
		return nil, err
	}
	return readRegistrations(ctx, m.store.pool, card.Token, "")
}

// maxRegistrationsRead bounds the registrations read for one card: a cardholder registers a
// treatment city a few times a year.
const maxRegistrationsRead = 1000

func readRegistrations(ctx context.Context, q querier, token, where string, args ...any) ([]medical.Registration, error) {
	rows, err := q.Query(ctx, `SELECT card_token, treatment_city, valid_from, valid_until, registered_by, registered_at
		FROM medical_registrations WHERE card_token = $1 `+where+` ORDER BY treatment_city, valid_from LIMIT `+fmt.Sprint(maxRegistrationsRead),
		append([]any{token}, args...)...)
	if err != nil {
		return nil, fmt.Errorf("read registrations: %w", err)
	}
	defer rows.Close()
	var out []medical.Registration
	for rows.Next() {
		var (
			r     medical.Registration
			from  time.Time
			until *time.Time
		)
		if err := rows.Scan(&r.CardToken, &r.City, &from, &until, &r.By, &r.At); err != nil {
			return nil, fmt.Errorf("read registrations: %w", err)
		}
		r.From, r.At = dateOf(from), r.At.UTC()
		if until != nil {
			r.Until = dateOf(*until)
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// lineJSON is a classified bill line as the settlement's record keeps it.
type lineJSON struct {
	Code       string           `json:"code"`
	Quantity   int64            `json:"quantity"`
	UnitPrice  int64            `json:"unit_price"`
	Amount     int64            `json:"amount"`
	Listed     bool             `json:"listed"`
	Kind       medical.ItemKind `json:"kind,omitempty"`
	NameZH     string           `json:"name_zh,omitempty"`
	NameEN     string           `json:"name_en,omitempty"`
	Class      medical.Class    `json:"class,omitempty"`
	SelfPay    *decimal.Decimal `json:"self_pay_ratio,omitempty"`
	Ceiling    int64            `json:"ceiling,omitempty"`
	Covered    int64            `json:"covered"`
	Cash       int64            `json:"cash"`
	CashReason string           `json:"cash_reason,omitempty"`
	Note       string           `json:"note"`
}

func encodeLines(lines []medical.Line) ([]byte, error) {
	out := make([]lineJSON, len(lines))
	for i, l := range lines {
		out[i] = lineJSON{Code: l.Code, Quantity: l.Quantity, UnitPrice: l.UnitPrice, Amount: l.Amount, Listed: l.Listed,
			Kind: l.Kind, NameZH: l.NameZH, NameEN: l.NameEN, Class: l.Class, SelfPay: l.SelfPay, Ceiling: l.Ceiling,
			Covered: l.Covered, Cash: l.Cash, CashReason: l.CashReason, Note: l.Note}
	}
	raw, err := json.Marshal(out)
	if err != nil {
		return nil, fmt.Errorf("encode bill lines: %w", err)
	}
	return raw, nil
}

func decodeLines(raw []byte) ([]medical.Line, error) {
	if raw == nil {
		return nil, nil
	}
	var in []lineJSON
	if err := json.Unmarshal(raw, &in); err != nil {
		return nil, fmt.Errorf("bill lines: %w", err)
	}
	out := make([]medical.Line, len(in))
	for i, l := range in {
		out[i] = medical.Line{BillLine: medical.BillLine{Code: l.Code, Quantity: l.Quantity, UnitPrice: l.UnitPrice}, Amount: l.Amount,
			Listed: l.Listed, Kind: l.Kind, NameZH: l.NameZH, NameEN: l.NameEN, Class: l.Class, SelfPay: l.SelfPay, Ceiling: l.Ceiling,
			Covered: l.Covered, Cash: l.Cash, CashReason: l.CashReason, Note: l.Note}
	}
	return out, nil
}

// institutionCities returns the cities of the institutions ids names, by id.
func institutionCities(ctx context.Context, q querier, ids []string) (map[string]string, error) {
	out := map[string]string{}
	if len(ids) == 0 {
		return out, nil
	}
	rows, err := q.Query(ctx, `SELECT merchant_id, city FROM medical_institutions WHERE merchant_id = ANY($1)`, ids)
	if err != nil {
		return nil, fmt.Errorf("read institution cities: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var id, city string
		if err := rows.Scan(&id, &city); err != nil {
			return nil, fmt.Errorf("read institution cities: %w", err)
		}
		out[id] = cities.Canonical(city)
	}
	return out, rows.Err()
}
