package postgres

import "github.com/joinincard/engine/settlement"

// SetAfterFix makes s call f once a cycle's end is fixed, before its items are written.
func SetAfterFix(s *Settlement, f func(settlement.Date)) { s.afterFix = f }

// The hot paths' lookups, for the plan test.
const (
	IdempotencyLookup  = idempotencyLookup
	ProcessedLookup    = processedLookup
	TransfersLookup    = transfersLookup
	TapsSeenLookup     = tapsSeenLookup
	ExpiredHoldsLookup = expiredHoldsLookup
)
