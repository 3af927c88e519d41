package clearing

import (
	"fmt"
	"sync"
	"testing"

	"github.com/joinincard/engine/cards"
)

// TestPartyAccountIsTheDerivedID checks that a remembered party account is the id the derivation
// gives, on first and later calls, from several goroutines at once, and that past the bound the
// ids are still derived but no longer remembered.
func TestPartyAccountIsTheDerivedID(t *testing.T) {
	kinds := PartyKinds()
	const goroutines = 4
	n := maxPartyAccounts + 1000 // past the bound
	var wg sync.WaitGroup
	errs := make(chan string, goroutines)
	for g := range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range n {
				// Each goroutine walks the ids in its own order, twice over the first ones.
				j := (i*(g+1) + g) % n
				kind := kinds[j%len(kinds)]
				id := fmt.Sprintf("party-%d", j)
				if got, want := PartyAccount(kind, id), cards.AccountID(string(kind), id); got != want {
					errs <- fmt.Sprintf("%s %s: %s, derived %s", kind, id, got, want)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
	partyAccounts.RLock()
	size := len(partyAccounts.ids)
	partyAccounts.RUnlock()
	if size > maxPartyAccounts {
		t.Errorf("%d party accounts remembered, more than the bound %d", size, maxPartyAccounts)
	}
	// A remembered id is still the derived one.
	if got, want := PartyAccount(PartyMerchant, "party-1"), cards.AccountID(string(PartyMerchant), "party-1"); got != want {
		t.Errorf("merchant party-1: %s, derived %s", got, want)
	}
}

// BenchmarkPartyAccount measures the id lookup every purchase, tap and settlement makes for its
// parties, beside the derivation it spares.
func BenchmarkPartyAccount(b *testing.B) {
	b.Run("remembered", func(b *testing.B) {
		for b.Loop() {
			PartyAccount(PartyMerchant, "m-000123")
		}
	})
	b.Run("derived", func(b *testing.B) {
		for b.Loop() {
			cards.AccountID(string(PartyMerchant), "m-000123")
		}
	})
}
