package http

import (
	"github.com/joinincard/engine/ledger"
	"github.com/joinincard/engine/purchases"
)

// dailyLimitOver reads a daily limit that purchases.ParseAmount refused with err: one above a
// payment's bound (purchases.MaxAmount) is a daily limit all the same, bounded by
// purchases.MaxDailyLimit, which Limits.Validate checks. Any other refusal stands.
func dailyLimitOver(s string, err error) (int64, error) {
	fen, lerr := ledger.ParseAmount(s, purchases.Currency)
	if lerr != nil || fen <= purchases.MaxAmount {
		return 0, err
	}
	return fen, nil
}
