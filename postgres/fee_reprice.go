package postgres

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/joinincard/engine/cards"
	"github.com/joinincard/engine/events"
	"github.com/joinincard/engine/fees"
	"github.com/joinincard/engine/ledger"
	"github.com/joinincard/engine/purchases"
	"github.com/joinincard/engine/tariffs"
)

// maxFeeRepricePurchases bounds the purchases one transaction of a re-pricing looks at: each
// adds at most one transfer (far below ledger.MaxBatchTransfers), and a few hundred commit in
// well under a second, holding the job's row and the fee plans' row only that long.
const maxFeeRepricePurchases = 512

// maxFeeRepriceMerchants bounds the merchants one step walks: each is a read along its index, and
// a plan's thousands of small merchants with a purchase or two each are walked a few hundred at
// a time.
const maxFeeRepriceMerchants = 256

// FeeRepriceReport is what one step of a fee re-pricing did.
type FeeRepriceReport struct {
	// Job is the seq of the fee plan version being re-priced by; 0 when no job was open.
	Job       int
	Plan      string
	Purchases int   // captured purchases looked at
	Adjusted  int   // purchases adjusted
	Charged   int64 // fen charged to merchants by the adjustments, net; negative: given back
	Finished  bool  // the job has looked at its last purchase
}

// feePlansHeld holds the fee plans' row FOR SHARE for the rest of the transaction and returns the
// fee plans to price by: cat, or, when a fee plan was uploaded that cat does not have, the loaded
// tariffs reloaded through the transaction. An upload holds the row FOR UPDATE, so while this transaction holds it no
// upload commits, and every upload that committed before is in what it returns: a purchase that
// commits after an upload that re-prices its date is priced by the uploaded version, and one
// that commits before is there for the re-pricing to read.
func (t *Tx) feePlansHeld(ctx context.Context, cat *fees.Catalog) (*fees.Catalog, error) {
	var n int
	if err := t.QueryRow(ctx, `SELECT versions FROM tariff_kinds WHERE kind = 'fee_plans' FOR SHARE`).Scan(&n); err != nil {
		return nil, fmt.Errorf("read fee plan versions: %w", err)
	}
	if n <= cat.Seq() {
		return cat, nil
	}
	tr := t.store.tariffs.Load()
	if tr == nil {
		return nil, fmt.Errorf("fee plans have %d versions uploaded, and this process has loaded none: %w", n, ErrStaleTariffs)
	}
	// Read through this transaction: with the row held, what it reads is every upload, and it
	// takes no second connection from the pool while it holds one.
	if err := tr.reloadFrom(ctx, t); err != nil {
		return nil, err
	}
	if c := tr.FeePlans(); c.Seq() >= n {
		return c, nil
	}
	return nil, fmt.Errorf("fee plans have %d versions uploaded, these %d: %w", n, tr.FeePlans().Seq(), ErrStaleTariffs)
}

// insertFeeRepriceJob queues the re-pricing of the purchases a fee plan version prices since its
// first day, in the transaction that adds the version.
func (t *Tx) insertFeeRepriceJob(ctx context.Context, seq int, plan string, from events.Date, now time.Time) error {
	_, err := t.Exec(ctx, `INSERT INTO fee_reprice_jobs (seq, plan_id, effective_from, cursor_merchant, cursor_authorization,
			purchases, adjusted, charged, created_at) VALUES ($1, $2, $3, '', $4, 0, 0, 0, $5)`,
		seq, plan, time.Date(from.Year, from.Month, from.Day, 0, 0, 0, 0, time.UTC), uuid.Nil, now)
	if err != nil {
		return fmt.Errorf("queue fee re-pricing: %w", err)
	}
	return nil
}

// repricedPurchase is a captured purchase a re-pricing looks at, with what its merchant has paid
// on it so far.
type repricedPurchase struct {
	id         ledger.ID
	merchantID string
	merchant   ledger.ID // the merchant's clearing account
	mcc        string
	date       events.Date // in Shanghai: which version prices it
	captured   int64
	refunded   int64
	charged    fees.Fee // the capture's fee, less refunds' returns, plus earlier adjustments
}

// RepriceFees works one step of the oldest open fee re-pricing: the next captured purchases, at
// most limit (at most maxFeeRepricePurchases; 0 for that many), of the merchants on the job's
// plan, authorized on or after the version's first day, in order of merchant and authorization.
// Each purchase is charged the difference between the fee its plan's version in force on its date
// owes on it now (fees.Plan.Adjustment) and what its merchant has paid on it so far, as a
// transfer of its own between the merchant's clearing account and fee income
// (purchases.PlanFeeAdjustment); nothing it was charged is changed. The adjustments and
// the job's cursor commit together: a step stopped anywhere left nothing, and the next goes on
// where the last committed one ended. Call it until the report's Job is 0.
//
// Two processes re-pricing at once take turns on the job's row. A purchase committed after the
// upload was priced by the version (feePlansHeld) and is found owing nothing; one committed
// before is read here; a refund committed in between returned the fee by the version in force
// when it committed, and what it returned is counted in what the merchant has paid.
func (s *Store) RepriceFees(ctx context.Context, limit int) (FeeRepriceReport, error) {
	if limit <= 0 || limit > maxFeeRepricePurchases {
		limit = maxFeeRepricePurchases
	}
	var rep FeeRepriceReport
	err := s.InTx(ctx, nil, func(ctx context.Context, tx *Tx) error {
		rep = FeeRepriceReport{}
		cat, err := s.feePlans()
		if err != nil {
			return err
		}
		if cat, err = tx.feePlansHeld(ctx, cat); err != nil {
			return err
		}
		var (
			from     time.Time
			merchant string
			after    [16]byte
		)
		err = tx.QueryRow(ctx, `SELECT seq, plan_id, effective_from, cursor_merchant, cursor_authorization FROM fee_reprice_jobs
			WHERE finished_at IS NULL ORDER BY seq LIMIT 1 FOR UPDATE`).Scan(&rep.Job, &rep.Plan, &from, &merchant, &after)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("read fee re-pricing: %w", err)
		}
		// The version's first day starts at midnight in Shanghai, as a purchase's date is its
		// authorization's there.
		since := time.Date(from.Year(), from.Month(), from.Day(), 0, 0, 0, 0, cards.Shanghai)
		ps, nextMerchant, next, done, err := tx.repricedPurchases(ctx, rep.Plan, merchant, ledger.ID(after), since, limit)
		if err != nil {
			return err
		}
		rep.Purchases = len(ps)
		var (
			transfers []ledger.Transfer
			rows      []feeAdjustmentRow
		)
		for _, p := range ps {
			plan, ok := cat.PlanOn(rep.Plan, p.date)
			if !ok {
				return fmt.Errorf("re-price purchase %s: fee plan %q has no version on %s", p.id, rep.Plan, p.date)
			}
			adj, err := plan.Adjustment(p.mcc, p.captured, p.refunded, p.charged)
			if err != nil {
				return fmt.Errorf("re-price purchase %s: %w", p.id, err)
			}
			if adj == (fees.Fee{}) {
				continue
			}
			row := feeAdjustmentRow{authorization: p.id, merchantID: p.merchantID, planSeq: plan.Seq, fee: adj}
			id, err := newTransferID()
			if err != nil {
				return err
			}
			if t := purchases.PlanFeeAdjustment(id, p.id, p.merchant, adj); t != nil {
				transfers = append(transfers, *t)
				row.transfer = &id
				rep.Charged += adj.Total()
			}
			rows = append(rows, row)
		}
		rep.Adjusted = len(rows)
		res, err := tx.Apply(ctx, transfers)
		if err != nil {
			return err
		}
		for i, r := range res.Results {
			if r != ledger.Created {
				// The accounts are the merchant's clearing account and fee income, neither
				// limited: a refusal is a fault of the ledger's state, not of the purchase.
				return fmt.Errorf("fee adjustment %s of purchase %s: the ledger answered %s", transfers[i].ID, transfers[i].UserData, r)
			}
		}
		now := s.Now().UTC()
		if err := tx.writeFeeAdjustments(ctx, rep.Job, rows, now); err != nil {
			return err
		}
		rep.Finished = done
		var finished *time.Time
		if rep.Finished {
			finished = &now
		}
		merchant, after = nextMerchant, [16]byte(next)
		if _, err := tx.Exec(ctx, `UPDATE fee_reprice_jobs SET cursor_merchant = $2, cursor_authorization = $3,
				purchases = purchases + $4, adjusted = adjusted + $5, charged = charged + $6, finished_at = $7 WHERE seq = $1`,
			rep.Job, merchant, uuid.UUID(after), rep.Purchases, rep.Adjusted, rep.Charged, finished); err != nil {
			return fmt.Errorf("advance fee re-pricing: %w", err)
		}
		return nil
	})
	if err != nil {
		return FeeRepriceReport{}, err
	}
	return rep, nil
}

// repricedPurchases reads the next captured purchases after (merchant, after) of the merchants on
// plan authorized at since or later, at most limit, with what each merchant has paid on each. It
// walks the merchants on the plan in order, at most maxFeeRepriceMerchants, each along its
// authorizations' index from the later of after and the first id since could have (UUIDv7 ids
// carry their time): a step reads the purchases it re-prices, not the history before them. The
// cursor it returns is where the next step starts: the last purchase read, or past the last
// merchant whose purchases it read to their end.
func (t *Tx) repricedPurchases(ctx context.Context, plan, merchant string, after ledger.ID, since time.Time, limit int) (
	out []repricedPurchase, cursorMerchant string, cursor ledger.ID, done bool, err error) {
	cursorMerchant, cursor = merchant, after
	rows, err := t.Query(ctx, `SELECT merchant_id, account_id FROM merchants WHERE fee_plan = $1 AND merchant_id >= $2
		ORDER BY merchant_id LIMIT $3`, plan, merchant, maxFeeRepriceMerchants+1)
	if err != nil {
		return nil, "", ledger.ID{}, false, fmt.Errorf("read merchants to re-price: %w", err)
	}
	type onPlan struct {
		id      string
		account ledger.ID
	}
	ms, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (onPlan, error) {
		var (
			m onPlan
			a [16]byte
		)
		err := r.Scan(&m.id, &a)
		m.account = ledger.ID(a)
		return m, err
	})
	if err != nil {
		return nil, "", ledger.ID{}, false, fmt.Errorf("read merchants to re-price: %w", err)
	}
	more := len(ms) > maxFeeRepriceMerchants
	if more {
		ms = ms[:maxFeeRepriceMerchants]
	}
	floor := sinceID(since)
	for _, m := range ms {
		from := floor
		if m.id == merchant && bytes.Compare(after[:], from[:]) > 0 {
			from = after
		}
		rows, err := t.Query(ctx, `SELECT a.authorization_id, a.mcc, a.created_at, c.amount, c.fee_mdr, c.fee_network
			FROM purchase_authorizations a
			JOIN purchase_closes c ON c.authorization_id = a.authorization_id
			WHERE a.merchant_id = $1 AND a.authorization_id > $2 AND a.created_at >= $3 AND c.kind = 'captured'
			ORDER BY a.authorization_id LIMIT $4`, m.id, uuid.UUID(from), since, limit-len(out))
		if err != nil {
			return nil, "", ledger.ID{}, false, fmt.Errorf("read purchases to re-price: %w", err)
		}
		n := 0
		for rows.Next() {
			var (
				p       = repricedPurchase{merchantID: m.id, merchant: m.account}
				id      [16]byte
				created time.Time
			)
			if err := rows.Scan(&id, &p.mcc, &created, &p.captured, &p.charged.MerchantDiscount, &p.charged.Network); err != nil {
				rows.Close()
				return nil, "", ledger.ID{}, false, fmt.Errorf("read purchases to re-price: %w", err)
			}
			p.id = ledger.ID(id)
			y, mo, d := created.In(cards.Shanghai).Date()
			p.date = events.Date{Year: y, Month: mo, Day: d}
			out = append(out, p)
			n++
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, "", ledger.ID{}, false, fmt.Errorf("read purchases to re-price: %w", err)
		}
		if len(out) == limit {
			// Perhaps more of this merchant's: the next step reads on after the last.
			cursorMerchant, cursor = m.id, out[len(out)-1].id
			break
		}
		// Every purchase of this merchant is read: the next step starts past it.
		cursorMerchant, cursor = m.id, ledger.ID{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}
	}
	done = len(out) < limit && !more
	if err := t.readPaid(ctx, out); err != nil {
		return nil, "", ledger.ID{}, false, err
	}
	return out, cursorMerchant, cursor, done, nil
}

// sinceID is the lowest UUIDv7 an authorization created at since could have, a day early: its
// id is stamped by the clock of the process that made it, which may lag the store's by seconds.
func sinceID(since time.Time) ledger.ID {
	var id ledger.ID
	ms := uint64(since.Add(-24 * time.Hour).UnixMilli())
	for i := 0; i < 6; i++ {
		id[i] = byte(ms >> (40 - 8*i))
	}
	return id
}

// readPaid adds to each purchase what its refunds returned and its earlier adjustments charged.
func (t *Tx) readPaid(ctx context.Context, out []repricedPurchase) error {
	if len(out) == 0 {
		return nil
	}
	byID := make(map[ledger.ID]*repricedPurchase, len(out))
	ids := make([]uuid.UUID, len(out))
	for i := range out {
		byID[out[i].id] = &out[i]
		ids[i] = uuid.UUID(out[i].id)
	}
	// Cast to BIGINT on both sides of the union: the sums are NUMERIC, and CockroachDB does not
	// match NUMERIC with INT in a UNION. A sum past BIGINT fails the cast, loudly.
	rows, err := t.Query(ctx, `SELECT authorization_id, sum(amount)::BIGINT, (-sum(fee_mdr_returned))::BIGINT,
				(-sum(fee_network_returned))::BIGINT
			FROM purchase_refunds WHERE authorization_id = ANY($1) GROUP BY authorization_id
		UNION ALL SELECT authorization_id, 0::BIGINT, sum(fee_mdr)::BIGINT, sum(fee_network)::BIGINT
			FROM purchase_fee_adjustments WHERE authorization_id = ANY($1) GROUP BY authorization_id`, ids)
	if err != nil {
		return fmt.Errorf("read refunds and adjustments of purchases to re-price: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			id                 [16]byte
			refunded, mdr, net int64
		)
		if err := rows.Scan(&id, &refunded, &mdr, &net); err != nil {
			return fmt.Errorf("read refunds and adjustments of purchases to re-price: %w", err)
		}
		p := byID[ledger.ID(id)]
		p.refunded += refunded
		p.charged.MerchantDiscount += mdr
		p.charged.Network += net
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read refunds and adjustments of purchases to re-price: %w", err)
	}
	return nil
}

// feeAdjustmentRow is one purchase's fee adjustment, as purchase_fee_adjustments keeps it.
type feeAdjustmentRow struct {
	authorization ledger.ID
	merchantID    string
	planSeq       int
	fee           fees.Fee
	transfer      *ledger.ID // nil when the components cancel out
}

func (t *Tx) writeFeeAdjustments(ctx context.Context, job int, rows []feeAdjustmentRow, now time.Time) error {
	if len(rows) == 0 {
		return nil
	}
	var (
		auths     = make([]uuid.UUID, len(rows))
		merchants = make([]string, len(rows))
		seqs      = make([]int64, len(rows))
		mdr, netw = make([]int64, len(rows)), make([]int64, len(rows))
		transfers = make([]*uuid.UUID, len(rows))
	)
	for i, r := range rows {
		auths[i], merchants[i], seqs[i], mdr[i], netw[i] = uuid.UUID(r.authorization), r.merchantID, int64(r.planSeq), r.fee.MerchantDiscount, r.fee.Network
		if r.transfer != nil {
			u := uuid.UUID(*r.transfer)
			transfers[i] = &u
		}
	}
	// One row per purchase and job (the primary key): a step written twice would fail here.
	if _, err := t.Exec(ctx, `INSERT INTO purchase_fee_adjustments (authorization_id, job_seq, merchant_id, plan_seq, fee_mdr,
			fee_network, transfer_id, created_at)
		SELECT a, $2, m, s, d, n, tr, $8 FROM unnest($1::UUID[], $3::TEXT[], $4::INT8[], $5::INT8[], $6::INT8[], $7::UUID[])
			AS r(a, m, s, d, n, tr)`, auths, job, merchants, seqs, mdr, netw, transfers, now); err != nil {
		return fmt.Errorf("write fee adjustments: %w", err)
	}
	return nil
}

// FeeAdjustment is one fee adjustment of a purchase, as its merchant sees it.
type FeeAdjustment struct {
	// Job is the seq of the fee plan version whose upload re-priced the purchase; PlanSeq the
	// version that priced it after the adjustment (they differ when a later version came first).
	Job, PlanSeq int
	// Fee is the difference of each component: positive, the merchant paid more.
	Fee        fees.Fee
	TransferID ledger.ID // zero when the components cancel out and nothing moved
	CreatedAt  time.Time
}

// readFeeAdjustments reads the fee adjustments of the captured purchases among recs into them,
// oldest first.
func readFeeAdjustments(ctx context.Context, q querier, recs map[ledger.ID]*AuthorizationRecord) error {
	var ids []uuid.UUID
	for id, rec := range recs {
		if rec.Close != nil && rec.Close.Kind == purchases.Captured {
			ids = append(ids, uuid.UUID(id))
		}
	}
	if len(ids) == 0 {
		return nil
	}
	rows, err := q.Query(ctx, `SELECT authorization_id, job_seq, plan_seq, fee_mdr, fee_network, transfer_id, created_at
		FROM purchase_fee_adjustments WHERE authorization_id = ANY($1) ORDER BY authorization_id, job_seq`, ids)
	if err != nil {
		return fmt.Errorf("read fee adjustments: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			a      FeeAdjustment
			id     [16]byte
			tr     *[16]byte
			rec    *AuthorizationRecord
			exists bool
		)
		if err := rows.Scan(&id, &a.Job, &a.PlanSeq, &a.Fee.MerchantDiscount, &a.Fee.Network, &tr, &a.CreatedAt); err != nil {
			return fmt.Errorf("read fee adjustments: %w", err)
		}
		if tr != nil {
			a.TransferID = ledger.ID(*tr)
		}
		a.CreatedAt = a.CreatedAt.UTC()
		if rec, exists = recs[ledger.ID(id)]; exists {
			rec.FeeAdjustments = append(rec.FeeAdjustments, a)
		}
	}
	return rows.Err()
}

// readFeeRepricings reads how far each fee plan version's re-pricing has gone, by its seq.
func readFeeRepricings(ctx context.Context, q querier) (map[int]*tariffs.Repricing, error) {
	rows, err := q.Query(ctx, `SELECT seq, purchases, adjusted, charged, finished_at FROM fee_reprice_jobs`)
	if err != nil {
		return nil, fmt.Errorf("read fee re-pricings: %w", err)
	}
	defer rows.Close()
	out := map[int]*tariffs.Repricing{}
	for rows.Next() {
		var (
			seq      int
			r        tariffs.Repricing
			finished *time.Time
		)
		if err := rows.Scan(&seq, &r.Purchases, &r.Adjusted, &r.Charged, &finished); err != nil {
			return nil, fmt.Errorf("read fee re-pricings: %w", err)
		}
		if finished != nil {
			r.FinishedAt = finished.UTC()
		}
		out[seq] = &r
	}
	return out, rows.Err()
}
