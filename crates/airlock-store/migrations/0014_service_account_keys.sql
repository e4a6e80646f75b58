-- Service accounts hold several API keys, each with a name (unique among the account's keys that
-- are not revoked, so a revoked key's name can be given to its replacement) and the time it last
-- authenticated (written at most once a minute per key by the server, not per request), and who
-- added it (NULL for keys made before this migration and for passwords).
ALTER TABLE credentials ADD COLUMN name TEXT;
ALTER TABLE credentials ADD COLUMN last_used_at INTEGER;
ALTER TABLE credentials ADD COLUMN created_by TEXT;

-- Keys made before names existed: the first key of each account is `default` (the one
-- `service-accounts add` created), any other is named by its id.
UPDATE credentials SET name = 'default'
WHERE kind = 'api_key'
  AND id = (SELECT c.id FROM credentials c
            WHERE c.principal_id = credentials.principal_id AND c.kind = 'api_key'
            ORDER BY c.created_at, c.id LIMIT 1);
UPDATE credentials SET name = id WHERE kind = 'api_key' AND name IS NULL;

CREATE UNIQUE INDEX credentials_live_key_names ON credentials (principal_id, name)
WHERE kind = 'api_key' AND revoked_at IS NULL;

-- Expiry notices already appended to the audit log, so each is sent once per key and threshold
-- across restarts: `expiring` with the threshold in days it was sent for, `expired` with 0.
CREATE TABLE credential_expiry_notices (
    credential_id   TEXT NOT NULL REFERENCES credentials(id),
    notice          TEXT NOT NULL CHECK (notice IN ('expiring', 'expired')),
    threshold_days  INTEGER NOT NULL,
    sent_at         INTEGER NOT NULL,
    PRIMARY KEY (credential_id, notice, threshold_days)
) WITHOUT ROWID;
