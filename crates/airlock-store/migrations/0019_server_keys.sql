-- airlock's own keys in the database (used on PostgreSQL, where replicas share them; the embedded
-- default keeps its key files in the data directory and leaves these tables empty).

-- One row per key: the audit log key (`log`), the token signing keys (`token`) and the promotion
-- attestation keys (`attestation`). The current key of a purpose (`retired_at` NULL) carries its
-- private half sealed with AES-256-GCM under the key-encryption key (a version byte, the 12-byte
-- nonce, then ciphertext and tag; the additional data names the purpose and the key id); a
-- retired key keeps its public half only.
CREATE TABLE server_keys (
    purpose         TEXT NOT NULL,
    key_id          TEXT NOT NULL,
    public_key      TEXT NOT NULL,
    sealed_private  BLOB,
    created_at      INTEGER NOT NULL,
    retired_at      INTEGER,
    accepted_until  INTEGER,
    PRIMARY KEY (purpose, key_id)
) WITHOUT ROWID;

-- At most one current key per purpose.
CREATE UNIQUE INDEX server_keys_current ON server_keys (purpose) WHERE retired_at IS NULL;

-- Bumped by every change to `server_keys`: replicas poll it to pick up a rotation.
CREATE TABLE server_keys_version (
    id       INTEGER PRIMARY KEY CHECK (id = 1),
    version  INTEGER NOT NULL
);
INSERT INTO server_keys_version (id, version) VALUES (1, 0);
