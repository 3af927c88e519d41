-- The holds that are still open and will expire: the expiry sweep's work queue. A hold with a
-- timeout enters it in the batch that places it and leaves it in the batch that posts, voids or
-- expires it, so the sweep finds exactly the holds it must release, whatever the clocks of the
-- writers said. This is a queue, not history: rows are deleted.
CREATE TABLE open_holds (
    transfer_id UUID        PRIMARY KEY,
    expires_at  TIMESTAMPTZ NOT NULL
);
CREATE INDEX open_holds_expires_at ON open_holds (expires_at);

INSERT INTO open_holds (transfer_id, expires_at)
SELECT t.id, t.expires_at FROM transfers t
WHERE t.expires_at IS NOT NULL
  AND NOT EXISTS (SELECT 1 FROM transfer_resolutions r WHERE r.target_id = t.id);
