package postgres

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/joinincard/engine/cards"
	"github.com/joinincard/engine/clearing"
	"github.com/joinincard/engine/events"
	"github.com/joinincard/engine/fees"
	"github.com/joinincard/engine/ledger"
	"github.com/joinincard/engine/purchases"
)

// The purchases side of the store: merchants and their API keys, card limits, and the records of
// authorizations, increments, captures, voids and refunds. The writes that move money go through
// Purchases (purchases_batch.go), which commits many merchants' requests in one transaction.

var (
	// ErrMerchantExists is returned when a merchant id is registered again.
	ErrMerchantExists = errors.New("merchant already registered")
	// ErrUnknownBank is returned when a merchant names an acquiring bank, or a statement comes
	// from a bank, that is not registered.
	ErrUnknownBank = errors.New("bank not registered")
	// ErrInvalidMerchant wraps why a merchant's definition is refused.
	ErrInvalidMerchant = errors.New("invalid merchant")
)

// feeIncomeName is the fee income account's name, as every opener of it writes it: opening an
// account again is a no-op only with the same definition.
const feeIncomeName = "merchant fee income"

// feeCatalog is the fee plans built into the binary, read and validated once.
var feeCatalog = sync.OnceValues(fees.Load)

// FeeCatalog returns the fee plans and the foreign-card comparison purchases are priced with
// now: the store's tariffs (LoadTariffs), or the plans built into the binary.
func (p *Purchases) FeeCatalog() *fees.Catalog {
	c, err := p.store.feePlans()
	if err != nil {
		return p.builtIn // loaded when the purchases were made: the error cannot come back
	}
	return c
}

func hasPlanOn(c *fees.Catalog, id string, d events.Date) bool {
	_, ok := c.PlanOn(id, d)
	return ok
}

// purchaseDate is the date a purchase is priced by: its authorization's, in Shanghai.
func purchaseDate(a *purchases.Authorization) events.Date {
	y, m, d := a.CreatedAt.In(cards.Shanghai).Date()
	return events.Date{Year: y, Month: m, Day: d}
}

// RegisterMerchant registers m with the SHA-256 of its API key: the party (kind merchant) and its
// clearing account, the fee income account its fees go to, and the merchant's category, city,
// acquiring bank and fee plan. The acquiring bank must be a registered bank. A merchant id
// registered before is refused with ErrMerchantExists; a party registered before through
// /v1/parties with the same name becomes the merchant. A party designated as a medical
// institution is refused, with a *medical.Refusal, in another city than the institution's
// (city_mismatch) or with a category that is not a medical one of its kind (merchant_category).
func (p *Purchases) RegisterMerchant(ctx context.Context, m purchases.Merchant, keyHash [32]byte) error {
	cat := p.FeeCatalog()
	if err := m.Validate(cat); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidMerchant, err)
	}
	y, mo, d := p.store.Now().In(cards.Shanghai).Date()
	if today := (events.Date{Year: y, Month: mo, Day: d}); !hasPlanOn(cat, m.FeePlan, today) {
		return fmt.Errorf("%w: fee plan %q takes effect on %s", ErrInvalidMerchant, m.FeePlan, cat.Versions(m.FeePlan)[0].From)
	}
	account := m.Account()
	return p.store.InTx(ctx, nil, func(ctx context.Context, tx *Tx) error {
		var found bool
		err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM parties WHERE account_id = $1 AND kind = 'bank')`,
			[16]byte(clearing.PartyAccount(clearing.PartyBank, m.AcquiringBank))).Scan(&found)
		if err != nil {
			return fmt.Errorf("look up acquiring bank: %w", err)
		}
		if !found {
			return fmt.Errorf("bank %q: %w", m.AcquiringBank, ErrUnknownBank)
		}
		now := p.store.Now().UTC()
		tag, err := tx.Exec(ctx, `INSERT INTO merchants (merchant_id, account_id, name, mcc, city, acquiring_bank, fee_plan,
				key_hash, created_at, key_rotated_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9) ON CONFLICT (merchant_id) DO NOTHING`,
			m.ID, [16]byte(account), m.Name, m.MCC, m.City, m.AcquiringBank, m.FeePlan, keyHash[:], now)
		if err != nil {
			return fmt.Errorf("insert merchant: %w", err)
		}
		if tag.RowsAffected() == 0 {
			return fmt.Errorf("merchant %q: %w", m.ID, ErrMerchantExists)
		}
		// A merchant designated as a medical institution while it was known only as a party is
		// registered only as what it was designated: in its city, of a medical category of its kind.
		if in, err := readInstitution(ctx, tx, `merchant_id = $1`, m.ID); err == nil {
			if err := in.CheckMerchant(m.MCC, m.City); err != nil {
				return err
			}
		} else if !errors.Is(err, ErrNotFound) {
			return err
		}
		if err := tx.CreateAccounts(ctx, []AccountSpec{
			{Account: ledger.Account{ID: account, Currency: purchases.Currency, Kind: ledger.KindMerchantClearing}, Name: m.Name},
			{Account: ledger.Account{ID: clearing.FeeIncomeAccount, Currency: purchases.Currency, Kind: ledger.KindFeeIncome}, Name: feeIncomeName},
		}); err != nil {
			return err
		}
		// The merchant's acquiring bank settles its clearing account, kept in the history of its
		// banks. A party settled by another bank keeps it: what it is owed follows its bank only by
		// a deliberate change (SetPartyBank), never as the side effect of a registration.
		current, err := partyBankForUpdate(ctx, tx, account)
		if err != nil {
			return err
		}
		switch current {
		case "":
			if err := p.store.changePartyBank(ctx, tx, account, "", m.AcquiringBank); err != nil {
				return err
			}
		case m.AcquiringBank:
		default:
			return &PartyBankConflictError{Kind: clearing.PartyMerchant, ID: m.ID, Current: current}
		}
		tag, err = tx.Exec(ctx, `INSERT INTO parties (account_id, kind, party_id, name, created_at) VALUES ($1, 'merchant', $2, $3, $4)
			ON CONFLICT (account_id) DO NOTHING`, [16]byte(account), m.ID, m.Name, now)
		if err != nil {
			return fmt.Errorf("insert party: %w", err)
		}
		if tag.RowsAffected() == 0 {
			var name string
			if err := tx.QueryRow(ctx, `SELECT name FROM parties WHERE account_id = $1`, [16]byte(account)).Scan(&name); err != nil {
				return fmt.Errorf("read party: %w", err)
			}
			if name != m.Name {
				return fmt.Errorf("merchant %q is registered as a party named %q: %w", m.ID, name, ErrAccountConflict)
			}
		}
		return nil
	})
}

// RotateMerchantKey replaces a merchant's API key: the old key stops working at once in this
// process, and within merchantCacheTTL in others.
func (p *Purchases) RotateMerchantKey(ctx context.Context, merchantID string, keyHash [32]byte) (purchases.Merchant, error) {
	var m purchases.Merchant
	err := p.store.pool.QueryRow(ctx, `UPDATE merchants SET key_hash = $2, key_rotated_at = $3 WHERE merchant_id = $1
		RETURNING `+merchantColumns, merchantID, keyHash[:], p.store.Now().UTC()).
		Scan(&m.ID, &m.Name, &m.MCC, &m.City, &m.AcquiringBank, &m.FeePlan)
	if errors.Is(err, pgx.ErrNoRows) {
		return m, fmt.Errorf("merchant %q: %w", merchantID, ErrNotFound)
	}
	if err != nil {
		return m, fmt.Errorf("rotate merchant key: %w", err)
	}
	p.merchants.forgetMerchant(merchantID)
	return m, nil
}

const merchantColumns = `merchant_id, name, mcc, city, acquiring_bank, fee_plan`

const (
	// merchantCacheTTL is how long a merchant found by its key is trusted without asking the
	// database again: every authorization checks a key, and a rotated key stops working in
	// other processes within this time.
	merchantCacheTTL = 10 * time.Second
	// maxCachedMerchants bounds the merchant cache: a province's merchants taking the card. Past
	// it the cache is emptied and refills from the requests that follow.
	maxCachedMerchants = 100_000
)

type cachedMerchant struct {
	m       purchases.Merchant
	expires time.Time
}

// merchantCache remembers merchants by the hash of their key. Their clearing accounts are
// remembered by clearing.PartyAccount.
type merchantCache struct {
	mu    sync.Mutex
	byKey map[[32]byte]cachedMerchant
}

func (c *merchantCache) get(key [32]byte, now time.Time) (purchases.Merchant, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.byKey[key]
	if !ok || now.After(e.expires) {
		return purchases.Merchant{}, false
	}
	return e.m, true
}

func (c *merchantCache) put(key [32]byte, m purchases.Merchant, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.byKey) >= maxCachedMerchants {
		clear(c.byKey)
	}
	c.byKey[key] = cachedMerchant{m: m, expires: now.Add(merchantCacheTTL)}
}

func (c *merchantCache) forgetMerchant(id string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for k, e := range c.byKey {
		if e.m.ID == id {
			delete(c.byKey, k)
		}
	}
}

// MerchantByKey returns the merchant whose API key has the SHA-256 keyHash, or ErrNotFound.
func (p *Purchases) MerchantByKey(ctx context.Context, keyHash [32]byte) (purchases.Merchant, error) {
	now := time.Now() // the cache's own time, whatever clock the store is given
	cache := p.merchants
	if m, ok := cache.get(keyHash, now); ok {
		return m, nil
	}
	var m purchases.Merchant
	err := p.store.pool.QueryRow(ctx, `SELECT `+merchantColumns+` FROM merchants WHERE key_hash = $1`, keyHash[:]).
		Scan(&m.ID, &m.Name, &m.MCC, &m.City, &m.AcquiringBank, &m.FeePlan)
	if errors.Is(err, pgx.ErrNoRows) {
		return m, fmt.Errorf("merchant key: %w", ErrNotFound)
	}
	if err != nil {
		return m, fmt.Errorf("look up merchant key: %w", err)
	}
	cache.put(keyHash, m, now)
	return m, nil
}

// SetCardLimits sets the limits of the card that token names (any of its tokens) and returns the
// card's own token, or ErrNotFound.
func (p *Purchases) SetCardLimits(ctx context.Context, token string, l purchases.Limits) (string, error) {
	if err := l.Validate(); err != nil {
		return "", fmt.Errorf("%w: %w", ErrInvalidLimits, err)
	}
	var own string
	err := p.store.pool.QueryRow(ctx, `INSERT INTO card_limits (card_token, per_transaction, per_day, updated_at)
		SELECT card_token, $2, $3, $4 FROM card_tokens WHERE token = $1
		ON CONFLICT (card_token) DO UPDATE SET per_transaction = excluded.per_transaction,
			per_day = excluded.per_day, updated_at = excluded.updated_at
		RETURNING card_token`, token, l.PerTransaction, l.PerDay, p.store.Now().UTC()).Scan(&own)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", fmt.Errorf("card: %w", ErrNotFound)
	}
	if err != nil {
		return "", fmt.Errorf("set card limits: %w", err)
	}
	return own, nil
}

// ErrInvalidLimits wraps why limits are refused.
var ErrInvalidLimits = errors.New("invalid limits")

// AuthorizationRecord is an authorization with its increments and refunds.
type AuthorizationRecord struct {
	purchases.Authorization
	IncrementList []purchases.Increment
	RefundList    []purchases.Refund
	// FeeAdjustments are the re-pricings of its fee by fee plan versions uploaded later,
	// oldest first (read by Authorization and Authorizations, not by the committer).
	FeeAdjustments []FeeAdjustment
}

// Authorization returns a merchant's authorization, or ErrNotFound (also when it is another
// merchant's: a merchant sees only its own).
func (p *Purchases) Authorization(ctx context.Context, merchantID string, id ledger.ID) (AuthorizationRecord, error) {
	recs, err := loadAuthorizations(ctx, p.store.pool, []ledger.ID{id})
	if err != nil {
		return AuthorizationRecord{}, err
	}
	rec, ok := recs[id]
	if !ok || rec.MerchantID != merchantID {
		return AuthorizationRecord{}, fmt.Errorf("authorization %s: %w", id, ErrNotFound)
	}
	if err := readFeeAdjustments(ctx, p.store.pool, recs); err != nil {
		return AuthorizationRecord{}, err
	}
	return *rec, nil
}

// MaxAuthorizationsPage bounds one page of a merchant's authorizations: a terminal's day at a
// busy pharmacy, and each comes with its increments and refunds.
const MaxAuthorizationsPage = 200

// Authorizations returns a merchant's authorizations newest first, at most limit (capped at
// MaxAuthorizationsPage), older than before when it is not zero: pass the last one's id to page on.
func (p *Purchases) Authorizations(ctx context.Context, merchantID string, before ledger.ID, limit int) ([]AuthorizationRecord, error) {
	if limit <= 0 || limit > MaxAuthorizationsPage {
		limit = MaxAuthorizationsPage
	}
	if before.IsZero() {
		before = ledger.ID{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}
	}
	rows, err := p.store.pool.Query(ctx, `SELECT authorization_id FROM purchase_authorizations
		WHERE merchant_id = $1 AND authorization_id < $2 ORDER BY authorization_id DESC LIMIT $3`,
		merchantID, uuid.UUID(before), limit)
	if err != nil {
		return nil, fmt.Errorf("list authorizations: %w", err)
	}
	ids, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (ledger.ID, error) {
		var id [16]byte
		err := r.Scan(&id)
		return ledger.ID(id), err
	})
	if err != nil {
		return nil, fmt.Errorf("list authorizations: %w", err)
	}
	recs, err := loadAuthorizations(ctx, p.store.pool, ids)
	if err != nil {
		return nil, err
	}
	if err := readFeeAdjustments(ctx, p.store.pool, recs); err != nil {
		return nil, err
	}
	out := make([]AuthorizationRecord, 0, len(ids))
	for _, id := range ids {
		if rec, ok := recs[id]; ok {
			out = append(out, *rec)
		}
	}
	return out, nil
}

// CardSavings is what a card's purchases cost and what they would have cost on a foreign card.
type CardSavings struct {
	CardToken string
	Purchases int64 // captured purchases
	Paid      int64 // captured, less refunds
	// Foreign is what the purchases, net of refunds, would have cost on a foreign card beyond
	// their price: what the card saved, since on domestic rails its holder pays no fee.
	Foreign fees.ForeignCost
}

// Savings sums the foreign-card comparison over the captured purchases of the card that token
// names (any of its tokens), each net of its refunds, or ErrNotFound for no such card.
func (p *Purchases) Savings(ctx context.Context, token string) (CardSavings, error) {
	var sv CardSavings
	err := p.store.pool.QueryRow(ctx, `SELECT card_token FROM card_tokens WHERE token = $1`, token).Scan(&sv.CardToken)
	if errors.Is(err, pgx.ErrNoRows) {
		return sv, fmt.Errorf("card: %w", ErrNotFound)
	}
	if err != nil {
		return sv, fmt.Errorf("read card: %w", err)
	}
	// Each purchase's saving is the foreign cost of what remains of it: the capture's, or after
	// refunds the last refund's.
	err = p.store.pool.QueryRow(ctx, `SELECT count(*), coalesce(sum(c.amount - coalesce(r.refunded_total, 0)), 0),
			coalesce(sum(coalesce(r.foreign_surcharge, c.foreign_surcharge)), 0),
			coalesce(sum(coalesce(r.foreign_fx_margin, c.foreign_fx_margin)), 0)
		FROM purchase_closes c
		LEFT JOIN LATERAL (SELECT refunded_total, foreign_surcharge, foreign_fx_margin FROM purchase_refunds r
			WHERE r.authorization_id = c.authorization_id ORDER BY r.seq DESC LIMIT 1) r ON true
		WHERE c.card_token = $1 AND c.kind = 'captured'`, sv.CardToken).
		Scan(&sv.Purchases, &sv.Paid, &sv.Foreign.Surcharge, &sv.Foreign.FXMargin)
	if err != nil {
		return sv, fmt.Errorf("sum card savings: %w", err)
	}
	return sv, nil
}

// batchSender is what sends a pgx.Batch: the pool, or a transaction.
type batchSender interface {
	SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults
}

const authorizationColumns = `authorization_id, merchant_id, card_token, funds_account_id, mcc, amount,
	approved, decline_reason, decline_detail, expires_at, created_at`

const incrementColumns = `increment_id, authorization_id, amount, approved, decline_reason, decline_detail, created_at`

const closeColumns = `authorization_id, close_id, kind, amount, released, fee_mdr, fee_network,
	foreign_surcharge, foreign_fx_margin, created_at`

const refundColumns = `authorization_id, seq, refund_id, amount, refunded_total, fee_mdr_returned,
	fee_network_returned, foreign_surcharge, foreign_fx_margin, transfer_id, created_at`

// loadAuthorizations reads authorizations with everything since: increments, the capture or
// void, refunds, and whether the sweep expired the hold. One round trip.
func loadAuthorizations(ctx context.Context, q batchSender, ids []ledger.ID) (map[ledger.ID]*AuthorizationRecord, error) {
	if len(ids) == 0 {
		return map[ledger.ID]*AuthorizationRecord{}, nil
	}
	b := &pgx.Batch{}
	l := queueAuthorizations(b, ids)
	if err := q.SendBatch(ctx, b).Close(); err != nil {
		return nil, fmt.Errorf("read authorizations: %w", err)
	}
	return l.result(), nil
}

// authorizationLoad is a read of authorizations queued in a batch, assembled once it has run.
type authorizationLoad struct {
	out     map[ledger.ID]*AuthorizationRecord
	incs    []purchases.Increment
	closes  []purchases.Close
	refunds []purchases.Refund
	expired []ledger.ID
}

// queueAuthorizations queues the queries of loadAuthorizations in b, so that a caller can send
// them with its own in one round trip. None are queued for no ids.
func queueAuthorizations(b *pgx.Batch, ids []ledger.ID) *authorizationLoad {
	l := &authorizationLoad{out: map[ledger.ID]*AuthorizationRecord{}}
	if len(ids) == 0 {
		return l
	}
	keys := make([]uuid.UUID, len(ids))
	for i, id := range ids {
		keys[i] = uuid.UUID(id)
	}
	b.Queue(`SELECT `+authorizationColumns+` FROM purchase_authorizations WHERE authorization_id = ANY($1)`, keys).
		Query(func(rows pgx.Rows) error {
			for rows.Next() {
				a, err := scanAuthorization(rows)
				if err != nil {
					return err
				}
				l.out[a.ID] = &AuthorizationRecord{Authorization: a}
			}
			return rows.Err()
		})
	b.Queue(`SELECT `+incrementColumns+` FROM purchase_increments WHERE authorization_id = ANY($1)
		ORDER BY authorization_id, created_at, increment_id`, keys).Query(func(rows pgx.Rows) error {
		for rows.Next() {
			inc, err := scanIncrement(rows)
			if err != nil {
				return err
			}
			l.incs = append(l.incs, inc)
		}
		return rows.Err()
	})
	b.Queue(`SELECT `+closeColumns+` FROM purchase_closes WHERE authorization_id = ANY($1)`, keys).
		Query(func(rows pgx.Rows) error {
			for rows.Next() {
				c, err := scanClose(rows)
				if err != nil {
					return err
				}
				l.closes = append(l.closes, c)
			}
			return rows.Err()
		})
	b.Queue(`SELECT `+refundColumns+` FROM purchase_refunds WHERE authorization_id = ANY($1) ORDER BY authorization_id, seq`, keys).
		Query(func(rows pgx.Rows) error {
			for rows.Next() {
				r, err := scanRefund(rows)
				if err != nil {
					return err
				}
				l.refunds = append(l.refunds, r)
			}
			return rows.Err()
		})
	b.Queue(`SELECT target_id FROM transfer_resolutions WHERE target_id = ANY($1) AND kind = 'expired'`, keys).
		Query(func(rows pgx.Rows) error {
			for rows.Next() {
				var id [16]byte
				if err := rows.Scan(&id); err != nil {
					return err
				}
				l.expired = append(l.expired, ledger.ID(id))
			}
			return rows.Err()
		})
	return l
}

// result assembles what the queued queries read.
func (l *authorizationLoad) result() map[ledger.ID]*AuthorizationRecord {
	out := l.out
	for _, rec := range out {
		if rec.Approved {
			rec.Approve()
		}
	}
	for _, inc := range l.incs {
		if rec, ok := out[inc.AuthorizationID]; ok {
			rec.ApplyIncrement(inc)
			rec.IncrementList = append(rec.IncrementList, inc)
		}
	}
	for _, c := range l.closes {
		if rec, ok := out[c.AuthorizationID]; ok {
			rec.ApplyClose(c)
		}
	}
	for _, r := range l.refunds {
		if rec, ok := out[r.AuthorizationID]; ok {
			rec.ApplyRefund(r)
			rec.RefundList = append(rec.RefundList, r)
		}
	}
	for _, id := range l.expired {
		if rec, ok := out[id]; ok {
			rec.Expired = true
		}
	}
	return out
}

func scanAuthorization(rows pgx.Rows) (purchases.Authorization, error) {
	var (
		a             purchases.Authorization
		id            [16]byte
		funds         *[16]byte
		reason        string
		expires       *time.Time
		created       time.Time
		merchantIDStr string
	)
	if err := rows.Scan(&id, &merchantIDStr, &a.CardToken, &funds, &a.MCC, &a.Amount, &a.Approved, &reason,
		&a.Detail, &expires, &created); err != nil {
		return a, fmt.Errorf("scan authorization: %w", err)
	}
	a.ID, a.MerchantID, a.Reason = ledger.ID(id), merchantIDStr, purchases.Reason(reason)
	a.Merchant = clearing.PartyAccount(clearing.PartyMerchant, merchantIDStr)
	if funds != nil {
		a.Funds = ledger.ID(*funds)
	}
	if expires != nil {
		a.ExpiresAt = expires.UTC()
	}
	a.CreatedAt = created.UTC()
	return a, nil
}

func scanIncrement(rows pgx.Rows) (purchases.Increment, error) {
	var (
		inc     purchases.Increment
		id, aid [16]byte
		reason  string
		created time.Time
	)
	if err := rows.Scan(&id, &aid, &inc.Amount, &inc.Approved, &reason, &inc.Detail, &created); err != nil {
		return inc, fmt.Errorf("scan increment: %w", err)
	}
	inc.ID, inc.AuthorizationID, inc.Reason, inc.CreatedAt = ledger.ID(id), ledger.ID(aid), purchases.Reason(reason), created.UTC()
	return inc, nil
}

func scanClose(rows pgx.Rows) (purchases.Close, error) {
	var (
		c       purchases.Close
		aid, id [16]byte
		kind    string
		created time.Time
	)
	if err := rows.Scan(&aid, &id, &kind, &c.Amount, &c.Released, &c.Fee.MerchantDiscount, &c.Fee.Network,
		&c.Foreign.Surcharge, &c.Foreign.FXMargin, &created); err != nil {
		return c, fmt.Errorf("scan close: %w", err)
	}
	c.AuthorizationID, c.ID, c.Kind, c.CreatedAt = ledger.ID(aid), ledger.ID(id), purchases.CloseKind(kind), created.UTC()
	return c, nil
}

func scanRefund(rows pgx.Rows) (purchases.Refund, error) {
	var (
		r                 purchases.Refund
		aid, id, transfer [16]byte
		created           time.Time
	)
	if err := rows.Scan(&aid, &r.Seq, &id, &r.Amount, &r.RefundedTotal, &r.FeeReturned.MerchantDiscount,
		&r.FeeReturned.Network, &r.ForeignNet.Surcharge, &r.ForeignNet.FXMargin, &transfer, &created); err != nil {
		return r, fmt.Errorf("scan refund: %w", err)
	}
	r.AuthorizationID, r.ID, r.TransferID, r.CreatedAt = ledger.ID(aid), ledger.ID(id), ledger.ID(transfer), created.UTC()
	return r, nil
}

// purchaseRows are the purchase records a transaction writes.
type purchaseRows struct {
	authorizations []purchases.Authorization
	increments     []incrementRow
	closes         []closeRow
	refunds        []refundRow
	requests       []requestRow
	// commit sends the transaction's COMMIT with the rows, in their round trip: the caller
	// has nothing left to do in the transaction (a lazyTx's, which then commits without a word).
	commit bool
	// plansOnce has the round trip keep PostgreSQL's plans (insertPlans) when it holds nothing
	// but INSERTs: a transaction that asked for plans per execution for its lookups
	// (customPlans) does not plan its writes again each time.
	plansOnce bool
	// pinned says the transaction's lookups ran under pinnedPlans: writes that are not INSERTs
	// alone are planned for their keys again (customPlans).
	pinned bool
}

// writePlans is the plan setting the rows' round trip starts with, "" for none: plans made once
// for INSERTs alone (which pinnedPlans already asked for), plans for their keys for other writes
// after a lookup under pinnedPlans.
func (w *purchaseRows) writePlans(bs ...*pgx.Batch) string {
	inserts := insertsOnly(bs...)
	switch {
	case !w.plansOnce:
		return ""
	case w.pinned && inserts:
		return ""
	case inserts:
		return insertPlans
	case w.pinned:
		return customPlans
	}
	return ""
}

type incrementRow struct {
	purchases.Increment
	cardToken string
}

type closeRow struct {
	purchases.Close
	merchantID, cardToken string
	event                 *uuid.UUID // the purchase.cleared event, for a capture from clearing
}

type refundRow struct {
	purchases.Refund
	merchantID string
	event      *uuid.UUID // the purchase.refunded event, for a refund from clearing
}

type requestRow struct {
	merchantID string
	key        uuid.UUID
	op         Operation
	hash       [32]byte
	result     ledger.ID
}

// write writes the rows in one round trip: an INSERT from arrays per table that has any. A batch
// of merchants' requests has a few dozen rows, where COPY's setup per table would cost more than
// the rows.
func (w *purchaseRows) write(ctx context.Context, tx *Tx, now time.Time) error {
	b := &pgx.Batch{}
	if n := len(w.authorizations); n > 0 {
		// Slices of the types pgx encodes without reflection: [16]byte for a UUID, pgtype's for
		// one that may be NULL.
		var (
			ids               = make([][16]byte, n)
			funds             = make(pgtype.FlatArray[pgtype.UUID], n)
			merchants, tokens = make([]string, n), make([]string, n)
			mccs, reasons     = make([]string, n), make([]string, n)
			details           = make([]string, n)
			amounts           = make([]int64, n)
			approved          = make([]bool, n)
			expires           = make(pgtype.FlatArray[pgtype.Timestamptz], n)
			created           = make([]time.Time, n)
		)
		for i := range w.authorizations {
			a := &w.authorizations[i]
			ids[i], merchants[i], tokens[i], mccs[i] = a.ID, a.MerchantID, a.CardToken, a.MCC
			if !a.Funds.IsZero() {
				funds[i] = pgtype.UUID{Bytes: a.Funds, Valid: true}
			}
			amounts[i], approved[i], reasons[i], details[i] = a.Amount, a.Approved, string(a.Reason), a.Detail
			if a.Approved {
				expires[i] = pgtype.Timestamptz{Time: a.ExpiresAt.UTC(), Valid: true}
			}
			created[i] = a.CreatedAt.UTC()
		}
		b.Queue(`INSERT INTO purchase_authorizations (authorization_id, merchant_id, card_token, funds_account_id, mcc,
				amount, approved, decline_reason, decline_detail, expires_at, created_at)
			SELECT * FROM unnest($1::UUID[], $2::TEXT[], $3::TEXT[], $4::UUID[], $5::TEXT[], $6::BIGINT[], $7::BOOLEAN[],
				$8::TEXT[], $9::TEXT[], $10::TIMESTAMPTZ[], $11::TIMESTAMPTZ[])`,
			ids, merchants, tokens, funds, mccs, amounts, approved, reasons, details, expires, created)
	}
	if n := len(w.increments); n > 0 {
		var (
			ids, auths      = make([]uuid.UUID, n), make([]uuid.UUID, n)
			tokens, reasons = make([]string, n), make([]string, n)
			details         = make([]string, n)
			amounts         = make([]int64, n)
			approved        = make([]bool, n)
			created         = make([]time.Time, n)
		)
		for i := range w.increments {
			r := &w.increments[i]
			ids[i], auths[i], tokens[i], amounts[i] = uuid.UUID(r.ID), uuid.UUID(r.AuthorizationID), r.cardToken, r.Amount
			approved[i], reasons[i], details[i], created[i] = r.Approved, string(r.Reason), r.Detail, r.CreatedAt.UTC()
		}
		b.Queue(`INSERT INTO purchase_increments (increment_id, authorization_id, card_token, amount, approved,
				decline_reason, decline_detail, created_at)
			SELECT * FROM unnest($1::UUID[], $2::UUID[], $3::TEXT[], $4::BIGINT[], $5::BOOLEAN[], $6::TEXT[], $7::TEXT[],
				$8::TIMESTAMPTZ[])`, ids, auths, tokens, amounts, approved, reasons, details, created)
	}
	if n := len(w.closes); n > 0 {
		var (
			auths, ids                   = make([]uuid.UUID, n), make([]uuid.UUID, n)
			kinds, merchants, tokens     = make([]string, n), make([]string, n), make([]string, n)
			amounts, released, mdr, netw = make([]int64, n), make([]int64, n), make([]int64, n), make([]int64, n)
			surcharge, fx                = make([]int64, n), make([]int64, n)
			evs                          = make([]*uuid.UUID, n)
			created                      = make([]time.Time, n)
		)
		for i := range w.closes {
			c := &w.closes[i]
			auths[i], ids[i], kinds[i], merchants[i], tokens[i] = uuid.UUID(c.AuthorizationID), uuid.UUID(c.ID), string(c.Kind), c.merchantID, c.cardToken
			amounts[i], released[i], mdr[i], netw[i] = c.Amount, c.Released, c.Fee.MerchantDiscount, c.Fee.Network
			surcharge[i], fx[i], evs[i], created[i] = c.Foreign.Surcharge, c.Foreign.FXMargin, c.event, c.CreatedAt.UTC()
		}
		b.Queue(`INSERT INTO purchase_closes (authorization_id, close_id, kind, merchant_id, card_token, amount, released,
				fee_mdr, fee_network, foreign_surcharge, foreign_fx_margin, event_id, created_at)
			SELECT * FROM unnest($1::UUID[], $2::UUID[], $3::TEXT[], $4::TEXT[], $5::TEXT[], $6::BIGINT[], $7::BIGINT[],
				$8::BIGINT[], $9::BIGINT[], $10::BIGINT[], $11::BIGINT[], $12::UUID[], $13::TIMESTAMPTZ[])`,
			auths, ids, kinds, merchants, tokens, amounts, released, mdr, netw, surcharge, fx, evs, created)
	}
	if n := len(w.refunds); n > 0 {
		var (
			auths, ids, transfers = make([]uuid.UUID, n), make([]uuid.UUID, n), make([]uuid.UUID, n)
			seqs                  = make([]int32, n)
			merchants             = make([]string, n)
			amounts, totals       = make([]int64, n), make([]int64, n)
			mdr, netw             = make([]int64, n), make([]int64, n)
			surcharge, fx         = make([]int64, n), make([]int64, n)
			evs                   = make([]*uuid.UUID, n)
			created               = make([]time.Time, n)
		)
		for i := range w.refunds {
			r := &w.refunds[i]
			auths[i], seqs[i], ids[i], merchants[i] = uuid.UUID(r.AuthorizationID), int32(r.Seq), uuid.UUID(r.ID), r.merchantID
			amounts[i], totals[i], mdr[i], netw[i] = r.Amount, r.RefundedTotal, r.FeeReturned.MerchantDiscount, r.FeeReturned.Network
			surcharge[i], fx[i], transfers[i] = r.ForeignNet.Surcharge, r.ForeignNet.FXMargin, uuid.UUID(r.TransferID)
			evs[i], created[i] = r.event, r.CreatedAt.UTC()
		}
		b.Queue(`INSERT INTO purchase_refunds (authorization_id, seq, refund_id, merchant_id, amount, refunded_total,
				fee_mdr_returned, fee_network_returned, foreign_surcharge, foreign_fx_margin, transfer_id, event_id, created_at)
			SELECT * FROM unnest($1::UUID[], $2::INT[], $3::UUID[], $4::TEXT[], $5::BIGINT[], $6::BIGINT[], $7::BIGINT[],
				$8::BIGINT[], $9::BIGINT[], $10::BIGINT[], $11::UUID[], $12::UUID[], $13::TIMESTAMPTZ[])`,
			auths, seqs, ids, merchants, amounts, totals, mdr, netw, surcharge, fx, transfers, evs, created)
	}
	if n := len(w.requests); n > 0 {
		var (
			merchants, ops = make([]string, n), make([]string, n)
			keys, results  = make([][16]byte, n), make([][16]byte, n)
			hashes         = make(pgtype.FlatArray[[]byte], n)
		)
		for i := range w.requests {
			r := &w.requests[i]
			merchants[i], keys[i], ops[i], hashes[i], results[i] = r.merchantID, r.key, string(r.op), r.hash[:], r.result
		}
		b.Queue(`INSERT INTO purchase_requests (merchant_id, idempotency_key, operation, request_hash, result_id, created_at)
			SELECT m, k, o, h, r, $6 FROM unnest($1::TEXT[], $2::UUID[], $3::TEXT[], $4::BYTEA[], $5::UUID[]) AS u(m, k, o, h, r)`,
			merchants, keys, ops, hashes, results, now.UTC())
	}
	if plans := w.writePlans(tx.queued, b); plans != "" {
		// First in the round trip, before the ledger's rows queued with the transaction.
		first := &pgx.Batch{}
		first.Queue(plans)
		if tx.queued != nil {
			first.QueuedQueries = append(first.QueuedQueries, tx.queued.QueuedQueries...)
		}
		tx.queued = first
	}
	if w.commit {
		queueCommit(b)
	}
	// With the ledger's writes of the batch, when it queued them: one round trip for both.
	if err := tx.Flush(ctx, b); err != nil {
		return fmt.Errorf("write purchase records: %w", err)
	}
	return nil
}
