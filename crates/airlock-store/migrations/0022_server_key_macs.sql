-- A MAC on every `server_keys` row: HMAC-SHA256 over all the row's columns (length-prefixed)
-- under a key derived from the key-encryption key with HKDF-SHA256. A row whose MAC does not
-- match, or that has none once the table is authenticated, is refused, so whoever can write the
-- database without the KEK cannot swap a public key, extend an acceptance window or add a key.
-- Rows written before this migration have none: airlock gives them their MACs once, at the first
-- start after the upgrade (audited as `server_key.authenticated`).
ALTER TABLE server_keys ADD COLUMN mac BLOB;
