-- The holds that will expire are found in open_holds (0006), by its own index on expires_at: the
-- expiry sweep walks that queue, and nothing else looks transfers up by expiry on a path that
-- must be fast (the ledger's verification compares the two tables whole). The index on
-- transfers.expires_at cost every hold an index entry and its WAL record, an authorization among
-- them, for no reader.
DROP INDEX IF EXISTS transfers_expires_at;
