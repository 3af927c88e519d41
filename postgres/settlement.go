package postgres

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/joinincard/engine/clearing"
	"github.com/joinincard/engine/ledger"
	"github.com/joinincard/engine/settlement"
)

const (
	// maxItemAccounts bounds the accounts itemized at once while a cycle's movements stream in:
	// one lookup of their cards and parties and one COPY of their items, a few hundred kilobytes,
	// so a cycle of any size closes in bounded memory.
	maxItemAccounts = 4096
	// maxPostingBatch bounds one batch of settlement postings: the ledger's own bound.
	maxPostingBatch = ledger.MaxBatchTransfers
)

var (
	// ErrCycleNotOver is returned for a cycle whose cut-off has not passed.
	ErrCycleNotOver = errors.New("the cycle's cut-off has not passed")
	// ErrCycleOrder is returned when a cycle is asked for before the last one closed.
	ErrCycleOrder = errors.New("cycles close in order")
)

// PostingRefusedError is a close stopped by the ledger's refusal of one of the cycle's settlement
// postings: a bank's position whose totals would pass int64, say. Nothing of the posting is
// written; the cycle stays closing, and every close after it waits, until a person resolves it.
type PostingRefusedError struct {
	Cycle   settlement.Date
	Posting ledger.ID
	Bank    string
	Result  ledger.Result
}

func (e *PostingRefusedError) Error() string {
	return fmt.Sprintf("post cycle %s: the ledger refused the settlement posting %s to bank %s's position: %s", e.Cycle, e.Posting, e.Bank, e.Result)
}

// CycleStatus is how far a cycle's close has come.
type CycleStatus string

const (
	CycleClosing CycleStatus = "closing" // its end is fixed; items, postings or files are being written
	CycleClosed  CycleStatus = "closed"  // everything is written
)

// Cycle is a settlement cycle as stored.
type Cycle struct {
	Date        settlement.Date
	StartsAfter time.Time
	EndsAt      time.Time
	ValueDate   settlement.Date
	Status      CycleStatus
	// FeeIncome is what the engine earned in fees in the cycle: with the banks' net positions, it
	// sums to zero.
	FeeIncome       int64
	ItemsWritten    bool
	PostingsWritten bool
	ClosingAt       time.Time
	ClosedAt        *time.Time
}

// Settlement closes cycles: it fixes which transfers each holds, works out every bank's items
// and net position, posts them to the banks' positions, and numbers each bank's file.
type Settlement struct {
	store  *Store
	cycles settlement.Cycles
	// afterFix, when set, is called once a cycle's end is fixed, before its items are written
	// (tests use it to crash or race a close at that point).
	afterFix func(settlement.Date)
}

// NewSettlement returns the settlement engine on st.
func NewSettlement(st *Store, cycles settlement.Cycles) (*Settlement, error) {
	if err := cycles.Validate(); err != nil {
		return nil, err
	}
	return &Settlement{store: st, cycles: cycles}, nil
}

// Cycles returns the cycle rules the engine closes by.
func (s *Settlement) Cycles() settlement.Cycles { return s.cycles }

// SetPartyBank records the bank that settles a party's clearing account. The bank must be a
// registered bank, the party a registered merchant, operator or insurance fund.
func (st *Store) SetPartyBank(ctx context.Context, kind clearing.PartyKind, id, bank string) error {
	return st.withPartyBank(ctx, kind, id, bank, func(ctx context.Context, tx *Tx, account ledger.ID, current string) error {
		if current == bank {
			return nil
		}
		return st.changePartyBank(ctx, tx, account, current, bank)
	})
}

// withPartyBank checks that the party and the bank are registered (ErrNotFound otherwise) and
// calls decide, in one transaction, with the party's account and the bank that settles it now
// ("" for none), its row locked.
func (st *Store) withPartyBank(ctx context.Context, kind clearing.PartyKind, id, bank string,
	decide func(ctx context.Context, tx *Tx, account ledger.ID, current string) error) error {
	if kind == clearing.PartyBank {
		return fmt.Errorf("a bank settles for itself")
	}
	account := clearing.PartyAccount(kind, id)
	return st.InTx(ctx, nil, func(ctx context.Context, tx *Tx) error {
		var n int
		if err := tx.QueryRow(ctx, `SELECT count(*) FROM parties WHERE account_id = ANY($1)`,
			[][16]byte{account, clearing.PartyAccount(clearing.PartyBank, bank)}).Scan(&n); err != nil {
			return fmt.Errorf("look up party and bank: %w", err)
		}
		if n != 2 {
			return fmt.Errorf("%s %q or bank %q: %w", kind, id, bank, ErrNotFound)
		}
		current, err := partyBankForUpdate(ctx, tx, account)
		if err != nil {
			return err
		}
		return decide(ctx, tx, account, current)
	})
}

// partyBankForUpdate reads the bank that settles account, "" for none, locking its row.
func partyBankForUpdate(ctx context.Context, tx *Tx, account ledger.ID) (string, error) {
	var current string
	err := tx.QueryRow(ctx, `SELECT bank_id FROM party_banks WHERE account_id = $1 FOR UPDATE`, [16]byte(account)).Scan(&current)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return "", fmt.Errorf("read settlement bank: %w", err)
	}
	return current, nil
}

// changePartyBank records bank as the bank that settles account, instead of from ("" for none),
// and keeps the change in party_bank_changes.
func (st *Store) changePartyBank(ctx context.Context, tx *Tx, account ledger.ID, from, bank string) error {
	now := st.Now().UTC()
	if from == "" {
		// No row to lock: a writer setting the party's first bank at the same time inserts its
		// own. The later one inserts nothing and runs again, reading the bank the other set.
		tag, err := tx.Exec(ctx, `INSERT INTO party_banks (account_id, bank_id, updated_at) VALUES ($1, $2, $3)
			ON CONFLICT (account_id) DO NOTHING`, [16]byte(account), bank, now)
		if err != nil {
			return fmt.Errorf("record settlement bank: %w", err)
		}
		if tag.RowsAffected() == 0 {
			return conflictError{errors.New("a settlement bank was set at the same time: decided again")}
		}
	} else if _, err := tx.Exec(ctx, `UPDATE party_banks SET bank_id = $2, updated_at = $3 WHERE account_id = $1`,
		[16]byte(account), bank, now); err != nil {
		return fmt.Errorf("record settlement bank: %w", err)
	}
	id, err := uuid.NewV7()
	if err != nil {
		return fmt.Errorf("settlement bank change id: %w", err)
	}
	if _, err := tx.Exec(ctx, `INSERT INTO party_bank_changes (change_id, account_id, from_bank, to_bank, changed_at)
		VALUES ($1, $2, $3, $4, $5)`, id, [16]byte(account), from, bank, now); err != nil {
		return fmt.Errorf("keep the settlement bank change: %w", err)
	}
	return nil
}

// PartyBankConflictError is returned by RegisterPartyBank when the party is settled by
// another bank than the one named: nothing was changed. Changing a party's bank is a deliberate
// act (SetPartyBank), never the side effect of a registration sent again.
type PartyBankConflictError struct {
	Kind    clearing.PartyKind
	ID      string
	Current string // the bank that settles the party
}

func (e *PartyBankConflictError) Error() string {
	return fmt.Sprintf("%s %q is settled by bank %q", e.Kind, e.ID, e.Current)
}

// RegisterPartyBank records bank as the bank that settles a party that has none yet, and
// changes nothing when the party has it already. A party settled by another bank is left as it
// is, with a *PartyBankConflictError. The bank must be a registered bank, the party a registered
// merchant, operator or insurance fund (ErrNotFound otherwise).
func (st *Store) RegisterPartyBank(ctx context.Context, kind clearing.PartyKind, id, bank string) error {
	return st.withPartyBank(ctx, kind, id, bank, func(ctx context.Context, tx *Tx, account ledger.ID, current string) error {
		switch current {
		case "":
			return st.changePartyBank(ctx, tx, account, "", bank)
		case bank:
			return nil
		}
		return &PartyBankConflictError{Kind: kind, ID: id, Current: current}
	})
}

const cycleColumns = `cycle_date, starts_after, ends_at, value_date, status, fee_income, items_written, postings_written,
	closing_at, closed_at`

func scanCycle(row pgx.Row) (Cycle, error) {
	var (
		c           Cycle
		day, value  time.Time
		status      string
		after, ends time.Time
	)
	if err := row.Scan(&day, &after, &ends, &value, &status, &c.FeeIncome, &c.ItemsWritten, &c.PostingsWritten,
		&c.ClosingAt, &c.ClosedAt); err != nil {
		return c, err
	}
	c.Date, c.ValueDate, c.Status = settlement.DateOf(day), settlement.DateOf(value), CycleStatus(status)
	c.StartsAfter, c.EndsAt = after.UTC(), ends.UTC()
	return c, nil
}

// Cycle returns cycle d, or ErrNotFound if it was never closed.
func (s *Settlement) Cycle(ctx context.Context, d settlement.Date) (Cycle, error) {
	c, err := scanCycle(s.store.pool.QueryRow(ctx, `SELECT `+cycleColumns+` FROM settlement_cycles WHERE cycle_date = $1`,
		settlement.DateTime(d)))
	if errors.Is(err, pgx.ErrNoRows) {
		return c, fmt.Errorf("cycle %s: %w", d, ErrNotFound)
	}
	if err != nil {
		return c, fmt.Errorf("read cycle %s: %w", d, err)
	}
	return c, nil
}

// maxCycleList bounds one listing of cycles: a year of settlement days and then some.
const maxCycleList = 400

// ListCycles returns the cycles closed or closing, newest first, at most limit (capped at
// maxCycleList).
func (s *Settlement) ListCycles(ctx context.Context, limit int) ([]Cycle, error) {
	if limit <= 0 || limit > maxCycleList {
		limit = maxCycleList
	}
	rows, err := s.store.pool.Query(ctx, `SELECT `+cycleColumns+` FROM settlement_cycles ORDER BY cycle_date DESC LIMIT $1`, limit)
	if err != nil {
		return nil, fmt.Errorf("list cycles: %w", err)
	}
	defer rows.Close()
	var out []Cycle
	for rows.Next() {
		c, err := scanCycle(rows)
		if err != nil {
			return nil, fmt.Errorf("list cycles: %w", err)
		}
		out = append(out, c)
	}
	return out, rows.Err()
}

// Close closes cycle d, and every cycle before it that is not closed yet, in order: a close
// interrupted at any point (a crash, a kill) is completed by the next, posting nothing twice and
// numbering no file twice. Closing a closed cycle changes nothing. d's cut-off must have passed.
func (s *Settlement) Close(ctx context.Context, d settlement.Date) (Cycle, error) {
	c, err := s.Cycle(ctx, d)
	switch {
	case err == nil && c.Status == CycleClosed:
		return c, nil
	case err != nil && !errors.Is(err, ErrNotFound):
		return Cycle{}, err
	case err != nil && s.store.Now().Before(s.cycles.Cutoff(d)):
		// Only a cycle whose end is not fixed yet waits for its cut-off; one fixed is completed.
		return Cycle{}, fmt.Errorf("cycle %s ends at %s: %w", d, s.cycles.Cutoff(d).Format(time.RFC3339), ErrCycleNotOver)
	}
	for {
		last, found, err := s.lastCycle(ctx)
		if err != nil {
			return Cycle{}, err
		}
		if found && last.Status == CycleClosing {
			if err := s.complete(ctx, last); err != nil {
				return Cycle{}, err
			}
			continue
		}
		if found && !settlement.Before(last.Date, d) {
			return s.Cycle(ctx, d) // closed before: nothing to do
		}
		next := d
		if found {
			next = settlement.AddDays(last.Date, 1)
		} else if first, ok, err := s.firstCycle(ctx); err != nil {
			return Cycle{}, err
		} else if ok && settlement.Before(first, d) {
			// The first close settles the ledger from its first day, a cycle a day.
			next = first
		}
		c, err := s.fix(ctx, next)
		if err != nil {
			return Cycle{}, err
		}
		if s.afterFix != nil {
			s.afterFix(c.Date)
		}
		if err := s.complete(ctx, c); err != nil {
			return Cycle{}, err
		}
		if next == d {
			return s.Cycle(ctx, d)
		}
	}
}

// firstCycle is the cycle of the ledger's first transfer, if it has one.
func (s *Settlement) firstCycle(ctx context.Context) (settlement.Date, bool, error) {
	var first *time.Time
	if err := s.store.pool.QueryRow(ctx, `SELECT min(ts) FROM transfers`).Scan(&first); err != nil {
		return settlement.Date{}, false, fmt.Errorf("read the ledger's first transfer: %w", err)
	}
	if first == nil {
		return settlement.Date{}, false, nil
	}
	return s.cycles.CycleOf(*first), true, nil
}

func (s *Settlement) lastCycle(ctx context.Context) (Cycle, bool, error) {
	c, err := scanCycle(s.store.pool.QueryRow(ctx, `SELECT `+cycleColumns+` FROM settlement_cycles ORDER BY cycle_date DESC LIMIT 1`))
	if errors.Is(err, pgx.ErrNoRows) {
		return c, false, nil
	}
	if err != nil {
		return c, false, fmt.Errorf("read the last cycle: %w", err)
	}
	return c, true, nil
}

// fix fixes cycle d's end: it records the cycle as closing and moves the settlement gate to its
// cut-off, under the gate's exclusive lock, which waits for every batch under way to commit.
// From then on no transfer is stamped within d.
func (s *Settlement) fix(ctx context.Context, d settlement.Date) (Cycle, error) {
	value, err := s.cycles.ValueDate(d)
	if err != nil {
		return Cycle{}, err
	}
	ends := s.cycles.Cutoff(d).UTC()
	var c Cycle
	err = s.store.InTx(ctx, nil, func(ctx context.Context, tx *Tx) error {
		var closed time.Time
		if err := tx.QueryRow(ctx, `SELECT closed_through FROM settlement_gate WHERE id = 1 FOR UPDATE`).Scan(&closed); err != nil {
			return fmt.Errorf("lock the settlement gate: %w", err)
		}
		// A close of d running at the same time (another request, another engine) may have fixed
		// it while this one waited for the gate: d is then closing or closed, and this close
		// completes it with that one, writing nothing twice.
		fixed, err := scanCycle(tx.QueryRow(ctx, `SELECT `+cycleColumns+` FROM settlement_cycles WHERE cycle_date = $1`, settlement.DateTime(d)))
		if err == nil {
			c = fixed
			return nil
		}
		if !errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("read cycle %s: %w", d, err)
		}
		var last *time.Time
		if err := tx.QueryRow(ctx, `SELECT max(ends_at) FROM settlement_cycles`).Scan(&last); err != nil {
			return fmt.Errorf("read the last cycle: %w", err)
		}
		after := time.Unix(0, 0).UTC() // the first cycle holds everything before it
		if last != nil {
			// d follows the last cycle closed (Close fixes them in order), and starts where that one
			// ends: the cut-off of the cycle before, or, when the cut-off hour changed since, that day's
			// cut-off as it was then. Nothing between them is left out, nothing is counted twice.
			after = last.UTC()
			if !after.Before(ends) {
				return fmt.Errorf("cycle %s ends at %s, not after the last cycle closed, which ends at %s: %w",
					d, ends.Format(time.RFC3339), after.Format(time.RFC3339), ErrCycleOrder)
			}
		}
		// Stored to the microsecond: the files' creation time is this, and must read back the same.
		now := s.store.Now().UTC().Truncate(time.Microsecond)
		if _, err := tx.Exec(ctx, `INSERT INTO settlement_cycles (cycle_date, starts_after, ends_at, value_date, status,
				items_written, postings_written, fee_income, closing_at)
			VALUES ($1, $2, $3, $4, 'closing', false, false, 0, $5)`,
			settlement.DateTime(d), after, ends, settlement.DateTime(value), now); err != nil {
			return fmt.Errorf("record cycle %s: %w", d, err)
		}
		if _, err := tx.Exec(ctx, `UPDATE settlement_gate SET closed_through = $1 WHERE id = 1 AND closed_through < $1`, ends); err != nil {
			return fmt.Errorf("move the settlement gate: %w", err)
		}
		c = Cycle{Date: d, StartsAfter: after, EndsAt: ends, ValueDate: value, Status: CycleClosing, ClosingAt: now}
		return nil
	})
	if err != nil {
		return Cycle{}, err
	}
	return c, nil
}

// complete writes what a closing cycle lacks: its items, its postings, its files.
func (s *Settlement) complete(ctx context.Context, c Cycle) error {
	if !c.ItemsWritten {
		if err := s.writeItems(ctx, c); err != nil {
			return err
		}
	}
	if !c.PostingsWritten {
		if err := s.post(ctx, c); err != nil {
			return err
		}
	}
	if err := s.writeFiles(ctx, c); err != nil {
		return err
	}
	_, err := s.store.pool.Exec(ctx, `UPDATE settlement_cycles SET status = 'closed', closed_at = $2
		WHERE cycle_date = $1 AND status = 'closing'`, settlement.DateTime(c.Date), s.store.Now().UTC())
	if err != nil {
		return fmt.Errorf("mark cycle %s closed: %w", c.Date, err)
	}
	return nil
}

// notPosted are the transfer flags whose transfers move no posted money: holds, and the voids and
// expiries that release them. Posts of holds, plain transfers and reversals are counted.
const notPosted = int32(ledger.Pending | ledger.VoidPending | ledger.ExpirePending)

// cycleMovements lists, account by account, what the cycle's posted transfers moved on each side
// by code: one pass over the cycle's transfers through their time index.
const cycleMovements = `SELECT s.account_id, a.kind, t.code, s.debit, sum(t.amount)::BIGINT, count(*)
	FROM transfers t
	CROSS JOIN LATERAL (VALUES (t.debit_account_id, true), (t.credit_account_id, false)) AS s(account_id, debit)
	JOIN accounts a ON a.id = s.account_id
	WHERE t.ts > $1 AND t.ts <= $2 AND t.flags & $3 = 0
		AND a.kind IN ('cardholder_funds', 'medical_personal', 'merchant_clearing', 'operator_clearing', 'insurance_fund', 'fee_income')
	GROUP BY s.account_id, a.kind, t.code, s.debit
	ORDER BY s.account_id, t.code, s.debit`

// movedAccount is an account's movements in the cycle, as they stream in.
type movedAccount struct {
	id    ledger.ID
	kind  ledger.Kind
	moves []settlement.Movement
}

// writeItems works out the cycle's items from its transfers, streaming them account by account,
// and writes them with the items offered again and the cycle's fee income, in one transaction:
// a close interrupted before it commits writes them all again.
func (s *Settlement) writeItems(ctx context.Context, c Cycle) error {
	return s.store.InTx(ctx, nil, func(ctx context.Context, tx *Tx) error {
		// The cycle's row, locked, orders closes of the cycle running at once: the first writes
		// the items, the others wait for it and find them written.
		if written, err := lockCycle(ctx, tx, c.Date); err != nil || written {
			return err
		}
		var fees int64
		banks := map[string]bool{}
		// The movements are read on a connection of their own while the items are written in
		// the transaction: the cycle's transfers no longer change, its end is fixed.
		rows, err := s.store.pool.Query(ctx, cycleMovements, c.StartsAfter, c.EndsAt, notPosted)
		if err != nil {
			return fmt.Errorf("read the cycle's movements: %w", err)
		}
		defer rows.Close()
		var chunk []movedAccount
		flush := func() error {
			items, err := s.itemize(ctx, tx, c.Date, chunk)
			if err != nil {
				return err
			}
			for _, it := range items {
				banks[it.Bank] = true
			}
			chunk = chunk[:0]
			return copyItems(ctx, tx, items)
		}
		for rows.Next() {
			var (
				id        [16]byte
				kind      string
				m         settlement.Movement
				code      int32
				amount, n int64
			)
			if err := rows.Scan(&id, &kind, &code, &m.Debit, &amount, &n); err != nil {
				return fmt.Errorf("read the cycle's movements: %w", err)
			}
			m.Code, m.Amount, m.Count = ledger.Code(code), amount, n
			k, err := ledger.ParseKind(kind)
			if err != nil {
				return err
			}
			if k == ledger.KindFeeIncome {
				if m.Debit {
					amount = -amount
				}
				fees += amount
				continue
			}
			if len(chunk) == 0 || chunk[len(chunk)-1].id != ledger.ID(id) {
				if len(chunk) == maxItemAccounts {
					if err := flush(); err != nil {
						return err
					}
				}
				chunk = append(chunk, movedAccount{id: ledger.ID(id), kind: k})
			}
			last := &chunk[len(chunk)-1]
			last.moves = append(last.moves, m)
		}
		if err := rows.Err(); err != nil {
			return fmt.Errorf("read the cycle's movements: %w", err)
		}
		rows.Close()
		if len(chunk) > 0 {
			if err := flush(); err != nil {
				return err
			}
		}
		again, err := s.reoffers(ctx, tx, c.Date)
		if err != nil {
			return err
		}
		for _, it := range again {
			banks[it.Bank] = true
		}
		if err := copyItems(ctx, tx, again); err != nil {
			return err
		}
		var positions []AccountSpec
		for b := range banks {
			if b != "" {
				positions = append(positions, AccountSpec{Account: ledger.Account{ID: settlement.PositionAccount(b), Currency: "CNY",
					Kind: ledger.KindSettlementPosition}, Name: "settlement position of " + b})
			}
		}
		slices.SortFunc(positions, func(a, b AccountSpec) int { return compareID(a.ID, b.ID) })
		if err := tx.CreateAccounts(ctx, positions); err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `UPDATE settlement_cycles SET items_written = true, fee_income = $2 WHERE cycle_date = $1`,
			settlement.DateTime(c.Date), fees)
		if err != nil {
			return fmt.Errorf("record cycle %s's items: %w", c.Date, err)
		}
		return nil
	})
}

// lockCycle locks cycle d's row for the rest of tx, and says whether its items are written.
func lockCycle(ctx context.Context, tx *Tx, d settlement.Date) (bool, error) {
	var written bool
	if err := tx.QueryRow(ctx, `SELECT items_written FROM settlement_cycles WHERE cycle_date = $1 FOR UPDATE`,
		settlement.DateTime(d)).Scan(&written); err != nil {
		return false, fmt.Errorf("lock cycle %s: %w", d, err)
	}
	return written, nil
}

// itemize looks up who settles each account of chunk and makes its item.
func (s *Settlement) itemize(ctx context.Context, tx *Tx, d settlement.Date, chunk []movedAccount) ([]settlement.Item, error) {
	info, err := accountInfo(ctx, tx, chunk)
	if err != nil {
		return nil, err
	}
	items := make([]settlement.Item, 0, len(chunk))
	for _, a := range chunk {
		acc, ok := info[a.id]
		if !ok {
			return nil, fmt.Errorf("account %s (%s) moved in cycle %s but belongs to no card or party", a.id, a.kind, d)
		}
		it, ok, err := settlement.Itemize(d, acc, a.moves)
		if err != nil {
			return nil, err
		}
		if ok {
			items = append(items, it)
		}
	}
	return items, nil
}

// accountInfo reads, for the accounts of chunk, their role, the bank that settles them, the
// account a posting moves their money against, and how a bank's file names them.
func accountInfo(ctx context.Context, tx *Tx, chunk []movedAccount) (map[ledger.ID]settlement.Account, error) {
	var funds, personal, parties [][16]byte
	for _, a := range chunk {
		switch a.kind {
		case ledger.KindCardholderFunds:
			funds = append(funds, a.id)
		case ledger.KindMedicalPersonal:
			personal = append(personal, a.id)
		default:
			parties = append(parties, a.id)
		}
	}
	out := make(map[ledger.ID]settlement.Account, len(chunk))
	q := &pgx.Batch{}
	if len(funds) > 0 {
		// A card's issuer bank pays what its cardholder spent, against the issuer's account, which
		// the card's loads debited.
		q.Queue(`SELECT c.funds_account_id, c.card_number_masked, c.issuer_bank, coalesce(b.account_id, c.funds_account_id)
			FROM cards c LEFT JOIN parties b ON b.kind = 'bank' AND b.party_id = c.issuer_bank
			WHERE c.funds_account_id = ANY($1)`, funds).Query(func(rows pgx.Rows) error {
			for rows.Next() {
				var (
					id, counter [16]byte
					a           settlement.Account
				)
				if err := rows.Scan(&id, &a.Party, &a.Bank, &counter); err != nil {
					return err
				}
				a.ID, a.Role, a.Counter = ledger.ID(id), settlement.RoleCardholder, ledger.ID(counter)
				out[a.ID] = a
			}
			return rows.Err()
		})
	}
	if len(personal) > 0 {
		// A personal medical account is held in its city's fund: the fund's bank pays what it
		// paid, against the fund's account.
		q.Queue(`SELECT c.medical_account_id, c.card_number_masked, coalesce(pb.bank_id, ''), f.account_id
			FROM cards c JOIN parties f ON f.kind = 'insurance_fund' AND f.party_id = c.insurance_city
			LEFT JOIN party_banks pb ON pb.account_id = f.account_id
			WHERE c.medical_account_id = ANY($1)`, personal).Query(func(rows pgx.Rows) error {
			for rows.Next() {
				var (
					id, counter [16]byte
					a           settlement.Account
				)
				if err := rows.Scan(&id, &a.Party, &a.Bank, &counter); err != nil {
					return err
				}
				a.ID, a.Role, a.Counter = ledger.ID(id), settlement.RolePersonalMedical, ledger.ID(counter)
				out[a.ID] = a
			}
			return rows.Err()
		})
	}
	if len(parties) > 0 {
		q.Queue(`SELECT p.account_id, p.kind, p.party_id, p.name, coalesce(pb.bank_id, '')
			FROM parties p LEFT JOIN party_banks pb ON pb.account_id = p.account_id
			WHERE p.account_id = ANY($1)`, parties).Query(func(rows pgx.Rows) error {
			for rows.Next() {
				var (
					id   [16]byte
					kind string
					a    settlement.Account
				)
				if err := rows.Scan(&id, &kind, &a.Party, &a.PartyName, &a.Bank); err != nil {
					return err
				}
				a.ID, a.Counter = ledger.ID(id), ledger.ID(id)
				switch clearing.PartyKind(kind) {
				case clearing.PartyMerchant:
					a.Role = settlement.RoleMerchant
				case clearing.PartyOperator:
					a.Role = settlement.RoleOperator
				case clearing.PartyInsuranceFund:
					a.Role = settlement.RoleInsuranceFund
				default:
					return fmt.Errorf("account %s of a %s moved in a cycle", a.ID, kind)
				}
				out[a.ID] = a
			}
			return rows.Err()
		})
	}
	if err := tx.SendBatch(ctx, q).Close(); err != nil {
		return nil, fmt.Errorf("look up the cycle's accounts: %w", err)
	}
	return out, nil
}

// reoffers are the items to offer again in cycle d: items a bank rejected (their money returned
// to clearing) and items held for want of a settlement bank, offered to the bank that settles
// their account now. A held item whose party still has no bank stays held.
func (s *Settlement) reoffers(ctx context.Context, tx *Tx, d settlement.Date) ([]settlement.Item, error) {
	rows, err := tx.Query(ctx, `SELECT `+itemColumns+`, a.kind FROM settlement_items i JOIN accounts a ON a.id = i.account_id
		WHERE i.cycle_date < $1
			AND (i.bank_id = '' OR EXISTS (SELECT 1 FROM settlement_item_results r WHERE r.item_id = i.item_id AND NOT r.accepted))
			AND NOT EXISTS (SELECT 1 FROM settlement_items n WHERE n.reoffers = i.item_id)
		ORDER BY i.item_id`, settlement.DateTime(d))
	if err != nil {
		return nil, fmt.Errorf("read items to offer again: %w", err)
	}
	var (
		old   []settlement.Item
		chunk []movedAccount
	)
	for rows.Next() {
		var kind string
		it, err := scanItem(rows, &kind)
		if err != nil {
			rows.Close()
			return nil, err
		}
		k, err := ledger.ParseKind(kind)
		if err != nil {
			rows.Close()
			return nil, err
		}
		old = append(old, it)
		chunk = append(chunk, movedAccount{id: it.Account, kind: k})
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read items to offer again: %w", err)
	}
	if len(old) == 0 {
		return nil, nil
	}
	// The bank that settles each account now: a party's bank may have been set since.
	info, err := accountInfo(ctx, tx, chunk)
	if err != nil {
		return nil, err
	}
	var out []settlement.Item
	for _, it := range old {
		a, ok := info[it.Account]
		if !ok || a.Bank == "" {
			continue // still no bank: stays held
		}
		out = append(out, settlement.Reoffer(d, it, a.Bank))
	}
	return out, nil
}

const itemColumns = `i.item_id, i.cycle_date, i.bank_id, i.account_id, i.counter_account_id, i.kind, i.party, i.party_name,
	i.amount, i.transit, i.purchases, i.medical, i.fees, i.entries, i.reoffers`

func scanItem(rows pgx.Rows, more ...any) (settlement.Item, error) {
	var (
		it                   settlement.Item
		id, account, counter [16]byte
		day                  time.Time
		kind                 string
		reoffers             *[16]byte
	)
	dest := append([]any{&id, &day, &it.Bank, &account, &counter, &kind, &it.Party, &it.PartyName, &it.Amount,
		&it.Breakdown.Transit, &it.Breakdown.Purchases, &it.Breakdown.Medical, &it.Breakdown.Fees, &it.Entries, &reoffers}, more...)
	if err := rows.Scan(dest...); err != nil {
		return it, fmt.Errorf("scan settlement item: %w", err)
	}
	it.ID, it.Cycle, it.Account, it.Counter, it.Kind = ledger.ID(id), settlement.DateOf(day), ledger.ID(account), ledger.ID(counter), settlement.ItemKind(kind)
	if reoffers != nil {
		it.Reoffers = ledger.ID(*reoffers)
	}
	return it, nil
}

// copyItems writes items with COPY.
func copyItems(ctx context.Context, tx *Tx, items []settlement.Item) error {
	if len(items) == 0 {
		return nil
	}
	_, err := tx.CopyFrom(ctx, pgx.Identifier{"settlement_items"},
		[]string{"item_id", "cycle_date", "bank_id", "account_id", "counter_account_id", "kind", "party", "party_name",
			"amount", "transit", "purchases", "medical", "fees", "entries", "reoffers"},
		pgx.CopyFromSlice(len(items), func(i int) ([]any, error) {
			it := &items[i]
			return []any{[16]byte(it.ID), settlement.DateTime(it.Cycle), it.Bank, [16]byte(it.Account), [16]byte(it.Counter),
				string(it.Kind), it.Party, it.PartyName, it.Amount, it.Breakdown.Transit, it.Breakdown.Purchases,
				it.Breakdown.Medical, it.Breakdown.Fees, it.Entries, nullID(it.Reoffers)}, nil
		}))
	if err != nil {
		return fmt.Errorf("write settlement items: %w", err)
	}
	// An item sent to a bank waits for the bank's statements to book it.
	ids := make([][16]byte, 0, len(items))
	for i := range items {
		if items[i].Bank != "" {
			ids = append(ids, [16]byte(items[i].ID))
		}
	}
	if len(ids) == 0 {
		return nil
	}
	if _, err := tx.Exec(ctx, `INSERT INTO recon_open_items (bank_id, value_date, item_id)
		SELECT i.bank_id, c.value_date, i.item_id FROM settlement_items i JOIN settlement_cycles c ON c.cycle_date = i.cycle_date
		WHERE i.item_id = ANY($1)`, ids); err != nil {
		return fmt.Errorf("queue settlement items for reconciliation: %w", err)
	}
	return nil
}

// post writes the cycle's settlement postings, a batch within the ledger's bound at a time, in
// item order. Each posting's id is its item's: a close run again after a crash finds the ones
// written (exists) and writes the rest.
func (s *Settlement) post(ctx context.Context, c Cycle) error {
	after := uuid.Nil
	for {
		rows, err := s.store.pool.Query(ctx, `SELECT `+itemColumns+` FROM settlement_items i
			WHERE i.cycle_date = $1 AND i.bank_id <> '' AND i.item_id > $2 ORDER BY i.item_id LIMIT $3`,
			settlement.DateTime(c.Date), after, maxPostingBatch)
		if err != nil {
			return fmt.Errorf("read items to post: %w", err)
		}
		batch := make([]ledger.Transfer, 0, maxPostingBatch)
		banks := make([]string, 0, maxPostingBatch)
		for rows.Next() {
			it, err := scanItem(rows)
			if err != nil {
				rows.Close()
				return err
			}
			t, err := settlement.Posting(it)
			if err != nil {
				rows.Close()
				return err
			}
			batch = append(batch, t)
			banks = append(banks, it.Bank)
			after = uuid.UUID(it.ID)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return fmt.Errorf("read items to post: %w", err)
		}
		if len(batch) == 0 {
			break
		}
		res, err := s.store.CommitBatch(ctx, batch, nil)
		if err != nil {
			return fmt.Errorf("post cycle %s: %w", c.Date, err)
		}
		for i, r := range res.Results {
			if r != ledger.Created && r != ledger.Exists {
				return &PostingRefusedError{Cycle: c.Date, Posting: batch[i].ID, Bank: banks[i], Result: r}
			}
		}
		if len(batch) < maxPostingBatch {
			break
		}
	}
	_, err := s.store.pool.Exec(ctx, `UPDATE settlement_cycles SET postings_written = true WHERE cycle_date = $1`,
		settlement.DateTime(c.Date))
	if err != nil {
		return fmt.Errorf("record cycle %s's postings: %w", c.Date, err)
	}
	return nil
}
