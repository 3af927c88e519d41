package postgres

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/shopspring/decimal"

	"github.com/joinincard/engine/cards"
	"github.com/joinincard/engine/cities"
	"github.com/joinincard/engine/clearing"
	"github.com/joinincard/engine/events"
	"github.com/joinincard/engine/ledger"
	"github.com/joinincard/engine/medical"
)

// Medical keeps medical settlements in the ledger's database: the designated institutions, each
// settlement with its three transfers, its cancellation or reversal, the cardholders' yearly
// accumulators, and the fund's reconciliation. A settlement, a cancellation or a reversal is one
// database transaction: its transfers as one linked group, its record and its accumulators commit
// together or not at all. It is safe for concurrent use.
type Medical struct {
	store    *Store
	policies func() *medical.Policies
	// catalogues classify each bill by the treating city's catalogue.
	catalogues func() (*medical.Catalogues, error)
}

// NewMedical returns the medical store over s, settling under policies and classifying bills by
// the sample catalogues built in (WithCatalogues changes them).
func NewMedical(s *Store, policies *medical.Policies) *Medical {
	return &Medical{store: s, policies: func() *medical.Policies { return policies }, catalogues: sampleCatalogues}
}

// NewMedicalLive returns the medical store over s, settling under the policies policies returns
// when each bill is settled: the versions uploaded while the engine runs take effect at once.
// It classifies bills by the sample catalogues built in; NewMedicalTariffs takes both from the
// loaded tariffs.
func NewMedicalLive(s *Store, policies func() *medical.Policies) *Medical {
	return &Medical{store: s, policies: policies, catalogues: sampleCatalogues}
}

// maxSettlementRefBytes bounds an institution's settlement id, as the event schema bounds an
// identifier: hospital information systems use ids of 20 to 40 characters.
const maxSettlementRefBytes = 64

// RegisterInstitution gives a registered merchant its medical attributes (kind, tier, city) and an
// API key, of which the store keeps the SHA-256 only. Registering it again with the same attributes
// changes nothing, the key included, and reports created false; with other attributes it is
// refused (institution_conflict). A city the city list does not know is refused (unknown_city). A
// merchant not registered as a party is refused (unknown_merchant); one registered with a category and a city is refused in another city
// (city_mismatch) or as a kind its category is not (merchant_category).
func (m *Medical) RegisterInstitution(ctx context.Context, in medical.Institution, keyHash [32]byte) (medical.Institution, bool, error) {
	if err := in.Validate(); err != nil {
		return in, false, fmt.Errorf("%w: %w", medical.ErrInvalid, err)
	}
	if _, err := medical.KnownTreatmentCity(in.City); err != nil {
		return in, false, err
	}
	in.Account = clearing.PartyAccount(clearing.PartyMerchant, in.ID)
	var created bool
	err := m.store.InTx(ctx, nil, func(ctx context.Context, tx *Tx) error {
		created = false
		var n int
		if err := tx.QueryRow(ctx, `SELECT count(*) FROM parties WHERE account_id = $1`, [16]byte(in.Account)).Scan(&n); err != nil {
			return fmt.Errorf("read merchant: %w", err)
		}
		if n == 0 {
			return medical.Refuse(medical.ReasonUnknownMerchant, "merchant %q is not registered: register it as a party of kind merchant first", in.ID)
		}
		// A merchant registered with its category and city (POST /v1/merchants) is designated
		// only as what it is; one known only as a party has neither to contradict.
		var mcc, city string
		err := tx.QueryRow(ctx, `SELECT mcc, city FROM merchants WHERE merchant_id = $1`, in.ID).Scan(&mcc, &city)
		switch {
		case errors.Is(err, pgx.ErrNoRows):
		case err != nil:
			return fmt.Errorf("read merchant profile: %w", err)
		default:
			if err := in.CheckMerchant(mcc, city); err != nil {
				return err
			}
		}
		now := m.store.Now().UTC()
		tag, err := tx.Exec(ctx, `INSERT INTO medical_institutions (merchant_id, account_id, kind, tier, city, key_hash, created_at, key_issued_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $7) ON CONFLICT (merchant_id) DO NOTHING`,
			in.ID, [16]byte(in.Account), string(in.Kind), int32(in.Tier), in.City, keyHash[:], now)
		if err != nil {
			return fmt.Errorf("insert institution: %w", err)
		}
		if tag.RowsAffected() == 1 {
			created = true
			return nil
		}
		prior, err := readInstitution(ctx, tx, `merchant_id = $1`, in.ID)
		if err != nil {
			return err
		}
		if prior.Kind != in.Kind || prior.Tier != in.Tier || prior.City != in.City {
			return medical.Refuse(medical.ReasonInstitutionConflict, "institution %q is registered as a tier %d %s in %s",
				in.ID, prior.Tier, prior.Kind, prior.City)
		}
		return nil
	})
	return in, created, err
}

// RotateInstitutionKey replaces an institution's API key: the old one stops working at once.
func (m *Medical) RotateInstitutionKey(ctx context.Context, merchantID string, keyHash [32]byte) (medical.Institution, error) {
	tag, err := m.store.pool.Exec(ctx, `UPDATE medical_institutions SET key_hash = $2, key_issued_at = $3 WHERE merchant_id = $1`,
		merchantID, keyHash[:], m.store.Now().UTC())
	if err != nil {
		return medical.Institution{}, fmt.Errorf("rotate institution key: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return medical.Institution{}, medical.Refuse(medical.ReasonUnknownInstitution, "no institution %q", merchantID)
	}
	return readInstitution(ctx, m.store.pool, `merchant_id = $1`, merchantID)
}

// InstitutionByKey returns the institution whose API key hashes to keyHash, or an error wrapping
// ErrNotFound.
func (m *Medical) InstitutionByKey(ctx context.Context, keyHash [32]byte) (medical.Institution, error) {
	return readInstitution(ctx, m.store.pool, `key_hash = $1`, keyHash[:])
}

// querier is what reads need: a transaction or the pool.
type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

func readInstitution(ctx context.Context, q querier, where string, arg any) (medical.Institution, error) {
	var (
		in      medical.Institution
		kind    string
		tier    int32
		account [16]byte
	)
	err := q.QueryRow(ctx, `SELECT merchant_id, account_id, kind, tier, city FROM medical_institutions WHERE `+where, arg).
		Scan(&in.ID, &account, &kind, &tier, &in.City)
	if errors.Is(err, pgx.ErrNoRows) {
		return in, fmt.Errorf("institution: %w", ErrNotFound)
	}
	if err != nil {
		return in, fmt.Errorf("read institution: %w", err)
	}
	in.Kind, in.Tier, in.Account = medical.InstitutionKind(kind), medical.Tier(tier), ledger.ID(account)
	return in, nil
}

// prepared is what a quote or a settlement read, and the split it worked out.
type prepared struct {
	card       *cards.Card
	policy     *medical.Policy
	day        events.Date
	acc        medical.Accumulators
	accVersion int64
	personal   ledger.Account
	funds      ledger.Account
	split      medical.Split
	class      medical.Classification
}

// prepare reads what splitting bill b for the card that token names needs, at instant now, and
// works out the split.
func (m *Medical) prepare(ctx context.Context, tx pgx.Tx, in medical.Institution, token string, b medical.Bill, now time.Time) (*prepared, error) {
	if !in.Kind.Allows(b.VisitKind) {
		return nil, medical.Refuse(medical.ReasonVisitKindNotAllowed, "a %s does not settle %s visits", in.Kind, b.VisitKind)
	}
	card, err := readCard(ctx, tx, token)
	if err != nil {
		return nil, err
	}
	return m.prepareCard(ctx, tx, in, card, b, now)
}

// lockCardAccounts locks the card's two accounts, so that settlements of one card queue: each
// reads the settlement ids, the accumulators and the balances the previous one left.
func lockCardAccounts(ctx context.Context, tx pgx.Tx, card *cards.Card) error {
	ids := []ledger.ID{card.MedicalAccount, card.FundsAccount}
	slices.SortFunc(ids, compareID)
	if _, err := tx.Exec(ctx, `SELECT id FROM accounts WHERE id = ANY($1) ORDER BY id FOR UPDATE`, [][16]byte{ids[0], ids[1]}); err != nil {
		return fmt.Errorf("lock card accounts: %w", err)
	}
	return nil
}

// prepareCard is prepare for a card already read, once the visit kind is known to be allowed: the
// insured city's policy in force on the bill's date, the treating city's catalogue classifying
// the bill (with the cardholder's registration when the two cities differ), then the split.
func (m *Medical) prepareCard(ctx context.Context, tx pgx.Tx, in medical.Institution, card *cards.Card, b medical.Bill, now time.Time) (*prepared, error) {
	if st := card.Status(now); st != cards.StatusActive {
		return nil, medical.Refuse(medical.ReasonCardNotActive, "the card is %s", st)
	}
	p := &prepared{card: card, day: medical.DayOf(now)}
	var (
		ok  bool
		err error
	)
	if p.policy, ok = m.policies().On(card.InsuranceCity, p.day); !ok {
		return nil, medical.Refuse(medical.ReasonNoPolicy, "no medical policy of %s, the card's insurance city, in force on %s (treated in %s)",
			card.InsuranceCity, p.day, cities.Canonical(in.City))
	}
	if p.class, err = m.classify(ctx, tx, in, card.Token, card.InsuranceCity, p.policy, b, p.day); err != nil {
		return nil, err
	}
	if p.acc, p.accVersion, err = readAccumulators(ctx, tx, card.Token, card.InsuranceCity, p.day.Year); err != nil {
		return nil, err
	}
	if p.personal, p.funds, err = readCardAccounts(ctx, tx, card); err != nil {
		return nil, err
	}
	if p.split, err = p.policy.Split(p.class.Basket, in.Tier, p.acc, p.personal.Available()); err != nil {
		return nil, err
	}
	return p, nil
}

func readCard(ctx context.Context, q querier, token string) (*cards.Card, error) {
	rows, err := q.Query(ctx, `SELECT `+cardColumns+` FROM card_tokens t JOIN cards c ON c.card_token = t.card_token
		WHERE t.token = $1`, token)
	if err != nil {
		return nil, fmt.Errorf("read card: %w", err)
	}
	defer rows.Close()
	if !rows.Next() {
		if err := rows.Err(); err != nil {
			return nil, fmt.Errorf("read card: %w", err)
		}
		return nil, medical.Refuse(medical.ReasonUnknownCard, "no card has this token")
	}
	return scanCard(rows)
}

// readCardAccounts reads the card's personal medical account and funds account with their
// current balances.
func readCardAccounts(ctx context.Context, tx pgx.Tx, card *cards.Card) (personal, funds ledger.Account, err error) {
	found := map[ledger.ID]ledger.Account{}
	err = readAccounts(ctx, tx, []uuid.UUID{uuid.UUID(card.MedicalAccount), uuid.UUID(card.FundsAccount)}, nil,
		func(e cachedAccount) { found[e.account.ID] = e.account })
	if err != nil {
		return personal, funds, err
	}
	personal, okP := found[card.MedicalAccount]
	funds, okF := found[card.FundsAccount]
	if !okP || !okF {
		return personal, funds, fmt.Errorf("card %s: its accounts are missing", card.Token)
	}
	return personal, funds, nil
}

func readAccumulators(ctx context.Context, q querier, token, city string, year int) (medical.Accumulators, int64, error) {
	var (
		version int64
		raw     []byte
		acc     medical.Accumulators
	)
	err := q.QueryRow(ctx, `SELECT version, amounts FROM medical_accumulators
		WHERE card_token = $1 AND city = $2 AND year = $3 ORDER BY version DESC LIMIT 1`, token, city, int32(year)).Scan(&version, &raw)
	if errors.Is(err, pgx.ErrNoRows) {
		return medical.Accumulators{}.Clone(), 0, nil
	}
	if err != nil {
		return acc, 0, fmt.Errorf("read accumulators: %w", err)
	}
	if err := json.Unmarshal(raw, &acc); err != nil {
		return acc, 0, fmt.Errorf("read accumulators: %w", err)
	}
	return acc.Clone(), version, nil
}

func writeAccumulators(ctx context.Context, tx pgx.Tx, token, city string, year int, version int64, acc medical.Accumulators,
	settlement uuid.UUID, change string, at time.Time) error {
	raw, err := json.Marshal(acc)
	if err != nil {
		return fmt.Errorf("encode accumulators: %w", err)
	}
	_, err = tx.Exec(ctx, `INSERT INTO medical_accumulators (card_token, city, year, version, amounts, settlement_id, change, ts)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`, token, city, int32(year), version, string(raw), settlement, change, at)
	if err != nil {
		return fmt.Errorf("write accumulators: %w", err)
	}
	return nil
}

// Quote works out the split of bill b for the card that token names at institution in, as a
// settlement would now, and applies nothing.
func (m *Medical) Quote(ctx context.Context, in medical.Institution, token string, b medical.Bill) (medical.Quote, error) {
	var q medical.Quote
	tx, err := m.store.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return q, fmt.Errorf("quote: %w", err)
	}
	// A read-only transaction: the rollback only ends the snapshot.
	defer func() { _ = tx.Rollback(ctx) }()
	p, err := m.prepare(ctx, tx, in, token, b, m.store.Now())
	if err != nil {
		return q, err
	}
	q = medical.Quote{
		CardToken: p.card.Token, Fund: p.card.InsuranceCity, Policy: p.policy, Institution: in, Basket: p.class.Basket,
		Split: p.split, Before: p.acc, TreatingCity: cities.Canonical(in.City), Catalogue: p.class.Catalogue.Version(),
		Lines: p.class.Lines,
	}
	if e := p.class.Basket.Elsewhere; e != nil {
		q.Registered = e.Registered
	}
	return q, nil
}

// requestHash identifies a settlement request: a replay with the same settlement id and another
// card, visit kind or bill lines is refused rather than answered with the first one's receipt.
func requestHash(token string, b medical.Bill) ([]byte, error) {
	raw, err := json.Marshal(struct {
		Card  string
		Visit medical.VisitKind
		Lines []medical.BillLine
	}{token, b.VisitKind, b.Lines})
	if err != nil {
		return nil, fmt.Errorf("hash settlement request: %w", err)
	}
	h := sha256.Sum256(raw)
	return h[:], nil
}

// Settle applies the split of bill b for the card that token names at institution in, under the
// institution's settlement id ref: the fund's part (the card's insurance fund to the institution),
// the personal account's part and the cash part (the card's funds), as one linked group of
// transfers, with the settlement's record and the cardholder's yearly accumulators, in one
// transaction. A cash part the card's funds cannot pay refuses the whole settlement
// (insufficient_funds) and nothing is written: the institution may try the same id again.
//
// The same ref again with the same request answers the first receipt, with replayed true; with
// another request it is refused (settlement_id_reused).
//
// The settlement counts in its fund's business day, which it holds open until it commits. One
// that finds its day reported closed meanwhile runs again on a new reading of the clock, and
// lands in the next day; one whose clock still reads the closed day is refused (day_closed) and
// writes nothing (see holdDay).
func (m *Medical) Settle(ctx context.Context, in medical.Institution, ref, token string, b medical.Bill) (medical.Settlement, bool, error) {
	if err := checkRef(ref); err != nil {
		return medical.Settlement{}, false, err
	}
	if !slices.Contains(medical.VisitKinds(), b.VisitKind) {
		return medical.Settlement{}, false, fmt.Errorf("%w: visit kind %q, want one of %q", medical.ErrInvalid, b.VisitKind, medical.VisitKinds())
	}
	if err := medical.ValidateBill(b.Lines); err != nil {
		return medical.Settlement{}, false, err
	}
	hash, err := requestHash(token, b)
	if err != nil {
		return medical.Settlement{}, false, err
	}
	return m.settle(ctx, in, ref, token, b, hash, nil)
}

// settle is Settle with the request's hash, and after, if not nil, run in the settlement's
// transaction once it is applied (not on a replay): what it refuses rolls the settlement back.
func (m *Medical) settle(ctx context.Context, in medical.Institution, ref, token string, b medical.Bill, hash []byte,
	after func(ctx context.Context, tx *Tx, card *cards.Card, s *medical.Settlement) error) (medical.Settlement, bool, error) {
	var (
		out      medical.Settlement
		replayed bool
		gate     dayGate
	)
	err := m.store.InTx(ctx, nil, func(ctx context.Context, tx *Tx) error {
		replayed = false
		// The settlement id is looked up before anything else and again once the card's accounts
		// are locked: a retry sent while the first request was committing waits for the lock,
		// then finds the first one's settlement and answers it, rather than deciding again on the
		// balances the first one left.
		replay := func() (bool, error) {
			prior, found, err := readSettlement(ctx, tx, in.ID, ref)
			if err != nil || !found {
				return false, err
			}
			if !bytes.Equal(prior.hash, hash) {
				return false, medical.Refuse(medical.ReasonSettlementIDReused, "settlement id %q was used for another request", ref)
			}
			out, replayed = prior.Settlement, true
			return true, nil
		}
		if done, err := replay(); done || err != nil {
			return err
		}
		if !in.Kind.Allows(b.VisitKind) {
			return medical.Refuse(medical.ReasonVisitKindNotAllowed, "a %s does not settle %s visits", in.Kind, b.VisitKind)
		}
		card, err := readCard(ctx, tx, token)
		if err != nil {
			return err
		}
		if err := lockCardAccounts(ctx, tx.Tx, card); err != nil {
			return err
		}
		if done, err := replay(); done || err != nil {
			return err
		}
		now := m.store.Now().UTC().Truncate(time.Microsecond)
		p, err := m.prepareCard(ctx, tx.Tx, in, card, b, now)
		if err != nil {
			return err
		}
		// The settlement, and a final bill's true-up, count in the fund's day: held open until
		// the commit, or run again in the next day if it has been reported closed.
		if err := gate.enter(ctx, tx, card.InsuranceCity, p.day, refuseClosedDay(card.InsuranceCity, p.day)); err != nil {
			return err
		}
		out, err = m.apply(ctx, tx, in, ref, hash, p, now)
		if err == nil && after != nil {
			err = after(ctx, tx, card, &out)
		}
		return err
	})
	return out, replayed, err
}

func checkRef(ref string) error {
	if ref == "" || len(ref) > maxSettlementRefBytes {
		return fmt.Errorf("%w: settlement id must be 1 to %d bytes", medical.ErrInvalid, maxSettlementRefBytes)
	}
	for i := 0; i < len(ref); i++ {
		if ref[i] <= ' ' || ref[i] >= 0x7f {
			return fmt.Errorf("%w: settlement id must be printable ascii without spaces", medical.ErrInvalid)
		}
	}
	return nil
}

// apply writes a prepared settlement: its transfers, its record and its accumulators.
func (m *Medical) apply(ctx context.Context, tx *Tx, in medical.Institution, ref string, hash []byte,
	p *prepared, now time.Time) (medical.Settlement, error) {
	b := p.class.Basket
	id, err := uuid.NewV7()
	if err != nil {
		return medical.Settlement{}, fmt.Errorf("new settlement id: %w", err)
	}
	fundAccount := clearing.PartyAccount(clearing.PartyInsuranceFund, p.card.InsuranceCity)
	legs := []struct {
		amount int64
		debit  ledger.ID
		code   ledger.Code
	}{
		{p.split.Fund, fundAccount, medical.CodeFundPart},
		{p.split.Personal, p.card.MedicalAccount, medical.CodePersonalPart},
		{p.split.Cash, p.card.FundsAccount, medical.CodeCashPart},
	}
	var (
		batch []ledger.Transfer
		ids   [3]*[16]byte // the legs' transfer ids, nil for a part of zero
	)
	for i, leg := range legs {
		if leg.amount == 0 {
			continue
		}
		t := ledger.Transfer{ID: clearing.TransferID(id, now, i), DebitAccountID: leg.debit, CreditAccountID: in.Account,
			Amount: leg.amount, UserData: ledger.ID(id), Code: leg.code, Flags: ledger.Linked}
		ids[i] = nullID(t.ID)
		batch = append(batch, t)
	}
	batch[len(batch)-1].Flags = 0 // the total is positive: at least one leg
	res, err := tx.Apply(ctx, batch)
	if err != nil {
		return medical.Settlement{}, err
	}
	for i, r := range res.Results {
		switch {
		case r == ledger.Created || r == ledger.LinkedEventFailed:
		case r == ledger.InsufficientFunds && batch[i].Code == medical.CodeCashPart:
			return medical.Settlement{}, medical.Refuse(medical.ReasonInsufficientFunds,
				"the card's funds cannot pay the cash part of %s", medical.FormatAmount(p.split.Cash))
		case r == ledger.InsufficientFunds && batch[i].Code == medical.CodePersonalPart:
			// The split read the balance under the card's lock; the ledger read another one (a
			// stale cache entry left by a writer in another process). Run everything again.
			return medical.Settlement{}, conflictError{fmt.Errorf("personal medical account moved under the settlement")}
		default:
			return medical.Settlement{}, fmt.Errorf("settlement transfer %s: %s", batch[i].ID, r)
		}
	}
	personal, funds := p.personal, p.funds
	for _, a := range res.Touched {
		switch a.ID {
		case personal.ID:
			personal = *a
		case funds.ID:
			funds = *a
		}
	}

	items := make([]itemJSON, len(b.Items))
	for i, it := range b.Items {
		items[i] = itemJSON{Code: it.Code, Class: it.Class, Amount: it.Amount, SelfPay: it.SelfPay}
	}
	linesRaw, err := encodeLines(p.class.Lines)
	if err != nil {
		return medical.Settlement{}, err
	}
	registered := b.Elsewhere != nil && b.Elsewhere.Registered
	itemsRaw, err := json.Marshal(items)
	if err != nil {
		return medical.Settlement{}, fmt.Errorf("encode items: %w", err)
	}
	trailRaw, err := json.Marshal(p.split.Rules)
	if err != nil {
		return medical.Settlement{}, fmt.Errorf("encode trail: %w", err)
	}
	deltaRaw, err := json.Marshal(p.split.Delta)
	if err != nil {
		return medical.Settlement{}, fmt.Errorf("encode accumulated: %w", err)
	}
	s := &p.split
	day := time.Date(p.day.Year, p.day.Month, p.day.Day, 0, 0, 0, 0, time.UTC)
	_, err = tx.Exec(ctx, `INSERT INTO medical_settlements (id, institution_id, settlement_ref, request_hash, card_token,
			funds_account_id, medical_account_id, institution_account_id, fund_city, policy_id, policy_name, policy_year,
			visit_kind, tier, business_day, settled_at, total, fund_part, personal_part, cash_part,
			out_of_catalogue, personal_first, class_b_self_pay, deductible, co_payment, over_cap,
			fund_transfer_id, personal_transfer_id, cash_transfer_id, personal_balance_after, funds_available_after,
			items, trail, accumulated, treating_city, registered, catalogue, bill_lines)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20,
			$21, $22, $23, $24, $25, $26, $27, $28, $29, $30, $31, $32, $33, $34, $35, $36, $37, $38)`,
		id, in.ID, ref, hash, p.card.Token, [16]byte(p.card.FundsAccount), [16]byte(p.card.MedicalAccount), [16]byte(in.Account),
		p.card.InsuranceCity, p.policy.ID(), p.policy.Name, int32(p.policy.Year), string(b.VisitKind), int32(in.Tier), day, now,
		s.Total, s.Fund, s.Personal, s.Cash, s.OutOfCatalogue, s.PersonalAccountFirst, s.ClassBSelfPay, s.Deductible,
		s.CoPayment, s.OverCap, ids[0], ids[1], ids[2], personal.Net(), funds.Available(),
		string(itemsRaw), string(trailRaw), string(deltaRaw), cities.Canonical(in.City), registered, p.class.Catalogue.Version(),
		string(linesRaw))
	if err != nil {
		return medical.Settlement{}, fmt.Errorf("write settlement: %w", err)
	}
	err = writeAccumulators(ctx, tx.Tx, p.card.Token, p.card.InsuranceCity, p.day.Year, p.accVersion+1, p.acc.Plus(s.Delta), id, "settled", now)
	if err != nil {
		return medical.Settlement{}, err
	}
	// Read back what was written, so that the first answer and every replay are the same bytes.
	stored, found, err := readSettlement(ctx, tx, in.ID, ref)
	if err != nil {
		return medical.Settlement{}, err
	}
	if !found {
		return medical.Settlement{}, fmt.Errorf("settlement %s vanished within its transaction", id)
	}
	return stored.Settlement, nil
}

// itemJSON is an item as the settlement's record keeps it.
type itemJSON struct {
	Code    string           `json:"code,omitempty"`
	Class   medical.Class    `json:"class"`
	Amount  int64            `json:"amount"`
	SelfPay *decimal.Decimal `json:"self_pay_ratio,omitempty"`
}

// storedSettlement is a settlement as read back, with what only the store needs.
type storedSettlement struct {
	medical.Settlement
	hash                                 []byte
	fundsAccount, medicalAccount, instAc ledger.ID
}

const settlementColumns = `s.id, s.institution_id, s.settlement_ref, s.request_hash, s.card_token, s.funds_account_id,
	s.medical_account_id, s.institution_account_id, s.fund_city, s.policy_id, s.policy_name, s.policy_year, s.visit_kind,
	s.tier, s.business_day, s.settled_at, s.total, s.fund_part, s.personal_part, s.cash_part, s.out_of_catalogue,
	s.personal_first, s.class_b_self_pay, s.deductible, s.co_payment, s.over_cap, s.fund_transfer_id,
	s.personal_transfer_id, s.cash_transfer_id, s.personal_balance_after, s.funds_available_after, s.items, s.trail,
	s.accumulated, e.kind, e.reason, e.business_day, e.ended_at, e.personal_balance_after, e.funds_available_after,
	s.treating_city, s.registered, s.catalogue, s.bill_lines`

// readSettlement reads an institution's settlement by its settlement id, with its end if any.
func readSettlement(ctx context.Context, q querier, institution, ref string) (storedSettlement, bool, error) {
	rows, err := q.Query(ctx, `SELECT `+settlementColumns+` FROM medical_settlements s
		LEFT JOIN medical_settlement_ends e ON e.settlement_id = s.id
		WHERE s.institution_id = $1 AND s.settlement_ref = $2`, institution, ref)
	if err != nil {
		return storedSettlement{}, false, fmt.Errorf("read settlement: %w", err)
	}
	defer rows.Close()
	if !rows.Next() {
		return storedSettlement{}, false, rows.Err()
	}
	s, err := scanSettlement(rows)
	if err != nil {
		return storedSettlement{}, false, fmt.Errorf("read settlement: %w", err)
	}
	rows.Close()
	if err := readAfterSettlement(ctx, q, &s.Settlement); err != nil {
		return storedSettlement{}, false, err
	}
	return s, true, nil
}

func scanSettlement(rows pgx.Rows) (storedSettlement, error) {
	var (
		s                            storedSettlement
		sp                           = &s.Split
		funds, med, inst             [16]byte
		visit                        string
		year, tier                   int32
		day                          time.Time
		fundT, persT, cashT          *[16]byte
		itemsRaw, trailRaw, deltaRaw []byte
		items                        []itemJSON
		endKind, endReason           *string
		endDay, endAt                *time.Time
		endPersonal, endFunds        *int64
		linesRaw                     []byte
	)
	err := rows.Scan(&s.ID, &s.Institution, &s.Ref, &s.hash, &s.CardToken, &funds, &med, &inst, &s.Fund, &s.PolicyID,
		&s.PolicyName, &year, &visit, &tier, &day, &s.SettledAt, &sp.Total, &sp.Fund, &sp.Personal, &sp.Cash,
		&sp.OutOfCatalogue, &sp.PersonalAccountFirst, &sp.ClassBSelfPay, &sp.Deductible, &sp.CoPayment, &sp.OverCap,
		&fundT, &persT, &cashT, &s.PersonalBalanceAfter, &s.FundsAvailableAfter, &itemsRaw, &trailRaw, &deltaRaw,
		&endKind, &endReason, &endDay, &endAt, &endPersonal, &endFunds,
		&s.TreatingCity, &s.Registered, &s.Catalogue, &linesRaw)
	if err != nil {
		return s, err
	}
	if s.Lines, err = decodeLines(linesRaw); err != nil {
		return s, err
	}
	if s.TreatingCity == "" {
		s.TreatingCity = s.Fund // recorded before bills named their treating city: all treated at home
	}
	sp.InsuredCity = s.Fund
	if s.TreatingCity != s.Fund {
		sp.Elsewhere = &medical.Elsewhere{City: s.TreatingCity, Registered: s.Registered}
	}
	if err := json.Unmarshal(itemsRaw, &items); err != nil {
		return s, fmt.Errorf("items: %w", err)
	}
	if err := json.Unmarshal(trailRaw, &sp.Rules); err != nil {
		return s, fmt.Errorf("trail: %w", err)
	}
	if err := json.Unmarshal(deltaRaw, &sp.Delta); err != nil {
		return s, fmt.Errorf("accumulated: %w", err)
	}
	sp.Delta = sp.Delta.Clone()
	s.fundsAccount, s.medicalAccount, s.instAc = ledger.ID(funds), ledger.ID(med), ledger.ID(inst)
	s.PolicyYear, s.VisitKind, s.Tier = int(year), medical.VisitKind(visit), medical.Tier(tier)
	s.Day, s.SettledAt = dateOf(day), s.SettledAt.UTC()
	for _, it := range items {
		s.Items = append(s.Items, medical.Item{Code: it.Code, Class: it.Class, Amount: it.Amount, SelfPay: it.SelfPay})
	}
	for _, x := range []struct {
		src *[16]byte
		dst *ledger.ID
	}{{fundT, &s.FundTransfer}, {persT, &s.PersonalTransfer}, {cashT, &s.CashTransfer}} {
		if x.src != nil {
			*x.dst = ledger.ID(*x.src)
		}
	}
	if endKind != nil {
		s.End = &medical.End{Kind: medical.EndKind(*endKind), Reason: *endReason, Day: dateOf(*endDay), At: endAt.UTC(),
			PersonalBalanceAfter: *endPersonal, FundsAvailableAfter: *endFunds}
	}
	return s, nil
}

func dateOf(t time.Time) events.Date {
	y, m, d := t.Date()
	return events.Date{Year: y, Month: m, Day: d}
}

// Settlement returns an institution's settlement by its settlement id.
func (m *Medical) Settlement(ctx context.Context, in medical.Institution, ref string) (medical.Settlement, error) {
	s, found, err := readSettlement(ctx, m.store.pool, in.ID, ref)
	if err != nil {
		return medical.Settlement{}, err
	}
	if !found {
		return medical.Settlement{}, medical.Refuse(medical.ReasonUnknownSettlement, "no settlement %q of %s", ref, in.ID)
	}
	return s.Settlement, nil
}

// maxEndReasonBytes bounds a cancellation's or reversal's reason: a line of prose.
const maxEndReasonBytes = 256

// End cancels (kind Cancelled) or reverses (kind Reversed) an institution's settlement: every
// part goes back where it came from (a ledger reversal of each transfer, as one linked group) and
// the cardholder's accumulators lose exactly what the settlement added, in one transaction.
//
// A cancellation is for the settlement's own business day, before it closes at midnight in
// Shanghai: the settlement then counts in no day's totals. Once the day has closed, its totals are
// final and only a reversal is possible: it counts, negatively, in the totals of the day it is
// made. Each is refused outside its window (day_closed, day_open); a cancellation that finds its
// day reported closed while it waited for the card is refused day_closed, and a reversal so
// delayed counts in the next day (see holdDay). Asking again for the same end
// answers it again, with replayed true; asking for the other is refused. A settlement with refunds
// (settlement_refunded) and a bill of a stay its final bill has trued up (stay_closed) are refused.
func (m *Medical) End(ctx context.Context, in medical.Institution, ref string, kind medical.EndKind, reason string) (medical.Settlement, bool, error) {
	var (
		out      medical.Settlement
		replayed bool
		gate     dayGate
	)
	if kind != medical.Cancelled && kind != medical.Reversed {
		return out, false, fmt.Errorf("%w: end kind %q", medical.ErrInvalid, kind)
	}
	if reason == "" || len(reason) > maxEndReasonBytes {
		return out, false, fmt.Errorf("%w: reason must be 1 to %d bytes", medical.ErrInvalid, maxEndReasonBytes)
	}
	err := m.store.InTx(ctx, nil, func(ctx context.Context, tx *Tx) error {
		replayed = false
		s, found, err := readSettlement(ctx, tx, in.ID, ref)
		if err != nil {
			return err
		}
		if !found {
			return medical.Refuse(medical.ReasonUnknownSettlement, "no settlement %q of %s", ref, in.ID)
		}
		if s.End != nil {
			if s.End.Kind == kind {
				out, replayed = s.Settlement, true
				return nil
			}
			if s.End.Kind == medical.Cancelled {
				return medical.Refuse(medical.ReasonAlreadyCancelled, "settlement %q was cancelled on %s", ref, s.End.Day)
			}
			return medical.Refuse(medical.ReasonAlreadyReversed, "settlement %q was reversed on %s", ref, s.End.Day)
		}
		now := m.store.Now().UTC().Truncate(time.Microsecond)
		today := medical.DayOf(now)
		switch {
		case kind == medical.Cancelled && today != s.Day:
			return medical.Refuse(medical.ReasonDayClosed, "settlement %q belongs to %s, which has closed: reverse it instead", ref, s.Day)
		case kind == medical.Reversed && today == s.Day:
			return medical.Refuse(medical.ReasonDayOpen, "settlement %q belongs to today, which is still open: cancel it instead", ref)
		}
		return m.undo(ctx, tx, &s, kind, reason, now, today, &gate, &out)
	})
	return out, replayed, err
}

// undo writes a settlement's end: the reversal transfers, the end's record and the accumulators.
// The end counts in the fund's day today, which gate holds open until the commit once the card is
// locked: a cancellation whose day has been reported closed meanwhile runs again, and is refused.
func (m *Medical) undo(ctx context.Context, tx *Tx, s *storedSettlement, kind medical.EndKind, reason string,
	now time.Time, today events.Date, gate *dayGate, out *medical.Settlement) error {
	keys := [][16]byte{s.medicalAccount, s.fundsAccount}
	slices.SortFunc(keys, func(a, b [16]byte) int { return bytes.Compare(a[:], b[:]) })
	if _, err := tx.Exec(ctx, `SELECT id FROM accounts WHERE id = ANY($1) ORDER BY id FOR UPDATE`, keys); err != nil {
		return fmt.Errorf("lock card accounts: %w", err)
	}
	refused := refuseClosedDay(s.Fund, today)
	if kind == medical.Cancelled {
		refused = func() error {
			return medical.Refuse(medical.ReasonDayClosed, "settlement %q belongs to %s, which has closed: reverse it instead", s.Ref, s.Day)
		}
	}
	if err := gate.enter(ctx, tx, s.Fund, today, refused); err != nil {
		return err
	}
	// Another end of this settlement may have committed while this one waited for the lock: then
	// run everything again, and find it.
	var ended int
	if err := tx.QueryRow(ctx, `SELECT count(*) FROM medical_settlement_ends WHERE settlement_id = $1`, s.ID).Scan(&ended); err != nil {
		return fmt.Errorf("read settlement end: %w", err)
	}
	if ended > 0 {
		return conflictError{fmt.Errorf("settlement %s ended by a concurrent request", s.ID)}
	}
	if err := checkEndable(ctx, tx, &s.Settlement); err != nil {
		return err
	}
	acc, version, err := readAccumulators(ctx, tx, s.CardToken, s.Fund, s.PolicyYear)
	if err != nil {
		return err
	}
	restored, err := acc.Minus(s.Split.Delta)
	if err != nil {
		return fmt.Errorf("settlement %s: accumulators hold less than it added: %w", s.ID, err)
	}
	endID, err := uuid.NewV7()
	if err != nil {
		return fmt.Errorf("new end id: %w", err)
	}
	code := medical.CodeCancel
	if kind == medical.Reversed {
		code = medical.CodeReversal
	}
	legs := []struct {
		transfer ledger.ID
		amount   int64
		payer    ledger.ID
	}{
		{s.FundTransfer, s.Split.Fund, clearing.PartyAccount(clearing.PartyInsuranceFund, s.Fund)},
		{s.PersonalTransfer, s.Split.Personal, s.medicalAccount},
		{s.CashTransfer, s.Split.Cash, s.fundsAccount},
	}
	var batch []ledger.Transfer
	for i, leg := range legs {
		if leg.transfer.IsZero() {
			continue
		}
		batch = append(batch, ledger.Transfer{ID: clearing.TransferID(endID, now, i), Ref: leg.transfer,
			DebitAccountID: s.instAc, CreditAccountID: leg.payer, Amount: leg.amount,
			UserData: ledger.ID(s.ID), Code: code, Flags: ledger.Reversal | ledger.Linked})
	}
	batch[len(batch)-1].Flags = ledger.Reversal
	res, err := tx.Apply(ctx, batch)
	if err != nil {
		return err
	}
	for i, r := range res.Results {
		if r != ledger.Created {
			return fmt.Errorf("%s of settlement %s: transfer %s: %s", kind, s.ID, batch[i].ID, r)
		}
	}
	personal, funds, err := balancesAfter(ctx, tx, res.Touched, s.medicalAccount, s.fundsAccount)
	if err != nil {
		return err
	}
	day := time.Date(today.Year, today.Month, today.Day, 0, 0, 0, 0, time.UTC)
	_, err = tx.Exec(ctx, `INSERT INTO medical_settlement_ends (settlement_id, kind, reason, fund_city, institution_id,
			business_day, ended_at, personal_balance_after, funds_available_after)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
		s.ID, string(kind), reason, s.Fund, s.Institution, day, now, personal.Net(), funds.Available())
	if err != nil {
		return fmt.Errorf("write settlement end: %w", err)
	}
	if err := writeAccumulators(ctx, tx.Tx, s.CardToken, s.Fund, s.PolicyYear, version+1, restored, s.ID, string(kind), now); err != nil {
		return err
	}
	stored, found, err := readSettlement(ctx, tx, s.Institution, s.Ref)
	if err != nil {
		return err
	}
	if !found {
		return fmt.Errorf("settlement %s vanished within its transaction", s.ID)
	}
	*out = stored.Settlement
	return nil
}

// balancesAfter returns the two card accounts as a batch left them: from the batch's touched
// accounts, or read for one it did not touch.
func balancesAfter(ctx context.Context, tx *Tx, touched []*ledger.Account, personalID, fundsID ledger.ID) (personal, funds ledger.Account, err error) {
	got := map[ledger.ID]ledger.Account{}
	for _, a := range touched {
		got[a.ID] = *a
	}
	var missing []uuid.UUID
	for _, id := range []ledger.ID{personalID, fundsID} {
		if _, ok := got[id]; !ok {
			missing = append(missing, uuid.UUID(id))
		}
	}
	if len(missing) > 0 {
		if err := readAccounts(ctx, tx.Tx, missing, nil, func(e cachedAccount) { got[e.account.ID] = e.account }); err != nil {
			return personal, funds, err
		}
	}
	return got[personalID], got[fundsID], nil
}

// fundExists reports whether fund names a registered insurance fund.
func fundExists(ctx context.Context, q querier, fund string) error {
	var n int
	err := q.QueryRow(ctx, `SELECT count(*) FROM parties WHERE account_id = $1`,
		[16]byte(clearing.PartyAccount(clearing.PartyInsuranceFund, fund))).Scan(&n)
	if err != nil {
		return fmt.Errorf("read fund: %w", err)
	}
	if n == 0 {
		return medical.Refuse(medical.ReasonUnknownFund, "no insurance fund %q", fund)
	}
	return nil
}

// Reconciliation sums a fund's business day by institution: the day's settlements that were not
// cancelled, less the reversals and refunds made that day, with the adjustments of the stays trued
// up that day, and the count of each and of the cancelled ones.
// It reads one snapshot. A day still open (Closed false) may change until midnight in Shanghai;
// a day before today is first closed (closeDay): it waits for the writes of the day in flight,
// and its totals never change after.
func (m *Medical) Reconciliation(ctx context.Context, fund string, day events.Date) (medical.DayTotals, error) {
	out := medical.DayTotals{Fund: fund, Day: day}
	if err := fundExists(ctx, m.store.pool, fund); err != nil {
		return out, err
	}
	closed, err := m.reportDay(ctx, fund, day)
	if err != nil {
		return out, err
	}
	tx, err := m.store.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return out, fmt.Errorf("reconciliation: %w", err)
	}
	// A read-only transaction: the rollback only ends the snapshot.
	defer func() { _ = tx.Rollback(ctx) }()
	date := time.Date(day.Year, day.Month, day.Day, 0, 0, 0, 0, time.UTC)
	byInst := map[string]*medical.Totals{}
	at := func(id string) *medical.Totals {
		if byInst[id] == nil {
			byInst[id] = &medical.Totals{}
		}
		return byInst[id]
	}
	// sum() of BIGINT is NUMERIC: scanning into int64 fails loudly on overflow instead of wrapping.
	rows, err := tx.Query(ctx, `SELECT s.institution_id,
			count(*) FILTER (WHERE e.kind IS DISTINCT FROM 'cancelled'),
			count(*) FILTER (WHERE e.kind = 'cancelled'),
			COALESCE(sum(s.total) FILTER (WHERE e.kind IS DISTINCT FROM 'cancelled'), 0),
			COALESCE(sum(s.fund_part) FILTER (WHERE e.kind IS DISTINCT FROM 'cancelled'), 0),
			COALESCE(sum(s.personal_part) FILTER (WHERE e.kind IS DISTINCT FROM 'cancelled'), 0),
			COALESCE(sum(s.cash_part) FILTER (WHERE e.kind IS DISTINCT FROM 'cancelled'), 0)
		FROM medical_settlements s LEFT JOIN medical_settlement_ends e ON e.settlement_id = s.id
		WHERE s.fund_city = $1 AND s.business_day = $2
		GROUP BY s.institution_id`, fund, date)
	if err != nil {
		return out, fmt.Errorf("reconciliation: %w", err)
	}
	for rows.Next() {
		var (
			id string
			t  medical.Totals
		)
		if err := rows.Scan(&id, &t.Settlements, &t.Cancelled, &t.Total, &t.Fund, &t.Personal, &t.Cash); err != nil {
			rows.Close()
			return out, fmt.Errorf("reconciliation: %w", err)
		}
		at(id).Add(t)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return out, fmt.Errorf("reconciliation: %w", err)
	}
	rows, err = tx.Query(ctx, `SELECT e.institution_id, count(*),
			sum(s.total), sum(s.fund_part), sum(s.personal_part), sum(s.cash_part)
		FROM medical_settlement_ends e JOIN medical_settlements s ON s.id = e.settlement_id
		WHERE e.kind = 'reversed' AND e.fund_city = $1 AND e.business_day = $2
		GROUP BY e.institution_id`, fund, date)
	if err != nil {
		return out, fmt.Errorf("reconciliation: %w", err)
	}
	for rows.Next() {
		var (
			id string
			t  medical.Totals
		)
		if err := rows.Scan(&id, &t.Reversals, &t.Total, &t.Fund, &t.Personal, &t.Cash); err != nil {
			rows.Close()
			return out, fmt.Errorf("reconciliation: %w", err)
		}
		t.Total, t.Fund, t.Personal, t.Cash = -t.Total, -t.Fund, -t.Personal, -t.Cash
		at(id).Add(t)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return out, fmt.Errorf("reconciliation: %w", err)
	}
	if err := addRefundTotals(ctx, tx, fund, date, at); err != nil {
		return out, err
	}
	ids := make([]string, 0, len(byInst))
	for id := range byInst {
		ids = append(ids, id)
	}
	cityOf, err := institutionCities(ctx, tx, ids)
	if err != nil {
		return out, err
	}
	for id, t := range byInst {
		out.Institutions = append(out.Institutions, medical.InstitutionTotals{Institution: id, City: cityOf[id], Totals: *t})
		out.All.Add(*t)
	}
	slices.SortFunc(out.Institutions, func(a, b medical.InstitutionTotals) int {
		switch {
		case a.Institution < b.Institution:
			return -1
		case a.Institution > b.Institution:
			return 1
		}
		return 0
	})
	out.Closed = closed
	return out, nil
}

// dayAfter reports whether a is after b.
func dayAfter(a, b events.Date) bool {
	if a.Year != b.Year {
		return a.Year > b.Year
	}
	if a.Month != b.Month {
		return a.Month > b.Month
	}
	return a.Day > b.Day
}

// Detail streams a fund's business day line by line to fn, in time order: each settlement of the
// day that was not cancelled, each reversal and refund made that day with its amounts negative,
// and each stay's true-up made that day. The lines
// sum to the day's Reconciliation; a day before today is first closed, as Reconciliation closes
// it. Memory stays constant however long the day: rows go to fn as they arrive. fn's error stops
// the export and is returned.
func (m *Medical) Detail(ctx context.Context, fund string, day events.Date, fn func(medical.DetailLine) error) error {
	if err := fundExists(ctx, m.store.pool, fund); err != nil {
		return err
	}
	if _, err := m.reportDay(ctx, fund, day); err != nil {
		return err
	}
	date := time.Date(day.Year, day.Month, day.Day, 0, 0, 0, 0, time.UTC)
	rows, err := m.store.pool.Query(ctx, `
		SELECT 'settlement', s.settled_at, s.institution_id, s.settlement_ref, s.id, s.card_token, s.visit_kind, s.tier,
			s.policy_id, s.total, s.fund_part, s.personal_part, s.cash_part, s.treating_city, s.registered
		FROM medical_settlements s LEFT JOIN medical_settlement_ends e ON e.settlement_id = s.id
		WHERE s.fund_city = $1 AND s.business_day = $2 AND e.kind IS DISTINCT FROM 'cancelled'
		UNION ALL
		SELECT 'reversal', e.ended_at, s.institution_id, s.settlement_ref, s.id, s.card_token, s.visit_kind, s.tier,
			s.policy_id, -s.total, -s.fund_part, -s.personal_part, -s.cash_part, s.treating_city, s.registered
		FROM medical_settlement_ends e JOIN medical_settlements s ON s.id = e.settlement_id
		WHERE e.kind = 'reversed' AND e.fund_city = $1 AND e.business_day = $2
		`+detailRefundLines+`
		ORDER BY 2, 5, 1`, fund, date)
	if err != nil {
		return fmt.Errorf("detail: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			l     medical.DetailLine
			visit string
			tier  int32
		)
		if err := rows.Scan(&l.Kind, &l.At, &l.Institution, &l.Ref, &l.ID, &l.CardToken, &visit, &tier, &l.PolicyID,
			&l.Total, &l.Fund, &l.Personal, &l.Cash, &l.TreatingCity, &l.Registered); err != nil {
			return fmt.Errorf("detail: %w", err)
		}
		if l.TreatingCity == "" {
			l.TreatingCity = fund // recorded before bills named their treating city: all treated at home
		}
		l.At, l.VisitKind, l.Tier = l.At.UTC(), medical.VisitKind(visit), medical.Tier(tier)
		if err := fn(l); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("detail: %w", err)
	}
	return nil
}

// CardYear returns the medical year of the card that token names under its insurance city's
// policy: its accumulators and its personal account's balance.
func (m *Medical) CardYear(ctx context.Context, token string, year int) (medical.CardYear, error) {
	out := medical.CardYear{Year: year}
	tx, err := m.store.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return out, fmt.Errorf("card year: %w", err)
	}
	// A read-only transaction: the rollback only ends the snapshot.
	defer func() { _ = tx.Rollback(ctx) }()
	card, err := readCard(ctx, tx, token)
	if err != nil {
		return out, err
	}
	out.CardToken, out.Fund = card.Token, card.InsuranceCity
	out.Policy, _ = m.policies().For(card.InsuranceCity, year)
	if out.Accumulators, _, err = readAccumulators(ctx, tx, card.Token, card.InsuranceCity, year); err != nil {
		return out, err
	}
	personal, _, err := readCardAccounts(ctx, tx, card)
	if err != nil {
		return out, err
	}
	out.PersonalBalance = personal.Net()
	return out, nil
}
