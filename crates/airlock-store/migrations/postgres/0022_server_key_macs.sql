-- PostgreSQL form of migration 0022 (see ../0022_server_key_macs.sql): a MAC on every
-- `server_keys` row under a key derived from the key-encryption key.
ALTER TABLE server_keys ADD COLUMN mac BYTEA;
