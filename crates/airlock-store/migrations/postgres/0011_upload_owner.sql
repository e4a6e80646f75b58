-- PostgreSQL form of migration 0011 (see ../0011_upload_owner.sql).
ALTER TABLE uploads ADD COLUMN principal TEXT COLLATE "binary";
