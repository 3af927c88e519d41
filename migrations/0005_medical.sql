-- Medical settlements: the designated institutions, each settlement's split between the pooled
-- insurance fund, the personal medical account and cash, its cancellation or reversal, and each
-- cardholder's yearly accumulators. Money is BIGINT fen.

-- A designated hospital or pharmacy: a registered merchant (parties) with its medical attributes
-- and the SHA-256 of its API key. The key itself is shown once, when issued, and never stored.
CREATE TABLE medical_institutions (
    merchant_id    TEXT        PRIMARY KEY,
    account_id     UUID        NOT NULL,
    kind           TEXT        NOT NULL CHECK (kind IN ('hospital', 'pharmacy')),
    tier           INT         NOT NULL CHECK (tier BETWEEN 1 AND 3),
    city           TEXT        NOT NULL,
    key_hash       BYTEA       NOT NULL CHECK (length(key_hash) = 32),
    created_at     TIMESTAMPTZ NOT NULL,
    key_issued_at  TIMESTAMPTZ NOT NULL
);
CREATE UNIQUE INDEX medical_institutions_key ON medical_institutions (key_hash);

-- One row per settlement, never changed: what was asked (items, request hash), under which policy,
-- how it split, the three transfers, and the card's balances after. The institution's own
-- settlement id is the idempotency key; the same id with another request is refused.
CREATE TABLE medical_settlements (
    id                     UUID        PRIMARY KEY,
    institution_id         TEXT        NOT NULL,
    settlement_ref         TEXT        NOT NULL,
    request_hash           BYTEA       NOT NULL,
    card_token             TEXT        NOT NULL,
    funds_account_id       UUID        NOT NULL,
    medical_account_id     UUID        NOT NULL,
    institution_account_id UUID        NOT NULL,
    fund_city              TEXT        NOT NULL,
    policy_id              TEXT        NOT NULL,
    policy_name            TEXT        NOT NULL,
    policy_year            INT         NOT NULL,
    visit_kind             TEXT        NOT NULL CHECK (visit_kind IN ('outpatient', 'inpatient', 'pharmacy')),
    tier                   INT         NOT NULL CHECK (tier BETWEEN 1 AND 3),
    business_day           DATE        NOT NULL,
    settled_at             TIMESTAMPTZ NOT NULL,
    total                  BIGINT      NOT NULL CHECK (total > 0),
    fund_part              BIGINT      NOT NULL CHECK (fund_part >= 0),
    personal_part          BIGINT      NOT NULL CHECK (personal_part >= 0),
    cash_part              BIGINT      NOT NULL CHECK (cash_part >= 0),
    out_of_catalogue       BIGINT      NOT NULL CHECK (out_of_catalogue >= 0),
    personal_first         BIGINT      NOT NULL CHECK (personal_first >= 0),
    class_b_self_pay       BIGINT      NOT NULL CHECK (class_b_self_pay >= 0),
    deductible             BIGINT      NOT NULL CHECK (deductible >= 0),
    co_payment             BIGINT      NOT NULL CHECK (co_payment >= 0),
    over_cap               BIGINT      NOT NULL CHECK (over_cap >= 0),
    fund_transfer_id       UUID,
    personal_transfer_id   UUID,
    cash_transfer_id       UUID,
    personal_balance_after BIGINT      NOT NULL,
    funds_available_after  BIGINT      NOT NULL,
    items                  JSONB       NOT NULL,
    trail                  JSONB       NOT NULL,
    accumulated            JSONB       NOT NULL,
    CHECK (fund_part + personal_part + cash_part = total),
    CHECK (out_of_catalogue + personal_first + class_b_self_pay + deductible + co_payment + over_cap + fund_part = total),
    CHECK ((fund_part = 0) = (fund_transfer_id IS NULL)),
    CHECK ((personal_part = 0) = (personal_transfer_id IS NULL)),
    CHECK ((cash_part = 0) = (cash_transfer_id IS NULL)),
    UNIQUE (institution_id, settlement_ref)
);
-- The fund's reconciliation reads a day's settlements by fund and institution.
CREATE INDEX medical_settlements_day ON medical_settlements (fund_city, business_day, institution_id);

-- A settlement's cancellation (its own business day) or reversal (a later day): at most one, by
-- the primary key. The day is the end's own; a reversal counts in that day's totals.
CREATE TABLE medical_settlement_ends (
    settlement_id          UUID        PRIMARY KEY,
    kind                   TEXT        NOT NULL CHECK (kind IN ('cancelled', 'reversed')),
    reason                 TEXT        NOT NULL,
    fund_city              TEXT        NOT NULL,
    institution_id         TEXT        NOT NULL,
    business_day           DATE        NOT NULL,
    ended_at               TIMESTAMPTZ NOT NULL,
    personal_balance_after BIGINT      NOT NULL,
    funds_available_after  BIGINT      NOT NULL
);
CREATE INDEX medical_settlement_ends_day ON medical_settlement_ends (fund_city, business_day, institution_id);

-- A cardholder's yearly accumulators under a city's policy (deductible met, fund paid, by bucket),
-- one version per change, as account_balances: a writer inserts version n+1 after reading version
-- n, so two writers racing collide on the key and one retries. Each version names the settlement
-- that moved it and how (settled, cancelled, reversed): the history explains every figure.
CREATE TABLE medical_accumulators (
    card_token    TEXT        NOT NULL,
    city          TEXT        NOT NULL,
    year          INT         NOT NULL,
    version       BIGINT      NOT NULL CHECK (version > 0),
    amounts       JSONB       NOT NULL,
    settlement_id UUID        NOT NULL,
    change        TEXT        NOT NULL CHECK (change IN ('settled', 'cancelled', 'reversed')),
    ts            TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (card_token, city, year, version)
);

CREATE TRIGGER medical_settlements_immutable BEFORE UPDATE OR DELETE ON medical_settlements
    FOR EACH ROW EXECUTE FUNCTION refuse_history_change();
CREATE TRIGGER medical_settlement_ends_immutable BEFORE UPDATE OR DELETE ON medical_settlement_ends
    FOR EACH ROW EXECUTE FUNCTION refuse_history_change();
CREATE TRIGGER medical_accumulators_immutable BEFORE UPDATE OR DELETE ON medical_accumulators
    FOR EACH ROW EXECUTE FUNCTION refuse_history_change();
