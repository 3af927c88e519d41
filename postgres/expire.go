package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/joinincard/engine/ledger"
)

const (
	// expiryCursor names the sweep's horizon: every hold that expires before it is resolved.
	expiryCursor = "ledger/expiry"
	// expiryHorizonLag keeps the horizon behind the clock by more than a batch can take between
	// stamping its time and committing, and more than writers' clocks may disagree, so a hold
	// committed late is still ahead of the horizon when the sweep looks for it.
	expiryHorizonLag = time.Minute
)

// ExpireHolds releases up to limit holds whose timeout has passed and returns how many it
// expired. Each expiry is a new transfer (ExpirePending) in one batch with the sweep's horizon,
// so two sweepers never expire a hold twice and a hold posted or voided meanwhile is left alone.
// Call it until it returns fewer than limit.
func (s *Store) ExpireHolds(ctx context.Context, limit int) (int, error) {
	if limit <= 0 || limit > ledger.MaxBatchTransfers {
		limit = ledger.MaxBatchTransfers
	}
	horizon, err := s.Cursor(ctx, expiryCursor)
	if err != nil {
		return 0, err
	}
	now := s.Now().UTC()
	rows, err := s.pool.Query(ctx, `SELECT t.id, t.code, t.expires_at FROM transfers t
		WHERE t.expires_at >= $1 AND t.expires_at <= $2
		  AND NOT EXISTS (SELECT 1 FROM transfer_resolutions r WHERE r.target_id = t.id)
		ORDER BY t.expires_at LIMIT $3`, time.UnixMicro(horizon).UTC(), now, limit)
	if err != nil {
		return 0, fmt.Errorf("find expired holds: %w", err)
	}
	var (
		batch []ledger.Transfer
		last  time.Time
	)
	for rows.Next() {
		var (
			id   uuid.UUID
			code int32
		)
		if err := rows.Scan(&id, &code, &last); err != nil {
			rows.Close()
			return 0, fmt.Errorf("find expired holds: %w", err)
		}
		tid, err := uuid.NewV7()
		if err != nil {
			rows.Close()
			return 0, fmt.Errorf("new transfer id: %w", err)
		}
		batch = append(batch, ledger.Transfer{ID: ledger.ID(tid), Ref: ledger.ID(id), Code: ledger.Code(code), Flags: ledger.ExpirePending})
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, fmt.Errorf("find expired holds: %w", err)
	}
	next := now.Add(-expiryHorizonLag)
	if len(batch) == limit && last.Before(next) {
		next = last // more may expire at the same instant: look again from there
	}
	if next.UnixMicro() <= horizon && len(batch) == 0 {
		return 0, nil
	}
	cur := &Cursor{Name: expiryCursor, From: horizon, To: max(horizon, next.UnixMicro())}
	res, err := s.CommitBatch(ctx, batch, cur)
	if errors.Is(err, ErrCursorMoved) {
		return 0, nil // another sweeper ran at the same time and did this work
	}
	if err != nil {
		return 0, fmt.Errorf("expire holds: %w", err)
	}
	n := 0
	for _, r := range res.Results {
		if r == ledger.Created {
			n++
		}
	}
	return n, nil
}
