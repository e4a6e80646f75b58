-- The audit log. Entries are appended in the same transaction as the change they record; the
-- integrator later computes their Merkle hashes and signs checkpoints over them.

-- One row per entry, numbered from 0 without gaps. `entry` holds the canonical JSON bytes that the
-- Merkle leaf commits to; `kind` and `time_millis` are copies for filtering, not part of the hash.
CREATE TABLE audit_entries (
    idx          INTEGER PRIMARY KEY,
    entry        BLOB NOT NULL,
    kind         TEXT NOT NULL,
    time_millis  INTEGER NOT NULL
);

CREATE INDEX audit_entries_by_time ON audit_entries (time_millis);

-- The tlog "stored hashes" (RFC 6962 leaf and interior hashes of complete subtrees), by stored-hash
-- index, written by the integrator.
CREATE TABLE audit_hashes (
    idx   INTEGER PRIMARY KEY,
    hash  BLOB NOT NULL
);

-- Signed checkpoints (C2SP signed-note + tlog-checkpoint), one per integrated tree size.
CREATE TABLE audit_checkpoints (
    size        INTEGER PRIMARY KEY,
    root        BLOB NOT NULL,
    note        TEXT NOT NULL,
    created_at  INTEGER NOT NULL
);
