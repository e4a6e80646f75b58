-- PostgreSQL form of migration 0002 (see ../0002_audit.sql).
-- The audit log: entries numbered from 0 without gaps (the index is assigned by airlock under
-- the writer lock, never by a sequence), stored hashes, signed checkpoints.
CREATE TABLE audit_entries (
    idx          BIGINT PRIMARY KEY,
    entry        BYTEA NOT NULL,
    kind         TEXT COLLATE "binary" NOT NULL,
    time_millis  BIGINT NOT NULL
);

CREATE INDEX audit_entries_by_time ON audit_entries (time_millis);

CREATE TABLE audit_hashes (
    idx   BIGINT PRIMARY KEY,
    hash  BYTEA NOT NULL
);

CREATE TABLE audit_checkpoints (
    size        BIGINT PRIMARY KEY,
    root        BYTEA NOT NULL,
    note        TEXT COLLATE "binary" NOT NULL,
    created_at  BIGINT NOT NULL
);
