package postgres

import (
	"iter"
	"strings"
	"sync"

	"github.com/joinincard/engine/cards"
	"github.com/joinincard/engine/ledger"
)

// accountCacheBytes bounds the account cache's memory: an engine serving a city of a million
// cards keeps its whole resident memory under 1 GiB with this and cardCacheBytes (see serve's
// memory limit), and still holds every card's funds account, the one nearly every event
// touches, and the operators' and merchants'. Past it, entries are evicted one at a time, least
// recently used first (CLOCK), not cleared.
const accountCacheBytes = 176 << 20

// accountEntryBytes is what one cached balance costs, measured: its slot (key, ids, definition
// and balance in fixed-size fields, 104 bytes) and its index entry (an 18-byte key and a slot
// number, with the map's spare room).
const accountEntryBytes = 168

// maxCachedAccounts is how many balances fit in accountCacheBytes.
const maxCachedAccounts = accountCacheBytes / accountEntryBytes

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
	entries *clock[balanceKey, accountSlot]
	// currencies interns the accounts' currencies: a slot keeps a number, not a string.
	currencies interner
	// busy counts, per account, the writers retrying after a conflict that lock it: a batch
	// touching one of them takes the full path, locking, until they are done.
	busy map[ledger.ID]int
}

// accountSlot is a cached balance in fixed-size fields: no pointer, nothing for the collector
// to trace.
type accountSlot struct {
	id       ledger.ID
	shard    int16
	currency uint16
	kind     ledger.Kind
	flags    ledger.AccountFlags
	limit    int64
	balance  ledger.Balance
	version  int64
	ts       int64
}

func newAccountCache() *accountCache { return newAccountCacheOf(maxCachedAccounts) }

func newAccountCacheOf(capacity int) *accountCache {
	return &accountCache{entries: newClock[balanceKey, accountSlot](capacity), currencies: newInterner(), busy: make(map[ledger.ID]int)}
}

func (c *accountCache) entry(s *accountSlot) cachedAccount {
	return cachedAccount{account: ledger.Account{ID: s.id, Currency: ledger.Currency(c.currencies.name(s.currency)), Kind: s.kind,
		Flags: s.flags, Limit: s.limit, Balance: s.balance}, shard: s.shard, version: s.version, ts: s.ts}
}

// contend drops ids, every shard of them, and marks them busy: a writer locks them after a
// conflict, until it calls release with them.
func (c *accountCache) contend(ids []ledger.ID) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, id := range ids {
		for sh := int16(0); sh < balanceShards; sh++ {
			c.entries.delete(balanceKey{id, sh})
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
		if s, ok := c.entries.get(k); ok {
			fn(c.entry(s))
		} else if s, ok := c.entries.get(balanceKey{k.id, homeShard}); ok && k.shard != homeShard {
			if e := c.entry(s); !shardable(&e.account) {
				fn(e)
			} else {
				missing = append(missing, k)
			}
		} else {
			missing = append(missing, k)
		}
	}
	return missing
}

// put records committed balances. An entry older than the one cached is ignored: the committers
// of one process put after their commits in any order, and a later put of an earlier version
// must not hide a newer one.
func (c *accountCache) put(entries iter.Seq[cachedAccount]) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for e := range entries {
		if have, ok := c.entries.peek(e.key()); ok && have.version >= e.version {
			continue
		}
		cur, ok := c.currencies.intern(string(e.account.Currency))
		if !ok {
			c.entries.delete(e.key()) // more currencies than a slot can name: not cached
			continue
		}
		a := &e.account
		c.entries.put(e.key(), accountSlot{id: a.ID, shard: e.shard, currency: cur, kind: a.Kind, flags: a.Flags, limit: a.Limit,
			balance: a.Balance, version: e.version, ts: e.ts})
	}
}

// clear drops every entry.
func (c *accountCache) clear() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.entries.clear()
}

// forget drops entries that may be stale: after a conflict, or a commit whose outcome is unknown.
func (c *accountCache) forget(keys []balanceKey) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, k := range keys {
		c.entries.delete(k)
	}
}

// cardCacheBytes bounds the card cache's memory: with accountCacheBytes, an engine serving a
// city of a million cards keeps its resident memory under 1 GiB, and still holds every card.
// Past it, cards are evicted one at a time, least recently used first (CLOCK), not cleared.
const cardCacheBytes = 224 << 20

// cardEntryBytes is what one token costs in the card cache, measured with 25-byte tokens: its
// slot (the key, three token strings, two account ids, two interned names, 120 bytes), the
// index entry (the token's string and a slot number, with the map's spare room) and the token's
// text.
const cardEntryBytes = 208

// maxCachedCards is how many tokens fit in cardCacheBytes.
const maxCachedCards = cardCacheBytes / cardEntryBytes

// cardCache remembers the part of cards that deciding needs and that never changes, by each
// token that names them: accounts, issuer bank, city of insurance, device tokens. A card is
// never deleted and these never change, so the cache cannot go stale; status and permit, which
// do change, it does not keep, nor the holder's identity, which deciding does not read.
type cardCache struct {
	mu      sync.Mutex
	entries *clock[string, cardSlot]
	// names interns issuer banks and cities: a few dozen names for a million cards.
	names interner
}

// cardSlot is a cached card: its tokens, accounts, and its bank's and city's interned names.
type cardSlot struct {
	token, physical, digital string
	funds, medical           ledger.ID
	city, bank               uint16
}

func newCardCache() *cardCache { return newCardCacheOf(maxCachedCards) }

func newCardCacheOf(capacity int) *cardCache {
	return &cardCache{entries: newClock[string, cardSlot](capacity), names: newInterner()}
}

// get returns the card that tok names, with its status unknown (Declared empty).
func (c *cardCache) get(tok string) (cards.Card, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	s, ok := c.entries.get(tok)
	if !ok {
		return cards.Card{}, false
	}
	return cards.Card{Token: s.token, PhysicalToken: s.physical, DigitalToken: s.digital, InsuranceCity: c.names.name(s.city),
		IssuerBank: c.names.name(s.bank), FundsAccount: s.funds, MedicalAccount: s.medical}, true
}

// put remembers the immutable part of cards read from the database, under every token of each.
func (c *cardCache) put(cs []cards.Card) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i := range cs {
		card := &cs[i]
		city, ok1 := c.names.intern(card.InsuranceCity)
		bank, ok2 := c.names.intern(card.IssuerBank)
		if !ok1 || !ok2 {
			continue // more names than a slot can hold: not cached, read each time
		}
		if have, ok := c.entries.peek(card.Token); ok && have.token == card.Token {
			continue // cached already, and a card's cached part never changes
		}
		// Copies of their own: a token decoded from a message may share the message's buffer,
		// which the cache must not keep alive.
		s := cardSlot{token: strings.Clone(card.Token), physical: strings.Clone(card.PhysicalToken),
			digital: strings.Clone(card.DigitalToken), funds: card.FundsAccount, medical: card.MedicalAccount, city: city, bank: bank}
		c.entries.put(s.token, s)
		for _, tok := range []string{s.physical, s.digital} {
			if tok != "" && tok != s.token {
				c.entries.put(tok, s)
			}
		}
	}
}

// maxInterned bounds an interner: a slot names an interned string with 16 bits.
const maxInterned = 1 << 16

// interner gives each of a few distinct strings (currencies, banks, cities) a number, so that a
// cache slot keeps two bytes instead of a string.
type interner struct {
	names []string
	index map[string]uint16
}

func newInterner() interner { return interner{index: map[string]uint16{}} }

// intern returns s's number, false when the interner is full.
func (n *interner) intern(s string) (uint16, bool) {
	if i, ok := n.index[s]; ok {
		return i, true
	}
	if len(n.names) >= maxInterned {
		return 0, false
	}
	s = strings.Clone(s) // not a slice of a larger buffer the caller holds
	n.index[s] = uint16(len(n.names))
	n.names = append(n.names, s)
	return uint16(len(n.names) - 1), true
}

func (n *interner) name(i uint16) string { return n.names[i] }

// clock is a map of at most capacity entries that evicts by CLOCK: each entry has a bit set when
// it is read or written; the hand sweeps the slots, clearing set bits and evicting the first
// entry whose bit is clear. Recently used entries stay, and eviction costs one step at a time
// rather than a pause to drop half of everything.
type clock[K comparable, V any] struct {
	index    map[K]int32
	slots    []clockSlot[K, V]
	hand     int
	capacity int
}

type clockSlot[K comparable, V any] struct {
	key  K
	val  V
	used bool // holds an entry
	ref  bool // read or written since the hand last passed
}

// minClockSlots is the slots a clock first allocates: a store's caches start small.
const minClockSlots = 1024

func newClock[K comparable, V any](capacity int) *clock[K, V] {
	capacity = max(capacity, 1)
	return &clock[K, V]{index: map[K]int32{}, capacity: capacity}
}

// get returns k's value, marking it used.
func (c *clock[K, V]) get(k K) (*V, bool) {
	i, ok := c.index[k]
	if !ok {
		return nil, false
	}
	s := &c.slots[i]
	s.ref = true
	return &s.val, true
}

// peek returns k's value without marking it.
func (c *clock[K, V]) peek(k K) (*V, bool) {
	i, ok := c.index[k]
	if !ok {
		return nil, false
	}
	return &c.slots[i].val, true
}

// put sets k's value, evicting another entry when the cache is full.
func (c *clock[K, V]) put(k K, v V) {
	if i, ok := c.index[k]; ok {
		c.slots[i].val, c.slots[i].ref = v, true
		return
	}
	i := c.free()
	c.slots[i] = clockSlot[K, V]{key: k, val: v, used: true, ref: true}
	c.index[k] = int32(i)
}

// free returns a slot to fill: a new one while the cache is below its capacity, else the first
// unused or unmarked slot under the hand.
func (c *clock[K, V]) free() int {
	if len(c.slots) < c.capacity {
		if len(c.slots) == cap(c.slots) { // grown by hand, never past the capacity
			grown := make([]clockSlot[K, V], len(c.slots), min(max(2*cap(c.slots), minClockSlots), c.capacity))
			copy(grown, c.slots)
			c.slots = grown
		}
		c.slots = append(c.slots, clockSlot[K, V]{})
		return len(c.slots) - 1
	}
	for {
		i := c.hand
		c.hand = (c.hand + 1) % len(c.slots)
		s := &c.slots[i]
		switch {
		case !s.used:
			return i
		case s.ref:
			s.ref = false
		default:
			delete(c.index, s.key)
			*s = clockSlot[K, V]{}
			return i
		}
	}
}

// delete drops k.
func (c *clock[K, V]) delete(k K) {
	if i, ok := c.index[k]; ok {
		delete(c.index, k)
		c.slots[i] = clockSlot[K, V]{}
	}
}

// len is the number of entries held.
func (c *clock[K, V]) len() int { return len(c.index) }

// clear drops every entry.
func (c *clock[K, V]) clear() {
	clear(c.index)
	clear(c.slots)
	c.slots, c.hand = c.slots[:0], 0
}
