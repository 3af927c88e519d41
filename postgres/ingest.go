package postgres

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/joinincard/engine/cards"
	"github.com/joinincard/engine/cities"
	"github.com/joinincard/engine/clearing"
	"github.com/joinincard/engine/events"
	"github.com/joinincard/engine/ledger"
)

// Ingest decides and applies a batch of consumed messages in one transaction with their cursors:
// it reads what the batch names (earlier decisions on its event ids, its cards, the parties it
// pays), decides every message in order, opens the accounts of new cards, applies the transfers,
// and writes the decisions, dead letters, taps and registry changes. A crash at any point leaves
// either all of it or none of it, cursor included.
func (s *Store) Ingest(ctx context.Context, cursors []Cursor, msgs []clearing.Message) (*clearing.Decision, error) {
	d, _, err := s.IngestTimed(ctx, cursors, msgs)
	return d, err
}

// IngestTiming is where a batch's time went.
type IngestTiming struct {
	Ingest   time.Duration // reading, deciding, applying and writing, in the attempt that committed
	Commit   time.Duration // the commit itself
	Attempts int
}

// IngestTimed is Ingest, saying where the time went.
func (s *Store) IngestTimed(ctx context.Context, cursors []Cursor, msgs []clearing.Message) (*clearing.Decision, IngestTiming, error) {
	var (
		d          *clearing.Decision
		timing     IngestTiming
		start, end time.Time
	)
	err := s.InTx(ctx, cursors, func(ctx context.Context, tx *Tx) error {
		timing.Attempts++
		start = time.Now()
		var err error
		d, err = tx.Ingest(ctx, msgs)
		end = time.Now()
		return err
	})
	timing.Ingest, timing.Commit = end.Sub(start), time.Since(end)
	if err == nil && len(d.NewCards) > 0 {
		// Registered and committed: their immutable part holds for good.
		registered := make([]cards.Card, len(d.NewCards))
		for i, c := range d.NewCards {
			registered[i] = *c
		}
		s.cards.put(registered)
	}
	return d, timing, err
}

// Ingest is Store.Ingest within a transaction. A refund of a purchase cleared earlier in the same
// messages needs the ledger's answer to that purchase: the messages from it on are decided after
// the ones before are applied, in the same transaction (clearing.Independent).
func (t *Tx) Ingest(ctx context.Context, msgs []clearing.Message) (*clearing.Decision, error) {
	var d *clearing.Decision
	for len(msgs) > 0 {
		n := max(1, clearing.Independent(msgs))
		part, err := t.ingest(ctx, msgs[:n])
		if err != nil {
			return nil, err
		}
		if d == nil {
			d = part
		} else {
			d.Merge(part)
		}
		msgs = msgs[n:]
	}
	if d == nil {
		d = &clearing.Decision{}
	}
	return d, nil
}

// ingest decides and applies messages none of which refunds a purchase cleared among them.
func (t *Tx) ingest(ctx context.Context, msgs []clearing.Message) (*clearing.Decision, error) {
	// The first attempt takes the batch's event ids for new, as Apply takes its transfer ids:
	// a redelivered event fails on a primary key when written, and the batch runs again with
	// every id looked up.
	view, err := t.loadView(ctx, msgs, t.attempt > 1)
	if err != nil {
		return nil, err
	}
	planner, err := t.loadClearingPurchases(ctx, msgs)
	if err != nil {
		return nil, err
	}
	view.Purchases = planner
	if tk := t.store.Tokenizer; tk != nil {
		view.Fingerprint = tk.Fingerprint
	}
	now := t.store.Now()
	d := clearing.Decide(msgs, view, now)
	var specs []AccountSpec
	for _, c := range d.NewCards {
		for _, a := range c.Accounts() {
			specs = append(specs, AccountSpec{Account: a, Name: a.Kind.String() + " of card " + c.CardNumberMasked})
		}
	}
	if err := t.CreateAccounts(ctx, specs); err != nil {
		return nil, err
	}
	res, err := t.Apply(ctx, d.Transfers)
	if err != nil {
		return nil, err
	}
	raw := make(map[sourceOffset][]byte, len(msgs))
	for i := range msgs {
		raw[sourceOffset{msgs[i].Source, msgs[i].Offset}] = msgs[i].Raw
	}
	if err := d.Settle(res.Results, func(source string, offset int64) []byte { return raw[sourceOffset{source, offset}] }); err != nil {
		return nil, fmt.Errorf("settle batch: %w", err)
	}
	if err := planner.write(ctx, d, now); err != nil {
		return nil, err
	}
	// Taps are decided here, in the batch's transaction, when the fare tables are at hand: after
	// the cards the batch registered are written, so that a tap of one of them finds it.
	var taps []clearing.Tap
	if t.store.TransitFares != nil {
		taps, d.Taps = d.Taps, nil
	}
	if err := t.writeDecision(ctx, d, now); err != nil {
		return nil, err
	}
	if len(taps) > 0 {
		// Every tap here names a card the view found (clearing refused the others), registered
		// before or by this batch.
		owners := make(map[string]string, len(taps))
		for i := range taps {
			if c, ok := view.Cards[taps[i].CardToken]; ok {
				owners[taps[i].CardToken] = c.Token
			}
		}
		if err := t.decideKafkaTaps(ctx, t.store.TransitFares(), taps, now, owners); err != nil {
			return nil, err
		}
		d.Taps = taps
	}
	return d, nil
}

// processedLookup reads earlier decisions by event id, through the view that completes the narrow
// records from their transfers: a probe of the primary key each, and of the transfers' for a
// narrow one.
const processedLookup = `SELECT event_id, hash, type, status, reason, transfer_id, source, source_offset
	FROM processed_events WHERE event_id = ANY($1)`

type sourceOffset struct {
	source string
	offset int64
}

// loadView prefetches what deciding msgs needs, in two round trips: earlier decisions and cards,
// then parties. Earlier decisions are read for the originals that refunds name and, when all is
// true, for every event of the batch.
func (t *Tx) loadView(ctx context.Context, msgs []clearing.Message, all bool) (*clearing.View, error) {
	v := &clearing.View{
		Cards:     map[string]*cards.Card{},
		Parties:   map[ledger.ID]bool{},
		Processed: make(map[uuid.UUID]clearing.Processed, len(msgs)), // every event is decided into it
		Cleared:   map[uuid.UUID]*clearing.ClearedPurchase{},
	}
	var (
		ids, originals []uuid.UUID
		tokens         []string
	)
	seenToken := map[string]bool{}
	// fresh holds the tokens whose card's status the batch reads or changes: those are read from
	// the database. The others may come from the cache of cards' immutable elements.
	fresh := map[string]bool{}
	addToken := func(tok string) {
		if tok != "" && !seenToken[tok] {
			seenToken[tok] = true
			tokens = append(tokens, tok)
		}
	}
	for i := range msgs {
		e := &msgs[i].Event
		if msgs[i].DecodeErr != nil {
			continue
		}
		if all {
			ids = append(ids, e.ID)
		}
		addToken(e.CardToken)
		switch data := e.Data.(type) {
		case *events.FundsLoaded, *events.MedicalContribution, *events.CardStatusChanged, *events.CardPermitRenewed:
			// Each of these reads the card's status (a closed card takes no money in) or changes it.
			fresh[e.CardToken] = true
		case *events.PurchaseRefunded:
			ids = append(ids, data.OriginalEventID)
			originals = append(originals, data.OriginalEventID)
		case *events.CardRegistered:
			addToken(data.PhysicalToken)
			addToken(data.DigitalToken)
		}
	}
	if len(tokens) == 0 {
		return v, nil
	}
	q := &pgx.Batch{}
	q.Queue(processedLookup, ids).Query(func(rows pgx.Rows) error {
		for rows.Next() {
			var (
				p        clearing.Processed
				hash     []byte
				transfer *[16]byte
				typ, st  string
				source   *string
				offset   *int64
			)
			if err := rows.Scan(&p.EventID, &hash, &typ, &st, &p.Reason, &transfer, &source, &offset); err != nil {
				return err
			}
			// A narrow record (an event applied as a transfer of its own kind) keeps no source.
			if source != nil && offset != nil {
				p.Source, p.Offset = *source, *offset
			}
			copy(p.Hash[:], hash)
			p.Type, p.Status = events.Type(typ), clearing.Status(st)
			if transfer != nil {
				p.Transfer = ledger.ID(*transfer)
			}
			v.Processed[p.EventID] = p
		}
		return rows.Err()
	})
	if len(ids) > 0 {
		if err := t.SendBatch(ctx, q).Close(); err != nil {
			return nil, fmt.Errorf("load earlier decisions: %w", err)
		}
	}
	cached, err := t.loadCards(ctx, v, tokens, fresh)
	if err != nil {
		return nil, err
	}
	// One Card value per card, whichever token found it, so a change through one token is seen
	// through the others; a card read from the database wins over one from the cache.
	byCard := map[string]*cards.Card{}
	for _, c := range v.Cards {
		if first, ok := byCard[c.Token]; !ok || (cached[first] && !cached[c]) {
			byCard[c.Token] = c
		}
	}
	for tok, c := range v.Cards {
		v.Cards[tok] = byCard[c.Token]
	}

	// The parties the batch may pay: merchants named by events, and the issuer banks and
	// insurance funds of its cards (including cards it registers).
	type partyKey struct {
		kind clearing.PartyKind
		id   string
	}
	var parties []uuid.UUID
	seenParty := map[partyKey]bool{}
	addParty := func(kind clearing.PartyKind, id string) {
		if k := (partyKey{kind, id}); !seenParty[k] {
			seenParty[k] = true
			parties = append(parties, uuid.UUID(clearing.PartyAccount(kind, id)))
		}
	}
	for _, c := range byCard {
		addParty(clearing.PartyBank, c.IssuerBank)
		addParty(clearing.PartyInsuranceFund, c.InsuranceCity)
	}
	for i := range msgs {
		switch data := msgs[i].Event.Data.(type) {
		case *events.PurchaseCleared:
			addParty(clearing.PartyMerchant, data.MerchantID)
		case *events.PurchaseRefunded:
			addParty(clearing.PartyMerchant, data.MerchantID)
		case *events.CardRegistered:
			addParty(clearing.PartyBank, data.IssuerBank)
			addParty(clearing.PartyInsuranceFund, cities.Canonical(data.InsuranceCity))
		}
	}
	q = &pgx.Batch{}
	if len(parties) > 0 {
		// With a merchant's registered category, which an offline purchase may not contradict
		// with one the card pays.
		q.Queue(`SELECT p.account_id, m.mcc FROM parties p LEFT JOIN merchants m ON m.account_id = p.account_id
			WHERE p.account_id = ANY($1)`, parties).Query(func(rows pgx.Rows) error {
			for rows.Next() {
				var (
					id  [16]byte
					mcc *string
				)
				if err := rows.Scan(&id, &mcc); err != nil {
					return err
				}
				v.Parties[ledger.ID(id)] = true
				if mcc != nil {
					if v.MerchantCategories == nil {
						v.MerchantCategories = map[ledger.ID]string{}
					}
					v.MerchantCategories[ledger.ID(id)] = *mcc
				}
			}
			return rows.Err()
		})
	}
	queueClearedPurchases(q, v, originals)
	queueStatusHistories(q, v, msgs)
	// The settlement gate, which applying the batch reads, rides along: no round trip of its own.
	t.QueueSettlementGate(q)
	if q.Len() > 0 {
		if err := t.SendBatch(ctx, q).Close(); err != nil {
			return nil, fmt.Errorf("load parties and refunded purchases: %w", err)
		}
	}
	return v, nil
}

// statusLookup reads what judging a card's offline purchases needs of its changing part, in one
// statement so that the card and its history agree: its permit and declared status now, and its
// recorded status changes, oldest first (none: one row with NULLs). The rest of the card may come
// from the cache of its immutable elements.
const statusLookup = `SELECT c.card_token, c.permit_valid_until, c.declared_status, c.status_reason, c.issued_at,
		h.changed_at, h.declared_status, h.status_reason
	FROM cards c LEFT JOIN card_status_changes h ON h.card_token = c.card_token
	WHERE c.card_token = ANY($1) ORDER BY c.card_token, h.changed_at`

// queueStatusHistories queues the reads of the status of the cards whose offline purchases
// (cleared without an authorization) the batch decides, as they stood before the batch: each
// card's permit and declared status, read into the card whether the batch took it from the
// database or from the cache (which keeps no status), and its recorded status changes, into
// v.StatusHistories. A card declared other than active with no change recorded has been so for as
// long as it has been.
func queueStatusHistories(q *pgx.Batch, v *clearing.View, msgs []clearing.Message) {
	var tokens []string
	byCard := map[string]*cards.Card{}
	for i := range msgs {
		data, ok := msgs[i].Event.Data.(*events.PurchaseCleared)
		if !ok || data.AuthorizationID != uuid.Nil {
			continue
		}
		c, ok := v.Cards[msgs[i].Event.CardToken]
		if !ok {
			continue
		}
		if _, seen := byCard[c.Token]; !seen {
			byCard[c.Token] = c
			tokens = append(tokens, c.Token)
		}
	}
	if len(tokens) == 0 {
		return
	}
	v.StatusHistories = make(map[string][]cards.StatusChange, len(tokens))
	q.Queue(statusLookup, tokens).Query(func(rows pgx.Rows) error {
		for rows.Next() {
			var (
				token, declared, reason string
				validUntil              time.Time
				issuedAt, changedAt     *time.Time
				status, why             *string
			)
			if err := rows.Scan(&token, &validUntil, &declared, &reason, &issuedAt, &changedAt, &status, &why); err != nil {
				return fmt.Errorf("scan card status: %w", err)
			}
			c, ok := byCard[token]
			if !ok {
				continue
			}
			y, m, d := validUntil.Date()
			c.PermitValidUntil = events.Date{Year: y, Month: m, Day: d}
			c.Declared, c.StatusReason = events.CardStatus(declared), reason
			if issuedAt != nil {
				c.IssuedAt = *issuedAt
			}
			if changedAt != nil && status != nil && why != nil {
				v.StatusHistories[token] = append(v.StatusHistories[token],
					cards.StatusChange{At: *changedAt, Declared: events.CardStatus(*status), Reason: *why})
			}
		}
		if err := rows.Err(); err != nil {
			return err
		}
		for _, tok := range tokens {
			if d := byCard[tok].Declared; len(v.StatusHistories[tok]) == 0 && d != "" && d != events.StatusActive {
				v.StatusHistories[tok] = []cards.StatusChange{{Declared: d}}
			}
		}
		return nil
	})
}

// queueClearedPurchases queues the reads of the purchases that refunds name, applied before, with
// their refunds so far: the purchases' transfers and their refunds' running totals.
func queueClearedPurchases(q *pgx.Batch, v *clearing.View, originals []uuid.UUID) {
	var (
		eventIDs  []uuid.UUID
		transfers []uuid.UUID
		byID      = map[ledger.ID]uuid.UUID{}
	)
	for _, id := range originals {
		p, ok := v.Processed[id]
		if !ok || p.Status != clearing.Applied || p.Transfer.IsZero() {
			continue
		}
		if _, ok := v.Cleared[id]; ok {
			continue
		}
		v.Cleared[id] = &clearing.ClearedPurchase{EventID: id, Type: p.Type}
		eventIDs = append(eventIDs, id)
		transfers = append(transfers, uuid.UUID(p.Transfer))
		byID[p.Transfer] = id
	}
	if len(eventIDs) == 0 {
		return
	}
	q.Queue(`SELECT `+transferColumns+` FROM transfers WHERE id = ANY($1)`, transfers).Query(func(rows pgx.Rows) error {
		for rows.Next() {
			tr, err := scanTransfer(rows)
			if err != nil {
				return err
			}
			v.Cleared[byID[tr.ID]].Transfer = tr
		}
		return rows.Err()
	})
	// A purchase's running total grows with its sequence: the newest refund holds both maxima.
	q.Queue(`SELECT original_event_id, max(seq), max(refunded_total) FROM cleared_refunds
		WHERE original_event_id = ANY($1) GROUP BY original_event_id`, eventIDs).Query(func(rows pgx.Rows) error {
		for rows.Next() {
			var (
				id       uuid.UUID
				seq      int64
				refunded int64
			)
			if err := rows.Scan(&id, &seq, &refunded); err != nil {
				return err
			}
			o := v.Cleared[id]
			o.Refunds, o.Refunded = int(seq), refunded
		}
		return rows.Err()
	})
}

// decidingCardColumns are what deciding needs of a card: its accounts, banks and status, not its
// identity elements. Reading only those keeps a batch's view small.
const decidingCardColumns = `c.card_token, c.physical_token, c.digital_token, c.permit_valid_until,
	c.insurance_city, c.issuer_bank, c.declared_status, c.status_reason, c.funds_account_id, c.medical_account_id`

// loadCards reads the cards that tokens name into v.Cards and returns those that came from the
// cache. A card's accounts, banks and tokens never change, so for a token outside fresh the cache
// of them answers; such a card's status is unknown (Declared is empty), and deciding reads status
// only for the events that make a token fresh. The rest are read from the database by their own
// token first, and only the tokens that found none among the physical and digital tokens: one
// index probe per event instead of two.
func (t *Tx) loadCards(ctx context.Context, v *clearing.View, tokens []string, fresh map[string]bool) (map[*cards.Card]bool, error) {
	cached := map[*cards.Card]bool{}
	var read []string
	for _, tok := range tokens {
		if fresh[tok] {
			read = append(read, tok)
			continue
		}
		if c, ok := t.store.cards.get(tok); ok {
			v.Cards[tok] = &c
			cached[&c] = true
			continue
		}
		read = append(read, tok)
	}
	if len(read) == 0 {
		return cached, nil
	}
	var got []cards.Card
	scan := func(rows pgx.Rows) error {
		defer rows.Close()
		for rows.Next() {
			var (
				tok, declared  string
				c              cards.Card
				validUntil     time.Time
				funds, medical [16]byte
			)
			if err := rows.Scan(&tok, &c.Token, &c.PhysicalToken, &c.DigitalToken, &validUntil, &c.InsuranceCity,
				&c.IssuerBank, &declared, &c.StatusReason, &funds, &medical); err != nil {
				return fmt.Errorf("scan card: %w", err)
			}
			y, m, d := validUntil.Date()
			c.PermitValidUntil = events.Date{Year: y, Month: m, Day: d}
			c.Declared = events.CardStatus(declared)
			c.FundsAccount, c.MedicalAccount = ledger.ID(funds), ledger.ID(medical)
			v.Cards[tok] = &c
			got = append(got, c)
		}
		return rows.Err()
	}
	rows, err := t.Query(ctx, `SELECT c.card_token, `+decidingCardColumns+` FROM cards c WHERE c.card_token = ANY($1)`, read)
	if err != nil {
		return nil, fmt.Errorf("load cards: %w", err)
	}
	if err := scan(rows); err != nil {
		return nil, fmt.Errorf("load cards: %w", err)
	}
	var aliases []string
	for _, tok := range read {
		if _, ok := v.Cards[tok]; !ok {
			aliases = append(aliases, tok)
		}
	}
	if len(aliases) > 0 {
		rows, err = t.Query(ctx, `SELECT t.token, `+decidingCardColumns+`
			FROM card_tokens t JOIN cards c ON c.card_token = t.card_token WHERE t.token = ANY($1)`, aliases)
		if err != nil {
			return nil, fmt.Errorf("load cards by device token: %w", err)
		}
		if err := scan(rows); err != nil {
			return nil, fmt.Errorf("load cards by device token: %w", err)
		}
	}
	// What was read is committed, and its immutable part holds for good.
	t.store.cards.put(got)
	return cached, nil
}

const cardColumns = `c.card_token, c.physical_token, c.digital_token, c.holder_name, c.nationality,
	c.passport_token, c.passport_masked, c.ssn_token, c.ssn_masked, c.permit_token, c.permit_masked,
	c.permit_valid_until, c.insurance_city, c.issuer_bank, c.bank_account_token, c.bank_account_masked,
	c.card_number_masked, c.declared_status, c.status_reason, c.funds_account_id, c.medical_account_id`

func scanCard(rows pgx.Rows) (*cards.Card, error) {
	var (
		c              cards.Card
		validUntil     time.Time
		declared       string
		funds, medical [16]byte
	)
	dest := append([]any{}, &c.Token, &c.PhysicalToken, &c.DigitalToken, &c.HolderName, &c.Nationality,
		&c.PassportToken, &c.PassportMasked, &c.SSNToken, &c.SSNMasked, &c.PermitToken, &c.PermitMasked,
		&validUntil, &c.InsuranceCity, &c.IssuerBank, &c.BankAccountToken, &c.BankAccountMasked,
		&c.CardNumberMasked, &declared, &c.StatusReason, &funds, &medical)
	if err := rows.Scan(dest...); err != nil {
		return nil, fmt.Errorf("scan card: %w", err)
	}
	y, m, d := validUntil.Date()
	c.PermitValidUntil = events.Date{Year: y, Month: m, Day: d}
	c.Declared = events.CardStatus(declared)
	c.FundsAccount, c.MedicalAccount = ledger.ID(funds), ledger.ID(medical)
	return &c, nil
}

// narrowCodes pairs each type of event whose applied record may be narrow with the code of the
// transfer it applies as (clearing.PlanEvent's transfers of their own). The view processed_events
// (migration 0034) maps each code back to its type: the two lists must agree, and no code may
// appear twice.
var narrowCodes = map[events.Type]ledger.Code{
	events.TypeFundsLoaded:         clearing.CodeFundsLoaded,
	events.TypePurchaseCleared:     clearing.CodePurchase,
	events.TypePurchaseRefunded:    clearing.CodeRefund,
	events.TypeMedicalContribution: clearing.CodeMedicalContribution,
}

// narrowRecord says whether p is recorded narrow: applied, without a reason, as a first transfer
// (of the batch's, by id in codes) whose code says p's type. Such a record keeps the event's id
// and hash, so a redelivery is still a duplicate and a changed event still a conflict, and its
// transfer, written in the same transaction, says its type, status and time.
func narrowRecord(p *clearing.Processed, codes map[ledger.ID]ledger.Code) bool {
	if p.Status != clearing.Applied || p.Reason != "" || p.Transfer.IsZero() {
		return false
	}
	code, ok := narrowCodes[p.Type]
	if !ok {
		return false
	}
	got, ok := codes[p.Transfer]
	return ok && got == code
}

// writeDecision writes a batch's decisions, dead letters, taps and registry changes.
func (t *Tx) writeDecision(ctx context.Context, d *clearing.Decision, now time.Time) error {
	now = now.UTC()
	if len(d.Processed) > 0 {
		// One row per event of every batch: written with the ledger's own binary COPY encoder.
		// A whole record is ~200 bytes: two ids, a hash, five short texts, a number and a time.
		// An event applied as a transfer of its own kind is recorded narrow, in ~80: its id, its
		// hash and its transfer, which says the rest (narrowRecord).
		w := newCopyWriter(len(d.Processed), 200)
		at := now.UnixMicro()
		codes := make(map[ledger.ID]ledger.Code, len(d.Transfers))
		for i := range d.Transfers {
			codes[d.Transfers[i].ID] = d.Transfers[i].Code
		}
		// In id order: event ids are random, and sorted keys fill each page of the primary key
		// once per batch instead of touching a page per row.
		order := make([]int, len(d.Processed))
		for i := range order {
			order[i] = i
		}
		slices.SortFunc(order, func(a, b int) int { return bytes.Compare(d.Processed[a].EventID[:], d.Processed[b].EventID[:]) })
		for _, i := range order {
			p := &d.Processed[i]
			w.row(9)
			w.uuid(p.EventID)
			w.bytes(p.Hash[:])
			if narrowRecord(p, codes) {
				w.null() // type
				w.null() // status
				w.null() // reason
				w.uuid(p.Transfer)
				w.null() // source
				w.null() // source_offset
				w.null() // processed_at
				continue
			}
			w.text(string(p.Type))
			w.text(string(p.Status))
			w.text(p.Reason)
			w.uuidOrNull(p.Transfer)
			w.text(p.Source)
			w.int64(p.Offset)
			w.timestamp(at)
		}
		if err := copyRows(ctx, t.Tx, "processed_event_records", []string{"event_id", "hash", "type", "status", "reason",
			"transfer_id", "source", "source_offset", "processed_at"}, w); err != nil {
			return fmt.Errorf("write processed events: %w", err)
		}
	}
	if len(d.DeadLetters) > 0 {
		_, err := t.CopyFrom(ctx, pgx.Identifier{"dead_letters"},
			[]string{"source", "source_offset", "event_id", "kind", "reason", "payload", "payload_hmac", "created_at"},
			pgx.CopyFromSlice(len(d.DeadLetters), func(i int) ([]any, error) {
				dl := &d.DeadLetters[i]
				var id *[16]byte
				if dl.EventID != uuid.Nil {
					u := [16]byte(dl.EventID)
					id = &u
				}
				// An empty message or a tombstone (no value at all) is stored as the empty bytes
				// it was: nil would be NULL, which the column refuses.
				payload := dl.Raw
				if payload == nil {
					payload = []byte{}
				}
				return []any{dl.Source, dl.Offset, id, string(dl.Kind), dl.Reason, payload, dl.Fingerprint, now}, nil
			}))
		if err != nil {
			return fmt.Errorf("write dead letters: %w", err)
		}
	}
	if len(d.ClearedRefunds) > 0 {
		_, err := t.CopyFrom(ctx, pgx.Identifier{"cleared_refunds"},
			[]string{"original_event_id", "seq", "event_id", "amount", "refunded_total", "transfer_id", "created_at"},
			pgx.CopyFromSlice(len(d.ClearedRefunds), func(i int) ([]any, error) {
				r := &d.ClearedRefunds[i]
				return []any{[16]byte(r.OriginalEventID), int32(r.Seq), [16]byte(r.EventID), r.Amount, r.RefundedTotal,
					[16]byte(r.Transfer), now}, nil
			}))
		if err != nil {
			return fmt.Errorf("write refunds of cleared purchases: %w", err)
		}
	}
	if len(d.Taps) > 0 {
		_, err := t.CopyFrom(ctx, pgx.Identifier{"taps"},
			[]string{"event_id", "card_token", "operator_id", "device_id", "device_seq", "tapped_at", "station_id", "line", "direction", "mode", "received_at"},
			pgx.CopyFromSlice(len(d.Taps), func(i int) ([]any, error) {
				tp := &d.Taps[i]
				return []any{[16]byte(tp.EventID), tp.CardToken, tp.OperatorID, tp.DeviceID, int64(tp.DeviceSeq),
					tp.TappedAt, tp.StationID, tp.Line, string(tp.Direction), string(tp.Mode), tp.Received.UTC()}, nil
			}))
		if err != nil {
			return fmt.Errorf("write taps: %w", err)
		}
	}
	return t.writeCards(ctx, d, now)
}

// writeCards writes the cards a batch registered (with COPY, however many) and the changes it
// made to existing ones, and records each new declared status as in force from now.
func (t *Tx) writeCards(ctx context.Context, d *clearing.Decision, now time.Time) error {
	if len(d.StatusChanged) > 0 {
		final := make(map[string]*cards.Card, len(d.Cards))
		for _, c := range d.Cards {
			final[c.Token] = c
		}
		n := len(d.StatusChanged)
		tokens, statuses, reasons := make([]string, n), make([]string, n), make([]string, n)
		for i, tok := range d.StatusChanged {
			c, ok := final[tok]
			if !ok {
				return fmt.Errorf("card %s changed status but is not among the changed cards", tok)
			}
			tokens[i], statuses[i], reasons[i] = c.Token, string(c.Declared), c.StatusReason
		}
		// A card's changes follow each other in time even when two land on one clock reading
		// (or a writer's clock is behind): a change comes at least a microsecond after the last.
		if _, err := t.Exec(ctx, `INSERT INTO card_status_changes (card_token, changed_at, declared_status, status_reason)
			SELECT u.card_token, GREATEST($4::TIMESTAMPTZ, COALESCE(max(h.changed_at) + INTERVAL '1 microsecond', $4::TIMESTAMPTZ)),
				u.declared_status, u.status_reason
			FROM unnest($1::TEXT[], $2::TEXT[], $3::TEXT[]) AS u(card_token, declared_status, status_reason)
			LEFT JOIN card_status_changes h ON h.card_token = u.card_token
			GROUP BY u.card_token, u.declared_status, u.status_reason`, tokens, statuses, reasons, now); err != nil {
			return fmt.Errorf("record card status changes: %w", err)
		}
	}
	isNew := make(map[string]bool, len(d.NewCards))
	for _, c := range d.NewCards {
		if err := c.Validate(); err != nil {
			return err
		}
		isNew[c.Token] = true
	}
	dateOf := func(c *cards.Card) time.Time {
		return time.Date(c.PermitValidUntil.Year, c.PermitValidUntil.Month, c.PermitValidUntil.Day, 0, 0, 0, 0, time.UTC)
	}
	for _, c := range d.Cards {
		if isNew[c.Token] {
			continue
		}
		_, err := t.Exec(ctx, `UPDATE cards SET declared_status = $2, status_reason = $3, permit_valid_until = $4, updated_at = $5
			WHERE card_token = $1`, c.Token, string(c.Declared), c.StatusReason, dateOf(c), now)
		if err != nil {
			return fmt.Errorf("update card: %w", err)
		}
	}
	if len(d.NewCards) == 0 {
		return nil
	}
	// A card registered and changed in one batch is written once, as it ended up.
	final := make(map[string]*cards.Card, len(d.Cards))
	for _, c := range d.Cards {
		final[c.Token] = c
	}
	fresh := make([]*cards.Card, len(d.NewCards))
	var tokens [][]any
	for i, c := range d.NewCards {
		if f, ok := final[c.Token]; ok {
			c = f
		}
		fresh[i] = c
		for _, tok := range c.Tokens() {
			tokens = append(tokens, []any{tok, c.Token})
		}
	}
	_, err := t.CopyFrom(ctx, pgx.Identifier{"cards"},
		[]string{"card_token", "physical_token", "digital_token", "holder_name", "nationality",
			"passport_token", "passport_masked", "ssn_token", "ssn_masked", "permit_token", "permit_masked", "permit_valid_until",
			"insurance_city", "issuer_bank", "bank_account_token", "bank_account_masked", "card_number_masked",
			"declared_status", "status_reason", "funds_account_id", "medical_account_id", "created_at", "updated_at", "issued_at"},
		pgx.CopyFromSlice(len(fresh), func(i int) ([]any, error) {
			c := fresh[i]
			return []any{c.Token, c.PhysicalToken, c.DigitalToken, c.HolderName, c.Nationality, c.PassportToken, c.PassportMasked,
				c.SSNToken, c.SSNMasked, c.PermitToken, c.PermitMasked, dateOf(c), c.InsuranceCity, c.IssuerBank,
				c.BankAccountToken, c.BankAccountMasked, c.CardNumberMasked, string(c.Declared), c.StatusReason,
				[16]byte(c.FundsAccount), [16]byte(c.MedicalAccount), now, now, issuedAt(c)}, nil
		}))
	if err != nil {
		return fmt.Errorf("insert cards: %w", err)
	}
	if _, err := t.CopyFrom(ctx, pgx.Identifier{"card_tokens"}, []string{"token", "card_token"}, pgx.CopyFromRows(tokens)); err != nil {
		return fmt.Errorf("insert card tokens: %w", err)
	}
	return nil
}

// issuedAt is a new card's issue time for the cards table: NULL when not known.
func issuedAt(c *cards.Card) *time.Time {
	if c.IssuedAt.IsZero() {
		return nil
	}
	t := c.IssuedAt.UTC()
	return &t
}

// Card returns the card that token names (its own, physical or digital token).
func (s *Store) Card(ctx context.Context, token string) (*cards.Card, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+cardColumns+` FROM card_tokens t JOIN cards c ON c.card_token = t.card_token
		WHERE t.token = $1`, token)
	if err != nil {
		return nil, fmt.Errorf("read card: %w", err)
	}
	defer rows.Close()
	if !rows.Next() {
		if err := rows.Err(); err != nil {
			return nil, fmt.Errorf("read card: %w", err)
		}
		return nil, fmt.Errorf("card: %w", ErrNotFound)
	}
	return scanCard(rows)
}

// Party is a registered bank, merchant, transit operator or insurance fund.
type Party struct {
	Kind    clearing.PartyKind
	ID      string
	Name    string
	Account ledger.ID
}

// RegisterParty registers a party and opens its account. Registering it again with the same name
// is a no-op.
func (s *Store) RegisterParty(ctx context.Context, kind clearing.PartyKind, id, name string) (Party, error) {
	ak, err := kind.AccountKind()
	if err != nil {
		return Party{}, err
	}
	if id == "" || name == "" {
		return Party{}, errors.New("party id and name must not be empty")
	}
	p := Party{Kind: kind, ID: id, Name: name, Account: clearing.PartyAccount(kind, id)}
	err = s.InTx(ctx, nil, func(ctx context.Context, tx *Tx) error {
		if err := tx.CreateAccounts(ctx, []AccountSpec{{Account: ledger.Account{ID: p.Account, Currency: "CNY", Kind: ak}, Name: name}}); err != nil {
			return err
		}
		tag, err := tx.Exec(ctx, `INSERT INTO parties (account_id, kind, party_id, name, created_at) VALUES ($1, $2, $3, $4, $5)
			ON CONFLICT (account_id) DO NOTHING`, [16]byte(p.Account), string(kind), id, name, s.Now().UTC())
		if err != nil {
			return fmt.Errorf("insert party: %w", err)
		}
		if tag.RowsAffected() == 0 {
			var existing string
			if err := tx.QueryRow(ctx, `SELECT name FROM parties WHERE account_id = $1`, [16]byte(p.Account)).Scan(&existing); err != nil {
				return fmt.Errorf("read party: %w", err)
			}
			if existing != name {
				return fmt.Errorf("%s %q is registered as %q: %w", kind, id, existing, ErrAccountConflict)
			}
		}
		return nil
	})
	return p, err
}

// DeadLetter is a dead letter waiting to be relayed to the dead-letter topic.
type DeadLetter struct {
	clearing.DeadLetter
	Created time.Time
}

// maxRelayBatch bounds one relay round: one Kafka produce call of small messages.
const maxRelayBatch = 1000

// UnrelayedDeadLetters returns up to maxRelayBatch dead letters not yet relayed, oldest first.
func (s *Store) UnrelayedDeadLetters(ctx context.Context) ([]DeadLetter, error) {
	rows, err := s.pool.Query(ctx, `SELECT source, source_offset, event_id, kind, reason, payload, payload_hmac, created_at
		FROM dead_letters WHERE relayed_at IS NULL ORDER BY created_at, source, source_offset LIMIT $1`, maxRelayBatch)
	if err != nil {
		return nil, fmt.Errorf("read dead letters: %w", err)
	}
	defer rows.Close()
	var out []DeadLetter
	for rows.Next() {
		var (
			dl   DeadLetter
			id   *[16]byte
			kind string
		)
		if err := rows.Scan(&dl.Source, &dl.Offset, &id, &kind, &dl.Reason, &dl.Raw, &dl.Fingerprint, &dl.Created); err != nil {
			return nil, fmt.Errorf("read dead letters: %w", err)
		}
		if id != nil {
			dl.EventID = uuid.UUID(*id)
		}
		dl.Kind = clearing.DeadLetterKind(kind)
		out = append(out, dl)
	}
	return out, rows.Err()
}

// MarkRelayed records that dead letters reached the dead-letter topic.
func (s *Store) MarkRelayed(ctx context.Context, dls []DeadLetter) error {
	sources := make([]string, len(dls))
	offsets := make([]int64, len(dls))
	for i := range dls {
		sources[i], offsets[i] = dls[i].Source, dls[i].Offset
	}
	_, err := s.pool.Exec(ctx, `UPDATE dead_letters SET relayed_at = $3
		FROM unnest($1::TEXT[], $2::BIGINT[]) AS k(source, source_offset)
		WHERE dead_letters.source = k.source AND dead_letters.source_offset = k.source_offset`,
		sources, offsets, s.Now().UTC())
	if err != nil {
		return fmt.Errorf("mark dead letters relayed: %w", err)
	}
	return nil
}
