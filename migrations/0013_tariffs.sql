-- Tariffs as data at run time: versions of fare tables, fee plans and medical policies uploaded
-- by the admin, each with the first day it prices, who uploaded it and when. The files the engine
-- starts with (built in, or from --fares, --fee-plans, --medical-policies) are not here: they are
-- the versions every upload builds on.

-- One row per kind of tariff: an upload holds its kind's row FOR UPDATE while it checks the new
-- version against the versions before it, so two uploads never pass the check against each
-- other's absence. versions counts the kind's uploads: the seq of the last, and what a process
-- compares to know whether another process added one.
CREATE TABLE tariff_kinds (
    kind       TEXT        PRIMARY KEY CHECK (kind IN ('fares', 'fee_plans', 'medical_policies')),
    versions   INT         NOT NULL CHECK (versions >= 0),
    updated_at TIMESTAMPTZ NOT NULL
);
-- The rows exist from the start: whatever prices by a kind holds its row FOR SHARE while it does,
-- and finds out there whether it prices by every version uploaded (an upload holds it FOR UPDATE).
INSERT INTO tariff_kinds (kind, versions, updated_at) VALUES
    ('fares', 0, now()), ('fee_plans', 0, now()), ('medical_policies', 0, now());

-- Every version uploaded, as uploaded: the file's bytes and their SHA-256. effective_from is the
-- first day it prices (a travel day for fares, a purchase's or a bill's date in Shanghai for
-- fee plans and medical policies); a later seq wins over an earlier one from the same day.
-- repriced says the version took effect in the past and re-priced what was charged since, by
-- adjustments. Never changed.
CREATE TABLE tariff_versions (
    kind           TEXT        NOT NULL,
    seq            INT         NOT NULL CHECK (seq >= 1),
    tariff_id      TEXT        NOT NULL,
    effective_from DATE        NOT NULL,
    body           BYTEA       NOT NULL,
    body_sha256    BYTEA       NOT NULL,
    uploaded_by    TEXT        NOT NULL,
    uploaded_at    TIMESTAMPTZ NOT NULL,
    repriced       BOOLEAN     NOT NULL,
    PRIMARY KEY (kind, seq)
);
CREATE INDEX tariff_versions_id ON tariff_versions (kind, tariff_id, effective_from);
CREATE TRIGGER tariff_versions_immutable BEFORE UPDATE OR DELETE ON tariff_versions
    FOR EACH ROW EXECUTE FUNCTION refuse_history_change();
