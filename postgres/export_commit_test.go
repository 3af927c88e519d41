package postgres

import (
	"context"

	"github.com/jackc/pgx/v5"
)

// CardsByTokenLookup is the cards lookup of a batch that names no authorization, for the plan test.
var CardsByTokenLookup = authorizationCardsByToken

// BeginLazy starts a transaction whose BEGIN goes with its first batch, as the purchase
// committer's do.
func BeginLazy(ctx context.Context, s *Store) (pgx.Tx, error) { return s.beginLazy(ctx) }

// PinnedPlans are the settings the usual purchase commit looks its cards up under.
var PinnedPlans = pinnedPlans
