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
