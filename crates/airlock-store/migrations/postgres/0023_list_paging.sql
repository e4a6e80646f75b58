-- Indexes that let every list answer page by a cursor (keyset paging), so a page costs the same
-- whatever the table's size:
-- - promotions, newest first, all of them, of one state or of one repository path;
-- - the artifacts of a repository in the order `status` shows them (oldest first).
CREATE INDEX promotions_by_time ON promotions (created_at, id);
CREATE INDEX promotions_by_state_time ON promotions (state, created_at, id);
CREATE INDEX promotions_by_path_time ON promotions (repository_path, created_at, id);
CREATE INDEX repository_manifests_by_time ON repository_manifests (repository, created_at, digest);
