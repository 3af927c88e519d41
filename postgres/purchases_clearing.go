package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/joinincard/engine/cards"
	"github.com/joinincard/engine/clearing"
	"github.com/joinincard/engine/events"
	"github.com/joinincard/engine/fees"
	"github.com/joinincard/engine/ledger"
	"github.com/joinincard/engine/purchases"
)

// clearingPurchases plans the clearing records of a consumed batch that name authorizations,
// with the purchases domain, exactly as the authorization API does (clearing.Purchases): a
// purchase.cleared with an authorization_id captures it, and a purchase.refunded of such a
// capture refunds against it. It writes their records once the batch is settled.
type clearingPurchases struct {
	tx       *Tx
	fees     *fees.Catalog
	auths    map[ledger.ID]*AuthorizationRecord
	feePlans map[string]string       // fee plan by merchant id
	byEvent  map[uuid.UUID]ledger.ID // the authorization a capture event captured
	planned  []plannedClearing       // in batch order
}

type plannedClearing struct {
	event  uuid.UUID
	auth   ledger.ID
	close  *purchases.Close
	refund *purchases.Refund
	// record is the clearing record of a capture made before it: it moves nothing, and names
	// the authorization for the refunds that follow it.
	record bool
}

var _ clearing.Purchases = (*clearingPurchases)(nil)

// loadClearingPurchases prefetches what the batch's clearing records of authorized purchases
// name: the authorizations captured, the captures refunded (by their clearing events), and the
// fee plans of their merchants.
func (t *Tx) loadClearingPurchases(ctx context.Context, msgs []clearing.Message) (*clearingPurchases, error) {
	cat, err := t.store.feePlans()
	if err != nil {
		return nil, fmt.Errorf("load fee plans: %w", err)
	}
	cp := &clearingPurchases{tx: t, fees: cat, auths: map[ledger.ID]*AuthorizationRecord{}, feePlans: map[string]string{},
		byEvent: map[uuid.UUID]ledger.ID{}}
	var (
		authIDs   []ledger.ID
		originals []uuid.UUID
	)
	for i := range msgs {
		switch data := msgs[i].Event.Data.(type) {
		case *events.PurchaseCleared:
			if data.AuthorizationID != uuid.Nil {
				authIDs = append(authIDs, ledger.ID(data.AuthorizationID))
			}
		case *events.PurchaseRefunded:
			originals = append(originals, data.OriginalEventID)
		}
	}
	if len(originals) > 0 {
		rows, err := t.Query(ctx, `SELECT event_id, authorization_id FROM purchase_closes WHERE event_id = ANY($1)
			UNION ALL SELECT event_id, authorization_id FROM purchase_clearing_records WHERE event_id = ANY($1)`, originals)
		if err != nil {
			return nil, fmt.Errorf("read captures from clearing: %w", err)
		}
		for rows.Next() {
			var event, auth [16]byte
			if err := rows.Scan(&event, &auth); err != nil {
				rows.Close()
				return nil, fmt.Errorf("read captures from clearing: %w", err)
			}
			cp.byEvent[uuid.UUID(event)] = ledger.ID(auth)
			authIDs = append(authIDs, ledger.ID(auth))
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, fmt.Errorf("read captures from clearing: %w", err)
		}
	}
	if len(authIDs) == 0 {
		return cp, nil
	}
	// Priced by the fee plans of every upload committed before, and none commits before this
	// transaction does.
	if cp.fees, err = t.feePlansHeld(ctx, cp.fees); err != nil {
		return nil, err
	}
	if cp.auths, err = loadAuthorizations(ctx, t, authIDs); err != nil {
		return nil, err
	}
	var merchants []string
	for _, a := range cp.auths {
		merchants = append(merchants, a.MerchantID)
	}
	rows, err := t.Query(ctx, `SELECT merchant_id, fee_plan FROM merchants WHERE merchant_id = ANY($1)`, merchants)
	if err != nil {
		return nil, fmt.Errorf("read merchants' fee plans: %w", err)
	}
	for rows.Next() {
		var id, plan string
		if err := rows.Scan(&id, &plan); err != nil {
			rows.Close()
			return nil, fmt.Errorf("read merchants' fee plans: %w", err)
		}
		cp.feePlans[id] = plan
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read merchants' fee plans: %w", err)
	}
	return cp, nil
}

// legs returns the ids of an event's transfers, leg after leg, derived from the event as every
// transfer of a consumed event is, so that replaying the event names the same transfers.
func legs(e *events.Event) func() ledger.ID {
	leg := 0
	return func() ledger.ID {
		id := clearing.TransferID(e.ID, e.OccurredAt, leg)
		leg++
		return id
	}
}

// authorization returns the authorization a record names, or why the record may not touch it.
func (cp *clearingPurchases) authorization(id ledger.ID, merchantID string, card *cards.Card, currency ledger.Currency) (*AuthorizationRecord, *fees.Plan, string) {
	rec, ok := cp.auths[id]
	switch {
	case !ok:
		return nil, nil, fmt.Sprintf("authorization %s is not known", id)
	case rec.MerchantID != merchantID:
		return nil, nil, fmt.Sprintf("authorization %s is another merchant's", id)
	case rec.CardToken != card.Token:
		return nil, nil, fmt.Sprintf("authorization %s is another card's", id)
	case currency != purchases.Currency:
		return nil, nil, fmt.Sprintf("the record is in %s, authorizations are in %s", currency, purchases.Currency)
	}
	plan, ok := cp.fees.PlanOn(cp.feePlans[rec.MerchantID], purchaseDate(&rec.Authorization))
	if !ok {
		return nil, nil, fmt.Sprintf("merchant %q has no fee plan the engine knows", rec.MerchantID)
	}
	return rec, plan, ""
}

// PlanCapture captures the authorization a purchase.cleared names. A record of a capture already
// made with the same amount (through the API, or an earlier record) is accepted without moving
// money again; with another amount it is rejected.
func (cp *clearingPurchases) PlanCapture(e *events.Event, data *events.PurchaseCleared, card *cards.Card, now time.Time) clearing.Plan {
	rec, plan, why := cp.authorization(ledger.ID(data.AuthorizationID), data.MerchantID, card, data.Amount.Currency)
	if why != "" {
		return clearing.Reject("%s", why)
	}
	if c := rec.Close; c != nil && c.Kind == purchases.Captured {
		if c.Amount == data.Amount.Minor {
			if _, ok := cp.byEvent[e.ID]; !ok {
				cp.byEvent[e.ID] = rec.ID
				cp.planned = append(cp.planned, plannedClearing{event: e.ID, auth: rec.ID, record: true})
			}
			return clearing.Plan{}
		}
		return clearing.Reject("authorization %s is already captured for %s CNY", rec.ID, purchases.FormatAmount(c.Amount))
	}
	c, ts, rf := purchases.PlanCapture(&rec.Authorization, ledger.ID(e.ID), data.Amount.Minor, plan, cp.fees.Foreign, legs(e), now)
	if rf != nil {
		return clearing.Reject("%s", rf.Message)
	}
	rec.ApplyClose(c)
	cp.byEvent[e.ID] = rec.ID
	cp.planned = append(cp.planned, plannedClearing{event: e.ID, auth: rec.ID, close: &c})
	return clearing.Plan{Transfers: ts}
}

// PlanRefund refunds against a purchase captured by a clearing record; ok is false for any other
// original, which the caller refunds as before.
func (cp *clearingPurchases) PlanRefund(e *events.Event, data *events.PurchaseRefunded, card *cards.Card, now time.Time) (clearing.Plan, bool) {
	id, ok := cp.byEvent[data.OriginalEventID]
	if !ok {
		return clearing.Plan{}, false
	}
	rec, plan, why := cp.authorization(id, data.MerchantID, card, data.Amount.Currency)
	if why != "" {
		return clearing.Reject("%s", why), true
	}
	r, ts, rf := purchases.PlanRefund(&rec.Authorization, ledger.ID(e.ID), data.Amount.Minor, plan, cp.fees.Foreign, legs(e), now)
	if rf != nil {
		return clearing.Reject("%s", rf.Message), true
	}
	rec.ApplyRefund(r)
	cp.planned = append(cp.planned, plannedClearing{event: e.ID, auth: rec.ID, refund: &r})
	return clearing.Plan{Transfers: ts}, true
}

// write writes the records of the planned captures and refunds whose events were applied. Each
// was planned on the state the ones before it left; if the ledger refused one that a later one
// on the same authorization built on, the batch is not written: it fails, and is decided again.
func (cp *clearingPurchases) write(ctx context.Context, d *clearing.Decision, now time.Time) error {
	if len(cp.planned) == 0 {
		return nil
	}
	status := make(map[uuid.UUID]clearing.Status, len(d.Processed))
	for _, p := range d.Processed {
		status[p.EventID] = p.Status
	}
	var (
		rows    purchaseRows
		refused = map[ledger.ID]uuid.UUID{}
		records [][]any
	)
	for _, pl := range cp.planned {
		if pl.record {
			if status[pl.event] == clearing.Accepted {
				records = append(records, []any{[16]byte(pl.event), [16]byte(pl.auth), now.UTC()})
			}
			continue
		}
		if status[pl.event] != clearing.Applied {
			refused[pl.auth] = pl.event
			continue
		}
		if first, ok := refused[pl.auth]; ok {
			return fmt.Errorf("clearing record %s was planned on %s, which the ledger refused", pl.event, first)
		}
		rec := cp.auths[pl.auth]
		event := pl.event
		if pl.close != nil {
			rows.closes = append(rows.closes, closeRow{Close: *pl.close, merchantID: rec.MerchantID, cardToken: rec.CardToken, event: &event})
		} else {
			rows.refunds = append(rows.refunds, refundRow{Refund: *pl.refund, merchantID: rec.MerchantID, event: &event})
		}
	}
	if len(records) > 0 {
		if _, err := cp.tx.CopyFrom(ctx, pgx.Identifier{"purchase_clearing_records"}, []string{"event_id", "authorization_id", "created_at"},
			pgx.CopyFromRows(records)); err != nil {
			return fmt.Errorf("write clearing records of captures: %w", err)
		}
	}
	return rows.write(ctx, cp.tx, now)
}
