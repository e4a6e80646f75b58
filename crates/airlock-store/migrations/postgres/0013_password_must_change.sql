-- PostgreSQL form of migration 0013 (see ../0013_password_must_change.sql).
ALTER TABLE principals ADD COLUMN password_must_change BIGINT NOT NULL DEFAULT 0;
