package postgres

import (
	"context"
	"fmt"

	"github.com/joinincard/engine/clearing"
)

// maxBankList bounds a listing of banks: the mainland has about 4,600 banking institutions, and
// every one of them fits.
const maxBankList = 5000

// Banks lists the registered banks with their names as registered (Chinese, English or both), in
// id order, at most maxBankList.
func (s *Store) Banks(ctx context.Context) ([]Party, error) {
	rows, err := s.pool.Query(ctx, `SELECT account_id, party_id, name FROM parties WHERE kind = 'bank' ORDER BY party_id LIMIT $1`,
		maxBankList)
	if err != nil {
		return nil, fmt.Errorf("list banks: %w", err)
	}
	defer rows.Close()
	var out []Party
	for rows.Next() {
		p := Party{Kind: clearing.PartyBank}
		var account [16]byte
		if err := rows.Scan(&account, &p.ID, &p.Name); err != nil {
			return nil, fmt.Errorf("list banks: %w", err)
		}
		p.Account = account
		out = append(out, p)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list banks: %w", err)
	}
	return out, nil
}
