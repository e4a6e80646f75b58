-- A subject's referrers in a repository (the OCI referrers API, a promotion's evidence) are read
-- by (repository, subject) in arrival order. With the arrival time in the index, SQLite's planner
-- reads the index alone; without it, it preferred reading every manifest of the repository for
-- the ORDER BY, so each promotion's cost grew with the size of its repository.
DROP INDEX repository_manifests_by_subject;
CREATE INDEX repository_manifests_by_subject
    ON repository_manifests (repository, subject, created_at) WHERE subject IS NOT NULL;
