package postgres

import (
	"context"
	"fmt"

	"github.com/google/uuid"

	"github.com/joinincard/engine/ledger"
)

// expiredHoldsLookup reads the open holds past their timeout, oldest first: a range of the
// queue's expiry index, however many holds are open.
const expiredHoldsLookup = `SELECT o.transfer_id, t.code FROM open_holds o JOIN transfers t ON t.id = o.transfer_id
	WHERE o.expires_at <= $1 ORDER BY o.expires_at LIMIT $2`

// ExpireHolds releases up to limit holds whose timeout has passed and returns how many it
// expired. The holds come from open_holds, the queue of open holds with a timeout; each expiry is
// a new transfer (ExpirePending). Two sweepers never expire a hold twice, and a hold posted or
// voided meanwhile is left alone, and leaves the queue: a hold is resolved once, whoever asks.
// Call it until it returns fewer than limit.
func (s *Store) ExpireHolds(ctx context.Context, limit int) (int, error) {
	if limit <= 0 || limit > ledger.MaxBatchTransfers {
		limit = ledger.MaxBatchTransfers
	}
	rows, err := s.pool.Query(ctx, expiredHoldsLookup, s.Now().UTC(), limit)
	if err != nil {
		return 0, fmt.Errorf("find expired holds: %w", err)
	}
	var batch []ledger.Transfer
	for rows.Next() {
		var (
			id   uuid.UUID
			code int32
		)
		if err := rows.Scan(&id, &code); err != nil {
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
	if len(batch) == 0 {
		return 0, nil
	}
	var res BatchResult
	err = s.InTx(ctx, nil, func(ctx context.Context, tx *Tx) error {
		var err error
		if res, err = tx.Apply(ctx, batch); err != nil {
			return err
		}
		// A hold found resolved was left queued (by a batch that placed and resolved it, before
		// such batches kept it out): it leaves the queue, rather than come first at every sweep.
		var resolved []uuid.UUID
		for i, r := range res.Results {
			if r == ledger.PendingAlreadyResolved {
				resolved = append(resolved, uuid.UUID(batch[i].Ref))
			}
		}
		if len(resolved) == 0 {
			return nil
		}
		if _, err := tx.Exec(ctx, `DELETE FROM open_holds WHERE transfer_id = ANY($1)`, resolved); err != nil {
			return fmt.Errorf("drop resolved holds from the queue: %w", err)
		}
		return nil
	})
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
