-- PostgreSQL form of migration 0018 (see ../0018_gc.sql): garbage collection (`airlock gc`).
ALTER TABLE blobs ADD COLUMN linked_at BIGINT;
UPDATE blobs SET linked_at = created_at;

CREATE TABLE gc_tombstones (
    digest      TEXT COLLATE "binary" PRIMARY KEY,
    created_at  BIGINT NOT NULL
);

CREATE INDEX evidence_by_blob ON evidence (blob);
CREATE INDEX repository_manifests_by_digest ON repository_manifests (digest);
CREATE INDEX repository_blobs_by_digest ON repository_blobs (digest);
CREATE INDEX uploads_by_repository ON uploads (repository);
CREATE INDEX promotions_promoted_by_digest ON promotions (digest) WHERE state = 'promoted';
