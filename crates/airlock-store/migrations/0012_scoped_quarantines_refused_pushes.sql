-- Quarantines hold the artifact in one repository path (every stage of it: the artifact's
-- lineage, since promotions keep the path), not the digest in every repository: evidence or
-- promotions about a copy of the same bytes in another tenant's repository must not hold this
-- one. NULL (quarantines raised before this migration): every repository, as then.
ALTER TABLE artifact_quarantines ADD COLUMN repository_path TEXT;

