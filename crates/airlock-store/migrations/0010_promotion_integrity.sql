-- Promotion integrity: claims on evaluating promotions (so a stalled decision can be recovered
-- without ever promoting twice), and the append-only record of everyone who contributed a digest
-- to a repository path (so no pusher or builder approves it, even after a delete and re-push).

-- When a promotion last entered `evaluating`, and the claim of the decision running it. Only
-- the decision holding the current claim may decide or promote it.
ALTER TABLE promotions ADD COLUMN evaluating_since INTEGER;
ALTER TABLE promotions ADD COLUMN claim TEXT;
-- A promotion left evaluating by an older version: treat it as claimed when it was requested.
UPDATE promotions SET evaluating_since = created_at, claim = 'legacy-' || id
    WHERE state = 'evaluating';
CREATE INDEX promotions_evaluating ON promotions (evaluating_since) WHERE state = 'evaluating';

-- Every principal that ever pushed a manifest (`push`) or evidence about it (`evidence`: a
-- manifest naming it as subject, or a cosign tag-scheme tag naming it) into a repository of a
-- path (the repository name without its stage). Rows are never updated or deleted.
CREATE TABLE artifact_contributors (
    repository_path  TEXT NOT NULL,
    digest           TEXT NOT NULL,
    principal        TEXT NOT NULL,
    kind             TEXT NOT NULL CHECK (kind IN ('push', 'evidence')),
    first_at         INTEGER NOT NULL,
    PRIMARY KEY (repository_path, digest, principal, kind)
) WITHOUT ROWID;

CREATE TRIGGER artifact_contributors_no_update BEFORE UPDATE ON artifact_contributors
BEGIN
    SELECT RAISE(ABORT, 'artifact_contributors is append-only');
END;

CREATE TRIGGER artifact_contributors_no_delete BEFORE DELETE ON artifact_contributors
BEGIN
    SELECT RAISE(ABORT, 'artifact_contributors is append-only');
END;

-- Backfill from what an older version kept. Pushers of manifests still held (copies made by
-- promotions carry their source's pusher; airlock's own attestations are not contributions).
INSERT OR IGNORE INTO artifact_contributors (repository_path, digest, principal, kind, first_at)
    SELECT substr(repository, instr(repository, '/') + 1), digest, pushed_by, 'push', created_at
    FROM repository_manifests
    WHERE pushed_by IS NOT NULL AND pushed_by != 'airlock' AND instr(repository, '/') > 0;
INSERT OR IGNORE INTO artifact_contributors (repository_path, digest, principal, kind, first_at)
    SELECT substr(repository, instr(repository, '/') + 1), subject, pushed_by, 'evidence',
           created_at
    FROM repository_manifests
    WHERE subject IS NOT NULL AND pushed_by IS NOT NULL AND pushed_by != 'airlock'
      AND instr(repository, '/') > 0;
-- Evidence items (kept by path, whoever pushed them).
INSERT OR IGNORE INTO artifact_contributors (repository_path, digest, principal, kind, first_at)
    SELECT repository_path, subject, pushed_by, 'evidence', first_seen_at
    FROM evidence WHERE pushed_by != 'airlock';
-- The audit log remembers pushes of manifests deleted since: every `manifest.pushed` entry
-- (and its subject), and every cosign tag-scheme tag pushed (`sha256-<hex>.sig|.att|.sbom`).
INSERT OR IGNORE INTO artifact_contributors (repository_path, digest, principal, kind, first_at)
    SELECT substr(repository, instr(repository, '/') + 1), digest, principal, 'push', time_millis
    FROM (SELECT json_extract(CAST(entry AS TEXT), '$.subject.repository') AS repository,
                 json_extract(CAST(entry AS TEXT), '$.subject.digest') AS digest,
                 json_extract(CAST(entry AS TEXT), '$.actor.principal') AS principal,
                 time_millis
          FROM audit_entries WHERE kind = 'manifest.pushed' AND json_valid(CAST(entry AS TEXT)))
    WHERE repository IS NOT NULL AND digest IS NOT NULL AND principal IS NOT NULL
      AND principal != 'airlock' AND instr(repository, '/') > 0;
INSERT OR IGNORE INTO artifact_contributors (repository_path, digest, principal, kind, first_at)
    SELECT substr(repository, instr(repository, '/') + 1), subject, principal, 'evidence',
           time_millis
    FROM (SELECT json_extract(CAST(entry AS TEXT), '$.subject.repository') AS repository,
                 json_extract(CAST(entry AS TEXT), '$.details.subject') AS subject,
                 json_extract(CAST(entry AS TEXT), '$.actor.principal') AS principal,
                 time_millis
          FROM audit_entries WHERE kind = 'manifest.pushed' AND json_valid(CAST(entry AS TEXT)))
    WHERE repository IS NOT NULL AND subject IS NOT NULL AND principal IS NOT NULL
      AND principal != 'airlock' AND instr(repository, '/') > 0;
INSERT OR IGNORE INTO artifact_contributors (repository_path, digest, principal, kind, first_at)
    SELECT substr(repository, instr(repository, '/') + 1),
           'sha256:' || substr(tag, 8, 64), principal, 'evidence', time_millis
    FROM (SELECT json_extract(CAST(entry AS TEXT), '$.subject.repository') AS repository,
                 json_extract(CAST(entry AS TEXT), '$.subject.tag') AS tag,
                 json_extract(CAST(entry AS TEXT), '$.actor.principal') AS principal,
                 time_millis
          FROM audit_entries WHERE kind = 'tag.moved' AND json_valid(CAST(entry AS TEXT)))
    WHERE repository IS NOT NULL AND principal IS NOT NULL AND principal != 'airlock'
      AND instr(repository, '/') > 0
      AND (tag GLOB 'sha256-' || replace(hex(zeroblob(64)), '00', '[0-9a-f]') || '.*');
