package postgres

import (
	"context"

	"github.com/jackc/pgx/v5"

	"github.com/joinincard/engine/ledger"
	"github.com/joinincard/engine/settlement"
	"github.com/joinincard/engine/transit"
)

// SetAfterFix makes s call f once a cycle's end is fixed, before its items are written.
func SetAfterFix(s *Settlement, f func(settlement.Date)) { s.afterFix = f }

// SetBeforeSettledMark makes s call f once a travel day's cards are charged, before the day is
// marked settled.
func SetBeforeSettledMark(s *Store, f func(group string, d transit.Day)) { s.beforeSettledMark = f }

// CardsLookup is the cards lookup of a batch that names authorizations, for the plan test.
var CardsLookup = authorizationCardsLookup

// The hot paths' lookups, for the plan test.
const (
	IdempotencyLookup  = idempotencyLookup
	CustomPlans        = customPlans
	ProcessedLookup    = processedLookup
	TransfersLookup    = transfersLookup
	TapsSeenLookup     = tapsSeenLookup
	StatusLookup       = statusLookup
	ExpiredHoldsLookup = expiredHoldsLookup
	TapsDrainClaim     = tapsDrainClaim
	RepriceClaim       = repriceClaim
	SuggestItemsLookup = suggestItemsLookup
	MaxDrainTaps       = maxDrainTaps
	MaxRepriceMarks    = maxRepriceMarks
)

// RepriceSpans is repriceSpans: each span's days, and the day left marked for the next pass.
func RepriceSpans(g *transit.Group, marked []transit.Day, closed transit.Day) (spans [][]transit.Day, rest []transit.Day) {
	for _, sp := range repriceSpans(g, marked, closed) {
		spans = append(spans, sp.days)
		if sp.rest != nil {
			rest = append(rest, *sp.rest)
		}
	}
	return spans, rest
}

// SetAfterEntries makes r call f once an import has read the statement's entries, in its
// transaction: an error from f fails the attempt.
func SetAfterEntries(r *Reconciler, f func() error) { r.afterEntries = f }

// Retryable marks err as a conflict the store retries the whole transaction for, as it does a
// serialization failure.
func Retryable(err error) error { return conflictError{err} }

// SetTransfersFault makes each attempt of tr's commits call f with its batch, in its transaction,
// before the batch is applied and after (applied): an error from f fails the attempt as a value
// the database refused, or a conflict (Retryable), would.
func SetTransfersFault(tr *Transfers, f func(batch []ledger.Transfer, applied bool) error) {
	tr.fault = f
}

// QueuedTransfers is how many transfers wait in tr's queue, not yet taken into a commit.
func QueuedTransfers(tr *Transfers) int { return int(tr.queued.Load()) }

// MaxQueuedTransfers is the bound of tr's queue, in transfers.
const MaxQueuedTransfers = maxQueuedTransfers

// SetBeforeCommit makes p call f in each attempt's transaction once its batch is decided and
// written, before it commits.
func SetBeforeCommit(p *Purchases, f func(reqs []PurchaseRequest)) {
	p.beforeCommit = func(_ context.Context, _ pgx.Tx, reqs []PurchaseRequest) { f(reqs) }
}

// SetBeforeCommitTx is SetBeforeCommit with the attempt's transaction.
func SetBeforeCommitTx(p *Purchases, f func(ctx context.Context, tx pgx.Tx, reqs []PurchaseRequest)) {
	p.beforeCommit = f
}

// SetAfterLoad has p call f in each attempt's transaction once its lookups are read.
func SetAfterLoad(p *Purchases, f func(ctx context.Context, tx pgx.Tx)) {
	p.afterLoad = f
}

// InLazyTx runs fn in a transaction whose BEGIN goes with its first batch (lazyTx), retried as
// the store's transactions are.
func InLazyTx(ctx context.Context, s *Store, fn func(context.Context, pgx.Tx) error) error {
	return s.retryTx(ctx, "lazy transaction", true, func(ctx context.Context, tx pgx.Tx, _ int) error { return fn(ctx, tx) })
}

// PurchaseStats are how many of p's attempts waited for the commit in flight before sending their
// writes, and how many of its transactions sent their COMMIT in a round trip of its own.
func PurchaseStats(p *Purchases) (awaited, commitsApart int64) {
	return p.stats.awaited.Load(), p.stats.commitsApart.Load()
}

// NarrowCodes is narrowCodes: the event types recorded narrow when applied, with their codes.
var NarrowCodes = narrowCodes
