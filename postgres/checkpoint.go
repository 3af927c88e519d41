package postgres

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/joinincard/engine/cards"
	"github.com/joinincard/engine/ledger"
)

// Incremental verification. Each closed day gets a checkpoint: the balance at the day's cut of
// every account the day changed, the trial balance, the counts and a digest of the day's history,
// written in the transaction that verified the day against the checkpoint before it. `joinin
// verify` then checks only what came after the newest checkpoint, against its balances; `joinin
// verify --full` checks everything and recomputes every checkpoint's digest from the rows.
//
// A checkpoint is only as good as the history before it staying as it was verified. The history
// tables refuse UPDATE and DELETE by trigger (migrations 0001, 0023), which only the tables' owner
// or a superuser can disable; the digest is what shows that nobody did.

// checkpointCloseMargin is how long after a day's end its checkpoint waits: longer than a batch
// transaction runs with its retries (8 attempts, a few seconds), so that the batches stamped in
// the day have committed. One that commits later all the same is not lost: its balance versions
// come after the cut and are verified with the next day.
const checkpointCloseMargin = 10 * time.Minute

// provisionalDay keys the balances at "now" that an incremental check computes: written in its
// transaction like a checkpoint's, into verify_provisional_balances, to be checked the same way,
// and rolled back. A table of their own keeps the rolled-back rows out of the checkpoints' table
// and its index, which grow for years: there they would pile up between two vacuums of a big
// table, here an empty table is vacuumed after a few dozen.
const provisionalDay = "9999-12-31"

// ledgerBegins and ledgerEnds bound a segment with no checkpoint before it or no end: before any
// transfer the engine stamps, and after any it will.
var (
	ledgerBegins = time.Date(1970, 1, 1, 0, 0, 0, 0, time.UTC)
	ledgerEnds   = time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC)
)

// dayLayout is how a checkpoint's day is written: a calendar day in Asia/Shanghai.
const dayLayout = "2006-01-02"

// Checkpoint is a verified day.
type Checkpoint struct {
	Day       string // YYYY-MM-DD in Asia/Shanghai
	EndsAt    time.Time
	Accounts  int64
	Transfers int64
	// BalanceRows counts the balance versions up to the cut, all accounts and days together.
	BalanceRows int64
	OpenHolds   int64
	Digest      []byte
}

// dayEnd is the end of a calendar day in Asia/Shanghai: the next midnight.
func dayEnd(day string) (time.Time, error) {
	d, err := time.ParseInLocation(dayLayout, day, cards.Shanghai)
	if err != nil {
		return time.Time{}, fmt.Errorf("checkpoint day %q: %w", day, err)
	}
	return d.AddDate(0, 0, 1), nil
}

// lastCheckpoint reads the newest checkpoint, ok false if there is none.
func lastCheckpoint(ctx context.Context, q pgx.Tx) (Checkpoint, bool, error) {
	var (
		c   Checkpoint
		day time.Time
	)
	err := q.QueryRow(ctx, `SELECT day, ends_at, accounts, transfers, balance_rows, open_holds, digest
		FROM verify_checkpoints ORDER BY day DESC LIMIT 1`).
		Scan(&day, &c.EndsAt, &c.Accounts, &c.Transfers, &c.BalanceRows, &c.OpenHolds, &c.Digest)
	if errors.Is(err, pgx.ErrNoRows) {
		return c, false, nil
	}
	if err != nil {
		return c, false, fmt.Errorf("read last checkpoint: %w", err)
	}
	c.Day = day.Format(dayLayout)
	return c, true, nil
}

// VerifyIncremental checkpoints every closed day since the newest checkpoint, each verified
// against the one before it, then checks what came after the newest against its balances: the
// balance versions and the transfers after the cut, and the invariants of the ledger that hold
// for them (see Verify). History before the checkpoint is not read again: VerifyFull does that.
// Per-account checks that grow with the accounts, not the days (every account has an opening
// balance), still read every account.
func (s *Store) VerifyIncremental(ctx context.Context) (Report, error) {
	var rep Report
	for {
		day, due, err := s.nextCheckpointDay(ctx)
		if err != nil {
			return rep, err
		}
		if !due {
			break
		}
		if n := len(rep.Checkpointed); n > 0 && rep.Checkpointed[n-1] == day {
			return rep, fmt.Errorf("checkpoint %s: written, yet still the next day to checkpoint", day)
		}
		written, probs, err := s.checkpoint(ctx, day)
		if err != nil {
			return rep, err
		}
		if len(probs) > 0 {
			rep.Problems = probs
			rep.Mode = "incremental: day " + day + " failed, no checkpoint written"
			return rep, nil
		}
		if written {
			rep.Checkpointed = append(rep.Checkpointed, day)
		}
	}
	err := s.retry(ctx, "verify incrementally", func(ctx context.Context, tx pgx.Tx, _ int) error {
		if err := snapshot(ctx, tx); err != nil {
			return err
		}
		last, ok, err := lastCheckpoint(ctx, tx)
		if err != nil {
			return err
		}
		seg := segment{day: provisionalDay}
		if ok {
			seg.prev, seg.from = &last, last.EndsAt
			rep.Mode = "incremental: after the checkpoint of " + last.Day
		} else {
			rep.Mode = "incremental: no checkpoint yet, everything checked"
		}
		res, err := seg.check(ctx, tx)
		if err != nil {
			return err
		}
		rep.Accounts, rep.Transfers, rep.Problems, rep.Currencies = res.accounts, res.transfers, res.problems, res.totals
		// The provisional balances go with the transaction.
		return errRollback
	})
	if err != nil && !errors.Is(err, errRollback) {
		return rep, err
	}
	return rep, nil
}

// errRollback ends a transaction that wrote only what its checks needed.
var errRollback = errors.New("rolled back on purpose")

// snapshot makes the transaction read one snapshot, whatever commits meanwhile: the first
// statement of a transaction, in the SQL both databases accept (CockroachDB's transactions are
// serializable, which is stronger).
func snapshot(ctx context.Context, tx pgx.Tx) error {
	if _, err := tx.Exec(ctx, `SET TRANSACTION ISOLATION LEVEL REPEATABLE READ`); err != nil {
		return fmt.Errorf("snapshot: %w", err)
	}
	return nil
}

// nextCheckpointDay is the first day after the newest checkpoint (from the beginning without one)
// with anything to check, and whether it has closed. Days with no transfer and no account opened
// get no checkpoint of their own: the next one covers them, so that a ledger idle for months is
// not checkpointed day by day. A balance version is written with a transfer or with an account's
// opening, so a day with neither has none.
func (s *Store) nextCheckpointDay(ctx context.Context) (string, bool, error) {
	var day string
	err := pgx.BeginTxFunc(ctx, s.pool, pgx.TxOptions{AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		last, ok, err := lastCheckpoint(ctx, tx)
		if err != nil {
			return err
		}
		from := ledgerBegins
		if ok {
			from = last.EndsAt
		}
		var transfer, opened *time.Time
		if err := tx.QueryRow(ctx, `SELECT
				(SELECT min(ts) FROM transfers WHERE ts >= $1),
				(SELECT min(created_at) FROM accounts WHERE created_at >= $1)`, from).
			Scan(&transfer, &opened); err != nil {
			return fmt.Errorf("next day to checkpoint: %w", err)
		}
		first := transfer
		if first == nil || opened != nil && opened.Before(*first) {
			first = opened
		}
		if first != nil {
			day = first.In(cards.Shanghai).Format(dayLayout)
		}
		return nil
	})
	if err != nil || day == "" {
		return "", false, err
	}
	end, err := dayEnd(day)
	if err != nil {
		return "", false, err
	}
	return day, !s.Now().Before(end.Add(checkpointCloseMargin)), nil
}

// checkpoint verifies day against the checkpoint before it and writes its checkpoint in the same
// transaction. It returns the problems found, and then writes nothing; written is false too when
// another verifier checkpointed the day first (two that race collide on its key, and the loser,
// run again, finds it written).
func (s *Store) checkpoint(ctx context.Context, day string) (written bool, problems []string, err error) {
	end, err := dayEnd(day)
	if err != nil {
		return false, nil, err
	}
	err = s.retry(ctx, "checkpoint "+day, func(ctx context.Context, tx pgx.Tx, _ int) error {
		written, problems = false, nil
		if err := snapshot(ctx, tx); err != nil {
			return err
		}
		last, ok, err := lastCheckpoint(ctx, tx)
		if err != nil {
			return err
		}
		seg := segment{day: day, end: &end}
		if ok {
			if !last.EndsAt.Before(end) {
				return nil // another verifier wrote it meanwhile
			}
			seg.prev, seg.from = &last, last.EndsAt
		}
		res, err := seg.check(ctx, tx)
		if err != nil {
			return err
		}
		if len(res.problems) > 0 {
			problems = res.problems
			return errRollback
		}
		var prevDigest []byte
		if ok {
			prevDigest = last.Digest
		}
		digest, err := segmentDigest(ctx, tx, day, prevDigest)
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `INSERT INTO verify_checkpoints
			(day, ends_at, accounts, transfers, balance_rows, open_holds, digest, verified_at)
			VALUES ($1::DATE, $2, $3, $4, $5, $6, $7, $8)`,
			day, end, res.accounts, res.transfers, res.balanceRows, res.openHolds, digest, s.Now()); err != nil {
			return fmt.Errorf("write checkpoint: %w", err)
		}
		for _, c := range res.totals {
			if _, err := tx.Exec(ctx, `INSERT INTO verify_checkpoint_totals
				(day, currency, debits_pending, debits_posted, credits_pending, credits_posted)
				VALUES ($1::DATE, $2, $3, $4, $5, $6)`,
				day, string(c.Currency), c.DebitsPending, c.DebitsPosted, c.CreditsPending, c.CreditsPosted); err != nil {
				return fmt.Errorf("write checkpoint totals: %w", err)
			}
		}
		written = true
		return nil
	})
	if errors.Is(err, errRollback) {
		return false, problems, nil
	}
	if err != nil {
		return false, nil, err
	}
	return written, nil, nil
}

// segment is the part of the ledger one check covers: every balance shard's versions after its
// cut in the previous checkpoint (all of them without one) up to the newest stamped before end
// (the newest, without an end), and the transfers these versions list. Each shard of an account
// is a version chain of its own (see shards.go); the account's balance is their sum.
type segment struct {
	day  string      // the key its balances are written under
	prev *Checkpoint // nil: the segment starts at the beginning
	from time.Time   // prev's end: transfers and resolutions stamped from it on are the segment's
	end  *time.Time  // nil: up to now
}

// table is where the segment's balances at its end are written: a checkpoint's with the
// checkpoints, a provisional one apart.
func (seg segment) table() string {
	if seg.end == nil {
		return "verify_provisional_balances"
	}
	return "verify_checkpoint_balances"
}

type segmentResult struct {
	problems                                    []string
	accounts, transfers, balanceRows, openHolds int64
	totals                                      []CurrencyTotal
}

// check writes the segment's balances at its end under seg.day, then checks the segment.
func (seg segment) check(ctx context.Context, tx pgx.Tx) (segmentResult, error) {
	var res segmentResult
	// Bounds are always times, never NULL for "none": a prepared statement that PostgreSQL plans
	// once for every value (a generic plan) keeps to the time indexes only for a plain range.
	end, from := ledgerEnds, ledgerBegins
	if seg.end != nil {
		end = *seg.end
	}
	if seg.prev != nil {
		from = seg.from
	}
	// The cut, per account and balance shard (each shard is a version chain of its own): the
	// version before the first one stamped at or after end, found by reading forward from the
	// shard's previous cut, so that a day costs its own versions however many came after it. The
	// shards an account has are found by skipping from one to the next through the key, a probe
	// per shard the account has (not per shard it might have). An account with a constraint has
	// only its home shard; should it have another, the checks below find it.
	if _, err := tx.Exec(ctx, `WITH RECURSIVE sh (account_id, shard) AS (
			SELECT a.id, $3::INT FROM accounts a
			UNION ALL
			SELECT sh.account_id, nx.shard FROM sh CROSS JOIN LATERAL (SELECT x.shard FROM account_balances x
				WHERE x.account_id = sh.account_id AND x.shard > sh.shard ORDER BY x.shard LIMIT 1) nx
		)
		INSERT INTO `+seg.table()+`
			(account_id, shard, day, from_version, version, debits_pending, debits_posted, credits_pending, credits_posted)
		SELECT sh.account_id, sh.shard, $1::DATE, COALESCE(p.version, 0), b.version,
			b.debits_pending, b.debits_posted, b.credits_pending, b.credits_posted
		FROM sh
		LEFT JOIN LATERAL (SELECT c.version FROM verify_checkpoint_balances c
			WHERE c.account_id = sh.account_id AND c.shard = sh.shard AND c.day < $1::DATE ORDER BY c.day DESC LIMIT 1) p ON true
		LEFT JOIN LATERAL (SELECT x.version FROM account_balances x
			WHERE x.account_id = sh.account_id AND x.shard = sh.shard AND x.version > COALESCE(p.version, 0) AND x.ts >= $2::TIMESTAMPTZ
			ORDER BY x.version LIMIT 1) later ON true
		JOIN LATERAL (SELECT * FROM account_balances b
			WHERE b.account_id = sh.account_id AND b.shard = sh.shard AND b.version < COALESCE(later.version, 9223372036854775807)
			ORDER BY b.version DESC LIMIT 1) b ON true
		WHERE b.version > COALESCE(p.version, 0)`, seg.day, end, homeShard); err != nil {
		return res, fmt.Errorf("balances at the cut: %w", err)
	}

	// The transfers the segment's rows list carry the rows' time (Verify checks it), so they are
	// read by time, through transfers_ts: a segment costs its own transfers, not the history's.
	// A listed transfer whose time is not its row's is then missing from tr, and reported.
	var lo, hi *time.Time
	if err := tx.QueryRow(ctx, `SELECT min(b.ts), max(b.ts) FROM `+seg.table()+` s JOIN account_balances b
		ON b.account_id = s.account_id AND b.shard = s.shard AND b.version > s.from_version AND b.version <= s.version
		WHERE s.day = $1::DATE`, seg.day).Scan(&lo, &hi); err != nil {
		return res, fmt.Errorf("segment times: %w", err)
	}
	args := pgx.NamedArgs{
		"day": seg.day, "from": from, "end": end, "lo": lo, "hi": hi, "limit": maxVerifyFindings,
		"home":      int32(homeShard),
		"pending":   int32(ledger.Pending),
		"notposted": int32(ledger.Pending | ledger.VoidPending | ledger.ExpirePending),
		"closing":   int32(ledger.PostPending | ledger.VoidPending | ledger.ExpirePending),
		"resolving": int32(ledger.PostPending | ledger.VoidPending | ledger.ExpirePending | ledger.Reversal),
		"dmnec":     int32(ledger.DebitsMustNotExceedCredits),
		"cmned":     int32(ledger.CreditsMustNotExceedDebits),
	}
	// The segment's balance rows (n), their statement lines, the transfers they list (tr).
	cte := `WITH s AS (SELECT * FROM ` + seg.table() + ` WHERE day = @day::DATE),
		n AS (SELECT b.* FROM s JOIN account_balances b
			ON b.account_id = s.account_id AND b.shard = s.shard AND b.version > s.from_version AND b.version <= s.version),
		lines AS (SELECT n.account_id, n.ts, line.id FROM n CROSS JOIN LATERAL unnest(n.transfer_ids) AS line(id)),
		listed AS (SELECT DISTINCT id FROM lines),
		tr AS (SELECT * FROM transfers WHERE ts >= @lo::TIMESTAMPTZ AND ts <= @hi::TIMESTAMPTZ) `
	// prevBalance is a shard's balance at the previous cut: its newest checkpoint row.
	const prevBalance = `LEFT JOIN LATERAL (SELECT * FROM verify_checkpoint_balances c
			WHERE c.account_id = s.account_id AND c.shard = s.shard AND c.day < @day::DATE ORDER BY c.day DESC LIMIT 1) p ON true `
	// The checks run as one statement, so that the segment's rows and transfers are read once.
	with := cte + `,
		flows AS (
			SELECT l.account_id, l.account_id = t.debit_account_id AS debit,
				CASE WHEN t.flags & @pending <> 0 THEN t.amount WHEN r.target_id IS NOT NULL THEN -tg.amount ELSE 0 END AS pend,
				CASE WHEN t.flags & @notposted = 0 THEN t.amount ELSE 0 END AS posted
			FROM lines l JOIN tr t ON t.id = l.id
			LEFT JOIN transfer_resolutions r ON t.flags & @closing <> 0 AND r.target_id = t.ref_id AND r.transfer_id = t.id
			LEFT JOIN transfers tg ON tg.id = r.target_id
		), sums AS (
			SELECT account_id,
				sum(CASE WHEN debit THEN pend ELSE 0 END) AS dp, sum(CASE WHEN debit THEN posted ELSE 0 END) AS dpo,
				sum(CASE WHEN debit THEN 0 ELSE pend END) AS cp, sum(CASE WHEN debit THEN 0 ELSE posted END) AS cpo
			FROM flows GROUP BY account_id
		), moved AS (
			SELECT s.account_id, sum(s.debits_pending - COALESCE(p.debits_pending, 0)) AS dp,
				sum(s.debits_posted - COALESCE(p.debits_posted, 0)) AS dpo,
				sum(s.credits_pending - COALESCE(p.credits_pending, 0)) AS cp,
				sum(s.credits_posted - COALESCE(p.credits_posted, 0)) AS cpo
			FROM s ` + prevBalance + `
			GROUP BY s.account_id
		), counted AS (
			SELECT id, count(*) AS n, array_agg(account_id) AS accounts, min(ts) AS first, max(ts) AS last
			FROM lines GROUP BY id
		), touched AS (
			SELECT DISTINCT c.original_event_id FROM listed l JOIN cleared_refunds c ON c.transfer_id = l.id
		) `
	checks := []struct{ what, query string }{
		{"balance does not recompute from the checkpoint and the transfers after it", `
			SELECT 'account ' || m.account_id::TEXT || ' moved by its balance rows ' ||
				m.dp::TEXT || '/' || m.dpo::TEXT || '/' || m.cp::TEXT || '/' || m.cpo::TEXT ||
				' recomputed ' || COALESCE(f.dp, 0)::TEXT || '/' || COALESCE(f.dpo, 0)::TEXT || '/' ||
				COALESCE(f.cp, 0)::TEXT || '/' || COALESCE(f.cpo, 0)::TEXT
			FROM moved m LEFT JOIN sums f ON f.account_id = m.account_id
			WHERE COALESCE(f.dp, 0) <> m.dp OR COALESCE(f.dpo, 0) <> m.dpo
			   OR COALESCE(f.cp, 0) <> m.cp OR COALESCE(f.cpo, 0) <> m.cpo
			ORDER BY m.account_id LIMIT @limit`},
		{"checkpoint's balance differs from its balance version", `
			SELECT 'account ' || s.account_id::TEXT || ' shard ' || s.shard::TEXT || ' version ' || p.version::TEXT FROM s ` + prevBalance + `
			LEFT JOIN account_balances b ON b.account_id = s.account_id AND b.shard = s.shard AND b.version = p.version
			WHERE p.version IS NOT NULL AND (b.account_id IS NULL OR b.debits_pending <> p.debits_pending
			   OR b.debits_posted <> p.debits_posted OR b.credits_pending <> p.credits_pending OR b.credits_posted <> p.credits_posted)
			ORDER BY s.account_id, s.shard LIMIT @limit`},
		{"balance history has gaps", `
			SELECT 'account ' || s.account_id::TEXT || ' shard ' || s.shard::TEXT || ': ' || count(n.version)::TEXT || ' versions from ' ||
				s.from_version::TEXT || ' to ' || s.version::TEXT
			FROM s LEFT JOIN n ON n.account_id = s.account_id AND n.shard = s.shard
			GROUP BY s.account_id, s.shard, s.from_version, s.version HAVING count(n.version) <> s.version - s.from_version
			ORDER BY s.account_id, s.shard LIMIT @limit`},
		{"balance sharded where it must not be", `
			SELECT 'account ' || a.id::TEXT || ' shard ' || n.shard::TEXT FROM n JOIN accounts a ON a.id = n.account_id
			WHERE n.shard <> @home AND (a.flags <> 0 OR n.debits_pending <> 0 OR n.credits_pending <> 0)
			GROUP BY a.id, n.shard ORDER BY a.id, n.shard LIMIT @limit`},
		{"balance breaks its account's constraint", `
			SELECT 'account ' || a.id::TEXT FROM s JOIN accounts a ON a.id = s.account_id
			WHERE s.shard = @home AND ((a.flags & @dmnec <> 0 AND s.debits_pending + s.debits_posted - s.credits_posted > a.balance_limit)
			   OR (a.flags & @cmned <> 0 AND s.credits_pending + s.credits_posted - s.debits_posted > a.balance_limit))
			ORDER BY a.id LIMIT @limit`},
		{"transfer names an unknown account or mixes currencies", `
			SELECT 'transfer ' || t.id::TEXT FROM listed l JOIN tr t ON t.id = l.id
			LEFT JOIN accounts d ON d.id = t.debit_account_id
			LEFT JOIN accounts c ON c.id = t.credit_account_id
			WHERE d.id IS NULL OR c.id IS NULL OR d.currency <> c.currency OR t.debit_account_id = t.credit_account_id
			ORDER BY t.id LIMIT @limit`},
		{"transfer not listed once on each of its accounts' balance rows, at its time", `
			SELECT 'transfer ' || l.id::TEXT FROM counted l LEFT JOIN tr t ON t.id = l.id
			WHERE t.id IS NULL OR l.n <> 2 OR l.first <> t.ts OR l.last <> t.ts
			   OR NOT (t.debit_account_id = ANY(l.accounts) AND t.credit_account_id = ANY(l.accounts))
			UNION ALL
			SELECT 'transfer ' || t.id::TEXT FROM transfers t
			WHERE t.ts >= @from::TIMESTAMPTZ AND t.ts < @end::TIMESTAMPTZ
			  AND NOT EXISTS (SELECT 1 FROM listed l WHERE l.id = t.id)
			ORDER BY 1 LIMIT @limit`},
		{"resolution does not match its transfers", `
			SELECT 'resolution of ' || r.target_id::TEXT || ' by ' || r.transfer_id::TEXT
			FROM transfer_resolutions r
			LEFT JOIN transfers target ON target.id = r.target_id
			LEFT JOIN transfers t ON t.id = r.transfer_id
			WHERE r.ts >= @from::TIMESTAMPTZ AND r.ts < @end::TIMESTAMPTZ
			  AND (target.id IS NULL OR t.id IS NULL OR t.ref_id IS DISTINCT FROM r.target_id
			   OR (r.kind IN ('posted', 'voided', 'expired') AND (target.flags & @pending = 0
			       OR t.amount > target.amount
			       OR t.debit_account_id <> target.debit_account_id OR t.credit_account_id <> target.credit_account_id))
			   OR (r.kind = 'reversed' AND (target.flags & @notposted <> 0 OR t.amount > target.amount
			       OR t.debit_account_id <> target.credit_account_id OR t.credit_account_id <> target.debit_account_id)))
			ORDER BY r.target_id LIMIT @limit`},
		{"resolving transfer without its resolution", `
			SELECT 'transfer ' || t.id::TEXT FROM listed l JOIN tr t ON t.id = l.id
			WHERE t.flags & @resolving <> 0
			  AND NOT EXISTS (SELECT 1 FROM transfer_resolutions r WHERE r.target_id = t.ref_id AND r.transfer_id = t.id)
			ORDER BY t.id LIMIT @limit`},
		{"refunds of a cleared purchase exceed it or do not match their transfers", `
			SELECT 'purchase ' || r.original_event_id::TEXT FROM touched x
			JOIN cleared_refunds r ON r.original_event_id = x.original_event_id
			LEFT JOIN processed_events o ON o.event_id = r.original_event_id
			LEFT JOIN transfers p ON p.id = o.transfer_id
			LEFT JOIN transfers t ON t.id = r.transfer_id
			GROUP BY r.original_event_id
			HAVING count(p.id) <> count(*) OR count(t.id) <> count(*) OR sum(r.amount) > min(p.amount)
			   OR max(r.refunded_total) <> sum(r.amount) OR max(r.seq) <> count(*)
			   OR bool_or(t.amount <> r.amount OR t.debit_account_id <> p.credit_account_id OR t.credit_account_id <> p.debit_account_id)
			ORDER BY 1 LIMIT @limit`},
	}
	var union strings.Builder
	union.WriteString(with)
	for i, c := range checks {
		if i > 0 {
			union.WriteString(" UNION ALL ")
		}
		fmt.Fprintf(&union, "SELECT %d AS k, q.line FROM (%s) AS q(line)", i, c.query)
	}
	found, err := tx.Query(ctx, union.String(), args)
	if err != nil {
		return res, fmt.Errorf("check the segment: %w", err)
	}
	var (
		k    int32
		line string
	)
	if _, err := pgx.ForEachRow(found, []any{&k, &line}, func() error {
		res.problems = append(res.problems, checks[k].what+": "+line)
		return nil
	}); err != nil {
		return res, fmt.Errorf("check the segment: %w", err)
	}
	// Counts and open holds: the previous checkpoint's plus the segment's.
	if seg.prev != nil {
		res.accounts, res.transfers, res.balanceRows, res.openHolds =
			seg.prev.Accounts, seg.prev.Transfers, seg.prev.BalanceRows, seg.prev.OpenHolds
	}
	var accounts, transfers, rows, opened, closed int64
	if err := tx.QueryRow(ctx, cte+`
		SELECT (SELECT count(*) FROM s WHERE shard = @home AND from_version = 0), (SELECT count(*) FROM listed), (SELECT count(*) FROM n),
			(SELECT count(*) FROM listed l JOIN tr t ON t.id = l.id WHERE t.expires_at IS NOT NULL),
			(SELECT count(*) FROM listed l JOIN tr t ON t.id = l.id
				JOIN transfer_resolutions r ON r.target_id = t.ref_id AND r.transfer_id = t.id
				JOIN transfers tg ON tg.id = r.target_id
				WHERE t.flags & @closing <> 0 AND tg.expires_at IS NOT NULL)`, args).
		Scan(&accounts, &transfers, &rows, &opened, &closed); err != nil {
		return res, fmt.Errorf("segment counts: %w", err)
	}
	res.accounts += accounts
	res.transfers += transfers
	res.balanceRows += rows
	res.openHolds += opened - closed
	if seg.end == nil {
		// Every account has its opening balance: the accounts with a balance version are counted
		// above, so a count of the accounts shows whether one lacks it, and only then are they read
		// one by one to name it.
		var all int64
		if err := tx.QueryRow(ctx, `SELECT count(*) FROM accounts`).Scan(&all); err != nil {
			return res, fmt.Errorf("count accounts: %w", err)
		}
		if all != res.accounts {
			found, err := queryLines(ctx, tx, `SELECT 'account ' || a.id::TEXT FROM accounts a
				WHERE NOT EXISTS (SELECT 1 FROM account_balances b WHERE b.account_id = a.id)
				ORDER BY a.id LIMIT $1`, maxVerifyFindings)
			if err != nil {
				return res, fmt.Errorf("opening balances: %w", err)
			}
			res.problems = append(res.problems, fmt.Sprintf("%d accounts, %d with a balance", all, res.accounts))
			for _, line := range found {
				res.problems = append(res.problems, "account without an opening balance: "+line)
			}
		}
		// The expiry sweep's queue holds exactly the holds with a timeout still open: as many as
		// the count says, and each one of them.
		var queued int64
		if err := tx.QueryRow(ctx, `SELECT count(*) FROM open_holds`).Scan(&queued); err != nil {
			return res, fmt.Errorf("open holds: %w", err)
		}
		if queued != res.openHolds {
			res.problems = append(res.problems, fmt.Sprintf(
				"open holds queue does not match the unresolved holds with a timeout: %d queued, %d open", queued, res.openHolds))
		}
		found, err := queryLines(ctx, tx, `SELECT 'hold ' || o.transfer_id::TEXT FROM open_holds o
			LEFT JOIN transfers t ON t.id = o.transfer_id
			WHERE t.id IS NULL OR t.expires_at IS DISTINCT FROM o.expires_at
			   OR EXISTS (SELECT 1 FROM transfer_resolutions r WHERE r.target_id = o.transfer_id)
			ORDER BY 1 LIMIT $1`, maxVerifyFindings)
		if err != nil {
			return res, fmt.Errorf("open holds: %w", err)
		}
		for _, line := range found {
			res.problems = append(res.problems, "open holds queue does not match the unresolved holds with a timeout: "+line)
		}
	}

	// The trial balance: the previous checkpoint's, moved by what each account moved since.
	var prevDay any
	if seg.prev != nil {
		prevDay = seg.prev.Day
	}
	rowsQ, err := tx.Query(ctx, `WITH moved AS (
			SELECT a.currency, s.debits_pending - COALESCE(p.debits_pending, 0) AS dp,
				s.debits_posted - COALESCE(p.debits_posted, 0) AS dpo,
				s.credits_pending - COALESCE(p.credits_pending, 0) AS cp,
				s.credits_posted - COALESCE(p.credits_posted, 0) AS cpo
			FROM `+seg.table()+` s JOIN accounts a ON a.id = s.account_id `+prevBalance+`
			WHERE s.day = @day::DATE
			UNION ALL
			SELECT currency, debits_pending, debits_posted, credits_pending, credits_posted
			FROM verify_checkpoint_totals WHERE day = @prev::DATE
		)
		SELECT currency, sum(dp)::TEXT, sum(dpo)::TEXT, sum(cp)::TEXT, sum(cpo)::TEXT FROM moved GROUP BY currency ORDER BY currency`,
		pgx.NamedArgs{"day": seg.day, "prev": prevDay})
	if err != nil {
		return res, fmt.Errorf("currency totals: %w", err)
	}
	// The previous checkpoint's totals are kept modulo 2^64, as every total is; so is their sum
	// with what moved since.
	totals, problems, err := readCurrencyTotals(rowsQ)
	if err != nil {
		return res, fmt.Errorf("currency totals: %w", err)
	}
	res.totals = append(res.totals, totals...)
	res.problems = append(res.problems, problems...)
	return res, nil
}

// queryLines runs a check that returns one line per finding.
func queryLines(ctx context.Context, tx pgx.Tx, query string, args ...any) ([]string, error) {
	rows, err := tx.Query(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, err
	}
	return lines, nil
}

// segmentDigest hashes prev with a checkpointed day's history in key order: its balance versions
// by account and version, then the transfers they list by id, each with the resolution it made.
// Every field is written at a fixed width or with its length, so that no two histories hash alike
// by shifting bytes between fields.
func segmentDigest(ctx context.Context, tx pgx.Tx, day string, prev []byte) ([]byte, error) {
	h := sha256.New()
	h.Write(prev)
	rows, err := tx.Query(ctx, `SELECT b.account_id, b.shard, b.version, b.ts, b.debits_pending, b.debits_posted,
			b.credits_pending, b.credits_posted, b.transfer_ids
		FROM verify_checkpoint_balances s JOIN account_balances b
			ON b.account_id = s.account_id AND b.shard = s.shard AND b.version > s.from_version AND b.version <= s.version
		WHERE s.day = $1::DATE ORDER BY b.account_id, b.shard, b.version`, day)
	if err != nil {
		return nil, fmt.Errorf("digest balances: %w", err)
	}
	// The rows' transfers are read by the rows' time, as the checks read them.
	var lo, hi *time.Time
	var (
		account          [16]byte
		shard            int32
		version          int64
		ts               time.Time
		dp, dpo, cp, cpo int64
		ids              [][16]byte
	)
	_, err = pgx.ForEachRow(rows, []any{&account, &shard, &version, &ts, &dp, &dpo, &cp, &cpo, &ids}, func() error {
		if at := ts; lo == nil || at.Before(*lo) {
			lo = &at
		}
		if at := ts; hi == nil || at.After(*hi) {
			hi = &at
		}
		h.Write(account[:])
		writeInts(h, shardVersion(shard, version), ts.UnixMicro(), dp, dpo, cp, cpo, int64(len(ids)))
		for _, id := range ids {
			h.Write(id[:])
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("digest balances: %w", err)
	}
	rows, err = tx.Query(ctx, `WITH listed AS (
			SELECT DISTINCT line.id FROM verify_checkpoint_balances s JOIN account_balances b
				ON b.account_id = s.account_id AND b.shard = s.shard AND b.version > s.from_version AND b.version <= s.version
			CROSS JOIN LATERAL unnest(b.transfer_ids) AS line(id)
			WHERE s.day = $1::DATE)
		SELECT l.id, t.debit_account_id, t.credit_account_id, t.amount, t.ref_id, t.user_data, t.timeout_seconds,
			t.code, t.flags, t.ts, t.expires_at, r.kind, r.ts
		FROM listed l LEFT JOIN transfers t ON t.id = l.id
		LEFT JOIN transfer_resolutions r ON r.target_id = t.ref_id AND r.transfer_id = t.id
		ORDER BY l.id`, day)
	if err != nil {
		return nil, fmt.Errorf("digest transfers: %w", err)
	}
	var (
		id                [16]byte
		debit, credit     *[16]byte
		amount, timeout   *int64
		ref, userData     *[16]byte
		code, flags       *int32
		tts, expires, rts *time.Time
		kind              *string
	)
	_, err = pgx.ForEachRow(rows, []any{&id, &debit, &credit, &amount, &ref, &userData, &timeout, &code, &flags, &tts, &expires, &kind, &rts},
		func() error {
			h.Write(id[:])
			for _, u := range []*[16]byte{debit, credit, ref, userData} {
				writeOptional(h, u != nil)
				if u != nil {
					h.Write(u[:])
				}
			}
			for _, n := range []*int64{amount, timeout} {
				writeOptional(h, n != nil)
				if n != nil {
					writeInts(h, *n)
				}
			}
			for _, n := range []*int32{code, flags} {
				writeOptional(h, n != nil)
				if n != nil {
					writeInts(h, int64(*n))
				}
			}
			for _, t := range []*time.Time{tts, expires, rts} {
				writeOptional(h, t != nil)
				if t != nil {
					writeInts(h, t.UnixMicro())
				}
			}
			writeOptional(h, kind != nil)
			if kind != nil {
				writeInts(h, int64(len(*kind)))
				h.Write([]byte(*kind))
			}
			return nil
		})
	if err != nil {
		return nil, fmt.Errorf("digest transfers: %w", err)
	}
	return h.Sum(nil), nil
}

// shardVersionBits is where a balance row's shard goes in the digest's version word: versions
// count the batches of one shard and stay far below 2^56, and the shards below 2^8 (balanceShards).
// A home-shard row hashes exactly as a row did before balances were sharded, so the checkpoints
// written before migration 0027 still verify.
const shardVersionBits = 56

// shardVersion is a balance row's shard and version in one word of the digest.
func shardVersion(shard int32, version int64) int64 {
	return int64(shard)<<shardVersionBits | version
}

func writeInts(h hash.Hash, ns ...int64) {
	var b [8]byte
	for _, n := range ns {
		binary.BigEndian.PutUint64(b[:], uint64(n))
		h.Write(b[:])
	}
}

func writeOptional(h hash.Hash, present bool) {
	if present {
		h.Write([]byte{1})
	} else {
		h.Write([]byte{0})
	}
}

// VerifyFull checks everything Verify checks, over the whole history, and recomputes every
// checkpoint's digest from the rows it covers: a checkpoint whose history changed after it was
// verified is reported, and the incremental checks after it cannot be trusted until it is fixed.
func (s *Store) VerifyFull(ctx context.Context) (Report, error) {
	rep, err := s.Verify(ctx)
	if err != nil {
		return rep, err
	}
	rep.Mode = "full"
	err = pgx.BeginTxFunc(ctx, s.pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `SELECT day, digest FROM verify_checkpoints ORDER BY day`)
		if err != nil {
			return fmt.Errorf("read checkpoints: %w", err)
		}
		type stored struct {
			day    time.Time
			digest []byte
		}
		var all []stored
		var c stored
		if _, err := pgx.ForEachRow(rows, []any{&c.day, &c.digest}, func() error {
			all = append(all, stored{day: c.day, digest: append([]byte(nil), c.digest...)})
			return nil
		}); err != nil {
			return fmt.Errorf("read checkpoints: %w", err)
		}
		var prev []byte
		for _, c := range all {
			day := c.day.Format(dayLayout)
			got, err := segmentDigest(ctx, tx, day, prev)
			if err != nil {
				return fmt.Errorf("checkpoint %s: %w", day, err)
			}
			if !bytes.Equal(got, c.digest) {
				rep.Problems = append(rep.Problems, fmt.Sprintf(
					"checkpoint %s: the history it verified has changed since (digest %x, recomputed %x)", day, c.digest, got))
			}
			// The chain goes on from what was stored, so that one changed day is reported once.
			prev = c.digest
		}
		found, err := queryLines(ctx, tx, `SELECT 'account ' || c.account_id::TEXT || ' shard ' || c.shard::TEXT || ' on ' || c.day::TEXT
			FROM verify_checkpoint_balances c
			LEFT JOIN account_balances b ON b.account_id = c.account_id AND b.shard = c.shard AND b.version = c.version
			WHERE b.account_id IS NULL OR b.debits_pending <> c.debits_pending OR b.debits_posted <> c.debits_posted
			   OR b.credits_pending <> c.credits_pending OR b.credits_posted <> c.credits_posted
			ORDER BY 1 LIMIT $1`, maxVerifyFindings)
		if err != nil {
			return fmt.Errorf("checkpoint balances: %w", err)
		}
		for _, line := range found {
			rep.Problems = append(rep.Problems, "checkpoint's balance differs from its balance version: "+line)
		}
		rep.Checkpoints = len(all)
		return nil
	})
	if err != nil {
		return rep, fmt.Errorf("verify checkpoints: %w", err)
	}
	return rep, nil
}
