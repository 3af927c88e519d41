-- Partial refunds of medical settlements: each gives back part of a settled bill to the fund, the
-- personal medical account and the card's funds, in proportion, by its own ledger transfers (the
-- settlement's are never touched), and takes its share off the cardholder's yearly accumulators.
-- The institution's refund id is the idempotency key within its settlement.
CREATE TABLE medical_refunds (
    id                     UUID        PRIMARY KEY,
    settlement_id          UUID        NOT NULL,
    refund_ref             TEXT        NOT NULL,
    request_hash           BYTEA       NOT NULL,
    reason                 TEXT        NOT NULL,
    fund_city              TEXT        NOT NULL,
    institution_id         TEXT        NOT NULL,
    business_day           DATE        NOT NULL,
    refunded_at            TIMESTAMPTZ NOT NULL,
    amount                 BIGINT      NOT NULL CHECK (amount > 0),
    fund_part              BIGINT      NOT NULL CHECK (fund_part >= 0),
    personal_part          BIGINT      NOT NULL CHECK (personal_part >= 0),
    cash_part              BIGINT      NOT NULL CHECK (cash_part >= 0),
    fund_transfer_id       UUID,
    personal_transfer_id   UUID,
    cash_transfer_id       UUID,
    accumulated            JSONB       NOT NULL,
    personal_balance_after BIGINT      NOT NULL,
    funds_available_after  BIGINT      NOT NULL,
    CHECK (fund_part + personal_part + cash_part = amount),
    CHECK ((fund_part = 0) = (fund_transfer_id IS NULL)),
    CHECK ((personal_part = 0) = (personal_transfer_id IS NULL)),
    CHECK ((cash_part = 0) = (cash_transfer_id IS NULL)),
    UNIQUE (settlement_id, refund_ref)
);
-- The fund's reconciliation counts a day's refunds by fund and institution.
CREATE INDEX medical_refunds_day ON medical_refunds (fund_city, business_day, institution_id);

CREATE TRIGGER medical_refunds_immutable BEFORE UPDATE OR DELETE ON medical_refunds
    FOR EACH ROW EXECUTE FUNCTION refuse_history_change();

-- The accumulators' history names refunds and stays' true-ups too. The check was created without
-- a name, which PostgreSQL and CockroachDB spell differently: drop either, then name it.
ALTER TABLE medical_accumulators DROP CONSTRAINT IF EXISTS medical_accumulators_change_check;
ALTER TABLE medical_accumulators DROP CONSTRAINT IF EXISTS check_change;
ALTER TABLE medical_accumulators ADD CONSTRAINT medical_accumulators_change
    CHECK (change IN ('settled', 'cancelled', 'reversed', 'refunded', 'trued_up'));
