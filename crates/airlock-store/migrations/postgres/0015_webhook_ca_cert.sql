-- PostgreSQL form of migration 0015 (see ../0015_webhook_ca_cert.sql).
ALTER TABLE webhook_endpoints ADD COLUMN ca_cert TEXT COLLATE "binary";
