-- Garbage collection (`airlock gc`).

-- When a blob was last committed or linked into a repository (upload, mount): the grace period
-- counts from here, so a blob uploaded again or mounted just now is kept while the manifest that
-- will reference it is on its way, however old the blob is.
ALTER TABLE blobs ADD COLUMN linked_at INTEGER;
UPDATE blobs SET linked_at = created_at;

-- Blob files being deleted by gc: the row is gone, the file not yet. A commit of the same digest
-- is refused while its tombstone stands (the client uploads again), and a run that crashed
-- between the two finishes the deletion at the next run.
CREATE TABLE gc_tombstones (
    digest      TEXT PRIMARY KEY,
    created_at  INTEGER NOT NULL
) WITHOUT ROWID;

-- The mark asks, per blob, whether evidence names it.
CREATE INDEX evidence_by_blob ON evidence (blob);

-- The mark's other questions, by digest: is a manifest held anywhere (and in a gated stage), is a
-- blob linked where an upload is open, was a manifest ever promoted.
CREATE INDEX repository_manifests_by_digest ON repository_manifests (digest);
CREATE INDEX repository_blobs_by_digest ON repository_blobs (digest);
CREATE INDEX uploads_by_repository ON uploads (repository);
CREATE INDEX promotions_promoted_by_digest ON promotions (digest) WHERE state = 'promoted';
