-- PostgreSQL form of migration 0009 (see ../0009_refresh_tokens.sql).
-- Refresh-token rotation and the per-name failure limiter.

CREATE TABLE refresh_families (
    id             TEXT COLLATE "binary" PRIMARY KEY,
    principal_id   BIGINT NOT NULL REFERENCES principals(id),
    credential_id  TEXT COLLATE "binary" NOT NULL,
    created_at     BIGINT NOT NULL,
    revoked_at     BIGINT,
    revoked_reason TEXT COLLATE "binary"
);

CREATE TABLE refresh_tokens (
    jti         TEXT COLLATE "binary" PRIMARY KEY,
    family_id   TEXT COLLATE "binary" NOT NULL REFERENCES refresh_families(id),
    issued_at   BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL,
    spent_at    BIGINT
);

CREATE INDEX refresh_tokens_by_family ON refresh_tokens (family_id);

CREATE TABLE auth_failures_by_name (
    name    TEXT COLLATE "binary" NOT NULL,
    source  TEXT COLLATE "binary" NOT NULL,
    minute  BIGINT NOT NULL,
    count   BIGINT NOT NULL,
    PRIMARY KEY (name, source, minute)
);
