-- Inpatient stays billed in parts: each interim bill and the final bill is a medical settlement,
-- marked here with the institution's admission id; the final bill's true-up prices the whole stay
-- as one bill and posts the difference from its bills as adjustments.

-- A settlement that is a bill of a stay. Every bill of a stay is of one card and policy year.
CREATE TABLE medical_stay_bills (
    settlement_id  UUID        PRIMARY KEY,
    institution_id TEXT        NOT NULL,
    stay_ref       TEXT        NOT NULL,
    bill           TEXT        NOT NULL CHECK (bill IN ('interim', 'final')),
    card_token     TEXT        NOT NULL,
    policy_year    INT         NOT NULL,
    settled_at     TIMESTAMPTZ NOT NULL
);
CREATE INDEX medical_stay_bills_stay ON medical_stay_bills (institution_id, stay_ref);

-- A stay's true-up, written with its final bill: at most one per stay, by the primary key. The
-- whole stay's split as one bill, what its bills paid, and the adjustments (whole less billed,
-- of either sign: positive, the payer pays the institution more) with their transfers. released
-- is what the bills had added to the accumulators, whole_split's delta what the stay adds instead.
CREATE TABLE medical_stay_trueups (
    institution_id         TEXT        NOT NULL,
    stay_ref               TEXT        NOT NULL,
    id                     UUID        NOT NULL UNIQUE,
    final_settlement_id    UUID        NOT NULL UNIQUE,
    card_token             TEXT        NOT NULL,
    fund_city              TEXT        NOT NULL,
    business_day           DATE        NOT NULL,
    trued_up_at            TIMESTAMPTZ NOT NULL,
    stay_total             BIGINT      NOT NULL CHECK (stay_total > 0),
    whole_fund             BIGINT      NOT NULL CHECK (whole_fund >= 0),
    whole_personal         BIGINT      NOT NULL CHECK (whole_personal >= 0),
    whole_cash             BIGINT      NOT NULL CHECK (whole_cash >= 0),
    billed_fund            BIGINT      NOT NULL CHECK (billed_fund >= 0),
    billed_personal        BIGINT      NOT NULL CHECK (billed_personal >= 0),
    billed_cash            BIGINT      NOT NULL CHECK (billed_cash >= 0),
    fund_adjustment        BIGINT      NOT NULL,
    personal_adjustment    BIGINT      NOT NULL,
    cash_adjustment        BIGINT      NOT NULL,
    fund_transfer_id       UUID,
    personal_transfer_id   UUID,
    cash_transfer_id       UUID,
    bills                  JSONB       NOT NULL,
    whole_split            JSONB       NOT NULL,
    released               JSONB       NOT NULL,
    personal_balance_after BIGINT      NOT NULL,
    funds_available_after  BIGINT      NOT NULL,
    CHECK (whole_fund + whole_personal + whole_cash = stay_total),
    CHECK (billed_fund + billed_personal + billed_cash = stay_total),
    CHECK (fund_adjustment = whole_fund - billed_fund),
    CHECK (personal_adjustment = whole_personal - billed_personal),
    CHECK (cash_adjustment = whole_cash - billed_cash),
    CHECK ((fund_adjustment = 0) = (fund_transfer_id IS NULL)),
    CHECK ((personal_adjustment = 0) = (personal_transfer_id IS NULL)),
    CHECK ((cash_adjustment = 0) = (cash_transfer_id IS NULL)),
    PRIMARY KEY (institution_id, stay_ref)
);
-- The fund's reconciliation counts a day's true-ups by fund and institution.
CREATE INDEX medical_stay_trueups_day ON medical_stay_trueups (fund_city, business_day, institution_id);

CREATE TRIGGER medical_stay_bills_immutable BEFORE UPDATE OR DELETE ON medical_stay_bills
    FOR EACH ROW EXECUTE FUNCTION refuse_history_change();
CREATE TRIGGER medical_stay_trueups_immutable BEFORE UPDATE OR DELETE ON medical_stay_trueups
    FOR EACH ROW EXECUTE FUNCTION refuse_history_change();
