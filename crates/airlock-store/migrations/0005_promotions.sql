-- Promotions: requests, approvals, decision records (replayable), policy bundles by digest,
-- channel tag history, stage freezes; and who pushed each manifest (separation of duties).

ALTER TABLE repository_manifests ADD COLUMN pushed_by TEXT;

CREATE TABLE promotions (
    id                  TEXT PRIMARY KEY,
    repository_path     TEXT NOT NULL,        -- path without stage
    digest              TEXT NOT NULL,
    source_stage        TEXT NOT NULL,
    target_stage        TEXT NOT NULL,
    tags                TEXT NOT NULL,        -- JSON array: tags set in the target
    channel             TEXT,                 -- channel tag moved in the target
    state               TEXT NOT NULL CHECK (state IN ('evaluating', 'pending_approval',
                            'promoted', 'denied', 'expired', 'cancelled')),
    requested_by        TEXT NOT NULL,
    requester           TEXT NOT NULL,        -- JSON: roles, auth method, source at request time
    approvals_required  INTEGER NOT NULL DEFAULT 0,
    break_glass         TEXT,                 -- the reason, for an emergency promotion
    last_decision       TEXT,
    attestation         TEXT,                 -- promotion attestation manifest digest
    created_at          INTEGER NOT NULL,
    expires_at          INTEGER NOT NULL,
    decided_at          INTEGER
);

-- One live promotion per artifact and target stage: concurrent requests yield exactly one.
CREATE UNIQUE INDEX promotions_live ON promotions (repository_path, digest, target_stage)
    WHERE state IN ('evaluating', 'pending_approval', 'promoted');
CREATE INDEX promotions_by_state ON promotions (state, expires_at);

CREATE TABLE approvals (
    promotion_id  TEXT NOT NULL REFERENCES promotions(id),
    principal     TEXT NOT NULL,
    comment       TEXT,
    created_at    INTEGER NOT NULL,
    PRIMARY KEY (promotion_id, principal)
) WITHOUT ROWID;

-- Every gate evaluation that counted: the exact input, the bundle digest and the result.
CREATE TABLE decisions (
    id             TEXT PRIMARY KEY,
    promotion_id   TEXT,
    action         TEXT NOT NULL CHECK (action IN ('promote', 'rollback')),
    query          TEXT NOT NULL,
    bundle_digest  TEXT NOT NULL,
    input          TEXT NOT NULL,
    result         TEXT NOT NULL,
    allowed        INTEGER NOT NULL,
    created_at     INTEGER NOT NULL
);

-- Policy bundles by digest, kept so any decision can be replayed.
CREATE TABLE policy_bundles (
    digest      TEXT PRIMARY KEY,
    files       TEXT NOT NULL,                -- JSON [[path, content], ...]
    created_at  INTEGER NOT NULL
);

-- Every move of a channel tag (by promotion or rollback), newest last.
CREATE TABLE channel_history (
    id            INTEGER PRIMARY KEY,
    repository    TEXT NOT NULL,
    tag           TEXT NOT NULL,
    digest        TEXT NOT NULL,
    promotion_id  TEXT,
    action        TEXT NOT NULL CHECK (action IN ('promote', 'rollback')),
    moved_by      TEXT NOT NULL,
    moved_at      INTEGER NOT NULL
);
CREATE INDEX channel_history_by_tag ON channel_history (repository, tag, id);

CREATE TABLE stage_freezes (
    stage       TEXT PRIMARY KEY,
    reason      TEXT NOT NULL,
    frozen_by   TEXT NOT NULL,
    frozen_at   INTEGER NOT NULL
);
