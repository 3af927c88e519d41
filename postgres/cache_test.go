package postgres

import (
	"fmt"
	"slices"
	"testing"

	"github.com/joinincard/engine/cards"
	"github.com/joinincard/engine/ledger"
)

// Several committers of one process put after their commits in any order: a put of an older
// balance version must never replace a newer one.
func TestAccountCachePutIsMonotonic(t *testing.T) {
	c := newAccountCache()
	id := ledger.ID{1}
	entry := func(version int64, credits int64) cachedAccount {
		return cachedAccount{account: ledger.Account{ID: id, Balance: ledger.Balance{CreditsPosted: credits}}, version: version}
	}
	c.put(slices.Values([]cachedAccount{entry(5, 500)}))
	c.put(slices.Values([]cachedAccount{entry(3, 300)})) // a committer that finished earlier puts later
	c.put(slices.Values([]cachedAccount{entry(5, 999)})) // the same version again changes nothing
	var got []cachedAccount
	if missing := c.get([]balanceKey{{id, 0}}, func(e cachedAccount) { got = append(got, e) }); len(missing) != 0 {
		t.Fatalf("missing %v", missing)
	}
	if len(got) != 1 || got[0].version != 5 || got[0].account.CreditsPosted != 500 {
		t.Fatalf("cached %+v, want version 5 with 500 credited", got)
	}
	c.put(slices.Values([]cachedAccount{entry(6, 600)}))
	got = got[:0]
	c.get([]balanceKey{{id, 0}}, func(e cachedAccount) { got = append(got, e) })
	if got[0].version != 6 {
		t.Fatalf("cached version %d after a newer put, want 6", got[0].version)
	}
	c.forget([]balanceKey{{id, 0}})
	if missing := c.get([]balanceKey{{id, 0}}, func(cachedAccount) {}); len(missing) != 1 {
		t.Fatalf("a forgotten entry is still cached")
	}
}

// An account a retrying writer contends stays busy, and out of the cache, until every writer
// that contended it has released it.
func TestAccountCacheContendedUntilReleased(t *testing.T) {
	c := newAccountCache()
	a, b := ledger.ID{1}, ledger.ID{2}
	c.put(slices.Values([]cachedAccount{{account: ledger.Account{ID: a}, version: 3}}))
	batch := []ledger.Transfer{{DebitAccountID: b, CreditAccountID: a}}
	if c.contended(batch) {
		t.Fatal("contended before anyone contended")
	}
	c.contend([]ledger.ID{a})
	c.contend([]ledger.ID{a}) // a second writer retrying at the same account
	if !c.contended(batch) || !c.contended([]ledger.Transfer{{DebitAccountID: a, CreditAccountID: b}}) {
		t.Fatal("a contended account is not reported, on either side of a transfer")
	}
	if missing := c.get([]balanceKey{{a, homeShard}}, func(cachedAccount) {}); len(missing) != 1 {
		t.Fatal("a contended account is still cached")
	}
	c.release([]ledger.ID{a})
	if !c.contended(batch) {
		t.Fatal("released by one of two writers, no longer contended")
	}
	c.release([]ledger.ID{a})
	if c.contended(batch) {
		t.Fatal("released by both, still contended")
	}
}

// A balance row's shard and version go into the checkpoints' digest as one word: a home-shard
// row hashes as a row did before balances were sharded, and no two (shard, version) pairs in
// range share a word.
func TestShardVersionWord(t *testing.T) {
	for _, v := range []int64{1, 2, 1 << 40, 1<<shardVersionBits - 1} {
		if got := shardVersion(homeShard, v); got != v {
			t.Errorf("home shard version %d: word %d", v, got)
		}
	}
	seen := map[int64][2]int64{}
	for s := int32(0); s < balanceShards; s++ {
		for _, v := range []int64{1, 2, 3, 1<<shardVersionBits - 1} {
			w := shardVersion(s, v)
			if prev, ok := seen[w]; ok {
				t.Fatalf("shard %d version %d and shard %d version %d share word %d", s, v, prev[0], prev[1], w)
			}
			seen[w] = [2]int64{int64(s), v}
		}
	}
}

// A full cache evicts one entry at a time, never more than it holds, and keeps the entries read
// since the hand last passed them.
func TestClockEvictsOneAtATimeKeepingRecentlyUsed(t *testing.T) {
	c := newClock[int, int](4)
	for i := range 4 {
		c.put(i, i*10)
	}
	// The hand clears every mark on its first sweep and evicts 0; 1 is then read again.
	c.put(4, 40)
	if _, ok := c.get(0); ok || c.len() != 4 {
		t.Fatalf("after a put past the capacity: 0 still cached or %d entries", c.len())
	}
	c.get(1)
	c.put(5, 50)
	if _, ok := c.peek(1); !ok {
		t.Fatal("an entry read since the hand passed was evicted")
	}
	if _, ok := c.peek(2); ok {
		t.Fatal("the unmarked entry under the hand was kept")
	}
	for i := 6; i < 100; i++ {
		c.put(i, i)
		if c.len() > 4 || len(c.slots) > 4 {
			t.Fatalf("%d entries in %d slots, capacity 4", c.len(), len(c.slots))
		}
	}
	c.delete(99)
	if _, ok := c.get(99); ok {
		t.Fatal("deleted entry found")
	}
}

// The card cache answers by every token of a card, and keeps only what deciding reads: never the
// holder's identity or a status.
func TestCardCacheKeepsOnlyTheImmutableDecidingPart(t *testing.T) {
	c := newCardCacheOf(10)
	card := cards.Card{Token: "card-1", PhysicalToken: "phys-1", DigitalToken: "dig-1", HolderName: "A Holder",
		PassportToken: "pp", IssuerBank: "BANK-A", InsuranceCity: "hangzhou", Declared: "blocked",
		FundsAccount: ledger.ID{1}, MedicalAccount: ledger.ID{2}}
	c.put([]cards.Card{card})
	for _, tok := range []string{"card-1", "phys-1", "dig-1"} {
		got, ok := c.get(tok)
		if !ok {
			t.Fatalf("%s not cached", tok)
		}
		want := cards.Card{Token: "card-1", PhysicalToken: "phys-1", DigitalToken: "dig-1", IssuerBank: "BANK-A",
			InsuranceCity: "hangzhou", FundsAccount: ledger.ID{1}, MedicalAccount: ledger.ID{2}}
		if got != want {
			t.Fatalf("by %s: %+v, want %+v", tok, got, want)
		}
	}
	for i := range 30 { // past the capacity: bounded, still answering for what it holds
		c.put([]cards.Card{{Token: fmt.Sprintf("c-%d", i), IssuerBank: "BANK-A", InsuranceCity: "hangzhou"}})
	}
	if c.entries.len() > 10 {
		t.Fatalf("%d tokens cached, capacity 10", c.entries.len())
	}
}

// Balances of accounts whose definitions differ come back as they were put, currency included.
func TestAccountCacheRoundTrip(t *testing.T) {
	c := newAccountCacheOf(8)
	a := ledger.Account{ID: ledger.ID{7}, Currency: "CNY", Kind: ledger.KindFeeIncome, Flags: 1, Limit: 42,
		Balance: ledger.Balance{DebitsPosted: 1, CreditsPosted: 2, DebitsPending: 3, CreditsPending: 4}}
	c.put(slices.Values([]cachedAccount{{account: a, shard: homeShard, version: 9, ts: 11}}))
	var got []cachedAccount
	// A constrained account (flags set) is never sharded: asked at another shard, the home one answers.
	if missing := c.get([]balanceKey{{a.ID, 3}}, func(e cachedAccount) { got = append(got, e) }); len(missing) != 0 {
		t.Fatalf("missing %v", missing)
	}
	if len(got) != 1 || got[0].account != a || got[0].version != 9 || got[0].ts != 11 {
		t.Fatalf("got %+v, want %+v", got, a)
	}
}
