package postgres

import (
	"context"
	"crypto/sha256"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/joinincard/engine/ledger"
	"github.com/joinincard/engine/reconcile"
	"github.com/joinincard/engine/settlement"
)

// maxReconcileGroup bounds the entries decided at once while a bank's statements stream in: one
// lookup of what they name and one write of what they made, a few megabytes, so that a day of a
// million entries reconciles in bounded memory.
const maxReconcileGroup = 4096

// Reconciler matches banks' statements with what the engine settled with them.
type Reconciler struct {
	store *Store
	rules *reconcile.RuleSet
	// afterEntries, when set, is called once an import has read its statement's entries, in
	// the import's transaction; its error fails the attempt. Tests make the store retry there.
	afterEntries func() error
}

// NewReconciler returns the reconciler on st, matching by rules.
func NewReconciler(st *Store, rules *reconcile.RuleSet) *Reconciler {
	return &Reconciler{store: st, rules: rules}
}

// ReconcileReport is what one reconciliation of a bank did.
type ReconcileReport struct {
	Bank      string
	Entries   int64 // entries reconciled for the first time: matched, suggested or in a break
	Matched   int64 // matches recorded
	Suggested int64
	Breaks    map[reconcile.BreakKind]int64 // breaks recorded, by kind
	Resolved  int64                         // breaks the engine resolved: what was missing arrived
}

// ReconcileAll reconciles every bank that sent statements.
func (r *Reconciler) ReconcileAll(ctx context.Context) ([]ReconcileReport, error) {
	rows, err := r.store.pool.Query(ctx, `SELECT DISTINCT bank_id FROM bank_statements ORDER BY bank_id`)
	if err != nil {
		return nil, fmt.Errorf("list banks with statements: %w", err)
	}
	var banks []string
	for rows.Next() {
		var b string
		if err := rows.Scan(&b); err != nil {
			rows.Close()
			return nil, err
		}
		banks = append(banks, b)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	var out []ReconcileReport
	for _, b := range banks {
		rep, err := r.Reconcile(ctx, b)
		if err != nil {
			return out, err
		}
		out = append(out, rep)
	}
	return out, nil
}

// Reconcile decides bank's statement entries not matched yet against what the engine settled with
// it, in one transaction: entries that name an item or a file are matched with it (or are breaks:
// an amount mismatch, a duplicate, a timing difference); entries that name nothing of ours are
// suggested for an unmatched item of their amount and value date, or are missing in the ledger;
// items the bank's statements have run past without booking are missing at the bank; a gap in
// the bank's statement sequence is a break. A break found again is not recorded again; one whose
// want is met (an entry booked late, a statement that arrived) is resolved by the engine.
func (r *Reconciler) Reconcile(ctx context.Context, bank string) (ReconcileReport, error) {
	rules := r.rules.For(bank)
	var rep ReconcileReport
	err := r.store.InTx(ctx, nil, func(ctx context.Context, tx *Tx) error {
		rep = ReconcileReport{Bank: bank, Breaks: map[reconcile.BreakKind]int64{}}
		if err := lockBank(ctx, tx, bank); err != nil {
			return err
		}
		run := &reconRun{tx: tx, bank: bank, rules: rules, rep: &rep, now: r.store.Now().UTC(), used: map[string]bool{}}
		for _, step := range []func(context.Context) error{run.gaps, run.rejectedSince, run.referencedItems, run.referencedFiles, run.unreferenced, run.missing, run.resolve, run.close} {
			if err := step(ctx); err != nil {
				return err
			}
		}
		return nil
	})
	return rep, err
}

// lockBank makes the bank's reconciliations, and the decisions of its suggestions, one at a time:
// one waits for the other to commit, and then decides from what it recorded, so that two requests
// at once match an item once and report each entry once. The lock is the bank's party row, which
// the ledger's writers do not lock (no key update).
func lockBank(ctx context.Context, tx *Tx, bank string) error {
	if _, err := tx.Exec(ctx, `SELECT 1 FROM parties WHERE kind = 'bank' AND party_id = $1 FOR NO KEY UPDATE`, bank); err != nil {
		return fmt.Errorf("lock the bank's reconciliation: %w", err)
	}
	return nil
}

// reconRun is one reconciliation of one bank, within its transaction.
type reconRun struct {
	tx    *Tx
	bank  string
	rules reconcile.Rules
	rep   *ReconcileReport
	now   time.Time
	// used holds the expected items and files suggested in this run: one suggestion each.
	used map[string]bool
	// loose holds entries that name an item or file the bank does not have: they are decided
	// with the entries that name nothing.
	loose []reconcile.Actual
	// matches and breaks are the outcomes decided and not written yet.
	matches, breaks outcomeRows
}

// gaps records a break for each statement missing from the bank's sequence, dated by the
// statement after it.
func (run *reconRun) gaps(ctx context.Context) error {
	rows, err := run.tx.Query(ctx, `SELECT sequence, from_date FROM bank_statements WHERE bank_id = $1 ORDER BY sequence`, run.bank)
	if err != nil {
		return fmt.Errorf("read statement sequence: %w", err)
	}
	var (
		seqs  []int64
		froms = map[int64]time.Time{}
	)
	for rows.Next() {
		var (
			s    int64
			from time.Time
		)
		if err := rows.Scan(&s, &from); err != nil {
			rows.Close()
			return err
		}
		seqs = append(seqs, s)
		froms[s] = from
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	for _, g := range reconcile.Gaps(seqs) {
		next := g + 1
		for ; froms[next].IsZero(); next++ {
		}
		o := reconcile.Outcome{Status: reconcile.Broken, Break: reconcile.StatementGap,
			Detail: fmt.Sprintf("statement %d of the bank's sequence is missing", g)}
		if err := run.recordBreak(ctx, o, fmt.Sprintf("sequence %d", g), settlement.DateOf(froms[next])); err != nil {
			return err
		}
	}
	return run.flush(ctx)
}

const entryColumns = `e.statement_id, e.line, e.entry_ref, e.amount, e.booking_date, e.value_date`

func scanEntry(rows pgx.Rows, more ...any) (reconcile.Actual, error) {
	var (
		a                  reconcile.Actual
		booking, valueDate time.Time
	)
	if err := rows.Scan(append([]any{&a.Statement, &a.Line, &a.EntryRef, &a.Amount, &booking, &valueDate}, more...)...); err != nil {
		return a, fmt.Errorf("scan statement entry: %w", err)
	}
	a.BookingDate, a.ValueDate = settlement.DateOf(booking), settlement.DateOf(valueDate)
	return a, nil
}

// rejectedSince records, for each match its bank's acknowledgement undid (matchUndone), an
// amount_mismatch break of the match's entries against what the bank is owed now: 0.00 for an
// item, the net of the items accepted for a file. Found again, the break records nothing new.
func (run *reconRun) rejectedSince(ctx context.Context) error {
	type undone struct {
		match [16]byte
		e     reconcile.Expected
	}
	var (
		list []undone
		ids  [][16]byte
	)
	// Read from the bank's rejections, few, to the matches they undid.
	rows, err := run.tx.Query(ctx, `SELECT m.match_id, m.item_id::TEXT, f.message_id, f.cycle_date, c.value_date, 0::BIGINT
		FROM settlement_item_results r
		JOIN recon_matches m ON m.item_id = r.item_id
		JOIN settlement_files f ON f.bank_id = r.bank_id AND f.cycle_date = r.cycle_date
		JOIN settlement_cycles c ON c.cycle_date = f.cycle_date
		WHERE r.bank_id = $1 AND NOT r.accepted AND m.bank_id = $1 AND `+matchStands+`
		UNION
		SELECT m.match_id, '', f.message_id, f.cycle_date, c.value_date, f.net - `+fileRejected+`
		FROM settlement_item_results r
		JOIN settlement_files f ON f.bank_id = r.bank_id AND f.cycle_date = r.cycle_date
		JOIN recon_matches m ON m.bank_id = f.bank_id AND m.file_id = f.message_id
		JOIN settlement_cycles c ON c.cycle_date = f.cycle_date
		WHERE r.bank_id = $1 AND NOT r.accepted AND r.decided_at > m.matched_at AND `+matchStands+`
		ORDER BY 1`, run.bank)
	if err != nil {
		return fmt.Errorf("read matches undone by a rejection: %w", err)
	}
	for rows.Next() {
		var (
			u               undone
			item            string
			cycle, valueDay time.Time
		)
		if err := rows.Scan(&u.match, &item, &u.e.File, &cycle, &valueDay, &u.e.Amount); err != nil {
			rows.Close()
			return fmt.Errorf("read matches undone by a rejection: %w", err)
		}
		if item != "" {
			id, err := parseUUIDText(item)
			if err != nil {
				rows.Close()
				return fmt.Errorf("read matches undone by a rejection: %w", err)
			}
			u.e.Item = id
		}
		u.e.Cycle, u.e.ValueDate = settlement.DateOf(cycle), settlement.DateOf(valueDay)
		list, ids = append(list, u), append(ids, u.match)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read matches undone by a rejection: %w", err)
	}
	if len(list) == 0 {
		return nil
	}
	entries := map[[16]byte][]reconcile.Actual{}
	rows, err = run.tx.Query(ctx, `SELECT `+entryColumns+`, me.match_id FROM recon_match_entries me
		JOIN statement_entries e ON e.bank_id = me.bank_id AND e.statement_id = me.statement_id AND e.line = me.line
		WHERE me.bank_id = $1 AND me.match_id = ANY($2) ORDER BY e.statement_id, e.line`, run.bank, ids)
	if err != nil {
		return fmt.Errorf("read the entries of matches undone: %w", err)
	}
	for rows.Next() {
		var id [16]byte
		a, err := scanEntry(rows, &id)
		if err != nil {
			rows.Close()
			return err
		}
		entries[id] = append(entries[id], a)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read the entries of matches undone: %w", err)
	}
	for _, u := range list {
		actual := entries[u.match]
		if len(actual) == 0 {
			continue
		}
		var booked int64
		for _, a := range actual {
			booked += a.Amount
		}
		e := u.e
		o := reconcile.Outcome{Status: reconcile.Broken, Break: reconcile.AmountMismatch, Expected: &e, Actual: actual,
			Detail: fmt.Sprintf("rejected in the bank's acknowledgement after it matched: %s booked, %s expected",
				ledger.FormatAmount(booked, "CNY"), ledger.FormatAmount(e.Amount, "CNY"))}
		if err := run.record(ctx, o); err != nil {
			return err
		}
		if run.breaks.len() >= maxReconcileGroup {
			if err := run.flush(ctx); err != nil {
				return err
			}
		}
	}
	return run.flush(ctx)
}

// notMatched is the condition of an entry e not yet in a match.
const notMatched = `NOT EXISTS (SELECT 1 FROM recon_match_entries m
	WHERE m.bank_id = e.bank_id AND m.statement_id = e.statement_id AND m.line = e.line)`

// openEntry joins an entry e to its row o of recon_open_entries: a run reads the entries still
// open, not every entry the bank ever booked.
const openEntry = `e.bank_id = o.bank_id AND e.statement_id = o.statement_id AND e.line = o.line`

// referencedItems decides the entries that name an item of ours, and referencedFiles then those
// that name a file: a file's net is expected without its items matched on their own, which the
// items' decisions, written first, say.
func (run *reconRun) referencedItems(ctx context.Context) error { return run.referenced(ctx, false) }

func (run *reconRun) referencedFiles(ctx context.Context) error { return run.referenced(ctx, true) }

// referenced decides the entries that name an item (or, files, a file) of ours, a group per item
// or file, streaming them in the order of what they name.
func (run *reconRun) referenced(ctx context.Context, files bool) error {
	which := `e.item_id IS NOT NULL`
	if files {
		which = `e.item_id IS NULL AND e.file_id IS NOT NULL`
	}
	// Read on a connection of its own: the transaction writes as the groups are decided.
	rows, err := run.tx.store.pool.Query(ctx, `SELECT `+entryColumns+`, coalesce(e.item_id::TEXT, ''), coalesce(e.file_id, '')
		FROM recon_open_entries o JOIN statement_entries e ON `+openEntry+`
		WHERE o.bank_id = $1 AND `+which+` AND `+notMatched+`
		ORDER BY coalesce(e.item_id::TEXT, ''), coalesce(e.file_id, ''), e.statement_id, e.line`, run.bank)
	if err != nil {
		return fmt.Errorf("read referenced entries: %w", err)
	}
	defer rows.Close()
	type group struct {
		key     string // an item id or a file's message id
		file    bool
		entries []reconcile.Actual
	}
	var chunk []group
	flush := func() error {
		var items, files []string
		for _, g := range chunk {
			if g.file {
				files = append(files, g.key)
			} else {
				items = append(items, g.key)
			}
		}
		expected, matched, err := run.expected(ctx, items, files)
		if err != nil {
			return err
		}
		for _, g := range chunk {
			e, ok := expected[g.key]
			if !ok {
				run.loose = append(run.loose, g.entries...)
				continue
			}
			for _, o := range reconcile.Decide(run.rules, e, g.entries, matched[g.key]) {
				if err := run.record(ctx, o); err != nil {
					return err
				}
			}
		}
		chunk = chunk[:0]
		return run.flush(ctx)
	}
	for rows.Next() {
		var item, file string
		a, err := scanEntry(rows, &item, &file)
		if err != nil {
			return err
		}
		key, isFile := item, false
		if key == "" {
			key, isFile = file, true
		}
		if len(chunk) == 0 || chunk[len(chunk)-1].key != key {
			if len(chunk) == maxReconcileGroup {
				if err := flush(); err != nil {
					return err
				}
			}
			chunk = append(chunk, group{key: key, file: isFile})
		}
		last := &chunk[len(chunk)-1]
		last.entries = append(last.entries, a)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read referenced entries: %w", err)
	}
	rows.Close()
	if len(chunk) > 0 {
		return flush()
	}
	return nil
}

// matchStands holds for a match m that counts: made by the engine, or suggested and accepted by
// a person.
const matchStands = `(m.status = 'matched' OR EXISTS (SELECT 1 FROM recon_confirmations k WHERE k.match_id = m.match_id AND k.accepted))`

// matchUndone holds for a match m that the bank's acknowledgement undid after it was made: the
// item it matched was rejected, or, for a file's net matched whole, an item of the file was
// rejected after the match (the net it was matched with is no longer what the bank is owed). The
// match stays in the history; its entries are in an amount_mismatch break against what is owed.
const matchUndone = `(EXISTS (SELECT 1 FROM settlement_item_results r WHERE r.item_id = m.item_id AND NOT r.accepted)
	OR EXISTS (SELECT 1 FROM settlement_files uf JOIN settlement_item_results r ON r.bank_id = uf.bank_id AND r.cycle_date = uf.cycle_date
		WHERE uf.bank_id = m.bank_id AND uf.message_id = m.file_id AND NOT r.accepted AND r.decided_at > m.matched_at))`

// itemRejected holds for an item i that its bank rejected in its acknowledgement, and fileRejected
// is what the rejected items of file f came to: their postings were reversed, the money went back
// to clearing and the next cycle offers them again, so the bank is owed nothing for them in this
// cycle. A rejected item is expected at zero (booked, it is a break), and a file's net without
// its rejected items.
const (
	itemRejected = `EXISTS (SELECT 1 FROM settlement_item_results r WHERE r.item_id = i.item_id AND NOT r.accepted)`
	// fileMatchedAlone is what the items of file f matched on their own came to (not rejected):
	// the bank booked them apart, so the file's net is expected without them.
	fileMatchedAlone = `coalesce((SELECT sum(i.amount) FROM settlement_items i WHERE i.bank_id = f.bank_id AND i.cycle_date = f.cycle_date
			AND NOT ` + itemRejected + `
			AND EXISTS (SELECT 1 FROM recon_matches m LEFT JOIN recon_confirmations k ON k.match_id = m.match_id
				WHERE m.item_id = i.item_id AND (m.status = 'matched' OR k.accepted))), 0)::BIGINT`
	fileRejected = `coalesce((SELECT sum(ri.amount) FROM settlement_item_results r JOIN settlement_items ri ON ri.item_id = r.item_id
			WHERE r.bank_id = f.bank_id AND r.cycle_date = f.cycle_date AND NOT r.accepted), 0)::BIGINT`
)

// expected reads the bank's items and files named, by key, and whether each was matched already.
func (run *reconRun) expected(ctx context.Context, items, files []string) (map[string]reconcile.Expected, map[string]bool, error) {
	out, matched := map[string]reconcile.Expected{}, map[string]bool{}
	q := &pgx.Batch{}
	if len(items) > 0 {
		itemIDs := make([][16]byte, 0, len(items))
		for _, key := range items {
			id, err := parseUUIDText(key)
			if err != nil {
				return nil, nil, err
			}
			itemIDs = append(itemIDs, id)
		}
		q.Queue(`SELECT i.item_id::TEXT, f.message_id, i.cycle_date, c.value_date,
				CASE WHEN `+itemRejected+` THEN 0 ELSE i.amount END,
				EXISTS (SELECT 1 FROM recon_matches m LEFT JOIN recon_confirmations k ON k.match_id = m.match_id
					WHERE m.item_id = i.item_id AND (m.status = 'matched' OR k.accepted))
				OR EXISTS (SELECT 1 FROM recon_matches m WHERE m.bank_id = i.bank_id AND m.file_id = f.message_id AND m.status = 'matched')
			FROM settlement_items i JOIN settlement_cycles c ON c.cycle_date = i.cycle_date
			JOIN settlement_files f ON f.bank_id = i.bank_id AND f.cycle_date = i.cycle_date
			WHERE i.bank_id = $1 AND i.item_id = ANY($2)`, run.bank, itemIDs).Query(func(rows pgx.Rows) error {
			for rows.Next() {
				var (
					key        string
					e          reconcile.Expected
					cycle, vd  time.Time
					wasMatched bool
				)
				if err := rows.Scan(&key, &e.File, &cycle, &vd, &e.Amount, &wasMatched); err != nil {
					return err
				}
				id, err := parseUUIDText(key)
				if err != nil {
					return err
				}
				e.Item, e.Cycle, e.ValueDate = id, settlement.DateOf(cycle), settlement.DateOf(vd)
				out[key], matched[key] = e, wasMatched
			}
			return rows.Err()
		})
	}
	if len(files) > 0 {
		q.Queue(`SELECT f.message_id, f.cycle_date, c.value_date, f.net - `+fileRejected+` - `+fileMatchedAlone+`,
				EXISTS (SELECT 1 FROM recon_matches m LEFT JOIN recon_confirmations k ON k.match_id = m.match_id
					WHERE m.bank_id = f.bank_id AND m.file_id = f.message_id AND (m.status = 'matched' OR k.accepted))
			FROM settlement_files f JOIN settlement_cycles c ON c.cycle_date = f.cycle_date
			WHERE f.bank_id = $1 AND f.message_id = ANY($2)`, run.bank, files).Query(func(rows pgx.Rows) error {
			for rows.Next() {
				var (
					e          reconcile.Expected
					cycle, vd  time.Time
					wasMatched bool
				)
				if err := rows.Scan(&e.File, &cycle, &vd, &e.Amount, &wasMatched); err != nil {
					return err
				}
				e.Cycle, e.ValueDate = settlement.DateOf(cycle), settlement.DateOf(vd)
				out[e.File], matched[e.File] = e, wasMatched
			}
			return rows.Err()
		})
	}
	if q.Len() == 0 {
		return out, matched, nil
	}
	if err := run.tx.SendBatch(ctx, q).Close(); err != nil {
		return nil, nil, fmt.Errorf("read what the entries name: %w", err)
	}
	return out, matched, nil
}

func parseUUIDText(s string) (ledger.ID, error) {
	u, err := uuid.Parse(s)
	if err != nil {
		return ledger.ID{}, fmt.Errorf("item id: %w", err)
	}
	return ledger.ID(u), nil
}

// unreferenced decides the entries that name nothing of ours (and those naming what the bank does
// not have): each is suggested for an unmatched item or file of its amount and a near value date,
// or is missing in the ledger.
func (run *reconRun) unreferenced(ctx context.Context) error {
	rows, err := run.tx.store.pool.Query(ctx, `SELECT `+entryColumns+`
		FROM recon_open_entries o JOIN statement_entries e ON `+openEntry+`
		WHERE o.bank_id = $1 AND e.item_id IS NULL AND e.file_id IS NULL AND `+notMatched+`
			AND NOT EXISTS (SELECT 1 FROM recon_break_entries b WHERE b.bank_id = e.bank_id AND b.statement_id = e.statement_id AND b.line = e.line)
		ORDER BY e.statement_id, e.line`, run.bank)
	if err != nil {
		return fmt.Errorf("read unreferenced entries: %w", err)
	}
	defer rows.Close()
	chunk := run.loose
	run.loose = nil
	for {
		for len(chunk) < maxReconcileGroup && rows.Next() {
			a, err := scanEntry(rows)
			if err != nil {
				return err
			}
			chunk = append(chunk, a)
		}
		if err := rows.Err(); err != nil {
			return fmt.Errorf("read unreferenced entries: %w", err)
		}
		if len(chunk) == 0 {
			return nil
		}
		if err := run.suggest(ctx, chunk); err != nil {
			return err
		}
		chunk = chunk[:0]
	}
}

// suggestItemsLookup reads the items an entry that names nothing of ours may be suggested for:
// bank $1's items of an amount in $2 whose value date is from $3 to $4, in no match, in no file
// matched whole, not rejected by the bank. It probes settlement_items_cycle_amount for each
// amount in each cycle paid in those days: it reads what it finds, not every item of the amounts
// in the bank's history, nor every item of the bank in those days.
const suggestItemsLookup = `SELECT DISTINCT i.item_id, f.message_id, i.cycle_date, c.value_date, i.amount
		FROM settlement_items i
		JOIN settlement_cycles c ON c.cycle_date = i.cycle_date
		JOIN settlement_files f ON f.bank_id = i.bank_id AND f.cycle_date = i.cycle_date
		WHERE i.bank_id = $1 AND i.amount = ANY($2::BIGINT[]) AND c.value_date BETWEEN $3 AND $4
			AND NOT EXISTS (SELECT 1 FROM recon_matches m WHERE m.item_id = i.item_id)
			AND NOT EXISTS (SELECT 1 FROM recon_matches m WHERE m.bank_id = i.bank_id AND m.file_id = f.message_id AND m.status = 'matched')
			AND NOT ` + itemRejected

// suggestItemsByRange is suggestItemsLookup for amounts $2 each within tolerance $3, from $4 to
// $5, when the tolerance is too wide to spell out each amount it takes (amountsWithin): it reads
// every item of the bank in the cycles paid in those days.
const suggestItemsByRange = `SELECT DISTINCT i.item_id, f.message_id, i.cycle_date, c.value_date, i.amount
		FROM unnest($2::BIGINT[]) AS a(amount)
		JOIN settlement_items i ON i.bank_id = $1 AND i.amount BETWEEN a.amount - $3 AND a.amount + $3
		JOIN settlement_cycles c ON c.cycle_date = i.cycle_date
		JOIN settlement_files f ON f.bank_id = i.bank_id AND f.cycle_date = i.cycle_date
		WHERE c.value_date BETWEEN $4 AND $5
			AND NOT EXISTS (SELECT 1 FROM recon_matches m WHERE m.item_id = i.item_id)
			AND NOT EXISTS (SELECT 1 FROM recon_matches m WHERE m.bank_id = i.bank_id AND m.file_id = f.message_id AND m.status = 'matched')
			AND NOT ` + itemRejected

// maxSuggestAmounts bounds the amounts a suggestion lookup spells out, 128 KiB of parameters: a
// chunk's amounts (maxReconcileGroup) with a tolerance of up to two fen either way.
const maxSuggestAmounts = 5 * maxReconcileGroup

// amountsWithin lists, once each, every amount within tol of one of amounts, and reports false
// when there would be more than maxSuggestAmounts of them.
func amountsWithin(amounts []int64, tol int64) ([]int64, bool) {
	if tol < 0 || tol > maxSuggestAmounts || (2*tol+1)*int64(len(amounts)) > maxSuggestAmounts {
		return nil, false
	}
	seen := make(map[int64]bool, len(amounts))
	out := make([]int64, 0, len(amounts))
	for _, a := range amounts {
		for v := a - tol; v <= a+tol; v++ {
			if !seen[v] {
				seen[v] = true
				out = append(out, v)
			}
		}
	}
	return out, true
}

// suggest decides a chunk of entries that name nothing of ours.
func (run *reconRun) suggest(ctx context.Context, chunk []reconcile.Actual) error {
	amounts := make([]int64, 0, len(chunk))
	first, last := settlement.DateTime(chunk[0].ValueDate), settlement.DateTime(chunk[0].ValueDate)
	for _, a := range chunk {
		amounts = append(amounts, a.Amount)
		vd := settlement.DateTime(a.ValueDate)
		if vd.Before(first) {
			first = vd
		}
		if last.Before(vd) {
			last = vd
		}
	}
	// Only an item or file whose value date is within SuggestDays of an entry's can be suggested
	// for it: the candidates are read from those days, not from the bank's whole history.
	from := settlement.DateTime(settlement.AddDays(settlement.DateOf(first), -run.rules.SuggestDays))
	to := settlement.DateTime(settlement.AddDays(settlement.DateOf(last), run.rules.SuggestDays))
	// Candidates: the bank's unmatched items and files of those amounts, within the tolerance.
	tol := run.rules.AmountTolerance
	var candidates []reconcile.Expected
	q := &pgx.Batch{}
	itemsLookup, itemsArgs := suggestItemsByRange, []any{run.bank, amounts, tol, from, to}
	if exact, ok := amountsWithin(amounts, tol); ok {
		itemsLookup, itemsArgs = suggestItemsLookup, []any{run.bank, exact, from, to}
	}
	q.Queue(itemsLookup, itemsArgs...).Query(func(rows pgx.Rows) error {
		for rows.Next() {
			var (
				id        [16]byte
				e         reconcile.Expected
				cycle, vd time.Time
			)
			if err := rows.Scan(&id, &e.File, &cycle, &vd, &e.Amount); err != nil {
				return err
			}
			e.Item, e.Cycle, e.ValueDate = ledger.ID(id), settlement.DateOf(cycle), settlement.DateOf(vd)
			candidates = append(candidates, e)
		}
		return rows.Err()
	})
	q.Queue(`SELECT f.message_id, f.cycle_date, c.value_date, f.net
		FROM (SELECT f.bank_id, f.message_id, f.cycle_date, f.net - `+fileRejected+` - `+fileMatchedAlone+` AS net
			FROM settlement_files f JOIN settlement_cycles fc ON fc.cycle_date = f.cycle_date
			WHERE f.bank_id = $1 AND fc.value_date BETWEEN $4 AND $5) f
		JOIN settlement_cycles c ON c.cycle_date = f.cycle_date
		WHERE f.net <> 0
			AND EXISTS (SELECT 1 FROM unnest($2::BIGINT[]) AS a(amount) WHERE f.net BETWEEN a.amount - $3 AND a.amount + $3)
			AND NOT EXISTS (SELECT 1 FROM recon_matches m WHERE m.bank_id = f.bank_id AND m.file_id = f.message_id)`,
		run.bank, amounts, tol, from, to).Query(func(rows pgx.Rows) error {
		for rows.Next() {
			var (
				e         reconcile.Expected
				cycle, vd time.Time
			)
			if err := rows.Scan(&e.File, &cycle, &vd, &e.Amount); err != nil {
				return err
			}
			e.Cycle, e.ValueDate = settlement.DateOf(cycle), settlement.DateOf(vd)
			candidates = append(candidates, e)
		}
		return rows.Err()
	})
	if err := run.tx.SendBatch(ctx, q).Close(); err != nil {
		return fmt.Errorf("find candidates for unreferenced entries: %w", err)
	}
	for _, a := range chunk {
		var free []reconcile.Expected
		for _, c := range candidates {
			if !run.used[c.Key()] {
				free = append(free, c)
			}
		}
		o := reconcile.Suggest(run.rules, a, free)
		if o.Status == reconcile.Suggested {
			run.used[o.Expected.Key()] = true
		}
		if err := run.record(ctx, o); err != nil {
			return err
		}
	}
	return run.flush(ctx)
}

// missing records a break for each of the bank's items its statements ran past without booking:
// no match or suggestion of it or of its file's net position (this run's included), its value
// date MissingAfterDays or more before the last day the bank's statements cover.
func (run *reconRun) missing(ctx context.Context) error {
	var covered *time.Time
	if err := run.tx.QueryRow(ctx, `SELECT max(to_date) FROM bank_statements WHERE bank_id = $1`, run.bank).Scan(&covered); err != nil {
		return fmt.Errorf("read what the statements cover: %w", err)
	}
	if covered == nil {
		return nil
	}
	cover := settlement.DateOf(*covered)
	last := settlement.AddDays(cover, -run.rules.MissingAfterDays)
	rows, err := run.tx.store.pool.Query(ctx, `SELECT i.item_id, f.message_id, i.cycle_date, c.value_date, i.amount
		FROM recon_open_items q JOIN settlement_items i ON i.item_id = q.item_id
		JOIN settlement_cycles c ON c.cycle_date = i.cycle_date
		JOIN settlement_files f ON f.bank_id = i.bank_id AND f.cycle_date = i.cycle_date
		WHERE q.bank_id = $1 AND q.value_date <= $2 AND i.bank_id = $1
			-- Matched, or suggested and waiting for a person; a refused suggestion booked nothing.
			AND NOT EXISTS (SELECT 1 FROM recon_matches m LEFT JOIN recon_confirmations k ON k.match_id = m.match_id
				WHERE m.item_id = i.item_id AND (k.match_id IS NULL OR k.accepted))
			AND NOT EXISTS (SELECT 1 FROM recon_matches m LEFT JOIN recon_confirmations k ON k.match_id = m.match_id
				WHERE m.bank_id = i.bank_id AND m.file_id = f.message_id AND (k.match_id IS NULL OR k.accepted))
			AND NOT EXISTS (SELECT 1 FROM recon_breaks b WHERE b.item_id = i.item_id AND b.kind = 'missing_at_bank')
			-- Rejected by the bank's acknowledgement: its money went back to clearing.
			AND NOT `+itemRejected+`
			-- Booked, if not as settled: the entries' own breaks say how.
			AND NOT EXISTS (SELECT 1 FROM statement_entries e WHERE e.bank_id = i.bank_id AND e.item_id = i.item_id)
			AND NOT EXISTS (SELECT 1 FROM statement_entries e WHERE e.bank_id = i.bank_id AND e.file_id = f.message_id)
		ORDER BY i.item_id`, run.bank, settlement.DateTime(last))
	if err != nil {
		return fmt.Errorf("read items not booked: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			id        [16]byte
			e         reconcile.Expected
			cycle, vd time.Time
		)
		if err := rows.Scan(&id, &e.File, &cycle, &vd, &e.Amount); err != nil {
			return err
		}
		e.Item, e.Cycle, e.ValueDate = ledger.ID(id), settlement.DateOf(cycle), settlement.DateOf(vd)
		// Suggested in this run, for a person to decide: the read above, on a connection of its
		// own, does not see the suggestions this transaction has written.
		if run.used[e.Key()] || run.used[e.File] {
			continue
		}
		if !reconcile.IsMissing(run.rules, e, cover) {
			continue
		}
		o := reconcile.Outcome{Status: reconcile.Broken, Break: reconcile.MissingAtBank, Expected: &e,
			Detail: fmt.Sprintf("%s settled for value date %s; the bank's statements run to %s without it",
				ledger.FormatAmount(e.Amount, "CNY"), e.ValueDate, cover)}
		if err := run.record(ctx, o); err != nil {
			return err
		}
		if run.breaks.len() == maxReconcileGroup {
			if err := run.flush(ctx); err != nil {
				return err
			}
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read items not booked: %w", err)
	}
	return run.flush(ctx)
}

// resolve resolves the breaks whose want is met: an item missing at the bank that has been
// matched since (booked late), and a statement gap whose statement has arrived.
func (run *reconRun) resolve(ctx context.Context) error {
	tag, err := run.tx.Exec(ctx, `INSERT INTO recon_resolutions (break_id, kind, note, resolved_by, resolved_at)
		SELECT b.break_id, 'matched', 'booked by the bank after the break was found', 'engine', $2::TIMESTAMPTZ
		FROM recon_breaks b
		WHERE b.bank_id = $1 AND b.kind = 'missing_at_bank'
			AND NOT EXISTS (SELECT 1 FROM recon_resolutions r WHERE r.break_id = b.break_id)
			AND (EXISTS (SELECT 1 FROM recon_matches m LEFT JOIN recon_confirmations k ON k.match_id = m.match_id
					WHERE m.item_id = b.item_id AND (m.status = 'matched' OR k.accepted))
				OR EXISTS (SELECT 1 FROM recon_matches m WHERE m.bank_id = b.bank_id AND m.file_id = b.file_id AND m.status = 'matched')
				-- booked, if not as settled: the entries' own breaks say how
				OR EXISTS (SELECT 1 FROM statement_entries e WHERE e.bank_id = b.bank_id AND e.item_id = b.item_id))`,
		run.bank, run.now)
	if err != nil {
		return fmt.Errorf("resolve breaks booked since: %w", err)
	}
	run.rep.Resolved += tag.RowsAffected()
	tag, err = run.tx.Exec(ctx, `INSERT INTO recon_resolutions (break_id, kind, note, resolved_by, resolved_at)
		SELECT b.break_id, 'matched', 'the statement arrived after the break was found', 'engine', $2::TIMESTAMPTZ
		FROM recon_breaks b
		WHERE b.bank_id = $1 AND b.kind = 'statement_gap'
			AND NOT EXISTS (SELECT 1 FROM recon_resolutions r WHERE r.break_id = b.break_id)
			AND EXISTS (SELECT 1 FROM bank_statements s WHERE s.bank_id = b.bank_id AND b.detail = 'statement ' || s.sequence::TEXT || ' of the bank''s sequence is missing')`,
		run.bank, run.now)
	if err != nil {
		return fmt.Errorf("resolve statement gaps filled since: %w", err)
	}
	run.rep.Resolved += tag.RowsAffected()
	return nil
}

// close takes out of the bank's open items those that nothing can make missing at the bank any
// more (see migration 0040); the entries a match took left the open entries as it was written.
// What is left is what the next run reads.
func (run *reconRun) close(ctx context.Context) error {
	if _, err := run.tx.Exec(ctx, `DELETE FROM recon_open_items q WHERE q.bank_id = $1 AND EXISTS (SELECT 1 FROM settlement_items i
		JOIN settlement_files f ON f.bank_id = i.bank_id AND f.cycle_date = i.cycle_date
		WHERE i.item_id = q.item_id AND (
			EXISTS (SELECT 1 FROM recon_matches m LEFT JOIN recon_confirmations k ON k.match_id = m.match_id
				WHERE m.item_id = i.item_id AND (m.status = 'matched' OR k.accepted))
			OR EXISTS (SELECT 1 FROM recon_matches m LEFT JOIN recon_confirmations k ON k.match_id = m.match_id
				WHERE m.bank_id = i.bank_id AND m.file_id = f.message_id AND (m.status = 'matched' OR k.accepted))
			OR EXISTS (SELECT 1 FROM recon_breaks b WHERE b.item_id = i.item_id AND b.kind = 'missing_at_bank')
			OR `+itemRejected+`
			OR EXISTS (SELECT 1 FROM statement_entries e WHERE e.bank_id = i.bank_id AND e.item_id = i.item_id)
			OR EXISTS (SELECT 1 FROM statement_entries e WHERE e.bank_id = i.bank_id AND e.file_id = f.message_id)))`,
		run.bank); err != nil {
		return fmt.Errorf("close the items booked: %w", err)
	}
	return nil
}

// record queues an outcome to write: a match with its entries, or a break with them. The queue is
// written (flush) a chunk at a time, in a few statements however many outcomes it holds.
func (run *reconRun) record(_ context.Context, o reconcile.Outcome) error {
	switch o.Status {
	case reconcile.Matched, reconcile.Suggested:
		run.queueMatch(o)
		return nil
	}
	var asOf reconcile.Date
	switch {
	case o.Expected != nil:
		asOf = o.Expected.ValueDate
	case len(o.Actual) > 0:
		asOf = o.Actual[0].BookingDate
	}
	run.queueBreak(o, o.BreakKey(), asOf)
	return nil
}

// recordBreak queues a break about key, aged from asOf.
func (run *reconRun) recordBreak(_ context.Context, o reconcile.Outcome, key string, asOf reconcile.Date) error {
	run.queueBreak(o, key, asOf)
	return nil
}

// outcomeRows are queued matches or breaks as the columns of one multi-row insert, and their
// entries as the columns of another. Nullable columns travel as text, "" for NULL.
type outcomeRows struct {
	ids                        [][16]byte
	kinds, statuses            []string
	items, files               []string
	amounts                    []int64
	expected, actual           []string
	cycles, expDates, actDates []string
	asOf                       []time.Time
	details                    []string
	entryOwner                 [][16]byte
	entryStatements            []string
	entryLines                 []int64
	// closedDates and closedItems are the items matched, by value date: no later run can find
	// them missing at the bank, so they leave its open items as the match is written.
	closedDates []time.Time
	closedItems [][16]byte
}

func (q *outcomeRows) len() int { return len(q.ids) }

func (q *outcomeRows) addEntries(id [16]byte, actual []reconcile.Actual) {
	for _, a := range actual {
		q.entryOwner, q.entryStatements, q.entryLines = append(q.entryOwner, id), append(q.entryStatements, a.Statement), append(q.entryLines, a.Line)
	}
}

func dateText(d reconcile.Date) string { return d.String() }

func (run *reconRun) queueMatch(o reconcile.Outcome) {
	h := sha256.New()
	fmt.Fprintf(h, "joinin reconciliation match\x00%s\x00%s\x00%s", run.bank, o.Expected.Key(), o.BreakKey())
	var id [16]byte
	copy(id[:], h.Sum(nil))
	id[6] = id[6]&0x0f | 0x80
	id[8] = id[8]&0x3f | 0x80
	var amount int64
	for _, a := range o.Actual {
		amount += a.Amount
	}
	status := "matched"
	if o.Status == reconcile.Suggested {
		status = "suggested"
	}
	item, file := "", o.Expected.File
	if !o.Expected.Item.IsZero() {
		item, file = o.Expected.Item.String(), ""
	}
	q := &run.matches
	q.ids, q.kinds, q.statuses = append(q.ids, id), append(q.kinds, string(o.Match)), append(q.statuses, status)
	q.items, q.files, q.amounts, q.details = append(q.items, item), append(q.files, file), append(q.amounts, amount), append(q.details, o.Detail)
	q.addEntries(id, o.Actual)
	if status == "matched" && item != "" {
		q.closedDates, q.closedItems = append(q.closedDates, settlement.DateTime(o.Expected.ValueDate)), append(q.closedItems, [16]byte(o.Expected.Item))
	}
}

func (run *reconRun) queueBreak(o reconcile.Outcome, key string, asOf reconcile.Date) {
	id := reconcile.BreakID(run.bank, o.Break, key)
	var item, file, expected, actual, cycle, expDate, actDate string
	if e := o.Expected; e != nil {
		if !e.Item.IsZero() {
			item = e.Item.String()
		}
		file, cycle, expDate, expected = e.File, dateText(e.Cycle), dateText(e.ValueDate), fmt.Sprint(e.Amount)
	}
	if len(o.Actual) > 0 {
		var sum int64
		for _, a := range o.Actual {
			sum += a.Amount
		}
		actual, actDate = fmt.Sprint(sum), dateText(o.Actual[0].ValueDate)
	}
	q := &run.breaks
	q.ids, q.kinds, q.items, q.files = append(q.ids, id), append(q.kinds, string(o.Break)), append(q.items, item), append(q.files, file)
	q.expected, q.actual, q.cycles = append(q.expected, expected), append(q.actual, actual), append(q.cycles, cycle)
	q.expDates, q.actDates = append(q.expDates, expDate), append(q.actDates, actDate)
	q.asOf, q.details = append(q.asOf, settlement.DateTime(asOf)), append(q.details, o.Detail)
	q.addEntries(id, o.Actual)
}

// flush writes the queued matches and breaks: each kind in one insert of its rows and one of
// their entries; what was recorded before (the same id) is left as it is, and resolutions follow
// from what was new.
func (run *reconRun) flush(ctx context.Context) error {
	if err := run.countNew(ctx); err != nil {
		return err
	}
	if q := &run.matches; q.len() > 0 {
		rows, err := run.tx.Query(ctx, `INSERT INTO recon_matches (match_id, bank_id, kind, status, item_id, file_id, amount, detail, matched_at)
			SELECT id, $1, kind, status, NULLIF(item, '')::UUID, NULLIF(file, ''), amount, detail, $2
			FROM unnest($3::UUID[], $4::TEXT[], $5::TEXT[], $6::TEXT[], $7::TEXT[], $8::BIGINT[], $9::TEXT[])
				AS m(id, kind, status, item, file, amount, detail)
			ON CONFLICT (match_id) DO NOTHING RETURNING match_id, status`,
			run.bank, run.now, q.ids, q.kinds, q.statuses, q.items, q.files, q.amounts, q.details)
		if err != nil {
			return fmt.Errorf("record matches: %w", err)
		}
		var matched [][16]byte
		for rows.Next() {
			var (
				id     [16]byte
				status string
			)
			if err := rows.Scan(&id, &status); err != nil {
				rows.Close()
				return err
			}
			if status == "matched" {
				run.rep.Matched++
				matched = append(matched, id)
			} else {
				run.rep.Suggested++
			}
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return fmt.Errorf("record matches: %w", err)
		}
		if err := run.writeEntries(ctx, "recon_match_entries", "match_id", q); err != nil {
			return err
		}
		if len(q.closedItems) > 0 {
			if _, err := run.tx.Exec(ctx, `DELETE FROM recon_open_items q USING unnest($2::DATE[], $3::UUID[]) AS c(d, i)
				WHERE q.bank_id = $1 AND q.value_date = c.d AND q.item_id = c.i`, run.bank, q.closedDates, q.closedItems); err != nil {
				return fmt.Errorf("close the items matched: %w", err)
			}
		}
		if len(matched) > 0 {
			// Breaks about these entries are resolved by the match: a partial payment completed.
			tag, err := run.tx.Exec(ctx, `INSERT INTO recon_resolutions (break_id, kind, note, resolved_by, resolved_at)
				SELECT DISTINCT be.break_id, 'matched', 'its entries matched, with others booked since', 'engine', $2::TIMESTAMPTZ
				FROM recon_break_entries be JOIN recon_match_entries me
					ON me.bank_id = be.bank_id AND me.statement_id = be.statement_id AND me.line = be.line
				WHERE me.match_id = ANY($1) AND NOT EXISTS (SELECT 1 FROM recon_resolutions r WHERE r.break_id = be.break_id)`,
				matched, run.now)
			if err != nil {
				return fmt.Errorf("resolve breaks of matched entries: %w", err)
			}
			run.rep.Resolved += tag.RowsAffected()
		}
		run.matches = outcomeRows{}
	}
	if q := &run.breaks; q.len() > 0 {
		rows, err := run.tx.Query(ctx, `INSERT INTO recon_breaks (break_id, bank_id, kind, cycle_date, item_id, file_id, expected, actual,
				expected_date, actual_date, as_of, detail, detected_at)
			SELECT id, $1, kind, NULLIF(cycle, '')::DATE, NULLIF(item, '')::UUID, NULLIF(file, ''), NULLIF(expected, '')::BIGINT,
				NULLIF(actual, '')::BIGINT, NULLIF(exp_date, '')::DATE, NULLIF(act_date, '')::DATE, as_of, detail, $2
			FROM unnest($3::UUID[], $4::TEXT[], $5::TEXT[], $6::TEXT[], $7::TEXT[], $8::TEXT[], $9::TEXT[], $10::TEXT[], $11::TEXT[],
					$12::DATE[], $13::TEXT[])
				AS b(id, kind, cycle, item, file, expected, actual, exp_date, act_date, as_of, detail)
			ON CONFLICT (break_id) DO NOTHING RETURNING break_id, kind, expected IS NOT NULL AND actual IS NOT NULL`,
			run.bank, run.now, q.ids, q.kinds, q.cycles, q.items, q.files, q.expected, q.actual, q.expDates, q.actDates, q.asOf, q.details)
		if err != nil {
			return fmt.Errorf("record breaks: %w", err)
		}
		var both [][16]byte
		for rows.Next() {
			var (
				id   [16]byte
				kind string
				sup  bool
			)
			if err := rows.Scan(&id, &kind, &sup); err != nil {
				rows.Close()
				return err
			}
			run.rep.Breaks[reconcile.BreakKind(kind)]++
			if sup {
				both = append(both, id)
			}
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return fmt.Errorf("record breaks: %w", err)
		}
		if err := run.writeEntries(ctx, "recon_break_entries", "break_id", q); err != nil {
			return err
		}
		if len(both) > 0 {
			// A break of an item found again with more entries supersedes the smaller one.
			tag, err := run.tx.Exec(ctx, `INSERT INTO recon_resolutions (break_id, kind, note, resolved_by, resolved_at)
				SELECT DISTINCT b.break_id, 'superseded', 'found again with the entries booked since', 'engine', $3::TIMESTAMPTZ
				FROM recon_breaks b JOIN recon_break_entries be ON be.break_id = b.break_id
				JOIN recon_break_entries nb ON nb.bank_id = be.bank_id AND nb.statement_id = be.statement_id AND nb.line = be.line
				WHERE nb.break_id = ANY($1) AND NOT (b.break_id = ANY($1)) AND b.bank_id = $2
					AND NOT EXISTS (SELECT 1 FROM recon_resolutions r WHERE r.break_id = b.break_id)`, both, run.bank, run.now)
			if err != nil {
				return fmt.Errorf("resolve superseded breaks: %w", err)
			}
			run.rep.Resolved += tag.RowsAffected()
		}
		run.breaks = outcomeRows{}
	}
	return nil
}

// countNew adds to the run's entries those of the queued matches and breaks that no match nor
// break was about before: an entry in a break decided again is reconciled already.
func (run *reconRun) countNew(ctx context.Context) error {
	var statements []string
	var lines []int64
	for _, q := range []*outcomeRows{&run.matches, &run.breaks} {
		statements, lines = append(statements, q.entryStatements...), append(lines, q.entryLines...)
	}
	if len(statements) == 0 {
		return nil
	}
	var n int64
	if err := run.tx.QueryRow(ctx, `SELECT count(*) FROM (SELECT DISTINCT s, l FROM unnest($2::TEXT[], $3::BIGINT[]) AS e(s, l)) e
		WHERE NOT EXISTS (SELECT 1 FROM recon_match_entries m WHERE m.bank_id = $1 AND m.statement_id = e.s AND m.line = e.l)
			AND NOT EXISTS (SELECT 1 FROM recon_break_entries b WHERE b.bank_id = $1 AND b.statement_id = e.s AND b.line = e.l)`,
		run.bank, statements, lines).Scan(&n); err != nil {
		return fmt.Errorf("count the entries reconciled: %w", err)
	}
	run.rep.Entries += n
	return nil
}

// writeEntries writes which entries the queued matches or breaks are about.
func (run *reconRun) writeEntries(ctx context.Context, table, idColumn string, q *outcomeRows) error {
	if len(q.entryOwner) == 0 {
		return nil
	}
	_, err := run.tx.Exec(ctx, `INSERT INTO `+table+` (`+idColumn+`, bank_id, statement_id, line)
		SELECT o, $1::TEXT, s, l FROM unnest($2::UUID[], $3::TEXT[], $4::BIGINT[]) AS e(o, s, l) ON CONFLICT DO NOTHING`,
		run.bank, q.entryOwner, q.entryStatements, q.entryLines)
	if err != nil {
		return fmt.Errorf("record the entries of %s: %w", strings.TrimPrefix(table, "recon_"), err)
	}
	if table == "recon_match_entries" {
		// A match (or a suggestion) takes its entries for good: later runs need not read them.
		if _, err := run.tx.Exec(ctx, `DELETE FROM recon_open_entries o USING unnest($2::TEXT[], $3::BIGINT[]) AS e(s, l)
			WHERE o.bank_id = $1 AND o.statement_id = e.s AND o.line = e.l`, run.bank, q.entryStatements, q.entryLines); err != nil {
			return fmt.Errorf("close the entries matched: %w", err)
		}
	}
	return nil
}
