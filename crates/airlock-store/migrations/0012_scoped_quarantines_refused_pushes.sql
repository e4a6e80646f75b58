-- Quarantines hold the artifact in one repository path (every stage of it: the artifact's
-- lineage, since promotions keep the path), not the digest in every repository: evidence or
-- promotions about a copy of the same bytes in another tenant's repository must not hold this
-- one. NULL (quarantines raised before this migration): every repository, as then.
ALTER TABLE artifact_quarantines ADD COLUMN repository_path TEXT;

-- Pushes (and deletes) refused by the stage rules, counted per principal, repository and minute: the audit
-- log gets one `push.refused` entry per principal, repository and minute (the first), however
-- many follow; the anomaly rule `refused_pushes` counts every one.
CREATE TABLE refused_pushes (
    principal   TEXT NOT NULL,
    repository  TEXT NOT NULL,
    minute      INTEGER NOT NULL,
    count       INTEGER NOT NULL,
    PRIMARY KEY (principal, repository, minute)
) WITHOUT ROWID;

-- Endpoints removed before removal erased the HMAC secret keep no secret either. (Their old
-- bytes may stay in free database pages until SQLite reuses them; see docs/webhooks.md.)
UPDATE webhook_endpoints SET secret = zeroblob(0) WHERE removed_at IS NOT NULL;
