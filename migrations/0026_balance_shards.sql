-- Balance rows sharded by writer for the accounts that only receive. An account without a balance
-- constraint (an operator's, a merchant's, a bank's settlement position, fee income, a fund: flags
-- 0) has nothing a batch could refuse for its balance, so concurrent writers need not agree on one
-- total: each writer extends a shard of its own, shard n's version k+1 after its version k, and
-- the account's balance is the sum of every shard's newest row. A writer that takes another's
-- shard still collides on the key and retries, as before: sharding can only spare conflicts,
-- never lose one.
--
-- Shard 0 is the account's home: its opening balance, every account with a constraint (a
-- cardholder's funds, a personal medical account: their limit is checked on one exact total),
-- and every change to pending amounts (a hold placed, posted, voided, expired: a hold is resolved
-- on the shard that holds it). The other shards hold posted amounts only. The engine writes
-- shards 0 to 31 (postgres.balanceShards).
ALTER TABLE account_balances ADD COLUMN shard INT NOT NULL DEFAULT 0 CHECK (shard >= 0 AND shard < 32);
ALTER TABLE account_balances DROP CONSTRAINT account_balances_pkey,
    ADD CONSTRAINT account_balances_pkey PRIMARY KEY (account_id, shard, version);
