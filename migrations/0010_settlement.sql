-- Settlement: daily cycles, each bank's items and net position, the files banks receive and
-- their acknowledgements. Money is BIGINT fen. Items, files and acknowledgements are history:
-- written once; a cycle's row records how far its close has come.

-- Cycles are found by the time of their transfers: a transfer's batch time places it in a cycle.
-- Batches of one time share one entry.
CREATE INDEX transfers_ts ON transfers (ts);

-- Cards by their accounts: a cycle's movements name accounts, the bank that settles a card's
-- money is on the card.
CREATE INDEX cards_funds_account ON cards (funds_account_id);
CREATE INDEX cards_medical_account ON cards (medical_account_id);

-- The bank that settles a party's clearing account: a merchant's acquiring bank, a transit
-- operator's or an insurance fund's bank. A change takes effect at the next cycle's close.
CREATE TABLE party_banks (
    account_id UUID        PRIMARY KEY,
    bank_id    TEXT        NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL
);

-- The end of the last cycle closed. Every ledger batch reads it under a shared lock before it
-- stamps its time, and stamps after it; closing a cycle moves it under an exclusive lock, which
-- waits for the batches under way. So a transfer stamped within a cycle committed before the
-- cycle closed, and one that commits after is stamped into the next: each belongs to one cycle.
CREATE TABLE settlement_gate (
    id             INT         PRIMARY KEY CHECK (id = 1),
    closed_through TIMESTAMPTZ NOT NULL
);
INSERT INTO settlement_gate (id, closed_through) VALUES (1, '1970-01-01 00:00:00+00');

-- A settlement day: the transfers stamped after starts_after and up to ends_at. A cycle is
-- 'closing' from the moment its end is fixed until its items, postings and files are all written.
CREATE TABLE settlement_cycles (
    cycle_date       DATE        PRIMARY KEY,
    starts_after     TIMESTAMPTZ NOT NULL,
    ends_at          TIMESTAMPTZ NOT NULL,
    value_date       DATE        NOT NULL,
    status           TEXT        NOT NULL CHECK (status IN ('closing', 'closed')),
    items_written    BOOLEAN     NOT NULL,
    postings_written BOOLEAN     NOT NULL,
    fee_income       BIGINT      NOT NULL,
    closing_at       TIMESTAMPTZ NOT NULL,
    closed_at        TIMESTAMPTZ
);

-- One line of a bank's settlement: an account's amount in a cycle, signed from the bank's point
-- of view (positive: the bank receives). The id is also the settlement posting's transfer id.
-- bank_id '' is an item held because its party has no settlement bank yet.
CREATE TABLE settlement_items (
    item_id            UUID        PRIMARY KEY,
    cycle_date         DATE        NOT NULL,
    bank_id            TEXT        NOT NULL,
    account_id         UUID        NOT NULL,
    counter_account_id UUID        NOT NULL,
    kind               TEXT        NOT NULL,
    party              TEXT        NOT NULL,
    party_name         TEXT        NOT NULL,
    amount             BIGINT      NOT NULL CHECK (amount <> 0),
    transit            BIGINT      NOT NULL,
    purchases          BIGINT      NOT NULL,
    medical            BIGINT      NOT NULL,
    fees               BIGINT      NOT NULL,
    entries            BIGINT      NOT NULL CHECK (entries > 0),
    reoffers           UUID
);
CREATE INDEX settlement_items_bank ON settlement_items (cycle_date, bank_id, item_id);
CREATE INDEX settlement_items_reoffers ON settlement_items (reoffers) WHERE reoffers IS NOT NULL;

-- One file per bank per cycle, numbered per bank without gaps, with the checksums of its two
-- formats: regenerating it must give the same bytes.
CREATE TABLE settlement_files (
    bank_id     TEXT        NOT NULL,
    cycle_date  DATE        NOT NULL,
    sequence    BIGINT      NOT NULL CHECK (sequence > 0),
    message_id  TEXT        NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL,
    entries     BIGINT      NOT NULL,
    control_sum BIGINT      NOT NULL,
    net         BIGINT      NOT NULL,
    xml_sha256  TEXT        NOT NULL,
    xml_size    BIGINT      NOT NULL,
    csv_sha256  TEXT        NOT NULL,
    csv_size    BIGINT      NOT NULL,
    PRIMARY KEY (bank_id, cycle_date),
    UNIQUE (bank_id, sequence),
    UNIQUE (message_id)
);

-- When a bank first fetched each format of a file: every later fetch is a duplicate copy.
CREATE TABLE settlement_file_fetches (
    bank_id    TEXT        NOT NULL,
    cycle_date DATE        NOT NULL,
    format     TEXT        NOT NULL CHECK (format IN ('xml', 'csv')),
    fetched_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (bank_id, cycle_date, format)
);

-- A bank's acknowledgement of its file: once per file; the same report again is a replay.
CREATE TABLE settlement_acks (
    bank_id     TEXT        NOT NULL,
    cycle_date  DATE        NOT NULL,
    message_id  TEXT        NOT NULL,
    status      TEXT        NOT NULL CHECK (status IN ('accepted', 'rejected', 'partial')),
    body_sha256 TEXT        NOT NULL,
    received_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (bank_id, cycle_date)
);

-- What a bank said of each item. A rejected item's money went back to clearing by return_id
-- (its posting reversed), and the item is offered again in the next cycle.
CREATE TABLE settlement_item_results (
    item_id     UUID        PRIMARY KEY,
    bank_id     TEXT        NOT NULL,
    cycle_date  DATE        NOT NULL,
    accepted    BOOLEAN     NOT NULL,
    reason_code TEXT        NOT NULL,
    reason      TEXT        NOT NULL,
    return_id   UUID,
    decided_at  TIMESTAMPTZ NOT NULL
);
CREATE INDEX settlement_item_results_rejected ON settlement_item_results (cycle_date) WHERE NOT accepted;

-- Banks' API keys, by the SHA-256 of the key: the key itself is shown once.
CREATE TABLE bank_keys (
    key_hash   BYTEA       PRIMARY KEY CHECK (length(key_hash) = 32),
    bank_id    TEXT        NOT NULL,
    created_at TIMESTAMPTZ NOT NULL
);

CREATE TRIGGER settlement_items_immutable BEFORE UPDATE OR DELETE ON settlement_items
    FOR EACH ROW EXECUTE FUNCTION refuse_history_change();
CREATE TRIGGER settlement_files_immutable BEFORE UPDATE OR DELETE ON settlement_files
    FOR EACH ROW EXECUTE FUNCTION refuse_history_change();
CREATE TRIGGER settlement_acks_immutable BEFORE UPDATE OR DELETE ON settlement_acks
    FOR EACH ROW EXECUTE FUNCTION refuse_history_change();
CREATE TRIGGER settlement_item_results_immutable BEFORE UPDATE OR DELETE ON settlement_item_results
    FOR EACH ROW EXECUTE FUNCTION refuse_history_change();
