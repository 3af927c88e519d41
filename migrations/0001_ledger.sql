-- The double-entry ledger: accounts, their balance history, transfers, and the resolutions of holds
-- and reversals. Money is BIGINT minor units (fen for CNY).

-- An account's definition. Its balance lives in account_balances.
CREATE TABLE accounts (
    id            UUID        PRIMARY KEY,
    currency      TEXT        NOT NULL CHECK (char_length(currency) = 3),
    kind          TEXT        NOT NULL,
    flags         INT         NOT NULL CHECK (flags >= 0),
    balance_limit BIGINT      NOT NULL CHECK (balance_limit >= 0),
    name          TEXT        NOT NULL,
    created_at    TIMESTAMPTZ NOT NULL
);

-- One row per account per batch that changed it: the balance after that batch and the transfers
-- of that batch that moved it. The newest version is the current balance; the newest at or before
-- an instant is the balance at that instant; the rows of a period, with their transfers, are the
-- account's statement. A writer inserts version n+1 after reading version n, so two writers racing
-- for one account collide on the primary key and one of them retries: no locks, no updates.
-- Listing transfer ids here, rather than indexing transfers by account, keeps a transfer's write
-- to one index entry: the statement costs a join at read time instead of two index inserts per
-- transfer at write time.
CREATE TABLE account_balances (
    account_id      UUID        NOT NULL,
    version         BIGINT      NOT NULL CHECK (version > 0),
    ts              TIMESTAMPTZ NOT NULL,
    debits_pending  BIGINT      NOT NULL CHECK (debits_pending >= 0),
    debits_posted   BIGINT      NOT NULL CHECK (debits_posted >= 0),
    credits_pending BIGINT      NOT NULL CHECK (credits_pending >= 0),
    credits_posted  BIGINT      NOT NULL CHECK (credits_posted >= 0),
    transfer_ids    UUID[]      NOT NULL,
    PRIMARY KEY (account_id, version)
);

-- Every transfer ever applied. ids are UUIDv7, so inserts land at the right edge of the key.
CREATE TABLE transfers (
    id                UUID        PRIMARY KEY,
    debit_account_id  UUID        NOT NULL,
    credit_account_id UUID        NOT NULL,
    amount            BIGINT      NOT NULL CHECK (amount > 0),
    ref_id            UUID,
    user_data         UUID,
    timeout_seconds   BIGINT      NOT NULL CHECK (timeout_seconds >= 0),
    code              INT         NOT NULL CHECK (code >= 0),
    flags             INT         NOT NULL CHECK (flags >= 0),
    ts                TIMESTAMPTZ NOT NULL,
    -- set for holds with a timeout; the expiry sweep walks it in order
    expires_at        TIMESTAMPTZ
);

CREATE INDEX transfers_expires_at ON transfers (expires_at) WHERE expires_at IS NOT NULL;

-- A hold is posted, voided or expired once, and a transfer is reversed once: the primary key makes
-- a second resolution impossible even for a concurrent writer.
CREATE TABLE transfer_resolutions (
    target_id   UUID        PRIMARY KEY,
    transfer_id UUID        NOT NULL,
    kind        TEXT        NOT NULL CHECK (kind IN ('posted', 'voided', 'expired', 'reversed')),
    ts          TIMESTAMPTZ NOT NULL
);

-- A consumer's position (a Kafka partition's next offset, the expiry sweep's horizon), written in
-- the same transaction as the transfers it produced.
CREATE TABLE cursors (
    name       TEXT        PRIMARY KEY,
    position   BIGINT      NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL
);

-- History is immutable: corrections are new transfers, never edits.
CREATE FUNCTION refuse_history_change() RETURNS TRIGGER LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'ledger history is immutable: % on % refused', TG_OP, TG_TABLE_NAME;
END;
$$;

CREATE TRIGGER transfers_immutable BEFORE UPDATE OR DELETE ON transfers
    FOR EACH ROW EXECUTE FUNCTION refuse_history_change();
CREATE TRIGGER transfer_resolutions_immutable BEFORE UPDATE OR DELETE ON transfer_resolutions
    FOR EACH ROW EXECUTE FUNCTION refuse_history_change();
CREATE TRIGGER account_balances_immutable BEFORE UPDATE OR DELETE ON account_balances
    FOR EACH ROW EXECUTE FUNCTION refuse_history_change();
