package postgres

import (
	"context"
	"errors"
	"fmt"
	"math/big"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/joinincard/engine/ledger"
)

// maxVerifyFindings bounds how many broken accounts or transfers one check lists: enough to see
// the pattern of a fault, few enough to read.
const maxVerifyFindings = 20

// Report is what Verify found. A ledger is sound when Problems is empty.
type Report struct {
	Accounts  int64
	Transfers int64
	// Currencies is the trial balance per currency: debits and credits over all accounts.
	Currencies []CurrencyTotal
	Problems   []string
	// Mode says what was checked: the whole history, or what came after which checkpoint.
	Mode string
	// Checkpointed lists the days this run verified and checkpointed (VerifyIncremental).
	Checkpointed []string
	// Checkpoints counts the checkpoints whose digests were recomputed (VerifyFull).
	Checkpoints int
}

// CurrencyTotal sums every account's balance in one currency. Each account's totals fit an int64,
// the ledger keeps them so, but their sum over every account need not: two transfers near the
// int64 bound (an admin's, a funds load) pass it. The totals are therefore kept modulo 2^64,
// their low 64 bits in each int64 (FormatTotal reads them as unsigned, exact below 2^64 fen):
// debits equal credits exactly when the sums do, but for a difference of a multiple of 2^64,
// which no account's error of less than 2^63 on either side can make alone.
type CurrencyTotal struct {
	Currency ledger.Currency
	ledger.Balance
}

// scanCurrencyTotal reads a currency and its four totals, each the exact sum as the database
// writes it, keeping their low 64 bits.
func scanCurrencyTotal(row pgx.Row) (CurrencyTotal, error) {
	var (
		c          CurrencyTotal
		currency   string
		dp, dpo    string
		cp, cpo    string
		wrapErrors error
	)
	if err := row.Scan(&currency, &dp, &dpo, &cp, &cpo); err != nil {
		return c, err
	}
	c.Currency = ledger.Currency(currency)
	for _, f := range []struct {
		s   string
		dst *int64
	}{{dp, &c.DebitsPending}, {dpo, &c.DebitsPosted}, {cp, &c.CreditsPending}, {cpo, &c.CreditsPosted}} {
		v, err := lowBits(f.s)
		if err != nil {
			wrapErrors = errors.Join(wrapErrors, err)
			continue
		}
		*f.dst = v
	}
	return c, wrapErrors
}

// twoTo64 is 2^64, the modulus of the totals.
var twoTo64 = new(big.Int).Lsh(big.NewInt(1), 64)

// lowBits reads an integer written in decimal (a database's exact sum, with a zero fraction if
// its type writes one) and returns it modulo 2^64, as the bits of an int64.
func lowBits(s string) (int64, error) {
	whole, frac, _ := strings.Cut(s, ".")
	if strings.Trim(frac, "0") != "" {
		return 0, fmt.Errorf("total %q is not a whole number", s)
	}
	v, ok := new(big.Int).SetString(whole, 10)
	if !ok {
		return 0, fmt.Errorf("total %q is not a number", s)
	}
	return int64(v.Mod(v, twoTo64).Uint64()), nil
}

// FormatTotal writes a total of CurrencyTotal or KindTotal, read as unsigned: exact for sums
// below 2^64 minor units. It groups thousands as ledger.FormatAmount does.
func FormatTotal(v int64, c ledger.Currency) string {
	if v >= 0 {
		return ledger.FormatAmount(v, c)
	}
	return formatUnsigned(uint64(v), c, true)
}

// FormatTotalDecimal is FormatTotal without grouping, as ledger.FormatDecimal writes: for files.
func FormatTotalDecimal(v int64, c ledger.Currency) string {
	if v >= 0 {
		return ledger.FormatDecimal(v, c)
	}
	return formatUnsigned(uint64(v), c, false)
}

// formatUnsigned writes u minor units of c in its major unit, at or above 2^63.
func formatUnsigned(u uint64, c ledger.Currency, group bool) string {
	places, _ := c.MinorUnits()
	digits := strconv.FormatUint(u, 10) // at least 19 digits: more than any currency's decimals
	whole, frac := digits[:len(digits)-int(places)], digits[len(digits)-int(places):]
	var b strings.Builder
	for i, r := range whole {
		if group && i > 0 && (len(whole)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(r)
	}
	if places > 0 {
		b.WriteString("." + frac)
	}
	return b.String()
}

// OK reports whether the ledger passed every check.
func (r *Report) OK() bool { return len(r.Problems) == 0 }

func (r *Report) String() string {
	var b strings.Builder
	if r.Mode != "" {
		fmt.Fprintf(&b, "checked: %s\n", r.Mode)
	}
	for _, d := range r.Checkpointed {
		fmt.Fprintf(&b, "checkpointed %s\n", d)
	}
	if r.Checkpoints > 0 {
		fmt.Fprintf(&b, "%d checkpoints' digests recomputed\n", r.Checkpoints)
	}
	fmt.Fprintf(&b, "%d accounts, %d transfers\n", r.Accounts, r.Transfers)
	for _, c := range r.Currencies {
		fmt.Fprintf(&b, "%s posted: debits %s credits %s; pending: debits %s credits %s\n", c.Currency,
			FormatTotal(c.DebitsPosted, c.Currency), FormatTotal(c.CreditsPosted, c.Currency),
			FormatTotal(c.DebitsPending, c.Currency), FormatTotal(c.CreditsPending, c.Currency))
	}
	if r.OK() {
		b.WriteString("verified: every balance recomputes from its transfers and every currency balances\n")
	}
	for _, p := range r.Problems {
		fmt.Fprintf(&b, "PROBLEM: %s\n", p)
	}
	return b.String()
}

// Verify recomputes every account's balance from the transfers and checks the ledger's
// invariants: balances (summed over their shards) match their transfers, each currency's debits
// equal its credits, every balance honours its account's constraint, balance histories have no
// gaps in any shard, only accounts without a constraint are sharded and only their home shard
// holds pending amounts, every transfer is listed on its two accounts' balance rows of its own
// time (so that a day's cut never splits a batch, which incremental verification relies on),
// every transfer names known accounts of one currency, and every resolution matches the transfer
// it resolves. It reads a consistent snapshot; an error means the check could not run, not that
// the ledger is broken.
func (s *Store) Verify(ctx context.Context) (Report, error) {
	var rep Report
	tx, err := s.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return rep, fmt.Errorf("verify: %w", err)
	}
	// A read-only transaction: the rollback only ends the snapshot.
	defer func() { _ = tx.Rollback(ctx) }()
	if err := tx.QueryRow(ctx, `SELECT (SELECT count(*) FROM accounts), (SELECT count(*) FROM transfers)`).
		Scan(&rep.Accounts, &rep.Transfers); err != nil {
		return rep, fmt.Errorf("verify: count: %w", err)
	}

	notPosted := int32(ledger.Pending | ledger.VoidPending | ledger.ExpirePending)
	pending := int32(ledger.Pending)
	checks := []struct {
		what  string
		query string
		args  []any
	}{
		{"balance does not recompute from transfers", `
			WITH flows AS (
				SELECT t.debit_account_id AS account_id,
					CASE WHEN t.flags & $1 <> 0 AND r.target_id IS NULL THEN t.amount ELSE 0 END AS dp,
					CASE WHEN t.flags & $2 = 0 THEN t.amount ELSE 0 END AS dpo,
					0 AS cp, 0 AS cpo
				FROM transfers t LEFT JOIN transfer_resolutions r ON r.target_id = t.id
				UNION ALL
				SELECT t.credit_account_id, 0, 0,
					CASE WHEN t.flags & $1 <> 0 AND r.target_id IS NULL THEN t.amount ELSE 0 END,
					CASE WHEN t.flags & $2 = 0 THEN t.amount ELSE 0 END
				FROM transfers t LEFT JOIN transfer_resolutions r ON r.target_id = t.id
			), recomputed AS (
				SELECT account_id, sum(dp) AS dp, sum(dpo) AS dpo, sum(cp) AS cp, sum(cpo) AS cpo
				FROM flows GROUP BY account_id
			)
			SELECT 'account ' || a.id::TEXT || ' stored ' ||
				b.debits_pending::TEXT || '/' || b.debits_posted::TEXT || '/' || b.credits_pending::TEXT || '/' || b.credits_posted::TEXT ||
				' recomputed ' || COALESCE(f.dp, 0)::TEXT || '/' || COALESCE(f.dpo, 0)::TEXT || '/' ||
				COALESCE(f.cp, 0)::TEXT || '/' || COALESCE(f.cpo, 0)::TEXT
			FROM accounts a
			JOIN LATERAL ` + summedBalance("") + ` b ON b.version IS NOT NULL
			LEFT JOIN recomputed f ON f.account_id = a.id
			WHERE COALESCE(f.dp, 0) <> b.debits_pending OR COALESCE(f.dpo, 0) <> b.debits_posted
				OR COALESCE(f.cp, 0) <> b.credits_pending OR COALESCE(f.cpo, 0) <> b.credits_posted
			ORDER BY a.id LIMIT $3`, []any{pending, notPosted}},
		{"account without an opening balance", `
			SELECT 'account ' || a.id::TEXT FROM accounts a
			WHERE NOT EXISTS (SELECT 1 FROM account_balances b WHERE b.account_id = a.id)
			ORDER BY a.id LIMIT $1`, nil},
		{"balance history has gaps", `
			SELECT 'account ' || account_id::TEXT || ' shard ' || shard::TEXT || ': ' || count(*)::TEXT || ' versions up to ' || max(version)::TEXT
			FROM account_balances GROUP BY account_id, shard HAVING count(*) <> max(version)
			ORDER BY account_id, shard LIMIT $1`, nil},
		{"balance sharded where it must not be", `
			SELECT 'account ' || a.id::TEXT || ' shard ' || b.shard::TEXT FROM account_balances b JOIN accounts a ON a.id = b.account_id
			WHERE b.shard <> 0 AND (a.flags <> 0 OR b.debits_pending <> 0 OR b.credits_pending <> 0)
			ORDER BY a.id, b.shard LIMIT $1`, nil},
		{"balance breaks its account's constraint", `
			SELECT 'account ' || a.id::TEXT FROM accounts a
			JOIN LATERAL ` + summedBalance("") + ` b ON b.version IS NOT NULL
			WHERE (a.flags & $1 <> 0 AND b.debits_pending + b.debits_posted - b.credits_posted > a.balance_limit)
			   OR (a.flags & $2 <> 0 AND b.credits_pending + b.credits_posted - b.debits_posted > a.balance_limit)
			ORDER BY a.id LIMIT $3`, []any{int32(ledger.DebitsMustNotExceedCredits), int32(ledger.CreditsMustNotExceedDebits)}},
		{"transfer names an unknown account or mixes currencies", `
			SELECT 'transfer ' || t.id::TEXT FROM transfers t
			LEFT JOIN accounts d ON d.id = t.debit_account_id
			LEFT JOIN accounts c ON c.id = t.credit_account_id
			WHERE d.id IS NULL OR c.id IS NULL OR d.currency <> c.currency OR t.debit_account_id = t.credit_account_id
			ORDER BY t.id LIMIT $1`, nil},
		{"resolution does not match its transfers", `
			SELECT 'resolution of ' || r.target_id::TEXT || ' by ' || r.transfer_id::TEXT
			FROM transfer_resolutions r
			LEFT JOIN transfers target ON target.id = r.target_id
			LEFT JOIN transfers t ON t.id = r.transfer_id
			WHERE target.id IS NULL OR t.id IS NULL OR t.ref_id IS DISTINCT FROM r.target_id
			   OR (r.kind IN ('posted', 'voided', 'expired') AND (target.flags & $1 = 0
			       OR t.amount > target.amount
			       OR t.debit_account_id <> target.debit_account_id OR t.credit_account_id <> target.credit_account_id))
			   OR (r.kind = 'reversed' AND (target.flags & $2 <> 0 OR t.amount > target.amount
			       OR t.debit_account_id <> target.credit_account_id OR t.credit_account_id <> target.debit_account_id))
			ORDER BY r.target_id LIMIT $3`, []any{pending, notPosted}},
		{"transfer not listed once on each of its accounts' balance rows, at its time", `
			WITH listed AS (
				SELECT line.id, count(*) AS n, array_agg(b.account_id) AS accounts, min(b.ts) AS first, max(b.ts) AS last
				FROM account_balances b CROSS JOIN LATERAL unnest(b.transfer_ids) AS line(id)
				GROUP BY line.id
			)
			SELECT 'transfer ' || COALESCE(t.id, l.id)::TEXT FROM transfers t
			FULL OUTER JOIN listed l ON l.id = t.id
			WHERE t.id IS NULL OR l.id IS NULL OR l.n <> 2 OR l.first <> t.ts OR l.last <> t.ts
			   OR NOT (t.debit_account_id = ANY(l.accounts) AND t.credit_account_id = ANY(l.accounts))
			ORDER BY 1 LIMIT $1`, nil},
		{"open holds queue does not match the unresolved holds with a timeout", `
			SELECT 'hold ' || COALESCE(t.id, o.transfer_id)::TEXT FROM
				(SELECT id, expires_at FROM transfers t WHERE expires_at IS NOT NULL
				   AND NOT EXISTS (SELECT 1 FROM transfer_resolutions r WHERE r.target_id = t.id)) t
			FULL OUTER JOIN open_holds o ON o.transfer_id = t.id
			WHERE t.id IS NULL OR o.transfer_id IS NULL OR o.expires_at <> t.expires_at
			ORDER BY 1 LIMIT $1`, nil},
		{"resolving transfer without its resolution", `
			SELECT 'transfer ' || t.id::TEXT FROM transfers t
			WHERE t.flags & $1 <> 0
			  AND NOT EXISTS (SELECT 1 FROM transfer_resolutions r WHERE r.target_id = t.ref_id AND r.transfer_id = t.id)
			ORDER BY t.id LIMIT $2`, []any{int32(ledger.PostPending | ledger.VoidPending | ledger.ExpirePending | ledger.Reversal)}},
		{"refunds of a cleared purchase exceed it or do not match their transfers", `
			SELECT 'purchase ' || r.original_event_id::TEXT FROM cleared_refunds r
			LEFT JOIN processed_events o ON o.event_id = r.original_event_id
			LEFT JOIN transfers p ON p.id = o.transfer_id
			LEFT JOIN transfers t ON t.id = r.transfer_id
			GROUP BY r.original_event_id
			HAVING count(p.id) <> count(*) OR count(t.id) <> count(*) OR sum(r.amount) > min(p.amount)
			   OR max(r.refunded_total) <> sum(r.amount) OR max(r.seq) <> count(*)
			   OR bool_or(t.amount <> r.amount OR t.debit_account_id <> p.credit_account_id OR t.credit_account_id <> p.debit_account_id)
			ORDER BY 1 LIMIT $1`, nil},
	}
	for _, c := range checks {
		args := append(append([]any{}, c.args...), maxVerifyFindings)
		rows, err := tx.Query(ctx, c.query, args...)
		if err != nil {
			return rep, fmt.Errorf("verify: %s: %w", c.what, err)
		}
		for rows.Next() {
			var line string
			if err := rows.Scan(&line); err != nil {
				rows.Close()
				return rep, fmt.Errorf("verify: %s: %w", c.what, err)
			}
			rep.Problems = append(rep.Problems, c.what+": "+line)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return rep, fmt.Errorf("verify: %s: %w", c.what, err)
		}
	}

	rows, err := tx.Query(ctx, `SELECT a.currency,
			sum(b.debits_pending)::TEXT, sum(b.debits_posted)::TEXT, sum(b.credits_pending)::TEXT, sum(b.credits_posted)::TEXT
		FROM accounts a
		JOIN LATERAL `+summedBalance("")+` b ON b.version IS NOT NULL
		GROUP BY a.currency ORDER BY a.currency`)
	if err != nil {
		return rep, fmt.Errorf("verify: currency totals: %w", err)
	}
	totals, problems, err := readCurrencyTotals(rows)
	if err != nil {
		return rep, fmt.Errorf("verify: currency totals: %w", err)
	}
	rep.Currencies = append(rep.Currencies, totals...)
	rep.Problems = append(rep.Problems, problems...)
	return rep, nil
}

// readCurrencyTotals reads rows of per-currency totals (currency, debits pending and posted,
// credits pending and posted, as text) and names each currency whose debits and credits differ.
// It closes rows.
func readCurrencyTotals(rows pgx.Rows) ([]CurrencyTotal, []string, error) {
	defer rows.Close()
	var (
		totals   []CurrencyTotal
		problems []string
	)
	for rows.Next() {
		c, err := scanCurrencyTotal(rows)
		if err != nil {
			return nil, nil, err
		}
		if c.DebitsPosted != c.CreditsPosted || c.DebitsPending != c.CreditsPending {
			problems = append(problems, fmt.Sprintf("%s does not balance: debits %d/%d, credits %d/%d (pending/posted)",
				c.Currency, c.DebitsPending, c.DebitsPosted, c.CreditsPending, c.CreditsPosted))
		}
		totals = append(totals, c)
	}
	if err := rows.Err(); err != nil {
		return nil, nil, err
	}
	return totals, problems, nil
}
