-- PostgreSQL form of migration 0014 (see ../0014_service_account_keys.sql).
ALTER TABLE credentials ADD COLUMN name TEXT COLLATE "binary";
ALTER TABLE credentials ADD COLUMN last_used_at BIGINT;
ALTER TABLE credentials ADD COLUMN created_by TEXT COLLATE "binary";

UPDATE credentials SET name = 'default'
WHERE kind = 'api_key'
  AND id = (SELECT c.id FROM credentials c
            WHERE c.principal_id = credentials.principal_id AND c.kind = 'api_key'
            ORDER BY c.created_at, c.id LIMIT 1);
UPDATE credentials SET name = id WHERE kind = 'api_key' AND name IS NULL;

CREATE UNIQUE INDEX credentials_live_key_names ON credentials (principal_id, name)
WHERE kind = 'api_key' AND revoked_at IS NULL;

CREATE TABLE credential_expiry_notices (
    credential_id   TEXT COLLATE "binary" NOT NULL REFERENCES credentials(id),
    notice          TEXT COLLATE "binary" NOT NULL CHECK (notice IN ('expiring', 'expired')),
    threshold_days  BIGINT NOT NULL,
    sent_at         BIGINT NOT NULL,
    PRIMARY KEY (credential_id, notice, threshold_days)
);
