-- Fee plans re-priced in the past: a version of a fee plan uploaded with reprice=true charges the
-- purchases since its first day by adjustments, never by editing what they were charged.

-- One job per such version, written in the transaction that adds the version: the queue the
-- re-pricing works through. The cursor is where it has read to, by merchant and authorization
-- (the last purchase read, or all ff past a merchant read to its end), written in the same
-- transaction as the adjustments of what it read, so that a re-pricing stopped anywhere goes on
-- where it stopped: nothing repeated, nothing lost.
CREATE TABLE fee_reprice_jobs (
    seq                  INT         PRIMARY KEY CHECK (seq >= 1), -- the fee plan version's seq
    plan_id              TEXT        NOT NULL,
    effective_from       DATE        NOT NULL,
    cursor_merchant      TEXT        NOT NULL,
    cursor_authorization UUID        NOT NULL,
    purchases            BIGINT      NOT NULL CHECK (purchases >= 0), -- purchases looked at
    adjusted             BIGINT      NOT NULL CHECK (adjusted >= 0),  -- purchases adjusted
    charged              BIGINT      NOT NULL,                        -- fen charged to merchants, net (negative: given back)
    created_at           TIMESTAMPTZ NOT NULL,
    finished_at          TIMESTAMPTZ
);
CREATE INDEX fee_reprice_jobs_open ON fee_reprice_jobs (seq) WHERE finished_at IS NULL;

-- Every fee adjustment of a purchase: the signed difference of each component (positive: the
-- merchant pays more), and the transfer that moved their sum between the merchant's clearing
-- account and the fee income account (none when the components cancel out). What a merchant has
-- paid on a purchase is the fee on its capture, less what its refunds returned, plus these.
-- plan_seq is the version that priced the purchase after the adjustment (0: a file the engine
-- started with). One per purchase and job. Never changed.
CREATE TABLE purchase_fee_adjustments (
    authorization_id UUID        NOT NULL,
    job_seq          INT         NOT NULL,
    merchant_id      TEXT        NOT NULL,
    plan_seq         INT         NOT NULL CHECK (plan_seq >= 0),
    fee_mdr          BIGINT      NOT NULL,
    fee_network      BIGINT      NOT NULL,
    transfer_id      UUID        UNIQUE,
    created_at       TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (authorization_id, job_seq),
    CHECK (fee_mdr <> 0 OR fee_network <> 0),
    CHECK ((transfer_id IS NULL) = (fee_mdr + fee_network = 0))
);
CREATE TRIGGER purchase_fee_adjustments_immutable BEFORE UPDATE OR DELETE ON purchase_fee_adjustments
    FOR EACH ROW EXECUTE FUNCTION refuse_history_change();
