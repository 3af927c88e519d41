-- Purchases at merchants: merchants with their API keys, authorizations with their increments,
-- captures and voids, refunds, the idempotency keys of merchants' requests, and per-card limits.
-- Money is BIGINT fen. Every table but merchants and card_limits is history: written once.

-- A merchant is a party of kind merchant (its clearing account is the party's) with what
-- authorizations need. Only the SHA-256 of its API key is kept; the key is shown once.
CREATE TABLE merchants (
    merchant_id    TEXT        PRIMARY KEY,
    account_id     UUID        NOT NULL UNIQUE,
    name           TEXT        NOT NULL,
    mcc            TEXT        NOT NULL CHECK (char_length(mcc) = 4),
    city           TEXT        NOT NULL,
    acquiring_bank TEXT        NOT NULL,
    fee_plan       TEXT        NOT NULL,
    key_hash       BYTEA       NOT NULL UNIQUE CHECK (length(key_hash) = 32),
    created_at     TIMESTAMPTZ NOT NULL,
    key_rotated_at TIMESTAMPTZ NOT NULL
);

-- Every authorization decided, approved or declined. An approved one's id is its hold's transfer
-- id. card_token is the card's own token, '' when no card had the token the request named.
CREATE TABLE purchase_authorizations (
    authorization_id UUID        PRIMARY KEY,
    merchant_id      TEXT        NOT NULL,
    card_token       TEXT        NOT NULL,
    funds_account_id UUID,
    mcc              TEXT        NOT NULL,
    amount           BIGINT      NOT NULL CHECK (amount >= 0),
    approved         BOOLEAN     NOT NULL,
    decline_reason   TEXT        NOT NULL,
    decline_detail   TEXT        NOT NULL,
    expires_at       TIMESTAMPTZ,
    created_at       TIMESTAMPTZ NOT NULL,
    CHECK (approved = (decline_reason = '')),
    CHECK (approved = (expires_at IS NOT NULL))
);
-- A merchant's authorizations, newest first (ids are UUIDv7); a card's approvals of a day.
CREATE INDEX purchase_authorizations_merchant ON purchase_authorizations (merchant_id, authorization_id);
CREATE INDEX purchase_authorizations_card ON purchase_authorizations (card_token, created_at) WHERE approved;

-- Increments of authorizations, approved (with a hold whose transfer id is the increment's) or
-- declined.
CREATE TABLE purchase_increments (
    increment_id     UUID        PRIMARY KEY,
    authorization_id UUID        NOT NULL,
    card_token       TEXT        NOT NULL,
    amount           BIGINT      NOT NULL CHECK (amount >= 0),
    approved         BOOLEAN     NOT NULL,
    decline_reason   TEXT        NOT NULL,
    decline_detail   TEXT        NOT NULL,
    created_at       TIMESTAMPTZ NOT NULL,
    CHECK (approved = (decline_reason = ''))
);
CREATE INDEX purchase_increments_authorization ON purchase_increments (authorization_id);
CREATE INDEX purchase_increments_card ON purchase_increments (card_token, created_at) WHERE approved;

-- The capture or void of an authorization: one per authorization, by the primary key, whichever
-- of the API and a clearing record comes first. event_id is the purchase.cleared event of a
-- capture that came from clearing. The foreign_* columns are what the capture would have cost on
-- a foreign card.
CREATE TABLE purchase_closes (
    authorization_id   UUID        PRIMARY KEY,
    close_id           UUID        NOT NULL UNIQUE,
    kind               TEXT        NOT NULL CHECK (kind IN ('captured', 'voided')),
    merchant_id        TEXT        NOT NULL,
    card_token         TEXT        NOT NULL,
    amount             BIGINT      NOT NULL CHECK (amount >= 0),
    released           BIGINT      NOT NULL CHECK (released >= 0),
    fee_mdr            BIGINT      NOT NULL CHECK (fee_mdr >= 0),
    fee_network        BIGINT      NOT NULL CHECK (fee_network >= 0),
    foreign_surcharge  BIGINT      NOT NULL CHECK (foreign_surcharge >= 0),
    foreign_fx_margin  BIGINT      NOT NULL CHECK (foreign_fx_margin >= 0),
    event_id           UUID        UNIQUE,
    created_at         TIMESTAMPTZ NOT NULL
);
CREATE INDEX purchase_closes_card ON purchase_closes (card_token) WHERE kind = 'captured';

-- Refunds of captured purchases. A refund writes sequence n+1 after reading n, with the running
-- total: two writers refunding one purchase at once collide on the key and one retries, so the
-- total never passes what was captured. foreign_* is the foreign-card cost of what remains.
CREATE TABLE purchase_refunds (
    authorization_id     UUID        NOT NULL,
    seq                  INT         NOT NULL CHECK (seq > 0),
    refund_id            UUID        NOT NULL UNIQUE,
    merchant_id          TEXT        NOT NULL,
    amount               BIGINT      NOT NULL CHECK (amount > 0),
    refunded_total       BIGINT      NOT NULL CHECK (refunded_total >= amount),
    fee_mdr_returned     BIGINT      NOT NULL CHECK (fee_mdr_returned >= 0),
    fee_network_returned BIGINT      NOT NULL CHECK (fee_network_returned >= 0),
    foreign_surcharge    BIGINT      NOT NULL CHECK (foreign_surcharge >= 0),
    foreign_fx_margin    BIGINT      NOT NULL CHECK (foreign_fx_margin >= 0),
    transfer_id          UUID        NOT NULL,
    event_id             UUID        UNIQUE,
    created_at           TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (authorization_id, seq)
);

-- Merchants' idempotency keys: the request's hash and what it made, so that a retry gets the
-- same answer and a different body under the same key is refused.
CREATE TABLE purchase_requests (
    merchant_id     TEXT        NOT NULL,
    idempotency_key UUID        NOT NULL,
    operation       TEXT        NOT NULL CHECK (operation IN ('authorize', 'increment', 'capture', 'void', 'refund')),
    request_hash    BYTEA       NOT NULL CHECK (length(request_hash) = 32),
    result_id       UUID        NOT NULL,
    created_at      TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (merchant_id, idempotency_key)
);

-- Limits the issuer set on a card; a card without a row has the program's defaults.
CREATE TABLE card_limits (
    card_token      TEXT        PRIMARY KEY,
    per_transaction BIGINT      NOT NULL CHECK (per_transaction > 0),
    per_day         BIGINT      NOT NULL CHECK (per_day >= per_transaction),
    updated_at      TIMESTAMPTZ NOT NULL
);

CREATE TRIGGER purchase_authorizations_immutable BEFORE UPDATE OR DELETE ON purchase_authorizations
    FOR EACH ROW EXECUTE FUNCTION refuse_history_change();
CREATE TRIGGER purchase_increments_immutable BEFORE UPDATE OR DELETE ON purchase_increments
    FOR EACH ROW EXECUTE FUNCTION refuse_history_change();
CREATE TRIGGER purchase_closes_immutable BEFORE UPDATE OR DELETE ON purchase_closes
    FOR EACH ROW EXECUTE FUNCTION refuse_history_change();
CREATE TRIGGER purchase_refunds_immutable BEFORE UPDATE OR DELETE ON purchase_refunds
    FOR EACH ROW EXECUTE FUNCTION refuse_history_change();
CREATE TRIGGER purchase_requests_immutable BEFORE UPDATE OR DELETE ON purchase_requests
    FOR EACH ROW EXECUTE FUNCTION refuse_history_change();
