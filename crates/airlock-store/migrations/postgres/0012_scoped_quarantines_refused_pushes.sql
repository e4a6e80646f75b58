-- PostgreSQL form of migration 0012 (see ../0012_scoped_quarantines_refused_pushes.sql).
ALTER TABLE artifact_quarantines ADD COLUMN repository_path TEXT COLLATE "binary";

CREATE TABLE refused_pushes (
    principal   TEXT COLLATE "binary" NOT NULL,
    repository  TEXT COLLATE "binary" NOT NULL,
    minute      BIGINT NOT NULL,
    count       BIGINT NOT NULL,
    PRIMARY KEY (principal, repository, minute)
);

UPDATE webhook_endpoints SET secret = ''::bytea WHERE removed_at IS NOT NULL;
