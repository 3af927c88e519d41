package postgres

import (
	"fmt"
	"testing"

	"github.com/joinincard/engine/purchases"
)

// The committer's kept clearing account of a merchant is the one its id derives, however many
// merchants it has kept, past its bound too.
func TestMerchantAccountKept(t *testing.T) {
	c := &merchantCache{byKey: map[[32]byte]cachedMerchant{}}
	for i := range maxCachedMerchants + 10 {
		id := fmt.Sprintf("shop-%d", i%(maxCachedMerchants+5))
		m := purchases.Merchant{ID: id}
		if got, want := c.account(id), m.Account(); got != want {
			t.Fatalf("merchant %s: kept account %s, want %s", id, got, want)
		}
	}
	if n := len(c.accounts); n > maxCachedMerchants {
		t.Errorf("%d accounts kept, past the bound of %d", n, maxCachedMerchants)
	}
}
