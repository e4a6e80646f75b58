-- Web console sessions. The browser holds a random cookie; only its SHA-256 is stored, so the
-- database signs nobody in. A session is bound to its principal's authorization epoch at sign-in
-- and to the credential it signed in with: a change to either ends it on the next request.
CREATE TABLE console_sessions (
    id_sha256     TEXT PRIMARY KEY,
    principal_id  INTEGER NOT NULL REFERENCES principals(id),
    -- The credential the sign-in used (`password:<id>`).
    credential_id TEXT NOT NULL,
    authz_epoch   INTEGER NOT NULL,
    csrf_token    TEXT NOT NULL,
    created_at    INTEGER NOT NULL,
    last_seen_at  INTEGER NOT NULL
) WITHOUT ROWID;

CREATE INDEX console_sessions_by_last_seen ON console_sessions (last_seen_at);
