-- What a bank's reconciliation has still to decide, so that a run reads what is open instead of
-- the bank's whole history, which grows by a day's entries and items every day for years.
--
-- recon_open_entries: the statement entries no match holds yet. An entry goes in when its
-- statement is imported and comes out when a match (or a suggestion) takes it. An entry in a
-- break and in no match stays, and is decided again by each run, as before.
CREATE TABLE recon_open_entries (
    bank_id      TEXT   NOT NULL,
    statement_id TEXT   NOT NULL,
    line         BIGINT NOT NULL,
    PRIMARY KEY (bank_id, statement_id, line)
);
INSERT INTO recon_open_entries (bank_id, statement_id, line)
SELECT e.bank_id, e.statement_id, e.line FROM statement_entries e
WHERE NOT EXISTS (SELECT 1 FROM recon_match_entries m
    WHERE m.bank_id = e.bank_id AND m.statement_id = e.statement_id AND m.line = e.line);

-- recon_open_items: the items sent to a bank that could still be missing at it, by value date.
-- An item goes in when its cycle's items are written and comes out for good once nothing can make
-- it missing any more: matched (or its suggestion accepted), its file's net matched, an entry
-- naming it or its file, a missing_at_bank break recorded for it, or its bank's rejection. An item
-- with a suggestion waiting for a person stays: refused, the item is unbooked again.
CREATE TABLE recon_open_items (
    bank_id    TEXT NOT NULL,
    value_date DATE NOT NULL,
    item_id    UUID NOT NULL,
    PRIMARY KEY (bank_id, value_date, item_id)
);
INSERT INTO recon_open_items (bank_id, value_date, item_id)
SELECT i.bank_id, c.value_date, i.item_id
FROM settlement_items i JOIN settlement_cycles c ON c.cycle_date = i.cycle_date
WHERE i.bank_id <> ''
    AND NOT EXISTS (SELECT 1 FROM recon_breaks b WHERE b.item_id = i.item_id AND b.kind = 'missing_at_bank')
    AND NOT EXISTS (SELECT 1 FROM recon_matches m LEFT JOIN recon_confirmations k ON k.match_id = m.match_id
        WHERE m.item_id = i.item_id AND (m.status = 'matched' OR k.accepted));
