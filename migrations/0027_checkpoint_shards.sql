-- Verification checkpoints per balance shard (migration 0026). A checkpoint's cut is, per account
-- and shard, the newest balance version of that shard stamped before the day's end; each shard is
-- a version chain of its own, so a checkpoint keeps one row per shard the day changed, and an
-- account's balance at a cut is the sum over its shards of each shard's newest checkpoint row at
-- or before that day. The rows written before this migration are all of the home shard, 0.
ALTER TABLE verify_checkpoint_balances ADD COLUMN shard INT NOT NULL DEFAULT 0 CHECK (shard >= 0 AND shard < 32);
ALTER TABLE verify_checkpoint_balances DROP CONSTRAINT verify_checkpoint_balances_pkey,
    ADD CONSTRAINT verify_checkpoint_balances_pkey PRIMARY KEY (account_id, shard, day);
ALTER TABLE verify_provisional_balances ADD COLUMN shard INT NOT NULL DEFAULT 0 CHECK (shard >= 0 AND shard < 32);
ALTER TABLE verify_provisional_balances DROP CONSTRAINT verify_provisional_balances_pkey,
    ADD CONSTRAINT verify_provisional_balances_pkey PRIMARY KEY (account_id, shard, day);
