-- An event applied as a transfer of its own kind (funds.loaded, purchase.cleared,
-- purchase.refunded, medical.contribution) is recorded by its id, its hash and its first transfer
-- only: the transfer, written in the same transaction, already says what the rest of its record
-- said. Its type follows from the transfer's code, its status is applied with no reason, and its
-- time is the transfer's. Where it was consumed from (source, source_offset) is not kept for such
-- an event. Every other event, and every event decided before this migration, keeps its whole
-- record. All of them stay in one table under one primary key, so an event id is still decided
-- once, whatever the decision.
--
-- The table keeps its rows and its primary key (processed_events_pkey) under a new name, and
-- processed_events becomes the view that every reader reads, with the same columns: a whole
-- record as written, a narrow one completed from its transfer (source and source_offset NULL).
ALTER TABLE processed_events RENAME TO processed_event_records;
ALTER TABLE processed_event_records ALTER COLUMN type DROP NOT NULL;
ALTER TABLE processed_event_records ALTER COLUMN status DROP NOT NULL;
ALTER TABLE processed_event_records ALTER COLUMN reason DROP NOT NULL;
ALTER TABLE processed_event_records ALTER COLUMN source DROP NOT NULL;
ALTER TABLE processed_event_records ALTER COLUMN source_offset DROP NOT NULL;
ALTER TABLE processed_event_records ALTER COLUMN processed_at DROP NOT NULL;
-- A record is whole, or narrow: an id, a hash and a transfer, nothing else.
ALTER TABLE processed_event_records ADD CONSTRAINT processed_event_records_whole_or_narrow CHECK (
    (type IS NOT NULL AND status IS NOT NULL AND reason IS NOT NULL AND source IS NOT NULL
        AND source_offset IS NOT NULL AND processed_at IS NOT NULL)
    OR (type IS NULL AND status IS NULL AND reason IS NULL AND source IS NULL
        AND source_offset IS NULL AND processed_at IS NULL AND transfer_id IS NOT NULL));

-- The codes are the clearing package's (CodeFundsLoaded, CodePurchase, CodeRefund,
-- CodeMedicalContribution); the engine writes a narrow record only for an event whose type and
-- first transfer's code are a pair of this list.
CREATE VIEW processed_events AS
SELECT p.event_id, p.hash,
    COALESCE(p.type, CASE t.code
        WHEN 1 THEN 'funds.loaded'
        WHEN 21 THEN 'purchase.cleared'
        WHEN 23 THEN 'purchase.refunded'
        WHEN 50 THEN 'medical.contribution' END) AS type,
    COALESCE(p.status, 'applied') AS status,
    COALESCE(p.reason, '') AS reason,
    p.transfer_id,
    p.source,
    p.source_offset,
    COALESCE(p.processed_at, t.ts) AS processed_at
FROM processed_event_records p
LEFT JOIN transfers t ON p.type IS NULL AND t.id = p.transfer_id;
