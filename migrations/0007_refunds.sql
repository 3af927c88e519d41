-- Refunds arriving from Kafka, partial and repeated like the API's: the refunds of purchases
-- cleared without an authorization, and the clearing records that name the API's captures.

-- Refunds of purchases cleared without an authorization (a purchase.cleared with no
-- authorization_id). Each is a transfer of its own from the merchant back to the card; this table
-- counts them per purchase. A refund writes sequence n+1 after reading n, with the running total:
-- two writers refunding one purchase at once collide on the key and one retries, so the total
-- never passes the purchase.
CREATE TABLE cleared_refunds (
    original_event_id UUID        NOT NULL,
    seq               INT         NOT NULL CHECK (seq > 0),
    event_id          UUID        NOT NULL UNIQUE,
    amount            BIGINT      NOT NULL CHECK (amount > 0),
    refunded_total    BIGINT      NOT NULL CHECK (refunded_total >= amount),
    transfer_id       UUID        NOT NULL,
    created_at        TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (original_event_id, seq)
);

-- A refund made before this table was a ledger reversal of its purchase's transfer, one per
-- purchase: each is that purchase's first refund.
INSERT INTO cleared_refunds (original_event_id, seq, event_id, amount, refunded_total, transfer_id, created_at)
SELECT o.event_id, 1, r.event_id, t.amount, t.amount, t.id, r.processed_at
FROM processed_events r
JOIN transfers t ON t.id = r.transfer_id
JOIN processed_events o ON o.transfer_id = t.ref_id
WHERE r.type = 'purchase.refunded' AND r.status = 'applied' AND t.ref_id IS NOT NULL AND o.type = 'purchase.cleared';

-- The clearing record (a purchase.cleared naming an authorization) of a capture the API made
-- first: accepted without moving money, and named by the refunds that arrive from Kafka.
CREATE TABLE purchase_clearing_records (
    event_id         UUID        PRIMARY KEY,
    authorization_id UUID        NOT NULL,
    created_at       TIMESTAMPTZ NOT NULL
);

CREATE TRIGGER cleared_refunds_immutable BEFORE UPDATE OR DELETE ON cleared_refunds
    FOR EACH ROW EXECUTE FUNCTION refuse_history_change();
CREATE TRIGGER purchase_clearing_records_immutable BEFORE UPDATE OR DELETE ON purchase_clearing_records
    FOR EACH ROW EXECUTE FUNCTION refuse_history_change();
