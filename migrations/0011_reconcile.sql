-- Reconciliation: the banks' statements as imported, what their entries matched, the breaks found
-- and how finance staff resolved them. Money is BIGINT fen, signed from the bank's point of view
-- (positive: the bank's account was credited). Nothing here is ever deleted.

-- A bank's statement, imported once: (bank, statement id) again with the same content is a
-- replay, with other content a conflict. Sequences run from 1 per bank; a missing one is a break.
CREATE TABLE bank_statements (
    bank_id      TEXT        NOT NULL,
    statement_id TEXT        NOT NULL,
    sequence     BIGINT      NOT NULL CHECK (sequence > 0),
    created_at   TIMESTAMPTZ NOT NULL,
    from_date    DATE        NOT NULL,
    to_date      DATE        NOT NULL,
    opening      BIGINT      NOT NULL,
    closing      BIGINT      NOT NULL,
    entries      BIGINT      NOT NULL,
    control_sum  BIGINT      NOT NULL,
    net          BIGINT      NOT NULL,
    content_hash TEXT        NOT NULL,
    imported_at  TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (bank_id, statement_id),
    UNIQUE (bank_id, sequence)
);

-- A statement's entries. ref is the end-to-end reference the bank echoed; item_id and file_id are
-- what it names of ours, when it names a settlement item or a file of this bank.
CREATE TABLE statement_entries (
    bank_id      TEXT   NOT NULL,
    statement_id TEXT   NOT NULL,
    line         BIGINT NOT NULL,
    entry_ref    TEXT   NOT NULL,
    ref          TEXT   NOT NULL,
    item_id      UUID,
    file_id      TEXT,
    amount       BIGINT NOT NULL CHECK (amount <> 0),
    booking_date DATE   NOT NULL,
    value_date   DATE   NOT NULL,
    info         TEXT   NOT NULL,
    PRIMARY KEY (bank_id, statement_id, line)
);
CREATE INDEX statement_entries_item ON statement_entries (bank_id, item_id) WHERE item_id IS NOT NULL;
CREATE INDEX statement_entries_file ON statement_entries (bank_id, file_id) WHERE file_id IS NOT NULL;
-- Items by amount: an entry without a reference is suggested for an item of its amount.
CREATE INDEX settlement_items_amount ON settlement_items (bank_id, amount);

-- What matched: an item (or a file's net position) and the entries that booked it. A suggestion
-- waits for a person: confirmed, it is a match; refused, its entry is a break.
CREATE TABLE recon_matches (
    match_id   UUID        PRIMARY KEY,
    bank_id    TEXT        NOT NULL,
    kind       TEXT        NOT NULL CHECK (kind IN ('one_to_one', 'many_to_one', 'one_to_many')),
    status     TEXT        NOT NULL CHECK (status IN ('matched', 'suggested')),
    item_id    UUID,
    file_id    TEXT,
    amount     BIGINT      NOT NULL,
    detail     TEXT        NOT NULL,
    matched_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX recon_matches_item ON recon_matches (item_id) WHERE item_id IS NOT NULL;
CREATE INDEX recon_matches_file ON recon_matches (bank_id, file_id) WHERE file_id IS NOT NULL;

-- The entries of each match: an entry is in one match at most.
CREATE TABLE recon_match_entries (
    bank_id      TEXT   NOT NULL,
    statement_id TEXT   NOT NULL,
    line         BIGINT NOT NULL,
    match_id     UUID   NOT NULL,
    PRIMARY KEY (bank_id, statement_id, line)
);

-- A person's word on a suggestion.
CREATE TABLE recon_confirmations (
    match_id     UUID        PRIMARY KEY,
    accepted     BOOLEAN     NOT NULL,
    confirmed_by TEXT        NOT NULL,
    confirmed_at TIMESTAMPTZ NOT NULL
);

-- A break: what the bank's statements and the engine's settlement disagree on. The id derives
-- from its kind and what it is about, so finding it again records nothing new. as_of is the date
-- its age counts from: the expected value date, or the entry's booking date.
CREATE TABLE recon_breaks (
    break_id      UUID        PRIMARY KEY,
    bank_id       TEXT        NOT NULL,
    kind          TEXT        NOT NULL,
    cycle_date    DATE,
    item_id       UUID,
    file_id       TEXT,
    expected      BIGINT,
    actual        BIGINT,
    expected_date DATE,
    actual_date   DATE,
    as_of         DATE        NOT NULL,
    detail        TEXT        NOT NULL,
    detected_at   TIMESTAMPTZ NOT NULL
);
CREATE INDEX recon_breaks_bank ON recon_breaks (bank_id, as_of);

-- The entries a break is about.
CREATE TABLE recon_break_entries (
    break_id     UUID   NOT NULL,
    bank_id      TEXT   NOT NULL,
    statement_id TEXT   NOT NULL,
    line         BIGINT NOT NULL,
    PRIMARY KEY (break_id, statement_id, line)
);
CREATE INDEX recon_break_entries_entry ON recon_break_entries (bank_id, statement_id, line);

-- How a break was resolved, by whom and when: a note, an adjustment through the ledger, or the
-- engine finding the match it lacked (an entry booked late, a statement that arrived late), or the
-- engine finding the break again with more entries (superseded by the larger one).
CREATE TABLE recon_resolutions (
    break_id    UUID        PRIMARY KEY,
    kind        TEXT        NOT NULL CHECK (kind IN ('note', 'adjustment', 'matched', 'superseded')),
    note        TEXT        NOT NULL,
    transfer_id UUID,
    resolved_by TEXT        NOT NULL,
    resolved_at TIMESTAMPTZ NOT NULL
);

CREATE TRIGGER bank_statements_immutable BEFORE UPDATE OR DELETE ON bank_statements
    FOR EACH ROW EXECUTE FUNCTION refuse_history_change();
CREATE TRIGGER statement_entries_immutable BEFORE UPDATE OR DELETE ON statement_entries
    FOR EACH ROW EXECUTE FUNCTION refuse_history_change();
CREATE TRIGGER recon_matches_immutable BEFORE UPDATE OR DELETE ON recon_matches
    FOR EACH ROW EXECUTE FUNCTION refuse_history_change();
CREATE TRIGGER recon_breaks_immutable BEFORE UPDATE OR DELETE ON recon_breaks
    FOR EACH ROW EXECUTE FUNCTION refuse_history_change();
CREATE TRIGGER recon_resolutions_immutable BEFORE UPDATE OR DELETE ON recon_resolutions
    FOR EACH ROW EXECUTE FUNCTION refuse_history_change();
