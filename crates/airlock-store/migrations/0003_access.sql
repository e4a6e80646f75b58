-- Identity and access: principals, their credentials, role bindings (standing and just-in-time),
-- access requests, and aggregated authentication failures.

CREATE TABLE principals (
    id           INTEGER PRIMARY KEY,
    name         TEXT NOT NULL UNIQUE,
    kind         TEXT NOT NULL CHECK (kind IN ('user', 'service')),
    disabled     INTEGER NOT NULL DEFAULT 0,
    -- Bumped by every change to what the principal may do; tokens carry the epoch they were
    -- issued under and are refused once it moved.
    authz_epoch  INTEGER NOT NULL DEFAULT 0,
    created_at   INTEGER NOT NULL,
    created_by   TEXT NOT NULL
);

-- Passwords (argon2id PHC strings) and API keys (SHA-256 of a 256-bit secret), never plaintext.
CREATE TABLE credentials (
    id            TEXT PRIMARY KEY,
    principal_id  INTEGER NOT NULL REFERENCES principals(id),
    kind          TEXT NOT NULL CHECK (kind IN ('password', 'api_key')),
    secret_hash   TEXT NOT NULL,
    expires_at    INTEGER,
    revoked_at    INTEGER,
    created_at    INTEGER NOT NULL
);

CREATE INDEX credentials_by_principal ON credentials (principal_id, kind);

CREATE TABLE role_bindings (
    id                 INTEGER PRIMARY KEY,
    principal_id       INTEGER NOT NULL REFERENCES principals(id),
    role               TEXT NOT NULL,
    scope              TEXT NOT NULL,
    expires_at         INTEGER,
    granted_by         TEXT NOT NULL,
    access_request_id  INTEGER,
    created_at         INTEGER NOT NULL
);

CREATE INDEX role_bindings_by_principal ON role_bindings (principal_id);

CREATE TABLE access_requests (
    id             INTEGER PRIMARY KEY,
    principal_id   INTEGER NOT NULL REFERENCES principals(id),
    role           TEXT NOT NULL,
    scope          TEXT NOT NULL,
    duration_secs  INTEGER NOT NULL,
    reason         TEXT NOT NULL,
    status         TEXT NOT NULL CHECK (status IN ('pending', 'granted', 'denied', 'revoked')),
    decided_by     TEXT,
    decided_at     INTEGER,
    created_at     INTEGER NOT NULL
);

-- Failed authentications counted per principal (or 'unknown') and source per minute: the audit
-- log gets one entry per principal and minute, the rate limiter reads the counts.
CREATE TABLE auth_failures (
    principal  TEXT NOT NULL,
    source     TEXT NOT NULL,
    minute     INTEGER NOT NULL,
    count      INTEGER NOT NULL,
    PRIMARY KEY (principal, source, minute)
) WITHOUT ROWID;
