-- Card events consumed from Kafka, the card registry, and the parties the engine books for.

-- Banks, merchants, transit operators and insurance funds, each with its ledger account. The
-- account id derives from (kind, party_id), so it is the key batches look parties up by.
CREATE TABLE parties (
    account_id UUID        PRIMARY KEY,
    kind       TEXT        NOT NULL CHECK (kind IN ('bank', 'merchant', 'operator', 'insurance_fund')),
    party_id   TEXT        NOT NULL,
    name       TEXT        NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    UNIQUE (kind, party_id)
);

-- The card registry. Personal numbers are HMAC tokens and masked forms only.
CREATE TABLE cards (
    card_token          TEXT        PRIMARY KEY,
    physical_token      TEXT        NOT NULL,
    digital_token       TEXT        NOT NULL,
    holder_name         TEXT        NOT NULL,
    nationality         TEXT        NOT NULL,
    passport_token      TEXT        NOT NULL,
    passport_masked     TEXT        NOT NULL,
    ssn_token           TEXT        NOT NULL,
    ssn_masked          TEXT        NOT NULL,
    permit_token        TEXT        NOT NULL,
    permit_masked       TEXT        NOT NULL,
    permit_valid_until  DATE        NOT NULL,
    insurance_city      TEXT        NOT NULL,
    issuer_bank         TEXT        NOT NULL,
    bank_account_token  TEXT        NOT NULL,
    bank_account_masked TEXT        NOT NULL,
    card_number_masked  TEXT        NOT NULL,
    declared_status     TEXT        NOT NULL CHECK (declared_status IN ('active', 'blocked', 'closed')),
    status_reason       TEXT        NOT NULL,
    funds_account_id    UUID        NOT NULL,
    medical_account_id  UUID        NOT NULL,
    created_at          TIMESTAMPTZ NOT NULL,
    updated_at          TIMESTAMPTZ NOT NULL
);

-- Every token that names a card (its own, its physical card's, its phone's) maps to the card.
CREATE TABLE card_tokens (
    token      TEXT PRIMARY KEY,
    card_token TEXT NOT NULL
);

-- Every event decided, by its id: a redelivery with the same hash is a duplicate, with another
-- hash a conflict. Written in the batch's transaction, with the batch's cursor.
CREATE TABLE processed_events (
    event_id      UUID        PRIMARY KEY,
    hash          BYTEA       NOT NULL,
    type          TEXT        NOT NULL,
    status        TEXT        NOT NULL CHECK (status IN ('applied', 'accepted', 'rejected')),
    reason        TEXT        NOT NULL,
    transfer_id   UUID,
    source        TEXT        NOT NULL,
    source_offset BIGINT      NOT NULL,
    processed_at  TIMESTAMPTZ NOT NULL
);

-- Messages that could not be applied, with their original bytes, waiting to be relayed to the
-- dead-letter topic (an outbox: written with the batch, relayed after it commits).
CREATE TABLE dead_letters (
    source        TEXT        NOT NULL,
    source_offset BIGINT      NOT NULL,
    event_id      UUID,
    kind          TEXT        NOT NULL CHECK (kind IN ('malformed', 'conflict', 'rejected')),
    reason        TEXT        NOT NULL,
    payload       BYTEA       NOT NULL,
    created_at    TIMESTAMPTZ NOT NULL,
    relayed_at    TIMESTAMPTZ,
    PRIMARY KEY (source, source_offset)
);
CREATE INDEX dead_letters_unrelayed ON dead_letters (created_at) WHERE relayed_at IS NULL;

-- Transit taps awaiting transit clearing.
CREATE TABLE taps (
    event_id    UUID        PRIMARY KEY,
    card_token  TEXT        NOT NULL,
    operator_id TEXT        NOT NULL,
    device_id   TEXT        NOT NULL,
    device_seq  BIGINT      NOT NULL,
    tapped_at   TIMESTAMPTZ NOT NULL,
    station_id  TEXT        NOT NULL,
    line        TEXT        NOT NULL,
    direction   TEXT        NOT NULL,
    mode        TEXT        NOT NULL,
    received_at TIMESTAMPTZ NOT NULL
);

CREATE TRIGGER processed_events_immutable BEFORE UPDATE OR DELETE ON processed_events
    FOR EACH ROW EXECUTE FUNCTION refuse_history_change();
