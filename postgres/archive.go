package postgres

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/joinincard/engine/archive"
	"github.com/joinincard/engine/events"
	"github.com/joinincard/engine/ledger"
	"github.com/joinincard/engine/settlement"
)

var (
	// ErrMonthNotArchivable refuses a month whose settlement is not over: a cycle not closed, an
	// item no bank statement matched, a break not resolved, a suggestion no person decided.
	ErrMonthNotArchivable = errors.New("month is not settled and reconciled")
	// ErrArchiveDiffers is returned when a month exported before exports to other bytes now: the
	// history the first archive holds has changed since.
	ErrArchiveDiffers = errors.New("month's archive differs from the one exported before")
)

// ArchiveSink receives an archive's files, one at a time: the returned writer is closed before
// the next file is created.
type ArchiveSink interface {
	Create(name string) (io.WriteCloser, error)
}

// ArchiveOutcome says what an export did.
type ArchiveOutcome string

const (
	// ArchiveExported: the month's first archive.
	ArchiveExported ArchiveOutcome = "exported"
	// ArchiveReexported: the month was exported before, and the same bytes came out again.
	ArchiveReexported ArchiveOutcome = "reexported"
)

// ArchiveMonth exports month p for auditors through sink, once its settlement is over: every
// settlement cycle of the month closed, and every item of those cycles matched with a bank's
// statement or explained by a resolved break, no break open and no suggestion waiting. A month
// that is not over is refused with ErrMonthNotArchivable and the reason; the refusal is recorded
// like the export, with who asked. The month's first export is recorded with the checksum of its
// manifest; a later one must give the same manifest, or it fails with ErrArchiveDiffers.
func (s *Settlement) ArchiveMonth(ctx context.Context, p events.Period, by string, sink ArchiveSink) (archive.Manifest, ArchiveOutcome, error) {
	if strings.TrimSpace(by) == "" {
		return archive.Manifest{}, "", errors.New("archive: say who asks for it")
	}
	cycles, err := s.monthSettled(ctx, p)
	if errors.Is(err, ErrMonthNotArchivable) {
		if rerr := s.recordArchiveAction(ctx, p, "refused", by, err.Error()); rerr != nil {
			return archive.Manifest{}, "", rerr
		}
	}
	if err != nil {
		return archive.Manifest{}, "", err
	}
	format, err := s.archiveFormat(ctx, p)
	if err != nil {
		return archive.Manifest{}, "", err
	}
	files, err := archive.DataFiles(format)
	if err != nil {
		return archive.Manifest{}, "", fmt.Errorf("archive %s: %w", p, err)
	}
	m := archive.Manifest{Format: format, Month: p.String(), Cycles: len(cycles),
		StartsAfter: cycles[0].StartsAfter, EndsAt: cycles[len(cycles)-1].EndsAt}
	totals := map[string]*monthTotals{}
	total := func(currency string) *monthTotals {
		t := totals[currency]
		if t == nil {
			t = &monthTotals{}
			totals[currency] = t
		}
		return t
	}
	write := map[string]func(context.Context, *archive.Table, archive.Manifest, []Cycle, func(string) *monthTotals) error{
		"cycles.csv":           s.archiveCycles,
		"transfers.csv":        s.archiveTransfers,
		"accounts.csv":         s.archiveAccounts,
		"settlement_items.csv": s.archiveItems,
	}
	for _, file := range files {
		step := write[file.Name]
		if step == nil {
			return m, "", fmt.Errorf("archive %s: no writer of %s", p, file.Name)
		}
		f, err := sink.Create(file.Name)
		if err != nil {
			return m, "", fmt.Errorf("archive %s: %w", file.Name, err)
		}
		t, err := archive.NewTable(f, file.Name, file.Header)
		if err == nil {
			err = step(ctx, t, m, cycles, total)
		}
		var entry archive.File
		if err == nil {
			entry, err = t.Close()
		}
		if cerr := f.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("archive %s: %w", file.Name, cerr)
		}
		if err != nil {
			return m, "", err
		}
		m.Files = append(m.Files, entry)
	}
	for currency, t := range totals {
		m.Totals = append(m.Totals, t.manifest(currency))
	}
	archive.SortTotals(m.Totals)
	for _, t := range m.Totals {
		if t.Opening != zeroOf(t.Currency) || t.Closing != zeroOf(t.Currency) || t.Debits != t.Credits {
			return m, "", fmt.Errorf("archive %s: %s balances do not sum to zero (opening %s, closing %s, debits %s, credits %s)",
				p, t.Currency, t.Opening, t.Closing, t.Debits, t.Credits)
		}
	}
	var manifest bytes.Buffer
	if err := archive.WriteManifest(&manifest, m); err != nil {
		return m, "", err
	}
	for _, f := range []struct {
		name string
		body func(io.Writer) error
	}{
		{archive.ManifestName, func(w io.Writer) error { _, err := w.Write(manifest.Bytes()); return err }},
		{archive.ChecksumsName, func(w io.Writer) error { return archive.WriteChecksums(w, m.Files, manifest.Bytes()) }},
	} {
		out, err := sink.Create(f.name)
		if err != nil {
			return m, "", fmt.Errorf("archive %s: %w", f.name, err)
		}
		err = f.body(out)
		if cerr := out.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return m, "", fmt.Errorf("archive %s: %w", f.name, err)
		}
	}
	sum := sha256.Sum256(manifest.Bytes())
	outcome, err := s.recordArchive(ctx, p, m, hex.EncodeToString(sum[:]), by)
	return m, outcome, err
}

// archiveFormat is the layout month p is exported in: that of its first export, so that an
// export again gives the same bytes, or archive.Format for a month not exported yet.
func (s *Settlement) archiveFormat(ctx context.Context, p events.Period) (string, error) {
	month := settlement.DateTime(settlement.Date{Year: p.Year, Month: p.Month, Day: 1})
	var format string
	err := s.store.pool.QueryRow(ctx, `SELECT format FROM month_archives WHERE month = $1`, month).Scan(&format)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return archive.Format, nil
	case err != nil:
		return "", fmt.Errorf("read the month's archive format: %w", err)
	}
	return format, nil
}

func zeroOf(currency string) string { return ledger.FormatDecimal(0, ledger.Currency(currency)) }

// monthTotals accumulates a currency's control totals while the files are written.
type monthTotals struct {
	transfers, transferAmount, accounts    int64
	opening, debits, credits, closing, net int64
}

func (t *monthTotals) manifest(currency string) archive.Totals {
	c := ledger.Currency(currency)
	return archive.Totals{Currency: currency, Transfers: t.transfers, TransferAmount: ledger.FormatDecimal(t.transferAmount, c),
		Accounts: t.accounts, Opening: ledger.FormatDecimal(t.opening, c), Debits: ledger.FormatDecimal(t.debits, c),
		Credits: ledger.FormatDecimal(t.credits, c), Closing: ledger.FormatDecimal(t.closing, c),
		SettlementNet: ledger.FormatDecimal(t.net, c)}
}

// monthSettled returns month p's cycles, in order, once every one is closed and reconciled.
// Cycles close in order, a day each, from the ledger's first: a month whose last day's cycle is
// closed has all its cycles from its first day (or the ledger's) closed.
func (s *Settlement) monthSettled(ctx context.Context, p events.Period) ([]Cycle, error) {
	if p.Month < time.January || p.Month > time.December {
		return nil, fmt.Errorf("month %s: no such month", p)
	}
	first := settlement.Date{Year: p.Year, Month: p.Month, Day: 1}
	last := settlement.AddDays(settlement.Date{Year: p.Year, Month: p.Month + 1, Day: 1}, -1)
	rows, err := s.store.pool.Query(ctx, `SELECT `+cycleColumns+` FROM settlement_cycles WHERE cycle_date BETWEEN $1 AND $2
		ORDER BY cycle_date`, settlement.DateTime(first), settlement.DateTime(last))
	if err != nil {
		return nil, fmt.Errorf("read the month's cycles: %w", err)
	}
	var cycles []Cycle
	for rows.Next() {
		c, err := scanCycle(rows)
		if err != nil {
			rows.Close()
			return nil, fmt.Errorf("read the month's cycles: %w", err)
		}
		cycles = append(cycles, c)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read the month's cycles: %w", err)
	}
	switch {
	case len(cycles) == 0:
		return nil, fmt.Errorf("month %s: no settlement cycle closed in it: %w", p, ErrMonthNotArchivable)
	case cycles[len(cycles)-1].Date != last:
		return nil, fmt.Errorf("month %s: the cycle of %s is not closed: %w", p, last, ErrMonthNotArchivable)
	}
	for _, c := range cycles {
		if c.Status != CycleClosed {
			return nil, fmt.Errorf("month %s: the cycle of %s is still closing: %w", p, c.Date, ErrMonthNotArchivable)
		}
	}
	from, to := settlement.DateTime(cycles[0].Date), settlement.DateTime(last)
	var open, waiting, unmatched int64
	// A break of the month is one about its cycles, or, about no cycle (an entry that names
	// nothing of ours), one booked in the month.
	if err := s.store.pool.QueryRow(ctx, `SELECT count(*) FROM recon_breaks b
		WHERE (b.cycle_date BETWEEN $1 AND $2 OR (b.cycle_date IS NULL AND b.as_of BETWEEN $1 AND $2))
		AND NOT EXISTS (SELECT 1 FROM recon_resolutions r WHERE r.break_id = b.break_id)`, from, to).Scan(&open); err != nil {
		return nil, fmt.Errorf("count the month's open breaks: %w", err)
	}
	if err := s.store.pool.QueryRow(ctx, `SELECT count(*) FROM settlement_items i JOIN recon_matches m ON m.item_id = i.item_id
		WHERE i.cycle_date BETWEEN $1 AND $2 AND m.status = 'suggested'
		AND NOT EXISTS (SELECT 1 FROM recon_confirmations k WHERE k.match_id = m.match_id)`, from, to).Scan(&waiting); err != nil {
		return nil, fmt.Errorf("count the month's suggestions: %w", err)
	}
	// An item sent to a bank is reconciled when the bank's statement booked it (a match, or a
	// suggestion a person accepted, or the file's net booked whole) or a resolved break explains
	// it. An item held for a party without a bank, or one its bank rejected in its
	// acknowledgement, is owed nothing in its cycle: a later cycle's file offers it again.
	if err := s.store.pool.QueryRow(ctx, `SELECT count(*) FROM settlement_items i
		JOIN settlement_files f ON f.bank_id = i.bank_id AND f.cycle_date = i.cycle_date
		WHERE i.cycle_date BETWEEN $1 AND $2 AND i.bank_id <> '' AND NOT `+itemRejected+`
		AND NOT EXISTS (SELECT 1 FROM recon_matches m LEFT JOIN recon_confirmations k ON k.match_id = m.match_id
			WHERE m.item_id = i.item_id AND (m.status = 'matched' OR k.accepted))
		AND NOT EXISTS (SELECT 1 FROM recon_matches m WHERE m.bank_id = i.bank_id AND m.file_id = f.message_id AND m.status = 'matched')
		AND NOT EXISTS (SELECT 1 FROM recon_breaks b JOIN recon_resolutions r ON r.break_id = b.break_id WHERE b.item_id = i.item_id)`,
		from, to).Scan(&unmatched); err != nil {
		return nil, fmt.Errorf("count the month's unmatched items: %w", err)
	}
	var why []string
	if unmatched > 0 {
		why = append(why, fmt.Sprintf("%d items no bank statement matched", unmatched))
	}
	if open > 0 {
		why = append(why, fmt.Sprintf("%d breaks not resolved", open))
	}
	if waiting > 0 {
		why = append(why, fmt.Sprintf("%d suggested matches waiting for a person", waiting))
	}
	if len(why) > 0 {
		return nil, fmt.Errorf("month %s is not reconciled: %s: %w", p, strings.Join(why, ", "), ErrMonthNotArchivable)
	}
	return cycles, nil
}

func archiveTime(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000000Z") }

func (s *Settlement) archiveCycles(_ context.Context, t *archive.Table, _ archive.Manifest, cycles []Cycle, _ func(string) *monthTotals) error {
	for _, c := range cycles {
		closed := ""
		if c.ClosedAt != nil {
			closed = archiveTime(*c.ClosedAt)
		}
		if err := t.Row(c.Date.String(), archiveTime(c.StartsAfter), archiveTime(c.EndsAt), c.ValueDate.String(),
			ledger.FormatDecimal(c.FeeIncome, settlementCurrency), closed); err != nil {
			return err
		}
	}
	return nil
}

// settlementCurrency is the currency of settlement items and fee income: banks settle in yuan.
const settlementCurrency = ledger.Currency("CNY")

// archiveTransfers writes the month's transfers in the order they were stamped, read through
// the index on their time.
func (s *Settlement) archiveTransfers(ctx context.Context, t *archive.Table, m archive.Manifest, _ []Cycle, total func(string) *monthTotals) error {
	rows, err := s.store.pool.Query(ctx, `SELECT t.id, t.ts, t.debit_account_id, t.credit_account_id, t.amount, a.currency,
			t.code, t.flags, t.ref_id, t.user_data, t.timeout_seconds
		FROM transfers t JOIN accounts a ON a.id = t.debit_account_id
		WHERE t.ts > $1 AND t.ts <= $2 ORDER BY t.ts, t.id`, m.StartsAfter, m.EndsAt)
	if err != nil {
		return fmt.Errorf("read the month's transfers: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			id, debit, credit    uuid.UUID
			ref, userData        *uuid.UUID
			ts                   time.Time
			amount               int64
			currency             string
			code, flags, timeout int64
		)
		if err := rows.Scan(&id, &ts, &debit, &credit, &amount, &currency, &code, &flags, &ref, &userData, &timeout); err != nil {
			return fmt.Errorf("read the month's transfers: %w", err)
		}
		tot := total(currency)
		tot.transfers++
		tot.transferAmount += amount
		if err := t.Row(id.String(), archiveTime(ts), debit.String(), credit.String(),
			ledger.FormatDecimal(amount, ledger.Currency(currency)), currency, strconv.FormatInt(code, 10),
			transferFlagNames(ledger.TransferFlags(flags)), optionalID(ref), optionalID(userData), strconv.FormatInt(timeout, 10)); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read the month's transfers: %w", err)
	}
	return nil
}

func optionalID(id *uuid.UUID) string {
	if id == nil {
		return ""
	}
	return id.String()
}

// transferFlagNames writes a transfer's flags as names joined by '|', empty for none.
func transferFlagNames(f ledger.TransferFlags) string {
	var names []string
	for _, n := range []struct {
		flag ledger.TransferFlags
		name string
	}{
		{ledger.Linked, "linked"}, {ledger.Pending, "pending"}, {ledger.PostPending, "post_pending"},
		{ledger.VoidPending, "void_pending"}, {ledger.Reversal, "reversal"}, {ledger.ExpirePending, "expire_pending"},
	} {
		if f&n.flag != 0 {
			names = append(names, n.name)
			f &^= n.flag
		}
	}
	if f != 0 {
		names = append(names, "0x"+strconv.FormatUint(uint64(f), 16))
	}
	return strings.Join(names, "|")
}

// archiveAccounts writes every account that held or moved money by the month's end: its posted
// balance (credits less debits) at the month's start and end, and what the month posted to it.
func (s *Settlement) archiveAccounts(ctx context.Context, t *archive.Table, m archive.Manifest, _ []Cycle, total func(string) *monthTotals) error {
	rows, err := s.store.pool.Query(ctx, `SELECT a.id, a.kind, a.currency,
			coalesce(o.debits_posted, 0)::BIGINT, coalesce(o.credits_posted, 0)::BIGINT,
			c.debits_posted::BIGINT, c.credits_posted::BIGINT
		FROM accounts a
		JOIN LATERAL `+summedBalance("$2::TIMESTAMPTZ")+` c ON c.version IS NOT NULL
		LEFT JOIN LATERAL `+summedBalance("$1::TIMESTAMPTZ")+` o ON true
		ORDER BY a.id`, m.StartsAfter, m.EndsAt)
	if err != nil {
		return fmt.Errorf("read the month's balances: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			id                    uuid.UUID
			kind, currency        string
			oDebits, oCredits     int64
			closeDebits, cCredits int64
		)
		if err := rows.Scan(&id, &kind, &currency, &oDebits, &oCredits, &closeDebits, &cCredits); err != nil {
			return fmt.Errorf("read the month's balances: %w", err)
		}
		c := ledger.Currency(currency)
		tot := total(currency)
		tot.accounts++
		tot.opening += oCredits - oDebits
		tot.closing += cCredits - closeDebits
		tot.debits += closeDebits - oDebits
		tot.credits += cCredits - oCredits
		if err := t.Row(id.String(), archive.Text(kind), currency, ledger.FormatDecimal(oCredits-oDebits, c),
			ledger.FormatDecimal(closeDebits-oDebits, c), ledger.FormatDecimal(cCredits-oCredits, c),
			ledger.FormatDecimal(cCredits-closeDebits, c)); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read the month's balances: %w", err)
	}
	return nil
}

// archiveItems writes the settlement items of the month's cycles, bank by bank, each (from
// archive.FormatV2) saying whether its bank rejected it, and adds those the banks settled to the
// month's settlement net.
func (s *Settlement) archiveItems(ctx context.Context, t *archive.Table, m archive.Manifest, cycles []Cycle, total func(string) *monthTotals) error {
	rows, err := s.store.pool.Query(ctx, `SELECT i.cycle_date, i.item_id, i.bank_id, i.kind, i.party, i.party_name, i.amount, i.entries,
			i.reoffers, `+itemRejected+`
		FROM settlement_items i WHERE i.cycle_date BETWEEN $1 AND $2 ORDER BY i.cycle_date, i.bank_id, i.item_id`,
		settlement.DateTime(cycles[0].Date), settlement.DateTime(cycles[len(cycles)-1].Date))
	if err != nil {
		return fmt.Errorf("read the month's settlement items: %w", err)
	}
	defer rows.Close()
	tot := total(string(settlementCurrency))
	for rows.Next() {
		var (
			day                     time.Time
			id                      uuid.UUID
			reoffers                *uuid.UUID
			bank, kind, party, name string
			amount, entries         int64
			rejected                bool
		)
		if err := rows.Scan(&day, &id, &bank, &kind, &party, &name, &amount, &entries, &reoffers, &rejected); err != nil {
			return fmt.Errorf("read the month's settlement items: %w", err)
		}
		// An item its bank rejected was not settled: its posting was reversed and a later cycle
		// offers it again, where it counts. The row stays, as the bank's file carried it.
		if !rejected {
			tot.net += amount
		}
		fields := []string{settlement.DateOf(day).String(), id.String(), archive.Text(bank), archive.Text(kind), archive.Text(party),
			archive.Text(name), ledger.FormatDecimal(amount, settlementCurrency), string(settlementCurrency),
			strconv.FormatInt(entries, 10), optionalID(reoffers)}
		if m.Format != archive.FormatV1 {
			fields = append(fields, strconv.FormatBool(rejected))
		}
		if err := t.Row(fields...); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read the month's settlement items: %w", err)
	}
	return nil
}

// recordArchive records month p's export: the first with its manifest's checksum, a later one
// checked against it.
func (s *Settlement) recordArchive(ctx context.Context, p events.Period, m archive.Manifest, sum, by string) (ArchiveOutcome, error) {
	var outcome ArchiveOutcome
	month := settlement.DateTime(settlement.Date{Year: p.Year, Month: p.Month, Day: 1})
	var transfers int64
	for _, t := range m.Totals {
		transfers += t.Transfers
	}
	err := s.store.InTx(ctx, nil, func(ctx context.Context, tx *Tx) error {
		now := s.store.Now().UTC()
		var before string
		err := tx.QueryRow(ctx, `SELECT manifest_sha256 FROM month_archives WHERE month = $1`, month).Scan(&before)
		switch {
		case errors.Is(err, pgx.ErrNoRows):
			outcome = ArchiveExported
			if _, err := tx.Exec(ctx, `INSERT INTO month_archives (month, starts_after, ends_at, manifest_sha256, transfers,
				exported_by, exported_at, format) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
				month, m.StartsAfter, m.EndsAt, sum, transfers, by, now, m.Format); err != nil {
				return fmt.Errorf("record the archive: %w", err)
			}
		case err != nil:
			return fmt.Errorf("read the month's archive: %w", err)
		case before != sum:
			outcome = ""
			return nil
		default:
			outcome = ArchiveReexported
		}
		return insertArchiveAction(ctx, tx, month, string(outcome), by, "manifest sha256 "+sum, now)
	})
	if err != nil {
		return "", err
	}
	if outcome == "" {
		if err := s.recordArchiveAction(ctx, p, "differs", by, "manifest sha256 "+sum); err != nil {
			return "", err
		}
		return "", fmt.Errorf("month %s: %w", p, ErrArchiveDiffers)
	}
	return outcome, nil
}

func (s *Settlement) recordArchiveAction(ctx context.Context, p events.Period, action, by, detail string) error {
	month := settlement.DateTime(settlement.Date{Year: p.Year, Month: p.Month, Day: 1})
	return s.store.InTx(ctx, nil, func(ctx context.Context, tx *Tx) error {
		return insertArchiveAction(ctx, tx, month, action, by, detail, s.store.Now().UTC())
	})
}

func insertArchiveAction(ctx context.Context, tx *Tx, month time.Time, action, by, detail string, at time.Time) error {
	id, err := uuid.NewV7()
	if err != nil {
		return fmt.Errorf("archive action id: %w", err)
	}
	if _, err := tx.Exec(ctx, `INSERT INTO archive_actions (action_id, month, action, actor, detail, at) VALUES ($1, $2, $3, $4, $5, $6)`,
		id, month, action, by, detail, at); err != nil {
		return fmt.Errorf("record the archive action: %w", err)
	}
	return nil
}

// ArchiveAction is one recorded archive action.
type ArchiveAction struct {
	Month  events.Period
	Action string
	By     string
	Detail string
	At     time.Time
}

// ArchiveActions lists month p's archive actions, oldest first.
func (s *Settlement) ArchiveActions(ctx context.Context, p events.Period) ([]ArchiveAction, error) {
	month := settlement.DateTime(settlement.Date{Year: p.Year, Month: p.Month, Day: 1})
	rows, err := s.store.pool.Query(ctx, `SELECT action, actor, detail, at FROM archive_actions WHERE month = $1 ORDER BY at, action_id`, month)
	if err != nil {
		return nil, fmt.Errorf("read archive actions: %w", err)
	}
	defer rows.Close()
	var out []ArchiveAction
	for rows.Next() {
		a := ArchiveAction{Month: p}
		if err := rows.Scan(&a.Action, &a.By, &a.Detail, &a.At); err != nil {
			return nil, fmt.Errorf("read archive actions: %w", err)
		}
		out = append(out, a)
	}
	return out, rows.Err()
}
