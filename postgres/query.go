package postgres

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/joinincard/engine/ledger"
)

// ErrNotFound is returned for an account that does not exist.
var ErrNotFound = errors.New("not found")

// AccountBalance is an account with its balance at some instant.
type AccountBalance struct {
	ledger.Account
	Name string
	// Version counts the batches that changed the balance, plus one for the opening.
	Version int64
	// AsOf is when the balance was last changed.
	AsOf time.Time
}

// Balance returns an account's current balance.
func (s *Store) Balance(ctx context.Context, id ledger.ID) (AccountBalance, error) {
	return s.balance(ctx, id, "")
}

// BalanceAt returns an account's balance as it was at instant at: the balance left by the last
// batch committed at or before it. Before the account was opened there is no balance: ErrNotFound.
func (s *Store) BalanceAt(ctx context.Context, id ledger.ID, at time.Time) (AccountBalance, error) {
	return s.balance(ctx, id, "$2", at)
}

// balance reads id's balance, summed over its shards, at the instant the SQL expression at names
// (now if empty).
func (s *Store) balance(ctx context.Context, id ledger.ID, at string, args ...any) (AccountBalance, error) {
	var (
		ab             AccountBalance
		currency, kind string
		flags          int32
	)
	err := s.pool.QueryRow(ctx, `SELECT a.currency, a.kind, a.flags, a.balance_limit, a.name,
			b.version, b.ts, b.debits_pending, b.debits_posted, b.credits_pending, b.credits_posted
		FROM accounts a JOIN LATERAL `+summedBalance(at)+` b ON b.version IS NOT NULL
		WHERE a.id = $1`, append([]any{uuid.UUID(id)}, args...)...).
		Scan(&currency, &kind, &flags, &ab.Limit, &ab.Name, &ab.Version, &ab.AsOf,
			&ab.DebitsPending, &ab.DebitsPosted, &ab.CreditsPending, &ab.CreditsPosted)
	if errors.Is(err, pgx.ErrNoRows) {
		return ab, fmt.Errorf("account %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return ab, fmt.Errorf("read balance of %s: %w", id, err)
	}
	k, err := ledger.ParseKind(kind)
	if err != nil {
		return ab, fmt.Errorf("account %s: %w", id, err)
	}
	ab.ID, ab.Currency, ab.Kind, ab.Flags = id, ledger.Currency(currency), k, ledger.AccountFlags(flags)
	return ab, nil
}

// maxStatementLines bounds one page of a statement: a month of a busy cardholder's taps and
// purchases fits, and a transit operator's clearing account is read page by page.
const maxStatementLines = 10000

// Statement returns an account's transfers with from <= time < to, oldest first, at most limit
// (capped at maxStatementLines), after the line at after when it is not nil. The lines come from
// the account's balance rows, each of which lists the transfers of its batch, in every shard, and
// are ordered by their time, then their id: the transfers of one batch share its time, so a page
// goes on after its last line's time and id (StatementAfter), never from its time alone, which
// would repeat the batch's lines and, past a page of them, never reach the rest.
func (s *Store) Statement(ctx context.Context, id ledger.ID, from, to time.Time, after *StatementAfter, limit int) ([]ledger.Transfer, error) {
	if limit <= 0 || limit > maxStatementLines {
		limit = maxStatementLines
	}
	// The ledger's times are whole microseconds, and the driver drops a finer fraction: a bound
	// between two microseconds is moved up to the next, which keeps and leaves out the same
	// transfers (from <= ts < to) as the instant given.
	from, to = ceilMicrosecond(from), ceilMicrosecond(to)
	q, args := `SELECT `+prefixed("t", transferColumns)+`
		FROM account_balances b
		CROSS JOIN LATERAL unnest(b.transfer_ids) AS line(id)
		JOIN transfers t ON t.id = line.id
		WHERE b.account_id = $1 AND b.ts >= $2 AND b.ts < $3`, []any{uuid.UUID(id), from, to, limit}
	if after != nil {
		q += ` AND (t.ts, t.id) > ($5, $6)`
		args = append(args, time.UnixMicro(after.Timestamp), uuid.UUID(after.ID))
	}
	rows, err := s.pool.Query(ctx, q+` ORDER BY t.ts, t.id LIMIT $4`, args...)
	if err != nil {
		return nil, fmt.Errorf("statement of %s: %w", id, err)
	}
	defer rows.Close()
	var lines []ledger.Transfer
	for rows.Next() {
		t, err := scanTransfer(rows)
		if err != nil {
			return nil, fmt.Errorf("statement of %s: %w", id, err)
		}
		lines = append(lines, t)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("statement of %s: %w", id, err)
	}
	return lines, nil
}

// ceilMicrosecond is the first whole microsecond at or after t.
func ceilMicrosecond(t time.Time) time.Time {
	if r := t.Truncate(time.Microsecond); r.Before(t) {
		return r.Add(time.Microsecond)
	}
	return t
}

// StatementAfter is where a page of a statement ends: its last line's time (Unix microseconds)
// and transfer id. The next page starts after it.
type StatementAfter struct {
	Timestamp int64
	ID        ledger.ID
}

// prefixed qualifies each of a comma-separated list of columns with a table alias.
func prefixed(alias, columns string) string {
	parts := strings.Split(columns, ",")
	for i, p := range parts {
		parts[i] = alias + "." + strings.TrimSpace(p)
	}
	return strings.Join(parts, ", ")
}

// Transfer returns one transfer by id.
func (s *Store) Transfer(ctx context.Context, id ledger.ID) (ledger.Transfer, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+transferColumns+` FROM transfers WHERE id = $1`, uuid.UUID(id))
	if err != nil {
		return ledger.Transfer{}, fmt.Errorf("read transfer %s: %w", id, err)
	}
	defer rows.Close()
	if !rows.Next() {
		if err := rows.Err(); err != nil {
			return ledger.Transfer{}, fmt.Errorf("read transfer %s: %w", id, err)
		}
		return ledger.Transfer{}, fmt.Errorf("transfer %s: %w", id, ErrNotFound)
	}
	return scanTransfer(rows)
}

// KindTotal is one line of the trial balance: the accounts of one kind and currency, summed.
//
// Its totals are kept modulo 2^64, as CurrencyTotal's are: postgres.FormatTotal writes them.
type KindTotal struct {
	Kind     ledger.Kind
	Currency ledger.Currency
	Accounts int64
	ledger.Balance
}

// TrialBalance sums the current balances of all accounts by kind and currency. In each currency
// the debits equal the credits, posted and pending.
func (s *Store) TrialBalance(ctx context.Context) ([]KindTotal, error) {
	return s.trialBalance(ctx, nil)
}

// TrialBalanceAt is the trial balance as it stood at instant at: each account's balance as of its
// newest versions (in each shard) at or before at; accounts opened later are left out.
func (s *Store) TrialBalanceAt(ctx context.Context, at time.Time) ([]KindTotal, error) {
	at = at.UTC()
	return s.trialBalance(ctx, &at)
}

func (s *Store) trialBalance(ctx context.Context, at *time.Time) ([]KindTotal, error) {
	rows, err := s.pool.Query(ctx, `SELECT a.kind, a.currency, count(*),
			sum(b.debits_pending)::TEXT, sum(b.debits_posted)::TEXT, sum(b.credits_pending)::TEXT, sum(b.credits_posted)::TEXT
		FROM accounts a
		JOIN LATERAL `+summedBalance("COALESCE($1::TIMESTAMPTZ, b.ts)")+` b ON b.version IS NOT NULL
		GROUP BY a.currency, a.kind ORDER BY a.currency, a.kind`, at)
	if err != nil {
		return nil, fmt.Errorf("trial balance: %w", err)
	}
	defer rows.Close()
	var out []KindTotal
	for rows.Next() {
		var (
			kt             KindTotal
			kind, currency string
			sums           [4]string
		)
		// sum() of BIGINT is exact (NUMERIC, DECIMAL); a kind's totals over its accounts may pass
		// int64 where each account's fit, and are kept modulo 2^64, as CurrencyTotal's are.
		if err := rows.Scan(&kind, &currency, &kt.Accounts, &sums[0], &sums[1], &sums[2], &sums[3]); err != nil {
			return nil, fmt.Errorf("trial balance: %w", err)
		}
		for i, dst := range []*int64{&kt.DebitsPending, &kt.DebitsPosted, &kt.CreditsPending, &kt.CreditsPosted} {
			if *dst, err = lowBits(sums[i]); err != nil {
				return nil, fmt.Errorf("trial balance: %w", err)
			}
		}
		if kt.Kind, err = ledger.ParseKind(kind); err != nil {
			return nil, fmt.Errorf("trial balance: %w", err)
		}
		kt.Currency = ledger.Currency(currency)
		out = append(out, kt)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("trial balance: %w", err)
	}
	return out, nil
}
