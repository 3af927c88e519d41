package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/joinincard/engine/fees"
	"github.com/joinincard/engine/medical"
	"github.com/joinincard/engine/postgres"
	"github.com/joinincard/engine/tariffs"
	"github.com/joinincard/engine/transit"
)

// tariffRefreshInterval is how often serve looks for versions of tariffs another process
// uploaded, and works the fee re-pricings uploads queued: what prices by fee plans or fare tables
// checks in each transaction that it prices by every version uploaded (and refreshes, or stops
// with ErrStaleTariffs), so the interval only bounds how soon a re-pricing starts: half a minute.
const tariffRefreshInterval = 30 * time.Second

// tariffFlags name the directories of fare tables, fee plans, medical policies and catalogues the engine
// starts with; each left empty is the files built in.
type tariffFlags struct {
	faresDir, feePlansDir, medicalDir, cataloguesDir string
}

func addTariffFlags(fs interface {
	StringVar(*string, string, string, string)
}) *tariffFlags {
	f := &tariffFlags{}
	fs.StringVar(&f.faresDir, "fares", envOr("JOININ_FARES", ""),
		"directory of fare tables (OPERATOR.json, OPERATOR@YYYY-MM-DD.json for a version from that day); empty uses the tables built in (env JOININ_FARES)")
	fs.StringVar(&f.feePlansDir, "fee-plans", envOr("JOININ_FEE_PLANS", ""),
		"directory of fee plans (PLAN.json, PLAN@YYYY-MM-DD.json, and optionally foreign_card.json); empty uses the plans built in (env JOININ_FEE_PLANS)")
	fs.StringVar(&f.medicalDir, "medical-policies", envOr("JOININ_MEDICAL_POLICIES", ""),
		"directory of medical policy files (city-year.json, city-year@YYYY-MM-DD.json); empty uses the sample policies built in (env JOININ_MEDICAL_POLICIES)")
	fs.StringVar(&f.cataloguesDir, "medical-catalogues", envOr("JOININ_MEDICAL_CATALOGUES", ""),
		"directory of medical catalogues (city.json, city@YYYY-MM-DD.json for a version from that day); empty uses the sample catalogues built in (env JOININ_MEDICAL_CATALOGUES)")
	return f
}

// files reads the files the engine starts with: each directory given, or the files built in. A
// directory that cannot be read stops the engine at start; the files are checked when loaded.
func (f *tariffFlags) files(log *slog.Logger) (tariffs.Files, error) {
	files, err := tariffs.BuiltIn()
	if err != nil {
		return files, fmt.Errorf("built-in tariffs: %w", err)
	}
	// A directory that is not there reads as one with no files: said as it is.
	for _, d := range []struct{ flag, dir string }{
		{"--fares", f.faresDir}, {"--fee-plans", f.feePlansDir}, {"--medical-policies", f.medicalDir}, {"--medical-catalogues", f.cataloguesDir},
	} {
		if d.dir == "" {
			continue
		}
		fi, err := os.Stat(d.dir)
		if err != nil {
			return files, fmt.Errorf("%s %s: %w", d.flag, d.dir, err)
		}
		if !fi.IsDir() {
			return files, fmt.Errorf("%s %s: not a directory", d.flag, d.dir)
		}
	}
	if f.faresDir != "" {
		if files.Fares, err = transit.ReadFiles(os.DirFS(f.faresDir)); err != nil {
			return files, fmt.Errorf("--fares %s: %w", f.faresDir, err)
		}
		if len(files.Fares) == 0 {
			return files, fmt.Errorf("--fares %s: no fare tables", f.faresDir)
		}
		files.FaresFrom = tariffs.SourceDirectory
	}
	if f.feePlansDir != "" {
		plans, foreign, err := fees.ReadDir(os.DirFS(f.feePlansDir))
		if err != nil {
			return files, fmt.Errorf("--fee-plans %s: %w", f.feePlansDir, err)
		}
		files.FeePlans, files.PlansFrom = plans, tariffs.SourceDirectory
		if foreign != nil {
			files.Foreign = foreign
		}
	}
	if f.medicalDir != "" {
		if files.Medical, err = medical.ReadDir(os.DirFS(f.medicalDir)); err != nil {
			return files, fmt.Errorf("--medical-policies %s: %w", f.medicalDir, err)
		}
		files.MedFrom = tariffs.SourceDirectory
	} else {
		log.Warn("no --medical-policies configured: settling under the built-in sample policies, whose figures are samples")
	}
	if f.cataloguesDir != "" {
		if files.Catalogues, err = medical.ReadCatalogueDir(os.DirFS(f.cataloguesDir)); err != nil {
			return files, fmt.Errorf("--medical-catalogues %s: %w", f.cataloguesDir, err)
		}
		files.CatFrom = tariffs.SourceDirectory
	} else {
		log.Warn("no --medical-catalogues configured: classifying bills by the built-in sample catalogues, whose entries are samples")
	}
	return files, nil
}

// check reads the files the flags name and checks them as load will, before anything is opened:
// a directory that cannot be read or a file that does not check stops the engine with nothing
// created or migrated. The versions uploaded since are checked by load.
func (f *tariffFlags) check() error {
	files, err := f.files(slog.New(slog.DiscardHandler))
	if err != nil {
		return err
	}
	if _, err := tariffs.NewBase(files); err != nil {
		return fmt.Errorf("tariffs: %w", err)
	}
	return nil
}

// load loads the tariffs into the store: the files the flags name, and every version uploaded.
// A file or a version that does not check stops the engine at start rather than price anything
// by what it misread.
func (f *tariffFlags) load(ctx context.Context, st *postgres.Store, log *slog.Logger) (*postgres.Tariffs, error) {
	files, err := f.files(log)
	if err != nil {
		return nil, err
	}
	tr, err := st.LoadTariffs(ctx, files)
	if err != nil {
		return nil, fmt.Errorf("tariffs: %w", err)
	}
	for _, op := range tr.Fares().Operators() {
		log.Info("fare table loaded", "operator", op.ID, "versions", len(tr.Fares().Versions(op.ID)))
	}
	for _, p := range tr.MedicalPolicies().All() {
		log.Info("medical policy loaded", "policy", p.ID(), "name", p.Name)
	}
	for _, c := range tr.MedicalCatalogues().All() {
		log.Info("medical catalogue loaded", "catalogue", c.Version(), "items", c.Len())
	}
	return tr, nil
}

// maxFeeRepriceSteps bounds the steps of fee re-pricing one refresh works (each at most 512
// purchases): a hundred thousand purchases, a minute or so; the rest waits for the next refresh,
// so that a re-pricing never keeps serve from stopping for long.
const maxFeeRepriceSteps = 200

// refreshTariffs picks up the versions other processes upload and works the fee re-pricings
// uploads queued (this process's or another's, or one a stop interrupted), at start and every
// tariffRefreshInterval, until ctx is done.
func refreshTariffs(ctx context.Context, st *postgres.Store, tr *postgres.Tariffs, log *slog.Logger) {
	t := time.NewTicker(tariffRefreshInterval)
	defer t.Stop()
	for {
		if err := tr.Refresh(ctx); err != nil && !errors.Is(err, context.Canceled) {
			log.Warn("refresh tariffs", "err", err)
		}
		repriceFees(ctx, st, log)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// repriceFees works the open fee re-pricings, at most maxFeeRepriceSteps steps.
func repriceFees(ctx context.Context, st *postgres.Store, log *slog.Logger) {
	for range maxFeeRepriceSteps {
		rep, err := st.RepriceFees(ctx, 0)
		if err != nil {
			if ctx.Err() == nil {
				log.Warn("fee re-pricing", "err", err)
			}
			return
		}
		if rep.Job == 0 {
			return
		}
		if rep.Adjusted > 0 || rep.Finished {
			log.Info("fee re-pricing", "version", rep.Job, "plan", rep.Plan, "purchases", rep.Purchases, "adjusted", rep.Adjusted,
				"charged_fen", rep.Charged, "finished", rep.Finished)
		}
	}
}
