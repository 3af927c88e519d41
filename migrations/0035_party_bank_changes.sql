-- Every change of the bank that settles a party's clearing account: the first bank set (from ''),
-- then each change, with when. A change decides which bank's file the party's next items go to,
-- so it is kept for finance staff and auditors, and never edited.
CREATE TABLE party_bank_changes (
    change_id  UUID        PRIMARY KEY,
    account_id UUID        NOT NULL,
    from_bank  TEXT        NOT NULL,
    to_bank    TEXT        NOT NULL,
    changed_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX party_bank_changes_account ON party_bank_changes (account_id, changed_at);

CREATE TRIGGER party_bank_changes_immutable BEFORE UPDATE OR DELETE ON party_bank_changes
    FOR EACH ROW EXECUTE FUNCTION refuse_history_change();
