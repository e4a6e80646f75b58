-- Refresh-token rotation and the per-name failure limiter.
--
-- A login with offline access starts a refresh-token family. Each refresh token is recorded by
-- its `jti`; exchanging it marks it spent and records its successor in the same family, in one
-- transaction. Presenting a spent token again revokes the whole family.

CREATE TABLE refresh_families (
    id             TEXT PRIMARY KEY,
    principal_id   INTEGER NOT NULL REFERENCES principals(id),
    -- The credential the login used (`password:<id>` or an API key id).
    credential_id  TEXT NOT NULL,
    created_at     INTEGER NOT NULL,
    revoked_at     INTEGER,
    -- Why it was revoked (e.g. `reuse`).
    revoked_reason TEXT
);

CREATE TABLE refresh_tokens (
    jti         TEXT PRIMARY KEY,
    family_id   TEXT NOT NULL REFERENCES refresh_families(id),
    issued_at   INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL,
    -- Set when the token was exchanged for its successor.
    spent_at    INTEGER
);

CREATE INDEX refresh_tokens_by_family ON refresh_tokens (family_id);

-- Failed authentications per presented user name (known or not) and source per minute: the
-- rate limiter's (principal, source) key. `auth_failures` keeps the per-source totals and the
-- once-per-minute audit aggregation.
CREATE TABLE auth_failures_by_name (
    name    TEXT NOT NULL,
    source  TEXT NOT NULL,
    minute  INTEGER NOT NULL,
    count   INTEGER NOT NULL,
    PRIMARY KEY (name, source, minute)
) WITHOUT ROWID;
