-- Deploy-time verification answers from a cache keyed by this counter: every change that could
-- flip an answer (a promotion's state, a channel move or rollback, a quarantine, a flag on
-- voided evidence, an evidence verdict, the keyring, a manifest or tag leaving a repository)
-- bumps it in the same transaction, by the triggers below, so no writer can forget to, and a
-- cached answer is never read under a newer version than the state it was computed from.
CREATE TABLE verify_version (
    id       INTEGER PRIMARY KEY CHECK (id = 1),
    version  INTEGER NOT NULL
);
INSERT INTO verify_version (id, version) VALUES (1, 0);

CREATE TRIGGER verify_version_promotion_insert AFTER INSERT ON promotions
BEGIN UPDATE verify_version SET version = version + 1 WHERE id = 1; END;
CREATE TRIGGER verify_version_promotion_update AFTER UPDATE ON promotions
BEGIN UPDATE verify_version SET version = version + 1 WHERE id = 1; END;
CREATE TRIGGER verify_version_promotion_delete AFTER DELETE ON promotions
BEGIN UPDATE verify_version SET version = version + 1 WHERE id = 1; END;
CREATE TRIGGER verify_version_channel_move AFTER INSERT ON channel_history
BEGIN UPDATE verify_version SET version = version + 1 WHERE id = 1; END;
CREATE TRIGGER verify_version_quarantine_insert AFTER INSERT ON artifact_quarantines
BEGIN UPDATE verify_version SET version = version + 1 WHERE id = 1; END;
CREATE TRIGGER verify_version_quarantine_delete AFTER DELETE ON artifact_quarantines
BEGIN UPDATE verify_version SET version = version + 1 WHERE id = 1; END;
CREATE TRIGGER verify_version_flag_insert AFTER INSERT ON artifact_flags
BEGIN UPDATE verify_version SET version = version + 1 WHERE id = 1; END;
CREATE TRIGGER verify_version_flag_delete AFTER DELETE ON artifact_flags
BEGIN UPDATE verify_version SET version = version + 1 WHERE id = 1; END;
CREATE TRIGGER verify_version_evidence_status AFTER UPDATE OF status ON evidence
BEGIN UPDATE verify_version SET version = version + 1 WHERE id = 1; END;
CREATE TRIGGER verify_version_keyring AFTER UPDATE ON keyring_version
BEGIN UPDATE verify_version SET version = version + 1 WHERE id = 1; END;
CREATE TRIGGER verify_version_manifest_delete AFTER DELETE ON repository_manifests
BEGIN UPDATE verify_version SET version = version + 1 WHERE id = 1; END;
CREATE TRIGGER verify_version_tag_delete AFTER DELETE ON tags
BEGIN UPDATE verify_version SET version = version + 1 WHERE id = 1; END;
