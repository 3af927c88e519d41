package main

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/joinincard/engine/cards"
	"github.com/joinincard/engine/clearing"
	"github.com/joinincard/engine/postgres"
	"github.com/joinincard/engine/reconcile"
	"github.com/joinincard/engine/reconcile/statement"
	"github.com/joinincard/engine/settlement"
)

// reconcileLoadReport is what a reconciliation load run prints, as JSON.
type reconcileLoadReport struct {
	Entries             int     `json:"entries"`
	StatementBytes      int64   `json:"statement_bytes"`
	GenerateSeconds     float64 `json:"generate_seconds"`
	ReconcileSeconds    float64 `json:"import_and_match_seconds"`
	EntriesPerSecond    float64 `json:"entries_per_second"`
	ReconcilePeakRSSMiB float64 `json:"peak_rss_mib"`
	Matched             int64   `json:"matched"`
	Breaks              int64   `json:"breaks"`
	// RerunSeconds is a reconciliation run with nothing new to decide, right after the import:
	// what the history of a bank costs each later run, while the rows the import's run took out
	// of the open queues are still in them, dead. RerunVacuumedSeconds is the same run once those
	// are vacuumed away (PostgreSQL only), as autovacuum does within a minute on the queue
	// tables' settings.
	RerunSeconds         float64 `json:"rerun_nothing_new_seconds"`
	RerunVacuumedSeconds float64 `json:"rerun_nothing_new_vacuumed_seconds,omitempty"`
}

// loadBreakEvery: one item in this many is left out of the statement, so the run also finds
// breaks (missing at the bank), as a real day does.
const loadBreakEvery = 10_000

func runLoadReconcile(ctx context.Context, args []string, stdout io.Writer) error {
	fs, c := newFlagSet("loadtest-reconcile", "import and match a bank statement of a million entries in a database of its own; print seconds and peak memory as JSON")
	n := fs.Int("entries", 1_000_000, "settlement items, and statement entries booking them")
	keep := fs.Bool("keep", false, "keep the database the run creates")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	log, err := c.logger()
	if err != nil {
		return err
	}
	if *n < 1 {
		return fmt.Errorf("--entries must be positive")
	}
	st, url, closeStore, err := openLoadStore(ctx, c.databaseURL, "reconcile_load", *keep, log)
	if err != nil {
		return err
	}
	defer closeStore()
	dir, err := os.MkdirTemp("", "joinin-reconcile-load")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	file := filepath.Join(dir, "statement.csv")
	start := time.Now()
	log.Info("generating a settled cycle and its statement", "entries", *n)
	if err := generateStatement(ctx, st, *n, file); err != nil {
		return err
	}
	info, err := os.Stat(file)
	if err != nil {
		return err
	}
	rep := reconcileLoadReport{Entries: *n, StatementBytes: info.Size(), GenerateSeconds: time.Since(start).Seconds()}

	self, err := os.Executable()
	if err != nil {
		return err
	}
	cmd := exec.CommandContext(ctx, self, "reconcile", "import", "--database-url", url, "--log-level", "warn", file)
	cmd.Stdout, cmd.Stderr = io.Discard, os.Stderr
	began := time.Now()
	if err := cmd.Start(); err != nil {
		return err
	}
	peak := make(chan int64, 1)
	go func() { peak <- watchPeakRSS(cmd.Process.Pid) }()
	err = cmd.Wait()
	rep.ReconcileSeconds = time.Since(began).Seconds()
	rep.ReconcilePeakRSSMiB = float64(<-peak) / 1024
	if err != nil {
		return fmt.Errorf("reconcile import: %w", err)
	}
	rep.EntriesPerSecond = float64(*n) / rep.ReconcileSeconds
	if err := st.Pool().QueryRow(ctx, `SELECT (SELECT count(*) FROM recon_matches), (SELECT count(*) FROM recon_breaks)`).
		Scan(&rep.Matched, &rep.Breaks); err != nil {
		return err
	}
	rules, err := reconcile.DefaultRules()
	if err != nil {
		return err
	}
	rerun := func() (float64, error) {
		began := time.Now()
		if _, err := postgres.NewReconciler(st, rules).Reconcile(ctx, "bank-01"); err != nil {
			return 0, fmt.Errorf("reconcile again: %w", err)
		}
		return time.Since(began).Seconds(), nil
	}
	if rep.RerunSeconds, err = rerun(); err != nil {
		return err
	}
	pg, err := st.IsPostgreSQL(ctx)
	if err != nil {
		return err
	}
	if pg {
		if _, err := st.Pool().Exec(ctx, `VACUUM recon_open_entries, recon_open_items`); err != nil {
			return fmt.Errorf("vacuum the open queues: %w", err)
		}
		if rep.RerunVacuumedSeconds, err = rerun(); err != nil {
			return err
		}
	}
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(rep)
}

// generateStatement writes a settled cycle of n items for one bank straight into st (the matcher
// reads items, files and cycles, nothing more), and the bank's statement booking all of them but
// one in loadBreakEvery, as CSV, to file.
func generateStatement(ctx context.Context, st *postgres.Store, n int, file string) error {
	if _, err := st.RegisterParty(ctx, clearing.PartyBank, "bank-01", "Load Bank 负载银行"); err != nil {
		return err
	}
	day := settlement.AddDays(settlement.DateOf(time.Now().In(cards.Shanghai)), -3)
	value := settlement.AddDays(day, 1)
	msg := settlement.FileMessageID("bank-01", day, 1)
	pool := st.Pool()
	if _, err := pool.Exec(ctx, `INSERT INTO settlement_cycles (cycle_date, starts_after, ends_at, value_date, status, items_written,
			postings_written, fee_income, closing_at, closed_at) VALUES ($1, $2, $3, $4, 'closed', true, true, 0, $3, $3)`,
		settlement.DateTime(day), time.Unix(0, 0), time.Now().Add(-72*time.Hour), settlement.DateTime(value)); err != nil {
		return fmt.Errorf("cycle: %w", err)
	}
	if _, err := pool.Exec(ctx, `INSERT INTO settlement_items (item_id, cycle_date, bank_id, account_id, counter_account_id, kind, party,
			party_name, amount, transit, purchases, medical, fees, entries)
		SELECT md5('item' || g::TEXT)::UUID, $1, 'bank-01', md5('acct' || g::TEXT)::UUID, md5('acct' || g::TEXT)::UUID, 'merchant_earnings',
			'm-' || g::TEXT, '', (g % 99991) + 1, 0, (g % 99991) + 1, 0, 0, 1
		FROM generate_series(1, $2) g`, settlement.DateTime(day), n); err != nil {
		return fmt.Errorf("items: %w", err)
	}
	// Sent to the bank, the items wait for its statements, as a cycle's close leaves them.
	if _, err := pool.Exec(ctx, `INSERT INTO recon_open_items (bank_id, value_date, item_id)
		SELECT bank_id, $1, item_id FROM settlement_items`, settlement.DateTime(value)); err != nil {
		return fmt.Errorf("open items: %w", err)
	}
	var net, sum int64
	if err := pool.QueryRow(ctx, `SELECT sum(amount)::BIGINT, sum(abs(amount))::BIGINT FROM settlement_items`).Scan(&net, &sum); err != nil {
		return err
	}
	if _, err := pool.Exec(ctx, `INSERT INTO settlement_files (bank_id, cycle_date, sequence, message_id, created_at, entries, control_sum,
			net, xml_sha256, xml_size, csv_sha256, csv_size) VALUES ('bank-01', $1, 1, $2, now(), $3, $4, $5, '', 0, '', 0)`,
		settlement.DateTime(day), msg, n, sum, net); err != nil {
		return fmt.Errorf("file: %w", err)
	}
	if _, err := pool.Exec(ctx, `ANALYZE`); err != nil {
		return err
	}
	// The statement: every item but one in loadBreakEvery, in item order, streamed from the
	// database to the writer. Its totals are computed first, as the writer checks them.
	var count, entrySum int64
	if err := pool.QueryRow(ctx, `SELECT count(*), coalesce(sum(amount), 0)::BIGINT FROM settlement_items
		WHERE ('x' || substr(item_id::TEXT, 1, 8))::BIT(32)::INT % $1 <> 0`, loadBreakEvery).Scan(&count, &entrySum); err != nil {
		return err
	}
	h := statement.Header{StatementID: "LOAD-000001", CreatedAt: time.Now().UTC().Truncate(time.Second), BankID: "bank-01", Sequence: 1,
		From: value, To: settlement.AddDays(value, 1), Currency: statement.CurrencyCNY, NumberOfEntries: count, Sum: entrySum,
		Net: entrySum, ClosingBalance: entrySum}
	rows, err := pool.Query(ctx, `SELECT item_id, amount FROM settlement_items
		WHERE ('x' || substr(item_id::TEXT, 1, 8))::BIT(32)::INT % $1 <> 0 ORDER BY item_id`, loadBreakEvery)
	if err != nil {
		return err
	}
	defer rows.Close()
	f, err := os.Create(file)
	if err != nil {
		return err
	}
	var failed error
	i := 0
	err = statement.WriteCSV(f, h, func(yield func(statement.Entry) bool) {
		for rows.Next() {
			var (
				id     [16]byte
				amount int64
			)
			if failed = rows.Scan(&id, &amount); failed != nil {
				return
			}
			i++
			if !yield(statement.Entry{Amount: amount, Direction: statement.Credit, BookingDate: value, ValueDate: value,
				EntryRef: fmt.Sprintf("L%012d", i), EndToEndRef: hex.EncodeToString(id[:])}) {
				return
			}
		}
		failed = rows.Err()
	})
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if failed != nil {
		return failed
	}
	return err
}
