-- Transit fares by concession class: the classes cards carry (senior, student, ...), over time.

-- A card's concession class for transit fares (senior, student, ...), from the instant the engine
-- recorded it; '' takes it away. A travel day is priced with the class the card carried when
-- each journey started. Never changed.
CREATE TABLE card_concessions (
    card_token TEXT        NOT NULL,
    changed_at TIMESTAMPTZ NOT NULL,
    class      TEXT        NOT NULL,
    changed_by TEXT        NOT NULL,
    PRIMARY KEY (card_token, changed_at)
);
CREATE TRIGGER card_concessions_immutable BEFORE UPDATE OR DELETE ON card_concessions
    FOR EACH ROW EXECUTE FUNCTION refuse_history_change();
