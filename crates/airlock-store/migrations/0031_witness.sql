-- Witness cosigning (c2sp.org/tlog-witness, c2sp.org/tlog-cosignature).
-- The cosignatures this log's witnesses returned: one signature line per checkpoint size and
-- witness (named by its verifier key). `/log/checkpoint` serves them under the log's signature.
CREATE TABLE audit_cosignatures (
    size        INTEGER NOT NULL,
    witness     TEXT NOT NULL,
    line        TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    PRIMARY KEY (size, witness)
) WITHOUT ROWID;
-- Where each configured witness stands: the size it last cosigned for this log, and why it last
-- refused or could not be reached (NULL after a cosignature).
CREATE TABLE audit_witness_status (
    witness        TEXT PRIMARY KEY,
    cosigned_size  INTEGER NOT NULL,
    last_error     TEXT,
    updated_at     INTEGER NOT NULL
) WITHOUT ROWID;
-- airlock as a witness of other logs: per log origin, the newest checkpoint it cosigned (with its
-- own cosignature line appended). It only ever moves forward, by a verified consistency proof.
CREATE TABLE witnessed_logs (
    origin      TEXT PRIMARY KEY,
    size        INTEGER NOT NULL,
    root        BLOB NOT NULL,
    checkpoint  TEXT NOT NULL,
    updated_at  INTEGER NOT NULL
) WITHOUT ROWID;
