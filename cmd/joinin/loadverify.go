package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/google/uuid"

	"github.com/joinincard/engine/cards"
	"github.com/joinincard/engine/ledger"
	"github.com/joinincard/engine/postgres"
)

// verifyLoadReport is what a verification load run prints, as JSON.
type verifyLoadReport struct {
	Transfers       int     `json:"transfers"`
	Days            int     `json:"days"`
	Accounts        int     `json:"accounts"`
	BalanceRows     int64   `json:"balance_rows"`
	GenerateSeconds float64 `json:"generate_seconds"`
	// CheckpointSeconds is the first `joinin verify`: every closed day checkpointed, one after the
	// other, then the open day checked.
	CheckpointSeconds float64 `json:"checkpoint_seconds"`
	Checkpoints       int     `json:"checkpoints"`
	// FullSeconds is `joinin verify --full`: every check over the whole history, and every
	// checkpoint's digest recomputed; FullChecksSeconds the checks alone, as verify ran before
	// checkpoints.
	FullSeconds       float64 `json:"full_seconds"`
	FullChecksSeconds float64 `json:"full_checks_seconds"`
	// IncrementalSeconds is `joinin verify` once the closed days are checkpointed: the open day
	// checked against the newest checkpoint (the fastest of three runs).
	IncrementalSeconds float64 `json:"incremental_seconds"`
	Speedup            float64 `json:"speedup"`
}

// verifyLoadBatch is how many transfers one generated batch commits: a consumer's batch of a
// busy partition.
const verifyLoadBatch = 4096

func runLoadVerify(ctx context.Context, args []string, stdout io.Writer) error {
	fs, c := newFlagSet("loadtest-verify", "write transfers over many days into a database of its own, then time joinin verify --full against joinin verify from the newest checkpoint; print JSON")
	nTransfers := fs.Int("transfers", 1_000_000, "transfers in all, spread evenly over the days")
	nDays := fs.Int("days", 30, "days of traffic; the last one is today's, still open")
	nAccounts := fs.Int("accounts", 10_000, "accounts the transfers move money between")
	keep := fs.Bool("keep", false, "keep the database the run creates")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	log, err := c.logger()
	if err != nil {
		return err
	}
	if *nTransfers < *nDays || *nDays < 2 || *nAccounts < 2 {
		return fmt.Errorf("--days must be at least 2, --transfers at least --days and --accounts at least 2")
	}
	st, _, closeStore, err := openLoadStore(ctx, c.databaseURL, "verify_load", *keep, log)
	if err != nil {
		return err
	}
	defer closeStore()

	// The days end yesterday's midnight plus one: the last generated day is "today".
	today := time.Now().In(cards.Shanghai)
	first := time.Date(today.Year(), today.Month(), today.Day()-(*nDays-1), 0, 0, 0, 0, cards.Shanghai)
	var clock time.Time
	st.Now = func() time.Time { return clock }
	clock = first.Add(30 * time.Minute)
	rep := verifyLoadReport{Transfers: *nTransfers, Days: *nDays, Accounts: *nAccounts}
	start := time.Now()
	accounts := make([]ledger.ID, *nAccounts)
	specs := make([]postgres.AccountSpec, *nAccounts)
	for i := range accounts {
		accounts[i] = ledger.ID(uuid.New())
		specs[i] = postgres.AccountSpec{Account: ledger.Account{ID: accounts[i], Currency: "CNY", Kind: ledger.KindBankSettlement},
			Name: fmt.Sprintf("account %d", i)}
	}
	for from := 0; from < len(specs); from += 10_000 {
		if err := st.CreateAccounts(ctx, specs[from:min(from+10_000, len(specs))]); err != nil {
			return err
		}
	}
	log.Info("writing transfers", "transfers", *nTransfers, "days", *nDays, "accounts", *nAccounts)
	rng := rand.New(rand.NewPCG(uint64(*nTransfers), 7))
	perDay := *nTransfers / *nDays
	for d := range *nDays {
		n := perDay
		if d == *nDays-1 {
			n = *nTransfers - perDay*(*nDays-1)
		}
		batches := (n + verifyLoadBatch - 1) / verifyLoadBatch
		// The day's batches spread from 01:00 to 21:00.
		step := 20 * time.Hour / time.Duration(batches)
		for b := range batches {
			clock = first.AddDate(0, 0, d).Add(time.Hour + time.Duration(b)*step)
			size := min(verifyLoadBatch, n-b*verifyLoadBatch)
			batch := make([]ledger.Transfer, size)
			for i := range batch {
				debit := rng.IntN(len(accounts))
				credit := (debit + 1 + rng.IntN(len(accounts)-1)) % len(accounts)
				id, err := uuid.NewV7()
				if err != nil {
					return err
				}
				batch[i] = ledger.Transfer{ID: ledger.ID(id), DebitAccountID: accounts[debit], CreditAccountID: accounts[credit],
					Amount: int64(100 + rng.IntN(10_000)), Code: 1}
			}
			res, err := st.CommitBatch(ctx, batch, nil)
			if err != nil {
				return err
			}
			if slices.ContainsFunc(res.Results, func(r ledger.Result) bool { return r != ledger.Created }) {
				return fmt.Errorf("day %d batch %d: a transfer was refused", d, b)
			}
		}
	}
	if _, err := st.Pool().Exec(ctx, `ANALYZE`); err != nil {
		return fmt.Errorf("analyze: %w", err)
	}
	if err := st.Pool().QueryRow(ctx, `SELECT count(*) FROM account_balances`).Scan(&rep.BalanceRows); err != nil {
		return err
	}
	rep.GenerateSeconds = time.Since(start).Seconds()

	// Late on the last day: every day before it has closed.
	clock = first.AddDate(0, 0, *nDays-1).Add(22 * time.Hour)
	check := func(what string, verify func(context.Context) (postgres.Report, error)) (postgres.Report, float64, error) {
		began := time.Now()
		r, err := verify(ctx)
		took := time.Since(began).Seconds()
		if err != nil {
			return r, took, err
		}
		if !r.OK() {
			return r, took, fmt.Errorf("%s found problems:\n%s", what, r.String())
		}
		if r.Transfers != int64(*nTransfers) {
			return r, took, fmt.Errorf("%s counted %d transfers, want %d", what, r.Transfers, *nTransfers)
		}
		log.Info("verified", "how", what, "seconds", took)
		return r, took, nil
	}
	r, took, err := check("checkpointing", st.VerifyIncremental)
	if err != nil {
		return err
	}
	rep.CheckpointSeconds, rep.Checkpoints = took, len(r.Checkpointed)
	if rep.Checkpoints != *nDays-1 {
		return fmt.Errorf("checkpointed %d days, want %d", rep.Checkpoints, *nDays-1)
	}
	if _, rep.FullSeconds, err = check("full", st.VerifyFull); err != nil {
		return err
	}
	if _, rep.FullChecksSeconds, err = check("full checks", st.Verify); err != nil {
		return err
	}
	for i := range 3 {
		_, took, err := check("incremental", st.VerifyIncremental)
		if err != nil {
			return err
		}
		if i == 0 || took < rep.IncrementalSeconds {
			rep.IncrementalSeconds = took
		}
	}
	rep.Speedup = rep.FullSeconds / rep.IncrementalSeconds
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(rep)
}
