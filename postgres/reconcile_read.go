package postgres

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/joinincard/engine/cards"
	"github.com/joinincard/engine/ledger"
	"github.com/joinincard/engine/reconcile"
	"github.com/joinincard/engine/settlement"
)

var (
	// ErrBreakResolved is returned for a break resolved before: a break is resolved once.
	ErrBreakResolved = errors.New("the break is resolved already")
	// ErrNotAdjustable is returned for a break an adjustment cannot resolve: one without both an
	// expected and a booked amount.
	ErrNotAdjustable = errors.New("the break has no amount difference to adjust")
	// ErrNotPending is returned for a match that is not a suggestion waiting for a person: a
	// match made by the rules, or a suggestion confirmed or refused before.
	ErrNotPending = errors.New("the match is not a suggestion waiting for a person")
	// ErrMatchedSince is returned for accepting a suggestion whose item or file's net was matched
	// since by entries that name it: accepting would match it twice. The suggestion can be refused.
	ErrMatchedSince = errors.New("what the suggestion names was matched since by entries that name it")
)

// CodeReconAdjustment is the transfer that resolves a break by adjusting a bank's settlement
// position to what the bank booked, against the reconciliation account.
const CodeReconAdjustment ledger.Code = 42

// ReconciliationAccount holds the differences finance staff adjusted a bank's position by, until
// they are cleared with the bank: a suspense account.
var ReconciliationAccount = cards.AccountID("system", "reconciliation_adjustments")

// BreakEntry is a statement entry a break is about.
type BreakEntry struct {
	Statement   string
	Line        int64
	EntryRef    string
	Ref         string
	Amount      int64
	BookingDate settlement.Date
	ValueDate   settlement.Date
	Info        string
}

// Resolution is how a break was resolved.
type Resolution struct {
	Kind       string // note, adjustment, matched (the engine found the match), superseded
	Note       string
	TransferID ledger.ID // the adjustment's transfer
	By         string
	At         time.Time
}

// Break is a break as finance staff read it.
type Break struct {
	ID           ledger.ID
	Bank         string
	Kind         reconcile.BreakKind
	Cycle        *settlement.Date
	Item         ledger.ID
	File         string
	Expected     *int64 // signed from the bank's point of view
	Actual       *int64
	ExpectedDate *settlement.Date
	ActualDate   *settlement.Date
	AsOf         settlement.Date
	Detail       string
	DetectedAt   time.Time
	Entries      []BreakEntry
	Resolution   *Resolution
	// Age is the days since AsOf at the store's today (Asia/Shanghai), Bucket its ageing bucket.
	Age    int
	Bucket reconcile.AgeBucket
}

// BreakFilter selects breaks.
type BreakFilter struct {
	Bank  string // "" every bank
	Open  bool   // only breaks not resolved
	Cycle *settlement.Date
	Limit int // capped at maxBreakList
}

// maxBreakList bounds one listing of breaks: a page finance staff read.
const maxBreakList = 1000

const breakColumns = `b.break_id, b.bank_id, b.kind, b.cycle_date, b.item_id, b.file_id, b.expected, b.actual,
	b.expected_date, b.actual_date, b.as_of, b.detail, b.detected_at,
	r.kind, r.note, r.transfer_id, r.resolved_by, r.resolved_at`

func (r *Reconciler) today() settlement.Date {
	return settlement.DateOf(r.store.Now().In(cards.Shanghai))
}

// ageAt is the day a break's age is counted to: the day it was resolved (resolved, a break ages
// no more), else today, in Asia/Shanghai.
func (r *Reconciler) ageAt(resolved *time.Time) settlement.Date {
	if resolved == nil {
		return r.today()
	}
	return settlement.DateOf(resolved.In(cards.Shanghai))
}

func (r *Reconciler) scanBreak(rows pgx.Rows) (Break, error) {
	var (
		b                 Break
		id                [16]byte
		kind              string
		cycle, expD, actD *time.Time
		item              *[16]byte
		file              *string
		asOf              time.Time
		rKind, rNote, rBy *string
		rTransfer         *[16]byte
		rAt               *time.Time
	)
	if err := rows.Scan(&id, &b.Bank, &kind, &cycle, &item, &file, &b.Expected, &b.Actual, &expD, &actD, &asOf, &b.Detail,
		&b.DetectedAt, &rKind, &rNote, &rTransfer, &rBy, &rAt); err != nil {
		return b, fmt.Errorf("scan break: %w", err)
	}
	b.ID, b.Kind, b.AsOf = ledger.ID(id), reconcile.BreakKind(kind), settlement.DateOf(asOf)
	date := func(t *time.Time) *settlement.Date {
		if t == nil {
			return nil
		}
		d := settlement.DateOf(*t)
		return &d
	}
	b.Cycle, b.ExpectedDate, b.ActualDate = date(cycle), date(expD), date(actD)
	if item != nil {
		b.Item = ledger.ID(*item)
	}
	if file != nil {
		b.File = *file
	}
	if rKind != nil {
		b.Resolution = &Resolution{Kind: *rKind, Note: *rNote, By: *rBy, At: *rAt}
		if rTransfer != nil {
			b.Resolution.TransferID = ledger.ID(*rTransfer)
		}
	}
	b.Age, b.Bucket = reconcile.Age(b.AsOf, r.ageAt(rAt))
	return b, nil
}

// Breaks lists breaks, newest first by the date their age counts from.
func (r *Reconciler) Breaks(ctx context.Context, f BreakFilter) ([]Break, error) {
	if f.Limit <= 0 || f.Limit > maxBreakList {
		f.Limit = maxBreakList
	}
	var cycle *time.Time
	if f.Cycle != nil {
		c := settlement.DateTime(*f.Cycle)
		cycle = &c
	}
	rows, err := r.store.pool.Query(ctx, `SELECT `+breakColumns+`
		FROM recon_breaks b LEFT JOIN recon_resolutions r ON r.break_id = b.break_id
		WHERE ($1 = '' OR b.bank_id = $1) AND (NOT $2 OR r.break_id IS NULL) AND ($3::DATE IS NULL OR b.cycle_date = $3)
		ORDER BY b.as_of DESC, b.bank_id, b.kind, b.break_id LIMIT $4`, f.Bank, f.Open, cycle, f.Limit)
	if err != nil {
		return nil, fmt.Errorf("list breaks: %w", err)
	}
	defer rows.Close()
	var out []Break
	for rows.Next() {
		b, err := r.scanBreak(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, b)
	}
	return out, rows.Err()
}

// Break returns one break with its entries, or ErrNotFound.
func (r *Reconciler) Break(ctx context.Context, id ledger.ID) (Break, error) {
	rows, err := r.store.pool.Query(ctx, `SELECT `+breakColumns+`
		FROM recon_breaks b LEFT JOIN recon_resolutions r ON r.break_id = b.break_id WHERE b.break_id = $1`, [16]byte(id))
	if err != nil {
		return Break{}, fmt.Errorf("read break: %w", err)
	}
	var (
		b     Break
		found bool
	)
	for rows.Next() {
		if b, err = r.scanBreak(rows); err != nil {
			rows.Close()
			return b, err
		}
		found = true
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return b, fmt.Errorf("read break: %w", err)
	}
	if !found {
		return b, fmt.Errorf("break %s: %w", id, ErrNotFound)
	}
	rows, err = r.store.pool.Query(ctx, `SELECT e.statement_id, e.line, e.entry_ref, e.ref, e.amount, e.booking_date, e.value_date, e.info
		FROM recon_break_entries be JOIN statement_entries e
			ON e.bank_id = be.bank_id AND e.statement_id = be.statement_id AND e.line = be.line
		WHERE be.break_id = $1 ORDER BY e.statement_id, e.line`, [16]byte(id))
	if err != nil {
		return b, fmt.Errorf("read the break's entries: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			e               BreakEntry
			booking, valueD time.Time
		)
		if err := rows.Scan(&e.Statement, &e.Line, &e.EntryRef, &e.Ref, &e.Amount, &booking, &valueD, &e.Info); err != nil {
			return b, fmt.Errorf("read the break's entries: %w", err)
		}
		e.BookingDate, e.ValueDate = settlement.DateOf(booking), settlement.DateOf(valueD)
		b.Entries = append(b.Entries, e)
	}
	return b, rows.Err()
}

// maxNoteBytes bounds a resolution's note: a paragraph.
const maxNoteBytes = 2000

func checkResolution(by, note string) error {
	switch {
	case strings.TrimSpace(by) == "":
		return fmt.Errorf("who resolves the break: missing")
	case strings.TrimSpace(note) == "":
		return fmt.Errorf("note: missing")
	case len(note) > maxNoteBytes:
		return fmt.Errorf("note: more than %d bytes", maxNoteBytes)
	}
	return nil
}

// ResolveWithNote resolves break id with a note, recording who and when. A break is resolved
// once: ErrBreakResolved after that.
func (r *Reconciler) ResolveWithNote(ctx context.Context, id ledger.ID, by, note string) (Break, error) {
	if err := checkResolution(by, note); err != nil {
		return Break{}, err
	}
	err := r.store.InTx(ctx, nil, func(ctx context.Context, tx *Tx) error {
		return r.resolve(ctx, tx, id, "note", note, nil, by)
	})
	if err != nil {
		return Break{}, err
	}
	return r.Break(ctx, id)
}

// ResolveWithAdjustment resolves break id by an adjustment through the ledger: the bank's
// settlement position moved by what the bank booked less what the engine settled, against the
// reconciliation account, with a note; who and when are recorded. The adjustment's id derives from
// the break's, so a retry posts nothing twice.
func (r *Reconciler) ResolveWithAdjustment(ctx context.Context, id ledger.ID, by, note string) (Break, error) {
	if err := checkResolution(by, note); err != nil {
		return Break{}, err
	}
	b, err := r.Break(ctx, id)
	if err != nil {
		return Break{}, err
	}
	extra := b.Kind == reconcile.Duplicate
	if b.Kind == reconcile.AmountMismatch && b.Expected != nil && b.Actual != nil {
		// Entries of another amount booked besides the entries that matched the item (or its
		// file's net) are extra as a whole, as a duplicate is.
		if err := r.store.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM recon_matches m
				WHERE m.bank_id = $1 AND (m.item_id = $2 OR m.file_id = $3) AND `+matchStands+`
					AND NOT EXISTS (SELECT 1 FROM recon_match_entries me JOIN recon_break_entries be
						ON be.bank_id = me.bank_id AND be.statement_id = me.statement_id AND be.line = me.line
						WHERE me.match_id = m.match_id AND be.break_id = $4))`,
			b.Bank, uuidOrNil(b.Item), b.File, [16]byte(b.ID)).Scan(&extra); err != nil {
			return Break{}, fmt.Errorf("read the break's matches: %w", err)
		}
	}
	var diff int64
	switch {
	case extra && b.Actual != nil:
		diff = *b.Actual
	case b.Expected != nil && b.Actual != nil:
		diff = *b.Actual - *b.Expected
	case b.Expected != nil && b.Kind == reconcile.MissingAtBank:
		diff = -*b.Expected
	case b.Actual != nil && (b.Kind == reconcile.MissingInLedger || b.Kind == reconcile.Duplicate):
		diff = *b.Actual
	}
	if diff == 0 {
		return Break{}, ErrNotAdjustable
	}
	tid := adjustmentID(id)
	t := ledger.Transfer{ID: tid, DebitAccountID: ReconciliationAccount, CreditAccountID: settlement.PositionAccount(b.Bank),
		Amount: diff, Code: CodeReconAdjustment, UserData: id}
	if diff < 0 {
		t.Amount, t.DebitAccountID, t.CreditAccountID = -diff, t.CreditAccountID, t.DebitAccountID
	}
	err = r.store.InTx(ctx, nil, func(ctx context.Context, tx *Tx) error {
		if err := tx.CreateAccounts(ctx, []AccountSpec{
			{Account: ledger.Account{ID: ReconciliationAccount, Currency: "CNY", Kind: ledger.KindSuspense}, Name: "reconciliation adjustments"},
			{Account: ledger.Account{ID: settlement.PositionAccount(b.Bank), Currency: "CNY", Kind: ledger.KindSettlementPosition},
				Name: "settlement position of " + b.Bank},
		}); err != nil {
			return err
		}
		if err := r.resolve(ctx, tx, id, "adjustment", note, &tid, by); err != nil {
			return err
		}
		res, err := tx.Apply(ctx, []ledger.Transfer{t})
		if err != nil {
			return err
		}
		if res.Results[0] != ledger.Created && res.Results[0] != ledger.Exists {
			return fmt.Errorf("adjustment of break %s: %s", id, res.Results[0])
		}
		return nil
	})
	if err != nil {
		return Break{}, err
	}
	return r.Break(ctx, id)
}

// uuidOrNil is id, or NULL for the zero id.
func uuidOrNil(id ledger.ID) *[16]byte {
	if id.IsZero() {
		return nil
	}
	u := [16]byte(id)
	return &u
}

func adjustmentID(breakID ledger.ID) ledger.ID {
	h := sha256.Sum256(append([]byte("joinin reconciliation adjustment\x00"), breakID[:]...))
	var id ledger.ID
	copy(id[:], h[:16])
	id[6] = id[6]&0x0f | 0x80
	id[8] = id[8]&0x3f | 0x80
	return id
}

func (r *Reconciler) resolve(ctx context.Context, tx *Tx, id ledger.ID, kind, note string, transfer *ledger.ID, by string) error {
	var exists bool
	if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM recon_breaks WHERE break_id = $1)`, [16]byte(id)).Scan(&exists); err != nil {
		return fmt.Errorf("look up break: %w", err)
	}
	if !exists {
		return fmt.Errorf("break %s: %w", id, ErrNotFound)
	}
	var tid *[16]byte
	if transfer != nil {
		t := [16]byte(*transfer)
		tid = &t
	}
	tag, err := tx.Exec(ctx, `INSERT INTO recon_resolutions (break_id, kind, note, transfer_id, resolved_by, resolved_at)
		VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (break_id) DO NOTHING`, [16]byte(id), kind, note, tid, by, r.store.Now().UTC())
	if err != nil {
		return fmt.Errorf("resolve break: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return ErrBreakResolved
	}
	return nil
}

// Confirm records a person's word on a suggested match: accepted, it is a match; refused, its
// entry is missing in the ledger (a break).
func (r *Reconciler) Confirm(ctx context.Context, matchID ledger.ID, accepted bool, by string) error {
	if strings.TrimSpace(by) == "" {
		return fmt.Errorf("who confirms: missing")
	}
	return r.store.InTx(ctx, nil, func(ctx context.Context, tx *Tx) error {
		var bank, status string
		err := tx.QueryRow(ctx, `SELECT bank_id, status FROM recon_matches WHERE match_id = $1`, [16]byte(matchID)).Scan(&bank, &status)
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("match %s: %w", matchID, ErrNotFound)
		}
		if err != nil {
			return fmt.Errorf("read match: %w", err)
		}
		if status != "suggested" {
			return fmt.Errorf("match %s is %s, not a suggestion: %w", matchID, status, ErrNotPending)
		}
		if accepted {
			if err := lockBank(ctx, tx, bank); err != nil {
				return err
			}
		}
		if accepted {
			// The item, or the file's net, may have been matched since by entries that name it:
			// accepting would match it twice and count its money twice.
			var since bool
			if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM recon_matches s JOIN recon_matches m ON m.match_id <> s.match_id
					AND m.bank_id = s.bank_id AND (m.item_id = s.item_id OR m.file_id = s.file_id
						OR m.file_id = (SELECT f.message_id FROM settlement_items i JOIN settlement_files f
							ON f.bank_id = i.bank_id AND f.cycle_date = i.cycle_date WHERE i.item_id = s.item_id)
						OR m.item_id IN (SELECT i.item_id FROM settlement_files f JOIN settlement_items i
							ON i.bank_id = f.bank_id AND i.cycle_date = f.cycle_date WHERE f.bank_id = s.bank_id AND f.message_id = s.file_id))
				WHERE s.match_id = $1 AND `+matchStands+`)`, [16]byte(matchID)).Scan(&since); err != nil {
				return fmt.Errorf("read the matches since: %w", err)
			}
			if since {
				return fmt.Errorf("match %s: what it suggests was matched since: %w", matchID, ErrMatchedSince)
			}
		}
		tag, err := tx.Exec(ctx, `INSERT INTO recon_confirmations (match_id, accepted, confirmed_by, confirmed_at)
			VALUES ($1, $2, $3, $4) ON CONFLICT (match_id) DO NOTHING`, [16]byte(matchID), accepted, by, r.store.Now().UTC())
		if err != nil {
			return fmt.Errorf("confirm match: %w", err)
		}
		if tag.RowsAffected() == 0 {
			return fmt.Errorf("match %s was confirmed or refused before: %w", matchID, ErrNotPending)
		}
		if accepted {
			return nil
		}
		// Refused: its entries are missing in the ledger.
		rows, err := tx.Query(ctx, `SELECT `+entryColumns+` FROM recon_match_entries m JOIN statement_entries e
			ON e.bank_id = m.bank_id AND e.statement_id = m.statement_id AND e.line = m.line WHERE m.match_id = $1`, [16]byte(matchID))
		if err != nil {
			return fmt.Errorf("read the suggestion's entries: %w", err)
		}
		var entries []reconcile.Actual
		for rows.Next() {
			a, err := scanEntry(rows)
			if err != nil {
				rows.Close()
				return err
			}
			entries = append(entries, a)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		run := &reconRun{tx: tx, bank: bank, rep: &ReconcileReport{Breaks: map[reconcile.BreakKind]int64{}}, now: r.store.Now().UTC()}
		for _, a := range entries {
			o := reconcile.Outcome{Status: reconcile.Broken, Break: reconcile.MissingInLedger, Actual: []reconcile.Actual{a},
				Detail: fmt.Sprintf("suggested for a settled item and refused by %s", by)}
			if err := run.record(ctx, o); err != nil {
				return err
			}
		}
		return run.flush(ctx)
	})
}

// Suggestion is a match waiting for a person.
type Suggestion struct {
	ID     ledger.ID
	Bank   string
	Item   ledger.ID
	File   string
	Amount int64
	Detail string
}

// Suggestions lists the suggestions not confirmed or refused yet.
func (r *Reconciler) Suggestions(ctx context.Context, bank string) ([]Suggestion, error) {
	rows, err := r.store.pool.Query(ctx, `SELECT m.match_id, m.bank_id, m.item_id, coalesce(m.file_id, ''), m.amount, m.detail
		FROM recon_matches m WHERE m.status = 'suggested' AND ($1 = '' OR m.bank_id = $1)
			AND NOT EXISTS (SELECT 1 FROM recon_confirmations k WHERE k.match_id = m.match_id)
		ORDER BY m.bank_id, m.match_id LIMIT $2`, bank, maxBreakList)
	if err != nil {
		return nil, fmt.Errorf("list suggestions: %w", err)
	}
	defer rows.Close()
	var out []Suggestion
	for rows.Next() {
		var (
			s    Suggestion
			id   [16]byte
			item *[16]byte
		)
		if err := rows.Scan(&id, &s.Bank, &item, &s.File, &s.Amount, &s.Detail); err != nil {
			return nil, fmt.Errorf("list suggestions: %w", err)
		}
		s.ID = ledger.ID(id)
		if item != nil {
			s.Item = ledger.ID(*item)
		}
		out = append(out, s)
	}
	return out, rows.Err()
}

// BankCycleReport is one bank's part of a cycle's report.
type BankCycleReport struct {
	Bank string
	// Opening and Closing are the bank's settlement position before and after the cycle's
	// postings: Closing is Opening plus Settled plus Rejected (a rejected item's posting is
	// reversed later, when the bank's acknowledgement comes).
	Opening, Closing int64
	// Settled is the net of the cycle's items the bank did not reject: the file's net less
	// Rejected. Items and ControlSum are the file's control totals, rejected items included.
	Settled, Items, ControlSum int64
	// RejectedItems and Rejected are the items the bank rejected in its acknowledgement and their
	// net: owed nothing in this cycle, they are offered again in the next.
	RejectedItems, Rejected int64
	// MatchedItems and Matched are the items the bank's statements matched and their net; a
	// rejected item is never matched, not even when the statement booked the file's net whole,
	// and a file's net matched before an item of it was rejected no longer matches its items.
	MatchedItems, Matched int64
	// Breaks counts the cycle's breaks by kind and age bucket; Open of them are not resolved.
	Breaks map[reconcile.BreakKind]map[reconcile.AgeBucket]int64
	Open   int64
}

// CycleReport is a closed cycle's report: per bank, its position before and after, what was
// settled and matched, and the breaks by kind and age.
type CycleReport struct {
	Cycle     Cycle
	FeeIncome int64
	Banks     []BankCycleReport
}

// CycleReport reports cycle d.
func (r *Reconciler) CycleReport(ctx context.Context, set *Settlement, d settlement.Date) (CycleReport, error) {
	c, err := set.Cycle(ctx, d)
	if err != nil {
		return CycleReport{}, err
	}
	rep := CycleReport{Cycle: c, FeeIncome: c.FeeIncome}
	files, err := set.Files(ctx, d)
	if err != nil {
		return rep, err
	}
	closed := r.store.Now()
	if c.ClosedAt != nil {
		closed = *c.ClosedAt
	}
	for _, f := range files {
		b := BankCycleReport{Bank: f.Header.BankID, Settled: f.Header.Net, Items: f.Header.NumberOfEntries,
			ControlSum: f.Header.ControlSum, Breaks: map[reconcile.BreakKind]map[reconcile.AgeBucket]int64{}}
		// Before the cycle's first posting to the bank's position and after its last: read from
		// the position's history, whatever other postings came between.
		pos := settlement.PositionAccount(b.Bank)
		var first, last *time.Time
		if err := r.store.pool.QueryRow(ctx, `SELECT min(t.ts), max(t.ts) FROM settlement_items i JOIN transfers t ON t.id = i.item_id
			WHERE i.cycle_date = $1 AND i.bank_id = $2`, settlement.DateTime(d), b.Bank).Scan(&first, &last); err != nil {
			return rep, fmt.Errorf("postings of %s: %w", b.Bank, err)
		}
		if first == nil {
			first, last = &closed, &closed
		}
		if b.Opening, err = r.netAt(ctx, pos, first.Add(-time.Microsecond)); err != nil {
			return rep, err
		}
		if b.Closing, err = r.netAt(ctx, pos, *last); err != nil {
			return rep, err
		}
		err = r.store.pool.QueryRow(ctx, `SELECT count(*), coalesce(sum(i.amount), 0)::BIGINT FROM settlement_items i
			WHERE i.cycle_date = $1 AND i.bank_id = $2 AND `+itemRejected,
			settlement.DateTime(d), b.Bank).Scan(&b.RejectedItems, &b.Rejected)
		if err != nil {
			return rep, fmt.Errorf("rejected items of %s: %w", b.Bank, err)
		}
		b.Settled -= b.Rejected
		err = r.store.pool.QueryRow(ctx, `SELECT count(*), coalesce(sum(i.amount), 0)::BIGINT FROM settlement_items i
			WHERE i.cycle_date = $1 AND i.bank_id = $2 AND NOT `+itemRejected+` AND (
				EXISTS (SELECT 1 FROM recon_matches m LEFT JOIN recon_confirmations k ON k.match_id = m.match_id
					WHERE m.item_id = i.item_id AND (m.status = 'matched' OR k.accepted))
				OR EXISTS (SELECT 1 FROM recon_matches m WHERE m.bank_id = i.bank_id AND m.file_id = $3 AND m.status = 'matched'
					AND NOT `+matchUndone+`))`,
			settlement.DateTime(d), b.Bank, f.Header.MessageID).Scan(&b.MatchedItems, &b.Matched)
		if err != nil {
			return rep, fmt.Errorf("matched items of %s: %w", b.Bank, err)
		}
		rows, err := r.store.pool.Query(ctx, `SELECT b.kind, b.as_of, r.resolved_at FROM recon_breaks b
			LEFT JOIN recon_resolutions r ON r.break_id = b.break_id WHERE b.cycle_date = $1 AND b.bank_id = $2`, settlement.DateTime(d), b.Bank)
		if err != nil {
			return rep, fmt.Errorf("breaks of %s: %w", b.Bank, err)
		}
		for rows.Next() {
			var (
				kind     string
				asOf     time.Time
				resolved *time.Time
			)
			if err := rows.Scan(&kind, &asOf, &resolved); err != nil {
				rows.Close()
				return rep, err
			}
			open := resolved == nil
			_, bucket := reconcile.Age(settlement.DateOf(asOf), r.ageAt(resolved))
			k := reconcile.BreakKind(kind)
			if b.Breaks[k] == nil {
				b.Breaks[k] = map[reconcile.AgeBucket]int64{}
			}
			b.Breaks[k][bucket]++
			if open {
				b.Open++
			}
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return rep, err
		}
		rep.Banks = append(rep.Banks, b)
	}
	return rep, nil
}

// netAt is account id's net balance (credits less debits, posted) at instant at; zero before it
// was opened.
func (r *Reconciler) netAt(ctx context.Context, id ledger.ID, at time.Time) (int64, error) {
	var net int64
	err := r.store.pool.QueryRow(ctx, `SELECT coalesce((SELECT b.credits_posted - b.debits_posted FROM accounts a
		JOIN LATERAL `+summedBalance("$2::TIMESTAMPTZ")+` b ON b.version IS NOT NULL WHERE a.id = $1), 0)`, [16]byte(id), at.UTC()).Scan(&net)
	if err != nil {
		return 0, fmt.Errorf("balance of %s at %s: %w", id, at.Format(time.RFC3339), err)
	}
	return net, nil
}

// SettledWeek is what each bank's files stated, cycle by cycle, for the seven cycles up to d: the
// finance page's chart.
func (r *Reconciler) SettledWeek(ctx context.Context, d settlement.Date) (map[settlement.Date]map[string]int64, error) {
	from := settlement.AddDays(d, -6)
	rows, err := r.store.pool.Query(ctx, `SELECT cycle_date, bank_id, net FROM settlement_files WHERE cycle_date BETWEEN $1 AND $2`,
		settlement.DateTime(from), settlement.DateTime(d))
	if err != nil {
		return nil, fmt.Errorf("settled week: %w", err)
	}
	defer rows.Close()
	out := map[settlement.Date]map[string]int64{}
	for rows.Next() {
		var (
			day  time.Time
			bank string
			net  int64
		)
		if err := rows.Scan(&day, &bank, &net); err != nil {
			return nil, fmt.Errorf("settled week: %w", err)
		}
		k := settlement.DateOf(day)
		if out[k] == nil {
			out[k] = map[string]int64{}
		}
		out[k][bank] = net
	}
	return out, rows.Err()
}
