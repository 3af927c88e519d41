-- Closed months exported for auditors (joinin archive): one row per month, the first day of the
-- month as its key, with the checksum of the archive's manifest. A month is exported only once
-- its settlement cycles are closed and reconciled; exporting it again must give the same
-- manifest, which proves that its history has not changed since.
CREATE TABLE month_archives (
    month           DATE        PRIMARY KEY,
    starts_after    TIMESTAMPTZ NOT NULL,
    ends_at         TIMESTAMPTZ NOT NULL,
    manifest_sha256 TEXT        NOT NULL,
    transfers       BIGINT      NOT NULL CHECK (transfers >= 0),
    exported_by     TEXT        NOT NULL,
    exported_at     TIMESTAMPTZ NOT NULL
);

-- Every archive action with who asked and what came of it, refusals included.
CREATE TABLE archive_actions (
    action_id UUID        PRIMARY KEY,
    month     DATE        NOT NULL,
    action    TEXT        NOT NULL CHECK (action IN ('exported', 'reexported', 'refused', 'differs')),
    actor     TEXT        NOT NULL,
    detail    TEXT        NOT NULL,
    at        TIMESTAMPTZ NOT NULL
);
CREATE INDEX archive_actions_month ON archive_actions (month, at);

CREATE TRIGGER month_archives_immutable BEFORE UPDATE OR DELETE ON month_archives
    FOR EACH ROW EXECUTE FUNCTION refuse_history_change();
CREATE TRIGGER archive_actions_immutable BEFORE UPDATE OR DELETE ON archive_actions
    FOR EACH ROW EXECUTE FUNCTION refuse_history_change();
