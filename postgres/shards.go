package postgres

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"

	"github.com/joinincard/engine/ledger"
)

// Balance shards. An account without a balance constraint (operators, merchants, banks'
// settlement positions, fee income, funds) only receives as far as any batch is concerned: no
// result depends on its balance. Its balance history is kept in shards, each writer extending
// its own, and its balance is the sum of every shard's newest row; writers of different shards
// never touch the same key, so several engines crediting one merchant do not collide. An
// account with a constraint (a cardholder's funds, a personal medical account) keeps its whole
// history in the home shard, where its limit is checked on the one exact total.
//
// Which shard a writer takes decides only whether it contends, never what it writes: each
// shard is a history of its own, version n+1 written after reading version n, and two writers
// that pick the same shard collide on the key and one retries, as two writers of one account
// always did.
const (
	// balanceShards bounds the shards of an account: the account's balance is read as the sum of
	// this many newest rows at most. The migration's CHECK holds the same bound.
	balanceShards = 32
	// homeShard holds an account's opening balance, everything of an account with a constraint,
	// and every change to an account's pending amounts: a hold is placed, posted, voided and
	// expired on one shard, so its pending amount is never taken from a shard that lacks it.
	homeShard = 0
	// consumerShards are the shards of the consumer's batches, one per partition (wrapping past
	// fifteen partitions): partitions belong to one process at a time, so the engines of one
	// consumer group write disjoint shards.
	firstConsumerShard = 1
	consumerShards     = 15
	// leasedShards are the shards of every other writer (authorizations, the expiry sweep,
	// transit, medical, the transfers API, settlement): a transaction leases one no other
	// transaction of this process holds, the one released last first, so that a process keeps
	// to the few shards it uses and two processes, starting at random ones, rarely meet.
	firstLeasedShard = firstConsumerShard + consumerShards
	leasedShards     = balanceShards - firstLeasedShard
	// shardCeiling is the most either side of one shard of an account that may be sharded may
	// total: the balance is the sum of up to balanceShards shards, and that sum must fit int64
	// however the writers spread it. 288,230,376,151,711,743 fen, 2.88e15 CNY, a shard.
	shardCeiling = math.MaxInt64 / balanceShards
)

// shardable reports whether a's balance may be sharded by writer: no batch can refuse a transfer
// for its balance.
func shardable(a *ledger.Account) bool { return a.Flags == 0 }

// consumerShard is the shard of a batch that advances cursors: its first cursor's partition's.
// A cursor named without a partition number (not a Kafka partition) hashes to one.
func consumerShard(cursors []Cursor) int16 {
	name := cursors[0].Name
	n, err := strconv.ParseUint(name[strings.LastIndexByte(name, '/')+1:], 10, 32)
	if err != nil {
		var h uint64 = 14695981039346656037 // FNV-1a
		for i := 0; i < len(name); i++ {
			h = (h ^ uint64(name[i])) * 1099511628211
		}
		n = h
	}
	return int16(firstConsumerShard + n%consumerShards)
}

// shardLeases hands out the leased shards of one process.
type shardLeases struct {
	mu   sync.Mutex
	free []int16 // the one released last at the end
}

func newShardLeases() *shardLeases {
	l := &shardLeases{}
	for _, i := range rand.Perm(leasedShards) {
		l.free = append(l.free, int16(firstLeasedShard+i))
	}
	return l
}

// lease returns a shard no other transaction of this process holds; with every one held, a
// random one, which is still correct, only contended.
func (l *shardLeases) lease() int16 {
	l.mu.Lock()
	defer l.mu.Unlock()
	if n := len(l.free); n > 0 {
		s := l.free[n-1]
		l.free = l.free[:n-1]
		return s
	}
	return int16(firstLeasedShard + rand.IntN(leasedShards))
}

// release gives a leased shard back.
func (l *shardLeases) release(s int16) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.free) < leasedShards && !containsShard(l.free, s) {
		l.free = append(l.free, s)
	}
}

func containsShard(ss []int16, s int16) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

// summedBalance is a LATERAL subquery of account a's balance: the newest row of each of its
// shards (at or before the instant the SQL expression at names, if not empty) summed. version
// counts the rows, one per batch that changed the balance plus the opening, as an unsharded
// history's newest version does; ts is the newest row's time. An account with a constraint has
// only its home shard, read alone. Before the account was opened every column is NULL.
func summedBalance(at string) string {
	cond := ""
	if at != "" {
		cond = " AND b.ts <= " + at
	}
	return fmt.Sprintf(`(SELECT sum(s.version) AS version, max(s.ts) AS ts,
			sum(s.debits_pending) AS debits_pending, sum(s.debits_posted) AS debits_posted,
			sum(s.credits_pending) AS credits_pending, sum(s.credits_posted) AS credits_posted
		FROM generate_series(0, CASE WHEN a.flags = 0 THEN %d ELSE %d END) AS g(shard)
		CROSS JOIN LATERAL (SELECT b.version, b.ts, b.debits_pending, b.debits_posted, b.credits_pending, b.credits_posted
			FROM account_balances b WHERE b.account_id = a.id AND b.shard = g.shard%s
			ORDER BY b.version DESC LIMIT 1) s)`, balanceShards-1, homeShard, cond)
}
