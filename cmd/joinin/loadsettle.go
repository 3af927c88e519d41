package main

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/joinincard/engine/cards"
	"github.com/joinincard/engine/clearing"
	"github.com/joinincard/engine/events"
	"github.com/joinincard/engine/loadtest"
	"github.com/joinincard/engine/postgres"
	"github.com/joinincard/engine/settlement"
)

// settleLoadReport is what a settlement load run prints, as JSON.
type settleLoadReport struct {
	Transfers        int     `json:"transfers"`
	Cards            int     `json:"cards"`
	Merchants        int     `json:"merchants"`
	Banks            int     `json:"banks"`
	Items            int64   `json:"items"`
	Files            int     `json:"files"`
	GenerateSeconds  float64 `json:"generate_seconds"`
	SettleSeconds    float64 `json:"settle_seconds"`
	SettlePeakRSSMiB float64 `json:"settle_peak_rss_mib"`
	// The goal on a two-core machine: a cycle of 10,000,000 transfers closes in under a minute,
	// in under 500 MiB.
	GoalSeconds float64 `json:"goal_seconds"`
	GoalRSSMiB  float64 `json:"goal_rss_mib"`
}

// copyChunk is how many synthetic transfers one COPY carries: a transaction of a few hundred
// megabytes of WAL at most, so that a run of tens of millions streams in steady steps.
const copyChunk = 1_000_000

func runLoadSettle(ctx context.Context, args []string, stdout io.Writer) error {
	fs, c := newFlagSet("loadtest-settle", "close a settlement cycle of millions of transfers in a database of its own; print seconds and peak memory as JSON")
	nTransfers := fs.Int("transfers", 10_000_000, "purchases in the cycle")
	nCards := fs.Int("cards", 100_000, "cardholders")
	nMerchants := fs.Int("merchants", 1000, "merchants")
	nBanks := fs.Int("banks", 20, "banks, each issuing cards and acquiring merchants")
	keep := fs.Bool("keep", false, "keep the database the run creates")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	log, err := c.logger()
	if err != nil {
		return err
	}
	if *nTransfers < 1 || *nCards < 1 || *nMerchants < 1 || *nBanks < 1 {
		return fmt.Errorf("--transfers, --cards, --merchants and --banks must be positive")
	}
	// A database of its own on the server DATABASE_URL names: created, filled, settled, dropped.
	url, drop, err := loadDatabase(ctx, c.databaseURL, "settle_load", *keep, log)
	if err != nil {
		return err
	}
	defer drop()
	st, err := postgres.Open(ctx, url)
	if err != nil {
		return err
	}
	if err := st.Migrate(ctx); err != nil {
		st.Close()
		return err
	}
	day := settlement.AddDays(settlement.DateOf(time.Now().In(cards.Shanghai)), -2)
	start := time.Now()
	log.Info("generating a settlement cycle", "transfers", *nTransfers, "cards", *nCards, "merchants", *nMerchants, "banks", *nBanks)
	if err := generateCycle(ctx, st, day, *nTransfers, *nCards, *nMerchants, *nBanks); err != nil {
		st.Close()
		return err
	}
	st.Close()
	rep := settleLoadReport{Transfers: *nTransfers, Cards: *nCards, Merchants: *nMerchants, Banks: *nBanks,
		GenerateSeconds: time.Since(start).Seconds(), GoalSeconds: 60, GoalRSSMiB: 500}

	// The close runs as `joinin settle` in a process of its own, so that its peak memory is its own.
	log.Info("settling", "cycle", day)
	self, err := os.Executable()
	if err != nil {
		return err
	}
	cmd := exec.CommandContext(ctx, self, "settle", "--database-url", url, "--date", day.String(), "--log-level", "warn")
	cmd.Stdout, cmd.Stderr = io.Discard, os.Stderr
	began := time.Now()
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("settle: %w", err)
	}
	// The child's own high-water mark, read from /proc while it runs: the rusage of a waited-for
	// child also counts what its parent held when it was started.
	peak := make(chan int64, 1)
	go func() { peak <- watchPeakRSS(cmd.Process.Pid) }()
	err = cmd.Wait()
	rep.SettleSeconds = time.Since(began).Seconds()
	rep.SettlePeakRSSMiB = float64(<-peak) / 1024
	if err != nil {
		return fmt.Errorf("settle: %w", err)
	}
	st, err = postgres.Open(ctx, url)
	if err != nil {
		return err
	}
	defer st.Close()
	if err := st.Pool().QueryRow(ctx, `SELECT count(*) FROM settlement_items WHERE cycle_date = $1`, settlement.DateTime(day)).Scan(&rep.Items); err != nil {
		return err
	}
	var files int64
	if err := st.Pool().QueryRow(ctx, `SELECT count(*) FROM settlement_files WHERE cycle_date = $1`, settlement.DateTime(day)).Scan(&files); err != nil {
		return err
	}
	rep.Files = int(files)
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(rep)
}

// generateCycle fills st with a city of banks, merchants and cards registered the ordinary way,
// then n purchases on day copied straight into the ledger (they are what a cycle's close reads),
// and the accounts' balances brought to match.
func generateCycle(ctx context.Context, st *postgres.Store, day settlement.Date, n, nCards, nMerchants, nBanks int) error {
	morning := time.Date(day.Year, day.Month, day.Day, 6, 0, 0, 0, cards.Shanghai)
	st.Now = func() time.Time { return morning }
	city := loadtest.NewCity(uint64(n), nCards, nMerchants, morning)
	city.Banks = nil
	for i := range nBanks {
		city.Banks = append(city.Banks, fmt.Sprintf("bank-%02d", i+1))
	}
	for _, p := range city.Parties() {
		if _, err := st.RegisterParty(ctx, p.Kind, p.ID, p.Name); err != nil {
			return err
		}
	}
	for _, b := range city.SettlementBanks() {
		if err := st.SetPartyBank(ctx, b.Kind, b.ID, b.Bank); err != nil {
			return err
		}
	}
	regs := city.Registrations()
	for from := 0; from < len(regs); from += 4096 {
		part := regs[from:min(from+4096, len(regs))]
		msgs := make([]clearing.Message, len(part))
		for i, e := range part {
			raw := loadtest.Encode(e)
			dec, err := events.Decode(raw)
			msgs[i] = clearing.Message{Source: "setup/0", Offset: int64(from + i), Raw: raw, Event: dec, DecodeErr: err}
		}
		if _, err := st.Ingest(ctx, nil, msgs); err != nil {
			return err
		}
	}
	funds := make([][16]byte, nCards)
	for i, card := range city.Cards {
		funds[i] = cards.AccountID("funds", card)
	}
	shops := make([][16]byte, nMerchants)
	for i, m := range city.Merchants {
		shops[i] = clearing.PartyAccount(clearing.PartyMerchant, m)
	}
	noon := time.Date(day.Year, day.Month, day.Day, 8, 0, 0, 0, cards.Shanghai)
	rng := rand.New(rand.NewPCG(uint64(n), 3))
	for done := 0; done < n; done += copyChunk {
		rows := min(copyChunk, n-done)
		i := 0
		_, err := st.Pool().CopyFrom(ctx, pgx.Identifier{"transfers"},
			[]string{"id", "debit_account_id", "credit_account_id", "amount", "timeout_seconds", "code", "flags", "ts"},
			pgx.CopyFromFunc(func() ([]any, error) {
				if i == rows {
					return nil, nil
				}
				seq := done + i
				i++
				// Spread over twelve hours of the day, a few microseconds apart.
				at := noon.Add(time.Duration(seq) * (12 * time.Hour / time.Duration(n)))
				var id [16]byte
				binary.BigEndian.PutUint64(id[:8], uint64(at.UnixMilli())<<16)
				binary.BigEndian.PutUint64(id[8:], uint64(seq))
				id[6] = id[6]&0x0f | 0x70
				id[8] = id[8]&0x3f | 0x80
				return []any{id, funds[rng.IntN(nCards)], shops[rng.IntN(nMerchants)], int64(100 + rng.IntN(50000)), int64(0),
					int32(clearing.CodePurchase), int32(0), at}, nil
			}))
		if err != nil {
			return fmt.Errorf("copy synthetic transfers: %w", err)
		}
	}
	// Each account's balance as its transfers make it, one version past its opening one.
	_, err := st.Pool().Exec(ctx, `INSERT INTO account_balances (account_id, version, ts, debits_pending, debits_posted,
			credits_pending, credits_posted, transfer_ids)
		SELECT a.id, 2, $1, 0, coalesce(d.s, 0), 0, coalesce(c.s, 0), '{}'
		FROM accounts a
		LEFT JOIN (SELECT debit_account_id AS id, sum(amount)::BIGINT AS s FROM transfers GROUP BY 1) d ON d.id = a.id
		LEFT JOIN (SELECT credit_account_id AS id, sum(amount)::BIGINT AS s FROM transfers GROUP BY 1) c ON c.id = a.id
		WHERE d.s IS NOT NULL OR c.s IS NOT NULL`, noon.Add(12*time.Hour+time.Minute))
	if err != nil {
		return fmt.Errorf("bring balances to the synthetic transfers: %w", err)
	}
	if _, err := st.Pool().Exec(ctx, `ANALYZE`); err != nil {
		return fmt.Errorf("analyze: %w", err)
	}
	return nil
}

// loadDatabase creates a database of its own for a load run on the server serverURL names, named
// after that URL's database, the run's kind and the time, so that a run's tables never mix with
// the engine's own or another run's. drop drops it, or with keep leaves it and says so.
func loadDatabase(ctx context.Context, serverURL, kind string, keep bool, log *slog.Logger) (url string, drop func(), err error) {
	cfg, err := pgx.ParseConfig(serverURL)
	if err != nil {
		return "", nil, fmt.Errorf("--database-url: %w", err)
	}
	name := fmt.Sprintf("%s_%s_%d", cfg.Database, kind, time.Now().UnixNano())
	url = urlWithDatabase(serverURL, cfg.Database, name)
	if err := postgres.EnsureDatabase(ctx, url); err != nil {
		return "", nil, err
	}
	drop = func() {
		if keep {
			fmt.Fprintf(os.Stderr, "kept database %s\n", name)
			return
		}
		if err := dropDatabase(context.WithoutCancel(ctx), serverURL, cfg.Database, name); err != nil {
			log.Warn("drop the load run's database", "database", name, "err", err)
		}
	}
	return url, drop, nil
}

// settleTables has PostgreSQL do, after a pre-fill, what it would have done over the months the
// pre-filled rows stand for, before a run measures: VACUUM (ANALYZE) of every table (hint bits,
// the visibility map, statistics) and a CHECKPOINT. Otherwise the measured seconds go to
// autovacuum scanning tables of millions of rows written the minute before, and to a
// checkpoint of the gigabytes of WAL the pre-fill left, which a ledger that grew over months
// does not pay all at once. CockroachDB has neither statement, nor their need.
func settleTables(ctx context.Context, st *postgres.Store) error {
	pg, err := st.IsPostgreSQL(ctx)
	if err != nil || !pg {
		return err
	}
	for _, q := range []string{"VACUUM (ANALYZE)", "CHECKPOINT"} {
		if _, err := st.Pool().Exec(ctx, q); err != nil {
			return fmt.Errorf("settle the pre-filled tables: %s: %w", q, err)
		}
	}
	return nil
}

// openLoadStore creates a load run's database of its own (loadDatabase), connects to it and
// migrates it. closeStore closes the store, then drops the database unless keep.
func openLoadStore(ctx context.Context, serverURL, kind string, keep bool, log *slog.Logger) (st *postgres.Store, url string, closeStore func(), err error) {
	url, drop, err := loadDatabase(ctx, serverURL, kind, keep, log)
	if err != nil {
		return nil, "", nil, err
	}
	if st, err = postgres.Open(ctx, url); err != nil {
		drop()
		return nil, "", nil, err
	}
	if err := st.Migrate(ctx); err != nil {
		st.Close()
		drop()
		return nil, "", nil, err
	}
	return st, url, func() { st.Close(); drop() }, nil
}

// urlWithDatabase is url with its database name old replaced by name.
func urlWithDatabase(url, old, name string) string {
	cfg, err := pgx.ParseConfig(url)
	if err != nil || cfg.Database != old {
		return url
	}
	u := fmt.Sprintf("postgres://%s@%s:%d/%s?sslmode=disable", cfg.User, cfg.Host, cfg.Port, name)
	if cfg.Password != "" {
		u = fmt.Sprintf("postgres://%s:%s@%s:%d/%s?sslmode=disable", cfg.User, cfg.Password, cfg.Host, cfg.Port, name)
	}
	return u
}

func dropDatabase(ctx context.Context, url, old, name string) error {
	conn, err := pgx.Connect(ctx, urlWithDatabase(url, old, "postgres"))
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)")
	return err
}

// peakRSSPoll is how often a child's high-water mark is read: VmHWM only grows, so the last read
// before the child exits misses at most what it added in its last moments.
const peakRSSPoll = 10 * time.Millisecond

// watchPeakRSS returns the largest VmHWM (kilobytes) of process pid, read until it is gone.
func watchPeakRSS(pid int) int64 {
	var peak int64
	path := fmt.Sprintf("/proc/%d/status", pid)
	for {
		raw, err := os.ReadFile(path)
		if err != nil {
			return peak
		}
		hwm := int64(-1)
		for _, line := range strings.Split(string(raw), "\n") {
			if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
				fmt.Sscanf(strings.TrimSpace(v), "%d", &hwm)
			}
		}
		if hwm < 0 {
			return peak // a zombie: the child has exited
		}
		peak = max(peak, hwm)
		time.Sleep(peakRSSPoll)
	}
}
