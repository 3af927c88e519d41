-- Medical care in another city than the insured one: the treatment cities cardholders register
-- in advance (异地就医备案), and what each settlement records of where it was treated and how its
-- bill was classified.

-- A cardholder's registration of a treatment city for a period: visits there from valid_from
-- through valid_until (open-ended when NULL) are registered; the insured city's policy may
-- lower its fund's ratio for the others. Never changed: a new period is a new row.
CREATE TABLE medical_registrations (
    card_token     TEXT        NOT NULL,
    treatment_city TEXT        NOT NULL,
    valid_from     DATE        NOT NULL,
    valid_until    DATE,
    registered_by  TEXT        NOT NULL,
    registered_at  TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (card_token, treatment_city, valid_from),
    CHECK (valid_until IS NULL OR valid_until >= valid_from)
);
CREATE TRIGGER medical_registrations_immutable BEFORE UPDATE OR DELETE ON medical_registrations
    FOR EACH ROW EXECUTE FUNCTION refuse_history_change();

-- Where each settlement was treated (the institution's city; '' for the settlements recorded
-- before, all treated in their fund's city), whether the cardholder had registered it, the
-- catalogue version that classified the bill, and the bill's lines as classified (NULL before).
ALTER TABLE medical_settlements ADD COLUMN treating_city TEXT NOT NULL DEFAULT '';
ALTER TABLE medical_settlements ADD COLUMN registered BOOLEAN NOT NULL DEFAULT false;
ALTER TABLE medical_settlements ADD COLUMN catalogue TEXT NOT NULL DEFAULT '';
ALTER TABLE medical_settlements ADD COLUMN bill_lines JSONB;
