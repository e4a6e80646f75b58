-- PostgreSQL form of migration 0027 (see ../0027_console_sessions.sql).
-- Web console sessions, stored by the SHA-256 of their cookie.
CREATE TABLE console_sessions (
    id_sha256     TEXT COLLATE "binary" PRIMARY KEY,
    principal_id  BIGINT NOT NULL REFERENCES principals(id),
    credential_id TEXT COLLATE "binary" NOT NULL,
    authz_epoch   BIGINT NOT NULL,
    csrf_token    TEXT COLLATE "binary" NOT NULL,
    created_at    BIGINT NOT NULL,
    last_seen_at  BIGINT NOT NULL
);

CREATE INDEX console_sessions_by_last_seen ON console_sessions (last_seen_at);
