-- PostgreSQL form of migration 0019 (see ../0019_server_keys.sql): airlock's own keys, sealed
-- under the key-encryption key, shared by every replica.
CREATE TABLE server_keys (
    purpose         TEXT COLLATE "binary" NOT NULL,
    key_id          TEXT COLLATE "binary" NOT NULL,
    public_key      TEXT NOT NULL,
    sealed_private  BYTEA,
    created_at      BIGINT NOT NULL,
    retired_at      BIGINT,
    accepted_until  BIGINT,
    PRIMARY KEY (purpose, key_id)
);

CREATE UNIQUE INDEX server_keys_current ON server_keys (purpose) WHERE retired_at IS NULL;

CREATE TABLE server_keys_version (
    id       INTEGER PRIMARY KEY CHECK (id = 1),
    version  BIGINT NOT NULL
);
INSERT INTO server_keys_version (id, version) VALUES (1, 0);
