-- PostgreSQL form of migration 0021 (see ../0021_gc_cleared.sql): blob files gc finished
-- deleting, per digest, for commits that look at their bytes before their transaction.
CREATE TABLE gc_cleared (
    digest      TEXT COLLATE "binary" PRIMARY KEY,
    clears      BIGINT NOT NULL,
    cleared_at  BIGINT NOT NULL
);

-- The attempt that wrote each recorded chunk of an upload session (see ../0021_*.sql).
ALTER TABLE uploads ADD COLUMN chunk_attempts TEXT COLLATE "binary" NOT NULL DEFAULT '';
