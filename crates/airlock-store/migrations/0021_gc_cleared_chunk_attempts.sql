-- Blob files garbage collection finished deleting (their tombstone cleared), per digest. A
-- commit of bytes written outside the database (an upload, a mount, a submitted evidence
-- document) reads its digest's row before it looks at the bytes in the blob store and again in
-- its write transaction: a deletion that finished in between is noticed there without asking the
-- blob store while the writer lock is held. Rows older than an hour are pruned as new ones come.
CREATE TABLE gc_cleared (
    digest      TEXT PRIMARY KEY,
    clears      INTEGER NOT NULL,
    cleared_at  INTEGER NOT NULL
) WITHOUT ROWID;

-- The attempt that wrote each recorded chunk of an upload session, each followed by a comma, in
-- chunk order: on S3 every attempt at a chunk writes an object of its own
-- (`uploads/<session>/<n>-<attempt>`), recorded in the same compare-and-set as the session's new
-- size, so two replicas racing for one offset cannot leave the winner's size counting the
-- loser's bytes. Empty for the fixed chunk names (the local directory, and the chunks of sessions
-- recorded before this migration, which are the first `chunks` minus the entries listed).
ALTER TABLE uploads ADD COLUMN chunk_attempts TEXT NOT NULL DEFAULT '';
