-- Transit clearing: operators and their API keys, the taps accepted from batches and from Kafka
-- (one tap whichever way it came), the answers given, the travel days priced and charged, and what
-- cards owe. Money is BIGINT fen. Journeys are not stored: the taps price them again, the same.

-- Operators registered for transit, each with a fare table in transit/fares and a clearing account
-- (a party of kind operator).
CREATE TABLE transit_operators (
    operator_id TEXT        PRIMARY KEY,
    name        TEXT        NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL
);

-- An operator's API keys, by the SHA-256 of the key: the key itself is shown once and never kept.
-- A key is 256 random bits, so a fast hash is as safe as a slow one.
CREATE TABLE transit_operator_keys (
    key_hash    BYTEA       PRIMARY KEY,
    operator_id TEXT        NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL
);

-- Every accepted tap, once: the key is the device's own identity, so the same device and sequence
-- from a batch and from Kafka is one tap. card_token is the card's own token, whichever token the
-- reader saw; travel_day is the operator's travel day of tapped_at.
CREATE TABLE transit_taps (
    operator_id TEXT        NOT NULL,
    device_id   TEXT        NOT NULL,
    device_seq  BIGINT      NOT NULL CHECK (device_seq >= 0),
    card_token  TEXT        NOT NULL,
    tapped_at   TIMESTAMPTZ NOT NULL,
    travel_day  DATE        NOT NULL,
    station_id  TEXT        NOT NULL,
    line        TEXT        NOT NULL,
    direction   TEXT        NOT NULL CHECK (direction IN ('in', 'out', 'single')),
    mode        TEXT        NOT NULL CHECK (mode IN ('metro', 'bus')),
    -- 'batch' with the operator's batch id, or 'kafka' with the event id
    source      TEXT        NOT NULL CHECK (source IN ('batch', 'kafka')),
    source_id   TEXT        NOT NULL,
    received_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (operator_id, device_id, device_seq)
);
-- the cards to charge when a travel day closes
CREATE INDEX transit_taps_day ON transit_taps (operator_id, travel_day, card_token);
-- a card's taps around the days being priced
CREATE INDEX transit_taps_card ON transit_taps (card_token, tapped_at);

-- Batches uploaded over HTTP, per operator and the operator's batch id, with the hash of the
-- request and the answer given: a replay gets the same answer, another body under the same id a
-- conflict. The answer is the per-tap results as JSON, exactly as first given.
CREATE TABLE transit_batches (
    operator_id  TEXT        NOT NULL,
    batch_id     TEXT        NOT NULL,
    request_hash BYTEA       NOT NULL,
    taps         INT         NOT NULL,
    accepted     INT         NOT NULL,
    duplicates   INT         NOT NULL,
    rejected     INT         NOT NULL,
    results      BYTEA       NOT NULL,
    received_at  TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (operator_id, batch_id)
);

-- The transit answer to each transit.tap event drained from the taps inbox (which the Kafka
-- consumer fills); the event itself is in processed_events.
CREATE TABLE transit_event_results (
    event_id    UUID        PRIMARY KEY,
    operator_id TEXT        NOT NULL,
    device_id   TEXT        NOT NULL,
    device_seq  BIGINT      NOT NULL,
    result      TEXT        NOT NULL CHECK (result IN ('accepted', 'duplicate', 'rejected')),
    reason      TEXT        NOT NULL,
    detail      TEXT        NOT NULL,
    decided_at  TIMESTAMPTZ NOT NULL
);

-- How far each pricing group's travel days are closed. closed_through moves first (taps for a day
-- at or before it are late, and mark their card's day for re-pricing); settled_through follows
-- once every card of the day is charged. Intake holds the row FOR SHARE while it decides, so a
-- day closes only after the taps being decided for it have committed.
CREATE TABLE transit_groups (
    group_key       TEXT PRIMARY KEY,
    closed_through  DATE,
    settled_through DATE,
    updated_at      TIMESTAMPTZ NOT NULL
);

-- One card's travel day at one operator: what it is priced at now, what the ledger has moved for
-- it (charges less refunds), and what the card owes when a charge failed for lack of funds. These
-- rows are the working state of clearing; the money itself is only ever in transfers.
CREATE TABLE transit_days (
    card_token  TEXT        NOT NULL,
    operator_id TEXT        NOT NULL,
    travel_day  DATE        NOT NULL,
    priced      BIGINT      NOT NULL CHECK (priced >= 0),
    cap_counted BIGINT      NOT NULL CHECK (cap_counted >= 0),
    cap_credit  BIGINT      NOT NULL CHECK (cap_credit >= 0),
    journeys    INT         NOT NULL,
    paid        BIGINT      NOT NULL CHECK (paid >= 0),
    owed        BIGINT      NOT NULL CHECK (owed >= 0),
    owed_since  TIMESTAMPTZ,
    -- postings made for the day: the next posting's transfer id derives from it
    revision    INT         NOT NULL CHECK (revision >= 0),
    updated_at  TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (card_token, operator_id, travel_day),
    CHECK ((owed > 0) = (owed_since IS NOT NULL))
);
-- the deny list: cards with an unpaid day
CREATE INDEX transit_days_owed ON transit_days (card_token) WHERE owed > 0;

-- Every posting for a travel day, as the ledger created it: the day's fare, then adjustments (a
-- negative amount is a refund from the operator to the card). Never changed.
CREATE TABLE transit_postings (
    transfer_id UUID        PRIMARY KEY,
    card_token  TEXT        NOT NULL,
    operator_id TEXT        NOT NULL,
    travel_day  DATE        NOT NULL,
    revision    INT         NOT NULL,
    amount      BIGINT      NOT NULL CHECK (amount <> 0),
    code        INT         NOT NULL,
    posted_at   TIMESTAMPTZ NOT NULL,
    UNIQUE (card_token, operator_id, travel_day, revision)
);
CREATE TRIGGER transit_postings_immutable BEFORE UPDATE OR DELETE ON transit_postings
    FOR EACH ROW EXECUTE FUNCTION refuse_history_change();

-- Cards whose closed travel days a late tap changed, waiting to be re-priced.
CREATE TABLE transit_reprice (
    card_token TEXT        NOT NULL,
    group_key  TEXT        NOT NULL,
    travel_day DATE        NOT NULL,
    marked_at  TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (card_token, group_key, travel_day)
);

-- The Kafka inbox is drained oldest first.
CREATE INDEX taps_received ON taps (received_at, event_id);
