package postgres

import (
	"sync"

	"github.com/joinincard/engine/cards"
	"github.com/joinincard/engine/events"
	"github.com/joinincard/engine/ledger"
)

// maxCachedAccounts bounds the account cache: a city's active cards, operators and merchants
// (about 100 bytes each, so ~100 MiB at the bound). Past it, half the entries are dropped.
const maxCachedAccounts = 1 << 20

// cachedAccount is an account as of a committed balance version of one of its shards: for an
// account whose balance is sharded by writer (balanceShards), the balance is that shard's.
type cachedAccount struct {
	account ledger.Account
	shard   int16
	version int64
	ts      int64 // the version's time, Unix microseconds
}

func (e cachedAccount) key() balanceKey { return balanceKey{e.account.ID, e.shard} }

// balanceKey names one shard of an account's balance history.
type balanceKey struct {
	id    ledger.ID
	shard int16
}

// accountCache remembers the balances this process committed, so that a batch need not read
// them back. It is only a guess: a batch built on a stale entry writes a balance version that
// another writer already took, collides on the key, and is retried without the cache. So the
// cache can make a batch slower, never wrong.
type accountCache struct {
	mu      sync.Mutex
	entries map[balanceKey]cachedAccount
	// busy counts, per account, the writers retrying after a conflict that lock it: a batch
	// touching one of them takes the full path, locking, until they are done.
	busy map[ledger.ID]int
}

func newAccountCache() *accountCache {
	return &accountCache{entries: make(map[balanceKey]cachedAccount), busy: make(map[ledger.ID]int)}
}

// contend drops ids, every shard of them, and marks them busy: a writer locks them after a
// conflict, until it calls release with them.
func (c *accountCache) contend(ids []ledger.ID) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, id := range ids {
		for sh := int16(0); sh < balanceShards; sh++ {
			delete(c.entries, balanceKey{id, sh})
		}
		c.busy[id]++
	}
}

// release ends what contend began.
func (c *accountCache) release(ids []ledger.ID) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, id := range ids {
		if c.busy[id] <= 1 {
			delete(c.busy, id)
		} else {
			c.busy[id]--
		}
	}
}

// contended reports whether the batch names an account marked busy.
func (c *accountCache) contended(batch []ledger.Transfer) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.busy) == 0 {
		return false
	}
	for i := range batch {
		_, d := c.busy[batch[i].DebitAccountID]
		_, cr := c.busy[batch[i].CreditAccountID]
		if d || cr {
			return true
		}
	}
	return false
}

// get copies the cached entries of keys into fn and returns the keys it did not have. An account
// that is never sharded (it has a balance constraint) is found at its home shard whatever shard
// the key asks for.
func (c *accountCache) get(keys []balanceKey, fn func(cachedAccount)) (missing []balanceKey) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, k := range keys {
		if e, ok := c.entries[k]; ok {
			fn(e)
		} else if e, ok := c.entries[balanceKey{k.id, homeShard}]; ok && k.shard != homeShard && !shardable(&e.account) {
			fn(e)
		} else {
			missing = append(missing, k)
		}
	}
	return missing
}

// put records committed balances. An entry older than the one cached is ignored: the committers
// of one process put after their commits in any order, and a later put of an earlier version
// must not hide a newer one.
func (c *accountCache) put(entries []cachedAccount) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.entries)+len(entries) > maxCachedAccounts {
		drop := len(c.entries) / 2
		for id := range c.entries { // map order is random: a random half goes
			if drop == 0 {
				break
			}
			delete(c.entries, id)
			drop--
		}
	}
	for _, e := range entries {
		if have, ok := c.entries[e.key()]; ok && have.version >= e.version {
			continue
		}
		c.entries[e.key()] = e
	}
}

// clear drops every entry.
func (c *accountCache) clear() {
	c.mu.Lock()
	defer c.mu.Unlock()
	clear(c.entries)
}

// forget drops entries that may be stale: after a conflict, or a commit whose outcome is unknown.
func (c *accountCache) forget(keys []balanceKey) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, k := range keys {
		delete(c.entries, k)
	}
}

// maxCachedCards bounds the card cache: a city's cards, about 300 bytes each (~300 MiB at the
// bound). Past it, half the entries are dropped.
const maxCachedCards = 1 << 20

// cardCache remembers the immutable part of cards, by each token that names them: accounts,
// issuer bank, city of insurance, device tokens. A card is never deleted and these never change,
// so the cache cannot go stale; status and permit, which do change, it does not keep.
type cardCache struct {
	mu      sync.Mutex
	entries map[string]cards.Card
}

func newCardCache() *cardCache { return &cardCache{entries: make(map[string]cards.Card)} }

// get returns the card that tok names, with its status unknown (Declared empty).
func (c *cardCache) get(tok string) (cards.Card, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	card, ok := c.entries[tok]
	return card, ok
}

// put remembers the immutable part of cards read from the database, under every token of each.
func (c *cardCache) put(cs []cards.Card) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.entries)+3*len(cs) > maxCachedCards {
		drop := len(c.entries) / 2
		for tok := range c.entries { // map order is random: a random half goes
			if drop == 0 {
				break
			}
			delete(c.entries, tok)
			drop--
		}
	}
	for _, card := range cs {
		card.Declared, card.StatusReason, card.PermitValidUntil = "", "", events.Date{}
		for _, tok := range card.Tokens() {
			c.entries[tok] = card
		}
	}
}
