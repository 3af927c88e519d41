// Package reconcile decides whether the banks booked what the engine settled: bank statement
// entries are matched to settlement items and net positions, one to one, many to one (a bank that
// split a payment) or one to many (a bank that booked a file's net position), with tolerances kept
// as data; what does not match is a break, classified and aged. It is pure: the store streams the
// items and entries in, and writes the matches and breaks it is handed.
package reconcile

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"fmt"
	"io"

	"github.com/joinincard/engine/ledger"
)

// Rules are the tolerances a bank's statements are matched with.
type Rules struct {
	// AmountTolerance, fen: an entry within it of the expected amount matches.
	AmountTolerance int64
	// ValueDateDays: a value date within it of the expected one is on time; further is a timing
	// break.
	ValueDateDays int
	// SuggestDays: an entry that names nothing of ours is suggested for an unmatched item of the
	// same amount (within tolerance) whose value date is within it.
	SuggestDays int
	// MissingAfterDays: an item is missing at the bank once the bank's statements run this many
	// days past its value date without it.
	MissingAfterDays int
}

// maxToleranceDays bounds the day tolerances: a month; beyond it a match is a guess.
const maxToleranceDays = 31

// maxAmountTolerance bounds the amount tolerance: 100.00 CNY. Tolerances absorb a bank's rounding
// and fee quirks, not real differences.
const maxAmountTolerance = 100_00

func (r Rules) validate() error {
	switch {
	case r.AmountTolerance < 0 || r.AmountTolerance > maxAmountTolerance:
		return fmt.Errorf("amount_tolerance: want 0.00 to %s", ledger.FormatDecimal(maxAmountTolerance, "CNY"))
	case r.ValueDateDays < 0 || r.ValueDateDays > maxToleranceDays:
		return fmt.Errorf("value_date_days: want 0 to %d", maxToleranceDays)
	case r.SuggestDays < 0 || r.SuggestDays > maxToleranceDays:
		return fmt.Errorf("suggest_days: want 0 to %d", maxToleranceDays)
	case r.MissingAfterDays < 0 || r.MissingAfterDays > maxToleranceDays:
		return fmt.Errorf("missing_after_days: want 0 to %d", maxToleranceDays)
	}
	return nil
}

// RuleSet is the default rules and each bank's own, where a bank has them.
type RuleSet struct {
	Default Rules
	Banks   map[string]Rules
}

// For returns bank's rules.
func (s *RuleSet) For(bank string) Rules {
	if r, ok := s.Banks[bank]; ok {
		return r
	}
	return s.Default
}

//go:embed rules.json
var defaultRules []byte

// DefaultRules are the rules built in (reconcile/rules.json).
func DefaultRules() (*RuleSet, error) { return ReadRules(bytes.NewReader(defaultRules)) }

type rulesJSON struct {
	AmountTolerance  string `json:"amount_tolerance"`
	ValueDateDays    int    `json:"value_date_days"`
	SuggestDays      int    `json:"suggest_days"`
	MissingAfterDays int    `json:"missing_after_days"`
}

// ReadRules reads a rule set: {"default": {...}, "banks": {"BANK": {...}}}, each with
// amount_tolerance (a CNY amount), value_date_days, suggest_days and missing_after_days.
func ReadRules(r io.Reader) (*RuleSet, error) {
	var doc struct {
		Description string               `json:"description"`
		Default     *rulesJSON           `json:"default"`
		Banks       map[string]rulesJSON `json:"banks"`
	}
	dec := json.NewDecoder(io.LimitReader(r, maxRulesBytes))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&doc); err != nil {
		return nil, fmt.Errorf("reconciliation rules: %w", err)
	}
	if doc.Default == nil {
		return nil, fmt.Errorf("reconciliation rules: default: missing")
	}
	conv := func(where string, j rulesJSON) (Rules, error) {
		amount, err := ledger.ParseDecimal(j.AmountTolerance, "CNY")
		if err != nil {
			return Rules{}, fmt.Errorf("reconciliation rules: %s: amount_tolerance: %w", where, err)
		}
		r := Rules{AmountTolerance: amount, ValueDateDays: j.ValueDateDays, SuggestDays: j.SuggestDays, MissingAfterDays: j.MissingAfterDays}
		if err := r.validate(); err != nil {
			return Rules{}, fmt.Errorf("reconciliation rules: %s: %w", where, err)
		}
		return r, nil
	}
	set := &RuleSet{Banks: map[string]Rules{}}
	var err error
	if set.Default, err = conv("default", *doc.Default); err != nil {
		return nil, err
	}
	for bank, j := range doc.Banks {
		if set.Banks[bank], err = conv("banks."+bank, j); err != nil {
			return nil, err
		}
	}
	return set, nil
}

// maxRulesBytes bounds a rules file: a rule set for every bank of the mainland fits in it.
const maxRulesBytes = 1 << 20
