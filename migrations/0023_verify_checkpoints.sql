-- Verified checkpoints: what `joinin verify` proved about each closed day, so that the next run
-- checks only what came after. A day's checkpoint is written in the transaction that verified it.
--
-- The cut of a day is, per account, the newest balance version stamped before the day's end (the
-- next midnight in Asia/Shanghai). Versions of one account are stamped in increasing time and every
-- batch's rows carry one time, so a cut never splits a batch: a transfer's two balance rows are both
-- in it or both after it. A batch stamped before the end that commits after the checkpoint (a slow
-- transaction) gets versions past the cut and is verified with what follows.
--
-- A checkpoint is trusted only while the history before it is unchanged. The history tables
-- (transfers, transfer_resolutions, account_balances) refuse UPDATE and DELETE by trigger, and each
-- checkpoint carries a digest of its day's history chained to the day before, which
-- `joinin verify --full` recomputes from the rows and compares.

-- One row per verified day. A day with no transfer and no account opened gets none: the next
-- checkpoint covers it.
CREATE TABLE verify_checkpoints (
    day          DATE        PRIMARY KEY,
    ends_at      TIMESTAMPTZ NOT NULL,
    -- the accounts, transfers and balance versions up to the cut, all days together
    accounts     BIGINT      NOT NULL CHECK (accounts >= 0),
    transfers    BIGINT      NOT NULL CHECK (transfers >= 0),
    balance_rows BIGINT      NOT NULL CHECK (balance_rows >= 0),
    -- holds with a timeout placed up to the cut and not resolved up to it
    open_holds   BIGINT      NOT NULL CHECK (open_holds >= 0),
    -- SHA-256 of the previous day's digest and of this day's balance versions, transfers and
    -- resolutions, in key order
    digest       BYTEA       NOT NULL CHECK (length(digest) = 32),
    verified_at  TIMESTAMPTZ NOT NULL
);

-- The balance at the cut of each account that changed during the day: versions from_version+1 to
-- version are the day's. An account's balance at a day's cut is its row of the newest checkpoint
-- at or before that day (zero, version 0, if it has none).
CREATE TABLE verify_checkpoint_balances (
    account_id      UUID   NOT NULL,
    day             DATE   NOT NULL,
    from_version    BIGINT NOT NULL CHECK (from_version >= 0),
    version         BIGINT NOT NULL CHECK (version > from_version),
    debits_pending  BIGINT NOT NULL,
    debits_posted   BIGINT NOT NULL,
    credits_pending BIGINT NOT NULL,
    credits_posted  BIGINT NOT NULL,
    PRIMARY KEY (account_id, day)
);
CREATE INDEX verify_checkpoint_balances_day ON verify_checkpoint_balances (day);

-- The balances at "now" of an incremental check after the newest checkpoint, written in its
-- transaction to be checked as a checkpoint's are, and always rolled back: empty, but for a check
-- under way.
CREATE TABLE verify_provisional_balances (
    account_id      UUID   NOT NULL,
    day             DATE   NOT NULL,
    from_version    BIGINT NOT NULL CHECK (from_version >= 0),
    version         BIGINT NOT NULL CHECK (version > from_version),
    debits_pending  BIGINT NOT NULL,
    debits_posted   BIGINT NOT NULL,
    credits_pending BIGINT NOT NULL,
    credits_posted  BIGINT NOT NULL,
    PRIMARY KEY (account_id, day)
);

-- The trial balance at the cut, per currency.
CREATE TABLE verify_checkpoint_totals (
    day             DATE   NOT NULL,
    currency        TEXT   NOT NULL,
    debits_pending  BIGINT NOT NULL,
    debits_posted   BIGINT NOT NULL,
    credits_pending BIGINT NOT NULL,
    credits_posted  BIGINT NOT NULL,
    PRIMARY KEY (day, currency)
);

-- The resolutions after a checkpoint are found by time, as its transfers are (transfers_ts).
CREATE INDEX transfer_resolutions_ts ON transfer_resolutions (ts);
-- The refunds of a checkpoint's segment are found by their transfers.
CREATE INDEX cleared_refunds_transfer ON cleared_refunds (transfer_id);

CREATE TRIGGER verify_checkpoints_immutable BEFORE UPDATE OR DELETE ON verify_checkpoints
    FOR EACH ROW EXECUTE FUNCTION refuse_history_change();
CREATE TRIGGER verify_checkpoint_balances_immutable BEFORE UPDATE OR DELETE ON verify_checkpoint_balances
    FOR EACH ROW EXECUTE FUNCTION refuse_history_change();
CREATE TRIGGER verify_checkpoint_totals_immutable BEFORE UPDATE OR DELETE ON verify_checkpoint_totals
    FOR EACH ROW EXECUTE FUNCTION refuse_history_change();
