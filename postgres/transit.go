package postgres

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/joinincard/engine/cards"
	"github.com/joinincard/engine/clearing"
	"github.com/joinincard/engine/events"
	"github.com/joinincard/engine/ledger"
	"github.com/joinincard/engine/transit"
)

// Bounds of transit clearing's transactions.
const (
	// MaxTransitBatchTaps bounds one uploaded batch: a gate's or a bus's offline day is a few
	// thousand taps, and 10,000 keep the batch's transaction (taps, answers, card lookups) well
	// under a second.
	MaxTransitBatchTaps = 10_000
	// maxDrainTaps bounds one drain of the Kafka taps inbox: one transaction, as a batch.
	maxDrainTaps = MaxTransitBatchTaps
	// maxSettleCards bounds the cards charged in one transaction when a day closes: each card
	// posts at most one transfer per operator of its group, and 4,096 cards of a four-operator
	// group fill exactly one ledger batch (ledger.MaxBatchTransfers).
	maxSettleCards = 4096
	// maxRepriceMarks bounds the marked days re-priced in one transaction: each re-prices its
	// card's week from that day on, loading its taps, a few milliseconds each.
	maxRepriceMarks = 512
	// maxOwedRetries bounds the unpaid days retried in one transaction.
	maxOwedRetries = 4096
	// maxCloseDays bounds the days one close pass walks per group: a year, for an engine that was
	// stopped that long; the next pass continues.
	maxCloseDays = 366
	// MaxDenyListPage bounds one page of the deny list.
	MaxDenyListPage = 10_000
	// MaxTripDays bounds a trip history query: a month.
	MaxTripDays = 31
	// kafkaTapLookupsAfterDuplicate is how many of the consumer's transactions look their taps
	// up first after one found a tap seen before: a stream that repeats taps (the same taps
	// through both doors) then costs a lookup a transaction, as a batch does, rather than a
	// transaction rolled back and run again each time; 64 transactions are a few seconds of a busy
	// stream.
	kafkaTapLookupsAfterDuplicate = 64
)

var (
	// ErrBatchConflict: a batch id used before with another body. Nothing was written.
	ErrBatchConflict = errors.New("batch id used before with a different body")
	// ErrOperatorExists: the operator is registered for transit already.
	ErrOperatorExists = errors.New("operator already registered for transit")
)

// TransitOperator is an operator registered for transit.
type TransitOperator struct {
	ID        string
	Name      string
	Account   ledger.ID
	CreatedAt time.Time
}

// CreateTransitOperator registers an operator for transit with its first API key (by the key's
// hash) and opens its clearing account as a party of kind operator. An operator registered before
// fails with ErrOperatorExists, and nothing changes.
func (s *Store) CreateTransitOperator(ctx context.Context, id, name string, keyHash [32]byte) (TransitOperator, error) {
	op := TransitOperator{ID: id, Name: name, Account: clearing.PartyAccount(clearing.PartyOperator, id), CreatedAt: s.Now().UTC()}
	err := s.InTx(ctx, nil, func(ctx context.Context, tx *Tx) error {
		if err := tx.registerTransitParty(ctx, clearing.PartyOperator, id, name); err != nil {
			return err
		}
		tag, err := tx.Exec(ctx, `INSERT INTO transit_operators (operator_id, name, created_at) VALUES ($1, $2, $3)
			ON CONFLICT (operator_id) DO NOTHING`, id, name, op.CreatedAt)
		if err != nil {
			return fmt.Errorf("insert transit operator: %w", err)
		}
		if tag.RowsAffected() == 0 {
			return fmt.Errorf("operator %q: %w", id, ErrOperatorExists)
		}
		if _, err := tx.Exec(ctx, `INSERT INTO transit_operator_keys (key_hash, operator_id, created_at) VALUES ($1, $2, $3)`,
			keyHash[:], id, op.CreatedAt); err != nil {
			return fmt.Errorf("insert operator key: %w", err)
		}
		return nil
	})
	return op, err
}

// registerTransitParty is RegisterParty within a transaction.
func (t *Tx) registerTransitParty(ctx context.Context, kind clearing.PartyKind, id, name string) error {
	ak, err := kind.AccountKind()
	if err != nil {
		return err
	}
	account := clearing.PartyAccount(kind, id)
	if err := t.CreateAccounts(ctx, []AccountSpec{{Account: ledger.Account{ID: account, Currency: "CNY", Kind: ak}, Name: name}}); err != nil {
		return err
	}
	tag, err := t.Exec(ctx, `INSERT INTO parties (account_id, kind, party_id, name, created_at) VALUES ($1, $2, $3, $4, $5)
		ON CONFLICT (account_id) DO NOTHING`, [16]byte(account), string(kind), id, name, t.store.Now().UTC())
	if err != nil {
		return fmt.Errorf("insert party: %w", err)
	}
	if tag.RowsAffected() == 0 {
		var existing string
		if err := t.QueryRow(ctx, `SELECT name FROM parties WHERE account_id = $1`, [16]byte(account)).Scan(&existing); err != nil {
			return fmt.Errorf("read party: %w", err)
		}
		if existing != name {
			return fmt.Errorf("%s %q is registered as %q: %w", kind, id, existing, ErrAccountConflict)
		}
	}
	return nil
}

// TransitOperatorByKey returns the operator whose API key hashes to keyHash, or an error wrapping
// ErrNotFound.
func (s *Store) TransitOperatorByKey(ctx context.Context, keyHash [32]byte) (string, error) {
	var id string
	err := s.pool.QueryRow(ctx, `SELECT operator_id FROM transit_operator_keys WHERE key_hash = $1`, keyHash[:]).Scan(&id)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", fmt.Errorf("operator key: %w", ErrNotFound)
	}
	if err != nil {
		return "", fmt.Errorf("read operator key: %w", err)
	}
	return id, nil
}

// TapBatch is a batch of taps an operator uploaded.
type TapBatch struct {
	Operator    string
	BatchID     string
	RequestHash [32]byte
	// Taps holds each tap as parsed (transit.Tables.ParseTap); Refs its device and sequence as
	// the operator wrote them, for the answer.
	Taps []transit.Candidate
	Refs []TapRef
}

// TapRef names an uploaded tap in the answer: its device and sequence as written.
type TapRef struct {
	DeviceID  string `json:"device_id"`
	DeviceSeq string `json:"device_seq"`
}

// TapAnswer is one tap's answer.
type TapAnswer struct {
	TapRef
	Result transit.Result `json:"result"`
	Reason transit.Reason `json:"reason,omitempty"`
	Detail string         `json:"detail,omitempty"`
}

// TapBatchResult is the answer to a batch, the same every time it is asked for.
type TapBatchResult struct {
	Operator   string
	BatchID    string
	ReceivedAt time.Time
	Answers    []TapAnswer
	Accepted   int
	Duplicates int
	Rejected   int
}

// SubmitTapBatch decides a batch of taps and records the accepted ones, in one transaction with
// the answer. The same batch id again returns the first answer (replayed is true) and changes
// nothing; with another body it fails with ErrBatchConflict.
func (s *Store) SubmitTapBatch(ctx context.Context, ts *transit.Tables, b TapBatch) (res TapBatchResult, replayed bool, err error) {
	if len(b.Taps) > MaxTransitBatchTaps {
		return res, false, fmt.Errorf("batch of %d taps exceeds the bound of %d", len(b.Taps), MaxTransitBatchTaps)
	}
	if len(b.Refs) != len(b.Taps) {
		return res, false, fmt.Errorf("batch has %d taps and %d references", len(b.Taps), len(b.Refs))
	}
	err = s.InTx(ctx, nil, func(ctx context.Context, tx *Tx) error {
		res, replayed = TapBatchResult{}, false
		prior, found, err := tx.transitBatch(ctx, b.Operator, b.BatchID)
		if err != nil {
			return err
		}
		if found {
			if !bytes.Equal(prior.hash, b.RequestHash[:]) {
				return fmt.Errorf("batch %q: %w", b.BatchID, ErrBatchConflict)
			}
			res, replayed = prior.result, true
			return nil
		}
		now := s.Now().UTC().Truncate(time.Microsecond)
		cands := slices.Clone(b.Taps)
		ids := make([]string, len(cands))
		for i := range ids {
			ids[i] = b.BatchID
		}
		outcomes, err := tx.decideTransitTaps(ctx, ts, cands, "batch", ids, now, nil, false)
		if err != nil {
			return err
		}
		res = TapBatchResult{Operator: b.Operator, BatchID: b.BatchID, ReceivedAt: now, Answers: make([]TapAnswer, len(outcomes))}
		for i, o := range outcomes {
			res.Answers[i] = TapAnswer{TapRef: b.Refs[i], Result: o.Result, Reason: o.Reason, Detail: o.Detail}
			switch o.Result {
			case transit.Accepted:
				res.Accepted++
			case transit.Duplicate:
				res.Duplicates++
			default:
				res.Rejected++
			}
		}
		doc, err := json.Marshal(res.Answers)
		if err != nil {
			return fmt.Errorf("encode batch answer: %w", err)
		}
		_, err = tx.Exec(ctx, `INSERT INTO transit_batches (operator_id, batch_id, request_hash, taps, accepted, duplicates, rejected, results, received_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`, b.Operator, b.BatchID, b.RequestHash[:], len(b.Taps),
			res.Accepted, res.Duplicates, res.Rejected, doc, now)
		if err != nil {
			return fmt.Errorf("insert batch: %w", err)
		}
		return nil
	})
	return res, replayed, err
}

// TapBatch returns the answer given to an operator's batch, or an error wrapping ErrNotFound. An
// operator sees only its own batches: another operator's batch id is not found.
func (s *Store) TapBatch(ctx context.Context, operator, batchID string) (TapBatchResult, error) {
	var res TapBatchResult
	err := s.InTx(ctx, nil, func(ctx context.Context, tx *Tx) error {
		prior, found, err := tx.transitBatch(ctx, operator, batchID)
		if err != nil {
			return err
		}
		if !found {
			return fmt.Errorf("batch %q: %w", batchID, ErrNotFound)
		}
		res = prior.result
		return nil
	})
	return res, err
}

type storedTapBatch struct {
	hash   []byte
	result TapBatchResult
}

func (t *Tx) transitBatch(ctx context.Context, operator, batchID string) (storedTapBatch, bool, error) {
	var (
		b   storedTapBatch
		doc []byte
	)
	err := t.QueryRow(ctx, `SELECT request_hash, results, received_at, accepted, duplicates, rejected
		FROM transit_batches WHERE operator_id = $1 AND batch_id = $2`, operator, batchID).
		Scan(&b.hash, &doc, &b.result.ReceivedAt, &b.result.Accepted, &b.result.Duplicates, &b.result.Rejected)
	if errors.Is(err, pgx.ErrNoRows) {
		return b, false, nil
	}
	if err != nil {
		return b, false, fmt.Errorf("read batch: %w", err)
	}
	if err := json.Unmarshal(doc, &b.result.Answers); err != nil {
		return b, false, fmt.Errorf("decode batch %q answer: %w", batchID, err)
	}
	b.result.Operator, b.result.BatchID = operator, batchID
	b.result.ReceivedAt = b.result.ReceivedAt.UTC()
	return b, true, nil
}

// tapsDrainClaim takes the oldest taps out of the Kafka inbox: a range of its taps_received
// index, however many dead rows the drains before it left (see queues.go).
const tapsDrainClaim = `DELETE FROM taps WHERE event_id = ANY(ARRAY(
		SELECT event_id FROM taps ORDER BY received_at, event_id LIMIT $1))
	RETURNING event_id, card_token, operator_id, device_id, device_seq, tapped_at, station_id, line, direction, mode, received_at`

// DrainTransitTaps moves up to maxDrainTaps transit.tap events from the taps inbox (which the
// Kafka consumer fills) through the same rules as an uploaded batch, oldest first, in one
// transaction: the inbox rows go, the accepted taps and every event's answer stay. Two drains
// never decide one row twice. It returns how many taps it drained.
func (s *Store) DrainTransitTaps(ctx context.Context, ts *transit.Tables) (int, error) {
	n := 0
	err := s.InTx(ctx, nil, func(ctx context.Context, tx *Tx) error {
		// The delete is the claim: a concurrent drain that picked the same rows waits for this
		// one, finds them gone and returns without them. = ANY(ARRAY(...)) deletes by the key;
		// IN (...) would hash-join against a scan of the whole inbox.
		rows, err := tx.Query(ctx, tapsDrainClaim, maxDrainTaps)
		if err != nil {
			return fmt.Errorf("drain taps: %w", err)
		}
		type inboxTap struct {
			id       uuid.UUID
			card     string
			tap      events.TransitTap
			seq      int64
			received time.Time
		}
		var inbox []inboxTap
		for rows.Next() {
			var (
				it       inboxTap
				dir, mod string
			)
			if err := rows.Scan(&it.id, &it.card, &it.tap.OperatorID, &it.tap.DeviceID, &it.seq, &it.tap.TappedAt,
				&it.tap.StationID, &it.tap.Line, &dir, &mod, &it.received); err != nil {
				rows.Close()
				return fmt.Errorf("drain taps: %w", err)
			}
			it.tap.DeviceSeq = uint64(it.seq) // the consumer writes only sequences within int64
			it.tap.Direction, it.tap.Mode = events.Direction(dir), events.Mode(mod)
			inbox = append(inbox, it)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return fmt.Errorf("drain taps: %w", err)
		}
		n = len(inbox)
		if n == 0 {
			return nil
		}
		// The order the consumer received them in, so that of two taps with one device and
		// sequence the first received is the one accepted.
		slices.SortFunc(inbox, func(a, b inboxTap) int {
			if c := a.received.Compare(b.received); c != 0 {
				return c
			}
			return bytes.Compare(a.id[:], b.id[:])
		})
		cands := make([]transit.Candidate, n)
		ids := make([]string, n)
		for i := range inbox {
			cands[i] = ts.TapFromEvent(inbox[i].card, &inbox[i].tap)
			ids[i] = inbox[i].id.String()
		}
		now := s.Now().UTC().Truncate(time.Microsecond)
		outcomes, err := tx.decideTransitTaps(ctx, ts, cands, "kafka", ids, now, nil, false)
		if err != nil {
			return err
		}
		return tx.writeTapEventResults(ctx, n, func(i int) (uuid.UUID, *events.TransitTap) { return inbox[i].id, &inbox[i].tap }, outcomes, now)
	})
	return n, err
}

// decideKafkaTaps decides transit.tap events through the same rules as an uploaded batch, in
// the order they were consumed, and writes the answers of those not accepted: what a drain of the
// inbox does, without the inbox. owners maps the taps' tokens to their cards' own tokens, as the
// batch's view found them.
func (t *Tx) decideKafkaTaps(ctx context.Context, ts *transit.Tables, taps []clearing.Tap, now time.Time, owners map[string]string) error {
	now = now.UTC().Truncate(time.Microsecond)
	cands := make([]transit.Candidate, len(taps))
	ids := make([]string, len(taps))
	for i := range taps {
		cands[i] = ts.TapFromEvent(taps[i].CardToken, &taps[i].TransitTap)
		ids[i] = taps[i].EventID.String()
	}
	outcomes, err := t.decideTransitTaps(ctx, ts, cands, "kafka", ids, now, owners, true)
	if err != nil {
		return err
	}
	return t.writeTapEventResults(ctx, len(taps), func(i int) (uuid.UUID, *events.TransitTap) { return taps[i].EventID, &taps[i].TransitTap },
		outcomes, now)
}

// writeTapEventResults writes the answers to the transit.tap events of n that were not accepted,
// the i-th named by at(i). An accepted event needs no answer of its own: its tap (in transit_taps)
// and its decision (in processed_events) say it, so each tap from Kafka writes two rows, not three.
func (t *Tx) writeTapEventResults(ctx context.Context, n int, at func(int) (uuid.UUID, *events.TransitTap), outcomes []transit.Outcome, now time.Time) error {
	var answered []int
	for i := range n {
		if outcomes[i].Result != transit.Accepted {
			answered = append(answered, i)
		}
	}
	if len(answered) == 0 {
		return nil
	}
	_, err := t.CopyFrom(ctx, pgx.Identifier{"transit_event_results"},
		[]string{"event_id", "operator_id", "device_id", "device_seq", "result", "reason", "detail", "decided_at"},
		pgx.CopyFromSlice(len(answered), func(k int) ([]any, error) {
			i := answered[k]
			id, tp := at(i)
			o := outcomes[i]
			// Sequences past int64 were refused before (TapFromEvent): the rest fit.
			return []any{[16]byte(id), tp.OperatorID, tp.DeviceID, int64(tp.DeviceSeq), string(o.Result), string(o.Reason), o.Detail, now}, nil
		}))
	if err != nil {
		return fmt.Errorf("write tap event results: %w", err)
	}
	return nil
}

// TransitEventResult is the transit answer to a transit.tap event from Kafka.
type TransitEventResult struct {
	EventID uuid.UUID
	transit.Outcome
}

// TransitEventResults returns the answers to the given transit.tap events, by event id: those
// decided, not those refused before transit (an unknown card: a dead letter) nor those waiting in
// the inbox. A decided event without an answer of its own was accepted.
func (s *Store) TransitEventResults(ctx context.Context, ids []uuid.UUID) (map[uuid.UUID]transit.Outcome, error) {
	rows, err := s.pool.Query(ctx, `SELECT p.event_id, COALESCE(r.result, $3), COALESCE(r.reason, ''), COALESCE(r.detail, '')
		FROM processed_events p LEFT JOIN transit_event_results r ON r.event_id = p.event_id
		WHERE p.event_id = ANY($1) AND p.type = $2 AND p.status = $4
			AND NOT EXISTS (SELECT 1 FROM taps i WHERE i.event_id = p.event_id)`,
		ids, string(events.TypeTransitTap), string(transit.Accepted), string(clearing.Accepted))
	if err != nil {
		return nil, fmt.Errorf("read tap event results: %w", err)
	}
	defer rows.Close()
	out := map[uuid.UUID]transit.Outcome{}
	for rows.Next() {
		var (
			id             uuid.UUID
			result, reason string
			o              transit.Outcome
		)
		if err := rows.Scan(&id, &result, &reason, &o.Detail); err != nil {
			return nil, fmt.Errorf("read tap event results: %w", err)
		}
		o.Result, o.Reason = transit.Result(result), transit.Reason(reason)
		out[id] = o
	}
	return out, rows.Err()
}

// transitGroupState is how far a pricing group's days are closed and settled.
type transitGroupState struct {
	closed, settled *transit.Day
}

func transitDayPtr(t *time.Time) *transit.Day {
	if t == nil {
		return nil
	}
	d := transit.DayOfTime(*t)
	return &d
}

// decideTransitTaps decides candidates at instant now and records the accepted ones, marking the
// closed travel days a late tap changes for re-pricing. It holds the groups' rows FOR SHARE, so
// a travel day cannot close between the decision and the commit: the close waits for it. owners,
// when the caller has it, maps the candidates' tokens to their cards' own tokens (a token never
// changes card), which spares a lookup of every token; nil looks them up.
//
// optimistic (the consumer's taps) skips the lookup of the taps accepted before on the
// transaction's first attempt, unless a recent transaction found such taps: a stream's taps are
// new but for rare repeats, and the primary key of transit_taps refuses a repeat when it is
// written, which rolls the transaction back to run again with the lookup. Nothing is decided
// differently: a transaction that commits had every tap it accepted absent before.
func (t *Tx) decideTransitTaps(ctx context.Context, ts *transit.Tables, cands []transit.Candidate, source string, sourceIDs []string, now time.Time, owners map[string]string, optimistic bool) ([]transit.Outcome, error) {
	var (
		tokens, operators, groups []string
		keys                      []transit.Key
		seenToken                 = map[string]bool{}
		seenOp                    = map[string]bool{}
	)
	for i := range cands {
		if cands[i].Refused.Result != "" {
			continue
		}
		tp := &cands[i].Tap
		if !seenToken[tp.Card] {
			seenToken[tp.Card] = true
			tokens = append(tokens, tp.Card)
		}
		if !seenOp[tp.Operator] {
			seenOp[tp.Operator] = true
			operators = append(operators, tp.Operator)
			op, _ := ts.Operator(tp.Operator) // a candidate that was not refused has a fare table
			if !slices.Contains(groups, op.Group().Key) {
				groups = append(groups, op.Group().Key)
			}
		}
		keys = append(keys, tp.Key())
	}
	// The lookup probes the primary key in key order: neighbouring probes share index pages.
	slices.SortFunc(keys, compareTapKeys)
	keys = slices.Compact(keys)
	keyOps, keyDevs, keySeqs := make([]string, len(keys)), make([]string, len(keys)), make([]int64, len(keys))
	for i, k := range keys {
		keyOps[i], keyDevs[i], keySeqs[i] = k.Operator, k.Device, k.Seq
	}
	v := &transit.View{Cards: map[string]string{}, DeniedSince: map[string]time.Time{}, Seen: map[transit.Key]bool{}, Operators: map[string]bool{},
		Recent: map[string][]transit.Tap{}}
	states := map[string]transitGroupState{}
	statuses := newCardStatusRows()
	if len(tokens) > 0 {
		slices.Sort(groups) // lock in key order: two deciders never wait for each other in a cycle
		if _, err := t.Exec(ctx, `INSERT INTO transit_groups (group_key, updated_at) SELECT g, $2 FROM unnest($1::TEXT[]) AS g
			ON CONFLICT (group_key) DO NOTHING`, groups, now); err != nil {
			return nil, fmt.Errorf("create transit groups: %w", err)
		}
		q := &pgx.Batch{}
		q.Queue(`SELECT group_key, closed_through, settled_through FROM transit_groups WHERE group_key = ANY($1)
			ORDER BY group_key FOR SHARE`, groups).Query(func(rows pgx.Rows) error {
			for rows.Next() {
				var (
					key             string
					closed, settled *time.Time
				)
				if err := rows.Scan(&key, &closed, &settled); err != nil {
					return err
				}
				states[key] = transitGroupState{closed: transitDayPtr(closed), settled: transitDayPtr(settled)}
			}
			return rows.Err()
		})
		// Each card with its recorded status changes, one row per change (or one without): the
		// changes ride along on the card's row rather than costing a second probe of every token.
		// A card named by two tokens gets its changes from the first only.
		historyFrom := map[string]string{}
		cardsQuery, cardsArg := `SELECT t.token, t.card_token, c.declared_status, c.status_reason, c.permit_valid_until, c.issued_at,
				(SELECT min(d.owed_since) FROM transit_days d WHERE d.card_token = t.card_token AND d.owed > 0),
				h.changed_at, h.declared_status, h.status_reason
			FROM card_tokens t JOIN cards c ON c.card_token = t.card_token
			LEFT JOIN card_status_changes h ON h.card_token = t.card_token
			WHERE t.token = ANY($1)`, tokens
		if owners != nil {
			// The caller knows each token's card: the cards are read by their own tokens.
			own := make([]string, 0, len(tokens))
			seenOwn := make(map[string]bool, len(tokens))
			for _, tok := range tokens {
				if c, ok := owners[tok]; ok && !seenOwn[c] {
					seenOwn[c] = true
					own = append(own, c)
				}
			}
			cardsQuery, cardsArg = `SELECT c.card_token, c.card_token, c.declared_status, c.status_reason, c.permit_valid_until, c.issued_at,
				(SELECT min(d.owed_since) FROM transit_days d WHERE d.card_token = c.card_token AND d.owed > 0),
				h.changed_at, h.declared_status, h.status_reason
			FROM cards c LEFT JOIN card_status_changes h ON h.card_token = c.card_token
			WHERE c.card_token = ANY($1)`, own
		}
		q.Queue(cardsQuery, cardsArg).Query(func(rows pgx.Rows) error {
			for rows.Next() {
				var (
					token, card, declared, reason string
					validUntil                    time.Time
					issued, since, changedAt      *time.Time
					changedTo, changedWhy         *string
				)
				if err := rows.Scan(&token, &card, &declared, &reason, &validUntil, &issued, &since, &changedAt, &changedTo, &changedWhy); err != nil {
					return err
				}
				v.Cards[token] = card
				statuses.card(card, declared, reason, validUntil, issued)
				if since != nil {
					v.DeniedSince[card] = *since
				}
				if changedAt == nil {
					continue
				}
				if from, ok := historyFrom[card]; ok && from != token {
					continue
				}
				historyFrom[card] = token
				statuses.change(card, cards.StatusChange{At: *changedAt, Declared: events.CardStatus(*changedTo), Reason: *changedWhy})
			}
			if err := rows.Err(); err != nil {
				return err
			}
			statuses.sortHistory()
			return nil
		})
		lookup := !optimistic || t.attempt > 1
		if !lookup {
			if n := t.store.kafkaTapLookups.Load(); n > 0 {
				t.store.kafkaTapLookups.CompareAndSwap(n, n-1)
				lookup = true
			}
		}
		if lookup {
			q.Queue(tapsSeenLookup, keyOps, keyDevs, keySeqs).Query(func(rows pgx.Rows) error {
				for rows.Next() {
					var k transit.Key
					if err := rows.Scan(&k.Operator, &k.Device, &k.Seq); err != nil {
						return err
					}
					v.Seen[k] = true
				}
				return rows.Err()
			})
		}
		q.Queue(`SELECT operator_id FROM transit_operators WHERE operator_id = ANY($1)`, operators).Query(func(rows pgx.Rows) error {
			for rows.Next() {
				var id string
				if err := rows.Scan(&id); err != nil {
					return err
				}
				v.Operators[id] = true
			}
			return rows.Err()
		})
		if err := t.SendBatch(ctx, q).Close(); err != nil {
			return nil, fmt.Errorf("load tap view: %w", err)
		}
		for tok, card := range owners {
			if _, ok := v.Cards[card]; ok && seenToken[tok] {
				v.Cards[tok] = card
			}
		}
		if optimistic && len(v.Seen) > 0 {
			t.store.kafkaTapLookups.Store(kafkaTapLookupsAfterDuplicate)
		}
		v.Status = statuses.statuses()
		// The cards that may not travel at one of their taps may still leave a journey they
		// entered while they could: their taps before these tell.
		if stopped, from, to := transit.Stopped(cands, v); len(stopped) > 0 {
			rows, err := t.Query(ctx, `SELECT `+transitTapColumns+`
				FROM transit_taps WHERE card_token = ANY($1) AND tapped_at >= $2 AND tapped_at <= $3`, stopped, from, to)
			if err != nil {
				return nil, fmt.Errorf("load stopped cards' taps: %w", err)
			}
			for _, c := range stopped {
				v.Recent[c] = nil
			}
			for rows.Next() {
				tp, err := scanTransitTap(rows)
				if err != nil {
					rows.Close()
					return nil, fmt.Errorf("load stopped cards' taps: %w", err)
				}
				v.Recent[tp.Card] = append(v.Recent[tp.Card], tp)
			}
			rows.Close()
			if err := rows.Err(); err != nil {
				return nil, fmt.Errorf("load stopped cards' taps: %w", err)
			}
		}
	}
	outcomes := ts.Decide(cands, v, now)

	var accepted []int
	marks := map[transitMark]bool{}
	for i, o := range outcomes {
		if o.Result != transit.Accepted {
			continue
		}
		accepted = append(accepted, i)
		tp := &cands[i].Tap
		op, _ := ts.Operator(tp.Operator)
		g := op.Group()
		st := states[g.Key]
		if st.closed == nil {
			continue
		}
		// A late tap changes its own travel day; the days before it, when it can end a journey
		// started then; and the days after it, when it can start a journey whose exit one of
		// them had charged as a journey without an entry.
		for d := g.DayOf(tp.At.Add(-g.Lookback())); d <= g.DayOf(tp.At.Add(g.Lookback())) && d <= *st.closed; d++ {
			marks[transitMark{tp.Card, g.Key, d}] = true
		}
	}
	if len(accepted) > 0 {
		// Written in card order: the rows of one card (and of neighbouring cards) go to the same
		// pages of the card and travel-day indexes, each page visited once per batch rather than
		// once per tap.
		rows := slices.Clone(accepted)
		slices.SortFunc(rows, func(a, b int) int {
			ta, tb := &cands[a].Tap, &cands[b].Tap
			if c := strings.Compare(ta.Card, tb.Card); c != 0 {
				return c
			}
			return ta.At.Compare(tb.At)
		})
		// ~200 bytes a row: nine short texts, two numbers and two times.
		w := newCopyWriter(len(rows), 200)
		received := now.UnixMicro()
		for _, i := range rows {
			tp := &cands[i].Tap
			op, _ := ts.Operator(tp.Operator)
			w.row(13)
			w.text(tp.Operator)
			w.text(tp.Device)
			w.int64(tp.Seq)
			w.text(tp.Card)
			w.timestamp(tp.At.UnixMicro())
			w.date(int32(op.Group().DayOf(tp.At)))
			w.text(tp.Station)
			w.text(tp.Line)
			w.text(string(tp.Direction))
			w.text(string(tp.Mode))
			w.text(source)
			w.text(sourceIDs[i])
			w.timestamp(received)
		}
		if err := copyRows(ctx, t.Tx, "transit_taps", []string{"operator_id", "device_id", "device_seq", "card_token", "tapped_at",
			"travel_day", "station_id", "line", "direction", "mode", "source", "source_id", "received_at"}, w); err != nil {
			return nil, fmt.Errorf("write taps: %w", err)
		}
	}
	if err := t.markTransitDays(ctx, slices.Collect(maps.Keys(marks)), now); err != nil {
		return nil, err
	}
	return outcomes, nil
}

// compareTapKeys orders taps' keys by operator, device and sequence, as the primary key of
// transit_taps does (in byte order, which the identifiers' ASCII shares with the collation).
func compareTapKeys(a, b transit.Key) int {
	if c := strings.Compare(a.Operator, b.Operator); c != 0 {
		return c
	}
	if c := strings.Compare(a.Device, b.Device); c != 0 {
		return c
	}
	return cmp.Compare(a.Seq, b.Seq)
}

// transitTapColumns are what pricing and intake read of an accepted tap, in scanTransitTap's order.
// tapsSeenLookup reads which (operator, device, sequence) taps were accepted before: one probe
// of the primary key per tap, whatever the table's size.
const tapsSeenLookup = `SELECT t.operator_id, t.device_id, t.device_seq FROM transit_taps t
	JOIN unnest($1::TEXT[], $2::TEXT[], $3::BIGINT[]) AS k(operator_id, device_id, device_seq)
		ON t.operator_id = k.operator_id AND t.device_id = k.device_id AND t.device_seq = k.device_seq`

const transitTapColumns = `operator_id, device_id, device_seq, card_token, tapped_at, station_id, line, direction, mode`

func scanTransitTap(rows pgx.Rows) (transit.Tap, error) {
	var (
		tp       transit.Tap
		dir, mod string
	)
	if err := rows.Scan(&tp.Operator, &tp.Device, &tp.Seq, &tp.Card, &tp.At, &tp.Station, &tp.Line, &dir, &mod); err != nil {
		return tp, err
	}
	tp.Direction, tp.Mode = events.Direction(dir), events.Mode(mod)
	return tp, nil
}

// cardStatusRows gathers what transit reads of cards' statuses, by their own tokens: each card's
// declared status and permit, and the changes recorded for it.
type cardStatusRows struct {
	current map[string]cards.StatusChange
	permit  map[string]events.Date
	issued  map[string]time.Time
	history map[string][]cards.StatusChange
}

func newCardStatusRows() *cardStatusRows {
	return &cardStatusRows{current: map[string]cards.StatusChange{}, permit: map[string]events.Date{},
		issued: map[string]time.Time{}, history: map[string][]cards.StatusChange{}}
}

// card records a card's declared status and permit, and when it was issued (nil: not known).
func (r *cardStatusRows) card(card, declared, reason string, validUntil time.Time, issued *time.Time) {
	y, m, d := validUntil.Date()
	r.current[card] = cards.StatusChange{Declared: events.CardStatus(declared), Reason: reason}
	r.permit[card] = events.Date{Year: y, Month: m, Day: d}
	if issued != nil {
		r.issued[card] = *issued
	}
}

// change adds a recorded status change of card; sortHistory puts each card's in order after.
func (r *cardStatusRows) change(card string, c cards.StatusChange) {
	r.history[card] = append(r.history[card], c)
}

// sortHistory orders each card's changes oldest first.
func (r *cardStatusRows) sortHistory() {
	for _, h := range r.history {
		slices.SortFunc(h, func(a, b cards.StatusChange) int { return a.At.Compare(b.At) })
	}
}

// changes reads rows of card_token, changed_at, declared_status, status_reason, oldest first.
func (r *cardStatusRows) changes(rows pgx.Rows) error {
	for rows.Next() {
		var (
			card, declared string
			c              cards.StatusChange
		)
		if err := rows.Scan(&card, &c.At, &declared, &c.Reason); err != nil {
			return err
		}
		c.Declared = events.CardStatus(declared)
		r.history[card] = append(r.history[card], c)
	}
	return rows.Err()
}

// queue queues the reads of the cards' statuses, by their own tokens.
func (r *cardStatusRows) queue(q *pgx.Batch, cardTokens []string) {
	q.Queue(`SELECT card_token, declared_status, status_reason, permit_valid_until, issued_at FROM cards WHERE card_token = ANY($1)`,
		cardTokens).Query(func(rows pgx.Rows) error {
		for rows.Next() {
			var (
				card, declared, reason string
				validUntil             time.Time
				issued                 *time.Time
			)
			if err := rows.Scan(&card, &declared, &reason, &validUntil, &issued); err != nil {
				return err
			}
			r.card(card, declared, reason, validUntil, issued)
		}
		return rows.Err()
	})
	q.Queue(`SELECT card_token, changed_at, declared_status, status_reason FROM card_status_changes
		WHERE card_token = ANY($1) ORDER BY card_token, changed_at`, cardTokens).Query(r.changes)
}

// statuses is each card's status over time.
func (r *cardStatusRows) statuses() map[string]*transit.CardStatus {
	out := make(map[string]*transit.CardStatus, len(r.current))
	for card, cur := range r.current {
		h := r.history[card]
		if len(h) == 0 && cur.Declared != events.StatusActive {
			// Declared without a recorded change: in force for as long as the card has been.
			h = []cards.StatusChange{cur}
		}
		out[card] = &transit.CardStatus{History: h, PermitValidUntil: r.permit[card], IssuedAt: r.issued[card]}
	}
	return out
}

// TransitCloseReport is what a close pass did.
type TransitCloseReport struct {
	DaysClosed int
	Cards      int   // card-days priced
	Transfers  int   // transfers created
	Charged    int64 // fen moved from cards to operators, net of refunds
	Unpaid     int   // charges refused for lack of funds
}

// Add adds what another pass did.
func (r *TransitCloseReport) Add(o TransitCloseReport) {
	r.DaysClosed += o.DaysClosed
	r.Cards += o.Cards
	r.Transfers += o.Transfers
	r.Charged += o.Charged
	r.Unpaid += o.Unpaid
}

// CloseTransitDays closes every travel day whose time has come at now (its end plus the group's
// close delay), group by group and day by day in order: it marks the day closed, then prices and
// charges every card that tapped that day, a chunk of cards per transaction, and marks it settled.
// A pass interrupted at any point is finished by the next one: charging is idempotent, since each
// transfer's id derives from the card, operator, day and posting number.
func (s *Store) CloseTransitDays(ctx context.Context, ts *transit.Tables, now time.Time) (TransitCloseReport, error) {
	var rep TransitCloseReport
	for _, g := range ts.Groups() {
		for range maxCloseDays {
			st, err := s.transitGroupState(ctx, g.Key)
			if err != nil {
				return rep, err
			}
			if st.closed != nil && (st.settled == nil || *st.settled < *st.closed) {
				r, err := s.settleTransitDay(ctx, ts, g, *st.closed, now)
				rep.Add(r)
				if err != nil {
					return rep, err
				}
				continue
			}
			var next transit.Day
			if st.closed != nil {
				next = *st.closed + 1
			} else {
				first, ok, err := s.firstTransitDay(ctx, g)
				if err != nil {
					return rep, err
				}
				if !ok {
					break
				}
				next = first
			}
			if now.Before(g.ClosesAt(next)) {
				break
			}
			if err := s.closeTransitDay(ctx, ts, g, st.closed, next, now); err != nil {
				return rep, err
			}
			rep.DaysClosed++
		}
	}
	return rep, nil
}

func (s *Store) transitGroupState(ctx context.Context, key string) (transitGroupState, error) {
	var closed, settled *time.Time
	err := s.pool.QueryRow(ctx, `SELECT closed_through, settled_through FROM transit_groups WHERE group_key = $1`, key).Scan(&closed, &settled)
	if errors.Is(err, pgx.ErrNoRows) {
		return transitGroupState{}, nil
	}
	if err != nil {
		return transitGroupState{}, fmt.Errorf("read transit group %s: %w", key, err)
	}
	return transitGroupState{closed: transitDayPtr(closed), settled: transitDayPtr(settled)}, nil
}

func (s *Store) firstTransitDay(ctx context.Context, g *transit.Group) (transit.Day, bool, error) {
	var first *time.Time
	if err := s.pool.QueryRow(ctx, `SELECT min(travel_day) FROM transit_taps WHERE operator_id = ANY($1)`, g.Operators).Scan(&first); err != nil {
		return 0, false, fmt.Errorf("first travel day of %s: %w", g.Key, err)
	}
	if first == nil {
		return 0, false, nil
	}
	return transit.DayOfTime(*first), true, nil
}

// closeTransitDay moves the group's closed day from prev to next. It waits for the taps being
// decided (they hold the group's row FOR SHARE): every tap committed after it sees the day closed.
// It closes nothing when a fare table was uploaded that ts does not have (ErrStaleTariffs).
func (s *Store) closeTransitDay(ctx context.Context, ts *transit.Tables, g *transit.Group, prev *transit.Day, next transit.Day, now time.Time) error {
	return s.InTx(ctx, nil, func(ctx context.Context, tx *Tx) error {
		if err := tx.checkFares(ctx, ts); err != nil {
			return err
		}
		var prevDate *time.Time
		if prev != nil {
			d := prev.Date()
			prevDate = &d
		}
		if _, err := tx.Exec(ctx, `INSERT INTO transit_groups (group_key, updated_at) VALUES ($1, $2) ON CONFLICT (group_key) DO NOTHING`,
			g.Key, now); err != nil {
			return fmt.Errorf("create transit group %s: %w", g.Key, err)
		}
		tag, err := tx.Exec(ctx, `UPDATE transit_groups SET closed_through = $2, updated_at = $4
			WHERE group_key = $1 AND closed_through IS NOT DISTINCT FROM $3`, g.Key, next.Date(), prevDate, now)
		if err != nil {
			return fmt.Errorf("close %s %s: %w", g.Key, next, err)
		}
		if tag.RowsAffected() != 1 {
			// Retrying the same move cannot succeed: the next pass reads where the group is.
			return fmt.Errorf("close %s %s: another closer moved the group first", g.Key, next)
		}
		return nil
	})
}

// settleTransitDay prices and charges every card with a tap on day d in group g, then marks the
// day settled, unless another engine marked a later day settled first.
func (s *Store) settleTransitDay(ctx context.Context, ts *transit.Tables, g *transit.Group, d transit.Day, now time.Time) (TransitCloseReport, error) {
	var rep TransitCloseReport
	after := ""
	for {
		var chunk []string
		rows, err := s.pool.Query(ctx, `SELECT DISTINCT card_token FROM transit_taps
			WHERE operator_id = ANY($1) AND travel_day = $2 AND card_token > $3 ORDER BY card_token LIMIT $4`,
			g.Operators, d.Date(), after, maxSettleCards)
		if err != nil {
			return rep, fmt.Errorf("cards of %s %s: %w", g.Key, d, err)
		}
		for rows.Next() {
			var c string
			if err := rows.Scan(&c); err != nil {
				rows.Close()
				return rep, fmt.Errorf("cards of %s %s: %w", g.Key, d, err)
			}
			chunk = append(chunk, c)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return rep, fmt.Errorf("cards of %s %s: %w", g.Key, d, err)
		}
		if len(chunk) == 0 {
			break
		}
		var r TransitCloseReport
		err = s.InTx(ctx, nil, func(ctx context.Context, tx *Tx) error {
			if err := tx.checkFares(ctx, ts); err != nil {
				return err
			}
			var err error
			r, err = tx.settleTransitCards(ctx, ts, g, chunk, []transit.Day{d}, now)
			return err
		})
		if err != nil {
			return rep, err
		}
		rep.Add(r)
		after = chunk[len(chunk)-1]
		if len(chunk) < maxSettleCards {
			break
		}
	}
	if s.beforeSettledMark != nil {
		s.beforeSettledMark(g.Key, d)
	}
	// The mark only moves forward: another engine closing the same group may have settled a
	// later day while this one charged d, and moving the mark back would have the next pass
	// settle that day again.
	_, err := s.pool.Exec(ctx, `UPDATE transit_groups SET settled_through = $2, updated_at = $3
		WHERE group_key = $1 AND (settled_through IS NULL OR settled_through < $2)`, g.Key, d.Date(), now)
	if err != nil {
		return rep, fmt.Errorf("settle %s %s: %w", g.Key, d, err)
	}
	return rep, nil
}

// transitDayRow is a card's travel day at an operator, as stored and as re-priced.
type transitDayRow struct {
	card, operator string
	day            transit.Day
	exists         bool
	priced         int64
	capCounted     int64
	capCredit      int64
	journeys       int
	paid           int64
	owed           int64
	owedSince      *time.Time
	revision       int
}

type transitDayKey struct {
	card, operator string
	day            transit.Day
}

// transitChargeNamespace names the ids of travel-day postings.
var transitChargeNamespace = uuid.NewSHA1(uuid.NameSpaceOID, []byte("joinin/transit/charge"))

// transitPosting is a transfer planned for a travel day.
type transitPosting struct {
	row    *transitDayRow
	amount int64 // positive: the card pays; negative: the operator refunds
	id     ledger.ID
	charge uuid.UUID // the posting's name, the transfer's user data
	code   ledger.Code
}

// planTransitPosting returns the posting that brings what the ledger moved for r to what r is
// priced at, if any. Its id derives from the day and the posting's number, so a pass that runs
// again after a crash names the same transfer. The day's first posting is its fare; later ones
// adjust it.
func planTransitPosting(r *transitDayRow, g *transit.Group) (transitPosting, bool) {
	delta := r.priced - r.paid
	if delta == 0 {
		return transitPosting{}, false
	}
	name := r.card + "/" + r.operator + "/" + r.day.String() + "/" + strconv.Itoa(r.revision)
	charge := uuid.NewSHA1(transitChargeNamespace, []byte(name))
	code := clearing.CodeTransitAdjustment
	if r.revision == 0 {
		code = clearing.CodeTransitFare
	}
	return transitPosting{row: r, amount: delta, code: code, charge: charge,
		id: clearing.TransferID(charge, g.DayEnd(r.day), 0)}, true
}

func (p *transitPosting) transfer() ledger.Transfer {
	card := cards.AccountID("funds", p.row.card)
	operator := clearing.PartyAccount(clearing.PartyOperator, p.row.operator)
	t := ledger.Transfer{ID: p.id, DebitAccountID: card, CreditAccountID: operator, Amount: p.amount, Code: p.code,
		UserData: ledger.ID(p.charge)}
	if p.amount < 0 {
		t.DebitAccountID, t.CreditAccountID, t.Amount = operator, card, -p.amount
	}
	return t
}

// postTransit applies the postings and records their outcome on their rows: a created transfer moves
// paid and the revision; a charge the card cannot pay leaves the day owed, and the card on the
// deny list. Any other refusal is a bug: the transaction fails.
func (t *Tx) postTransit(ctx context.Context, ps []transitPosting, now time.Time, rep *TransitCloseReport) error {
	var posted []transitPosting
	for start := 0; start < len(ps); start += ledger.MaxBatchTransfers {
		chunk := ps[start:min(start+ledger.MaxBatchTransfers, len(ps))]
		batch := make([]ledger.Transfer, len(chunk))
		for i := range chunk {
			batch[i] = chunk[i].transfer()
		}
		res, err := t.Apply(ctx, batch)
		if err != nil {
			return err
		}
		for i, r := range res.Results {
			p := &chunk[i]
			switch r {
			case ledger.Created, ledger.Exists:
				p.row.paid += p.amount
				p.row.revision++
				rep.Transfers++
				rep.Charged += p.amount
				posted = append(posted, *p)
			case ledger.InsufficientFunds:
				rep.Unpaid++
			default:
				return fmt.Errorf("transit transitPosting %s for %s/%s/%s: %s", p.id, p.row.card, p.row.operator, p.row.day, r)
			}
		}
	}
	for _, p := range ps {
		r := p.row
		if owed := r.priced - r.paid; owed > 0 {
			r.owed = owed
			if r.owedSince == nil {
				at := now
				r.owedSince = &at
			}
		} else {
			r.owed, r.owedSince = 0, nil
		}
	}
	if len(posted) == 0 {
		return nil
	}
	_, err := t.CopyFrom(ctx, pgx.Identifier{"transit_postings"},
		[]string{"transfer_id", "card_token", "operator_id", "travel_day", "revision", "amount", "code", "posted_at"},
		pgx.CopyFromSlice(len(posted), func(i int) ([]any, error) {
			p := &posted[i]
			return []any{[16]byte(p.id), p.row.card, p.row.operator, p.row.day.Date(), p.row.revision - 1, p.amount, int32(p.code), now}, nil
		}))
	if err != nil {
		return fmt.Errorf("write transit postings: %w", err)
	}
	return nil
}

// settleTransitCards prices cards' days in group g (consecutive days, at most
// transit.MaxPriceDays) from their taps, posts the difference between each day's price and what
// the ledger moved for it, and writes the days. The days' rows are locked, so two passes over one
// card queue. The journeys are not stored: the taps, the days' weekly and monthly totals and the
// cards' concession classes price them again, the same, when they are asked for.
func (t *Tx) settleTransitCards(ctx context.Context, ts *transit.Tables, g *transit.Group, cardTokens []string, days []transit.Day, now time.Time) (TransitCloseReport, error) {
	var rep TransitCloseReport
	first, last := days[0], days[len(days)-1]
	from, to := g.DayStart(first).Add(-g.Lookback()), g.DayEnd(last).Add(g.Lookback())
	taps := map[string][]transit.Tap{}
	rows := map[transitDayKey]*transitDayRow{}
	q := &pgx.Batch{}
	q.Queue(`SELECT `+transitTapColumns+`
		FROM transit_taps WHERE card_token = ANY($1) AND tapped_at >= $2 AND tapped_at < $3 AND operator_id = ANY($4)`,
		cardTokens, from, to, g.Operators).Query(func(rs pgx.Rows) error {
		for rs.Next() {
			tp, err := scanTransitTap(rs)
			if err != nil {
				return err
			}
			taps[tp.Card] = append(taps[tp.Card], tp)
		}
		return rs.Err()
	})
	// The days priced are locked; the week's and month's days before them are only read, for
	// the caps and the spend discount: a re-pricing that changes one of those goes on through
	// these days itself.
	readRows := func(rs pgx.Rows) error {
		for rs.Next() {
			r, err := scanTransitDay(rs)
			if err != nil {
				return err
			}
			rows[transitDayKey{r.card, r.operator, r.day}] = r
		}
		return rs.Err()
	}
	priorFrom := priorDaysFrom(g, first)
	if priorFrom < first {
		q.Queue(`SELECT card_token, operator_id, travel_day, priced, cap_counted, cap_credit, journeys, paid, owed, owed_since, revision
			FROM transit_days WHERE card_token = ANY($1) AND operator_id = ANY($2) AND travel_day >= $3 AND travel_day < $4`,
			cardTokens, g.Operators, priorFrom.Date(), first.Date()).Query(readRows)
	}
	q.Queue(`SELECT card_token, operator_id, travel_day, priced, cap_counted, cap_credit, journeys, paid, owed, owed_since, revision
		FROM transit_days WHERE card_token = ANY($1) AND operator_id = ANY($2) AND travel_day >= $3 AND travel_day <= $4
		ORDER BY card_token, operator_id, travel_day FOR UPDATE`,
		cardTokens, g.Operators, first.Date(), last.Date()).Query(readRows)
	statuses := newCardStatusRows()
	statuses.queue(q, cardTokens)
	classes := queueConcessions(q, cardTokens)
	if err := t.SendBatch(ctx, q).Close(); err != nil {
		return rep, fmt.Errorf("load cards' travel days: %w", err)
	}
	status := statuses.statuses()

	var (
		ps      []transitPosting
		changed []*transitDayRow
	)
	// What each card's week and month counted before the first day.
	prior := make(map[string]transit.Prior, len(cardTokens))
	for k, r := range rows {
		if k.day < first {
			p := prior[k.card]
			addPrior(&p, first, k.day, r)
			prior[k.card] = p
		}
	}
	for _, card := range cardTokens {
		// A tap made while the card could not travel is not the card's to pay, though a race
		// with the change that stopped it let it in.
		priced, err := ts.PriceDays(g, ts.Payable(taps[card], status[card]), days, prior[card], classes[card], now)
		if err != nil {
			return rep, fmt.Errorf("price card %s: %w", card, err)
		}
		for _, dp := range priced {
			rep.Cards++
			for _, op := range g.Operators {
				od, has := dp.ByOperator[op]
				k := transitDayKey{card, op, dp.Day}
				r, ok := rows[k]
				if !has && !ok {
					continue
				}
				if !ok {
					r = &transitDayRow{card: card, operator: op, day: dp.Day}
					rows[k] = r
				}
				r.priced, r.capCounted, r.capCredit, r.journeys = od.Charged, od.CapCounted, od.CapCredit, od.Journeys
				changed = append(changed, r)
				if p, ok := planTransitPosting(r, g); ok {
					ps = append(ps, p)
				}
			}
		}
	}
	if err := t.postTransit(ctx, ps, now, &rep); err != nil {
		return rep, err
	}
	return rep, t.writeTransitDays(ctx, changed, now)
}

// priorDaysFrom is the first day whose row a price from first depends on: the start of first's
// week when a rule of the group counts over weeks, of its month when one counts over months.
func priorDaysFrom(g *transit.Group, first transit.Day) transit.Day {
	from := first
	if g.Counts(transit.PeriodWeek) {
		from = min(from, first.WeekStart())
	}
	if g.Counts(transit.PeriodMonth) {
		from = min(from, first.MonthStart())
	}
	return from
}

// addPrior adds what a day before first counted to the prior of first's week and month.
func addPrior(p *transit.Prior, first, day transit.Day, r *transitDayRow) {
	c := transit.Counted{Capped: r.capCounted, Spent: r.priced}
	if day >= first.WeekStart() {
		p.Week.Capped += c.Capped
		p.Week.Spent += c.Spent
	}
	if day >= first.MonthStart() {
		p.Month.Capped += c.Capped
		p.Month.Spent += c.Spent
	}
}

func scanTransitDay(rs pgx.Rows) (*transitDayRow, error) {
	r := &transitDayRow{exists: true}
	var day time.Time
	if err := rs.Scan(&r.card, &r.operator, &day, &r.priced, &r.capCounted, &r.capCredit, &r.journeys, &r.paid, &r.owed,
		&r.owedSince, &r.revision); err != nil {
		return nil, err
	}
	r.day = transit.DayOfTime(day)
	return r, nil
}

// writeTransitDays inserts the new rows and updates the others. A new row that a concurrent pass
// inserted first collides on its key, and the transaction runs again, reading it.
func (t *Tx) writeTransitDays(ctx context.Context, rs []*transitDayRow, now time.Time) error {
	var fresh, old []*transitDayRow
	for _, r := range rs {
		if r.exists {
			old = append(old, r)
		} else {
			fresh = append(fresh, r)
		}
	}
	byKey := func(rs []*transitDayRow) {
		slices.SortFunc(rs, func(a, b *transitDayRow) int {
			return cmp.Or(strings.Compare(a.card, b.card), strings.Compare(a.operator, b.operator), cmp.Compare(a.day, b.day))
		})
	}
	byKey(fresh)
	byKey(old)
	if len(fresh) > 0 {
		_, err := t.CopyFrom(ctx, pgx.Identifier{"transit_days"},
			[]string{"card_token", "operator_id", "travel_day", "priced", "cap_counted", "cap_credit", "journeys", "paid", "owed",
				"owed_since", "revision", "updated_at"},
			pgx.CopyFromSlice(len(fresh), func(i int) ([]any, error) {
				r := fresh[i]
				return []any{r.card, r.operator, r.day.Date(), r.priced, r.capCounted, r.capCredit, int32(r.journeys), r.paid, r.owed,
					r.owedSince, int32(r.revision), now}, nil
			}))
		if err != nil {
			return fmt.Errorf("write travel days: %w", err)
		}
	}
	if len(old) == 0 {
		return nil
	}
	n := len(old)
	var (
		cs, ops                           = make([]string, n), make([]string, n)
		ds                                = make([]time.Time, n)
		priced, counted, credit, paid, ow = make([]int64, n), make([]int64, n), make([]int64, n), make([]int64, n), make([]int64, n)
		js, revs                          = make([]int32, n), make([]int32, n)
		since                             = make([]*time.Time, n)
	)
	for i, r := range old {
		cs[i], ops[i], ds[i] = r.card, r.operator, r.day.Date()
		priced[i], counted[i], credit[i], paid[i], ow[i] = r.priced, r.capCounted, r.capCredit, r.paid, r.owed
		js[i], revs[i], since[i] = int32(r.journeys), int32(r.revision), r.owedSince
	}
	_, err := t.Exec(ctx, `UPDATE transit_days d SET priced = u.priced, cap_counted = u.cap_counted, cap_credit = u.cap_credit,
			journeys = u.journeys, paid = u.paid, owed = u.owed, owed_since = u.owed_since, revision = u.revision, updated_at = $12
		FROM unnest($1::TEXT[], $2::TEXT[], $3::DATE[], $4::BIGINT[], $5::BIGINT[], $6::BIGINT[], $7::INT[], $8::BIGINT[],
			$9::BIGINT[], $10::TIMESTAMPTZ[], $11::INT[]) AS u(card_token, operator_id, travel_day, priced, cap_counted, cap_credit,
			journeys, paid, owed, owed_since, revision)
		WHERE d.card_token = u.card_token AND d.operator_id = u.operator_id AND d.travel_day = u.travel_day`,
		cs, ops, ds, priced, counted, credit, js, paid, ow, since, revs, now)
	if err != nil {
		return fmt.Errorf("update travel days: %w", err)
	}
	return nil
}

// repriceClaim takes marked travel days off the re-price queue in key order, skipping those a
// concurrent pass holds: a range of the queue's primary key.
const repriceClaim = `DELETE FROM transit_reprice WHERE (card_token, group_key, travel_day) IN (
		SELECT card_token, group_key, travel_day FROM transit_reprice
		ORDER BY card_token, group_key, travel_day LIMIT $1 FOR UPDATE SKIP LOCKED)
	RETURNING card_token, group_key, travel_day`

// RepriceTransitDays re-prices the closed travel days that late taps (or a fare table uploaded
// to re-price) changed, posting each difference as an adjustment (a refund when the day now costs
// less), up to maxRepriceMarks marked days. A day's re-pricing carries through the closed days
// whose price depends on it: the rest of its week when a rule counts over weeks, of its month
// when one counts over months (transit.Group.RepriceThrough). It returns how many cards' marks (per
// pricing group) it claimed; call it until that is 0.
func (s *Store) RepriceTransitDays(ctx context.Context, ts *transit.Tables, now time.Time) (int, TransitCloseReport, error) {
	var (
		rep TransitCloseReport
		n   int
	)
	type cardGroup struct{ card, group string }
	err := s.InTx(ctx, nil, func(ctx context.Context, tx *Tx) error {
		rep, n = TransitCloseReport{}, 0
		if err := tx.checkFares(ctx, ts); err != nil {
			return err
		}
		// Claimed by deleting them: a tap deciding now that marks one of these days again waits
		// for this transaction, and its mark stays for the next pass.
		rows, err := tx.Query(ctx, repriceClaim, maxRepriceMarks)
		if err != nil {
			return fmt.Errorf("claim days to re-price: %w", err)
		}
		marked := map[cardGroup][]transit.Day{}
		var order []cardGroup
		for rows.Next() {
			var (
				cg  cardGroup
				day time.Time
			)
			if err := rows.Scan(&cg.card, &cg.group, &day); err != nil {
				rows.Close()
				return fmt.Errorf("claim days to re-price: %w", err)
			}
			if _, ok := marked[cg]; !ok {
				order = append(order, cg)
			}
			marked[cg] = append(marked[cg], transit.DayOfTime(day))
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return fmt.Errorf("claim days to re-price: %w", err)
		}
		slices.SortFunc(order, func(a, b cardGroup) int {
			return cmp.Or(strings.Compare(a.card, b.card), strings.Compare(a.group, b.group))
		})
		n = len(order)
		closedThrough := map[string]*transit.Day{}
		var remark []transitMark
		for _, cg := range order {
			g, ok := ts.Group(cg.group)
			if !ok {
				return fmt.Errorf("re-price %s: no fare tables for group %s", cg.card, cg.group)
			}
			closed, ok := closedThrough[g.Key]
			if !ok {
				var c *time.Time
				if err := tx.QueryRow(ctx, `SELECT closed_through FROM transit_groups WHERE group_key = $1`, g.Key).Scan(&c); err != nil {
					return fmt.Errorf("read transit group %s: %w", g.Key, err)
				}
				closed = transitDayPtr(c)
				closedThrough[g.Key] = closed
			}
			if closed == nil {
				continue
			}
			for _, span := range repriceSpans(g, marked[cg], *closed) {
				if len(span.days) == 0 {
					continue
				}
				r, err := tx.settleTransitCards(ctx, ts, g, []string{cg.card}, span.days, now)
				if err != nil {
					return err
				}
				rep.Add(r)
				if span.rest != nil {
					remark = append(remark, transitMark{cg.card, g.Key, *span.rest})
				}
			}
		}
		return tx.markTransitDays(ctx, remark, now)
	})
	if err != nil {
		return 0, rep, err
	}
	return n, rep, nil
}

// repriceSpan is consecutive days to re-price at once, and the day to mark for the next pass
// when the days that depend on the marks run past transit.MaxPriceDays.
type repriceSpan struct {
	days []transit.Day
	rest *transit.Day
}

// repriceSpans turns a card's marked days in group g into spans: each from a marked day through
// the last closed day its price reaches (g.RepriceThrough), merged with the marked days and spans
// it covers, at most transit.MaxPriceDays long.
func repriceSpans(g *transit.Group, marked []transit.Day, closed transit.Day) []repriceSpan {
	slices.Sort(marked)
	var out []repriceSpan
	for i := 0; i < len(marked); {
		first := marked[i]
		if first > closed {
			break
		}
		last := g.RepriceThrough(first, closed)
		i++
		for i < len(marked) && marked[i] <= last+1 && marked[i] <= closed {
			last = max(last, g.RepriceThrough(marked[i], closed))
			i++
		}
		var sp repriceSpan
		if int(last-first) >= transit.MaxPriceDays {
			next := first + transit.MaxPriceDays
			sp.rest = &next
			last = next - 1
		}
		for d := first; d <= last; d++ {
			sp.days = append(sp.days, d)
		}
		out = append(out, sp)
		if sp.rest != nil {
			break // the rest, marked again, is the next pass's
		}
	}
	return out
}

// transitMark is a card's travel day in a group to re-price.
type transitMark struct {
	card, group string
	day         transit.Day
}

// markTransitDays marks days for re-pricing.
func (t *Tx) markTransitDays(ctx context.Context, marks []transitMark, now time.Time) error {
	if len(marks) == 0 {
		return nil
	}
	var (
		mc, mg []string
		md     []time.Time
	)
	for _, m := range marks {
		mc, mg, md = append(mc, m.card), append(mg, m.group), append(md, m.day.Date())
	}
	if _, err := t.Exec(ctx, `INSERT INTO transit_reprice (card_token, group_key, travel_day, marked_at)
		SELECT c, g, d, $4 FROM unnest($1::TEXT[], $2::TEXT[], $3::DATE[]) AS m(c, g, d)
		ON CONFLICT DO NOTHING`, mc, mg, md, now); err != nil {
		return fmt.Errorf("mark days to re-price: %w", err)
	}
	return nil
}

// RetryOwedFares tries again, up to maxOwedRetries, the charges cards could not pay, the least
// recently tried first (each try stamps the day), so that cards that stay broke do not starve the
// others: a card whose funds have arrived pays, and leaves the deny list once it owes nothing. It
// returns how many days it tried.
func (s *Store) RetryOwedFares(ctx context.Context, ts *transit.Tables, now time.Time) (int, TransitCloseReport, error) {
	var (
		rep TransitCloseReport
		n   int
	)
	err := s.InTx(ctx, nil, func(ctx context.Context, tx *Tx) error {
		rep, n = TransitCloseReport{}, 0
		rows, err := tx.Query(ctx, `SELECT card_token, operator_id, travel_day, priced, cap_counted, cap_credit, journeys, paid, owed,
				owed_since, revision
			FROM transit_days WHERE owed > 0 ORDER BY updated_at, card_token, operator_id, travel_day LIMIT $1 FOR UPDATE`, maxOwedRetries)
		if err != nil {
			return fmt.Errorf("read owed days: %w", err)
		}
		var owed []*transitDayRow
		for rows.Next() {
			r, err := scanTransitDay(rows)
			if err != nil {
				rows.Close()
				return fmt.Errorf("read owed days: %w", err)
			}
			owed = append(owed, r)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return fmt.Errorf("read owed days: %w", err)
		}
		n = len(owed)
		var ps []transitPosting
		for _, r := range owed {
			op, ok := ts.Operator(r.operator)
			if !ok {
				return fmt.Errorf("owed day %s/%s/%s: no fare table", r.card, r.operator, r.day)
			}
			if p, ok := planTransitPosting(r, op.Group()); ok {
				ps = append(ps, p)
			}
		}
		if err := tx.postTransit(ctx, ps, now, &rep); err != nil {
			return err
		}
		return tx.writeTransitDays(ctx, owed, now)
	})
	return n, rep, err
}

// DenyEntry is a card on the deny list: why and since when, what it owes in unpaid fares (whatever
// the reason), and every token that names it (the readers see the physical card's or the phone's).
type DenyEntry struct {
	Card   string
	Tokens []string
	Reason transit.DenyReason
	Since  time.Time
	Owed   int64
}

// denyColumns are what deciding a card's place on the deny list reads of card c, in
// scanDenyEntry's order.
const denyColumns = `c.card_token, c.declared_status, c.status_reason, c.permit_valid_until,
	(SELECT max(h.changed_at) FROM card_status_changes h WHERE h.card_token = c.card_token),
	(SELECT array_agg(t.token ORDER BY t.token) FROM card_tokens t WHERE t.card_token = c.card_token),
	COALESCE((SELECT sum(d.owed) FROM transit_days d WHERE d.card_token = c.card_token AND d.owed > 0), 0),
	(SELECT min(d.owed_since) FROM transit_days d WHERE d.card_token = c.card_token AND d.owed > 0)`

// scanDenyEntry reads a card's denyColumns and decides its place on the deny list at now.
func scanDenyEntry(row pgx.Row, now time.Time) (DenyEntry, bool, error) {
	var (
		e                 DenyEntry
		declared, reason  string
		validUntil        time.Time
		changed, owedFrom *time.Time
	)
	if err := row.Scan(&e.Card, &declared, &reason, &validUntil, &changed, &e.Tokens, &e.Owed, &owedFrom); err != nil {
		return e, false, err
	}
	rows := newCardStatusRows()
	rows.card(e.Card, declared, reason, validUntil, nil)
	if changed != nil {
		rows.history[e.Card] = []cards.StatusChange{{At: *changed, Declared: events.CardStatus(declared), Reason: reason}}
	}
	var owedSince time.Time
	if owedFrom != nil {
		owedSince = *owedFrom
	}
	why, since, denied := transit.Deny(rows.statuses()[e.Card], e.Owed, owedSince, now)
	e.Reason, e.Since = why, since.UTC()
	return e, denied, nil
}

// shanghaiDate is the date of now in Shanghai, as the store writes a DATE.
func shanghaiDate(now time.Time) time.Time {
	y, m, d := now.In(cards.Shanghai).Date()
	return time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
}

// DenyList returns the cards on the deny list after the card token after, in token order, at
// most limit (capped at MaxDenyListPage): the blocked and closed cards, those whose permit has
// expired, and those that owe fares (transit.Deny). Each of the three is read in token order from
// its own index, and the page is the first limit of them together.
func (s *Store) DenyList(ctx context.Context, after string, limit int) ([]DenyEntry, error) {
	if limit <= 0 || limit > MaxDenyListPage {
		limit = MaxDenyListPage
	}
	now := s.Now()
	rows, err := s.pool.Query(ctx, `WITH listed AS (
			SELECT card_token FROM (
				(SELECT card_token FROM cards WHERE declared_status <> 'active' AND card_token > $1 ORDER BY card_token LIMIT $2)
				UNION
				(SELECT card_token FROM cards WHERE permit_valid_until < $3 AND card_token > $1 ORDER BY card_token LIMIT $2)
				UNION
				(SELECT DISTINCT card_token FROM transit_days WHERE owed > 0 AND card_token > $1 ORDER BY card_token LIMIT $2)
			) AS u ORDER BY card_token LIMIT $2)
		SELECT `+denyColumns+` FROM listed l JOIN cards c ON c.card_token = l.card_token ORDER BY c.card_token`,
		after, limit, shanghaiDate(now))
	if err != nil {
		return nil, fmt.Errorf("read deny list: %w", err)
	}
	defer rows.Close()
	var out []DenyEntry
	for rows.Next() {
		e, denied, err := scanDenyEntry(rows, now)
		if err != nil {
			return nil, fmt.Errorf("read deny list: %w", err)
		}
		if !denied {
			// The query's three conditions are transit.Deny's, read from the database.
			return nil, fmt.Errorf("read deny list: card %s is listed but not denied", e.Card)
		}
		out = append(out, e)
	}
	return out, rows.Err()
}

// CardDenyStatus returns whether the card token names is on the deny list, why and with what it
// owes; an unknown token is an error wrapping ErrNotFound.
func (s *Store) CardDenyStatus(ctx context.Context, token string) (DenyEntry, bool, error) {
	now := s.Now()
	e, denied, err := scanDenyEntry(s.pool.QueryRow(ctx, `SELECT `+denyColumns+`
		FROM card_tokens t JOIN cards c ON c.card_token = t.card_token WHERE t.token = $1`, token), now)
	if errors.Is(err, pgx.ErrNoRows) {
		return DenyEntry{}, false, fmt.Errorf("card: %w", ErrNotFound)
	}
	if err != nil {
		return DenyEntry{}, false, fmt.Errorf("read deny status: %w", err)
	}
	return e, denied, nil
}

// TripDay is a card's travel day at one operator: its price, what the ledger moved, what the card
// owes, the journeys behind it and the postings that charged it.
type TripDay struct {
	Day       transit.Day
	Operator  string
	Priced    int64
	CapCredit int64
	Paid      int64
	Owed      int64
	Journeys  []transit.Journey
	Postings  []TripPosting
}

// TripPosting is one posting of a travel day.
type TripPosting struct {
	TransferID ledger.ID
	Revision   int
	Amount     int64
	Code       ledger.Code
	PostedAt   time.Time
}

// TransitTrips returns the card's priced travel days from..to (at most MaxTripDays), oldest
// first; an unknown token is an error wrapping ErrNotFound. Days not yet closed have no price
// yet and do not appear. The journeys are priced again from the card's taps and its weeks'
// totals, as the close priced them.
func (s *Store) TransitTrips(ctx context.Context, ts *transit.Tables, token string, from, to transit.Day) (string, []TripDay, error) {
	if to < from || int(to-from) >= MaxTripDays {
		return "", nil, fmt.Errorf("trip history from %s to %s: want at most %d days", from, to, MaxTripDays)
	}
	var card string
	err := s.pool.QueryRow(ctx, `SELECT card_token FROM card_tokens WHERE token = $1`, token).Scan(&card)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", nil, fmt.Errorf("card: %w", ErrNotFound)
	}
	if err != nil {
		return "", nil, fmt.Errorf("read card token: %w", err)
	}
	// The taps that can make a journey of the days, whatever the group's start hour and limit.
	var tapsFrom, tapsTo time.Time
	for i, g := range ts.Groups() {
		a, b := g.DayStart(from).Add(-g.Lookback()), g.DayEnd(to).Add(g.Lookback())
		if i == 0 || a.Before(tapsFrom) {
			tapsFrom = a
		}
		if i == 0 || b.After(tapsTo) {
			tapsTo = b
		}
	}
	var (
		days    []TripDay
		index   = map[transitDayKey]int{}
		counted = map[transitDayKey]*transitDayRow{} // each day's counts, from its week's and month's start
		taps    []transit.Tap
	)
	q := &pgx.Batch{}
	q.Queue(`SELECT operator_id, travel_day, priced, cap_counted, cap_credit, paid, owed FROM transit_days
		WHERE card_token = $1 AND travel_day >= $2 AND travel_day <= $3 ORDER BY travel_day, operator_id`,
		card, min(from.WeekStart(), from.MonthStart()).Date(), to.Date()).Query(func(rs pgx.Rows) error {
		for rs.Next() {
			var (
				d          TripDay
				day        time.Time
				capCounted int64
			)
			if err := rs.Scan(&d.Operator, &day, &d.Priced, &capCounted, &d.CapCredit, &d.Paid, &d.Owed); err != nil {
				return err
			}
			d.Day = transit.DayOfTime(day)
			k := transitDayKey{card, d.Operator, d.Day}
			counted[k] = &transitDayRow{priced: d.Priced, capCounted: capCounted}
			if d.Day >= from {
				index[k] = len(days)
				days = append(days, d)
			}
		}
		return rs.Err()
	})
	q.Queue(`SELECT operator_id, travel_day, transfer_id, revision, amount, code, posted_at FROM transit_postings
		WHERE card_token = $1 AND travel_day >= $2 AND travel_day <= $3 ORDER BY travel_day, operator_id, revision`,
		card, from.Date(), to.Date()).Query(func(rs pgx.Rows) error {
		for rs.Next() {
			var (
				p    TripPosting
				op   string
				day  time.Time
				id   uuid.UUID
				code int32
			)
			if err := rs.Scan(&op, &day, &id, &p.Revision, &p.Amount, &code, &p.PostedAt); err != nil {
				return err
			}
			p.TransferID, p.Code, p.PostedAt = ledger.ID(id), ledger.Code(code), p.PostedAt.UTC()
			if i, ok := index[transitDayKey{card, op, transit.DayOfTime(day)}]; ok {
				days[i].Postings = append(days[i].Postings, p)
			}
		}
		return rs.Err()
	})
	q.Queue(`SELECT `+transitTapColumns+`
		FROM transit_taps WHERE card_token = $1 AND tapped_at >= $2 AND tapped_at < $3`, card, tapsFrom, tapsTo).Query(func(rs pgx.Rows) error {
		for rs.Next() {
			tp, err := scanTransitTap(rs)
			if err != nil {
				return err
			}
			taps = append(taps, tp)
		}
		return rs.Err()
	})
	statuses := newCardStatusRows()
	statuses.queue(q, []string{card})
	classes := queueConcessions(q, []string{card})
	if err := s.pool.SendBatch(ctx, q).Close(); err != nil {
		return "", nil, fmt.Errorf("read trip history: %w", err)
	}
	// The journeys the close priced: those of the taps the card pays for.
	taps = ts.Payable(taps, statuses.statuses()[card])

	// Price each group's days from..to, from what their week and month counted before, and hang
	// the journeys on the days the close priced. A group whose fare tables are gone keeps its
	// days, without journeys.
	now := s.Now()
	for _, g := range ts.Groups() {
		var gtaps []transit.Tap
		for _, tp := range taps {
			if op, ok := ts.Operator(tp.Operator); ok && op.Group() == g {
				gtaps = append(gtaps, tp)
			}
		}
		if len(gtaps) == 0 {
			continue
		}
		var prior transit.Prior
		for k, r := range counted {
			if k.day < from && slices.Contains(g.Operators, k.operator) {
				addPrior(&prior, from, k.day, r)
			}
		}
		var span []transit.Day
		for d := from; d <= to; d++ {
			span = append(span, d)
		}
		priced, err := ts.PriceDays(g, gtaps, span, prior, classes[card], now)
		if err != nil {
			return "", nil, fmt.Errorf("price trips of %s: %w", card, err)
		}
		for _, dp := range priced {
			for _, j := range dp.Journeys {
				if i, ok := index[transitDayKey{card, j.Operator, dp.Day}]; ok {
					days[i].Journeys = append(days[i].Journeys, j)
				}
			}
		}
	}
	return card, days, nil
}
