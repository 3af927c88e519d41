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

// SetAfterEntries makes r call f once an import has read the statement's entries, in its
// transaction: an error from f fails the attempt.
func SetAfterEntries(r *Reconciler, f func() error) { r.afterEntries = f }

// Retryable marks err as a conflict the store retries the whole transaction for, as it does a
// serialization failure.
func Retryable(err error) error { return conflictError{err} }
