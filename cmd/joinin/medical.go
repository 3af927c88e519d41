package main

import (
	"fmt"
	"log/slog"
	"os"

	joininhttp "github.com/joinincard/engine/http"
	"github.com/joinincard/engine/medical"
	"github.com/joinincard/engine/postgres"
)

// medicalFlags configure the medical settlements API.
type medicalFlags struct {
	policyDir string
}

func addMedicalFlags(fs interface {
	StringVar(*string, string, string, string)
}) *medicalFlags {
	f := &medicalFlags{}
	fs.StringVar(&f.policyDir, "medical-policies", envOr("JOININ_MEDICAL_POLICIES", ""),
		"directory of medical policy files (city-year.json); empty uses the sample policies built in (env JOININ_MEDICAL_POLICIES)")
	return f
}

// policies loads the medical policies: every file of the configured directory, checked as the
// built-in ones are, or the built-in samples. A file that does not check stops the engine at start
// rather than settle anything under a policy it misread.
func (f *medicalFlags) policies(log *slog.Logger) (*medical.Policies, error) {
	if f.policyDir == "" {
		log.Warn("no --medical-policies configured: settling under the built-in sample policies, whose figures are samples")
		return medical.SamplePolicies()
	}
	ps, err := medical.LoadPolicies(os.DirFS(f.policyDir))
	if err != nil {
		return nil, fmt.Errorf("--medical-policies %s: %w", f.policyDir, err)
	}
	return ps, nil
}

// medicalFeature builds the medical settlements API on the store.
func medicalFeature(st *postgres.Store, f *medicalFlags, log *slog.Logger) (joininhttp.Feature, error) {
	ps, err := f.policies(log)
	if err != nil {
		return nil, err
	}
	for _, p := range ps.All() {
		log.Info("medical policy loaded", "policy", p.ID(), "name", p.Name)
	}
	return joininhttp.NewMedical(postgres.NewMedical(st, ps)), nil
}
