-- Anomaly response: the signals rules count, the anomalies they raised, and what each anomaly
-- changed (a locked principal, a quarantined artifact, a frozen stage) so resolving it can undo
-- exactly that.

-- One row per observation a rule counts (a denied promotion, a failed authentication, ...),
-- keyed by what the rule counts per (a principal, a source address, an artifact, a stage).
-- Windows are counted here, so a restart or a second replica does not reset them.
CREATE TABLE anomaly_signals (
    id      INTEGER PRIMARY KEY AUTOINCREMENT,
    rule    TEXT NOT NULL,
    key     TEXT NOT NULL,
    at      INTEGER NOT NULL
);
CREATE INDEX anomaly_signals_window ON anomaly_signals (rule, key, at);

CREATE TABLE anomalies (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    rule            TEXT NOT NULL,
    key             TEXT NOT NULL,
    action          TEXT NOT NULL CHECK (action IN ('alert', 'lock_principal',
                        'quarantine_artifact', 'freeze_stage')),
    -- Whether the action changed anything (a lock needs a known principal, ...).
    applied         INTEGER NOT NULL,
    summary         TEXT NOT NULL,
    target          TEXT NOT NULL,      -- JSON: principal, repository, digest, stage, source
    observed        INTEGER NOT NULL,   -- signals in the window when it triggered
    threshold       INTEGER NOT NULL,
    window_secs     INTEGER NOT NULL,
    status          TEXT NOT NULL CHECK (status IN ('open', 'resolved')),
    created_at      INTEGER NOT NULL,
    resolved_at     INTEGER,
    resolved_by     TEXT,
    resolution      TEXT
);
-- At most one open anomaly per rule and key: further signals while it is open add nothing.
CREATE UNIQUE INDEX anomalies_open ON anomalies (rule, key) WHERE status = 'open';
CREATE INDEX anomalies_by_status ON anomalies (status, id);

-- A locked principal cannot authenticate until every anomaly that locked it is resolved.
-- `principals.locked_by` caches the newest open lock so authentication reads one row.
CREATE TABLE principal_locks (
    principal   TEXT NOT NULL,
    anomaly_id  INTEGER NOT NULL REFERENCES anomalies(id),
    created_at  INTEGER NOT NULL,
    PRIMARY KEY (principal, anomaly_id)
) WITHOUT ROWID;
CREATE INDEX principal_locks_by_anomaly ON principal_locks (anomaly_id);
ALTER TABLE principals ADD COLUMN locked_by INTEGER REFERENCES anomalies(id);

-- Quarantined artifacts (by digest, in every repository): no promotion, no pulls from gated
-- stages.
CREATE TABLE artifact_quarantines (
    digest      TEXT NOT NULL,
    anomaly_id  INTEGER NOT NULL REFERENCES anomalies(id),
    reason      TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    PRIMARY KEY (digest, anomaly_id)
) WITHOUT ROWID;
CREATE INDEX artifact_quarantines_by_anomaly ON artifact_quarantines (anomaly_id);

-- A freeze set by an anomaly is lifted by resolving it; a person's freeze has no anomaly.
ALTER TABLE stage_freezes ADD COLUMN anomaly_id INTEGER REFERENCES anomalies(id);
