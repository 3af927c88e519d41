-- A card's declared statuses over time, so that a tap is judged by the card's status when it was
-- made, and the deny list gates download carries the cards that may not travel.

-- Every declared status a card took after its registration, from the instant the engine recorded
-- it until the next: a card without rows has been active since it was registered. The newest row
-- is the card's declared status in cards.
CREATE TABLE card_status_changes (
    card_token      TEXT        NOT NULL,
    changed_at      TIMESTAMPTZ NOT NULL,
    declared_status TEXT        NOT NULL CHECK (declared_status IN ('active', 'blocked', 'closed')),
    status_reason   TEXT        NOT NULL,
    PRIMARY KEY (card_token, changed_at)
);

-- The cards blocked or closed before this table: in that status since their last update.
INSERT INTO card_status_changes (card_token, changed_at, declared_status, status_reason)
SELECT card_token, updated_at, declared_status, status_reason FROM cards WHERE declared_status <> 'active';

-- The deny list pages through the blocked and closed cards, and those whose permit has expired,
-- by card token.
CREATE INDEX cards_not_active ON cards (card_token) WHERE declared_status <> 'active';
CREATE INDEX cards_permit_valid_until ON cards (permit_valid_until, card_token);

CREATE TRIGGER card_status_changes_immutable BEFORE UPDATE OR DELETE ON card_status_changes
    FOR EACH ROW EXECUTE FUNCTION refuse_history_change();
