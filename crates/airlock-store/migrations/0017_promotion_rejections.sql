-- A decision record may also be an approver's rejection of a pending promotion (action
-- `reject`: who rejected it and why, no policy evaluation), beside the gates' `promote` and
-- `rollback` decisions. SQLite cannot change a CHECK constraint in place, so the table is
-- rebuilt with every row it holds.
CREATE TABLE decisions_0017 (
    id             TEXT PRIMARY KEY,
    promotion_id   TEXT,
    action         TEXT NOT NULL CHECK (action IN ('promote', 'rollback', 'reject')),
    query          TEXT NOT NULL,
    bundle_digest  TEXT NOT NULL,
    input          TEXT NOT NULL,
    result         TEXT NOT NULL,
    allowed        INTEGER NOT NULL,
    created_at     INTEGER NOT NULL
);
INSERT INTO decisions_0017 (id, promotion_id, action, query, bundle_digest, input, result,
                            allowed, created_at)
    SELECT id, promotion_id, action, query, bundle_digest, input, result, allowed, created_at
    FROM decisions;
DROP TABLE decisions;
ALTER TABLE decisions_0017 RENAME TO decisions;
