-- The finance page's sessions, shared by every engine on the database: a person logged in
-- through one engine is logged in through all of them, and stays so across a restart. A session
-- is found by the SHA-256 of its id; the id itself lives only in the person's cookie, and the
-- form token is derived from the id, so that nothing here opens a session or signs a form. The
-- table holds at most the bound the engine keeps (a few hundred rows): it needs no index but its
-- key.
CREATE TABLE finance_sessions (
    id_hash    BYTEA       PRIMARY KEY CHECK (length(id_hash) = 32),
    who        TEXT        NOT NULL,
    started_at TIMESTAMPTZ NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL CHECK (expires_at > started_at)
);
