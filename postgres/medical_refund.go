package postgres

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/joinincard/engine/cards"
	"github.com/joinincard/engine/clearing"
	"github.com/joinincard/engine/ledger"
	"github.com/joinincard/engine/medical"
)

// maxRefundReasonBytes bounds a refund's reason: a line of prose, as a cancellation's.
const maxRefundReasonBytes = maxEndReasonBytes

// refundRequestHash identifies a refund request: the same refund id with another amount or
// reason is refused rather than answered with the first one.
func refundRequestHash(amount int64, reason string) ([]byte, error) {
	raw, err := json.Marshal(struct {
		Amount int64
		Reason string
	}{amount, reason})
	if err != nil {
		return nil, fmt.Errorf("hash refund request: %w", err)
	}
	h := sha256.Sum256(raw)
	return h[:], nil
}

// lockSettlementCard locks the two card accounts of a settlement in the order every medical
// writer takes them, so that a refund, an end and a new bill of one card queue.
func lockSettlementCard(ctx context.Context, tx *Tx, s *storedSettlement) error {
	keys := [][16]byte{s.medicalAccount, s.fundsAccount}
	slices.SortFunc(keys, func(a, b [16]byte) int { return bytes.Compare(a[:], b[:]) })
	if _, err := tx.Exec(ctx, `SELECT id FROM accounts WHERE id = ANY($1) ORDER BY id FOR UPDATE`, keys); err != nil {
		return fmt.Errorf("lock card accounts: %w", err)
	}
	return nil
}

// Refund gives back amount fen of an institution's settlement settlementRef, under the
// institution's refund id refundRef: the fund's, the personal account's and the cash parts in
// proportion to what is left of each, half-even to the fen with the remainder in cash
// (medical.PlanRefund), each by a ledger transfer from the institution back to its payer, as one
// linked group; the accumulators lose the refund's share, in the same transaction. Refunds of one
// settlement may follow each other up to its total; past it they are refused
// (refund_exceeds_settlement).
//
// The same refund id again with the same amount and reason answers the first refund, with
// replayed true; with another, it is refused (refund_id_reused). A cancelled or reversed
// settlement is not refunded (already_cancelled, already_reversed), nor a bill of an inpatient
// stay on its own (stay_bill): a trued-up stay is refunded through its final bill, whose refunds
// apportion the whole stay's parts and accumulators (medical.RefundBase). A refund counts in the
// fund's business day it is made, as a settlement does (see Settle): one that finds its day
// reported closed lands in the next, or is refused day_closed.
func (m *Medical) Refund(ctx context.Context, in medical.Institution, settlementRef, refundRef string, amount int64,
	reason string) (medical.Refund, medical.Settlement, bool, error) {
	var (
		out      medical.Refund
		settled  medical.Settlement
		replayed bool
		gate     dayGate
	)
	if err := checkRef(settlementRef); err != nil {
		return out, settled, false, err
	}
	if err := checkRef(refundRef); err != nil {
		return out, settled, false, fmt.Errorf("%w: refund id must be 1 to %d printable ascii bytes without spaces", medical.ErrInvalid, maxSettlementRefBytes)
	}
	if reason == "" || len(reason) > maxRefundReasonBytes {
		return out, settled, false, fmt.Errorf("%w: reason must be 1 to %d bytes", medical.ErrInvalid, maxRefundReasonBytes)
	}
	if amount <= 0 || amount > medical.MaxAmount {
		return out, settled, false, fmt.Errorf("%w: amount must be positive and at most %s", medical.ErrInvalid, medical.FormatAmount(medical.MaxAmount))
	}
	hash, err := refundRequestHash(amount, reason)
	if err != nil {
		return out, settled, false, err
	}
	err = m.store.InTx(ctx, nil, func(ctx context.Context, tx *Tx) error {
		replayed = false
		s, found, err := readSettlement(ctx, tx, in.ID, settlementRef)
		if err != nil {
			return err
		}
		if !found {
			return medical.Refuse(medical.ReasonUnknownSettlement, "no settlement %q of %s", settlementRef, in.ID)
		}
		// Everything below reads what the card's earlier writers committed: they held the lock.
		if err := lockSettlementCard(ctx, tx, &s); err != nil {
			return err
		}
		if s, _, err = readSettlement(ctx, tx, in.ID, settlementRef); err != nil {
			return err
		}
		var prior []byte
		err = tx.QueryRow(ctx, `SELECT request_hash FROM medical_refunds WHERE settlement_id = $1 AND refund_ref = $2`,
			s.ID, refundRef).Scan(&prior)
		switch {
		case err == nil && !bytes.Equal(prior, hash):
			return medical.Refuse(medical.ReasonRefundIDReused, "refund id %q of settlement %q was used for another refund", refundRef, settlementRef)
		case err == nil:
			for _, r := range s.Refunds {
				if r.Ref == refundRef {
					out, settled, replayed = r, s.Settlement, true
					return nil
				}
			}
			return fmt.Errorf("refund %q of settlement %s vanished within its transaction", refundRef, s.ID)
		case !errors.Is(err, pgx.ErrNoRows):
			return fmt.Errorf("read refund: %w", err)
		}
		switch {
		case s.End != nil && s.End.Kind == medical.Cancelled:
			return medical.Refuse(medical.ReasonAlreadyCancelled, "settlement %q was cancelled on %s", settlementRef, s.End.Day)
		case s.End != nil:
			return medical.Refuse(medical.ReasonAlreadyReversed, "settlement %q was reversed on %s", settlementRef, s.End.Day)
		case s.Stay != nil && s.TrueUp == nil:
			return medical.Refuse(medical.ReasonStayBill, "settlement %q is a bill of stay %q: refund the stay through its final bill once it has settled",
				settlementRef, s.Stay.Ref)
		}
		now := m.store.Now().UTC().Truncate(time.Microsecond)
		// The refund counts in the fund's day: held open until the commit, or run again in the
		// next day if it has been reported closed.
		if err := gate.enter(ctx, tx, s.Fund, medical.DayOf(now), refuseClosedDay(s.Fund, medical.DayOf(now))); err != nil {
			return err
		}
		r, err := m.refund(ctx, tx, &s, refundRef, hash, amount, reason, now)
		if err != nil {
			return err
		}
		stored, _, err := readSettlement(ctx, tx, in.ID, settlementRef)
		if err != nil {
			return err
		}
		out, settled = r, stored.Settlement
		for _, x := range stored.Refunds {
			if x.ID == r.ID {
				out = x
			}
		}
		return nil
	})
	return out, settled, replayed, err
}

// refund writes a refund of a locked settlement: its transfers, its record and the accumulators.
func (m *Medical) refund(ctx context.Context, tx *Tx, s *storedSettlement, ref string, hash []byte, amount int64,
	reason string, now time.Time) (medical.Refund, error) {
	left, err := medical.RefundableOf(medical.RefundBase(&s.Settlement), s.Refunds)
	if err != nil {
		return medical.Refund{}, fmt.Errorf("settlement %s: %w", s.ID, err)
	}
	parts, delta, err := medical.PlanRefund(left, amount)
	if err != nil {
		return medical.Refund{}, err
	}
	acc, version, err := readAccumulators(ctx, tx, s.CardToken, s.Fund, s.PolicyYear)
	if err != nil {
		return medical.Refund{}, err
	}
	restored, err := acc.Minus(delta)
	if err != nil {
		return medical.Refund{}, fmt.Errorf("settlement %s: accumulators hold less than the refund takes: %w", s.ID, err)
	}
	id, err := uuid.NewV7()
	if err != nil {
		return medical.Refund{}, fmt.Errorf("new refund id: %w", err)
	}
	legs := []leg{
		{parts.Fund, clearing.PartyAccount(clearing.PartyInsuranceFund, s.Fund)},
		{parts.Personal, s.medicalAccount},
		{parts.Cash, s.fundsAccount},
	}
	ids, res, err := postLegs(ctx, tx, id, now, s.ID, s.instAc, legs, medical.CodeRefund)
	if err != nil {
		return medical.Refund{}, err
	}
	for i, r := range res.Results {
		if r != ledger.Created {
			return medical.Refund{}, fmt.Errorf("refund of settlement %s: transfer %d: %s", s.ID, i, r)
		}
	}
	personal, funds, err := balancesAfter(ctx, tx, res.Touched, s.medicalAccount, s.fundsAccount)
	if err != nil {
		return medical.Refund{}, err
	}
	deltaRaw, err := json.Marshal(delta)
	if err != nil {
		return medical.Refund{}, fmt.Errorf("encode refund accumulated: %w", err)
	}
	day := medical.DayOf(now)
	_, err = tx.Exec(ctx, `INSERT INTO medical_refunds (id, settlement_id, refund_ref, request_hash, reason, fund_city,
			institution_id, business_day, refunded_at, amount, fund_part, personal_part, cash_part, fund_transfer_id,
			personal_transfer_id, cash_transfer_id, accumulated, personal_balance_after, funds_available_after)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19)`,
		id, s.ID, ref, hash, reason, s.Fund, s.Institution, time.Date(day.Year, day.Month, day.Day, 0, 0, 0, 0, time.UTC), now,
		amount, parts.Fund, parts.Personal, parts.Cash, ids[0], ids[1], ids[2], string(deltaRaw), personal.Net(), funds.Available())
	if err != nil {
		return medical.Refund{}, fmt.Errorf("write refund: %w", err)
	}
	if err := writeAccumulators(ctx, tx.Tx, s.CardToken, s.Fund, s.PolicyYear, version+1, restored, s.ID, "refunded", now); err != nil {
		return medical.Refund{}, err
	}
	return medical.Refund{ID: id, SettlementID: s.ID, Ref: ref, Reason: reason, Amount: amount, Parts: parts, Delta: delta,
		Day: day, At: now, PersonalBalanceAfter: personal.Net(), FundsAvailableAfter: funds.Available()}, nil
}

// leg is one part moved between its payer and an institution: positive, the payer pays the
// institution; negative, the institution gives back to the payer.
type leg struct {
	amount int64
	payer  ledger.ID
}

// postLegs applies the non-zero legs as one linked group of transfers with code, ids derived from
// id and now, user data the settlement. A positive leg moves its amount from the payer to the
// institution; refunds pass their parts negated. It returns each leg's transfer id, nil for zero.
func postLegs(ctx context.Context, tx *Tx, id uuid.UUID, now time.Time, settlement uuid.UUID, institution ledger.ID,
	legs []leg, code ledger.Code) ([3]*[16]byte, BatchResult, error) {
	var (
		ids   [3]*[16]byte
		batch []ledger.Transfer
	)
	for i, l := range legs {
		if l.amount == 0 {
			continue
		}
		t := ledger.Transfer{ID: clearing.TransferID(id, now, i), DebitAccountID: l.payer, CreditAccountID: institution,
			Amount: l.amount, UserData: ledger.ID(settlement), Code: code, Flags: ledger.Linked}
		if code == medical.CodeRefund || l.amount < 0 {
			t.DebitAccountID, t.CreditAccountID, t.Amount = institution, l.payer, abs(l.amount)
		}
		ids[i] = nullID(t.ID)
		batch = append(batch, t)
	}
	if len(batch) == 0 {
		return ids, BatchResult{}, nil
	}
	batch[len(batch)-1].Flags = 0
	res, err := tx.Apply(ctx, batch)
	if err != nil {
		return ids, res, err
	}
	return ids, res, nil
}

func abs(v int64) int64 {
	if v < 0 {
		return -v
	}
	return v
}

// readAfterSettlement reads what followed a settlement into it: its refunds, and whether it is a
// bill of an inpatient stay, with the stay's true-up on its final bill.
func readAfterSettlement(ctx context.Context, q querier, s *medical.Settlement) error {
	rows, err := q.Query(ctx, `SELECT id, refund_ref, reason, business_day, refunded_at, amount, fund_part, personal_part,
			cash_part, fund_transfer_id, personal_transfer_id, cash_transfer_id, accumulated, personal_balance_after,
			funds_available_after
		FROM medical_refunds WHERE settlement_id = $1 ORDER BY refunded_at, id`, s.ID)
	if err != nil {
		return fmt.Errorf("read refunds: %w", err)
	}
	s.Refunds = nil
	for rows.Next() {
		var (
			r                   = medical.Refund{SettlementID: s.ID}
			day                 time.Time
			fundT, persT, cashT *[16]byte
			raw                 []byte
		)
		if err := rows.Scan(&r.ID, &r.Ref, &r.Reason, &day, &r.At, &r.Amount, &r.Parts.Fund, &r.Parts.Personal, &r.Parts.Cash,
			&fundT, &persT, &cashT, &raw, &r.PersonalBalanceAfter, &r.FundsAvailableAfter); err != nil {
			rows.Close()
			return fmt.Errorf("read refunds: %w", err)
		}
		if err := json.Unmarshal(raw, &r.Delta); err != nil {
			rows.Close()
			return fmt.Errorf("read refunds: %w", err)
		}
		r.Delta, r.Day, r.At = r.Delta.Clone(), dateOf(day), r.At.UTC()
		r.FundTransfer, r.PersonalTransfer, r.CashTransfer = idOf(fundT), idOf(persT), idOf(cashT)
		s.Refunds = append(s.Refunds, r)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read refunds: %w", err)
	}
	var stay medical.StayBill
	var kind string
	err = q.QueryRow(ctx, `SELECT stay_ref, bill FROM medical_stay_bills WHERE settlement_id = $1`, s.ID).Scan(&stay.Ref, &kind)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		s.Stay, s.TrueUp = nil, nil
		return nil
	case err != nil:
		return fmt.Errorf("read stay bill: %w", err)
	}
	stay.Kind = medical.StayBillKind(kind)
	s.Stay = &stay
	s.TrueUp = nil
	if stay.Kind != medical.StayFinal {
		return nil
	}
	u, found, err := readTrueUp(ctx, q, s.Institution, stay.Ref)
	if err != nil {
		return err
	}
	if found {
		// The whole stay was priced where its final bill was: the insured city's policy, and
		// the treating city when it is another.
		u.Whole.InsuredCity, u.Whole.Elsewhere = s.Split.InsuredCity, s.Split.Elsewhere
		s.TrueUp = &u
	}
	return nil
}

func idOf(p *[16]byte) ledger.ID {
	if p == nil {
		return ledger.ID{}
	}
	return ledger.ID(*p)
}

// checkEndable refuses to cancel or reverse a settlement with refunds (refund what is left of it
// instead), or a bill of a stay whose final bill has trued it up. The caller holds the card's lock.
func checkEndable(ctx context.Context, tx *Tx, s *medical.Settlement) error {
	var refunds, trued int
	err := tx.QueryRow(ctx, `SELECT
			(SELECT count(*) FROM medical_refunds WHERE settlement_id = $1),
			(SELECT count(*) FROM medical_stay_bills b JOIN medical_stay_trueups u
				ON u.institution_id = b.institution_id AND u.stay_ref = b.stay_ref WHERE b.settlement_id = $1)`, s.ID).
		Scan(&refunds, &trued)
	if err != nil {
		return fmt.Errorf("read settlement refunds: %w", err)
	}
	switch {
	case refunds > 0:
		return medical.Refuse(medical.ReasonSettlementRefunded, "settlement %q has refunds: refund what is left of it instead", s.Ref)
	case trued > 0:
		return medical.Refuse(medical.ReasonStayClosed, "settlement %q is a bill of a stay its final bill has trued up", s.Ref)
	}
	return nil
}

// addRefundTotals adds a fund's day's refunds (negatively) and stays' true-ups to its totals by
// institution.
func addRefundTotals(ctx context.Context, tx pgx.Tx, fund string, date time.Time, at func(string) *medical.Totals) error {
	// sum() of BIGINT is NUMERIC: scanning into int64 fails loudly on overflow instead of wrapping.
	rows, err := tx.Query(ctx, `SELECT institution_id, 'refund', count(*), sum(amount), sum(fund_part), sum(personal_part), sum(cash_part)
		FROM medical_refunds WHERE fund_city = $1 AND business_day = $2 GROUP BY institution_id
		UNION ALL
		SELECT institution_id, 'trueup', count(*), CAST(0 AS DECIMAL), sum(fund_adjustment), sum(personal_adjustment), sum(cash_adjustment)
		FROM medical_stay_trueups WHERE fund_city = $1 AND business_day = $2 GROUP BY institution_id`, fund, date)
	if err != nil {
		return fmt.Errorf("reconciliation refunds: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			id, kind string
			n        int64
			t        medical.Totals
		)
		if err := rows.Scan(&id, &kind, &n, &t.Total, &t.Fund, &t.Personal, &t.Cash); err != nil {
			return fmt.Errorf("reconciliation refunds: %w", err)
		}
		if kind == "refund" {
			t.Refunds = n
			t.Total, t.Fund, t.Personal, t.Cash = -t.Total, -t.Fund, -t.Personal, -t.Cash
		} else {
			t.TrueUps = n
		}
		at(id).Add(t)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("reconciliation refunds: %w", err)
	}
	return nil
}

// detailRefundLines are the detail lines of a day's refunds (amounts negative) and stays'
// true-ups (the adjustments, total zero), in the columns of the settlements' lines.
const detailRefundLines = `
		UNION ALL
		SELECT 'refund', r.refunded_at, s.institution_id, s.settlement_ref, s.id, s.card_token, s.visit_kind, s.tier,
			s.policy_id, -r.amount, -r.fund_part, -r.personal_part, -r.cash_part, s.treating_city, s.registered
		FROM medical_refunds r JOIN medical_settlements s ON s.id = r.settlement_id
		WHERE r.fund_city = $1 AND r.business_day = $2
		UNION ALL
		SELECT 'stay_adjustment', u.trued_up_at, s.institution_id, s.settlement_ref, s.id, s.card_token, s.visit_kind, s.tier,
			s.policy_id, 0, u.fund_adjustment, u.personal_adjustment, u.cash_adjustment, s.treating_city, s.registered
		FROM medical_stay_trueups u JOIN medical_settlements s ON s.id = u.final_settlement_id
		WHERE u.fund_city = $1 AND u.business_day = $2`

// --- inpatient stays ----------------------------------------------------------------------------

// stayRequestHash identifies a stay bill's request: the settlement's, with the stay.
func stayRequestHash(token string, b medical.Bill, stay medical.StayBill) ([]byte, error) {
	h, err := requestHash(token, b)
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(append(append(h, []byte(stay.Ref+"\x00")...), []byte(stay.Kind)...))
	return sum[:], nil
}

// SettleStay settles bill b as a bill of the inpatient stay stay.Ref, as Settle settles a bill:
// an interim bill is priced on the accumulators as they stand, like any bill. A final bill is
// settled so too, and then, in the same transaction, trues the stay up (medical.TrueUpStay): the
// whole stay, every bill of it not cancelled or reversed, is priced as one bill on the
// accumulators without the bills' contributions, and the difference from what its bills paid is
// posted as adjustments of the fund, the personal account and cash, each a ledger transfer
// between its payer and the institution, either way. The accumulators end as the one bill would
// leave them.
//
// A stay's bills are of one card, none of a later policy year than a bill after it (stay_mismatch
// otherwise): a stay across the new year counts in its final bill's year, and the true-up takes
// what its earlier bills added out of their own years' accumulators. Once its final
// bill has settled, no bill joins it (stay_closed). A final bill whose adjustment takes more cash
// than the card's funds have is refused whole (insufficient_funds).
func (m *Medical) SettleStay(ctx context.Context, in medical.Institution, ref, token string, b medical.Bill,
	stay medical.StayBill) (medical.Settlement, bool, error) {
	if err := checkRef(ref); err != nil {
		return medical.Settlement{}, false, err
	}
	if !slices.Contains(medical.VisitKinds(), b.VisitKind) {
		return medical.Settlement{}, false, fmt.Errorf("%w: visit kind %q, want one of %q", medical.ErrInvalid, b.VisitKind, medical.VisitKinds())
	}
	if err := medical.ValidateBill(b.Lines); err != nil {
		return medical.Settlement{}, false, err
	}
	if err := stay.Validate(b.VisitKind); err != nil {
		return medical.Settlement{}, false, err
	}
	hash, err := stayRequestHash(token, b, stay)
	if err != nil {
		return medical.Settlement{}, false, err
	}
	return m.settle(ctx, in, ref, token, b, hash, func(ctx context.Context, tx *Tx, card *cards.Card, s *medical.Settlement) error {
		return m.stayBill(ctx, tx, in, card, s, stay)
	})
}

// stayBill records settlement s as a bill of its stay and, for the final bill, trues the stay up.
func (m *Medical) stayBill(ctx context.Context, tx *Tx, in medical.Institution, card *cards.Card, s *medical.Settlement,
	stay medical.StayBill) error {
	if _, found, err := readTrueUp(ctx, tx, in.ID, stay.Ref); err != nil {
		return err
	} else if found {
		return medical.Refuse(medical.ReasonStayClosed, "stay %q was trued up by its final bill", stay.Ref)
	}
	var mismatched int
	err := tx.QueryRow(ctx, `SELECT count(*) FROM medical_stay_bills WHERE institution_id = $1 AND stay_ref = $2
		AND (card_token <> $3 OR policy_year > $4)`, in.ID, stay.Ref, s.CardToken, int32(s.PolicyYear)).Scan(&mismatched)
	if err != nil {
		return fmt.Errorf("read stay: %w", err)
	}
	if mismatched > 0 {
		return medical.Refuse(medical.ReasonStayMismatch, "stay %q has bills of another card or a later policy year", stay.Ref)
	}
	_, err = tx.Exec(ctx, `INSERT INTO medical_stay_bills (settlement_id, institution_id, stay_ref, bill, card_token, policy_year, settled_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7)`, s.ID, in.ID, stay.Ref, string(stay.Kind), s.CardToken, int32(s.PolicyYear), s.SettledAt)
	if err != nil {
		return fmt.Errorf("write stay bill: %w", err)
	}
	if stay.Kind == medical.StayFinal {
		if err := m.trueUp(ctx, tx, in, card, s, stay.Ref); err != nil {
			return err
		}
	}
	stored, found, err := readSettlement(ctx, tx, in.ID, s.Ref)
	if err != nil {
		return err
	}
	if !found {
		return fmt.Errorf("settlement %s vanished within its transaction", s.ID)
	}
	*s = stored.Settlement
	return nil
}

// trueUp trues a stay up at its final bill final, already applied in this transaction.
func (m *Medical) trueUp(ctx context.Context, tx *Tx, in medical.Institution, card *cards.Card, final *medical.Settlement, stayRef string) error {
	rows, err := tx.Query(ctx, `SELECT `+settlementColumns+` FROM medical_settlements s
		LEFT JOIN medical_settlement_ends e ON e.settlement_id = s.id
		JOIN medical_stay_bills b ON b.settlement_id = s.id
		WHERE b.institution_id = $1 AND b.stay_ref = $2 AND e.settlement_id IS NULL
		ORDER BY s.settled_at, s.id`, in.ID, stayRef)
	if err != nil {
		return fmt.Errorf("read stay bills: %w", err)
	}
	var (
		items    []medical.Item
		billed   medical.Parts
		released = medical.Accumulators{}.Clone()
		// earlier holds what the bills of a stay admitted before the new year added to the
		// accumulators of their own fund and policy year.
		earlier = map[fundYear]medical.Accumulators{}
		ids     []uuid.UUID
	)
	for rows.Next() {
		b, err := scanSettlement(rows)
		if err != nil {
			rows.Close()
			return fmt.Errorf("read stay bills: %w", err)
		}
		items = append(items, b.Items...)
		billed = billed.Plus(medical.PartsOf(b.Split))
		switch {
		case b.PolicyYear == final.PolicyYear:
			released = released.Plus(b.Split.Delta)
		case b.PolicyYear < final.PolicyYear:
			k := fundYear{b.Fund, b.PolicyYear}
			if _, ok := earlier[k]; !ok {
				earlier[k] = medical.Accumulators{}.Clone()
			}
			earlier[k] = earlier[k].Plus(b.Split.Delta)
		default:
			rows.Close()
			return medical.Refuse(medical.ReasonStayMismatch, "stay %q has a bill of %d, after its final bill's year %d",
				stayRef, b.PolicyYear, final.PolicyYear)
		}
		ids = append(ids, b.ID)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read stay bills: %w", err)
	}
	// A stay across the new year counts in the year of its discharge, as one bill of that year:
	// what its bills of an earlier year added to that year's accumulators is taken out of them.
	for _, k := range slices.SortedFunc(maps.Keys(earlier), fundYear.compare) {
		acc, version, err := readAccumulators(ctx, tx, card.Token, k.fund, k.year)
		if err != nil {
			return err
		}
		left, err := acc.Minus(earlier[k])
		if err != nil {
			return fmt.Errorf("stay %q: the accumulators of %d hold less than its bills of that year added: %w", stayRef, k.year, err)
		}
		if err := writeAccumulators(ctx, tx.Tx, card.Token, k.fund, k.year, version+1, left, final.ID, "trued_up", final.SettledAt); err != nil {
			return err
		}
	}
	policy, ok := m.policies().On(card.InsuranceCity, final.Day)
	if !ok || policy.ID() != final.PolicyID {
		return fmt.Errorf("stay %q: the final bill's policy %s is not in force on %s", stayRef, final.PolicyID, final.Day)
	}
	acc, version, err := readAccumulators(ctx, tx, card.Token, card.InsuranceCity, final.PolicyYear)
	if err != nil {
		return err
	}
	personal, _, err := readCardAccounts(ctx, tx.Tx, card)
	if err != nil {
		return err
	}
	u, err := policy.TrueUpStay(items, final.Split.Elsewhere, in.Tier, billed, released, acc, personal.Available())
	if err != nil {
		return err
	}
	after, err := u.After(acc)
	if err != nil {
		return fmt.Errorf("stay %q: %w", stayRef, err)
	}
	id, err := uuid.NewV7()
	if err != nil {
		return fmt.Errorf("new true-up id: %w", err)
	}
	now := final.SettledAt
	legs := []leg{
		{u.Adjustment.Fund, clearing.PartyAccount(clearing.PartyInsuranceFund, card.InsuranceCity)},
		{u.Adjustment.Personal, card.MedicalAccount},
		{u.Adjustment.Cash, card.FundsAccount},
	}
	tids, res, err := postLegs(ctx, tx, id, now, final.ID, in.Account, legs, medical.CodeStayAdjustment)
	if err != nil {
		return err
	}
	for i, r := range res.Results {
		switch {
		case r == ledger.Created || r == ledger.LinkedEventFailed:
		case r == ledger.InsufficientFunds && u.Adjustment.Cash > 0:
			return medical.Refuse(medical.ReasonInsufficientFunds,
				"the card's funds cannot pay the stay's cash adjustment of %s", medical.FormatAmount(u.Adjustment.Cash))
		case r == ledger.InsufficientFunds && u.Adjustment.Personal > 0:
			return conflictError{fmt.Errorf("personal medical account moved under the true-up")}
		default:
			return fmt.Errorf("stay %q: adjustment transfer %d: %s", stayRef, i, r)
		}
	}
	pAfter, fAfter, err := balancesAfter(ctx, tx, res.Touched, card.MedicalAccount, card.FundsAccount)
	if err != nil {
		return err
	}
	billsRaw, err := json.Marshal(ids)
	if err != nil {
		return fmt.Errorf("encode stay bills: %w", err)
	}
	wholeRaw, err := json.Marshal(wholeJSONOf(u.Whole))
	if err != nil {
		return fmt.Errorf("encode stay split: %w", err)
	}
	releasedRaw, err := json.Marshal(u.Released)
	if err != nil {
		return fmt.Errorf("encode stay released: %w", err)
	}
	day := time.Date(final.Day.Year, final.Day.Month, final.Day.Day, 0, 0, 0, 0, time.UTC)
	_, err = tx.Exec(ctx, `INSERT INTO medical_stay_trueups (institution_id, stay_ref, id, final_settlement_id, card_token,
			fund_city, business_day, trued_up_at, stay_total, whole_fund, whole_personal, whole_cash, billed_fund,
			billed_personal, billed_cash, fund_adjustment, personal_adjustment, cash_adjustment, fund_transfer_id,
			personal_transfer_id, cash_transfer_id, bills, whole_split, released, personal_balance_after, funds_available_after)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, $23,
			$24, $25, $26)`,
		in.ID, stayRef, id, final.ID, card.Token, card.InsuranceCity, day, now, u.Whole.Total, u.Whole.Fund, u.Whole.Personal,
		u.Whole.Cash, billed.Fund, billed.Personal, billed.Cash, u.Adjustment.Fund, u.Adjustment.Personal, u.Adjustment.Cash,
		tids[0], tids[1], tids[2], string(billsRaw), string(wholeRaw), string(releasedRaw), pAfter.Net(), fAfter.Available())
	if err != nil {
		return fmt.Errorf("write stay true-up: %w", err)
	}
	return writeAccumulators(ctx, tx.Tx, card.Token, card.InsuranceCity, final.PolicyYear, version+1, after, final.ID, "trued_up", now)
}

// fundYear names a cardholder's accumulators of one fund and policy year.
type fundYear struct {
	fund string
	year int
}

func (a fundYear) compare(b fundYear) int {
	if c := cmp.Compare(a.year, b.year); c != 0 {
		return c
	}
	return cmp.Compare(a.fund, b.fund)
}

// wholeJSON is a stay's whole split as its true-up keeps it: the breakdown, the trail and the
// accumulators it adds (the three parts have their own columns).
type wholeJSON struct {
	OutOfCatalogue       int64                `json:"out_of_catalogue"`
	PersonalAccountFirst int64                `json:"personal_account_first"`
	ClassBSelfPay        int64                `json:"class_b_self_pay"`
	Deductible           int64                `json:"deductible"`
	CoPayment            int64                `json:"co_payment"`
	OverCap              int64                `json:"over_cap"`
	Rules                []medical.Rule       `json:"rules"`
	Delta                medical.Accumulators `json:"delta"`
}

func wholeJSONOf(s medical.Split) wholeJSON {
	return wholeJSON{OutOfCatalogue: s.OutOfCatalogue, PersonalAccountFirst: s.PersonalAccountFirst, ClassBSelfPay: s.ClassBSelfPay,
		Deductible: s.Deductible, CoPayment: s.CoPayment, OverCap: s.OverCap, Rules: s.Rules, Delta: s.Delta}
}

// readTrueUp reads an institution's stay's true-up.
func readTrueUp(ctx context.Context, q querier, institution, stayRef string) (medical.TrueUp, bool, error) {
	u := medical.TrueUp{StayRef: stayRef}
	var (
		day                             time.Time
		fundT, persT, cashT             *[16]byte
		billsRaw, wholeRaw, releasedRaw []byte
		w                               wholeJSON
		sp                              = &u.Whole
	)
	err := q.QueryRow(ctx, `SELECT id, business_day, trued_up_at, stay_total, whole_fund, whole_personal, whole_cash,
			billed_fund, billed_personal, billed_cash, fund_adjustment, personal_adjustment, cash_adjustment,
			fund_transfer_id, personal_transfer_id, cash_transfer_id, bills, whole_split, released,
			personal_balance_after, funds_available_after
		FROM medical_stay_trueups WHERE institution_id = $1 AND stay_ref = $2`, institution, stayRef).
		Scan(&u.ID, &day, &u.At, &sp.Total, &sp.Fund, &sp.Personal, &sp.Cash, &u.Billed.Fund, &u.Billed.Personal,
			&u.Billed.Cash, &u.Adjustment.Fund, &u.Adjustment.Personal, &u.Adjustment.Cash, &fundT, &persT, &cashT,
			&billsRaw, &wholeRaw, &releasedRaw, &u.PersonalBalanceAfter, &u.FundsAvailableAfter)
	if errors.Is(err, pgx.ErrNoRows) {
		return u, false, nil
	}
	if err != nil {
		return u, false, fmt.Errorf("read stay true-up: %w", err)
	}
	if err := json.Unmarshal(billsRaw, &u.Bills); err != nil {
		return u, false, fmt.Errorf("read stay true-up bills: %w", err)
	}
	if err := json.Unmarshal(wholeRaw, &w); err != nil {
		return u, false, fmt.Errorf("read stay true-up split: %w", err)
	}
	if err := json.Unmarshal(releasedRaw, &u.Released); err != nil {
		return u, false, fmt.Errorf("read stay true-up released: %w", err)
	}
	sp.OutOfCatalogue, sp.PersonalAccountFirst, sp.ClassBSelfPay, sp.Deductible, sp.CoPayment, sp.OverCap =
		w.OutOfCatalogue, w.PersonalAccountFirst, w.ClassBSelfPay, w.Deductible, w.CoPayment, w.OverCap
	sp.Rules, sp.Delta, u.Released = w.Rules, w.Delta.Clone(), u.Released.Clone()
	u.Day, u.At = dateOf(day), u.At.UTC()
	u.FundTransfer, u.PersonalTransfer, u.CashTransfer = idOf(fundT), idOf(persT), idOf(cashT)
	return u, true, nil
}
