-- PostgreSQL form of migration 0010 (see ../0010_promotion_integrity.sql).
-- Promotion integrity: claims on evaluating promotions, and the append-only record of everyone
-- who contributed a digest to a repository path.
--
-- The SQLite form also backfills `artifact_contributors` from what releases before it kept.
-- No PostgreSQL database predates this migration (PostgreSQL support came with migration 0018),
-- so its tables are empty here and there is nothing to backfill.

ALTER TABLE promotions ADD COLUMN evaluating_since BIGINT;
ALTER TABLE promotions ADD COLUMN claim TEXT COLLATE "binary";
CREATE INDEX promotions_evaluating ON promotions (evaluating_since) WHERE state = 'evaluating';

CREATE TABLE artifact_contributors (
    repository_path  TEXT COLLATE "binary" NOT NULL,
    digest           TEXT COLLATE "binary" NOT NULL,
    principal        TEXT COLLATE "binary" NOT NULL,
    kind             TEXT COLLATE "binary" NOT NULL CHECK (kind IN ('push', 'evidence')),
    first_at         BIGINT NOT NULL,
    PRIMARY KEY (repository_path, digest, principal, kind)
);

CREATE FUNCTION artifact_contributors_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'artifact_contributors is append-only';
END
$$;

CREATE TRIGGER artifact_contributors_no_update BEFORE UPDATE ON artifact_contributors
    FOR EACH ROW EXECUTE FUNCTION artifact_contributors_append_only();

CREATE TRIGGER artifact_contributors_no_delete BEFORE DELETE ON artifact_contributors
    FOR EACH ROW EXECUTE FUNCTION artifact_contributors_append_only();
